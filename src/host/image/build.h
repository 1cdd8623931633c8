#pragma once
/*
 * Internal to the image build: the state its stages share.  The stages
 * are image_build.c (setup, manifest, the step list), rootfs.c (tools,
 * npm, the Debian root), kernel_build.c (the guest kernel from source),
 * modules.c (vmlinux and the modules an image boots with); steps.c shows
 * and logs them, run.c runs their commands.
 */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "image/image.h"
#include "image/steps.h"

#define TEXT_MAX (32u << 20)

struct build {
	const struct ccvm_config *cfg;
	const struct image_blob *scripts;
	size_t n_scripts;
	char key[65];
	char images[PATH_MAX];
	char dir[PATH_MAX]; /* images/.tmp-XXXXXX */
	struct steps st;    /* progress and build.log */
	char **env;	    /* for every command (run.h) */
	/* Tools, as absolute paths. */
	char mmdebstrap[PATH_MAX], npm[PATH_MAX], mksquashfs[PATH_MAX];
	char unshare[PATH_MAX];
	bool skip_subids;  /* image_check_tools: the tools only */
	bool stock_kernel; /* CCVM_STOCK_KERNEL: no custom kernel */
	/* A session's build: a kernel not in the cache yet is built after
	 * the image, in the background (image_kernel_build), and the image
	 * boots the stock kernel until then; kernel_pending gets its key. */
	bool kernel_later;
	char kernel_pending[65];
	bool kernels_locked; /* the caller holds kernels/.lock */
	/* Results. */
	char custom_vmlinux[PATH_MAX]; /* the built kernel, or "" */
	char kernel_key[65];	       /* its key in kernels/, or "" */
	double kernel_build_s;	       /* 0 when it came from the cache */
	char agent_version[64];
	char claude_version[256];
	char kver[128];
};

/* A tool a step needs and the Debian package that has it. */
struct tool_req {
	const char *tool;
	const char *package;
	char *dst;
};

/* Small file helpers: 0 or -errno with err naming the path. */
int build_write_bytes(const char *path, const void *data, size_t len,
		      mode_t mode, struct ccvm_err *err);
int build_write_text(const char *path, const char *text, mode_t mode,
		     struct ccvm_err *err);
int build_copy_file(const char *src, const char *dst, mode_t mode,
		    struct ccvm_err *err);

/* The steps (each 0 or -errno with err set; ctx is the struct build). */
int rootfs_step_tools(void *ctx, struct ccvm_err *err);
int rootfs_step_npm(void *ctx, struct ccvm_err *err);
int rootfs_step_root(void *ctx, struct ccvm_err *err);
int kernel_build_step(void *ctx, struct ccvm_err *err);
int modules_step_vmlinux(void *ctx, struct ccvm_err *err);
int modules_step_modules(void *ctx, struct ccvm_err *err);
