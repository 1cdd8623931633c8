/*
 * The relay: one poll loop between the terminal and the guest until the
 * guest reports the program's exit or QEMU ends.  Frames from the guest
 * (proto.h) are handled here; the guest's end of the terminal relay is
 * src/guest/session/relay.c.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "session/internal.h"
#include "setup/handover.h"
#include "term/say.h"
#include "util.h"

/*
 * The control port is read only while the frames queued for the guest stay
 * under CTL_REPLY_HIGH, so a guest that asks (CLIP_REQ, STOPPED) without
 * reading the answers cannot make ccvm queue without end.  What ccvm sends
 * of its own accord stops at PROTO_WRITER_HIGH plus one chunk per source
 * (stdin 64 KiB, a share batch 60 KiB, clipboard data 64 KiB): below this
 * mark, so that input the guest is slow to take never stops its output.
 */
#define CTL_REPLY_HIGH (PROTO_WRITER_HIGH + PROTO_WRITER_HIGH / 2)

void session_fail(struct session *s, const char *fmt, ...)
{
	if (s->fail.code)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->fail.msg, sizeof(s->fail.msg), fmt, ap);
	va_end(ap);
	s->fail.code = -EIO;
}

int session_queue(struct session *s, uint8_t type, const void *p, size_t n)
{
	int r = proto_writer_put(&s->wr, type, 0, p, n);
	if (r < 0)
		session_fail(s, "cannot queue a %s frame: %s",
			     proto_type_name(type), strerror(-r));
	return r;
}

void session_kill_qemu(struct session *s)
{
	spawn_kill(&s->qemu);
}

/* --- the spinner ------------------------------------------------------ */

void spinner_draw(struct session *s)
{
	static const char frames[] = "|/-\\";
	if (!s->spinner)
		return;
	double secs = (double)(util_now_ms() - s->boot_start) / 1000.0;
	fprintf(stderr, "\r\033[K%c ccvm: %s %.1fs", frames[s->spin++ % 4],
		s->status, secs);
	fflush(stderr);
	say_set_status(true);
}

void spinner_clear(struct session *s)
{
	if (!s->spinner)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	s->spinner = false;
	say_set_status(false);
}

/* --- frames to the guest ------------------------------------------------- */

/* The hand-over (handover.h): the key and the staged files leave ccvm's
 * own memory for the writer here. */
static int send_setup(struct session *s, struct ccvm_err *err)
{
	const struct ccvm_config *cfg = s->cfg;
	struct handover h = {
	    .shell = s->args->mode == CLI_RUN_SHELL,
	    .cwd = s->cwd,
	    .writable = !s->plan.guest_overlay,
	    .virtiofs = s->vfs.pid > 0,
	    .share_sync = s->share.watch != NULL,
	    .pty = s->pty,
	    .rows = 24,
	    .cols = 80,
	    .term = getenv("TERM"),
	    .projects = cfg->persist_projects,
	    .scratch = s->plan.scratch,
	    .debug = s->args->debug,
	    .nix = cfg->nix_enable,
	    .argc = s->args->argc,
	    .argv = s->args->argv,
	    .api_url = s->api_url,
	    .key_var = cfg->api_key_variable,
	    .key_env = "ANTHROPIC_API_KEY",
	    .key = s->key,
	    .key_len = s->key_len,
	    .staged = &s->staged,
	};
	if (s->proxy_on) { /* the placeholder, never the credential */
		h.key_env = apiproxy_guest_var(s->proxy.cred);
		h.key = s->proxy.placeholder;
		h.key_len = strlen(s->proxy.placeholder);
	}
	if (s->pty)
		term_size(STDOUT_FILENO, &h.rows, &h.cols);
	s->key = NULL;
	return handover_queue(&s->wr, &h, &s->secrets_queued, err);
}

static void send_resize(struct session *s)
{
	unsigned rows, cols;
	if (!s->pty || !term_size(STDOUT_FILENO, &rows, &cols))
		return;
	uint8_t p[4];
	proto_put_u16(p, (uint16_t)rows);
	proto_put_u16(p + 2, (uint16_t)cols);
	session_queue(s, PROTO_RESIZE, p, sizeof(p));
}

static void send_signal(struct session *s, int sig)
{
	uint8_t p[4];
	proto_put_u32(p, (uint32_t)sig);
	session_queue(s, PROTO_SIGNAL, p, sizeof(p));
}

/* May frames be queued for the guest (the share pump's "live")? */
static bool live(const struct session *s)
{
	return s->phase == PH_RUN && s->ctl >= 0;
}

