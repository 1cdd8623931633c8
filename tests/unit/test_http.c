/* Unit tests for src/host/net/http.c: the API proxy's request parser. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/http.h"

static struct http_request req;

static int parse(const char *s, int *status, const char **why)
{
	return http_request_parse(s, strlen(s), &req, status, why);
}

/* s parses whole: its head is all of it. */
static void parses(const char *s)
{
	int status = 0;
	const char *why = NULL;
	int rc = parse(s, &status, &why);
	if (rc != (int)strlen(s))
		fail_msg("%s: %d (%d %s), want %zu", s, rc, status,
			 why ? why : "", strlen(s));
}

/* s is refused with status, and a reason that contains what. */
static void refused(const char *s, int want, const char *what)
{
	int status = 0;
	const char *why = NULL;
	int rc = parse(s, &status, &why);
	if (rc != -1 || status != want || !why || !strstr(why, what))
		fail_msg("%s: %d (%d \"%s\"), want -1 (%d \"...%s...\")", s, rc,
			 status, rc < 0 && why ? why : "", want, what);
	/* One line, no newline. */
	assert_null(strchr(why, '\n'));
}

#define H11 " HTTP/1.1\r\nHost: api.ccvm.internal\r\n"

static void test_get(void **state)
{
	(void)state;
	const char *s = "GET /v1/models?limit=2 HTTP/1.1\r\n"
			"Host: api.ccvm.internal\r\n"
			"Accept: */*\r\n"
			"anthropic-version:2023-06-01\r\n"
			"\r\n";
	int status = 0;
	const char *why = NULL;
	assert_int_equal(parse(s, &status, &why), (int)strlen(s));
	assert_string_equal(req.method, "GET");
	assert_int_equal(req.target_len, strlen("/v1/models?limit=2"));
	assert_memory_equal(req.target, "/v1/models?limit=2", req.target_len);
	assert_ptr_equal(req.target, s + 4);
	assert_int_equal(req.minor, 1);
	assert_int_equal(req.nh, 3);
	assert_non_null(req.host);
	assert_ptr_equal(req.host, &req.h[0]);
	assert_int_equal(req.host->value_len, strlen("api.ccvm.internal"));
	assert_memory_equal(req.host->value, "api.ccvm.internal",
			    req.host->value_len);
	assert_int_equal(req.body, HTTP_BODY_NONE);
	assert_int_equal(req.length, 0);
	assert_true(req.keep_alive);
	assert_false(req.expect_continue);
	/* Names case-insensitive; the first of two; NULL when absent. */
	const struct http_header *h =
	    http_header_get(&req, "ANTHROPIC-Version");
	assert_ptr_equal(h, &req.h[2]);
	assert_int_equal(h->value_len, 10);
	assert_memory_equal(h->value, "2023-06-01", 10);
	assert_null(http_header_get(&req, "content-length"));
	assert_null(http_header_get(&req, "accep"));
	/* Refusal outputs are untouched on success. */
	assert_int_equal(status, 0);
	assert_null(why);
}

static void test_post_length(void **state)
{
	(void)state;
	const char *s = "POST /v1/messages HTTP/1.1\r\n"
			"host: api.ccvm.internal:80\r\n"
			"x-api-key: \t placeholder \t\r\n"
			"Content-Length: 000013\r\n"
			"Content-Type: application/json\r\n"
			"X-Empty:\r\n"
			"X-Obs: caf\xc3\xa9\r\n"
			"\r\n"
			"{\"a\":\"hello\"}";
	int status;
	const char *why;
	int rc = parse(s, &status, &why);
	assert_int_equal(rc, (int)(strlen(s) - 13));
	assert_string_equal(req.method, "POST");
	assert_int_equal(req.body, HTTP_BODY_LENGTH);
	assert_int_equal(req.length, 13);
	const struct http_header *h = http_header_get(&req, "X-API-KEY");
	assert_non_null(h);
	assert_int_equal(h->value_len, strlen("placeholder"));
	assert_memory_equal(h->value, "placeholder", h->value_len);
	h = http_header_get(&req, "x-empty");
	assert_non_null(h);
	assert_int_equal(h->value_len, 0);
	/* obs-text passes through. */
	h = http_header_get(&req, "x-obs");
	assert_int_equal(h->value_len, 5);
	/* Every header points inside the buffer, before the body. */
	for (size_t i = 0; i < req.nh; i++) {
		assert_true(req.h[i].name >= s);
		assert_true(req.h[i].value + req.h[i].value_len <= s + rc);
	}
	/* Content-Length: 0 is a body of length 0. */
	parses("POST /x" H11 "Content-Length: 0\r\n\r\n");
	assert_int_equal(req.body, HTTP_BODY_LENGTH);
	assert_int_equal(req.length, 0);
	/* A GET may carry a length too. */
	parses("GET /x" H11 "Content-Length: 2\r\n\r\n");
	assert_int_equal(req.body, HTTP_BODY_LENGTH);
	assert_int_equal(req.length, 2);
}

