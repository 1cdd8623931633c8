#define _GNU_SOURCE
#include "setup/stage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "setup/sanitize.h"
#include "util.h"

#define MAX_DEPTH      64
#define GIT_MAX_OUTPUT (4u * 1024 * 1024)
#define GIT_TIMEOUT_MS 10000

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

struct dir_id {
	dev_t dev;
	ino_t ino;
};

struct ctx {
	const struct ccvm_config *cfg;
	const char *home;
	const struct stage_env *env;
	FILE *warn;
	size_t max_total, max_files, max_file;
	char *claude_dir;  /* home/.claude */
	char *claude_real; /* its realpath, NULL when missing */
	char *home_real;
	bool have_cred;
	dev_t cred_dev;
	ino_t cred_ino;
	/* ~/.claude/settings.json and ~/.claude.json: staged sanitized only. */
	struct dir_id settings[2];
	size_t n_settings;
	const struct places *places;
	struct places own_places;
	struct stage_list list;
	size_t cap;
	struct ccvm_err *err;
};

static void wipe_free(char *p, size_t n)
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
		wipe_free(l->v[i].data, l->v[i].len);
		free(l->v[i].path);
	}
	free(l->v);
	l->v = NULL;
	l->n = l->total_bytes = 0;
}

static void warnf(struct ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void warnf(struct ctx *c, const char *fmt, ...)
{
	va_list ap;
	fputs("ccvm: warning: ", c->warn);
	va_start(ap, fmt);
	vfprintf(c->warn, fmt, ap);
	fputc('\n', c->warn);
	va_end(ap);
}

/* Takes ownership of data (wiped on failure).  host names the item for
 * limit messages. */
static int add_file(struct ctx *c, const char *rel, uint32_t mode, char *data,
		    size_t len, const char *host)
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
		wipe_free(data, len);
		return r;
	}
	c->list.v[c->list.n++] = (struct stage_file){
	    .path = path, .mode = mode, .data = data, .len = len};
	c->list.total_bytes += len;
	return 0;
}

static bool is_cred(struct ctx *c, const struct stat *st)
{
	return c->have_cred && st->st_dev == c->cred_dev &&
	       st->st_ino == c->cred_ino;
}