/*
 * May ccvm stop itself, as the program did?  Only when a shell's job
 * control can continue it: ccvm is the foreground job of its controlling
 * terminal (on stdin, stdout or stderr) and not the session's leader.  No
 * terminal (a script, a service), a background job, or ccvm started as a
 * terminal's first process (ssh -t host 'exec ccvm'): nobody would.
 */
static bool may_stop(void)
{
	if (getsid(0) == getpid())
		return false;
	for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
		pid_t fg = tcgetpgrp(fd); /* -1 unless our own terminal */
		if (fg > 0)
			return fg == getpgrp();
	}
	return false;
}

/* The program stopped (Ctrl-Z, SIGSTOP): with a terminal ccvm is the
 * foreground job of, give the terminal back and stop ccvm the same way,
 * then continue the program when the shell continues us; otherwise
 * continue the program at once, so that nothing waits forever. */
static void stop_like_the_agent(struct session *s)
{
	if (!may_stop()) {
		if (s->args->debug)
			say("the program stopped; no terminal's job control "
			    "would continue ccvm: continuing it");
		session_queue(s, PROTO_CONT, NULL, 0);
		return;
	}
	term_restore(&s->term);
	kill(getpid(), SIGSTOP);
	/* Continued (fg). */
	if (s->pty)
		term_raw(&s->term);
	send_resize(s);
	session_queue(s, PROTO_CONT, NULL, 0);
}

/* --- frames from the guest ----------------------------------------------- */

/* Guest output for fd: through f (termfilter.h) when fd is a terminal;
 * into a file or a pipe unchanged (it may be data, not text). */
static void write_guest(struct termfilter *f, bool tty, int fd, const void *p,
			size_t n)
{
	enum { CHUNK = 16384 };
	static uint8_t buf[TERMFILTER_OUT_MAX(CHUNK)];
	if (!tty) {
		if (n)
			util_write_all(fd, p, n);
		return;
	}
	for (size_t off = 0; off < n; off += CHUNK) {
		size_t k = n - off < CHUNK ? n - off : CHUNK;
		size_t w = termfilter_run(f, (const uint8_t *)p + off, k, buf);
		if (w)
			util_write_all(fd, buf, w);
	}
}

static void on_hello(struct session *s, const struct proto_msg *m)
{
	if (s->phase != PH_BOOT)
		return;
	share_pump_join(&s->share);
	if (m->len < 4 || proto_get_u32(m->data) != PROTO_VERSION) {
		session_fail(s,
			     "guest speaks protocol version %u, ccvm speaks "
			     "%u: rebuild the image",
			     m->len >= 4 ? proto_get_u32(m->data) : 0,
			     PROTO_VERSION);
		session_kill_qemu(s);
		return;
	}
	struct ccvm_err err = {0};
	if (send_setup(s, &err) < 0) {
		session_fail(s, "%s", err.msg);
		session_kill_qemu(s);
		return;
	}
	s->phase = PH_RUN;
	spinner_clear(s);
	if (s->pty && term_raw(&s->term) < 0)
		session_fail(s, "cannot put the terminal in raw mode");
}

static void on_park(struct session *s)
{
	struct ccvm_err err = {0};
	if (park_boot_parked(&s->park, &s->wr, &s->ram, &err) < 0) {
		session_fail(s, "%s", err.msg);
		session_kill_qemu(s);
	}
}

static void on_exit_frame(struct session *s, const struct proto_msg *m)
{
	if (m->len < PROTO_EXIT_LEN || s->have_exit)
		return;
	s->have_exit = true;
	uint32_t kind = proto_get_u32(m->data);
	uint32_t code = proto_get_u32(m->data + 4);
	if (m->len >= PROTO_EXIT_OOM_LEN) { /* the guest's OOM kills */
		s->oom_kills = proto_get_u32(m->data + 8);
		s->oom_killed =
		    kind == PROTO_EXIT_SIGNAL && code == SIGKILL &&
		    (proto_get_u32(m->data + 12) & PROTO_EXIT_F_OOM);
	}
	s->exit_code = kind == PROTO_EXIT_SIGNAL ? 128 + (int)(code & 0x7f)
						 : (int)(code & 0xff);
	s->phase = PH_DONE;
	s->kill_deadline = util_now_ms() + EXIT_GRACE_MS;
}

