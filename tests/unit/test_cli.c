/* Unit tests for the argv split (src/host/options/cli.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options/cli.h"
#include "util.h"

/* Parses the NULL-ended list (argv[0] is added). */
static int parse(char **list, struct cli_args *a, struct ccvm_err *e)
{
	static char *argv[64];
	int argc = 0;
	argv[argc++] = "ccvm";
	while (*list)
		argv[argc++] = *list++;
	argv[argc] = NULL;
	return cli_parse(argc, argv, a, e);
}

/* The forwarded argv holds exactly these pointers (byte for byte: the
 * very strings of main's argv), NULL-terminated. */
static void assert_args(const struct cli_args *a, char **want, size_t n)
{
	assert_int_equal(a->argc, n);
	for (size_t i = 0; i < n; i++)
		assert_ptr_equal(a->argv[i], want[i]);
	assert_null(a->argv[n]);
}

static void test_empty(void **state)
{
	(void)state;
	struct cli_args a;
	struct ccvm_err e = {0};
	char *none[] = {NULL};
	assert_int_equal(parse(none, &a, &e), 0);
	assert_int_equal(a.mode, CLI_RUN_AGENT);
	assert_int_equal(a.writable, -1);
	assert_false(a.debug);
	assert_args(&a, none, 0);
	cli_free(&a);
	/* argc 0 (no argv[0]) is no crash either. */
	char *nothing[] = {NULL};
	assert_int_equal(cli_parse(0, nothing, &a, &e), 0);
	assert_int_equal(a.argc, 0);
	cli_free(&a);
}

static void test_agent_args_byte_exact(void **state)
{
	(void)state;
	char nonutf8[] = "\xff\xfe\x80 x";
	char *in[] = {"--help",
		      "",
		      "--writable-cwd",
		      "--version",
		      nonutf8,
		      "-",
		      "--ccvm-debug",
		      "--shellx",
		      "--writable-cwd=1",
		      "-p",
		      "multi\nline",
		      "--read-only-cwd",
		      "--ccvmdebug",
		      NULL};
	char *want[] = {in[0], in[1], in[3], in[4],  in[5],
			in[7], in[8], in[9], in[10], in[12]};
	struct cli_args a;
	struct ccvm_err e = {0};
	assert_int_equal(parse(in, &a, &e), 0);
	assert_int_equal(a.mode, CLI_RUN_AGENT);
	assert_int_equal(a.writable, 0); /* last of the two */
	assert_true(a.debug);
	assert_args(&a, want, ARRAY_LEN(want));
	assert_memory_equal(a.argv[3], "\xff\xfe\x80 x", 6);
	assert_string_equal(a.argv[1], "");
	cli_free(&a);
}

static void test_writable_last_wins(void **state)
{
	(void)state;
	struct cli_args a;
	struct ccvm_err e = {0};
	char *a1[] = {"--read-only-cwd", "--writable-cwd", NULL};
	assert_int_equal(parse(a1, &a, &e), 0);
	assert_int_equal(a.writable, 1);
	cli_free(&a);
	char *a2[] = {"--writable-cwd", "x", "--read-only-cwd", NULL};
	assert_int_equal(parse(a2, &a, &e), 0);
	assert_int_equal(a.writable, 0);
	assert_int_equal(a.argc, 1);
	cli_free(&a);
	char *a3[] = {"--writable-cwd", NULL};
	assert_int_equal(parse(a3, &a, &e), 0);
	assert_int_equal(a.writable, 1);
	cli_free(&a);
}

static void test_dashdash_agent(void **state)
{
	(void)state;
	struct cli_args a;
	struct ccvm_err e = {0};
	char *in[] = {"x",	     "--writable-cwd",
		      "--",	     "--read-only-cwd",
		      "--ccvm-help", "--ccvm-bogus",
		      "--shell",     "",
		      "--",	     NULL};
	assert_int_equal(parse(in, &a, &e), 0);
	assert_int_equal(a.mode, CLI_RUN_AGENT);
	assert_int_equal(a.writable, 1);
	char *want[] = {in[0], in[2], in[3], in[4], in[5], in[6], in[7], in[8]};
	assert_args(&a, want, ARRAY_LEN(want));
	cli_free(&a);
	char *only[] = {"--", NULL};
	assert_int_equal(parse(only, &a, &e), 0);
	assert_args(&a, only, 1);
	cli_free(&a);
}

