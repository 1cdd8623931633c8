/*
 * Building a guest image (see image.c for the layout): a few steps, each
 * shown on stderr with its elapsed time and logged to build.log
 * (steps.h); child processes get an explicit argv and a filtered
 * environment (run.h); the whole build happens in images/.tmp-XXXXXX and
 * is renamed into place at the end, or removed on failure or
 * SIGINT/SIGTERM.  The stages: rootfs.c, kernel_build.c, modules.c.
 */
#define _GNU_SOURCE
#include "image/build.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "image/image_build.h"
#include "image/run.h"
#include "image/verify.h"
#include "term/say.h"
#include "util.h"

/* Small file helpers (build.h). */

int build_write_bytes(const char *path, const void *data, size_t len,
		      mode_t mode, struct ccvm_err *err)
{
	autoclose int fd =
	    open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return ccvm_err_sys(err, errno, "%s", path);
	int r = util_write_all(fd, data, len);
	if (r < 0)
		return ccvm_err_sys(err, -r, "%s", path);
	return 0;
}

int build_write_text(const char *path, const char *text, mode_t mode,
		     struct ccvm_err *err)
{
	return build_write_bytes(path, text, strlen(text), mode, err);
}

int build_copy_file(const char *src, const char *dst, mode_t mode,
		    struct ccvm_err *err)
{
	autoclose int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return ccvm_err_sys(err, errno, "%s", src);
	autoclose int out =
	    open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (out < 0)
		return ccvm_err_sys(err, errno, "%s", dst);
	char buf[65536];
	for (;;) {
		ssize_t n = util_read_all(in, buf, sizeof(buf));
		if (n < 0)
			return ccvm_err_sys(err, (int)-n, "%s", src);
		if (n == 0)
			break;
		int r = util_write_all(out, buf, (size_t)n);
		if (r < 0)
			return ccvm_err_sys(err, -r, "%s", dst);
	}
	return 0;
}

static long long file_size(const char *dir, const char *rel)
{
	autofree char *p = util_path_join(dir, rel);
	struct stat st;
	return p && stat(p, &st) == 0 ? (long long)st.st_size : 0;
}

static int write_manifest(struct build *b, double seconds, struct ccvm_err *err)
{
	json_t *pk = json_array(), *mods = json_array(), *nixs = json_array(),
	       *nixk = json_array();
	for (size_t i = 0; i < b->cfg->extra_packages.n; i++)
		json_array_append_new(pk,
				      json_string(b->cfg->extra_packages.v[i]));
	for (size_t i = 0; i < b->n_scripts; i++) {
		char h[65];
		image_sha256_hex(b->scripts[i].data, b->scripts[i].len, h);
		json_array_append_new(
		    mods,
		    json_pack("{s:s, s:s}", "path",
			      b->cfg->extra_guest_modules.v[i], "sha256", h));
	}
	for (size_t i = 0; i < b->cfg->nix_substituters.n; i++)
		json_array_append_new(
		    nixs, json_string(b->cfg->nix_substituters.v[i]));
	for (size_t i = 0; i < b->cfg->nix_trusted_keys.n; i++)
		json_array_append_new(
		    nixk, json_string(b->cfg->nix_trusted_keys.v[i]));
	autofree char *md = util_path_join(b->dir, "modules");
	long long modules_size = md ? image_dir_size(md, 0, false) : 0;
	time_t now = time(NULL);
	char when[64];
	struct tm tm;
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
	json_t *j = json_pack(
	    "{s:i, s:s, s:{s:s, s:s, s:o, s:o, s:b, s:{s:b, s:o, s:o}}, "
	    "s:s, s:s, s:s, s:s, s:s, s:f, s:s, s:I, s:f, s:{s:I, s:I, s:I}}",
	    "recipe", IMAGE_RECIPE_VERSION, "key", b->key, "inputs", "suite",
	    IMAGE_SUITE, "package", image_agent_package(b->cfg),
	    "extraPackages", pk, "extraGuestModules", mods, "agentSudo",
	    image_agent_sudo(b->cfg), "nix", "enable", b->cfg->nix_enable,
	    "substituters", nixs, "trustedPublicKeys", nixk, "agentVersion",
	    b->agent_version, "claudeVersionOutput", b->claude_version,
	    "kernelVersion", b->kver, "kernel",
	    b->custom_vmlinux[0] ? "custom" : "stock", "kernelKey",
	    b->kernel_key, "kernelBuildSeconds", b->kernel_build_s, "built",
	    when, "builtEpoch", (json_int_t)now, "buildSeconds", seconds,
	    "sizes", "vmlinux", (json_int_t)file_size(b->dir, "vmlinux"),
	    "rootfs", (json_int_t)file_size(b->dir, "root.sqfs"), "modules",
	    (json_int_t)modules_size);
	if (j && b->kernel_pending[0])
		json_object_set_new(j, "kernelPending",
				    json_string(b->kernel_pending));
	if (!j)
		return ccvm_err_set(err, ENOMEM, "cannot build the manifest");
	autofree char *p = util_path_join(b->dir, "manifest.json");
	int r = 0;
	if (!p || json_dump_file(j, p, JSON_INDENT(2) | JSON_SORT_KEYS) < 0)
		r = ccvm_err_set(err, EIO, "cannot write %s/manifest.json",
				 b->dir);
	json_decref(j);
	return r;
}

