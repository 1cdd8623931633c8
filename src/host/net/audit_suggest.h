#pragma once
/*
 * `ccvm --ccvm-egress-suggest`: the egressAllowlist and egressPorts that
 * would have allowed what one or more sessions' allowed connections did,
 * from their egress logs (rules in docs/egress-report.md).  Pure over the
 * log's lines, but for the is_local callback.
 */
#include <stdio.h>

#include "err.h"
#include "net/egress_policy.h"

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
