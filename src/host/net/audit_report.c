/* Readers of the egress audit log: see audit_report.h. */
#include "net/audit_report.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "net/egress_addr.h"
#include "net/egress_parse.h"
#include "util.h"

#define LOG_SUFFIX    ".jsonl"
#define LIST_SHOWN    5	 /* items named in a note line */
#define BLOCKED_SHOWN 50 /* blocked lookups listed by the summary */
#define POLL_NS	      200000000L

char *audit_report_dir(const char *xdg_state_home, const char *home)
{
	if (xdg_state_home && xdg_state_home[0] == '/')
		return util_asprintf("%s/ccvm", xdg_state_home);
	if (home && home[0] == '/')
		return util_asprintf("%s/.local/state/ccvm", home);
	return NULL;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

int audit_report_find(const char *dir, const char *session, char **path,
		      struct ccvm_err *err)
{
	char q[256];
	if (session &&
	    (strchr(session, '/') || ends_with(session, LOG_SUFFIX))) {
		char *p = strdup(session);
		if (!p)
			return ccvm_err_set(err, ENOMEM, "out of memory");
		*path = p;
		return 0;
	}
	DIR *d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return ccvm_err_set(err, ENOENT,
					    "no egress log in %s (no session "
					    "has run yet)",
					    dir);
		return ccvm_err_sys(err, errno, "%s", dir);
	}
	autofree char *best = NULL;
	autofree char *second = NULL;
	size_t nlogs = 0, nmatch = 0;
	size_t plen = session ? strlen(session) : 0;
	struct dirent *de;
	bool oom = false;
	while (!oom && (de = readdir(d))) {
		const char *n = de->d_name;
		if (n[0] == '.' || !ends_with(n, LOG_SUFFIX) ||
		    strlen(n) == strlen(LOG_SUFFIX))
			continue;
		nlogs++;
		if (!session) {
			if (best && strcmp(n, best) <= 0)
				continue;
			free(best);
			best = strdup(n);
			nmatch = 1;
			oom = !best;
			continue;
		}
		if (strncmp(n, session, plen) != 0)
			continue;
		if (strlen(n) == plen + strlen(LOG_SUFFIX)) {
			/* The whole id wins over prefixes. */
			free(best);
			best = strdup(n);
			nmatch = 1;
			oom = !best;
			break;
		}
		if (++nmatch == 1) {
			best = strdup(n);
			oom = !best;
		} else if (nmatch == 2) {
			second = strdup(n);
			oom = !second;
		}
	}
	if (oom) {
		closedir(d);
		return ccvm_err_set(err, ENOMEM, "out of memory");
	}
	closedir(d);
	if (nlogs == 0)
		return ccvm_err_set(err, ENOENT,
				    "no egress log in %s (no session has run "
				    "yet)",
				    dir);
	if (nmatch == 0)
		return ccvm_err_set(err, ENOENT,
				    "no egress log in %s matches %s", dir,
				    util_escape(q, sizeof(q), session, true));
	if (nmatch > 1)
		return ccvm_err_set(err, EEXIST,
				    "%s matches %zu logs in %s (%s, %s, ...): "
				    "give more of the id",
				    util_escape(q, sizeof(q), session, true),
				    nmatch, dir, best, second);
	char *p = util_path_join(dir, best);
	if (!p)
		return ccvm_err_set(err, ENOMEM, "out of memory");
	*path = p;
	return 0;
}

/* ---- lines ---- */

struct linebuf {
	char *buf;
	size_t len, cap;
	bool overlong;
};

/* 1: a complete line in lb (NUL-terminated); 0: end of file for now (a
 * partial line stays in lb); -EIO.  Lines past AUDIT_LINE_MAX are cut
 * and flagged overlong. */
static int lb_next(struct linebuf *lb, FILE *in)
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

static void lb_reset(struct linebuf *lb)
{
	lb->len = 0;
	lb->overlong = false;
	if (lb->buf)
		lb->buf[0] = '\0';
}

/* ---- events ---- */

enum ev_kind { EV_SESSION, EV_LOOKUP, EV_CONNECT, EV_TRUNC, EV_OTHER };

