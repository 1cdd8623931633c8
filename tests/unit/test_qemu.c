/* Unit tests for QEMU's argv (src/host/vm/qemu.c). */
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
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vm/qemu.h"
#include "util.h"

static struct qemu_spec base_spec(void)
{
	struct qemu_spec s = {
	    .qemu = "/usr/bin/qemu-system-x86_64",
	    .kernel = "/cache/vmlinux",
	    .initrd = "/cache/initrd",
	    .rootfs = "/cache/root.squashfs",
	    .cwd = "/home/u/proj",
	    .writable = true,
	    .memory_mib = 2048,
	    .cores = 2,
	    .accel = ACCEL_TCG,
	    .ctl_fd = 5,
	    .console_fd = 7,
	};
	return s;
}

static struct qemu_argv build_ok(const struct qemu_spec *s)
{
	struct qemu_argv a = {0};
	struct ccvm_err e = {0};
	int r = qemu_argv_build(s, &a, &e);
	if (r)
		print_message("# unexpected error: %s\n", e.msg);
	assert_int_equal(r, 0);
	assert_non_null(a.v);
	assert_null(a.v[a.n]);
	return a;
}

/* Index of the n-th (0-based) argument equal to s, or -1. */
static int find_arg(const struct qemu_argv *a, const char *s, int nth)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i], s) == 0 && nth-- == 0)
			return (int)i;
	return -1;
}

/* The value following the first opt, or NULL. */
static const char *opt_value(const struct qemu_argv *a, const char *opt)
{
	int i = find_arg(a, opt, 0);
	return i >= 0 && (size_t)i + 1 < a->n ? a->v[i + 1] : NULL;
}

/* Does some "opt VALUE" pair have VALUE containing needle? */
static bool has_opt_with(const struct qemu_argv *a, const char *opt,
			 const char *needle)
{
	for (size_t i = 0; i + 1 < a->n; i++)
		if (strcmp(a->v[i], opt) == 0 && strstr(a->v[i + 1], needle))
			return true;
	return false;
}

static bool any_contains(const struct qemu_argv *a, const char *needle)
{
	for (size_t i = 0; i < a->n; i++)
		if (strstr(a->v[i], needle))
			return true;
	return false;
}

static void test_escape(void **state)
{
	(void)state;
	char out[64];
	assert_int_equal(qemu_escape("/a/b c", out, sizeof(out)), 0);
	assert_string_equal(out, "/a/b c");
	assert_int_equal(qemu_escape("a,b", out, sizeof(out)), 0);
	assert_string_equal(out, "a,,b");
	assert_int_equal(qemu_escape(",,", out, sizeof(out)), 0);
	assert_string_equal(out, ",,,,");
	assert_int_equal(qemu_escape("", out, sizeof(out)), 0);
	assert_string_equal(out, "");
	/* Non-UTF-8 and shell metacharacters are plain bytes to QEMU. */
	assert_int_equal(qemu_escape("\xff$(x)'\"=;", out, sizeof(out)), 0);
	assert_string_equal(out, "\xff$(x)'\"=;");

	const char *bad[] = {"a\nb", "\t", "x\x1b[0m", "del\x7f", "\r"};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		assert_int_equal(qemu_escape(bad[i], out, sizeof(out)),
				 -EINVAL);

	/* Exact fit and one short, with and without a doubled comma. */
	char small[4];
	assert_int_equal(qemu_escape("abc", small, sizeof(small)), 0);
	assert_string_equal(small, "abc");
	assert_int_equal(qemu_escape("abcd", small, sizeof(small)),
			 -ENAMETOOLONG);
	assert_int_equal(qemu_escape("a,", small, sizeof(small)), 0);
	assert_string_equal(small, "a,,");
	assert_int_equal(qemu_escape("ab,", small, sizeof(small)),
			 -ENAMETOOLONG);
	assert_int_equal(qemu_escape("", small, 0), -ENAMETOOLONG);
}

