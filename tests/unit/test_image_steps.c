/* The image build's step driver and runner (image/steps.h, image/run.h):
 * real commands, the build log, the progress lines, and a failing step
 * that stops the build with the log's tail printed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "image/run.h"
#include "image/steps.h"
#include "util.h"

struct fixture {
	char dir[64];
	char log[128];
	char err_path[128];
	int saved_stderr;
	struct steps st;
	char **env;
	int ran[4];
};

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	if (!f)
		return -1;
	snprintf(f->dir, sizeof(f->dir), "/tmp/ccvm-test-steps-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->log, sizeof(f->log), "%s/build.log", f->dir);
	snprintf(f->err_path, sizeof(f->err_path), "%s/stderr", f->dir);
	int logfd = open(f->log, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	int errfd = open(f->err_path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (logfd < 0 || errfd < 0)
		return -1;
	/* ccvm's lines go to stderr: into a file for the test (not a
	 * terminal, so plain lines). */
	fflush(stderr);
	f->saved_stderr = dup(STDERR_FILENO);
	dup2(errfd, STDERR_FILENO);
	close(errfd);
	steps_init(&f->st, logfd, f->log, f->dir);
	f->env = run_env_make(NULL, 0);
	*state = f;
	return f->env ? 0 : -1;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	fflush(stderr);
	dup2(f->saved_stderr, STDERR_FILENO);
	close(f->saved_stderr);
	close(f->st.logfd);
	run_env_free(f->env);
	util_rm_rf(f->dir);
	free(f);
	return 0;
}

static char *slurp(const char *path)
{
	char *text = NULL;
	struct ccvm_err e = {0};
	assert_int_equal(util_read_file(path, 1 << 20, &text, NULL, &e), 0);
	return text;
}

static int sh(struct fixture *f, const char *script, struct ccvm_err *err)
{
	const char *argv[] = {"/bin/sh", "-c", script, NULL};
	struct run_cmd c = {.argv = argv, .in_fd = -1, .out_fd = -1};
	return run_cmds(&f->st, f->env, &c, 1, err);
}

static int step_one(void *ctx, struct ccvm_err *err)
{
	struct fixture *f = ctx;
	f->ran[0]++;
	return sh(f, "echo hello; echo 'I: fetching' >&2", err);
}

static int step_two(void *ctx, struct ccvm_err *err)
{
	(void)err;
	struct fixture *f = ctx;
	f->ran[1]++;
	steps_note(&f->st, "a note for the user");
	return 0;
}

static int step_three(void *ctx, struct ccvm_err *err)
{
	struct fixture *f = ctx;
	f->ran[2]++;
	/* A pipeline: the first one's stdout feeds the second one. */
	const char *a1[] = {"/bin/sh", "-c", "echo piped-through", NULL};
	const char *a2[] = {"/bin/cat", NULL};
	struct run_cmd c[] = {{.argv = a1, .in_fd = -1, .out_fd = -1},
			      {.argv = a2, .in_fd = -1, .out_fd = -1}};
	return run_cmds(&f->st, f->env, c, 2, err);
}

static int step_fails(void *ctx, struct ccvm_err *err)
{
	struct fixture *f = ctx;
	f->ran[1]++;
	return sh(f, "echo line1; echo boom >&2; exit 4", err);
}

static void steps_all_pass(void **state)
{
	struct fixture *f = *state;
	const struct step steps[] = {
	    {"one", step_one}, {"two", step_two}, {"three", step_three}};
	struct ccvm_err err = {0};
	assert_int_equal(steps_run(&f->st, steps, 3, f, &err), 0);
	assert_int_equal(f->ran[0] + f->ran[1] + f->ran[2], 3);
	fflush(stderr);
	autofree char *out = slurp(f->err_path);
	autofree char *log = slurp(f->log);
	/* The progress lines, in order. */
	const char *want[] = {
	    "ccvm: [1/3] one\n",	  "ccvm: [1/3] one: done in ",
	    "ccvm: [2/3] two\n",	  "ccvm: a note for the user\n",
	    "ccvm: [2/3] two: done in ",  "ccvm: [3/3] three\n",
	    "ccvm: [3/3] three: done in "};
	const char *p = out;
	for (size_t i = 0; i < ARRAY_LEN(want); i++) {
		const char *q = strstr(p, want[i]);
		if (!q)
			fail_msg("missing '%s' in:\n%s", want[i], out);
		p = q + strlen(want[i]);
	}
	/* The log: step headers, the commands, their output stamped. */
	assert_non_null(strstr(log, "=== [1/3] one\n$ /bin/sh -c echo hello"));
	assert_non_null(strstr(log, "] hello\n"));
	assert_non_null(strstr(log, "] I: fetching\n"));
	assert_non_null(strstr(log, "=== [2/3] two\nccvm: a note for the "
				    "user\n"));
	assert_non_null(strstr(log, "$ /bin/cat\n"));
	assert_non_null(strstr(log, "] piped-through\n"));
	assert_null(strstr(out, "last lines"));
}