struct ev {
	enum ev_kind kind;
	const char *t;
	long long t_ms; /* -1: t unreadable */
	const char *session, *project, *mode, *reason;
	json_t *allowlist, *ports, *answers;
	const char *name, *qtype;
	const char *dest, *sni, *host, *addr;
	bool allowed;
	long long port, up, down, ms;
};

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
static bool ev_parse(json_t *root, struct ev *e)
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
		e->kind = EV_SESSION;
		e->allowlist = json_object_get(root, "allowlist");
		e->ports = json_object_get(root, "ports");
		return get_str(root, "session", false, &e->session) &&
		       get_str(root, "project", true, &e->project) &&
		       get_str(root, "mode", true, &e->mode) &&
		       (!e->allowlist || json_is_array(e->allowlist)) &&
		       (!e->ports || json_is_array(e->ports));
	}
	if (strcmp(event, "truncated") == 0) {
		e->kind = EV_TRUNC;
		return get_str(root, "reason", true, &e->reason);
	}
	if (strcmp(event, "lookup") == 0) {
		e->kind = EV_LOOKUP;
		if (!get_str(root, "name", false, &e->name) ||
		    !get_str(root, "qtype", true, &e->qtype))
			return false;
	} else if (strcmp(event, "connect") == 0) {
		e->kind = EV_CONNECT;
		json_t *port = json_object_get(root, "port");
		if (!get_str(root, "dest", true, &e->dest) ||
		    !get_str(root, "sni", true, &e->sni) ||
		    !get_str(root, "host", true, &e->host) ||
		    !get_str(root, "addr", false, &e->addr) ||
		    !json_is_integer(port) || !get_count(root, "up", &e->up) ||
		    !get_count(root, "down", &e->down) ||
		    !get_count(root, "ms", &e->ms))
			return false;
		e->port = json_integer_value(port);
		if (e->port < 0 || e->port > 65535)
			return false;
	} else {
		e->kind = EV_OTHER;
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

static json_t *load_line(const char *line, size_t n)
{
	json_error_t jerr;
	return json_loadb(line, n, JSON_REJECT_DUPLICATES, &jerr);
}

/* ---- formatting ---- */

static const char *human_bytes(unsigned long long b, char *buf, size_t n)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
	if (b < 1024) {
		snprintf(buf, n, "%llu B", b);
		return buf;
	}
	double v = (double)b / 1024.0;
	size_t u = 0;
	while (v >= 1024.0 && u + 1 < ARRAY_LEN(units)) {
		v /= 1024.0;
		u++;
	}
	snprintf(buf, n, "%.1f %s", v, units[u]);
	return buf;
}

static const char *human_ms(long long ms, char *buf, size_t n)
{
	if (ms < 0)
		ms = 0;
	long long s = ms / 1000;
	if (s < 60)
		snprintf(buf, n, "%lld.%llds", s, (ms % 1000) / 100);
	else if (s < 3600)
		snprintf(buf, n, "%lldm%02llds", s / 60, s % 60);
	else
		snprintf(buf, n, "%lldh%02lldm%02llds", s / 3600, s / 60 % 60,
			 s % 60);
	return buf;
}

/* "1.2.3.4:443" or "[2001:db8::1]:443", escaped. */
static const char *addr_port(const char *addr, long long port, char *buf,
			     size_t n)
{
	char a[128];
	util_escape(a, sizeof(a), addr ? addr : "?", false);
	snprintf(buf, n, strchr(a, ':') ? "[%s]:%lld" : "%s:%lld", a, port);
	return buf;
}

/* A Host header's name without its port or brackets, into buf. */
static const char *host_name(const char *h, char *buf, size_t n)
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

/* What a connection is listed under: its TLS name, else its HTTP Host
 * (without the port), else the name its address was resolved for, else
 * the address.  buf for the Host's copy. */
static const char *dest_key(const struct ev *e, char *buf, size_t n)
{
	if (e->sni)
		return e->sni;
	if (e->host)
		return host_name(e->host, buf, n);
	return e->dest ? e->dest : e->addr;
}

/* The time of day in t ("00:25:01"), or t escaped. */
static const char *clock_of(const char *t, char *buf, size_t n)
{
	const char *c = t ? strchr(t, 'T') : NULL;
	if (c && strlen(c) >= 9)
		snprintf(buf, n, "%.8s", c + 1);
	else
		util_escape(buf, n, t ? t : "?", false);
	return buf;
}

/* "a, b, c" of a JSON array's strings and numbers, escaped, in buf. */
static const char *join_array(json_t *a, char *buf, size_t n)
{
	size_t used = 0;
	size_t i;
	json_t *v;
	buf[0] = '\0';
	json_array_foreach(a, i, v)
	{
		char item[300];
		if (json_is_string(v))
			util_escape(item, sizeof(item), json_string_value(v),
				    false);
		else if (json_is_integer(v))
			snprintf(item, sizeof(item), "%" JSON_INTEGER_FORMAT,
				 json_integer_value(v));
		else
			continue;
		int w = snprintf(buf + used, n - used, "%s%s", used ? ", " : "",
				 item);
		if (w < 0 || (size_t)w >= n - used) {
			if (n > 4)
				memcpy(buf + n - 4, "...", 4);
			break;
		}
		used += (size_t)w;
	}
	return buf;
}

