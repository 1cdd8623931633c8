/* Unit tests for the host-side egress policy (src/host/net/egress_policy.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "net/egress_policy.h"
#include "util.h"

/* A policy from a NULL-ended allowlist and a 0-ended port list. */
static struct egress_policy *mk(const char *const *allow, const uint16_t *ports)
{
	struct cfg_strlist l = {0};
	char *v[64];
	while (allow && allow[l.n])
		v[l.n] = (char *)allow[l.n], l.n++;
	l.v = v;
	size_t np = 0;
	while (ports && ports[np])
		np++;
	struct egress_policy *p = NULL;
	struct ccvm_err e = {0};
	int rc = egress_policy_new(&l, ports, np, &p, &e);
	if (rc < 0)
		fail_msg("egress_policy_new: %s", e.msg);
	return p;
}

/* The error text of a policy that must not build. */
static const char *mk_fails(const char *entry)
{
	static struct ccvm_err e;
	struct cfg_strlist l = {.v = (char **)&entry, .n = 1};
	uint16_t port = 443;
	struct egress_policy *p = NULL;
	memset(&e, 0, sizeof(e));
	if (egress_policy_new(&l, &port, 1, &p, &e) != -EINVAL)
		fail_msg("%s: accepted", entry);
	assert_null(p);
	return e.msg;
}

static struct dns_addr A(const char *s) {
	struct dns_addr a = {0};
	if (inet_pton(AF_INET, s, a.bytes) == 1)
		a.family = AF_INET;
	else if (inet_pton(AF_INET6, s, a.bytes) == 1)
		a.family = AF_INET6;
	else
		fail_msg("bad address %s", s);
	return a;
}

static char last_why[256];

static enum egress_verdict conn(struct egress_policy *p, const char *ip,
				uint16_t port)
{
	struct dns_addr a = A(ip);
	struct egress_decision d;
	egress_connect_check(p, a.family, a.bytes, port, &d);
	util_strlcpy(last_why, d.why, sizeof(last_why));
	/* The yes/no form agrees. */
	char why[256];
	bool ok = egress_connect_allowed(p, a.family, a.bytes, port, why,
					 sizeof(why));
	assert_int_equal(ok, d.verdict == EGRESS_ALLOW);
	assert_string_equal(why, d.why);
	assert_true(strncmp(d.why, ok ? "allowed: " : "blocked: ", 9) == 0);
	return d.verdict;
}

static void note(struct egress_policy *p, const char *name, const char *ip)
{
	struct dns_addr a = A(ip);
	assert_int_equal(egress_note_resolved(p, name, &a, 1), 0);
}

static const uint16_t p443[] = {443, 0};

/* A stand-in for the kernel's answer (route_is_local): 10.99.0.0/24 is a
 * local prefix route, 192.168.1.5 and 2001:470::5 interface addresses,
 * 10.98.0.1 cannot be looked up; the rest goes elsewhere. */
static unsigned fake_calls;
static int fake_local(int family, const void *addr)
{
	const uint8_t *b = addr;
	fake_calls++;
	if (family == AF_INET6) {
		struct dns_addr a = A("2001:470::5");
		return memcmp(b, a.bytes, 16) == 0;
	}
	assert_int_equal(family, AF_INET);
	if (b[0] == 10 && b[1] == 99 && b[2] == 0)
		return 1;
	if (b[0] == 10 && b[1] == 98 && b[2] == 0 && b[3] == 1)
		return -EIO;
	return b[0] == 192 && b[1] == 168 && b[2] == 1 && b[3] == 5;
}

static void test_allowed_name_and_port(void **state)
{
	(void)state;
	const char *allow[] = {"github.com", NULL};
	struct egress_policy *p = mk(allow, p443);
	assert_false(egress_open_mode(p));
	assert_int_equal(egress_name_check(p, "github.com"),
			 EGRESS_NAME_RESOLVE);
	assert_true(egress_name_allowed(p, "GitHub.COM."));
	/* Before the host resolved it, its address is just an address. */
	assert_int_equal(conn(p, "140.82.121.4", 443), EGRESS_DENY_UNLISTED);
	note(p, "github.com", "140.82.121.4");
	assert_int_equal(conn(p, "140.82.121.4", 443), EGRESS_ALLOW);
	assert_non_null(strstr(last_why, "github.com"));
	/* Other port refused, and the reason says why. */
	assert_int_equal(conn(p, "140.82.121.4", 22), EGRESS_DENY_PORT);
	assert_non_null(strstr(last_why, "port"));
	assert_non_null(strstr(last_why, "github.com"));
	/* Unlisted names, including look-alikes, are not resolved. */
	assert_false(egress_name_allowed(p, "evil.example"));
	assert_false(egress_name_allowed(p, "api.github.com"));
	assert_false(egress_name_allowed(p, "github.com.evil.example"));
	assert_false(egress_name_allowed(p, "xgithub.com"));
	assert_false(egress_name_allowed(p, ""));
	assert_false(egress_name_allowed(p, "."));
	/* Nor remembered: the relay must not have resolved them. */
	struct dns_addr a = A("6.6.6.6");
	assert_int_equal(egress_note_resolved(p, "evil.example", &a, 1),
			 -EPERM);
	assert_int_equal(conn(p, "6.6.6.6", 443), EGRESS_DENY_UNLISTED);
	egress_policy_free(p);
}

static void test_wildcard(void **state)
{
	(void)state;
	const char *allow[] = {"*.Example.com", NULL};
	struct egress_policy *p = mk(allow, p443);
	assert_true(egress_name_allowed(p, "a.example.com"));
	assert_true(egress_name_allowed(p, "A.B.EXAMPLE.COM."));
	/* Not the apex: list it too when wanted. */
	assert_false(egress_name_allowed(p, "example.com"));
	assert_false(egress_name_allowed(p, "badexample.com"));
	assert_false(egress_name_allowed(p, "a.example.com.evil"));
	note(p, "cdn.example.com", "93.184.216.34");
	assert_int_equal(conn(p, "93.184.216.34", 443), EGRESS_ALLOW);
	assert_non_null(strstr(last_why, "*.Example.com"));
	egress_policy_free(p);
}

