#define _GNU_SOURCE
#include "term/clipboard.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys/hostpath.h"
#include "sys/spawn.h"
#include "util.h"

#define READ_CHUNK (64 * 1024)

static const char *const image_types[] = {
    "image/png", "image/jpeg", "image/jpg",
    "image/gif", "image/webp", "image/bmp",
};

bool clip_mime_allowed(const char *mime)
{
	for (size_t i = 0; i < ARRAY_LEN(image_types); i++)
		if (!strcmp(mime, image_types[i]))
			return true;
	return false;
}

size_t clip_filter_targets(const char *in, size_t len, char *out, size_t outsz)
{
	size_t n = 0;
	bool seen[ARRAY_LEN(image_types)] = {false};
	const char *p = in, *end = in + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t ll = nl ? (size_t)(nl - p) : (size_t)(end - p);
		const char *line = p;
		p += ll + (nl ? 1 : 0);
		if (ll && line[ll - 1] == '\r')
			ll--;
		for (size_t i = 0; i < ARRAY_LEN(image_types); i++) {
			size_t tl = strlen(image_types[i]);
			if (seen[i] || ll != tl ||
			    memcmp(line, image_types[i], tl) != 0)
				continue;
			if (n + tl + 1 > outsz)
				return n;
			memcpy(out + n, image_types[i], tl);
			out[n + tl] = '\n';
			n += tl + 1;
			seen[i] = true;
		}
	}
	return n;
}

static bool starts(const uint8_t *d, size_t len, const char *sig, size_t sl)
{
	return len >= sl && memcmp(d, sig, sl) == 0;
}

bool clip_magic_ok(const char *mime, const uint8_t *d, size_t len)
{
	if (!strcmp(mime, "image/png"))
		return starts(d, len, "\x89PNG\r\n\x1a\n", 8);
	if (!strcmp(mime, "image/jpeg") || !strcmp(mime, "image/jpg"))
		return starts(d, len, "\xff\xd8\xff", 3);
	if (!strcmp(mime, "image/gif"))
		return starts(d, len, "GIF87a", 6) ||
		       starts(d, len, "GIF89a", 6);
	if (!strcmp(mime, "image/webp"))
		return len >= 12 && starts(d, len, "RIFF", 4) &&
		       memcmp(d + 8, "WEBP", 4) == 0;
	if (!strcmp(mime, "image/bmp"))
		return len >= 14 && starts(d, len, "BM", 2);
	return false;
}

enum clip_backend clip_backend_choose(const char *wayland, const char *display)
{
	if (wayland && *wayland)
		return CLIP_BACKEND_WAYLAND;
	if (display && *display)
		return CLIP_BACKEND_X11;
	return CLIP_BACKEND_NONE;
}

void clip_argv_build(enum clip_backend b, const char *tool,
		     const struct proto_clip_req *q,
		     const char *argv[CLIP_ARGV_MAX])
{
	size_t n = 0;
	argv[n++] = tool;
	bool list = q->op == PROTO_CLIP_TARGETS;
	if (b == CLIP_BACKEND_WAYLAND) {
		if (list) {
			argv[n++] = "--list-types";
		} else {
			argv[n++] = "--no-newline";
			argv[n++] = "--type";
			argv[n++] = q->mime;
		}
	} else {
		argv[n++] = "-selection";
		argv[n++] = "clipboard";
		argv[n++] = "-o";
		argv[n++] = "-t";
		argv[n++] = list ? "TARGETS" : q->mime;
	}
	argv[n] = NULL;
}

static bool env_value_ok(const char *v, size_t room)
{
	size_t n = strnlen(v, room);
	if (n >= room)
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return false;
	return true;
}

