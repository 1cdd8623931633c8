#define _GNU_SOURCE
#include "share/sharesync.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "glog.h"
#include "proto.h"
#include "util.h"

#define RESOLVE_IN_TREE (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)

/*
 * Opens path beneath dirfd, from the dentry cache when it can (no request
 * to virtiofsd).  RESOLVE_CACHED also fails for things that are cached
 * but need a blocking step (an inode readdirplus made and nobody has
 * walked since; a directory whose attributes the guest's own change made
 * stale), so EAGAIN is no proof that nothing is held: then the ordinary
 * walk, which may ask virtiofsd.
 */
static int open_beneath(int dirfd, const char *path, int flags)
{
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_CLOEXEC),
	    .resolve = RESOLVE_IN_TREE | RESOLVE_CACHED | RESOLVE_NO_SYMLINKS,
	};
	int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
	if (fd >= 0 || errno != EAGAIN)
		return fd;
	how.resolve &= ~(uint64_t)RESOLVE_CACHED;
	return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

bool sharesync_path_ok(const char *path, size_t len)
{
	if (len == 0 || path[0] == '/' || memchr(path, '\0', len))
		return false;
	if (len == 1 && path[0] == '.')
		return true; /* the root */
	for (size_t i = 0; i < len;) {
		size_t j = i;
		while (j < len && path[j] != '/')
			j++;
		size_t n = j - i;
		if (n == 0 || (n == 1 && path[i] == '.') ||
		    (n == 2 && path[i] == '.' && path[i + 1] == '.'))
			return false;
		i = j + 1;
		if (j + 1 == len)
			return false; /* a trailing '/' */
	}
	return true;
}

/* The flags for a statx of name in a directory, or of the directory
 * itself (""): no link followed, no submount mounted. */
#define AT_NAME_ONLY (AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT)

/*
 * What the kernel caches of name in the directory open at dirfd (""
 * the directory itself), asking nobody.  name is one component (the
 * batch was checked: no "/", no ".."), so the walk stays in dirfd; a
 * name the kernel does not hold is looked up (virtiofsd is asked).
 */
static void cached_attr(int dirfd, const char *name, struct proto_share_attr *a)
{
	struct statx x;
	*a = (struct proto_share_attr){0};
	if (statx(dirfd, name, AT_NAME_ONLY | AT_STATX_DONT_SYNC,
		  STATX_BASIC_STATS, &x) < 0)
		return;
	*a = (struct proto_share_attr){
	    .exists = true,
	    .mode = x.stx_mode,
	    .ino = x.stx_ino,
	    .size = x.stx_size,
	    .mtime_s = x.stx_mtime.tv_sec,
	    .mtime_ns = x.stx_mtime.tv_nsec,
	    .ctime_s = x.stx_ctime.tv_sec,
	    .ctime_ns = x.stx_ctime.tv_nsec,
	};
}

/* Asks virtiofsd for name's attributes (a GETATTR of the inode the
 * kernel holds; "" the directory itself), which the kernel takes in place
 * of what it cached, dropping the pages of a file whose size or mtime
 * changed. */
static void fresh_attr(int dirfd, const char *name)
{
	struct statx x;
	statx(dirfd, name, AT_NAME_ONLY | AT_STATX_FORCE_SYNC,
	      STATX_BASIC_STATS, &x);
}

/*
 * Drops the listing the kernel may keep of the directory open at fd (not
 * O_PATH: fadvise needs an open file; it asks nobody).  FUSE checks a
 * kept listing against the directory's mtime, which misses names changed
 * within one timestamp tick of the listing, or under an mtime set back
 * (tar, rsync -t, cp -p restore directory times).  The host reports a
 * directory whenever names in it change: its listing goes, whatever the
 * attributes say.
 */
static void drop_listing(int fd)
{
	posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
}

enum sharesync_act sharesync_decide(const struct proto_share_attr *host,
				    const struct proto_share_attr *mine,
				    bool dir_always)
{
	bool dir = mine->exists && S_ISDIR(mine->mode);
	if (!host || (dir && dir_always))
		return SHARESYNC_REVALIDATE;
	if (proto_share_attr_same(host, mine))
		return SHARESYNC_NONE;
	if (!dir && host->exists && mine->exists && host->ino == mine->ino &&
	    (host->mode & S_IFMT) == (mine->mode & S_IFMT))
		return SHARESYNC_REFRESH;
	return SHARESYNC_REVALIDATE;
}

/*
 * Makes the kernel forget what it caches of name in dirfd where that
 * differs from the host's view (host; NULL: revalidate anyway; see
 * sharesync_decide), and drops a cached directory's listing.  With ccvm's
 * kernel (fuse.reval_drops_listing: rdl) a directory is always
 * revalidated, which drops its listing too: one request instead of
 * OPENDIR and RELEASEDIR (and the revalidation).  Returns 1 when it asked
 * virtiofsd, else 0.
 */
