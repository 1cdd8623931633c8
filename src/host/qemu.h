#pragma once
/* Builds QEMU's argv from a session's needs: no shell, escaped values. */
#include <stdbool.h>
#include <stddef.h>

#include "accel.h"
#include "err.h"

struct qemu_spec {
	const char *qemu;   /* binary, e.g. /usr/bin/qemu-system-x86_64 */
	const char *kernel; /* vmlinux */
	const char *initrd;
	const char *rootfs; /* squashfs, read-only virtio-blk (vda) */
	const char *cwd;    /* launch directory, shared as 9p "ccvm.cwd" */
	bool writable;	    /* false: the 9p export is read-only */
	const char
	    *projects; /* NULL, or host ~/.claude/projects as "ccvm.projects" */
	const char *scratch; /* NULL, or a disk image (vdb) */
	long memory_mib;
	long cores;
	enum accel_kind accel;
	bool mem_lock;	/* -overcommit mem-lock=on */
	int ctl_fd;	/* connected socket for the ccvm.ctl port */
	int console_fd; /* guest serial console goes here (-1: none) */
	bool debug;	/* verbose kernel console */
};

struct qemu_argv {
	char **v;
	size_t n;
};

int qemu_argv_build(const struct qemu_spec *s, struct qemu_argv *out,
		    struct ccvm_err *err);
void qemu_argv_free(struct qemu_argv *a);

/* Appends value to a QEMU option string with commas doubled; rejects
 * control characters.  Exposed for tests. */
int qemu_escape(const char *value, char *out, size_t outsz);
