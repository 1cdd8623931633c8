#pragma once
/*
 * The image build's step driver: a build is a list of steps, each shown
 * on stderr with its number and elapsed time ("ccvm: [2/7] name: done in
 * 3.1 s"; on a terminal one progress line with a ticking clock and the
 * latest status line of the step's output), and each written to the build
 * log ("=== [2/7] name", then the output of its commands, every line
 * stamped with the seconds since the build started).  A failing step
 * stops the build: the last lines it logged are printed, the log is kept
 * as <keep_dir>/failed-build.log, and the error names the step.
 */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"

struct steps {
	int logfd; /* the build log, opened O_APPEND by the caller */
	char log[PATH_MAX];
	char keep_dir[PATH_MAX]; /* failed-build.log goes here */
	bool tty;		 /* stderr is a terminal: one redrawn line */
	long long t0;		 /* the build's start (util_now_ms) */
	/* The driver's own state. */
	bool log_bol; /* the log is at the start of a line */
	off_t step_log_start;
	int step, n_steps;
	const char *step_name;
	long long step_t0;
	char detail[128];
	long long last_plain_ms, last_draw_ms;
	/* Counting the kernel's compiled objects (steps_count_objects). */
	bool count_objects;
	int objs, objs_expected;
	double objs_last_secs;
	long long objs_t0;
};

struct step {
	const char *name;
	int (*fn)(void *ctx, struct ccvm_err *err);
};

/* Sets s up for a build logging to logfd (path log); tty from stderr. */
void steps_init(struct steps *s, int logfd, const char *log,
		const char *keep_dir);

/* Runs the steps in order, stopping at the first failure or at a signal
 * (image_interrupted) between two steps.  0, or the failure with err
 * saying "image build failed at step '...': ... (full log: ...)". */
int steps_run(struct steps *s, const struct step *steps, size_t n, void *ctx,
	      struct ccvm_err *err);

/* Output of the running step's commands: into the log (stamped), and
 * mmdebstrap's "I: ..." or a hook's "ccvm-step: ..." into the progress
 * line. */
void steps_output(struct steps *s, const char *buf, size_t n);
/* Redraws the progress line (at most 4 times a second on a terminal,
 * every 30 s otherwise). */
void steps_tick(struct steps *s);
/* From now on, kbuild's "  CC ..." lines are counted into the progress
 * line: "compiling: N/expected objects, about M min left" (expected 0:
 * unknown; last_secs, the last build's duration, > 0 for an estimate
 * before the rate says more).  on false stops counting. */
void steps_count_objects(struct steps *s, bool on, int expected,
			 double last_secs);
/* What the running step is doing now, for the progress line. */
void steps_detail(struct steps *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* A line for the user ("ccvm: ..."), also logged. */
void steps_note(struct steps *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
