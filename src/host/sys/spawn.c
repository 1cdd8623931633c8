/* The one way ccvm starts a child (spawn.h). */
#define _GNU_SOURCE
#include "sys/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys/procs.h"
#include "util.h"

/* The kernel's struct sigaction on x86-64 (not glibc's). */
struct kernel_sigaction {
	void (*handler)(int);
	unsigned long flags;
	void (*restorer)(void);
	unsigned long mask;
};

/* What a child reports on its status pipe when a step fails. */
struct spawn_report {
	int err;
	char step[48];
};

/* Everything the child needs, prepared by ccvm before the fork: after
 * it, only async-signal-safe calls. */
struct plan {
	const struct spawn_opts *o;
	pid_t parent;
	int status_fd;		   /* the write end of the status pipe */
	int src[SPAWN_FDS_MAX];	   /* what each child fd gets, or -1 */
	int pipe_w[SPAWN_FDS_MAX]; /* SPAWN_PIPE write ends, or -1 */
	int devnull;
	bool exec;
};

static __attribute__((noreturn)) void child_fail(int fd, const char *step)
{
	struct spawn_report f = {.err = errno};
	size_t n = strlen(step);
	if (n >= sizeof(f.step))
		n = sizeof(f.step) - 1;
	memcpy(f.step, step, n);
	if (write(fd, &f, sizeof(f)) < 0) {
		/* ccvm sees EOF and a dead child */
	}
	_exit(127);
}

static void child_signals(const struct plan *p)
{
	const struct spawn_opts *o = p->o;
	bool reset = p->exec || !o->keep_signals;
	if (reset) {
		/* The raw system call: glibc's sigaction refuses the two
		 * signals it keeps for itself (32, 33), and an ignored one
		 * would stay ignored across execve. */
		struct kernel_sigaction dfl = {.handler = SIG_DFL};
		for (int sig = 1; sig < NSIG; sig++)
			if (sig != SIGKILL && sig != SIGSTOP)
				syscall(SYS_rt_sigaction, sig, &dfl, NULL,
					sizeof(dfl.mask));
	}
	prctl(PR_SET_PDEATHSIG, o->death_sig ? o->death_sig : SIGKILL);
	if (getppid() != p->parent)
		_exit(127); /* ccvm is already gone */
	if (reset) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
	}
}

/* Applies the fd map; every other fd closes, the status pipe (moved up
 * and close-on-exec) last.  The new status fd, or -1. */
static int child_fds(const struct plan *p)
{
	int hi[SPAWN_FDS_MAX];
	int st = fcntl(p->status_fd, F_DUPFD_CLOEXEC, SPAWN_FDS_MAX);
	if (st < 0)
		return -1;
	for (int i = 0; i < SPAWN_FDS_MAX; i++) {
		hi[i] = -1;
		if (p->src[i] >= 0 && (hi[i] = fcntl(p->src[i], F_DUPFD_CLOEXEC,
						     SPAWN_FDS_MAX)) < 0)
			child_fail(st, "file descriptors");
	}
	/* dup3 clears close-on-exec unless asked: an executed program keeps
	 * exactly the mapped fds, a called function keeps them private. */
	int flags = p->exec ? 0 : O_CLOEXEC;
	for (int i = 0; i < SPAWN_FDS_MAX; i++) {
		if (hi[i] < 0)
			close(i);
		else if (dup3(hi[i], i, flags) < 0)
			child_fail(st, "file descriptors");
	}
	close_range(SPAWN_FDS_MAX, (unsigned)st - 1, 0);
	close_range((unsigned)st + 1, ~0U, 0);
	return st;
}

/* The child up to the fd map; returns the status fd. */
static int child_setup(const struct plan *p)
{
	const struct spawn_opts *o = p->o;
	child_signals(p);
	if (p->exec || !o->keep_secrets)
		procs_forget_secrets();
	if (o->new_pgrp && setpgid(0, 0) < 0)
		child_fail(p->status_fd, "setpgid");
	if (o->nofile_max) {
		/* virtiofsd holds a file per inode the guest knows. */
		struct rlimit nofile;
		if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
			nofile.rlim_cur = nofile.rlim_max;
			setrlimit(RLIMIT_NOFILE, &nofile);
		}
	}
	if (o->name)
		prctl(PR_SET_NAME, o->name);
	return child_fds(p);
}

static __attribute__((noreturn)) void child_exec(const struct plan *p)
{
	const struct spawn_opts *o = p->o;
	int st = child_setup(p);
	const char *step = "pre-exec";
	if (o->pre_exec && o->pre_exec(o->pre_exec_arg, &step) < 0)
		child_fail(st, step ? step : "pre-exec");
	if (o->cwd && chdir(o->cwd) < 0)
		child_fail(st, "chdir");
	static char *const empty[] = {NULL};
	execve(o->argv[0], (char *const *)o->argv,
	       o->envp ? (char *const *)o->envp : empty);
	child_fail(st, "exec");
}

