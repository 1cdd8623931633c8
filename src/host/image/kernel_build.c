/*
 * The guest kernel, built from Debian's kernel source with ccvm's config
 * fragment and patch (image_kernel_config, image_kernel_patch); kernel.c
 * reads what it produces.
 *
 * Built once per (source package version, config fragment) into
 * <cache>/ccvm/kernels/<key>/vmlinux, shared by every image; when the
 * source package is missing or the build fails, the image gets Debian's
 * stock kernel and modules instead (one line says why).  A failed build
 * leaves kernels/<key>.failed so that later images do not try again;
 * removing it (or --ccvm-prune) retries.
 */
#define _GNU_SOURCE
#include "image/build.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/image_build.h"
#include "image/kernel.h"
#include "image/run.h"
#include "image/verify.h"
#include "sys/hostpath.h"
#include "term/say.h"
#include "util.h"

#define KERNEL_MAX	   (128u << 20)
#define KSRC_PKG	   IMAGE_KERNEL_PKG
#define KSRC_DIR	   KSRC_PKG
#define KERNEL_RECIPE	   "1"
#define KERNEL_NICE	   "10"
#define KERNEL_VERSION_MAX 256
/* The objects kbuild compiles ("  CC" lines) for guest-kernel.config on
 * linux-source-6.1, counted once with `make -n vmlinux` (1,337, 2026-12-07);
 * a build's own count goes into its kernel.json and is preferred when the
 * config is the same. */
#define KERNEL_OBJECTS 1337

