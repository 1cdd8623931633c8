/*
 * The guest image: cache key, cache layout, and the builder.
 *
 * An image directory ($XDG_CACHE_HOME/ccvm/images/<key>/) holds
 *   vmlinux            uncompressed kernel (PVH entry)
 *   root.sqfs          the root file system, squashfs lz4hc
 *   modules/NAME.ko    the kernel modules the guest loads, and
 *   modules/load.list  their file names in load order
 *   initrd-<h>.cpio    /init (ccvm-init, hash h) plus those modules
 *   manifest.json      inputs, sizes, versions, build time
 *   build.log          the build's output
 * The key covers the build-time inputs only; the initramfs is named by
 * the init binary's hash, so a new ccvm-init only adds a new cpio.
 *
 * The build itself is in image_build.c.  Building: npm installs the agent
 * package on the host; mmdebstrap builds the Debian root in a user namespace,
 * installing the agent, running the provisioning scripts and checking `claude
 * --version` from customize hooks, hands the kernel and modules out (sync-out)
 * and streams the finished root as a tar into `mksquashfs -tar`.  Then the
 * vmlinux is extracted from the bzImage and the modules picked from
 * modules.dep. All of it happens in images/.tmp-XXXXXX, renamed into place at
 * the end, under a flock on images/.lock.
 */
#define _GNU_SOURCE
#include "image/image.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <nettle/sha2.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image/cpio.h"
#include "image/kernel.h"
#include "image/image_build.h"
#include "image/verify.h"
#include "sys/hostpath.h"
#include "term/say.h"
#include "util.h"

extern const unsigned char ccvm_init_blob[], ccvm_init_blob_end[];
extern const char ccvm_kconfig_blob[], ccvm_kconfig_blob_end[];
extern const char ccvm_kpatch_blob[], ccvm_kpatch_blob_end[];

#define SCRIPT_MAX	(16u << 20)
#define MODULE_MAX	(64u << 20)
#define INITRD_HASH_LEN 16

volatile sig_atomic_t image_interrupted;

/* The embedded ccvm-init (see the Makefile's embed.o). */
static const void *init_blob(size_t *len)
{
	*len =
	    (size_t)((uintptr_t)ccvm_init_blob_end - (uintptr_t)ccvm_init_blob);
	return ccvm_init_blob;
}

const char *image_kernel_config(size_t *len)
{
	*len = (size_t)((uintptr_t)ccvm_kconfig_blob_end -
			(uintptr_t)ccvm_kconfig_blob);
	return ccvm_kconfig_blob;
}

const char *image_kernel_patch(size_t *len)
{
	*len = (size_t)((uintptr_t)ccvm_kpatch_blob_end -
			(uintptr_t)ccvm_kpatch_blob);
	return ccvm_kpatch_blob;
}

const char *image_kernel_source(void)
{
	const char *v = getenv(IMAGE_KERNEL_SOURCE_ENV);
	return v && v[0] == '/' ? v : IMAGE_KERNEL_SOURCE;
}

bool image_is_key(const char *name)
{
	return strlen(name) == 64 && strspn(name, "0123456789abcdef") == 64;
}

bool image_stock_kernel(void)
{
	const char *v = getenv("CCVM_STOCK_KERNEL");
	return v && v[0] && strcmp(v, "0") != 0;
}

/* The first signal stops the build in order (children killed, its
 * directory removed); a second one ends ccvm at once: the next ccvm
 * removes what is left (image_remove_stale). */
static void on_signal(int sig)
{
	if (image_interrupted) {
		static const char m[] =
		    "\r\033[Kccvm: image build stopped at once; the next "
		    "ccvm removes its temporary files\n";
		ssize_t w = write(STDERR_FILENO, m, sizeof(m) - 1);
		(void)w;
		_exit(128 + sig);
	}
	image_interrupted = sig;
}

int image_interrupt_status(void)
{
	return image_interrupted ? 128 + image_interrupted : 0;
}

/* ------------------------------------------------------------------ */
/* Cache key                                                          */

static void h_bytes(struct sha256_ctx *c, const void *p, size_t n)
{
	uint64_t l = htole64((uint64_t)n);
	sha256_update(c, sizeof(l), (const uint8_t *)&l);
	if (n)
		sha256_update(c, n, p);
}

