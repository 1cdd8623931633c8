#pragma once
/*
 * The program's environment (docs/protocol.md): a fixed base, then every
 * ENV, then every SECRET, a later entry replacing an earlier one with the
 * same name; a LANG naming a locale the guest lacks becomes C.UTF-8, such
 * an LC_* is dropped (setup/locale.h).  Called in the child just before
 * execve so secrets are only ever in the child's memory.
 */
#include <stddef.h>

#include "setup.h"

/* First: xclip and wl-paste that paste images from the host (clip.h). */
#define ENV_DEFAULT_PATH                                                       \
	"/run/ccvm-bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"     \
	"/sbin:/bin"

struct env_block {
	char **envp; /* NULL-terminated */
	size_t count;
	char *base; /* storage of the base entries */
};

/*
 * env and secrets are NUL-separated "NAME=value" lists (each entry
 * NUL-terminated, len bytes in all).  Fills out; 0 or -ENOMEM.  Entries of
 * env/secrets are referenced, not copied.
 */
int env_build(const struct guest_setup *s, const char *env, size_t env_len,
	      const char *secrets, size_t secrets_len, struct env_block *out);
void env_free(struct env_block *b);

/* Where env_build looks for the locales LANG and LC_* name (LOCALE_DIR;
 * a test points it elsewhere). */
extern const char *env_locale_dir;

/* The value of name in envp, or NULL. */
const char *env_get(char *const *envp, const char *name);
