/* doctor_first_line: runs a program with explicit argv, bounded output,
 * a deadline, and the exit status. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "doctor.h"
#include "util.h"

static void first_line_of_output(void **state)
{
	(void)state;
	char out[64];
	char *argv[] = {"/bin/sh", "-c", "printf 'one two\\nthree\\n'", NULL};
	assert_int_equal(doctor_first_line(argv, 2000, out, sizeof(out)), 0);
	assert_string_equal(out, "one two");
}

static void truncated_to_buffer(void **state)
{
	(void)state;
	char out[5];
	char *argv[] = {"/bin/echo", "abcdefgh", NULL};
	assert_int_equal(doctor_first_line(argv, 2000, out, sizeof(out)), 0);
	assert_string_equal(out, "abcd");
}

static void explicit_environment(void **state)
{
	(void)state;
	char out[256];
	char *argv[] = {"/usr/bin/env", NULL};
	setenv("CCVM_DOCTOR_LEAK", "1", 1);
	assert_int_equal(doctor_first_line(argv, 2000, out, sizeof(out)), 0);
	assert_string_equal(out, "PATH=/usr/bin:/bin");
	unsetenv("CCVM_DOCTOR_LEAK");
}

static void failure_status(void **state)
{
	(void)state;
	char out[64];
	char *argv[] = {"/bin/sh", "-c", "echo partial; exit 3", NULL};
	assert_int_equal(doctor_first_line(argv, 2000, out, sizeof(out)), -EIO);
	char *missing[] = {"/nonexistent/qemu", NULL};
	assert_true(doctor_first_line(missing, 2000, out, sizeof(out)) < 0);
}

static void deadline(void **state)
{
	(void)state;
	char out[64];
	char *argv[] = {"/bin/sleep", "20", NULL};
	long long t0 = util_now_ms();
	assert_int_equal(doctor_first_line(argv, 200, out, sizeof(out)),
			 -ETIMEDOUT);
	assert_true(util_now_ms() - t0 < 2000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(first_line_of_output),
	    cmocka_unit_test(truncated_to_buffer),
	    cmocka_unit_test(explicit_environment),
	    cmocka_unit_test(failure_status),
	    cmocka_unit_test(deadline),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
