/*
 * What an image boots with besides its root: the vmlinux (the built
 * kernel from the cache, or Debian's, decompressed out of its bzImage)
 * and the kernel modules ccvm-init loads (none with the built kernel:
 * everything is built in), picked with their dependencies from
 * modules.dep.  The initramfs that carries them is written by image.c.
 */
#define _GNU_SOURCE
#include "image/build.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/kernel.h"
#include "image/run.h"
#include "sys/hostpath.h"
#include "util.h"

#define KERNEL_MAX (128u << 20)

/* The modules ccvm-init loads (Debian 6.1 names); built-in ones are
 * skipped, dependencies are added. */
static const char *const guest_modules[] = {
    "virtio_pci",
    "virtio_blk",
    "virtio_console",
    "virtio_net",
    "virtio_rng",
    "9pnet_virtio",
    "9p",
    "overlay",
    "squashfs",
    "ext4",
    "crc32c_intel",
    "dm_crypt",
    "ecb",
    "xts",
    "aesni_intel",
    "nf_tables",
    "fuse",
    "virtiofs",
    /* the guest's network without a NIC (docs/egress.md) */
    "dummy",
    "nft_chain_nat",
    "nft_redir",
};

static int find_vmlinuz(const char *outdir, char *kver, size_t ksz,
			char path[PATH_MAX], struct ccvm_err *err)
{
	DIR *d = opendir(outdir);
	if (!d)
		return ccvm_err_sys(err, errno, "%s", outdir);
	int found = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "vmlinuz-", 8) != 0)
			continue;
		found++;
		snprintf(kver, ksz, "%s", de->d_name + 8);
		snprintf(path, PATH_MAX, "%s/%s", outdir, de->d_name);
	}
	closedir(d);
	if (found != 1)
		return ccvm_err_set(err, ENOENT,
				    "expected one /boot/vmlinuz-* in the "
				    "root, found %d",
				    found);
	return 0;
}

/* The tool and arguments that decompress a bzImage's payload to stdout;
 * -ENOTSUP for a compression ccvm does not handle. */
static int decompressor(enum kernel_comp comp, const char **tool,
			const char *const **args)
{
	static const char *const xz_args[] = {"-dc", "--single-stream", "-q",
					      NULL};
	static const char *const zstd_args[] = {"-dc", "-q", NULL};
	static const char *const gzip_args[] = {"-dc", "-q", NULL};
	switch (comp) {
	case KERNEL_COMP_XZ:
		*tool = "xz", *args = xz_args;
		return 0;
	case KERNEL_COMP_ZSTD:
		*tool = "zstd", *args = zstd_args;
		return 0;
	case KERNEL_COMP_GZIP:
		*tool = "gzip", *args = gzip_args;
		return 0;
	default:
		return -ENOTSUP;
	}
}