static void test_base_argv(void **state)
{
	(void)state;
	struct qemu_spec s = base_spec();
	struct qemu_argv a = build_ok(&s);
	assert_string_equal(a.v[0], "/usr/bin/qemu-system-x86_64");
	assert_true(find_arg(&a, "-nodefaults", 0) > 0);
	assert_true(find_arg(&a, "-no-user-config", 0) > 0);
	assert_true(find_arg(&a, "-no-reboot", 0) > 0);
	assert_true(find_arg(&a, "-nographic", 0) < 0); /* no QEMU stdio */
	assert_string_equal(opt_value(&a, "-display"), "none");
	assert_string_equal(opt_value(&a, "-machine"), "q35");
	assert_string_equal(opt_value(&a, "-accel"), "tcg");
	/* TCG runs `rep movs/stos` an element at a time: no fast strings. */
	assert_string_equal(opt_value(&a, "-cpu"), "max,-erms,-fsrm");
	assert_string_equal(opt_value(&a, "-m"), "2048M");
	assert_string_equal(opt_value(&a, "-smp"), "2");
	assert_string_equal(opt_value(&a, "-kernel"), "/cache/vmlinux");
	assert_string_equal(opt_value(&a, "-initrd"), "/cache/initrd");
	assert_string_equal(opt_value(&a, "-nic"), "none");
	assert_string_equal(opt_value(&a, "-sandbox"),
			    "on,obsolete=deny,elevateprivileges=deny,"
			    "spawn=deny,resourcecontrol=deny");
	assert_null(opt_value(&a, "-overcommit"));
	assert_null(opt_value(&a, "-bios"));
	assert_true(has_opt_with(&a, "-device", "virtio-rng-pci"));

	/* Root: read-only raw virtio-blk through the file driver. */
	assert_true(has_opt_with(
	    &a, "-blockdev",
	    "driver=raw,node-name=root,read-only=on,file.driver=file,"
	    "file.filename=/cache/root.squashfs"));
	assert_true(has_opt_with(&a, "-device", "virtio-blk-pci,drive=root"));

	/* Control channel on the given fd; console on its own socket. */
	assert_true(has_opt_with(&a, "-chardev", "socket,id=ctl,fd=5"));
	assert_true(has_opt_with(&a, "-device", "virtio-serial-pci"));
	assert_true(has_opt_with(&a, "-device",
				 "virtserialport,chardev=ctl,name=ccvm.ctl"));
	assert_true(has_opt_with(&a, "-chardev", "socket,id=con,fd=7"));
	assert_string_equal(opt_value(&a, "-serial"), "chardev:con");

	/* No option ROMs on any PCI device. */
	for (size_t i = 0; i + 1 < a.n; i++)
		if (!strcmp(a.v[i], "-device") && strstr(a.v[i + 1], "-pci"))
			assert_non_null(strstr(a.v[i + 1], ",romfile="));

	/* Optional parts absent. */
	assert_false(any_contains(&a, "ccvm.projects"));
	assert_false(any_contains(&a, "scratch"));
	qemu_argv_free(&a);
	assert_null(a.v);
}

static void test_no_console(void **state)
{
	(void)state;
	struct qemu_spec s = base_spec();
	s.console_fd = -1;
	struct qemu_argv a = build_ok(&s);
	assert_string_equal(opt_value(&a, "-serial"), "null");
	assert_false(any_contains(&a, "id=con,"));
	qemu_argv_free(&a);
}

static void test_net_port(void **state)
{
	(void)state;
	struct qemu_spec s = base_spec();
	struct qemu_argv a = build_ok(&s);
	assert_false(any_contains(&a, "ccvm.net"));
	qemu_argv_free(&a);
	s.net_fd = 5;
	a = build_ok(&s);
	assert_true(has_opt_with(&a, "-chardev", "socket,id=net,fd=5"));
	assert_true(has_opt_with(&a, "-device",
				 "virtserialport,chardev=net,name=ccvm.net"));
	/* Still no NIC: the port is the guest's only network. */
	assert_true(has_opt_with(&a, "-nic", "none"));
	qemu_argv_free(&a);
}

