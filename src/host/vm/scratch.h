#pragma once
/*
 * The host side of the scratch disk (vmDiskSize > 0): a sparse file that
 * never has a name.  It is opened with O_TMPFILE (or created and unlinked
 * at once where the file system lacks it) and handed to QEMU as an open
 * fd, so no path ever points at it and even `kill -9` of ccvm and QEMU
 * leaves nothing on disk.  The guest encrypts everything it writes there
 * under a key that exists only in guest RAM (src/guest/vm/scratch.c).
 *
 * RAM-backed places (tmpfs, ramfs) are refused: a disk there would take
 * guest writes out of host memory, which is what the disk is for.
 */
#include <stdbool.h>
#include <stdint.h>

#include "err.h"

#define SCRATCH_DIR_ENV "CCVM_SCRATCH_DIR"

/*
 * The directory for the disk: $CCVM_SCRATCH_DIR when set (must exist),
 * else $XDG_CACHE_HOME/ccvm, else $HOME/.cache/ccvm (created 0700).  Pure:
 * the values are passed in (NULL or "" for unset).  *may_create tells
 * whether the caller may create the directory (not one the user named). Returns
 * a malloc'ed path, or NULL with err filled.
 */
char *scratch_dir_choose(const char *scratch_env, const char *xdg_cache,
			 const char *home, bool *may_create,
			 struct ccvm_err *err);

/* The disk's size in bytes for gib (1..CFG_DISK_SIZE_MAX): 0 or -EINVAL. */
int scratch_size_bytes(long gib, uint64_t *out, struct ccvm_err *err);

/* true for a RAM-backed file system type (statfs f_type). */
bool scratch_fs_is_ram(long f_type);

/*
 * Opens a nameless sparse file of gib GiB in the chosen directory and
 * returns its fd (O_RDWR|O_CLOEXEC; the caller hands it to QEMU and
 * closes it), or -errno with a one-line error naming the directory and
 * SCRATCH_DIR_ENV.  -EPERM (with err) when the place is RAM-backed: a
 * usage error.  Environment: CCVM_SCRATCH_DIR, XDG_CACHE_HOME, HOME.
 */
int scratch_open(long gib, struct ccvm_err *err);

/* Room under which a file system with a disk file still part hole counts
 * as full: more than one write QEMU makes. */
#define SCRATCH_FULL_MARGIN (16ull << 20)

/* Pure: a disk of size bytes, alloc of them backed by blocks, on a file
 * system with avail bytes free for the user, could not grow. */
bool scratch_full(uint64_t size, uint64_t alloc, uint64_t avail);

/* The disk file fd could not grow (scratch_full), as far as fstat and
 * fstatvfs tell: QEMU's writes to it failed with ENOSPC, which the guest
 * saw as I/O errors (werror=report). */
bool scratch_out_of_space(int fd);
