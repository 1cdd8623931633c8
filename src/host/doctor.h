#pragma once
/*
 * ccvm --ccvm-doctor: checks what a session needs on this host and prints
 * one line per check ("ok", "warn", "FAIL" or "skip", the check's name, and
 * what was found or what to do about it).  Never builds, boots or writes.
 */
#include <stdbool.h>
#include <stdio.h>

#include "options/config.h"
#include "err.h"

/*
 * Runs every check for cfg's options and writes the report to out.
 * *ready is true when no check failed (a session can run).  Returns 0, or
 * -errno when out could not be written.
 */
int doctor_run(const struct ccvm_config *cfg, FILE *out, bool *ready,
	       struct ccvm_err *err);

/*
 * Runs argv[0] (an absolute path) with argv, the environment
 * PATH=/usr/bin:/bin LC_ALL=C, stdin and stderr on /dev/null, and copies
 * the first line of its stdout (at most outsz - 1 bytes) into out.  Gives
 * up (and kills it) after timeout_ms.  0 when it exited 0, else -errno.
 */
int doctor_first_line(char *const argv[], int timeout_ms, char *out,
		      size_t outsz);
