/*
 * QEMU's command line, built as an argv for execve: no shell ever sees it.
 * Every value spliced into a "key=value,..." option string goes through
 * qemu_escape (commas doubled, control characters refused); values passed
 * as whole arguments (-kernel, -initrd, -append, -bios) need no escaping
 * but still may not hold control characters.
 *
 * Choices follow notes/feasibility.md: an ELF vmlinux booted through its
 * PVH note with qboot (2.2 s to init under TCG here vs 8.5 s for SeaBIOS +
 * bzImage), -nodefaults, a trimmed kernel command line, virtio devices
 * only.
 */
#define _GNU_SOURCE
#include "vm/qemu.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "vm/ram.h"
#include "util.h"

static bool is_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

int qemu_escape(const char *value, char *out, size_t outsz)
{
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if (is_control(*p))
			return -EINVAL;
		size_t need = *p == ',' ? 2 : 1;
		if (o + need >= outsz)
			return -ENAMETOOLONG;
		out[o++] = (char)*p;
		if (*p == ',')
			out[o++] = ',';
	}
	if (outsz == 0)
		return -ENAMETOOLONG;
	out[o] = '\0';
	return 0;
}

/* A printable rendering of value for error messages (control characters
 * as \xNN), truncated to fit buf. */
static const char *printable(const char *value, char *buf, size_t n)
{
	size_t o = 0;
	for (const unsigned char *p = (const unsigned char *)value;
	     *p && o + 5 < n; p++) {
		if (is_control(*p))
			o += (size_t)snprintf(buf + o, n - o, "\\x%02x", *p);
		else
			buf[o++] = (char)*p;
	}
	buf[o] = '\0';
	return buf;
}

struct builder {
	char **v;
	size_t n, cap;
	int err; /* first failure, sticky */
	struct ccvm_err *e;
};

static void add_owned(struct builder *b, char *s)
{
	if (b->err) {
		free(s);
		return;
	}
	if (!s) {
		b->err = ccvm_err_set(b->e, ENOMEM, "QEMU argv: out of memory");
		return;
	}
	if (b->n + 2 > b->cap) {
		size_t cap = b->cap ? b->cap * 2 : 64;
		char **v = realloc(b->v, cap * sizeof(*v));
		if (!v) {
			free(s);
			b->err = ccvm_err_set(b->e, ENOMEM,
					      "QEMU argv: out of memory");
			return;
		}
		b->v = v;
		b->cap = cap;
	}
	b->v[b->n++] = s;
	b->v[b->n] = NULL;
}

static void add(struct builder *b, const char *s)
{
	add_owned(b, b->err ? NULL : strdup(s));
}

static void add2(struct builder *b, const char *opt, const char *val)
{
	add(b, opt);
	add(b, val);
}

/* A whole-argument value: only control characters are refused.  opt may
 * be NULL (argv[0]). */
static void add_raw(struct builder *b, const char *opt, const char *what,
		    const char *val)
{
	if (b->err)
		return;
	for (const unsigned char *p = (const unsigned char *)val; *p; p++) {
		if (is_control(*p)) {
			char buf[256];
			b->err = ccvm_err_set(
			    b->e, EINVAL,
			    "%s \"%s\": control characters are not allowed in "
			    "QEMU arguments",
			    what, printable(val, buf, sizeof(buf)));
			return;
		}
	}
	if (opt)
		add(b, opt);
	add(b, val);
}

/*
 * Escapes val for an option string, or records an error naming what and
 * the value.  Returns a malloc'ed string or NULL (error recorded).
 */
static char *esc(struct builder *b, const char *what, const char *val)
{
	if (b->err)
		return NULL;
	size_t sz = 2 * strlen(val) + 1;
	char *out = malloc(sz);
	if (!out) {
		b->err = ccvm_err_set(b->e, ENOMEM, "QEMU argv: out of memory");
		return NULL;
	}
	int r = qemu_escape(val, out, sz);
	if (r < 0) {
		char buf[256];
		free(out);
		b->err = ccvm_err_set(b->e, -r,
				      "%s \"%s\": control characters are not "
				      "allowed in QEMU option values",
				      what, printable(val, buf, sizeof(buf)));
		return NULL;
	}
	return out;
}