/* Whether images holds an image (of other options: a complete one). */
static bool image_any(const char *images)
{
	DIR *d = opendir(images);
	if (!d)
		return false;
	bool found = false;
	struct dirent *de;
	while (!found && (de = readdir(d)) != NULL) {
		autofree char *m = NULL;
		if (image_is_key(de->d_name) &&
		    (m = util_asprintf("%s/%s/manifest.json", images,
				       de->d_name)))
			found = access(m, F_OK) == 0;
	}
	closedir(d);
	return found;
}

/* Removes build directories a killed ccvm left behind (we hold the lock,
 * so no build is running). */
void image_remove_stale(const char *images, FILE *out)
{
	DIR *d = opendir(images);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, ".tmp-", 5) != 0)
			continue;
		autofree char *p = util_path_join(images, de->d_name);
		if (!p)
			continue;
		int r = util_rm_rf(p);
		if (out)
			fprintf(out,
				"ccvm: removed an interrupted build %s%s\n", p,
				r < 0 ? " (partly)" : "");
	}
	closedir(d);
}

static int step_finish(void *ctx, struct ccvm_err *err)
{
	struct build *b = ctx;
	autofree char *outdir = util_path_join(b->dir, "out");
	autofree char *claude = util_path_join(b->dir, "claude");
	autofree char *final = util_path_join(b->images, b->key);
	if (!outdir || !claude || !final)
		return ccvm_err_set(err, ENAMETOOLONG, "%s: path too long",
				    b->images);
	util_rm_rf(outdir);
	unlink(claude);
	autofree char *nixconf = util_path_join(b->dir, "nix.conf");
	if (nixconf)
		unlink(nixconf);
	for (size_t i = 0; i < b->n_scripts; i++) {
		char name[32];
		snprintf(name, sizeof(name), "provision-%02zu", i);
		autofree char *p = util_path_join(b->dir, name);
		if (p)
			unlink(p);
	}
	int r =
	    write_manifest(b, (double)(util_now_ms() - b->st.t0) / 1000.0, err);
	if (r == 0)
		r = image_seal(b->dir, err);
	if (r < 0)
		return r;
	if (rename(b->dir, final) < 0)
		return ccvm_err_sys(err, errno, "%s", final);
	snprintf(b->dir, sizeof(b->dir), "%s", final);
	return 0;
}