static void test_cidr_v4_v6(void **state)
{
	(void)state;
	const char *allow[] = {"10.1.2.3/16", "2001:4860::/32", "8.8.4.4",
			       "::ffff:192.168.7.0/120", NULL};
	const uint16_t ports[] = {443, 22, 0};
	struct egress_policy *p = mk(allow, ports);
	/* Host bits under the prefix are ignored. */
	assert_int_equal(conn(p, "10.1.0.1", 22), EGRESS_ALLOW);
	assert_int_equal(conn(p, "10.1.255.254", 443), EGRESS_ALLOW);
	assert_int_equal(conn(p, "10.2.0.1", 443), EGRESS_DENY_UNLISTED);
	assert_int_equal(conn(p, "10.1.0.1", 80), EGRESS_DENY_PORT);
	assert_int_equal(conn(p, "2001:4860:4860::8888", 443), EGRESS_ALLOW);
	assert_int_equal(conn(p, "2001:4861::1", 443), EGRESS_DENY_UNLISTED);
	assert_int_equal(conn(p, "8.8.4.4", 443), EGRESS_ALLOW);
	assert_int_equal(conn(p, "8.8.4.5", 443), EGRESS_DENY_UNLISTED);
	/* A mapped CIDR is the IPv4 range; mapped destinations too. */
	assert_int_equal(conn(p, "192.168.7.9", 443), EGRESS_ALLOW);
	assert_int_equal(conn(p, "::ffff:192.168.7.9", 443), EGRESS_ALLOW);
	assert_int_equal(conn(p, "::ffff:10.1.0.1", 22), EGRESS_ALLOW);
	assert_int_equal(conn(p, "192.168.8.1", 443), EGRESS_DENY_UNLISTED);
	/* No names at all in this list. */
	assert_false(egress_name_allowed(p, "dns.google"));
	egress_policy_free(p);
}

static void test_loopback_never(void **state)
{
	(void)state;
	const char *allow[] = {"0.0.0.0/0", "::/0", NULL};
	const uint16_t ports[] = {443, 8080, 0};
	struct egress_policy *open = mk(NULL, ports);
	struct egress_policy *all = mk(allow, ports);
	const char *host[] = {"127.0.0.1",
			      "127.8.9.10",
			      "0.0.0.0",
			      "::1",
			      "::",
			      "::ffff:127.0.0.1",
			      "::ffff:0.0.0.0",
			      "::127.0.0.1",
			      "64:ff9b::7f00:1",
			      "2002:7f00:1::1"};
	for (size_t i = 0; i < ARRAY_LEN(host); i++) {
		enum egress_verdict v = conn(open, host[i], 8080);
		if (v != EGRESS_DENY_HOST && v != EGRESS_DENY_RESERVED)
			fail_msg("open mode let %s through: %s", host[i],
				 last_why);
		v = conn(all, host[i], 443);
		if (v != EGRESS_DENY_HOST && v != EGRESS_DENY_RESERVED)
			fail_msg("0.0.0.0/0 let %s through: %s", host[i],
				 last_why);
	}
	assert_int_equal(conn(open, "::ffff:127.0.0.1", 443), EGRESS_DENY_HOST);
	assert_non_null(strstr(last_why, EGRESS_HOST_NAME));
	/* Even a name resolved to loopback (rebinding) stays closed. */
	note(all, "api.anthropic.com", "127.0.0.1");
	assert_int_equal(conn(all, "127.0.0.1", 443), EGRESS_DENY_HOST);
	/* What the kernel delivers here counts as the host (the fake says
	 * so of 192.168.1.5 and 2001:470::5). */
	egress_set_local_check(open, fake_local);
	assert_int_equal(conn(open, "192.168.1.5", 443), EGRESS_DENY_HOST);
	assert_int_equal(conn(open, "::ffff:192.168.1.5", 443),
			 EGRESS_DENY_HOST);
	assert_int_equal(conn(open, "2001:470::5", 443), EGRESS_DENY_HOST);
	assert_int_equal(conn(open, "192.168.1.6", 443), EGRESS_ALLOW);
	egress_policy_free(open);
	egress_policy_free(all);
}

static void test_loopback_entries_rejected(void **state)
{
	(void)state;
	const char *bad[] = {
	    "127.0.0.1",     "127.0.0.0/8",    "::1",
	    "::1/128",	     "0.0.0.0",	       "::ffff:127.0.0.1",
	    "192.0.2.2",     "224.0.0.0/4",    "not a host",
	    "ccvm.internal", "a.ccvm.internal"};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		const char *msg = mk_fails(bad[i]);
		assert_non_null(strstr(msg, "egressAllowlist"));
		char q[64];
		snprintf(q, sizeof(q), "\"%s\"", bad[i]);
		if (!strstr(msg, q))
			fail_msg("%s: message does not name it: %s", bad[i],
				 msg);
	}
	assert_non_null(strstr(mk_fails("127.0.0.1"), EGRESS_HOST_NAME));
	/* Ranges wider than loopback are fine (they just skip it). */
	const char *ok[] = {"0.0.0.0/0", "::/0", "120.0.0.0/5", NULL};
	egress_policy_free(mk(ok, p443));
}

