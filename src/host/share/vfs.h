#pragma once
/*
 * The launch directory over virtiofs: ccvm starts QEMU's virtiofsd
 * (Debian 12's /usr/lib/qemu/virtiofsd) unprivileged, in a user namespace
 * of its own where the host user keeps its uid, and hands QEMU a connected
 * vhost-user socket.  Where virtiofsd is missing, the share stays on 9p.
 *
 * Nothing is left on disk: the listening socket lives in a private 0700
 * directory only between bind and connect (both before virtiofsd starts),
 * and virtiofsd dies with ccvm (PR_SET_PDEATHSIG, and QEMU's end of the
 * socket closing).
 */
#include <stdbool.h>
#include <sys/types.h>

#include "err.h"

#define VFS_DAEMON_PATH "/usr/lib/qemu/virtiofsd"
/* A virtiofsd binary, or "none" to keep the share on 9p. */
#define VFS_ENV_DAEMON "CCVM_VIRTIOFSD"
/* "0": no name or attribute cache in the guest, no watch (comparisons). */
#define VFS_ENV_CACHE "CCVM_SHARE_CACHE"
/* The fd the daemon gets its listening socket on (--fd=). */
#define VFS_CHILD_LISTEN_FD 3

struct vfs_daemon {
	pid_t pid;   /* virtiofsd (or the namespace's first process), or 0 */
	int qemu_fd; /* connected vhost-user socket for QEMU, or -1 */
};

/*
 * The virtiofsd to use: $CCVM_VIRTIOFSD, else VFS_DAEMON_PATH when it is
 * executable.  NULL (use 9p) when it is "none", empty, missing or not
 * executable; *why then says why, for --ccvm-debug.
 */
const char *vfs_find(const char **why);

/* How long the guest may keep names and attributes (seconds) when the
 * host reports its changes: the session, in practice. */
#define VFS_CACHED_TIMEOUT "31536000"

/*
 * virtiofsd's argv for dir (malloc'ed vector of malloc'ed strings, freed
 * with vfs_argv_free).  cached: names, attributes, listings and pages may
 * be kept for VFS_CACHED_TIMEOUT (the host reports its changes), else
 * names and attributes never, pages until the next open.  Pure.
 * -EINVAL for control characters in dir.
 */
int vfs_argv(const char *bin, const char *dir, bool debug, bool cached,
	     char ***out, struct ccvm_err *err);
void vfs_argv_free(char **v);

/*
 * Starts virtiofsd serving dir (read-only on the host side when !writable:
 * a recursive read-only bind in its mount namespace) and fills d.  stderr
 * goes to errfd (debug) or /dev/null (errfd < 0).  The caller passes
 * d->qemu_fd to QEMU and ends the daemon with vfs_stop.
 */
int vfs_start(const char *bin, const char *dir, bool writable, bool cached,
	      int errfd, struct vfs_daemon *d, struct ccvm_err *err);

/* The most files virtiofsd may hold open (the user's hard RLIMIT_NOFILE,
 * which it is started with), and how many it holds now (-errno when that
 * cannot be read).  A guest that caches keeps one open per inode. */
#define VFS_CACHE_MIN_FILES 4096
long vfs_files_max(void);
long vfs_open_files(const struct vfs_daemon *d);

/* Kills and reaps the daemon, closes the socket; idempotent. */
void vfs_stop(struct vfs_daemon *d);

/* The uid_map/gid_map line mapping id to itself ("ID ID 1\n"). */
int vfs_id_map(unsigned id, char *buf, size_t n);

/*
 * In the calling process, which must be single-threaded: a new user
 * namespace where the maps (vfs_id_map lines, made before the call: ids
 * read after it are the overflow ids) keep the user's uid and gid, and a
 * new mount namespace it owns.  -1 with errno set and *step naming what
 * failed.
 */
int vfs_unshare_self(const char *uid_map, const char *gid_map,
		     const char **step);
