/* Which locales the guest has (locale.h). */
#define _GNU_SOURCE
#include "setup/locale.h"

#include <ctype.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define NAME_MAX_LEN	 127
#define ARCHIVE_MAX	 (512u << 20)
#define ARCHIVE_MAGIC	 0xde020109u
#define HEAD_NAMEHASH	 2 /* u32 index of namehash_offset in the header */
#define HEAD_NAMEHASH_SZ 4 /* ... and of namehash_size */

/* glibc's _nl_normalize_codeset: letters lower-cased, digits kept,
 * everything else dropped; "iso" in front when only digits remain. */
static void normalize(const char *name, char *out, size_t n)
{
	const char *dot = strchr(name, '.');
	if (!dot) {
		snprintf(out, n, "%s", name);
		return;
	}
	const char *at = strchr(dot, '@');
	size_t cs_len = at ? (size_t)(at - dot - 1) : strlen(dot + 1);
	char cs[NAME_MAX_LEN + 1];
	size_t k = 0;
	bool alpha = false;
	for (size_t i = 0; i < cs_len && k + 1 < sizeof(cs); i++) {
		unsigned char c = (unsigned char)dot[1 + i];
		if (isalpha(c)) {
			cs[k++] = (char)tolower(c);
			alpha = true;
		} else if (isdigit(c)) {
			cs[k++] = (char)c;
		}
	}
	cs[k] = '\0';
	snprintf(out, n, "%.*s.%s%s%s", (int)(dot - name), name,
		 alpha ? "" : "iso", cs, at ? at : "");
}

static bool in_dir(const char *dir, const char *name)
{
	char path[512];
	struct stat st;
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >=
	    (int)sizeof(path))
		return false;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static uint32_t u32_at(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

/* glibc's locale-archive: a header of u32s, then a table of
 * {hash, name offset, record offset} entries (locarchive.h). */
static bool in_archive(const char *dir, const char *a, const char *b)
{
	char path[512];
	if (snprintf(path, sizeof(path), "%s/locale-archive", dir) >=
	    (int)sizeof(path))
		return false;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < 64 ||
	    (uint64_t)st.st_size > ARCHIVE_MAX) {
		close(fd);
		return false;
	}
	size_t size = (size_t)st.st_size;
	const unsigned char *m =
	    mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED)
		return false;
	bool found = false;
	uint32_t off = u32_at(m + 4 * HEAD_NAMEHASH);
	uint32_t count = u32_at(m + 4 * HEAD_NAMEHASH_SZ);
	if (u32_at(m) == ARCHIVE_MAGIC && off < size &&
	    count <= (size - off) / 12) {
		for (uint32_t i = 0; i < count && !found; i++) {
			const unsigned char *e = m + off + 12 * (size_t)i;
			uint32_t name = u32_at(e + 4), rec = u32_at(e + 8);
			if (rec == 0 || name >= size)
				continue;
			const char *s = (const char *)m + name;
			size_t max = size - name;
			if (strnlen(s, max) == max)
				continue;
			found = strcmp(s, a) == 0 || strcmp(s, b) == 0;
		}
	}
	munmap((void *)m, size);
	return found;
}

bool locale_available(const char *dir, const char *name)
{
	size_t len = strlen(name);
	if (len == 0 || len > NAME_MAX_LEN || name[0] == '.' ||
	    strchr(name, '/'))
		return false;
	for (size_t i = 0; i < len; i++)
		if (iscntrl((unsigned char)name[i]))
			return false;
	char norm[NAME_MAX_LEN + 8];
	normalize(name, norm, sizeof(norm));
	if (!strcmp(name, "C") || !strcmp(name, "POSIX") ||
	    !strcmp(norm, "C.utf8"))
		return true;
	return in_dir(dir, name) || in_dir(dir, norm) ||
	       in_archive(dir, name, norm);
}