static bool is_settings(struct ctx *c, const struct stat *st)
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
static int resolve_checked(struct ctx *c, const char *host,
			   struct places_chain *ch)
{
	int r = places_resolve(host, ch);
	if (r == -ENOENT)
		return 1;
	if (r == -ELOOP || r == -ENOTDIR || r == -ENAMETOOLONG) {
		warnf(c, "%s: %s, not staged", host, strerror(-r));
		return 2;
	}
	if (r < 0)
		return ccvm_err_sys(c->err, -r, "%s", host);
	char why[2 * PATH_MAX + 128];
	if (places_chain_refused(c->places, ch, c->env ? c->env->shared : NULL,
				 c->env ? STAGE_MAX_SHARED : 0, why,
				 sizeof(why))) {
		warnf(c, "%s: %s: not staged", host, why);
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
static int read_bounded(struct ctx *c, int fd, const struct stat *st,
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
		wipe_free(buf, size + 1);
		return ccvm_err_sys(c->err, (int)-n, "%s", host);
	}
	buf[n] = '\0';
	*data = buf;
	*len = (size_t)n;
	return 0;
}

/* Reads a regular file from fd (already fstat'ed into st), bounded by the
 * per-file limit, and stages it as rel. */
static int stage_fd(struct ctx *c, int fd, const struct stat *st,
		    const char *rel, const char *host)
{
	char *buf;
	size_t len;
	int r = read_bounded(c, fd, st, host, &buf, &len);
	if (r < 0)
		return r;
	uint32_t mode = (st->st_mode & 0111) ? 0700 : 0600;
	return add_file(c, rel, mode, buf, len, host);
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
static bool link_allowed(struct ctx *c, const char *resolved,
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

static int walk_dir(struct ctx *c, int dirfd, const char *host_dir,
		    const char *item_real, const char *rel,
		    struct dir_id *stack, size_t depth);

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* One directory entry; host and guest paths already built. */
static int walk_entry(struct ctx *c, int dirfd, const char *name,
		      const char *host, const char *item_real, const char *grel,
		      struct dir_id *stack, size_t depth)
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
		struct places_chain ch;
		int r = resolve_checked(c, host, &ch);
		if (r < 0)
			return r;
		if (r == 1)
			warnf(c,
			      "%s: dangling or unreadable symlink, not "
			      "staged",
			      host);
		if (r > 0)
			return 0;
		resolved = steal_ptr(&ch.final);
		places_chain_free(&ch);
		if (strcmp(base_name(resolved), ".credentials.json") == 0)
			return 0;
		if (!link_allowed(c, resolved, item_real)) {
			warnf(c,
			      "%s: symlink to %s, outside the item, the share "
			      "items of ~/.claude and /nix/store: not staged",
			      host, resolved);
			return 0;
		}
		/* Never open what is not a file or directory (devices). */
		struct stat lst;
		if (lstat(resolved, &lst) < 0 ||
		    !(S_ISREG(lst.st_mode) || S_ISDIR(lst.st_mode))) {
			warnf(c,
			      "%s: not a regular file or directory, not staged",
			      host);
			return 0;
		}
		fd = open_resolved(resolved);
		if (fd < 0) {
			warnf(c, "%s: cannot open %s (%s), not staged", host,
			      resolved, strerror(errno));
			return 0;
		}
		if (fstat(fd, &st) < 0)
			return ccvm_err_sys(c->err, errno, "%s", resolved);
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
		warnf(c, "%s: not a regular file or directory, not staged",
		      host);
		return 0;
	}
	if (is_cred(c, &st))
		return 0;
	if (is_settings(c, &st)) {
		warnf(c,
		      "%s: the same file as ~/.claude/settings.json or "
		      "~/.claude.json, staged sanitized only: not staged here",
		      host);
		return 0;
	}
	return stage_fd(c, fd, &st, grel, host);
}

static int walk_dir(struct ctx *c, int dirfd, const char *host_dir,
		    const char *item_real, const char *rel,
		    struct dir_id *stack, size_t depth)
{
	struct stat st;
	if (fstat(dirfd, &st) < 0)
		return ccvm_err_sys(c->err, errno, "%s", host_dir);
	for (size_t i = 0; i < depth; i++)
		if (stack[i].dev == st.st_dev && stack[i].ino == st.st_ino) {
			warnf(c, "%s: directory loop, not followed", host_dir);
			return 0;
		}
	if (depth >= MAX_DEPTH) {
		warnf(c, "%s: nested deeper than %d, not staged", host_dir,
		      MAX_DEPTH);
		return 0;
	}
	stack[depth] = (struct dir_id){st.st_dev, st.st_ino};

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
static int open_item(struct ctx *c, const char *host, bool dir, struct stat *st,
		     char **final)
{
	struct places_chain ch;
	int r = resolve_checked(c, host, &ch);
	if (r)
		return r < 0 ? r : -ENOENT;
	struct stat pre;
	if (lstat(ch.final, &pre) == 0 && !S_ISREG(pre.st_mode) &&
	    !S_ISDIR(pre.st_mode)) {
		/* Never open a FIFO, socket or device. */
		warnf(c, "%s: not a regular file or directory, not staged",
		      host);
		places_chain_free(&ch);
		return -ENOENT;
	}
	int fd = open_resolved(ch.final);
	if (fd < 0) {
		int e = errno;
		if (e == ELOOP)
			warnf(c,
			      "%s: %s changed while being staged, not staged",
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
		warnf(c, "%s: not a directory, not staged", host);
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
static int read_item_as(struct ctx *c, const char *host, char **data,
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
		warnf(c, "%s: not a regular file, not staged", host);
		return 1;
	}
	if (is_cred(c, st) ||
	    strcmp(base_name(resolved), ".credentials.json") == 0) {
		warnf(c, "%s: resolves to a credentials file, not staged",
		      host);
		return 1;
	}
	if (!sanitized && is_settings(c, st)) {
		warnf(c,
		      "%s: the same file as ~/.claude/settings.json or "
		      "~/.claude.json, staged sanitized only: not staged here",
		      host);
		return 1;
	}
	return read_bounded(c, afd, st, host, data, len);
}

static int read_item(struct ctx *c, const char *host, char **data, size_t *len,
		     struct stat *st)
{
	return read_item_as(c, host, data, len, st, false);
}

static int stage_file_item(struct ctx *c, const char *name)
{
	autofree char *host = util_path_join(c->claude_dir, name);
	autofree char *rel = util_asprintf(".claude/%s", name);
	if (!host || !rel)
		return ccvm_err_sys(c->err, ENOMEM, "%s", name);
	char *data = NULL;
	size_t len = 0;
	struct stat st = {0};
	int r = read_item(c, host, &data, &len, &st);
	if (r)
		return r > 0 ? 0 : r;
	return add_file(c, rel, (st.st_mode & 0111) ? 0700 : 0600, data, len,
			host);
}

static int stage_dir_item(struct ctx *c, const char *name)
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
		warnf(c,
		      "%s: resolves to %s, which contains the home "
		      "directory or ~/.claude: not staged",
		      host, real);
		return 0;
	}
	if (places_share_refused(c->places, real, why, sizeof(why))) {
		warnf(c, "%s: resolves to %s: %s: not staged", host, real, why);
		return 0;
	}
	struct dir_id stack[MAX_DEPTH];
	return walk_dir(c, afd, host, real, rel, stack, 0);
}

/* ---- CLAUDE.md ---------------------------------------------------------- */

char *stage_default_claude_md(const struct ccvm_config *cfg,
			      const struct stage_env *env)
{
	const char *cwd = env && env->cwd ? env->cwd : "the launch directory";
	const char *api =
	    env && env->api_host ? env->api_host : STAGE_DEFAULT_API_HOST;
	struct sanitize_buf b = {0};
	int r = 0;
	autofree char *head = util_asprintf(
	    "# ccvm\n\n"
	    "You are running inside ccvm, a disposable virtual machine. Only "
	    "the project directory %s is shared with the host.\n\n",
	    cwd);
	r = head ? sanitize_buf_add(&b, head, strlen(head)) : -ENOMEM;
	const char *proj =
	    cfg->writable_cwd
		? "- The project directory is writable: your changes there "
		  "are made on the host and persist after the session.\n"
		: "- The project directory is read-only on the host: you can "
		  "change files in it, but the changes stay in the VM and are "
		  "discarded when the session ends.\n";
	if (!r)
		r = sanitize_buf_add(&b, proj, strlen(proj));
	const char *gone = "- Everything else in the VM (your home directory, "
			   "/tmp, installed packages, system changes) is gone "
			   "when the session ends.\n";
	if (!r)
		r = sanitize_buf_add(&b, gone, strlen(gone));
	if (!r && cfg->persist_projects) {
		const char *p = "- ~/.claude/projects persists across "
				"sessions, so `claude --resume` works.\n";
		r = sanitize_buf_add(&b, p, strlen(p));
	}
	if (!r && cfg->egress_allowlist.n == 0) {
		const char *p = "- Network access is open.\n";
		r = sanitize_buf_add(&b, p, strlen(p));
	} else if (!r) {
		const char *p = "- Network access is limited: only these hosts "
				"are reachable";
		r = sanitize_buf_add(&b, p, strlen(p));
		for (size_t i = 0; i < cfg->n_egress_ports && !r; i++) {
			autofree char *s =
			    util_asprintf("%s%u", i == 0 ? " (ports " : ", ",
					  (unsigned)cfg->egress_ports[i]);
			r = s ? sanitize_buf_add(&b, s, strlen(s)) : -ENOMEM;
		}
		if (!r && cfg->n_egress_ports)
			r = sanitize_buf_add(&b, ")", 1);
		if (!r)
			r = sanitize_buf_add(&b, ": ", 2);
		for (size_t i = 0; i < cfg->egress_allowlist.n && !r; i++) {
			const char *h = cfg->egress_allowlist.v[i];
			autofree char *s = util_asprintf("%s, ", h);
			r = s ? sanitize_buf_add(&b, s, strlen(s)) : -ENOMEM;
		}
		autofree char *s = util_asprintf(
		    "and the API host %s. Other connections fail.\n", api);
		if (!r)
			r = s ? sanitize_buf_add(&b, s, strlen(s)) : -ENOMEM;
	}
	const char *creds =
	    "- By design there are no SSH keys, tokens or other credentials in "
	    "this VM: do not look for them. Leave anything that needs them "
	    "(such as git push or deploying) to the user on the host.\n";
	if (!r)
		r = sanitize_buf_add(&b, creds, strlen(creds));
	if (r) {
		sanitize_buf_free(&b);
		return NULL;
	}
	return b.p ? b.p : strdup("");
}

int stage_claude_md(const char *host_md, size_t host_len,
		    const struct ccvm_config *cfg, const struct stage_env *env,
		    char **out, size_t *out_len)
{
	autofree char *deflt = NULL;
	const char *extra = cfg->extra_claude_md;
	if (!extra) {
		deflt = stage_default_claude_md(cfg, env);
		if (!deflt)
			return -ENOMEM;
		extra = deflt;
	}
	size_t extra_len = strlen(extra);
	struct sanitize_buf b = {0};
	int r = 0;
	if (host_md) {
		r = sanitize_buf_add(&b, host_md, host_len);
		if (!r && extra_len && host_len &&
		    host_md[host_len - 1] != '\n')
			r = sanitize_buf_add(&b, "\n", 1);
		if (!r && extra_len && host_len)
			r = sanitize_buf_add(&b, "\n", 1);
	}
	if (!r && extra_len) {
		r = sanitize_buf_add(&b, extra, extra_len);
		if (!r && extra[extra_len - 1] != '\n')
			r = sanitize_buf_add(&b, "\n", 1);
	}
	if (r) {
		sanitize_buf_free(&b);
		return r;
	}
	if (!host_md && !extra_len) {
		*out = NULL;
		*out_len = 0;
		return 0;
	}
	if (!b.p) {
		b.p = strdup("");
		if (!b.p)
			return -ENOMEM;
	}
	*out = b.p;
	*out_len = b.len;
	return 0;
}

static int stage_md(struct ctx *c)
{
	char *host_md = NULL;
	size_t host_len = 0;
	autofree char *host = util_path_join(c->claude_dir, "CLAUDE.md");
	if (!host)
		return ccvm_err_sys(c->err, ENOMEM, "CLAUDE.md");
	if (c->cfg->share.claude_md) {
		struct stat st;
		int r = read_item(c, host, &host_md, &host_len, &st);
		if (r < 0)
			return r;
	}
	char *md;
	size_t len;
	int r = stage_claude_md(host_md, host_len, c->cfg, c->env, &md, &len);
	wipe_free(host_md, host_len);
	if (r)
		return ccvm_err_sys(c->err, -r, "%s", host);
	if (!md)
		return 0;
	return add_file(c, ".claude/CLAUDE.md", 0600, md, len, host);
}

/* ---- ~/.claude.json and ~/.claude/settings.json ---------------------- */

/* Reads a host JSON file in dir, stages it sanitized at rel (0600):
 * ~/.claude.json (claude_json) or settings.json; a file the sanitizer
 * cannot parse is not staged, with a warning. */
static int stage_json(struct ctx *c, const char *dir, const char *name,
		      const char *rel, bool claude_json)
{
	autofree char *host = util_path_join(dir, name);
	if (!host)
		return ccvm_err_sys(c->err, ENOMEM, "%s", name);
	char *raw = NULL;
	size_t raw_len = 0;
	struct stat st = {0};
	int r = read_item_as(c, host, &raw, &raw_len, &st, true);
	if (r)
		return r > 0 ? 0 : r;
	char *clean;
	size_t clean_len;
	struct ccvm_err jerr = {0};
	char tail[SANITIZE_KEY_TAIL + 1];
	const char *key = c->env ? c->env->api_key : NULL;
	bool have_tail =
	    key && sanitize_key_tail(key, c->env->api_key_len, tail);
	if (claude_json)
		r = sanitize_claude_json(raw, raw_len, have_tail ? tail : NULL,
					 c->warn, &clean, &clean_len, &jerr);
	else
		r = sanitize_settings_json(raw, raw_len, c->warn, &clean,
					   &clean_len, &jerr);
	explicit_bzero(tail, sizeof(tail));
	wipe_free(raw, raw_len + 1);
	if (r == -EINVAL) {
		warnf(c, "%s: %s; not staged", host, jerr.msg);
		return 0;
	}
	if (r)
		return ccvm_err_set(c->err, -r, "%s: %s", host, jerr.msg);
	return add_file(c, rel, 0600, clean, clean_len, host);
}

/* ---- git ---------------------------------------------------------------- */

char *stage_find_git(const char *path_var)
{
	const char *p = path_var ? path_var : "/usr/bin:/bin";
	while (*p) {
		size_t n = strcspn(p, ":");
		if (n > 0 && p[0] == '/') {
			char *cand = util_asprintf("%.*s/git", (int)n, p);
			struct stat st;
			if (!cand)
				return NULL;
			if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) &&
			    access(cand, X_OK) == 0)
				return cand;
			free(cand);
		}
		p += n;
		if (*p == ':')
			p++;
	}
	return NULL;
}

