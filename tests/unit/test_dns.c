/* Unit tests for the DNS stub codec (src/common/dns.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netinet/in.h>
#include <resolv.h>
#include <string.h>
#include <sys/socket.h>

#include "dns.h"

/* "Example.COM" A, id 0x1234, RD: written out byte by byte (RFC 1035). */
static const uint8_t q_example_a[] = {
    0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 7,    'E',  'x',  'a',	'm',  'p',  'l',  'e',
    3,	  'C',	'O',  'M',  0,	  0x00, 0x01, 0x00, 0x01};

/* dig's shape: "github.com" AAAA, id 0xbeef, RD+AD, with an EDNS0 OPT
 * (UDP size 1232) carrying a 12-byte cookie option. */
static const uint8_t q_github_aaaa_edns[] = {
    0xbe, 0xef, 0x01, 0x20, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 6,
    'g', 'i', 't', 'h', 'u', 'b', 3, 'c', 'o', 'm', 0, 0x00, 0x1c, 0x00, 0x01,
    /* OPT */
    0x00, 0x00, 0x29, 0x04, 0xd0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x00,
    0x0a, 0x00, 0x08, 1, 2, 3, 4, 5, 6, 7, 8};

static void test_parse_simple(void **state)
{
	(void)state;
	struct dns_query q;
	assert_int_equal(dns_parse_query(q_example_a, sizeof(q_example_a), &q),
			 0);
	assert_int_equal(q.id, 0x1234);
	assert_int_equal(q.flags, 0x0100);
	assert_string_equal(q.name, "example.com");
	assert_int_equal(q.qtype, DNS_TYPE_A);
	assert_int_equal(q.qclass, DNS_CLASS_IN);
	/* The question is kept byte for byte, case included. */
	assert_int_equal(q.question_len, sizeof(q_example_a) - 12);
	assert_memory_equal(q.question, q_example_a + 12, q.question_len);
}

static void test_parse_edns(void **state)
{
	(void)state;
	struct dns_query q;
	assert_int_equal(
	    dns_parse_query(q_github_aaaa_edns, sizeof(q_github_aaaa_edns), &q),
	    0);
	assert_int_equal(q.id, 0xbeef);
	assert_string_equal(q.name, "github.com");
	assert_int_equal(q.qtype, DNS_TYPE_AAAA);
	assert_int_equal(q.question_len, 16);
}

/* A query made by glibc's own res_mkquery parses the same. */
static void test_parse_glibc_query(void **state)
{
	(void)state;
	uint8_t buf[512];
	int n = res_mkquery(QUERY, "Api.Anthropic.com.", C_IN, T_AAAA, NULL, 0,
			    NULL, buf, sizeof(buf));
	assert_true(n > 12);
	struct dns_query q;
	assert_int_equal(dns_parse_query(buf, (size_t)n, &q), 0);
	assert_string_equal(q.name, "api.anthropic.com");
	assert_int_equal(q.qtype, DNS_TYPE_AAAA);
	assert_int_equal(q.id, (buf[0] << 8) | buf[1]);
}

static void test_parse_root_and_underscore(void **state)
{
	(void)state;
	uint8_t root[] = {0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1};
	struct dns_query q;
	assert_int_equal(dns_parse_query(root, sizeof(root), &q), 0);
	assert_string_equal(q.name, "");
	assert_int_equal(q.qtype, 2);
	uint8_t srv[] = {0,   1,   0,	0,   0,	  1, 0,	  0, 0, 0,  0, 0, 5,
			 '_', 'h', 't', 't', 'p', 1, 'x', 0, 0, 33, 0, 1};
	assert_int_equal(dns_parse_query(srv, sizeof(srv), &q), 0);
	assert_string_equal(q.name, "_http.x");
}

/* Copies q_example_a into buf and returns its length. */
static size_t base(uint8_t *buf)
{
	memcpy(buf, q_example_a, sizeof(q_example_a));
	return sizeof(q_example_a);
}

