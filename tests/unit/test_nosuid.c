/* Unit tests for the no-setuid seccomp filter (src/host/sys/nosuid.c): a child
 * installs it and tries every way to give a file S_ISUID or S_ISGID. */
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
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys/nosuid.h"
#include "util.h"

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif

static int report = -1; /* the child's pipe to the parent */

/* In the child: a failed expectation goes to the parent, which fails. */
#define EXPECT(cond, ...)                                                      \
	do {                                                                   \
		if (!(cond)) {                                                 \
			dprintf(report, "line %d: ", __LINE__);                \
			dprintf(report, __VA_ARGS__);                          \
			dprintf(report, " (errno %s)\n", strerror(errno));     \
		}                                                              \
	} while (0)

/* rc is -1 with errno e. */
#define REFUSED(rc, e, what)                                                   \
	do {                                                                   \
		errno = 0;                                                     \
		long r_ = (long)(rc);                                          \
		EXPECT(r_ == -1 && errno == (e), "%s: %ld, want %s", what, r_, \
		       strerror(e));                                           \
	} while (0)
#define WORKS(rc, what)                                                        \
	do {                                                                   \
		errno = 0;                                                     \
		long r_ = (long)(rc);                                          \
		EXPECT(r_ >= 0, "%s failed", what);                            \
		if (r_ > 2 && strstr(what, "open"))                            \
			close((int)r_);                                        \
	} while (0)

static mode_t mode_of(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? st.st_mode & 07777 : (mode_t)-1;
}

static void child(void)
{
	if (nosuid_install(true) < 0) {
		dprintf(report, "nosuid_install: %s\n", strerror(errno));
		return;
	}
	int fd = open("f", O_RDWR | O_CLOEXEC);
	EXPECT(fd >= 0, "open f");

	/* chmod and its relatives: a set bit is refused, nothing changes. */
	REFUSED(chmod("f", 04755), EPERM, "chmod 4755");
	REFUSED(chmod("f", 02755), EPERM, "chmod 2755");
	REFUSED(chmod("f", 06755), EPERM, "chmod 6755");
	REFUSED(fchmod(fd, 04700), EPERM, "fchmod 4700");
	REFUSED(fchmodat(AT_FDCWD, "f", 02700, 0), EPERM, "fchmodat 2700");
	long r2 = syscall(SYS_fchmodat2, AT_FDCWD, "f", 04755, 0);
	EXPECT(r2 == -1 && (errno == EPERM || errno == ENOSYS),
	       "fchmodat2 4755: %ld", r2);
	REFUSED(chmod("d", 02755), EPERM, "chmod dir 2755");
	EXPECT(mode_of("f") == 0600, "f's mode changed: %o",
	       (unsigned)mode_of("f"));
	/* Ordinary modes pass. */
	WORKS(chmod("f", 0755), "chmod 755");
	EXPECT(mode_of("f") == 0755, "chmod 755 did not apply");
	WORKS(fchmod(fd, 0700), "fchmod 700");
	WORKS(fchmodat(AT_FDCWD, "f", 0644, 0), "fchmodat 644");
	WORKS(chmod("d", 01777), "chmod sticky dir 1777");

	/* Creating with the bits. */
	REFUSED(open("c1", O_CREAT | O_WRONLY | O_CLOEXEC, 04755), EPERM,
		"open O_CREAT 4755");
	REFUSED(openat(AT_FDCWD, "c2", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC,
		       02644),
		EPERM, "openat O_CREAT 2644");
	REFUSED(open("d", O_TMPFILE | O_WRONLY | O_CLOEXEC, 04700), EPERM,
		"open O_TMPFILE 4700");
#ifdef SYS_creat
	REFUSED(syscall(SYS_creat, "c3", 06755), EPERM, "creat 6755");
#endif
	REFUSED(mkdir("m1", 02755), EPERM, "mkdir 2755");
	REFUSED(mkdirat(AT_FDCWD, "m2", 04755), EPERM, "mkdirat 4755");
	REFUSED(mknod("n1", S_IFIFO | 04644, 0), EPERM, "mknod fifo 4644");
	REFUSED(mknodat(AT_FDCWD, "n2", S_IFREG | 02755, 0), EPERM,
		"mknodat reg 2755");
	EXPECT(access("c1", F_OK) < 0 && access("c2", F_OK) < 0 &&
		   access("c3", F_OK) < 0 && access("m1", F_OK) < 0 &&
		   access("m2", F_OK) < 0 && access("n1", F_OK) < 0 &&
		   access("n2", F_OK) < 0,
	       "a refused call still made its file");
	/* openat2's mode is out of the filter's reach: not offered. */
	struct {
		uint64_t flags, mode, resolve;
	} how = {O_CREAT | O_WRONLY | O_CLOEXEC, 04755, 0};
	REFUSED(syscall(SYS_openat2, AT_FDCWD, "c4", &how, sizeof(how)), ENOSYS,
		"openat2");

	/* The same calls with ordinary modes work. */
	WORKS(open("o1", O_CREAT | O_WRONLY | O_CLOEXEC, 0755),
	      "open O_CREAT 755");
	WORKS(openat(AT_FDCWD, "o2", O_CREAT | O_WRONLY | O_CLOEXEC, 0600),
	      "openat O_CREAT 600");
	WORKS(mkdir("m3", 0755), "mkdir 755");
	WORKS(mkdirat(AT_FDCWD, "m4", 01777), "mkdirat 1777");
	WORKS(mknod("n3", S_IFIFO | 0644, 0), "mknod fifo 644");
	EXPECT(mode_of("o1") == 0755 && mode_of("m3") == 0755,
	       "ordinary modes changed");
	/* Without O_CREAT the mode argument means nothing: a stray value
	 * there must not refuse a plain open. */
	WORKS(syscall(SYS_openat, AT_FDCWD, "f", O_RDONLY | O_CLOEXEC, 06777),
	      "openat O_RDONLY with a stray mode");
	close(fd);
	dprintf(report, "DONE\n");
}

static void test_filter(void **state)
{
	(void)state;
	char tmpl[] = "/tmp/ccvm-nosuid.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	assert_int_equal(chdir(tmpl), 0);
	int fd = open("f", O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(mkdir("d", 0755), 0);
	/* Control: here, without the filter, the bit is stored. */
	assert_int_equal(chmod("d", 02755), 0);
	assert_int_equal(mode_of("d") & 02000, 02000);
	assert_int_equal(chmod("d", 0755), 0);
	assert_int_equal(chmod("f", 04600), 0);
	assert_int_equal(mode_of("f"), 04600);
	assert_int_equal(chmod("f", 0600), 0);

	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(p[0]);
		report = p[1];
		child();
		_exit(0);
	}
	close(p[1]);
	char out[4096];
	size_t n = 0;
	ssize_t k;
	while (n < sizeof(out) - 1 &&
	       (k = read(p[0], out + n, sizeof(out) - 1 - n)) > 0)
		n += (size_t)k;
	out[n] = '\0';
	close(p[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	const char *names[] = {"f", "d", "o1", "o2", "m3", "m4", "n3"};
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		mode_t m = mode_of(names[i]);
		if (m != (mode_t)-1 && (m & 06000))
			fail_msg("%s has mode %o", names[i], (unsigned)m);
		unlink(names[i]);
		rmdir(names[i]);
	}
	assert_int_equal(chdir("/"), 0);
	rmdir(tmpl);
	if (strcmp(out, "DONE\n") != 0)
		fail_msg("%s", out);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_filter),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
