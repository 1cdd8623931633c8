/* Unit tests for finding host programs (src/host/sys/hostpath.c). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sys/hostpath.h"
#include "util.h"

struct fx {
	char root[64];	  /* a temp dir, the "project" (shared) */
	char bin[96];	  /* root/bin, holding a "sh" */
	char open_[128];	  /* a world-writable dir outside, holding "sh" */
	char outside[96]; /* outside any share, holding "sh" */
	char trusted_sh[PATH_MAX];
};

static void plant(const char *dir, mode_t dmode)
{
	assert_int_equal(mkdir(dir, dmode), 0);
	assert_int_equal(chmod(dir, dmode), 0);
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/sh", dir);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
	assert_true(fd >= 0);
	assert_int_equal(util_write_all(fd, "#!/bin/sh\n", 10), 0);
	close(fd);
}

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	snprintf(f->root, sizeof(f->root), "/tmp/ccvm-hostpath.XXXXXX");
	if (!mkdtemp(f->root))
		return -1;
	snprintf(f->bin, sizeof(f->bin), "%s/bin", f->root);
	plant(f->bin, 0755);
	char *out = util_asprintf("%s-out", f->root);
	snprintf(f->outside, sizeof(f->outside), "%s", out);
	free(out);
	plant(f->outside, 0755);
	snprintf(f->open_, sizeof(f->open_), "%s/open", f->outside);
	plant(f->open_, 0777);
	/* The real sh, where the trusted directories have it. */
	if (hostpath_find_in(HOSTPATH_DEFAULT, "sh", f->trusted_sh) < 0)
		return -1;
	const char *shares[] = {f->root, NULL};
	hostpath_set_shares(shares, 2);
	*state = f;
	return 0;
}

static void rm_dir(const char *d)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/sh", d);
	unlink(p);
	rmdir(d);
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	rm_dir(f->bin);
	rm_dir(f->root);
	rm_dir(f->open_);
	rm_dir(f->outside);
	hostpath_set_shares(NULL, 0);
	free(f);
	return 0;
}

/* A PATH entry inside the shared directory is never searched, whatever
 * its place in PATH; the trusted directories answer instead. */
static void test_project_entry_ignored(void **state)
{
	struct fx *f = *state;
	char *path = util_asprintf("%s:/usr/bin:/bin", f->bin);
	char *list = hostpath_search_list(path);
	assert_non_null(list);
	assert_null(strstr(list, f->root));
	char out[PATH_MAX];
	assert_int_equal(hostpath_find_in(list, "sh", out), 0);
	assert_string_equal(out, f->trusted_sh);
	/* Positive control: searched directly, the planted one is found. */
	char want[PATH_MAX];
	snprintf(want, sizeof(want), "%s/sh", f->bin);
	const char *none[] = {NULL};
	hostpath_set_shares(none, 0);
	assert_int_equal(hostpath_find_in(f->bin, "sh", out), 0);
	assert_string_equal(out, want);
	/* ...and refused again once the directory is shared. */
	const char *shares[] = {f->root};
	hostpath_set_shares(shares, 1);
	assert_int_equal(hostpath_find_in(f->bin, "sh", out), -ENOENT);
	free(list);
	free(path);
}

/* A program whose real path is in the share is refused even through a
 * link in a searched directory. */
static void test_link_into_share(void **state)
{
	struct fx *f = *state;
	char link[PATH_MAX], target[PATH_MAX], out[PATH_MAX];
	snprintf(link, sizeof(link), "%s/git", f->outside);
	snprintf(target, sizeof(target), "%s/sh", f->bin);
	assert_int_equal(symlink(target, link), 0);
	assert_int_equal(hostpath_find_in(f->outside, "git", out), -ENOENT);
	assert_int_equal(hostpath_find_in(f->outside, "sh", out), 0);
	unlink(link);
}

