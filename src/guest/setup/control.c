#define _GNU_SOURCE
#include "setup/control.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static void list_init(struct ctl_list *l, size_t max_count, size_t max_bytes,
		      bool secret)
{
	memset(l, 0, sizeof(*l));
	l->max_count = max_count;
	l->max_bytes = max_bytes;
	l->secret = secret;
}

static void list_free(struct ctl_list *l)
{
	if (l->data && l->secret)
		explicit_bzero(l->data, l->len);
	free(l->data);
	l->data = NULL;
	l->len = l->count = 0;
}

/* Appends s (len bytes, no NUL inside) plus a NUL. */
static int list_add(struct ctl_list *l, const uint8_t *s, size_t len)
{
	if (l->count >= l->max_count || len + 1 > l->max_bytes - l->len)
		return -E2BIG;
	/* Copy instead of realloc so a secret never lingers in freed
	 * memory; the lists are small and this happens once per item. */
	char *nb = malloc(l->len + len + 1);
	if (!nb)
		return -ENOMEM;
	if (l->len)
		memcpy(nb, l->data, l->len);
	if (len)
		memcpy(nb + l->len, s, len);
	nb[l->len + len] = '\0';
	if (l->data && l->secret)
		explicit_bzero(l->data, l->len);
	free(l->data);
	l->data = nb;
	l->len += len + 1;
	l->count++;
	return 0;
}

void ctl_init(struct ctl_state *st)
{
	memset(st, 0, sizeof(*st));
	list_init(&st->args, CTL_ARGS_MAX, CTL_ARGS_BYTES, false);
	list_init(&st->env, CTL_ENV_MAX, CTL_ENV_BYTES, false);
	list_init(&st->secrets, CTL_SECRETS_MAX, CTL_SECRETS_BYTES, true);
}

void ctl_free(struct ctl_state *st)
{
	list_free(&st->args);
	list_free(&st->env);
	list_free(&st->secrets);
}

void ctl_wipe_secrets(struct ctl_state *st)
{
	list_free(&st->secrets);
}

/* "NAME=value": non-empty name without NUL or '=' in it, no NUL at all. */
static bool env_entry_valid(const uint8_t *d, size_t len)
{
	if (memchr(d, '\0', len))
		return false;
	const uint8_t *eq = memchr(d, '=', len);
	return eq && eq != d;
}

int ctl_parse_file(const uint8_t *data, size_t len, struct ctl_file *out,
		   struct ccvm_err *err)
{
	if (len < 5)
		return ccvm_err_set(err, EPROTO, "FILE: frame too short");
	const uint8_t *path = data + 4;
	const uint8_t *nul = memchr(path, '\0', len - 4);
	if (!nul)
		return ccvm_err_set(err, EPROTO, "FILE: path not terminated");
	uint32_t mode = proto_get_u32(data);
	out->append = (mode & PROTO_FILE_APPEND) != 0;
	mode &= ~PROTO_FILE_APPEND;
	if (mode & ~07777u)
		return ccvm_err_set(err, EINVAL, "FILE %s: bad mode %#o",
				    (const char *)path, mode);
	/* The one path rule: relative, non-empty, no "..". */
	autofree char *check = util_path_join("/", (const char *)path);
	if (!check)
		return ccvm_err_set(err, EINVAL,
				    "FILE %s: path must be relative without "
				    "'..'",
				    (const char *)path);
	for (const uint8_t *p = path; p < nul; p++)
		if (*p < 0x20 || *p == 0x7f)
			return ccvm_err_set(err, EINVAL,
					    "FILE: control character in path");
	out->mode = mode;
	out->path = (const char *)path;
	out->data = nul + 1;
	out->len = len - (size_t)(nul + 1 - data);
	return 0;
}

static int store(struct ctl_list *l, const struct proto_msg *msg,
		 const char *what, struct ccvm_err *err)
{
	int r = list_add(l, msg->data, msg->len);
	if (r == -E2BIG)
		return ccvm_err_set(err, E2BIG,
				    "%s: more than %zu items or %zu bytes",
				    what, l->max_count, l->max_bytes);
	if (r < 0)
		return ccvm_err_sys(err, -r, "%s", what);
	return 0;
}

/* The first frame: HELLO with our protocol version. */
static int feed_hello(struct ctl_state *st, const struct proto_msg *msg,
		      struct ccvm_err *err)
{
	if (msg->type != PROTO_HELLO)
		return ccvm_err_set(err, EPROTO,
				    "expected HELLO from the host, got %s",
				    proto_type_name(msg->type));
	if (msg->len < 4)
		return ccvm_err_set(err, EPROTO, "HELLO too short");
	uint32_t v = proto_get_u32(msg->data);
	if (v != PROTO_VERSION)
		return ccvm_err_set(err, EPROTO,
				    "host speaks protocol %u, ccvm-init "
				    "speaks %u",
				    v, PROTO_VERSION);
	st->got_hello = true;
	return 0;
}