static bool exists(const char *path)
{
	struct stat st;
	return path && lstat(path, &st) == 0;
}

/* Reads what fd has into b (up to cap bytes, the rest is counted in
 * *over); returns false at EOF or error. */
static bool drain(int fd, struct sanitize_buf *b, size_t cap, bool *over)
{
	char tmp[16384];
	ssize_t n = read(fd, tmp, sizeof(tmp));
	if (n < 0)
		return errno == EINTR || errno == EAGAIN;
	if (n == 0)
		return false;
	size_t room = b->len < cap ? cap - b->len : 0;
	size_t take = (size_t)n < room ? (size_t)n : room;
	if (take < (size_t)n)
		*over = true;
	if (take && sanitize_buf_add(b, tmp, take) < 0)
		*over = true;
	explicit_bzero(tmp, sizeof(tmp));
	return true;
}

static int spawn_git(const char *git, char *const argv[], char *const envp[],
		     int out_w, int err_w, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	int r = posix_spawn_file_actions_init(&fa);
	if (r)
		return -r;
	r = posix_spawnattr_init(&at);
	if (r) {
		posix_spawn_file_actions_destroy(&fa);
		return -r;
	}
	sigset_t none, deflt;
	sigemptyset(&none);
	sigemptyset(&deflt);
	int sigs[] = {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD};
	for (size_t i = 0; i < ARRAY_LEN(sigs); i++)
		sigaddset(&deflt, sigs[i]);
	if (!r)
		r = posix_spawnattr_setsigmask(&at, &none);
	if (!r)
		r = posix_spawnattr_setsigdefault(&at, &deflt);
	if (!r)
		r = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK |
						      POSIX_SPAWN_SETSIGDEF);
	if (!r)
		r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null",
						     O_RDONLY, 0);
	if (!r)
		r = posix_spawn_file_actions_adddup2(&fa, out_w, 1);
	if (!r)
		r = posix_spawn_file_actions_adddup2(&fa, err_w, 2);
	if (!r)
		r = posix_spawn_file_actions_addchdir_np(&fa, "/");
	if (!r)
		r = posix_spawn(pid, git, &fa, &at, argv, envp);
	posix_spawnattr_destroy(&at);
	posix_spawn_file_actions_destroy(&fa);
	return -r;
}

