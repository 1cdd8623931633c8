/* The egressAllowlist entry parser: see egress_parse.h. */
#include "net/egress_parse.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "util.h"

bool egress_name_norm(const char *s, char buf[DNS_NAME_MAX + 1])
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

bool egress_name_under(const char *name, const char *suffix, bool strict)
{
	size_t n = strlen(name), s = strlen(suffix);
	if (n == s)
		return !strict && strcmp(name, suffix) == 0;
	return n > s && name[n - s - 1] == '.' &&
	       strcmp(name + n - s, suffix) == 0;
}

/* A DNS host name: labels of 1-63 letters, digits and inner '-', at most
 * 253 characters, optional final '.', last label not all digits. */
static bool valid_hostname(const char *s)
{
	size_t len = strlen(s);
	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return false;
	size_t label = 0;
	bool all_digits = true;
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? s[i] : '.';
		if (c == '.') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return false;
			if (i == len && all_digits)
				return false;
			label = 0;
			all_digits = true;
			continue;
		}
		bool digit = c >= '0' && c <= '9';
		bool alnum =
		    digit || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		if (!alnum && !(c == '-' && label > 0))
			return false;
		if (!digit)
			all_digits = false;
		label++;
	}
	return true;
}

/* What is wrong with s as an entry's text, or NULL. */
static const char *syntax_problem(const char *s)
{
	const char *what = "is not a host name, *.wildcard, IP address or CIDR";
	if (*s == '\0')
		return "is empty";
	if (strstr(s, "://"))
		return "is a URL; give only the host name";
	const char *slash = strchr(s, '/');
	if (slash) {
		char addr[INET6_ADDRSTRLEN];
		size_t alen = (size_t)(slash - s);
		if (alen == 0 || alen >= sizeof(addr))
			return "is not a valid CIDR (address/prefix)";
		memcpy(addr, s, alen);
		addr[alen] = '\0';
		unsigned char bin[16];
		long max;
		if (inet_pton(AF_INET, addr, bin) == 1)
			max = 32;
		else if (inet_pton(AF_INET6, addr, bin) == 1)
			max = 128;
		else
			return "is not a valid CIDR: bad IP address before '/'";
		const char *p = slash + 1;
		size_t plen = strlen(p);
		bool digits =
		    plen >= 1 && plen <= 3 && strspn(p, "0123456789") == plen;
		long prefix;
		if (!digits || (plen > 1 && p[0] == '0') ||
		    !util_parse_long(p, 0, max, &prefix))
			return max == 32
				   ? "is not a valid CIDR: prefix must be "
				     "0..32 for IPv4"
				   : "is not a valid CIDR: prefix must be "
				     "0..128 for IPv6";
		return NULL;
	}
	unsigned char bin[16];
	if (inet_pton(AF_INET, s, bin) == 1 || inet_pton(AF_INET6, s, bin) == 1)
		return NULL;
	if (strchr(s, ':'))
		return "is not a valid IPv6 address (a port goes in "
		       "egressPorts, not here)";
	if (s[0] == '*') {
		if (s[1] != '.' || !valid_hostname(s + 2))
			return "is not a valid wildcard (use *.example.com)";
		return NULL;
	}
	if (strspn(s, "0123456789.") == strlen(s))
		return "is not a valid IPv4 address";
	return valid_hostname(s) ? NULL : what;
}

/* Fills e from an address or CIDR text; -EINVAL when it is neither. */
static int parse_net(const char *s, struct egress_entry *e)
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
	    egress_addr_v4mapped(e->net.bytes)) {
		egress_addr_normalize(&e->net);
		e->prefix -= 96;
	}
	egress_clear_host_bits(&e->net, e->prefix);
	e->kind = EGRESS_ENTRY_NET;
	return 0;
}

/* What is wrong with a network entry no connection could ever use, or
 * NULL. */
static const char *net_problem(const struct egress_entry *e)
{
	unsigned rp;
	enum egress_addr_class c =
	    egress_classify_range(e->net.family, e->net.bytes, &rp);
	if (e->prefix < rp)
		return NULL; /* wider than the special range */
	switch (c) {
	case EGRESS_ADDR_LOOPBACK:
		return "is host loopback, which the guest never reaches "
		       "directly; list " EGRESS_HOST_NAME " instead";
	case EGRESS_ADDR_HOST_ALIAS:
		return "is the address of " EGRESS_HOST_NAME "; list that "
		       "name instead";
	case EGRESS_ADDR_PROXY:
		return "is the address of " EGRESS_PROXY_NAME ", ccvm's API "
		       "proxy, which is always reachable when it is on";
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

const char *egress_entry_parse(const char *s, struct egress_entry *e)
{
	memset(e, 0, sizeof(*e));
	const char *why = syntax_problem(s);
	if (why)
		return why;
	if (parse_net(s, e) == 0)
		return net_problem(e);
	bool wild = s[0] == '*' && s[1] == '.';
	e->kind = wild ? EGRESS_ENTRY_WILDCARD : EGRESS_ENTRY_NAME;
	if (!egress_name_norm(wild ? s + 2 : s, e->name))
		return "is not valid";
	if (wild)
		return NULL;
	if (strcmp(e->name, EGRESS_HOST_NAME) == 0) {
		e->kind = EGRESS_ENTRY_HOST_ALIAS;
		return NULL;
	}
	if (egress_name_under(e->name, "ccvm.internal", false))
		return "is in ccvm's own namespace; only " EGRESS_HOST_NAME
		       " exists there";
	return NULL;
}
