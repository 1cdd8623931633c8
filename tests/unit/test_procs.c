/* Unit tests for ccvm's own process (src/host/sys/procs.c). */
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
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys/procs.h"
#include "util.h"

#define KEY "sk-ant-api03-procs-unit-test-key"

static bool environ_has(const char *s)
{
	static char buf[1 << 16];
	int fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	ssize_t len = util_read_all(fd, buf, sizeof(buf));
	close(fd);
	assert_true(len > 0);
	return memmem(buf, (size_t)len, s, strlen(s)) != NULL;
}

/* The key leaves the environment, its bytes too; a forked child wipes
 * its copy. */
static void test_take_secret(void **state)
{
	(void)state;
	size_t len;
	assert_null(procs_take_secret("CCVM_TEST_UNSET_VARIABLE", &len));
	assert_int_equal(len, 0);
	/* /proc/self/environ shows the initial environment block: put the
	 * key there the way a shell would, by executing ourselves. */
	if (!getenv("CCVM_TEST_KEY")) {
		char self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
		assert_true(n > 0);
		self[n] = '\0';
		pid_t pid = fork();
		if (pid == 0) {
			char *argv[] = {self, NULL};
			char *envp[] = {"CCVM_TEST_KEY=" KEY,
					"CMOCKA_TEST_ABORT=1", NULL};
			execve(self, argv, envp);
			_exit(127);
		}
		int st;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
		return;
	}
	/* In the re-executed copy. */
	assert_true(environ_has(KEY)); /* the probe sees it before */
	const char *k = procs_take_secret("CCVM_TEST_KEY", &len);
	assert_non_null(k);
	assert_int_equal(len, strlen(KEY));
	assert_memory_equal(k, KEY, len);
	assert_null(getenv("CCVM_TEST_KEY"));
	assert_false(environ_has(KEY));
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	if (pid == 0) {
		procs_forget_secrets();
		char zero = memchr(k, 's', len) == NULL;
		_exit(write(p[1], &zero, 1) == 1 ? 0 : 1);
	}
	char zero = 0;
	assert_int_equal(read(p[0], &zero, 1), 1);
	assert_true(zero);		    /* the child's copy is wiped */
	assert_memory_equal(k, KEY, len); /* ours is not */
	waitpid(pid, NULL, 0);
	close(p[0]);
	close(p[1]);
	procs_secret_free();
}

static long ppid_of(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *rp = strrchr(buf, ')');
	long ppid = -1;
	if (rp)
		sscanf(rp + 2, "%*c %ld", &ppid);
	return ppid;
}

/* In a child of the test: harden, then leave an orphan behind a child
 * that exits; procs_reap_all ends it, and leaves the child it had
 * before alone.  Exit status: which check failed. */
static int reaper_main(void)
{
	pid_t before = fork();
	if (before == 0) {
		pause();
		_exit(0);
	}
	struct ccvm_err err = {0};
	if (procs_harden(&err) < 0)
		return 1;
	struct rlimit rl;
	if (prctl(PR_GET_DUMPABLE) != 0 || getrlimit(RLIMIT_CORE, &rl) < 0 ||
	    rl.rlim_cur != 0 || rl.rlim_max != 0)
		return 2;
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return 3;
	pid_t a = fork();
	if (a == 0) {
		pid_t b = fork();
		if (b == 0) {
			pause();
			_exit(0);
		}
		_exit(write(p[1], &b, sizeof(b)) == sizeof(b) ? 0 : 1);
	}
	pid_t b = 0;
	if (read(p[0], &b, sizeof(b)) != sizeof(b) ||
	    waitpid(a, NULL, 0) != a)
		return 4;
	/* The orphan is ours now (positive control). */
	if (kill(b, 0) < 0 || ppid_of(b) != getpid())
		return 5;
	procs_reap_all();
	if (kill(b, 0) == 0 || errno != ESRCH)
		return 6; /* still there, or a zombie */
	if (kill(before, 0) < 0)
		return 7; /* not ccvm's to end */
	kill(before, SIGKILL);
	waitpid(before, NULL, 0);
	return 0;
}

static void test_reap_all(void **state)
{
	(void)state;
	pid_t pid = fork();
	if (pid == 0)
		_exit(reaper_main());
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_take_secret),
	    cmocka_unit_test(test_reap_all),
	};
	if (getenv("CCVM_TEST_KEY")) {
		/* The re-executed copy runs the one test. */
		test_take_secret(NULL);
		return 0;
	}
	return cmocka_run_group_tests(tests, NULL, NULL);
}
