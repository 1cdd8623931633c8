/* Host-side egress policy: see egress_policy.h and docs/egress.md. */
#include "net/egress_policy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util.h"

#define NOTE_ADDRS_MAX 64 /* addresses kept per egress_note_resolved() */

struct entry {
	enum egress_entry_kind kind;
	char *text; /* as listed, for reasons */
	char *name; /* EGRESS_ENTRY_NAME: the name; EGRESS_ENTRY_WILDCARD: the
		       suffix after
		       "*." (both lowercase, no trailing dot) */
	struct dns_addr net; /* EGRESS_ENTRY_NET, host bits cleared */
	unsigned prefix;
};

struct resolved {
	struct dns_addr addr;
	char *name;    /* the name the host resolved */
	int entry;     /* index of the entry that allowed it; -1 for the API
			  host, -2 for open mode */
	uint64_t used; /* LRU stamp */
};

struct blocked {
	char *what;
	uint16_t port;
	unsigned long count;
};

struct egress_policy {
	struct entry *entries;
	size_t n_entries; /* host.ccvm.internal excluded */
	bool host_alias;
	uint16_t *ports;
	size_t n_ports;

	struct resolved *res; /* EGRESS_RESOLVED_MAX slots */
	size_t n_res;
	uint64_t clock;

	egress_local_fn local; /* is an address this host? */

	struct blocked blocked[EGRESS_BLOCKED_MAX];
	size_t n_blocked;
	unsigned long others;

	/* The agent's API endpoint (egress_set_api). */
	char api_host[DNS_NAME_MAX + 1];
	uint16_t api_port;
	bool api_alias;		  /* api_host is host.ccvm.internal */
	bool api_is_addr;	  /* api_host is an address literal */
	struct dns_addr api_addr; /* its address then */
	bool proxy; /* ccvm's API proxy is on (egress_set_proxy) */
};

/* ---- names -------------------------------------------------------- */

/* Index of the first name entry matching name, or -1. */
static int match_name(const struct egress_policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_entries; i++) {
		const struct entry *e = &p->entries[i];
		if (e->kind == EGRESS_ENTRY_NAME && strcmp(name, e->name) == 0)
			return (int)i;
		if (e->kind == EGRESS_ENTRY_WILDCARD &&
		    egress_name_under(name, e->name, true))
			return (int)i;
	}
	return -1;
}

/* The verdict and, for RESOLVE, the entry index (-1 API, -2 open). */
static enum egress_name_verdict name_check(const struct egress_policy *p,
					   const char *name, int *entry)
{
	char n[DNS_NAME_MAX + 1];
	*entry = -3;
	if (!egress_name_norm(name, n))
		return EGRESS_NAME_DENY;
	/* Our own namespace is never asked of real DNS, in any mode. */
	if (strcmp(n, EGRESS_HOST_NAME) == 0)
		return p->host_alias || p->api_alias ? EGRESS_NAME_HOST_ALIAS
						     : EGRESS_NAME_DENY;
	if (strcmp(n, EGRESS_PROXY_NAME) == 0)
		return p->proxy ? EGRESS_NAME_PROXY : EGRESS_NAME_DENY;
	if (egress_name_under(n, "ccvm.internal", false))
		return EGRESS_NAME_DENY;
	if (p->api_host[0] && strcmp(n, p->api_host) == 0) {
		*entry = -1;
		return EGRESS_NAME_RESOLVE;
	}
	if (p->n_entries == 0) {
		*entry = -2;
		return EGRESS_NAME_RESOLVE;
	}
	*entry = match_name(p, n);
	return *entry >= 0 ? EGRESS_NAME_RESOLVE : EGRESS_NAME_DENY;
}

enum egress_name_verdict egress_name_check(const struct egress_policy *p,
					   const char *name)
{
	int entry;
	return name_check(p, name, &entry);
}

bool egress_name_allowed(const struct egress_policy *p, const char *name)
{
	return egress_name_check(p, name) != EGRESS_NAME_DENY;
}

/* ---- construction ------------------------------------------------- */

bool egress_open_mode(const struct egress_policy *p)
{
	return p->n_entries == 0;
}

bool egress_host_alias_listed(const struct egress_policy *p)
{
	return p->host_alias;
}

void egress_policy_free(struct egress_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->n_entries; i++) {
		free(p->entries[i].text);
		free(p->entries[i].name);
	}
	free(p->entries);
	for (size_t i = 0; i < p->n_res; i++)
		free(p->res[i].name);
	free(p->res);
	free(p->ports);
	for (size_t i = 0; i < p->n_blocked; i++)
		free(p->blocked[i].what);
	free(p);
}

