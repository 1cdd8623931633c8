#pragma once
/*
 * The image build's command runner: build tools get an explicit argv
 * (absolute paths), a filtered environment and no shell (sys/spawn.h);
 * their stderr (and stdout unless redirected) goes to the build log
 * through the step driver (steps.h) while the progress line ticks.
 */
#include <stddef.h>

#include "err.h"
#include "image/steps.h"

struct run_cmd {
	const char *const *argv; /* argv[0] an absolute path */
	const char *cwd;
	int in_fd;  /* -1: /dev/null */
	int out_fd; /* -1: the log */
};

/*
 * Runs n commands (a pipeline when n > 1: each one's stdout feeds the
 * next one's stdin; at most 4), each in its own process group, dying
 * with ccvm (SIGTERM: mmdebstrap then removes its own temp dir).  A
 * signal to ccvm (image_interrupted) is passed to their process groups,
 * SIGKILL follows after a minute; all are waited for.  0 when every
 * command exited 0, else -errno with err naming the first that did not.
 */
int run_cmds(struct steps *s, char *const *env, const struct run_cmd *cmds,
	     size_t n, struct ccvm_err *err);

/* The environment for build tools: a short allowlist of the caller's
 * (home, proxies, CA bundles), the trusted directories as PATH, and the
 * given extra "K=V" entries.  NULL when out of memory. */
char **run_env_make(const char *const *extra, size_t n_extra);
void run_env_free(char **env);
