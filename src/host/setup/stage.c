#define _GNU_SOURCE
/* Staging (stage.h): host files read safely, item by item, and the entry
 * point; the Claude and git files are in stage_claude.c, stage_git.c. */
#include "setup/stage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "setup/sanitize.h"
#include "setup/stage_ctx.h"
#include "util.h"

#define MAX_DEPTH 64

/* Top-level names of ~/.claude a symlink inside a shared directory may
 * resolve into: the share items, when they are on (settings.json never:
 * it is staged sanitized only).  Everything else there
 * (.credentials.json, projects/, sessions/, history.jsonl, statsig/,
 * todos/, shell-snapshots/, file-history/, ...) is refused. */
static const struct {
	const char *name;
	size_t on; /* offset of its toggle in struct cfg_share */
} link_ok_in_claude[] = {
    {"CLAUDE.md", offsetof(struct cfg_share, claude_md)},
    {"keybindings.json", offsetof(struct cfg_share, keybindings)},
    {"commands", offsetof(struct cfg_share, commands)},
    {"agents", offsetof(struct cfg_share, agents)},
    {"skills", offsetof(struct cfg_share, skills)},
    {"output-styles", offsetof(struct cfg_share, output_styles)},
    {"plugins", offsetof(struct cfg_share, plugins)},
    {"config", offsetof(struct cfg_share, config)},
};

void stage_wipe_free(char *p, size_t n)
{
	if (p) {
		explicit_bzero(p, n);
		free(p);
	}
}

void stage_list_free(struct stage_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		stage_wipe_free(l->v[i].data, l->v[i].len);
		free(l->v[i].path);
	}
	free(l->v);
	l->v = NULL;
	l->n = l->total_bytes = 0;
}

