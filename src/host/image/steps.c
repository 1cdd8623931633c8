/* The image build's step driver (steps.h). */
#define _GNU_SOURCE
#include "image/steps.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "image/image_build.h"
#include "term/say.h"
#include "util.h"

#define LOG_TAIL_LINES 15

void steps_init(struct steps *s, int logfd, const char *log,
		const char *keep_dir)
{
	*s = (struct steps){
	    .logfd = logfd,
	    .tty = isatty(STDERR_FILENO),
	    .t0 = util_now_ms(),
	    .log_bol = true,
	};
	snprintf(s->log, sizeof(s->log), "%s", log);
	snprintf(s->keep_dir, sizeof(s->keep_dir), "%s", keep_dir);
}

static void progress_draw(struct steps *s, bool final)
{
	long long now = util_now_ms();
	long long el = (now - s->step_t0) / 1000;
	if (!s->tty) {
		if (final)
			say("[%d/%d] %s: done in %.1f s", s->step, s->n_steps,
			    s->step_name, (double)(now - s->step_t0) / 1000.0);
		else if (now - s->last_plain_ms >= 30000) {
			s->last_plain_ms = now;
			say("[%d/%d] %s (%lld:%02lld)%s%s", s->step, s->n_steps,
			    s->step_name, el / 60, el % 60,
			    s->detail[0] ? " " : "", s->detail);
		}
		return;
	}
	/* Output can arrive in many small pieces: redraw 4 times a second
	 * at most. */
	if (!final && now - s->last_draw_ms < 250)
		return;
	s->last_draw_ms = now;
	struct winsize ws;
	int cols = 80;
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
		cols = ws.ws_col;
	char line[512];
	int n;
	if (final)
		n = snprintf(line, sizeof(line),
			     "ccvm: [%d/%d] %s: done in "
			     "%.1f s",
			     s->step, s->n_steps, s->step_name,
			     (double)(now - s->step_t0) / 1000.0);
	else
		n = snprintf(line, sizeof(line),
			     "ccvm: [%d/%d] %s %lld:%02lld %s", s->step,
			     s->n_steps, s->step_name, el / 60, el % 60,
			     s->detail);
	if (n < 0)
		return;
	if (n >= cols)
		line[cols - 1] = '\0';
	/* The clock's line is redrawn in place ("\r"), so it is written
	 * here rather than through say(); say() clears it first. */
	fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
	fflush(stderr);
	say_set_status(!final);
}

void steps_tick(struct steps *s)
{
	if (!s->tty || !image_interrupted)
		progress_draw(s, false);
}

static void step_begin(struct steps *s, const char *name)
{
	s->step++;
	s->step_name = name;
	s->step_t0 = util_now_ms();
	s->detail[0] = '\0';
	s->last_plain_ms = s->step_t0;
	s->last_draw_ms = 0;
	s->step_log_start = lseek(s->logfd, 0, SEEK_END);
	dprintf(s->logfd, "=== [%d/%d] %s\n", s->step, s->n_steps, name);
	if (s->tty)
		progress_draw(s, false);
	else
		say("[%d/%d] %s", s->step, s->n_steps, name);
}

/* Prints the last lines the failing step wrote to the log. */
static void print_log_tail(struct steps *s)
{
	if (s->tty) {
		fprintf(stderr, "\n");
		say_set_status(false);
	}
	off_t end = lseek(s->logfd, 0, SEEK_END);
	off_t start = s->step_log_start;
	if (end - start > 256 * 1024)
		start = end - 256 * 1024;
	size_t len = (size_t)(end - start);
	autofree char *buf = malloc(len + 1);
	if (!buf || pread(s->logfd, buf, len, start) != (ssize_t)len)
		return;
	buf[len] = '\0';
	while (len && buf[len - 1] == '\n')
		buf[--len] = '\0';
	size_t lines = 0;
	char *p = buf + len;
	while (p > buf && lines < LOG_TAIL_LINES) {
		p--;
		if (*p == '\n')
			lines++;
	}
	if (*p == '\n')
		p++;
	say("last lines of the log of step '%s':", s->step_name);
	for (char *q = p; *q;) {
		char *nl = strchr(q, '\n');
		int n = nl ? (int)(nl - q) : (int)strlen(q);
		fprintf(stderr, "  | %.*s\n", n, q);
		q += n + (nl ? 1 : 0);
	}
}