static int entry_error(struct ccvm_err *err, int errnum, const char *s,
		       const char *what)
{
	char q[128];
	return ccvm_err_set(err, errnum, "egressAllowlist: %s %s",
			    util_escape(q, sizeof(q), s, true), what);
}

static int add_entry(struct egress_policy *p, const char *s,
		     struct ccvm_err *err)
{
	struct egress_entry pe;
	const char *why = egress_entry_parse(s, &pe);
	if (why)
		return entry_error(err, EINVAL, s, why);
	if (pe.kind == EGRESS_ENTRY_HOST_ALIAS) {
		p->host_alias = true;
		return 0;
	}
	struct entry e = {.kind = pe.kind, .net = pe.net, .prefix = pe.prefix};
	e.text = strdup(s);
	e.name = e.kind == EGRESS_ENTRY_NET ? NULL : strdup(pe.name);
	if (!e.text || (e.kind != EGRESS_ENTRY_NET && !e.name)) {
		free(e.text);
		free(e.name);
		return ccvm_err_set(err, ENOMEM,
				    "egressAllowlist: out of "
				    "memory");
	}
	p->entries[p->n_entries++] = e;
	return 0;
}

int egress_policy_new(const struct cfg_strlist *allow, const uint16_t *ports,
		      size_t nports, struct egress_policy **out,
		      struct ccvm_err *err)
{
	size_t n = allow ? allow->n : 0;
	if (n > EGRESS_MAX_ENTRIES)
		return ccvm_err_set(err, E2BIG,
				    "egressAllowlist: more than %d entries",
				    EGRESS_MAX_ENTRIES);
	if (nports > EGRESS_MAX_PORTS)
		return ccvm_err_set(err, E2BIG, "egressPorts: too many");
	struct egress_policy *p = calloc(1, sizeof(*p));
	if (!p)
		return ccvm_err_set(err, ENOMEM,
				    "egress policy: out of memory");
	p->entries = calloc(n ? n : 1, sizeof(*p->entries));
	p->res = calloc(EGRESS_RESOLVED_MAX, sizeof(*p->res));
	p->ports = calloc(nports ? nports : 1, sizeof(*p->ports));
	if (!p->entries || !p->res || !p->ports) {
		egress_policy_free(p);
		return ccvm_err_set(err, ENOMEM,
				    "egress policy: out of memory");
	}
	for (size_t i = 0; i < nports; i++) {
		if (ports[i] == 0) {
			egress_policy_free(p);
			return ccvm_err_set(err, EINVAL,
					    "egressPorts[%zu]: 0 is not a port",
					    i);
		}
		p->ports[i] = ports[i];
	}
	p->n_ports = nports;
	util_strlcpy(p->api_host, EGRESS_API_HOST, sizeof(p->api_host));
	p->api_port = EGRESS_API_PORT;
	for (size_t i = 0; i < n; i++) {
		int rc = add_entry(p, allow->v[i], err);
		if (rc < 0) {
			egress_policy_free(p);
			return rc;
		}
	}
	*out = p;
	return 0;
}

int egress_policy_from_config(const struct ccvm_config *cfg,
			      struct egress_policy **out, struct ccvm_err *err)
{
	return egress_policy_new(&cfg->egress_allowlist, cfg->egress_ports,
				 cfg->n_egress_ports, out, err);
}

/* ---- resolved names ----------------------------------------------- */

int egress_note_resolved(struct egress_policy *p, const char *name,
			 const struct dns_addr *addrs, size_t n)
{
	int entry;
	char nn[DNS_NAME_MAX + 1];
	if (name_check(p, name, &entry) != EGRESS_NAME_RESOLVE ||
	    !egress_name_norm(name, nn))
		return -EPERM;
	if (n > NOTE_ADDRS_MAX)
		n = NOTE_ADDRS_MAX;
	for (size_t i = 0; i < n; i++) {
		struct dns_addr a = addrs[i];
		if (a.family != AF_INET && a.family != AF_INET6)
			return -EINVAL;
		egress_addr_normalize(&a);
		p->clock++;
		struct resolved *slot = NULL;
		for (size_t j = 0; j < p->n_res && !slot; j++)
			if (egress_addr_eq(&p->res[j].addr, &a) &&
			    strcmp(p->res[j].name, nn) == 0)
				slot = &p->res[j];
		if (slot) {
			slot->used = p->clock;
			slot->entry = entry;
			continue;
		}
		char *copy = strdup(nn);
		if (!copy)
			return -ENOMEM;
		if (p->n_res < EGRESS_RESOLVED_MAX) {
			slot = &p->res[p->n_res++];
		} else {
			slot = &p->res[0];
			for (size_t j = 1; j < p->n_res; j++)
				if (p->res[j].used < slot->used)
					slot = &p->res[j];
			free(slot->name);
		}
		slot->addr = a;
		slot->name = copy;
		slot->entry = entry;
		slot->used = p->clock;
	}
	return 0;
}

