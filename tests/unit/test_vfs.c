/* Unit tests for virtiofsd's start-up (src/host/share/vfs.c). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "share/vfs.h"

static size_t argc_of(char **v)
{
	size_t n = 0;
	while (v[n])
		n++;
	return n;
}

static bool has(char **v, const char *s)
{
	for (; *v; v++)
		if (!strcmp(*v, s))
			return true;
	return false;
}

static void test_argv(void **state)
{
	(void)state;
	char **v = NULL;
	struct ccvm_err e = {0};
	assert_int_equal(vfs_argv("/usr/lib/qemu/virtiofsd", "/home/u/proj",
				  false, false, &v, &e),
			 0);
	assert_string_equal(v[0], "/usr/lib/qemu/virtiofsd");
	assert_true(has(v, "--fd=3"));
	assert_true(has(v, "source=/home/u/proj"));
	/* Coherence with the host: no attribute or name cache. */
	assert_true(has(v, "cache=auto"));
	assert_true(has(v, "timeout=0"));
	assert_true(has(v, "--rlimit-nofile=0"));
	assert_true(has(v, "--thread-pool-size=0"));
	assert_true(has(v, "log_level=err"));
	/* Never a socket path: the socket is inherited. */
	for (size_t i = 0; i < argc_of(v); i++)
		assert_null(strstr(v[i], "--socket-path"));
	vfs_argv_free(v);

	assert_int_equal(vfs_argv("/x", "/p", true, false, &v, &e), 0);
	assert_true(has(v, "log_level=info"));
	vfs_argv_free(v);

	/* With the host reporting its changes: everything cached, long. */
	assert_int_equal(vfs_argv("/x", "/p", false, true, &v, &e), 0);
	assert_true(has(v, "cache=always"));
	assert_false(has(v, "cache=auto"));
	assert_true(has(v, "timeout=" VFS_CACHED_TIMEOUT));
	assert_false(has(v, "timeout=0"));
	vfs_argv_free(v);
}

static void test_source_escaped(void **state)
{
	(void)state;
	char **v = NULL;
	struct ccvm_err e = {0};
	/* ',' would end the -o value and '\\' escapes: both escaped. */
	assert_int_equal(
	    vfs_argv("/x", "/a,b\\c,cache=none", false, false, &v, &e), 0);
	assert_true(has(v, "source=/a\\,b\\\\c\\,cache=none"));
	assert_false(has(v, "cache=none"));
	vfs_argv_free(v);

	assert_int_equal(vfs_argv("/x", "/a\nb", false, false, &v, &e),
			 -EINVAL);
	assert_non_null(strstr(e.msg, "control character"));
}

static void test_id_map(void **state)
{
	(void)state;
	char buf[32];
	assert_int_equal(vfs_id_map(1001, buf, sizeof(buf)), 12);
	assert_string_equal(buf, "1001 1001 1\n");
	assert_int_equal(vfs_id_map(4000000000u, buf, 8), -ENAMETOOLONG);
}

static void test_find(void **state)
{
	(void)state;
	const char *why = NULL;
	setenv(VFS_ENV_DAEMON, "none", 1);
	assert_null(vfs_find(&why));
	assert_non_null(strstr(why, "none"));
	setenv(VFS_ENV_DAEMON, "", 1);
	assert_null(vfs_find(&why));
	setenv(VFS_ENV_DAEMON, "/nonexistent/virtiofsd", 1);
	assert_null(vfs_find(&why));
	assert_non_null(strstr(why, VFS_ENV_DAEMON));
	setenv(VFS_ENV_DAEMON, "relative/virtiofsd", 1);
	assert_null(vfs_find(&why));
	setenv(VFS_ENV_DAEMON, "/bin/true", 1);
	assert_string_equal(vfs_find(&why), "/bin/true");
	assert_null(why);
	unsetenv(VFS_ENV_DAEMON);
	const char *b = vfs_find(&why);
	if (access(VFS_DAEMON_PATH, X_OK) == 0)
		assert_string_equal(b, VFS_DAEMON_PATH);
	else
		assert_null(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_argv),
	    cmocka_unit_test(test_source_escaped),
	    cmocka_unit_test(test_id_map),
	    cmocka_unit_test(test_find),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
