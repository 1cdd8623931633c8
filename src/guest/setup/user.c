#define _GNU_SOURCE
#include "setup/user.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define ACCOUNT_FILE_MAX (4 * 1024 * 1024)

/* A growable output string. */
struct sbuf {
	char *s;
	size_t len, cap;
	bool oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t len)
{
	if (b->oom)
		return;
	if (len > SIZE_MAX / 4 - b->len) { /* the doubling below overflows */
		b->oom = true;
		return;
	}
	if (!b->s || b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (b->len + len + 1 > cap)
			cap *= 2;
		char *n = realloc(b->s, cap);
		if (!n) {
			b->oom = true;
			return;
		}
		b->s = n;
		b->cap = cap;
	}
	if (len)
		memcpy(b->s + b->len, s, len);
	b->len += len;
	b->s[b->len] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_add(b, s, strlen(s));
}

static int sb_finish(struct sbuf *b, char **out)
{
	if (!b->oom && !b->s)
		sb_add(b, "", 0);
	if (b->oom) {
		free(b->s);
		return -ENOMEM;
	}
	*out = b->s;
	return 0;
}

/* Field i (0-based, ':'-separated) of line [l, l+len): pointer and length. */
static bool field(const char *l, size_t len, unsigned i, const char **f,
		  size_t *flen)
{
	const char *end = l + len;
	const char *p = l;
	for (unsigned k = 0; k < i; k++) {
		const char *c = memchr(p, ':', (size_t)(end - p));
		if (!c)
			return false;
		p = c + 1;
	}
	const char *c = memchr(p, ':', (size_t)(end - p));
	*f = p;
	*flen = c ? (size_t)(c - p) : (size_t)(end - p);
	return true;
}

static bool field_is(const char *l, size_t len, unsigned i, const char *want)
{
	const char *f;
	size_t fl;
	return field(l, len, i, &f, &fl) && fl == strlen(want) &&
	       !memcmp(f, want, fl);
}

/* Steps *pos to the next line: its start and length without '\n'. */
static bool next_line(const char **pos, const char **line, size_t *len)
{
	const char *p = *pos;
	if (*p == '\0')
		return false;
	const char *nl = strchr(p, '\n');
	*line = p;
	*len = nl ? (size_t)(nl - p) : strlen(p);
	*pos = nl ? nl + 1 : p + *len;
	return true;
}

static void add_line(struct sbuf *b, const char *l, size_t len)
{
	sb_add(b, l, len);
	sb_add(b, "\n", 1);
}

int user_passwd_edit(const char *old, const struct guest_setup *s, char **out)
{
	char uid[16];
	snprintf(uid, sizeof(uid), "%u", (unsigned)s->uid);
	struct sbuf b = {0};
	size_t len;
	for (const char *pos = old, *l; next_line(&pos, &l, &len);) {
		if (len == 0)
			continue;
		if (field_is(l, len, 0, s->user) ||
		    (s->uid != 0 && field_is(l, len, 2, uid)))
			continue;
		add_line(&b, l, len);
	}
	char *line =
	    util_asprintf("%s:x:%u:%u:%s:%s:/bin/bash\n", s->user,
			  (unsigned)s->uid, (unsigned)s->gid, s->user, s->home);
	if (!line) {
		free(b.s);
		return -ENOMEM;
	}
	sb_str(&b, line);
	free(line);
	return sb_finish(&b, out);
}