const char *audit_event_line(const char *line, size_t len, char *buf, size_t n)
{
	json_t *root = load_line(line, len);
	struct ev e;
	buf[0] = '\0';
	if (!root || !ev_parse(root, &e)) {
		json_decref(root);
		return buf;
	}
	char clk[32], a[160], b[300], r[400], u[32], d[32], ms[32];
	char hn[DNS_NAME_MAX + 2];
	clock_of(e.t, clk, sizeof(clk));
	util_escape(r, sizeof(r), e.reason ? e.reason : "", false);
	switch (e.kind) {
	case EV_SESSION:
		snprintf(buf, n, "%s session %s", clk,
			 util_escape(b, sizeof(b), e.session, false));
		break;
	case EV_TRUNC:
		snprintf(buf, n, "%s log truncated: %s", clk, r);
		break;
	case EV_LOOKUP:
		snprintf(
		    buf, n, "%s lookup %s %s %s%s%s", clk,
		    util_escape(b, sizeof(b), e.name, false),
		    util_escape(a, sizeof(a), e.qtype ? e.qtype : "?", false),
		    e.allowed ? "allowed" : "blocked", r[0] ? ": " : "", r);
		break;
	case EV_CONNECT:
		if (e.allowed)
			snprintf(
			    buf, n,
			    "%s connect %s %s allowed, %s up, %s down, %s", clk,
			    util_escape(b, sizeof(b),
					dest_key(&e, hn, sizeof(hn)), false),
			    addr_port(e.addr, e.port, a, sizeof(a)),
			    human_bytes((unsigned long long)e.up, u, sizeof(u)),
			    human_bytes((unsigned long long)e.down, d,
					sizeof(d)),
			    human_ms(e.ms, ms, sizeof(ms)));
		else
			snprintf(buf, n, "%s connect %s %s blocked%s%s", clk,
				 util_escape(b, sizeof(b),
					     dest_key(&e, hn, sizeof(hn)),
					     false),
				 addr_port(e.addr, e.port, a, sizeof(a)),
				 r[0] ? ": " : "", r);
		break;
	case EV_OTHER:
		break;
	}
	json_decref(root);
	return buf;
}

/* ---- the summary ---- */

struct dest {
	char *name;
	unsigned long conns, blocked;
	unsigned long long up, down;
	char *reasons[AUDIT_REASONS_MAX];
	size_t nreasons;
	unsigned long more_reasons;
};

struct blocked_lookup {
	char *name, *reason;
	unsigned long count;
	char qtypes[48];
};

struct audit_summary {
	json_t *session; /* the first session event */
	char *start;
	long long first_ms, last_ms;
	bool have_time;
	struct dest *dests;
	size_t ndests, capdests;
	json_t *dest_index; /* name -> index */
	struct blocked_lookup *bl;
	size_t nbl, capbl;
	json_t *bl_index;
	unsigned long lookups, lookups_blocked, conns, conns_blocked;
	unsigned long long up, down;
	json_t *truncated; /* reasons */
	unsigned long malformed, unknown, sessions;
	bool oom;
};

struct audit_summary *audit_summary_new(void)
{
	struct audit_summary *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->dest_index = json_object();
	s->bl_index = json_object();
	s->truncated = json_array();
	if (!s->dest_index || !s->bl_index || !s->truncated) {
		audit_summary_free(s);
		return NULL;
	}
	return s;
}

void audit_summary_free(struct audit_summary *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ndests; i++) {
		free(s->dests[i].name);
		for (size_t j = 0; j < s->dests[i].nreasons; j++)
			free(s->dests[i].reasons[j]);
	}
	free(s->dests);
	for (size_t i = 0; i < s->nbl; i++) {
		free(s->bl[i].name);
		free(s->bl[i].reason);
	}
	free(s->bl);
	json_decref(s->session);
	json_decref(s->dest_index);
	json_decref(s->bl_index);
	json_decref(s->truncated);
	free(s->start);
	free(s);
}

/* The index of name in index, adding a zeroed element of size sz to
 * *arr when new; -1 when out of memory. */
static long find_or_add(json_t *index, const char *name, void **arr, size_t *n,
			size_t *cap, size_t sz)
{
	json_t *v = json_object_get(index, name);
	if (v)
		return (long)json_integer_value(v);
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		void *a = realloc(*arr, c * sz);
		if (!a)
			return -1;
		*arr = a;
		*cap = c;
	}
	char **slot = (char **)((char *)*arr + *n * sz);
	memset(slot, 0, sz);
	*slot = strdup(name); /* the name is each struct's first member */
	if (!*slot || json_object_set_new(index, name,
					  json_integer((json_int_t)*n)) < 0) {
		free(*slot);
		return -1;
	}
	return (long)(*n)++;
}

static void note_reason(struct dest *d, const char *reason)
{
	if (!reason)
		reason = "";
	for (size_t i = 0; i < d->nreasons; i++)
		if (strcmp(d->reasons[i], reason) == 0)
			return;
	if (d->nreasons < AUDIT_REASONS_MAX) {
		char *r = strdup(reason);
		if (r)
			d->reasons[d->nreasons++] = r;
	} else {
		d->more_reasons++;
	}
}

static void summary_connect(struct audit_summary *s, const struct ev *e)
{
	char hn[DNS_NAME_MAX + 2];
	long i = find_or_add(s->dest_index, dest_key(e, hn, sizeof(hn)),
			     (void **)&s->dests, &s->ndests, &s->capdests,
			     sizeof(*s->dests));
	if (i < 0) {
		s->oom = true;
		return;
	}
	struct dest *d = &s->dests[i];
	if (e->allowed) {
		s->conns++;
		d->conns++;
		d->up += (unsigned long long)e->up;
		d->down += (unsigned long long)e->down;
		s->up += (unsigned long long)e->up;
		s->down += (unsigned long long)e->down;
	} else {
		s->conns_blocked++;
		d->blocked++;
		note_reason(d, e->reason);
	}
}

