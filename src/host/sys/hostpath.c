/* Finding host programs in trusted places only (see hostpath.h). */
#define _GNU_SOURCE
#include "sys/hostpath.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define MAX_SHARES 4

static char shares[MAX_SHARES][PATH_MAX];
static size_t n_shares;

void hostpath_set_shares(const char *const *dirs, size_t n)
{
	n_shares = 0;
	for (size_t i = 0; i < n && n_shares < MAX_SHARES; i++) {
		if (!dirs[i] || !dirs[i][0])
			continue;
		/* A share that does not resolve still counts by its name. */
		if (!realpath(dirs[i], shares[n_shares]) &&
		    util_strlcpy(shares[n_shares], dirs[i], PATH_MAX) < 0)
			continue;
		n_shares++;
	}
}

/* Is the canonical path p a shared directory or inside one? */
static bool in_share(const char *p)
{
	for (size_t i = 0; i < n_shares; i++) {
		size_t l = strlen(shares[i]);
		if (!strncmp(p, shares[i], l) && (p[l] == '/' || !p[l]))
			return true;
	}
	return false;
}

/* Can anyone but root change the directory real (canonical), or one above
 * it?  Sticky directories above it are fine: nobody else can rename what
 * root owns in them. */
static bool chain_trusted(char *real)
{
	bool first = true;
	for (;;) {
		struct stat st;
		if (lstat(real, &st) < 0 || !S_ISDIR(st.st_mode) ||
		    st.st_uid != 0)
			return false;
		if ((st.st_mode & (S_IWGRP | S_IWOTH)) &&
		    (first || !(st.st_mode & S_ISVTX)))
			return false;
		first = false;
		char *slash = strrchr(real, '/');
		if (!slash || slash == real) {
			if (real[1] == '\0')
				break; /* "/" itself was checked */
			real[1] = '\0';
			continue;
		}
		*slash = '\0';
	}
	return true;
}

bool hostpath_dir_trusted(const char *dir)
{
	char real[PATH_MAX];
	if (dir[0] != '/' || !realpath(dir, real) || in_share(real))
		return false;
	return chain_trusted(real);
}

/* Appends dir to the colon list *list (of length *len) unless there. */
static int list_add(char **list, size_t *len, const char *dir)
{
	size_t dl = strlen(dir);
	for (const char *p = *list; p && *p;) {
		size_t n = strcspn(p, ":");
		if (n == dl && !strncmp(p, dir, dl))
			return 0;
		p += n + (p[n] == ':');
	}
	char *grown = realloc(*list, *len + dl + 2);
	if (!grown)
		return -ENOMEM;
	if (*len)
		grown[(*len)++] = ':';
	memcpy(grown + *len, dir, dl + 1);
	*len += dl;
	*list = grown;
	return 0;
}

char *hostpath_search_list(const char *path_var)
{
	char *list = NULL;
	size_t len = 0;
	const char *parts[] = {path_var ? path_var : "", HOSTPATH_DEFAULT};
	for (size_t k = 0; k < ARRAY_LEN(parts); k++) {
		for (const char *p = parts[k]; *p;) {
			size_t n = strcspn(p, ":");
			char dir[PATH_MAX], real[PATH_MAX];
			if (n > 0 && n < sizeof(dir) && p[0] == '/') {
				memcpy(dir, p, n);
				dir[n] = '\0';
				/* The defaults are trusted by name, the user's
				 * entries by who can change them. */
				if (realpath(dir, real) && !in_share(real) &&
				    (k == 1 || hostpath_dir_trusted(real)) &&
				    list_add(&list, &len, real) < 0) {
					free(list);
					return NULL;
				}
			}
			p += n + (p[n] == ':');
		}
	}
	return list ? list : strdup("");
}

int hostpath_find_in(const char *dirs, const char *name, char out[PATH_MAX])
{
	if (!*name || strchr(name, '/'))
		return -ENOENT;
	for (const char *p = dirs; *p;) {
		size_t n = strcspn(p, ":");
		char cand[PATH_MAX], real[PATH_MAX];
		struct stat st;
		if (n > 0 && p[0] == '/' &&
		    snprintf(cand, sizeof(cand), "%.*s/%s", (int)n, p, name) <
			(int)sizeof(cand) &&
		    stat(cand, &st) == 0 && S_ISREG(st.st_mode) &&
		    access(cand, X_OK) == 0 && realpath(cand, real) &&
		    !in_share(real))
			return util_strlcpy(out, cand, PATH_MAX);
		p += n + (p[n] == ':');
	}
	return -ENOENT;
}

int hostpath_find(const char *name, char out[PATH_MAX])
{
	autofree char *dirs = hostpath_search_list(getenv("PATH"));
	if (!dirs)
		return -ENOMEM;
	return hostpath_find_in(dirs, name, out);
}

int hostpath_tool(const char *name, const char *var, char out[PATH_MAX],
		  struct ccvm_err *err)
{
	const char *v = var ? getenv(var) : NULL;
	if (v && *v) {
		if (v[0] != '/')
			return ccvm_err_set(
			    err, EINVAL,
			    "%s: expected an absolute path, got "
			    "\"%s\"",
			    var, v);
		if (util_strlcpy(out, v, PATH_MAX) < 0)
			return ccvm_err_set(err, ENAMETOOLONG,
					    "%s: path too long", var);
		return 0;
	}
	if (hostpath_find(name, out) == 0)
		return 0;
	return ccvm_err_set(err, ENOENT,
			    "%s not found in " HOSTPATH_DEFAULT
			    " or a root-owned directory on PATH%s%s%s",
			    name, var ? " (or set " : "", var ? var : "",
			    var ? ")" : "");
}

bool hostpath_shared_entry(const char *path_var, const char *cwd,
			   char out[PATH_MAX])
{
	if (!path_var)
		return false;
	for (const char *p = path_var;;) {
		size_t n = strcspn(p, ":");
		char dir[PATH_MAX], real[PATH_MAX];
		int w =
		    p[0] == '/'
			? snprintf(dir, sizeof(dir), "%.*s", (int)n, p)
			: snprintf(dir, sizeof(dir), "%s/%.*s", cwd, (int)n, p);
		if (w > 0 && w < (int)sizeof(dir) &&
		    in_share(realpath(dir, real) ? real : dir)) {
			util_strlcpy(out, n ? dir : cwd, PATH_MAX);
			return true;
		}
		if (!p[n])
			break;
		p += n + 1;
	}
	return false;
}

int hostpath_xdg_dir(const char *xdg_var, const char *home_rel,
		     const char *what, char *out, size_t n,
		     struct ccvm_err *err)
{
	const char *xdg = getenv(xdg_var);
	int r;
	if (xdg && xdg[0] == '/') {
		r = snprintf(out, n, "%s/ccvm", xdg);
	} else {
		const char *home = getenv("HOME");
		if (!home || home[0] != '/') {
			struct passwd *pw = getpwuid(geteuid());
			home = pw ? pw->pw_dir : NULL;
		}
		if (!home || home[0] != '/')
			return ccvm_err_set(err, ENOENT,
					    "cannot find %s: neither %s nor "
					    "HOME is an absolute path",
					    what, xdg_var);
		r = snprintf(out, n, "%s/%s/ccvm", home, home_rel);
	}
	if (r < 0 || (size_t)r >= n)
		return ccvm_err_set(err, ENAMETOOLONG, "%s: path too long",
				    what);
	return 0;
}
