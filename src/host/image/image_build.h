#pragma once
/* Internal to the image module (image.c and the build: build.h). */
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "image/image.h"

/* The signal that interrupted a build (SIGINT/SIGTERM/SIGHUP), or 0.
 * image.c installs the handler around a build. */
extern volatile sig_atomic_t image_interrupted;

/* Builds the image for cfg into images/<key>, from images/.tmp-XXXXXX.
 * The caller holds the lock.  Progress and failures go to stderr. */
int image_build(const struct ccvm_config *cfg, const char *images,
		const char *key, const struct image_blob *scripts,
		size_t n_scripts, struct ccvm_err *err);

/* Removes images/.tmp-* left by a killed build (caller holds the lock);
 * reports each on out when non-NULL. */
void image_remove_stale(const char *images, FILE *out);

const char *image_agent_package(const struct ccvm_config *cfg);
bool image_agent_sudo(const struct ccvm_config *cfg); /* null -> on */
void image_sha256_hex(const void *p, size_t n, char out[65]);
/* Bytes in regular files under dir, descending depth levels: their
 * sizes, or (allocated) what they take on disk, which is what the image
 * list and prune report: a saved boot's RAM file is sparse. */
long long image_dir_size(const char *dir, int depth, bool allocated);

/* The kernel source ccvm builds the guest kernel from. */
#define IMAGE_KERNEL_PKG    "linux-source-6.1"
#define IMAGE_KERNEL_SOURCE "/usr/src/" IMAGE_KERNEL_PKG ".tar.xz"

/* The guest kernel's config fragment (src/host/image/guest-kernel.config),
 * embedded in the binary. */
const char *image_kernel_config(size_t *len);
/* The patch applied to the kernel source before building it. */
const char *image_kernel_patch(size_t *len);
/* CCVM_STOCK_KERNEL is set (not "" or "0"): images get Debian's stock
 * kernel and modules, no kernel is built (a developer knob). */
bool image_stock_kernel(void);
/* <cache>/ccvm/kernels, next to the images directory; 0 or -errno. */
int image_kernels_dir(const char *images, char out[PATH_MAX]);
