#pragma once
/*
 * Clipboard image paste, the guest's side (docs/protocol.md).
 *
 * The agent finds `xclip` and `wl-paste` first on its PATH, in
 * PASTE_BIN_DIR: links to ccvm-init (bound there read-only), which acts
 * as the stand-in when started under those names (paste_standin_main).  A
 * stand-in connects to PASTE_SOCK, sends one PASTE_REQ payload, shuts down its
 * writing side and reads back one status byte (enum proto_clip_status), then
 * the data.
 *
 * PID 1 serves the socket in its relay, one client at a time: it forwards
 * the request to the host as PASTE_REQ with a fresh chan, collects the
 * PASTE_DATA frames (at most PROTO_CLIP_MAX bytes) and on PASTE_END writes
 * the status and data to the client.
 */
#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"
#include "proto.h"

/* On /run's tmpfs, not in the root's overlay: making a directory under
 * /usr/lib copied /usr and /usr/lib up first, ~20 ms of every boot under
 * TCG.  /run is noexec; the stand-in is its own (read-only) bind mount. */
#define PASTE_BIN_DIR  "/run/ccvm-bin"
#define PASTE_SOCK_DIR "/run/ccvm-clip"
#define PASTE_SOCK     PASTE_SOCK_DIR "/socket"
/* Waiting for the client's request, the host's next frame, or the client
 * to take the answer: give up after this long without progress. */
#define PASTE_IDLE_MS 15000

/* --- the stand-ins (run as the agent, not PID 1) ---------------------- */

enum paste_tool { PASTE_XCLIP, PASTE_WL_PASTE };

/* What a command line asks for. */
enum paste_ask {
	PASTE_ASK_LIST,	       /* the type list (TARGETS, --list-types) */
	PASTE_ASK_GET,	       /* one type */
	PASTE_ASK_TEXT,	       /* text or a type we never ask the host for */
	PASTE_ASK_HELP,	       /* -h / --help: usage on stdout, exit 0 */
	PASTE_ASK_VERSION,     /* -version / --version */
	PASTE_ASK_UNSUPPORTED, /* copying in, watching, ...: exit 1 */
	PASTE_ASK_USAGE,       /* bad command line: exit 2 */
};

struct paste_args {
	enum paste_ask ask;
	bool primary;	    /* not the CLIPBOARD selection */
	const char *target; /* the type asked for (argv string) or NULL */
	const char *bad;    /* the offending argument, for messages */
};

/* Parses argv (argv[0] excluded: args, n) the way the real tool reads it.
 * Pure; out is always filled. */
void paste_parse_xclip(int n, char *const args[], struct paste_args *out);
void paste_parse_wl_paste(int n, char *const args[], struct paste_args *out);

/* The stand-in: 0 with the data on stdout, else 1 (like the real tool:
 * nothing there) or 2 (usage), with a message on stderr. */
int paste_standin_main(enum paste_tool tool, int argc, char *argv[]);

/* Which stand-in argv0 names, or -1 for none. */
int paste_tool_of(const char *argv0);

/* --- the server in PID 1 ---------------------------------------------- */

struct paste_srv {
	int lfd; /* listening socket, or -1 */
	int cfd; /* the client being served, or -1 */
	uint8_t req[PROTO_CLIP_REQ_MAX + 1];
	size_t req_len;
	bool waiting; /* the request went to the host; no PASTE_END yet */
	uint16_t chan, next_chan;
	uint8_t *buf; /* status byte, then the data */
	size_t len, off, cap;
	bool replying; /* buf is the answer, being written to the client */
	bool overflow;
	long long deadline;
};

void paste_srv_init(struct paste_srv *c);
/* ccvm-init (/proc/self/exe) in PASTE_BIN_DIR as the xclip and wl-paste
 * stand-ins: bound read-only over PASTE_BIN_DIR/ccvm-clip, and the two
 * links to it.  A failure leaves paste unavailable, nothing else. */
int paste_install_bin(struct ccvm_err *err);
/* The server's socket, for the agent user. */
int paste_install(uid_t uid, gid_t gid, struct paste_srv *c,
		  struct ccvm_err *err);
void paste_srv_free(struct paste_srv *c);

/* The fds to poll, as pollfds (fd -1 when not wanted). */
void paste_srv_poll(const struct paste_srv *c, struct pollfd *listen,
		    struct pollfd *client);
/* Milliseconds until the deadline (>= 0), or -1. */
int paste_srv_timeout(const struct paste_srv *c, long long now);
/* Acts on poll results and the clock; queues PASTE_REQ into w. */
void paste_srv_step(struct paste_srv *c, short listen_rev, short client_rev,
		    long long now, struct proto_writer *w);
/* A PASTE_DATA or PASTE_END frame from the host. */
void paste_srv_frame(struct paste_srv *c, const struct proto_msg *m,
		     long long now);
