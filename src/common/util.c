#define _GNU_SOURCE
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void util_freep(void *p)
{
	free(*(void **)p);
}

void util_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

void util_fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

int util_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

ssize_t util_read_all(int fd, void *buf, size_t len)
{
	char *p = buf;
	size_t got = 0;
	while (got < len) {
		ssize_t n = read(fd, p + got, len - got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	return (ssize_t)got;
}

ssize_t util_send_fd(int sock, const void *buf, size_t len, int fd)
{
	char ctl[CMSG_SPACE(sizeof(int))];
	memset(ctl, 0, sizeof(ctl));
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr m = {.msg_iov = &iov,
			   .msg_iovlen = 1,
			   .msg_control = ctl,
			   .msg_controllen = sizeof(ctl)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
	ssize_t w = sendmsg(sock, &m, MSG_NOSIGNAL);
	return w < 0 ? -errno : w;
}

int util_read_file(const char *path, size_t max, char **out, size_t *out_len,
		   struct ccvm_err *err)
{
	autoclose int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return ccvm_err_sys(err, errno, "%s", path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		return ccvm_err_sys(err, errno, "%s", path);
	if (!S_ISREG(st.st_mode))
		return ccvm_err_set(err, EINVAL, "%s: not a regular file",
				    path);
	if ((unsigned long long)st.st_size > max)
		return ccvm_err_set(err, EFBIG, "%s: larger than %zu bytes",
				    path, max);
	autofree char *buf = malloc((size_t)st.st_size + 1);
	if (!buf)
		return ccvm_err_sys(err, ENOMEM, "%s", path);
	/* Read one byte past the stat size to notice a growing file. */
	ssize_t n = util_read_all(fd, buf, (size_t)st.st_size);
	if (n < 0)
		return ccvm_err_sys(err, (int)-n, "%s", path);
	buf[n] = '\0';
	if (out_len)
		*out_len = (size_t)n;
	*out = steal_ptr(&buf);
	return 0;
}

char *util_asprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	return n < 0 ? NULL : s;
}

int util_strlcpy(char *dst, const char *src, size_t n)
{
	if (n == 0)
		return -ENAMETOOLONG;
	size_t len = strlen(src);
	if (len >= n) {
		memcpy(dst, src, n - 1);
		dst[n - 1] = '\0';
		return -ENAMETOOLONG;
	}
	memcpy(dst, src, len + 1);
	return 0;
}

static bool has_dotdot(const char *rel)
{
	const char *p = rel;
	while (*p) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return true;
		if (!slash)
			break;
		p = slash + 1;
	}
	return false;
}

char *util_path_join(const char *base, const char *rel)
{
	if (!base || !rel || rel[0] == '\0' || rel[0] == '/' ||
	    has_dotdot(rel)) {
		errno = EINVAL;
		return NULL;
	}
	size_t bl = strlen(base);
	while (bl > 1 && base[bl - 1] == '/')
		bl--;
	char *s = util_asprintf("%.*s%s%s", (int)bl, base,
				(bl == 1 && base[0] == '/') ? "" : "/", rel);
	if (s && strlen(s) >= PATH_MAX) {
		free(s);
		errno = ENAMETOOLONG;
		return NULL;
	}
	return s;
}

int util_mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	if (util_strlcpy(buf, path, sizeof(buf)) < 0)
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int rm_rf_at(int dirfd, const char *name, dev_t dev)
{
	struct stat st;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
			return -errno;
		return 0;
	}
	if (st.st_dev != dev)
		return -EXDEV;
	int fd = openat(dirfd, name,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	DIR *d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		return -e;
	}
	int ret = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		int r = rm_rf_at(fd, de->d_name, dev);
		if (r < 0 && ret == 0)
			ret = r;
	}
	closedir(d);
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT &&
	    ret == 0)
		ret = -errno;
	return ret;
}

int util_rm_rf(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	return rm_rf_at(AT_FDCWD, path, st.st_dev);
}