static void on_text(struct session *s, const struct proto_msg *m)
{
	char text[401];
	termfilter_text(m->data, m->len, text, sizeof(text));
	if (m->type == PROTO_ERROR) {
		s->guest_failed = true;
		session_fail(s, "guest: %s", text);
		/* It powers off next; one that does not is stopped. */
		if (!s->kill_deadline)
			s->kill_deadline = util_now_ms() + ERROR_GRACE_MS;
	} else if (s->args->debug) { /* PROTO_LOG */
		say("guest: %s", text);
	} else if (s->phase == PH_BOOT) {
		termfilter_text(m->data, m->len, s->status, 61);
	}
}

static void handle_msg(struct session *s, const struct proto_msg *m)
{
	switch (m->type) {
	case PROTO_HELLO:
		on_hello(s, m);
		break;
	case PROTO_PARK:
		if (s->phase == PH_BOOT)
			on_park(s);
		break;
	case PROTO_STDOUT:
		write_guest(&s->tf_out, s->out_tty, STDOUT_FILENO, m->data,
			    m->len);
		break;
	case PROTO_STDERR:
		write_guest(&s->tf_err, s->err_tty, STDERR_FILENO, m->data,
			    m->len);
		break;
	case PROTO_STOPPED:
		if (s->phase == PH_RUN)
			stop_like_the_agent(s);
		break;
	case PROTO_EXIT:
		on_exit_frame(s, m);
		break;
	case PROTO_ERROR:
	case PROTO_LOG:
		on_text(s, m);
		break;
	case PROTO_SHARE_SYNCED:
		share_pump_synced(&s->share, m->data, m->len, live(s));
		break;
	case PROTO_CLIP_REQ:
		if (s->phase == PH_RUN)
			clip_request(&s->clip, m->chan, m->data, m->len,
				     &s->wr);
		break;
	default:
		/* Frames meant for the guest, or newer ones: ignore. */
		break;
	}
}

/* True while the guest is owed more than CTL_REPLY_HIGH bytes: its frames
 * wait (unread, or unhandled in the reader) until it takes some.  Once
 * QEMU is gone nothing can be sent, and what it left is read to the end. */
static bool ctl_held(const struct session *s)
{
	return !s->qemu.reaped && proto_writer_queued(&s->wr) >= CTL_REPLY_HIGH;
}

/*
 * Handles the frames the reader holds while the guest is not owed too
 * much (ctl_held), then, when readable and not held, reads the port once
 * and handles what that brought: bounded work, so the loop polls (and
 * sees signals) between reads however fast the guest writes.  True when
 * it read something (there may be more).
 */
static bool read_ctl(struct session *s, bool readable)
{
	ssize_t n = -EAGAIN;
	for (int pass = 0; pass < 2; pass++) {
		struct proto_msg m;
		int r = 0;
		while (!ctl_held(s) && (r = proto_reader_next(s->rd, &m)) > 0)
			handle_msg(s, &m);
		if (r < 0) {
			session_fail(s, "protocol error from the guest: %s",
				     strerror(-r));
			session_kill_qemu(s);
			return false;
		}
		if (s->have_exit || s->guest_failed) {
			/* The guest waits for this close before it powers
			 * off: only then is all it wrote known to be here. */
			close(s->ctl);
			s->ctl = -1;
			/* After EXIT nothing of the guest's is left to
			 * keep (it synced before sending it): stop the VM
			 * rather than wait for its power-off and QEMU's
			 * orderly device teardown. */
			if (s->have_exit)
				session_kill_qemu(s);
			return false;
		}
		if (pass > 0 || !readable || ctl_held(s))
			break;
		n = proto_reader_fill(s->rd, s->ctl);
		if (n == 0 || (n < 0 && n != -EAGAIN && n != -EINTR)) {
			/* QEMU closed the port: it is exiting. */
			close(s->ctl);
			s->ctl = -1;
			return false;
		}
	}
	return n > 0;
}

void session_read_stream(struct session *s, int *fd, struct tail *t,
			 struct termfilter *echo)
{
	char buf[4096];
	ssize_t n = read(*fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		close(*fd);
		*fd = -1;
		return;
	}
	tail_add(t, buf, (size_t)n);
	if (echo && s->args->debug)
		write_guest(echo, s->err_tty, STDERR_FILENO, buf, (size_t)n);
}

static void read_stdin(struct session *s)
{
	static char buf[65536];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n > 0) {
		session_queue(s, PROTO_STDIN, buf, (size_t)n);
		return;
	}
	s->stdin_open = false;
	if (s->pty)
		send_signal(s, SIGHUP); /* the terminal went away */
	else
		session_queue(s, PROTO_STDIN, NULL, 0);
}