void clip_envp_build(enum clip_backend b, const char *(*get)(const char *),
		     struct clip_envp *e)
{
	static const char *const wl[] = {"WAYLAND_DISPLAY", "XDG_RUNTIME_DIR"};
	static const char *const x11[] = {"DISPLAY", "XAUTHORITY", "HOME"};
	size_t n = 0;
	util_strlcpy(e->buf[n++], "PATH=/usr/bin:/bin", CLIP_ENV_LEN);
	util_strlcpy(e->buf[n++], "LC_ALL=C", CLIP_ENV_LEN);
	const char *const *names = b == CLIP_BACKEND_WAYLAND ? wl : x11;
	size_t count =
	    b == CLIP_BACKEND_WAYLAND ? ARRAY_LEN(wl) : ARRAY_LEN(x11);
	for (size_t i = 0; i < count && b != CLIP_BACKEND_NONE; i++) {
		const char *v = get(names[i]);
		size_t nl = strlen(names[i]);
		if (!v || !*v || !env_value_ok(v, CLIP_ENV_LEN - nl - 1))
			continue;
		memcpy(e->buf[n], names[i], nl);
		e->buf[n][nl] = '=';
		util_strlcpy(e->buf[n] + nl + 1, v, CLIP_ENV_LEN - nl - 1);
		n++;
	}
	for (size_t i = 0; i < n; i++)
		e->v[i] = e->buf[i];
	e->v[n] = NULL;
}

/* --- the running request --------------------------------------------- */

void clip_init(struct clip *c, bool enabled, const char *wayland,
	       const char *display)
{
	memset(c, 0, sizeof(*c));
	c->enabled = enabled;
	c->backend = clip_backend_choose(wayland, display);
	c->fd = -1;
	struct ccvm_err err = {0};
	if (enabled && c->backend != CLIP_BACKEND_NONE &&
	    hostpath_tool(c->backend == CLIP_BACKEND_WAYLAND ? "wl-paste"
							     : "xclip",
			  c->backend == CLIP_BACKEND_WAYLAND ? CLIP_ENV_WL_PASTE
							     : CLIP_ENV_XCLIP,
			  c->tool, &err) < 0)
		c->tool[0] = '\0';
}

static void reset(struct clip *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->buf) {
		explicit_bzero(c->buf, c->len);
		free(c->buf);
	}
	c->buf = NULL;
	c->len = c->cap = c->sent = 0;
	c->busy = c->answering = false;
	c->overflow = c->timed_out = false;
	c->proc.pid = 0;
	c->proc.reaped = false;
}

void clip_free(struct clip *c)
{
	spawn_kill(&c->proc);
	reset(c);
}

static void answer_now(struct proto_writer *w, uint16_t chan, uint8_t status)
{
	proto_writer_put(w, PROTO_CLIP_END, chan, &status, 1);
}

static const char *const_getenv(const char *name)
{
	return getenv(name);
}

static int spawn_tool(struct clip *c, const char *tool)
{
	const char *argv[CLIP_ARGV_MAX];
	clip_argv_build(c->backend, tool, &c->req, argv);
	static struct clip_envp env;
	clip_envp_build(c->backend, const_getenv, &env);
	static const struct spawn_fd fds[] = {
	    {0, SPAWN_NULL}, {1, SPAWN_PIPE}, {2, SPAWN_NULL}};
	/* Out of the terminal's process group; the session reaps it
	 * (clip_on_sigchld, spawn_kill). */
	struct spawn_opts o = {.argv = argv,
			       .envp = (const char *const *)env.v,
			       .fds = fds,
			       .n_fds = ARRAY_LEN(fds),
			       .new_pgrp = true};
	struct spawn_child sc;
	struct ccvm_err err = {0};
	int r = spawn_start(&o, &sc, &err);
	if (r < 0)
		return r;
	util_set_nonblock(sc.pipe[1], true);
	c->proc = sc;
	c->fd = sc.pipe[1];
	return 0;
}

void clip_request(struct clip *c, uint16_t chan, const uint8_t *p, size_t len,
		  struct proto_writer *w)
{
	struct proto_clip_req q;
	if (!c->enabled || proto_clip_req_decode(p, len, &q) < 0 ||
	    (q.op == PROTO_CLIP_GET && !clip_mime_allowed(q.mime))) {
		answer_now(w, chan, PROTO_CLIP_NONE);
		return;
	}
	if (c->busy || c->backend == CLIP_BACKEND_NONE) {
		answer_now(w, chan,
			   c->busy ? PROTO_CLIP_FAILED : PROTO_CLIP_NONE);
		return;
	}
	if (c->tool[0] != '/') {
		answer_now(w, chan, PROTO_CLIP_FAILED);
		return;
	}
	c->req = q;
	c->chan = chan;
	if (spawn_tool(c, c->tool) < 0) {
		reset(c);
		answer_now(w, chan, PROTO_CLIP_FAILED);
		return;
	}
	c->busy = true;
	c->deadline = util_now_ms() + CLIP_TOOL_TIMEOUT_MS;
}

