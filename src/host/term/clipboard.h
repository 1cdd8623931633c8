#pragma once
/*
 * Clipboard image paste, the host's side (docs/protocol.md): the guest's
 * CLIP_REQ is answered by running wl-paste (WAYLAND_DISPLAY set) or xclip
 * (DISPLAY set) with a fixed argv, a minimal environment, a timeout and a
 * PROTO_CLIP_MAX cap, as a child whose output is read through a
 * non-blocking pipe in the session's poll loop.  Only image types cross:
 * a request for any other type never runs a tool, a type list is filtered
 * to image types, and image bytes must start with their format's magic.
 */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h"
#include "sys/spawn.h"

#define CLIP_TOOL_TIMEOUT_MS 5000

enum clip_backend { CLIP_BACKEND_NONE, CLIP_BACKEND_WAYLAND, CLIP_BACKEND_X11 };

/* true for the image types that may cross: image/png, image/jpeg,
 * image/jpg, image/gif, image/webp, image/bmp. */
bool clip_mime_allowed(const char *mime);

/*
 * Filters a tool's type list (one type a line, CR/LF tolerated) to the
 * allowed image types, each once, in the order seen, one a line.  Returns
 * the length written to out (0: no image type), never more than outsz.
 */
size_t clip_filter_targets(const char *in, size_t len, char *out, size_t outsz);

/* true when data starts like an image of type mime (PNG, JPEG, GIF, WebP
 * or BMP signature). */
bool clip_magic_ok(const char *mime, const uint8_t *data, size_t len);

/* Which tool to use, from the values of WAYLAND_DISPLAY and DISPLAY (NULL
 * or empty: unset). */
enum clip_backend clip_backend_choose(const char *wayland, const char *display);

#define CLIP_ARGV_MAX 8
/* Fills argv (NULL-terminated) for backend, tool (absolute) and q. */
void clip_argv_build(enum clip_backend b, const char *tool,
		     const struct proto_clip_req *q,
		     const char *argv[CLIP_ARGV_MAX]);

#define CLIP_ENV_MAX 8
#define CLIP_ENV_LEN 4096
/* The child's environment: PATH, LC_ALL, and for Wayland WAYLAND_DISPLAY
 * and XDG_RUNTIME_DIR, for X11 DISPLAY, XAUTHORITY and HOME; a value
 * that is too long or has a control character is left out.  get is
 * getenv or a stand-in. */
struct clip_envp {
	char *v[CLIP_ENV_MAX + 1];
	char buf[CLIP_ENV_MAX][CLIP_ENV_LEN];
};
void clip_envp_build(enum clip_backend b, const char *(*get)(const char *),
		     struct clip_envp *e);

struct proto_writer;

/* One request at a time; a session holds one of these. */
struct clip {
	bool enabled; /* clipboard.images */
	enum clip_backend backend;
	bool busy;
	uint16_t chan;
	struct proto_clip_req req;
	struct spawn_child proc; /* the tool (pid 0: none), reaped once ended */
	int fd;			 /* its stdout, or -1 once at EOF */
	bool overflow, timed_out;
	long long deadline;
	uint8_t *buf;
	size_t len, cap;
	/* answering: the status, and how much of buf is queued */
	bool answering;
	uint8_t status;
	size_t sent;
	char tool[PATH_MAX]; /* xclip or wl-paste, resolved once, or "" */
};

/* The variables that name the clipboard tools explicitly. */
#define CLIP_ENV_XCLIP	  "CCVM_XCLIP"
#define CLIP_ENV_WL_PASTE "CCVM_WL_PASTE"

/* enabled: clipboard.images; wayland and display: the values of
 * WAYLAND_DISPLAY and DISPLAY.  The tool is found here, once, in trusted
 * places only (hostpath.h): call after hostpath_set_shares. */
void clip_init(struct clip *c, bool enabled, const char *wayland,
	       const char *display);
/* Kills and reaps a running tool; frees the buffer (wiped). */
void clip_free(struct clip *c);

/*
 * Handles one CLIP_REQ: answers at once (queues CLIP_END into w) when paste
 * is off, the request is malformed or not for an image type, no tool is
 * there or a request is already running; else starts the tool.
 */
void clip_request(struct clip *c, uint16_t chan, const uint8_t *p, size_t len,
		  struct proto_writer *w);

/* The fd to poll for POLLIN, or -1. */
int clip_fd(const struct clip *c);
/* Milliseconds until the running tool's deadline (>= 0), or -1. */
int clip_timeout_ms(const struct clip *c, long long now);
/* Reads what the tool wrote (POLLIN/POLLHUP on clip_fd). */
void clip_on_readable(struct clip *c);
/* Reaps the tool if it ended (on SIGCHLD; never blocks). */
void clip_on_sigchld(struct clip *c);
/* Kills a tool past its deadline; then, once the tool is done, queues the
 * answer into w as far as w is not full (call after every poll). */
void clip_pump(struct clip *c, long long now, struct proto_writer *w);
