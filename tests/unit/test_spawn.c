/* spawn: the fd map, the environment, the death signal, the deadline, the
 * bounded capture, exec failures and the child's signal state, checked
 * with real programs. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "sys/spawn.h"
#include "util.h"

/* Runs argv with stdout captured (max bytes) and the given extra fds;
 * returns spawn_wait's result. */
static int run(const char *const *argv, const char *const *envp,
	       const struct spawn_fd *extra, size_t n_extra, int timeout_ms,
	       struct spawn_buf *out, struct spawn_child *c)
{
	struct spawn_fd fds[8] = {{1, SPAWN_PIPE}};
	size_t n = 1;
	for (size_t i = 0; i < n_extra && n < ARRAY_LEN(fds); i++)
		fds[n++] = extra[i];
	struct spawn_opts o = {
	    .argv = argv, .envp = envp, .fds = fds, .n_fds = n};
	struct ccvm_err err = {0};
	int r = spawn_start(&o, c, &err);
	if (r < 0)
		return r;
	return spawn_wait(c, timeout_ms, out, NULL);
}

static void fd_map_applied(void **state)
{
	(void)state;
	/* Fds ccvm leaves open without close-on-exec must not reach the
	 * child; the mapped one arrives as fd 5 and works. */
	int leak = open("/dev/null", O_RDONLY);
	assert_true(leak >= 0);
	int leak_hi = fcntl(leak, F_DUPFD, 20);
	assert_true(leak_hi >= 20);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	const char *argv[] = {"/bin/sh", "-c",
			      "for n in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 "
			      "16 17 18 19 20 21 22 23 24 25; do "
			      "[ -e /dev/fd/$n ] && printf '%s ' $n; done; "
			      "echo via5 >&5",
			      NULL};
	const char *envp[] = {"PATH=/usr/bin:/bin", NULL};
	struct spawn_fd five = {5, p[1]};
	struct spawn_buf out = {.max = 4096};
	struct spawn_child c;
	assert_int_equal(run(argv, envp, &five, 1, 5000, &out, &c), 0);
	close(p[1]);
	assert_true(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
	assert_string_equal(out.data, "0 1 2 5 ");
	char buf[16] = "";
	assert_int_equal(read(p[0], buf, sizeof(buf) - 1), 5);
	assert_string_equal(buf, "via5\n");
	close(p[0]);
	close(leak);
	close(leak_hi);
	spawn_buf_free(&out);
}

static void dev_null_where_asked(void **state)
{
	(void)state;
	const char *argv[] = {"/bin/sh", "-c",
			      "readlink /proc/self/fd/0; readlink "
			      "/proc/self/fd/2",
			      NULL};
	const char *envp[] = {"PATH=/usr/bin:/bin", NULL};
	struct spawn_fd two = {2, SPAWN_NULL};
	struct spawn_buf out = {.max = 4096};
	struct spawn_child c;
	assert_int_equal(run(argv, envp, &two, 1, 5000, &out, &c), 0);
	assert_string_equal(out.data, "/dev/null\n/dev/null\n");
	spawn_buf_free(&out);
}

static void environment_exactly(void **state)
{
	(void)state;
	setenv("CCVM_SPAWN_LEAK", "1", 1);
	const char *argv[] = {"/usr/bin/env", NULL};
	const char *envp[] = {"A=1", "B=two words", NULL};
	struct spawn_buf out = {.max = 4096};
	struct spawn_child c;
	assert_int_equal(run(argv, envp, NULL, 0, 5000, &out, &c), 0);
	assert_string_equal(out.data, "A=1\nB=two words\n");
	spawn_buf_free(&out);
	/* NULL: an empty environment. */
	assert_int_equal(run(argv, NULL, NULL, 0, 5000, &out, &c), 0);
	assert_int_equal(out.len, 0);
	spawn_buf_free(&out);
	unsetenv("CCVM_SPAWN_LEAK");
}

static void cwd_and_status(void **state)
{
	(void)state;
	const char *argv[] = {"/bin/sh", "-c", "pwd; exit 3", NULL};
	struct spawn_fd fds[] = {{1, SPAWN_PIPE}};
	struct spawn_opts o = {
	    .argv = argv, .fds = fds, .n_fds = 1, .cwd = "/proc"};
	struct spawn_child c;
	struct ccvm_err err = {0};
	assert_int_equal(spawn_start(&o, &c, &err), 0);
	struct spawn_buf out = {.max = 64};
	assert_int_equal(spawn_wait(&c, 5000, &out, NULL), 0);
	assert_string_equal(out.data, "/proc\n");
	assert_true(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 3);
	spawn_buf_free(&out);
}

/* The child of the parent that dies: reports its grandchild's pid. */
static void death_signal(void **state)
{
	(void)state;
	/* Orphans come to us, so the grandchild can be reaped here. */
	assert_int_equal(prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), 0);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t mid = fork();
	assert_true(mid >= 0);
	if (mid == 0) {
		const char *argv[] = {"/bin/sleep", "30", NULL};
		struct spawn_opts o = {.argv = argv, .death_sig = SIGTERM};
		struct spawn_child c;
		struct ccvm_err err = {0};
		if (spawn_start(&o, &c, &err) < 0)
			_exit(1);
		pid_t gc = c.pid;
		if (write(p[1], &gc, sizeof(gc)) != sizeof(gc))
			_exit(1);
		_exit(0); /* the parent dies: the child must get SIGTERM */
	}
	close(p[1]);
	pid_t gc = 0;
	assert_int_equal(read(p[0], &gc, sizeof(gc)), sizeof(gc));
	close(p[0]);
	int st;
	assert_int_equal(waitpid(mid, &st, 0), mid);
	long long t0 = util_now_ms();
	assert_int_equal(waitpid(gc, &st, 0), gc);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGTERM);
	assert_true(util_now_ms() - t0 < 5000);
	prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0);
}