void stage_warnf(struct stage_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void stage_warnf(struct stage_ctx *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("ccvm: warning: ", c->warn);
	vfprintf(c->warn, fmt, ap);
	fputc('\n', c->warn);
	va_end(ap);
}

/* Takes ownership of data (wiped on failure).  host names the item for
 * limit messages. */
int stage_add_file(struct stage_ctx *c, const char *rel, uint32_t mode,
		   char *data, size_t len, const char *host)
{
	int r = 0;
	if (c->list.n + 1 > c->max_files)
		r = ccvm_err_set(c->err, EMFILE,
				 "%s: more than %zu files to stage; turn the "
				 "share item off or remove files",
				 host, c->max_files);
	else if (len > c->max_total - c->list.total_bytes)
		r = ccvm_err_set(c->err, EFBIG,
				 "%s: staged files exceed %zu bytes in total; "
				 "turn the share item off or remove files",
				 host, c->max_total);
	char *path = r ? NULL : strdup(rel);
	if (!r && !path)
		r = ccvm_err_sys(c->err, ENOMEM, "%s", host);
	if (!r && c->list.n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 32;
		struct stage_file *v = reallocarray(c->list.v, cap, sizeof(*v));
		if (!v)
			r = ccvm_err_sys(c->err, ENOMEM, "%s", host);
		else {
			c->list.v = v;
			c->cap = cap;
		}
	}
	if (r) {
		free(path);
		stage_wipe_free(data, len);
		return r;
	}
	/* n < cap here, so v is allocated. */
	c->list.v[c->list.n++] = (struct stage_file){
	    .path = path, .mode = mode, .data = data, .len = len};
	c->list.total_bytes += len;
	return 0;
}

static bool is_cred(struct stage_ctx *c, const struct stat *st)
{
	return c->have_cred && st->st_dev == c->cred_dev &&
	       st->st_ino == c->cred_ino;
}

static bool is_settings(struct stage_ctx *c, const struct stat *st)
{
	for (size_t i = 0; i < c->n_settings; i++)
		if (st->st_dev == c->settings[i].dev &&
		    st->st_ino == c->settings[i].ino)
			return true;
	return false;
}

/* Resolves host one link at a time (places.h) into *ch.  0; 1 when it is
 * absent (quietly, a dangling link too); 2 when refused, with a warning
 * naming it; or -errno with err set. */
static int resolve_checked(struct stage_ctx *c, const char *host,
			   struct places_chain *ch)
{
	int r = places_resolve(host, ch);
	if (r == -ENOENT)
		return 1;
	if (r == -ELOOP || r == -ENOTDIR || r == -ENAMETOOLONG) {
		stage_warnf(c, "%s: %s, not staged", host, strerror(-r));
		return 2;
	}
	if (r < 0)
		return ccvm_err_sys(c->err, -r, "%s", host);
	char why[2 * PATH_MAX + 128];
	if (places_chain_refused(c->places, ch, c->env ? c->env->shared : NULL,
				 c->env ? STAGE_MAX_SHARED : 0, why,
				 sizeof(why))) {
		stage_warnf(c, "%s: %s: not staged", host, why);
		places_chain_free(ch);
		return 2;
	}
	return 0;
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

/* Reads a regular file from fd (already fstat'ed into st), bounded by the
 * per-file limit, into a NUL-terminated buffer. */
static int read_bounded(struct stage_ctx *c, int fd, const struct stat *st,
			const char *host, char **data, size_t *len)
{
	if ((unsigned long long)st->st_size > c->max_file)
		return ccvm_err_set(c->err, EFBIG,
				    "%s: %lld bytes, over the per-file limit "
				    "of %zu bytes",
				    host, (long long)st->st_size, c->max_file);
	size_t size = (size_t)st->st_size;
	char *buf = malloc(size + 1);
	if (!buf)
		return ccvm_err_sys(c->err, ENOMEM, "%s", host);
	ssize_t n = util_read_all(fd, buf, size);
	if (n < 0) {
		stage_wipe_free(buf, size + 1);
		return ccvm_err_sys(c->err, (int)-n, "%s", host);
	}
	buf[n] = '\0';
	*data = buf;
	*len = (size_t)n;
	return 0;
}

/* Reads a regular file from fd (already fstat'ed into st), bounded by the
 * per-file limit, and stages it as rel. */
static int stage_fd(struct stage_ctx *c, int fd, const struct stat *st,
		    const char *rel, const char *host)
{
	char *buf;
	size_t len;
	int r = read_bounded(c, fd, st, host, &buf, &len);
	if (r < 0)
		return r;
	uint32_t mode = (st->st_mode & 0111) ? 0700 : 0600;
	return stage_add_file(c, rel, mode, buf, len, host);
}

static int open_resolved(const char *path)
{
	struct open_how how = {
	    .flags = O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
	    .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
	if (fd >= 0)
		return (int)fd;
	if (errno != ENOSYS && errno != EPERM && errno != E2BIG)
		return -1;
	return open(path, (int)how.flags);
}

static bool under(const char *p, const char *root)
{
	size_t n = strlen(root);
	if (n == 1 && root[0] == '/')
		return p[0] == '/';
	return strncmp(p, root, n) == 0 && (p[n] == '/' || p[n] == '\0');
}

/* The symlink rule for links inside shared directories (see stage.h). */
static bool link_allowed(struct stage_ctx *c, const char *resolved,
			 const char *item_real)
{
	if (under(resolved, item_real) || under(resolved, "/nix/store"))
		return true;
	if (!c->claude_real || !under(resolved, c->claude_real))
		return false;
	const char *rest = resolved + strlen(c->claude_real);
	if (*rest != '/')
		return false; /* ~/.claude itself */
	rest++;
	size_t n = strcspn(rest, "/");
	for (size_t i = 0; i < ARRAY_LEN(link_ok_in_claude); i++) {
		const char *name = link_ok_in_claude[i].name;
		if (strlen(name) == n && strncmp(rest, name, n) == 0)
			return *(const bool *)((const char *)&c->cfg->share +
					       link_ok_in_claude[i].on);
	}
	return false;
}

static int walk_dir(struct stage_ctx *c, int dirfd, const char *host_dir,
		    const char *item_real, const char *rel,
		    struct stage_dir_id *stack, size_t depth);

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A symlink entry of a shared directory: resolved, checked against the
 * item and opened (stage.h).  0 with *fd, *st and *resolved set; 1 when it
 * is skipped (with a warning, silently for a credentials file); -errno. */
static int open_link_entry(struct stage_ctx *c, const char *host,
			   const char *item_real, struct stat *st,
			   char **resolved, int *fd)
{
	struct places_chain ch;
	int r = resolve_checked(c, host, &ch);
	if (r < 0)
		return r;
	if (r == 1)
		stage_warnf(c, "%s: dangling or unreadable symlink, not staged",
			    host);
	if (r > 0)
		return 1;
	autofree char *res = steal_ptr(&ch.final);
	places_chain_free(&ch);
	if (strcmp(base_name(res), ".credentials.json") == 0)
		return 1;
	if (!link_allowed(c, res, item_real)) {
		stage_warnf(c,
			    "%s: symlink to %s, outside the item, the share "
			    "items of ~/.claude and /nix/store: not staged",
			    host, res);
		return 1;
	}
	/* Never open what is not a file or directory (devices). */
	struct stat lst;
	if (lstat(res, &lst) < 0 ||
	    !(S_ISREG(lst.st_mode) || S_ISDIR(lst.st_mode))) {
		stage_warnf(
		    c, "%s: not a regular file or directory, not staged", host);
		return 1;
	}
	autoclose int f = open_resolved(res);
	if (f < 0) {
		stage_warnf(c, "%s: cannot open %s (%s), not staged", host, res,
			    strerror(errno));
		return 1;
	}
	if (fstat(f, st) < 0)
		return ccvm_err_sys(c->err, errno, "%s", res);
	*fd = steal_fd(&f);
	*resolved = steal_ptr(&res);
	return 0;
}

/* One directory entry; host and guest paths already built. */
static int walk_entry(struct stage_ctx *c, int dirfd, const char *name,
		      const char *host, const char *item_real, const char *grel,
		      struct stage_dir_id *stack, size_t depth)
{
	struct stat st;
	if (strcmp(name, ".credentials.json") == 0)
		return 0;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return ccvm_err_sys(c->err, errno, "%s", host);
	autoclose int fd = -1;
	autofree char *resolved = NULL;
	const char *sub_dir = host;
	if (S_ISLNK(st.st_mode)) {
		int r =
		    open_link_entry(c, host, item_real, &st, &resolved, &fd);
		if (r)
			return r > 0 ? 0 : r;
		sub_dir = resolved;
	} else if (S_ISDIR(st.st_mode)) {
		fd = openat(dirfd, name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return ccvm_err_sys(c->err, errno, "%s", host);
	} else if (S_ISREG(st.st_mode)) {
		fd = openat(dirfd, name,
			    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
				O_NOCTTY);
		if (fd < 0)
			return ccvm_err_sys(c->err, errno, "%s", host);
		if (fstat(fd, &st) < 0)
			return ccvm_err_sys(c->err, errno, "%s", host);
	}
	if (S_ISDIR(st.st_mode))
		return walk_dir(c, fd, sub_dir, item_real, grel, stack,
				depth + 1);
	if (!S_ISREG(st.st_mode) || fd < 0) {
		stage_warnf(
		    c, "%s: not a regular file or directory, not staged", host);
		return 0;
	}
	if (is_cred(c, &st))
		return 0;
	if (is_settings(c, &st)) {
		stage_warnf(
		    c,
		    "%s: the same file as ~/.claude/settings.json or "
		    "~/.claude.json, staged sanitized only: not staged here",
		    host);
		return 0;
	}
	return stage_fd(c, fd, &st, grel, host);
}

static int walk_dir(struct stage_ctx *c, int dirfd, const char *host_dir,
		    const char *item_real, const char *rel,
		    struct stage_dir_id *stack, size_t depth)
{
	struct stat st;
	if (fstat(dirfd, &st) < 0)
		return ccvm_err_sys(c->err, errno, "%s", host_dir);
	for (size_t i = 0; i < depth; i++)
		if (stack[i].dev == st.st_dev && stack[i].ino == st.st_ino) {
			stage_warnf(c, "%s: directory loop, not followed",
				    host_dir);
			return 0;
		}
	if (depth >= MAX_DEPTH) {
		stage_warnf(c, "%s: nested deeper than %d, not staged",
			    host_dir, MAX_DEPTH);
		return 0;
	}
	stack[depth] = (struct stage_dir_id){st.st_dev, st.st_ino};

	int dfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
	if (dfd < 0)
		return ccvm_err_sys(c->err, errno, "%s", host_dir);
	DIR *d = fdopendir(dfd);
	if (!d) {
		int e = errno;
		close(dfd);
		return ccvm_err_sys(c->err, e, "%s", host_dir);
	}
	/* Sorted, so what is staged (and which file crosses a limit) does
	 * not depend on directory order. */
	char **names = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	struct dirent *de;
	errno = 0;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n > c->max_files) {
			r = ccvm_err_set(c->err, EMFILE,
					 "%s: more than %zu entries to stage",
					 host_dir, c->max_files);
			break;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			char **v = reallocarray(names, cap, sizeof(*v));
			if (!v) {
				r = ccvm_err_sys(c->err, ENOMEM, "%s",
						 host_dir);
				break;
			}
			names = v;
		}
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			r = ccvm_err_sys(c->err, ENOMEM, "%s", host_dir);
			break;
		}
		n++;
	}
	if (!r && errno)
		r = ccvm_err_sys(c->err, errno, "%s", host_dir);
	closedir(d);
	if (!r && n > 1)
		qsort(names, n, sizeof(*names), cmp_names);
	for (size_t i = 0; i < n && !r; i++) {
		autofree char *host = util_path_join(host_dir, names[i]);
		autofree char *grel = util_path_join(rel, names[i]);
		if (!host || !grel) {
			r = ccvm_err_sys(c->err, errno ? errno : ENOMEM,
					 "%s/%s", host_dir, names[i]);
			break;
		}
		r = walk_entry(c, dirfd, names[i], host, item_real, grel, stack,
			       depth);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return r;
}

/* Opens a top-level item, following its links once the whole chain has
 * passed the check (resolve_checked).  Returns the fd with *st and, when
 * final is given, the resolved path set; -ENOENT when absent or refused
 * (quietly or with a warning); or another -errno with err set. */
static int open_item(struct stage_ctx *c, const char *host, bool dir,
		     struct stat *st, char **final)
{
	struct places_chain ch;
	int r = resolve_checked(c, host, &ch);
	if (r)
		return r < 0 ? r : -ENOENT;
	struct stat pre;
	if (lstat(ch.final, &pre) == 0 && !S_ISREG(pre.st_mode) &&
	    !S_ISDIR(pre.st_mode)) {
		/* Never open a FIFO, socket or device. */
		stage_warnf(
		    c, "%s: not a regular file or directory, not staged", host);
		places_chain_free(&ch);
		return -ENOENT;
	}
	int fd = open_resolved(ch.final);
	if (fd < 0) {
		int e = errno;
		if (e == ELOOP)
			stage_warnf(
			    c, "%s: %s changed while being staged, not staged",
			    host, ch.final);
		places_chain_free(&ch);
		if (e == ENOENT || e == ELOOP)
			return -ENOENT;
		return ccvm_err_sys(c->err, e, "%s", host);
	}
	if (fstat(fd, st) < 0) {
		int e = errno;
		close(fd);
		places_chain_free(&ch);
		return ccvm_err_sys(c->err, e, "%s", host);
	}
	if (dir && !S_ISDIR(st->st_mode)) {
		stage_warnf(c, "%s: not a directory, not staged", host);
		close(fd);
		places_chain_free(&ch);
		return -ENOENT;
	}
	if (final)
		*final = steal_ptr(&ch.final);
	places_chain_free(&ch);
	return fd;
}

/* Reads a top-level file item (links followed, see open_item) into *data.
 * Unless it goes through a sanitizer, it may not be the settings file.
 * Returns 1 when it is absent or skipped, 0 with *data set, or -errno. */
int stage_read_item_as(struct stage_ctx *c, const char *host, char **data,
		       size_t *len, struct stat *st, bool sanitized)
{
	autofree char *resolved = NULL;
	int fd = open_item(c, host, false, st, &resolved);
	if (fd == -ENOENT)
		return 1;
	if (fd < 0)
		return fd;
	autoclose int afd = fd;
	if (!S_ISREG(st->st_mode)) {
		stage_warnf(c, "%s: not a regular file, not staged", host);
		return 1;
	}
	if (is_cred(c, st) ||
	    strcmp(base_name(resolved), ".credentials.json") == 0) {
		stage_warnf(c, "%s: resolves to a credentials file, not staged",
			    host);
		return 1;
	}
	if (!sanitized && is_settings(c, st)) {
		stage_warnf(
		    c,
		    "%s: the same file as ~/.claude/settings.json or "
		    "~/.claude.json, staged sanitized only: not staged here",
		    host);
		return 1;
	}
	return read_bounded(c, afd, st, host, data, len);
}

int stage_read_item(struct stage_ctx *c, const char *host, char **data,
		    size_t *len, struct stat *st)
{
	return stage_read_item_as(c, host, data, len, st, false);
}

static int stage_file_item(struct stage_ctx *c, const char *name)
{
	autofree char *host = util_path_join(c->claude_dir, name);
	autofree char *rel = util_asprintf(".claude/%s", name);
	if (!host || !rel)
		return ccvm_err_sys(c->err, ENOMEM, "%s", name);
	char *data = NULL;
	size_t len = 0;
	struct stat st = {0};
	int r = stage_read_item(c, host, &data, &len, &st);
	if (r)
		return r > 0 ? 0 : r;
	return stage_add_file(c, rel, (st.st_mode & 0111) ? 0700 : 0600, data,
			      len, host);
}

static int stage_dir_item(struct stage_ctx *c, const char *name)
{
	autofree char *host = util_path_join(c->claude_dir, name);
	autofree char *rel = util_asprintf(".claude/%s", name);
	if (!host || !rel)
		return ccvm_err_sys(c->err, ENOMEM, "%s", name);
	struct stat st = {0};
	autofree char *real = NULL;
	int fd = open_item(c, host, true, &st, &real);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	autoclose int afd = fd;
	char why[2 * PATH_MAX];
	if ((c->home_real && under(c->home_real, real)) ||
	    (c->claude_real && under(c->claude_real, real))) {
		stage_warnf(c,
			    "%s: resolves to %s, which contains the home "
			    "directory or ~/.claude: not staged",
			    host, real);
		return 0;
	}
	if (places_share_refused(c->places, real, why, sizeof(why))) {
		stage_warnf(c, "%s: resolves to %s: %s: not staged", host, real,
			    why);
		return 0;
	}
	struct stage_dir_id stack[MAX_DEPTH];
	return walk_dir(c, afd, host, real, rel, stack, 0);
}

/* ---- entry point -------------------------------------------------------- */

/* The paths and file identities one run checks against (struct
 * stage_ctx); on failure everything is freed. */
/* Frees what ctx_open allocated. */
static void ctx_close(struct stage_ctx *c)
{
	free(c->claude_dir);
	free(c->claude_real);
	free(c->home_real);
	c->claude_dir = c->claude_real = c->home_real = NULL;
	places_free(&c->own_places);
}

/* The paths and file identities one run checks against (struct
 * stage_ctx); on failure everything is freed. */
static int ctx_open(struct stage_ctx *c, const char *home,
		    const struct stage_env *env, struct ccvm_err *err)
{
	c->claude_dir = util_path_join(home, ".claude");
	if (!c->claude_dir) {
		int e = errno ? errno : ENOMEM;
		ccvm_err_sys(err, e, "%s/.claude", home);
		return -e;
	}
	c->claude_real = realpath(c->claude_dir, NULL);
	c->home_real = realpath(home, NULL);
	autofree char *cred =
	    util_path_join(c->claude_dir, ".credentials.json");
	struct stat st;
	if (cred && stat(cred, &st) == 0) {
		c->have_cred = true;
		c->cred_dev = st.st_dev;
		c->cred_ino = st.st_ino;
	}
	autofree char *sett = util_path_join(c->claude_dir, "settings.json");
	autofree char *cj = util_path_join(home, ".claude.json");
	if (!cred || !sett || !cj) {
		ctx_close(c);
		ccvm_err_sys(err, ENOMEM, "%s", home);
		return -ENOMEM;
	}
	const char *const sj[] = {sett, cj};
	for (size_t i = 0; i < ARRAY_LEN(sj); i++)
		if (stat(sj[i], &st) == 0)
			c->settings[c->n_settings++] =
			    (struct stage_dir_id){st.st_dev, st.st_ino};
	c->places = env ? env->places : NULL;
	if (!c->places) {
		int pr = places_init(&c->own_places, home, NULL,
				     env ? env->xdg_config_home : NULL);
		if (pr < 0) {
			ctx_close(c);
			int e = -pr;
			ccvm_err_sys(err, e, "%s", home);
			return -e;
		}
		c->places = &c->own_places;
	}
	return 0;
}

int stage_collect(const struct ccvm_config *cfg, const char *home,
		  const struct stage_env *env, struct stage_list *out,
		  struct ccvm_err *err)
{
	if (!home || home[0] != '/')
		return ccvm_err_set(err, EINVAL,
				    "home directory \"%s\" is not absolute",
				    home ? home : "");
	struct stage_ctx c = {
	    .cfg = cfg,
	    .home = home,
	    .env = env,
	    .warn = env && env->warn ? env->warn : stderr,
	    .max_total = env && env->max_total ? env->max_total
					       : STAGE_DEFAULT_MAX_TOTAL,
	    .max_files = env && env->max_files ? env->max_files
					       : STAGE_DEFAULT_MAX_FILES,
	    .max_file =
		env && env->max_file ? env->max_file : STAGE_DEFAULT_MAX_FILE,
	    .err = err,
	};
	int r = ctx_open(&c, home, env, err);
	if (r < 0)
		return r;

	const struct {
		const char *name;
		bool on, dir;
	} items[] = {
	    {"keybindings.json", cfg->share.keybindings, false},
	    {"commands", cfg->share.commands, true},
	    {"agents", cfg->share.agents, true},
	    {"skills", cfg->share.skills, true},
	    {"output-styles", cfg->share.output_styles, true},
	    {"plugins", cfg->share.plugins, true},
	    {"config", cfg->share.config, true},
	};
	if (cfg->share.settings)
		r = stage_json_item(&c, home, ".claude.json", ".claude.json",
				    true);
	if (cfg->share.settings && !r)
		r = stage_json_item(&c, c.claude_dir, "settings.json",
				    ".claude/settings.json", false);
	for (size_t i = 0; i < ARRAY_LEN(items) && !r; i++) {
		if (!items[i].on)
			continue;
		r = items[i].dir ? stage_dir_item(&c, items[i].name)
				 : stage_file_item(&c, items[i].name);
	}
	if (!r)
		r = stage_md_item(&c);
	if (!r && cfg->share.git_config)
		r = stage_git_items(&c);
	ctx_close(&c);
	if (r) {
		stage_list_free(&c.list);
		return r;
	}
	*out = c.list;
	return 0;
}