static void test_host_alias(void **state)
{
	(void)state;
	const uint16_t ports[] = {8080, 0};
	struct egress_policy *open = mk(NULL, ports);
	/* Not listed: the name does not resolve, the address goes nowhere. */
	assert_int_equal(egress_name_check(open, "host.ccvm.internal"),
			 EGRESS_NAME_DENY);
	assert_int_equal(conn(open, EGRESS_HOST_ADDR4, 8080),
			 EGRESS_DENY_HOST_ALIAS);
	assert_int_equal(conn(open, EGRESS_HOST_ADDR6, 8080),
			 EGRESS_DENY_HOST_ALIAS);
	/* Nothing else under ccvm.internal goes to real DNS, in open mode
	 * too. */
	assert_false(egress_name_allowed(open, "x.ccvm.internal"));
	assert_false(egress_name_allowed(open, "ccvm.internal"));
	assert_true(egress_name_allowed(open, "anything.example"));
	egress_policy_free(open);

	/* Listed alone: still open mode, plus the host on egressPorts. */
	const char *allow[] = {"Host.CCVM.internal", NULL};
	struct egress_policy *p = mk(allow, ports);
	assert_true(egress_open_mode(p));
	assert_true(egress_host_alias_listed(p));
	assert_int_equal(egress_name_check(p, "host.ccvm.internal."),
			 EGRESS_NAME_HOST_ALIAS);
	struct dns_addr alias[2];
	egress_host_alias_addrs(alias);
	char buf[64];
	assert_string_equal(egress_addr_str(&alias[0], buf, sizeof(buf)),
			    EGRESS_HOST_ADDR4);
	assert_string_equal(egress_addr_str(&alias[1], buf, sizeof(buf)),
			    EGRESS_HOST_ADDR6);
	/* It is not resolved on the host, so never "noted". */
	assert_int_equal(
	    egress_note_resolved(p, "host.ccvm.internal", alias, 2), -EPERM);
	struct egress_decision d;
	egress_connect_check(p, AF_INET, alias[0].bytes, 8080, &d);
	assert_int_equal(d.verdict, EGRESS_ALLOW);
	assert_int_equal(d.target.family, AF_INET);
	assert_memory_equal(d.target.bytes, "\x7f\0\0\x01", 4);
	assert_string_equal(d.dest, EGRESS_HOST_NAME);
	egress_connect_check(p, AF_INET6, alias[1].bytes, 8080, &d);
	assert_int_equal(d.verdict, EGRESS_ALLOW);
	assert_int_equal(d.target.family, AF_INET6);
	assert_memory_equal(d.target.bytes, &in6addr_loopback, 16);
	/* Mapped form of the alias is the alias. */
	assert_int_equal(conn(p, "::ffff:192.0.2.2", 8080), EGRESS_ALLOW);
	/* Ports from egressPorts only. */
	assert_int_equal(conn(p, EGRESS_HOST_ADDR4, 443), EGRESS_DENY_PORT);
	/* Loopback by its own address stays closed. */
	assert_int_equal(conn(p, "127.0.0.1", 8080), EGRESS_DENY_HOST);
	/* Only the exact alias: its neighbours and embedded forms are not. */
	assert_int_equal(conn(p, "192.0.2.3", 8080), EGRESS_DENY_RESERVED);
	assert_int_equal(conn(p, "64:ff9b::c000:202", 8080),
			 EGRESS_DENY_RESERVED);
	assert_int_equal(conn(p, "2002:c000:202::1", 8080),
			 EGRESS_DENY_RESERVED);
	egress_policy_free(p);

	/* With other entries: allowlist mode, alias still there. */
	const char *both[] = {"github.com", "host.ccvm.internal", NULL};
	p = mk(both, ports);
	assert_false(egress_open_mode(p));
	assert_int_equal(conn(p, EGRESS_HOST_ADDR4, 8080), EGRESS_ALLOW);
	assert_false(egress_name_allowed(p, "example.org"));
	egress_policy_free(p);
}

static void test_api_host_always(void **state)
{
	(void)state;
	const char *allow[] = {"github.com", NULL};
	const uint16_t none[] = {0};
	/* Even with no ports at all, the API host gets 443. */
	struct egress_policy *p = mk(allow, none);
	assert_true(egress_name_allowed(p, "API.Anthropic.com"));
	assert_false(egress_name_allowed(p, "x.api.anthropic.com"));
	assert_false(egress_name_allowed(p, "anthropic.com"));
	note(p, "api.anthropic.com", "160.79.104.10");
	note(p, "api.anthropic.com", "2607:6bc0::10");
	assert_int_equal(conn(p, "160.79.104.10", 443), EGRESS_ALLOW);
	assert_int_equal(conn(p, "2607:6bc0::10", 443), EGRESS_ALLOW);
	assert_int_equal(conn(p, "160.79.104.10", 80), EGRESS_DENY_PORT);
	/* github.com gets no port at all here. */
	note(p, "github.com", "140.82.121.4");
	assert_int_equal(conn(p, "140.82.121.4", 443), EGRESS_DENY_PORT);
	egress_policy_free(p);
}

/* ccvm's API proxy (issue 22): api.ccvm.internal only while it is on,
 * port 80 only, in every mode; the API host itself is no longer let
 * through by itself. */
static void test_api_proxy(void **state)
{
	(void)state;
	const char *allow[] = {"github.com", NULL};
	struct egress_policy *off = mk(NULL, p443);
	assert_int_equal(egress_name_check(off, "api.ccvm.internal"),
			 EGRESS_NAME_DENY);
	assert_int_equal(conn(off, EGRESS_PROXY_ADDR4, 80),
			 EGRESS_DENY_RESERVED);
	assert_non_null(strstr(last_why, "off"));
	egress_policy_free(off);

	for (int mode = 0; mode < 2; mode++) {
		struct egress_policy *p = mk(mode ? allow : NULL, p443);
		egress_set_proxy(p);
		assert_int_equal(egress_name_check(p, "API.ccvm.internal."),
				 EGRESS_NAME_PROXY);
		struct dns_addr a[2];
		egress_proxy_addrs(a);
		for (int i = 0; i < 2; i++) {
			struct egress_decision d;
			egress_connect_check(p, a[i].family, a[i].bytes, 80,
					     &d);
			assert_int_equal(d.verdict, EGRESS_ALLOW);
			assert_true(d.proxy);
			assert_string_equal(d.dest, "api.ccvm.internal");
			egress_connect_check(p, a[i].family, a[i].bytes, 443,
					     &d);
			assert_int_equal(d.verdict, EGRESS_DENY_PORT);
			assert_false(d.proxy);
		}
		/* The API host: in allowlist mode no longer allowed by
		 * itself; in open mode like any name. */
		assert_int_equal(egress_name_allowed(p, "api.anthropic.com"),
				 mode == 0);
		/* Not noted: the host never resolves it. */
		assert_int_equal(
		    egress_note_resolved(p, "api.ccvm.internal", a, 2), -EPERM);
		/* Another address of the proxy's range is nothing. */
		assert_int_equal(conn(p, "192.0.2.4", 80),
				 EGRESS_DENY_RESERVED);
		egress_policy_free(p);
	}
	/* Listed by the user, the API host is allowed as any entry. */
	const char *api[] = {"api.anthropic.com", NULL};
	struct egress_policy *p = mk(api, p443);
	egress_set_proxy(p);
	assert_true(egress_name_allowed(p, "api.anthropic.com"));
	egress_policy_free(p);
}