static void test_writable_flag(void **state)
{
	(void)state;
	struct qemu_spec s = base_spec();
	struct qemu_argv a = build_ok(&s);
	assert_string_equal(opt_value(&a, "-fsdev"),
			    "local,id=cwd,path=/home/u/proj,"
			    "security_model=none,multidevs=remap");
	assert_true(has_opt_with(&a, "-device",
				 "virtio-9p-pci,fsdev=cwd,mount_tag=ccvm.cwd"));
	qemu_argv_free(&a);

	s.writable = false;
	a = build_ok(&s);
	assert_string_equal(opt_value(&a, "-fsdev"),
			    "local,id=cwd,path=/home/u/proj,"
			    "security_model=none,multidevs=remap,readonly=on");
	qemu_argv_free(&a);
}

static void test_virtiofs(void **state)
{
	(void)state;
	struct qemu_spec s = base_spec();
	s.vfs_fd = 8;
	struct qemu_argv a = build_ok(&s);
	/* No 9p export of the directory at all, a vhost-user device. */
	assert_false(has_opt_with(&a, "-fsdev", "id=cwd"));
	assert_false(any_contains(&a, "/home/u/proj"));
	assert_true(has_opt_with(&a, "-chardev", "socket,id=vfs,fd=8"));
	assert_true(has_opt_with(&a, "-device",
				 "vhost-user-fs-pci,chardev=vfs,tag=ccvm.cwd"));
	/* Guest RAM virtiofsd can map, as large as -m. */
	assert_string_equal(opt_value(&a, "-m"), "2048M");
	assert_true(has_opt_with(&a, "-object",
				 "memory-backend-memfd,id=mem,size=2048M,"
				 "share=on"));
	assert_string_equal(opt_value(&a, "-numa"), "node,memdev=mem");
	/* The sandbox stays on. */
	assert_true(has_opt_with(&a, "-sandbox", "on,"));
	qemu_argv_free(&a);

	/* With ram_open's file (ram.h): that file instead of a memfd,
	 * 2 MiB-aligned, through the fd QEMU inherits. */
	s.ram_fd = 9;
	a = build_ok(&s);
	assert_true(has_opt_with(&a, "-object",
				 "memory-backend-file,id=mem,size=2048M,"
				 "share=on,align=2M,mem-path=/proc/self/fd/9"));
	assert_false(any_contains(&a, "memfd"));
	assert_string_equal(opt_value(&a, "-numa"), "node,memdev=mem");
	qemu_argv_free(&a);
	/* Without virtiofs nothing needs it: ordinary RAM. */
	s.vfs_fd = 0;
	a = build_ok(&s);
	assert_int_equal(find_arg(&a, "-object", 0), -1);
	assert_false(any_contains(&a, "/proc/self/fd"));
	qemu_argv_free(&a);
	s.vfs_fd = 8;
	s.ram_fd = 0;

	/* Without it: 9p, ordinary RAM. */
	s.vfs_fd = 0;
	a = build_ok(&s);
	assert_int_equal(find_arg(&a, "-object", 0), -1);
	assert_int_equal(find_arg(&a, "-numa", 0), -1);
	assert_false(any_contains(&a, "vhost-user"));
	qemu_argv_free(&a);

	struct ccvm_err e = {0};
	s.vfs_fd = 2;
	assert_int_equal(qemu_argv_build(&s, &a, &e), -EBADF);
	s.vfs_fd = 8;
	s.ram_fd = 1;
	assert_int_equal(qemu_argv_build(&s, &a, &e), -EBADF);
	assert_non_null(strstr(e.msg, "RAM"));
}

/* A boot that can be saved (snap.h): ccvm.park, a monitor, and the
 * virtiofs device left to device_add; -incoming only to restore. */
