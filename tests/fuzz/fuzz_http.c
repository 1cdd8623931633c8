/*
 * libFuzzer target: the API proxy's request parser (net/http.h).  The
 * input is what a guest writes: requests, one after another.  Each head is
 * checked against its invariants (its length within the input and the
 * bound, every pointer inside it, a prefix of it incomplete); a chunked
 * body after it is decoded at once, a byte at a time, and with a byte of
 * room at a time, which must agree, and the next request starts where the
 * decoder stopped.  A refused head sends the whole input through the decoder
 * too.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x)                                                               \
	do {                                                                   \
		if (!(x))                                                      \
			__builtin_trap();                                      \
	} while (0)

static bool inside(const char *p, size_t n, const char *buf, size_t len)
{
	return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static void check_head(const char *buf, size_t len, int rc,
		       const struct http_request *r)
{
	size_t n = (size_t)rc;
	CHECK(n <= len && n <= HTTP_HEAD_MAX && n >= 16);
	CHECK(memcmp(buf + n - 4, "\r\n\r\n", 4) == 0);
	size_t ml = strnlen(r->method, sizeof(r->method));
	CHECK(ml >= 1 && ml < sizeof(r->method));
	CHECK(memcmp(buf, r->method, ml) == 0 && buf[ml] == ' ');
	CHECK(inside(r->target, r->target_len, buf, n));
	CHECK(r->target_len >= 1 && r->target[0] == '/');
	CHECK(r->minor == 0 || r->minor == 1);
	CHECK(r->nh <= HTTP_HEADERS_MAX);
	for (size_t i = 0; i < r->nh; i++) {
		const struct http_header *h = &r->h[i];
		CHECK(h->name_len > 0 && inside(h->name, h->name_len, buf, n));
		CHECK(inside(h->value, h->value_len, buf, n));
		CHECK(memchr(h->value, '\r', h->value_len) == NULL);
		CHECK(memchr(h->value, '\n', h->value_len) == NULL);
		CHECK(h->value >= h->name + h->name_len + 1);
		/* The first of its name. */
		char name[64];
		if (h->name_len < sizeof(name)) {
			memcpy(name, h->name, h->name_len);
			name[h->name_len] = '\0';
			const struct http_header *g = http_header_get(r, name);
			CHECK(g && g <= h);
		}
		(void)http_hop_by_hop(r, h->name, h->name_len);
	}
	CHECK(r->minor == 0 || r->host);
	CHECK(!r->host || (r->host >= r->h && r->host < r->h + r->nh));
	CHECK(r->body == HTTP_BODY_LENGTH || r->length == 0);
	CHECK(r->length <= HTTP_BODY_MAX);
	CHECK(r->body != HTTP_BODY_CHUNKED || r->minor == 1);
	CHECK(!r->expect_continue || r->minor == 1);
	CHECK(http_hop_by_hop(r, "Transfer-Encoding", 17));
	CHECK(!http_hop_by_hop(r, "Content-Length", 14) ||
	      http_header_get(r, "connection"));
	/* Any prefix is incomplete. */
	struct http_request again;
	int st;
	const char *why;
	CHECK(http_request_parse(buf, n - 1, &again, &st, &why) == 0);
	CHECK(http_request_parse(buf, n, &again, &st, &why) == rc);
}

static void check_refusal(const char *buf, size_t len, int st, const char *why)
{
	CHECK(st == 400 || st == 405 || st == 413 || st == 417 || st == 431 ||
	      st == 501 || st == 505);
	CHECK(why && why[0] && !strchr(why, '\n'));
	/* A prefix is incomplete or refused the same way. */
	struct http_request r;
	int st2 = 0;
	const char *why2 = NULL;
	int rc = http_request_parse(buf, len / 2, &r, &st2, &why2);
	CHECK(rc == 0 || (rc == -1 && st2 == st && why2 == why));
	CHECK(rc != 0 || len / 2 < HTTP_HEAD_MAX);
}

/* Decodes in[0..n) at once and a byte at a time; both must agree.  The
 * input consumed (the body's length when complete), or 0 when not. */
static size_t check_chunked(const char *in, size_t n)
{
	char *a = malloc(n + 1), *b = malloc(n + 1);
	CHECK(a && b);
	struct http_chunked c;
	size_t used, na;
	const char *why_a = NULL, *why_b = NULL;
	http_chunked_init(&c);
	int rc = http_chunked_decode(&c, in, n, &used, a, n + 1, &na, &why_a);
	CHECK(rc >= -1 && rc <= 1 && used <= n && na <= used);
	CHECK(rc != 0 || used == n);
	CHECK(rc != -1 || (why_a && why_a[0]));

	http_chunked_init(&c);
	size_t off = 0, nb = 0;
	int rb = 0;
	while (off < n) {
		size_t u, p;
		rb = http_chunked_decode(&c, in + off, 1, &u, b + nb, 1, &p,
					 &why_b);
		CHECK(u <= 1 && p <= 1 && p <= u);
		off += u;
		nb += p;
		if (rb != 0)
			break;
		CHECK(u == 1); /* with input and room, progress */
	}
	CHECK(rb == rc && nb == na && memcmp(a, b, na) == 0);
	CHECK(off == used);
	CHECK(rc != -1 || why_b == why_a);
	/* All the input each time, a byte of room. */
	struct http_chunked d;
	http_chunked_init(&d);
	size_t off2 = 0, nd = 0;
	int rd = 0;
	while (off2 < n) {
		size_t u, p;
		rd = http_chunked_decode(&d, in + off2, n - off2, &u, b + nd, 1,
					 &p, &why_b);
		CHECK(u <= n - off2 && p <= 1 && p <= u);
		off2 += u;
		nd += p;
		if (rd != 0)
			break;
		CHECK(u >= 1);
	}
	CHECK(rd == rc && nd == na && memcmp(a, b, na) == 0);
	CHECK(off2 == used);
	CHECK(rc != -1 || why_b == why_a);
	/* Failed stays failed; done stays done. */
	if (rc != 0) {
		size_t u, p;
		char o;
		CHECK(http_chunked_decode(&c, "0\r\n\r\n", 5, &u, &o, 1, &p,
					  &why_b) == rc);
		CHECK(u == 0 && p == 0);
	}
	free(a);
	free(b);
	return rc == 1 ? used : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	static struct http_request r;
	size_t off = 0;
	/* A few requests in a row, as on a kept-alive connection. */
	for (int k = 0; k < 4 && off < size; k++) {
		int st = 0;
		const char *why = NULL;
		int rc =
		    http_request_parse(buf + off, size - off, &r, &st, &why);
		if (rc < 0) {
			check_refusal(buf + off, size - off, st, why);
			if (k == 0)
				(void)check_chunked(buf, size);
			return 0;
		}
		if (rc == 0) {
			CHECK(size - off < HTTP_HEAD_MAX);
			return 0;
		}
		check_head(buf + off, size - off, rc, &r);
		off += (size_t)rc;
		if (r.body == HTTP_BODY_CHUNKED) {
			size_t used = check_chunked(buf + off, size - off);
			if (used == 0)
				return 0;
			off += used;
		} else if (r.body == HTTP_BODY_LENGTH) {
			if (r.length > size - off)
				return 0;
			off += (size_t)r.length;
		}
	}
	return 0;
}
