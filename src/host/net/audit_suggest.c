/* The egressAllowlist suggestion from egress logs: see audit_suggest.h. */
#include "net/audit_suggest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <libpsl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "net/audit_event.h"
#include "net/egress_addr.h"
#include "net/egress_parse.h"
#include "util.h"

#define LIST_SHOWN 5 /* items named in a note line */

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
	unsigned long blocked, proxy, alias_unlisted, malformed, no_addr;
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

static void suggest_connect(struct audit_suggest *s, const struct audit_ev *e)
{
	if (!e->allowed) {
		s->blocked++;
		return;
	}
	struct dns_addr a;
	bool have_addr = e->addr && parse_addr(e->addr, &a);
	enum egress_addr_class c =
	    have_addr ? egress_classify(a.family, a.bytes) : EGRESS_ADDR_PUBLIC;
	char hn[DNS_NAME_MAX + 2];
	const char *host =
	    e->host ? audit_host_name(e->host, hn, sizeof(hn)) : NULL;
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
		if (!named && e->addr)
			took = take_addr(s, e->addr);
		else if (!named)
			s->no_addr++;
	}
	if (took)
		add_port(s, e->port);
}

void audit_suggest_feed(struct audit_suggest *s, const char *line, size_t n)
{
	json_t *root = audit_ev_load(line, n);
	struct audit_ev e;
	if (!root || !audit_ev_parse(root, &e)) {
		s->malformed++;
		json_decref(root);
		return;
	}
	char nn[DNS_NAME_MAX + 1];
	if (e.kind == AUDIT_EV_SESSION)
		s->session_lists_alias = session_lists_alias(e.allowlist);
	else if (e.kind == AUDIT_EV_CONNECT)
		suggest_connect(s, &e);
	else if (e.kind == AUDIT_EV_LOOKUP && e.allowed &&
		 egress_name_norm(e.name, nn))
		set_add(s->looked_up, nn);
	json_decref(root);
}

static void suggest_feed(void *s, const char *line, size_t n)
{
	audit_suggest_feed(s, line, n);
}

int audit_suggest_read(struct audit_suggest *s, FILE *in)
{
	audit_suggest_next_session(s);
	return audit_lines_each(in, suggest_feed, s, &s->malformed);
}

static int str_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The parent of name ("a.b.c" -> "b.c"), or NULL when it would have fewer
 * than two labels or is a public suffix: ICANN's (co.uk) or a private one
 * (github.io, where every user has a name), from libpsl's built-in copy of
 * the Public Suffix List.  "*.co.uk" would allow every stranger's host. */
static const char *parent_of(const char *name)
{
	const char *dot = strchr(name, '.');
	if (!dot || !strchr(dot + 1, '.'))
		return NULL;
	const psl_ctx_t *psl = psl_builtin();
	if (psl && psl_is_public_suffix2(psl, dot + 1,
					 PSL_TYPE_ANY | PSL_TYPE_NO_STAR_RULE))
		return NULL;
	return dot + 1;
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
	json_object_foreach(out, k, v)
	{
		keys[i++] = k;
	}
	json_t *arr = json_array();
	for (i = 0; arr && i < n; i++) {
		if (!keys[i])
			continue;
		const char *self = keys[i][0] == '*' ? keys[i] + 2 : keys[i];
		bool covered = false;
		for (size_t j = 0; j < n && !covered; j++)
			covered = j != i && keys[j] && keys[j][0] == '*' &&
				  egress_name_under(self, keys[j] + 2, true);
		if (!covered)
			json_array_append_new(arr, json_string(keys[i]));
	}
	free(keys);
	json_object_foreach(addrs, k, v)
	{
		json_array_append_new(arr, json_string(k));
	}
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
	json_object_foreach(set, k, v)
	{
		keys[i++] = k;
	}
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
	if (s->no_addr)
		fprintf(notes,
			"%snot suggested: %lu connections with neither a name "
			"nor an address\n",
			prefix, s->no_addr);
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
