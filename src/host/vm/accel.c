/*
 * KVM or TCG.  A /dev/kvm that opens is not enough: nested or software KVM
 * backends (this development machine's PVM) accept a VM and then emulate a
 * real guest so slowly, or fail on instructions such as cmpxchg16b, that
 * the boot never finishes.  So the probe runs a small long-mode guest that
 * does what a kernel does early (fresh pages, lock cmpxchg16b, a loop) in a
 * child process, and the parent gives it ACCEL_PROBE_DEADLINE_MS.
 */
#define _GNU_SOURCE
#include "vm/accel.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sys/spawn.h"
#include "term/say.h"
#include "util.h"

const char *accel_name(enum accel_kind k)
{
	return k == ACCEL_KVM ? "kvm" : "tcg";
}

/* ---- the probe guest ------------------------------------------------- */

/* Guest physical layout (identity mapped with 2 MiB pages). */
#define G_MEM_SIZE  (8u << 20)
#define G_GDT	    0x1000u
#define G_PML4	    0x2000u
#define G_PDPT	    0x3000u
#define G_PD	    0x4000u
#define G_CODE	    0x8000u
#define G_STACK	    0x1fe000u
#define G_SLOT	    0x1ff000u /* cmpxchg16b target, then the loop result */
#define G_PAGES	    0x200000u /* first of the fresh pages */
#define G_NPAGES    1024u
#define G_LOOP	    2000000ull
#define G_PORT	    0x10
#define G_LAST_STEP 3

/*
 * Assembled from (GNU as, .code64):
 *	mov $0x200000,%rdi; mov $1024,%ecx
 *   1: mov %rdi,(%rdi); add $4096,%rdi; dec %ecx; jnz 1b
 *	mov $0x10,%dx; mov $1,%al; out %al,%dx
 *	mov $0x1ff000,%rsi; xor %eax,%eax; xor %edx,%edx
 *	mov $0x1234,%ebx; mov $0x5678,%ecx; lock cmpxchg16b (%rsi)
 *	mov $0x10,%dx; mov $2,%al; out %al,%dx
 *	mov $2000000,%ecx; xor %eax,%eax
 *   2: add %rcx,%rax; dec %ecx; jnz 2b
 *	mov %rax,0x1ff010
 *	mov $0x10,%dx; mov $3,%al; out %al,%dx
 *	hlt
 */
static const uint8_t probe_code[] = {
    0x48, 0xc7, 0xc7, 0x00, 0x00, 0x20, 0x00, 0xb9, 0x00, 0x04, 0x00, 0x00,
    0x48, 0x89, 0x3f, 0x48, 0x81, 0xc7, 0x00, 0x10, 0x00, 0x00, 0xff, 0xc9,
    0x75, 0xf2, 0x66, 0xba, 0x10, 0x00, 0xb0, 0x01, 0xee, 0x48, 0xc7, 0xc6,
    0x00, 0xf0, 0x1f, 0x00, 0x31, 0xc0, 0x31, 0xd2, 0xbb, 0x34, 0x12, 0x00,
    0x00, 0xb9, 0x78, 0x56, 0x00, 0x00, 0xf0, 0x48, 0x0f, 0xc7, 0x0e, 0x66,
    0xba, 0x10, 0x00, 0xb0, 0x02, 0xee, 0xb9, 0x80, 0x84, 0x1e, 0x00, 0x31,
    0xc0, 0x48, 0x01, 0xc8, 0xff, 0xc9, 0x75, 0xf9, 0x48, 0x89, 0x04, 0x25,
    0x10, 0xf0, 0x1f, 0x00, 0x66, 0xba, 0x10, 0x00, 0xb0, 0x03, 0xee, 0xf4};

