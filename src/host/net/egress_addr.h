#pragma once
/*
 * What an address is, for the egress policy (docs/egress.md): classes by
 * range (loopback, private, link-local, cloud metadata, reserved, ...),
 * the IPv4 forms hidden in IPv6 addresses, and the prefix arithmetic the
 * allowlist's CIDR entries need.  Pure functions over struct dns_addr.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns.h"

/*
 * The guest's name for the host.  The guest's DNS stub answers it with
 * these addresses (only when it is listed); a connection to them goes to
 * the host's 127.0.0.1 / ::1.  They come from the documentation ranges
 * (RFC 5737, RFC 3849), which by definition are never a real destination,
 * so they cannot shadow a host an allowlist names (100.64/10 would shadow
 * Tailscale's addresses, fd00::/8 somebody's ULA).
 */
#define EGRESS_HOST_NAME  "host.ccvm.internal"
#define EGRESS_HOST_ADDR4 "192.0.2.2"
#define EGRESS_HOST_ADDR6 "2001:db8::2"

/*
 * ccvm's API proxy (apiproxy.h): the guest's ANTHROPIC_BASE_URL names it,
 * the stub answers it with these addresses (only when the proxy is on),
 * and a connection to them on port 80 is served by the relay itself:
 * nothing on the host listens for it.
 */
#define EGRESS_PROXY_NAME  "api.ccvm.internal"
#define EGRESS_PROXY_ADDR4 "192.0.2.3"
#define EGRESS_PROXY_ADDR6 "2001:db8::3"
#define EGRESS_PROXY_PORT  80
#define EGRESS_PROXY_URL   "http://" EGRESS_PROXY_NAME

/* What an address is, most specific first. */
enum egress_addr_class {
	EGRESS_ADDR_PUBLIC = 0,
	EGRESS_ADDR_PRIVATE,	/* RFC 1918, 100.64/10, fc00::/7, 198.18/15 */
	EGRESS_ADDR_LINK_LOCAL, /* 169.254/16, fe80::/10 */
	EGRESS_ADDR_METADATA,	/* cloud instance metadata services */
	EGRESS_ADDR_LOOPBACK,	/* 127/8, ::1, 0.0.0.0, :: (reach the host) */
	EGRESS_ADDR_SELF,	/* the kernel routes it to this host */
	EGRESS_ADDR_HOST_ALIAS, /* EGRESS_HOST_ADDR4/6 */
	EGRESS_ADDR_RESERVED,	/* multicast, broadcast, documentation, ... */
	EGRESS_ADDR_HOST_SVC,	/* Tailscale's 100.100.100.100: this host */
	EGRESS_ADDR_PROXY,	/* EGRESS_PROXY_ADDR4/6 */
};

const char *egress_addr_class_name(enum egress_addr_class c);

/*
 * Classifies family/addr (AF_INET: 4 bytes, AF_INET6: 16).  IPv6 forms
 * that carry an IPv4 address (mapped ::ffff:0:0/96, compatible ::/96,
 * NAT64 64:ff9b::/96, 6to4 2002::/16) are classified by that address
 * when it is not public.  Does not know what the kernel routes to this
 * host (EGRESS_ADDR_SELF): egress_connect_check() asks (see
 * egress_set_local_check).
 */
enum egress_addr_class egress_classify(int family, const void *addr);

/* The same, and in *prefix the length of the range that decided (0 for
 * the default class). */
enum egress_addr_class egress_classify_range(int family, const uint8_t *addr,
					     unsigned *prefix);

/*
 * Rewrites an IPv4-mapped IPv6 address (::ffff:a.b.c.d) to AF_INET in
 * place; other addresses are left alone.  What the host connects to.
 */
void egress_addr_normalize(struct dns_addr *a);

/* true for the IPv4-mapped IPv6 form ::ffff:a.b.c.d (16 bytes). */
bool egress_addr_v4mapped(const uint8_t *a);

/* "1.2.3.4" or "2001:db8::1" (buf of at least 46 bytes). */
const char *egress_addr_str(const struct dns_addr *a, char *buf, size_t n);

/* The two addresses the stub answers host.ccvm.internal with. */
void egress_host_alias_addrs(struct dns_addr out[2]);
/* The two addresses the stub answers api.ccvm.internal with. */
void egress_proxy_addrs(struct dns_addr out[2]);

/* Bytes of an address of family (4 or 16). */
size_t egress_addr_len(int family);
bool egress_addr_eq(const struct dns_addr *a, const struct dns_addr *b);
/* a lies in net/prefix (same family, first prefix bits equal). */
bool egress_in_net(const struct dns_addr *a, const struct dns_addr *net,
		   unsigned prefix);
/* Zeroes every bit after the first prefix bits. */
void egress_clear_host_bits(struct dns_addr *a, unsigned prefix);