static void test_park(void **state)
{
	(void)state;
	struct qemu_spec s = base_spec();
	s.vfs_fd = 8;
	s.ram_fd = 9;
	struct qemu_argv a = build_ok(&s);
	assert_false(any_contains(&a, "ccvm.park"));
	assert_int_equal(find_arg(&a, "-mon", 0), -1);
	assert_true(has_opt_with(&a, "-device", "vhost-user-fs-pci,"));
	assert_false(has_opt_with(&a, "-device", "pcie-root-port"));
	qemu_argv_free(&a);

	s.park = true;
	s.qmp_fd = 10;
	a = build_ok(&s);
	assert_true(any_contains(&a, " ccvm.park"));
	assert_false(has_opt_with(&a, "-device", "vhost-user-fs-pci"));
	assert_true(has_opt_with(&a, "-device",
				 "pcie-root-port,id=" QEMU_VFS_PORT ","));
	assert_true(has_opt_with(&a, "-chardev", "socket,id=vfs,fd=8"));
	assert_true(has_opt_with(&a, "-chardev", "socket,id=qmp,fd=10"));
	assert_string_equal(opt_value(&a, "-mon"), "chardev=qmp,mode=control");
	assert_int_equal(find_arg(&a, "-incoming", 0), -1);
	/* The device the caller adds names the same chardev and tag. */
	assert_non_null(strstr(QEMU_VFS_DEVICE, "\"chardev\": \"vfs\""));
	assert_non_null(strstr(QEMU_VFS_DEVICE, "\"tag\": \"ccvm.cwd\""));
	assert_non_null(strstr(QEMU_VFS_DEVICE, "\"bus\": \"" QEMU_VFS_PORT));
	qemu_argv_free(&a);

	s.incoming = true;
	a = build_ok(&s);
	assert_string_equal(opt_value(&a, "-incoming"), "defer");
	qemu_argv_free(&a);

	/* Park needs virtiofs, the RAM file and a monitor. */
	struct ccvm_err e = {0};
	struct qemu_spec bad = s;
	bad.ram_fd = 0;
	assert_int_equal(qemu_argv_build(&bad, &a, &e), -EINVAL);
	bad = s;
	bad.qmp_fd = 0;
	assert_int_equal(qemu_argv_build(&bad, &a, &e), -EINVAL);
	bad = s;
	bad.park = false;
	assert_int_equal(qemu_argv_build(&bad, &a, &e), -EINVAL);
}

static void test_kvm(void **state)
{
	(void)state;
	struct qemu_spec s = base_spec();
	s.accel = ACCEL_KVM;
	struct qemu_argv a = build_ok(&s);
	assert_string_equal(opt_value(&a, "-accel"), "kvm");
	assert_string_equal(opt_value(&a, "-cpu"), "host");
	qemu_argv_free(&a);
}

static void test_mem_lock_and_bios(void **state)
{
	(void)state;
	struct qemu_spec s = base_spec();
	s.mem_lock = true;
	s.bios = QEMU_QBOOT_PATH;
	struct qemu_argv a = build_ok(&s);
	assert_string_equal(opt_value(&a, "-overcommit"), "mem-lock=on");
	assert_string_equal(opt_value(&a, "-bios"), QEMU_QBOOT_PATH);
	qemu_argv_free(&a);
}

static void test_projects_and_scratch(void **state)
{
	(void)state;
	struct qemu_spec s = base_spec();
	s.projects = "/home/u/.claude/projects";
	s.scratch_fd = 9;
	struct qemu_argv a = build_ok(&s);
	assert_true(has_opt_with(&a, "-fsdev",
				 "local,id=projects,path=/home/u/.claude/"
				 "projects,security_model=none"));
	assert_true(has_opt_with(
	    &a, "-device",
	    "virtio-9p-pci,fsdev=projects,mount_tag=ccvm.projects"));
	/* The projects share is always writable. */
	int i = find_arg(&a, "-fsdev", 1);
	assert_true(i > 0);
	assert_null(strstr(a.v[i + 1], "readonly"));
	/* The disk is an inherited fd in an fd set, never a path. */
	assert_string_equal(opt_value(&a, "-add-fd"),
			    "fd=9,set=1,opaque=scratch");
	assert_true(has_opt_with(
	    &a, "-blockdev",
	    "driver=raw,node-name=scratch,cache.no-flush=on,file.driver="
	    "file,file.filename=/dev/fdset/1"));
	/* A full host disk is an I/O error, not a VM paused for good. */
	assert_true(has_opt_with(&a, "-device",
				 "virtio-blk-pci,drive=scratch,werror=report,"
				 "rerror=report"));
	/* The scratch disk comes after the root, so it is vdb. */
	assert_true(find_arg(&a, "virtio-blk-pci,drive=root,romfile=", 0) <
		    find_arg(&a,
			     "virtio-blk-pci,drive=scratch,werror=report,"
			     "rerror=report,romfile=",
			     0));
	/* The fd set exists before the block node that uses it. */
	assert_true(find_arg(&a, "-add-fd", 0) < find_arg(&a, "-blockdev", 1));
	qemu_argv_free(&a);
}