static void test_resolved_memory(void **state)
{
	(void)state;
	const char *allow[] = {"registry.npmjs.org", NULL};
	struct egress_policy *p = mk(allow, p443);
	/* The IP changes between two lookups: both stay good. */
	note(p, "registry.npmjs.org", "104.16.1.34");
	assert_int_equal(conn(p, "104.16.1.34", 443), EGRESS_ALLOW);
	note(p, "Registry.NPMJS.org.", "104.16.2.34");
	assert_int_equal(conn(p, "104.16.2.34", 443), EGRESS_ALLOW);
	assert_int_equal(conn(p, "104.16.1.34", 443), EGRESS_ALLOW);
	assert_non_null(strstr(last_why, "registry.npmjs.org"));
	/* Several at once, IPv4-mapped answers stored as IPv4. */
	struct dns_addr many[] = {A("104.16.3.34"), A("::ffff:104.16.4.34"),
				  A("2606:4700::6810:123")};
	assert_int_equal(egress_note_resolved(p, "registry.npmjs.org", many, 3),
			 0);
	assert_int_equal(conn(p, "104.16.4.34", 443), EGRESS_ALLOW);
	assert_int_equal(conn(p, "2606:4700::6810:123", 443), EGRESS_ALLOW);
	/* The decision names the destination for the summary. */
	struct egress_decision d;
	struct dns_addr a = A("104.16.3.34");
	egress_connect_check(p, AF_INET, a.bytes, 22, &d);
	assert_int_equal(d.verdict, EGRESS_DENY_PORT);
	assert_string_equal(d.dest, "registry.npmjs.org");
	a = A("9.9.9.9");
	egress_connect_check(p, AF_INET, a.bytes, 443, &d);
	assert_string_equal(d.dest, "9.9.9.9");
	/* A DNS answer pointing at metadata or link-local is refused. */
	note(p, "registry.npmjs.org", "169.254.169.254");
	assert_int_equal(conn(p, "169.254.169.254", 443),
			 EGRESS_DENY_LINK_LOCAL);
	egress_policy_free(p);
}

static void test_eviction_lru(void **state)
{
	(void)state;
	const char *allow[] = {"*.example.com", NULL};
	struct egress_policy *p = mk(allow, p443);
	note(p, "keep.example.com", "93.184.0.1");
	note(p, "old.example.com", "93.184.0.2");
	/* Fill the table; keep the first pair in use as we go. */
	char name[64];
	for (unsigned i = 0; i < EGRESS_RESOLVED_MAX; i++) {
		struct dns_addr a = A("44.0.0.0");
		a.bytes[2] = (uint8_t)(i >> 8);
		a.bytes[3] = (uint8_t)i;
		snprintf(name, sizeof(name), "n%u.example.com", i);
		assert_int_equal(egress_note_resolved(p, name, &a, 1), 0);
		if (i % 512 == 0)
			assert_int_equal(conn(p, "93.184.0.1", 443),
					 EGRESS_ALLOW);
	}
	assert_int_equal(conn(p, "93.184.0.1", 443), EGRESS_ALLOW);
	assert_int_equal(conn(p, "93.184.0.2", 443), EGRESS_DENY_UNLISTED);
	/* The most recent ones are all there; the oldest flood ones not. */
	assert_int_equal(conn(p, "44.0.15.255", 443), EGRESS_ALLOW);
	assert_int_equal(conn(p, "44.0.0.0", 443), EGRESS_DENY_UNLISTED);
	egress_policy_free(p);
}

static void test_open_mode(void **state)
{
	(void)state;
	struct egress_policy *p = mk(NULL, p443);
	assert_true(egress_open_mode(p));
	assert_true(egress_name_allowed(p, "anything.example"));
	/* Any public destination, any port. */
	assert_int_equal(conn(p, "93.184.216.34", 443), EGRESS_ALLOW);
	assert_int_equal(conn(p, "93.184.216.34", 22), EGRESS_ALLOW);
	assert_int_equal(conn(p, "2a00:1450:4001::1", 80), EGRESS_ALLOW);
	/* Private networks, like native claude. */
	assert_int_equal(conn(p, "10.0.0.5", 5432), EGRESS_ALLOW);
	assert_int_equal(conn(p, "fd12:3456::1", 80), EGRESS_ALLOW);
	/* Resolved names in open mode: any port too. */
	note(p, "api.anthropic.com", "160.79.104.10");
	assert_int_equal(conn(p, "160.79.104.10", 8443), EGRESS_ALLOW);
	/* Not: loopback, metadata, link-local, multicast, broadcast. */
	assert_int_equal(conn(p, "127.0.0.1", 443), EGRESS_DENY_HOST);
	const char *md[] = {"169.254.169.254", "::ffff:169.254.169.254",
			    "fd00:ec2::254",   "fd00:ec2::123",
			    "fd20:ce::254",    "fd00:c1::a9fe:a9fe",
			    "fd00:42::42",     "168.63.129.16",
			    "100.100.100.200", "169.254.170.2"};
	for (size_t i = 0; i < ARRAY_LEN(md); i++) {
		assert_int_equal(conn(p, md[i], 80), EGRESS_DENY_LINK_LOCAL);
		assert_non_null(strstr(last_why, "metadata"));
	}
	assert_int_equal(conn(p, "169.254.1.1", 80), EGRESS_DENY_LINK_LOCAL);
	assert_int_equal(conn(p, "fe80::1", 80), EGRESS_DENY_LINK_LOCAL);
	assert_int_equal(conn(p, "224.0.0.1", 80), EGRESS_DENY_RESERVED);
	assert_int_equal(conn(p, "255.255.255.255", 80), EGRESS_DENY_RESERVED);
	assert_int_equal(conn(p, "ff02::1", 80), EGRESS_DENY_RESERVED);
	assert_int_equal(conn(p, "0.1.2.3", 80), EGRESS_DENY_RESERVED);
	assert_int_equal(conn(p, "93.184.216.34", 0), EGRESS_DENY_INVALID);
	struct egress_decision d;
	egress_connect_check(p, AF_UNIX, "x", 1, &d);
	assert_int_equal(d.verdict, EGRESS_DENY_INVALID);
	egress_policy_free(p);
}