static void test_post_chunked(void **state)
{
	(void)state;
	const char *s = "POST /v1/messages HTTP/1.1\r\n"
			"Host: api.ccvm.internal\r\n"
			"Transfer-Encoding:  CHUNKED \r\n"
			"\r\n";
	parses(s);
	assert_int_equal(req.body, HTTP_BODY_CHUNKED);
	assert_int_equal(req.length, 0);

	const char *body = "5\r\nhello\r\n"
			   "6;ext=1;q=\"a \\\" b\";flag\r\n world\r\n"
			   "A\r\n0123456789\r\n"
			   "0\r\n"
			   "X-Trailer: 1\r\n"
			   "Other:  x y \r\n"
			   "\r\n";
	struct http_chunked c;
	http_chunked_init(&c);
	char out[64];
	size_t used, produced;
	const char *why = NULL;
	assert_int_equal(http_chunked_decode(&c, body, strlen(body), &used, out,
					     sizeof(out), &produced, &why),
			 1);
	assert_int_equal(used, strlen(body));
	assert_int_equal(produced, 21);
	assert_memory_equal(out, "hello world0123456789", 21);
	assert_null(why);
	/* Done stays done: nothing more is taken. */
	assert_int_equal(http_chunked_decode(&c, "5\r\n", 3, &used, out,
					     sizeof(out), &produced, &why),
			 1);
	assert_int_equal(used, 0);
	assert_int_equal(produced, 0);
	/* An empty body: the last chunk at once. */
	http_chunked_init(&c);
	assert_int_equal(http_chunked_decode(&c, "0\r\n\r\n", 5, &used, out,
					     sizeof(out), &produced, &why),
			 1);
	assert_int_equal(used, 5);
	assert_int_equal(produced, 0);
}

