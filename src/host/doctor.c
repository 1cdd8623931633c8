/* ccvm --ccvm-doctor: one line per thing a session needs. */
#define _GNU_SOURCE
#include "doctor.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vm/accel.h"
#include "term/clipboard.h"
#include "sys/hostpath.h"
#include "sys/spawn.h"
#include "image/image.h"
#include "vm/qemu.h"
#include "util.h"

extern char **environ;

/* A cached image takes about this much; a build needs room for the
 * unpacked root next to it. */
#define IMAGE_SIZE_MIB	350
#define BUILD_FREE_MIB	2048
#define QEMU_VERSION_MS 2000
#define DOCTOR_LINE_MAX 1400

enum verdict { V_OK = 0, V_WARN, V_FAIL, V_SKIP };

/* A section of docs/troubleshooting.md, by its anchor (03-docs.sh checks
 * that each one named so exists). */
#define SEE(anchor) (anchor)

struct doctor {
	FILE *out;
	int failures, warnings;
	bool write_error;
};

/* One line; a warning or failure ends with the section of
 * docs/troubleshooting.md about it (topic, its anchor; NULL: none). */
__attribute__((format(printf, 5, 0))) static void
vreport(struct doctor *d, enum verdict v, const char *check, const char *topic,
	const char *fmt, va_list ap)
{
	static const char *const word[] = {"ok", "warn", "FAIL", "skip"};
	char text[DOCTOR_LINE_MAX];
	vsnprintf(text, sizeof(text), fmt, ap);
	if (v == V_FAIL)
		d->failures++;
	if (v == V_FAIL || v == V_WARN)
		d->warnings++;
	bool see = topic && (v == V_FAIL || v == V_WARN);
	if (fprintf(d->out, "%-4s  %-12s %s%s%s%s\n", word[v], check, text,
		    see ? " (troubleshooting.md#" : "", see ? topic : "",
		    see ? ")" : "") < 0)
		d->write_error = true;
}

__attribute__((format(printf, 4, 5))) static void report(struct doctor *d,
							 enum verdict v,
							 const char *check,
							 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(d, v, check, NULL, fmt, ap);
	va_end(ap);
}

__attribute__((format(printf, 5, 6))) static void
report_see(struct doctor *d, enum verdict v, const char *check,
	   const char *topic, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vreport(d, v, check, topic, fmt, ap);
	va_end(ap);
}

/*
 * docs/troubleshooting.md next to this ccvm: installed
 * (PREFIX/bin/ccvm, PREFIX/share/doc/ccvm/docs/) or in the checkout
 * (build/ccvm, docs/); else a description of where it is.
 */