static void test_link_local_explicit(void **state)
{
	(void)state;
	/* Metadata only by its exact address; link-local only by a range
	 * inside link-local; 0.0.0.0/0 opens neither. */
	const char *allow[] = {"169.254.169.254", "169.254.7.0/24", "0.0.0.0/0",
			       NULL};
	const uint16_t ports[] = {80, 0};
	struct egress_policy *p = mk(allow, ports);
	assert_int_equal(conn(p, "169.254.169.254", 80), EGRESS_ALLOW);
	assert_int_equal(conn(p, "169.254.7.9", 80), EGRESS_ALLOW);
	assert_int_equal(conn(p, "169.254.8.9", 80), EGRESS_DENY_LINK_LOCAL);
	assert_int_equal(conn(p, "100.100.100.200", 80),
			 EGRESS_DENY_LINK_LOCAL);
	assert_int_equal(conn(p, "8.8.8.8", 80), EGRESS_ALLOW);
	assert_int_equal(conn(p, "10.9.9.9", 80), EGRESS_ALLOW);
	egress_policy_free(p);
	const char *ll[] = {"169.254.0.0/16", NULL};
	p = mk(ll, ports);
	assert_int_equal(conn(p, "169.254.3.4", 80), EGRESS_ALLOW);
	assert_int_equal(conn(p, "169.254.169.254", 80),
			 EGRESS_DENY_LINK_LOCAL);
	egress_policy_free(p);
}

static void test_metadata_exact(void **state)
{
	(void)state;
	/* IPv6 and Azure metadata: only an entry naming exactly the
	 * address opens it; ranges holding it do not. */
	const char *allow[] = {
	    "fd00:ec2::254", "fd00:ec2::/32", "fd20:ce::254", "168.63.129.16",
	    "fc00::/7",	     "0.0.0.0/0",     "::/0",	      NULL};
	const uint16_t ports[] = {80, 0};
	struct egress_policy *p = mk(allow, ports);
	assert_int_equal(conn(p, "fd00:ec2::254", 80), EGRESS_ALLOW);
	assert_int_equal(conn(p, "fd00:ec2::253", 80), EGRESS_DENY_LINK_LOCAL);
	assert_non_null(strstr(last_why, "naming exactly this address"));
	assert_int_equal(conn(p, "fd00:ec2::123", 80), EGRESS_DENY_LINK_LOCAL);
	assert_int_equal(conn(p, "fd20:ce::254", 80), EGRESS_ALLOW);
	assert_int_equal(conn(p, "168.63.129.16", 80), EGRESS_ALLOW);
	assert_int_equal(conn(p, "::ffff:168.63.129.16", 80), EGRESS_ALLOW);
	assert_int_equal(conn(p, "fd00:c1::a9fe:a9fe", 80),
			 EGRESS_DENY_LINK_LOCAL);
	assert_int_equal(conn(p, "fd00:42::42", 80), EGRESS_DENY_LINK_LOCAL);
	/* Controls: the neighbours are ordinary. */
	assert_int_equal(conn(p, "fd20:ce::253", 80), EGRESS_ALLOW);
	assert_int_equal(conn(p, "168.63.129.17", 80), EGRESS_ALLOW);
	/* A name answering with one of them is refused (rebinding). */
	const char *names[] = {"rebind.example", NULL};
	struct egress_policy *q = mk(names, ports);
	note(q, "rebind.example", "fd20:ce::254");
	note(q, "rebind.example", "168.63.129.16");
	assert_int_equal(conn(q, "fd20:ce::254", 80), EGRESS_DENY_LINK_LOCAL);
	assert_int_equal(conn(q, "168.63.129.16", 80), EGRESS_DENY_LINK_LOCAL);
	egress_policy_free(q);
	egress_policy_free(p);
}

static void test_host_service(void **state)
{
	(void)state;
	/* Tailscale's 100.100.100.100 (and its IPv6 twin) answer from
	 * this host: refused in every mode, never listable. */
	struct egress_policy *open = mk(NULL, p443);
	const char *svc[] = {"100.100.100.100", "::ffff:100.100.100.100",
			     "fd7a:115c:a1e0::53"};
	for (size_t i = 0; i < ARRAY_LEN(svc); i++) {
		assert_int_equal(conn(open, svc[i], 53), EGRESS_DENY_HOST);
		assert_non_null(strstr(last_why, "host itself"));
	}
	assert_int_equal(conn(open, "100.100.100.101", 53), EGRESS_ALLOW);
	const char *cgnat[] = {"100.64.0.0/10", "fd7a:115c:a1e0::/48", NULL};
	struct egress_policy *p = mk(cgnat, p443);
	assert_int_equal(conn(p, "100.100.100.100", 443), EGRESS_DENY_HOST);
	assert_int_equal(conn(p, "fd7a:115c:a1e0::53", 443), EGRESS_DENY_HOST);
	assert_int_equal(conn(p, "100.101.1.2", 443), EGRESS_ALLOW);
	egress_policy_free(p);
	egress_policy_free(open);
	assert_non_null(strstr(mk_fails("100.100.100.100"), EGRESS_HOST_NAME));
	assert_non_null(
	    strstr(mk_fails("fd7a:115c:a1e0::53/128"), EGRESS_HOST_NAME));
}