int stage_git_config_read(const char *git, const char *home,
			  const char *xdg_config_home, char **out,
			  size_t *out_len, struct ccvm_err *err)
{
	if (!git || git[0] != '/')
		return ccvm_err_set(err, EINVAL, "git: no absolute path");
	if (!home || home[0] != '/')
		return ccvm_err_set(err, EINVAL, "git: no absolute home");
	autofree char *global = util_path_join(home, ".gitconfig");
	autofree char *xdg =
	    xdg_config_home && xdg_config_home[0] == '/'
		? util_asprintf("%s/git/config", xdg_config_home)
		: util_asprintf("%s/.config/git/config", home);
	if (!global || !xdg)
		return ccvm_err_sys(err, ENOMEM, "git config");
	if (!exists(global) && !exists(xdg)) {
		*out = strdup("");
		if (!*out)
			return ccvm_err_sys(err, ENOMEM, "git config");
		*out_len = 0;
		return 0;
	}
	autofree char *e_home = util_asprintf("HOME=%s", home);
	autofree char *e_xdg =
	    xdg_config_home && xdg_config_home[0] == '/'
		? util_asprintf("XDG_CONFIG_HOME=%s", xdg_config_home)
		: NULL;
	if (!e_home)
		return ccvm_err_sys(err, ENOMEM, "git config");
	char *envp[] = {e_home,	    "GIT_CONFIG_NOSYSTEM=1",
			"LC_ALL=C", "PATH=/usr/bin:/bin",
			e_xdg,	    NULL};
	char *argv[] = {"git",	  "config",	"--global", "--null",
			"--list", "--includes", NULL};
	int po[2], pe[2];
	if (pipe2(po, O_CLOEXEC) < 0)
		return ccvm_err_sys(err, errno, "git config: pipe");
	if (pipe2(pe, O_CLOEXEC) < 0) {
		int e = errno;
		close(po[0]);
		close(po[1]);
		return ccvm_err_sys(err, e, "git config: pipe");
	}
	pid_t pid = -1;
	int r = spawn_git(git, argv, envp, po[1], pe[1], &pid);
	close(po[1]);
	close(pe[1]);
	autoclose int ro = po[0];
	autoclose int re = pe[0];
	if (r < 0)
		return ccvm_err_sys(err, -r, "%s", git);
	struct sanitize_buf ob = {0}, eb = {0};
	bool over = false, eover = false, open_o = true, open_e = true;
	bool timeout = false;
	long long deadline = util_now_ms() + GIT_TIMEOUT_MS;
	while ((open_o || open_e) && !over) {
		struct pollfd p[2] = {{open_o ? ro : -1, POLLIN, 0},
				      {open_e ? re : -1, POLLIN, 0}};
		long long left = deadline - util_now_ms();
		if (left <= 0) {
			timeout = true;
			break;
		}
		int n = poll(p, 2, (int)left);
		if (n < 0 && errno != EINTR)
			break;
		if (n <= 0)
			continue;
		if (p[0].revents && !drain(ro, &ob, GIT_MAX_OUTPUT, &over))
			open_o = false;
		if (p[1].revents && !drain(re, &eb, 1024, &eover))
			open_e = false;
	}
	if (open_o || open_e)
		kill(pid, SIGKILL);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (timeout || over || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		const char *msg = eb.p ? eb.p : "";
		size_t ml = strcspn(msg, "\n");
		if (timeout)
			r = ccvm_err_set(
			    err, ETIMEDOUT,
			    "%s config --global: no answer in %d s", git,
			    GIT_TIMEOUT_MS / 1000);
		else if (over)
			r = ccvm_err_set(err, EFBIG,
					 "%s config --global: more than %u "
					 "bytes of output",
					 git, GIT_MAX_OUTPUT);
		else
			r = ccvm_err_set(err, EIO,
					 "%s config --global failed (status "
					 "%d): %.*s",
					 git, status, (int)ml, msg);
		sanitize_buf_free(&ob);
		sanitize_buf_free(&eb);
		return r;
	}
	sanitize_buf_free(&eb);
	if (!ob.p) {
		ob.p = strdup("");
		if (!ob.p)
			return ccvm_err_sys(err, ENOMEM, "git config");
	}
	*out = ob.p;
	*out_len = ob.len;
	return 0;
}

