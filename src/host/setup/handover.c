#define _GNU_SOURCE
/* The hand-over to the guest init (handover.h). */
#include "setup/handover.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"
#include "setup.h"
#include "setup/stage.h"
#include "sys/procs.h"
#include "util.h"

/* The SETUP the guest gets for h, as the host user ccvm runs as. */
static int build_setup(const struct handover *h, struct guest_setup *s,
		       struct ccvm_err *err)
{
	memset(s, 0, sizeof(*s));
	struct passwd *pw = getpwuid(getuid());
	if (!pw)
		return ccvm_err_set(err, ENOENT,
				    "cannot find user %u in the password "
				    "database",
				    (unsigned)getuid());
	const char *term = h->term && *h->term ? h->term : "xterm-256color";
	if (util_strlcpy(s->user, pw->pw_name, sizeof(s->user)) < 0 ||
	    util_strlcpy(s->home, pw->pw_dir, sizeof(s->home)) < 0)
		return ccvm_err_set(err, ENAMETOOLONG,
				    "user name or home too long");
	if (util_strlcpy(s->cwd, h->cwd, sizeof(s->cwd)) < 0)
		return ccvm_err_set(err, ENAMETOOLONG, "directory too long");
	if (util_strlcpy(s->term, term, sizeof(s->term)) < 0)
		return ccvm_err_set(err, ENAMETOOLONG, "TERM too long");
	s->shell = h->shell;
	s->writable = h->writable;
	s->virtiofs = h->virtiofs;
	s->share_sync = h->share_sync;
	s->uid = getuid();
	s->gid = getgid();
	s->pty = h->pty;
	s->rows = h->rows > 0xffff ? 0xffff : (unsigned short)h->rows;
	s->cols = h->cols > 0xffff ? 0xffff : (unsigned short)h->cols;
	s->projects = h->projects;
	s->scratch = h->scratch;
	s->debug = h->debug;
	return 0;
}

int handover_check(const struct handover *h, struct ccvm_err *err)
{
	static struct guest_setup s; /* 8 KiB, ccvm is single-threaded */
	int r = build_setup(h, &s, err);
	if (r == 0)
		r = setup_validate(&s, err);
	return r;
}

static int queue(struct proto_writer *w, uint8_t type, const void *p, size_t n,
		 struct ccvm_err *err)
{
	int r = proto_writer_put(w, type, 0, p, n);
	if (r < 0)
		return ccvm_err_set(err, -r, "cannot queue a %s frame: %s",
				    proto_type_name(type), strerror(-r));
	return r;
}

/* The API key (or the API proxy's placeholder) as the agent's variable;
 * ccvm's copies of the credentials are wiped. */
static int queue_api_key(struct proto_writer *w, const struct handover *h,
			 bool *secrets, struct ccvm_err *err)
{
	if (!h->key) {
		procs_secret_free();
		return 0;
	}
	const char *var = h->key_env ? h->key_env : "ANTHROPIC_API_KEY";
	size_t vl = strlen(var);
	size_t n = vl + 1 + h->key_len;
	if (n > PROTO_MAX_PAYLOAD) {
		procs_secret_free();
		return ccvm_err_set(err, E2BIG, "%s is too long", h->key_var);
	}
	char *buf = malloc(n);
	if (!buf) {
		procs_secret_free();
		return ccvm_err_sys(err, ENOMEM, "the API key");
	}
	memcpy(buf, var, vl);
	buf[vl] = '=';
	memcpy(buf + vl + 1, h->key, h->key_len);
	int r = queue(w, PROTO_SECRET, buf, n, err);
	explicit_bzero(buf, n);
	free(buf);
	procs_secret_free();
	*secrets = true;
	return r;
}

/* Staged files as FILE frames: u32 mode, path, NUL, contents; a file
 * larger than one frame continues in frames with PROTO_FILE_APPEND set. */
static int queue_files(struct proto_writer *w, struct stage_list *staged,
		       bool *secrets, struct ccvm_err *err)
{
	static uint8_t frame[PROTO_MAX_PAYLOAD];
	int r = 0;
	for (size_t i = 0; i < staged->n && r == 0; i++) {
		const struct stage_file *f = &staged->v[i];
		size_t pl = strlen(f->path);
		if (4 + pl + 1 >= sizeof(frame) / 2)
			continue; /* cannot happen: paths are PATH_MAX */
		size_t room = sizeof(frame) - 4 - pl - 1, off = 0;
		uint32_t mode = f->mode & 07777;
		do {
			size_t n = f->len - off < room ? f->len - off : room;
			proto_put_u32(frame, mode);
			memcpy(frame + 4, f->path, pl + 1);
			memcpy(frame + 4 + pl + 1, f->data + off, n);
			r = queue(w, PROTO_FILE, frame, 4 + pl + 1 + n, err);
			explicit_bzero(frame + 4 + pl + 1, n);
			off += n;
			mode |= PROTO_FILE_APPEND;
		} while (r == 0 && off < f->len);
	}
	/* The contents now live in the writer, wiped once sent. */
	*secrets = true;
	stage_list_free(staged);
	return r;
}