static void test_local_route(void **state)
{
	(void)state;
	/* The kernel's word decides what is the host: an AnyIP prefix
	 * (10.99.0.0/24 on lo) is, whatever the list says. */
	const char *allow[] = {"10.0.0.0/8", "lan.example", NULL};
	const uint16_t ports[] = {80, 443, 0};
	struct egress_policy *open = mk(NULL, ports);
	struct egress_policy *p = mk(allow, ports);
	egress_set_local_check(open, fake_local);
	egress_set_local_check(p, fake_local);
	fake_calls = 0;
	assert_int_equal(conn(open, "10.99.0.7", 80), EGRESS_DENY_HOST);
	assert_non_null(strstr(last_why, "host itself"));
	assert_non_null(strstr(last_why, EGRESS_HOST_NAME));
	assert_true(fake_calls > 0);
	assert_int_equal(conn(open, "::ffff:10.99.0.200", 80),
			 EGRESS_DENY_HOST);
	assert_int_equal(conn(p, "10.99.0.7", 80), EGRESS_DENY_HOST);
	note(p, "lan.example", "10.99.0.8");
	assert_int_equal(conn(p, "10.99.0.8", 443), EGRESS_DENY_HOST);
	/* Not knowing is refusing. */
	assert_int_equal(conn(open, "10.98.0.1", 80), EGRESS_DENY_HOST);
	assert_non_null(strstr(last_why, "cannot tell"));
	/* The API endpoint as an address is no way around it. */
	assert_int_equal(egress_set_api(open, "10.99.0.9", 8443), 0);
	assert_int_equal(conn(open, "10.99.0.9", 8443), EGRESS_DENY_HOST);
	/* Controls: elsewhere is reachable, host.ccvm.internal still works
	 * when listed (it goes to loopback by ccvm's own choice). */
	assert_int_equal(conn(open, "10.97.0.1", 80), EGRESS_ALLOW);
	assert_int_equal(conn(p, "10.97.0.1", 80), EGRESS_ALLOW);
	egress_policy_free(p);
	const char *alias[] = {EGRESS_HOST_NAME, NULL};
	p = mk(alias, ports);
	egress_set_local_check(p, fake_local);
	assert_int_equal(conn(p, EGRESS_HOST_ADDR4, 80), EGRESS_ALLOW);
	egress_policy_free(p);
	egress_policy_free(open);
}

static void test_classify(void **state)
{
	(void)state;
	struct {
		const char *ip;
		enum egress_addr_class c;
	} t[] = {
	    {"8.8.8.8", EGRESS_ADDR_PUBLIC},
	    {"10.0.0.1", EGRESS_ADDR_PRIVATE},
	    {"172.31.255.255", EGRESS_ADDR_PRIVATE},
	    {"172.32.0.0", EGRESS_ADDR_PUBLIC},
	    {"192.168.0.1", EGRESS_ADDR_PRIVATE},
	    {"100.64.0.1", EGRESS_ADDR_PRIVATE},
	    {"100.128.0.1", EGRESS_ADDR_PUBLIC},
	    {"169.254.169.254", EGRESS_ADDR_METADATA},
	    {"169.254.0.1", EGRESS_ADDR_LINK_LOCAL},
	    {"127.0.0.53", EGRESS_ADDR_LOOPBACK},
	    {"0.0.0.0", EGRESS_ADDR_LOOPBACK},
	    {"0.0.0.1", EGRESS_ADDR_RESERVED},
	    {"192.0.2.2", EGRESS_ADDR_HOST_ALIAS},
	    {"203.0.113.9", EGRESS_ADDR_RESERVED},
	    {"239.1.1.1", EGRESS_ADDR_RESERVED},
	    {"::", EGRESS_ADDR_LOOPBACK},
	    {"::1", EGRESS_ADDR_LOOPBACK},
	    {"::2", EGRESS_ADDR_RESERVED},
	    {"::ffff:8.8.8.8", EGRESS_ADDR_PUBLIC},
	    {"::ffff:10.0.0.1", EGRESS_ADDR_PRIVATE},
	    {"::ffff:127.0.0.1", EGRESS_ADDR_LOOPBACK},
	    {"::8.8.8.8", EGRESS_ADDR_RESERVED},
	    {"64:ff9b::808:808", EGRESS_ADDR_PUBLIC},
	    {"64:ff9b::a9fe:a9fe", EGRESS_ADDR_METADATA},
	    {"2002:a00:1::", EGRESS_ADDR_PRIVATE},
	    {"2002:808:808::", EGRESS_ADDR_PUBLIC},
	    {"fe80::1", EGRESS_ADDR_LINK_LOCAL},
	    {"febf::1", EGRESS_ADDR_LINK_LOCAL},
	    {"fec0::1", EGRESS_ADDR_RESERVED},
	    {"fc00::1", EGRESS_ADDR_PRIVATE},
	    {"fd00:ec2::254", EGRESS_ADDR_METADATA},
	    {"fd00:ec2::253", EGRESS_ADDR_METADATA},
	    {"fd00:ec2:ffff::1", EGRESS_ADDR_METADATA},
	    {"fd00:ec3::254", EGRESS_ADDR_PRIVATE},
	    {"fd20:ce::254", EGRESS_ADDR_METADATA},
	    {"fd20:ce::253", EGRESS_ADDR_PRIVATE},
	    {"fd00:c1::a9fe:a9fe", EGRESS_ADDR_METADATA},
	    {"fd00:42::42", EGRESS_ADDR_METADATA},
	    {"fe80::a9fe:a9fe", EGRESS_ADDR_METADATA},
	    {"168.63.129.16", EGRESS_ADDR_METADATA},
	    {"168.63.129.17", EGRESS_ADDR_PUBLIC},
	    {"::ffff:168.63.129.16", EGRESS_ADDR_METADATA},
	    {"64:ff9b::a83f:8110", EGRESS_ADDR_METADATA},
	    {"100.100.100.100", EGRESS_ADDR_HOST_SVC},
	    {"100.100.100.101", EGRESS_ADDR_PRIVATE},
	    {"fd7a:115c:a1e0::53", EGRESS_ADDR_HOST_SVC},
	    {"ff02::1", EGRESS_ADDR_RESERVED},
	    {"2001:db8::2", EGRESS_ADDR_HOST_ALIAS},
	    {"2001:db8::3", EGRESS_ADDR_PROXY},
	    {"192.0.2.3", EGRESS_ADDR_PROXY},
	    {"192.0.2.4", EGRESS_ADDR_RESERVED},
	    {"::ffff:192.0.2.3", EGRESS_ADDR_PROXY}, /* mapped: unwrapped */
	    {"64:ff9b::c000:203", EGRESS_ADDR_RESERVED},
	    {"2002:c000:203::", EGRESS_ADDR_RESERVED},
	    {"2001:db8::4", EGRESS_ADDR_RESERVED},
	    {"2606:4700::1", EGRESS_ADDR_PUBLIC},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		struct dns_addr a = A(t[i].ip);
		enum egress_addr_class c = egress_classify(a.family, a.bytes);
		if (c != t[i].c)
			fail_msg("%s: %s, want %s", t[i].ip,
				 egress_addr_class_name(c),
				 egress_addr_class_name(t[i].c));
	}
}

