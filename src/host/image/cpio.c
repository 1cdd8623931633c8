#include "image/cpio.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

void cpio_init(struct cpio_writer *w, FILE *f)
{
	w->f = f;
	w->ino = 1;
	w->error = 0;
}

static void put(struct cpio_writer *w, const void *p, size_t n)
{
	if (w->error || n == 0)
		return;
	if (fwrite(p, 1, n, w->f) != n)
		w->error = errno ? -errno : -EIO;
}

static void pad4(struct cpio_writer *w, size_t written)
{
	static const char zeros[4];
	put(w, zeros, (4 - written % 4) % 4);
}

static int add(struct cpio_writer *w, const char *name, uint32_t mode,
	       const void *data, size_t len, unsigned rmaj, unsigned rmin)
{
	size_t namesz = strlen(name) + 1;
	if (w->error)
		return w->error;
	if (namesz > 4096 || len > UINT32_MAX) {
		w->error = -ENAMETOOLONG;
		return w->error;
	}
	char hdr[111];
	int n =
	    snprintf(hdr, sizeof(hdr),
		     "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X"
		     "%08X%08X",
		     w->ino++, mode, 0u, 0u, S_ISDIR(mode) ? 2u : 1u, 0u,
		     (unsigned)len, 0u, 0u, rmaj, rmin, (unsigned)namesz, 0u);
	if (n != 110) {
		w->error = -EINVAL;
		return w->error;
	}
	put(w, hdr, 110);
	put(w, name, namesz);
	pad4(w, 110 + namesz);
	put(w, data, len);
	pad4(w, len);
	return w->error;
}

int cpio_add_dir(struct cpio_writer *w, const char *name, mode_t mode)
{
	return add(w, name, S_IFDIR | (mode & 07777), NULL, 0, 0, 0);
}

int cpio_add_file(struct cpio_writer *w, const char *name, mode_t mode,
		  const void *data, size_t len)
{
	return add(w, name, S_IFREG | (mode & 07777), data, len, 0, 0);
}

int cpio_add_chardev(struct cpio_writer *w, const char *name, mode_t mode,
		     unsigned major, unsigned minor)
{
	return add(w, name, S_IFCHR | (mode & 07777), NULL, 0, major, minor);
}

int cpio_finish(struct cpio_writer *w)
{
	add(w, "TRAILER!!!", 0, NULL, 0, 0, 0);
	if (!w->error && fflush(w->f) != 0)
		w->error = -errno;
	return w->error;
}