int image_kernels_dir(const char *images, char out[PATH_MAX])
{
	const char *slash = strrchr(images, '/');
	if (!slash || slash == images)
		return -EINVAL;
	int n = snprintf(out, PATH_MAX, "%.*s/kernels", (int)(slash - images),
			 images);
	return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* The installed source package's version (dpkg-query), or "". */
static void ksrc_version(struct build *b, const char *tmpdir, char *out,
			 size_t outsz)
{
	out[0] = '\0';
	if (strcmp(image_kernel_source(), IMAGE_KERNEL_SOURCE) != 0) {
		/* Not Debian's package: the tarball's name says which. */
		const char *slash = strrchr(image_kernel_source(), '/');
		snprintf(out, outsz, "%s", slash + 1);
		return;
	}
	char dq[PATH_MAX];
	if (hostpath_find("dpkg-query", dq) < 0)
		return;
	autofree char *p = util_path_join(tmpdir, "ksrc-version");
	if (!p)
		return;
	autoclose int fd =
	    open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	const char *argv[] = {dq, "-W", "-f=${Version}", KSRC_PKG, NULL};
	struct run_cmd c = {
	    .argv = argv, .cwd = tmpdir, .in_fd = -1, .out_fd = fd};
	struct ccvm_err e = {0};
	if (run_cmds(&b->st, b->env, &c, 1, &e) == 0) {
		ssize_t n = pread(fd, out, outsz - 1, 0);
		out[n > 0 ? n : 0] = '\0';
		out[strcspn(out, "\r\n")] = '\0';
	}
	unlink(p);
}

/* The tools the kernel build runs, found on PATH. */
struct ktools {
	char make[PATH_MAX], tar[PATH_MAX], nice[PATH_MAX], patch[PATH_MAX];
};

/* What the kernel build needs besides the source: tool, Debian package. */
static int kernel_tools(struct ktools *t, struct ccvm_err *err)
{
	char dummy[PATH_MAX];
	struct tool_req req[] = {
	    {"make", "make", t->make},
	    {"tar", "tar", t->tar},
	    {"nice", "coreutils", t->nice},
	    {"patch", "patch", t->patch},
	    {"xz", "xz-utils", dummy},
	    {"gcc", "gcc", dummy},
	    {"bc", "bc", dummy},
	    {"bison", "bison", dummy},
	    {"flex", "flex", dummy},
	    {"perl", "perl-base", dummy},
	};
	for (size_t i = 0; i < ARRAY_LEN(req); i++)
		if (hostpath_find(req[i].tool, req[i].dst) < 0)
			return ccvm_err_set(err, ENOENT,
					    "%s not found (install the Debian "
					    "package %s)",
					    req[i].tool, req[i].package);
	static const struct {
		const char *path, *package;
	} hdr[] = {
	    {"/usr/include/gelf.h", "libelf-dev"},
	    {"/usr/include/openssl/opensslv.h", "libssl-dev"},
	};
	for (size_t i = 0; i < ARRAY_LEN(hdr); i++)
		if (access(hdr[i].path, R_OK) < 0)
			return ccvm_err_set(err, ENOENT,
					    "%s not found (install the Debian "
					    "package %s)",
					    hdr[i].path, hdr[i].package);
	return 0;
}

static void kernel_key(const char *version, const struct stat *tar,
		       char out[65])
{
	size_t flen, plen;
	const void *frag = image_kernel_config(&flen);
	const void *patch = image_kernel_patch(&plen);
	struct sha256_ctx c;
	sha256_init(&c);
	char meta[128];
	snprintf(meta, sizeof(meta), "ccvm-kernel %s %lld %lld", KERNEL_RECIPE,
		 (long long)tar->st_size, (long long)tar->st_mtime);
	sha256_update(&c, strlen(meta) + 1, (const uint8_t *)meta);
	sha256_update(&c, strlen(version) + 1, (const uint8_t *)version);
	sha256_update(&c, flen, frag);
	sha256_update(&c, plen, patch);
	uint8_t d[SHA256_DIGEST_SIZE];
	sha256_digest(&c, sizeof(d), d);
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < sizeof(d); i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[64] = '\0';
}

/* Writes the config fragment (fstr) to frag and the patch next to it,
 * extracts the source into tmp (src) and patches it. */
static int kernel_source(struct build *b, const char *tmp,
			 const struct ktools *t, const char *src,
			 const char *frag, const char *fstr,
			 struct ccvm_err *err)
{
	autofree char *pfile = util_path_join(tmp, "guest-kernel.patch");
	if (!pfile)
		return ccvm_err_set(err, ENAMETOOLONG, "%s: path too long",
				    tmp);
	size_t plen;
	const char *ptext = image_kernel_patch(&plen);
	int r = build_write_text(frag, fstr, 0644, err);
	if (r < 0 || (r = build_write_bytes(pfile, ptext, plen, 0644, err)) < 0)
		return r;
	steps_detail(&b->st, "extracting the source");
	/* Into KSRC_DIR whatever the tarball's own top directory is called
	 * (linux-source-6.1 in Debian's, linux-6.1.N in kernel.org's). */
	if (mkdir(src, 0755) < 0)
		return ccvm_err_sys(err, errno, "%s", src);
	const char *untar[] = {t->tar, "-xf", image_kernel_source(),
			       "-C",   src,   "--strip-components=1",
			       NULL};
	struct run_cmd c = {
	    .argv = untar, .cwd = tmp, .in_fd = -1, .out_fd = -1};
	if ((r = run_cmds(&b->st, b->env, &c, 1, err)) < 0)
		return r;
	/* A source it no longer applies to fails the build: the image gets
	 * the stock kernel, and build.log says which hunk. */
	steps_detail(&b->st, "patching");
	const char *pat[] = {t->patch,
			     "-d",
			     src,
			     "-p1",
			     "--batch",
			     "--forward",
			     "--no-backup-if-mismatch",
			     "-i",
			     pfile,
			     NULL};
	c.argv = pat;
	return run_cmds(&b->st, b->env, &c, 1, err);
}

/* What the last build of this config (kernels/<key>/kernel.json with
 * the same configSha256) counted and took: for the progress line. */
static void kernel_history(const char *kernels, const char *config_sha,
			   int *objects, double *secs)
{
	*objects = KERNEL_OBJECTS;
	*secs = 0;
	DIR *d = opendir(kernels);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		autofree char *jp =
		    util_asprintf("%s/%s/kernel.json", kernels, de->d_name);
		json_error_t je;
		json_t *j = jp ? json_load_file(jp, 0, &je) : NULL;
		const char *sha = NULL;
		int objs = 0;
		double bs = 0;
		if (j &&
		    json_unpack(j, "{s:s, s?i, s?F}", "configSha256", &sha,
				"objects", &objs, "buildSeconds", &bs) == 0 &&
		    !strcmp(sha, config_sha)) {
			if (objs > 0)
				*objects = objs;
			if (bs > 0)
				*secs = bs;
		}
		json_decref(j);
	}
	closedir(d);
}

