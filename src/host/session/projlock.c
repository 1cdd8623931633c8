/* Sessions sharing a project directory (projlock.h). */
#define _GNU_SOURCE
#include "session/projlock.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "image/image_build.h"
#include "net/audit.h"
#include "term/say.h"
#include "util.h"

/* Held until ccvm exits (the kernel drops the lock then). */
static int held = -1;

int projlock_path(const char *cwd, char *out, size_t n)
{
	char base[PATH_MAX];
	const char *rt = getenv("XDG_RUNTIME_DIR");
	int r;
	if (rt && rt[0] == '/' && access(rt, W_OK | X_OK) == 0) {
		r = snprintf(base, sizeof(base), "%s/ccvm", rt);
	} else {
		struct ccvm_err e = {0};
		if (audit_dir(base, sizeof(base), &e) < 0)
			return -ENOENT;
		r = (int)strlen(base);
	}
	char h[65];
	image_sha256_hex(cwd, strlen(cwd), h);
	h[32] = '\0';
	if (r < 0 || (size_t)r >= sizeof(base) ||
	    snprintf(out, n, "%s/projects/%s.lock", base, h) >= (int)n)
		return -ENAMETOOLONG;
	return 0;
}

int projlock_take(const char *cwd)
{
	char p[PATH_MAX];
	int r = projlock_path(cwd, p, sizeof(p));
	if (r < 0)
		return r;
	char *slash = strrchr(p, '/');
	if (!slash)
		return -EINVAL;
	*slash = '\0';
	r = util_mkdir_p(p, 0700);
	*slash = '/';
	if (r < 0)
		return r;
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	/* Alone when it can be had exclusively; every session then keeps
	 * it shared, so that a third sees the second. */
	bool other = flock(fd, LOCK_EX | LOCK_NB) < 0;
	if (other && errno != EWOULDBLOCK) {
		r = -errno;
		close(fd);
		return r;
	}
	while (flock(fd, LOCK_SH) < 0)
		if (errno != EINTR) {
			r = -errno;
			close(fd);
			return r;
		}
	if (held >= 0)
		close(held);
	held = fd;
	char q[PATH_MAX];
	if (other)
		say("another ccvm session is using this directory (%s); both "
		    "see the same files",
		    util_escape(q, sizeof(q), cwd, false));
	return other;
}
