/* options/envcheck.c (unknown CCVM_* variables, CCVM_DEBUG) and
 * options/jsonpos.c (where a config file's problem is). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "options/config.h"
#include "options/jsonpos.h"
#include "options/table.h"
#include "util.h"

static void test_known(void **state)
{
	(void)state;
	/* Every option's variable, the others ccvm reads, the runner's. */
	for (size_t i = 0; i < cfg_n_opts; i++)
		if (cfg_opts[i].env)
			assert_true(cfg_env_known(cfg_opts[i].env));
	static const char *const yes[] = {"CCVM_SHARE_CLAUDE_CONFIG",
					  "CCVM_CONFIG",
					  "CCVM_DEBUG",
					  "CCVM_ALLOW_ROOT",
					  "CCVM_STOCK_KERNEL",
					  "CCVM_SAVED_BOOT",
					  "CCVM_ACCEL",
					  "CCVM_SRC",
					  "CCVM_TEST_STRICT",
					  "CCVM_QEMU",
					  "CCVM_SCRATCH_DIR"};
	for (size_t i = 0; i < ARRAY_LEN(yes); i++)
		if (!cfg_env_known(yes[i]))
			fail_msg("%s is not known", yes[i]);
	static const char *const no[] = {"CCVM_MEMROY", "CCVM_", "CCVM_X",
					 "CCVM_DEBUGX", "CCVM_memory"};
	for (size_t i = 0; i < ARRAY_LEN(no); i++)
		if (cfg_env_known(no[i]))
			fail_msg("%s is known", no[i]);
}

static void test_unknown_walk(void **state)
{
	(void)state;
	char *env[] = {"HOME=/h",	  "CCVM_MEMROY=8192",
		       "CCVM_MEMORY=1",	  "CCVM_ZZZZZZZZZZ=1",
		       "CCVM_TEST_ANY=1", "CCVM_CORSE",
		       "PATH=/bin",	  NULL};
	size_t i = 0;
	char name[64];
	const char *hint = "unset";
	assert_string_equal(cfg_env_unknown(env, &i, name, sizeof(name), &hint),
			    "CCVM_MEMROY");
	assert_string_equal(hint, "CCVM_MEMORY");
	assert_string_equal(cfg_env_unknown(env, &i, name, sizeof(name), &hint),
			    "CCVM_ZZZZZZZZZZ");
	assert_null(hint);
	/* An entry without '=' is still a name. */
	assert_string_equal(cfg_env_unknown(env, &i, name, sizeof(name), &hint),
			    "CCVM_CORSE");
	assert_string_equal(hint, "CCVM_CORES");
	assert_null(cfg_env_unknown(env, &i, name, sizeof(name), &hint));
	assert_null(cfg_env_unknown(env, &i, name, sizeof(name), &hint));
	/* A long name is cut to the buffer. */
	char *env2[] = {"CCVM_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=1", NULL};
	char small[10];
	i = 0;
	assert_string_equal(
	    cfg_env_unknown(env2, &i, small, sizeof(small), &hint),
	    "CCVM_AAAA");
	assert_null(cfg_env_unknown(NULL, &i, small, sizeof(small), &hint));
}

static void test_debug(void **state)
{
	(void)state;
	struct ccvm_err e = {0};
	bool on = true;
	char *none[] = {"HOME=/h", NULL};
	assert_int_equal(cfg_env_debug(none, &on, &e), 0);
	assert_false(on);
	char *yes[] = {"CCVM_DEBUG=yes", NULL};
	assert_int_equal(cfg_env_debug(yes, &on, &e), 0);
	assert_true(on);
	char *zero[] = {"CCVM_DEBUG=0", NULL};
	assert_int_equal(cfg_env_debug(zero, &on, &e), 0);
	assert_false(on);
	char *bad[] = {"CCVM_DEBUG=maybe", NULL};
	on = true;
	assert_int_equal(cfg_env_debug(bad, &on, &e), -EINVAL);
	assert_true(on); /* unchanged on error */
	assert_non_null(strstr(e.msg, "CCVM_DEBUG"));
	assert_non_null(strstr(e.msg, "\"maybe\""));
}

static void pos(const char *text, const char *path, int want_line, int want_col)
{
	int l = -1, c = -1;
	int r = jsonpos_find(text, strlen(text), path, &l, &c);
	if (want_line == 0) {
		if (r != -ENOENT)
			fail_msg("%s: found at %d:%d, want none", path, l, c);
		return;
	}
	if (r != 0 || l != want_line || c != want_col)
		fail_msg("%s: r=%d at %d:%d, want %d:%d", path, r, l, c,
			 want_line, want_col);
}

static void test_jsonpos(void **state)
{
	(void)state;
	const char *t =
	    "{\n"
	    "  \"memory\": 1,\n"
	    "  \"share\": {\"x\": [1, {\"a\": 2}], \"plugins\": 7},\n"
	    "  \"egressPorts\": [443,\n"
	    "     \"a,]}\\\"b\", 70000],\n"
	    "  \"k\\\"q\": {}\n"
	    "}";
	pos(t, "memory", 2, 3);
	pos(t, "share", 3, 3);
	pos(t, "share.plugins", 3, 33);
	pos(t, "egressPorts", 4, 3);
	pos(t, "egressPorts[0]", 4, 19);
	pos(t, "egressPorts[1]", 5, 6);
	pos(t, "egressPorts[2]", 5, 17);
	pos(t, "egressPorts[3]", 0, 0);
	pos(t, "share.x[1].a", 3, 23);
	pos(t, "nosuch", 0, 0);
	pos(t, "memory.x", 0, 0);
	pos(t, "", 0, 0);
	pos(t, "share.", 3, 3);
	pos(t, "egressPorts[x]", 0, 0);
	/* As jansson numbers them: the same line as a syntax error's. */
	pos("{\"a\": [], \"b\": {}}", "b", 1, 11);
	pos("[]", "a", 0, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_known),
	    cmocka_unit_test(test_unknown_walk),
	    cmocka_unit_test(test_debug),
	    cmocka_unit_test(test_jsonpos),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
