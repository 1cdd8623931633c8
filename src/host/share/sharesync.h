#pragma once
/*
 * Host changes to the shared directory, for the guest's caches.
 *
 * With the share on virtiofs, the guest kernel keeps names and attributes
 * for a long time (cheap `git status` and stat walks) and is told what to
 * forget: this module watches the whole tree with inotify (one watch per
 * directory, added before the guest starts and for every directory that
 * appears later) and turns events into a set of changed relative paths,
 * deduplicated, which the session sends to the guest in batches
 * (PROTO_SHARE_INVAL, docs/share.md).
 *
 * Every event read bumps a counter (watch_seq): the session holds back
 * terminal input read after an event until the guest has acknowledged a
 * batch covering it, so input never overtakes a host edit made before it.
 *
 * The walk never follows a symbolic link and never leaves the tree
 * (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS), so a guest that swaps a
 * directory for a link cannot make ccvm watch, and report names from,
 * anything outside the project.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* The cap on watches when /proc/sys/fs/inotify/max_user_watches cannot
 * be read; ccvm takes at most half of the user's limit, leaving the rest
 * to the user's editors and tools. */
#define WATCH_DEFAULT_MAX 65536
/* More changed paths than this before the guest caught up: ask it to
 * recheck everything it holds instead (as on an inotify overflow). */
#define WATCH_PENDING_MAX 50000

struct watch;

/*
 * True when inotify sees every change to a file system of this type
 * (statfs f_type): not for network and FUSE file systems, where another
 * machine or the FUSE server can change files without an event.
 */
bool watch_fs_complete(long f_type);

/*
 * Starts watching root (an absolute path): the inotify instance and the
 * root's own watch; watch_fill adds the rest.  -errno with err filled.
 */
int watch_open(const char *root, struct watch **out, struct ccvm_err *err);

/*
 * Watches every directory under the root (the slow part: a thread may run
 * it while nothing else touches w; events meanwhile wait in the inotify
 * queue).  Past the limit (half of fs.inotify.max_user_watches) the rest
 * stays unwatched and watch_incomplete says so; 0, or -errno.
 */
int watch_fill(struct watch *w);
void watch_free(struct watch *w);

/* The inotify fd to poll for POLLIN. */
int watch_fd(const struct watch *w);

/* Directories watched now. */
size_t watch_dirs(const struct watch *w);

/*
 * Reads every queued event (non-blocking) into the pending set; new
 * directories are walked and watched.  Returns 0 or -errno.
 */
int watch_read(struct watch *w);

/* Events read so far (the counter the guest's acknowledgements refer to). */
uint64_t watch_seq(const struct watch *w);

/* True when changes wait to be sent. */
bool watch_pending(const struct watch *w);

/* True once a directory could not be watched (the limit); sticky. */
bool watch_incomplete(const struct watch *w);

/*
 * Moves pending changes into buf as a SHARE_INVAL payload: u64 seq, u8
 * flags (PROTO_SHARE_ALL), then for each relative path ("." is the root)
 * its attributes as they are now (proto_share_attr) and the path,
 * NUL-terminated.  Takes as many as fit in cap; seq is watch_seq() when nothing
 * is left pending, else the seq of the last complete batch (so an
 * acknowledgement never claims more than was sent).  Returns the payload
 * length.
 */
size_t watch_take(struct watch *w, uint8_t *buf, size_t cap);
