#pragma once
/*
 * `ccvm --ccvm-egress`: finding a session's egress audit log (audit.c
 * writes it; docs/egress-report.md) and summarising it per destination, at
 * once or as it grows.  The summary is a pure function over lines read
 * from a FILE*; the log is hostile input (names come from the guest):
 * lines are bounded, malformed ones are counted and skipped, every string
 * is escaped before printing.  The suggestion: audit_suggest.h.
 */
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "err.h"

/* Distinct blocked reasons kept per destination (more are counted). */
#define AUDIT_REASONS_MAX 8

/*
 * The log SESSION names (NULL: the newest, by file name, which starts with
 * the session's start time): a path when it contains '/' or ends in
 * ".jsonl", else a session id or a unique prefix of one in dir (audit.h's
 * audit_dir).  Only files named like a session count
 * (audit_is_session_file).  *path
 * malloc'ed.  -ENOENT when dir has no log or none matches, -EEXIST when
 * the prefix is ambiguous (err says which).
 */
int audit_report_find(const char *dir, const char *session, char **path,
		      struct ccvm_err *err);

struct audit_summary;

struct audit_summary *audit_summary_new(void);
void audit_summary_free(struct audit_summary *s);
/* Takes one line (without its newline). */
void audit_summary_feed(struct audit_summary *s, const char *line, size_t n);
/* The session line, the destinations table, blocked lookups, totals,
 * truncation and skipped lines.  0 or -EIO. */
int audit_summary_print(const struct audit_summary *s, FILE *out);
/* The session header only (id, project, mode, start, duration). */
void audit_summary_print_head(const struct audit_summary *s, FILE *out);
/* One readable line for one log line (follow mode): "" when the line is
 * malformed.  buf of n bytes. */
const char *audit_event_line(const char *line, size_t len, char *buf, size_t n);

/* Reads every line of in into s.  0 or -EIO. */
int audit_summary_read(struct audit_summary *s, FILE *in);

/*
 * --follow: prints each complete line of in as it appears (json: the line
 * unchanged, else audit_event_line), polling every 200 ms after end of
 * file, until *stop is set (SIGINT); then, without json, the summary of
 * everything read.  0 or -EIO.
 */
int audit_report_follow(FILE *in, FILE *out, bool json,
			volatile sig_atomic_t *stop, struct ccvm_err *err);
