/*
 * libFuzzer target: the DNS stub codec.  Each input is a TCP byte stream
 * of length-prefixed DNS messages; each message is parsed, answered (with
 * addresses, an NXDOMAIN and a FORMERR), the answer re-checked, and its
 * name run through the egress policy's name check.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dns.h"
#include "net/egress_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct egress_policy *policy(void)
{
	static struct egress_policy *p;
	if (!p) {
		char *allow[] = {"github.com", "*.example.com", "10.0.0.0/8",
				 "host.ccvm.internal"};
		struct cfg_strlist l = {.v = allow, .n = 4};
		uint16_t ports[] = {443};
		if (egress_policy_new(&l, ports, 1, &p, NULL) < 0)
			abort();
	}
	return p;
}

static void one(const uint8_t *msg, size_t len)
{
	static uint8_t out[DNS_TCP_MAX];
	size_t olen = 0;
	struct dns_query q;
	int rc = dns_parse_query(msg, len, &q);
	if (rc < 0) {
		if (rc != -EMSGSIZE &&
		    dns_build_error(msg, len, DNS_RCODE_FORMERR, out,
				    sizeof(out), &olen) == 0 &&
		    olen != DNS_HEADER_LEN)
			abort();
		return;
	}
	if (strlen(q.name) > DNS_NAME_MAX)
		abort();
	struct dns_addr addrs[3] = {{.family = AF_INET, .bytes = {1, 2, 3, 4}},
				    {.family = AF_INET6, .bytes = {0x20, 1}},
				    {.family = AF_INET, .bytes = {5, 6, 7, 8}}};
	size_t limits[] = {DNS_UDP_MAX, DNS_TCP_MAX, 40};
	for (size_t i = 0; i < 3; i++) {
		if (dns_build_response(&q, DNS_RCODE_NOERROR, addrs, 3, 60,
				       limits[i], out, sizeof(out),
				       &olen) == 0 &&
		    (olen > limits[i] || olen < DNS_HEADER_LEN ||
		     memcmp(out, msg, 2) != 0))
			abort();
	}
	if (dns_build_response(&q, DNS_RCODE_NXDOMAIN, NULL, 0, 0, DNS_UDP_MAX,
			       out, sizeof(out), &olen) == 0 &&
	    olen != DNS_HEADER_LEN + q.question_len)
		abort();
	/* The response is not a query. */
	if (dns_parse_query(out, olen, &q) != -EOPNOTSUPP)
		abort();
	(void)egress_name_check(policy(), q.name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The whole input as one UDP message, then as a TCP stream. */
	one(data, size);
	size_t off = 0;
	while (off < size) {
		const uint8_t *msg;
		size_t len;
		ssize_t n = dns_tcp_frame(data + off, size - off, &msg, &len);
		if (n <= 0)
			break;
		one(msg, len);
		off += (size_t)n;
	}
	return 0;
}