static void summary_lookup(struct audit_summary *s, const struct ev *e)
{
	s->lookups++;
	if (e->allowed)
		return;
	s->lookups_blocked++;
	long i = find_or_add(s->bl_index, e->name, (void **)&s->bl, &s->nbl,
			     &s->capbl, sizeof(*s->bl));
	if (i < 0) {
		s->oom = true;
		return;
	}
	struct blocked_lookup *b = &s->bl[i];
	b->count++;
	if (!b->reason && e->reason)
		b->reason = strdup(e->reason);
	char qt[32];
	util_escape(qt, sizeof(qt), e->qtype ? e->qtype : "?", false);
	/* Distinct types, comma-separated, while they fit. */
	size_t ql = strlen(qt), bl = strlen(b->qtypes);
	const char *p = b->qtypes;
	while ((p = strstr(p, qt))) {
		if ((p == b->qtypes || p[-1] == ' ') &&
		    (p[ql] == ',' || p[ql] == '\0'))
			return;
		p += ql;
	}
	if (bl + ql + 3 < sizeof(b->qtypes))
		snprintf(b->qtypes + bl, sizeof(b->qtypes) - bl, "%s%s",
			 bl ? ", " : "", qt);
}

void audit_summary_feed(struct audit_summary *s, const char *line, size_t n)
{
	json_t *root = load_line(line, n);
	struct ev e;
	if (!root || !ev_parse(root, &e)) {
		s->malformed++;
		json_decref(root);
		return;
	}
	if (!s->have_time) {
		s->first_ms = e.t_ms;
		s->start = strdup(e.t);
		s->have_time = true;
	}
	if (e.t_ms < s->first_ms)
		s->first_ms = e.t_ms;
	if (e.t_ms > s->last_ms)
		s->last_ms = e.t_ms;
	switch (e.kind) {
	case EV_SESSION:
		s->sessions++;
		if (!s->session)
			s->session = json_incref(root);
		break;
	case EV_LOOKUP:
		summary_lookup(s, &e);
		break;
	case EV_CONNECT:
		summary_connect(s, &e);
		break;
	case EV_TRUNC:
		if (json_array_size(s->truncated) < LIST_SHOWN)
			json_array_append_new(
			    s->truncated,
			    json_string(e.reason ? e.reason : "(no reason)"));
		break;
	case EV_OTHER:
		s->unknown++;
		break;
	}
	json_decref(root);
}

int audit_summary_read(struct audit_summary *s, FILE *in)
{
	struct linebuf lb = {0};
	int r;
	while ((r = lb_next(&lb, in)) > 0 ||
	       (r == 0 && (lb.len > 0 || lb.overlong))) {
		if (lb.overlong)
			s->malformed++;
		else
			audit_summary_feed(s, lb.buf ? lb.buf : "", lb.len);
		lb_reset(&lb);
		if (r == 0)
			break;
	}
	free(lb.buf);
	return r < 0 ? r : 0;
}

void audit_summary_print_head(const struct audit_summary *s, FILE *out)
{
	char a[300], b[1024], c[64], d[64];
	const char *id = NULL, *project = NULL, *mode = NULL;
	json_t *session = s->session;
	if (session) {
		id = json_string_value(json_object_get(session, "session"));
		project =
		    json_string_value(json_object_get(session, "project"));
		mode = json_string_value(json_object_get(session, "mode"));
	}
	fprintf(
	    out, "session %s, project %s, mode %s\n",
	    util_escape(a, sizeof(a), id ? id : "(unknown)", false),
	    util_escape(b, sizeof(b), project ? project : "(unknown)", false),
	    util_escape(c, sizeof(c), mode ? mode : "(unknown)", false));
	if (s->have_time)
		fprintf(
		    out, "started %s, %s from first to last event\n",
		    util_escape(c, sizeof(c), s->start ? s->start : "?", false),
		    human_ms(s->last_ms - s->first_ms, d, sizeof(d)));
	json_t *list = session ? json_object_get(session, "allowlist") : NULL;
	json_t *ports = session ? json_object_get(session, "ports") : NULL;
	if (json_array_size(list) > 0)
		fprintf(out, "egressAllowlist: %s\n",
			join_array(list, b, sizeof(b)));
	if (json_is_array(ports))
		fprintf(out, "egressPorts: %s\n",
			json_array_size(ports) ? join_array(ports, b, sizeof(b))
					       : "(none)");
}

static int dest_cmp(const void *pa, const void *pb)
{
	const struct dest *a = pa, *b = pb;
	if (a->conns != b->conns)
		return a->conns > b->conns ? -1 : 1;
	if (a->blocked != b->blocked)
		return a->blocked > b->blocked ? -1 : 1;
	return strcmp(a->name, b->name);
}

static int bl_cmp(const void *pa, const void *pb)
{
	const struct blocked_lookup *a = pa, *b = pb;
	if (a->count != b->count)
		return a->count > b->count ? -1 : 1;
	return strcmp(a->name, b->name);
}