int user_group_edit(const char *old, const struct guest_setup *s, char **out)
{
	char gid[16];
	snprintf(gid, sizeof(gid), "%u", (unsigned)s->gid);
	bool have_gid = false;
	size_t len;
	for (const char *pos = old, *l; next_line(&pos, &l, &len);) {
		if (len && field_is(l, len, 2, gid))
			have_gid = true;
	}
	struct sbuf b = {0};
	for (const char *pos = old, *l; next_line(&pos, &l, &len);) {
		if (len == 0)
			continue;
		if (!have_gid && field_is(l, len, 0, s->user))
			continue;
		if (!field_is(l, len, 0, USER_SUDO_GROUP)) {
			add_line(&b, l, len);
			continue;
		}
		const char *mem;
		size_t ml;
		if (!field(l, len, 3, &mem, &ml)) {
			add_line(&b, l, len); /* malformed: leave it */
			continue;
		}
		bool member = false;
		for (const char *m = mem; m < mem + ml;) {
			const char *c = memchr(m, ',', (size_t)(mem + ml - m));
			size_t n = c ? (size_t)(c - m) : (size_t)(mem + ml - m);
			if (n == strlen(s->user) && !memcmp(m, s->user, n))
				member = true;
			m += n + 1;
		}
		sb_add(&b, l, len);
		if (!member) {
			if (ml)
				sb_add(&b, ",", 1);
			sb_str(&b, s->user);
		}
		sb_add(&b, "\n", 1);
	}
	if (!have_gid) {
		sb_str(&b, s->user);
		sb_str(&b, ":x:");
		sb_str(&b, gid);
		sb_str(&b, ":\n");
	}
	return sb_finish(&b, out);
}

int user_shadow_edit(const char *old, const struct guest_setup *s, char **out)
{
	struct sbuf b = {0};
	size_t len;
	for (const char *pos = old, *l; next_line(&pos, &l, &len);) {
		if (len == 0 || field_is(l, len, 0, s->user))
			continue;
		add_line(&b, l, len);
	}
	sb_str(&b, s->user);
	sb_str(&b, ":!:19000:0:99999:7:::\n");
	return sb_finish(&b, out);
}

static bool parse_id(const char *f, size_t len, unsigned long *out)
{
	if (len == 0 || len > 10)
		return false;
	unsigned long v = 0;
	for (size_t i = 0; i < len; i++) {
		if (f[i] < '0' || f[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(f[i] - '0');
	}
	*out = v;
	return true;
}

size_t user_groups(const char *group, const char *name, gid_t gid, gid_t *out,
		   size_t max)
{
	size_t n = 0;
	if (max == 0)
		return 0;
	out[n++] = gid;
	size_t len;
	for (const char *pos = group, *l; next_line(&pos, &l, &len);) {
		const char *mem, *gf;
		size_t ml, gl;
		unsigned long g;
		if (!field(l, len, 3, &mem, &ml) ||
		    !field(l, len, 2, &gf, &gl) || !parse_id(gf, gl, &g) ||
		    (gid_t)g == gid)
			continue;
		for (const char *m = mem; m < mem + ml && n < max;) {
			const char *c = memchr(m, ',', (size_t)(mem + ml - m));
			size_t k = c ? (size_t)(c - m) : (size_t)(mem + ml - m);
			if (k == strlen(name) && !memcmp(m, name, k)) {
				out[n++] = (gid_t)g;
				break;
			}
			m += k + 1;
		}
	}
	return n;
}

/* Replaces path with content, keeping the old file's mode and owner. */
static int replace_file(const char *path, const char *content,
			struct ccvm_err *err)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return ccvm_err_sys(err, errno, "%s", path);
	autofree char *tmp = util_asprintf("%s.ccvm-new", path);
	if (!tmp)
		return ccvm_err_sys(err, ENOMEM, "%s", path);
	autoclose int fd =
	    open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
		 st.st_mode & 07777);
	if (fd < 0)
		return ccvm_err_sys(err, errno, "%s", tmp);
	int r = util_write_all(fd, content, strlen(content));
	if (r == 0 && fchown(fd, st.st_uid, st.st_gid) < 0)
		r = -errno;
	if (r == 0 && fchmod(fd, st.st_mode & 07777) < 0)
		r = -errno;
	if (r == 0 && rename(tmp, path) < 0)
		r = -errno;
	if (r < 0) {
		unlink(tmp);
		return ccvm_err_sys(err, -r, "%s", path);
	}
	return 0;
}

typedef int (*edit_fn)(const char *, const struct guest_setup *, char **);