/* Adds opt and the printf'ed option string, taking ownership of the
 * escaped value e (which may be NULL after an error). */
#define add_fmt(b, opt, e, fmt, ...)                                           \
	do {                                                                   \
		char *e_ = (e);                                                \
		if (e_) {                                                      \
			add(b, opt);                                           \
			add_owned(b, util_asprintf(fmt, __VA_ARGS__));         \
		}                                                              \
		free(e_);                                                      \
	} while (0)

char *qemu_cmdline(const struct qemu_spec *s)
{
	char tsc[80] = "";
	/* lpj= (loops per jiffy: TSC cycles per tick, as the boot CPU
	 * computes it from the TSC frequency) spares each secondary vCPU its
	 * delay-loop calibration, several ticks of busy-waiting each: 0.2 to
	 * 0.9 s of a TCG boot with 4 vCPUs.  It assumes CONFIG_HZ=250, which
	 * both ccvm's kernel and Debian's have; a kernel with another HZ would
	 * only get udelay()s off by that factor. */
	if (s->tsc_khz > 0)
		snprintf(tsc, sizeof(tsc), " tsc_early_khz=%ld lpj=%ld",
			 s->tsc_khz, s->tsc_khz * 1000 / QEMU_GUEST_HZ);
	/* loglevel=1 keeps the console quiet but for emergencies, so a guest
	 * panic still reaches ccvm's failure report.  cryptomgr.notests and the
	 * blacklist save ~0.5 s under TCG; the i8042 options skip probing a
	 * keyboard controller we do not use.  dummy.numdummies=0: a built-in
	 * dummy driver (ccvm's own kernel) would make a dummy0 nobody uses;
	 * ccvm-init makes its own interface.  swiotlb=noforce: with RAM above
	 * 4 GiB the kernel zeroes a 64 MiB bounce buffer at boot (~0.2 s under
	 * TCG) that nothing here uses: virtio devices without
	 * VIRTIO_F_ACCESS_PLATFORM (QEMU's default) bypass the DMA API.
	 *
	 * norandmaps, under TCG only: QEMU finds code it has translated
	 * before by its virtual address, so a program whose libraries land
	 * somewhere new at every exec is translated anew every time.  With
	 * the same layout each time, a warm exec of a dynamically linked
	 * program costs ~10 ms instead of ~40 (bench/README.md, "Programs
	 * started in the guest").  What it gives up is the guest's own
	 * hardening against its own user (docs/security.md); KVM, which
	 * translates nothing, keeps randomisation.
	 *
	 * clearcpuid=rep_good, under TCG only, with the CPU model's
	 * -erms,-fsrm (qemu_argv_build): QEMU executes a `rep movs` or `rep
	 * stos` one element per iteration, so the kernel's string routines
	 * (clear_page, copy_to_user, memset) and glibc's large memcpy are
	 * faster as the plain unrolled loops they fall back to.  Reading a
	 * file from the share goes 2.4x as fast, writing one 1.4x, and the
	 * agent starts ~0.25 s sooner (bench/README.md, "String instructions
	 * under TCG").  The kernel marks itself tainted 'S' (CPU out of spec)
	 * for it; nothing in the guest looks at that. */
	return util_asprintf(
	    "console=ttyS0 panic=-1 %s cryptomgr.notests no_timer_check "
	    "tsc=reliable%s initcall_blacklist=load_system_certificate_list,"
	    "init_kprobe_trace random.trust_cpu=on i8042.noaux i8042.nokbd "
	    "i8042.nopnp nokaslr dummy.numdummies=0 swiotlb=noforce%s%s%s",
	    s->debug ? "loglevel=7" : "quiet loglevel=1", tsc,
	    s->accel == ACCEL_KVM ? "" : " norandmaps clearcpuid=rep_good",
	    s->debug ? " ccvm.debug" : "", s->park ? " ccvm.park" : "");
}

