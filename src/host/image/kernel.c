#define _GNU_SOURCE
#include "image/kernel.h"

#include <elf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* x86 boot protocol: offsets into the real-mode setup header. */
#define BZ_SETUP_SECTS	  0x1f1
#define BZ_BOOT_FLAG	  0x1fe
#define BZ_HEADER_MAGIC	  0x202
#define BZ_VERSION	  0x206
#define BZ_PAYLOAD_OFFSET 0x248
#define BZ_PAYLOAD_LENGTH 0x24c
#define BZ_MIN_LEN	  0x250

/* Xen's ELF note type carrying the 32-bit PVH entry point. */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

static uint16_t le16(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

enum kernel_comp kernel_detect_comp(const unsigned char *p, size_t len)
{
	static const struct {
		enum kernel_comp c;
		unsigned char magic[6];
		size_t n;
	} tab[] = {
	    {KERNEL_COMP_GZIP, {0x1f, 0x8b}, 2},
	    {KERNEL_COMP_XZ, {0xfd, '7', 'z', 'X', 'Z', 0x00}, 6},
	    {KERNEL_COMP_ZSTD, {0x28, 0xb5, 0x2f, 0xfd}, 4},
	    {KERNEL_COMP_LZMA, {0x5d, 0x00, 0x00}, 3},
	    {KERNEL_COMP_BZIP2, {'B', 'Z', 'h'}, 3},
	    {KERNEL_COMP_LZ4, {0x02, 0x21, 0x4c, 0x18}, 4},
	    {KERNEL_COMP_LZO, {0x89, 'L', 'Z', 'O'}, 4},
	};
	for (size_t i = 0; i < ARRAY_LEN(tab); i++)
		if (len >= tab[i].n && !memcmp(p, tab[i].magic, tab[i].n))
			return tab[i].c;
	return KERNEL_COMP_UNKNOWN;
}

const char *kernel_comp_name(enum kernel_comp c)
{
	switch (c) {
	case KERNEL_COMP_GZIP:
		return "gzip";
	case KERNEL_COMP_XZ:
		return "xz";
	case KERNEL_COMP_ZSTD:
		return "zstd";
	case KERNEL_COMP_LZMA:
		return "lzma";
	case KERNEL_COMP_BZIP2:
		return "bzip2";
	case KERNEL_COMP_LZ4:
		return "lz4";
	case KERNEL_COMP_LZO:
		return "lzo";
	case KERNEL_COMP_UNKNOWN:
		break;
	}
	return "unknown";
}

int kernel_parse_bzimage(const unsigned char *buf, size_t len,
			 struct kernel_payload *out, struct ccvm_err *err)
{
	if (len < BZ_MIN_LEN || le16(buf + BZ_BOOT_FLAG) != 0xaa55 ||
	    memcmp(buf + BZ_HEADER_MAGIC, "HdrS", 4) != 0)
		return ccvm_err_set(err, EINVAL,
				    "not a bzImage (no x86 setup header)");
	uint16_t version = le16(buf + BZ_VERSION);
	if (version < 0x208)
		return ccvm_err_set(err, EINVAL,
				    "bzImage boot protocol %u.%02u is older "
				    "than 2.08 (no payload fields)",
				    version >> 8, version & 0xff);
	size_t sects = buf[BZ_SETUP_SECTS] ? buf[BZ_SETUP_SECTS] : 4;
	size_t pm_start = (sects + 1) * 512;
	uint32_t poff = le32(buf + BZ_PAYLOAD_OFFSET);
	uint32_t plen = le32(buf + BZ_PAYLOAD_LENGTH);
	if (plen < 8 || pm_start > len || poff > len - pm_start ||
	    plen > len - pm_start - poff)
		return ccvm_err_set(err, EINVAL,
				    "bzImage payload (offset %u, length %u) "
				    "lies outside the %zu-byte file",
				    poff, plen, len);
	const unsigned char *p = buf + pm_start + poff;
	enum kernel_comp c = kernel_detect_comp(p, plen);
	if (c == KERNEL_COMP_UNKNOWN)
		return ccvm_err_set(err, EINVAL,
				    "bzImage payload compression not "
				    "recognised (magic %02x %02x %02x %02x)",
				    p[0], p[1], p[2], p[3]);
	/* Every format ends with the little-endian decompressed size: gzip
	 * natively, the others through the kernel's size_append. */
	out->offset = pm_start + poff;
	out->length = c == KERNEL_COMP_GZIP ? plen : plen - 4;
	out->comp = c;
	out->size = le32(p + plen - 4);
	return 0;
}

static int pvh_note_in(const unsigned char *n, size_t len)
{
	while (len >= sizeof(Elf64_Nhdr)) {
		Elf64_Nhdr h;
		memcpy(&h, n, sizeof(h));
		size_t namesz = ((size_t)h.n_namesz + 3) & ~(size_t)3;
		size_t descsz = ((size_t)h.n_descsz + 3) & ~(size_t)3;
		size_t rest = len - sizeof(h);
		if (namesz > rest || descsz > rest - namesz)
			return 0;
		const unsigned char *name = n + sizeof(h);
		if (h.n_namesz == 4 && !memcmp(name, "Xen", 4) &&
		    h.n_type == XEN_ELFNOTE_PHYS32_ENTRY && h.n_descsz >= 4)
			return 1;
		n += sizeof(h) + namesz + descsz;
		len = rest - namesz - descsz;
	}
	return 0;
}

int kernel_check_pvh_elf(const unsigned char *buf, size_t len,
			 struct ccvm_err *err)
{
	Elf64_Ehdr eh;
	if (len < sizeof(eh) || memcmp(buf, ELFMAG, SELFMAG) != 0)
		return ccvm_err_set(err, EINVAL, "vmlinux is not an ELF file");
	memcpy(&eh, buf, sizeof(eh));
	if (eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64 ||
	    eh.e_type != ET_EXEC)
		return ccvm_err_set(err, EINVAL,
				    "vmlinux is not an x86-64 ELF executable");
	if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phoff > len ||
	    (size_t)eh.e_phnum > (len - eh.e_phoff) / sizeof(Elf64_Phdr))
		return ccvm_err_set(err, EINVAL,
				    "vmlinux program headers are malformed");
	for (size_t i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;
		memcpy(&ph, buf + eh.e_phoff + i * sizeof(ph), sizeof(ph));
		if (ph.p_type != PT_NOTE || ph.p_offset > len ||
		    ph.p_filesz > len - ph.p_offset)
			continue;
		if (pvh_note_in(buf + ph.p_offset, ph.p_filesz))
			return 0;
	}
	return ccvm_err_set(err, EINVAL,
			    "vmlinux has no PVH entry note (Xen "
			    "PHYS32_ENTRY): QEMU cannot boot it directly");
}