static void deadline_kills(void **state)
{
	(void)state;
	const char *argv[] = {"/bin/sleep", "20", NULL};
	struct spawn_buf out = {.max = 64};
	struct spawn_child c;
	long long t0 = util_now_ms();
	assert_int_equal(run(argv, NULL, NULL, 0, 200, &out, &c), -ETIMEDOUT);
	assert_true(util_now_ms() - t0 < 3000);
	assert_true(c.reaped);
	assert_true(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGKILL);
	spawn_buf_free(&out);
}

static void capture_bounded(void **state)
{
	(void)state;
	const char *argv[] = {"/bin/sh", "-c",
			      "i=0; while [ $i -lt 2000 ]; do "
			      "echo 0123456789abcdef; i=$((i+1)); done",
			      NULL};
	/* Past max: killed, -EFBIG, max bytes kept. */
	struct spawn_buf out = {.max = 1000};
	struct spawn_child c;
	assert_int_equal(run(argv, NULL, NULL, 0, 10000, &out, &c), -EFBIG);
	assert_true(out.over);
	assert_int_equal(out.len, 1000);
	assert_int_equal(strlen(out.data), 1000);
	assert_memory_equal(out.data, "0123456789abcdef\n0123", 21);
	spawn_buf_free(&out);
	/* drain_over: the child runs to its end, the rest is dropped. */
	struct spawn_buf all = {.max = 100, .drain_over = true};
	assert_int_equal(run(argv, NULL, NULL, 0, 10000, &all, &c), 0);
	assert_true(all.over);
	assert_int_equal(all.len, 100);
	assert_true(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0);
	spawn_buf_free(&all);
}

static void exec_failure_reported(void **state)
{
	(void)state;
	struct spawn_child c;
	struct ccvm_err err = {0};
	const char *missing[] = {"/nonexistent/tool", NULL};
	struct spawn_opts o = {.argv = missing};
	assert_int_equal(spawn_start(&o, &c, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "exec tool"));
	/* No PATH search: a bare name is refused before any fork. */
	const char *bare[] = {"sleep", "1", NULL};
	o.argv = bare;
	assert_int_equal(spawn_start(&o, &c, &err), -EINVAL);
	/* A missing working directory, and a bad map entry. */
	const char *ok[] = {"/bin/sleep", "0", NULL};
	o.argv = ok;
	o.cwd = "/nonexistent";
	assert_int_equal(spawn_start(&o, &c, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "chdir"));
	o.cwd = NULL;
	struct spawn_fd bad[] = {{3, 0}, {3, 1}};
	o.fds = bad;
	o.n_fds = 2;
	assert_int_equal(spawn_start(&o, &c, &err), -EINVAL);
}