static void test_shell(void **state)
{
	(void)state;
	struct cli_args a;
	struct ccvm_err e = {0};
	char *s1[] = {"--shell", NULL};
	assert_int_equal(parse(s1, &a, &e), 0);
	assert_int_equal(a.mode, CLI_RUN_SHELL);
	assert_args(&a, s1, 0);
	cli_free(&a);
	char *s2[] = {"--shell", "--", NULL};
	assert_int_equal(parse(s2, &a, &e), 0);
	assert_int_equal(a.mode, CLI_RUN_SHELL);
	assert_int_equal(a.argc, 0);
	cli_free(&a);
	char *s3[] = {"--read-only-cwd",
		      "--shell",
		      "--ccvm-debug",
		      "--",
		      "ls",
		      "-l",
		      "",
		      "--",
		      "--shell",
		      "\xff",
		      NULL};
	assert_int_equal(parse(s3, &a, &e), 0);
	assert_int_equal(a.mode, CLI_RUN_SHELL);
	assert_int_equal(a.writable, 0);
	assert_true(a.debug);
	assert_args(&a, s3 + 4, 6);
	cli_free(&a);
	/* --shell may come after other ccvm flags, and twice. */
	char *s4[] = {"--ccvm-debug", "--shell", "--shell", "--", "true", NULL};
	assert_int_equal(parse(s4, &a, &e), 0);
	assert_int_equal(a.mode, CLI_RUN_SHELL);
	assert_args(&a, s4 + 4, 1);
	cli_free(&a);
	/* A command without "--" is refused. */
	char *s5[] = {"--shell", "ls", NULL};
	assert_int_equal(parse(s5, &a, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "--shell -- CMD"));
	char *s6[] = {"foo", "--shell", "--", "ls", NULL};
	assert_int_equal(parse(s6, &a, &e), -EINVAL);
	/* "--shell" after "--" is the agent's. */
	char *s7[] = {"--", "--shell", NULL};
	assert_int_equal(parse(s7, &a, &e), 0);
	assert_int_equal(a.mode, CLI_RUN_AGENT);
	assert_args(&a, s7, 2);
	cli_free(&a);
}

static void test_unknown_ccvm_flag(void **state)
{
	(void)state;
	struct cli_args a;
	struct ccvm_err e = {0};
	char *u1[] = {"x", "--ccvm-dbug", NULL};
	assert_int_equal(parse(u1, &a, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "unknown flag --ccvm-dbug"));
	char *u2[] = {"--ccvm-", NULL};
	assert_int_equal(parse(u2, &a, &e), -EINVAL);
	char *u3[] = {"--ccvm-help=1", NULL};
	assert_int_equal(parse(u3, &a, &e), -EINVAL);
	char *u4[] = {"--ccvm-\xff\n", NULL};
	assert_int_equal(parse(u4, &a, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "--ccvm-\\xff\\n"));
	assert_null(strchr(e.msg, '\n'));
	assert_null(strchr(e.msg, '\xff'));
	/* The first error is the one reported. */
	char *u5[] = {"--ccvm-aaa", "--ccvm-bbb", NULL};
	assert_int_equal(parse(u5, &a, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "--ccvm-aaa"));
}

static void test_help_version_win(void **state)
{
	(void)state;
	struct cli_args a;
	struct ccvm_err e = {0};
	char *h1[] = {"--ccvm-bogus", "--ccvm-help", "--shell", "x", NULL};
	assert_int_equal(parse(h1, &a, &e), 0);
	assert_int_equal(a.mode, CLI_HELP);
	cli_free(&a);
	char *h2[] = {"--ccvm-version", "--ccvm-help", NULL};
	assert_int_equal(parse(h2, &a, &e), 0);
	assert_int_equal(a.mode, CLI_HELP);
	cli_free(&a);
	char *v1[] = {"--ccvm-build", "--ccvm-prune", "--ccvm-version", NULL};
	assert_int_equal(parse(v1, &a, &e), 0);
	assert_int_equal(a.mode, CLI_VERSION);
	cli_free(&a);
	char *v2[] = {"--", "--ccvm-version", NULL}; /* the agent's */
	assert_int_equal(parse(v2, &a, &e), 0);
	assert_int_equal(a.mode, CLI_RUN_AGENT);
	cli_free(&a);
}

static void test_modes(void **state)
{
	(void)state;
	static const struct {
		char *flag;
		enum cli_mode mode;
	} m[] = {
	    {"--ccvm-dump-config", CLI_DUMP_CONFIG},
	    {"--ccvm-build", CLI_BUILD},
	    {"--ccvm-images", CLI_IMAGES},
	    {"--ccvm-prune", CLI_PRUNE},
	};
	struct cli_args a;
	struct ccvm_err e = {0};
	for (size_t i = 0; i < ARRAY_LEN(m); i++) {
		char *one[] = {"--read-only-cwd", m[i].flag, m[i].flag, NULL};
		assert_int_equal(parse(one, &a, &e), 0);
		assert_int_equal(a.mode, m[i].mode);
		assert_int_equal(a.writable, 0);
		cli_free(&a);
		char *extra[] = {m[i].flag, "x", NULL};
		assert_int_equal(parse(extra, &a, &e), -EINVAL);
		assert_non_null(strstr(e.msg, m[i].flag));
		assert_non_null(strstr(e.msg, "\"x\""));
		char *dd[] = {m[i].flag, "--", NULL};
		assert_int_equal(parse(dd, &a, &e), -EINVAL);
		char *sh[] = {"--shell", m[i].flag, NULL};
		assert_int_equal(parse(sh, &a, &e), -EINVAL);
		assert_non_null(strstr(e.msg, "conflicts with --shell"));
		for (size_t j = 0; j < ARRAY_LEN(m); j++) {
			if (i == j)
				continue;
			char *two[] = {m[i].flag, m[j].flag, NULL};
			assert_int_equal(parse(two, &a, &e), -EINVAL);
			assert_non_null(strstr(e.msg, "conflicts"));
		}
	}
}