/* ---- this host ---------------------------------------------------- */

void egress_set_local_check(struct egress_policy *p, egress_local_fn fn)
{
	p->local = fn;
}

/* ---- connections -------------------------------------------------- */

static bool port_listed(const struct egress_policy *p, uint16_t port)
{
	for (size_t i = 0; i < p->n_ports; i++)
		if (p->ports[i] == port)
			return true;
	return false;
}

static void ports_text(const struct egress_policy *p, char *buf, size_t n)
{
	size_t o = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < p->n_ports && o + 8 < n; i++) {
		int w = snprintf(buf + o, n - o, "%s%u", i ? "," : "",
				 (unsigned)p->ports[i]);
		if (w < 0)
			break;
		o += (size_t)w;
	}
	if (p->n_ports == 0)
		util_strlcpy(buf, "none", n);
	else if (o + 8 >= n)
		util_strlcpy(buf + n - 4, "...", 4);
}

/* May the explicit entry e let a (of class c) through? */
static bool entry_admits(const struct entry *e, const struct dns_addr *a,
			 enum egress_addr_class c)
{
	if (e->kind != EGRESS_ENTRY_NET ||
	    !egress_in_net(a, &e->net, e->prefix))
		return false;
	switch (c) {
	case EGRESS_ADDR_PUBLIC:
	case EGRESS_ADDR_PRIVATE:
		return true;
	case EGRESS_ADDR_LINK_LOCAL: {
		/* Only an entry inside the link-local range itself. */
		unsigned rp;
		enum egress_addr_class ec =
		    egress_classify_range(e->net.family, e->net.bytes, &rp);
		return (ec == EGRESS_ADDR_LINK_LOCAL ||
			ec == EGRESS_ADDR_METADATA) &&
		       e->prefix >= (e->net.family == AF_INET ? 16u : 10u);
	}
	case EGRESS_ADDR_METADATA:
		/* Only the exact address. */
		return e->prefix == (e->net.family == AF_INET ? 32u : 128u);
	default:
		return false;
	}
}

#define DECIDE(d, v, ...)                                                      \
	do {                                                                   \
		(d)->verdict = (v);                                            \
		snprintf((d)->why, sizeof((d)->why), __VA_ARGS__);             \
	} while (0)

/* What one connection is checked with: the destination (normalized),
 * its class, how messages name it, the port and egressPorts as text. */
struct conn {
	struct dns_addr a;
	enum egress_addr_class c;
	const char *dst; /* "1.2.3.4" or "[v6]" */
	uint16_t port;
	const char *ports;
};

/* host.ccvm.internal's address: the host's loopback, when listed (or the
 * API endpoint's port when ANTHROPIC_BASE_URL names it). */
static void check_host_alias(const struct egress_policy *p,
			     const struct conn *k, struct egress_decision *d)
{
	util_strlcpy(d->dest, EGRESS_HOST_NAME, sizeof(d->dest));
	bool api = p->api_alias && k->port == p->api_port;
	if (!p->host_alias && !api) {
		DECIDE(d, EGRESS_DENY_HOST_ALIAS,
		       "blocked: " EGRESS_HOST_NAME ":%u: " EGRESS_HOST_NAME
		       " is not in egressAllowlist",
		       (unsigned)k->port);
	} else if (!api && !port_listed(p, k->port)) {
		DECIDE(d, EGRESS_DENY_PORT,
		       "blocked: " EGRESS_HOST_NAME ":%u: port not "
		       "in egressPorts (%s)",
		       (unsigned)k->port, k->ports);
	} else {
		d->target.family = k->a.family;
		d->target.bytes[k->a.family == AF_INET ? 0 : 15] =
		    k->a.family == AF_INET ? 127 : 1;
		if (k->a.family == AF_INET)
			d->target.bytes[3] = 1;
		DECIDE(d, EGRESS_ALLOW,
		       "allowed: " EGRESS_HOST_NAME ":%u -> host loopback%s",
		       (unsigned)k->port, api ? " (the API endpoint)" : "");
	}
}