static int stage_git(struct ctx *c)
{
	const struct stage_env *env = c->env;
	char *list = NULL;
	size_t list_len = 0;
	bool owned = false;
	if (env && env->git_config_given) {
		list = (char *)env->git_config;
		list_len = env->git_config_len;
	} else {
		autofree char *found =
		    env && env->git_path
			? NULL
			: stage_find_git(env ? env->path_var : NULL);
		const char *git = found ? found : env ? env->git_path : NULL;
		if (!git) {
			warnf(c, "git not found in PATH: git config not "
				 "shared");
			return 0;
		}
		struct ccvm_err gerr = {0};
		int r = stage_git_config_read(git, c->home,
					      env ? env->xdg_config_home : NULL,
					      &list, &list_len, &gerr);
		if (r == -ENOMEM)
			return ccvm_err_set(c->err, ENOMEM, "%s", gerr.msg);
		if (r < 0) {
			warnf(c, "%s; git config not shared", gerr.msg);
			return 0;
		}
		owned = true;
	}
	char *text;
	size_t text_len;
	autofree char *excl = NULL;
	int r = sanitize_git_config(list ? list : "", list_len, c->home,
				    c->warn, &text, &text_len, &excl, c->err);
	if (owned)
		wipe_free(list, list_len);
	if (r)
		return r;
	autofree char *gc = util_path_join(c->home, ".gitconfig");
	r = add_file(c, ".gitconfig", 0600, text, text_len,
		     gc ? gc : ".gitconfig");
	if (r)
		return r;
	bool explicit_path = excl != NULL;
	if (!excl) {
		const char *xdg = env ? env->xdg_config_home : NULL;
		excl = xdg && xdg[0] == '/'
			   ? util_asprintf("%s/git/ignore", xdg)
			   : util_asprintf("%s/.config/git/ignore", c->home);
		if (!excl)
			return ccvm_err_sys(c->err, ENOMEM, "git ignore");
	}
	char *data = NULL;
	size_t len = 0;
	struct stat st = {0};
	r = read_item(c, excl, &data, &len, &st);
	if (r < 0)
		return r;
	if (r > 0) {
		if (explicit_path && !exists(excl))
			warnf(c,
			      "git core.excludesFile %s does not exist, not "
			      "staged",
			      excl);
		return 0;
	}
	return add_file(c, ".config/git/ignore", 0600, data, len, excl);
}