static int revalidate(int dirfd, const char *name,
		      const struct proto_share_attr *host, bool rdl)
{
	struct proto_share_attr mine;
	cached_attr(dirfd, name, &mine);
	if (!mine.exists)
		return 0; /* gone: nothing held */
	bool dir = S_ISDIR(mine.mode);
	if (dir && !rdl) {
		/* Opening it costs an OPENDIR and a RELEASEDIR. */
		int d = openat(dirfd, name,
			       O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (d >= 0) {
			drop_listing(d);
			close(d);
		}
	}
	switch (sharesync_decide(host, &mine, rdl)) {
	case SHARESYNC_NONE:
		return dir; /* the guest's own change, or already seen */
	case SHARESYNC_REFRESH:
		fresh_attr(dirfd, name);
		return 1;
	case SHARESYNC_REVALIDATE:
		break;
	}
	if (renameat2(dirfd, name, dirfd, name, RENAME_NOREPLACE) == 0)
		glog_always("share sync: renaming %s to itself succeeded",
			    name);
	return 1;
}

/* Revalidates path (see revalidate); host NULL: whatever is cached.
 * *pfd and *pdir keep the last parent open between calls; the root
 * ("." ) needs neither. */
static int sync_path(int rootfd, char *path,
		     const struct proto_share_attr *host, int *pfd, char **pdir,
		     bool rdl)
{
	if (strcmp(path, ".") == 0) {
		struct proto_share_attr mine;
		cached_attr(rootfd, "", &mine);
		drop_listing(rootfd); /* held open: no request */
		if (host && proto_share_attr_same(host, &mine))
			return 0;
		fresh_attr(rootfd, "");
		return 1;
	}
	char *slash = strrchr(path, '/');
	const char *dir = ".", *name = path;
	if (slash) {
		*slash = '\0';
		dir = path;
		name = slash + 1;
	}
	/* Sorted batches: siblings come together, open their dir once. */
	if (!*pdir || strcmp(*pdir, dir) != 0) {
		if (*pfd >= 0)
			close(*pfd);
		free(*pdir);
		*pdir = strdup(dir);
		/* Gone: nothing under it is held (a dentry pins its
		 * parent). */
		*pfd = open_beneath(rootfd, dir, O_PATH | O_DIRECTORY);
	}
	int r = *pfd >= 0 ? revalidate(*pfd, name, host, rdl) : 0;
	if (slash)
		*slash = '/';
	return r;
}

/* Unused dentries and inodes go; virtiofsd closes its files for them on
 * FORGET. */
static void drop_unused(const struct sharesync_env *env)
{
	int fd = open(env->drop_caches, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)util_write_all(fd, "2\n", 2);
		close(fd);
	}
}

/*
 * Everything: the unused dentries and inodes are dropped (they are looked
 * up afresh), then what stays pinned (the working directories and open
 * files of every process, under root) is revalidated path by path.
 */
static size_t sync_all(int rootfd, const struct sharesync_env *env)
{
	drop_unused(env);
	char dot[] = ".";
	size_t asked =
	    (size_t)sync_path(rootfd, dot, NULL, NULL, NULL, env->rdl);
	const char *root = env->root;
	size_t rl = strlen(root);
	DIR *procs = opendir(env->proc);
	if (!procs)
		return asked;
	struct dirent *pe;
	while ((pe = readdir(procs))) {
		if (pe->d_name[0] < '1' || pe->d_name[0] > '9')
			continue;
		char dir[PATH_MAX];
		snprintf(dir, sizeof(dir), "%s/%s/fd", env->proc, pe->d_name);
		DIR *fds = opendir(dir);
		for (int k = -1;; k++) {
			char link[PATH_MAX + 300], target[PATH_MAX];
			struct dirent *fe = NULL;
			if (k < 0) {
				snprintf(link, sizeof(link), "%s/%s/cwd",
					 env->proc, pe->d_name);
			} else {
				if (!fds || !(fe = readdir(fds)))
					break;
				if (fe->d_name[0] == '.')
					continue;
				snprintf(link, sizeof(link), "%s/%s", dir,
					 fe->d_name);
			}
			ssize_t n = readlink(link, target, sizeof(target) - 1);
			if (n <= (ssize_t)rl + 1 || memcmp(target, root, rl) ||
			    target[rl] != '/')
				continue;
			target[n] = '\0';
			/* Each component from the top: a/b/c is a, a/b,
			 * a/b/c. */
			char *rel = target + rl + 1;
			if (!sharesync_path_ok(rel, strlen(rel)))
				continue;
			int pfd = -1;
			char *pdir = NULL;
			for (char *c = rel;; c++) {
				if (*c != '/' && *c != '\0')
					continue;
				char keep = *c;
				*c = '\0';
				asked += (size_t)sync_path(
				    rootfd, rel, NULL, &pfd, &pdir, env->rdl);
				*c = keep;
				if (!keep)
					break;
			}
			if (pfd >= 0)
				close(pfd);
			free(pdir);
		}
		if (fds)
			closedir(fds);
	}
	closedir(procs);
	return asked;
}