static int queue_setup(struct proto_writer *w, const struct handover *h,
		       struct ccvm_err *err)
{
	static struct guest_setup s;
	static uint8_t frame[SETUP_MAX];
	size_t len = 0;
	int r = build_setup(h, &s, err);
	if (r < 0 ||
	    (r = setup_encode(&s, frame, sizeof(frame), &len, err)) < 0)
		return r;
	uint8_t hello[4];
	proto_put_u32(hello, PROTO_VERSION);
	if ((r = queue(w, PROTO_HELLO, hello, sizeof(hello), err)) < 0)
		return r;
	return queue(w, PROTO_SETUP, frame, len, err);
}

/* argv: the agent with its arguments, or the --shell command. */
static int queue_args(struct proto_writer *w, const struct handover *h,
		      struct ccvm_err *err)
{
	int r;
	if (h->shell) {
		if (h->argc == 0 &&
		    ((r = queue(w, PROTO_ARG, "bash", 4, err)) < 0 ||
		     (r = queue(w, PROTO_ARG, "-l", 2, err)) < 0))
			return r;
	} else if ((r = queue(w, PROTO_ARG, "claude", 6, err)) < 0) {
		return r;
	}
	for (size_t i = 0; i < h->argc; i++) {
		size_t n = strlen(h->argv[i]);
		if (n > PROTO_MAX_PAYLOAD)
			return ccvm_err_set(err, E2BIG,
					    "argument %zu is too long", i + 1);
		if ((r = queue(w, PROTO_ARG, h->argv[i], n, err)) < 0)
			return r;
	}
	return 0;
}

/* The host's terminal program, time zone, colour choice and locale
 * cross as they are, when printable and short: LANG and LC_* by name (the
 * guest keeps only the locales it has, src/guest/setup/locale.h). */
static const char *const env_pass[] = {"COLORTERM",
				       "TERM_PROGRAM",
				       "TERM_PROGRAM_VERSION",
				       "TZ",
				       "NO_COLOR",
				       "LANG",
				       "LC_ALL",
				       "LC_CTYPE",
				       "LC_NUMERIC",
				       "LC_TIME",
				       "LC_COLLATE",
				       "LC_MONETARY",
				       "LC_MESSAGES",
				       "LC_PAPER",
				       "LC_NAME",
				       "LC_ADDRESS",
				       "LC_TELEPHONE",
				       "LC_MEASUREMENT",
				       "LC_IDENTIFICATION"};

#define ENV_VALUE_MAX 256

int handover_env_value(const char *name, const char *v)
{
	bool known = false;
	for (size_t i = 0; i < ARRAY_LEN(env_pass) && !known; i++)
		known = strcmp(env_pass[i], name) == 0;
	if (!known || !v || strlen(v) > ENV_VALUE_MAX)
		return -EINVAL;
	for (const char *p = v; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return -EINVAL;
	return 0;
}

/* The environment is built, never inherited: only these cross. */
static int queue_env(struct proto_writer *w, const struct handover *h,
		     struct ccvm_err *err)
{
	int r;
	/* A default the host's LANG, when it has one, replaces. */
	if ((r = queue(w, PROTO_ENV, "LANG=C.UTF-8", 12, err)) < 0)
		return r;
	/* Nix images run nix-daemon; the agent, not trusted, goes through
	 * it (docs/options.md). */
	if (h->nix &&
	    (r = queue(w, PROTO_ENV, "NIX_REMOTE=daemon", 17, err)) < 0)
		return r;
	for (size_t i = 0; i < ARRAY_LEN(env_pass); i++) {
		const char *v = getenv(env_pass[i]);
		if (handover_env_value(env_pass[i], v) < 0)
			continue;
		autofree char *e = util_asprintf("%s=%s", env_pass[i], v);
		if (e && (r = queue(w, PROTO_ENV, e, strlen(e), err)) < 0)
			return r;
	}
	if (h->api_url) {
		autofree char *e =
		    util_asprintf("ANTHROPIC_BASE_URL=%s", h->api_url);
		if (e && (r = queue(w, PROTO_ENV, e, strlen(e), err)) < 0)
			return r;
	}
	return 0;
}

int handover_queue(struct proto_writer *w, const struct handover *h,
		   bool *secrets, struct ccvm_err *err)
{
	int r;
	if ((r = queue_setup(w, h, err)) < 0 ||
	    (r = queue_args(w, h, err)) < 0 || (r = queue_env(w, h, err)) < 0 ||
	    (r = queue_api_key(w, h, secrets, err)) < 0 ||
	    (r = queue_files(w, h->staged, secrets, err)) < 0)
		return r;
	return queue(w, PROTO_START, NULL, 0, err);
}