/* Extracts the source into tmp, configures it with the fragment, checks
 * the result, builds vmlinux and moves it to tmp/vmlinux; release gets
 * the kernel's release string. */
static int kernel_compile(struct build *b, const char *tmp,
			  const struct ktools *t, char *release, size_t relsz,
			  int *objects, struct ccvm_err *err)
{
	autofree char *src = util_path_join(tmp, KSRC_DIR);
	autofree char *frag = util_path_join(tmp, "guest-kernel.config");
	autofree char *allconfig = util_asprintf("KCONFIG_ALLCONFIG=%s", frag);
	autofree char *dotconfig = util_path_join(src, ".config");
	autofree char *relp = util_path_join(src, "include/config/"
						  "kernel.release");
	autofree char *built = util_path_join(src, "vmlinux");
	autofree char *out = util_path_join(tmp, "vmlinux");
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	autofree char *jobs = util_asprintf("-j%ld", cpus > 0 ? cpus : 1);
	if (!src || !frag || !allconfig || !dotconfig || !relp || !built ||
	    !out || !jobs)
		return ccvm_err_set(err, ENAMETOOLONG, "%s: path too long",
				    tmp);
	size_t flen;
	const char *ftext = image_kernel_config(&flen);
	autofree char *fstr = strndup(ftext, flen);
	if (!fstr)
		return ccvm_err_set(err, ENOMEM, "out of memory");
	int r = kernel_source(b, tmp, t, src, frag, fstr, err);
	if (r < 0)
		return r;
	steps_detail(&b->st, "configuring");
	const char *conf[] = {t->nice, "-n", KERNEL_NICE,   t->make,   "-C",
			      src,     "-s", "allnoconfig", allconfig, NULL};
	struct run_cmd c = {
	    .argv = conf, .cwd = tmp, .in_fd = -1, .out_fd = -1};
	if ((r = run_cmds(&b->st, b->env, &c, 1, err)) < 0)
		return r;
	autofree char *dc = NULL;
	if ((r = util_read_file(dotconfig, TEXT_MAX, &dc, NULL, err)) < 0 ||
	    (r = kernel_config_check(fstr, dc, err)) < 0)
		return r;
	steps_detail(&b->st, "compiling (%s, nice %s)", jobs, KERNEL_NICE);
	/* Not -s: kbuild's "  CC file.o" lines measure the progress. */
	const char *mk[] = {t->nice,
			    "-n",
			    KERNEL_NICE,
			    t->make,
			    "-C",
			    src,
			    jobs,
			    "vmlinux",
			    "KBUILD_BUILD_USER=ccvm",
			    "KBUILD_BUILD_HOST=ccvm",
			    NULL};
	c.argv = mk;
	size_t flen2;
	const void *frag2 = image_kernel_config(&flen2);
	char fh[65];
	image_sha256_hex(frag2, flen2, fh);
	int expect;
	double last;
	const char *slash = strrchr(tmp, '/'); /* tmp: kernels/.tmp-X */
	autofree char *kernels =
	    strndup(tmp, slash ? (size_t)(slash - tmp) : strlen(tmp));
	kernel_history(kernels ? kernels : tmp, fh, &expect, &last);
	steps_count_objects(&b->st, true, expect, last);
	r = run_cmds(&b->st, b->env, &c, 1, err);
	*objects = b->st.objs;
	steps_count_objects(&b->st, false, 0, 0);
	if (r < 0)
		return r;
	autofree char *rel = NULL;
	if ((r = util_read_file(relp, 4096, &rel, NULL, err)) < 0)
		return r;
	rel[strcspn(rel, "\r\n")] = '\0';
	snprintf(release, relsz, "%s", rel);
	if (rename(built, out) < 0)
		return ccvm_err_sys(err, errno, "%s", out);
	/* The resolved config stays next to the kernel, for reference. */
	autofree char *keep = util_path_join(tmp, "config");
	if (keep)
		rename(dotconfig, keep);
	autofree char *img = NULL;
	size_t len = 0;
	if ((r = util_read_file(out, KERNEL_MAX, &img, &len, err)) < 0)
		return r;
	return kernel_check_pvh_elf((unsigned char *)img, len, err);
}

