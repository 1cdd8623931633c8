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

enum entry_kind { ENT_NAME, ENT_WILDCARD, ENT_NET };

struct entry {
	enum entry_kind kind;
	char *text; /* as listed, for reasons */
	char *name; /* ENT_NAME: the name; ENT_WILDCARD: the suffix after
		       "*." (both lowercase, no trailing dot) */
	struct dns_addr net; /* ENT_NET, host bits cleared */
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
};

/* ---- addresses ---------------------------------------------------- */

static size_t addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

static bool addr_eq(const struct dns_addr *a, const struct dns_addr *b)
{
	return a->family == b->family &&
	       memcmp(a->bytes, b->bytes, addr_len(a->family)) == 0;
}

/* true when the first prefix bits of a and b agree. */
static bool prefix_eq(const uint8_t *a, const uint8_t *b, unsigned prefix)
{
	unsigned full = prefix / 8, rest = prefix % 8;
	if (memcmp(a, b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xFF << (8 - rest));
	return ((a[full] ^ b[full]) & mask) == 0;
}

static void clear_host_bits(struct dns_addr *a, unsigned prefix)
{
	size_t len = addr_len(a->family);
	for (size_t i = 0; i < len; i++) {
		unsigned bit = (unsigned)i * 8;
		if (bit >= prefix)
			a->bytes[i] = 0;
		else if (bit + 8 > prefix)
			a->bytes[i] &= (uint8_t)(0xFF << (8 - (prefix - bit)));
	}
}

static bool in_net(const struct dns_addr *a, const struct dns_addr *net,
		   unsigned prefix)
{
	return a->family == net->family &&
	       prefix_eq(a->bytes, net->bytes, prefix);
}

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};

void egress_addr_normalize(struct dns_addr *a)
{
	if (a->family == AF_INET6 && memcmp(a->bytes, v4mapped, 12) == 0) {
		uint8_t v4[4];
		memcpy(v4, a->bytes + 12, 4);
		memset(a->bytes, 0, sizeof(a->bytes));
		memcpy(a->bytes, v4, 4);
		a->family = AF_INET;
	}
}

const char *egress_addr_str(const struct dns_addr *a, char *buf, size_t n)
{
	if (!inet_ntop(a->family, a->bytes, buf, (socklen_t)n))
		util_strlcpy(buf, "?", n);
	return buf;
}

const char *egress_addr_class_name(enum egress_addr_class c)
{
	switch (c) {
	case EGRESS_ADDR_PUBLIC:
		return "public";
	case EGRESS_ADDR_PRIVATE:
		return "private";
	case EGRESS_ADDR_LINK_LOCAL:
		return "link-local";
	case EGRESS_ADDR_METADATA:
		return "cloud metadata";
	case EGRESS_ADDR_LOOPBACK:
		return "host loopback";
	case EGRESS_ADDR_SELF:
		return "the kernel delivers it to this host: an own address "
		       "or a local route";
	case EGRESS_ADDR_HOST_ALIAS:
		return EGRESS_HOST_NAME;
	case EGRESS_ADDR_RESERVED:
		return "reserved (not a unicast destination)";
	case EGRESS_ADDR_HOST_SVC:
		return "a service on this host, Tailscale's 100.100.100.100";
	}
	return "?";
}

struct class_rule {
	uint8_t net[16];
	unsigned prefix;
	enum egress_addr_class cls;
};

/*
 * Most specific first; the first match wins.  Metadata addresses: AWS,
 * GCP, Azure, Oracle and OpenStack all serve 169.254.169.254; AWS ECS
 * 169.254.170.2; Alibaba 100.100.100.200; Azure's WireServer
 * 168.63.129.16 (a public address); over IPv6 AWS's fd00:ec2::/32 (IMDS
 * fd00:ec2::254, DNS ::253, NTP ::123), GCP's fd20:ce::254, Oracle's
 * fd00:c1::a9fe:a9fe, OpenStack's fe80::a9fe:a9fe, and fd00:42::42 (named
 * as a metadata address in issue 20; its owner is undocumented here).
 * Tailscale's 100.100.100.100 and fd7a:115c:a1e0::53 are answered by
 * tailscaled on this host (MagicDNS, its local services).
 */
