#pragma once
/*
 * The guest's half of share coherence (docs/share.md).  With the share on
 * virtiofs and long cache timeouts, the guest kernel serves names and
 * attributes from its caches; the host tells it which paths changed on
 * the host (SHARE_INVAL) and this worker makes the kernel drop what it
 * holds for each:
 *
 *   - nothing, when the path is gone for the guest too (its next lookup
 *     asks virtiofsd anyway);
 *   - nothing, when what the kernel caches (statx AT_STATX_DONT_SYNC)
 *     equals what the host saw when it sent the batch (type, inode,
 *     size, mtime, ctime): mostly the guest's own changes coming back;
 *   - the share's root: statx(AT_STATX_FORCE_SYNC), a fresh GETATTR;
 *   - a cached directory, besides: its listing (posix_fadvise DONTNEED on
 *     it), which FUSE would only check against the directory's mtime;
 *     with ccvm's kernel (fuse.reval_drops_listing) the directory is
 *     revalidated as below instead, which drops the listing too;
 *   - PROTO_SHARE_ALL: drop every unused dentry and inode (drop_caches),
 *     then the above for each path some process still holds (its working
 *     directory, its open files) under the share, from the top down;
 *   - a cached file, link or other non-directory that the host still has
 *     under that name as the same inode (same inode number and type:
 *     virtiofsd holds the guest's inodes open, so the number is not
 *     reused): statx(AT_STATX_FORCE_SYNC) on it, a GETATTR, which gives
 *     the kernel the new size and times (it drops stale pages as below)
 *     without a lookup or the directory's lock: most often the guest's
 *     own write coming back (a write leaves the cached times stale);
 *   - any other cached path: renameat2(dir, name, dir, name,
 *     RENAME_NOREPLACE).  The target lookup of a rename always
 *     revalidates (LOOKUP_RENAME_TARGET | LOOKUP_EXCL), so FUSE asks
 *     virtiofsd: a name that is gone or now names another file is
 *     dropped with everything under it, and a changed file gets its new
 *     size and times (and loses stale pages).  The rename itself never
 *     happens: the name exists (EEXIST), or the file is gone and the
 *     host's rename fails too.  Nothing changes on either side.
 *
 * PID 1 forwards each batch to the worker, a child of its own, over a
 * SOCK_SEQPACKET pair and relays the worker's answer (u64 seq, u8 status)
 * back to the host as SHARE_SYNCED.  The worker holds no secret: it is
 * forked after they are wiped.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "proto.h"

/* Forks the worker for the share mounted at root; returns PID 1's end of
 * the socket (non-blocking), or -errno with err filled. */
int sharesync_start(const char *root, pid_t *pid, struct ccvm_err *err);

/*
 * Applies one SHARE_INVAL payload to the tree open at rootfd (a directory
 * opened for reading, not O_PATH: its listing is dropped on it), mounted at
 * env->root (the worker's loop body, exposed for tests; env NULL: no TRIM
 * or ALL); *asked (may be NULL): how many
 * paths needed virtiofsd.  Returns 0, or -EPROTO for a malformed payload
 * (a short record, or a path that is absolute, empty, has "..", "." or
 * empty components, or is not NUL-terminated).
 */
struct sharesync_env {
	const char *root;	 /* where the share is mounted */
	const char *proc;	 /* "/proc" */
	const char *drop_caches; /* "/proc/sys/vm/drop_caches" */
	/* The kernel drops a directory's listing when it revalidates it
	 * as a rename's target (fuse.reval_drops_listing). */
	bool rdl;
};
int sharesync_apply(int rootfd, const struct sharesync_env *env,
		    const uint8_t *p, size_t len, size_t *asked);

/* What the worker does about a path the kernel caches (see above). */
enum sharesync_act {
	SHARESYNC_NONE,	      /* the host sees what is cached */
	SHARESYNC_REFRESH,    /* the same inode: its attributes, GETATTR */
	SHARESYNC_REVALIDATE, /* the name: a rename onto itself, LOOKUP */
};

/* For mine, what the kernel caches (exists), and host, what the host
 * saw (NULL: unknown); dir_always: a directory is revalidated whatever
 * its attributes (its listing goes with it, fuse.reval_drops_listing). */
enum sharesync_act sharesync_decide(const struct proto_share_attr *host,
				    const struct proto_share_attr *mine,
				    bool dir_always);

/* True when path is a relative path the host may send (see above). */
bool sharesync_path_ok(const char *path, size_t len);