static void test_cmdline(void **state)
{
	(void)state;
	struct qemu_spec s = base_spec();
	s.tsc_khz = 2596136;
	struct qemu_argv a = build_ok(&s);
	const char *c = opt_value(&a, "-append");
	assert_non_null(c);
	const char *want[] = {
	    "console=ttyS0 ",
	    "panic=-1",
	    " quiet loglevel=1 ",
	    "cryptomgr.notests",
	    "no_timer_check",
	    "tsc=reliable",
	    " tsc_early_khz=2596136 ",
	    " lpj=10384544 ",
	    " swiotlb=noforce",
	    "initcall_blacklist=load_system_certificate_list,init_kprobe_trace",
	    "random.trust_cpu=on",
	    "i8042.noaux",
	    "i8042.nokbd",
	    "i8042.nopnp",
	    "nokaslr",
	    " dummy.numdummies=0",
	    " norandmaps",
	    " clearcpuid=rep_good"};
	for (size_t i = 0; i < ARRAY_LEN(want); i++)
		assert_non_null(strstr(c, want[i]));
	assert_null(strstr(c, "ccvm.debug"));
	assert_null(strstr(c, "loglevel=7"));
	qemu_argv_free(&a);

	s.debug = true;
	s.tsc_khz = 0;
	a = build_ok(&s);
	c = opt_value(&a, "-append");
	assert_non_null(strstr(c, "loglevel=7"));
	assert_non_null(strstr(c, " ccvm.debug"));
	assert_null(strstr(c, "quiet"));
	assert_null(strstr(c, "loglevel=1"));
	assert_null(strstr(c, "tsc_early_khz"));
	assert_null(strstr(c, "lpj="));
	assert_non_null(strstr(c, "swiotlb=noforce"));
	assert_non_null(strstr(c, "console=ttyS0"));
	qemu_argv_free(&a);

	/* Address randomisation stays on where nothing is translated. */
	s.accel = ACCEL_KVM;
	a = build_ok(&s);
	c = opt_value(&a, "-append");
	assert_null(strstr(c, "norandmaps"));
	assert_null(strstr(c, "clearcpuid")); /* the host's CPU as it is */
	assert_non_null(strstr(c, "nokaslr"));
	qemu_argv_free(&a);
}

static void test_escaped_values(void **state)
{
	(void)state;
	struct qemu_spec s = base_spec();
	s.cwd = "/home/u/a,b,,c";
	s.rootfs = "/cache/nbd:x,y";
	struct qemu_argv a = build_ok(&s);
	assert_string_equal(opt_value(&a, "-fsdev"),
			    "local,id=cwd,path=/home/u/a,,b,,,,c,"
			    "security_model=none,multidevs=remap");
	assert_true(has_opt_with(&a, "-blockdev",
				 "file.driver=file,file.filename=/cache/"
				 "nbd:x,,y"));
	qemu_argv_free(&a);

	/* Whole-argument values are passed as they are. */
	s = base_spec();
	s.kernel = "/cache/a,b/vmlinux";
	a = build_ok(&s);
	assert_string_equal(opt_value(&a, "-kernel"), "/cache/a,b/vmlinux");
	qemu_argv_free(&a);
}