int audit_summary_print(const struct audit_summary *s, FILE *out)
{
	char name[300], up[32], down[32], r[400];
	audit_summary_print_head(s, out);
	/* Sorted copies: the summary itself stays as fed (follow mode). */
	struct dest *ds = NULL;
	struct blocked_lookup *bs = NULL;
	if (s->ndests) {
		ds = malloc(s->ndests * sizeof(*ds));
		if (!ds)
			return -ENOMEM;
		memcpy(ds, s->dests, s->ndests * sizeof(*ds));
		qsort(ds, s->ndests, sizeof(*ds), dest_cmp);
	}
	if (s->nbl) {
		bs = malloc(s->nbl * sizeof(*bs));
		if (!bs) {
			free(ds);
			return -ENOMEM;
		}
		memcpy(bs, s->bl, s->nbl * sizeof(*bs));
		qsort(bs, s->nbl, sizeof(*bs), bl_cmp);
	}
	int w = 11;
	for (size_t i = 0; i < s->ndests; i++) {
		int l = (int)strlen(
		    util_escape(name, sizeof(name), ds[i].name, false));
		if (l > w)
			w = l > 48 ? 48 : l;
	}
	if (s->ndests) {
		fprintf(out, "\n%-*s %6s %10s %10s %8s\n", w, "destination",
			"conns", "up", "down", "blocked");
	}
	for (size_t i = 0; i < s->ndests; i++) {
		const struct dest *d = &ds[i];
		fprintf(out, "%-*s %6lu %10s %10s %8lu\n", w,
			util_escape(name, sizeof(name), d->name, false),
			d->conns, human_bytes(d->up, up, sizeof(up)),
			human_bytes(d->down, down, sizeof(down)), d->blocked);
		for (size_t j = 0; j < d->nreasons; j++)
			fprintf(
			    out, "  blocked: %s\n",
			    util_escape(r, sizeof(r), d->reasons[j], false));
		if (d->more_reasons)
			fprintf(out, "  blocked: %lu more with other reasons\n",
				d->more_reasons);
	}
	if (s->nbl) {
		fprintf(out, "\nblocked lookups (%zu names):\n", s->nbl);
		for (size_t i = 0; i < s->nbl && i < BLOCKED_SHOWN; i++)
			fprintf(
			    out, "  %s (%s) x%lu: %s\n",
			    util_escape(name, sizeof(name), bs[i].name, false),
			    bs[i].qtypes, bs[i].count,
			    util_escape(r, sizeof(r),
					bs[i].reason ? bs[i].reason : "",
					false));
		if (s->nbl > BLOCKED_SHOWN)
			fprintf(out, "  ... and %zu more names\n",
				s->nbl - BLOCKED_SHOWN);
	}
	free(ds);
	free(bs);
	fprintf(out,
		"\ntotal: %lu connections (%lu blocked), %s up, %s down; %lu "
		"lookups (%lu blocked)\n",
		s->conns, s->conns_blocked, human_bytes(s->up, up, sizeof(up)),
		human_bytes(s->down, down, sizeof(down)), s->lookups,
		s->lookups_blocked);
	size_t i;
	json_t *v;
	json_array_foreach(s->truncated, i, v)
	{
		fprintf(out, "log truncated: %s\n",
			util_escape(r, sizeof(r), json_string_value(v), false));
	}
	if (s->malformed)
		fprintf(out, "skipped: %lu malformed lines\n", s->malformed);
	if (s->unknown)
		fprintf(out, "skipped: %lu events of unknown kinds\n",
			s->unknown);
	if (s->sessions > 1)
		fprintf(out, "note: %lu session lines; the first is shown\n",
			s->sessions);
	if (s->oom)
		fprintf(out, "note: out of memory, some events not counted\n");
	return ferror(out) ? -EIO : 0;
}

/* ---- follow ---- */

static int emit(FILE *out, const char *line, size_t n, bool json)
{
	if (json) {
		fwrite(line, 1, n, out);
		fputc('\n', out);
	} else {
		char buf[2048];
		audit_event_line(line, n, buf, sizeof(buf));
		if (buf[0])
			fprintf(out, "%s\n", buf);
	}
	return fflush(out) == 0 ? 0 : -EIO;
}

int audit_report_follow(FILE *in, FILE *out, bool json,
			volatile sig_atomic_t *stop, struct ccvm_err *err)
{
	struct audit_summary *s = json ? NULL : audit_summary_new();
	if (!json && !s)
		return ccvm_err_set(err, ENOMEM, "out of memory");
	struct linebuf lb = {0};
	int r = 0;
	while (!*stop) {
		r = lb_next(&lb, in);
		if (r < 0)
			break;
		if (r == 0) {
			clearerr(in);
			struct timespec ts = {0, POLL_NS};
			nanosleep(&ts, NULL);
			continue;
		}
		if (!lb.overlong) {
			if (s)
				audit_summary_feed(s, lb.buf ? lb.buf : "",
						   lb.len);
			r = emit(out, lb.buf ? lb.buf : "", lb.len, json);
		} else if (s) {
			s->malformed++;
		}
		lb_reset(&lb);
		if (r < 0)
			break;
	}
	free(lb.buf);
	if (r >= 0 && s) {
		fputc('\n', out);
		r = audit_summary_print(s, out);
	}
	audit_summary_free(s);
	if (r < 0)
		return ccvm_err_sys(err, EIO, "following the egress log");
	return 0;
}

