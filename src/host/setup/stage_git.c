#define _GNU_SOURCE
/* The git files staged (stage.h): the host's git config as git itself
 * reads it, sanitized, and the excludes file. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "setup/sanitize.h"
#include "setup/stage.h"
#include "setup/stage_ctx.h"
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

/* Over 80 lines: the spawn, the bounded reads and the deadline are left as
 * they are until git runs through the common host spawner (issue 21, item
 * 3), which takes this loop over. */
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