/* Builds the kernel for key into kdir (via kernels/.tmp-XXXXXX). */
static int kernel_build(struct build *b, const char *kernels, const char *kdir,
			const char *version, struct ccvm_err *err)
{
	struct ktools t;
	int r = kernel_tools(&t, err);
	if (r < 0)
		return r;
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s/.tmp-XXXXXX", kernels) >=
	    (int)sizeof(tmp))
		return ccvm_err_set(err, ENAMETOOLONG, "%s: path too long",
				    kernels);
	if (!mkdtemp(tmp))
		return ccvm_err_sys(err, errno, "%s", tmp);
	long long t0 = util_now_ms();
	char release[128] = "";
	int objects = 0;
	r = kernel_compile(b, tmp, &t, release, sizeof(release), &objects, err);
	if (r < 0 && !image_interrupted) {
		char msg[CCVM_ERR_MAX];
		snprintf(msg, sizeof(msg), "%s", err->msg);
		ccvm_err_set(err, -r,
			     "building it failed (%s; the image's build.log "
			     "has the details)",
			     msg);
	}
	autofree char *src = util_path_join(tmp, KSRC_DIR);
	if (src)
		util_rm_rf(src);
	double secs = (double)(util_now_ms() - t0) / 1000.0;
	if (r == 0) {
		size_t flen, plen;
		const void *frag = image_kernel_config(&flen);
		const void *kpatch = image_kernel_patch(&plen);
		char fh[65], ph[65], vh[65] = "";
		image_sha256_hex(frag, flen, fh);
		image_sha256_hex(kpatch, plen, ph);
		autofree char *vp = util_path_join(tmp, "vmlinux");
		if (!vp || image_file_sha256(vp, vh, NULL) < 0)
			vh[0] = '\0';
		json_t *j =
		    json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:i, s:s}",
			      "release", release, "sourcePackage", KSRC_PKG,
			      "sourceVersion", version, "configSha256", fh,
			      "patchSha256", ph, "buildSeconds", secs,
			      "objects", objects, "vmlinuxSha256", vh);
		autofree char *jp = util_path_join(tmp, "kernel.json");
		if (!j || !jp ||
		    json_dump_file(j, jp, JSON_INDENT(2) | JSON_SORT_KEYS) < 0)
			r = ccvm_err_set(err, EIO,
					 "cannot write %s/kernel.json", tmp);
		json_decref(j);
	}
	if (r == 0 && rename(tmp, kdir) < 0)
		r = ccvm_err_sys(err, errno, "%s", kdir);
	if (r < 0) {
		util_rm_rf(tmp);
		return r;
	}
	b->kernel_build_s = secs;
	steps_note(&b->st,
		   "guest kernel %s built from %s %s in %.0f s (%s, nice %s)",
		   release, KSRC_PKG, version, secs,
		   sysconf(_SC_NPROCESSORS_ONLN) > 1 ? "all cores" : "1 core",
		   KERNEL_NICE);
	return 0;
}

