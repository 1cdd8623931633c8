#pragma once
/*
 * The egressAllowlist entry parser: the one function that says what an
 * entry is and what is wrong with it.  Config resolution (options/) calls
 * it for every entry of the file, so `ccvm --ccvm-dump-config` refuses
 * what the session's policy (egress_policy.c, which calls it too) would
 * refuse, before any image is built.
 */
#include <stdbool.h>

#include "dns.h"
#include "net/egress_addr.h"

/* Bounds (documented in docs/egress.md). */
#define EGRESS_MAX_ENTRIES 1024	 /* allowlist entries */
#define EGRESS_MAX_PORTS   65535 /* egressPorts items */

enum egress_entry_kind {
	EGRESS_ENTRY_NAME = 0,	 /* a host name */
	EGRESS_ENTRY_WILDCARD,	 /* *.suffix: names under suffix */
	EGRESS_ENTRY_NET,	 /* an address or CIDR */
	EGRESS_ENTRY_HOST_ALIAS, /* host.ccvm.internal */
};

struct egress_entry {
	enum egress_entry_kind kind;
	/* NAME: the name; WILDCARD: the suffix after "*." (both lowercase,
	 * no trailing dot). */
	char name[DNS_NAME_MAX + 1];
	struct dns_addr net; /* NET: host bits cleared, mapped IPv4 as IPv4 */
	unsigned prefix;     /* NET */
};

/*
 * Parses one entry: a host name, *.wildcard, IP address or CIDR.  NULL
 * when it is one a connection can use (e filled), else what is wrong, a
 * phrase that follows the quoted entry in a message ("\"127.0.0.1\" is
 * host loopback, ...").  Refused besides bad syntax: URLs, ports, names in
 * ccvm.internal other than host.ccvm.internal, and addresses or ranges no
 * connection can ever reach (host loopback, the host alias's address,
 * services on this host, reserved ranges).
 */
const char *egress_entry_parse(const char *s, struct egress_entry *e);

/* Lowercased copy of s without one trailing dot into buf; false when that
 * is empty or longer than DNS_NAME_MAX. */
bool egress_name_norm(const char *s, char buf[DNS_NAME_MAX + 1]);

/* name is suffix or ends in "." suffix; with strict, only the latter. */
bool egress_name_under(const char *name, const char *suffix, bool strict);