/* ccvm's side: checks o, opens /dev/null and the pipes the map asks for. */
static int plan_init(const struct spawn_opts *o, struct plan *p,
		     struct spawn_child *c, struct ccvm_err *err)
{
	*p = (struct plan){.o = o, .parent = getpid(), .devnull = -1};
	for (int i = 0; i < SPAWN_FDS_MAX; i++)
		p->src[i] = p->pipe_w[i] = c->pipe[i] = -1;
	for (size_t i = 0; i < o->n_fds; i++) {
		const struct spawn_fd *f = &o->fds[i];
		if (f->child < 0 || f->child >= SPAWN_FDS_MAX ||
		    p->src[f->child] != -1 ||
		    (f->parent < 0 && f->parent != SPAWN_NULL &&
		     f->parent != SPAWN_PIPE))
			return ccvm_err_set(err, EINVAL,
					    "spawn: bad fd map entry %d <- %d",
					    f->child, f->parent);
		p->src[f->child] = f->parent; /* resolved below */
	}
	for (int i = 0; i < SPAWN_FDS_MAX; i++) {
		if (i <= 2 && p->src[i] == -1)
			p->src[i] = SPAWN_NULL;
		if (p->src[i] == SPAWN_NULL) {
			if (p->devnull < 0)
				p->devnull =
				    open("/dev/null", O_RDWR | O_CLOEXEC);
			if (p->devnull < 0)
				return ccvm_err_sys(err, errno, "/dev/null");
			p->src[i] = p->devnull;
		} else if (p->src[i] == SPAWN_PIPE) {
			int pp[2];
			if (pipe2(pp, O_CLOEXEC) < 0)
				return ccvm_err_sys(err, errno, "pipe");
			c->pipe[i] = pp[0];
			p->pipe_w[i] = p->src[i] = pp[1];
		}
	}
	int sp[2];
	if (pipe2(sp, O_CLOEXEC) < 0)
		return ccvm_err_sys(err, errno, "pipe");
	p->status_fd = sp[1];
	return sp[0];
}

static void plan_close(struct plan *p)
{
	if (p->devnull >= 0)
		close(p->devnull);
	for (int i = 0; i < SPAWN_FDS_MAX; i++)
		if (p->pipe_w[i] >= 0)
			close(p->pipe_w[i]);
	p->devnull = -1;
}

static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');
	return s ? s + 1 : path;
}

/* Forks; the child runs fn(p, arg) (never returns).  Then waits for the
 * child's report: EOF means it got through its setup. */
static int launch(struct plan *p, int status_r, struct spawn_child *c,
		  int (*fn)(void *), void *arg, struct ccvm_err *err)
{
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(status_r);
		close(p->status_fd);
		plan_close(p);
		spawn_child_close(c);
		return ccvm_err_sys(err, e, "fork");
	}
	if (pid == 0) {
		if (p->exec)
			child_exec(p);
		int st = child_setup(p);
		close(st); /* ccvm stops waiting: setup done */
		_exit(fn(arg));
	}
	if (p->o->new_pgrp)
		setpgid(pid, pid); /* whichever side comes first */
	close(p->status_fd);
	plan_close(p);
	struct spawn_report f;
	ssize_t n;
	do
		n = read(status_r, &f, sizeof(f));
	while (n < 0 && errno == EINTR);
	close(status_r);
	c->pid = pid;
	c->reaped = false;
	c->status = 0;
	if (n == 0)
		return 0;
	spawn_kill(c);
	spawn_child_close(c);
	c->pid = 0;
	if (n != (ssize_t)sizeof(f))
		return ccvm_err_set(err, EIO, "the child failed to start");
	f.step[sizeof(f.step) - 1] = '\0';
	if (p->exec && !strcmp(f.step, "exec"))
		return ccvm_err_sys(err, f.err ? f.err : EIO, "exec %s",
				    base_name(p->o->argv[0]));
	return ccvm_err_sys(err, f.err ? f.err : EIO, "%s", f.step);
}

int spawn_start(const struct spawn_opts *o, struct spawn_child *c,
		struct ccvm_err *err)
{
	if (!o->argv || !o->argv[0] || o->argv[0][0] != '/')
		return ccvm_err_set(err, EINVAL,
				    "spawn: the program needs an absolute "
				    "path");
	struct plan p;
	int status_r = plan_init(o, &p, c, err);
	if (status_r < 0) {
		plan_close(&p);
		spawn_child_close(c);
		return status_r;
	}
	p.exec = true;
	return launch(&p, status_r, c, NULL, NULL, err);
}