static void test_parse_rejects(void **state)
{
	(void)state;
	uint8_t b[600];
	struct dns_query q;
	size_t n;

	assert_int_equal(dns_parse_query(q_example_a, 11, &q), -EMSGSIZE);
	assert_int_equal(dns_parse_query(q_example_a, DNS_TCP_MAX + 1, &q),
			 -EMSGSIZE);
	/* A response is not a query. */
	n = base(b);
	b[2] |= 0x80;
	assert_int_equal(dns_parse_query(b, n, &q), -EOPNOTSUPP);
	/* Opcode STATUS (2), UPDATE (5). */
	n = base(b);
	b[2] = 0x10;
	assert_int_equal(dns_parse_query(b, n, &q), -EOPNOTSUPP);
	b[2] = 0x28;
	assert_int_equal(dns_parse_query(b, n, &q), -EOPNOTSUPP);
	/* Counts: two questions, zero questions, an answer, authority, two
	 * additional records. */
	size_t cnt_off[] = {5, 5, 7, 9, 11};
	uint8_t cnt_val[] = {2, 0, 1, 1, 2};
	for (size_t i = 0; i < 5; i++) {
		n = base(b);
		b[cnt_off[i]] = cnt_val[i];
		assert_int_equal(dns_parse_query(b, n, &q), -EBADMSG);
	}
	/* Every truncation of the message. */
	for (size_t cut = 12; cut < sizeof(q_example_a); cut++)
		assert_int_equal(dns_parse_query(q_example_a, cut, &q),
				 -EBADMSG);
	/* A trailing byte. */
	n = base(b);
	b[n++] = 0;
	assert_int_equal(dns_parse_query(b, n, &q), -EBADMSG);
	/* A compression pointer in place of "COM". */
	n = base(b);
	b[20] = 0xc0;
	b[21] = 0x0c;
	assert_int_equal(dns_parse_query(b, n, &q), -EBADMSG);
	/* Label lengths 64 (0x40 type) and 0x80. */
	n = base(b);
	b[12] = 0x40;
	assert_int_equal(dns_parse_query(b, n, &q), -EBADMSG);
	b[12] = 0x80;
	assert_int_equal(dns_parse_query(b, n, &q), -EBADMSG);
	/* A label running past the end. */
	n = base(b);
	b[20] = 60;
	assert_int_equal(dns_parse_query(b, n, &q), -EBADMSG);
	/* Bytes outside [A-Za-z0-9_-]: a dot, NUL, space, 0xff. */
	uint8_t bad[] = {'.', 0, ' ', 0xff, '/'};
	for (size_t i = 0; i < sizeof(bad); i++) {
		n = base(b);
		b[14] = bad[i];
		assert_int_equal(dns_parse_query(b, n, &q), -EINVAL);
	}
	/* An additional record that is not OPT, or an OPT with a name. */
	n = sizeof(q_github_aaaa_edns);
	memcpy(b, q_github_aaaa_edns, n);
	b[30] = 0x01;
	assert_int_equal(dns_parse_query(b, n, &q), -EBADMSG);
	memcpy(b, q_github_aaaa_edns, n);
	b[28] = 1;
	assert_int_equal(dns_parse_query(b, n, &q), -EBADMSG);
	/* OPT rdlength beyond the end. */
	memcpy(b, q_github_aaaa_edns, n);
	b[38] = 13;
	assert_int_equal(dns_parse_query(b, n, &q), -EBADMSG);
	/* q untouched on error. */
	memset(&q, 0xAA, sizeof(q));
	assert_int_equal(dns_parse_query(b, n, &q), -EBADMSG);
	assert_int_equal(q.id, 0xAAAA);
}

/* A query for a name of labels of the given lengths ('a'..). */
static size_t name_query(uint8_t *b, const size_t *labels, size_t nl)
{
	size_t o = 0;
	static const uint8_t hdr[12] = {0, 7, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0};
	memcpy(b, hdr, 12);
	o = 12;
	for (size_t i = 0; i < nl; i++) {
		b[o++] = (uint8_t)labels[i];
		memset(b + o, 'a' + (int)(i % 26), labels[i]);
		o += labels[i];
	}
	b[o++] = 0;
	b[o++] = 0;
	b[o++] = 1;
	b[o++] = 0;
	b[o++] = 1;
	return o;
}