static const struct class_rule rules4[] = {
    {{0, 0, 0, 0}, 32, EGRESS_ADDR_LOOPBACK}, /* connect() reaches lo */
    {{169, 254, 169, 254}, 32, EGRESS_ADDR_METADATA},
    {{169, 254, 170, 2}, 32, EGRESS_ADDR_METADATA},
    {{100, 100, 100, 200}, 32, EGRESS_ADDR_METADATA},
    {{168, 63, 129, 16}, 32, EGRESS_ADDR_METADATA},
    {{100, 100, 100, 100}, 32, EGRESS_ADDR_HOST_SVC},
    {{192, 0, 2, 2}, 32, EGRESS_ADDR_HOST_ALIAS},
    {{255, 255, 255, 255}, 32, EGRESS_ADDR_RESERVED},
    {{192, 0, 0, 0}, 24, EGRESS_ADDR_RESERVED},	   /* IETF assignments */
    {{192, 0, 2, 0}, 24, EGRESS_ADDR_RESERVED},	   /* TEST-NET-1 */
    {{198, 51, 100, 0}, 24, EGRESS_ADDR_RESERVED}, /* TEST-NET-2 */
    {{203, 0, 113, 0}, 24, EGRESS_ADDR_RESERVED},  /* TEST-NET-3 */
    {{169, 254, 0, 0}, 16, EGRESS_ADDR_LINK_LOCAL},
    {{192, 168, 0, 0}, 16, EGRESS_ADDR_PRIVATE},
    {{198, 18, 0, 0}, 15, EGRESS_ADDR_PRIVATE}, /* benchmarking labs */
    {{172, 16, 0, 0}, 12, EGRESS_ADDR_PRIVATE},
    {{100, 64, 0, 0}, 10, EGRESS_ADDR_PRIVATE}, /* carrier-grade NAT */
    {{0, 0, 0, 0}, 8, EGRESS_ADDR_RESERVED},	/* "this network" */
    {{10, 0, 0, 0}, 8, EGRESS_ADDR_PRIVATE},
    {{127, 0, 0, 0}, 8, EGRESS_ADDR_LOOPBACK},
    {{224, 0, 0, 0}, 4, EGRESS_ADDR_RESERVED}, /* multicast */
    {{240, 0, 0, 0}, 4, EGRESS_ADDR_RESERVED}, /* future use */
};

static const struct class_rule rules6[] = {
    {{0}, 128, EGRESS_ADDR_LOOPBACK}, /* :: connects to lo */
    {{[15] = 1}, 128, EGRESS_ADDR_LOOPBACK},
    {{0xfd, 0x20, 0, 0xce, [14] = 0x02, [15] = 0x54},
     128,
     EGRESS_ADDR_METADATA},
    {{0xfd, 0, 0, 0xc1, [12] = 0xa9, 0xfe, 0xa9, 0xfe},
     128,
     EGRESS_ADDR_METADATA},
    {{0xfd, 0, 0, 0x42, [15] = 0x42}, 128, EGRESS_ADDR_METADATA},
    {{0xfe, 0x80, [12] = 0xa9, 0xfe, 0xa9, 0xfe}, 128, EGRESS_ADDR_METADATA},
    {{0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, [15] = 0x53},
     128,
     EGRESS_ADDR_HOST_SVC},
    {{0x20, 0x01, 0x0d, 0xb8, [15] = 2}, 128, EGRESS_ADDR_HOST_ALIAS},
    {{[0] = 1}, 64, EGRESS_ADDR_RESERVED},		  /* 100::/64 discard */
    {{0x20, 0x01, 0x0d, 0xb8}, 32, EGRESS_ADDR_RESERVED}, /* docs */
    {{0xfd, 0, 0x0e, 0xc2}, 32, EGRESS_ADDR_METADATA},
    {{0xfe, 0x80}, 10, EGRESS_ADDR_LINK_LOCAL},
    {{0xfe, 0xc0}, 10, EGRESS_ADDR_RESERVED}, /* old site-local */
    {{0xff}, 8, EGRESS_ADDR_RESERVED},	      /* multicast */
    {{0xfc}, 7, EGRESS_ADDR_PRIVATE},	      /* unique local */
};