/* The summary printed into a string. */
static char *summary(const struct egress_policy *p, unsigned long *total)
{
	static char buf[4096];
	FILE *f = fmemopen(buf, sizeof(buf), "w");
	assert_non_null(f);
	*total = egress_summary(p, f);
	fclose(f);
	return buf;
}

static void test_summary(void **state)
{
	(void)state;
	const char *allow[] = {"github.com", NULL};
	struct egress_policy *p = mk(allow, p443);
	unsigned long total;
	assert_string_equal(summary(p, &total), "");
	assert_int_equal(total, 0);
	egress_note_blocked(p, "10.1.2.3", 22);
	for (int i = 0; i < 3; i++)
		egress_note_blocked(p, "evil.example", 443);
	assert_string_equal(
	    summary(p, &total),
	    "ccvm: egress blocked: evil.example:443 (3), 10.1.2.3:22 (1)\n");
	assert_int_equal(total, 4);
	egress_note_blocked(p, "2001:db8::7", 80);
	egress_note_blocked(p, "tunnel.unlisted.example", 0);
	egress_note_blocked(p, "bad\nname", 1);
	assert_string_equal(summary(p, &total),
			    "ccvm: egress blocked: evil.example:443 (3), "
			    "10.1.2.3:22 (1), [2001:db8::7]:80 (1), "
			    "tunnel.unlisted.example (lookup) (1), "
			    "bad\\nname:1 (1)\n");
	egress_policy_free(p);

	/* A flood of distinct names (a DNS tunnel) stays one bounded line. */
	p = mk(allow, p443);
	char name[64];
	for (int i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "d%04d.unlisted.example", i);
		egress_note_blocked(p, name, 0);
	}
	const char *s = summary(p, &total);
	assert_int_equal(total, 1000);
	assert_non_null(strstr(s, "d0000.unlisted.example (lookup) (1)"));
	assert_null(strstr(s, "d0999"));
	assert_non_null(strstr(s, ", others (968)\n"));
	assert_int_equal(strchr(s, '\n') - s + 1, strlen(s));
	egress_policy_free(p);
}

static void test_from_config(void **state)
{
	(void)state;
	struct ccvm_config cfg;
	struct ccvm_err e = {0};
	assert_int_equal(cfg_init(&cfg, &e), 0);
	const char *json = "{\"egressAllowlist\": [\"github.com\", "
			   "\"192.0.2.0/24\"]}";
	/* A documentation range can never be reached: the config file is
	 * refused with the policy's own words (the same entry parser), so
	 * no session gets as far as building an image with it. */
	assert_int_equal(cfg_parse_json(&cfg, json, strlen(json), "c.json", &e),
			 -EINVAL);
	assert_non_null(strstr(e.msg, "c.json:1:"));
	assert_non_null(strstr(e.msg, ": egressAllowlist[1]: "
				      "\"192.0.2.0/24\" is a reserved range"));
	struct egress_policy *p = NULL;
	/* The policy refuses it too, in the same words. */
	char *bad[] = {"github.com", "192.0.2.0/24"};
	cfg.egress_allowlist = (struct cfg_strlist){.v = bad, .n = 2};
	assert_int_equal(egress_policy_from_config(&cfg, &p, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "egressAllowlist: \"192.0.2.0/24\" is a "
				      "reserved range"));
	cfg.egress_allowlist = (struct cfg_strlist){0};
	cfg_free(&cfg);
	assert_int_equal(cfg_init(&cfg, &e), 0);
	json = "{\"egressAllowlist\": [\"github.com\"], \"egressPorts\": "
	       "[443, 22]}";
	assert_int_equal(cfg_parse_json(&cfg, json, strlen(json), "c.json", &e),
			 0);
	assert_int_equal(egress_policy_from_config(&cfg, &p, &e), 0);
	note(p, "github.com", "140.82.121.4");
	assert_int_equal(conn(p, "140.82.121.4", 22), EGRESS_ALLOW);
	egress_policy_free(p);
	cfg_free(&cfg);
	/* Defaults: open mode. */
	assert_int_equal(cfg_init(&cfg, &e), 0);
	assert_int_equal(egress_policy_from_config(&cfg, &p, &e), 0);
	assert_true(egress_open_mode(p));
	egress_policy_free(p);
	cfg_free(&cfg);
}