static void test_keep_alive(void **state)
{
	(void)state;
	parses("GET /" H11 "\r\n");
	assert_true(req.keep_alive);
	parses("GET /" H11 "Connection: close\r\n\r\n");
	assert_false(req.keep_alive);
	parses("GET /" H11 "Connection: keep-alive, , Close\r\n\r\n");
	assert_false(req.keep_alive);
	parses("GET /" H11 "Connection: keep-alive\r\nConnection: x-y\r\n\r\n");
	assert_true(req.keep_alive);
	/* HTTP/1.0: close unless it asks, and Host optional. */
	parses("GET / HTTP/1.0\r\n\r\n");
	assert_int_equal(req.minor, 0);
	assert_false(req.keep_alive);
	assert_null(req.host);
	assert_int_equal(req.nh, 0);
	parses("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
	assert_true(req.keep_alive);
	parses("GET / HTTP/1.0\r\nConnection: keep-alive,close\r\n\r\n");
	assert_false(req.keep_alive);
	parses("POST /a HTTP/1.0\r\nHost: x\r\nContent-Length: 3\r\n\r\n");
	assert_int_equal(req.body, HTTP_BODY_LENGTH);
	assert_int_equal(req.length, 3);
	assert_non_null(req.host);
	/* Not a token list. */
	refused("GET /" H11 "Connection: close x\r\n\r\n", 400, "Connection");
	refused("GET /" H11 "Connection: \"close\"\r\n\r\n", 400, "Connection");
}

static void test_expect(void **state)
{
	(void)state;
	parses("POST /" H11
	       "Expect: 100-continue\r\nContent-Length: 1\r\n\r\n");
	assert_true(req.expect_continue);
	parses("POST /" H11
	       "Expect: 100-Continue \r\nContent-Length: 1\r\n\r\n");
	assert_true(req.expect_continue);
	parses("POST /" H11 "Content-Length: 1\r\n\r\n");
	assert_false(req.expect_continue);
	/* HTTP/1.0: ignored (RFC 9110 10.1.1). */
	parses("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n");
	assert_false(req.expect_continue);
	refused("POST /" H11 "Expect: 200-ok\r\n\r\n", 417, "Expect");
	refused("POST /" H11 "Expect: 100-continue, x\r\n\r\n", 417, "Expect");
	refused("POST /" H11 "Expect:\r\n\r\n", 417, "Expect");
}

static void test_request_line(void **state)
{
	(void)state;
	const char *shape = "METHOD SP request-target SP HTTP-version";
	parses("M-SEARCH_2 /" H11 "\r\n");
	assert_string_equal(req.method, "M-SEARCH_2");
	/* 15 characters: the longest. */
	parses("ABCDEFGHIJKLMNO /" H11 "\r\n");
	assert_string_equal(req.method, "ABCDEFGHIJKLMNO");
	refused("ABCDEFGHIJKLMNOP /" H11 "\r\n", 501, "longer than 15");
	refused("get /" H11 "\r\n", 400, "uppercase token");
	refused("G(T /" H11 "\r\n", 400, "uppercase token");
	refused("GET  /" H11 "\r\n", 400, shape);
	refused(" GET /" H11 "\r\n", 400, shape);
	refused("GET /  HTTP/1.1\r\nHost: a\r\n\r\n", 400, shape);
	refused("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, shape);
	refused("GET\t/" H11 "\r\n", 400, shape);
	refused("GET /\tHTTP/1.1\r\nHost: a\r\n\r\n", 400, shape);
	refused("GET /a b" H11 "\r\n", 400, shape);
	refused("GET /\r\n\r\n", 400, shape); /* HTTP/0.9 */
	refused("GET\r\n\r\n", 400, shape);
	refused("\r\nGET /" H11 "\r\n", 400, "blank line before");
	refused("\r\n", 400, "blank line before");
	/* Versions. */
	parses("GET / HTTP/1.0\r\n\r\n");
	refused("GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, "HTTP version");
	refused("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "HTTP version");
	refused("GET / HTTP/0.9\r\n\r\n", 505, "HTTP version");
	refused("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "HTTP version");
	refused("GET / HTTP/2\r\n\r\n", 400, "malformed HTTP version");
	refused("GET / http/1.1\r\nHost: a\r\n\r\n", 400,
		"malformed HTTP version");
	refused("GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400,
		"malformed HTTP version");
	refused("GET / HTTP/1.1x\r\nHost: a\r\n\r\n", 400,
		"malformed HTTP version");
}

static void test_targets(void **state)
{
	(void)state;
	parses("GET /a/b%20c?x=1&y=~!$'()*+,;=:@/ HTTP/1.1\r\nHost: a\r\n\r\n");
	parses("GET //double HTTP/1.1\r\nHost: a\r\n\r\n");
	refused("GET http://api.anthropic.com/v1/messages" H11 "\r\n", 400,
		"absolute-form request target refused: this proxy forwards "
		"only to its own upstream");
	refused("GET HTTPS://evil.example/" H11 "\r\n", 400, "absolute-form");
	refused("OPTIONS *" H11 "\r\n", 400, "asterisk-form");
	refused("GET api.anthropic.com:443" H11 "\r\n", 400, "authority-form");
	refused("GET evil.example" H11 "\r\n", 400, "authority-form");
	refused("GET a/b" H11 "\r\n", 400, "not origin-form");
	refused("CONNECT api.anthropic.com:443" H11 "\r\n", 405,
		"CONNECT refused: ");
	refused("CONNECT /" H11 "\r\n", 405, "CONNECT refused");
	refused("GET /a#frag" H11 "\r\n", 400, "'#'");
	refused("GET /a\x7f" H11 "\r\n", 400, "0x21-0x7e");
	refused("GET /caf\xc3\xa9" H11 "\r\n", 400, "0x21-0x7e");
	refused("GET /a\x01" H11 "\r\n", 400, "0x21-0x7e");
}

static void test_field_lines(void **state)
{
	(void)state;
	/* Positive controls: every token character, obs-text, HTAB. */
	parses("GET /" H11 "!#$%&'*+-.^_`|~09azAZ: a\tb \x80\xff\r\n\r\n");
	refused("GET /" H11 "X-A: 1\r\n continued\r\n\r\n", 400, "obs-fold");
	refused("GET /" H11 "X-A: 1\r\n\tcontinued\r\n\r\n", 400, "obs-fold");
	/* Whitespace between the start line and the first field. */
	refused("GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, "obs-fold");
	refused("GET /" H11 "X-A : 1\r\n\r\n", 400, "and its colon");
	refused("GET /" H11 "X-A\t: 1\r\n\r\n", 400, "and its colon");
	refused("GET /" H11 "X-A 1\r\n\r\n", 400, "without a colon");
	refused("GET /" H11 ": 1\r\n\r\n", 400, "empty header name");
	refused("GET /" H11 "X(A): 1\r\n\r\n", 400, "not a token");
	refused("GET /" H11 "X/A: 1\r\n\r\n", 400, "not a token");
	refused("GET /" H11 "X\x80: 1\r\n\r\n", 400, "not a token");
	refused("GET /" H11 "X-A: a\x01"
		"b\r\n\r\n",
		400, "control");
	refused("GET /" H11 "X-A: a\x7f\r\n\r\n", 400, "control");
	refused("GET /" H11 "X-A: a\x1b[0m\r\n\r\n", 400, "control");
	/* A NUL (strlen would stop at it). */
	static const char nul[] = "GET /" H11 "X-A: a\0b\r\n\r\n";
	int status;
	const char *why;
	assert_int_equal(
	    http_request_parse(nul, sizeof(nul) - 1, &req, &status, &why), -1);
	assert_int_equal(status, 400);
	assert_non_null(strstr(why, "control"));
	refused("GET /" H11 "X-A: a\rb\r\n\r\n", 400, "CR not followed by LF");
	refused("GET /\r" H11 "\r\n", 400, "CR not followed by LF");
}

static void test_bare_lf(void **state)
{
	(void)state;
	refused("GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "bare LF");
	refused("GET /" H11 "X-A: 1\n\r\n", 400, "bare LF");
	refused("GET /" H11 "\n", 400, "bare LF");
	refused("GET / HTTP/1.1\nHost: a\n\n", 400, "bare LF");
	refused("\nGET /" H11 "\r\n", 400, "bare LF");
	/* A LF hidden in a line: the line ends there, without its CR. */
	refused("GET /" H11 "X-A: 1\nX-B: 2\r\n\r\n", 400, "bare LF");
}

static void test_host(void **state)
{
	(void)state;
	const char *ok[] = {"a",
			    "api.ccvm.internal",
			    "api.ccvm.internal:80",
			    "127.0.0.1:65535",
			    "[::1]",
			    "[::1]:8080",
			    "x_y.~z-",
			    "host."};
	char buf[256];
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n",
			 ok[i]);
		parses(buf);
		assert_int_equal(req.host->value_len, strlen(ok[i]));
	}
	const char *bad[] = {
	    "",		"a b",	"a/b", "user@a", "a:",	    "a:65536",
	    "a:123456", "a:8x", ":80", "[]",	 "[::1",    "[::1]x",
	    "[::g]",	"a,b",	"a;b", "a%41",	 "a:80:80", "[::1]:"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: %s\r\n\r\n",
			 bad[i]);
		refused(buf, 400, "Host header is not host[:port]");
	}
	refused("GET / HTTP/1.1\r\n\r\n", 400, "without a Host");
	refused("GET / HTTP/1.1\r\nX: y\r\n\r\n", 400, "without a Host");
	refused("GET /" H11 "Host: api.ccvm.internal\r\n\r\n", 400,
		"more than one Host");
	refused("GET /" H11 "HOST: other\r\n\r\n", 400, "more than one Host");
	refused("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 400,
		"more than one Host");
}

static void test_content_length(void **state)
{
	(void)state;
	char buf[256];
	snprintf(buf, sizeof(buf), "POST /" H11 "Content-Length: %llu\r\n\r\n",
		 (unsigned long long)HTTP_BODY_MAX);
	parses(buf);
	assert_int_equal(req.length, HTTP_BODY_MAX);
	snprintf(buf, sizeof(buf), "POST /" H11 "Content-Length: %llu\r\n\r\n",
		 (unsigned long long)HTTP_BODY_MAX + 1);
	refused(buf, 413, "64 MiB");
	refused("POST /" H11 "Content-Length: 18446744073709551615\r\n\r\n",
		413, "64 MiB");
	refused("POST /" H11 "Content-Length: 18446744073709551616\r\n\r\n",
		400, "overflows");
	refused("POST /" H11
		"Content-Length: 99999999999999999999999999999999\r\n\r\n",
		400, "overflows");
	parses("POST /" H11 "Content-Length:  \t5 \r\n\r\n");
	assert_int_equal(req.length, 5);
	refused("POST /" H11 "Content-Length: 5, 5\r\n\r\n", 400, "list");
	refused("POST /" H11 "Content-Length: 5,5\r\n\r\n", 400, "list");
	refused("POST /" H11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n",
		400, "more than one Content-Length");
	refused("POST /" H11 "Content-Length: 5\r\ncontent-length: 6\r\n\r\n",
		400, "more than one Content-Length");
	refused("POST /" H11 "Content-Length: +5\r\n\r\n", 400,
		"not a decimal");
	refused("POST /" H11 "Content-Length: -1\r\n\r\n", 400,
		"not a decimal");
	refused("POST /" H11 "Content-Length: 1 0\r\n\r\n", 400,
		"not a decimal");
	refused("POST /" H11 "Content-Length: 0x10\r\n\r\n", 400,
		"not a decimal");
	refused("POST /" H11 "Content-Length: 5\t5\r\n\r\n", 400,
		"not a decimal");
	refused("POST /" H11 "Content-Length: \r\n\r\n", 400,
		"empty Content-Length");
}

static void test_transfer_encoding(void **state)
{
	(void)state;
	const char *both = "both Content-Length and Transfer-Encoding: refused";
	refused("POST /" H11 "Content-Length: 5\r\n"
		"Transfer-Encoding: chunked\r\n\r\n",
		400, both);
	refused("POST /" H11 "Transfer-Encoding: chunked\r\n"
		"Content-Length: 5\r\n\r\n",
		400, both);
	refused("POST /" H11 "Transfer-Encoding: gzip, chunked\r\n\r\n", 501,
		"other than chunked");
	refused("POST /" H11 "Transfer-Encoding: chunked, chunked\r\n\r\n", 501,
		"other than chunked");
	refused("POST /" H11 "Transfer-Encoding: chunked\r\n"
		"Transfer-Encoding: gzip\r\n\r\n",
		501, "more than one Transfer-Encoding");
	refused("POST /" H11 "Transfer-Encoding: chunked\r\n"
		"Transfer-Encoding: chunked\r\n\r\n",
		501, "more than one Transfer-Encoding");
	refused("POST /" H11 "Transfer-Encoding: xchunked\r\n\r\n", 501,
		"other than chunked");
	refused("POST /" H11 "Transfer-Encoding: chunked;q=1\r\n\r\n", 501,
		"other than chunked");
	refused("POST /" H11 "Transfer-Encoding: identity\r\n\r\n", 501,
		"other than chunked");
	refused("POST /" H11 "Transfer-Encoding: \"chunked\"\r\n\r\n", 501,
		"other than chunked");
	refused("POST /" H11 "Transfer-Encoding:\r\n\r\n", 400,
		"empty Transfer-Encoding");
	refused("POST /" H11 "Transfer-Encoding : chunked\r\n\r\n", 400,
		"and its colon");
	refused("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
		"HTTP/1.0");
	/* Positive control: case-insensitive, both in name and value. */
	parses("POST /" H11 "TRANSFER-ENCODING: Chunked\r\n\r\n");
	assert_int_equal(req.body, HTTP_BODY_CHUNKED);
}

/* A request with n fields in all (Host first). */
static const char *with_fields(size_t n)
{
	static char buf[8192];
	size_t off =
	    (size_t)snprintf(buf, sizeof(buf), "GET / HTTP/1.1\r\nHost: a\r\n");
	for (size_t i = 1; i < n; i++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off,
					"X-%zu: %zu\r\n", i, i);
	snprintf(buf + off, sizeof(buf) - off, "\r\n");
	return buf;
}

static void test_header_count(void **state)
{
	(void)state;
	parses(with_fields(HTTP_HEADERS_MAX));
	assert_int_equal(req.nh, HTTP_HEADERS_MAX);
	assert_memory_equal(req.h[99].name, "X-99", 4);
	refused(with_fields(HTTP_HEADERS_MAX + 1), 431, "more than 100");
}

/* A head of exactly n bytes (n >= 32), padded in one field's value. */
static char *head_of(size_t n)
{
	static char buf[HTTP_HEAD_MAX + 64];
	const char *pre = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
	size_t p = strlen(pre);
	assert_true(n >= p + 4 && n + 1 <= sizeof(buf));
	memcpy(buf, pre, p);
	memset(buf + p, 'v', n - p - 4);
	memcpy(buf + n - 4, "\r\n\r\n", 5);
	return buf;
}

static void test_head_size(void **state)
{
	(void)state;
	int status;
	const char *why;
	/* Exactly at the bound: parsed, also with more bytes after it. */
	char *s = head_of(HTTP_HEAD_MAX);
	assert_int_equal(strlen(s), HTTP_HEAD_MAX);
	assert_int_equal(
	    http_request_parse(s, HTTP_HEAD_MAX, &req, &status, &why),
	    HTTP_HEAD_MAX);
	memcpy(s + HTTP_HEAD_MAX, "GET /", 6);
	assert_int_equal(
	    http_request_parse(s, HTTP_HEAD_MAX + 5, &req, &status, &why),
	    HTTP_HEAD_MAX);
	/* Short of it: more to read. */
	assert_int_equal(
	    http_request_parse(s, HTTP_HEAD_MAX - 1, &req, &status, &why), 0);
	/* One past: refused as soon as the bound is reached. */
	s = head_of(HTTP_HEAD_MAX + 1);
	assert_int_equal(
	    http_request_parse(s, HTTP_HEAD_MAX - 1, &req, &status, &why), 0);
	status = 0;
	assert_int_equal(
	    http_request_parse(s, HTTP_HEAD_MAX, &req, &status, &why), -1);
	assert_int_equal(status, 431);
	assert_non_null(strstr(why, "32768"));
	status = 0;
	assert_int_equal(
	    http_request_parse(s, HTTP_HEAD_MAX + 1, &req, &status, &why), -1);
	assert_int_equal(status, 431);
	/* A bare-LF-free stream without any line end: the same. */
	static char flood[HTTP_HEAD_MAX + 1];
	memset(flood, 'A', sizeof(flood));
	assert_int_equal(
	    http_request_parse(flood, HTTP_HEAD_MAX - 1, &req, &status, &why),
	    0);
	assert_int_equal(
	    http_request_parse(flood, sizeof(flood), &req, &status, &why), -1);
	assert_int_equal(status, 431);
	/* Incomplete and empty. */
	assert_int_equal(http_request_parse("", 0, &req, &status, &why), 0);
	assert_int_equal(
	    http_request_parse("GET / HTTP/1.1\r", 15, &req, &status, &why), 0);
}

/* Each prefix of s parses as "incomplete" or as s does; s whole gives
 * want (a head length, or -1 with want_status). */
static void check_incremental(const char *s, size_t len, int want,
			      int want_status)
{
	int status = 0, st;
	const char *why = NULL, *w;
	struct http_request whole;
	int rc = http_request_parse(s, len, &whole, &status, &why);
	assert_int_equal(rc, want);
	if (rc < 0)
		assert_int_equal(status, want_status);
	for (size_t k = 0; k <= len; k++) {
		static struct http_request part;
		int r = http_request_parse(s, k, &part, &st, &w);
		if (r == 0) {
			/* Incomplete only before the end of the head. */
			if (rc > 0)
				assert_true(k < (size_t)rc);
			continue;
		}
		assert_int_equal(r, rc);
		if (r < 0) {
			assert_int_equal(st, status);
			assert_ptr_equal(w, why);
			continue;
		}
		assert_true(k >= (size_t)rc);
		assert_string_equal(part.method, whole.method);
		assert_ptr_equal(part.target, whole.target);
		assert_int_equal(part.nh, whole.nh);
		for (size_t i = 0; i < part.nh; i++) {
			assert_ptr_equal(part.h[i].name, whole.h[i].name);
			assert_ptr_equal(part.h[i].value, whole.h[i].value);
			assert_int_equal(part.h[i].value_len,
					 whole.h[i].value_len);
		}
		assert_int_equal(part.host - part.h, whole.host - whole.h);
		assert_int_equal(part.body, whole.body);
		assert_int_equal(part.length, whole.length);
		assert_int_equal(part.keep_alive, whole.keep_alive);
	}
}

static void test_incremental(void **state)
{
	(void)state;
	const char *ok = "POST /v1/messages?beta=true HTTP/1.1\r\n"
			 "Host: api.ccvm.internal\r\n"
			 "Content-Length: 4\r\n"
			 "Connection: keep-alive\r\n"
			 "\r\n"
			 "body";
	check_incremental(ok, strlen(ok), (int)strlen(ok) - 4, 0);
	const char *chunked =
	    "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
	    "Host: a\r\n\r\n";
	check_incremental(chunked, strlen(chunked), (int)strlen(chunked), 0);
	const char *bad[] = {
	    "POST /" H11
	    "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
	    "GET /" H11 "X: 1\nY: 2\r\n\r\n",
	    "GET /" H11 " fold\r\n\r\n",
	    "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
	    "GET / HTTP/1.1\r\n\r\n",
	    "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
	};
	const int status[] = {400, 400, 400, 400, 400, 505};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		check_incremental(bad[i], strlen(bad[i]), -1, status[i]);
	check_incremental(with_fields(HTTP_HEADERS_MAX + 1),
			  strlen(with_fields(HTTP_HEADERS_MAX + 1)), -1, 431);
}

static void test_pipelined(void **state)
{
	(void)state;
	const char *s =
	    "POST /a HTTP/1.1\r\nHost: x\r\n"
	    "Transfer-Encoding: chunked\r\n\r\n"
	    "3\r\nabc\r\n0\r\n\r\n"
	    "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n"
	    "hi"
	    "GET /c HTTP/1.1\r\nHost: x\r\n\r\n";
	size_t len = strlen(s), off = 0;
	int status;
	const char *why;
	int rc = http_request_parse(s, len, &req, &status, &why);
	assert_int_equal(rc, strstr(s, "3\r\n") - s);
	assert_memory_equal(req.target, "/a", 2);
	assert_int_equal(req.body, HTTP_BODY_CHUNKED);
	off = (size_t)rc;

	struct http_chunked c;
	http_chunked_init(&c);
	char out[64];
	size_t used, produced;
	assert_int_equal(http_chunked_decode(&c, s + off, len - off, &used, out,
					     sizeof(out), &produced, &why),
			 1);
	assert_int_equal(used, strlen("3\r\nabc\r\n0\r\n\r\n"));
	assert_int_equal(produced, 3);
	assert_memory_equal(out, "abc", 3);
	off += used;

	rc = http_request_parse(s + off, len - off, &req, &status, &why);
	assert_int_equal(rc, strstr(s + off, "hi") - (s + off));
	assert_memory_equal(req.target, "/b", 2);
	assert_int_equal(req.body, HTTP_BODY_LENGTH);
	assert_int_equal(req.length, 2);
	off += (size_t)rc + req.length;

	rc = http_request_parse(s + off, len - off, &req, &status, &why);
	assert_int_equal(rc, len - off);
	assert_memory_equal(req.target, "/c", 2);
	assert_int_equal(req.body, HTTP_BODY_NONE);

	/* A smuggled request after a chunked body is only ever the next
	 * request, parsed on its own. */
	const char *smug = "0\r\n\r\nGET /admin HTTP/1.1\r\n";
	http_chunked_init(&c);
	assert_int_equal(http_chunked_decode(&c, smug, strlen(smug), &used, out,
					     sizeof(out), &produced, &why),
			 1);
	assert_int_equal(used, 5);
}

/* Decodes in[0..n) at once into out (room enough); rc, *used, *len. */
static int decode(const char *in, size_t n, char *out, size_t outsz,
		  size_t *used, size_t *len, const char **why)
{
	struct http_chunked c;
	http_chunked_init(&c);
	return http_chunked_decode(&c, in, n, used, out, outsz, len, why);
}

static void chunk_refused(const char *in, const char *what)
{
	char out[256];
	size_t used, len;
	const char *why = NULL;
	int rc = decode(in, strlen(in), out, sizeof(out), &used, &len, &why);
	if (rc != -1 || !why || !strstr(why, what))
		fail_msg("\"%s\": %d (%s), want -1 (...%s...)", in, rc,
			 rc < 0 && why ? why : "", what);
	assert_true(used <= strlen(in));
}

static void chunk_ok(const char *in, const char *body)
{
	char out[256];
	size_t used, len;
	const char *why = NULL;
	int rc = decode(in, strlen(in), out, sizeof(out), &used, &len, &why);
	if (rc != 1 || used != strlen(in) || len != strlen(body) ||
	    memcmp(out, body, len) != 0)
		fail_msg("\"%s\": %d (%s), used %zu, %zu bytes", in, rc,
			 rc < 0 ? why : "", used, len);
}

static void test_chunk_size(void **state)
{
	(void)state;
	chunk_ok("a\r\n0123456789\r\n0\r\n\r\n", "0123456789");
	chunk_ok("A\r\n0123456789\r\n0\r\n\r\n", "0123456789");
	chunk_ok("0000000000000001\r\nx\r\n0000000000000000\r\n\r\n", "x");
	chunk_refused("ffffffffffffffffff\r\n", "64 MiB");
	chunk_refused("00000000000000001\r\nx\r\n0\r\n\r\n", "16 hex digits");
	chunk_refused("00000000000000000\r\n\r\n", "16 hex digits");
	chunk_refused(" 5\r\nhello\r\n0\r\n\r\n", "not hex");
	chunk_refused("5 \r\nhello\r\n0\r\n\r\n", "not hex");
	chunk_refused("5\t\r\nhello\r\n0\r\n\r\n", "not hex");
	chunk_refused("+5\r\nhello\r\n0\r\n\r\n", "not hex");
	chunk_refused("-5\r\nhello\r\n0\r\n\r\n", "not hex");
	chunk_refused("0x5\r\nhello\r\n0\r\n\r\n", "not hex");
	chunk_refused("5g\r\nhello\r\n0\r\n\r\n", "not hex");
	chunk_refused("\r\nhello\r\n0\r\n\r\n", "empty chunk size");
	chunk_refused(";a\r\nhello\r\n0\r\n\r\n", "empty chunk size");
	chunk_refused("5\r\r\nhello\r\n0\r\n\r\n", "CR not followed by LF");
}

static void test_chunk_framing(void **state)
{
	(void)state;
	/* Bare LF anywhere. */
	chunk_refused("5\nhello\r\n0\r\n\r\n", "bare LF");
	chunk_refused("5;a=b\nhello\r\n0\r\n\r\n", "bare LF");
	chunk_refused("5\r\nhello\n0\r\n\r\n", "not followed by CRLF");
	chunk_refused("5\r\nhello\r\n0\n\r\n", "bare LF");
	chunk_refused("5\r\nhello\r\n0\r\n\n", "bare LF");
	chunk_refused("0\r\nX: 1\n\r\n", "bare LF");
	/* The CRLF strictly after the data: a length that lies. */
	chunk_refused("5\r\nhelloX\r\n0\r\n\r\n", "not followed by CRLF");
	chunk_refused("5\r\nhell\r\n0\r\n\r\n", "not followed by CRLF");
	chunk_refused("5\r\nhello\r0\r\n\r\n", "not followed by CRLF");
	/* The final CRLF. */
	chunk_refused("0\r\n\rX", "CR not followed by LF after");
	chunk_refused("0\r\nX: 1\rY", "CR not followed by LF");
}

static void test_chunk_ext(void **state)
{
	(void)state;
	chunk_ok("1;a\r\nx\r\n0;b=c;d=\"e;f\\\"\"\r\n\r\n", "x");
	chunk_ok("1;a=b;c\r\nx\r\n0\r\n\r\n", "x");
	chunk_refused("1;\r\nx\r\n0\r\n\r\n", "chunk extension");
	chunk_refused("1;a=\r\nx\r\n0\r\n\r\n", "chunk extension");
	chunk_refused("1; a\r\nx\r\n0\r\n\r\n", "chunk extension");
	chunk_refused("1;a =b\r\nx\r\n0\r\n\r\n", "chunk extension");
	chunk_refused("1 ;a\r\nx\r\n0\r\n\r\n", "not hex");
	chunk_refused("1;a=\"b\r\nx\r\n0\r\n\r\n", "chunk extension");
	chunk_refused("1;a=\"b\"c\r\nx\r\n0\r\n\r\n", "chunk extension");
	chunk_refused("1;a=\"\x01\"\r\nx\r\n0\r\n\r\n", "chunk extension");
	chunk_refused("1;a=b=c\r\nx\r\n0\r\n\r\n", "chunk extension");
	chunk_refused("1;a\x01\r\nx\r\n0\r\n\r\n", "chunk extension");

	/* The chunk line: 4096 bytes, not one more. */
	static char line[HTTP_CHUNK_LINE_MAX + 64];
	char out[8];
	size_t used, len;
	const char *why;
	memcpy(line, "1;", 2);
	memset(line + 2, 'e', HTTP_CHUNK_LINE_MAX - 2);
	memcpy(line + HTTP_CHUNK_LINE_MAX, "\r\nx\r\n0\r\n\r\n", 11);
	assert_int_equal(
	    decode(line, strlen(line), out, sizeof(out), &used, &len, &why), 1);
	assert_int_equal(used, strlen(line));
	memset(line + 2, 'e', HTTP_CHUNK_LINE_MAX - 1);
	memcpy(line + HTTP_CHUNK_LINE_MAX + 1, "\r\nx\r\n0\r\n\r\n", 11);
	assert_int_equal(
	    decode(line, strlen(line), out, sizeof(out), &used, &len, &why),
	    -1);
	assert_non_null(strstr(why, "4096"));
}

static void test_trailers(void **state)
{
	(void)state;
	chunk_ok("1\r\nx\r\n0\r\nA: 1\r\nB:\r\nc-d: \t\x80 z\r\n\r\n", "x");
	chunk_refused("0\r\nA: 1\r\n folded\r\n\r\n", "obs-fold");
	chunk_refused("0\r\nA: 1\r\n\tfolded\r\n\r\n", "obs-fold");
	chunk_refused("0\r\n A: 1\r\n\r\n", "obs-fold");
	chunk_refused("0\r\nA : 1\r\n\r\n", "and its colon");
	chunk_refused("0\r\nA(: 1\r\n\r\n", "not a token");
	chunk_refused("0\r\n: 1\r\n\r\n", "not a token");
	chunk_refused("0\r\nA: \x01\r\n\r\n", "control");
	chunk_refused("0\r\nA: \x7f\r\n\r\n", "control");
	static const char nul[] = "0\r\nA: a\0b\r\n\r\n";
	char out[8];
	size_t used, len;
	const char *why;
	assert_int_equal(
	    decode(nul, sizeof(nul) - 1, out, sizeof(out), &used, &len, &why),
	    -1);
	assert_non_null(strstr(why, "control"));

	/* At most 100 fields and 32768 bytes. */
	static char t[HTTP_HEAD_MAX + 64];
	size_t off = (size_t)snprintf(t, sizeof(t), "0\r\n");
	for (int i = 0; i < HTTP_HEADERS_MAX; i++)
		off +=
		    (size_t)snprintf(t + off, sizeof(t) - off, "T%d: v\r\n", i);
	memcpy(t + off, "\r\n", 3);
	assert_int_equal(
	    decode(t, off + 2, out, sizeof(out), &used, &len, &why), 1);
	memcpy(t + off, "X: v\r\n\r\n", 9);
	assert_int_equal(
	    decode(t, off + 8, out, sizeof(out), &used, &len, &why), -1);
	assert_non_null(strstr(why, "more than 100"));
	/* One field: the section exactly 32768 bytes, then one more. */
	size_t pre = 3 + 3; /* "0\r\n" "X: " */
	memcpy(t, "0\r\nX: ", pre);
	memset(t + pre, 'v', HTTP_HEAD_MAX - 3 - 4);
	memcpy(t + 3 + HTTP_HEAD_MAX - 4, "\r\n\r\n", 5);
	assert_int_equal(
	    decode(t, 3 + HTTP_HEAD_MAX, out, sizeof(out), &used, &len, &why),
	    1);
	assert_int_equal(used, 3 + HTTP_HEAD_MAX);
	memset(t + pre, 'v', HTTP_HEAD_MAX - 3 - 4 + 1);
	memcpy(t + 3 + HTTP_HEAD_MAX - 3, "\r\n\r\n", 5);
	assert_int_equal(decode(t, 3 + HTTP_HEAD_MAX + 1, out, sizeof(out),
				&used, &len, &why),
			 -1);
	assert_non_null(strstr(why, "32768"));
}

static void test_body_limit(void **state)
{
	(void)state;
	static char data[1 << 16];
	memset(data, 'a', sizeof(data));
	char out[1 << 16];
	size_t used, len;
	const char *why = NULL;
	/* One chunk of exactly the limit, then one byte more. */
	struct http_chunked c;
	http_chunked_init(&c);
	assert_int_equal(http_chunked_decode(&c, "4000000\r\n", 9, &used, out,
					     sizeof(out), &len, &why),
			 0);
	assert_int_equal(used, 9);
	uint64_t total = 0;
	while (total < HTTP_BODY_MAX) {
		assert_int_equal(http_chunked_decode(&c, data, sizeof(data),
						     &used, out, sizeof(out),
						     &len, &why),
				 0);
		assert_int_equal(used, sizeof(data));
		assert_int_equal(len, sizeof(data));
		total += len;
	}
	assert_int_equal(total, HTTP_BODY_MAX);
	assert_int_equal(http_chunked_decode(&c, "\r\n1\r\n", 5, &used, out,
					     sizeof(out), &len, &why),
			 -1);
	assert_non_null(strstr(why, "64 MiB"));
	/* Sticky: the same answer after. */
	const char *first = why;
	why = NULL;
	assert_int_equal(http_chunked_decode(&c, "0\r\n\r\n", 5, &used, out,
					     sizeof(out), &len, &why),
			 -1);
	assert_ptr_equal(why, first);
	assert_int_equal(used, 0);
	/* Positive control: the limit exactly ends cleanly. */
	http_chunked_init(&c);
	assert_int_equal(http_chunked_decode(&c, "3ffffff\r\n", 9, &used, out,
					     sizeof(out), &len, &why),
			 0);
	http_chunked_init(&c);
	assert_int_equal(http_chunked_decode(&c, "4000001\r\n", 9, &used, out,
					     sizeof(out), &len, &why),
			 -1);
	assert_non_null(strstr(why, "64 MiB"));
}

static void test_chunk_incremental(void **state)
{
	(void)state;
	const char *in = "5;x=\"y\"\r\nhello\r\n"
			 "10\r\n0123456789abcdef\r\n"
			 "1\r\n!\r\n"
			 "0\r\nT: 1\r\n\r\n"
			 "GET / HTTP/1.1\r\n";
	size_t n = strlen(in);
	char whole[64];
	size_t used, len;
	const char *why = NULL;
	assert_int_equal(decode(in, n, whole, sizeof(whole), &used, &len, &why),
			 1);
	size_t end = (size_t)(strstr(in, "GET") - in);
	assert_int_equal(used, end);
	assert_int_equal(len, 22);

	/* A byte of input and a byte of room at a time. */
	struct http_chunked c;
	http_chunked_init(&c);
	char out[64];
	size_t off = 0, o = 0;
	int rc = 0;
	while (rc == 0 && off < n) {
		size_t u, p;
		rc = http_chunked_decode(&c, in + off, 1, &u, out + o, 1, &p,
					 &why);
		assert_true(u <= 1 && p <= 1);
		off += u;
		o += p;
		if (rc == 0 && u == 0) {
			/* Stalls only for room: never with room given. */
			fail_msg("no progress at %zu", off);
		}
	}
	assert_int_equal(rc, 1);
	assert_int_equal(off, end);
	assert_int_equal(o, len);
	assert_memory_equal(out, whole, len);

	/* No room: nothing of the data taken, the chunk line is. */
	http_chunked_init(&c);
	size_t p;
	assert_int_equal(
	    http_chunked_decode(&c, in, n, &used, out, 0, &p, &why), 0);
	assert_int_equal(used, strlen("5;x=\"y\"\r\n"));
	assert_int_equal(p, 0);
	/* Three bytes of room: three bytes out, then the rest. */
	size_t u2;
	assert_int_equal(
	    http_chunked_decode(&c, in + used, n - used, &u2, out, 3, &p, &why),
	    0);
	assert_int_equal(u2, 3);
	assert_int_equal(p, 3);
	assert_memory_equal(out, "hel", 3);
	used += u2;
	assert_int_equal(http_chunked_decode(&c, in + used, n - used, &u2,
					     out + 3, sizeof(out) - 3, &p,
					     &why),
			 1);
	assert_int_equal(used + u2, end);
	assert_int_equal(3 + p, len);
	assert_memory_equal(out, whole, len);
}

static void test_hop_by_hop(void **state)
{
	(void)state;
	parses("GET /" H11 "Connection: X-Secret, close\r\n"
	       "connection: x-other\r\n\r\n");
	const char *hop[] = {"Connection",
			     "keep-alive",
			     "Proxy-Authorization",
			     "proxy-connection",
			     "Proxy-",
			     "TE",
			     "Trailer",
			     "Transfer-Encoding",
			     "UPGRADE",
			     "x-secret",
			     "X-Other",
			     "Close"};
	for (size_t i = 0; i < sizeof(hop) / sizeof(hop[0]); i++)
		if (!http_hop_by_hop(&req, hop[i], strlen(hop[i])))
			fail_msg("%s: not hop-by-hop", hop[i]);
	const char *end[] = {
	    "Host",	     "anthropic-version", "Content-Type", "x-secre",
	    "x-secret-2",    "Content-Length",	  "TEA",	  "Prox",
	    "Authorization", "x-api-key"};
	for (size_t i = 0; i < sizeof(end) / sizeof(end[0]); i++)
		if (http_hop_by_hop(&req, end[i], strlen(end[i])))
			fail_msg("%s: hop-by-hop", end[i]);
	/* Without a Connection header, the fixed list only. */
	parses("GET /" H11 "\r\n");
	assert_false(http_hop_by_hop(&req, "x-secret", 8));
	assert_true(http_hop_by_hop(&req, "te", 2));
	/* A name given with its length, not NUL-terminated. */
	assert_true(http_hop_by_hop(&req, "Upgrade-Insecure", 7));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_get),
	    cmocka_unit_test(test_post_length),
	    cmocka_unit_test(test_post_chunked),
	    cmocka_unit_test(test_keep_alive),
	    cmocka_unit_test(test_expect),
	    cmocka_unit_test(test_request_line),
	    cmocka_unit_test(test_targets),
	    cmocka_unit_test(test_field_lines),
	    cmocka_unit_test(test_bare_lf),
	    cmocka_unit_test(test_host),
	    cmocka_unit_test(test_content_length),
	    cmocka_unit_test(test_transfer_encoding),
	    cmocka_unit_test(test_header_count),
	    cmocka_unit_test(test_head_size),
	    cmocka_unit_test(test_incremental),
	    cmocka_unit_test(test_pipelined),
	    cmocka_unit_test(test_chunk_size),
	    cmocka_unit_test(test_chunk_framing),
	    cmocka_unit_test(test_chunk_ext),
	    cmocka_unit_test(test_trailers),
	    cmocka_unit_test(test_body_limit),
	    cmocka_unit_test(test_chunk_incremental),
	    cmocka_unit_test(test_hop_by_hop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