int modules_step_vmlinux(void *ctx, struct ccvm_err *err)
{
	struct build *b = ctx;
	if (b->custom_vmlinux[0]) {
		/* Shared with the kernel cache: a hard link when it can. */
		autofree char *dst = util_path_join(b->dir, "vmlinux");
		if (!dst)
			return ccvm_err_set(err, ENAMETOOLONG, "path too long");
		if (link(b->custom_vmlinux, dst) == 0)
			return 0;
		return build_copy_file(b->custom_vmlinux, dst, 0644, err);
	}
	autofree char *outdir = util_path_join(b->dir, "out");
	autofree char *payload = util_path_join(b->dir, "kernel-payload");
	autofree char *vmlinux = util_path_join(b->dir, "vmlinux");
	if (!outdir || !payload || !vmlinux)
		return ccvm_err_set(err, ENAMETOOLONG, "path too long");
	char bz[PATH_MAX];
	int r = find_vmlinuz(outdir, b->kver, sizeof(b->kver), bz, err);
	if (r < 0)
		return r;
	autofree char *img = NULL;
	size_t len = 0;
	r = util_read_file(bz, KERNEL_MAX, &img, &len, err);
	if (r < 0)
		return r;
	struct kernel_payload kp;
	r = kernel_parse_bzimage((unsigned char *)img, len, &kp, err);
	if (r < 0)
		return ccvm_err_set(err, -r, "%s: %s", bz, err->msg);
	dprintf(b->st.logfd, "%s: %s payload at %zu, %zu bytes -> %u bytes\n",
		bz, kernel_comp_name(kp.comp), kp.offset, kp.length, kp.size);
	const char *tool = NULL;
	const char *const *args = NULL;
	if (decompressor(kp.comp, &tool, &args) < 0)
		return ccvm_err_set(err, ENOTSUP,
				    "%s: %s-compressed kernels are not "
				    "supported (xz, zstd, gzip are)",
				    bz, kernel_comp_name(kp.comp));
	char toolpath[PATH_MAX];
	if (hostpath_find(tool, toolpath) < 0)
		return ccvm_err_set(err, ENOENT, "%s not found", tool);
	autoclose int pfd =
	    open(payload, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (pfd < 0)
		return ccvm_err_sys(err, errno, "%s", payload);
	r = util_write_all(pfd, img + kp.offset, kp.length);
	if (r < 0 || lseek(pfd, 0, SEEK_SET) < 0)
		return ccvm_err_sys(err, r < 0 ? -r : errno, "%s", payload);
	autoclose int vfd =
	    open(vmlinux, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (vfd < 0)
		return ccvm_err_sys(err, errno, "%s", vmlinux);
	const char *argv[6] = {toolpath};
	for (size_t i = 0; i < 4 && args[i]; i++)
		argv[i + 1] = args[i];
	struct run_cmd c = {
	    .argv = argv, .cwd = b->dir, .in_fd = pfd, .out_fd = vfd};
	r = run_cmds(&b->st, b->env, &c, 1, err);
	unlink(payload);
	if (r < 0)
		return r;
	struct stat st;
	if (fstat(vfd, &st) < 0)
		return ccvm_err_sys(err, errno, "%s", vmlinux);
	if ((uint32_t)st.st_size != kp.size)
		return ccvm_err_set(err, EINVAL,
				    "%s: decompressed to %lld bytes, the "
				    "bzImage says %u",
				    bz, (long long)st.st_size, kp.size);
	void *m =
	    mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, vfd, 0);
	if (m == MAP_FAILED)
		return ccvm_err_sys(err, errno, "%s", vmlinux);
	r = kernel_check_pvh_elf(m, (size_t)st.st_size, err);
	munmap(m, (size_t)st.st_size);
	return r;
}

int modules_step_modules(void *ctx, struct ccvm_err *err)
{
	struct build *b = ctx;
	if (b->custom_vmlinux[0]) {
		/* Everything is built in: nothing for ccvm-init to load. */
		autofree char *moddir = util_path_join(b->dir, "modules");
		autofree char *listp = util_path_join(b->dir, "modules/"
							      "load.list");
		if (!moddir || !listp)
			return ccvm_err_set(err, ENOMEM, "out of memory");
		if (mkdir(moddir, 0755) < 0)
			return ccvm_err_sys(err, errno, "%s", moddir);
		return build_write_text(listp, "", 0644, err);
	}
	autofree char *kdir =
	    util_asprintf("%s/out/modules/%s", b->dir, b->kver);
	autofree char *depp = util_asprintf("%s/modules.dep", kdir);
	autofree char *builtp = util_asprintf("%s/modules.builtin", kdir);
	autofree char *moddir = util_path_join(b->dir, "modules");
	autofree char *listp = util_path_join(b->dir, "modules/load.list");
	if (!kdir || !depp || !builtp || !moddir || !listp)
		return ccvm_err_set(err, ENOMEM, "out of memory");
	autofree char *dep = NULL, *built = NULL;
	int r = util_read_file(depp, TEXT_MAX, &dep, NULL, err);
	if (r < 0)
		return r;
	r = util_read_file(builtp, TEXT_MAX, &built, NULL, err);
	if (r < 0)
		return r;
	struct kernel_modlist l = {0};
	char *list = NULL;
	r = kernel_modules_order(dep, built, guest_modules,
				 ARRAY_LEN(guest_modules), &l, err);
	if (r < 0)
		return r;
	if (mkdir(moddir, 0755) < 0) {
		r = ccvm_err_sys(err, errno, "%s", moddir);
		goto out;
	}
	size_t cap = 1, used = 0;
	for (size_t i = 0; i < l.n; i++)
		cap += strlen(l.paths[i]) + 1;
	list = calloc(1, cap);
	if (!list) {
		r = ccvm_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		const char *base = strrchr(l.paths[i], '/');
		base = base ? base + 1 : l.paths[i];
		size_t bl = strlen(base);
		if (bl < 4 || strcmp(base + bl - 3, ".ko") != 0) {
			r = ccvm_err_set(err, ENOTSUP,
					 "%s: compressed modules are not "
					 "supported",
					 l.paths[i]);
			goto out;
		}
		autofree char *src = util_path_join(kdir, l.paths[i]);
		autofree char *dst = util_path_join(moddir, base);
		if (!src || !dst) {
			r = ccvm_err_set(err, EINVAL, "bad module path %s",
					 l.paths[i]);
			goto out;
		}
		r = build_copy_file(src, dst, 0644, err);
		if (r < 0)
			goto out;
		memcpy(list + used, base, bl);
		used += bl;
		list[used++] = '\n';
		dprintf(b->st.logfd, "module %s\n", l.paths[i]);
	}
	r = build_write_text(listp, list, 0644, err);
out:
	free(list);
	kernel_modlist_free(&l);
	return r;
}
