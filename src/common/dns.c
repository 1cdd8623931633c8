/* DNS message codec for the egress stub: see dns.h. */
#include "dns.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

/* Header flag bits (RFC 1035 4.1.1). */
#define F_QR	 0x8000
#define F_OPCODE 0x7800
#define F_TC	 0x0200
#define F_RD	 0x0100
#define F_RA	 0x0080
#define F_CD	 0x0010

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static bool label_byte_ok(uint8_t c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/*
 * Reads an uncompressed name at msg[*off] (msg is len bytes): fills text
 * (when non-NULL, DNS_NAME_MAX + 1 bytes) with the lowercased dotted form
 * and advances *off past the root label.
 */
static int read_name(const uint8_t *msg, size_t len, size_t *off, char *text)
{
	size_t p = *off, wire = 0, t = 0;
	bool bad_byte = false;
	for (;;) {
		if (p >= len)
			return -EBADMSG;
		uint8_t l = msg[p++];
		wire++;
		if (l == 0)
			break;
		/* 0xC0 is a compression pointer, 0x40/0x80 obsolete or
		 * reserved label types: none belongs in a query. */
		if (l & 0xC0)
			return -EBADMSG;
		if (l > len - p)
			return -EBADMSG;
		wire += l;
		if (wire + 1 > DNS_WIRE_NAME_MAX)
			return -EBADMSG;
		if (text && t > 0)
			text[t++] = '.';
		for (size_t i = 0; i < l; i++) {
			uint8_t c = msg[p + i];
			if (!label_byte_ok(c))
				bad_byte = true;
			if (text) {
				if (c >= 'A' && c <= 'Z')
					c = (uint8_t)(c - 'A' + 'a');
				text[t++] = (char)c;
			}
		}
		p += l;
	}
	/* wire <= 255 keeps the text within 253 characters plus NUL. */
	if (text)
		text[t] = '\0';
	*off = p;
	return bad_byte ? -EINVAL : 0;
}

int dns_parse_query(const uint8_t *msg, size_t len, struct dns_query *q)
{
	if (len < DNS_HEADER_LEN || len > DNS_TCP_MAX)
		return -EMSGSIZE;
	uint16_t flags = get16(msg + 2);
	uint16_t qd = get16(msg + 4), an = get16(msg + 6), ns = get16(msg + 8),
		 ar = get16(msg + 10);
	if (flags & F_QR)
		return -EOPNOTSUPP;
	if ((flags & F_OPCODE) != 0)
		return -EOPNOTSUPP;
	if (qd != 1 || an != 0 || ns != 0 || ar > 1)
		return -EBADMSG;

	struct dns_query r;
	memset(&r, 0, sizeof(r));
	r.id = get16(msg);
	r.flags = flags;
	size_t off = DNS_HEADER_LEN;
	int rc = read_name(msg, len, &off, r.name);
	if (rc == -EBADMSG)
		return rc;
	int name_rc = rc;
	if (len - off < 4)
		return -EBADMSG;
	r.qtype = get16(msg + off);
	r.qclass = get16(msg + off + 2);
	off += 4;
	r.question_len = off - DNS_HEADER_LEN;
	memcpy(r.question, msg + DNS_HEADER_LEN, r.question_len);

	if (ar == 1) {
		/* EDNS0 OPT: root name, type 41, class (UDP size), TTL
		 * (extended rcode and flags), rdlength, rdata. */
		if (len - off < 11 || msg[off] != 0 ||
		    get16(msg + off + 1) != DNS_TYPE_OPT)
			return -EBADMSG;
		size_t rdlen = get16(msg + off + 9);
		off += 11;
		if (rdlen > len - off)
			return -EBADMSG;
		off += rdlen;
	}
	if (off != len)
		return -EBADMSG;
	if (name_rc < 0)
		return name_rc;
	*q = r;
	return 0;
}

static bool rcode_ok(enum dns_rcode rcode)
{
	return rcode >= DNS_RCODE_NOERROR && rcode <= DNS_RCODE_REFUSED;
}

int dns_build_response(const struct dns_query *q, enum dns_rcode rcode,
		       const struct dns_addr *addrs, size_t n, uint32_t ttl,
		       size_t limit, uint8_t *out, size_t outsz, size_t *outlen)
{
	if (!rcode_ok(rcode) || q->question_len < 5 ||
	    q->question_len > sizeof(q->question))
		return -EINVAL;
	if (limit > outsz)
		limit = outsz;
	if (limit > DNS_TCP_MAX)
		limit = DNS_TCP_MAX;
	size_t off = DNS_HEADER_LEN + q->question_len;
	if (off > limit)
		return -ENOBUFS;

	int want = 0;
	if (rcode == DNS_RCODE_NOERROR && q->qclass == DNS_CLASS_IN) {
		if (q->qtype == DNS_TYPE_A)
			want = AF_INET;
		else if (q->qtype == DNS_TYPE_AAAA)
			want = AF_INET6;
	}
	for (size_t i = 0; addrs && i < n; i++)
		if (addrs[i].family != AF_INET && addrs[i].family != AF_INET6)
			return -EINVAL;

	memcpy(out + DNS_HEADER_LEN, q->question, q->question_len);
	uint16_t answers = 0;
	bool truncated = false;
	for (size_t i = 0; want && addrs && i < n; i++) {
		if (addrs[i].family != want)
			continue;
		size_t alen = want == AF_INET ? 4 : 16;
		size_t rr = 12 + alen;
		if (rr > limit - off || answers == UINT16_MAX) {
			truncated = true;
			break;
		}
		/* The name is a pointer to the question's (offset 12). */
		put16(out + off, 0xC000 | DNS_HEADER_LEN);
		put16(out + off + 2, q->qtype);
		put16(out + off + 4, DNS_CLASS_IN);
		put32(out + off + 6, ttl);
		put16(out + off + 10, (uint16_t)alen);
		memcpy(out + off + 12, addrs[i].bytes, alen);
		off += rr;
		answers++;
	}

	uint16_t flags =
	    F_QR | F_RA | (q->flags & (F_RD | F_CD)) | (uint16_t)rcode;
	if (truncated)
		flags |= F_TC;
	put16(out, q->id);
	put16(out + 2, flags);
	put16(out + 4, 1);
	put16(out + 6, answers);
	put16(out + 8, 0);
	put16(out + 10, 0);
	*outlen = off;
	return 0;
}

int dns_build_error(const uint8_t *msg, size_t len, enum dns_rcode rcode,
		    uint8_t *out, size_t outsz, size_t *outlen)
{
	if (!rcode_ok(rcode))
		return -EINVAL;
	if (len < DNS_HEADER_LEN)
		return -EMSGSIZE;
	uint16_t flags = get16(msg + 2);
	if (flags & F_QR)
		return -EINVAL;
	if (outsz < DNS_HEADER_LEN)
		return -ENOBUFS;
	memset(out, 0, DNS_HEADER_LEN);
	memcpy(out, msg, 2);
	put16(out + 2, (uint16_t)(F_QR | F_RA | (flags & (F_OPCODE | F_RD)) |
				  (uint16_t)rcode));
	*outlen = DNS_HEADER_LEN;
	return 0;
}

ssize_t dns_tcp_frame(const uint8_t *buf, size_t len, const uint8_t **msg,
		      size_t *msg_len)
{
	if (len < 2)
		return 0;
	size_t body = get16(buf);
	if (body < DNS_HEADER_LEN)
		return -EBADMSG;
	if (len - 2 < body)
		return 0;
	*msg = buf + 2;
	*msg_len = body;
	return (ssize_t)(body + 2);
}

int dns_tcp_put_len(uint8_t out[2], size_t len)
{
	if (len > DNS_TCP_MAX)
		return -EMSGSIZE;
	put16(out, (uint16_t)len);
	return 0;
}

const char *dns_rcode_name(enum dns_rcode rcode)
{
	switch (rcode) {
	case DNS_RCODE_NOERROR:
		return "NOERROR";
	case DNS_RCODE_FORMERR:
		return "FORMERR";
	case DNS_RCODE_SERVFAIL:
		return "SERVFAIL";
	case DNS_RCODE_NXDOMAIN:
		return "NXDOMAIN";
	case DNS_RCODE_NOTIMP:
		return "NOTIMP";
	case DNS_RCODE_REFUSED:
		return "REFUSED";
	}
	return "?";
}