int image_kernel_check(struct ccvm_err *err)
{
	if (image_stock_kernel())
		return ccvm_err_set(err, ENOENT, "CCVM_STOCK_KERNEL is set");
	struct stat st;
	if (strcmp(image_kernel_source(), IMAGE_KERNEL_SOURCE) != 0 &&
	    stat(image_kernel_source(), &st) < 0)
		return ccvm_err_set(err, ENOENT, "%s: %s: %s",
				    IMAGE_KERNEL_SOURCE_ENV,
				    image_kernel_source(), strerror(errno));
	if (stat(image_kernel_source(), &st) < 0)
		return ccvm_err_set(err, ENOENT,
				    "%s is not installed (install it and "
				    "make gcc bc bison flex patch libelf-dev "
				    "libssl-dev)",
				    KSRC_PKG);
	struct ktools t;
	return kernel_tools(&t, err);
}

/* A cached kernel whose vmlinux no longer matches kernel.json's
 * vmlinuxSha256 (kernels built before it was recorded are not checked
 * here; the image's own manifest checks the copy it links). */
static bool kernel_damaged(const char *kdir, const char *vml)
{
	autofree char *jp = util_path_join(kdir, "kernel.json");
	json_error_t je;
	json_t *j = jp ? json_load_file(jp, 0, &je) : NULL;
	const char *want =
	    json_string_value(json_object_get(j, "vmlinuxSha256"));
	char h[65];
	bool bad =
	    !j || (want && want[0] &&
		   (image_file_sha256(vml, h, NULL) < 0 || strcmp(h, want)));
	json_decref(j);
	return bad;
}

static int custom_kernel(struct build *b, struct ccvm_err *err)
{
	struct stat st;
	if (stat(image_kernel_source(), &st) < 0 || !S_ISREG(st.st_mode))
		return ccvm_err_set(err, ENOENT, "%s is not installed (no %s)",
				    KSRC_PKG, image_kernel_source());
	char kernels[PATH_MAX];
	int r = image_kernels_dir(b->images, kernels);
	if (r < 0)
		return ccvm_err_set(err, -r, "%s: bad cache path", b->images);
	if ((r = util_mkdir_p(kernels, 0700)) < 0)
		return ccvm_err_sys(err, -r, "%s", kernels);
	/* kernels/.lock: one kernel build at a time, in the foreground or
	 * the background; a session's build does not wait for one. */
	autoclose int lock = -1;
	if (!b->kernels_locked) {
		lock = image_kernels_lock(kernels, false);
		if (lock == -EWOULDBLOCK && !b->kernel_later) {
			say("waiting for the guest kernel being built in the "
			    "background (%s/.lock)",
			    kernels);
			lock = image_kernels_lock(kernels, true);
		}
		if (lock < 0 && lock != -EWOULDBLOCK)
			return ccvm_err_sys(err, -lock, "%s/.lock", kernels);
	}
	if (b->kernels_locked || lock >= 0)
		image_remove_stale(kernels, NULL);
	char version[KERNEL_VERSION_MAX];
	ksrc_version(b, kernels, version, sizeof(version));
	if (image_interrupted)
		return ccvm_err_set(err, EINTR, "interrupted by signal %d",
				    (int)image_interrupted);
	char key[65];
	kernel_key(version, &st, key);
	autofree char *kdir = util_path_join(kernels, key);
	autofree char *failed = util_asprintf("%s/%s.failed", kernels, key);
	autofree char *vml = util_path_join(kdir ? kdir : "", "vmlinux");
	if (!kdir || !failed || !vml)
		return ccvm_err_set(err, ENAMETOOLONG, "%s: path too long",
				    kernels);
	dprintf(b->st.logfd, "guest kernel: %s %s, key %s\n", KSRC_PKG, version,
		key);
	if (access(failed, F_OK) == 0)
		return ccvm_err_set(err, EIO,
				    "an earlier build of this kernel failed "
				    "(remove %s to try again)",
				    failed);
	if (access(vml, R_OK) == 0 && kernel_damaged(kdir, vml)) {
		say("the cached guest kernel %s is damaged (its vmlinux does "
		    "not match the checksum in kernel.json); building it again",
		    kdir);
		util_rm_rf(kdir);
	}
	if (access(vml, R_OK) != 0 && b->kernel_later) {
		snprintf(b->kernel_pending, sizeof(b->kernel_pending), "%s",
			 key);
		return -EAGAIN; /* built in the background, after */
	}
	if (access(vml, R_OK) != 0) {
		util_rm_rf(kdir); /* an incomplete leftover */
		r = kernel_build(b, kernels, kdir, version, err);
		if (r < 0) {
			if (!image_interrupted)
				build_write_text(failed, err->msg, 0644,
						 &(struct ccvm_err){0});
			return r;
		}
	} else {
		steps_note(&b->st, "guest kernel from the cache: %s", kdir);
	}
	snprintf(b->custom_vmlinux, sizeof(b->custom_vmlinux), "%s", vml);
	snprintf(b->kernel_key, sizeof(b->kernel_key), "%s", key);
	autofree char *jp = util_path_join(kdir, "kernel.json");
	json_error_t je;
	json_t *j = jp ? json_load_file(jp, 0, &je) : NULL;
	const char *rel = NULL;
	if (j && json_unpack(j, "{s:s}", "release", &rel) == 0)
		snprintf(b->kver, sizeof(b->kver), "%s", rel);
	json_decref(j);
	return 0;
}

