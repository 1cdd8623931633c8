#define _GNU_SOURCE
#include "setup/setup.h"

#include <errno.h>
#include <string.h>

#include "proto.h"
#include "util.h"

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

static int parse_bool(const char *key, const char *val, bool *out,
		      struct ccvm_err *err)
{
	if (!strcmp(val, "1"))
		*out = true;
	else if (!strcmp(val, "0"))
		*out = false;
	else
		return ccvm_err_set(err, EINVAL, "SETUP %s=%s: expected 0 or 1",
				    key, val);
	return 0;
}

static int parse_num(const char *key, const char *val, long min, long max,
		     long *out, struct ccvm_err *err)
{
	if (!util_parse_long(val, min, max, out))
		return ccvm_err_set(err, EINVAL,
				    "SETUP %s=%s: expected an integer in "
				    "[%ld, %ld]",
				    key, val, min, max);
	return 0;
}

static int parse_path(const char *key, const char *val, char *dst, size_t dstsz,
		      struct ccvm_err *err)
{
	if (!setup_abs_path_valid(val))
		return ccvm_err_set(err, EINVAL,
				    "SETUP %s=%s: not a normalised absolute "
				    "path",
				    key, val);
	if (util_strlcpy(dst, val, dstsz) < 0)
		return ccvm_err_set(err, ENAMETOOLONG, "SETUP %s: too long",
				    key);
	return 0;
}

enum seen_bit {
	SEEN_CWD = 1 << 0,
	SEEN_USER = 1 << 1,
	SEEN_UID = 1 << 2,
	SEEN_GID = 1 << 3,
	SEEN_HOME = 1 << 4,
	SEEN_REQUIRED = (1 << 5) - 1,
};

static int apply_key(struct guest_setup *s, const char *key, const char *val,
		     unsigned *seen, struct ccvm_err *err)
{
	long n;
	int r;
	if (!strcmp(key, "mode")) {
		if (strcmp(val, "agent") && strcmp(val, "shell"))
			return ccvm_err_set(err, EINVAL,
					    "SETUP mode=%s: expected agent "
					    "or shell",
					    val);
		util_strlcpy(s->mode, val, sizeof(s->mode));
	} else if (!strcmp(key, "cwd")) {
		if ((r = parse_path(key, val, s->cwd, sizeof(s->cwd), err)))
			return r;
		if (!strcmp(s->cwd, "/"))
			return ccvm_err_set(err, EINVAL,
					    "SETUP cwd=/: cannot share the "
					    "root directory");
		*seen |= SEEN_CWD;
	} else if (!strcmp(key, "home")) {
		if ((r = parse_path(key, val, s->home, sizeof(s->home), err)))
			return r;
		*seen |= SEEN_HOME;
	} else if (!strcmp(key, "user")) {
		if (!setup_user_name_valid(val))
			return ccvm_err_set(err, EINVAL,
					    "SETUP user=%s: not a valid user "
					    "name",
					    val);
		util_strlcpy(s->user, val, sizeof(s->user));
		*seen |= SEEN_USER;
	} else if (!strcmp(key, "uid")) {
		if ((r = parse_num(key, val, 0, 0xfffffffeL, &n, err)))
			return r;
		s->uid = (uid_t)n;
		*seen |= SEEN_UID;
	} else if (!strcmp(key, "gid")) {
		if ((r = parse_num(key, val, 0, 0xfffffffeL, &n, err)))
			return r;
		s->gid = (gid_t)n;
		*seen |= SEEN_GID;
	} else if (!strcmp(key, "rows") || !strcmp(key, "cols")) {
		if ((r = parse_num(key, val, 0, 0xffff, &n, err)))
			return r;
		if (key[0] == 'r')
			s->rows = (unsigned short)n;
		else
			s->cols = (unsigned short)n;
	} else if (!strcmp(key, "term")) {
		for (const char *p = val; *p; p++)
			if ((unsigned char)*p <= 0x20 || *p == 0x7f ||
			    *p == '/')
				return ccvm_err_set(err, EINVAL,
						    "SETUP term: invalid "
						    "character");
		if (util_strlcpy(s->term, val, sizeof(s->term)) < 0)
			return ccvm_err_set(err, E2BIG, "SETUP term: too long");
	} else if (!strcmp(key, "writable")) {
		return parse_bool(key, val, &s->writable, err);
	} else if (!strcmp(key, "share")) {
		if (!strcmp(val, "virtiofs"))
			s->virtiofs = true;
		else if (!strcmp(val, "9p"))
			s->virtiofs = false;
		else
			return ccvm_err_set(err, EINVAL,
					    "SETUP share: expected virtiofs "
					    "or 9p");
	} else if (!strcmp(key, "share_sync")) {
		return parse_bool(key, val, &s->share_sync, err);
	} else if (!strcmp(key, "pty")) {
		return parse_bool(key, val, &s->pty, err);
	} else if (!strcmp(key, "projects")) {
		return parse_bool(key, val, &s->projects, err);
	} else if (!strcmp(key, "scratch")) {
		return parse_bool(key, val, &s->scratch, err);
	} else if (!strcmp(key, "debug")) {
		return parse_bool(key, val, &s->debug, err);
	} else {
		return ccvm_err_set(err, EINVAL, "SETUP: unknown key '%s'",
				    key);
	}
	return 0;
}

int setup_parse(const uint8_t *data, size_t len, struct guest_setup *out,
		struct ccvm_err *err)
{
	struct guest_setup s;
	memset(&s, 0, sizeof(s));
	util_strlcpy(s.mode, "agent", sizeof(s.mode));
	util_strlcpy(s.term, "xterm-256color", sizeof(s.term));
	s.writable = true;
	s.pty = true;
	s.rows = 24;
	s.cols = 80;

	char key[32];
	char val[PATH_MAX];
	size_t pos = 0;
	unsigned seen = 0;
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
		if ((r = apply_key(&s, key, val, &seen, err)) < 0)
			return r;
	}
	if ((seen & SEEN_REQUIRED) != SEEN_REQUIRED)
		return ccvm_err_set(err, EINVAL, "SETUP: missing %s",
				    !(seen & SEEN_CWD)	  ? "cwd"
				    : !(seen & SEEN_USER) ? "user"
				    : !(seen & SEEN_UID)  ? "uid"
				    : !(seen & SEEN_GID)  ? "gid"
							  : "home");
	if (s.rows == 0)
		s.rows = 24;
	if (s.cols == 0)
		s.cols = 80;
	*out = s;
	return 0;
}
