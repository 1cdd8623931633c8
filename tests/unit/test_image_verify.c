/*
 * Unit tests for the check of a cached image against its manifest
 * (src/host/image/verify.c), on real files: checksums added to a manifest
 * from before them, a file hashed only when it changed, and each kind of
 * damage named.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image/verify.h"
#include "util.h"

static char dir[256];

static void put(const char *rel, const char *text)
{
	char p[400];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* An image as an older ccvm left it: sizes, no checksums. */
static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "%s/ccvm-verify.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir))
		return -1;
	char p[400];
	snprintf(p, sizeof(p), "%s/modules", dir);
	mkdir(p, 0755);
	put("vmlinux", "kernel kernel kernel");	    /* 20 bytes */
	put("root.sqfs", "root file system bytes"); /* 22 bytes */
	put("modules/load.list", "a.ko\n");
	put("modules/a.ko", "module");
	put("manifest.json", "{\"key\": \"k\", \"sizes\": {\"vmlinux\": 20, "
			     "\"rootfs\": 22, \"modules\": 6}}");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	return util_rm_rf(dir) == 0 ? 0 : -1;
}

static void flip(const char *rel, off_t off)
{
	/* Later than the check that recorded the file: its change time
	 * moves on only with the kernel's clock tick (a few ms). */
	usleep(20000);
	char p[400];
	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	int fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	char c;
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 1;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void test_seal_then_skip(void **state)
{
	(void)state;
	struct ccvm_err err = {0};
	long long hashed = 0;
	assert_int_equal(image_verify(dir, &hashed, &err), 0);
	/* Sealed: each file hashed once for the manifest, once checked. */
	assert_int_equal(hashed, 20 + 22 + 5 + 6);
	char p[400];
	snprintf(p, sizeof(p), "%s/manifest.json", dir);
	json_error_t je;
	json_t *m = json_load_file(p, 0, &je);
	assert_non_null(m);
	json_t *sums = json_object_get(m, "sha256");
	assert_int_equal(json_object_size(sums), 4);
	assert_string_equal(
	    json_string_value(json_object_get(sums, "modules/a.ko")),
	    /* sha256("module") */
	    "120970d812836f19888625587a4606a5ad23cef31c8684e601771552548fc6b9");
	json_decref(m);
	/* Unchanged files are not hashed again. */
	hashed = 0;
	assert_int_equal(image_verify(dir, &hashed, &err), 0);
	assert_int_equal(hashed, 0);
	/* A touched one is, and still passes. */
	snprintf(p, sizeof(p), "%s/root.sqfs", dir);
	assert_int_equal(utimensat(AT_FDCWD, p, NULL, 0), 0);
	assert_int_equal(image_verify(dir, &hashed, &err), 0);
	assert_int_equal(hashed, 22);
}

static void test_damage_named(void **state)
{
	(void)state;
	struct ccvm_err err = {0};
	assert_int_equal(image_verify(dir, NULL, &err), 0);
	/* Same size, one bit: the checksum. */
	flip("root.sqfs", 5);
	assert_int_equal(image_verify(dir, NULL, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "root.sqfs (22 bytes) does not match "
					"the checksum in its manifest"));
	flip("root.sqfs", 5);
	assert_int_equal(image_verify(dir, NULL, &err), 0);
	/* Cut short: the size says it. */
	char p[400];
	snprintf(p, sizeof(p), "%s/vmlinux", dir);
	assert_int_equal(truncate(p, 7), 0);
	ccvm_err_clear(&err);
	assert_int_equal(image_verify(dir, NULL, &err), -EBADMSG);
	assert_string_equal(err.msg,
			    "vmlinux is 7 bytes, the manifest says 20");
	put("vmlinux", "kernel kernel kernel");
	assert_int_equal(image_verify(dir, NULL, &err), 0);
	/* A module gone. */
	snprintf(p, sizeof(p), "%s/modules/a.ko", dir);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(image_verify(dir, NULL, &err), -EBADMSG);
	assert_string_equal(err.msg, "modules/a.ko is missing");
	/* The manifest itself. */
	put("manifest.json", "{\"key\": ");
	assert_int_equal(image_verify(dir, NULL, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "manifest.json: line 1"));
}

/* An image from before checksums missing a module: damaged, not sealed. */
static void test_old_missing_module(void **state)
{
	(void)state;
	char p[400];
	snprintf(p, sizeof(p), "%s/modules/a.ko", dir);
	assert_int_equal(unlink(p), 0);
	struct ccvm_err err = {0};
	assert_int_equal(image_verify(dir, NULL, &err), -EBADMSG);
	assert_string_equal(err.msg, "modules/a.ko is missing");
}

/* A read-only image directory from before checksums: checked by its
 * sizes, the session not refused. */
static void test_old_read_only(void **state)
{
	(void)state;
	assert_int_equal(chmod(dir, 0555), 0);
	int r;
	if (geteuid() == 0) {
		/* Root writes anyway: the check runs as nobody, for whom the
		 * directory is read-only as for its owner. */
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct ccvm_err err = {0};
			if (setgroups(0, NULL) < 0 || setgid(65534) < 0 ||
			    setuid(65534) < 0)
				_exit(2);
			_exit(image_verify(dir, NULL, &err) == 0 ? 0 : 1);
		}
		int st = 0;
		assert_int_equal(waitpid(pid, &st, 0), pid);
		r = WIFEXITED(st) ? -WEXITSTATUS(st) : -99;
	} else {
		struct ccvm_err err = {0};
		r = image_verify(dir, NULL, &err);
	}
	chmod(dir, 0755);
	assert_int_equal(r, 0);
}

/* An image from before checksums that is already damaged gets none. */
static void test_old_damaged_not_sealed(void **state)
{
	(void)state;
	char p[400];
	snprintf(p, sizeof(p), "%s/root.sqfs", dir);
	assert_int_equal(truncate(p, 3), 0);
	struct ccvm_err err = {0};
	assert_int_equal(image_verify(dir, NULL, &err), -EBADMSG);
	assert_string_equal(err.msg,
			    "root.sqfs is 3 bytes, the manifest says 22");
	snprintf(p, sizeof(p), "%s/manifest.json", dir);
	json_error_t je;
	json_t *m = json_load_file(p, 0, &je);
	assert_non_null(m);
	assert_null(json_object_get(m, "sha256"));
	json_decref(m);
}

static void test_initrd(void **state)
{
	(void)state;
	struct ccvm_err err = {0};
	assert_int_equal(image_verify(dir, NULL, &err), 0);
	put("initrd-x.cpio", "cpio bytes");
	assert_int_equal(image_verify_file(dir, "initrd-x.cpio", &err),
			 -ENOENT);
	assert_int_equal(image_record(dir, "initrd-x.cpio", &err), 0);
	assert_int_equal(image_verify_file(dir, "initrd-x.cpio", &err), 0);
	flip("initrd-x.cpio", 0);
	assert_int_equal(image_verify_file(dir, "initrd-x.cpio", &err),
			 -EBADMSG);
	/* The image check leaves initramfs files to ensure_initrd: one
	 * pruned (removed) is not a damaged image. */
	char p[400];
	snprintf(p, sizeof(p), "%s/initrd-x.cpio", dir);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(image_verify(dir, NULL, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_seal_then_skip, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_damage_named, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_old_damaged_not_sealed, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_initrd, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_old_missing_module, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_old_read_only, setup,
					    teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
