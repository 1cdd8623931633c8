#pragma once
/*
 * Sessions sharing a project directory.  Two sessions may run in one
 * directory (both see the same files); the second is told so, once.
 *
 * Each session holds a shared flock on a lock file named by the SHA-256 of
 * the directory's path, in $XDG_RUNTIME_DIR/ccvm/projects (when that is an
 * absolute, writable directory) or else $XDG_STATE_HOME/ccvm/projects
 * (~/.local/state/ccvm/projects), until ccvm exits.  A session that cannot
 * take it exclusively for a moment knows another holds it.  Never an
 * error: without a lock file the session runs, unwarned.
 */
#include <stddef.h>

/* Takes the lock for cwd; 1 when another session is using cwd (and it
 * was said), 0 when none is, -errno when the lock could not be taken. */
int projlock_take(const char *cwd);

/* The lock file's path for cwd (tests); 0 or -errno. */
int projlock_path(const char *cwd, char *out, size_t n);
