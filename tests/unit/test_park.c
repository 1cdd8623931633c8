/*
 * Unit tests for saved boots (src/host/vm/park.c) on real files: what the key
 * covers, a save and load round trip of a RAM file with data, zero pages
 * and holes (QEMU's part, the device state, is a stand-in string here: no
 * QEMU runs in a unit test; tests/integration/24-saved-boot.sh restores
 * real VMs), damaged files refused, and the pruning of old saved boots.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vm/park.h"
#include "vm/qemu_proc.h"
#include "util.h"

#define MIB (1u << 20)

static char dir[256];

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "%s/ccvm-snap.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_key(void **state)
{
	(void)state;
	char *a[] = {"/bin/sh", "-m", "4096M", NULL};
	char *b[] = {"/bin/sh", "-m", "2048M", NULL};
	char *c[] = {"/bin/sh", "-m4096M", NULL};
	char k1[65], k2[65], k3[65], k4[65];
	struct ccvm_err err = {0};
	assert_int_equal(snap_key(a, -1, k1, &err), 0);
	assert_int_equal(snap_key(a, -1, k2, &err), 0);
	assert_string_equal(k1, k2);
	assert_int_equal(strlen(k1), 64);
	assert_int_equal(snap_key(b, -1, k3, &err), 0);
	assert_string_not_equal(k1, k3);
	/* Argument boundaries count. */
	assert_int_equal(snap_key(c, -1, k4, &err), 0);
	assert_string_not_equal(k1, k4);
	/* A scratch disk's size is part of it. */
	char p[300];
	snprintf(p, sizeof(p), "%s/disk", dir);
	int fd = open(p, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, MIB), 0);
	assert_int_equal(snap_key(a, fd, k2, &err), 0);
	assert_string_not_equal(k1, k2);
	assert_int_equal(ftruncate(fd, 2 * MIB), 0);
	assert_int_equal(snap_key(a, fd, k3, &err), 0);
	assert_string_not_equal(k2, k3);
	close(fd);
	/* No QEMU binary, no key. */
	char *m[] = {"/nonexistent/qemu", NULL};
	assert_true(snap_key(m, -1, k1, &err) < 0);
}

/* A RAM file: data at 0 and 3 MiB + 4 KiB, a page of zeros written at
 * 1 MiB, holes elsewhere. */
static int ram_file(const char *name, uint64_t len)
{
	char p[300];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	int fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)len), 0);
	static char page[4096];
	memset(page, 0xab, sizeof(page));
	assert_int_equal(pwrite(fd, page, sizeof(page), 0), 4096);
	assert_int_equal(pwrite(fd, "tail", 4, 3 * MIB + 4096), 4);
	memset(page, 0, sizeof(page));
	assert_int_equal(pwrite(fd, page, sizeof(page), MIB), 4096);
	return fd;
}

/* A saved boot as a session makes one: the "device state" where QEMU
 * would write it. */
static void save(const char *key, int ram, uint64_t len)
{
	struct snap s;
	struct ccvm_err err = {0};
	assert_int_equal(snap_create(&s, dir, key, &err), 0);
	const char state[] = "QEVM device state stand-in";
	assert_int_equal(write(s.fd, state, sizeof(state)), sizeof(state));
	assert_int_equal(snap_finish(&s, ram, len, &err), 0);
	snap_close(&s);
}

static void test_round_trip(void **state)
{
	(void)state;
	uint64_t len = 8 * MIB;
	int ram = ram_file("ram", len);
	save("k1", ram, len);
	struct snap s;
	struct ccvm_err err = {0};
	assert_int_equal(snap_open(&s, dir, "k1", len, &err), 1);
	/* The zero page and the holes take no room. */
	struct stat st;
	assert_int_equal(fstat(s.fd, &st), 0);
	assert_true((uint64_t)st.st_blocks * 512 < s.ram_off + 64 * 1024);
	int to = ram_file("to", 0);
	assert_int_equal(ftruncate(to, 0), 0);
	assert_int_equal(snap_load_ram(&s, to, &err), 0);
	/* QEMU reads the device state from where the fd points. */
	char got[27];
	assert_int_equal(read(s.fd, got, sizeof(got)), sizeof(got));
	assert_memory_equal(got, "QEVM device state stand-in", sizeof(got));
	assert_int_equal(fstat(to, &st), 0);
	assert_int_equal(st.st_size, len);
	char a[4096], b[4];
	assert_int_equal(pread(to, a, sizeof(a), 0), 4096);
	for (size_t i = 0; i < sizeof(a); i++)
		assert_int_equal((unsigned char)a[i], 0xab);
	assert_int_equal(pread(to, b, 4, 3 * MIB + 4096), 4);
	assert_memory_equal(b, "tail", 4);
	assert_int_equal(pread(to, a, sizeof(a), MIB), 4096);
	for (size_t i = 0; i < sizeof(a); i++)
		assert_int_equal(a[i], 0);
	snap_close(&s);
	/* Another RAM size: not this saved boot. */
	assert_true(snap_open(&s, dir, "k1", 2 * len, &err) < 0);
	close(ram);
	close(to);
}