/* ---- entry point -------------------------------------------------------- */

int stage_collect(const struct ccvm_config *cfg, const char *home,
		  const struct stage_env *env, struct stage_list *out,
		  struct ccvm_err *err)
{
	if (!home || home[0] != '/')
		return ccvm_err_set(err, EINVAL,
				    "home directory \"%s\" is not absolute",
				    home ? home : "");
	struct ctx c = {
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
	c.claude_dir = util_path_join(home, ".claude");
	if (!c.claude_dir)
		return ccvm_err_sys(err, errno, "%s/.claude", home);
	c.claude_real = realpath(c.claude_dir, NULL);
	c.home_real = realpath(home, NULL);
	autofree char *cred = util_path_join(c.claude_dir, ".credentials.json");
	struct stat st;
	if (cred && stat(cred, &st) == 0) {
		c.have_cred = true;
		c.cred_dev = st.st_dev;
		c.cred_ino = st.st_ino;
	}
	autofree char *sett = util_path_join(c.claude_dir, "settings.json");
	autofree char *cj = util_path_join(home, ".claude.json");
	if (!cred || !sett || !cj) {
		free(c.claude_dir);
		free(c.claude_real);
		free(c.home_real);
		return ccvm_err_sys(err, ENOMEM, "%s", home);
	}
	const char *const sj[] = {sett, cj};
	for (size_t i = 0; i < ARRAY_LEN(sj); i++)
		if (stat(sj[i], &st) == 0)
			c.settings[c.n_settings++] =
			    (struct dir_id){st.st_dev, st.st_ino};
	c.places = env ? env->places : NULL;
	if (!c.places) {
		int pr = places_init(&c.own_places, home, NULL,
				     env ? env->xdg_config_home : NULL);
		if (pr < 0) {
			free(c.claude_dir);
			free(c.claude_real);
			free(c.home_real);
			return ccvm_err_sys(err, -pr, "%s", home);
		}
		c.places = &c.own_places;
	}

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
	int r = 0;
	if (cfg->share.settings)
		r = stage_json(&c, home, ".claude.json", ".claude.json", true);
	if (cfg->share.settings && !r)
		r = stage_json(&c, c.claude_dir, "settings.json",
			       ".claude/settings.json", false);
	for (size_t i = 0; i < ARRAY_LEN(items) && !r; i++) {
		if (!items[i].on)
			continue;
		r = items[i].dir ? stage_dir_item(&c, items[i].name)
				 : stage_file_item(&c, items[i].name);
	}
	if (!r)
		r = stage_md(&c);
	if (!r && cfg->share.git_config)
		r = stage_git(&c);
	free(c.claude_dir);
	free(c.claude_real);
	free(c.home_real);
	places_free(&c.own_places);
	if (r) {
		stage_list_free(&c.list);
		return r;
	}
	*out = c.list;
	return 0;
}
