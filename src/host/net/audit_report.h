#pragma once
/*
 * Readers of the per-session egress audit log (audit.c writes it; format in
 * docs/egress.md): `ccvm --ccvm-egress` (a summary per destination) and
 * `ccvm --ccvm-egress-suggest` (an egressAllowlist that would have allowed
 * what the sessions' allowed connections did).  The summary and the
 * suggestion are pure functions over lines read from a FILE*; the log is
 * hostile input (names come from the guest): lines are bounded, malformed
 * ones are counted and skipped, every string is escaped before printing.
 */
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "err.h"
#include "net/egress_policy.h"

/* A line longer than this is skipped as malformed. */
#define AUDIT_LINE_MAX (1024 * 1024)
/* Distinct blocked reasons kept per destination (more are counted). */
#define AUDIT_REASONS_MAX 8

/* The log directory: $XDG_STATE_HOME/ccvm when that is absolute, else
 * $HOME/.local/state/ccvm.  Malloc'ed; NULL when neither gives one. */
char *audit_report_dir(const char *xdg_state_home, const char *home);

/*
 * The log SESSION names (NULL: the newest, by file name, which starts with
 * the session's start time): a path when it contains '/' or ends in
 * ".jsonl", else a session id or a unique prefix of one in dir.  *path
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

struct audit_suggest;

/* is_local: whether the kernel delivers an address to this host (route.h's
 * route_is_local); NULL: only egress_classify's classes count. */
struct audit_suggest *audit_suggest_new(egress_local_fn is_local);
void audit_suggest_free(struct audit_suggest *s);
/* One session's log.  0 or -EIO. */
int audit_suggest_read(struct audit_suggest *s, FILE *in);
/* A line of the current session (audit_suggest_read calls it);
 * audit_suggest_next_session starts a new one. */
void audit_suggest_feed(struct audit_suggest *s, const char *line, size_t n);
void audit_suggest_next_session(struct audit_suggest *s);
/*
 * The config fragment {"egressAllowlist": [...], "egressPorts": [...]}
 * (pretty, sorted) on out, and one line per kind of thing left out on
 * notes (each prefixed by prefix).  -ENODATA (nothing written to out)
 * when no allowed connection gave an entry: an empty allowlist would mean
 * open mode.
 */
int audit_suggest_write(const struct audit_suggest *s, FILE *out, FILE *notes,
			const char *prefix, struct ccvm_err *err);
