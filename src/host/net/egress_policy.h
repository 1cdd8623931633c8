#pragma once
/*
 * The host-side egress policy (issue 6; the design is docs/egress.md).
 * Pure decisions over data the relay hands in, so every rule is unit
 * tested: which names the guest may look up, which (address, port) it may
 * connect to, what host.ccvm.internal means, and what was blocked.
 *
 * Modes.  The allowlist's entries other than host.ccvm.internal decide:
 * none = open mode (any public or private unicast destination, any port);
 * some = allowlist mode (only listed destinations, only egressPorts, plus
 * api.anthropic.com:443).  Listing host.ccvm.internal never turns open mode
 * into allowlist mode; it opens the host's loopback on egressPorts.
 *
 * Never reachable, in either mode: host loopback (127/8, ::1), the
 * unspecified addresses (0.0.0.0, ::, which Linux connects to loopback),
 * the IPv4-mapped/compatible/NAT64/6to4 forms of those, whatever the
 * kernel routes to this host (its own addresses, local prefix routes),
 * Tailscale's 100.100.100.100, multicast, broadcast and reserved ranges.
 * Reachable only through an explicit IP/CIDR entry that lies inside that
 * range: link-local (169.254/16, fe80::/10) and cloud metadata addresses
 * (by their exact address).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "options/config.h"
#include "dns.h"
#include "err.h"
#include "net/egress_addr.h"
#include "net/egress_parse.h"

/* The agent's API host: allowed on port 443 in every mode. */
#define EGRESS_API_HOST "api.anthropic.com"
#define EGRESS_API_PORT 443

/* Bounds (documented in docs/egress.md; the allowlist's in egress_parse.h). */
#define EGRESS_RESOLVED_MAX 4096 /* remembered (name, address) pairs */
#define EGRESS_BLOCKED_MAX  32	 /* distinct blocked destinations counted */

struct egress_policy;

/*
 * Builds a policy from the allowlist entries and egressPorts.  Each entry
 * goes through egress_entry_parse (egress_parse.h), the parser config
 * resolution uses too: an entry it refuses (bad syntax, or one that only
 * names host loopback, "127.0.0.1", "::1/128": use host.ccvm.internal) is
 * an error naming the entry.
 */
int egress_policy_new(const struct cfg_strlist *allow, const uint16_t *ports,
		      size_t nports, struct egress_policy **out,
		      struct ccvm_err *err);
int egress_policy_from_config(const struct ccvm_config *cfg,
			      struct egress_policy **out, struct ccvm_err *err);
void egress_policy_free(struct egress_policy *p);

/*
 * Replaces the API endpoint (api.anthropic.com:443 by default) with
 * host:port, from ANTHROPIC_BASE_URL: a name (looked up and remembered like
 * an allowed name, allowed on port only), an address literal, or
 * host.ccvm.internal (the host's loopback on exactly that port, whether or
 * not host.ccvm.internal is listed).  0 or -EINVAL.
 */
int egress_set_api(struct egress_policy *p, const char *host, uint16_t port);

/*
 * Turns ccvm's API proxy on (apiproxy.h): api.ccvm.internal resolves to
 * EGRESS_PROXY_ADDR4/6 and a connection there on port 80 is allowed with
 * decision.proxy set, in every mode.  The API host is no longer allowed
 * by itself: the guest does not need it (an allowlist may still list it).
 */
void egress_set_proxy(struct egress_policy *p);

bool egress_open_mode(const struct egress_policy *p);
bool egress_host_alias_listed(const struct egress_policy *p);

/* What the DNS stub does with a name (any case, trailing dot or not). */
enum egress_name_verdict {
	EGRESS_NAME_DENY = 0,	/* answer NXDOMAIN; no query leaves the host */
	EGRESS_NAME_RESOLVE,	/* the host resolves it and answers */
	EGRESS_NAME_HOST_ALIAS, /* answer egress_host_alias_addrs() */
	EGRESS_NAME_PROXY,	/* answer egress_proxy_addrs() */
};
enum egress_name_verdict egress_name_check(const struct egress_policy *p,
					   const char *name);