int kernel_module_name(const char *path, size_t pathlen, char *out,
		       size_t outsz)
{
	const char *base = path;
	for (size_t i = 0; i < pathlen; i++)
		if (path[i] == '/')
			base = path + i + 1;
	size_t n = pathlen - (size_t)(base - path);
	const char *ko = memmem(base, n, ".ko", 3);
	if (ko)
		n = (size_t)(ko - base);
	if (n == 0 || n >= outsz)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		out[i] = base[i] == '-' ? '_' : base[i];
	out[n] = '\0';
	return 0;
}

void kernel_modlist_free(struct kernel_modlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->paths[i]);
	free(l->paths);
	l->paths = NULL;
	l->n = 0;
}

/* One modules.dep line, pointing into a private copy of the text. */
struct dep_entry {
	char *path;
	char name[64];
	char **deps;
	size_t n_deps;
	int state; /* 0 new, 1 visiting, 2 emitted */
};

struct dep_table {
	struct dep_entry *e;
	size_t n;
};

static void dep_table_free(struct dep_table *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->e[i].deps);
	free(t->e);
}

static int dep_table_parse(char *text, struct dep_table *t)
{
	size_t cap = 0;
	char *save = NULL;
	for (char *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = '\0';
		if (t->n == cap) {
			cap = cap ? cap * 2 : 1024;
			struct dep_entry *ne = realloc(t->e, cap * sizeof(*ne));
			if (!ne)
				return -ENOMEM;
			t->e = ne;
		}
		struct dep_entry *d = &t->e[t->n];
		memset(d, 0, sizeof(*d));
		d->path = line;
		if (kernel_module_name(line, strlen(line), d->name,
				       sizeof(d->name)) < 0)
			continue;
		t->n++;
		char *s2 = NULL;
		size_t dcap = 0;
		for (char *tok = strtok_r(colon + 1, " \t", &s2); tok;
		     tok = strtok_r(NULL, " \t", &s2)) {
			if (d->n_deps == dcap) {
				dcap = dcap ? dcap * 2 : 4;
				char **nd =
				    realloc(d->deps, dcap * sizeof(*nd));
				if (!nd)
					return -ENOMEM;
				d->deps = nd;
			}
			d->deps[d->n_deps++] = tok;
		}
	}
	return 0;
}

static struct dep_entry *dep_by_path(struct dep_table *t, const char *p)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->e[i].path, p))
			return &t->e[i];
	return NULL;
}

static struct dep_entry *dep_by_name(struct dep_table *t, const char *name)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->e[i].name, name))
			return &t->e[i];
	return NULL;
}

