#define _GNU_SOURCE
#include "vm/scratch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "options/config.h"
#include "util.h"

#define TMPFS_MAGIC_ 0x01021994L
#define RAMFS_MAGIC_ 0x858458f6L

char *scratch_dir_choose(const char *scratch_env, const char *xdg_cache,
			 const char *home, bool *may_create,
			 struct ccvm_err *err)
{
	char *dir = NULL;
	if (scratch_env && *scratch_env) {
		if (scratch_env[0] != '/') {
			ccvm_err_set(err, EINVAL,
				     "%s=%s: expected an absolute path",
				     SCRATCH_DIR_ENV, scratch_env);
			return NULL;
		}
		dir = strdup(scratch_env);
		*may_create = false;
	} else if (xdg_cache && xdg_cache[0] == '/') {
		dir = util_path_join(xdg_cache, "ccvm");
		*may_create = true;
	} else if (home && home[0] == '/') {
		dir = util_path_join(home, ".cache/ccvm");
		*may_create = true;
	} else {
		ccvm_err_set(err, ENOENT,
			     "vmDiskSize: no place for the scratch disk (HOME "
			     "is not set); set %s to a directory on a disk",
			     SCRATCH_DIR_ENV);
		return NULL;
	}
	if (!dir)
		ccvm_err_sys(err, errno ? errno : ENOMEM,
			     "vmDiskSize: scratch directory");
	return dir;
}

int scratch_size_bytes(long gib, uint64_t *out, struct ccvm_err *err)
{
	if (gib <= 0 || gib > CFG_DISK_SIZE_MAX)
		return ccvm_err_set(err, EINVAL,
				    "vmDiskSize %ld: expected 1..%ld GiB", gib,
				    CFG_DISK_SIZE_MAX);
	*out = (uint64_t)gib << 30;
	return 0;
}

bool scratch_fs_is_ram(long f_type)
{
	return f_type == TMPFS_MAGIC_ || f_type == RAMFS_MAGIC_;
}

/* Where O_TMPFILE is unsupported: a random name, unlinked at once. */
static int open_named(int dirfd, const char *dir, struct ccvm_err *err)
{
	for (int tries = 0; tries < 16; tries++) {
		uint8_t rnd[8];
		if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
			return ccvm_err_sys(err, errno, "getrandom");
		char name[64];
		snprintf(name, sizeof(name),
			 ".ccvm-scratch-%02x%02x%02x%02x%02x%02x%02x%02x",
			 rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5], rnd[6],
			 rnd[7]);
		int fd = openat(
		    dirfd, name,
		    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0 && errno == EEXIST)
			continue;
		if (fd < 0)
			return ccvm_err_sys(err, errno,
					    "cannot create the scratch disk in "
					    "%s (set %s to another directory)",
					    dir, SCRATCH_DIR_ENV);
		if (unlinkat(dirfd, name, 0) < 0) {
			int e = errno;
			close(fd);
			return ccvm_err_sys(err, e, "cannot unlink %s/%s", dir,
					    name);
		}
		return fd;
	}
	return ccvm_err_set(err, EEXIST, "cannot pick a file name in %s", dir);
}

int scratch_open(long gib, struct ccvm_err *err)
{
	uint64_t size = 0;
	int r = scratch_size_bytes(gib, &size, err);
	if (r < 0)
		return r;
	bool may_create = false;
	autofree char *dir = scratch_dir_choose(
	    getenv(SCRATCH_DIR_ENV), getenv("XDG_CACHE_HOME"), getenv("HOME"),
	    &may_create, err);
	if (!dir)
		return err->code ? err->code : -ENOMEM;
	if (may_create && (r = util_mkdir_p(dir, 0700)) < 0)
		return ccvm_err_sys(err, -r,
				    "cannot create %s for the scratch disk "
				    "(set %s to another directory)",
				    dir, SCRATCH_DIR_ENV);
	autoclose int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return ccvm_err_sys(err, errno,
				    "scratch directory %s (set %s to another "
				    "directory)",
				    dir, SCRATCH_DIR_ENV);
	struct statfs sf;
	if (fstatfs(dirfd, &sf) < 0)
		return ccvm_err_sys(err, errno, "statfs %s", dir);
	if (scratch_fs_is_ram((long)sf.f_type))
		return ccvm_err_set(
		    err, EPERM,
		    "refusing to put the scratch disk (vmDiskSize) "
		    "in %s: it is RAM-backed (tmpfs/ramfs); set "
		    "%s to a directory on a disk",
		    dir, SCRATCH_DIR_ENV);

	/* O_EXCL: the file can never be linked into the tree later. */
	int fd =
	    openat(dirfd, ".", O_TMPFILE | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
			return ccvm_err_sys(err, errno,
					    "cannot create the scratch disk in "
					    "%s (set %s to another directory)",
					    dir, SCRATCH_DIR_ENV);
		fd = open_named(dirfd, dir, err);
		if (fd < 0)
			return fd;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		int e = errno;
		close(fd);
		return ccvm_err_sys(err, e,
				    "cannot size the scratch disk in %s to "
				    "%ld GiB (vmDiskSize)",
				    dir, gib);
	}
	return fd;
}

bool scratch_full(uint64_t size, uint64_t alloc, uint64_t avail)
{
	return alloc < size && avail < SCRATCH_FULL_MARGIN;
}

bool scratch_out_of_space(int fd)
{
	struct stat st;
	struct statvfs sv;
	if (fd < 0 || fstat(fd, &st) < 0 || fstatvfs(fd, &sv) < 0)
		return false;
	return scratch_full((uint64_t)st.st_size, (uint64_t)st.st_blocks * 512,
			    (uint64_t)sv.f_bavail * sv.f_frsize);
}