static int feed_file(struct ctl_state *st, const struct proto_msg *msg,
		     enum ctl_action *action, struct ctl_file *file,
		     struct ccvm_err *err)
{
	if (st->files >= CTL_FILES_MAX ||
	    msg->len > CTL_FILES_BYTES - st->file_bytes)
		return ccvm_err_set(err, E2BIG,
				    "FILE: more than %d files or %d bytes",
				    CTL_FILES_MAX, CTL_FILES_BYTES);
	int r = ctl_parse_file(msg->data, msg->len, file, err);
	if (r < 0)
		return r;
	st->files++;
	st->file_bytes += msg->len;
	*action = CTL_FILE;
	return 0;
}

int ctl_feed(struct ctl_state *st, const struct proto_msg *msg,
	     enum ctl_action *action, struct ctl_file *file,
	     struct ccvm_err *err)
{
	const char *name = proto_type_name(msg->type);
	*action = CTL_NONE;
	if (st->started)
		return ccvm_err_set(err, EPROTO, "%s after START", name);
	if (!st->got_hello)
		return feed_hello(st, msg, err);
	if (msg->type == PROTO_SETUP) {
		if (st->got_setup)
			return ccvm_err_set(err, EPROTO, "second SETUP");
		int r = setup_decode(msg->data, msg->len, &st->setup, err);
		if (r < 0)
			return r;
		st->got_setup = true;
		*action = CTL_SETUP;
		return 0;
	}
	if (msg->type == PROTO_STDIN) {
		if (msg->len > CTL_EARLY_STDIN_MAX - st->early_stdin)
			return ccvm_err_set(err, E2BIG,
					    "STDIN: more than %d bytes before "
					    "START",
					    CTL_EARLY_STDIN_MAX);
		st->early_stdin += msg->len;
		*action = CTL_STDIN;
		return 0;
	}
	if (msg->type == PROTO_SIGNAL || msg->type == PROTO_CONT)
		return 0; /* nothing runs yet */
	if (!st->got_setup && msg->type != PROTO_RESIZE)
		return ccvm_err_set(err, EPROTO, "%s before SETUP", name);
	switch (msg->type) {
	case PROTO_RESIZE:
		if (msg->len < 4)
			return ccvm_err_set(err, EPROTO, "RESIZE too short");
		if (st->got_setup) {
			uint16_t rows = proto_get_u16(msg->data);
			uint16_t cols = proto_get_u16(msg->data + 2);
			if (rows && cols) {
				st->setup.rows = rows;
				st->setup.cols = cols;
			}
		}
		return 0;
	case PROTO_ARG:
		if (memchr(msg->data, '\0', msg->len))
			return ccvm_err_set(err, EINVAL,
					    "ARG %zu contains a NUL byte",
					    st->args.count);
		return store(&st->args, msg, "ARG", err);
	case PROTO_ENV:
		if (!env_entry_valid(msg->data, msg->len))
			return ccvm_err_set(err, EINVAL,
					    "ENV %zu: not NAME=value",
					    st->env.count);
		return store(&st->env, msg, "ENV", err);
	case PROTO_SECRET:
		if (!env_entry_valid(msg->data, msg->len))
			return ccvm_err_set(err, EINVAL,
					    "SECRET %zu: not NAME=value",
					    st->secrets.count);
		return store(&st->secrets, msg, "SECRET", err);
	case PROTO_FILE:
		return feed_file(st, msg, action, file, err);
	case PROTO_START:
		if (st->args.count == 0)
			return ccvm_err_set(err, EINVAL,
					    "START without any ARG");
		st->started = true;
		*action = CTL_START;
		return 0;
	default:
		return ccvm_err_set(err, EPROTO,
				    "unexpected %s frame from the host", name);
	}
}

int ctl_argv(const struct ctl_state *st, char ***out)
{
	if (st->args.count == 0)
		return -EINVAL;
	char **v = calloc(st->args.count + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	char *p = st->args.data;
	for (size_t i = 0; i < st->args.count; i++) {
		v[i] = p;
		p += strlen(p) + 1;
	}
	*out = v;
	return 0;
}

void ctl_reader_scrub(struct proto_reader *r)
{
	size_t rest = r->len - r->off;
	memmove(r->buf, r->buf + r->off, rest);
	explicit_bzero(r->buf + rest, sizeof(r->buf) - rest);
	r->off = 0;
	r->len = rest;
}
