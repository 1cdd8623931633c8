#pragma once
/*
 * The session's own state, shared by its steps: plan (plan.c), start
 * (start.c), relay (relay.c), teardown (teardown.c), driven by session.c.
 */
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"
#include "image/image.h"
#include "net/egress.h"
#include "options/cli.h"
#include "options/config.h"
#include "proto.h"
#include "session/plan.h"
#include "session/session.h"
#include "setup/places.h"
#include "setup/stage.h"
#include "share/sharesync_pump.h"
#include "share/vfs.h"
#include "term/clipboard.h"
#include "term/term.h"
#include "term/termfilter.h"
#include "vm/accel.h"
#include "vm/park.h"
#include "vm/qemu.h"
#include "vm/qemu_proc.h"

#define EXIT_GRACE_MS	       10000 /* guest reported exit; QEMU should follow */
#define SIGNAL_GRACE_MS	       5000 /* SIGTERM/SIGHUP forwarded; then kill */
#define ERROR_GRACE_MS	       10000 /* guest reported ERROR; it should power off */
#define DEFAULT_BOOT_TIMEOUT_S 90

/* The last bytes of a stream (console, QEMU's stderr) for diagnostics. */
struct tail {
	char buf[8192];
	size_t len;
};

enum phase { PH_BOOT, PH_RUN, PH_DONE };

struct session {
	const struct ccvm_config *cfg;
	const struct cli_args *args;
	struct session_plan plan;
	char cwd[PATH_MAX];	 /* the shared directory */
	char projects[PATH_MAX]; /* this project's transcripts, or "" */
	struct image_paths img;
	char qemu_bin[PATH_MAX];
	struct term_state term;
	bool pty;
	bool spinner;
	enum accel_kind accel;

	int sigfd, ctl, con, qerr;
	int scratch;		 /* nameless disk file for QEMU, or -1 */
	int ram;		 /* guest RAM file for QEMU (ram.h), or -1 */
	struct vfs_daemon vfs;	 /* virtiofsd, when it serves the directory */
	struct park_boot park;	 /* a boot saved or restored (park.h) */
	struct spawn_child qemu; /* qemu_proc.h */
	/* Until QEMU has started: its argv, and the other ends of its
	 * channels (control, console, network, stderr). */
	struct qemu_argv qa;
	int ctlp[2], conp[2], netp[2], errp[2];
	sigset_t oldmask;
	bool blocked;

	struct stage_list staged;
	struct proto_reader *rd;
	struct proto_writer wr;
	bool secrets_queued;
	const char *key; /* the API key (procs.h), until queued */
	size_t key_len;
	/* The agent's API (api.c): the other credentials taken out of the
	 * environment (procs.h), and ccvm's API proxy when it is on. */
	const char *auth_token, *oauth_token;
	size_t auth_len, oauth_len;
	bool proxy_on;
	struct apiproxy_conf proxy;
	char *proxy_owned[5]; /* the strings proxy points at */

	enum phase phase;
	bool stdin_open;
	long long boot_start, boot_deadline, kill_deadline;
	long boot_timeout_s; /* CCVM_BOOT_TIMEOUT, checked by session_check */
	char status[128];    /* spinner text */
	unsigned spin;

	bool have_exit;
	bool guest_failed; /* the guest sent ERROR */
	/* The guest's OOM kills while the program ran, and whether the
	 * program was one of them (EXIT). */
	uint32_t oom_kills;
	bool oom_killed;
	int exit_code;
	struct ccvm_err fail; /* the first fatal error seen, once running */
	bool fail_said_all;   /* fail names the cause: no QEMU or console
				 lines after it */

	/* The network relay (egress.h), its summary pipe, the guest's
	 * ANTHROPIC_BASE_URL. */
	struct egress_policy *egress;
	pid_t egress_pid;
	int egress_summary;
	char *api_url;
	/* The API endpoint: ANTHROPIC_BASE_URL's host and port, checked by
	 * session_check, or the default host (api_port 0). */
	char api_host[DNS_NAME_MAX + 1];
	uint16_t api_port;
	struct tail console, qemu_err;
	/* What the guest prints to a host terminal goes through these
	 * (termfilter.h): its stdout, its stderr, and with --ccvm-debug the
	 * console and QEMU's stderr. */
	bool out_tty, err_tty;
	struct termfilter tf_out, tf_err, tf_con, tf_qerr;
	struct clip clip;	 /* clipboard image paste (clipboard.h) */
	struct share_pump share; /* host changes to the share (sharesync.h) */
};

/* Keeps the first fatal error only. */
void session_fail(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Queues a frame for the guest; a failure is fatal. */
int session_queue(struct session *s, uint8_t type, const void *p, size_t n);
void session_kill_qemu(struct session *s);

void spinner_draw(struct session *s);
void spinner_clear(struct session *s);

void tail_add(struct tail *t, const char *p, size_t n);
bool tail_has(const struct tail *t, const char *needle);
void tail_print(const struct tail *t, const char *label, int max_lines);
/* Reads a diagnostic stream into t; with --ccvm-debug echoes it to stderr
 * through echo (NULL: no echo). */
void session_read_stream(struct session *s, int *fd, struct tail *t,
			 struct termfilter *echo);

/* api.c: the credentials out of the environment (session_new). */
void session_take_credentials(struct session *s);
/* api.c: the credential, ccvm's API proxy or the key for the agent, and
 * the guest's ANTHROPIC_BASE_URL.  0 or -errno with err set. */
int session_check_api(struct session *s, struct ccvm_err *err);
void session_api_free(struct session *s);

/* start.c: refuses what may not be shared, finds the image.  0, or the
 * exit code with err filled. */
int session_check(struct session *s, const struct places *pl,
		  struct ccvm_err *err);
/* start.c: everything up to a booting VM.  0, or the exit code. */
int session_start(struct session *s, const struct places *pl,
		  struct ccvm_err *err);
/* teardown.c: on SIGCHLD, virtiofsd's and the network relay's ends:
 * the share's ends the session (session_fail, QEMU killed), the relay's
 * is said once and the session goes on without a network. */
void session_watch_helpers(struct session *s);
/* relay.c: until the guest reports the program's exit or QEMU ends; the
 * exit code. */
int session_relay(struct session *s, struct ccvm_err *err);
/* teardown.c: says how the session ended, when not by the program's
 * exit (or with an error), then what QEMU and the guest said. */
void session_report(struct session *s, int code);
/* teardown.c: stops and frees everything start set up. */
void session_teardown(struct session *s);
