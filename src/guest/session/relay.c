#define _GNU_SOURCE
#include "session/relay.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "glog.h"
#include "util.h"

#define OUT_CHUNK (64 * 1024)
/* After the program ended: stop waiting for more output once nothing came
 * for this long (a background process may hold the pty or pipe open), and
 * in any case after DRAIN_TOTAL_MS (one that keeps writing). */
#define DRAIN_IDLE_MS  300
#define DRAIN_TOTAL_MS 5000

int relay_init(struct relay *r, int port, struct proto_reader *rd,
	       struct proto_writer *wr, struct ccvm_err *err)
{
	memset(r, 0, sizeof(*r));
	r->port = port;
	r->share_fd = -1;
	r->rd = rd;
	r->wr = wr;
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	r->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (r->sigfd < 0)
		return ccvm_err_sys(err, errno, "signalfd");
	r->in_buf = malloc(RELAY_STDIN_MAX);
	if (!r->in_buf) {
		close(r->sigfd);
		return ccvm_err_sys(err, ENOMEM, "stdin buffer");
	}
	return 0;
}

void relay_free(struct relay *r)
{
	if (r->sigfd >= 0)
		close(r->sigfd);
	r->sigfd = -1;
	free(r->in_buf);
	r->in_buf = NULL;
}

int relay_queue_stdin(struct relay *r, const void *data, size_t len)
{
	if (len == 0)
		r->in_eof = true; /* acted on in pipe mode only */
	if (r->in_closed)
		return 0;
	if (len > RELAY_STDIN_MAX - r->in_len)
		return -ENOBUFS;
	memcpy(r->in_buf + r->in_len, data, len);
	r->in_len += len;
	return 0;
}

int relay_wait_hangup(int fd, int timeout_ms)
{
	long long deadline = util_now_ms() + timeout_ms;
	for (;;) {
		long long left = deadline - util_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int n = poll(&p, 1, (int)left);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n <= 0)
			continue;
		if (p.revents & (POLLHUP | POLLERR))
			return 0;
		uint8_t sink[4096];
		ssize_t k = read(fd, sink, sizeof(sink));
		if (k == 0 || (k < 0 && errno != EAGAIN && errno != EINTR))
			return 0;
	}
}

int relay_reap_all(void)
{
	int n = 0;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		n++;
	return n;
}

int relay_flush(int fd, struct proto_writer *w, int timeout_ms)
{
	long long deadline = util_now_ms() + timeout_ms;
	for (;;) {
		int r = proto_writer_flush(w, fd);
		if (r < 0)
			return r;
		if (!proto_writer_pending(w))
			return 0;
		long long left = deadline - util_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		if (poll(&p, 1, (int)left) < 0 && errno != EINTR)
			return -errno;
	}
}

static int stdin_fd(const struct relay *r)
{
	return r->pty ? r->ag->master : r->ag->in;
}

static void close_stdin(struct relay *r)
{
	r->in_closed = true;
	r->in_len = 0;
	if (!r->pty && r->ag->in >= 0) {
		close(r->ag->in);
		r->ag->in = -1;
	}
}

/* Writes what the program's stdin takes. */
static void push_stdin(struct relay *r)
{
	while (r->in_len && !r->in_closed) {
		ssize_t n = write(stdin_fd(r), r->in_buf, r->in_len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) { /* EPIPE, EIO: the reader is gone */
			close_stdin(r);
			return;
		}
		memmove(r->in_buf, r->in_buf + n, r->in_len - (size_t)n);
		r->in_len -= (size_t)n;
	}
	if (r->in_eof && r->in_len == 0 && !r->in_closed && !r->pty)
		close_stdin(r);
}

static void share_synced(struct relay *r, const uint8_t *seq, uint8_t status)
{
	uint8_t a[PROTO_SHARE_HDR];
	memcpy(a, seq, 8);
	a[8] = status;
	proto_writer_put(r->wr, PROTO_SHARE_SYNCED, 0, a, sizeof(a));
}

/* The worker is gone: the host is told, and stops waiting on us. */
static void share_lost(struct relay *r)
{
	glog_always("share sync worker gone: host changes may be seen late");
	close(r->share_fd);
	r->share_fd = -1;
	if (r->share_busy)
		share_synced(r, r->share_seq, 1);
	r->share_busy = false;
}

static void share_inval(struct relay *r, const struct proto_msg *m)
{
	static const uint8_t zero[8];
	const uint8_t *seq = m->len >= 8 ? m->data : zero;
	if (r->share_fd < 0 || r->share_busy || m->len < PROTO_SHARE_HDR ||
	    m->len > PROTO_SHARE_HDR + PROTO_SHARE_BATCH) {
		share_synced(r, seq, 1); /* one at a time, well formed */
		return;
	}
	if (send(r->share_fd, m->data, m->len, MSG_NOSIGNAL | MSG_DONTWAIT) <
	    0) {
		share_lost(r);
		share_synced(r, seq, 1);
		return;
	}
	memcpy(r->share_seq, seq, 8);
	r->share_busy = true;
}