static int step_fail(struct steps *s, struct ccvm_err *err, int r)
{
	if (image_interrupted) {
		/* The user asked for it: no log tail, no failed-build.log
		 * (the build directory and its log go). */
		if (s->tty) {
			fprintf(stderr, "\r\033[K");
			say_set_status(false);
		}
		return ccvm_err_set(err, EINTR,
				    "image build interrupted; nothing kept");
	}
	print_log_tail(s);
	/* The build dir goes away: keep its log next to the images. */
	char saved[PATH_MAX];
	if (snprintf(saved, sizeof(saved), "%.4000s/failed-build.log",
		     s->keep_dir) < (int)sizeof(saved) &&
	    rename(s->log, saved) == 0)
		snprintf(s->log, sizeof(s->log), "%s", saved);
	char msg[CCVM_ERR_MAX];
	snprintf(msg, sizeof(msg), "%s", err->msg);
	return ccvm_err_set(err, r < 0 ? -r : EIO,
			    "image build failed at step '%s': %s (full log: "
			    "%s)",
			    s->step_name, msg, s->log);
}

int steps_run(struct steps *s, const struct step *steps, size_t n, void *ctx,
	      struct ccvm_err *err)
{
	s->n_steps = (int)n;
	s->step = 0;
	for (size_t i = 0; i < n; i++) {
		step_begin(s, steps[i].name);
		int r = steps[i].fn(ctx, err);
		if (r == 0 && image_interrupted && i + 1 < n)
			r = ccvm_err_set(err, EINTR, "interrupted by signal %d",
					 (int)image_interrupted);
		if (r < 0)
			return step_fail(s, err, r);
		progress_draw(s, true);
	}
	return 0;
}

/* Copies child output to the log, each line stamped with the seconds
 * since the build started. */
static void log_output(struct steps *s, const char *buf, size_t n)
{
	const char *p = buf, *end = buf + n;
	while (p < end) {
		if (s->log_bol)
			dprintf(s->logfd, "[%6.1f] ",
				(double)(util_now_ms() - s->t0) / 1000.0);
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		util_write_all(s->logfd, p, len);
		s->log_bol = nl != NULL;
		p += len;
	}
}

void steps_count_objects(struct steps *s, bool on, int expected,
			 double last_secs)
{
	s->count_objects = on;
	s->objs = 0;
	s->objs_expected = expected > 0 ? expected : 0;
	s->objs_last_secs = last_secs > 0 ? last_secs : 0;
	s->objs_t0 = util_now_ms();
}

/* The progress line's detail from the objects compiled so far. */
static void objects_detail(struct steps *s)
{
	double el = (double)(util_now_ms() - s->objs_t0) / 1000.0;
	double left = -1;
	if (s->objs_expected && s->objs >= s->objs_expected / 20 && s->objs)
		left = el * (s->objs_expected - s->objs) / s->objs;
	else if (s->objs_last_secs > 0)
		left = s->objs_last_secs - el;
	char eta[64] = "";
	if (left >= 60)
		snprintf(eta, sizeof(eta), ", about %.0f min left",
			 left / 60.0 + 0.5);
	else if (left >= 0)
		snprintf(eta, sizeof(eta), ", under a minute left");
	if (s->objs_expected)
		snprintf(s->detail, sizeof(s->detail),
			 "compiling: %d/%d objects%s", s->objs,
			 s->objs > s->objs_expected ? s->objs
						    : s->objs_expected,
			 eta);
	else
		snprintf(s->detail, sizeof(s->detail),
			 "compiling: %d object%s%s", s->objs,
			 s->objs == 1 ? "" : "s", eta);
}

/* Scans fresh output for a status line worth showing in the progress
 * line: mmdebstrap's "I: ..." and our hooks' "ccvm-step: ...", and while
 * counting, kbuild's "  CC" lines.  bol: buf starts a line. */
static void note_detail(struct steps *s, const char *buf, size_t n, bool bol)
{
	const char *p = buf, *end = buf + n;
	bool counted = false;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (s->count_objects && bol && len > 5 &&
		    !memcmp(p, "  CC ", 5)) {
			s->objs++;
			counted = true;
		} else if (len > 3 && !memcmp(p, "I: ", 3))
			snprintf(s->detail, sizeof(s->detail), "%.*s",
				 (int)(len - 3), p + 3);
		else if (len > 11 && !memcmp(p, "ccvm-step: ", 11))
			snprintf(s->detail, sizeof(s->detail), "%.*s",
				 (int)(len - 11), p + 11);
		p = nl ? nl + 1 : end;
		bol = true;
	}
	if (counted)
		objects_detail(s);
}

void steps_output(struct steps *s, const char *buf, size_t n)
{
	bool bol = s->log_bol;
	log_output(s, buf, n);
	note_detail(s, buf, n, bol);
}

void steps_detail(struct steps *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->detail, sizeof(s->detail), fmt, ap);
	va_end(ap);
}

void steps_note(struct steps *s, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	say("%s", msg); /* clears the progress line first */
	dprintf(s->logfd, "ccvm: %s\n", msg);
	s->last_draw_ms = 0;
}
