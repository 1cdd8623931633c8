/* Unit tests for QEMU's process (src/host/vm/qemu_proc.c), with harmless
 * programs in QEMU's place. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vm/qemu_proc.h"

/* Starts argv with out on a pipe and the map given; returns the read end. */
static int start(struct spawn_child *p, char *const argv[],
		 const struct qemu_proc_fd *map, size_t n)
{
	int out[2];
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	struct qemu_launch l = {.argv = argv, .out_fd = out[1]};
	for (size_t i = 0; i < n; i++)
		assert_true(qemu_launch_fd(&l, map[i].fd, map[i].child));
	struct ccvm_err e = {0};
	assert_int_equal(qemu_proc_start(p, &l, &e), 0);
	assert_true(p->pid > 0);
	assert_false(p->reaped);
	close(out[1]);
	return out[0];
}

static void read_all(int fd, char *buf, size_t cap)
{
	size_t len = 0;
	ssize_t n;
	while (len + 1 < cap && (n = read(fd, buf + len, cap - 1 - len)) > 0)
		len += (size_t)n;
	buf[len] = '\0';
	close(fd);
}

static void test_exit_status(void **state)
{
	(void)state;
	struct spawn_child p;
	char *const argv[] = {"/bin/sh", "-c", "exit 7", NULL};
	int out = start(&p, argv, NULL, 0);
	spawn_wait(&p, 0, NULL, NULL);
	assert_true(p.reaped);
	assert_true(WIFEXITED(p.status));
	assert_int_equal(WEXITSTATUS(p.status), 7);
	spawn_kill(&p); /* reaped already: nothing to do */
	assert_true(WIFEXITED(p.status));
	close(out);
}

static void test_kill(void **state)
{
	(void)state;
	struct spawn_child p;
	char *const argv[] = {"/bin/sleep", "30", NULL};
	int out = start(&p, argv, NULL, 0);
	spawn_poll(&p);
	assert_false(p.reaped); /* still sleeping */
	spawn_kill(&p);
	assert_true(p.reaped);
	assert_true(WIFSIGNALED(p.status));
	assert_int_equal(WTERMSIG(p.status), SIGKILL);
	assert_int_equal(kill(p.pid, 0), -1); /* gone, and reaped */
	close(out);
}

/* The child has the map's fds and no other, and the fixed environment. */
static void test_fd_map_and_env(void **state)
{
	(void)state;
	int a[2], b[2], stray[2];
	assert_int_equal(pipe2(a, O_CLOEXEC), 0);
	assert_int_equal(pipe2(b, O_CLOEXEC), 0);
	assert_int_equal(pipe(stray), 0); /* not close-on-exec: not passed */
	struct qemu_proc_fd map[] = {{a[0], QEMU_FD_CTL}, {b[0], QEMU_FD_VFS}};
	char *const argv[] = {
	    "/bin/sh", "-c",
	    "for f in 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19; do "
	    "[ -e /proc/self/fd/$f ] && printf '%s ' $f; done; "
	    "printf '%s|%s|%s' \"$PATH\" \"$LC_ALL\" \"${HOME-unset}\"",
	    NULL};
	struct spawn_child p;
	int out = start(&p, argv, map, 2);
	char buf[256];
	read_all(out, buf, sizeof(buf));
	spawn_wait(&p, 0, NULL, NULL);
	assert_true(WIFEXITED(p.status));
	assert_string_equal(buf, "0 1 2 3 7 /usr/bin:/bin|C|unset");
	for (int i = 0; i < 2; i++) {
		close(a[i]);
		close(b[i]);
		close(stray[i]);
	}
}

/* A program that cannot be executed: 127, and it says so. */
/* A QEMU that cannot be executed is an error of the start itself, naming
 * the step, not a child that exits 127 later. */
static void test_exec_fails(void **state)
{
	(void)state;
	char *const argv[] = {"/nonexistent/qemu", NULL};
	int out[2];
	assert_int_equal(pipe2(out, O_CLOEXEC), 0);
	struct qemu_launch l = {.argv = argv, .out_fd = out[1]};
	struct spawn_child p = {0};
	struct ccvm_err e = {0};
	assert_int_equal(qemu_proc_start(&p, &l, &e), -ENOENT);
	assert_int_equal(p.pid, 0);
	assert_string_equal(e.msg, "exec qemu: No such file or directory");
	close(out[1]);
	char buf[64];
	read_all(out[0], buf, sizeof(buf));
	assert_string_equal(buf, ""); /* nothing half-started wrote */
}

static void test_map_full(void **state)
{
	(void)state;
	struct qemu_launch l = {0};
	for (int i = 0; i < QEMU_PROC_FDS_MAX; i++)
		assert_true(qemu_launch_fd(&l, 0, 3 + i));
	assert_false(qemu_launch_fd(&l, 0, 3 + QEMU_PROC_FDS_MAX));
	struct spawn_child never = {0};
	spawn_poll(&never); /* not started: nothing to do */
	spawn_kill(&never);
	assert_false(never.reaped);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_exit_status),
	    cmocka_unit_test(test_kill),
	    cmocka_unit_test(test_fd_map_and_env),
	    cmocka_unit_test(test_exec_fails),
	    cmocka_unit_test(test_map_full),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
