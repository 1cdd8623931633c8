/* ccvm's own process and what it forks (see procs.h). */
#define _GNU_SOURCE
#include "sys/procs.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

#define MAX_KIDS 64

/* The credentials taken out of the environment (procs_take_secret). */
#define SECRETS_MAX 4
static struct {
	char *v;
	size_t len;
} secrets[SECRETS_MAX];
/* Children ccvm had before it started any (a shell's "exec ccvm" keeps
 * its background jobs): not ccvm's to end. */
static pid_t initial[MAX_KIDS];
static int n_initial;

static int list_children(pid_t *out, int max);

static bool inherited(pid_t pid)
{
	for (int i = 0; i < n_initial; i++)
		if (initial[i] == pid)
			return true;
	return false;
}

int procs_keep(pid_t pid)
{
	if (n_initial >= MAX_KIDS)
		return -ENOSPC;
	initial[n_initial++] = pid;
	return 0;
}

int procs_harden(struct ccvm_err *err)
{
	struct rlimit none = {0, 0};
	if (setrlimit(RLIMIT_CORE, &none) < 0)
		return ccvm_err_sys(err, errno, "setrlimit(RLIMIT_CORE)");
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return ccvm_err_sys(err, errno, "prctl(PR_SET_DUMPABLE)");
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		return ccvm_err_sys(err, errno,
				    "prctl(PR_SET_CHILD_SUBREAPER)");
	int n = list_children(initial, MAX_KIDS);
	n_initial = n > 0 ? n : 0;
	return 0;
}

/* The children /proc lists for each of ccvm's threads, up to max; how
 * many, or -errno. */
static int list_children(pid_t *out, int max)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return -errno;
	int n = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/task/%.20s/children",
			 de->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		long pid;
		while (n < max && fscanf(f, "%ld", &pid) == 1)
			if (pid > 0)
				out[n++] = (pid_t)pid;
		fclose(f);
	}
	closedir(d);
	return n;
}

void procs_reap_all(void)
{
	/* A child killed and reaped can have handed its own children to
	 * us meanwhile: again until none is left. */
	for (int round = 0; round < 64; round++) {
		pid_t kids[MAX_KIDS] = {0};
		int n = list_children(kids, MAX_KIDS), mine = 0;
		for (int i = 0; i < n; i++) {
			if (inherited(kids[i]))
				continue;
			kill(kids[i], SIGKILL);
			while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR)
				;
			mine++;
		}
		if (mine == 0)
			return;
	}
}

const char *procs_take_secret(const char *var, size_t *len)
{
	*len = 0;
	char *val = var && *var ? getenv(var) : NULL;
	if (!val)
		return NULL;
	size_t n = strlen(val);
	int slot = -1;
	for (int i = 0; i < SECRETS_MAX && slot < 0; i++)
		if (!secrets[i].v)
			slot = i;
	char *copy = slot >= 0 ? malloc(n + 1) : NULL;
	if (copy) {
		memcpy(copy, val, n + 1);
		secrets[slot].v = copy;
		secrets[slot].len = n;
		*len = n;
	}
	explicit_bzero(val, n); /* the environment's own copy */
	unsetenv(var);
	return copy;
}

void procs_secret_free(void)
{
	for (int i = 0; i < SECRETS_MAX; i++) {
		if (secrets[i].v) {
			explicit_bzero(secrets[i].v, secrets[i].len);
			free(secrets[i].v);
		}
		secrets[i].v = NULL;
		secrets[i].len = 0;
	}
}

void procs_forget_secrets(void)
{
	for (int i = 0; i < SECRETS_MAX; i++)
		if (secrets[i].v)
			explicit_bzero(secrets[i].v, secrets[i].len);
}