static void h_str(struct sha256_ctx *c, const char *s)
{
	h_bytes(c, s ? s : "", s ? strlen(s) : 0);
}

static void h_list(struct sha256_ctx *c, const char *tag,
		   const struct cfg_strlist *l)
{
	h_str(c, tag);
	uint64_t n = htole64((uint64_t)l->n);
	sha256_update(c, sizeof(n), (const uint8_t *)&n);
	for (size_t i = 0; i < l->n; i++)
		h_str(c, l->v[i]);
}

static void hex(const uint8_t *d, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * n] = '\0';
}

const char *image_agent_package(const struct ccvm_config *cfg)
{
	return cfg->package; /* its default is the option table's */
}

bool image_agent_sudo(const struct ccvm_config *cfg)
{
	return cfg->agent_sudo != 0; /* null (auto) resolves as on */
}

void image_key(const struct ccvm_config *cfg, const struct image_blob *scripts,
	       size_t n_scripts, const struct image_blob *kconfig, char out[65])
{
	struct sha256_ctx c;
	sha256_init(&c);
	char recipe[32];
	snprintf(recipe, sizeof(recipe), "%d", IMAGE_RECIPE_VERSION);
	h_str(&c, "ccvm-image");
	h_str(&c, recipe);
	h_str(&c, "suite");
	h_str(&c, IMAGE_SUITE);
	h_str(&c, "package");
	h_str(&c, image_agent_package(cfg));
	h_list(&c, "extraPackages", &cfg->extra_packages);
	h_str(&c, "extraGuestModules");
	uint64_t n = htole64((uint64_t)n_scripts);
	sha256_update(&c, sizeof(n), (const uint8_t *)&n);
	for (size_t i = 0; i < n_scripts; i++)
		h_bytes(&c, scripts[i].data, scripts[i].len);
	h_str(&c, "agentSudo");
	h_str(&c, image_agent_sudo(cfg) ? "on" : "off");
	h_str(&c, "nix.enable");
	h_str(&c, cfg->nix_enable ? "on" : "off");
	/* The Nix part of the recipe: only in a Nix image's key, so that the
	 * default image's key stays as it was. */
	if (cfg->nix_enable) {
		h_str(&c, "nix.recipe");
		h_str(&c, IMAGE_NIX_RECIPE);
	}
	h_list(&c, "nix.substituters", &cfg->nix_substituters);
	h_list(&c, "nix.trustedPublicKeys", &cfg->nix_trusted_keys);
	h_str(&c, "kernel");
	if (kconfig)
		h_bytes(&c, kconfig->data, kconfig->len);
	else
		h_str(&c, "stock");
	uint8_t d[SHA256_DIGEST_SIZE];
	sha256_digest(&c, sizeof(d), d);
	hex(d, sizeof(d), out);
}

void image_sha256_hex(const void *p, size_t n, char out[65])
{
	struct sha256_ctx c;
	uint8_t d[SHA256_DIGEST_SIZE];
	sha256_init(&c);
	sha256_update(&c, n, p);
	sha256_digest(&c, sizeof(d), d);
	hex(d, sizeof(d), out);
}

/* The key with the kernel this ccvm would put in the image: its own,
 * built from the installed kernel source (whose size and time stand for
 * its version: a stat, not a dpkg-query, on every start), or the stock
 * one when the source is missing or CCVM_STOCK_KERNEL says so. */
static void image_key_current(const struct ccvm_config *cfg,
			      const struct image_blob *scripts,
			      size_t n_scripts, char out[65])
{
	struct stat st;
	const char *ksrc = image_kernel_source();
	if (image_stock_kernel() || stat(ksrc, &st) < 0) {
		image_key(cfg, scripts, n_scripts, NULL, out);
		return;
	}
	size_t flen, plen;
	const char *frag = image_kernel_config(&flen);
	const char *patch = image_kernel_patch(&plen);
	autofree char *k = util_asprintf(
	    "%.*s\n%.*s\nsource %s %lld %lld\n", (int)flen, frag, (int)plen,
	    patch, ksrc, (long long)st.st_size, (long long)st.st_mtime);
	struct image_blob b = {k ? k : "", k ? strlen(k) : 0};
	image_key(cfg, scripts, n_scripts, &b, out);
}

