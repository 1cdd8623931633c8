#define _GNU_SOURCE
/* The SETUP frame's contract (setup.h). */
#include "setup.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "proto.h"
#include "util.h"

/* The keys, in the order the encoder writes them. */
enum setup_key {
	K_MODE,
	K_CWD,
	K_WRITABLE,
	K_SHARE,
	K_SHARE_SYNC,
	K_USER,
	K_UID,
	K_GID,
	K_HOME,
	K_PTY,
	K_ROWS,
	K_COLS,
	K_TERM,
	K_PROJECTS,
	K_SCRATCH,
	K_DEBUG,
	K_COUNT,
};

static const char *const key_names[K_COUNT] = {
    [K_MODE] = "mode",
    [K_CWD] = "cwd",
    [K_WRITABLE] = "writable",
    [K_SHARE] = "share",
    [K_SHARE_SYNC] = "share_sync",
    [K_USER] = "user",
    [K_UID] = "uid",
    [K_GID] = "gid",
    [K_HOME] = "home",
    [K_PTY] = "pty",
    [K_ROWS] = "rows",
    [K_COLS] = "cols",
    [K_TERM] = "term",
    [K_PROJECTS] = "projects",
    [K_SCRATCH] = "scratch",
    [K_DEBUG] = "debug",
};

#define ID_MAX 0xfffffffeL /* (uid_t)-1 means "no change" to chown(2) */

bool setup_user_name_valid(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > SETUP_NAME_MAX || name[0] == '-' || name[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '.' || c == '_' ||
			  c == '-';
		if (!ok)
			return false;
	}
	return true;
}