/* ---- the suggestion ---- */

struct audit_suggest {
	egress_local_fn is_local;
	json_t *names;	   /* set: suggested names */
	json_t *addrs;	   /* set: suggested addresses */
	json_t *excluded;  /* class name -> set of addresses */
	json_t *internal;  /* set: names under ccvm.internal left out */
	json_t *invalid;   /* set: names that are no valid entry */
	json_t *looked_up; /* set: names allowed by a lookup */
	json_t *used;	   /* set: every name of an allowed connection */
	uint8_t ports[65536 / 8];
	unsigned long blocked, proxy, alias_unlisted, malformed;
	bool session_lists_alias;
};

struct audit_suggest *audit_suggest_new(egress_local_fn is_local)
{
	struct audit_suggest *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->is_local = is_local;
	s->names = json_object();
	s->addrs = json_object();
	s->excluded = json_object();
	s->internal = json_object();
	s->invalid = json_object();
	s->looked_up = json_object();
	s->used = json_object();
	if (!s->names || !s->addrs || !s->excluded || !s->internal ||
	    !s->invalid || !s->looked_up || !s->used) {
		audit_suggest_free(s);
		return NULL;
	}
	return s;
}

void audit_suggest_free(struct audit_suggest *s)
{
	if (!s)
		return;
	json_decref(s->names);
	json_decref(s->addrs);
	json_decref(s->excluded);
	json_decref(s->internal);
	json_decref(s->invalid);
	json_decref(s->looked_up);
	json_decref(s->used);
	free(s);
}

void audit_suggest_next_session(struct audit_suggest *s)
{
	s->session_lists_alias = false;
}

static void set_add(json_t *set, const char *k)
{
	json_object_set_new(set, k, json_true());
}

static void add_port(struct audit_suggest *s, long long port)
{
	if (port > 0 && port < 65536)
		s->ports[port / 8] |= (uint8_t)(1u << (port % 8));
}

static bool session_lists_alias(json_t *list)
{
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v)
	{
		char n[DNS_NAME_MAX + 1];
		if (json_is_string(v) &&
		    egress_name_norm(json_string_value(v), n) &&
		    strcmp(n, EGRESS_HOST_NAME) == 0)
			return true;
	}
	return false;
}

/* A connection to host.ccvm.internal: suggested only when the session
 * listed it.  Returns whether it contributed. */
static bool take_alias(struct audit_suggest *s)
{
	if (!s->session_lists_alias) {
		s->alias_unlisted++;
		return false;
	}
	set_add(s->names, EGRESS_HOST_NAME);
	return true;
}

/* Parses an address string into a; false when it is none. */
static bool parse_addr(const char *str, struct dns_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, str, a->bytes) == 1) {
		a->family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, str, a->bytes) == 1) {
		a->family = AF_INET6;
		egress_addr_normalize(a);
		return true;
	}
	return false;
}

/* One name of an allowed connection (not an address).  Returns whether it
 * contributed an entry. */
static bool take_name(struct audit_suggest *s, const char *raw)
{
	char n[DNS_NAME_MAX + 1];
	if (!egress_name_norm(raw, n)) {
		set_add(s->invalid, raw);
		return false;
	}
	set_add(s->used, n);
	if (strcmp(n, EGRESS_HOST_NAME) == 0)
		return take_alias(s);
	if (egress_name_under(n, "ccvm.internal", false)) {
		set_add(s->internal, n);
		return false;
	}
	struct egress_entry e;
	if (egress_entry_parse(n, &e) != NULL || e.kind != EGRESS_ENTRY_NAME) {
		set_add(s->invalid, raw);
		return false;
	}
	set_add(s->names, n);
	return true;
}

/* An allowed connection that named nothing: its address. */
static bool take_addr(struct audit_suggest *s, const char *str)
{
	struct dns_addr a;
	char buf[64];
	if (!parse_addr(str, &a)) {
		set_add(s->invalid, str);
		return false;
	}
	egress_addr_str(&a, buf, sizeof(buf));
	enum egress_addr_class c = egress_classify(a.family, a.bytes);
	if ((c == EGRESS_ADDR_PUBLIC || c == EGRESS_ADDR_PRIVATE) &&
	    s->is_local && s->is_local(a.family, a.bytes) != 0)
		c = EGRESS_ADDR_SELF;
	struct egress_entry e;
	if ((c != EGRESS_ADDR_PUBLIC && c != EGRESS_ADDR_PRIVATE) ||
	    egress_entry_parse(buf, &e) != NULL) {
		const char *k = egress_addr_class_name(c);
		json_t *set = json_object_get(s->excluded, k);
		if (!set) {
			set = json_object();
			json_object_set_new(s->excluded, k, set);
		}
		set_add(set, buf);
		return false;
	}
	set_add(s->addrs, buf);
	return true;
}