static void test_name_bounds(void **state)
{
	(void)state;
	uint8_t b[600];
	struct dns_query q;
	/* 63+63+63+61 = 250 bytes + 4 length bytes + root = 255: the
	 * longest legal name, 253 characters of text. */
	size_t max[] = {63, 63, 63, 61};
	size_t n = name_query(b, max, 4);
	assert_int_equal(dns_parse_query(b, n, &q), 0);
	assert_int_equal(strlen(q.name), 253);
	size_t over[] = {63, 63, 63, 62};
	n = name_query(b, over, 4);
	assert_int_equal(dns_parse_query(b, n, &q), -EBADMSG);
	/* Many one-byte labels: 127 fit (255 bytes), 128 do not. */
	size_t ones[128];
	for (size_t i = 0; i < 128; i++)
		ones[i] = 1;
	n = name_query(b, ones, 127);
	assert_int_equal(dns_parse_query(b, n, &q), 0);
	assert_int_equal(strlen(q.name), 253);
	n = name_query(b, ones, 128);
	assert_int_equal(dns_parse_query(b, n, &q), -EBADMSG);
	size_t l63[] = {63}, l64[] = {64};
	n = name_query(b, l63, 1);
	assert_int_equal(dns_parse_query(b, n, &q), 0);
	n = name_query(b, l64, 1);
	assert_int_equal(dns_parse_query(b, n, &q), -EBADMSG);
}

static struct dns_addr v4(const char *s)
{
	struct dns_addr a = {.family = AF_INET};
	assert_int_equal(inet_pton(AF_INET, s, a.bytes), 1);
	return a;
}

static struct dns_addr v6(const char *s)
{
	struct dns_addr a = {.family = AF_INET6};
	assert_int_equal(inet_pton(AF_INET6, s, a.bytes), 1);
	return a;
}

static void test_nxdomain_bytes(void **state)
{
	(void)state;
	struct dns_query q;
	assert_int_equal(dns_parse_query(q_example_a, sizeof(q_example_a), &q),
			 0);
	uint8_t out[512];
	size_t len = 0;
	struct dns_addr ignored = v4("1.2.3.4");
	assert_int_equal(dns_build_response(&q, DNS_RCODE_NXDOMAIN, &ignored, 1,
					    60, DNS_UDP_MAX, out, sizeof(out),
					    &len),
			 0);
	/* id, QR|RD|RA + NXDOMAIN, qd 1, no answers; question as sent. */
	const uint8_t want_hdr[] = {0x12, 0x34, 0x81, 0x83, 0, 1,
				    0,	  0,	0,    0,    0, 0};
	assert_int_equal(len, sizeof(q_example_a));
	assert_memory_equal(out, want_hdr, 12);
	assert_memory_equal(out + 12, q_example_a + 12, len - 12);

	assert_int_equal(dns_build_response(&q, DNS_RCODE_REFUSED, NULL, 0, 0,
					    DNS_UDP_MAX, out, sizeof(out),
					    &len),
			 0);
	assert_int_equal(out[3], 0x85);
	assert_int_equal(dns_build_response(&q, DNS_RCODE_SERVFAIL, NULL, 0, 0,
					    DNS_UDP_MAX, out, sizeof(out),
					    &len),
			 0);
	assert_int_equal(out[3], 0x82);
	assert_int_equal(dns_build_response(&q, (enum dns_rcode)6, NULL, 0, 0,
					    DNS_UDP_MAX, out, sizeof(out),
					    &len),
			 -EINVAL);
}

static void test_answers_a(void **state)
{
	(void)state;
	struct dns_query q;
	assert_int_equal(dns_parse_query(q_example_a, sizeof(q_example_a), &q),
			 0);
	struct dns_addr addrs[] = {v4("93.184.216.34"), v6("2001:db8::1"),
				   v4("10.0.0.1")};
	uint8_t out[512];
	size_t len;
	assert_int_equal(dns_build_response(&q, DNS_RCODE_NOERROR, addrs, 3,
					    300, DNS_UDP_MAX, out, sizeof(out),
					    &len),
			 0);
	const uint8_t want[] = {
	    0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0, 7, 'E', 'x', 'a',
	    'm', 'p', 'l', 'e', 3, 'C', 'O', 'M', 0, 0, 1, 0, 1,
	    /* answer 1: pointer to offset 12, A, IN, TTL 300, 4 bytes */
	    0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 93, 184, 216, 34,
	    /* answer 2 */
	    0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 10, 0, 0, 1};
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
}