static int check_spec(const struct qemu_spec *s, struct ccvm_err *err)
{
	if (!s->qemu || !s->kernel || !s->initrd || !s->rootfs || !s->cwd)
		return ccvm_err_set(err, EINVAL,
				    "QEMU argv: qemu, kernel, initrd, rootfs "
				    "and cwd are required");
	if (s->memory_mib <= 0 || s->cores <= 0)
		return ccvm_err_set(err, EINVAL,
				    "QEMU argv: memory (%ld MiB) and cores "
				    "(%ld) must be positive",
				    s->memory_mib, s->cores);
	if (s->scratch_fd < 0 || s->scratch_fd == 1 || s->scratch_fd == 2)
		return ccvm_err_set(err, EBADF,
				    "QEMU argv: bad scratch disk fd %d",
				    s->scratch_fd);
	if (s->ram_fd < 0 || s->ram_fd == 1 || s->ram_fd == 2)
		return ccvm_err_set(
		    err, EBADF, "QEMU argv: bad guest RAM fd %d", s->ram_fd);
	if (s->vfs_fd < 0 || s->vfs_fd == 1 || s->vfs_fd == 2)
		return ccvm_err_set(err, EBADF,
				    "QEMU argv: bad virtiofs socket fd %d",
				    s->vfs_fd);
	if (s->park && (s->vfs_fd <= 0 || s->ram_fd <= 0 || s->qmp_fd <= 2))
		return ccvm_err_set(err, EINVAL,
				    "QEMU argv: a saved boot needs virtiofs, "
				    "the RAM file and a QMP socket");
	if (s->incoming && !s->park)
		return ccvm_err_set(err, EINVAL,
				    "QEMU argv: -incoming without park");
	if (s->ctl_fd < 0 || s->console_fd < -1)
		return ccvm_err_set(err, EBADF,
				    "QEMU argv: bad control fd %d or console "
				    "fd %d",
				    s->ctl_fd, s->console_fd);
	return 0;
}

/* The machine: CPU, memory, firmware, kernel, the sandbox, the console. */
static void add_machine(struct builder *b, const struct qemu_spec *s)
{
	bool kvm = s->accel == ACCEL_KVM;

	add_raw(b, NULL, "QEMU binary", s->qemu);
	add2(b, "-name", "ccvm");
	add(b, "-nodefaults");
	add(b, "-no-user-config");
	add2(b, "-display", "none");
	add2(b, "-machine", "q35");
	add2(b, "-accel", kvm ? "kvm" : "tcg");
	/* Under TCG without the fast-string flags: see qemu_cmdline. */
	add2(b, "-cpu", kvm ? "host" : "max,-erms,-fsrm");
	add_owned(b, strdup("-m"));
	add_owned(b, util_asprintf("%ldM", s->memory_mib));
	if (s->vfs_fd > 0) {
		/* vhost-user devices need guest RAM virtiofsd can map: the
		 * huge-page file (ram.h), mapped 2 MiB-aligned, else a memfd.
		 */
		add_owned(b, strdup("-object"));
		add_owned(b, s->ram_fd > 0
				 ? util_asprintf("memory-backend-file,id=mem,"
						 "size=%ldM,share=on,align=2M,"
						 "mem-path=" RAM_PATH_FMT,
						 s->memory_mib, s->ram_fd)
				 : util_asprintf("memory-backend-memfd,id=mem,"
						 "size=%ldM,share=on",
						 s->memory_mib));
		add2(b, "-numa", "node,memdev=mem");
	}
	add_owned(b, strdup("-smp"));
	add_owned(b, util_asprintf("%ld", s->cores));
	if (s->bios)
		add_raw(b, "-bios", "firmware", s->bios);
	add_raw(b, "-kernel", "kernel", s->kernel);
	add_raw(b, "-initrd", "initrd", s->initrd);
	add_owned(b, strdup("-append"));
	add_owned(b, qemu_cmdline(s));
	add(b, "-no-reboot");
	add2(b, "-sandbox",
	     "on,obsolete=deny,elevateprivileges=deny,spawn=deny,"
	     "resourcecontrol=deny");
	if (s->mem_lock)
		add2(b, "-overcommit", "mem-lock=on");
	add2(b, "-nic", "none");

	/* Serial console: the kernel's console=ttyS0. */
	if (s->console_fd >= 0) {
		add(b, "-chardev");
		add_owned(b,
			  util_asprintf("socket,id=con,fd=%d", s->console_fd));
		add2(b, "-serial", "chardev:con");
	} else {
		add2(b, "-serial", "null");
	}
}

