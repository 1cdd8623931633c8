#pragma once
/*
 * The API proxy's HTTP/1.1 request parser (RFC 9112), server side: it
 * reads what the guest writes, so it is strict and bounded, and refuses
 * anything two parties could read differently (where a request's head or
 * body ends: request smuggling).  Pure code: no I/O, no allocation; what
 * it returns points into the caller's buffer.
 *
 * Refused, with the status to answer:
 *  - 400: bare LF, CR inside a line, a leading blank line, anything but
 *    single spaces between METHOD, target and version, a lowercase or
 *    non-token method, a target that is not origin-form ("/..." of bytes
 *    0x21-0x7e without '#'), obs-fold, whitespace before a header's colon,
 *    a non-token field name, control characters in a value, a missing or
 *    repeated Host (HTTP/1.1) or one that is not host[:port], a
 *    Content-Length that is not one plain decimal number (or overflows),
 *    two of them, Content-Length with Transfer-Encoding, Transfer-Encoding
 *    in HTTP/1.0, a Connection that is not a list of tokens;
 *  - 405: CONNECT;
 *  - 413: Content-Length above HTTP_BODY_MAX;
 *  - 417: Expect other than 100-continue;
 *  - 431: more than HTTP_HEADERS_MAX fields or a head beyond HTTP_HEAD_MAX;
 *  - 501: a method longer than 15 characters, a transfer coding other than
 *    one "chunked";
 *  - 505: an HTTP version other than 1.1 and 1.0 (HTTP/2's preface too).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HTTP_HEAD_MAX	    32768 /* request line + header block, bytes */
#define HTTP_HEADERS_MAX    100	  /* header fields (and trailer fields) */
#define HTTP_BODY_MAX	    (64ull << 20) /* Content-Length or decoded chunked */
#define HTTP_CHUNK_LINE_MAX 4096	  /* chunk-size and extensions, bytes */

/* Points into the caller's buffer; value has its OWS trimmed. */
struct http_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

enum http_body { HTTP_BODY_NONE, HTTP_BODY_LENGTH, HTTP_BODY_CHUNKED };

struct http_request {
	char method[16];    /* NUL-terminated */
	const char *target; /* origin-form: starts with '/' */
	size_t target_len;
	int minor; /* 0 or 1 (HTTP/1.0, HTTP/1.1) */
	struct http_header h[HTTP_HEADERS_MAX];
	size_t nh;
	enum http_body body;
	uint64_t length; /* HTTP_BODY_LENGTH: Content-Length */
	/* false: close after the response (Connection: close, or HTTP/1.0
	 * without Connection: keep-alive). */
	bool keep_alive;
	bool expect_continue; /* Expect: 100-continue (HTTP/1.1 only) */
	const struct http_header *host; /* the one Host (NULL: 1.0 without) */
};

/*
 * Parses the head at buf[0..len).  >0: the head's length (through the
 * blank line's CRLF), *r filled; 0: incomplete, read more (only while len
 * < HTTP_HEAD_MAX: at the bound it is a refusal); -1: refused, *status is
 * the status to answer and *why a static one-line reason (no newline).
 * Only complete lines are judged, in order, so feeding a request in
 * pieces gives the same answer as all at once.  *r is written on success
 * only, *status and *why on refusal only.
 */
int http_request_parse(const char *buf, size_t len, struct http_request *r,
		       int *status, const char **why);

/* First header named name (case-insensitive), or NULL. */
const struct http_header *http_header_get(const struct http_request *r,
					  const char *name);

/*
 * true for hop-by-hop fields the proxy must not forward: Connection,
 * Keep-Alive, Proxy-*, TE, Trailer, Transfer-Encoding, Upgrade, and any
 * named in a Connection header's tokens (case-insensitive).
 */
bool http_hop_by_hop(const struct http_request *r, const char *name,
		     size_t name_len);

/* Chunked decoder state, opaque to callers. */
struct http_chunked {
	int state;
	uint64_t left;	   /* chunk-size being read, then data left; in the
			      trailer section: its bytes so far */
	uint64_t total;	   /* body bytes decoded */
	unsigned line;	   /* bytes of the current chunk or trailer line */
	unsigned fields;   /* trailer fields */
	const char *error; /* once failed: why (sticky) */
};

void http_chunked_init(struct http_chunked *c);

/*
 * Decodes chunked input in[0..n) into out[0..outsz): *used bytes of input
 * consumed, *produced bytes of body written (both always set).  1: the
 * last chunk and the trailer section are done (*used ends right after the
 * final CRLF: what follows belongs to the next request); 0: more input or
 * output room needed; -1: malformed (*why: a static reason; the state
 * stays failed).  Trailer fields are checked and dropped.  The decoded
 * total is bounded by HTTP_BODY_MAX (-1 beyond).
 */
int http_chunked_decode(struct http_chunked *c, const char *in, size_t n,
			size_t *used, char *out, size_t outsz, size_t *produced,
			const char **why);
