#pragma once
/*
 * The guest kernel and its modules, as shipped by Debian: finding the
 * compressed payload inside a bzImage (x86 boot protocol setup header),
 * checking the decompressed vmlinux is an x86-64 ELF with a PVH entry
 * note, and ordering the modules the guest loads from modules.dep.
 * Pure functions over buffers, so they can be unit tested and fuzzed.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum kernel_comp {
	KERNEL_COMP_UNKNOWN = 0,
	KERNEL_COMP_GZIP,
	KERNEL_COMP_XZ,
	KERNEL_COMP_ZSTD,
	KERNEL_COMP_LZMA,
	KERNEL_COMP_BZIP2,
	KERNEL_COMP_LZ4,
	KERNEL_COMP_LZO,
};

struct kernel_payload {
	size_t offset; /* of the compressed payload in the bzImage file */
	size_t length; /* bytes of compressed data (no size trailer) */
	enum kernel_comp comp;
	uint32_t size; /* decompressed size, from the trailer */
};

/* Parses a bzImage's setup header (boot protocol >= 2.08) and locates the
 * compressed kernel.  -EINVAL with a message when buf is not one. */
int kernel_parse_bzimage(const unsigned char *buf, size_t len,
			 struct kernel_payload *out, struct ccvm_err *err);

/* Compression format from a payload's first bytes. */
enum kernel_comp kernel_detect_comp(const unsigned char *p, size_t len);
const char *kernel_comp_name(enum kernel_comp c);

/* 0 when buf is an x86-64 ELF executable with a Xen PHYS32_ENTRY note
 * (the PVH entry QEMU boots with -kernel), else -EINVAL and a message. */
int kernel_check_pvh_elf(const unsigned char *buf, size_t len,
			 struct ccvm_err *err);

/* Module names compare with '-' and '_' equal; this is the canonical
 * form (underscores) of the name in a modules.dep path, written to out. */
int kernel_module_name(const char *path, size_t pathlen, char *out,
		       size_t outsz);

struct kernel_modlist {
	char **paths; /* modules.dep paths, dependencies before users */
	size_t n;
};

void kernel_modlist_free(struct kernel_modlist *l);

/*
 * Resolves the wanted module names against modules.dep (dep_text) and
 * modules.builtin (builtin_text, may be NULL): wanted modules that are
 * built in are skipped, the rest come out with their dependencies, each
 * once, in an order where every module follows all it depends on.  A
 * wanted module that is neither is an error naming it.
 */
int kernel_modules_order(const char *dep_text, const char *builtin_text,
			 const char *const *wanted, size_t n_wanted,
			 struct kernel_modlist *out, struct ccvm_err *err);

/*
 * Checks that a kernel .config (dotconfig) has every option the config
 * fragment sets: a "CONFIG_X=v" line of the fragment needs the same line
 * in dotconfig ("CONFIG_X=n" needs it absent or "# CONFIG_X is not set").
 * Kconfig drops an option whose dependencies are unmet without a word;
 * this catches it.  Fragment lines that are empty or start with '#' are
 * skipped.  -ENOENT naming the first option that did not take, -EINVAL
 * for a fragment line that is not an assignment.
 */
int kernel_config_check(const char *fragment, const char *dotconfig,
			struct ccvm_err *err);