/* The root image, the scratch disk and the entropy device. */
static void add_disks(struct builder *b, const struct qemu_spec *s)
{
	/*
	 * Disks through -blockdev with an explicit file driver: unlike
	 * -drive file=..., a path holding ':' is never taken for a protocol
	 * (nbd:, ssh:, ...) and the format is never probed.
	 */
	add_fmt(b, "-blockdev", esc(b, "root image", s->rootfs),
		"driver=raw,node-name=root,read-only=on,file.driver=file,"
		"file.filename=%s",
		e_);
	add2(b, "-device", "virtio-blk-pci,drive=root,romfile=");
	if (s->scratch_fd > 0) {
		/* A nameless file QEMU inherits as an fd.  Throw-away
		 * ciphertext: flushes buy nothing (no-flush).  A full host disk
		 * is an I/O error in the guest, not a VM paused for good. */
		add(b, "-add-fd");
		add_owned(b, util_asprintf("fd=%d,set=%d,opaque=scratch",
					   s->scratch_fd, QEMU_SCRATCH_FDSET));
		add(b, "-blockdev");
		add_owned(b, util_asprintf(
				 "driver=raw,node-name=scratch,cache.no-flush="
				 "on,file.driver=file,file.filename=/dev/"
				 "fdset/%d",
				 QEMU_SCRATCH_FDSET));
		add2(b, "-device",
		     "virtio-blk-pci,drive=scratch,werror=report,rerror=report,"
		     "romfile=");
	}

	add2(b, "-device", "virtio-rng-pci,romfile=");
}

/* The control port and the network port. */
static void add_channels(struct builder *b, const struct qemu_spec *s)
{
	/* Control channel. */
	add2(b, "-device", "virtio-serial-pci,romfile=");
	add(b, "-chardev");
	add_owned(b, util_asprintf("socket,id=ctl,fd=%d", s->ctl_fd));
	add2(b, "-device", "virtserialport,chardev=ctl,name=ccvm.ctl");
	if (s->net_fd > 0) { /* the guest's network (docs/egress.md) */
		add(b, "-chardev");
		add_owned(b, util_asprintf("socket,id=net,fd=%d", s->net_fd));
		add2(b, "-device", "virtserialport,chardev=net,name=ccvm.net");
	}
}

/* The launch directory (virtiofs or 9p) and the projects directory. */
static void add_shares(struct builder *b, const struct qemu_spec *s)
{
	/* Shares.  virtiofsd serves the launch directory when it runs
	 * (read-only mode is enforced there); else 9p, where
	 * multidevs=remap keeps inode numbers unique when the tree spans
	 * several host file systems. */
	if (s->vfs_fd > 0) {
		add(b, "-chardev");
		add_owned(b, util_asprintf("socket,id=vfs,fd=%d", s->vfs_fd));
		/* With park, QEMU_VFS_DEVICE over QMP, into a root port:
		 * q35's root bus takes no device_add.  No hotplug driver in
		 * the guest: it rescans (the port, hotplug-capable, gets
		 * address space at boot all the same). */
		if (!s->park)
			add2(b, "-device",
			     "vhost-user-fs-pci,chardev=vfs,tag=ccvm.cwd,"
			     "queue-size=1024,romfile=");
		else
			add2(b, "-device",
			     "pcie-root-port,id=" QEMU_VFS_PORT
			     ",chassis=1,addr=0x10");
	} else {
		add_fmt(b, "-fsdev", esc(b, "launch directory", s->cwd),
			"local,id=cwd,path=%s,security_model=none,"
			"multidevs=remap%s",
			e_, s->writable ? "" : ",readonly=on");
		add2(b, "-device",
		     "virtio-9p-pci,fsdev=cwd,mount_tag=ccvm.cwd,"
		     "romfile=");
	}
	if (s->projects) {
		add_fmt(b, "-fsdev", esc(b, "projects directory", s->projects),
			"local,id=projects,path=%s,security_model=none,"
			"multidevs=remap",
			e_);
		add2(b, "-device",
		     "virtio-9p-pci,fsdev=projects,"
		     "mount_tag=ccvm.projects,romfile=");
	}
}