static const char *const setup_steps[] = {
    "KVM_CREATE_VM",
    "mmap guest memory",
    "KVM_SET_USER_MEMORY_REGION",
    "KVM_CREATE_VCPU",
    "KVM_GET_VCPU_MMAP_SIZE",
    "mmap kvm_run",
    "KVM_GET_SUPPORTED_CPUID",
    "KVM_SET_CPUID2",
    "KVM_GET_SREGS",
    "KVM_SET_SREGS",
    "KVM_SET_REGS",
    "KVM_RUN",
};
enum {
	ST_CREATE_VM,
	ST_MMAP_MEM,
	ST_SET_MEM,
	ST_CREATE_VCPU,
	ST_MMAP_SIZE,
	ST_MMAP_RUN,
	ST_GET_CPUID,
	ST_SET_CPUID,
	ST_GET_SREGS,
	ST_SET_SREGS,
	ST_SET_REGS,
	ST_RUN,
};

static const char *const guest_steps[] = {
    "entered the guest, no progress yet",
    "touched fresh pages, stuck at lock cmpxchg16b",
    "passed lock cmpxchg16b, in the loop",
    "finished the loop",
};

static void probe_send(int fd, int32_t kind, int32_t a, int32_t b)
{
	struct accel_probe_msg m = {kind, a, b};
	(void)util_write_all(fd, &m, sizeof(m));
}

static __attribute__((noreturn)) void probe_fail(int fd, int step, int e)
{
	probe_send(fd, ACCEL_PROBE_SETUP_FAILED, step, e);
	_exit(1);
}

static void put64(uint8_t *mem, uint64_t gpa, uint64_t v)
{
	memcpy(mem + gpa, &v, sizeof(v));
}

static uint64_t get64(const uint8_t *mem, uint64_t gpa)
{
	uint64_t v;
	memcpy(&v, mem + gpa, sizeof(v));
	return v;
}

static struct kvm_cpuid2 *get_supported_cpuid(int kvm)
{
	for (uint32_t n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c =
		    calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return NULL;
		c->nent = n;
		if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		int e = errno;
		free(c);
		if (e != E2BIG) {
			errno = e;
			return NULL;
		}
	}
	errno = E2BIG;
	return NULL;
}

static void long_mode_sregs(struct kvm_sregs *s)
{
	struct kvm_segment code = {
	    .base = 0,
	    .limit = 0xffffffff,
	    .selector = 0x08,
	    .type = 11, /* execute/read, accessed */
	    .present = 1,
	    .s = 1,
	    .l = 1,
	    .g = 1,
	};
	struct kvm_segment data = code;
	data.selector = 0x10;
	data.type = 3; /* read/write, accessed */
	data.l = 0;
	data.db = 1;
	s->cs = code;
	s->ds = s->es = s->fs = s->gs = s->ss = data;
	s->gdt.base = G_GDT;
	s->gdt.limit = 3 * 8 - 1;
	s->cr3 = G_PML4;
	s->cr4 = 1u << 5 /* PAE */ | 1u << 9 /* OSFXSR */ |
		 1u << 10 /* OSXMMEXCPT */;
	s->cr0 = 1u << 0 /* PE */ | 1u << 1 /* MP */ | 1u << 4 /* ET */ |
		 1u << 5 /* NE */ | 1u << 16 /* WP */ | 1u << 31 /* PG */;
	s->efer = 1u << 8 /* LME */ | 1u << 10 /* LMA */;
}

static void build_guest(uint8_t *mem)
{
	/* GDT: null, 64-bit code, data; the same as the sregs above. */
	put64(mem, G_GDT + 8, 0x00af9b000000ffffull);
	put64(mem, G_GDT + 16, 0x00cf93000000ffffull);
	put64(mem, G_PML4, G_PDPT | 3);
	put64(mem, G_PDPT, G_PD | 3);
	for (uint64_t i = 0; i < G_MEM_SIZE / (2u << 20); i++)
		put64(mem, G_PD + 8 * i, (i * (2u << 20)) | 0x83); /* P RW PS */
	memcpy(mem + G_CODE, probe_code, sizeof(probe_code));
}

/* 0 when everything the guest wrote is what it should have written. */
static int check_guest(const uint8_t *mem)
{
	for (uint64_t i = 0; i < G_NPAGES; i++) {
		uint64_t a = G_PAGES + i * 4096;
		if (get64(mem, a) != a)
			return 1;
	}
	if (get64(mem, G_SLOT) != 0x1234 || get64(mem, G_SLOT + 8) != 0x5678)
		return 2;
	if (get64(mem, G_SLOT + 16) != G_LOOP * (G_LOOP + 1) / 2)
		return 3;
	return 0;
}

