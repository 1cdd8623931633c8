#define _GNU_SOURCE
/* Readers of the host's Claude login and settings for the API proxy
 * (cred.h). */
#include "setup/cred.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* A buffer that held file bytes: wiped, then freed. */
static void wipe_free(char *buf, size_t cap)
{
	if (!buf)
		return;
	explicit_bzero(buf, cap);
	free(buf);
}

/*
 * The bytes of path (not followed when a symbolic link; a regular file of
 * at most CRED_FILE_MAX bytes): 0 and a malloc'ed buffer of *cap bytes
 * holding *len bytes and a NUL, for the caller to wipe_free; or -errno
 * and *why.  O_NONBLOCK so that a FIFO put there cannot block the open.
 */
static int read_bounded(const char *path, char **out, size_t *len, size_t *cap,
			const char **why)
{
	autoclose int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
					  O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		int e = errno;
		*why = e == ENOENT  ? "no such file"
		       : e == ELOOP ? "a symbolic link (refused)"
				    : "cannot be opened";
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		*why = "cannot be read";
		return -errno;
	}
	if (!S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		return -EINVAL;
	}
	if (st.st_size > CRED_FILE_MAX) {
		*why = "larger than 1 MiB";
		return -EFBIG;
	}
	/* One byte more than fstat said, to notice a file that grew. */
	size_t want = (size_t)st.st_size + 1;
	char *buf = malloc(want + 1);
	if (!buf) {
		*why = "out of memory";
		return -ENOMEM;
	}
	ssize_t n = util_read_all(fd, buf, want);
	if (n < 0 || (size_t)n == want) {
		wipe_free(buf, want + 1);
		*why = n < 0 ? "cannot be read" : "changed while being read";
		return n < 0 ? (int)n : -EAGAIN;
	}
	buf[n] = '\0';
	*out = buf;
	*len = (size_t)n;
	*cap = want + 1;
	return 0;
}

/*
 * Zeroes every string value under v (jansson holds its own copies of the
 * tokens: the access and refresh tokens, MCP servers' tokens, a settings
 * env's keys).  The bytes are jansson's malloc'ed memory, writable; only
 * free(3) reads them afterwards.  What this cannot reach: the lexer's
 * scratch buffer, which jansson frees without wiping while it parses (the
 * allocator hooks that could wipe it are process-wide, so not used here).
 */
static void wipe_strings(json_t *v)
{
	if (json_is_string(v)) {
		explicit_bzero((char *)json_string_value(v),
			       json_string_length(v));
	} else if (json_is_object(v)) {
		const char *k;
		json_t *x;
		json_object_foreach(v, k, x)
		{
			wipe_strings(x);
		}
	} else if (json_is_array(v)) {
		size_t i;
		json_t *x;
		json_array_foreach(v, i, x)
		{
			wipe_strings(x);
		}
	}
}

/*
 * path parsed: the root, or NULL (*why set).  Duplicate keys are taken
 * as JSON.parse takes them (the last wins), so ccvm reads what Claude
 * Code itself would.  The file's bytes and the parser's error text (which
 * quotes the text near the error) are wiped either way.
 */
static json_t *load(const char *path, int *err, const char **why)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int r = read_bounded(path, &buf, &len, &cap, why);
	if (r < 0) {
		*err = r;
		return NULL;
	}
	json_error_t je;
	json_t *root = json_loadb(buf, len, 0, &je);
	wipe_free(buf, cap);
	explicit_bzero(&je, sizeof(je));
	if (!root) {
		*err = -EINVAL;
		*why = "not valid JSON";
	}
	return root;
}

/* An expiresAt value: 0 for absent or null, else milliseconds > 0; -1
 * when it is not a time. */
static long long expiry_of(const json_t *e)
{
	if (!e || json_is_null(e))
		return 0;
	if (json_is_integer(e))
		return json_integer_value(e) > 0 ? json_integer_value(e) : -1;
	if (json_is_real(e)) {
		double d = json_real_value(e);
		/* Below 2^63; NaN fails both tests. */
		return d >= 1 && d < 9.2e18 ? (long long)d : -1;
	}
	return -1;
}

static int login_from_json(json_t *root, char *token, size_t tokensz,
			   long long *expires_ms, const char **why)
{
	json_t *oauth = json_object_get(root, "claudeAiOauth");
	json_t *t = json_object_get(oauth, "accessToken");
	if (!json_is_string(t) || json_string_length(t) == 0) {
		*why = "no claudeAiOauth.accessToken";
		return -ENODATA;
	}
	const char *s = json_string_value(t);
	size_t n = json_string_length(t);
	if (n >= tokensz) {
		*why = "claudeAiOauth.accessToken is too long";
		return -E2BIG;
	}
	/* It goes into a header line: no spaces, controls or non-ASCII. */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c <= 0x20 || c >= 0x7f) {
			*why = "claudeAiOauth.accessToken has spaces or "
			       "control characters";
			return -EINVAL;
		}
	}
	long long exp = expiry_of(json_object_get(oauth, "expiresAt"));
	if (exp < 0) {
		*why = "claudeAiOauth.expiresAt is not a time";
		return -EINVAL;
	}
	memcpy(token, s, n);
	token[n] = '\0';
	*expires_ms = exp;
	return 0;
}

int cred_login_read(const char *path, char *token, size_t tokensz,
		    long long *expires_ms, const char **why)
{
	int r = 0;
	json_t *root = load(path, &r, why);
	if (!root)
		return r;
	r = login_from_json(root, token, tokensz, expires_ms, why);
	wipe_strings(root);
	json_decref(root);
	return r;
}

char *cred_settings_env(const char *path, const char *name)
{
	int r = 0;
	const char *why = NULL;
	json_t *root = load(path, &r, &why);
	if (!root)
		return NULL;
	json_t *v = json_object_get(json_object_get(root, "env"), name);
	char *out = json_is_string(v) ? strdup(json_string_value(v)) : NULL;
	wipe_strings(root);
	json_decref(root);
	return out;
}