int spawn_call(const struct spawn_opts *o, int (*fn)(void *), void *arg,
	       struct spawn_child *c, struct ccvm_err *err)
{
	struct plan p;
	int status_r = plan_init(o, &p, c, err);
	if (status_r < 0) {
		plan_close(&p);
		spawn_child_close(c);
		return status_r;
	}
	return launch(&p, status_r, c, fn, arg, err);
}

void spawn_buf_free(struct spawn_buf *b)
{
	if (b->data) {
		explicit_bzero(b->data, b->len);
		free(b->data);
	}
	b->data = NULL;
	b->len = 0;
	b->over = false;
}

/* Keeps what fits of n bytes; false when they overflowed b. */
static bool buf_add(struct spawn_buf *b, const char *p, size_t n)
{
	if (!b)
		return true;
	if (!b->data) {
		b->data = malloc(b->max + 1);
		if (!b->data) {
			b->over = true;
			return false;
		}
		b->data[0] = '\0';
	}
	size_t room = b->max - b->len;
	size_t take = n < room ? n : room;
	memcpy(b->data + b->len, p, take);
	b->len += take;
	b->data[b->len] = '\0';
	if (take < n)
		b->over = true;
	return take == n || b->drain_over;
}

/* Reads one chunk of fd into b; false at EOF or on an error. */
static bool drain(int fd, struct spawn_buf *b, bool *overflow)
{
	char tmp[16384];
	ssize_t n = read(fd, tmp, sizeof(tmp));
	if (n < 0)
		return errno == EINTR || errno == EAGAIN;
	if (n == 0)
		return false;
	if (!buf_add(b, tmp, (size_t)n))
		*overflow = true;
	explicit_bzero(tmp, (size_t)n); /* the output may hold secrets */
	return true;
}

int spawn_wait(struct spawn_child *c, int timeout_ms, struct spawn_buf *out,
	       struct spawn_buf *errb)
{
	struct spawn_buf *bufs[2] = {out, errb};
	long long deadline = timeout_ms > 0 ? util_now_ms() + timeout_ms : 0;
	bool overflow = false;
	int r = 0;
	for (;;) {
		struct pollfd pf[2];
		for (int i = 0; i < 2; i++)
			pf[i] = (struct pollfd){.fd = c->pipe[i + 1],
						.events = POLLIN};
		if (pf[0].fd < 0 && pf[1].fd < 0)
			break;
		int wait = -1;
		if (deadline) {
			long long left = deadline - util_now_ms();
			if (left <= 0) {
				r = -ETIMEDOUT;
				break;
			}
			wait = (int)left;
		}
		int n = poll(pf, 2, wait);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (!pf[i].revents ||
			    drain(pf[i].fd, bufs[i], &overflow))
				continue;
			close(c->pipe[i + 1]);
			c->pipe[i + 1] = -1;
		}
		if (overflow) {
			r = -EFBIG;
			break;
		}
	}
	bool still_open = c->pipe[1] >= 0 || c->pipe[2] >= 0;
	spawn_child_close(c);
	if (still_open && !c->reaped && c->pid > 0)
		kill(c->pid, SIGKILL); /* not yet reaped: still ours */
	while (!c->reaped && c->pid > 0) {
		int st;
		pid_t w = waitpid(c->pid, &st, 0);
		if (w == c->pid) {
			c->reaped = true;
			c->status = st;
		} else if (w < 0 && errno != EINTR) {
			break;
		}
	}
	return r;
}

bool spawn_poll(struct spawn_child *c)
{
	if (c->reaped || c->pid <= 0)
		return c->reaped;
	int st;
	pid_t w;
	do
		w = waitpid(c->pid, &st, WNOHANG);
	while (w < 0 && errno == EINTR);
	if (w == c->pid) {
		c->reaped = true;
		c->status = st;
	}
	return c->reaped;
}

void spawn_kill(struct spawn_child *c)
{
	if (c->pid <= 0 || c->reaped)
		return;
	kill(c->pid, SIGKILL);
	int st;
	pid_t w;
	do
		w = waitpid(c->pid, &st, 0);
	while (w < 0 && errno == EINTR);
	c->reaped = true;
	c->status = w == c->pid ? st : 0;
}

void spawn_child_close(struct spawn_child *c)
{
	for (int i = 0; i < SPAWN_FDS_MAX; i++) {
		if (c->pipe[i] >= 0)
			close(c->pipe[i]);
		c->pipe[i] = -1;
	}
}