/* QMP and -incoming for a saved boot (park.h): last, as they always were. */
static void add_monitor(struct builder *b, const struct qemu_spec *s)
{
	if (s->park) {
		add(b, "-chardev");
		add_owned(b, util_asprintf("socket,id=qmp,fd=%d", s->qmp_fd));
		add2(b, "-mon", "chardev=qmp,mode=control");
		if (s->incoming)
			add2(b, "-incoming", "defer");
	}
}

int qemu_argv_build(const struct qemu_spec *s, struct qemu_argv *out,
		    struct ccvm_err *err)
{
	int r = check_spec(s, err);
	if (r < 0)
		return r;
	struct builder b = {.e = err};
	add_machine(&b, s);
	add_disks(&b, s);
	add_channels(&b, s);
	add_shares(&b, s);
	add_monitor(&b, s);
	if (b.err) {
		struct qemu_argv tmp = {b.v, b.n};
		qemu_argv_free(&tmp);
		return b.err;
	}
	out->v = b.v;
	out->n = b.n;
	return 0;
}

void qemu_argv_free(struct qemu_argv *a)
{
	if (!a->v)
		return;
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	a->v = NULL;
	a->n = 0;
}

const char *qemu_find_bios(void)
{
	return access(QEMU_QBOOT_PATH, R_OK) == 0 ? QEMU_QBOOT_PATH : NULL;
}

long qemu_host_tsc_khz(void)
{
	autofclose FILE *f = fopen("/proc/cpuinfo", "re");
	if (!f)
		return 0;
	char line[512];
	/* Bounded: the first "cpu MHz" line is near the top. */
	for (int i = 0; i < 64 && fgets(line, sizeof(line), f); i++) {
		if (strncmp(line, "cpu MHz", 7) != 0)
			continue;
		const char *colon = strchr(line, ':');
		if (!colon)
			return 0;
		char *end;
		double mhz = strtod(colon + 1, &end);
		if (end == colon + 1 || mhz < 100 || mhz > 100000)
			return 0;
		return (long)(mhz * 1000 + 0.5);
	}
	return 0;
}

int qemu_memlock_check_limit(unsigned long long limit, bool cap_ipc_lock,
			     long memory_mib, enum accel_kind accel,
			     struct ccvm_err *err)
{
	if (cap_ipc_lock || limit == (unsigned long long)RLIM_INFINITY)
		return 0;
	/* mlockall(MCL_FUTURE) also locks what QEMU maps for itself: the
	 * TCG translation cache (1 GiB by default) and its own heap. */
	unsigned long long need =
	    (unsigned long long)memory_mib +
	    (accel == ACCEL_TCG ? QEMU_MEMLOCK_OVERHEAD_MIB
				: QEMU_MEMLOCK_OVERHEAD_KVM_MIB);
	if (limit / (1024 * 1024) >= need)
		return 0;
	return ccvm_err_set(err, ENOMEM,
			    "lockGuestMemory needs RLIMIT_MEMLOCK >= %llu MiB "
			    "(%ld MiB of guest memory plus QEMU's own under "
			    "%s), but it is %llu MiB; raise it with ulimit -l "
			    "%llu (or memlock in /etc/security/limits.conf), "
			    "or set lockGuestMemory to false",
			    need, memory_mib, accel_name(accel),
			    limit / (1024 * 1024), need * 1024);
}

static bool have_cap_ipc_lock(void)
{
	autofclose FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		return false;
	char line[256];
	for (int i = 0; i < 128 && fgets(line, sizeof(line), f); i++) {
		unsigned long long caps;
		if (sscanf(line, "CapEff: %llx", &caps) == 1)
			return caps & (1ull << 14); /* CAP_IPC_LOCK */
	}
	return false;
}

int qemu_memlock_check(long memory_mib, enum accel_kind accel,
		       struct ccvm_err *err)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0)
		return ccvm_err_sys(err, errno, "lockGuestMemory: getrlimit");
	return qemu_memlock_check_limit(rl.rlim_cur, have_cap_ipc_lock(),
					memory_mib, accel, err);
}