static void suggest_connect(struct audit_suggest *s, const struct ev *e)
{
	if (!e->allowed) {
		s->blocked++;
		return;
	}
	struct dns_addr a;
	bool have_addr = parse_addr(e->addr, &a);
	enum egress_addr_class c =
	    have_addr ? egress_classify(a.family, a.bytes) : EGRESS_ADDR_PUBLIC;
	char hn[DNS_NAME_MAX + 2];
	const char *host = e->host ? host_name(e->host, hn, sizeof(hn)) : NULL;
	const char *dest = e->dest;
	bool proxy = c == EGRESS_ADDR_PROXY;
	char n[DNS_NAME_MAX + 1];
	if (dest && egress_name_norm(dest, n) &&
	    strcmp(n, EGRESS_PROXY_NAME) == 0)
		proxy = true;
	if (proxy) {
		s->proxy++;
		return;
	}
	bool took = false;
	if (c == EGRESS_ADDR_HOST_ALIAS) {
		took = take_alias(s);
	} else {
		const char *cand[] = {e->sni, host, dest};
		bool named = false;
		for (size_t i = 0; i < ARRAY_LEN(cand); i++) {
			struct dns_addr lit;
			if (!cand[i] || parse_addr(cand[i], &lit))
				continue;
			named = true;
			took |= take_name(s, cand[i]);
		}
		if (!named)
			took = take_addr(s, e->addr);
	}
	if (took)
		add_port(s, e->port);
}

void audit_suggest_feed(struct audit_suggest *s, const char *line, size_t n)
{
	json_t *root = load_line(line, n);
	struct ev e;
	if (!root || !ev_parse(root, &e)) {
		s->malformed++;
		json_decref(root);
		return;
	}
	char nn[DNS_NAME_MAX + 1];
	if (e.kind == EV_SESSION)
		s->session_lists_alias = session_lists_alias(e.allowlist);
	else if (e.kind == EV_CONNECT)
		suggest_connect(s, &e);
	else if (e.kind == EV_LOOKUP && e.allowed &&
		 egress_name_norm(e.name, nn))
		set_add(s->looked_up, nn);
	json_decref(root);
}

