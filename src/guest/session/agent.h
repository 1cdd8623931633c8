#pragma once
/*
 * Starting the program: on a PTY (job control as a shell does it: a small
 * session leader forked from PID 1 owns the terminal and the program gets
 * its own foreground process group, so Ctrl-Z really stops it) or on three
 * pipes (the program in its own session), as the agent user, in cwd, with
 * the environment of env.h.
 */
#include <stdbool.h>
#include <sys/types.h>

#include "setup/control.h"
#include "err.h"

struct agent {
	pid_t pid;	  /* PID 1's child: waited for, mirrors the program */
	pid_t pgid;	  /* the program's process group (signals) */
	int master;	  /* pty mode: the pty master, else -1 */
	int in, out, err; /* pipe mode: our ends, else -1 */
};

/*
 * Forks and execs ARG[0] from st.  The child builds its envp from st
 * (secrets included) just before execve; the caller wipes st's secrets
 * once this returns.  Our ends are O_NONBLOCK and O_CLOEXEC.
 */
int agent_spawn(const struct ctl_state *st, struct agent *a,
		struct ccvm_err *err);

void agent_close(struct agent *a);

/*
 * In the child: execve argv[0] (looked up in path when it has no '/').
 * Returns only on failure, with the shell's exit code: 127 not found, 126
 * found but not executable; *failed_errno says why.
 */
int agent_exec(char *const argv[], char *const envp[], const char *path,
	       int *failed_errno);