static enum egress_addr_class match_rules(const struct class_rule *r, size_t n,
					  const uint8_t *a,
					  enum egress_addr_class dflt,
					  unsigned *prefix)
{
	for (size_t i = 0; i < n; i++)
		if (prefix_eq(a, r[i].net, r[i].prefix)) {
			*prefix = r[i].prefix;
			return r[i].cls;
		}
	*prefix = 0;
	return dflt;
}

/* The class and the prefix length of the range that gave it. */
static enum egress_addr_class classify(int family, const uint8_t *a,
				       unsigned *prefix)
{
	if (family == AF_INET)
		return match_rules(rules4, ARRAY_LEN(rules4), a,
				   EGRESS_ADDR_PUBLIC, prefix);
	if (family != AF_INET6) {
		*prefix = 0;
		return EGRESS_ADDR_RESERVED;
	}
	/* IPv6 forms that carry an IPv4 address: the IPv4 rules decide. */
	static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
	static const uint8_t zero12[12] = {0};
	unsigned p4;
	enum egress_addr_class c4;
	if (memcmp(a, v4mapped, 12) == 0) {
		c4 = classify(AF_INET, a + 12, &p4);
		*prefix = 96 + p4;
		return c4;
	}
	if (memcmp(a, zero12, 12) == 0) {
		enum egress_addr_class c = match_rules(
		    rules6, ARRAY_LEN(rules6), a, EGRESS_ADDR_RESERVED, prefix);
		if (*prefix == 128)
			return c; /* :: or ::1 */
		/* Deprecated IPv4-compatible ::a.b.c.d: never routed. */
		c4 = classify(AF_INET, a + 12, &p4);
		*prefix = 96 + p4;
		return (c4 == EGRESS_ADDR_PUBLIC ||
			c4 == EGRESS_ADDR_HOST_ALIAS)
			   ? EGRESS_ADDR_RESERVED
			   : c4;
	}
	/* The host alias is only ever the exact address: its embedded
	 * forms are plain reserved space. */
	if (memcmp(a, nat64, 12) == 0) {
		c4 = classify(AF_INET, a + 12, &p4);
		*prefix = 96 + p4;
		return c4 == EGRESS_ADDR_HOST_ALIAS ? EGRESS_ADDR_RESERVED : c4;
	}
	if (a[0] == 0x20 && a[1] == 0x02) { /* 6to4 2002:a.b.c.d::/48 */
		c4 = classify(AF_INET, a + 2, &p4);
		if (c4 != EGRESS_ADDR_PUBLIC) {
			*prefix = 16 + p4;
			return c4 == EGRESS_ADDR_HOST_ALIAS
				   ? EGRESS_ADDR_RESERVED
				   : c4;
		}
	}
	return match_rules(rules6, ARRAY_LEN(rules6), a, EGRESS_ADDR_PUBLIC,
			   prefix);
}

enum egress_addr_class egress_classify(int family, const void *addr)
{
	unsigned prefix;
	return classify(family, addr, &prefix);
}

void egress_host_alias_addrs(struct dns_addr out[2])
{
	memset(out, 0, 2 * sizeof(*out));
	out[0].family = AF_INET;
	inet_pton(AF_INET, EGRESS_HOST_ADDR4, out[0].bytes);
	out[1].family = AF_INET6;
	inet_pton(AF_INET6, EGRESS_HOST_ADDR6, out[1].bytes);
}

/* ---- names -------------------------------------------------------- */

/* Lowercased copy without one trailing dot into buf (DNS_NAME_MAX + 1);
 * false when too long or empty. */
static bool norm_name(const char *s, char *buf)
{
	size_t len = strlen(s);
	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > DNS_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		buf[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
	}
	buf[len] = '\0';
	return true;
}

/* name is suffix or ends in "." suffix; with strict, only the latter. */
static bool under(const char *name, const char *suffix, bool strict)
{
	size_t n = strlen(name), s = strlen(suffix);
	if (n == s)
		return !strict && strcmp(name, suffix) == 0;
	return n > s && name[n - s - 1] == '.' &&
	       strcmp(name + n - s, suffix) == 0;
}