int audit_suggest_read(struct audit_suggest *s, FILE *in)
{
	struct linebuf lb = {0};
	int r;
	audit_suggest_next_session(s);
	while ((r = lb_next(&lb, in)) > 0 ||
	       (r == 0 && (lb.len > 0 || lb.overlong))) {
		if (lb.overlong)
			s->malformed++;
		else
			audit_suggest_feed(s, lb.buf ? lb.buf : "", lb.len);
		lb_reset(&lb);
		if (r == 0)
			break;
	}
	free(lb.buf);
	return r < 0 ? r : 0;
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The parent of name ("a.b.c" -> "b.c"), or NULL when it would have fewer
 * than two labels. */
static const char *parent_of(const char *name)
{
	const char *dot = strchr(name, '.');
	return dot && strchr(dot + 1, '.') ? dot + 1 : NULL;
}

/* The entries: names with 2+ siblings under a parent of 2+ labels become
 * "*.parent"; then whatever a wildcard covers goes.  A JSON array,
 * sorted. */
static json_t *collapse(json_t *names, json_t *addrs)
{
	json_t *children = json_object(), *out = json_object();
	const char *k;
	json_t *v;
	if (!children || !out)
		goto fail;
	json_object_foreach(names, k, v)
	{
		const char *p = parent_of(k);
		if (!p)
			continue;
		json_t *c = json_object_get(children, p);
		json_object_set_new(
		    children, p,
		    json_integer(c ? json_integer_value(c) + 1 : 1));
	}
	json_object_foreach(names, k, v)
	{
		const char *p = parent_of(k);
		json_t *c = p ? json_object_get(children, p) : NULL;
		if (c && json_integer_value(c) >= 2) {
			char w[DNS_NAME_MAX + 3];
			snprintf(w, sizeof(w), "*.%s", p);
			set_add(out, w);
		} else {
			set_add(out, k);
		}
	}
	/* Drop what a wildcard covers. */
	size_t n = json_object_size(out), i = 0;
	const char **keys = calloc(n ? n : 1, sizeof(*keys));
	if (!keys)
		goto fail;
	json_object_foreach(out, k, v) keys[i++] = k;
	json_t *arr = json_array();
	for (i = 0; arr && i < n; i++) {
		const char *self = keys[i][0] == '*' ? keys[i] + 2 : keys[i];
		bool covered = false;
		for (size_t j = 0; j < n && !covered; j++)
			covered = j != i && keys[j][0] == '*' &&
				  egress_name_under(self, keys[j] + 2, true);
		if (!covered)
			json_array_append_new(arr, json_string(keys[i]));
	}
	free(keys);
	json_object_foreach(addrs, k, v)
	    json_array_append_new(arr, json_string(k));
	json_decref(children);
	json_decref(out);
	if (!arr)
		return NULL;
	/* Sort. */
	n = json_array_size(arr);
	const char **sorted = calloc(n ? n : 1, sizeof(*sorted));
	json_t *res = json_array();
	if (!sorted || !res) {
		free(sorted);
		json_decref(res);
		json_decref(arr);
		return NULL;
	}
	for (i = 0; i < n; i++)
		sorted[i] = json_string_value(json_array_get(arr, i));
	qsort(sorted, n, sizeof(*sorted), str_cmp);
	for (i = 0; i < n; i++)
		json_array_append_new(res, json_string(sorted[i]));
	free(sorted);
	json_decref(arr);
	return res;
fail:
	json_decref(children);
	json_decref(out);
	return NULL;
}

/* "a, b, c, and N more" of a set's keys (sorted), escaped. */
static const char *set_list(json_t *set, char *buf, size_t n)
{
	size_t total = json_object_size(set), i = 0;
	const char **keys = calloc(total ? total : 1, sizeof(*keys));
	const char *k;
	json_t *v;
	buf[0] = '\0';
	if (!keys)
		return buf;
	json_object_foreach(set, k, v) keys[i++] = k;
	qsort(keys, total, sizeof(*keys), str_cmp);
	size_t used = 0;
	for (i = 0; i < total && i < LIST_SHOWN; i++) {
		char e[300];
		util_escape(e, sizeof(e), keys[i], false);
		int w =
		    snprintf(buf + used, n - used, "%s%s", i ? ", " : "", e);
		if (w < 0 || (size_t)w >= n - used)
			break;
		used += (size_t)w;
	}
	if (total > LIST_SHOWN && used < n)
		snprintf(buf + used, n - used, ", and %zu more",
			 total - LIST_SHOWN);
	free(keys);
	return buf;
}

static void write_notes(const struct audit_suggest *s, FILE *notes,
			const char *prefix)
{
	char buf[2048];
	const char *k;
	json_t *v;
	if (s->blocked)
		fprintf(notes,
			"%snot suggested: %lu blocked connections (only what "
			"was allowed is)\n",
			prefix, s->blocked);
	if (s->proxy)
		fprintf(notes,
			"%snot suggested: %lu connections to ccvm's API proxy "
			"(" EGRESS_PROXY_NAME ", always reachable)\n",
			prefix, s->proxy);
	if (s->alias_unlisted)
		fprintf(notes,
			"%snot suggested: %lu connections to " EGRESS_HOST_NAME
			" in sessions that did not list it\n",
			prefix, s->alias_unlisted);
	json_object_foreach(s->excluded, k, v)
	{
		fprintf(notes, "%snot suggested: %s (%s: never listable)\n",
			prefix, set_list(v, buf, sizeof(buf)), k);
	}
	if (json_object_size(s->internal))
		fprintf(notes,
			"%snot suggested: %s (ccvm's own names under "
			"ccvm.internal)\n",
			prefix, set_list(s->internal, buf, sizeof(buf)));
	if (json_object_size(s->invalid))
		fprintf(notes,
			"%snot suggested: %s (not a valid egressAllowlist "
			"entry)\n",
			prefix, set_list(s->invalid, buf, sizeof(buf)));
	json_t *only = json_object();
	json_object_foreach(s->looked_up, k, v)
	{
		if (!json_object_get(s->used, k) &&
		    !egress_name_under(k, "ccvm.internal", false))
			set_add(only, k);
	}
	if (json_object_size(only))
		fprintf(notes,
			"%snot suggested: %s (looked up, never connected "
			"to)\n",
			prefix, set_list(only, buf, sizeof(buf)));
	json_decref(only);
	if (s->malformed)
		fprintf(notes, "%sskipped: %lu malformed log lines\n", prefix,
			s->malformed);
}

int audit_suggest_write(const struct audit_suggest *s, FILE *out, FILE *notes,
			const char *prefix, struct ccvm_err *err)
{
	if (notes)
		write_notes(s, notes, prefix ? prefix : "");
	json_t *list = collapse(s->names, s->addrs);
	json_t *ports = json_array();
	json_t *frag = json_object();
	if (!list || !ports || !frag) {
		json_decref(list);
		json_decref(ports);
		json_decref(frag);
		return ccvm_err_set(err, ENOMEM, "out of memory");
	}
	for (long p = 1; p < 65536; p++)
		if (s->ports[p / 8] & (1u << (p % 8)))
			json_array_append_new(ports, json_integer(p));
	if (json_array_size(list) == 0) {
		json_decref(list);
		json_decref(ports);
		json_decref(frag);
		return ccvm_err_set(err, ENODATA,
				    "nothing to suggest: no allowed connection "
				    "names a listable destination (an empty "
				    "egressAllowlist would mean open mode)");
	}
	json_object_set_new(frag, "egressAllowlist", list);
	json_object_set_new(frag, "egressPorts", ports);
	char *text = json_dumps(frag, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(frag);
	if (!text)
		return ccvm_err_set(err, ENOMEM, "out of memory");
	fprintf(out, "%s\n", text);
	free(text);
	return ferror(out) ? ccvm_err_sys(err, EIO, "writing the suggestion")
			   : 0;
}
