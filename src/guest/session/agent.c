#define _GNU_SOURCE
#include "session/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "setup/env.h"
#include "proto.h"
#include "setup/user.h"
#include "util.h"

#define GROUP_FILE_MAX (4 * 1024 * 1024)

int agent_exec(char *const argv[], char *const envp[], const char *path,
	       int *failed_errno)
{
	const char *name = argv[0];
	if (name[0] == '\0') {
		*failed_errno = ENOENT;
		return 127;
	}
	if (strchr(name, '/')) {
		execve(name, argv, envp);
		*failed_errno = errno;
		return errno == ENOENT || errno == ENOTDIR ? 127 : 126;
	}
	bool eacces = false;
	size_t nl = strlen(name);
	for (const char *p = path;; p++) {
		const char *end = strchrnul(p, ':');
		size_t dl = (size_t)(end - p);
		char full[PATH_MAX];
		if (dl + nl + 2 <= sizeof(full)) {
			/* An empty PATH element means the current directory. */
			if (dl == 0) {
				full[0] = '.';
				dl = 1;
			} else {
				memcpy(full, p, dl);
			}
			full[dl] = '/';
			memcpy(full + dl + 1, name, nl + 1);
			execve(full, argv, envp);
			if (errno == EACCES)
				eacces = true;
			else if (errno != ENOENT && errno != ENOTDIR) {
				*failed_errno = errno;
				return 126;
			}
		}
		if (*end == '\0')
			break;
		p = end;
	}
	*failed_errno = eacces ? EACCES : ENOENT;
	return eacces ? 126 : 127;
}

/* Child-side failure: a message on the program's stderr and a shell-like
 * exit code. */
static void __attribute__((noreturn))
child_fail(int code, const char *what, const char *arg, int e)
{
	char msg[512];
	int n = snprintf(msg, sizeof(msg), "ccvm-init: %s%s%s: %s\n", what,
			 arg ? " " : "", arg ? arg : "", strerror(e));
	if (n > 0)
		(void)util_write_all(STDERR_FILENO, msg,
				     (size_t)n < sizeof(msg) ? (size_t)n
							     : sizeof(msg) - 1);
	_exit(code);
}

static void __attribute__((noreturn))
child_run(const struct ctl_state *st, char **argv, const gid_t *groups,
	  size_t ngroups)
{
	const struct guest_setup *s = &st->setup;
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	if (setgroups(ngroups, groups) < 0)
		child_fail(126, "setgroups", NULL, errno);
	if (setgid(s->gid) < 0)
		child_fail(126, "setgid", NULL, errno);
	if (setuid(s->uid) < 0)
		child_fail(126, "setuid", NULL, errno);
	if (getuid() != s->uid || geteuid() != s->uid || getgid() != s->gid ||
	    getegid() != s->gid)
		child_fail(126, "dropping privileges", NULL, EPERM);
	if (s->uid != 0 && setuid(0) == 0)
		child_fail(126, "dropping privileges", NULL, EPERM);
	if (chdir(s->cwd) < 0)
		child_fail(126, "chdir", s->cwd, errno);

	struct env_block env;
	if (env_build(s, st->env.data ? st->env.data : "", st->env.len,
		      st->secrets.data ? st->secrets.data : "", st->secrets.len,
		      &env) < 0)
		child_fail(126, "building the environment", NULL, ENOMEM);
	const char *path = env_get(env.envp, "PATH");
	int e = 0;
	int code =
	    agent_exec(argv, env.envp, path ? path : ENV_DEFAULT_PATH, &e);
	if (code == 127 && !strchr(argv[0], '/')) {
		char msg[256];
		int n = snprintf(msg, sizeof(msg),
				 "ccvm-init: %s: command not found\n", argv[0]);
		if (n > 0)
			(void)util_write_all(STDERR_FILENO, msg,
					     strnlen(msg, sizeof(msg)));
		_exit(127);
	}
	child_fail(code, argv[0], NULL, e);
}

