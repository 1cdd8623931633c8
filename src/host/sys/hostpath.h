#pragma once
/*
 * Where the host finds the programs it runs (QEMU, git, xclip, wl-paste,
 * the image build's tools): never in a place the guest can write.
 *
 * A program is searched in the trusted directories only: the entries of
 * the user's PATH that are, with every directory above them, owned by root
 * and writable by nobody else (so neither the user nor the guest acting as
 * the user can put a file there: /usr/bin, a Nix profile's store path),
 * then HOSTPATH_DEFAULT.  Any directory inside a shared one
 * (hostpath_set_shares) is skipped, as is a program whose real path lies
 * inside one.  A CCVM_* variable the user set names a program explicitly
 * instead (hostpath_tool).  The result is an absolute path, resolved once,
 * before the guest starts.
 */
#include <limits.h>
#include <stdbool.h>

#include "err.h"

/* Always trusted (when not shared), searched after the user's PATH. */
#define HOSTPATH_DEFAULT                                                       \
	"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* The directories ccvm shares with the guest (the project, ~/.claude/
 * projects): nothing inside them is searched or run.  Copies up to four;
 * NULL entries are ignored.  Call before any lookup of a session. */
void hostpath_set_shares(const char *const *dirs, size_t n);

/* Is dir (an absolute path, after following links) a directory that only
 * root can change, up to "/"?  Sticky directories above it count as safe. */
bool hostpath_dir_trusted(const char *dir);

/* The search list for path_var (the user's PATH, may be NULL): its trusted
 * absolute entries, canonical and without repeats, then HOSTPATH_DEFAULT's
 * not already listed.  Colon-separated, malloc'ed; also the PATH a child
 * gets.  NULL on ENOMEM. */
char *hostpath_search_list(const char *path_var);

/* name (no '/') in the colon-separated dirs: its absolute path in out, 0,
 * or -ENOENT. */
int hostpath_find_in(const char *dirs, const char *name, char out[PATH_MAX]);

/* hostpath_find_in over hostpath_search_list(getenv("PATH")). */
int hostpath_find(const char *name, char out[PATH_MAX]);

/* The program name: the value of the environment variable var when it is
 * set and not empty (it must be an absolute path), else hostpath_find.
 * -EINVAL for a relative var, -ENOENT when not found; err says which. */
int hostpath_tool(const char *name, const char *var, char out[PATH_MAX],
		  struct ccvm_err *err);

/* The first entry of path_var that is inside a shared directory (relative
 * entries, "" included, are taken from cwd), copied to out; false when
 * none is. */
bool hostpath_shared_entry(const char *path_var, const char *cwd,
			   char out[PATH_MAX]);

/*
 * ccvm's directory under an XDG base directory: $<xdg_var>/ccvm when that
 * is an absolute path, else <home>/<home_rel>/ccvm (HOME when absolute,
 * else the passwd entry's).  what names the directory in errors ("the
 * cache directory").  0, or -errno with err set.
 */
int hostpath_xdg_dir(const char *xdg_var, const char *home_rel,
		     const char *what, char *out, size_t n,
		     struct ccvm_err *err);