/* The probe, in its own process: creates a VM, runs the guest and reports
 * each stage on out.  Long (~90 lines) on purpose: one fixed sequence of
 * KVM ioctls, each reporting its own step, read best top to bottom. */
static __attribute__((noreturn)) void probe_child(int kvm, int out)
{
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		probe_fail(out, ST_CREATE_VM, errno);
	uint8_t *mem = mmap(NULL, G_MEM_SIZE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		probe_fail(out, ST_MMAP_MEM, errno);
	build_guest(mem);
	struct kvm_userspace_memory_region region = {
	    .slot = 0,
	    .guest_phys_addr = 0,
	    .memory_size = G_MEM_SIZE,
	    .userspace_addr = (uintptr_t)mem,
	};
	if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) < 0)
		probe_fail(out, ST_SET_MEM, errno);
	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		probe_fail(out, ST_CREATE_VCPU, errno);
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size < (int)sizeof(struct kvm_run))
		probe_fail(out, ST_MMAP_SIZE, run_size < 0 ? errno : EINVAL);
	struct kvm_run *run = mmap(NULL, (size_t)run_size,
				   PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		probe_fail(out, ST_MMAP_RUN, errno);
	/* Without the host's CPUID the vCPU refuses long mode. */
	struct kvm_cpuid2 *cpuid = get_supported_cpuid(kvm);
	if (!cpuid)
		probe_fail(out, ST_GET_CPUID, errno);
	if (ioctl(vcpu, KVM_SET_CPUID2, cpuid) < 0)
		probe_fail(out, ST_SET_CPUID, errno);
	struct kvm_sregs sregs;
	if (ioctl(vcpu, KVM_GET_SREGS, &sregs) < 0)
		probe_fail(out, ST_GET_SREGS, errno);
	long_mode_sregs(&sregs);
	if (ioctl(vcpu, KVM_SET_SREGS, &sregs) < 0)
		probe_fail(out, ST_SET_SREGS, errno);
	struct kvm_regs regs = {
	    .rip = G_CODE,
	    .rsp = G_STACK,
	    .rflags = 0x2,
	};
	if (ioctl(vcpu, KVM_SET_REGS, &regs) < 0)
		probe_fail(out, ST_SET_REGS, errno);

	probe_send(out, ACCEL_PROBE_ENTERING, 0, 0);
	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			probe_fail(out, ST_RUN, errno);
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			if (run->io.port == G_PORT &&
			    run->io.direction == KVM_EXIT_IO_OUT &&
			    run->io.size == 1) {
				uint8_t v =
				    *((uint8_t *)run + run->io.data_offset);
				probe_send(out, ACCEL_PROBE_PROGRESS, v, 0);
				continue;
			}
			probe_send(out, ACCEL_PROBE_BAD_EXIT, KVM_EXIT_IO,
				   run->io.port);
			_exit(1);
		case KVM_EXIT_HLT: {
			int bad = check_guest(mem);
			if (bad)
				probe_send(out, ACCEL_PROBE_WRONG_RESULT, bad,
					   0);
			else
				probe_send(out, ACCEL_PROBE_DONE, 0, 0);
			_exit(bad ? 1 : 0);
		}
		case KVM_EXIT_INTERNAL_ERROR:
			probe_send(out, ACCEL_PROBE_BAD_EXIT,
				   KVM_EXIT_INTERNAL_ERROR,
				   (int32_t)run->internal.suberror);
			_exit(1);
		case KVM_EXIT_FAIL_ENTRY:
			probe_send(
			    out, ACCEL_PROBE_BAD_EXIT, KVM_EXIT_FAIL_ENTRY,
			    (int32_t)
				run->fail_entry.hardware_entry_failure_reason);
			_exit(1);
		default:
			probe_send(out, ACCEL_PROBE_BAD_EXIT,
				   (int32_t)run->exit_reason, 0);
			_exit(1);
		}
	}
}