static void share_answer(struct relay *r)
{
	uint8_t a[PROTO_SHARE_HDR];
	ssize_t n = recv(r->share_fd, a, sizeof(a), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n != (ssize_t)sizeof(a)) {
		share_lost(r);
		return;
	}
	r->share_busy = false;
	share_synced(r, a, a[8]);
}

static int on_frame(struct relay *r, const struct proto_msg *m, bool running,
		    struct ccvm_err *err)
{
	switch (m->type) {
	case PROTO_STDIN:
		if (m->len == 0) {
			if (!r->pty)
				r->in_eof = true;
			return 0;
		}
		if (relay_queue_stdin(r, m->data, m->len) < 0)
			return ccvm_err_set(err, ENOBUFS,
					    "stdin: host sent more than %d "
					    "unread bytes",
					    RELAY_STDIN_MAX);
		return 0;
	case PROTO_RESIZE:
		if (m->len < 4)
			return ccvm_err_set(err, EPROTO, "RESIZE too short");
		if (r->pty && r->ag->master >= 0) {
			struct winsize ws = {
			    .ws_row = proto_get_u16(m->data),
			    .ws_col = proto_get_u16(m->data + 2),
			};
			if (ioctl(r->ag->master, TIOCSWINSZ, &ws) < 0)
				glog("TIOCSWINSZ: %s", strerror(errno));
		}
		return 0;
	case PROTO_SIGNAL: {
		if (m->len < 4)
			return ccvm_err_set(err, EPROTO, "SIGNAL too short");
		uint32_t sig = proto_get_u32(m->data);
		if (sig == 0 || sig >= (uint32_t)_NSIG)
			return ccvm_err_set(err, EINVAL, "SIGNAL %u invalid",
					    sig);
		if (running)
			kill(-r->ag->pgid, (int)sig);
		return 0;
	}
	case PROTO_SHARE_INVAL:
		share_inval(r, m);
		return 0;
	case PROTO_CLIP_DATA:
	case PROTO_CLIP_END:
		if (r->clip)
			paste_srv_frame(r->clip, m, util_now_ms());
		return 0;
	case PROTO_CONT:
		if (running) {
			kill(-r->ag->pgid, SIGCONT);
			if (r->ag->pid != r->ag->pgid)
				kill(r->ag->pid, SIGCONT);
		}
		return 0;
	default:
		glog("ignoring %s frame while running",
		     proto_type_name(m->type));
		return 0;
	}
}

/* Handles the frames already buffered in the reader. */
static int dispatch(struct relay *r, bool running, struct ccvm_err *err)
{
	struct proto_msg m;
	int k;
	while ((k = proto_reader_next(r->rd, &m)) > 0) {
		int e = on_frame(r, &m, running, err);
		if (e < 0)
			return e;
	}
	if (k < 0)
		return ccvm_err_set(err, -k, "protocol error from the host: %s",
				    k == -EMSGSIZE ? "frame too large"
						   : "bad frame header");
	return 0;
}

/* Reads the port; -EPIPE when the host is gone. */
static int read_port(struct relay *r, bool running, struct ccvm_err *err)
{
	ssize_t n = proto_reader_fill(r->rd, r->port);
	if (n == 0)
		return -EPIPE;
	if (n < 0 && n != -EAGAIN)
		return n == -EIO || n == -EPIPE || n == -ECONNRESET
			   ? -EPIPE
			   : ccvm_err_sys(err, (int)-n, "reading the port");
	return dispatch(r, running, err);
}

/* Reads one chunk of program output into a frame; true at EOF. */
static bool read_output(struct relay *r, int fd, uint8_t type)
{
	static uint8_t buf[OUT_CHUNK];
	ssize_t n = read(fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return false;
	if (n <= 0) /* EOF, or EIO from a pty master with no slave left */
		return true;
	proto_writer_put(r->wr, type, 0, buf, (size_t)n);
	return false;
}

struct child_state {
	bool done;
	uint32_t kind, code;
};

static void reap(struct relay *r, struct child_state *cs)
{
	struct signalfd_siginfo si;
	while (read(r->sigfd, &si, sizeof(si)) > 0)
		;
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG | WUNTRACED)) > 0) {
		if (pid != r->ag->pid)
			continue; /* an orphan PID 1 inherited */
		if (WIFSTOPPED(status)) {
			glog("program stopped (signal %d)", WSTOPSIG(status));
			proto_writer_put(r->wr, PROTO_STOPPED, 0, NULL, 0);
		} else if (WIFEXITED(status)) {
			cs->done = true;
			cs->kind = PROTO_EXIT_CODE;
			cs->code = (uint32_t)WEXITSTATUS(status);
		} else if (WIFSIGNALED(status)) {
			cs->done = true;
			cs->kind = PROTO_EXIT_SIGNAL;
			cs->code = (uint32_t)WTERMSIG(status);
		}
	}
}

enum { P_PORT, P_SIG, P_OUT0, P_OUT1, P_IN, P_CL, P_CC, P_SHARE, P_N };

