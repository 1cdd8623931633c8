/* Unit tests for the KVM probe and the accelerator choice
 * (src/host/vm/accel.c).
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
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vm/accel.h"
#include "util.h"

#define MISSING "/nonexistent/ccvm-test/kvm"

/* Runs fn with stderr sent to a memfd; returns what it printed. */
static char *capture_stderr(int (*fn)(void *), void *arg, int *ret)
{
	int mfd = memfd_create("stderr", MFD_CLOEXEC);
	assert_true(mfd >= 0);
	fflush(stderr);
	int saved = fcntl(2, F_DUPFD_CLOEXEC, 3);
	assert_true(saved >= 0);
	assert_int_equal(dup2(mfd, 2), 2);
	*ret = fn(arg);
	fflush(stderr);
	assert_int_equal(dup2(saved, 2), 2);
	close(saved);
	off_t len = lseek(mfd, 0, SEEK_CUR);
	char *buf = calloc(1, (size_t)len + 1);
	assert_non_null(buf);
	assert_int_equal(pread(mfd, buf, (size_t)len, 0), len);
	close(mfd);
	return buf;
}

static void test_missing_device(void **state)
{
	(void)state;
	struct ccvm_err e = {0};
	assert_int_equal(accel_probe_kvm(MISSING, &e), -ENOENT);
	assert_int_equal(e.code, -ENOENT);
	assert_non_null(strstr(e.msg, "no " MISSING));
	assert_non_null(strstr(e.msg, "enable virtualization"));
	assert_non_null(strstr(e.msg, "kvm module"));
}

static void test_not_kvm(void **state)
{
	(void)state;
	struct ccvm_err e = {0};
	assert_int_equal(accel_probe_kvm("/dev/null", &e), -ENOTTY);
	assert_non_null(strstr(e.msg, "/dev/null is not a KVM device"));

	char path[] = "/tmp/ccvm-test-accel-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	ccvm_err_clear(&e);
	assert_int_equal(accel_probe_kvm(path, &e), -ENOTTY);
	assert_non_null(strstr(e.msg, "is not a KVM device"));
	unlink(path);
}

/* A device we may not open: a mode-0 file, probed as an unprivileged uid
 * (root ignores modes, so a root test drops to nobody in a child). */
static void test_no_permission(void **state)
{
	(void)state;
	char dir[] = "/tmp/ccvm-test-accel-XXXXXX";
	assert_non_null(mkdtemp(dir));
	assert_int_equal(chmod(dir, 0755), 0);
	char *path = util_path_join(dir, "kvm");
	assert_non_null(path);
	int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(chmod(path, 0), 0);

	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (geteuid() == 0 && (setgroups(0, NULL) < 0 ||
				       setgid(65534) < 0 || setuid(65534) < 0))
			_exit(2);
		struct ccvm_err e = {0};
		int r = accel_probe_kvm(path, &e);
		(void)util_write_all(p[1], &r, sizeof(r));
		(void)util_write_all(p[1], e.msg, sizeof(e.msg));
		_exit(0);
	}
	close(p[1]);
	int r = 0;
	char msg[CCVM_ERR_MAX] = "";
	assert_int_equal(util_read_all(p[0], &r, sizeof(r)), sizeof(r));
	assert_int_equal(util_read_all(p[0], msg, sizeof(msg)), sizeof(msg));
	close(p[0]);
	int ws;
	assert_int_equal(waitpid(pid, &ws, 0), pid);
	assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
	assert_int_equal(r, -EACCES);
	assert_non_null(strstr(msg, "permission denied"));
	assert_non_null(strstr(msg, "group kvm"));
	unlink(path);
	rmdir(dir);
	free(path);
}

/* The real device: either KVM works (accepted), or the probe says why,
 * and in any case it answers within a second. */
static void test_real_device_answers_fast(void **state)
{
	(void)state;
	struct ccvm_err e = {0};
	long long t0 = util_now_ms();
	int r = accel_probe_kvm(ACCEL_KVM_DEVICE, &e);
	long long ms = util_now_ms() - t0;
	print_message("# probe of " ACCEL_KVM_DEVICE ": %d in %lld ms: %s\n", r,
		      ms, r ? e.msg : "usable");
	assert_true(ms < 1000);
	if (r == 0)
		return;
	assert_true(r < 0);
	assert_int_equal(e.code, r);
	if (r == -ENOENT)
		assert_non_null(strstr(e.msg, "enable virtualization"));
	else if (r == -EACCES)
		assert_non_null(strstr(e.msg, "group kvm"));
	else
		assert_non_null(strstr(e.msg, "present but not working"));
}

struct choose_args {
	enum cfg_accel want;
	const char *dev;
	bool quiet;
	enum accel_kind out;
	struct ccvm_err err;
};

static int call_choose(void *p)
{
	struct choose_args *a = p;
	return accel_choose_dev(a->want, a->dev, a->quiet, &a->out, &a->err);
}

