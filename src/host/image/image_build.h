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
 * The caller holds the lock.  Progress and failures go to stderr.
 * kernel_later: a guest kernel not built yet is left for later (the
 * manifest's kernelPending names it) and the image gets the stock one. */
int image_build(const struct ccvm_config *cfg, bool kernel_later,
		const char *images, const char *key,
		const struct image_blob *scripts, size_t n_scripts,
		struct ccvm_err *err);

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
/* Another tarball of Linux 6.1 to build the guest kernel from (an
 * absolute path: nixpkgs' linux_6_1.src, which package.nix sets). */
#define IMAGE_KERNEL_SOURCE_ENV "CCVM_KERNEL_SOURCE"
/* The kernel source tarball: CCVM_KERNEL_SOURCE when it is an absolute
 * path, else Debian's IMAGE_KERNEL_SOURCE. */
const char *image_kernel_source(void);

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
/* kernels/.lock, held by whoever builds a kernel or removes a stale
 * build there: an fd, or -EWOULDBLOCK when !wait and someone holds it
 * (-errno otherwise). */
int image_kernels_lock(const char *kernels, bool wait);
/* Builds the guest kernel into kernels/ unless it is cached (the caller
 * holds kernels/.lock: image_kernels_lock), logging to logfd (path log);
 * progress on stderr when it is a terminal.  0, or -errno with err set
 * (a failure leaves kernels/<key>.failed, as in an image build). */
int image_kernel_build(const char *images, int logfd, const char *log,
		       struct ccvm_err *err);
/* The image in dir boots the stock kernel while the built one, kernel
 * (kernels/<key>), is now there: the image switches to it (vmlinux, no
 * modules, manifest; its initramfs and saved boots go, to be made again).
 * The caller holds the images lock.  0 or -errno. */
int image_kernel_upgrade(const char *dir, const char *kernel,
			 struct ccvm_err *err);

/* A cache key as a file name: 64 lowercase hex digits (an image's or a
 * kernel's directory, not a lock, temp dir or log). */
bool image_is_key(const char *name);
/* The images lock (images/.lock), waited for with a message naming the
 * holder's pid: an fd, or -errno with err set. */
int image_lock(const char *images, struct ccvm_err *err);
/* SIGINT, SIGTERM and SIGHUP set image_interrupted while a build runs. */
struct image_sigsave {
	struct sigaction intr, term, hup;
};
void image_signals_catch(struct image_sigsave *s);
void image_signals_restore(struct image_sigsave *s);
/* An image waiting for ccvm's guest kernel (its manifest's
 * kernelPending): switched to it when it is there; else, for a session,
 * its background build is started (unless one runs), for --ccvm-build it
 * is built now (kernel_later.c).  0, or -EINTR when that was
 * interrupted (err set). */
int image_kernel_catch_up(const char *images, const char *dir,
			  enum image_want want, struct ccvm_err *err);
