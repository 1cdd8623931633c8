/* Address classes for the egress policy: see egress_addr.h. */
#include "net/egress_addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "util.h"

/* ---- addresses ---------------------------------------------------- */

size_t egress_addr_len(int family)
{
	return family == AF_INET ? 4 : 16;
}

bool egress_addr_eq(const struct dns_addr *a, const struct dns_addr *b)
{
	return a->family == b->family &&
	       memcmp(a->bytes, b->bytes, egress_addr_len(a->family)) == 0;
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

void egress_clear_host_bits(struct dns_addr *a, unsigned prefix)
{
	size_t len = egress_addr_len(a->family);
	for (size_t i = 0; i < len; i++) {
		unsigned bit = (unsigned)i * 8;
		if (bit >= prefix)
			a->bytes[i] = 0;
		else if (bit + 8 > prefix)
			a->bytes[i] &= (uint8_t)(0xFF << (8 - (prefix - bit)));
	}
}

bool egress_in_net(const struct dns_addr *a, const struct dns_addr *net,
		   unsigned prefix)
{
	return a->family == net->family &&
	       prefix_eq(a->bytes, net->bytes, prefix);
}

static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF};

bool egress_addr_v4mapped(const uint8_t *a)
{
	return memcmp(a, v4mapped, 12) == 0;
}

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
	case EGRESS_ADDR_PROXY:
		return EGRESS_PROXY_NAME;
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
    {{192, 0, 2, 3}, 32, EGRESS_ADDR_PROXY},
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
    {{0x20, 0x01, 0x0d, 0xb8, [15] = 3}, 128, EGRESS_ADDR_PROXY},
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
/* ccvm's own addresses (the host alias, the API proxy) are only ever the
 * exact address: their embedded IPv6 forms are plain reserved space. */
static bool ccvm_alias(enum egress_addr_class c)
{
	return c == EGRESS_ADDR_HOST_ALIAS || c == EGRESS_ADDR_PROXY;
}

enum egress_addr_class egress_classify_range(int family, const uint8_t *a,
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
		c4 = egress_classify_range(AF_INET, a + 12, &p4);
		*prefix = 96 + p4;
		return c4;
	}
	if (memcmp(a, zero12, 12) == 0) {
		enum egress_addr_class c = match_rules(
		    rules6, ARRAY_LEN(rules6), a, EGRESS_ADDR_RESERVED, prefix);
		if (*prefix == 128)
			return c; /* :: or ::1 */
		/* Deprecated IPv4-compatible ::a.b.c.d: never routed. */
		c4 = egress_classify_range(AF_INET, a + 12, &p4);
		*prefix = 96 + p4;
		return (c4 == EGRESS_ADDR_PUBLIC || ccvm_alias(c4))
			   ? EGRESS_ADDR_RESERVED
			   : c4;
	}
	if (memcmp(a, nat64, 12) == 0) {
		c4 = egress_classify_range(AF_INET, a + 12, &p4);
		*prefix = 96 + p4;
		return ccvm_alias(c4) ? EGRESS_ADDR_RESERVED : c4;
	}
	if (a[0] == 0x20 && a[1] == 0x02) { /* 6to4 2002:a.b.c.d::/48 */
		c4 = egress_classify_range(AF_INET, a + 2, &p4);
		if (c4 != EGRESS_ADDR_PUBLIC) {
			*prefix = 16 + p4;
			return ccvm_alias(c4) ? EGRESS_ADDR_RESERVED : c4;
		}
	}
	return match_rules(rules6, ARRAY_LEN(rules6), a, EGRESS_ADDR_PUBLIC,
			   prefix);
}

enum egress_addr_class egress_classify(int family, const void *addr)
{
	unsigned prefix;
	return egress_classify_range(family, addr, &prefix);
}

static void addr_pair(struct dns_addr out[2], const char *a4, const char *a6)
{
	memset(out, 0, 2 * sizeof(*out));
	out[0].family = AF_INET;
	inet_pton(AF_INET, a4, out[0].bytes);
	out[1].family = AF_INET6;
	inet_pton(AF_INET6, a6, out[1].bytes);
}

void egress_host_alias_addrs(struct dns_addr out[2])
{
	addr_pair(out, EGRESS_HOST_ADDR4, EGRESS_HOST_ADDR6);
}

void egress_proxy_addrs(struct dns_addr out[2])
{
	addr_pair(out, EGRESS_PROXY_ADDR4, EGRESS_PROXY_ADDR6);
}