/* Entries of the user's PATH: only those nobody but root can change. */
static void test_untrusted_entries(void **state)
{
	struct fx *f = *state;
	/* World-writable: never trusted, whoever owns it. */
	assert_false(hostpath_dir_trusted(f->open_));
	/* Ours: trusted only when we are root (then root owns it). */
	assert_int_equal(hostpath_dir_trusted(f->outside), geteuid() == 0);
	/* The shared directory: never, even for root. */
	assert_false(hostpath_dir_trusted(f->bin));
	assert_true(hostpath_dir_trusted("/usr/bin"));
	char *path =
	    util_asprintf("relative::%s:%s:/usr/bin", f->open_, f->bin);
	char *list = hostpath_search_list(path);
	assert_non_null(list);
	assert_null(strstr(list, "relative"));
	assert_null(strstr(list, f->root));
	assert_null(strstr(list, "::"));
	assert_int_equal(strncmp(list, "/usr/bin:", 9), 0);
	/* The defaults follow, each once. */
	assert_non_null(strstr(list, "/usr/local/bin"));
	assert_null(strstr(strstr(list, "/usr/bin") + 1, ":/usr/bin:"));
	free(list);
	free(path);
	list = hostpath_search_list(NULL);
	assert_non_null(strstr(list, "/usr/bin"));
	free(list);
}

/* An explicit variable wins; it must be absolute. */
static void test_explicit_variable(void **state)
{
	struct fx *f = *state;
	char out[PATH_MAX], want[PATH_MAX];
	struct ccvm_err err = {0};
	snprintf(want, sizeof(want), "%s/sh", f->outside);
	setenv("CCVM_TEST_TOOL", want, 1);
	assert_int_equal(hostpath_tool("sh", "CCVM_TEST_TOOL", out, &err), 0);
	assert_string_equal(out, want);
	setenv("CCVM_TEST_TOOL", "sh", 1);
	assert_int_equal(hostpath_tool("sh", "CCVM_TEST_TOOL", out, &err),
			 -EINVAL);
	assert_non_null(strstr(err.msg, "CCVM_TEST_TOOL"));
	setenv("CCVM_TEST_TOOL", "", 1);
	char *path = util_asprintf("%s:/usr/bin:/bin", f->bin);
	setenv("PATH", path, 1);
	assert_int_equal(hostpath_tool("sh", "CCVM_TEST_TOOL", out, &err), 0);
	assert_string_equal(out, f->trusted_sh);
	assert_int_equal(
	    hostpath_tool("ccvm-no-such-tool", "CCVM_TEST_TOOL", out, &err),
	    -ENOENT);
	assert_non_null(strstr(err.msg, "ccvm-no-such-tool not found"));
	/* One sentence that names the variable, its parenthesis closed. */
	assert_non_null(strstr(err.msg, " (or set CCVM_TEST_TOOL)"));
	unsetenv("CCVM_TEST_TOOL");
	free(path);
}

/* The warning's finding: the first PATH entry inside a share. */
static void test_shared_entry(void **state)
{
	struct fx *f = *state;
	char out[PATH_MAX], want[PATH_MAX];
	char *path = util_asprintf("/usr/bin:%s/.venv/bin:%s", f->root, f->bin);
	assert_true(hostpath_shared_entry(path, "/", out));
	snprintf(want, sizeof(want), "%s/.venv/bin", f->root);
	assert_string_equal(out, want); /* missing yet: by its name */
	free(path);
	assert_false(hostpath_shared_entry("/usr/bin:/bin", f->root, out));
	assert_false(hostpath_shared_entry(NULL, f->root, out));
	/* Relative entries and "" are the current directory's. */
	assert_true(hostpath_shared_entry("/usr/bin:", f->root, out));
	assert_string_equal(out, f->root);
	assert_true(hostpath_shared_entry("node_modules/.bin", f->root, out));
	assert_false(hostpath_shared_entry("bin", "/usr", out));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_project_entry_ignored,
					    fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_link_into_share, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_untrusted_entries, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_explicit_variable, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_shared_entry, fx_setup,
					    fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