bool setup_abs_path_valid(const char *path)
{
	if (path[0] != '/')
		return false;
	if (path[1] == '\0')
		return true;
	for (const char *p = path; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	const char *p = path + 1;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (len == 0) /* "//" or a trailing '/' */
			return false;
		if ((len == 1 && p[0] == '.') ||
		    (len == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		if (!slash)
			return true;
		p = slash + 1;
	}
}

/* v made printable on one line for a message: control bytes become '?',
 * anything past 200 bytes "...". */
static const char *shown(const char *v, char *buf, size_t size)
{
	size_t i = 0;
	for (; v[i] && i + 4 < size && i < 200; i++)
		buf[i] =
		    (unsigned char)v[i] < 0x20 || v[i] == 0x7f ? '?' : v[i];
	if (v[i])
		memcpy(buf + i, "...", 3), i += 3;
	buf[i] = '\0';
	return buf;
}

static int check_user(const char *user, struct ccvm_err *err)
{
	char b[256];
	size_t n = strlen(user);
	if (n == 0)
		return ccvm_err_set(err, EINVAL,
				    "the user name is empty (SETUP user)");
	if (n > SETUP_NAME_MAX)
		return ccvm_err_set(err, EINVAL,
				    "user name %s is not usable in the guest "
				    "(SETUP user: %zu bytes, at most %d)",
				    shown(user, b, sizeof(b)), n,
				    SETUP_NAME_MAX);
	if (!setup_user_name_valid(user))
		return ccvm_err_set(err, EINVAL,
				    "user name %s is not usable in the guest "
				    "(SETUP user: only letters, digits, '.', "
				    "'_' and '-', not starting with '-' or "
				    "'.')",
				    shown(user, b, sizeof(b)));
	return 0;
}

static int check_path(const char *what, enum setup_key k, const char *path,
		      struct ccvm_err *err)
{
	char b[256];
	if (!setup_abs_path_valid(path))
		return ccvm_err_set(err, EINVAL,
				    "%s %s is not usable in the guest (SETUP "
				    "%s: not an absolute path without '.', "
				    "'..', '//', a trailing '/' or control "
				    "characters)",
				    what, shown(path, b, sizeof(b)),
				    key_names[k]);
	return 0;
}

static int check_term(const char *term, struct ccvm_err *err)
{
	char b[256];
	bool ok = strlen(term) <= SETUP_TERM_MAX;
	for (const char *p = term; ok && *p; p++)
		ok = (unsigned char)*p > 0x20 && *p != 0x7f && *p != '/';
	if (!ok)
		return ccvm_err_set(err, EINVAL,
				    "TERM value %s is not usable in the guest "
				    "(SETUP term: at most %d bytes, no space, "
				    "'/' or control characters)",
				    shown(term, b, sizeof(b)), SETUP_TERM_MAX);
	return 0;
}

int setup_validate(const struct guest_setup *s, struct ccvm_err *err)
{
	int r;
	if ((r = check_path("directory", K_CWD, s->cwd, err)) < 0)
		return r;
	if (!strcmp(s->cwd, "/"))
		return ccvm_err_set(err, EINVAL,
				    "directory / is not usable in the guest "
				    "(SETUP cwd: the root directory cannot be "
				    "shared)");
	if ((r = check_user(s->user, err)) < 0 ||
	    (r = check_path("home directory", K_HOME, s->home, err)) < 0 ||
	    (r = check_term(s->term, err)) < 0)
		return r;
	if ((long)s->uid > ID_MAX)
		return ccvm_err_set(err, EINVAL,
				    "user id %lu is not usable in the guest "
				    "(SETUP uid: at most %ld)",
				    (unsigned long)s->uid, ID_MAX);
	if ((long)s->gid > ID_MAX)
		return ccvm_err_set(err, EINVAL,
				    "group id %lu is not usable in the guest "
				    "(SETUP gid: at most %ld)",
				    (unsigned long)s->gid, ID_MAX);
	return 0;
}

/* --- the encoder (host) ------------------------------------------------- */

struct out {
	uint8_t *buf;
	size_t size, len;
	bool overflow;
};

static void put(struct out *o, enum setup_key k, const char *val)
{
	const char *key = key_names[k];
	size_t kl = strlen(key), vl = strlen(val);
	if (o->overflow || kl + vl + 2 > o->size - o->len) {
		o->overflow = true;
		return;
	}
	memcpy(o->buf + o->len, key, kl);
	o->buf[o->len + kl] = '=';
	memcpy(o->buf + o->len + kl + 1, val, vl + 1);
	o->len += kl + vl + 2;
}

static void put_num(struct out *o, enum setup_key k, unsigned long v)
{
	char num[32];
	snprintf(num, sizeof(num), "%lu", v);
	put(o, k, num);
}

static void put_bool(struct out *o, enum setup_key k, bool v)
{
	put(o, k, v ? "1" : "0");
}

int setup_encode(const struct guest_setup *s, uint8_t *buf, size_t size,
		 size_t *len, struct ccvm_err *err)
{
	int r = setup_validate(s, err);
	if (r < 0)
		return r;
	struct out o = {.buf = buf, .size = size};
	put(&o, K_MODE, s->shell ? "shell" : "agent");
	put(&o, K_CWD, s->cwd);
	put_bool(&o, K_WRITABLE, s->writable);
	put(&o, K_SHARE, s->virtiofs ? "virtiofs" : "9p");
	put_bool(&o, K_SHARE_SYNC, s->share_sync);
	put(&o, K_USER, s->user);
	put_num(&o, K_UID, (unsigned long)s->uid);
	put_num(&o, K_GID, (unsigned long)s->gid);
	put(&o, K_HOME, s->home);
	put_bool(&o, K_PTY, s->pty);
	put_num(&o, K_ROWS, s->rows);
	put_num(&o, K_COLS, s->cols);
	put(&o, K_TERM, s->term);
	put_bool(&o, K_PROJECTS, s->projects);
	put_bool(&o, K_SCRATCH, s->scratch);
	put_bool(&o, K_DEBUG, s->debug);
	if (o.overflow)
		return ccvm_err_set(
		    err, E2BIG, "the session setup is over %zu bytes", size);
	*len = o.len;
	return 0;
}

/* --- the decoder (guest) ------------------------------------------------ */

static int parse_bool(enum setup_key k, const char *val, bool *out,
		      struct ccvm_err *err)
{
	if (!strcmp(val, "1"))
		*out = true;
	else if (!strcmp(val, "0"))
		*out = false;
	else
		return ccvm_err_set(err, EINVAL, "SETUP %s=%s: expected 0 or 1",
				    key_names[k], val);
	return 0;
}

static int parse_num(enum setup_key k, const char *val, long max, long *out,
		     struct ccvm_err *err)
{
	if (!util_parse_long(val, 0, max, out))
		return ccvm_err_set(err, EINVAL,
				    "SETUP %s=%s: expected an integer in "
				    "[0, %ld]",
				    key_names[k], val, max);
	return 0;
}

static int parse_str(enum setup_key k, const char *val, char *dst, size_t size,
		     struct ccvm_err *err)
{
	if (util_strlcpy(dst, val, size) < 0)
		return ccvm_err_set(err, E2BIG, "SETUP %s: over %zu bytes",
				    key_names[k], size - 1);
	return 0;
}

static int parse_choice(enum setup_key k, const char *val, const char *yes,
			const char *no, bool *out, struct ccvm_err *err)
{
	if (!strcmp(val, yes))
		*out = true;
	else if (!strcmp(val, no))
		*out = false;
	else
		return ccvm_err_set(err, EINVAL,
				    "SETUP %s=%s: expected %s or %s",
				    key_names[k], val, yes, no);
	return 0;
}

static int apply(struct guest_setup *s, enum setup_key k, const char *val,
		 struct ccvm_err *err)
{
	long n = 0;
	int r = 0;
	switch (k) {
	case K_MODE:
		return parse_choice(k, val, "shell", "agent", &s->shell, err);
	case K_SHARE:
		return parse_choice(k, val, "virtiofs", "9p", &s->virtiofs,
				    err);
	case K_CWD:
		return parse_str(k, val, s->cwd, sizeof(s->cwd), err);
	case K_HOME:
		return parse_str(k, val, s->home, sizeof(s->home), err);
	case K_USER:
		return parse_str(k, val, s->user, sizeof(s->user), err);
	case K_TERM:
		return parse_str(k, val, s->term, sizeof(s->term), err);
	case K_UID:
		r = parse_num(k, val, ID_MAX, &n, err);
		s->uid = (uid_t)n;
		return r;
	case K_GID:
		r = parse_num(k, val, ID_MAX, &n, err);
		s->gid = (gid_t)n;
		return r;
	case K_ROWS:
	case K_COLS:
		r = parse_num(k, val, 0xffff, &n, err);
		*(k == K_ROWS ? &s->rows : &s->cols) = (unsigned short)n;
		return r;
	case K_WRITABLE:
		return parse_bool(k, val, &s->writable, err);
	case K_SHARE_SYNC:
		return parse_bool(k, val, &s->share_sync, err);
	case K_PTY:
		return parse_bool(k, val, &s->pty, err);
	case K_PROJECTS:
		return parse_bool(k, val, &s->projects, err);
	case K_SCRATCH:
		return parse_bool(k, val, &s->scratch, err);
	case K_DEBUG:
		return parse_bool(k, val, &s->debug, err);
	case K_COUNT:
		break;
	}
	return -EINVAL;
}

int setup_decode(const uint8_t *data, size_t len, struct guest_setup *out,
		 struct ccvm_err *err)
{
	struct guest_setup s;
	memset(&s, 0, sizeof(s));
	char key[32];
	char val[PATH_MAX];
	size_t pos = 0;
	bool seen[K_COUNT] = {false};
	for (;;) {
		int r = proto_kv_next(data, len, &pos, key, sizeof(key), val,
				      sizeof(val));
		if (r == 0)
			break;
		if (r == -E2BIG)
			return ccvm_err_set(err, E2BIG,
					    "SETUP: entry at offset %zu too "
					    "long",
					    pos);
		if (r < 0)
			return ccvm_err_set(err, EPROTO,
					    "SETUP: malformed entry at offset "
					    "%zu",
					    pos);
		enum setup_key k = 0;
		while (k < K_COUNT && strcmp(key, key_names[k]))
			k++;
		if (k == K_COUNT)
			return ccvm_err_set(err, EINVAL,
					    "SETUP: unknown key '%s'", key);
		if (seen[k])
			return ccvm_err_set(err, EINVAL,
					    "SETUP: key '%s' given twice", key);
		seen[k] = true;
		if ((r = apply(&s, k, val, err)) < 0)
			return r;
	}
	for (enum setup_key k = 0; k < K_COUNT; k++)
		if (!seen[k])
			return ccvm_err_set(err, EINVAL,
					    "SETUP: missing key '%s'",
					    key_names[k]);
	int r = setup_validate(&s, err);
	if (r < 0)
		return r;
	if (s.rows == 0)
		s.rows = 24;
	if (s.cols == 0)
		s.cols = 80;
	*out = s;
	return 0;
}