static void expect_reject(struct qemu_spec *s, int code, const char *what,
			  const char *shown)
{
	struct qemu_argv a = {0};
	struct ccvm_err e = {0};
	assert_int_equal(qemu_argv_build(s, &a, &e), code);
	assert_null(a.v);
	assert_int_equal(e.code, code);
	if (what)
		assert_non_null(strstr(e.msg, what));
	if (shown)
		assert_non_null(strstr(e.msg, shown));
}

static void test_rejects(void **state)
{
	(void)state;
	struct qemu_spec s = base_spec();
	s.cwd = "/home/u/evil\n-device x";
	expect_reject(&s, -EINVAL, "launch directory",
		      "\"/home/u/evil\\x0a-device x\"");
	s = base_spec();
	s.projects = "/p\x1b";
	expect_reject(&s, -EINVAL, "projects directory", "\\x1b");
	s = base_spec();
	s.scratch_fd = 2;
	expect_reject(&s, -EBADF, "scratch disk fd", "2");
	s = base_spec();
	s.scratch_fd = -1;
	expect_reject(&s, -EBADF, "scratch disk fd", "-1");
	s = base_spec();
	s.rootfs = "/r\x7f";
	expect_reject(&s, -EINVAL, "root image", "\\x7f");
	s = base_spec();
	s.kernel = "/k\n";
	expect_reject(&s, -EINVAL, "kernel", "\\x0a");
	s = base_spec();
	s.initrd = "/i\r";
	expect_reject(&s, -EINVAL, "initrd", "\\x0d");

	s = base_spec();
	s.kernel = NULL;
	expect_reject(&s, -EINVAL, "required", NULL);
	s = base_spec();
	s.memory_mib = 0;
	expect_reject(&s, -EINVAL, "must be positive", NULL);
	s = base_spec();
	s.cores = -1;
	expect_reject(&s, -EINVAL, "must be positive", NULL);
	s = base_spec();
	s.ctl_fd = -1;
	expect_reject(&s, -EBADF, "control fd", NULL);
}

/*
 * No shell: the argv goes to execve as it is.  Run it with /bin/echo as
 * the "QEMU" binary and values full of shell syntax: echo must print them
 * literally, and nothing they would run in a shell may happen.
 */
static void test_no_shell(void **state)
{
	(void)state;
	char dir[] = "/tmp/ccvm-test-qemu-XXXXXX";
	assert_non_null(mkdtemp(dir));
	autofree char *marker = util_path_join(dir, "pwned");
	assert_non_null(marker);
	autofree char *cwd =
	    util_asprintf("%s/$(touch %s); touch %s `touch %s` 'q' \"d\" *",
			  dir, marker, marker, marker);
	struct qemu_spec s = base_spec();
	s.qemu = "/bin/echo";
	s.cwd = cwd;
	s.kernel = cwd;
	struct qemu_argv a = build_ok(&s);
	for (size_t i = 0; i < a.n; i++) {
		assert_string_not_equal(a.v[i], "sh");
		assert_string_not_equal(a.v[i], "/bin/sh");
		assert_string_not_equal(a.v[i], "-c");
	}

	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 1);
		char *envp[] = {NULL};
		execve(a.v[0], a.v, envp);
		_exit(127);
	}
	close(p[1]);
	char buf[16384];
	ssize_t n = util_read_all(p[0], buf, sizeof(buf) - 1);
	close(p[0]);
	int ws;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	assert_true(n > 0);
	buf[n] = '\0';

	/* echo's output is exactly argv[1..] joined by spaces. */
	size_t len = 0;
	char want[16384];
	for (size_t i = 1; i < a.n; i++) {
		int w = snprintf(want + len, sizeof(want) - len, "%s%s", a.v[i],
				 i + 1 < a.n ? " " : "\n");
		assert_true(w > 0 && (size_t)w < sizeof(want) - len);
		len += (size_t)w;
	}
	assert_string_equal(buf, want);
	assert_non_null(strstr(buf, "-kernel "));
	assert_non_null(strstr(buf, cwd)); /* the kernel path, verbatim */
	assert_int_equal(access(marker, F_OK), -1);
	qemu_argv_free(&a);
	assert_int_equal(util_rm_rf(dir), 0);
}