/* A signal to ccvm: the exit code it asks for (128 + sig), or 0. */
static int handle_signal(struct session *s, int sig)
{
	switch (sig) {
	case SIGCHLD:
		spawn_poll(&s->qemu);
		session_watch_helpers(s);
		clip_on_sigchld(&s->clip);
		return 0;
	case SIGWINCH:
		if (s->phase == PH_RUN)
			send_resize(s);
		return 0;
	case SIGCONT:
		if (s->phase == PH_RUN && s->pty) {
			s->term.raw = false; /* whoever stopped us reset it */
			term_raw(&s->term);
			send_resize(s);
		}
		return 0;
	default:
		break;
	}
	if (s->phase == PH_BOOT) {
		/* Nothing runs yet: stop booting. */
		session_fail(s, "interrupted while the VM was starting");
		session_kill_qemu(s);
		return 128 + sig;
	}
	if (s->phase == PH_RUN) {
		send_signal(s, sig);
		if (sig == SIGTERM || sig == SIGHUP) {
			if (!s->kill_deadline)
				s->kill_deadline =
				    util_now_ms() + SIGNAL_GRACE_MS;
			return 128 + sig;
		}
	}
	return 0;
}

/* --- the loop ------------------------------------------------------------ */

/* What one round polls, and where each fd is in it (-1: not polled). */
struct pollset {
	struct pollfd p[7];
	int n, ctl, con, err, in, watch, clip;
};

static int poll_add(struct pollset *ps, int fd, short events)
{
	ps->p[ps->n] = (struct pollfd){.fd = fd, .events = events};
	return ps->n++;
}

static void poll_build(struct session *s, struct pollset *ps)
{
	*ps = (struct pollset){
	    .ctl = -1, .con = -1, .err = -1, .in = -1, .watch = -1, .clip = -1};
	poll_add(ps, s->sigfd, POLLIN);
	if (s->ctl >= 0)
		ps->ctl = poll_add(
		    ps, s->ctl,
		    (short)((ctl_held(s) ? 0 : POLLIN) |
			    (proto_writer_pending(&s->wr) ? POLLOUT : 0)));
	if (s->con >= 0)
		ps->con = poll_add(ps, s->con, POLLIN);
	if (s->qerr >= 0)
		ps->err = poll_add(ps, s->qerr, POLLIN);
	if (s->phase == PH_RUN && s->stdin_open && s->ctl >= 0 &&
	    !proto_writer_full(&s->wr) && !share_pump_input_held(&s->share))
		ps->in = poll_add(ps, STDIN_FILENO, POLLIN);
	if (s->phase == PH_RUN && share_pump_read_due(&s->share, util_now_ms()))
		ps->watch = poll_add(ps, watch_fd(s->share.watch), POLLIN);
	if (clip_fd(&s->clip) >= 0)
		ps->clip = poll_add(ps, clip_fd(&s->clip), POLLIN);
}

static void min_timeout(int *timeout, int left)
{
	if (left >= 0 && (*timeout < 0 || left < *timeout))
		*timeout = left;
}

/* How long this round may sleep (-1: until an fd is ready), or -2 when a
 * deadline has passed (its error set, QEMU killed): poll again. */
static int poll_timeout(struct session *s, int sync_left)
{
	long long now = util_now_ms();
	int timeout = -1;
	if (s->phase == PH_BOOT) {
		if (now >= s->boot_deadline) {
			session_fail(s,
				     "the guest did not answer within %lld s "
				     "(boot timed out; last step: %s)",
				     (s->boot_deadline - s->boot_start) / 1000,
				     s->status);
			session_kill_qemu(s);
			return -2;
		}
		timeout = (int)(s->boot_deadline - now);
		if (s->spinner && timeout > 100)
			timeout = 100;
	}
	if (s->kill_deadline) {
		if (now >= s->kill_deadline) {
			session_kill_qemu(s);
			return -2;
		}
		min_timeout(&timeout, (int)(s->kill_deadline - now));
	}
	min_timeout(&timeout, sync_left);
	if (s->phase == PH_RUN)
		min_timeout(&timeout, share_pump_timeout(&s->share, now));
	min_timeout(&timeout, clip_timeout_ms(&s->clip, now));
	return timeout;
}

/* Acts on what poll reported; *signal_code gets the first signal's exit
 * code. */
