#pragma once
/*
 * ccvm's own process and what it forks.
 *
 * procs_harden, first thing in main: not dumpable (no core file, no ptrace
 * and no /proc/PID/environ or mem for the user's other processes; forked
 * children inherit it), RLIMIT_CORE 0 (inherited by everything ccvm runs,
 * across execve too), and a child subreaper: whatever ccvm's children
 * leave behind (virtiofsd's sandbox child) becomes ccvm's child, so
 * procs_reap_all can end and wait for it before ccvm exits.
 *
 * The credentials: procs_take_secret moves each out of the environment before
 * anything is forked (the environment's bytes are zeroed in place, so
 * /proc/PID/environ no longer has it); a forked child that does not execute
 * a program at once calls procs_forget_secrets to wipe its copy.
 */
#include <stddef.h>
#include <sys/types.h>

#include "err.h"

int procs_harden(struct ccvm_err *err);

/* SIGKILLs every child still there (including those handed to ccvm as
 * subreaper) and waits for each; returns when ccvm has no child left. */
void procs_reap_all(void);
/* A child that is meant to outlive ccvm (the guest kernel's background
 * build): procs_reap_all leaves it alone.  -ENOSPC when too many. */
int procs_keep(pid_t pid);

/* The value of the environment variable var, moved into a buffer of
 * ccvm's own (NULL, 0 when unset); the variable is removed and its bytes
 * zeroed.  Up to four secrets are held (the API key and the tokens the
 * API proxy may use); the buffer stays valid until procs_secret_free. */
const char *procs_take_secret(const char *var, size_t *len);
/* Every secret's buffer, wiped and freed. */
void procs_secret_free(void);
/* In a forked child: wipes the secrets (async-signal-safe). */
void procs_forget_secrets(void);