/* The child (spawn_call): /dev/kvm is its fd 3, the report pipe fd 4. */
static int probe_main(void *arg)
{
	(void)arg;
	probe_child(3, 4);
}

/* ---- the parent side ------------------------------------------------- */

static const char *exit_name(int reason, int detail, char *buf, size_t n)
{
	switch (reason) {
	case KVM_EXIT_INTERNAL_ERROR:
		if (detail == KVM_INTERNAL_ERROR_EMULATION)
			return "KVM internal error (emulation failure)";
		snprintf(buf, n, "KVM internal error (suberror %d)", detail);
		return buf;
	case KVM_EXIT_SHUTDOWN:
		return "triple fault (KVM_EXIT_SHUTDOWN)";
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(buf, n, "VM entry failure (hardware reason 0x%x)",
			 (unsigned)detail);
		return buf;
	case KVM_EXIT_IO:
		snprintf(buf, n, "unexpected I/O exit on port 0x%x",
			 (unsigned)detail);
		return buf;
	default:
		snprintf(buf, n, "unexpected KVM exit %d", reason);
		return buf;
	}
}

static const char *step_name(const struct accel_probe_state *st)
{
	if (!st->entered)
		return "before entering the guest";
	if (st->step < 0 || st->step >= (int)ARRAY_LEN(guest_steps))
		return "?";
	return guest_steps[st->step];
}

/* Reads the child's reports until it is done, fails, exits or the deadline
 * passes.  Returns false on timeout. */
static bool probe_wait(int fd, long long deadline, struct accel_probe_state *st)
{
	for (;;) {
		long long left = deadline - util_now_ms();
		if (left <= 0)
			return false;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r <
			       0; /* treat a poll error as the child's end */
		struct accel_probe_msg m;
		ssize_t n = util_read_all(fd, &m, sizeof(m));
		if (n != (ssize_t)sizeof(m))
			return true; /* EOF: the child is gone */
		switch (m.kind) {
		case ACCEL_PROBE_ENTERING:
			st->entered = true;
			break;
		case ACCEL_PROBE_PROGRESS:
			if (m.a > st->step && m.a <= G_LAST_STEP)
				st->step = m.a;
			break;
		case ACCEL_PROBE_DONE:
			st->done = true;
			st->got_result = true;
			return true;
		default:
			st->got_result = true;
			st->last = m;
			return true;
		}
	}
}

int accel_probe_verdict(const char *dev, const struct accel_probe_state *st,
			bool timed_out, int wstatus, struct ccvm_err *err)
{
	char buf[96];
	if (st->done)
		return 0;
	if (timed_out)
		return ccvm_err_set(
		    err, ETIMEDOUT,
		    "%s is present but not working: the probe guest did not "
		    "finish within %d ms (%s; emulated or nested KVM?)",
		    dev, ACCEL_PROBE_DEADLINE_MS, step_name(st));
	if (st->got_result) {
		const struct accel_probe_msg *m = &st->last;
		switch (m->kind) {
		case ACCEL_PROBE_SETUP_FAILED: {
			const char *what =
			    m->a >= 0 && m->a < (int)ARRAY_LEN(setup_steps)
				? setup_steps[m->a]
				: "setup";
			return ccvm_err_set(err, m->b > 0 ? m->b : EIO,
					    "%s is present but not working: %s "
					    "failed: %s",
					    dev, what, strerror(m->b));
		}
		case ACCEL_PROBE_BAD_EXIT:
			return ccvm_err_set(
			    err, EIO,
			    "%s is present but not working: the probe guest "
			    "stopped with %s (%s)",
			    dev, exit_name(m->a, m->b, buf, sizeof(buf)),
			    step_name(st));
		case ACCEL_PROBE_WRONG_RESULT:
			return ccvm_err_set(
			    err, EIO,
			    "%s is present but not working: the "
			    "probe guest computed wrong results "
			    "(check %d)",
			    dev, m->a);
		}
	}
	if (WIFSIGNALED(wstatus))
		return ccvm_err_set(err, EIO,
				    "%s: the KVM probe process died of signal "
				    "%d",
				    dev, WTERMSIG(wstatus));
	return ccvm_err_set(
	    err, EIO, "%s: the KVM probe process ended without a result", dev);
}

