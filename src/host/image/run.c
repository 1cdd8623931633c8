/* The image build's command runner (run.h). */
#define _GNU_SOURCE
#include "image/run.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "image/image_build.h"
#include "sys/hostpath.h"
#include "sys/spawn.h"
#include "util.h"

#define KILL_GRACE_MS 60000
#define RUN_MAX	      4

/* Environment variables passed on to npm and mmdebstrap. */
static const char *const env_keep[] = {
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "TMPDIR",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "no_proxy",
    "NO_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "npm_config_registry",
    "NPM_CONFIG_REGISTRY",
    "NPM_CONFIG_USERCONFIG",
};

void run_env_free(char **env)
{
	if (!env)
		return;
	for (char **e = env; *e; e++)
		free(*e);
	free(env);
}

char **run_env_make(const char *const *extra, size_t n_extra)
{
	size_t cap = ARRAY_LEN(env_keep) + n_extra + 2, n = 0;
	autofree char *path = hostpath_search_list(getenv("PATH"));
	char **env = calloc(cap, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < ARRAY_LEN(env_keep); i++) {
		const char *v = getenv(env_keep[i]);
		if (v && !(env[n++] = util_asprintf("%s=%s", env_keep[i], v)))
			goto fail;
	}
	if (!path || !(env[n++] = util_asprintf("PATH=%s", path)))
		goto fail;
	for (size_t i = 0; i < n_extra; i++)
		if (!(env[n++] = strdup(extra[i])))
			goto fail;
	return env;
fail:
	run_env_free(env);
	return NULL;
}

/* The commands of one pipeline as they run. */
struct run {
	struct steps *s;
	struct spawn_child kids[RUN_MAX];
	bool done[RUN_MAX];
	size_t started;
};

static void log_argv(struct steps *s, const char *const *argv)
{
	dprintf(s->logfd, "$");
	for (const char *const *a = argv; *a; a++)
		dprintf(s->logfd, " %s", *a);
	dprintf(s->logfd, "\n");
}

/* Starts the commands, chained by pipes, their stderr into log_w. */
static int start_all(struct run *rn, char *const *env,
		     const struct run_cmd *cmds, size_t n, int log_w,
		     struct ccvm_err *err)
{
	autoclose int prev_r = -1;
	for (size_t i = 0; i < n; i++) {
		int in = i > 0 ? prev_r : cmds[i].in_fd;
		int out = cmds[i].out_fd >= 0 ? cmds[i].out_fd : log_w;
		int pp[2] = {-1, -1};
		if (i + 1 < n) {
			if (pipe2(pp, O_CLOEXEC) < 0)
				return ccvm_err_sys(err, errno, "pipe");
			out = pp[1];
		}
		log_argv(rn->s, cmds[i].argv);
		const struct spawn_fd fds[] = {
		    {0, in >= 0 ? in : SPAWN_NULL}, {1, out}, {2, log_w}};
		struct spawn_opts o = {.argv = cmds[i].argv,
				       .envp = (const char *const *)env,
				       .fds = fds,
				       .n_fds = ARRAY_LEN(fds),
				       .death_sig = SIGTERM,
				       .new_pgrp = true,
				       .cwd = cmds[i].cwd};
		int r = spawn_start(&o, &rn->kids[i], err);
		if (pp[1] >= 0)
			close(pp[1]);
		if (prev_r >= 0)
			close(prev_r);
		prev_r = pp[0];
		if (r < 0) {
			dprintf(rn->s->logfd, "%s\n", err->msg);
			return r;
		}
		rn->started++;
	}
	return 0;
}

/* Passes a signal to ccvm on to the commands (SIGKILL after the grace
 * period); reads the log pipe and reaps them until all have ended. */
static void wait_all(struct run *rn, int log_r, bool signalled)
{
	long long kill_at = 0;
	size_t left = rn->started;
	bool log_open = true;
	while (left > 0 || log_open) {
		if ((image_interrupted || signalled) && kill_at == 0) {
			int sig =
			    image_interrupted ? image_interrupted : SIGTERM;
			for (size_t i = 0; i < rn->started; i++)
				if (!rn->done[i])
					kill(-rn->kids[i].pid, sig);
			kill_at = util_now_ms() + KILL_GRACE_MS;
		}
		if (kill_at && util_now_ms() > kill_at) {
			for (size_t i = 0; i < rn->started; i++)
				if (!rn->done[i])
					kill(-rn->kids[i].pid, SIGKILL);
		}
		struct pollfd pfd = {.fd = log_r, .events = POLLIN};
		int pr = log_open ? poll(&pfd, 1, 1000) : 0;
		if (!log_open)
			usleep(100000);
		if (pr > 0) {
			char buf[8192];
			ssize_t got = read(log_r, buf, sizeof(buf));
			if (got > 0)
				steps_output(rn->s, buf, (size_t)got);
			else if (got == 0 || errno != EINTR)
				log_open = false;
		}
		for (size_t i = 0; i < rn->started; i++) {
			if (!rn->done[i] && spawn_poll(&rn->kids[i])) {
				rn->done[i] = true;
				left--;
			}
		}
		steps_tick(rn->s);
		/* A child that has exited may leave grandchildren holding
		 * the log pipe; stop reading once all children are gone. */
		if (left == 0 && pr <= 0)
			break;
	}
}

int run_cmds(struct steps *s, char *const *env, const struct run_cmd *cmds,
	     size_t n, struct ccvm_err *err)
{
	struct run rn = {.s = s};
	if (n == 0 || n > RUN_MAX)
		return ccvm_err_set(err, EINVAL, "bad command count");
	int lp[2];
	if (pipe2(lp, O_CLOEXEC) < 0)
		return ccvm_err_sys(err, errno, "pipe");
	autoclose int log_r = lp[0];
	int r = start_all(&rn, env, cmds, n, lp[1], err);
	close(lp[1]);
	if (r < 0 && rn.started == 0)
		return r;
	wait_all(&rn, log_r, r < 0);
	if (r < 0)
		return r;
	if (image_interrupted)
		return ccvm_err_set(err, EINTR, "interrupted by signal %d",
				    (int)image_interrupted);
	for (size_t i = 0; i < rn.started; i++) {
		int st = rn.kids[i].status;
		const char *name = strrchr(cmds[i].argv[0], '/');
		name = name ? name + 1 : cmds[i].argv[0];
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			continue;
		if (WIFSIGNALED(st))
			return ccvm_err_set(err, EIO,
					    "%s was killed by signal %d", name,
					    WTERMSIG(st));
		return ccvm_err_set(err, EIO, "%s exited with status %d", name,
				    WEXITSTATUS(st));
	}
	return 0;
}