static void test_egress_modes(void **state)
{
	(void)state;
	struct cli_args a;
	struct ccvm_err e = {0};
	/* Alone: the newest session. */
	char *none[] = {"--ccvm-egress", NULL};
	assert_int_equal(parse(none, &a, &e), 0);
	assert_int_equal(a.mode, CLI_EGRESS);
	assert_int_equal(a.argc, 0);
	assert_false(a.json || a.follow);
	cli_free(&a);
	/* Its own options anywhere, a SESSION as the next argument, =, or
	 * after "--". */
	char *all[] = {"--json", "--ccvm-egress", "ID", "-f", NULL};
	assert_int_equal(parse(all, &a, &e), 0);
	assert_int_equal(a.mode, CLI_EGRESS);
	assert_true(a.json && a.follow);
	assert_args(&a, (char *[]){all[2]}, 1);
	cli_free(&a);
	char *eq[] = {"--ccvm-egress=ID", "--follow", NULL};
	assert_int_equal(parse(eq, &a, &e), 0);
	assert_int_equal(a.argc, 1);
	assert_string_equal(a.argv[0], "ID");
	assert_true(a.follow);
	cli_free(&a);
	char *dd[] = {"--ccvm-egress", "--", "-odd.jsonl", NULL};
	assert_int_equal(parse(dd, &a, &e), 0);
	assert_args(&a, (char *[]){dd[2]}, 1);
	cli_free(&a);
	/* Errors: two sessions, an unknown option, an empty =, --json for
	 * the suggestion, a conflict. */
	char *two[] = {"--ccvm-egress", "A", "B", NULL};
	assert_int_equal(parse(two, &a, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "one SESSION"));
	char *unk[] = {"--ccvm-egress", "--jsn", NULL};
	assert_int_equal(parse(unk, &a, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "\"--jsn\""));
	char *empty[] = {"--ccvm-egress=", NULL};
	assert_int_equal(parse(empty, &a, &e), -EINVAL);
	char *sj[] = {"--ccvm-egress-suggest", "--json", NULL};
	assert_int_equal(parse(sj, &a, &e), -EINVAL);
	char *conf[] = {"--ccvm-egress", "--ccvm-images", NULL};
	assert_int_equal(parse(conf, &a, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "conflicts"));
	char *conf2[] = {"--shell", "--ccvm-egress=X", NULL};
	assert_int_equal(parse(conf2, &a, &e), -EINVAL);
	/* The suggestion takes any number of sessions. */
	char *many[] = {"--ccvm-egress-suggest", "A", "--ccvm-egress-suggest=B",
			"C", NULL};
	assert_int_equal(parse(many, &a, &e), 0);
	assert_int_equal(a.mode, CLI_EGRESS_SUGGEST);
	assert_int_equal(a.argc, 3);
	cli_free(&a);
	/* Without the mode, --json and -f stay the agent's. */
	char *agent[] = {"--json", "-f", NULL};
	assert_int_equal(parse(agent, &a, &e), 0);
	assert_int_equal(a.mode, CLI_RUN_AGENT);
	assert_args(&a, agent, 2);
	cli_free(&a);
}

static void test_usage_text(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	cli_usage(f);
	fclose(f);
	static const char *const flags[] = {"--writable-cwd",
					    "--read-only-cwd",
					    "--shell",
					    "--ccvm-debug",
					    "--ccvm-help",
					    "--ccvm-version",
					    "--ccvm-dump-config",
					    "--ccvm-build",
					    "--ccvm-images",
					    "--ccvm-prune",
					    "--ccvm-egress",
					    "--ccvm-egress-suggest",
					    "--json",
					    "--follow"};
	for (size_t i = 0; i < ARRAY_LEN(flags); i++)
		if (!strstr(buf, flags[i]))
			fail_msg("usage lacks %s", flags[i]);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_agent_args_byte_exact),
	    cmocka_unit_test(test_writable_last_wins),
	    cmocka_unit_test(test_dashdash_agent),
	    cmocka_unit_test(test_shell),
	    cmocka_unit_test(test_unknown_ccvm_flag),
	    cmocka_unit_test(test_help_version_win),
	    cmocka_unit_test(test_modes),
	    cmocka_unit_test(test_egress_modes),
	    cmocka_unit_test(test_usage_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