/* api.ccvm.internal's address: served by the relay itself, on port 80,
 * while the proxy is on. */
static void check_proxy(const struct egress_policy *p, const struct conn *k,
			struct egress_decision *d)
{
	util_strlcpy(d->dest, EGRESS_PROXY_NAME, sizeof(d->dest));
	if (!p->proxy) {
		DECIDE(d, EGRESS_DENY_RESERVED,
		       "blocked: " EGRESS_PROXY_NAME ":%u: ccvm's API proxy is "
		       "off in this session",
		       (unsigned)k->port);
	} else if (k->port != EGRESS_PROXY_PORT) {
		DECIDE(d, EGRESS_DENY_PORT,
		       "blocked: " EGRESS_PROXY_NAME ":%u: ccvm's API proxy "
		       "listens on port %u only",
		       (unsigned)k->port, (unsigned)EGRESS_PROXY_PORT);
	} else {
		d->target = k->a;
		d->proxy = true;
		DECIDE(d, EGRESS_ALLOW,
		       "allowed: " EGRESS_PROXY_NAME ":%u (ccvm's API proxy)",
		       (unsigned)k->port);
	}
}

/* Refuses the host itself and reserved space; true when it decided. */
static bool check_never(const struct egress_policy *p, const struct conn *k,
			struct egress_decision *d)
{
	enum egress_addr_class c = k->c;
	/* The kernel's route says what is this host (route.h). */
	int local = 0;
	if (p->local && c != EGRESS_ADDR_LOOPBACK &&
	    c != EGRESS_ADDR_HOST_SVC && c != EGRESS_ADDR_RESERVED)
		local = p->local(k->a.family, k->a.bytes);
	if (local < 0) {
		DECIDE(d, EGRESS_DENY_HOST,
		       "blocked: %s:%u: cannot tell whether it is the host "
		       "itself (route lookup: %s)",
		       k->dst, (unsigned)k->port, strerror(-local));
		return true;
	}
	if (c == EGRESS_ADDR_LOOPBACK || c == EGRESS_ADDR_HOST_SVC || local) {
		DECIDE(d, EGRESS_DENY_HOST,
		       "blocked: %s:%u is the host itself (%s); "
		       "list " EGRESS_HOST_NAME " to reach host services",
		       k->dst, (unsigned)k->port,
		       egress_addr_class_name(local ? EGRESS_ADDR_SELF : c));
		return true;
	}
	if (c == EGRESS_ADDR_RESERVED) {
		DECIDE(d, EGRESS_DENY_RESERVED, "blocked: %s:%u is %s", k->dst,
		       (unsigned)k->port, egress_addr_class_name(c));
		return true;
	}
	return false;
}

/*
 * A name the host resolved: its entry (or the API host) vouches.
 * Link-local and metadata answers are refused (DNS rebinding).  True when
 * it allowed; *port_denied is the pair that matched all but the port.
 */
static bool check_resolved(struct egress_policy *p, const struct conn *k,
			   struct egress_decision *d,
			   struct resolved **port_denied)
{
	for (size_t i = 0; i < p->n_res; i++) {
		struct resolved *r = &p->res[i];
		if (!egress_addr_eq(&r->addr, &k->a))
			continue;
		if (k->c == EGRESS_ADDR_LINK_LOCAL ||
		    k->c == EGRESS_ADDR_METADATA)
			return false;
		if (!d->dest[0])
			util_strlcpy(d->dest, r->name, sizeof(d->dest));
		bool ok = p->n_entries == 0 || port_listed(p, k->port) ||
			  (r->entry == -1 && k->port == p->api_port);
		if (!ok) {
			*port_denied = r;
			continue;
		}
		r->used = ++p->clock;
		d->target = k->a;
		/* In allowlist mode the name vouches: the relay then checks
		 * the name the connection's first bytes give (sniff.h). */
		d->by_name = r->entry != -2;
		if (r->entry >= 0 &&
		    p->entries[r->entry].kind == EGRESS_ENTRY_WILDCARD)
			DECIDE(d, EGRESS_ALLOW,
			       "allowed: %s:%u (%s, matches %s)", r->name,
			       (unsigned)k->port, k->dst,
			       p->entries[r->entry].text);
		else
			DECIDE(d, EGRESS_ALLOW, "allowed: %s:%u (%s)%s",
			       r->name, (unsigned)k->port, k->dst,
			       r->entry == -2 ? " open mode" : "");
		return true;
	}
	return false;
}