static void test_missing_and_damaged(void **state)
{
	(void)state;
	struct snap s;
	struct ccvm_err err = {0};
	assert_int_equal(snap_open(&s, dir, "none", MIB, &err), 0);
	assert_int_equal(s.fd, -1);
	int ram = ram_file("ram", 4 * MIB);
	save("k2", ram, 4 * MIB);
	char p[300];
	snprintf(p, sizeof(p), "%s/boot-k2.snap", dir);
	int fd = open(p, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "x", 1, 0), 1);
	close(fd);
	assert_true(snap_open(&s, dir, "k2", 4 * MIB, &err) < 0);
	assert_non_null(strstr(err.msg, "not a whole saved boot"));
	/* Cut short: refused too. */
	save("k3", ram, 4 * MIB);
	snprintf(p, sizeof(p), "%s/boot-k3.snap", dir);
	assert_int_equal(truncate(p, 3 * MIB), 0);
	assert_true(snap_open(&s, dir, "k3", 4 * MIB, &err) < 0);
	close(ram);
}

/* Flips the byte at off of dir/boot-key.snap. */
static void flip(const char *key, uint64_t off)
{
	/* Later than the check that recorded the file: its change time
	 * moves on only with the kernel's clock tick (a few ms). */
	usleep(20000);
	char p[300];
	snprintf(p, sizeof(p), "%s/boot-%s.snap", dir, key);
	int fd = open(p, O_RDWR);
	assert_true(fd >= 0);
	unsigned char c = 0;
	assert_int_equal(pread(fd, &c, 1, (off_t)off), 1);
	c ^= 0x5a;
	assert_int_equal(pwrite(fd, &c, 1, (off_t)off), 1);
	close(fd);
}

/* Loads key's saved boot into a fresh RAM file: snap_load_ram's result. */
static int load(const char *key, uint64_t len, struct ccvm_err *err)
{
	struct snap s;
	assert_int_equal(snap_open(&s, dir, key, len, err), 1);
	int to = ram_file("to", 0);
	assert_int_equal(ftruncate(to, 0), 0);
	int r = snap_load_ram(&s, to, err);
	snap_close(&s);
	close(to);
	return r;
}

/* A whole file whose state or RAM was altered: its checksum says so. */
static void test_altered(void **state)
{
	(void)state;
	uint64_t len = 4 * MIB;
	int ram = ram_file("ram", len);
	struct ccvm_err err = {0};
	save("a", ram, len);
	assert_int_equal(load("a", len, &err), 0);
	struct snap s;
	assert_int_equal(snap_open(&s, dir, "a", len, &err), 1);
	uint64_t ram_off = s.ram_off;
	snap_close(&s);
	/* A byte of the RAM's data. */
	flip("a", ram_off + 100);
	ccvm_err_clear(&err);
	assert_int_equal(load("a", len, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "does not match its checksum"));
	flip("a", ram_off + 100);
	assert_int_equal(load("a", len, &err), 0);
	/* A byte of the device state. */
	flip("a", SNAP_HDR_LEN + 3);
	assert_int_equal(load("a", len, &err), -EBADMSG);
	flip("a", SNAP_HDR_LEN + 3);
	/* A zero page (a hole in the file) that became data. */
	char p[300];
	snprintf(p, sizeof(p), "%s/boot-a.snap", dir);
	int fd = open(p, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "z", 1, (off_t)(ram_off + 2 * MIB)), 1);
	close(fd);
	assert_int_equal(load("a", len, &err), -EBADMSG);
	/* No checksum (an older ccvm's file): refused. */
	save("old", ram, len);
	snprintf(p, sizeof(p), "%s/boot-old.snap", dir);
	fd = open(p, O_WRONLY);
	static const char zero[SNAP_SUM_LEN];
	assert_int_equal(pwrite(fd, zero, sizeof(zero), SNAP_SUM_AT),
			 SNAP_SUM_LEN);
	close(fd);
	ccvm_err_clear(&err);
	assert_int_equal(snap_open(&s, dir, "old", len, &err), -ENOMSG);
	assert_non_null(strstr(err.msg, "older ccvm"));
	close(ram);
}