static void failing_step_stops(void **state)
{
	struct fixture *f = *state;
	const struct step steps[] = {
	    {"one", step_one}, {"two", step_fails}, {"three", step_three}};
	struct ccvm_err err = {0};
	assert_int_equal(steps_run(&f->st, steps, 3, f, &err), -EIO);
	assert_int_equal(f->ran[0], 1);
	assert_int_equal(f->ran[1], 1);
	assert_int_equal(f->ran[2], 0); /* never reached */
	char want[512];
	snprintf(want, sizeof(want),
		 "image build failed at step 'two': sh exited with status 4 "
		 "(full log: %s/failed-build.log)",
		 f->dir);
	assert_string_equal(err.msg, want);
	fflush(stderr);
	autofree char *out = slurp(f->err_path);
	const char *tail = strstr(out, "ccvm: last lines of the log of step "
				       "'two':\n");
	assert_non_null(tail);
	assert_non_null(strstr(tail, "  | === [2/3] two\n"));
	assert_non_null(strstr(tail, "] line1\n"));
	assert_non_null(strstr(tail, "] boom\n"));
	/* Only the failing step's lines. */
	assert_null(strstr(tail, "hello"));
	assert_null(strstr(out, "[2/3] two: done"));
	assert_null(strstr(out, "[3/3]"));
	/* The log was kept under keep_dir. */
	char kept[256];
	snprintf(kept, sizeof(kept), "%s/failed-build.log", f->dir);
	assert_int_equal(access(kept, R_OK), 0);
}

static int step_missing_tool(void *ctx, struct ccvm_err *err)
{
	struct fixture *f = ctx;
	const char *argv[] = {"/nonexistent/mmdebstrap", NULL};
	struct run_cmd c = {.argv = argv, .in_fd = -1, .out_fd = -1};
	return run_cmds(&f->st, f->env, &c, 1, err);
}

static void exec_failure_fails_step(void **state)
{
	struct fixture *f = *state;
	const struct step steps[] = {{"tool", step_missing_tool}};
	struct ccvm_err err = {0};
	assert_int_equal(steps_run(&f->st, steps, 1, f, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "at step 'tool': exec mmdebstrap: "));
	fflush(stderr);
	autofree char *out = slurp(f->err_path);
	assert_non_null(strstr(out, "  | exec mmdebstrap: "));
}

/* The kernel step's progress: kbuild's "  CC" lines counted against the
 * expected number, with an estimate; other lines and a line cut between
 * two reads are not counted twice; the log keeps every line. */
static void kernel_objects_counted(void **state)
{
	struct fixture *f = *state;
	steps_count_objects(&f->st, true, 10, 0);
	static const char a[] = "  CC      kernel/fork.o\n  LD      vmlinux.o\n"
				"  CC      mm/mm";
	static const char b[] = "ap.o\n  AR      lib/lib.a\n  CC      x.o\n";
	steps_output(&f->st, a, sizeof(a) - 1);
	steps_output(&f->st, b, sizeof(b) - 1);
	assert_true(f->st.objs >= 2 && f->st.objs <= 3);
	int before = f->st.objs;
	static const char c[] = "  CC      y.o\n";
	steps_output(&f->st, c, sizeof(c) - 1);
	assert_int_equal(f->st.objs, before + 1);
	char want[64];
	snprintf(want, sizeof(want), "compiling: %d/10 objects", before + 1);
	assert_non_null(strstr(f->st.detail, want));
	/* With a rate (over 5% of 10 done): an estimate. */
	assert_non_null(strstr(f->st.detail, " left"));
	steps_count_objects(&f->st, false, 0, 0);
	steps_output(&f->st, c, sizeof(c) - 1);
	assert_int_equal(f->st.objs, 0);
	/* Unknown total: the count alone. */
	steps_count_objects(&f->st, true, 0, 0);
	steps_output(&f->st, c, sizeof(c) - 1);
	assert_string_equal(f->st.detail, "compiling: 1 object");
	autofree char *log = slurp(f->log);
	assert_non_null(strstr(log, "  CC      mm/mmap.o\n"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(steps_all_pass, setup, teardown),
	    cmocka_unit_test_setup_teardown(failing_step_stops, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(exec_failure_fails_step, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(kernel_objects_counted, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