static void test_choose_tcg(void **state)
{
	(void)state;
	struct choose_args a = {
	    .want = CFG_ACCEL_TCG, .dev = MISSING, .out = ACCEL_KVM};
	int r;
	char *out = capture_stderr(call_choose, &a, &r);
	assert_int_equal(r, 0);
	assert_int_equal(a.out, ACCEL_TCG);
	assert_string_equal(out, ""); /* no probe, no note */
	free(out);
}

static void test_choose_kvm_fails_with_reason(void **state)
{
	(void)state;
	struct choose_args a = {
	    .want = CFG_ACCEL_KVM, .dev = MISSING, .out = ACCEL_TCG};
	int r;
	char *out = capture_stderr(call_choose, &a, &r);
	assert_int_equal(r, -ENOENT);
	assert_int_equal(a.out, ACCEL_TCG); /* untouched on failure */
	assert_non_null(
	    strstr(a.err.msg, "acceleration=kvm: no " MISSING ": enable"));
	assert_string_equal(out, "");
	free(out);

	a.dev = "/dev/null";
	out = capture_stderr(call_choose, &a, &r);
	assert_int_equal(r, -ENOTTY);
	assert_non_null(strstr(a.err.msg, "not a KVM device"));
	free(out);
}

static void test_choose_auto_falls_back(void **state)
{
	(void)state;
	struct choose_args a = {
	    .want = CFG_ACCEL_AUTO, .dev = MISSING, .out = ACCEL_KVM};
	int r;
	char *out = capture_stderr(call_choose, &a, &r);
	assert_int_equal(r, 0);
	assert_int_equal(a.out, ACCEL_TCG);
	assert_string_equal(out, "ccvm: KVM not usable (no " MISSING
				 ": enable virtualization in the firmware and "
				 "load the kvm module (kvm_intel or kvm_amd)); "
				 "using TCG (slow)\n");
	free(out);

	a.quiet = true;
	a.out = ACCEL_KVM;
	out = capture_stderr(call_choose, &a, &r);
	assert_int_equal(r, 0);
	assert_int_equal(a.out, ACCEL_TCG);
	assert_string_equal(out, "");
	free(out);
}

static void test_choose_auto_real(void **state)
{
	(void)state;
	struct choose_args a = {.want = CFG_ACCEL_AUTO,
				.dev = ACCEL_KVM_DEVICE};
	int r;
	long long t0 = util_now_ms();
	char *out = capture_stderr(call_choose, &a, &r);
	assert_true(util_now_ms() - t0 < 1000);
	assert_int_equal(r, 0);
	if (a.out == ACCEL_KVM)
		assert_string_equal(out, "");
	else
		assert_non_null(strstr(out, "ccvm: KVM not usable ("));
	free(out);
}

/* --- every KVM case, without a real device ---------------------------- */

#define DEV "/dev/kvm"

static int verdict(const struct accel_probe_state *st, bool timed_out,
		   int wstatus, struct ccvm_err *e)
{
	ccvm_err_clear(e);
	return accel_probe_verdict(DEV, st, timed_out, wstatus, e);
}

static void test_verdict_usable(void **state)
{
	(void)state;
	struct ccvm_err e = {0};
	struct accel_probe_state st = {
	    .entered = true, .done = true, .got_result = true, .step = 3};
	assert_int_equal(verdict(&st, false, 0, &e), 0);
	assert_string_equal(e.msg, "");
}

/* The broken backend of this development machine (PVM, nested): the
 * probe guest enters but stalls, or stops on lock cmpxchg16b. */
static void test_verdict_broken_backend(void **state)
{
	(void)state;
	struct ccvm_err e = {0};
	struct accel_probe_state st = {.entered = true, .step = 1};
	assert_int_equal(verdict(&st, true, 0, &e), -ETIMEDOUT);
	assert_string_equal(e.msg,
			    DEV " is present but not working: the probe guest "
				"did not finish within 300 ms (touched fresh "
				"pages, stuck at lock cmpxchg16b; emulated or "
				"nested KVM?)");
	st = (struct accel_probe_state){0};
	assert_int_equal(verdict(&st, true, 0, &e), -ETIMEDOUT);
	assert_non_null(strstr(e.msg, "(before entering the guest;"));

	st = (struct accel_probe_state){
	    .entered = true,
	    .got_result = true,
	    .step = 1,
	    .last = {ACCEL_PROBE_BAD_EXIT, 17 /* KVM_EXIT_INTERNAL_ERROR */,
		     1 /* KVM_INTERNAL_ERROR_EMULATION */}};
	assert_int_equal(verdict(&st, false, 0, &e), -EIO);
	assert_string_equal(e.msg,
			    DEV " is present but not working: the probe guest "
				"stopped with KVM internal error (emulation "
				"failure) (touched fresh pages, stuck at lock "
				"cmpxchg16b)");
	st.last = (struct accel_probe_msg){ACCEL_PROBE_BAD_EXIT,
					   8 /* KVM_EXIT_SHUTDOWN */, 0};
	assert_int_equal(verdict(&st, false, 0, &e), -EIO);
	assert_non_null(strstr(e.msg, "triple fault"));

	st.last = (struct accel_probe_msg){ACCEL_PROBE_WRONG_RESULT, 2, 0};
	assert_int_equal(verdict(&st, false, 0, &e), -EIO);
	assert_non_null(strstr(e.msg, "computed wrong results (check 2)"));

	/* A KVM ioctl that fails before the guest runs. */
	st = (struct accel_probe_state){
	    .got_result = true,
	    .last = {ACCEL_PROBE_SETUP_FAILED, 0 /* KVM_CREATE_VM */, EPERM}};
	assert_int_equal(verdict(&st, false, 0, &e), -EPERM);
	assert_string_equal(e.msg, DEV " is present but not working: "
				       "KVM_CREATE_VM failed: Operation not "
				       "permitted");
	/* The probe process killed, or gone without a word. */
	st = (struct accel_probe_state){0};
	assert_int_equal(verdict(&st, false, SIGKILL, &e), -EIO);
	assert_non_null(strstr(e.msg, "died of signal 9"));
	assert_int_equal(verdict(&st, false, 0, &e), -EIO);
	assert_non_null(strstr(e.msg, "ended without a result"));
}

