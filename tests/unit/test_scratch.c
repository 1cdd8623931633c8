/* Unit tests for the host side of the scratch disk (src/host/vm/scratch.c):
 * where it goes, its size, and that the file is sparse and nameless. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "options/config.h"
#include "vm/scratch.h"
#include "util.h"

static void test_dir_choose(void **state)
{
	(void)state;
	struct ccvm_err e = {0};
	bool mc = true;
	char *d =
	    scratch_dir_choose("/big/disk", "/x/cache", "/home/u", &mc, &e);
	assert_string_equal(d, "/big/disk");
	assert_false(mc); /* a place the user named is never created */
	free(d);
	d = scratch_dir_choose("", "/x/cache", "/home/u", &mc, &e);
	assert_string_equal(d, "/x/cache/ccvm");
	assert_true(mc);
	free(d);
	/* A relative XDG_CACHE_HOME is ignored, as the spec says. */
	d = scratch_dir_choose(NULL, "rel", "/home/u", &mc, &e);
	assert_string_equal(d, "/home/u/.cache/ccvm");
	free(d);
	assert_null(scratch_dir_choose("relative", NULL, "/h", &mc, &e));
	assert_non_null(strstr(e.msg, "CCVM_SCRATCH_DIR=relative"));
	assert_null(scratch_dir_choose(NULL, NULL, NULL, &mc, &e));
	assert_non_null(strstr(e.msg, "CCVM_SCRATCH_DIR"));
}

static void test_size(void **state)
{
	(void)state;
	struct ccvm_err e = {0};
	uint64_t b = 0;
	assert_int_equal(scratch_size_bytes(10, &b, &e), 0);
	assert_true(b == 10ull << 30);
	assert_int_equal(scratch_size_bytes(CFG_DISK_SIZE_MAX, &b, &e), 0);
	assert_true(b == (uint64_t)CFG_DISK_SIZE_MAX << 30);
	b = 7;
	assert_int_equal(scratch_size_bytes(0, &b, &e), -EINVAL);
	assert_int_equal(scratch_size_bytes(-1, &b, &e), -EINVAL);
	assert_int_equal(scratch_size_bytes(CFG_DISK_SIZE_MAX + 1, &b, &e),
			 -EINVAL);
	assert_true(b == 7); /* untouched on failure */
	assert_non_null(strstr(e.msg, "vmDiskSize"));
}

static void test_ram_types(void **state)
{
	(void)state;
	assert_true(scratch_fs_is_ram(0x01021994L));  /* tmpfs */
	assert_true(scratch_fs_is_ram(0x858458f6L));  /* ramfs */
	assert_false(scratch_fs_is_ram(0xEF53L));     /* ext4 */
	assert_false(scratch_fs_is_ram(0x58465342L)); /* xfs */
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	assert_non_null(d);
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

/* On a real disk: a sparse file of the size asked, with no name. */
static void test_open_on_disk(void **state)
{
	(void)state;
	char dir[] = "/var/tmp/ccvm-test-scratch.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct statfs sf;
	assert_int_equal(statfs(dir, &sf), 0);
	if (scratch_fs_is_ram((long)sf.f_type)) {
		rmdir(dir);
		skip(); /* /var/tmp is RAM-backed on this machine */
	}
	setenv(SCRATCH_DIR_ENV, dir, 1);
	struct ccvm_err e = {0};
	int fd = scratch_open(3, &e);
	unsetenv(SCRATCH_DIR_ENV);
	assert_true(fd > 2);
	struct stat st;
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(st.st_size == 3ll << 30);
	assert_int_equal(st.st_nlink,
			 0); /* never had (or no longer has) a name */
	assert_true(st.st_blocks < 64); /* sparse */
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(count_entries(dir), 0);
	char b = 1;
	assert_int_equal(pwrite(fd, &b, 1, (3ll << 30) - 1), 1);
	close(fd);
	assert_int_equal(count_entries(dir), 0);
	assert_int_equal(rmdir(dir), 0);
}

/* A RAM-backed place is refused with a message naming it and the knob,
 * and nothing is created there. */
static void test_open_refuses_tmpfs(void **state)
{
	(void)state;
	struct statfs sf;
	if (statfs("/dev/shm", &sf) < 0 || !scratch_fs_is_ram((long)sf.f_type))
		skip(); /* no tmpfs at /dev/shm here */
	int before = count_entries("/dev/shm");
	setenv(SCRATCH_DIR_ENV, "/dev/shm", 1);
	struct ccvm_err e = {0};
	assert_int_equal(scratch_open(1, &e), -EPERM);
	unsetenv(SCRATCH_DIR_ENV);
	assert_non_null(strstr(e.msg, "/dev/shm"));
	assert_non_null(strstr(e.msg, "RAM-backed"));
	assert_non_null(strstr(e.msg, SCRATCH_DIR_ENV));
	assert_null(strchr(e.msg, '\n'));
	assert_int_equal(count_entries("/dev/shm"), before);
}

static void test_open_missing_dir(void **state)
{
	(void)state;
	setenv(SCRATCH_DIR_ENV, "/nonexistent/ccvm-scratch", 1);
	struct ccvm_err e = {0};
	assert_int_equal(scratch_open(1, &e), -ENOENT);
	unsetenv(SCRATCH_DIR_ENV);
	assert_non_null(strstr(e.msg, "/nonexistent/ccvm-scratch"));
	assert_non_null(strstr(e.msg, SCRATCH_DIR_ENV));
}

/* The disk could not grow: a hole left and (almost) no room. */
static void test_full(void **state)
{
	(void)state;
	uint64_t g = 1ull << 30, m = SCRATCH_FULL_MARGIN;
	assert_true(scratch_full(g, 40ull << 20, 0));
	assert_true(scratch_full(g, 40ull << 20, m - 1));
	assert_false(scratch_full(g, 40ull << 20, m)); /* room left */
	assert_false(scratch_full(g, g, 0));	       /* fully allocated */
	assert_false(scratch_full(g, 0, 100ull << 30));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_dir_choose),
	    cmocka_unit_test(test_size),
	    cmocka_unit_test(test_ram_types),
	    cmocka_unit_test(test_open_on_disk),
	    cmocka_unit_test(test_open_refuses_tmpfs),
	    cmocka_unit_test(test_open_missing_dir),
	    cmocka_unit_test(test_full),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
