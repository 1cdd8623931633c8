/* The egress log's lines and events: see audit_event.h. */
#include "net/audit_event.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* 1: a complete line in lb (NUL-terminated); 0: end of file for now (a
 * partial line stays in lb); -EIO.  Lines past AUDIT_LINE_MAX are cut
 * and flagged overlong. */
int audit_lines_each(FILE *in, void (*feed)(void *, const char *, size_t),
		     void *arg, unsigned long *overlong)
{
	struct audit_lines lb = {0};
	int r;
	while ((r = audit_lines_next(&lb, in)) > 0 ||
	       (r == 0 && (lb.len > 0 || lb.overlong))) {
		if (lb.overlong)
			(*overlong)++;
		else
			feed(arg, lb.buf ? lb.buf : "", lb.len);
		audit_lines_reset(&lb);
		if (r == 0)
			break;
	}
	audit_lines_free(&lb);
	return r < 0 ? r : 0;
}

int audit_lines_next(struct audit_lines *lb, FILE *in)
{
	for (;;) {
		int c = getc(in);
		if (c == EOF)
			return ferror(in) ? -EIO : 0;
		if (c == '\n')
			return 1;
		if (lb->len >= AUDIT_LINE_MAX) {
			lb->overlong = true;
			continue;
		}
		if (lb->len + 2 > lb->cap) {
			size_t cap = lb->cap ? lb->cap * 2 : 4096;
			if (cap > AUDIT_LINE_MAX + 1)
				cap = AUDIT_LINE_MAX + 1;
			char *b = realloc(lb->buf, cap);
			if (!b)
				return -EIO;
			lb->buf = b;
			lb->cap = cap;
		}
		lb->buf[lb->len++] = (char)c;
		lb->buf[lb->len] = '\0';
	}
}

void audit_lines_reset(struct audit_lines *lb)
{
	lb->len = 0;
	lb->overlong = false;
	if (lb->buf)
		lb->buf[0] = '\0';
}

void audit_lines_free(struct audit_lines *lb)
{
	free(lb->buf);
	lb->buf = NULL;
	lb->len = lb->cap = 0;
}

/* ---- events ---- */

/* Absent or null: *out NULL (when nullable). */
static bool get_str(json_t *o, const char *k, bool nullable, const char **out)
{
	json_t *v = json_object_get(o, k);
	*out = NULL;
	if (!v || json_is_null(v))
		return nullable;
	if (!json_is_string(v))
		return false;
	*out = json_string_value(v);
	return true;
}

/* A string ("AAAA"), a number (65: "TYPE65"), null or absent (NULL). */
static bool get_qtype(json_t *o, struct audit_ev *e)
{
	json_t *v = json_object_get(o, "qtype");
	if (json_is_integer(v)) {
		snprintf(e->qtype_buf, sizeof(e->qtype_buf),
			 "TYPE%" JSON_INTEGER_FORMAT, json_integer_value(v));
		e->qtype = e->qtype_buf;
		return true;
	}
	return get_str(o, "qtype", true, &e->qtype);
}

/* Absent or null: *out 0. */
static bool get_count(json_t *o, const char *k, long long *out)
{
	json_t *v = json_object_get(o, k);
	*out = 0;
	if (!v || json_is_null(v))
		return true;
	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*out = json_integer_value(v);
	return true;
}

/* "2026-12-07T00:25:01.123Z" as ms since the epoch, or -1. */
static long long parse_time(const char *s)
{
	struct tm tm = {0};
	int used = 0;
	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year,
			 &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
			 &tm.tm_sec, &used) != 6)
		return -1;
	const char *p = s + used;
	long long ms = 0;
	if (*p == '.') {
		int digits = 0;
		for (p++; *p >= '0' && *p <= '9'; p++, digits++)
			if (digits < 3)
				ms = ms * 10 + (*p - '0');
		for (; digits < 3; digits++)
			ms *= 10;
	}
	if (strcmp(p, "Z") != 0)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	time_t t = timegm(&tm);
	if (t == (time_t)-1)
		return -1;
	return (long long)t * 1000 + ms;
}

/* Fills e from root (strings point into root).  false: malformed. */
bool audit_ev_parse(json_t *root, struct audit_ev *e)
{
	memset(e, 0, sizeof(*e));
	const char *event;
	if (!json_is_object(root) || !get_str(root, "event", false, &event) ||
	    !get_str(root, "t", false, &e->t))
		return false;
	e->t_ms = parse_time(e->t);
	if (e->t_ms < 0)
		return false;
	const char *verdict = NULL;
	if (strcmp(event, "session") == 0) {
		e->kind = AUDIT_EV_SESSION;
		e->allowlist = json_object_get(root, "allowlist");
		e->ports = json_object_get(root, "ports");
		return get_str(root, "session", false, &e->session) &&
		       get_str(root, "project", true, &e->project) &&
		       get_str(root, "mode", true, &e->mode) &&
		       (!e->allowlist || json_is_array(e->allowlist)) &&
		       (!e->ports || json_is_array(e->ports));
	}
	if (strcmp(event, "truncated") == 0) {
		e->kind = AUDIT_EV_TRUNC;
		return get_str(root, "reason", true, &e->reason);
	}
	if (strcmp(event, "lookup") == 0) {
		e->kind = AUDIT_EV_LOOKUP;
		if (!get_str(root, "name", false, &e->name) ||
		    !get_qtype(root, e))
			return false;
	} else if (strcmp(event, "connect") == 0) {
		e->kind = AUDIT_EV_CONNECT;
		json_t *port = json_object_get(root, "port");
		if (!get_str(root, "dest", true, &e->dest) ||
		    !get_str(root, "sni", true, &e->sni) ||
		    !get_str(root, "host", true, &e->host) ||
		    !get_str(root, "addr", true, &e->addr) ||
		    !json_is_integer(port) || !get_count(root, "up", &e->up) ||
		    !get_count(root, "down", &e->down) ||
		    !get_count(root, "ms", &e->ms))
			return false;
		e->port = json_integer_value(port);
		if (e->port < 0 || e->port > 65535)
			return false;
	} else {
		e->kind = AUDIT_EV_OTHER;
		return true;
	}
	if (!get_str(root, "verdict", false, &verdict) ||
	    !get_str(root, "reason", true, &e->reason))
		return false;
	if (strcmp(verdict, "allowed") == 0)
		e->allowed = true;
	else if (strcmp(verdict, "blocked") != 0)
		return false;
	return true;
}

json_t *audit_ev_load(const char *line, size_t n)
{
	json_error_t jerr;
	return json_loadb(line, n, JSON_REJECT_DUPLICATES, &jerr);
}

/* A Host header's name without its port or brackets, into buf. */
const char *audit_host_name(const char *h, char *buf, size_t n)
{
	if (h[0] == '[') {
		const char *end = strchr(h, ']');
		size_t l = end ? (size_t)(end - h - 1) : 0;
		if (!end || l >= n)
			return h;
		memcpy(buf, h + 1, l);
		buf[l] = '\0';
		return buf;
	}
	const char *colon = strchr(h, ':');
	if (!colon || strchr(colon + 1, ':') || colon[1] == '\0' ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) ||
	    (size_t)(colon - h) >= n)
		return h;
	memcpy(buf, h, (size_t)(colon - h));
	buf[colon - h] = '\0';
	return buf;
}
