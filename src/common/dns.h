#pragma once
/*
 * A small, pure DNS message codec for the guest's DNS stub and the host's
 * answer to it (see docs/egress.md).  It parses exactly one kind of
 * message, a standard query with one question, and builds the few
 * responses the stub ever gives: an error (NXDOMAIN, REFUSED, SERVFAIL,
 * FORMERR, NOTIMP), an empty NOERROR (no data of that type) or A/AAAA
 * answers from a list of addresses.  No I/O, no allocation; every length
 * is checked against the buffer before use.
 *
 * Transports: a UDP message is at most DNS_UDP_MAX bytes (we do not speak
 * EDNS0: a query's OPT record is accepted and ignored, responses carry none,
 * so the classic 512-byte limit applies); over TCP a message is preceded
 * by a 2-byte big-endian length and may reach DNS_TCP_MAX bytes.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Message sizes; DNS_WIRE_NAME_MAX counts an encoded name with its length
 * bytes and root label, DNS_NAME_MAX its dotted text without a final dot. */
#define DNS_UDP_MAX	  512
#define DNS_TCP_MAX	  65535
#define DNS_HEADER_LEN	  12
#define DNS_WIRE_NAME_MAX 255
#define DNS_NAME_MAX	  253
#define DNS_LABEL_MAX	  63

enum dns_rcode {
	DNS_RCODE_NOERROR = 0,
	DNS_RCODE_FORMERR = 1,
	DNS_RCODE_SERVFAIL = 2,
	DNS_RCODE_NXDOMAIN = 3,
	DNS_RCODE_NOTIMP = 4,
	DNS_RCODE_REFUSED = 5,
};

enum {
	DNS_TYPE_A = 1,
	DNS_TYPE_AAAA = 28,
	DNS_TYPE_OPT = 41,
	DNS_CLASS_IN = 1,
};

/* One address of an answer (also the address type egress_policy uses). */
struct dns_addr {
	int family; /* AF_INET (first 4 bytes used) or AF_INET6 */
	uint8_t bytes[16];
};

struct dns_query {
	uint16_t id;
	uint16_t flags; /* as received (RD and CD are echoed) */
	/* The question name as dotted text, lowercased, without a trailing
	 * dot; "" for the root.  Labels hold only letters, digits, '-' and
	 * '_', so the text cannot be read two ways. */
	char name[DNS_NAME_MAX + 1];
	uint16_t qtype, qclass;
	/* The question exactly as the client sent it (case kept: resolvers
	 * that randomise the case of names check that it comes back). */
	uint8_t question[DNS_WIRE_NAME_MAX + 4];
	size_t question_len;
};

/*
 * Parses a query message of len bytes (UDP payload, or the body of one TCP
 * frame).  Accepted: QR=0, opcode QUERY, exactly one question, no answer
 * or authority records, at most one additional record which must be an
 * EDNS0 OPT for the root, nothing after it.  Names: uncompressed labels of
 * 1..63 bytes of [A-Za-z0-9_-], 255 bytes encoded at most.
 * Returns 0, or:
 *   -EMSGSIZE  len is below a header or above DNS_TCP_MAX;
 *   -EBADMSG   malformed (truncated, bad counts, a compression pointer,
 *              trailing bytes, a bad OPT record);
 *   -EOPNOTSUPP a well-formed message that is not a standard query
 *              (a response, another opcode);
 *   -EINVAL    a name with bytes outside the allowed set.
 * q is filled only on success.  For any error except -EMSGSIZE the header
 * was readable, so dns_build_error() can answer it.
 */
int dns_parse_query(const uint8_t *msg, size_t len, struct dns_query *q);

/*
 * Builds the response to q in out (outsz bytes), at most limit bytes long
 * (DNS_UDP_MAX for UDP, DNS_TCP_MAX for TCP).  With rcode NOERROR, each
 * address of addrs[0..n) whose family matches the question type (A:
 * AF_INET, AAAA: AF_INET6; other types get none) becomes an answer with
 * the given TTL; the answers that do not fit are left out and TC is set.
 * With another rcode, addrs are ignored.  *outlen gets the length.
 * 0, or -EINVAL (bad rcode or family), -ENOBUFS (not even the header and
 * question fit).
 */
int dns_build_response(const struct dns_query *q, enum dns_rcode rcode,
		       const struct dns_addr *addrs, size_t n, uint32_t ttl,
		       size_t limit, uint8_t *out, size_t outsz,
		       size_t *outlen);

/*
 * A header-only response (no question echoed) for a message that did not
 * parse: takes the id and RD bit from the first DNS_HEADER_LEN bytes of msg.
 * Refuses (-EINVAL) to answer a message whose QR bit says it is itself a
 * response (answering those makes loops).  0, -EMSGSIZE (shorter than a
 * header), -ENOBUFS.
 */
int dns_build_error(const uint8_t *msg, size_t len, enum dns_rcode rcode,
		    uint8_t *out, size_t outsz, size_t *outlen);

/*
 * TCP framing.  dns_tcp_frame() looks at len buffered bytes: when a whole
 * frame is there it sets *msg and *msg_len to its body and returns the
 * bytes the frame takes (2 + body); 0 when more bytes are needed; -EBADMSG
 * when the length prefix announces less than a header.
 * dns_tcp_put_len() writes the 2-byte prefix for a body of len bytes
 * (-EMSGSIZE above DNS_TCP_MAX).
 */
ssize_t dns_tcp_frame(const uint8_t *buf, size_t len, const uint8_t **msg,
		      size_t *msg_len);
int dns_tcp_put_len(uint8_t out[2], size_t len);

/* The name of an rcode ("NXDOMAIN"...), for logs. */
const char *dns_rcode_name(enum dns_rcode rcode);
