#pragma once
/*
 * The egress audit log's lines (audit.c writes them, docs/egress.md and
 * docs/egress-report.md describe them) as the readers see them: a bounded
 * line reader and one parser of an event, shared by the summary
 * (audit_report.h) and the suggestion (audit_suggest.h).  The log holds
 * names the guest chose: nothing here trusts a length or a type.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* A line longer than this is skipped as malformed. */
#define AUDIT_LINE_MAX (1024 * 1024)

struct audit_lines {
	char *buf; /* NUL-terminated */
	size_t len, cap;
	bool overlong; /* the line ran past AUDIT_LINE_MAX (cut) */
};

/* 1: a complete line in lb (without its newline); 0: end of file for now
 * (a partial line stays in lb, for follow mode); -EIO. */
int audit_lines_next(struct audit_lines *lb, FILE *in);
/* Forgets the line (after the caller used it). */
void audit_lines_reset(struct audit_lines *lb);
void audit_lines_free(struct audit_lines *lb);
/* Every line of in to feed(arg, line, len), a last one without its
 * newline too; a line past AUDIT_LINE_MAX is not fed but counted in
 * *overlong.  0 at end of file, or -EIO. */
int audit_lines_each(FILE *in, void (*feed)(void *, const char *, size_t),
		     void *arg, unsigned long *overlong);

enum audit_ev_kind {
	AUDIT_EV_SESSION,
	AUDIT_EV_LOOKUP,
	AUDIT_EV_CONNECT,
	AUDIT_EV_TRUNC,
	AUDIT_EV_OTHER, /* a kind this reader does not know */
};

/* One event; the strings and arrays point into the parsed object. */
struct audit_ev {
	enum audit_ev_kind kind;
	const char *t;	/* "2026-12-07T00:25:01.123Z" */
	long long t_ms; /* t as ms since the epoch (a connect's start) */
	const char *session, *project, *mode, *reason;
	json_t *allowlist, *ports, *answers;
	const char *name, *qtype; /* lookup; a numeric qtype as "TYPE65" */
	char qtype_buf[32];
	const char *dest, *sni, *host, *addr; /* connect; NULL when null */
	bool allowed;			      /* verdict */
	long long port, up, down, ms;	      /* connect; absent: 0 */
};

/* The line as JSON (duplicate keys rejected), or NULL. */
json_t *audit_ev_load(const char *line, size_t n);
/* Fills e from root.  false: not a well-formed event (no "t" in the
 * format above, no "event", a field of the wrong type, a bad verdict or
 * port). */
bool audit_ev_parse(json_t *root, struct audit_ev *e);

/* A Host header's name without its port or IPv6 brackets (into buf), or
 * h itself when there is none to strip. */
const char *audit_host_name(const char *h, char *buf, size_t n);