static int open_pty(const struct guest_setup *s, int *master, int *slave,
		    struct ccvm_err *err)
{
	autoclose int m = open("/dev/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0)
		return ccvm_err_sys(err, errno, "/dev/ptmx");
	int unlock = 0;
	if (ioctl(m, TIOCSPTLCK, &unlock) < 0)
		return ccvm_err_sys(err, errno, "unlocking the pty");
	int sl = ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (sl < 0)
		return ccvm_err_sys(err, errno, "opening the pty slave");
	struct winsize ws = {.ws_row = s->rows, .ws_col = s->cols};
	struct termios t;
	if (ioctl(sl, TIOCSWINSZ, &ws) < 0 || tcgetattr(sl, &t) < 0) {
		int e = errno;
		close(sl);
		return ccvm_err_sys(err, e, "setting up the pty");
	}
	t.c_iflag |= IUTF8;
	tcsetattr(sl, TCSANOW, &t);
	*master = steal_fd(&m);
	*slave = sl;
	return 0;
}

static size_t load_groups(const struct guest_setup *s, gid_t *groups)
{
	autofree char *grp = NULL;
	struct ccvm_err ignored;
	if (util_read_file("/etc/group", GROUP_FILE_MAX, &grp, NULL, &ignored) <
	    0) {
		groups[0] = s->gid;
		return 1;
	}
	return user_groups(grp, s->user, s->gid, groups, USER_GROUPS_MAX);
}

/*
 * The session leader of pty mode, a fork of PID 1.  The program must not be
 * a child of PID 1: the kernel counts no process whose parent is init as a
 * link to its session, so the program's process group would be orphaned
 * and Ctrl-Z's SIGTSTP discarded.  Like a shell, this process leads the
 * session, owns the terminal and puts the program in its own foreground
 * group; it mirrors the program's stops (by stopping itself) and its end
 * (by exiting the same way), so PID 1 sees them in waitpid.
 */
static void __attribute__((noreturn))
session_leader(const struct ctl_state *st, char **argv, const gid_t *groups,
	       size_t ngroups, int slave, int report)
{
	if (setsid() < 0 || ioctl(slave, TIOCSCTTY, 0) < 0)
		child_fail(126, "taking the pty as controlling terminal", NULL,
			   errno);
	pid_t pid = fork();
	if (pid < 0)
		child_fail(126, "fork", NULL, errno);
	if (pid == 0) {
		close(report);
		setpgid(0, 0);
		/* Become the foreground group; SIGTTOU is blocked so this
		 * works from the background. */
		sigset_t ttou;
		sigemptyset(&ttou);
		sigaddset(&ttou, SIGTTOU);
		sigprocmask(SIG_BLOCK, &ttou, NULL);
		tcsetpgrp(slave, getpid());
		dup2(slave, 0);
		dup2(slave, 1);
		dup2(slave, 2);
		child_run(st, argv, groups, ngroups);
	}
	setpgid(pid, pid); /* either side may win the race */
	uint8_t buf[4];
	proto_put_u32(buf, (uint32_t)pid);
	(void)util_write_all(report, buf, sizeof(buf));
	close(report);
	close(slave);
	for (;;) {
		int status;
		pid_t r = waitpid(pid, &status, WUNTRACED);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			_exit(126);
		if (WIFSTOPPED(status)) {
			kill(getpid(), SIGSTOP);
			/* Continued by PID 1: continue the program. */
			kill(-pid, SIGCONT);
		} else if (WIFEXITED(status)) {
			_exit(WEXITSTATUS(status));
		} else if (WIFSIGNALED(status)) {
			int sig = WTERMSIG(status);
			struct rlimit no_core = {0, 0};
			setrlimit(RLIMIT_CORE, &no_core);
			signal(sig, SIG_DFL);
			sigset_t one;
			sigemptyset(&one);
			sigaddset(&one, sig);
			sigprocmask(SIG_UNBLOCK, &one, NULL);
			kill(getpid(), sig);
			_exit(128 + sig);
		}
	}
}

static int spawn_pty(const struct ctl_state *st, char **argv,
		     const gid_t *groups, size_t ngroups, struct agent *a,
		     struct ccvm_err *err)
{
	autoclose int master = -1, slave = -1;
	int r = open_pty(&st->setup, &master, &slave, err);
	if (r < 0)
		return r;
	int rep[2];
	if (pipe2(rep, O_CLOEXEC) < 0)
		return ccvm_err_sys(err, errno, "pipe2");
	autoclose int rd = rep[0];
	pid_t pid = fork();
	if (pid < 0) {
		close(rep[1]);
		return ccvm_err_sys(err, errno, "fork");
	}
	if (pid == 0) {
		close(master);
		close(rd);
		session_leader(st, argv, groups, ngroups, slave, rep[1]);
	}
	close(rep[1]);
	uint8_t buf[4];
	ssize_t n = util_read_all(rd, buf, sizeof(buf));
	a->pid = pid;
	if (n != (ssize_t)sizeof(buf)) {
		/* The session leader failed before forking; its exit status
		 * and message tell the rest. */
		a->pgid = pid;
	} else {
		a->pgid = (pid_t)proto_get_u32(buf);
	}
	a->master = steal_fd(&master);
	util_set_nonblock(a->master, true);
	return 0;
}

int agent_spawn(const struct ctl_state *st, struct agent *a,
		struct ccvm_err *err)
{
	const struct guest_setup *s = &st->setup;
	autofree char **argv = NULL;
	if (ctl_argv(st, &argv) < 0)
		return ccvm_err_set(err, EINVAL, "no program to run");
	gid_t groups[USER_GROUPS_MAX];
	size_t ngroups = load_groups(s, groups);

	a->pid = a->pgid = -1;
	a->master = a->in = a->out = a->err = -1;
	if (s->pty)
		return spawn_pty(st, argv, groups, ngroups, a, err);

	int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
	pid_t pid = -1;
	int e = 0;
	if (pipe2(pin, O_CLOEXEC) < 0 || pipe2(pout, O_CLOEXEC) < 0 ||
	    pipe2(perr, O_CLOEXEC) < 0)
		e = errno;
	else if ((pid = fork()) < 0)
		e = errno;
	if (pid == 0) {
		setsid();
		dup2(pin[0], 0);
		dup2(pout[1], 1);
		dup2(perr[1], 2);
		child_run(st, argv, groups, ngroups);
	}
	int *ends[] = {&pin[0], &pout[1], &perr[1]};
	for (size_t i = 0; i < ARRAY_LEN(ends); i++)
		if (*ends[i] >= 0)
			close(*ends[i]);
	if (e) {
		int *ours[] = {&pin[1], &pout[0], &perr[0]};
		for (size_t i = 0; i < ARRAY_LEN(ours); i++)
			if (*ours[i] >= 0)
				close(*ours[i]);
		return ccvm_err_sys(err, e, "starting %s", argv[0]);
	}
	a->pid = a->pgid = pid;
	a->in = pin[1];
	a->out = pout[0];
	a->err = perr[0];
	util_set_nonblock(a->in, true);
	util_set_nonblock(a->out, true);
	util_set_nonblock(a->err, true);
	return 0;
}

void agent_close(struct agent *a)
{
	int *fds[] = {&a->master, &a->in, &a->out, &a->err};
	for (size_t i = 0; i < ARRAY_LEN(fds); i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}
