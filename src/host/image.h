#pragma once
/*
 * The guest image: kernel (uncompressed vmlinux, booted via PVH), an
 * initramfs holding ccvm-init and the kernel modules it loads, and a
 * compressed read-only root.  Cached under $XDG_CACHE_HOME/ccvm/images/.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>

#include "config.h"
#include "err.h"

struct image_paths {
	char dir[PATH_MAX];    /* the image's cache directory */
	char kernel[PATH_MAX]; /* vmlinux */
	char initrd[PATH_MAX]; /* initramfs (cpio) with ccvm-init */
	char rootfs[PATH_MAX]; /* squashfs root, attached read-only */
	char key[65];	       /* hex hash of the build-time inputs */
};

/* Finds the image for cfg's build-time options, building it first when
 * allow_build and it is missing.  Progress goes to stderr. */
int image_ensure(const struct ccvm_config *cfg, bool allow_build,
		 struct image_paths *out, struct ccvm_err *err);

/* --ccvm-images and --ccvm-prune. */
int image_list(const struct ccvm_config *cfg, FILE *out, struct ccvm_err *err);
int image_prune(const struct ccvm_config *cfg, FILE *out, struct ccvm_err *err);