static int failing_hook(void *arg, const char **step)
{
	*step = (const char *)arg;
	errno = EPERM;
	return -1;
}

static void pre_exec_failure_reported(void **state)
{
	(void)state;
	const char *argv[] = {"/bin/sleep", "0", NULL};
	struct spawn_opts o = {.argv = argv,
			       .pre_exec = failing_hook,
			       .pre_exec_arg = "seccomp filter"};
	struct spawn_child c;
	struct ccvm_err err = {0};
	assert_int_equal(spawn_start(&o, &c, &err), -EPERM);
	assert_non_null(strstr(err.msg, "seccomp filter"));
}

/* The SigBlk or SigIgn line of a /proc/PID/status text. */
static unsigned long long sig_line(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	assert_non_null(p);
	return strtoull(p + strlen(key), NULL, 16);
}

static void signals_clean(void **state)
{
	(void)state;
	/* As in a session: signals blocked and one ignored in ccvm. */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &old);
	struct sigaction ign = {.sa_handler = SIG_IGN}, was;
	sigaction(SIGPIPE, &ign, &was);
	const char *argv[] = {"/bin/cat", "/proc/self/status", NULL};
	struct spawn_buf out = {.max = 8192};
	struct spawn_child c;
	int r = run(argv, NULL, NULL, 0, 5000, &out, &c);
	sigaction(SIGPIPE, &was, NULL);
	sigprocmask(SIG_SETMASK, &old, NULL);
	assert_int_equal(r, 0);
	assert_int_equal(sig_line(out.data, "SigBlk:\t"), 0);
	assert_int_equal(sig_line(out.data, "SigIgn:\t"), 0);
	spawn_buf_free(&out);
}

static int called(void *arg)
{
	/* fd 3 is the pipe; nothing else above 2. */
	for (int fd = 4; fd < 64; fd++)
		if (fcntl(fd, F_GETFD) >= 0)
			return 9;
	const char *msg = arg;
	return write(3, msg, strlen(msg)) == (ssize_t)strlen(msg) ? 7 : 8;
}

static void call_variant(void **state)
{
	(void)state;
	int leak = open("/dev/null", O_RDONLY);
	int leak_hi = fcntl(leak, F_DUPFD, 30);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	struct spawn_fd fds[] = {{3, p[1]}};
	struct spawn_opts o = {.fds = fds, .n_fds = 1, .keep_signals = true};
	struct spawn_child c;
	struct ccvm_err err = {0};
	assert_int_equal(spawn_call(&o, called, "hello", &c, &err), 0);
	close(p[1]);
	char buf[16] = "";
	assert_int_equal(read(p[0], buf, sizeof(buf) - 1), 5);
	assert_string_equal(buf, "hello");
	assert_int_equal(spawn_wait(&c, 5000, NULL, NULL), 0);
	assert_true(WIFEXITED(c.status));
	assert_int_equal(WEXITSTATUS(c.status), 7);
	close(p[0]);
	close(leak);
	close(leak_hi);
}

static void poll_and_kill(void **state)
{
	(void)state;
	const char *argv[] = {"/bin/sleep", "20", NULL};
	struct spawn_opts o = {.argv = argv, .new_pgrp = true};
	struct spawn_child c;
	struct ccvm_err err = {0};
	assert_int_equal(spawn_start(&o, &c, &err), 0);
	assert_int_equal(getpgid(c.pid), c.pid);
	assert_false(spawn_poll(&c));
	spawn_kill(&c);
	assert_true(c.reaped);
	assert_true(WIFSIGNALED(c.status));
	assert_true(spawn_poll(&c));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(fd_map_applied),
	    cmocka_unit_test(dev_null_where_asked),
	    cmocka_unit_test(environment_exactly),
	    cmocka_unit_test(cwd_and_status),
	    cmocka_unit_test(death_signal),
	    cmocka_unit_test(deadline_kills),
	    cmocka_unit_test(capture_bounded),
	    cmocka_unit_test(exec_failure_reported),
	    cmocka_unit_test(pre_exec_failure_reported),
	    cmocka_unit_test(signals_clean),
	    cmocka_unit_test(call_variant),
	    cmocka_unit_test(poll_and_kill),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