/* The loop's state between polls. */
struct loop {
	struct child_state cs;
	int out_fd[2]; /* pty master, or stdout and stderr pipes */
	uint8_t out_type[2];
	bool out_eof[2];
	long long drain_end; /* after the end, output is read until then */
	bool polled_out;     /* an output was polled this turn */
};

/* This turn's poll set; returns the poll timeout. */
static int poll_set(struct relay *r, struct loop *l, struct pollfd p[P_N],
		    long long now)
{
	for (int i = 0; i < P_N; i++)
		p[i] = (struct pollfd){.fd = -1};
	bool room = r->in_len <= RELAY_STDIN_MAX - PROTO_MAX_PAYLOAD;
	p[P_PORT].fd = r->port;
	p[P_PORT].events =
	    (room ? POLLIN : 0) | (proto_writer_pending(r->wr) ? POLLOUT : 0);
	p[P_SIG] = (struct pollfd){.fd = r->sigfd, .events = POLLIN};
	l->polled_out = false;
	for (int i = 0; i < 2; i++)
		if (!l->out_eof[i] && !proto_writer_full(r->wr)) {
			p[P_OUT0 + i] = (struct pollfd){.fd = l->out_fd[i],
							.events = POLLIN};
			l->polled_out = true;
		}
	if (r->in_len && !r->in_closed)
		p[P_IN] = (struct pollfd){.fd = stdin_fd(r), .events = POLLOUT};
	if (r->share_fd >= 0)
		p[P_SHARE] =
		    (struct pollfd){.fd = r->share_fd, .events = POLLIN};
	if (l->cs.done) {
		long long left = l->drain_end - now;
		return (int)(left < DRAIN_IDLE_MS ? left : DRAIN_IDLE_MS);
	}
	if (r->clip) {
		/* Image paste serves the program while it runs. */
		paste_srv_poll(r->clip, &p[P_CL], &p[P_CC]);
		return paste_srv_timeout(r->clip, now);
	}
	return -1;
}

/* What this turn's poll found; 0, or a negative errno. */
static int poll_handle(struct relay *r, struct loop *l,
		       const struct pollfd p[P_N], struct ccvm_err *err)
{
	if (p[P_SIG].revents & POLLIN) {
		bool was_done = l->cs.done;
		reap(r, &l->cs);
		if (l->cs.done && !was_done) {
			glog("program ended: %s %u",
			     l->cs.kind ? "signal" : "exit", l->cs.code);
			l->drain_end = util_now_ms() + DRAIN_TOTAL_MS;
		}
	}
	if (p[P_PORT].revents & (POLLIN | POLLHUP | POLLERR)) {
		int e = read_port(r, !l->cs.done, err);
		if (e < 0)
			return e;
	}
	for (int i = 0; i < 2; i++)
		if ((p[P_OUT0 + i].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    read_output(r, l->out_fd[i], l->out_type[i])) {
			l->out_eof[i] = true;
			proto_writer_put(r->wr, l->out_type[i], 0, NULL, 0);
		}
	if (p[P_SHARE].revents & (POLLIN | POLLHUP | POLLERR))
		share_answer(r);
	if (r->clip && !l->cs.done)
		paste_srv_step(r->clip, p[P_CL].revents, p[P_CC].revents,
			       util_now_ms(), r->wr);
	push_stdin(r);
	int e = proto_writer_flush(r->wr, r->port);
	if (e == -EPIPE || e == -EIO || e == -ECONNRESET)
		return -EPIPE;
	if (e < 0)
		return ccvm_err_sys(err, -e, "writing the port");
	return 0;
}

int relay_run(struct relay *r, struct agent *ag, uint32_t *kind, uint32_t *code,
	      struct ccvm_err *err)
{
	r->ag = ag;
	r->pty = ag->master >= 0;
	struct loop l = {
	    .out_fd = {r->pty ? ag->master : ag->out, r->pty ? -1 : ag->err},
	    .out_type = {PROTO_STDOUT, PROTO_STDERR},
	    .out_eof = {false, r->pty},
	};
	/* Frames that arrived with START are already buffered. */
	int e = dispatch(r, true, err);
	if (e < 0)
		return e;
	push_stdin(r);
	for (;;) {
		if (l.cs.done && l.out_eof[0] && l.out_eof[1])
			break;
		long long now = util_now_ms();
		if (l.cs.done && now >= l.drain_end)
			break;
		struct pollfd p[P_N];
		int timeout = poll_set(r, &l, p, now);
		int n = poll(p, P_N, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return ccvm_err_sys(err, errno, "poll");
		if (n == 0 && l.cs.done && l.polled_out)
			break; /* output idle after the end: done */
		if ((e = poll_handle(r, &l, p, err)) < 0)
			return e;
	}
	for (int i = 0; i < 2; i++)
		if (!l.out_eof[i])
			proto_writer_put(r->wr, l.out_type[i], 0, NULL, 0);
	*kind = l.cs.kind;
	*code = l.cs.code;
	return 0;
}
