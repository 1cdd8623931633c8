#pragma once
/*
 * Every child ccvm starts goes through here (OpenSSH's and crun's way):
 *
 *  - spawn_start executes a program: argv[0] an absolute path (no PATH
 *    search), the environment exactly envp, no shell;
 *  - spawn_call forks and calls a function of ccvm's (the network relay,
 *    the KVM probe, the guest RAM helper), which _exits with its result.
 *
 * In the child, in this order: it dies with ccvm (PR_SET_PDEATHSIG, the
 * signal given or SIGKILL; a child whose parent is already gone exits at
 * once); signal dispositions back to their defaults and an empty signal
 * mask (ccvm blocks signals around a session; spawn_call may keep ccvm's);
 * the secret wiped (procs.h); optionally its own process group (out of the
 * terminal's: Ctrl-C is ccvm's to handle) and RLIMIT_NOFILE raised to its
 * hard limit; the fd map applied: child fd N gets parent fd M, /dev/null
 * or a new pipe to ccvm, and every other fd is closed (fds 0-2 that the
 * map leaves out get /dev/null: a program's next open must not land on
 * them); then the pre-exec hook, the working directory, and execve.
 *
 * A step that fails in the child is reported back (on a close-on-exec
 * pipe) and spawn_start returns it as an error naming the step ("cannot
 * execute /usr/bin/x: No such file or directory"), so "the program could
 * not start" is never mistaken for "the program failed".
 */
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"

/* Child fds 0..SPAWN_FDS_MAX-1 can be mapped. */
#define SPAWN_FDS_MAX 16

/* struct spawn_fd.parent: not a parent fd but /dev/null (read-write), or
 * a new pipe whose read end ccvm gets (struct spawn_child.pipe[child]). */
#define SPAWN_NULL (-2)
#define SPAWN_PIPE (-3)

struct spawn_fd {
	int child;  /* the fd number in the child, < SPAWN_FDS_MAX */
	int parent; /* ccvm's fd, SPAWN_NULL or SPAWN_PIPE */
};

struct spawn_opts {
	/* spawn_start: the program and its arguments, argv[0] an absolute
	 * path; envp the whole environment (NULL: an empty one). */
	const char *const *argv;
	const char *const *envp;
	const struct spawn_fd *fds;
	size_t n_fds;
	int death_sig;	   /* PR_SET_PDEATHSIG; 0 means SIGKILL */
	bool new_pgrp;	   /* setpgid(0, 0), and from ccvm's side too */
	bool nofile_max;   /* RLIMIT_NOFILE soft limit raised to the hard */
	bool keep_signals; /* spawn_call only: ccvm's mask and handlers */
	bool keep_secrets; /* spawn_call only: procs.h's secrets not wiped
			      (the API proxy takes its credential) */
	const char *cwd;   /* chdir before execve, or NULL */
	const char *name;  /* spawn_call: PR_SET_NAME, or NULL */
	/*
	 * Runs in the child after the fd map, before chdir and execve
	 * (namespace setup, a seccomp filter): async-signal-safe calls
	 * only.  0, or -1 with errno set and *step naming what failed.
	 */
	int (*pre_exec)(void *arg, const char **step);
	void *pre_exec_arg;
};

struct spawn_child {
	pid_t pid; /* 0 when none */
	/* ccvm's read end of each SPAWN_PIPE, by child fd; -1 otherwise.
	 * Close-on-exec; the caller owns them (spawn_child_close). */
	int pipe[SPAWN_FDS_MAX];
	bool reaped;
	int status; /* the wait status, once reaped */
};

/*
 * Starts o->argv; on success c is filled and the program has been
 * executed (or spawn_start returns its failure).  0, or -errno with err
 * set.
 */
int spawn_start(const struct spawn_opts *o, struct spawn_child *c,
		struct ccvm_err *err);

/*
 * Forks a child that runs fn(arg) under o (argv, envp, cwd and pre_exec
 * are not used; mapped fds stay close-on-exec) and _exits with its
 * return value.  0, or -errno with err set.
 */
int spawn_call(const struct spawn_opts *o, int (*fn)(void *), void *arg,
	       struct spawn_child *c, struct ccvm_err *err);

/* Output collected from a child's pipe: at most max bytes are kept
 * (data NUL-terminated, malloc'ed, wiped when freed); over says more
 * came.  drain_over: past max, keep reading and dropping; otherwise the
 * child is killed at once. */
struct spawn_buf {
	char *data;
	size_t len, max;
	bool over, drain_over;
};
void spawn_buf_free(struct spawn_buf *b);

/*
 * Waits for c: reads its pipes on fds 1 and 2 into out and errb (either
 * NULL: that pipe is read and dropped) until both are at EOF, killing it
 * (SIGKILL) when timeout_ms (> 0) passes or a buffer overflows; then
 * reaps it (c->status).  0 when the pipes ended, -ETIMEDOUT when the
 * deadline killed it, -EFBIG when an overflow did.  Closes c's pipes.
 */
int spawn_wait(struct spawn_child *c, int timeout_ms, struct spawn_buf *out,
	       struct spawn_buf *errb);

/* Reaps c without blocking (true once it has ended; status in c). */
bool spawn_poll(struct spawn_child *c);
/* SIGKILLs c if it has not been reaped, and reaps it. */
void spawn_kill(struct spawn_child *c);
/* Closes the pipes spawn_start left open. */
void spawn_child_close(struct spawn_child *c);