static void troubleshooting_path(char *out, size_t n)
{
	static const char *const rel[] = {
	    "../share/doc/ccvm/docs/troubleshooting.md",
	    "../docs/troubleshooting.md"};
	char exe[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (len > 0) {
		exe[len] = '\0';
		char *slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		for (size_t i = 0; i < ARRAY_LEN(rel); i++) {
			char p[PATH_MAX + 64], real[PATH_MAX];
			snprintf(p, sizeof(p), "%s/%s", exe, rel[i]);
			if (realpath(p, real) && access(real, R_OK) == 0) {
				util_escape(out, n, real, false);
				return;
			}
		}
	}
	util_strlcpy(out, "docs/troubleshooting.md of the ccvm sources", n);
}

int doctor_first_line(char *const argv[], int timeout_ms, char *out,
		      size_t outsz)
{
	if (outsz == 0)
		return -EINVAL;
	out[0] = '\0';
	static const char *const env[] = {"PATH=/usr/bin:/bin", "LC_ALL=C",
					  NULL};
	static const struct spawn_fd fds[] = {
	    {0, SPAWN_NULL}, {1, SPAWN_PIPE}, {2, SPAWN_NULL}};
	struct spawn_opts o = {.argv = (const char *const *)argv,
			       .envp = env,
			       .fds = fds,
			       .n_fds = ARRAY_LEN(fds)};
	struct spawn_child c;
	struct ccvm_err err = {0};
	int r = spawn_start(&o, &c, &err);
	if (r < 0)
		return r;
	/* The first 4 KiB are enough: past them the probe is killed. */
	struct spawn_buf buf = {.max = 4095};
	r = spawn_wait(&c, timeout_ms, &buf, NULL);
	if (r == -ETIMEDOUT) {
		spawn_buf_free(&buf);
		return r;
	}
	if (buf.data) {
		buf.data[strcspn(buf.data, "\n")] = '\0';
		util_strlcpy(out, buf.data, outsz);
	}
	spawn_buf_free(&buf);
	return WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0 ? 0 : -EIO;
}

/* The QEMU binary a session would use: $CCVM_QEMU, else the trusted
 * directories (hostpath.h). */
static int find_qemu(char out[PATH_MAX], bool *from_env)
{
	const char *env = getenv("CCVM_QEMU");
	*from_env = env && *env;
	if (*from_env)
		return util_strlcpy(out, env, PATH_MAX);
	return image_find_tool("qemu-system-x86_64", out);
}

static void check_qemu(struct doctor *d)
{
	char path[PATH_MAX], ver[256], q[PATH_MAX + 8];
	bool from_env = false;
	if (find_qemu(path, &from_env) < 0) {
		report_see(d, V_FAIL, "qemu",
			   SEE("qemu-or-its-firmware-is-missing"),
			   "qemu-system-x86_64 not found in /usr/bin or a "
			   "root-owned PATH directory: install the Debian "
			   "package qemu-system-x86 (or set CCVM_QEMU)");
		return;
	}
	util_escape(q, sizeof(q), path, false);
	if (path[0] != '/' || access(path, X_OK) != 0) {
		report_see(d, V_FAIL, "qemu",
			   SEE("qemu-or-its-firmware-is-missing"),
			   "%s%s is not an executable absolute path: fix "
			   "CCVM_QEMU or install qemu-system-x86",
			   q, from_env ? " (CCVM_QEMU)" : "");
		return;
	}
	char *argv[] = {path, "--version", NULL};
	int r = doctor_first_line(argv, QEMU_VERSION_MS, ver, sizeof(ver));
	char v[300];
	util_escape(v, sizeof(v), ver, false);
	if (r < 0)
		report_see(
		    d, V_FAIL, "qemu", SEE("qemu-or-its-firmware-is-missing"),
		    "%s --version failed (%s): reinstall qemu-system-x86", q,
		    strerror(-r));
	else
		report(d, V_OK, "qemu", "%s: %s", q, v);
}

static void check_firmware(struct doctor *d)
{
	const char *bios = qemu_find_bios();
	if (bios)
		report(d, V_OK, "firmware", "%s (qboot: fast PVH boot)", bios);
	else
		report_see(
		    d, V_WARN, "firmware",
		    SEE("qemu-or-its-firmware-is-missing"),
		    "%s not found: QEMU's default BIOS boots a few seconds "
		    "slower; install qemu-system-x86 (Debian ships qboot "
		    "with it)",
		    QEMU_QBOOT_PATH);
}

/* The troubleshooting section for accel_probe_kvm's error r. */
static const char *kvm_topic(int r)
{
	if (r == -ENOENT)
		return SEE("no-devkvm");
	if (r == -EACCES)
		return SEE("devkvm-permission-denied");
	return SEE("kvm-is-present-but-not-working");
}

/* Sets *accel to what a session would use (TCG when undecided). */
static void check_kvm(struct doctor *d, const struct ccvm_config *cfg,
		      enum accel_kind *accel)
{
	*accel = ACCEL_TCG;
	if (cfg->accel == CFG_ACCEL_TCG) {
		report(d, V_SKIP, "kvm", "acceleration is \"tcg\": not probed");
		return;
	}
	struct ccvm_err e = {0};
	int r = accel_probe_kvm(ACCEL_KVM_DEVICE, &e);
	if (r == 0) {
		*accel = ACCEL_KVM;
		report(d, V_OK, "kvm", "%s runs a guest: sessions use KVM",
		       ACCEL_KVM_DEVICE);
	} else if (cfg->accel == CFG_ACCEL_KVM) {
		report_see(d, V_FAIL, "kvm", kvm_topic(r),
			   "%s; acceleration is \"kvm\": fix that, or set "
			   "acceleration to \"auto\" or \"tcg\"",
			   e.msg);
	} else {
		report_see(d, V_WARN, "kvm", kvm_topic(r),
			   "%s; sessions run under TCG (software emulation, "
			   "several times slower)",
			   e.msg);
	}
}

static void check_memlock(struct doctor *d, const struct ccvm_config *cfg,
			  enum accel_kind accel)
{
	if (!cfg->lock_guest_memory) {
		report(d, V_SKIP, "memlock", "lockGuestMemory is off");
		return;
	}
	struct ccvm_err e = {0};
	if (qemu_memlock_check(cfg->memory_mib, accel, &e) < 0)
		report_see(d, V_FAIL, "memlock",
			   SEE("lockguestmemory-is-refused"), "%s", e.msg);
	else
		report(d, V_OK, "memlock",
		       "RLIMIT_MEMLOCK covers %ld MiB of guest memory",
		       cfg->memory_mib);
}

/* Free MiB on the file system holding path or its nearest existing
 * ancestor; -1 when none can be examined. */
static long long free_mib(const char *path, char where[PATH_MAX])
{
	util_strlcpy(where, path, PATH_MAX);
	for (;;) {
		struct statvfs sv;
		if (statvfs(where, &sv) == 0)
			return (long long)((unsigned long long)sv.f_bavail *
					   sv.f_frsize / (1024 * 1024));
		char *slash = strrchr(where, '/');
		if (!slash || slash == where) {
			if (statvfs("/", &sv) != 0)
				return -1;
			util_strlcpy(where, "/", PATH_MAX);
			return (long long)((unsigned long long)sv.f_bavail *
					   sv.f_frsize / (1024 * 1024));
		}
		*slash = '\0';
	}
}

/* Returns whether the image is cached (false when unknown). */
static bool check_image(struct doctor *d, const struct ccvm_config *cfg,
			char images[PATH_MAX])
{
	char dir[PATH_MAX], q[PATH_MAX + 8];
	bool complete = false;
	struct ccvm_err e = {0};
	images[0] = '\0';
	if (image_lookup(cfg, dir, &complete, &e) < 0) {
		report(d, V_FAIL, "image", "%s", e.msg);
		return false;
	}
	util_strlcpy(images, dir, PATH_MAX);
	char *slash = strrchr(images, '/');
	if (slash)
		*slash = '\0';
	util_escape(q, sizeof(q), dir, false);
	if (complete)
		report(d, V_OK, "image", "cached for these options: %s", q);
	else
		report_see(
		    d, V_WARN, "image", SEE("the-image-build-fails"),
		    "not built yet for these build-time options (%s): the "
		    "first session builds it (about 2 minutes and %d MiB; "
		    "Debian's archive and the npm registry must be "
		    "reachable), or run `ccvm --ccvm-build` now",
		    q, IMAGE_SIZE_MIB);
	return complete;
}

static void check_build(struct doctor *d, bool cached)
{
	/* Missing build tools only matter when a build is due. */
	enum verdict bad = cached ? V_WARN : V_FAIL;
	const char *why = cached ? " (needed only to build new images)" : "";
	struct ccvm_err e = {0};
	if (image_check_tools(&e) < 0)
		report_see(d, bad, "build tools",
			   SEE("build-tools-or-subordinate-ids-are-missing"),
			   "%s%s", e.msg, why);
	else
		report(d, V_OK, "build tools",
		       "mmdebstrap, npm, mksquashfs and helpers found");
	if (geteuid() == 0) {
		report(d, V_SKIP, "subids", "running as root: not needed");
		return;
	}
	ccvm_err_clear(&e);
	if (image_check_subids(&e) < 0)
		report_see(d, bad, "subids",
			   SEE("build-tools-or-subordinate-ids-are-missing"),
			   "%s%s", e.msg, why);
	else
		report(d, V_OK, "subids",
		       "subordinate uid and gid ranges present "
		       "(unprivileged builds)");
}

static void check_kernel(struct doctor *d)
{
	struct ccvm_err e = {0};
	if (image_kernel_check(&e) < 0)
		report_see(d, V_WARN, "kernel",
			   SEE("ccvms-own-kernel-does-not-build"),
			   "new images get Debian's stock kernel and modules "
			   "(about a second slower to boot under TCG): %s",
			   e.msg);
	else
		report(d, V_OK, "kernel",
		       "images get ccvm's own kernel, built once from "
		       "linux-source-6.1 (on a first run in the background, "
		       "Debian's stock kernel until then)");
}

static void check_disk(struct doctor *d, const struct ccvm_config *cfg,
		       const char *images, bool cached)
{
	char where[PATH_MAX], q[PATH_MAX + 8];
	if (images[0]) {
		long long mib = free_mib(images, where);
		util_escape(q, sizeof(q), where, false);
		if (mib < 0)
			report(d, V_WARN, "disk", "cannot examine %s", q);
		else if (!cached && mib < BUILD_FREE_MIB)
			report_see(
			    d, V_FAIL, "disk", SEE("not-enough-disk-or-memory"),
			    "%lld MiB free at %s; building the image needs "
			    "about %d MiB: free some space or point "
			    "XDG_CACHE_HOME elsewhere",
			    mib, q, BUILD_FREE_MIB);
		else
			report(d, V_OK, "disk",
			       "%lld MiB free for the cache at %s", mib, q);
	}
	if (cfg->vm_disk_size_gib == 0) {
		report(d, V_SKIP, "scratch",
		       "vmDiskSize is 0: no scratch disk, the VM keeps to RAM");
		return;
	}
	const char *tmp = getenv("TMPDIR");
	if (!tmp || tmp[0] != '/')
		tmp = "/tmp";
	long long mib = free_mib(tmp, where);
	long long want = cfg->vm_disk_size_gib * 1024;
	util_escape(q, sizeof(q), where, false);
	if (mib >= 0 && mib < want)
		report_see(d, V_WARN, "scratch",
			   SEE("not-enough-disk-or-memory"),
			   "%lld MiB free at %s but vmDiskSize is %ld GiB: the "
			   "sparse disk file can fill it; lower vmDiskSize or "
			   "free space",
			   mib, q, cfg->vm_disk_size_gib);
	else
		report(d, V_OK, "scratch", "%lld MiB free at %s for %ld GiB",
		       mib, q, cfg->vm_disk_size_gib);
}

static void check_clipboard(struct doctor *d, const struct ccvm_config *cfg)
{
	if (!cfg->clipboard_images) {
		report(d, V_SKIP, "clipboard", "clipboard.images is off");
		return;
	}
	const char *wl = getenv("WAYLAND_DISPLAY");
	const char *x = getenv("DISPLAY");
	char path[PATH_MAX];
	struct ccvm_err err = {0};
	if (wl && *wl) {
		if (hostpath_tool("wl-paste", CLIP_ENV_WL_PASTE, path, &err) ==
		    0)
			report(d, V_OK, "clipboard", "%s (Wayland)", path);
		else
			report_see(
			    d, V_WARN, "clipboard",
			    SEE("image-paste-does-not-work"),
			    "wl-paste not found: install the Debian package "
			    "wl-clipboard for image paste");
	} else if (x && *x) {
		if (hostpath_tool("xclip", CLIP_ENV_XCLIP, path, &err) == 0)
			report(d, V_OK, "clipboard", "%s (X11)", path);
		else
			report_see(
			    d, V_WARN, "clipboard",
			    SEE("image-paste-does-not-work"),
			    "xclip not found: install the Debian package "
			    "xclip for image paste");
	} else {
		report(d, V_SKIP, "clipboard",
		       "no WAYLAND_DISPLAY or DISPLAY: image paste needs a "
		       "graphical session");
	}
}

int doctor_run(const struct ccvm_config *cfg, FILE *out, bool *ready,
	       struct ccvm_err *err)
{
	struct doctor d = {.out = out};
	struct ccvm_err e = {0};
	char q[PATH_MAX + 8];

	if (cfg_check_root((unsigned)geteuid(), environ, &e) < 0)
		report_see(&d, V_FAIL, "user", SEE("ccvm-refuses-to-run-here"),
			   "%s", e.msg);
	else
		report(&d, V_OK, "user", "uid %u", (unsigned)geteuid());
	if (cfg->config_path)
		report(&d, V_OK, "config", "%s%s",
		       util_escape(q, sizeof(q), cfg->config_path, false),
		       cfg->config_file_found ? ""
					      : " (absent: built-in defaults)");
	else
		report(&d, V_OK, "config", "none (built-in defaults)");

	enum accel_kind accel;
	check_qemu(&d);
	check_firmware(&d);
	check_kvm(&d, cfg, &accel);
	check_memlock(&d, cfg, accel);
	char images[PATH_MAX];
	bool cached = check_image(&d, cfg, images);
	check_build(&d, cached);
	check_kernel(&d);
	check_disk(&d, cfg, images, cached);
	check_clipboard(&d, cfg);

	char ts[PATH_MAX + 64];
	troubleshooting_path(ts, sizeof(ts));
	if (fprintf(out, "%s%s%s\n",
		    d.failures ? "ccvm cannot run a session here until the "
				 "FAIL lines are fixed"
			       : "ccvm can run a session here",
		    d.warnings ? "; the sections in parentheses are in " : ".",
		    d.warnings ? ts : "") < 0 ||
	    fflush(out) != 0 || d.write_error)
		return ccvm_err_sys(err, EIO, "writing the report");
	*ready = d.failures == 0;
	return 0;
}