/* A listed address or range holding it; true when it decided. */
static bool check_listed(const struct egress_policy *p, const struct conn *k,
			 struct egress_decision *d)
{
	for (size_t i = 0; i < p->n_entries; i++) {
		const struct entry *e = &p->entries[i];
		if (!entry_admits(e, &k->a, k->c))
			continue;
		if (!port_listed(p, k->port)) {
			DECIDE(d, EGRESS_DENY_PORT,
			       "blocked: %s:%u: port not in egressPorts (%s)",
			       k->dst, (unsigned)k->port, k->ports);
			return true;
		}
		d->target = k->a;
		DECIDE(d, EGRESS_ALLOW, "allowed: %s:%u (in %s)", k->dst,
		       (unsigned)k->port, e->text);
		return true;
	}
	return false;
}

/* The rules after the host and reserved space: the API endpoint by
 * address, resolved names, listed ranges, then open mode. */
static void check_reachable(struct egress_policy *p, const struct conn *k,
			    struct egress_decision *d)
{
	enum egress_addr_class c = k->c;
	if (p->api_is_addr && egress_addr_eq(&p->api_addr, &k->a) &&
	    k->port == p->api_port && c != EGRESS_ADDR_LINK_LOCAL &&
	    c != EGRESS_ADDR_METADATA) {
		d->target = k->a;
		DECIDE(d, EGRESS_ALLOW, "allowed: %s:%u (the API endpoint)",
		       k->dst, (unsigned)k->port);
		return;
	}
	struct resolved *port_denied = NULL;
	if (check_resolved(p, k, d, &port_denied) || check_listed(p, k, d))
		return;
	if (port_denied) {
		DECIDE(d, EGRESS_DENY_PORT,
		       "blocked: %s:%u (%s): port not in egressPorts (%s)",
		       port_denied->name, (unsigned)k->port, k->dst, k->ports);
		return;
	}
	if (c == EGRESS_ADDR_LINK_LOCAL || c == EGRESS_ADDR_METADATA) {
		DECIDE(d, EGRESS_DENY_LINK_LOCAL,
		       "blocked: %s:%u is %s; only an egressAllowlist entry "
		       "%s lets it through",
		       k->dst, (unsigned)k->port, egress_addr_class_name(c),
		       c == EGRESS_ADDR_METADATA ? "naming exactly this address"
						 : "inside 169.254.0.0/16 or "
						   "fe80::/10");
		return;
	}
	if (p->n_entries == 0) {
		d->target = k->a;
		DECIDE(d, EGRESS_ALLOW, "allowed: %s:%u (open mode, %s)",
		       k->dst, (unsigned)k->port, egress_addr_class_name(c));
		return;
	}
	DECIDE(d, EGRESS_DENY_UNLISTED,
	       "blocked: %s:%u is not in egressAllowlist (no allowed name "
	       "resolved to it, no listed address or range holds it)",
	       k->dst, (unsigned)k->port);
}

static void connect_check(struct egress_policy *p, int family, const void *addr,
			  uint16_t port, struct egress_decision *d)
{
	if ((family != AF_INET && family != AF_INET6) || !addr) {
		DECIDE(d, EGRESS_DENY_INVALID,
		       "blocked: not an IPv4 or IPv6 destination");
		return;
	}
	struct conn k = {.a = {.family = family}, .port = port};
	memcpy(k.a.bytes, addr, egress_addr_len(family));
	egress_addr_normalize(&k.a);
	char as[INET6_ADDRSTRLEN + 2], ports[64];
	egress_addr_str(&k.a, as + 1, sizeof(as) - 1);
	k.dst = as + 1;
	if (k.a.family == AF_INET6) { /* [v6]:port */
		as[0] = '[';
		size_t l = strlen(as);
		as[l] = ']';
		as[l + 1] = '\0';
		k.dst = as;
	}
	ports_text(p, ports, sizeof(ports));
	k.ports = ports;
	d->dest[0] = '\0';
	if (port == 0) {
		DECIDE(d, EGRESS_DENY_INVALID, "blocked: %s:0: port 0", k.dst);
		return;
	}
	k.c = egress_classify(k.a.family, k.a.bytes);
	if (k.c == EGRESS_ADDR_HOST_ALIAS)
		check_host_alias(p, &k, d);
	else if (k.c == EGRESS_ADDR_PROXY)
		check_proxy(p, &k, d);
	else if (!check_never(p, &k, d))
		check_reachable(p, &k, d);
}

