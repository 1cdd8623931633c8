#pragma once
/*
 * The guest image: kernel (uncompressed vmlinux, booted via PVH), an
 * initramfs holding ccvm-init and the kernel modules it loads, and a
 * compressed read-only root.  Cached under $XDG_CACHE_HOME/ccvm/images/.
 *
 * What the guest sees:
 *  - the kernel: built by ccvm from Debian's linux-source-6.1 with
 *    everything the guest uses built in (image/guest-kernel.config), or,
 *    when that cannot be built, Debian's stock kernel.
 *  - initramfs (newc cpio, uncompressed): /init = ccvm-init; the kernel
 *    modules as /lib/modules/ccvm/NAME.ko and /lib/modules/ccvm/load.list,
 *    one file name per line, each after every module it depends on (load
 *    them in that order with finit_module; built-in ones are not listed,
 *    so with ccvm's own kernel the list is empty);
 *    empty /dev (with dev/console), /proc, /sys, /run, /tmp.
 *  - root.sqfs (squashfs, zstd): Debian bookworm minbase plus the agent
 *    tools, /usr/local/bin/claude, hostname "ccvm", no /etc/resolv.conf
 *    (the init writes one), no /boot or /lib/modules content.  With
 *    agentSudo on, group "ccvm-sudo" exists and may sudo without a
 *    password: the init adds the agent user to it when it exists.
 *    With nix.enable: Debian's nix-bin, /etc/nix/nix.conf (image_nix_conf),
 *    group nixbld (30000) with users nixbld1-8 (30001-30008) and an
 *    initialised store; ccvm-init starts nix-daemon when it finds
 *    /usr/bin/nix-daemon.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>

#include "options/config.h"
#include "err.h"

struct image_paths {
	char dir[PATH_MAX];    /* the image's cache directory */
	char kernel[PATH_MAX]; /* vmlinux */
	char initrd[PATH_MAX]; /* initramfs (cpio) with ccvm-init */
	char rootfs[PATH_MAX]; /* squashfs root, attached read-only */
	char key[65];	       /* hex hash of the build-time inputs */
};

/* How long a first build takes, measured (bench/README.md, "The first
 * run"), for the messages that announce one: a session's (ccvm's kernel
 * left to the background) and --ccvm-build's (everything). */
#define IMAGE_BUILD_ESTIMATE_SESSION                                           \
	"once: about 2 minutes on 2 cores (ccvm's own kernel then builds in "  \
	"the background)"
#define IMAGE_BUILD_ESTIMATE_ALL                                               \
	"once: about 12 minutes on 2 idle cores, most of it compiling the "    \
	"guest kernel"

/* Finds the image for cfg's build-time options, building it first as
 * want says when it is missing.  Progress goes to stderr.  Interrupted
 * (SIGINT, SIGTERM, SIGHUP): the build stops, keeps nothing, and the error
 * says "image build interrupted; nothing kept"; a second signal ends ccvm
 * at once. */
/* After a failed image_ensure: 128 + the signal that interrupted the
 * build (130 for Ctrl-C), the exit status to end with; else 0. */
int image_interrupt_status(void);

enum image_want {
	IMAGE_FIND,	 /* the image must be there: nothing is built */
	IMAGE_SESSION,	 /* build what is missing, ccvm's guest kernel in
			  * the background (the image boots Debian's stock
			  * kernel until the next session after it is done) */
	IMAGE_BUILD_ALL, /* build everything now, that kernel too */
};

int image_ensure(const struct ccvm_config *cfg, enum image_want want,
		 struct image_paths *out, struct ccvm_err *err);

/* --ccvm-images and --ccvm-prune. */
int image_list(const struct ccvm_config *cfg, FILE *out, struct ccvm_err *err);
int image_prune(const struct ccvm_config *cfg, FILE *out, struct ccvm_err *err);

/* Bumped whenever the build recipe changes what an image contains. */
#define IMAGE_RECIPE_VERSION 4
#define IMAGE_SUITE	     "bookworm"
/* Bumped whenever the Nix part of the recipe (nix.enable) changes; it
 * enters the key of Nix images only. */
#define IMAGE_NIX_RECIPE "1"

/* The contents of one extraGuestModules script. */
struct image_blob {
	const void *data;
	size_t len;
};

/*
 * The cache key: SHA-256 (hex) over every build-time input -- recipe
 * version, Debian suite, package spec, extraPackages, the contents of the
 * extraGuestModules scripts (given in scripts[], in order), agentSudo
 * (null resolved as on), the nix settings, and the guest kernel: the
 * config fragment it is built with (kconfig), or NULL for Debian's stock
 * kernel.  The kernel source package's version is not in it: that is in
 * the kernel cache's own key (kernel_build.c).  Pure: runtime options
 * never enter it.
 */
void image_key(const struct ccvm_config *cfg, const struct image_blob *scripts,
	       size_t n_scripts, const struct image_blob *kconfig,
	       char out[65]);

/*
 * /etc/nix/nix.conf of a Nix image (nix.enable), malloc'ed into *out:
 * build-users-group = nixbld, trusted-users = root, require-sigs = true,
 * and substituters / trusted-public-keys exactly as listed in the nix.*
 * options (empty when none: no cache the user did not ask for).  Pure;
 * -EINVAL for an item that nix.conf would misread (whitespace, control
 * characters, '#').
 */
int image_nix_conf(const struct ccvm_config *cfg, char **out,
		   struct ccvm_err *err);

/* $XDG_CACHE_HOME/ccvm/images (default ~/.cache/ccvm/images). */
int image_cache_dir(char out[PATH_MAX], struct ccvm_err *err);

/* Writes the initramfs (newc cpio: /init plus the modules listed in
 * image_dir/modules/load.list) to path atomically (temp + rename). */
int image_write_initrd(const char *image_dir, const void *init, size_t init_len,
		       const char *path, struct ccvm_err *err);

/*
 * For --ccvm-doctor, without building anything.  image_lookup: the cache
 * directory of the image for cfg's build-time options and whether it is
 * complete.  image_check_tools: the build's tools are in the trusted
 * directories (hostpath.h: root-owned PATH entries, /usr/bin, the
 * sbin directories); image_check_subids: the caller (unless root) has
 * subordinate uid and gid ranges for mmdebstrap's unshare mode.  Both say
 * what to install or run when not.  image_find_tool: an executable's
 * absolute path, searched like the build does; 0 or -ENOENT.
 */
int image_lookup(const struct ccvm_config *cfg, char dir[PATH_MAX],
		 bool *complete, struct ccvm_err *err);
int image_check_tools(struct ccvm_err *err);
/* For --ccvm-doctor: 0 when a new image would get ccvm's own kernel (the
 * kernel source and its build tools are there), else -ENOENT saying why
 * it would get Debian's stock kernel. */
int image_kernel_check(struct ccvm_err *err);
int image_check_subids(struct ccvm_err *err);
int image_find_tool(const char *name, char out[PATH_MAX]);
