/* Unit tests for the pure parts of the guest's memory watcher
 * (src/guest/vm/memwatch.c): its threshold and the /proc parsers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "vm/memwatch.h"

static void test_threshold(void **state)
{
	(void)state;
	assert_int_equal(memwatch_threshold_kb(512 * 1024), 32 * 1024);
	assert_int_equal(memwatch_threshold_kb(1024 * 1024), 64 * 1024);
	assert_int_equal(memwatch_threshold_kb(2048 * 1024), 128 * 1024);
	assert_int_equal(memwatch_threshold_kb(4096 * 1024), 128 * 1024);
	assert_int_equal(memwatch_threshold_kb(64ull * 1024 * 1024),
			 128 * 1024);
	assert_int_equal(memwatch_threshold_kb(0), 32 * 1024);
}

static void test_meminfo(void **state)
{
	(void)state;
	const char *t = "MemTotal:         498644 kB\n"
			"MemFree:          475316 kB\n"
			"MemAvailable:     470212 kB\n"
			"Buffers:               0 kB\n";
	uint64_t total = 1, avail = 1;
	assert_int_equal(memwatch_parse_meminfo(t, strlen(t), &total, &avail),
			 0);
	assert_int_equal(total, 498644);
	assert_int_equal(avail, 470212);
	/* A prefix of another name is not the name. */
	const char *u = "MemTotalX: 5 kB\nMemTotal: 7 kB\nMemAvailable:\t3 kB";
	assert_int_equal(memwatch_parse_meminfo(u, strlen(u), &total, &avail),
			 0);
	assert_int_equal(total, 7);
	assert_int_equal(avail, 3);
	const char *missing = "MemTotal: 7 kB\nMemFree: 3 kB\n";
	assert_int_equal(
	    memwatch_parse_meminfo(missing, strlen(missing), &total, &avail),
	    -EINVAL);
	const char *nodigits = "MemTotal: kB\nMemAvailable: 3 kB\n";
	assert_int_equal(
	    memwatch_parse_meminfo(nodigits, strlen(nodigits), &total, &avail),
	    -EINVAL);
	const char *huge = "MemTotal: 99999999999999999999999 kB\n"
			   "MemAvailable: 3 kB\n";
	assert_int_equal(
	    memwatch_parse_meminfo(huge, strlen(huge), &total, &avail),
	    -EINVAL);
	/* The length bounds the search: no NUL needed, nothing past it. */
	assert_int_equal(memwatch_parse_meminfo(t, 20, &total, &avail),
			 -EINVAL);
}

static void test_oom_kills(void **state)
{
	(void)state;
	const char *v = "pgfault 100\noom_kill_x 9\noom_kill 3\nnr_free 1\n";
	assert_int_equal(memwatch_parse_oom_kills(v, strlen(v)), 3);
	const char *none = "pgfault 100\n";
	assert_int_equal(memwatch_parse_oom_kills(none, strlen(none)), 0);
	assert_int_equal(memwatch_parse_oom_kills("", 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_threshold),
	    cmocka_unit_test(test_meminfo),
	    cmocka_unit_test(test_oom_kills),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
