#pragma once
/*
 * A writer for the "newc" cpio format the kernel unpacks as an initramfs
 * (Documentation/driver-api/early-userspace/buffer-format.rst).  Entries
 * are owned by root with mtime 0, so equal input gives equal bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct cpio_writer {
	FILE *f;
	uint32_t ino;
	int error; /* first -errno seen; later calls do nothing */
};

void cpio_init(struct cpio_writer *w, FILE *f);
/* mode holds the permission bits only; the type comes from the call. */
int cpio_add_dir(struct cpio_writer *w, const char *name, mode_t mode);
int cpio_add_file(struct cpio_writer *w, const char *name, mode_t mode,
		  const void *data, size_t len);
int cpio_add_chardev(struct cpio_writer *w, const char *name, mode_t mode,
		     unsigned major, unsigned minor);
/* Writes the trailer and flushes; returns the first error of any call. */
int cpio_finish(struct cpio_writer *w);