struct scripts {
	struct image_blob *b;
	char **data;
	size_t n;
};

static void scripts_free(struct scripts *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->data[i]);
	free(s->data);
	free(s->b);
	memset(s, 0, sizeof(*s));
}

static int scripts_read(const struct ccvm_config *cfg, struct scripts *s,
			struct ccvm_err *err)
{
	size_t n = cfg->extra_guest_modules.n;
	memset(s, 0, sizeof(*s));
	if (n == 0)
		return 0;
	s->b = calloc(n, sizeof(*s->b));
	s->data = calloc(n, sizeof(*s->data));
	if (!s->b || !s->data) {
		scripts_free(s);
		return ccvm_err_set(err, ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = 0;
		struct ccvm_err e = {0};
		int r = util_read_file(cfg->extra_guest_modules.v[i],
				       SCRIPT_MAX, &s->data[i], &len, &e);
		if (r < 0) {
			scripts_free(s);
			return ccvm_err_set(err, -r, "extraGuestModules: %s",
					    e.msg);
		}
		s->b[i].data = s->data[i];
		s->b[i].len = len;
		s->n++;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Cache layout                                                       */

int image_cache_dir(char out[PATH_MAX], struct ccvm_err *err)
{
	char base[PATH_MAX];
	int r =
	    hostpath_xdg_dir("XDG_CACHE_HOME", ".cache", "the cache directory",
			     base, sizeof(base), err);
	if (r < 0)
		return r;
	if (snprintf(out, PATH_MAX, "%s/images", base) >= PATH_MAX)
		return ccvm_err_set(err, ENAMETOOLONG,
				    "the cache directory: path too long");
	return 0;
}

static bool is_file(const char *dir, const char *rel)
{
	autofree char *p = util_path_join(dir, rel);
	struct stat st;
	return p && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static bool image_complete(const char *dir)
{
	return is_file(dir, "manifest.json") && is_file(dir, "vmlinux") &&
	       is_file(dir, "root.sqfs") && is_file(dir, "modules/load.list");
}

static void init_hash(char out[INITRD_HASH_LEN + 1])
{
	char h[65];
	size_t len;
	const void *blob = init_blob(&len);
	image_sha256_hex(blob, len, h);
	memcpy(out, h, INITRD_HASH_LEN);
	out[INITRD_HASH_LEN] = '\0';
}

static int set_path(char dst[PATH_MAX], const char *dir, const char *rel,
		    struct ccvm_err *err)
{
	autofree char *p = util_path_join(dir, rel);
	if (!p || util_strlcpy(dst, p, PATH_MAX) < 0)
		return ccvm_err_set(err, ENAMETOOLONG, "%s/%s: path too long",
				    dir, rel);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Sizes                                                              */

long long image_dir_size(const char *dir, int depth, bool allocated)
{
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	long long total = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' &&
		    (!de->d_name[1] || !strcmp(de->d_name, "..")))
			continue;
		autofree char *p = util_path_join(dir, de->d_name);
		struct stat st;
		if (!p || lstat(p, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode) && depth > 0)
			total += image_dir_size(p, depth - 1, allocated);
		else if (S_ISREG(st.st_mode))
			total += allocated ? (long long)st.st_blocks * 512
					   : (long long)st.st_size;
	}
	closedir(d);
	return total;
}

/* ------------------------------------------------------------------ */
/* Initramfs                                                          */

int image_write_initrd(const char *image_dir, const void *init, size_t init_len,
		       const char *path, struct ccvm_err *err)
{
	if (init_len == 0)
		return ccvm_err_set(err, EINVAL,
				    "this ccvm was built without ccvm-init");
	autofree char *moddir = util_path_join(image_dir, "modules");
	autofree char *listp = util_path_join(image_dir, "modules/load.list");
	autofree char *tmp = util_asprintf("%s.tmp-XXXXXX", path);
	if (!moddir || !listp || !tmp)
		return ccvm_err_set(err, ENAMETOOLONG, "%s: path too long",
				    image_dir);
	autofree char *list = NULL;
	size_t list_len = 0;
	int r = util_read_file(listp, 1 << 20, &list, &list_len, err);
	if (r < 0)
		return r;
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return ccvm_err_sys(err, errno, "%s", tmp);
	if (fchmod(fd, 0644) < 0) {
		r = ccvm_err_sys(err, errno, "%s", tmp);
		close(fd);
		unlink(tmp);
		return r;
	}
	FILE *f = fdopen(fd, "w");
	if (!f) {
		r = ccvm_err_sys(err, errno, "%s", tmp);
		close(fd);
		unlink(tmp);
		return r;
	}
	struct cpio_writer w;
	cpio_init(&w, f);
	static const char *const dirs[] = {
	    "dev", "proc", "sys",	  "run",
	    "tmp", "lib",  "lib/modules", "lib/modules/ccvm",
	};
	for (size_t i = 0; i < ARRAY_LEN(dirs); i++)
		cpio_add_dir(&w, dirs[i], 0755);
	cpio_add_chardev(&w, "dev/console", 0600, 5, 1);
	cpio_add_file(&w, "init", 0755, init, init_len);
	cpio_add_file(&w, "lib/modules/ccvm/load.list", 0644, list, list_len);
	char *save = NULL;
	for (char *name = strtok_r(list, "\n", &save); name && !w.error && !r;
	     name = strtok_r(NULL, "\n", &save)) {
		autofree char *src = util_path_join(moddir, name);
		autofree char *dst = util_asprintf("lib/modules/ccvm/%s", name);
		autofree char *data = NULL;
		size_t len = 0;
		if (!src || !dst || strchr(name, '/')) {
			r = ccvm_err_set(err, EINVAL, "%s: bad entry '%s'",
					 listp, name);
			break;
		}
		r = util_read_file(src, MODULE_MAX, &data, &len, err);
		if (r == 0)
			cpio_add_file(&w, dst, 0644, data, len);
	}
	int wr = cpio_finish(&w);
	if (r == 0 && wr < 0)
		r = ccvm_err_sys(err, -wr, "%s", tmp);
	if (r == 0 && fsync(fileno(f)) < 0)
		r = ccvm_err_sys(err, errno, "%s", tmp);
	if (fclose(f) != 0 && r == 0)
		r = ccvm_err_sys(err, errno, "%s", tmp);
	if (r == 0 && rename(tmp, path) < 0)
		r = ccvm_err_sys(err, errno, "%s", path);
	if (r < 0)
		unlink(tmp);
	return r;
}

static int ensure_initrd(const char *dir, char out[PATH_MAX],
			 struct ccvm_err *err)
{
	char h[INITRD_HASH_LEN + 1], name[64];
	init_hash(h);
	snprintf(name, sizeof(name), "initrd-%s.cpio", h);
	int r = set_path(out, dir, name, err);
	if (r < 0)
		return r;
	if (is_file(dir, name)) {
		struct ccvm_err e = {0};
		r = image_verify_file(dir, name, &e);
		if (r == 0)
			return 0;
		if (r == -EBADMSG)
			say("the initramfs %s is damaged (%s); writing it "
			    "again",
			    out, e.msg);
	}
	size_t len;
	const void *blob = init_blob(&len);
	r = image_write_initrd(dir, blob, len, out, err);
	if (r == 0)
		image_record(dir, name, &(struct ccvm_err){0});
	return r;
}

/* ------------------------------------------------------------------ */
/* Public entry points                                                */

/* The lock holder's pid goes into the lock file, for the one a second
 * ccvm waits on to name. */
static int lock_note_pid(int fd)
{
	char pid[32];
	int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
	/* Best effort: without it the waiting message says "pid ?". */
	if (ftruncate(fd, 0) == 0) {
		ssize_t w = pwrite(fd, pid, (size_t)n, 0);
		(void)w;
	}
	return fd;
}

int image_lock(const char *images, struct ccvm_err *err)
{
	int r = util_mkdir_p(images, 0700);
	if (r < 0)
		return ccvm_err_sys(err, -r, "%s", images);
	autofree char *p = util_path_join(images, ".lock");
	if (!p)
		return ccvm_err_set(err, ENAMETOOLONG, "%s: path too long",
				    images);
	int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return ccvm_err_sys(err, errno, "%s", p);
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return lock_note_pid(fd);
	if (errno != EWOULDBLOCK) {
		r = ccvm_err_sys(err, errno, "flock %s", p);
		close(fd);
		return r;
	}
	char holder[32] = "";
	ssize_t n = pread(fd, holder, sizeof(holder) - 1, 0);
	holder[n > 0 ? n : 0] = '\0';
	holder[strcspn(holder, "\n")] = '\0';
	say("waiting for another ccvm building the image (pid %s)",
	    holder[0] ? holder : "?");
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR || image_interrupted) {
			r = image_interrupted
				? ccvm_err_set(err, EINTR,
					       "interrupted while "
					       "waiting for %s",
					       p)
				: ccvm_err_sys(err, errno, "flock %s", p);
			close(fd);
			return r;
		}
	}
	return lock_note_pid(fd);
}

/* A damaged image's vmlinux may be the kernel cache's own (a hard link,
 * kernel_build.c): when that file is what is damaged, the cached kernel
 * goes too, or the rebuild would link it again. */
static void remove_shared_kernel(const char *images, const char *dir)
{
	char kernels[PATH_MAX];
	autofree char *mp = util_path_join(dir, "manifest.json");
	autofree char *vp = util_path_join(dir, "vmlinux");
	json_error_t je;
	json_t *m = mp ? json_load_file(mp, 0, &je) : NULL;
	const char *kk = json_string_value(json_object_get(m, "kernelKey"));
	const char *want = json_string_value(
	    json_object_get(json_object_get(m, "sha256"), "vmlinux"));
	json_t *size = json_object_get(json_object_get(m, "sizes"), "vmlinux");
	autofree char *kdir = NULL;
	struct stat a, b;
	if (kk && kk[0] && !strchr(kk, '/') && kk[0] != '.' && vp &&
	    image_kernels_dir(images, kernels) == 0 && stat(vp, &a) == 0)
		kdir = util_path_join(kernels, kk);
	autofree char *kv = kdir ? util_path_join(kdir, "vmlinux") : NULL;
	char h[65];
	if (kv && stat(kv, &b) == 0 && a.st_dev == b.st_dev &&
	    a.st_ino == b.st_ino &&
	    ((json_is_integer(size) && a.st_size != json_integer_value(size)) ||
	     (want &&
	      (image_file_sha256(vp, h, NULL) < 0 || strcmp(h, want))))) {
		say("the cached guest kernel %s is damaged too; removing it",
		    kdir);
		util_rm_rf(kdir);
	}
	json_decref(m);
}

/* Under the lock: 1 when dir's image is damaged (said in one line, the
 * caller removes and rebuilds it), else 0. */
static int remove_damaged(const char *images, const char *dir)
{
	struct ccvm_err e = {0};
	int r = image_verify(dir, NULL, &e);
	if (r == 0)
		return 0;
	say("the guest image %s is damaged (%s); removing it and building it "
	    "again",
	    dir, e.msg);
	remove_shared_kernel(images, dir);
	return 1;
}

void image_signals_catch(struct image_sigsave *s)
{
	struct sigaction sa = {.sa_handler = on_signal};
	sigemptyset(&sa.sa_mask);
	image_interrupted = 0;
	sigaction(SIGINT, &sa, &s->intr);
	sigaction(SIGTERM, &sa, &s->term);
	sigaction(SIGHUP, &sa, &s->hup);
}

void image_signals_restore(struct image_sigsave *s)
{
	sigaction(SIGINT, &s->intr, NULL);
	sigaction(SIGTERM, &s->term, NULL);
	sigaction(SIGHUP, &s->hup, NULL);
}

int image_ensure(const struct ccvm_config *cfg, enum image_want want,
		 struct image_paths *out, struct ccvm_err *err)
{
	char images[PATH_MAX], key[65];
	int r = image_cache_dir(images, err);
	if (r < 0)
		return r;
	struct scripts s;
	r = scripts_read(cfg, &s, err);
	if (r < 0)
		return r;
	image_key_current(cfg, s.b, s.n, key);
	struct image_paths p = {0};
	snprintf(p.key, sizeof(p.key), "%s", key);
	r = set_path(p.dir, images, key, err);
	if (r < 0)
		goto out;
	bool whole = image_complete(p.dir);
	struct ccvm_err ve = {0};
	if (whole && (r = image_verify(p.dir, NULL, &ve)) < 0) {
		if (r != -EBADMSG) {
			r = ccvm_err_set(
			    err, -r, "checking the guest image: %s", ve.msg);
			goto out;
		}
		whole = false; /* damaged: checked again under the lock */
	}
	r = 0;
	if (!whole) {
		if (want == IMAGE_FIND) {
			r = ccvm_err_set(err, ENOENT,
					 "no guest image for these build-time "
					 "options yet (%s); build it with "
					 "`ccvm --ccvm-build`",
					 p.dir);
			goto out;
		}
		struct image_sigsave ss;
		image_signals_catch(&ss);
		int lock = image_lock(images, err);
		if (lock < 0) {
			r = lock;
		} else {
			if (!image_complete(p.dir) ||
			    remove_damaged(images, p.dir) > 0) {
				image_remove_stale(images, stderr);
				util_rm_rf(p.dir); /* an incomplete leftover */
				r = image_build(cfg, want == IMAGE_SESSION,
						images, key, s.b, s.n, err);
			}
			close(lock);
		}
		image_signals_restore(&ss);
		if (r < 0)
			goto out;
	}
	if (want != IMAGE_FIND &&
	    (r = image_kernel_catch_up(images, p.dir, want, err)) < 0)
		goto out;
	r = set_path(p.kernel, p.dir, "vmlinux", err);
	if (r == 0)
		r = set_path(p.rootfs, p.dir, "root.sqfs", err);
	if (r == 0)
		r = ensure_initrd(p.dir, p.initrd, err);
	if (r == 0)
		*out = p;
out:
	scripts_free(&s);
	return r;
}

/* The key of cfg's image (err may be NULL). */
static int current_key(const struct ccvm_config *cfg, char key[65],
		       struct ccvm_err *err)
{
	struct scripts s;
	int r = scripts_read(cfg, &s, err);
	if (r < 0)
		return r;
	image_key_current(cfg, s.b, s.n, key);
	scripts_free(&s);
	return 0;
}

int image_list(const struct ccvm_config *cfg, FILE *out, struct ccvm_err *err)
{
	char images[PATH_MAX], key[65] = "";
	int r = image_cache_dir(images, err);
	if (r < 0)
		return r;
	current_key(cfg, key, NULL);
	DIR *d = opendir(images);
	if (!d) {
		if (errno == ENOENT) {
			fprintf(out, "no guest images in %s\n", images);
			return 0;
		}
		return ccvm_err_sys(err, errno, "%s", images);
	}
	int count = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		/* Images only: directories named by a key (not the lock, a
		 * build in progress or a failed build's log). */
		if (!image_is_key(de->d_name))
			continue;
		autofree char *p = util_path_join(images, de->d_name);
		autofree char *mp = util_path_join(p ? p : "", "manifest.json");
		struct stat dst;
		if (!p || !mp || lstat(p, &dst) < 0 || !S_ISDIR(dst.st_mode))
			continue;
		json_error_t je;
		json_t *m = json_load_file(mp, 0, &je);
		const char *built = "?", *agent = "?", *kver = "?";
		if (m) {
			json_unpack(m, "{s?s, s?s, s?s}", "built", &built,
				    "agentVersion", &agent, "kernelVersion",
				    &kver);
		}
		bool cur = !strcmp(de->d_name, key);
		fprintf(out,
			"%c %.16s  %6.1f MiB  %s  claude %s  kernel %s%s\n",
			cur ? '*' : ' ', de->d_name,
			(double)image_dir_size(p, 1, true) / 1048576.0, built,
			agent, kver, m ? "" : "  (incomplete)");
		json_decref(m);
		count++;
	}
	closedir(d);
	if (count == 0)
		fprintf(out, "no guest images in %s\n", images);
	else
		fprintf(out, "(* = the image for the current options; in %s)\n",
			images);
	return 0;
}