/* Index of the first name entry matching name, or -1. */
static int match_name(const struct egress_policy *p, const char *name)
{
	for (size_t i = 0; i < p->n_entries; i++) {
		const struct entry *e = &p->entries[i];
		if (e->kind == ENT_NAME && strcmp(name, e->name) == 0)
			return (int)i;
		if (e->kind == ENT_WILDCARD && under(name, e->name, true))
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
	if (!norm_name(name, n))
		return EGRESS_NAME_DENY;
	/* Our own namespace is never asked of real DNS, in any mode. */
	if (strcmp(n, EGRESS_HOST_NAME) == 0)
		return p->host_alias || p->api_alias ? EGRESS_NAME_HOST_ALIAS
						     : EGRESS_NAME_DENY;
	if (under(n, "ccvm.internal", false))
		return EGRESS_NAME_DENY;
	if (strcmp(n, p->api_host) == 0) {
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

/* Fills e from an address or CIDR text; -EINVAL when it is neither. */
static int parse_net(const char *s, struct entry *e)
{
	char buf[INET6_ADDRSTRLEN];
	const char *slash = strchr(s, '/');
	size_t alen = slash ? (size_t)(slash - s) : strlen(s);
	if (alen == 0 || alen >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, alen);
	buf[alen] = '\0';
	memset(&e->net, 0, sizeof(e->net));
	unsigned max;
	if (inet_pton(AF_INET, buf, e->net.bytes) == 1) {
		e->net.family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, e->net.bytes) == 1) {
		e->net.family = AF_INET6;
		max = 128;
	} else {
		return -EINVAL;
	}
	long prefix = max;
	if (slash && !util_parse_long(slash + 1, 0, max, &prefix))
		return -EINVAL;
	e->prefix = (unsigned)prefix;
	/* ::ffff:a.b.c.d/96+n is the IPv4 range a.b.c.d/n. */
	if (e->net.family == AF_INET6 && e->prefix >= 96 &&
	    memcmp(e->net.bytes, v4mapped, 12) == 0) {
		egress_addr_normalize(&e->net);
		e->prefix -= 96;
	}
	clear_host_bits(&e->net, e->prefix);
	e->kind = ENT_NET;
	return 0;
}

/* What is wrong with a network entry no connection could ever use, or
 * NULL. */
static const char *net_problem(const struct entry *e)
{
	unsigned rp;
	enum egress_addr_class c = classify(e->net.family, e->net.bytes, &rp);
	if (e->prefix < rp)
		return NULL; /* wider than the special range */
	switch (c) {
	case EGRESS_ADDR_LOOPBACK:
		return "is host loopback, which the guest never reaches "
		       "directly; list " EGRESS_HOST_NAME " instead";
	case EGRESS_ADDR_HOST_ALIAS:
		return "is the address of " EGRESS_HOST_NAME "; list that "
		       "name instead";
	case EGRESS_ADDR_HOST_SVC:
		return "is a service on this host, which the guest never "
		       "reaches directly; list " EGRESS_HOST_NAME " instead";
	case EGRESS_ADDR_RESERVED:
		return "is a reserved range (multicast, broadcast or "
		       "documentation) that no connection can reach";
	default:
		return NULL;
	}
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
	if (!cfg_valid_egress(s))
		return entry_error(err, EINVAL, s,
				   "is not a host name, *.wildcard, IP "
				   "address or CIDR");
	struct entry e = {0};
	char n[DNS_NAME_MAX + 1] = "";
	if (parse_net(s, &e) == 0) {
		const char *why = net_problem(&e);
		if (why)
			return entry_error(err, EINVAL, s, why);
	} else if (s[0] == '*' && s[1] == '.') {
		if (!norm_name(s + 2, n))
			return entry_error(err, EINVAL, s, "is not valid");
		e.kind = ENT_WILDCARD;
	} else {
		if (!norm_name(s, n))
			return entry_error(err, EINVAL, s, "is not valid");
		if (strcmp(n, EGRESS_HOST_NAME) == 0) {
			p->host_alias = true;
			return 0;
		}
		if (under(n, "ccvm.internal", false))
			return entry_error(
			    err, EINVAL, s,
			    "is in ccvm's own namespace; only " EGRESS_HOST_NAME
			    " exists there");
		e.kind = ENT_NAME;
	}
	e.text = strdup(s);
	e.name = e.kind == ENT_NET ? NULL : strdup(n);
	if (!e.text || (e.kind != ENT_NET && !e.name)) {
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
	if (nports > 65535)
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
	    !norm_name(name, nn))
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
			if (addr_eq(&p->res[j].addr, &a) &&
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
	if (e->kind != ENT_NET || !in_net(a, &e->net, e->prefix))
		return false;
	switch (c) {
	case EGRESS_ADDR_PUBLIC:
	case EGRESS_ADDR_PRIVATE:
		return true;
	case EGRESS_ADDR_LINK_LOCAL: {
		/* Only an entry inside the link-local range itself. */
		unsigned rp;
		enum egress_addr_class ec =
		    classify(e->net.family, e->net.bytes, &rp);
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

static void connect_check(struct egress_policy *p, int family, const void *addr,
			  uint16_t port, struct egress_decision *d)
{
	if ((family != AF_INET && family != AF_INET6) || !addr) {
		DECIDE(d, EGRESS_DENY_INVALID,
		       "blocked: not an IPv4 or IPv6 destination");
		return;
	}
	struct dns_addr a = {.family = family};
	memcpy(a.bytes, addr, addr_len(family));
	egress_addr_normalize(&a);
	char as[INET6_ADDRSTRLEN + 2], ports[64];
	egress_addr_str(&a, as + 1, sizeof(as) - 1);
	const char *dst = as + 1;
	if (a.family == AF_INET6) { /* [v6]:port */
		as[0] = '[';
		size_t l = strlen(as);
		as[l] = ']';
		as[l + 1] = '\0';
		dst = as;
	}
	ports_text(p, ports, sizeof(ports));
	d->dest[0] = '\0';
	if (port == 0) {
		DECIDE(d, EGRESS_DENY_INVALID, "blocked: %s:0: port 0", dst);
		return;
	}

	enum egress_addr_class c = egress_classify(a.family, a.bytes);
	if (c == EGRESS_ADDR_HOST_ALIAS) {
		util_strlcpy(d->dest, EGRESS_HOST_NAME, sizeof(d->dest));
		bool api = p->api_alias && port == p->api_port;
		if (!p->host_alias && !api) {
			DECIDE(d, EGRESS_DENY_HOST_ALIAS,
			       "blocked: " EGRESS_HOST_NAME
			       ":%u: " EGRESS_HOST_NAME
			       " is not in egressAllowlist",
			       (unsigned)port);
		} else if (!api && !port_listed(p, port)) {
			DECIDE(d, EGRESS_DENY_PORT,
			       "blocked: " EGRESS_HOST_NAME ":%u: port not "
			       "in egressPorts (%s)",
			       (unsigned)port, ports);
		} else {
			d->target.family = a.family;
			d->target.bytes[a.family == AF_INET ? 0 : 15] =
			    a.family == AF_INET ? 127 : 1;
			if (a.family == AF_INET)
				d->target.bytes[3] = 1;
			DECIDE(d, EGRESS_ALLOW,
			       "allowed: " EGRESS_HOST_NAME ":%u -> host "
			       "loopback%s",
			       (unsigned)port,
			       api ? " (the API endpoint)" : "");
		}
		return;
	}
	/* The kernel's route says what is this host (route.h). */
	int local = 0;
	if (p->local && c != EGRESS_ADDR_LOOPBACK &&
	    c != EGRESS_ADDR_HOST_SVC && c != EGRESS_ADDR_RESERVED)
		local = p->local(a.family, a.bytes);
	if (local < 0) {
		DECIDE(d, EGRESS_DENY_HOST,
		       "blocked: %s:%u: cannot tell whether it is the host "
		       "itself (route lookup: %s)",
		       dst, (unsigned)port, strerror(-local));
		return;
	}
	if (c == EGRESS_ADDR_LOOPBACK || c == EGRESS_ADDR_HOST_SVC || local) {
		DECIDE(d, EGRESS_DENY_HOST,
		       "blocked: %s:%u is the host itself (%s); "
		       "list " EGRESS_HOST_NAME " to reach host services",
		       dst, (unsigned)port,
		       egress_addr_class_name(local ? EGRESS_ADDR_SELF : c));
		return;
	}
	if (c == EGRESS_ADDR_RESERVED) {
		DECIDE(d, EGRESS_DENY_RESERVED, "blocked: %s:%u is %s", dst,
		       (unsigned)port, egress_addr_class_name(c));
		return;
	}

	if (p->api_is_addr && addr_eq(&p->api_addr, &a) &&
	    port == p->api_port && c != EGRESS_ADDR_LINK_LOCAL &&
	    c != EGRESS_ADDR_METADATA) {
		d->target = a;
		DECIDE(d, EGRESS_ALLOW, "allowed: %s:%u (the API endpoint)",
		       dst, (unsigned)port);
		return;
	}

	/* A name the host resolved: its entry (or the API host) vouches.
	 * Link-local and metadata answers are refused (DNS rebinding). */
	struct resolved *port_denied = NULL;
	for (size_t i = 0; i < p->n_res; i++) {
		struct resolved *r = &p->res[i];
		if (!addr_eq(&r->addr, &a))
			continue;
		if (c == EGRESS_ADDR_LINK_LOCAL || c == EGRESS_ADDR_METADATA)
			break;
		if (!d->dest[0])
			util_strlcpy(d->dest, r->name, sizeof(d->dest));
		bool ok = p->n_entries == 0 || port_listed(p, port) ||
			  (r->entry == -1 && port == p->api_port);
		if (!ok) {
			port_denied = r;
			continue;
		}
		r->used = ++p->clock;
		d->target = a;
		if (r->entry >= 0 && p->entries[r->entry].kind == ENT_WILDCARD)
			DECIDE(d, EGRESS_ALLOW,
			       "allowed: %s:%u (%s, matches %s)", r->name,
			       (unsigned)port, dst, p->entries[r->entry].text);
		else
			DECIDE(d, EGRESS_ALLOW, "allowed: %s:%u (%s)%s",
			       r->name, (unsigned)port, dst,
			       r->entry == -2 ? " open mode" : "");
		return;
	}
	for (size_t i = 0; i < p->n_entries; i++) {
		const struct entry *e = &p->entries[i];
		if (!entry_admits(e, &a, c))
			continue;
		if (!port_listed(p, port)) {
			DECIDE(d, EGRESS_DENY_PORT,
			       "blocked: %s:%u: port not in egressPorts (%s)",
			       dst, (unsigned)port, ports);
			return;
		}
		d->target = a;
		DECIDE(d, EGRESS_ALLOW, "allowed: %s:%u (in %s)", dst,
		       (unsigned)port, e->text);
		return;
	}
	if (port_denied) {
		DECIDE(d, EGRESS_DENY_PORT,
		       "blocked: %s:%u (%s): port not in egressPorts (%s)",
		       port_denied->name, (unsigned)port, dst, ports);
		return;
	}
	if (c == EGRESS_ADDR_LINK_LOCAL || c == EGRESS_ADDR_METADATA) {
		DECIDE(d, EGRESS_DENY_LINK_LOCAL,
		       "blocked: %s:%u is %s; only an egressAllowlist entry "
		       "%s lets it through",
		       dst, (unsigned)port, egress_addr_class_name(c),
		       c == EGRESS_ADDR_METADATA ? "naming exactly this address"
						 : "inside 169.254.0.0/16 or "
						   "fe80::/10");
		return;
	}
	if (p->n_entries == 0) {
		d->target = a;
		DECIDE(d, EGRESS_ALLOW, "allowed: %s:%u (open mode, %s)", dst,
		       (unsigned)port, egress_addr_class_name(c));
		return;
	}
	DECIDE(d, EGRESS_DENY_UNLISTED,
	       "blocked: %s:%u is not in egressAllowlist (no allowed name "
	       "resolved to it, no listed address or range holds it)",
	       dst, (unsigned)port);
}

void egress_connect_check(struct egress_policy *p, int family, const void *addr,
			  uint16_t port, struct egress_decision *d)
{
	memset(d, 0, sizeof(*d));
	connect_check(p, family, addr, port, d);
	if (!d->dest[0] && (family == AF_INET || family == AF_INET6) && addr) {
		struct dns_addr a = {.family = family};
		memcpy(a.bytes, addr, addr_len(family));
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
	} else if (norm_name(host, n)) {
		p->api_is_addr = false;
		util_strlcpy(p->api_host, n, sizeof(p->api_host));
	} else {
		return -EINVAL;
	}
	p->api_alias = strcmp(p->api_host, EGRESS_HOST_NAME) == 0;
	p->api_port = port;
	return 0;
}