static void test_answers_aaaa_and_other_types(void **state)
{
	(void)state;
	struct dns_query q;
	assert_int_equal(
	    dns_parse_query(q_github_aaaa_edns, sizeof(q_github_aaaa_edns), &q),
	    0);
	struct dns_addr addrs[] = {v4("140.82.121.4"),
				   v6("2606:50c0:8000::154")};
	uint8_t out[512];
	size_t len;
	assert_int_equal(dns_build_response(&q, DNS_RCODE_NOERROR, addrs, 2, 60,
					    DNS_UDP_MAX, out, sizeof(out),
					    &len),
			 0);
	assert_int_equal(len, 12 + 16 + 28);
	assert_int_equal(out[7], 1);  /* ancount */
	assert_int_equal(out[11], 0); /* no OPT echoed */
	/* RD echoed, AD dropped, RA set. */
	assert_int_equal(out[2], 0x81);
	assert_int_equal(out[3], 0x80);
	const uint8_t rr[] = {0xc0, 0x0c, 0, 28, 0, 1, 0, 0, 0, 60, 0, 16};
	assert_memory_equal(out + 28, rr, sizeof(rr));
	assert_memory_equal(out + 40, addrs[1].bytes, 16);

	/* TXT for a name with addresses: NOERROR, no data. */
	uint8_t txt[sizeof(q_example_a)];
	memcpy(txt, q_example_a, sizeof(txt));
	txt[sizeof(txt) - 3] = 16;
	assert_int_equal(dns_parse_query(txt, sizeof(txt), &q), 0);
	assert_int_equal(dns_build_response(&q, DNS_RCODE_NOERROR, addrs, 2, 60,
					    DNS_UDP_MAX, out, sizeof(out),
					    &len),
			 0);
	assert_int_equal(len, sizeof(txt));
	assert_int_equal(out[7], 0);
	assert_int_equal(out[3], 0x80);
	/* A bad family is an error, not a silent skip. */
	struct dns_addr bad = {.family = AF_UNIX};
	assert_int_equal(dns_build_response(&q, DNS_RCODE_NOERROR, &bad, 1, 60,
					    DNS_UDP_MAX, out, sizeof(out),
					    &len),
			 -EINVAL);
}

static void test_truncation(void **state)
{
	(void)state;
	struct dns_query q;
	assert_int_equal(dns_parse_query(q_example_a, sizeof(q_example_a), &q),
			 0);
	struct dns_addr addrs[40];
	for (size_t i = 0; i < 40; i++) {
		addrs[i] = v4("198.51.100.0");
		addrs[i].bytes[3] = (uint8_t)i;
	}
	static uint8_t out[DNS_TCP_MAX];
	size_t len;
	/* UDP: (512 - 29) / 16 = 30 answers fit; TC tells the client to
	 * retry over TCP. */
	assert_int_equal(dns_build_response(&q, DNS_RCODE_NOERROR, addrs, 40,
					    60, DNS_UDP_MAX, out, sizeof(out),
					    &len),
			 0);
	assert_true(len <= DNS_UDP_MAX);
	assert_int_equal(out[7], 30);
	assert_true(out[2] & 0x02);
	/* TCP: all of them, no TC. */
	assert_int_equal(dns_build_response(&q, DNS_RCODE_NOERROR, addrs, 40,
					    60, DNS_TCP_MAX, out, sizeof(out),
					    &len),
			 0);
	assert_int_equal(out[7], 40);
	assert_false(out[2] & 0x02);
	assert_int_equal(len, 29 + 40 * 16);
	/* A buffer smaller than the limit bounds it too. */
	assert_int_equal(dns_build_response(&q, DNS_RCODE_NOERROR, addrs, 40,
					    60, DNS_TCP_MAX, out, 29 + 16,
					    &len),
			 0);
	assert_int_equal(out[7], 1);
	assert_int_equal(len, 45);
	/* Not even the question fits. */
	assert_int_equal(dns_build_response(&q, DNS_RCODE_NXDOMAIN, NULL, 0, 0,
					    DNS_UDP_MAX, out, 28, &len),
			 -ENOBUFS);
}

