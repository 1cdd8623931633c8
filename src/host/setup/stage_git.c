#define _GNU_SOURCE
/* The git files staged (stage.h): the host's git config as git itself
 * reads it, sanitized, and the excludes file. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "setup/sanitize.h"
#include "setup/stage.h"
#include "setup/stage_ctx.h"
#include "sys/spawn.h"
#include "util.h"

#define GIT_MAX_OUTPUT (4u * 1024 * 1024)
#define GIT_TIMEOUT_MS 10000

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

/* Whether ~/.gitconfig or the XDG git config exists: 1, 0, or -1 (no
 * memory). */
static int has_global_config(const char *home, const char *xdg_config_home)
{
	autofree char *global = util_path_join(home, ".gitconfig");
	autofree char *xdg =
	    xdg_config_home && xdg_config_home[0] == '/'
		? util_asprintf("%s/git/config", xdg_config_home)
		: util_asprintf("%s/.config/git/config", home);
	if (!global || !xdg)
		return -1;
	return exists(global) || exists(xdg);
}

/* git config --global, run through the host spawner (spawn.h): stdin
 * /dev/null, stdout kept up to GIT_MAX_OUTPUT (more kills it), the first
 * KiB of stderr for the message, GIT_TIMEOUT_MS at most, in "/". */
int stage_git_config_read(const char *git, const char *home,
			  const char *xdg_config_home, char **out,
			  size_t *out_len, struct ccvm_err *err)
{
	if (!git || git[0] != '/')
		return ccvm_err_set(err, EINVAL, "git: no absolute path");
	if (!home || home[0] != '/')
		return ccvm_err_set(err, EINVAL, "git: no absolute home");
	int have = has_global_config(home, xdg_config_home);
	if (have <= 0) {
		*out = have == 0 ? strdup("") : NULL;
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
	const struct spawn_fd fds[] = {
	    {0, SPAWN_NULL}, {1, SPAWN_PIPE}, {2, SPAWN_PIPE}};
	argv[0] = (char *)git;
	struct spawn_opts o = {
	    .argv = (const char *const *)argv,
	    .envp = (const char *const *)envp,
	    .fds = fds,
	    .n_fds = ARRAY_LEN(fds),
	    .cwd = "/",
	};
	struct spawn_child c;
	int r = spawn_start(&o, &c, err);
	if (r < 0)
		return r;
	struct spawn_buf ob = {.max = GIT_MAX_OUTPUT};
	struct spawn_buf eb = {.max = 1024, .drain_over = true};
	r = spawn_wait(&c, GIT_TIMEOUT_MS, &ob, &eb);
	int status = c.status;
	if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		const char *msg = eb.data ? eb.data : "";
		size_t ml = strcspn(msg, "\n");
		if (r == -ETIMEDOUT)
			r = ccvm_err_set(
			    err, ETIMEDOUT,
			    "%s config --global: no answer in %d s", git,
			    GIT_TIMEOUT_MS / 1000);
		else if (r == -EFBIG)
			r = ccvm_err_set(err, EFBIG,
					 "%s config --global: more than %u "
					 "bytes of output",
					 git, GIT_MAX_OUTPUT);
		else
			r = ccvm_err_set(err, EIO,
					 "%s config --global failed (status "
					 "%d): %.*s",
					 git, status, (int)ml, msg);
		spawn_buf_free(&ob);
		spawn_buf_free(&eb);
		return r;
	}
	spawn_buf_free(&eb);
	if (!ob.data) {
		ob.data = strdup("");
		if (!ob.data)
			return ccvm_err_sys(err, ENOMEM, "git config");
	}
	*out = ob.data;
	*out_len = ob.len;
	return 0;
}

int stage_git_items(struct stage_ctx *c)
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
			stage_warnf(c, "git not found in PATH: git config not "
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
			stage_warnf(c, "%s; git config not shared", gerr.msg);
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
		stage_wipe_free(list, list_len);
	if (r)
		return r;
	autofree char *gc = util_path_join(c->home, ".gitconfig");
	r = stage_add_file(c, ".gitconfig", 0600, text, text_len,
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
	r = stage_read_item(c, excl, &data, &len, &st);
	if (r < 0)
		return r;
	if (r > 0) {
		if (explicit_path && !exists(excl))
			stage_warnf(
			    c,
			    "git core.excludesFile %s does not exist, not "
			    "staged",
			    excl);
		return 0;
	}
	return stage_add_file(c, ".config/git/ignore", 0600, data, len, excl);
}