void egress_connect_check(struct egress_policy *p, int family, const void *addr,
			  uint16_t port, struct egress_decision *d)
{
	memset(d, 0, sizeof(*d));
	connect_check(p, family, addr, port, d);
	if (!d->dest[0] && (family == AF_INET || family == AF_INET6) && addr) {
		struct dns_addr a = {.family = family};
		memcpy(a.bytes, addr, egress_addr_len(family));
		egress_addr_normalize(&a);
		egress_addr_str(&a, d->dest, sizeof(d->dest));
	}
}

bool egress_connect_allowed(struct egress_policy *p, int family,
			    const void *addr, uint16_t port, char *why,
			    size_t whysz)
{
	struct egress_decision d;
	egress_connect_check(p, family, addr, port, &d);
	if (why && whysz)
		util_strlcpy(why, d.why, whysz);
	return d.verdict == EGRESS_ALLOW;
}

/* ---- blocked accounting ------------------------------------------- */

void egress_note_blocked(struct egress_policy *p, const char *host_or_ip,
			 uint16_t port)
{
	if (!host_or_ip)
		host_or_ip = "?";
	for (size_t i = 0; i < p->n_blocked; i++) {
		struct blocked *b = &p->blocked[i];
		if (b->port == port && strcmp(b->what, host_or_ip) == 0) {
			if (b->count < ULONG_MAX)
				b->count++;
			return;
		}
	}
	char *copy = NULL;
	if (p->n_blocked < EGRESS_BLOCKED_MAX)
		copy = strndup(host_or_ip, DNS_NAME_MAX);
	if (!copy) {
		if (p->others < ULONG_MAX)
			p->others++;
		return;
	}
	p->blocked[p->n_blocked++] =
	    (struct blocked){.what = copy, .port = port, .count = 1};
}

unsigned long egress_summary(const struct egress_policy *p, FILE *out)
{
	unsigned long total = p->others;
	size_t order[EGRESS_BLOCKED_MAX];
	for (size_t i = 0; i < p->n_blocked; i++) {
		total += p->blocked[i].count;
		/* Insertion sort: count descending, stable. */
		size_t j = i;
		while (j > 0 &&
		       p->blocked[order[j - 1]].count < p->blocked[i].count) {
			order[j] = order[j - 1];
			j--;
		}
		order[j] = i;
	}
	if (total == 0)
		return 0;
	fputs("ccvm: egress blocked:", out);
	for (size_t k = 0; k < p->n_blocked; k++) {
		const struct blocked *b = &p->blocked[order[k]];
		char what[DNS_NAME_MAX + 40];
		util_escape(what, sizeof(what), b->what, false);
		bool v6 = strchr(what, ':') != NULL;
		if (b->port == 0)
			fprintf(out, "%s %s (lookup) (%lu)", k ? "," : "", what,
				b->count);
		else
			fprintf(out, "%s %s%s%s:%u (%lu)", k ? "," : "",
				v6 ? "[" : "", what, v6 ? "]" : "",
				(unsigned)b->port, b->count);
	}
	if (p->others)
		fprintf(out, "%s others (%lu)", p->n_blocked ? "," : "",
			p->others);
	fputc('\n', out);
	return total;
}

void egress_set_proxy(struct egress_policy *p)
{
	p->proxy = true;
	p->api_host[0] = '\0';
	p->api_port = 0;
	p->api_alias = p->api_is_addr = false;
}

int egress_set_api(struct egress_policy *p, const char *host, uint16_t port)
{
	char n[DNS_NAME_MAX + 1];
	struct dns_addr a = {.family = AF_INET};
	if (port == 0 || !host[0] ||
	    strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			 "0123456789.-_:") != strlen(host))
		return -EINVAL;
	if (inet_pton(AF_INET, host, a.bytes) == 1 ||
	    (a.family = AF_INET6, inet_pton(AF_INET6, host, a.bytes) == 1)) {
		egress_addr_normalize(&a);
		p->api_is_addr = true;
		p->api_addr = a;
		egress_addr_str(&a, p->api_host, sizeof(p->api_host));
	} else if (egress_name_norm(host, n)) {
		p->api_is_addr = false;
		util_strlcpy(p->api_host, n, sizeof(p->api_host));
	} else {
		return -EINVAL;
	}
	p->api_alias = strcmp(p->api_host, EGRESS_HOST_NAME) == 0;
	p->api_port = port;
	return 0;
}