static void test_build_error(void **state)
{
	(void)state;
	/* A query whose question is garbage still gets FORMERR. */
	uint8_t junk[] = {0xab, 0xcd, 0x01, 0x00, 0, 1,	   0,
			  0,	0,    0,    0,	  0, 0xc0, 0x0c};
	struct dns_query q;
	assert_int_equal(dns_parse_query(junk, sizeof(junk), &q), -EBADMSG);
	uint8_t out[64];
	size_t len;
	assert_int_equal(dns_build_error(junk, sizeof(junk), DNS_RCODE_FORMERR,
					 out, sizeof(out), &len),
			 0);
	const uint8_t want[] = {0xab, 0xcd, 0x81, 0x81, 0, 0, 0, 0, 0, 0, 0, 0};
	assert_int_equal(len, 12);
	assert_memory_equal(out, want, 12);
	/* NOTIMP for another opcode keeps the opcode. */
	uint8_t status[sizeof(q_example_a)];
	memcpy(status, q_example_a, sizeof(status));
	status[2] = 0x10;
	assert_int_equal(dns_build_error(status, sizeof(status),
					 DNS_RCODE_NOTIMP, out, sizeof(out),
					 &len),
			 0);
	assert_int_equal(out[2], 0x90);
	assert_int_equal(out[3], 0x84);
	/* Responses are never answered; short input; small buffer. */
	junk[2] |= 0x80;
	assert_int_equal(dns_build_error(junk, sizeof(junk), DNS_RCODE_FORMERR,
					 out, sizeof(out), &len),
			 -EINVAL);
	assert_int_equal(dns_build_error(junk, 11, DNS_RCODE_FORMERR, out,
					 sizeof(out), &len),
			 -EMSGSIZE);
	assert_int_equal(
	    dns_build_error(q_example_a, 12, DNS_RCODE_FORMERR, out, 11, &len),
	    -ENOBUFS);
	assert_string_equal(dns_rcode_name(DNS_RCODE_NXDOMAIN), "NXDOMAIN");
}

static void test_tcp_framing(void **state)
{
	(void)state;
	uint8_t stream[2 * (2 + sizeof(q_example_a))];
	size_t n = sizeof(q_example_a);
	assert_int_equal(dns_tcp_put_len(stream, n), 0);
	memcpy(stream + 2, q_example_a, n);
	assert_int_equal(dns_tcp_put_len(stream + 2 + n, n), 0);
	memcpy(stream + 4 + n, q_example_a, n);
	assert_int_equal(stream[0], 0);
	assert_int_equal(stream[1], n);

	const uint8_t *msg;
	size_t mlen;
	/* Every prefix short of a frame asks for more. */
	for (size_t have = 0; have < 2 + n; have++)
		assert_int_equal(dns_tcp_frame(stream, have, &msg, &mlen), 0);
	assert_int_equal(dns_tcp_frame(stream, sizeof(stream), &msg, &mlen),
			 2 + n);
	assert_ptr_equal(msg, stream + 2);
	assert_int_equal(mlen, n);
	assert_int_equal(dns_tcp_frame(stream + 2 + n, 2 + n, &msg, &mlen),
			 2 + n);
	struct dns_query q;
	assert_int_equal(dns_parse_query(msg, mlen, &q), 0);
	assert_string_equal(q.name, "example.com");

	uint8_t small[] = {0, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
	assert_int_equal(dns_tcp_frame(small, sizeof(small), &msg, &mlen),
			 -EBADMSG);
	uint8_t big[2];
	assert_int_equal(dns_tcp_put_len(big, DNS_TCP_MAX), 0);
	assert_int_equal(big[0], 0xff);
	assert_int_equal(big[1], 0xff);
	assert_int_equal(dns_tcp_put_len(big, DNS_TCP_MAX + 1), -EMSGSIZE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_simple),
	    cmocka_unit_test(test_parse_edns),
	    cmocka_unit_test(test_parse_glibc_query),
	    cmocka_unit_test(test_parse_root_and_underscore),
	    cmocka_unit_test(test_parse_rejects),
	    cmocka_unit_test(test_name_bounds),
	    cmocka_unit_test(test_nxdomain_bytes),
	    cmocka_unit_test(test_answers_a),
	    cmocka_unit_test(test_answers_aaaa_and_other_types),
	    cmocka_unit_test(test_truncation),
	    cmocka_unit_test(test_build_error),
	    cmocka_unit_test(test_tcp_framing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