int clip_fd(const struct clip *c)
{
	return c->busy && !c->answering ? c->fd : -1;
}

int clip_timeout_ms(const struct clip *c, long long now)
{
	if (!c->busy || c->answering)
		return -1;
	return c->deadline > now ? (int)(c->deadline - now) : 0;
}

void clip_on_readable(struct clip *c)
{
	while (c->fd >= 0) {
		if (c->cap - c->len < READ_CHUNK) {
			size_t cap = c->cap ? c->cap * 2 : 256 * 1024;
			if (cap > PROTO_CLIP_MAX + READ_CHUNK)
				cap = PROTO_CLIP_MAX + READ_CHUNK;
			if (cap <= c->cap) {
				c->overflow = true;
				break;
			}
			uint8_t *nb = util_regrow(c->buf, c->len, c->len, cap);
			if (!nb) {
				c->overflow = true;
				break;
			}
			c->buf = nb;
			c->cap = cap;
		}
		ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0) {
			close(c->fd);
			c->fd = -1;
			return;
		}
		c->len += (size_t)n;
		if (c->len > PROTO_CLIP_MAX) {
			c->overflow = true;
			break;
		}
	}
	/* Over the cap: stop the tool, the answer is FAILED. */
	spawn_kill(&c->proc);
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

void clip_on_sigchld(struct clip *c)
{
	spawn_poll(&c->proc);
}

/* The tool is done: decide what crosses. */
static void decide(struct clip *c)
{
	c->answering = true;
	c->sent = 0;
	if (c->overflow || c->timed_out) {
		c->status = PROTO_CLIP_FAILED;
		c->len = 0;
		return;
	}
	bool ok = WIFEXITED(c->proc.status) && WEXITSTATUS(c->proc.status) == 0;
	if (!c->buf) {
		ok = false; /* the tool wrote nothing */
	} else if (ok && c->req.op == PROTO_CLIP_TARGETS) {
		/* Filtered in place: the output only shrinks. */
		static char out[64 * 16];
		size_t n = clip_filter_targets((const char *)c->buf, c->len,
					       out, sizeof(out));
		explicit_bzero(c->buf, c->len);
		memcpy(c->buf, out, n);
		c->len = n;
		ok = n > 0;
	} else if (ok) {
		ok = clip_magic_ok(c->req.mime, c->buf, c->len);
	}
	c->status = ok ? PROTO_CLIP_OK : PROTO_CLIP_NONE;
	if (!ok && c->buf)
		explicit_bzero(c->buf, c->len);
	if (!ok)
		c->len = 0;
}

void clip_pump(struct clip *c, long long now, struct proto_writer *w)
{
	if (!c->busy)
		return;
	if (!c->answering) {
		if (now >= c->deadline && (!c->proc.reaped || c->fd >= 0)) {
			c->timed_out = true;
			spawn_kill(&c->proc);
			if (c->fd >= 0) {
				close(c->fd);
				c->fd = -1;
			}
		}
		if (c->fd < 0 && !c->proc.reaped)
			clip_on_sigchld(c);
		if (c->fd >= 0 || !c->proc.reaped)
			return;
		decide(c);
	}
	while (c->sent < c->len && !proto_writer_full(w)) {
		size_t n = c->len - c->sent;
		if (n > PROTO_CLIP_CHUNK)
			n = PROTO_CLIP_CHUNK;
		if (proto_writer_put(w, PROTO_CLIP_DATA, c->chan,
				     c->buf + c->sent, n) < 0)
			return;
		c->sent += n;
	}
	if (c->sent < c->len)
		return;
	answer_now(w, c->chan, c->status);
	reset(c);
}