int image_build(const struct ccvm_config *cfg, bool kernel_later,
		const char *images, const char *key,
		const struct image_blob *scripts, size_t n_scripts,
		struct ccvm_err *err)
{
	static const struct step steps[] = {
	    {"checking tools", rootfs_step_tools},
	    {"installing the agent (npm)", rootfs_step_npm},
	    {"Debian root and squashfs (mmdebstrap)", rootfs_step_root},
	    {"guest kernel (" IMAGE_KERNEL_PKG ")", kernel_build_step},
	    {"kernel (vmlinux)", modules_step_vmlinux},
	    {"kernel modules", modules_step_modules},
	    {"finishing", step_finish},
	};
	struct build b = {
	    .cfg = cfg,
	    .scripts = scripts,
	    .n_scripts = n_scripts,
	    .stock_kernel = image_stock_kernel(),
	    .kernel_later = kernel_later,
	};
	snprintf(b.key, sizeof(b.key), "%s", key);
	snprintf(b.images, sizeof(b.images), "%s", images);
	if (snprintf(b.dir, sizeof(b.dir), "%s/.tmp-XXXXXX", images) >=
	    (int)sizeof(b.dir))
		return ccvm_err_set(err, ENAMETOOLONG, "%s: path too long",
				    images);
	if (!mkdtemp(b.dir))
		return ccvm_err_sys(err, errno, "%s", b.dir);
	chmod(b.dir, 0755);
	char log[PATH_MAX];
	if (snprintf(log, sizeof(log), "%.4000s/build.log", b.dir) >=
	    (int)sizeof(log))
		log[0] = '\0';
	const char *extra_env[] = {"INITRD=No", "LC_ALL=C.UTF-8"};
	b.env = run_env_make(extra_env, ARRAY_LEN(extra_env));
	int logfd = open(log, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	steps_init(&b.st, logfd, log, images);
	int r;
	if (!b.env || logfd < 0) {
		r = ccvm_err_sys(err, b.env ? errno : ENOMEM, "%s", log);
	} else {
		say("no guest image for these options yet (%s): building "
		    "%.12s now, %s; log: %s",
		    image_any(images) ? "the build-time options or ccvm "
					"changed"
				      : "first run",
		    key,
		    kernel_later ? IMAGE_BUILD_ESTIMATE_SESSION
				 : IMAGE_BUILD_ESTIMATE_ALL,
		    log);
		r = steps_run(&b.st, steps, ARRAY_LEN(steps), &b, err);
	}
	if (r == 0)
		say("guest image built in %.1f s: %s",
		    (double)(util_now_ms() - b.st.t0) / 1000.0, b.dir);
	if (logfd >= 0)
		close(logfd);
	run_env_free(b.env);
	if (r < 0)
		util_rm_rf(b.dir);
	return r;
}

/* The manifest in dir rewritten with m (a temp file renamed over it). */
static int manifest_replace(const char *dir, json_t *m, struct ccvm_err *err)
{
	autofree char *p = util_path_join(dir, "manifest.json");
	autofree char *tmp = util_path_join(dir, ".manifest.json.new");
	if (!p || !tmp)
		return ccvm_err_set(err, ENAMETOOLONG, "%s: path too long",
				    dir);
	if (json_dump_file(m, tmp, JSON_INDENT(2) | JSON_SORT_KEYS) < 0 ||
	    rename(tmp, p) < 0) {
		unlink(tmp);
		return ccvm_err_set(err, EIO, "cannot write %s", p);
	}
	return 0;
}

/* Removes dir's files whose names start with prefix and end with
 * suffix (the initramfs and the saved boots of another kernel). */
static void remove_matching(const char *dir, const char *prefix,
			    const char *suffix)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *de;
	size_t pl = strlen(prefix), sl = strlen(suffix);
	while ((de = readdir(d)) != NULL) {
		size_t n = strlen(de->d_name);
		if (n > pl + sl && !strncmp(de->d_name, prefix, pl) &&
		    !strcmp(de->d_name + n - sl, suffix))
			unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
}

int image_kernel_upgrade(const char *dir, const char *kernel,
			 struct ccvm_err *err)
{
	autofree char *mp = util_path_join(dir, "manifest.json");
	autofree char *kj = util_path_join(kernel, "kernel.json");
	autofree char *kv = util_path_join(kernel, "vmlinux");
	autofree char *nv = util_path_join(dir, ".vmlinux.new");
	autofree char *dv = util_path_join(dir, "vmlinux");
	autofree char *md = util_path_join(dir, "modules");
	autofree char *ml = util_path_join(dir, "modules/load.list");
	if (!mp || !kj || !kv || !nv || !dv || !md || !ml)
		return ccvm_err_set(err, ENAMETOOLONG, "%s: path too long",
				    dir);
	json_error_t je;
	json_t *m = json_load_file(mp, 0, &je);
	json_t *k = json_load_file(kj, 0, &je);
	const char *rel = NULL;
	double secs = 0;
	int r = 0;
	if (!m || !k ||
	    json_unpack(k, "{s:s, s?F}", "release", &rel, "buildSeconds",
			&secs) < 0) {
		r = ccvm_err_set(err, EINVAL, "%s or %s: unreadable", mp, kj);
		goto out;
	}
	/* The vmlinux first (a hard link, as a build makes it), then the
	 * modules (none: everything is built in), then the manifest: a
	 * switch cut short leaves a manifest that still says "pending", and
	 * the next session does it again. */
	unlink(nv);
	if (link(kv, nv) < 0 && (r = build_copy_file(kv, nv, 0644, err)) < 0)
		goto out;
	if (rename(nv, dv) < 0) {
		r = ccvm_err_sys(err, errno, "%s", dv);
		unlink(nv);
		goto out;
	}
	util_rm_rf(md);
	if (mkdir(md, 0755) < 0) {
		r = ccvm_err_sys(err, errno, "%s", md);
		goto out;
	}
	if ((r = build_write_text(ml, "", 0644, err)) < 0)
		goto out;
	remove_matching(dir, "initrd-", ".cpio");
	remove_matching(dir, "boot-", ".snap");
	const char *slash = strrchr(kernel, '/');
	json_object_set_new(m, "kernel", json_string("custom"));
	json_object_set_new(m, "kernelKey",
			    json_string(slash ? slash + 1 : kernel));
	json_object_set_new(m, "kernelVersion", json_string(rel));
	json_object_set_new(m, "kernelBuildSeconds", json_real(secs));
	json_object_del(m, "kernelPending");
	json_t *sizes = json_object_get(m, "sizes");
	if (json_is_object(sizes)) {
		json_object_set_new(sizes, "vmlinux",
				    json_integer(file_size(dir, "vmlinux")));
		json_object_set_new(sizes, "modules", json_integer(0));
	}
	/* The checksums of the new vmlinux and (empty) module list. */
	json_object_del(m, "sha256");
	r = manifest_replace(dir, m, err);
	if (r == 0)
		r = image_seal(dir, err);
out:
	json_decref(m);
	json_decref(k);
	return r;
}