/* Removes the built kernels (and the markers of failed builds) that the
 * image kept, images/<key>, does not use (caller holds the lock). */
static void prune_kernels(const char *images, const char *key, FILE *out)
{
	char kernels[PATH_MAX];
	if (image_kernels_dir(images, kernels) < 0)
		return;
	/* A kernel being built in the background is left alone, with all
	 * the rest of kernels/ (its log, its temp dir). */
	autoclose int lock = image_kernels_lock(kernels, false);
	if (lock < 0) {
		if (lock == -EWOULDBLOCK)
			fprintf(out,
				"a guest kernel is being built in the "
				"background: %s left as it is\n",
				kernels);
		return;
	}
	image_remove_stale(kernels, out);
	autofree char *mp = util_asprintf("%s/%s/manifest.json", images, key);
	json_error_t je;
	json_t *m = mp ? json_load_file(mp, 0, &je) : NULL;
	const char *keep = "", *pending = "";
	if (m)
		json_unpack(m, "{s?s, s?s}", "kernelKey", &keep,
			    "kernelPending", &pending);
	DIR *d = opendir(kernels);
	struct dirent *de;
	while (d && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.' ||
		    (keep[0] && !strcmp(de->d_name, keep)) ||
		    (pending[0] && !strcmp(de->d_name, pending)))
			continue;
		autofree char *p = util_path_join(kernels, de->d_name);
		if (p && util_rm_rf(p) == 0)
			fprintf(out, "removed %s\n", p);
	}
	if (d)
		closedir(d);
	json_decref(m);
}