static int modlist_push(struct kernel_modlist *l, const char *path)
{
	char **np = realloc(l->paths, (l->n + 1) * sizeof(*np));
	if (!np)
		return -ENOMEM;
	l->paths = np;
	l->paths[l->n] = strdup(path);
	if (!l->paths[l->n])
		return -ENOMEM;
	l->n++;
	return 0;
}

static int dep_emit(struct dep_table *t, struct dep_entry *d,
		    struct kernel_modlist *l, int depth, struct ccvm_err *err)
{
	if (d->state == 2)
		return 0;
	if (d->state == 1 || depth > 64)
		return ccvm_err_set(
		    err, ELOOP, "modules.dep: dependency loop at %s", d->path);
	d->state = 1;
	for (size_t i = 0; i < d->n_deps; i++) {
		struct dep_entry *dep = dep_by_path(t, d->deps[i]);
		if (!dep)
			return ccvm_err_set(err, ENOENT,
					    "modules.dep: %s needs %s, which "
					    "has no entry",
					    d->path, d->deps[i]);
		int r = dep_emit(t, dep, l, depth + 1, err);
		if (r < 0)
			return r;
	}
	d->state = 2;
	if (modlist_push(l, d->path) < 0)
		return ccvm_err_set(err, ENOMEM, "out of memory");
	return 0;
}

static bool is_builtin(const char *builtin_text, const char *name)
{
	if (!builtin_text)
		return false;
	const char *p = builtin_text;
	char n[64];
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);
		if (kernel_module_name(p, len, n, sizeof(n)) == 0 &&
		    !strcmp(n, name))
			return true;
		if (!nl)
			break;
		p = nl + 1;
	}
	return false;
}

int kernel_modules_order(const char *dep_text, const char *builtin_text,
			 const char *const *wanted, size_t n_wanted,
			 struct kernel_modlist *out, struct ccvm_err *err)
{
	autofree char *text = strdup(dep_text);
	if (!text)
		return ccvm_err_set(err, ENOMEM, "out of memory");
	struct dep_table t = {0};
	struct kernel_modlist l = {0};
	int r = dep_table_parse(text, &t);
	if (r < 0) {
		ccvm_err_set(err, -r, "modules.dep: out of memory");
		goto out;
	}
	for (size_t i = 0; i < n_wanted; i++) {
		char name[64];
		if (kernel_module_name(wanted[i], strlen(wanted[i]), name,
				       sizeof(name)) < 0) {
			r = ccvm_err_set(err, EINVAL, "bad module name '%s'",
					 wanted[i]);
			goto out;
		}
		struct dep_entry *d = dep_by_name(&t, name);
		if (!d) {
			if (is_builtin(builtin_text, name))
				continue;
			r = ccvm_err_set(err, ENOENT,
					 "kernel module %s is neither in "
					 "modules.dep nor built in",
					 wanted[i]);
			goto out;
		}
		r = dep_emit(&t, d, &l, 0, err);
		if (r < 0)
			goto out;
	}
	*out = l;
	l.paths = NULL;
	l.n = 0;
	r = 0;
out:
	kernel_modlist_free(&l);
	dep_table_free(&t);
	return r;
}

/* Does text have a line that is exactly line[0..len)? */
static bool has_line(const char *text, const char *line, size_t len)
{
	for (const char *p = text; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		if (n == len && !memcmp(p, line, len))
			return true;
		p = nl ? nl + 1 : NULL;
	}
	return false;
}

int kernel_config_check(const char *fragment, const char *dotconfig,
			struct ccvm_err *err)
{
	for (const char *p = fragment; p && *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		const char *line = p;
		p = nl ? nl + 1 : NULL;
		while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\r'))
			n--;
		if (n == 0 || line[0] == '#')
			continue;
		const char *eq = memchr(line, '=', n);
		if (n < 8 || memcmp(line, "CONFIG_", 7) != 0 || !eq ||
		    eq == line + 7)
			return ccvm_err_set(err, EINVAL,
					    "kernel config fragment: '%.*s' is "
					    "not a CONFIG_X=value line",
					    (int)(n > 80 ? 80 : n), line);
		int nlen = (int)(eq - line);
		if (n == (size_t)nlen + 2 && eq[1] == 'n') {
			/* Absent or "# CONFIG_X is not set": no line starts
			 * with "CONFIG_X=". */
			for (const char *q = dotconfig; q && *q;) {
				if (!strncmp(q, line, (size_t)nlen + 1))
					return ccvm_err_set(
					    err, ENOENT,
					    "kernel config: %.*s is set, the "
					    "fragment says n",
					    nlen, line);
				q = strchr(q, '\n');
				q = q ? q + 1 : NULL;
			}
			continue;
		}
		if (!has_line(dotconfig, line, n))
			return ccvm_err_set(err, ENOENT,
					    "kernel config: %.*s did not take "
					    "(an unmet dependency?)",
					    (int)(n > 120 ? 120 : n), line);
	}
	return 0;
}
