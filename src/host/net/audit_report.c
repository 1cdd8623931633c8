/* Readers of the egress audit log: see audit_report.h. */
#include "net/audit_report.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "net/audit.h"
#include "net/audit_event.h"
#include "net/egress_addr.h"
#include "util.h"

#define LOG_SUFFIX    ".jsonl"
#define LIST_SHOWN    5	 /* items named in a note line */
#define BLOCKED_SHOWN 50 /* blocked lookups listed by the summary */
#define POLL_NS	      200000000L

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
		if (!audit_is_session_file(n))
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

/* What a connection is listed under: its TLS name, else its HTTP Host
 * (without the port), else the name its address was resolved for, else
 * the address.  buf for the Host's copy. */
static const char *dest_key(const struct audit_ev *e, char *buf, size_t n)
{
	if (e->sni)
		return e->sni;
	if (e->host)
		return audit_host_name(e->host, buf, n);
	return e->dest ? e->dest : e->addr ? e->addr : "(no address)";
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
	json_t *root = audit_ev_load(line, len);
	struct audit_ev e;
	buf[0] = '\0';
	if (!root || !audit_ev_parse(root, &e)) {
		json_decref(root);
		return buf;
	}
	char clk[32], a[160], b[300], r[400], u[32], d[32], ms[32];
	char hn[DNS_NAME_MAX + 2];
	clock_of(e.t, clk, sizeof(clk));
	util_escape(r, sizeof(r), e.reason ? e.reason : "", false);
	switch (e.kind) {
	case AUDIT_EV_SESSION:
		snprintf(buf, n, "%s session %s", clk,
			 util_escape(b, sizeof(b), e.session, false));
		break;
	case AUDIT_EV_TRUNC:
		snprintf(buf, n, "%s log truncated: %s", clk, r);
		break;
	case AUDIT_EV_LOOKUP:
		snprintf(
		    buf, n, "%s lookup %s %s %s%s%s", clk,
		    util_escape(b, sizeof(b), e.name, false),
		    util_escape(a, sizeof(a), e.qtype ? e.qtype : "?", false),
		    e.allowed ? "allowed" : "blocked", r[0] ? ": " : "", r);
		break;
	case AUDIT_EV_CONNECT:
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
	case AUDIT_EV_OTHER:
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

static void summary_connect(struct audit_summary *s, const struct audit_ev *e)
{
	char hn[DNS_NAME_MAX + 2];
	long i = find_or_add(s->dest_index, dest_key(e, hn, sizeof(hn)),
			     (void **)&s->dests, &s->ndests, &s->capdests,
			     sizeof(*s->dests));
	if (i < 0 || !s->dests) {
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

static void summary_lookup(struct audit_summary *s, const struct audit_ev *e)
{
	s->lookups++;
	if (e->allowed)
		return;
	s->lookups_blocked++;
	long i = find_or_add(s->bl_index, e->name, (void **)&s->bl, &s->nbl,
			     &s->capbl, sizeof(*s->bl));
	if (i < 0 || !s->bl) {
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
	json_t *root = audit_ev_load(line, n);
	struct audit_ev e;
	if (!root || !audit_ev_parse(root, &e)) {
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
	/* A connection's line carries its start: it ended ms later. */
	long long end = e.t_ms + (e.kind == AUDIT_EV_CONNECT ? e.ms : 0);
	if (end > s->last_ms)
		s->last_ms = end;
	switch (e.kind) {
	case AUDIT_EV_SESSION:
		s->sessions++;
		if (!s->session)
			s->session = json_incref(root);
		break;
	case AUDIT_EV_LOOKUP:
		summary_lookup(s, &e);
		break;
	case AUDIT_EV_CONNECT:
		summary_connect(s, &e);
		break;
	case AUDIT_EV_TRUNC:
		if (json_array_size(s->truncated) < LIST_SHOWN)
			json_array_append_new(
			    s->truncated,
			    json_string(e.reason ? e.reason : "(no reason)"));
		break;
	case AUDIT_EV_OTHER:
		s->unknown++;
		break;
	}
	json_decref(root);
}

static void summary_feed(void *s, const char *line, size_t n)
{
	audit_summary_feed(s, line, n);
}

int audit_summary_read(struct audit_summary *s, FILE *in)
{
	return audit_lines_each(in, summary_feed, s, &s->malformed);
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
		for (size_t j = 0; j < d->nreasons; j++) {
			/* Reasons mostly begin "blocked: " themselves. */
			const char *why = d->reasons[j];
			if (!strncmp(why, "blocked: ", 9))
				why += 9;
			fprintf(out, "  blocked: %s\n",
				util_escape(r, sizeof(r), why, false));
		}
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
	struct audit_lines lb = {0};
	int r = 0;
	while (!*stop) {
		r = audit_lines_next(&lb, in);
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
		audit_lines_reset(&lb);
		if (r < 0)
			break;
	}
	audit_lines_free(&lb);
	if (r >= 0 && s) {
		fputc('\n', out);
		r = audit_summary_print(s, out);
	}
	audit_summary_free(s);
	if (r < 0)
		return ccvm_err_sys(err, EIO, "following the egress log");
	return 0;
}