int image_prune(const struct ccvm_config *cfg, FILE *out, struct ccvm_err *err)
{
	char images[PATH_MAX], key[65] = "";
	int r = image_cache_dir(images, err);
	if (r < 0)
		return r;
	if (current_key(cfg, key, NULL) < 0)
		return ccvm_err_set(err, EINVAL,
				    "cannot tell the current image (an "
				    "extraGuestModules script is unreadable); "
				    "not pruning");
	struct stat st;
	if (stat(images, &st) < 0 && errno == ENOENT) {
		fprintf(out, "nothing to prune in %s\n", images);
		return 0;
	}
	struct image_sigsave ss;
	image_signals_catch(&ss);
	int lock = image_lock(images, err);
	image_signals_restore(&ss);
	if (lock < 0)
		return lock;
	image_remove_stale(images, out);
	char h[INITRD_HASH_LEN + 1], cur_initrd[64];
	init_hash(h);
	snprintf(cur_initrd, sizeof(cur_initrd), "initrd-%s.cpio", h);
	DIR *d = opendir(images);
	if (!d) {
		r = ccvm_err_sys(err, errno, "%s", images);
		close(lock);
		return r;
	}
	int removed = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		autofree char *p = util_path_join(images, de->d_name);
		if (!p)
			continue;
		if (!strcmp(de->d_name, key)) {
			/* Keep the current image, minus initramfs files made
			 * for other ccvm-init builds. */
			DIR *id = opendir(p);
			struct dirent *ie;
			while (id && (ie = readdir(id)) != NULL) {
				if (strncmp(ie->d_name, "initrd-", 7) ||
				    !strcmp(ie->d_name, cur_initrd))
					continue;
				autofree char *ip =
				    util_path_join(p, ie->d_name);
				if (ip && unlink(ip) == 0)
					fprintf(out, "removed %s\n", ip);
			}
			if (id)
				closedir(id);
			continue;
		}
		double mib = (double)image_dir_size(p, 1, true) / 1048576.0;
		int rr = util_rm_rf(p);
		if (rr < 0) {
			r = ccvm_err_sys(err, -rr, "cannot remove %s", p);
			break;
		}
		fprintf(out, "removed %.16s (%.1f MiB)\n", de->d_name, mib);
		removed++;
	}
	closedir(d);
	if (r == 0)
		prune_kernels(images, key, out);
	close(lock);
	if (r == 0 && removed == 0)
		fprintf(out, "no old guest images to prune in %s\n", images);
	return r;
}

int image_lookup(const struct ccvm_config *cfg, char dir[PATH_MAX],
		 bool *complete, struct ccvm_err *err)
{
	char images[PATH_MAX], key[65];
	int r = image_cache_dir(images, err);
	if (r < 0 || (r = current_key(cfg, key, err)) < 0)
		return r;
	r = set_path(dir, images, key, err);
	if (r == 0)
		*complete = image_complete(dir);
	return r;
}