/* egress_name_check() != EGRESS_NAME_DENY. */
bool egress_name_allowed(const struct egress_policy *p, const char *name);

/*
 * Remembers that the host resolved name to addrs[0..n), so that
 * connections to those addresses are allowed (for name's ports).  Only
 * names egress_name_check() says to resolve are remembered (-EPERM
 * otherwise: the caller resolved something it should not have).  At most
 * 64 addresses per call are kept.  The table holds EGRESS_RESOLVED_MAX
 * (name, address) pairs; when full, the least recently used pair (noted
 * or matched by an allowed connection) is dropped, so a long session
 * keeps working for what it uses and a flood of lookups evicts only
 * stale pairs.  Pairs do not expire by TTL (see docs/egress.md).
 */
int egress_note_resolved(struct egress_policy *p, const char *name,
			 const struct dns_addr *addrs, size_t n);

/*
 * How the relay learns whether an address is this host: route_is_local
 * (route.h), the kernel's route to it; 1 yes, 0 no, -errno cannot tell,
 * which refuses the connection too.  Without one (unit tests), only
 * loopback and the host service addresses count.
 */
typedef int (*egress_local_fn)(int family, const void *addr);
void egress_set_local_check(struct egress_policy *p, egress_local_fn fn);

enum egress_verdict {
	EGRESS_ALLOW = 0,
	EGRESS_DENY_INVALID,	/* port 0, bad family */
	EGRESS_DENY_HOST,	/* loopback, unspecified, this host */
	EGRESS_DENY_HOST_ALIAS, /* host.ccvm.internal not listed */
	EGRESS_DENY_RESERVED,	/* not a unicast destination */
	EGRESS_DENY_LINK_LOCAL, /* link-local or metadata, not listed */
	EGRESS_DENY_PORT,	/* destination fine, port not allowed */
	EGRESS_DENY_UNLISTED,	/* allowlist mode: not resolved, not listed */
};

struct egress_decision {
	enum egress_verdict verdict;
	struct dns_addr target; /* where to connect (allowed only): mapped
				   IPv4 unwrapped, host alias -> loopback */
	bool proxy;		/* allowed: served by ccvm's API proxy */
	bool by_name;		/* allowed because an allowed name resolved to
				   it (allowlist mode) */
	char why[256];		/* one line: "allowed: ..." / "blocked: ..." */
	/* How the exit summary names the destination: the name the host
	 * resolved to this address, host.ccvm.internal, or the address. */
	char dest[DNS_NAME_MAX + 1];
};

/*
 * Decides a TCP connection from the guest to family/addr (4 or 16 bytes,
 * network order) port.  Rules in order: invalid -> host alias -> host
 * itself -> reserved -> resolved-name memory -> listed ranges -> open mode.
 * Marks a matching resolved pair as used.
 */
void egress_connect_check(struct egress_policy *p, int family, const void *addr,
			  uint16_t port, struct egress_decision *d);

/* The same as a yes/no with the reason in why (whysz may be 0). */
bool egress_connect_allowed(struct egress_policy *p, int family,
			    const void *addr, uint16_t port, char *why,
			    size_t whysz);

/*
 * Counts one blocked destination for the exit summary: host_or_ip is the
 * name (denied lookup, port 0) or the address text; IPv6 addresses get
 * brackets in the summary.  After EGRESS_BLOCKED_MAX distinct ones, the
 * rest are counted together as "others".
 */
void egress_note_blocked(struct egress_policy *p, const char *host_or_ip,
			 uint16_t port);

/*
 * Prints, when anything was blocked, one line:
 *   ccvm: egress blocked: evil.example:443 (3), 10.1.2.3:22 (1)
 * most frequent first (then first seen); a denied lookup shows as
 * "name (lookup)"; "+N others (M)" closes when the table overflowed.
 * Returns the number of blocked attempts.
 */
unsigned long egress_summary(const struct egress_policy *p, FILE *out);