static void test_prune(void **state)
{
	(void)state;
	int ram = ram_file("ram", MIB);
	char key[16], p[300];
	for (int i = 0; i < SNAP_KEEP + 2; i++) {
		snprintf(key, sizeof(key), "p%d", i);
		save(key, ram, MIB);
		/* Distinct ages, oldest first. */
		snprintf(p, sizeof(p), "%s/boot-%s.snap", dir, key);
		struct timespec t[2] = {{1000 + i, 0}, {1000 + i, 0}};
		assert_int_equal(utimensat(AT_FDCWD, p, t, 0), 0);
	}
	save("new", ram, MIB); /* prunes */
	int left = 0;
	for (int i = 0; i < SNAP_KEEP + 2; i++) {
		snprintf(p, sizeof(p), "%s/boot-p%d.snap", dir, i);
		bool there = access(p, F_OK) == 0;
		left += there;
		/* The oldest ones went. */
		if (i < 3)
			assert_false(there);
	}
	assert_int_equal(left, SNAP_KEEP - 1);
	snprintf(p, sizeof(p), "%s/boot-new.snap", dir);
	assert_int_equal(access(p, F_OK), 0);
	/* Other files stay. */
	snprintf(p, sizeof(p), "%s/ram", dir);
	assert_int_equal(access(p, F_OK), 0);
	close(ram);
}

/* A session's saved boot (park_boot_*): the first session finds none and
 * gets a file to save into; once saved, the next session with the same
 * argv restores it (QEMU started with -incoming). */
static struct qemu_spec park_spec(void)
{
	return (struct qemu_spec){
	    .qemu = "/bin/sh",
	    .kernel = "/cache/vmlinux",
	    .initrd = "/cache/initrd",
	    .rootfs = "/cache/root.squashfs",
	    .cwd = "/home/u/proj",
	    .writable = true,
	    .memory_mib = 8,
	    .cores = 1,
	    .accel = ACCEL_TCG,
	    .ctl_fd = QEMU_FD_CTL,
	    .console_fd = QEMU_FD_CON,
	    .vfs_fd = QEMU_FD_VFS,
	    .ram_fd = QEMU_FD_RAM,
	};
}

static bool has_arg(const struct qemu_argv *qa, const char *a)
{
	for (size_t i = 0; i < qa->n; i++)
		if (strcmp(qa->v[i], a) == 0)
			return true;
	return false;
}

static void test_boot_prepare(void **state)
{
	(void)state;
	uint64_t len = 8 * MIB;
	struct ccvm_err err = {0};
	struct park_boot b;
	park_boot_init(&b, len, false);
	struct qemu_spec spec = park_spec();
	assert_int_equal(park_boot_enable(&b, &spec, &err), 0);
	assert_true(b.enabled && spec.park);
	assert_int_equal(spec.qmp_fd, QEMU_FD_QMP);
	assert_true(b.qmp >= 0 && b.qmp_child >= 0);
	struct qemu_argv qa = {0};
	assert_int_equal(qemu_argv_build(&spec, &qa, &err), 0);
	int ram = ram_file("ram", len);
	assert_int_equal(park_boot_prepare(&b, &spec, &qa, dir, -1, ram, &err),
			 0);
	assert_false(b.restoring);
	assert_false(spec.incoming);
	assert_false(has_arg(&qa, "-incoming"));
	assert_true(b.snap.fd >= 0); /* this boot is saved when it parks */
	const char st[] = "QEVM device state stand-in";
	assert_int_equal(write(b.snap.fd, st, sizeof(st)), sizeof(st));
	assert_int_equal(snap_finish(&b.snap, ram, len, &err), 0);
	park_boot_started(&b);
	assert_int_equal(b.qmp_child, -1);
	park_boot_free(&b);
	qemu_argv_free(&qa);

	park_boot_init(&b, len, false);
	spec = park_spec();
	assert_int_equal(park_boot_enable(&b, &spec, &err), 0);
	assert_int_equal(qemu_argv_build(&spec, &qa, &err), 0);
	int to = ram_file("to", 0);
	assert_int_equal(ftruncate(to, 0), 0);
	assert_int_equal(park_boot_prepare(&b, &spec, &qa, dir, -1, to, &err),
			 0);
	assert_true(b.restoring && spec.incoming);
	assert_true(has_arg(&qa, "-incoming"));
	struct stat sb;
	assert_int_equal(fstat(to, &sb), 0);
	assert_int_equal(sb.st_size, len); /* the saved RAM, loaded */
	park_boot_free(&b);
	assert_int_equal(b.qmp, -1);
	qemu_argv_free(&qa);
	close(ram);
	close(to);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_key, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_missing_and_damaged, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_altered, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_prune, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_boot_prepare, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