/* Stand-in probes, one per case. */
static int probe_usable(const char *dev, struct ccvm_err *e)
{
	(void)dev;
	(void)e;
	return 0;
}

static int probe_denied(const char *dev, struct ccvm_err *e)
{
	return ccvm_err_set(e, EACCES,
			    "%s: permission denied: add yourself "
			    "to group kvm",
			    dev);
}

static int probe_missing(const char *dev, struct ccvm_err *e)
{
	return ccvm_err_set(e, ENOENT, "no %s: enable virtualization", dev);
}

static int probe_broken(const char *dev, struct ccvm_err *e)
{
	struct accel_probe_state st = {.entered = true, .step = 1};
	return accel_probe_verdict(dev, &st, true, 0, e);
}

struct decide_args {
	enum cfg_accel want;
	accel_probe_fn probe;
	enum accel_kind out;
	struct ccvm_err err;
};

static int call_decide(void *p)
{
	struct decide_args *a = p;
	a->out = (enum accel_kind) - 1;
	return accel_choose_probe(a->want, DEV, false, a->probe, &a->out,
				  &a->err);
}

/* The decision for every case: usable, permission denied, missing, the
 * broken backend; acceleration auto and kvm (tcg never probes). */
static void test_decide_every_case(void **state)
{
	(void)state;
	static const struct {
		accel_probe_fn probe;
		int kvm_r;	 /* acceleration=kvm's result */
		const char *why; /* in the note and the error */
	} cases[] = {
	    {probe_usable, 0, NULL},
	    {probe_denied, -EACCES,
	     "permission denied: add yourself to group kvm"},
	    {probe_missing, -ENOENT, "no " DEV ": enable virtualization"},
	    {probe_broken, -ETIMEDOUT,
	     "is present but not working: the probe "
	     "guest did not finish within 300 ms"},
	};
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct decide_args a = {.want = CFG_ACCEL_AUTO,
					.probe = cases[i].probe};
		int r;
		char *out = capture_stderr(call_decide, &a, &r);
		assert_int_equal(r, 0);
		if (!cases[i].why) {
			assert_int_equal(a.out, ACCEL_KVM);
			assert_string_equal(out, "");
		} else {
			assert_int_equal(a.out, ACCEL_TCG);
			assert_non_null(strstr(out, "ccvm: KVM not usable ("));
			assert_non_null(strstr(out, cases[i].why));
			assert_non_null(strstr(out, "); using TCG (slow)\n"));
		}
		free(out);

		a = (struct decide_args){.want = CFG_ACCEL_KVM,
					 .probe = cases[i].probe};
		out = capture_stderr(call_decide, &a, &r);
		assert_int_equal(r, cases[i].kvm_r);
		assert_string_equal(out, "");
		if (!cases[i].why) {
			assert_int_equal(a.out, ACCEL_KVM);
		} else {
			assert_int_equal(a.out, (enum accel_kind) - 1);
			assert_non_null(
			    strstr(a.err.msg, "acceleration=kvm: "));
			assert_non_null(strstr(a.err.msg, cases[i].why));
		}
		free(out);

		a = (struct decide_args){.want = CFG_ACCEL_TCG,
					 .probe = cases[i].probe};
		out = capture_stderr(call_decide, &a, &r);
		assert_int_equal(r, 0);
		assert_int_equal(a.out, ACCEL_TCG);
		assert_string_equal(out, "");
		free(out);
	}
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(accel_name(ACCEL_TCG), "tcg");
	assert_string_equal(accel_name(ACCEL_KVM), "kvm");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_missing_device),
	    cmocka_unit_test(test_not_kvm),
	    cmocka_unit_test(test_no_permission),
	    cmocka_unit_test(test_real_device_answers_fast),
	    cmocka_unit_test(test_choose_tcg),
	    cmocka_unit_test(test_choose_kvm_fails_with_reason),
	    cmocka_unit_test(test_choose_auto_falls_back),
	    cmocka_unit_test(test_choose_auto_real),
	    cmocka_unit_test(test_verdict_usable),
	    cmocka_unit_test(test_verdict_broken_backend),
	    cmocka_unit_test(test_decide_every_case),
	    cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