static int edit_file(const char *root, const char *name, edit_fn fn,
		     const struct guest_setup *s, bool optional,
		     struct ccvm_err *err)
{
	autofree char *path = util_path_join(root, name);
	if (!path)
		return ccvm_err_sys(err, errno, "%s/%s", root, name);
	autofree char *old = NULL;
	if (optional && access(path, F_OK) < 0 && errno == ENOENT)
		return 0;
	int r = util_read_file(path, ACCOUNT_FILE_MAX, &old, NULL, err);
	if (r < 0)
		return r;
	autofree char *new = NULL;
	if ((r = fn(old, s, &new)) < 0)
		return ccvm_err_sys(err, -r, "%s", path);
	return replace_file(path, new, err);
}

int user_mkdir_owned(const char *path, const char *base, mode_t mode, uid_t uid,
		     gid_t gid, struct ccvm_err *err)
{
	char buf[PATH_MAX];
	if (util_strlcpy(buf, path, sizeof(buf)) < 0 || buf[0] != '/')
		return ccvm_err_set(err, EINVAL, "%s: bad path", path);
	size_t bl = strlen(base);
	bool base_ok =
	    !strncmp(path, base, bl) && (path[bl] == '/' || path[bl] == '\0');
	size_t total = strlen(buf);
	for (size_t i = 1; i <= total; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		char saved = buf[i];
		buf[i] = '\0';
		bool below = base_ok && i > bl;
		if (mkdir(buf, below ? mode : 0755) == 0) {
			if (below && chown(buf, uid, gid) < 0)
				return ccvm_err_sys(err, errno, "chown %s",
						    buf);
			if (below && chmod(buf, mode) < 0)
				return ccvm_err_sys(err, errno, "chmod %s",
						    buf);
		} else if (errno != EEXIST) {
			return ccvm_err_sys(err, errno, "mkdir %s", buf);
		}
		buf[i] = saved;
	}
	return 0;
}

int user_create(const char *root, const struct guest_setup *s,
		struct ccvm_err *err)
{
	int r;
	if (s->uid != 0) {
		if ((r = edit_file(root, "etc/passwd", user_passwd_edit, s,
				   false, err)) < 0)
			return r;
		if ((r = edit_file(root, "etc/shadow", user_shadow_edit, s,
				   true, err)) < 0)
			return r;
	}
	if ((r = edit_file(root, "etc/group", user_group_edit, s, false, err)) <
	    0)
		return r;
	autofree char *home = util_path_join(root, s->home + 1);
	if (!home)
		return ccvm_err_sys(err, errno, "%s", s->home);
	autofree char *parent = strdup(home);
	if (!parent)
		return ccvm_err_sys(err, ENOMEM, "%s", home);
	char *slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		if ((r = util_mkdir_p(parent, 0755)) < 0)
			return ccvm_err_sys(err, -r, "mkdir %s", parent);
	}
	if (mkdir(home, 0700) < 0 && errno != EEXIST)
		return ccvm_err_sys(err, errno, "mkdir %s", home);
	if (chown(home, s->uid, s->gid) < 0 || chmod(home, 0700) < 0)
		return ccvm_err_sys(err, errno, "%s", home);
	return 0;
}

int user_write_file(const struct guest_setup *s, const char *rel, uint32_t mode,
		    bool append, const void *data, size_t len,
		    struct ccvm_err *err)
{
	autofree char *path = util_path_join(s->home, rel);
	if (!path)
		return ccvm_err_set(
		    err, EINVAL, "FILE %s: must be relative without '..'", rel);
	autofree char *dir = strdup(path);
	if (!dir)
		return ccvm_err_sys(err, ENOMEM, "%s", path);
	*strrchr(dir, '/') = '\0';
	int r = user_mkdir_owned(dir, s->home, 0700, s->uid, s->gid, err);
	if (r < 0)
		return r;
	autoclose int fd =
	    open(path,
		 O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC) |
		     O_NOFOLLOW | O_CLOEXEC,
		 0600);
	if (fd < 0)
		return ccvm_err_sys(err, errno, "FILE %s", path);
	if ((r = util_write_all(fd, data, len)) < 0)
		return ccvm_err_sys(err, -r, "FILE %s", path);
	if (fchown(fd, s->uid, s->gid) < 0 || fchmod(fd, mode & 07777) < 0)
		return ccvm_err_sys(err, errno, "FILE %s", path);
	return 0;
}