int sharesync_apply(int rootfd, const struct sharesync_env *env,
		    const uint8_t *p, size_t len, size_t *asked)
{
	if (len < PROTO_SHARE_HDR)
		return -EPROTO;
	uint8_t flags = p[8];
	const uint8_t *s = p + PROTO_SHARE_HDR;
	size_t rest = len - PROTO_SHARE_HDR;
	/* Check the whole batch before acting on any of it. */
	for (size_t i = 0; i < rest;) {
		if (rest - i <= PROTO_SHARE_ATTR_LEN)
			return -EPROTO;
		const char *path = (const char *)s + i + PROTO_SHARE_ATTR_LEN;
		size_t room = rest - i - PROTO_SHARE_ATTR_LEN;
		const char *nul = memchr(path, '\0', room);
		if (!nul || !sharesync_path_ok(path, (size_t)(nul - path)))
			return -EPROTO;
		i += PROTO_SHARE_ATTR_LEN + (size_t)(nul - path) + 1;
	}
	autofree uint8_t *copy = malloc(rest + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, s, rest);
	int pfd = -1;
	char *pdir = NULL;
	size_t n = 0;
	for (size_t i = 0; i < rest;) {
		struct proto_share_attr host;
		proto_share_attr_get(copy + i, &host);
		char *path = (char *)copy + i + PROTO_SHARE_ATTR_LEN;
		n += (size_t)sync_path(rootfd, path, &host, &pfd, &pdir,
				       env && env->rdl);
		i += PROTO_SHARE_ATTR_LEN + strlen(path) + 1;
	}
	if (pfd >= 0)
		close(pfd);
	free(pdir);
	if ((flags & PROTO_SHARE_TRIM) && env)
		drop_unused(env);
	if ((flags & PROTO_SHARE_ALL) && env)
		n += sync_all(rootfd, env);
	if (asked)
		*asked = n;
	return 0;
}

/* True when ccvm's kernel has the FUSE parameter name and it is on
 * (guest-kernel.patch; ccvm-init sets it before the worker starts). */
static bool fuse_param_set(const char *name)
{
	char path[96], v = 'N';
	snprintf(path, sizeof(path), "/sys/module/fuse/parameters/%s", name);
	autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd >= 0 && read(fd, &v, 1) == 1 && v == 'Y';
}

static void __attribute__((noreturn)) worker(int sock, const char *root)
{
	struct sharesync_env env = {
	    .root = root,
	    .proc = "/proc",
	    .drop_caches = "/proc/sys/vm/drop_caches",
	};
	int rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (rootfd < 0) {
		glog_always("share sync: %s: %s", root, strerror(errno));
		_exit(1);
	}
	static uint8_t buf[PROTO_SHARE_BATCH + PROTO_SHARE_HDR + 1];
	for (;;) {
		ssize_t n = recv(sock, buf, sizeof(buf), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(0);
		uint8_t ack[PROTO_SHARE_HDR] = {0};
		if (n >= PROTO_SHARE_HDR)
			memcpy(ack, buf, 8);
		size_t asked = 0;
		long long t0 = util_now_ms();
		/* Read at each batch: bench/fs-knobs turns it off and on. */
		env.rdl = fuse_param_set("reval_drops_listing");
		int r = sharesync_apply(rootfd, &env, buf, (size_t)n, &asked);
		glog("share sync: %zd bytes, %zu revalidated, %lld ms", n,
		     asked, util_now_ms() - t0);
		if (r < 0) {
			glog_always("share sync: bad batch from the host: %s",
				    strerror(-r));
			ack[8] = 1;
		}
		if (send(sock, ack, sizeof(ack), MSG_NOSIGNAL) < 0)
			_exit(1);
	}
}

int sharesync_start(const char *root, pid_t *pid, struct ccvm_err *err)
{
	int sv[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return ccvm_err_sys(err, errno, "share sync: socketpair");
	*pid = fork();
	if (*pid < 0) {
		int e = errno;
		close(sv[0]);
		close(sv[1]);
		return ccvm_err_sys(err, e, "share sync: fork");
	}
	if (*pid == 0) {
		/* Only its socket: not the port, not the program's pty. */
		glog_set_writer(NULL);
		prctl(PR_SET_NAME, "ccvm-sharesync");
		if (dup2(sv[1], 3) < 0)
			_exit(1);
		syscall(SYS_close_range, 4, ~0u, 0);
		worker(3, root);
	}
	close(sv[1]);
	util_set_nonblock(sv[0], true);
	return sv[0];
}