int kernel_build_step(void *ctx, struct ccvm_err *err)
{
	struct build *b = ctx;
	if (b->stock_kernel) {
		steps_note(&b->st,
			   "guest kernel: CCVM_STOCK_KERNEL is set: using "
			   "Debian's stock kernel and modules");
		return 0;
	}
	struct ccvm_err e = {0};
	int r = custom_kernel(b, &e);
	if (r == -EAGAIN) {
		steps_note(&b->st,
			   "guest kernel: ccvm's own is built in the "
			   "background once this image is ready; until then "
			   "sessions boot Debian's stock kernel");
		return 0;
	}
	if (r < 0 && image_interrupted)
		return ccvm_err_set(err, -r, "%s", e.msg);
	if (r < 0)
		steps_note(&b->st,
			   "guest kernel: %s; using Debian's stock kernel "
			   "and modules instead (slower boot)",
			   e.msg);
	return 0;
}

int image_kernels_lock(const char *kernels, bool wait)
{
	int r = util_mkdir_p(kernels, 0700);
	if (r < 0)
		return r;
	autofree char *p = util_path_join(kernels, ".lock");
	if (!p)
		return -ENAMETOOLONG;
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	while (flock(fd, wait ? LOCK_EX : LOCK_EX | LOCK_NB) < 0) {
		if (errno == EINTR && !image_interrupted)
			continue;
		r = errno == EWOULDBLOCK ? -EWOULDBLOCK : -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int kernel_only_step(void *ctx, struct ccvm_err *err)
{
	return custom_kernel(ctx, err);
}

int image_kernel_build(const char *images, int logfd, const char *log,
		       struct ccvm_err *err)
{
	struct build b = {.kernels_locked = true};
	snprintf(b.images, sizeof(b.images), "%s", images);
	char kernels[PATH_MAX];
	int r = image_kernels_dir(images, kernels);
	if (r < 0)
		return ccvm_err_set(err, -r, "%s: bad cache path", images);
	const char *extra_env[] = {"INITRD=No", "LC_ALL=C.UTF-8"};
	b.env = run_env_make(extra_env, ARRAY_LEN(extra_env));
	if (!b.env)
		return ccvm_err_set(err, ENOMEM, "out of memory");
	/* One step, shown and logged as in an image build; a failure's log
	 * is kept as kernels/failed-build.log. */
	static const struct step steps[] = {
	    {"guest kernel (" KSRC_PKG ")", kernel_only_step}};
	steps_init(&b.st, logfd, log, kernels);
	r = steps_run(&b.st, steps, ARRAY_LEN(steps), &b, err);
	run_env_free(b.env);
	return r;
}
