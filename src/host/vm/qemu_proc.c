/* QEMU's process: fork, exec, reap, kill (qemu_proc.h). */
#define _GNU_SOURCE
#include "vm/qemu_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys/nosuid.h"
#include "util.h"

char *const qemu_proc_env[] = {"PATH=/usr/bin:/bin", "LC_ALL=C", NULL};

bool qemu_launch_fd(struct qemu_launch *l, int fd, int child)
{
	if (l->nfds >= QEMU_PROC_FDS_MAX)
		return false;
	l->fds[l->nfds++] = (struct qemu_proc_fd){.fd = fd, .child = child};
	return true;
}

/* Moves fd to number target in a child (dup2 clears FD_CLOEXEC). */
static int child_place_fd(int fd, int target)
{
	if (fd == target)
		return util_set_cloexec(fd, false);
	return dup2(fd, target) < 0 ? -errno : 0;
}

static void child_say(int fd, const char *m, size_t n)
{
	if (write(fd, m, n) < 0) {
		/* nothing more to do */
	}
}

/* In the child: only async-signal-safe calls.  Every fd is first moved
 * above the map's numbers, so that placing one never overwrites another. */
__attribute__((noreturn)) static void child_run(const struct qemu_launch *l,
						pid_t parent)
{
	if (!util_child_dies_with(parent))
		_exit(127);
	/* Out of the terminal's process group: ccvm decides what a Ctrl-C
	 * means, not the tty driver. */
	setpgid(0, 0);
	int hi[QEMU_PROC_FDS_MAX];
	int max = 2;
	for (size_t i = 0; i < l->nfds; i++) {
		hi[i] = fcntl(l->fds[i].fd, F_DUPFD_CLOEXEC, 16);
		if (hi[i] < 0)
			_exit(127);
		if (l->fds[i].child > max)
			max = l->fds[i].child;
	}
	int hi_out = fcntl(l->out_fd, F_DUPFD_CLOEXEC, 16);
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (hi_out < 0 || devnull < 0)
		_exit(127);
	if (child_place_fd(devnull, 0) < 0 || child_place_fd(hi_out, 1) < 0 ||
	    child_place_fd(hi_out, 2) < 0)
		_exit(127);
	for (size_t i = 0; i < l->nfds; i++)
		if (child_place_fd(hi[i], l->fds[i].child) < 0)
			_exit(127);
	/* The map's fds and nothing else. */
	for (int fd = 3; fd <= max; fd++) {
		bool mapped = false;
		for (size_t i = 0; i < l->nfds; i++)
			mapped |= l->fds[i].child == fd;
		if (!mapped)
			close(fd);
	}
	close_range((unsigned)max + 1, ~0U, 0);
	/* 9p writes the share as QEMU: no setuid files (nosuid.h). */
	if (l->nosuid && nosuid_install(true) < 0) {
		static const char m[] = "ccvm: cannot install QEMU's "
					"no-setuid seccomp filter\n";
		child_say(2, m, sizeof(m) - 1);
		_exit(127);
	}
	execve(l->argv[0], l->argv, l->envp ? l->envp : qemu_proc_env);
	static const char msg[] = "ccvm: cannot execute QEMU\n";
	child_say(2, msg, sizeof(msg) - 1);
	_exit(127);
}

int qemu_proc_start(struct qemu_proc *p, const struct qemu_launch *l,
		    struct ccvm_err *err)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return ccvm_err_sys(err, errno, "fork");
	if (pid == 0)
		child_run(l, parent);
	*p = (struct qemu_proc){.pid = pid};
	return 0;
}

void qemu_proc_reap(struct qemu_proc *p, bool block)
{
	if (p->pid <= 0 || p->reaped)
		return;
	int st;
	pid_t r;
	do
		r = waitpid(p->pid, &st, block ? 0 : WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == p->pid) {
		p->reaped = true;
		p->status = st;
	}
}

void qemu_proc_kill(struct qemu_proc *p)
{
	if (p->pid > 0 && !p->reaped) {
		kill(p->pid, SIGKILL);
		qemu_proc_reap(p, true);
	}
}