static void dispatch(struct session *s, const struct pollset *ps,
		     int *signal_code)
{
	const struct pollfd *p = ps->p;
	if (p[0].revents & POLLIN) {
		struct signalfd_siginfo si;
		while (read(s->sigfd, &si, sizeof(si)) == sizeof(si)) {
			int c = handle_signal(s, (int)si.ssi_signo);
			if (c && !*signal_code)
				*signal_code = c;
		}
	}
	if (ps->ctl >= 0 && s->ctl >= 0) {
		if (p[ps->ctl].revents & POLLOUT) {
			int r = proto_writer_flush(&s->wr, s->ctl);
			if (r < 0 && r != -EPIPE)
				session_fail(s, "writing to the guest: %s",
					     strerror(-r));
		}
		/* Also what waited in the reader while the guest was owed
		 * too much. */
		read_ctl(s, p[ps->ctl].revents & (POLLIN | POLLHUP | POLLERR));
	}
	if (ps->con >= 0 && (p[ps->con].revents & (POLLIN | POLLHUP)))
		session_read_stream(s, &s->con, &s->console, &s->tf_con);
	if (ps->err >= 0 && (p[ps->err].revents & (POLLIN | POLLHUP)))
		session_read_stream(s, &s->qerr, &s->qemu_err, &s->tf_qerr);
	if (ps->watch >= 0 && s->share.watch && (p[ps->watch].revents & POLLIN))
		share_pump_read(&s->share, live(s));
	if (ps->in >= 0 && (p[ps->in].revents & (POLLIN | POLLHUP | POLLERR)) &&
	    share_pump_input_may_read(&s->share, live(s)))
		read_stdin(s);
	if (ps->clip >= 0 &&
	    (p[ps->clip].revents & (POLLIN | POLLHUP | POLLERR)))
		clip_on_readable(&s->clip);
	if (s->ctl >= 0)
		clip_pump(&s->clip, util_now_ms(), &s->wr);
	if (s->ctl >= 0 && proto_writer_pending(&s->wr))
		proto_writer_flush(&s->wr, s->ctl);
}

/* Is QEMU stopped (SIGSTOP, a debugger: docs/failures.md)? */
static bool qemu_stopped(const struct session *s)
{
	if (s->qemu.pid <= 0 || s->qemu.reaped)
		return false;
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)s->qemu.pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = '\0';
	/* "pid (comm) S ...": the state follows the last ')'. */
	const char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && (p[2] == 'T' || p[2] == 't');
}

/* A guest whose QEMU is stopped answers nothing: the share sync it owes
 * is waited for afresh while it stays stopped, not given up. */
static void share_wait_while_stopped(struct session *s, long long now)
{
	struct share_pump *sp = &s->share;
	if (sp->watch && sp->busy &&
	    now >= sp->sent_ms + SHARE_SYNC_TIMEOUT_MS && qemu_stopped(s))
		sp->sent_ms = now;
}

/* QEMU is gone: whatever it wrote before it died is still ours. */
static void drain(struct session *s)
{
	while (s->ctl >= 0 && read_ctl(s, true))
		;
	while (s->con >= 0)
		session_read_stream(s, &s->con, &s->console, &s->tf_con);
	while (s->qerr >= 0)
		session_read_stream(s, &s->qerr, &s->qemu_err, &s->tf_qerr);
}

int session_relay(struct session *s, struct ccvm_err *err)
{
	int signal_code = 0;
	while (!s->qemu.reaped) {
		/* Frames held while the guest was owed too much (ctl_held):
		 * the port may have nothing more to wake the poll. */
		if (s->ctl >= 0)
			read_ctl(s, false);
		share_wait_while_stopped(s, util_now_ms());
		int sync_left =
		    share_pump_check_synced(&s->share, util_now_ms());
		if (s->secrets_queued && !proto_writer_pending(&s->wr)) {
			proto_writer_wipe(&s->wr);
			s->secrets_queued = false;
		}
		struct pollset ps;
		poll_build(s, &ps);
		int timeout = poll_timeout(s, sync_left);
		if (timeout == -2)
			continue;
		int n = poll(ps.p, (nfds_t)ps.n, timeout);
		if (n < 0 && errno != EINTR)
			return ccvm_err_sys(err, errno, "poll");
		if (s->phase == PH_BOOT)
			spinner_draw(s);
		if (s->share.watch && s->phase == PH_RUN) {
			share_pump_check_files(&s->share, util_now_ms(),
					       live(s));
			share_pump_send(&s->share, live(s));
		}
		if (n <= 0) {
			clip_pump(&s->clip, util_now_ms(), &s->wr);
			continue;
		}
		dispatch(s, &ps, &signal_code);
	}
	drain(s);
	if (s->have_exit)
		return s->exit_code;
	if (signal_code)
		return signal_code;
	return CCVM_EXIT_FAILURE;
}