int accel_probe_kvm(const char *dev, struct ccvm_err *err)
{
	autoclose int kvm = open(dev, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (kvm < 0) {
		int e = errno;
		if (e == ENOENT || e == ENXIO || e == ENODEV)
			return ccvm_err_set(
			    err, ENOENT,
			    "no %s: enable virtualization in the "
			    "firmware and load the kvm module "
			    "(kvm_intel or kvm_amd)",
			    dev);
		if (e == EACCES || e == EPERM)
			return ccvm_err_set(
			    err, EACCES,
			    "%s: permission denied: add yourself "
			    "to group kvm (sudo usermod -aG kvm "
			    "$USER) and log in again",
			    dev);
		return ccvm_err_sys(err, e, "%s", dev);
	}
	struct stat st;
	if (fstat(kvm, &st) < 0)
		return ccvm_err_sys(err, errno, "%s", dev);
	int api = S_ISCHR(st.st_mode) ? ioctl(kvm, KVM_GET_API_VERSION, 0) : -1;
	if (api < 0)
		return ccvm_err_set(
		    err, ENOTTY,
		    "%s is not a KVM device (KVM_GET_API_VERSION "
		    "failed)",
		    dev);
	if (api != KVM_API_VERSION)
		return ccvm_err_set(err, ENOTTY,
				    "%s: unsupported KVM API version %d "
				    "(expected %d)",
				    dev, api, KVM_API_VERSION);

	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return ccvm_err_sys(err, errno, "KVM probe: pipe");
	autoclose int rd = p[0];
	autoclose int wr = p[1];
	long long start = util_now_ms();
	/* The probe keeps ccvm's signal state (keep_signals): KVM_RUN is
	 * interrupted only by what would interrupt ccvm. */
	const struct spawn_fd fds[] = {{2, STDERR_FILENO}, {3, kvm}, {4, wr}};
	struct spawn_opts o = {
	    .fds = fds, .n_fds = ARRAY_LEN(fds), .keep_signals = true};
	struct spawn_child c;
	struct ccvm_err e = {0};
	int r = spawn_call(&o, probe_main, NULL, &c, &e);
	close(steal_fd(&wr));
	if (r < 0)
		return ccvm_err_set(err, -r, "KVM probe: %s", e.msg);

	struct accel_probe_state ps = {0};
	bool finished = probe_wait(rd, start + ACCEL_PROBE_DEADLINE_MS, &ps);
	spawn_kill(&c);
	return accel_probe_verdict(dev, &ps, !finished, c.status, err);
}

/* ---- choosing -------------------------------------------------------- */

int accel_choose_dev(enum cfg_accel want, const char *dev, bool quiet,
		     enum accel_kind *out, struct ccvm_err *err)
{
	return accel_choose_probe(want, dev, quiet, accel_probe_kvm, out, err);
}

int accel_choose_probe(enum cfg_accel want, const char *dev, bool quiet,
		       accel_probe_fn probe, enum accel_kind *out,
		       struct ccvm_err *err)
{
	if (want == CFG_ACCEL_TCG) {
		*out = ACCEL_TCG;
		return 0;
	}
	struct ccvm_err probe_err = {0};
	int r = probe(dev, &probe_err);
	if (r == 0) {
		*out = ACCEL_KVM;
		return 0;
	}
	if (want == CFG_ACCEL_KVM)
		return ccvm_err_set(err, -r, "acceleration=kvm: %s",
				    probe_err.msg);
	if (!quiet)
		say("KVM not usable (%s); using TCG (slow)", probe_err.msg);
	*out = ACCEL_TCG;
	return 0;
}

int accel_choose(enum cfg_accel want, bool quiet, enum accel_kind *out,
		 struct ccvm_err *err)
{
	return accel_choose_dev(want, ACCEL_KVM_DEVICE, quiet, out, err);
}