bool util_parse_long(const char *s, long min, long max, long *out)
{
	if (!s || !*s)
		return false;
	/* No leading blanks, signs other than '-' only, nothing trailing. */
	if (!(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
		return false;
	errno = 0;
	char *end;
	long v = strtol(s, &end, 10);
	if (errno || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

int util_set_nonblock(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0)
		return -errno;
	fl = on ? (fl | O_NONBLOCK) : (fl & ~O_NONBLOCK);
	return fcntl(fd, F_SETFL, fl) < 0 ? -errno : 0;
}

int util_set_cloexec(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFD);
	if (fl < 0)
		return -errno;
	fl = on ? (fl | FD_CLOEXEC) : (fl & ~FD_CLOEXEC);
	return fcntl(fd, F_SETFD, fl) < 0 ? -errno : 0;
}

void *util_regrow(void *old, size_t keep, size_t wipe, size_t cap)
{
	void *nb = malloc(cap);
	if (!nb)
		return NULL;
	if (old) {
		memcpy(nb, old, keep);
		explicit_bzero(old, wipe);
		free(old);
	}
	return nb;
}

bool util_child_dies_with(pid_t parent)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	return getppid() == parent;
}

long long util_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *util_escape(char *buf, size_t n, const char *s, bool quote)
{
	size_t o = 0;
	if (n < 32) {
		if (n)
			buf[0] = '\0';
		return buf;
	}
	const size_t keep = n - 16;
	if (quote && o + 1 < n)
		buf[o++] = '"';
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (o >= keep) {
			memcpy(buf + o, "...", 3);
			o += 3;
			break;
		}
		if (*p == '\n' || *p == '\t' || *p == '\\' ||
		    (quote && *p == '"')) {
			buf[o++] = '\\';
			buf[o++] = *p == '\n'	? 'n'
				   : *p == '\t' ? 't'
						: (char)*p;
		} else if (*p < 0x20 || *p >= 0x7f) {
			o += (size_t)snprintf(buf + o, n - o, "\\x%02x", *p);
		} else {
			buf[o++] = (char)*p;
		}
	}
	if (quote && o + 1 < n)
		buf[o++] = '"';
	buf[o < n ? o : n - 1] = '\0';
	return buf;
}

#define CLAUDE_NAME_MAX 200

/* One UTF-8 character at p: its code point and length; U+FFFD and 1 for a
 * byte that does not start a well-formed sequence. */
static size_t utf8_next(const unsigned char *p, uint32_t *cp)
{
	size_t len = p[0] < 0x80   ? 1
		     : p[0] < 0xc2 ? 0
		     : p[0] < 0xe0 ? 2
		     : p[0] < 0xf0 ? 3
		     : p[0] < 0xf5 ? 4
				   : 0;
	uint32_t v = len == 1	? p[0]
		     : len == 2 ? p[0] & 0x1fu
		     : len == 3 ? p[0] & 0x0fu
				: p[0] & 0x07u;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80) {
			len = 0;
			break;
		}
		v = v << 6 | (p[i] & 0x3fu);
	}
	static const uint32_t min[] = {0, 0, 0x80, 0x800, 0x10000};
	if (len == 0 || v < min[len] || v > 0x10ffff ||
	    (v >= 0xd800 && v < 0xe000)) {
		*cp = 0xfffd;
		return 1;
	}
	*cp = v;
	return len;
}

char *util_claude_project_name(const char *path)
{
	size_t n = strlen(path);
	char *out = malloc(n + 16);
	if (!out)
		return NULL;
	uint32_t h = 0;
	size_t o = 0;
	const unsigned char *p = (const unsigned char *)path;
	while (*p) {
		uint32_t cp, units[2];
		p += utf8_next(p, &cp);
		size_t k = 1;
		units[0] = cp;
		if (cp >= 0x10000) {
			units[0] = 0xd800 + ((cp - 0x10000) >> 10);
			units[1] = 0xdc00 + ((cp - 0x10000) & 0x3ff);
			k = 2;
		}
		for (size_t i = 0; i < k; i++) {
			uint32_t u = units[i];
			h = h * 31 + u;
			bool alnum = (u >= '0' && u <= '9') ||
				     (u >= 'a' && u <= 'z') ||
				     (u >= 'A' && u <= 'Z');
			out[o++] = alnum ? (char)u : '-';
		}
	}
	out[o] = '\0';
	if (o <= CLAUDE_NAME_MAX)
		return out;
	int32_t sh = (int32_t)h;
	uint32_t a = sh < 0 ? 0u - (uint32_t)sh : (uint32_t)sh;
	char digits[8];
	size_t d = 0;
	do {
		digits[d++] = "0123456789abcdefghijklmnopqrstuvwxyz"[a % 36];
		a /= 36;
	} while (a);
	o = CLAUDE_NAME_MAX;
	out[o++] = '-';
	while (d)
		out[o++] = digits[--d];
	out[o] = '\0';
	return out;
}