static void test_memlock(void **state)
{
	(void)state;
	struct ccvm_err e = {0};
	const unsigned long long mib = 1024 * 1024;
	assert_int_equal(
	    qemu_memlock_check_limit(RLIM_INFINITY, false, 4096, ACCEL_TCG, &e),
	    0);
	assert_int_equal(
	    qemu_memlock_check_limit(8 * mib, true, 4096, ACCEL_TCG, &e), 0);
	long need = 2048 + QEMU_MEMLOCK_OVERHEAD_MIB;
	assert_int_equal(
	    qemu_memlock_check_limit((unsigned long long)need * mib, false,
				     2048, ACCEL_TCG, &e),
	    0);
	assert_int_equal(
	    qemu_memlock_check_limit((unsigned long long)need * mib - 1, false,
				     2048, ACCEL_TCG, &e),
	    -ENOMEM);
	assert_int_equal(
	    qemu_memlock_check_limit(8 * mib, false, 2048, ACCEL_TCG, &e),
	    -ENOMEM);
	char want[128];
	snprintf(want, sizeof(want),
		 "lockGuestMemory needs RLIMIT_MEMLOCK >= %ld MiB", need);
	assert_non_null(strstr(e.msg, want));
	assert_non_null(strstr(e.msg, "it is 8 MiB"));
	snprintf(want, sizeof(want), "ulimit -l %ld", need * 1024);
	assert_non_null(strstr(e.msg, want));
	/* KVM has no translation cache to lock. */
	assert_int_equal(qemu_memlock_check_limit(
			     (2048ull + QEMU_MEMLOCK_OVERHEAD_KVM_MIB) * mib,
			     false, 2048, ACCEL_KVM, &e),
			 0);

	/* The live check agrees with the pure one on this process. */
	struct rlimit rl;
	assert_int_equal(getrlimit(RLIMIT_MEMLOCK, &rl), 0);
	int r = qemu_memlock_check(1 << 20, ACCEL_TCG, &e);
	assert_true(r == 0 || r == -ENOMEM);
	if (r == -ENOMEM)
		assert_true(rl.rlim_cur != RLIM_INFINITY);
}

static void test_host_helpers(void **state)
{
	(void)state;
	const char *bios = qemu_find_bios();
	if (access(QEMU_QBOOT_PATH, R_OK) == 0)
		assert_string_equal(bios, QEMU_QBOOT_PATH);
	else
		assert_null(bios);

	long khz = qemu_host_tsc_khz();
	FILE *f = fopen("/proc/cpuinfo", "re");
	bool has_mhz = false;
	if (f) {
		char line[512];
		while (fgets(line, sizeof(line), f))
			if (!strncmp(line, "cpu MHz", 7))
				has_mhz = true;
		fclose(f);
	}
	if (has_mhz)
		assert_true(khz >= 100000 && khz <= 100000000);
	else
		assert_int_equal(khz, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_escape),
	    cmocka_unit_test(test_base_argv),
	    cmocka_unit_test(test_no_console),
	    cmocka_unit_test(test_writable_flag),
	    cmocka_unit_test(test_net_port),
	    cmocka_unit_test(test_virtiofs),
	    cmocka_unit_test(test_park),
	    cmocka_unit_test(test_kvm),
	    cmocka_unit_test(test_mem_lock_and_bios),
	    cmocka_unit_test(test_projects_and_scratch),
	    cmocka_unit_test(test_cmdline),
	    cmocka_unit_test(test_escaped_values),
	    cmocka_unit_test(test_rejects),
	    cmocka_unit_test(test_no_shell),
	    cmocka_unit_test(test_memlock),
	    cmocka_unit_test(test_host_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