static void test_set_api(void **state)
{
	(void)state;
	static const char *const allow[] = {"github.com", NULL};
	static const uint16_t ports[] = {443, 0};
	struct egress_policy *p = mk(allow, ports);
	/* Default: api.anthropic.com resolvable. */
	assert_int_equal(egress_name_check(p, "api.anthropic.com"),
			 EGRESS_NAME_RESOLVE);
	/* A name on its own port replaces it. */
	assert_int_equal(egress_set_api(p, "llm.corp.example", 8443), 0);
	assert_int_equal(egress_name_check(p, "api.anthropic.com"),
			 EGRESS_NAME_DENY);
	assert_int_equal(egress_name_check(p, "LLM.corp.example."),
			 EGRESS_NAME_RESOLVE);
	struct dns_addr r = A("93.184.216.77");
	assert_int_equal(egress_note_resolved(p, "llm.corp.example", &r, 1), 0);
	assert_int_equal(conn(p, "93.184.216.77", 8443), EGRESS_ALLOW);
	assert_int_equal(conn(p, "93.184.216.77", 22), EGRESS_DENY_PORT);
	/* host.ccvm.internal: the loopback, exactly that port. */
	assert_int_equal(egress_set_api(p, "host.ccvm.internal", 8080), 0);
	assert_int_equal(egress_name_check(p, "host.ccvm.internal"),
			 EGRESS_NAME_HOST_ALIAS);
	assert_int_equal(conn(p, EGRESS_HOST_ADDR4, 8080), EGRESS_ALLOW);
	assert_int_equal(conn(p, EGRESS_HOST_ADDR6, 8080), EGRESS_ALLOW);
	assert_int_equal(conn(p, EGRESS_HOST_ADDR4, 8081),
			 EGRESS_DENY_HOST_ALIAS);
	assert_int_equal(conn(p, "127.0.0.1", 8080), EGRESS_DENY_HOST);
	/* An address literal. */
	assert_int_equal(egress_set_api(p, "20.0.0.9", 9000), -0);
	assert_int_equal(conn(p, "20.0.0.9", 9000), EGRESS_ALLOW);
	assert_int_equal(conn(p, "20.0.0.9", 9001), EGRESS_DENY_UNLISTED);
	assert_int_equal(egress_set_api(p, "bad name!", 1), -EINVAL);
	assert_int_equal(egress_set_api(p, "x.example", 0), -EINVAL);
	egress_policy_free(p);
}

/*
 * The one entry parser: what it makes of each kind of entry, and that
 * config resolution and the policy refuse exactly what it refuses, in
 * its words.
 */
static void test_entry_parse(void **state)
{
	(void)state;
	struct egress_entry e;
	assert_null(egress_entry_parse("GitHub.COM.", &e));
	assert_int_equal(e.kind, EGRESS_ENTRY_NAME);
	assert_string_equal(e.name, "github.com");
	assert_null(egress_entry_parse("*.Example.com", &e));
	assert_int_equal(e.kind, EGRESS_ENTRY_WILDCARD);
	assert_string_equal(e.name, "example.com");
	assert_null(egress_entry_parse("10.1.2.3/8", &e));
	assert_int_equal(e.kind, EGRESS_ENTRY_NET);
	assert_int_equal(e.prefix, 8);
	assert_memory_equal(e.net.bytes, ((uint8_t[]){10, 0, 0, 0}), 4);
	assert_null(egress_entry_parse("::ffff:10.0.0.0/104", &e));
	assert_int_equal(e.net.family, AF_INET);
	assert_int_equal(e.prefix, 8);
	assert_null(egress_entry_parse("HOST.ccvm.internal", &e));
	assert_int_equal(e.kind, EGRESS_ENTRY_HOST_ALIAS);

	static const char *const bad[] = {"",
					  "https://a.com",
					  "a.com:443",
					  "10.0.0.0/33",
					  "bad host",
					  "127.0.0.1",
					  "::1",
					  "0.0.0.0",
					  "::ffff:127.0.0.1",
					  "192.0.2.2",
					  "192.0.2.0/24",
					  "100.100.100.100",
					  "224.0.0.1",
					  "a.ccvm.internal",
					  "ccvm.internal"};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		const char *why = egress_entry_parse(bad[i], &e);
		if (!why)
			fail_msg("%s: accepted", bad[i]);
		/* Config resolution: the same verdict, the same words. */
		assert_false(cfg_valid_egress(bad[i]));
		struct ccvm_config cfg;
		struct ccvm_err ce = {0};
		assert_int_equal(cfg_init(&cfg, &ce), 0);
		json_t *j = json_pack("{s[s]}", "egressAllowlist", bad[i]);
		char *text = json_dumps(j, 0);
		json_decref(j);
		assert_int_equal(
		    cfg_parse_json(&cfg, text, strlen(text), "c.json", &ce),
		    -EINVAL);
		free(text);
		cfg_free(&cfg);
		if (!strstr(ce.msg, "c.json:1:") ||
		    !strstr(ce.msg, ": egressAllowlist[0]: ") ||
		    !strstr(ce.msg, why))
			fail_msg("%s: config says \"%s\", parser \"%s\"",
				 bad[i], ce.msg, why);
		/* The policy: the same words. */
		if (!strstr(mk_fails(bad[i]), why))
			fail_msg("%s: policy says \"%s\", parser \"%s\"",
				 bad[i], mk_fails(bad[i]), why);
	}
	/* Wider than a special range: fine (it just skips it). */
	assert_null(egress_entry_parse("0.0.0.0/0", &e));
	assert_null(egress_entry_parse("120.0.0.0/5", &e));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_allowed_name_and_port),
	    cmocka_unit_test(test_wildcard),
	    cmocka_unit_test(test_cidr_v4_v6),
	    cmocka_unit_test(test_loopback_never),
	    cmocka_unit_test(test_loopback_entries_rejected),
	    cmocka_unit_test(test_host_alias),
	    cmocka_unit_test(test_api_host_always),
	    cmocka_unit_test(test_api_proxy),
	    cmocka_unit_test(test_resolved_memory),
	    cmocka_unit_test(test_eviction_lru),
	    cmocka_unit_test(test_open_mode),
	    cmocka_unit_test(test_link_local_explicit),
	    cmocka_unit_test(test_metadata_exact),
	    cmocka_unit_test(test_host_service),
	    cmocka_unit_test(test_local_route),
	    cmocka_unit_test(test_classify),
	    cmocka_unit_test(test_summary),
	    cmocka_unit_test(test_from_config),
	    cmocka_unit_test(test_entry_parse),
	    cmocka_unit_test(test_set_api),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
