/* ccvm's API proxy (net/apiproxy.h): the real proxy, with libcurl, in
 * front of a small stand-in upstream on this host's loopback (plain
 * HTTP; the HTTPS path with a test CA and the real agent is
 * tests/integration/36-apiproxy.sh).  The test speaks to the proxy's
 * socketpair end as the guest would, byte for byte. */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "net/apiproxy.h"
#include "sys/procs.h"
#include "util.h"

#define REAL_KEY "sk-ant-real-key-0123456789"

/* ---- the stand-in upstream ------------------------------------------- */

enum up_mode { UP_JSON, UP_SSE_GATED, UP_ERROR_429 };

static struct up {
	int lfd;
	uint16_t port;
	pthread_mutex_t mu;
	int conns, reqs, heads;
	char head[8192];
	char body[70000];
	size_t body_len;
	enum up_mode mode;
	int gate[2]; /* UP_SSE_GATED: a byte here releases the last event */
} up = {.mu = PTHREAD_MUTEX_INITIALIZER};

static ssize_t read_until(int fd, char *buf, size_t n, const char *end)
{
	size_t len = 0;
	while (len < n - 1) {
		ssize_t r = read(fd, buf + len, 1);
		if (r <= 0)
			return -1;
		len++;
		buf[len] = '\0';
		if (strstr(buf, end))
			return (ssize_t)len;
	}
	return -1;
}

/* The request body as the upstream got it: Content-Length or chunked. */
static ssize_t read_body(int fd, const char *head, char *out, size_t n)
{
	const char *cl = strcasestr(head, "\r\ncontent-length:");
	if (cl) {
		size_t want = strtoul(cl + 17, NULL, 10), got = 0;
		while (got < want && got < n) {
			ssize_t r = read(fd, out + got, want - got);
			if (r <= 0)
				return -1;
			got += (size_t)r;
		}
		return (ssize_t)got;
	}
	if (!strcasestr(head, "transfer-encoding: chunked"))
		return 0;
	size_t got = 0;
	for (;;) {
		char line[64];
		if (read_until(fd, line, sizeof(line), "\r\n") < 0)
			return -1;
		size_t sz = strtoul(line, NULL, 16);
		if (sz == 0) {
			read_until(fd, line, sizeof(line), "\r\n");
			return (ssize_t)got;
		}
		for (size_t k = 0; k < sz + 2; k++) {
			char c;
			if (read(fd, &c, 1) != 1)
				return -1;
			if (k < sz && got < n)
				out[got++] = c;
		}
	}
}

static void send_str(int fd, const char *s)
{
	assert_int_equal(util_write_all(fd, s, strlen(s)), 0);
}

static void *up_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	char head[8192];
	char body[70000];
	while (read_until(fd, head, sizeof(head), "\r\n\r\n") > 0) {
		/* Counted as soon as a head arrives: a refused request must
		 * not get even that far. */
		pthread_mutex_lock(&up.mu);
		up.heads++;
		pthread_mutex_unlock(&up.mu);
		ssize_t bl = read_body(fd, head, body, sizeof(body));
		if (bl < 0)
			break;
		pthread_mutex_lock(&up.mu);
		up.reqs++;
		memcpy(up.head, head, sizeof(head));
		memcpy(up.body, body, (size_t)bl);
		up.body_len = (size_t)bl;
		enum up_mode mode = up.mode;
		pthread_mutex_unlock(&up.mu);
		if (mode == UP_JSON) {
			char r[256];
			snprintf(r, sizeof(r),
				 "HTTP/1.1 200 OK\r\nContent-Type: "
				 "application/json\r\nrequest-id: req_1\r\n"
				 "Content-Length: %zu\r\n\r\n{\"got\":%zd}",
				 (size_t)snprintf(NULL, 0, "{\"got\":%zd}", bl),
				 bl);
			send_str(fd, r);
		} else if (mode == UP_ERROR_429) {
			send_str(fd, "HTTP/1.1 429 Too Many Requests\r\n"
				     "retry-after: 7\r\nContent-Length: 2\r\n"
				     "\r\n{}");
		} else {
			send_str(fd, "HTTP/1.1 200 OK\r\nContent-Type: "
				     "text/event-stream\r\nTransfer-Encoding: "
				     "chunked\r\n\r\n");
			send_str(fd, "c\r\ndata: first\n\r\n");
			char b;
			if (read(up.gate[0], &b, 1) != 1)
				break;
			send_str(fd, "b\r\ndata: last\n\r\n0\r\n\r\n");
		}
	}
	close(fd);
	return NULL;
}

static void *up_main(void *arg)
{
	(void)arg;
	for (;;) {
		int fd = accept(up.lfd, NULL, NULL);
		if (fd < 0)
			return NULL;
		pthread_mutex_lock(&up.mu);
		up.conns++;
		pthread_mutex_unlock(&up.mu);
		pthread_t t;
		pthread_create(&t, NULL, up_conn, (void *)(intptr_t)fd);
		pthread_detach(t);
	}
}

static void up_start(void)
{
	up.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	assert_int_equal(bind(up.lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(up.lfd, 16), 0);
	getsockname(up.lfd, (struct sockaddr *)&a, &al);
	up.port = ntohs(a.sin_port);
	assert_int_equal(pipe(up.gate), 0);
	pthread_t t;
	pthread_create(&t, NULL, up_main, NULL);
	pthread_detach(t);
}

static void up_reset(enum up_mode mode)
{
	pthread_mutex_lock(&up.mu);
	up.reqs = up.heads = 0;
	up.head[0] = '\0';
	up.body_len = 0;
	up.mode = mode;
	pthread_mutex_unlock(&up.mu);
}

static int up_reqs(void)
{
	pthread_mutex_lock(&up.mu);
	int n = up.heads;
	pthread_mutex_unlock(&up.mu);
	return n;
}

/* ---- the proxy -------------------------------------------------------- */

static struct apiproxy *mkproxy(enum apiproxy_cred cred, const char *secret,
				const char *login, const char *upstream,
				char *ph)
{
	struct apiproxy_conf c = {.cred = cred,
				  .secret = secret,
				  .secret_len = secret ? strlen(secret) : 0,
				  .login_path = login};
	assert_int_equal(
	    apiproxy_placeholder(cred, c.placeholder, sizeof(c.placeholder)),
	    0);
	strcpy(ph, c.placeholder);
	const char *why = NULL;
	assert_int_equal(
	    apiproxy_upstream(upstream, c.upstream, sizeof(c.upstream), &why),
	    0);
	struct apiproxy *p = apiproxy_new(&c);
	assert_non_null(p);
	return p;
}

static char *upstream_url(void)
{
	static char u[64];
	snprintf(u, sizeof(u), "http://127.0.0.1:%u", (unsigned)up.port);
	return u;
}

/* The guest's end: blocking, with a receive timeout. */
static int guest(struct apiproxy *p)
{
	int fd = apiproxy_accept(p);
	assert_true(fd >= 0);
	util_set_nonblock(fd, false);
	struct timeval tv = {.tv_sec = 10};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Reads one response: head, then a Content-Length or chunked body,
 * or to end of file.  Returns the status; *out the whole response. */
static int response(int fd, char *out, size_t n)
{
	size_t len = 0;
	char *end = NULL;
	while (!(end = strstr(out, "\r\n\r\n"))) {
		ssize_t r = read(fd, out + len, 1);
		if (r <= 0)
			return -1;
		out[++len] = '\0';
		if (len == n - 1)
			return -1;
	}
	size_t head = (size_t)(end - out) + 4;
	const char *cl = strcasestr(out, "\r\ncontent-length:");
	size_t want = 0;
	if (cl) {
		want = head + strtoul(cl + 17, NULL, 10);
	} else if (strcasestr(out, "transfer-encoding: chunked")) {
		while (!strstr(out + head, "\r\n0\r\n\r\n") &&
		       strncmp(out + head, "0\r\n\r\n", 5) != 0) {
			ssize_t r = read(fd, out + len, 1);
			if (r <= 0)
				break;
			out[++len] = '\0';
			if (len == n - 1)
				break;
		}
	} else {
		want = n - 1;
	}
	while (len < want) {
		ssize_t r = read(fd, out + len, want - len);
		if (r <= 0)
			break;
		len += (size_t)r;
		out[len] = '\0';
	}
	return atoi(out + 9);
}

static int ask(int fd, const char *req, char *out, size_t n)
{
	/* The proxy may refuse and close before it has read it all. */
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0)
		assert_int_equal(errno, EPIPE);
	out[0] = '\0';
	return response(fd, out, n);
}

static char req[100000];
static char out[100000];

static void test_key_swapped(void **state)
{
	(void)state;
	char ph[APIPROXY_PLACEHOLDER_MAX];
	struct apiproxy *p =
	    mkproxy(APIPROXY_API_KEY, REAL_KEY, NULL, upstream_url(), ph);
	assert_true(strncmp(ph, "sk-ant-api03-ccvm-", 18) == 0);
	assert_int_equal(strlen(ph), 18 + 32);
	up_reset(UP_JSON);
	int fd = guest(p);
	snprintf(req, sizeof(req),
		 "POST /v1/messages?beta=true HTTP/1.1\r\nHost: "
		 "api.ccvm.internal\r\nx-api-key: %s\r\nanthropic-version: "
		 "2023-06-01\r\nAuthorization: Bearer %s\r\nContent-Length: "
		 "5\r\nTransfer_Encoding: chunked\r\nConnection: x-drop\r\n"
		 "X-Drop: 1\r\nCookie: c=1\r\n\r\nhello",
		 ph, ph);
	assert_int_equal(ask(fd, req, out, sizeof(out)), 200);
	assert_non_null(strstr(out, "{\"got\":5}"));
	assert_non_null(strcasestr(out, "request-id: req_1"));
	assert_int_equal(up_reqs(), 1);
	/* The upstream saw the real key once, not the placeholder, and
	 * the agent's own headers. */
	assert_non_null(strcasestr(up.head, "x-api-key: " REAL_KEY "\r\n"));
	assert_null(strstr(up.head, ph));
	assert_null(strcasestr(up.head, "authorization:"));
	/* Framing look-alikes, hop-by-hop and named-by-Connection headers
	 * stay here. */
	assert_null(strcasestr(up.head, "transfer_encoding"));
	assert_null(strcasestr(up.head, "x-drop"));
	assert_null(strcasestr(up.head, "cookie"));
	assert_non_null(strstr(up.head, "POST /v1/messages?beta=true "));
	assert_non_null(strcasestr(up.head, "anthropic-version: 2023-06-01"));
	assert_memory_equal(up.body, "hello", 5);

	/* Keep-alive: a chunked body next on the same connection; one
	 * upstream connection serves both. */
	int conns = up.conns;
	snprintf(req, sizeof(req),
		 "POST /v1/messages HTTP/1.1\r\nHost: api.ccvm.internal:80\r\n"
		 "x-api-key: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
		 "3\r\nabc\r\n4;x=y\r\ndefg\r\n0\r\n\r\n",
		 ph);
	/* The body comes later than the head: the proxy reads more into
	 * the buffer the head was in (the URL and headers must be copies). */
	char *body = strstr(req, "\r\n\r\n") + 4;
	assert_int_equal(send(fd, req, (size_t)(body - req), 0), body - req);
	usleep(100000);
	assert_int_equal(ask(fd, body, out, sizeof(out)), 200);
	assert_non_null(strstr(up.head, "POST /v1/messages HTTP/1.1"));
	assert_non_null(strstr(out, "{\"got\":7}"));
	assert_memory_equal(up.body, "abcdefg", 7);
	assert_int_equal(up.conns, conns);
	/* An upstream error passes through as it is. */
	up_reset(UP_ERROR_429);
	snprintf(req, sizeof(req),
		 "GET /v1/models HTTP/1.1\r\nHost: api.ccvm.internal\r\n"
		 "x-api-key: %s\r\n\r\n",
		 ph);
	assert_int_equal(ask(fd, req, out, sizeof(out)), 429);
	assert_non_null(strcasestr(out, "retry-after: 7"));
	close(fd);
	/* A new guest connection: the upstream connection is reused (once
	 * the last request's thread has given its handle back, a moment
	 * after the response's last byte). */
	usleep(200000);
	fd = guest(p);
	up_reset(UP_JSON);
	assert_int_equal(ask(fd, req, out, sizeof(out)), 200);
	assert_int_equal(up.conns, conns);
	close(fd);
	apiproxy_free(p);
}

/* Refused before anything reaches the upstream. */
static void test_refusals(void **state)
{
	(void)state;
	char ph[APIPROXY_PLACEHOLDER_MAX];
	struct apiproxy *p =
	    mkproxy(APIPROXY_API_KEY, REAL_KEY, NULL, upstream_url(), ph);
	struct {
		const char *fmt;
		int status;
		const char *why;
	} t[] = {
	    {"POST /v1/messages HTTP/1.1\r\nHost: api.ccvm.internal\r\n"
	     "x-api-key: sk-ant-api03-ccvm-00000000000000000000000000000000"
	     "\r\nContent-Length: 2\r\n\r\n{}",
	     401, "placeholder"},
	    {"POST /v1/messages HTTP/1.1\r\nHost: api.ccvm.internal\r\n"
	     "Content-Length: 2\r\n\r\n{}",
	     401, "placeholder"},
	    /* the right one plus a wrong one: refused */
	    {"GET / HTTP/1.1\r\nHost: api.ccvm.internal\r\nx-api-key: %s\r\n"
	     "Authorization: Bearer x\r\n\r\n",
	     401, "placeholder"},
	    {"GET http://evil.example/ HTTP/1.1\r\nHost: evil.example\r\n"
	     "x-api-key: %s\r\n\r\n",
	     400, "absolute-form"},
	    {"CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n"
	     "x-api-key: %s\r\n\r\n",
	     405, "CONNECT"},
	    {"GET /v1/models HTTP/1.1\r\nHost: evil.example\r\nx-api-key: "
	     "%s\r\n\r\n",
	     421, "api.ccvm.internal"},
	    {"POST /v1/messages HTTP/1.1\r\nHost: api.ccvm.internal\r\n"
	     "x-api-key: %s\r\nContent-Length: 3\r\nTransfer-Encoding: "
	     "chunked\r\n\r\n0\r\n\r\n",
	     400, "Content-Length"},
	    {"POST /v1/messages HTTP/1.1\r\nHost: api.ccvm.internal\r\n"
	     "x-api-key: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
	     "zz\r\nabc\r\n0\r\n\r\n",
	     400, ""},
	    {"GET / HTTP/1.1\r\nHost: api.ccvm.internal\r\nx-api-key: %s\r\n"
	     "X-Fold: a\r\n b\r\n\r\n",
	     400, ""},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		up_reset(UP_JSON);
		int fd = guest(p);
		/* %s in the case stands for the placeholder */
		const char *at = strstr(t[i].fmt, "%s");
		if (at)
			snprintf(req, sizeof(req), "%.*s%s%s",
				 (int)(at - t[i].fmt), t[i].fmt, ph, at + 2);
		else
			snprintf(req, sizeof(req), "%s", t[i].fmt);
		int st = ask(fd, req, out, sizeof(out));
		if (st != t[i].status || !strstr(out, t[i].why) ||
		    !strstr(out, "\"type\":\"error\""))
			fail_msg("case %zu: %d, want %d (%s): %s", i, st,
				 t[i].status, t[i].why, out);
		/* The connection closes after a refusal. */
		char b;
		assert_int_equal(read(fd, &b, 1), 0);
		close(fd);
		assert_int_equal(up_reqs(), 0);
	}
	/* A head too large: 431. */
	int fd = guest(p);
	size_t n = (size_t)snprintf(req, sizeof(req),
				    "GET / HTTP/1.1\r\nHost: api.ccvm.internal"
				    "\r\nX-Big: ");
	memset(req + n, 'a', 40000);
	strcpy(req + n + 40000, "\r\n\r\n");
	assert_int_equal(ask(fd, req, out, sizeof(out)), 431);
	close(fd);
	assert_int_equal(up_reqs(), 0);
	/* Smuggling: a second request hidden in the first's body goes
	 * nowhere but as the first's body. */
	up_reset(UP_JSON);
	fd = guest(p);
	snprintf(req, sizeof(req),
		 "POST /a HTTP/1.1\r\nHost: api.ccvm.internal\r\nx-api-key: "
		 "%s\r\nContent-Length: 44\r\n\r\nGET /smuggled HTTP/1.1\r\n"
		 "Host: api.ccvm.internal\r\n\r\n",
		 ph);
	assert_int_equal(ask(fd, req, out, sizeof(out)), 200);
	close(fd);
	assert_int_equal(up_reqs(), 1);
	assert_null(strstr(up.head, "smuggled"));
	apiproxy_free(p);
}

/* Server-sent events reach the guest as they are sent. */
static void test_streaming(void **state)
{
	(void)state;
	char ph[APIPROXY_PLACEHOLDER_MAX];
	struct apiproxy *p =
	    mkproxy(APIPROXY_AUTH_TOKEN, "gw-token", NULL, upstream_url(), ph);
	up_reset(UP_SSE_GATED);
	int fd = guest(p);
	snprintf(req, sizeof(req),
		 "POST /v1/messages HTTP/1.1\r\nHost: api.ccvm.internal\r\n"
		 "Authorization: Bearer %s\r\nContent-Length: 2\r\n\r\n{}",
		 ph);
	send_str(fd, req);
	/* The first event arrives while the upstream still holds the
	 * last. */
	char buf[4096] = "";
	size_t len = 0;
	while (!strstr(buf, "data: first")) {
		ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
		assert_true(r > 0);
		len += (size_t)r;
		buf[len] = '\0';
	}
	assert_null(strstr(buf, "data: last"));
	assert_non_null(strcasestr(buf, "transfer-encoding: chunked"));
	assert_non_null(strcasestr(up.head, "authorization: Bearer gw-token"));
	assert_int_equal(write(up.gate[1], "x", 1), 1);
	while (!strstr(buf, "\r\n0\r\n\r\n")) {
		ssize_t r = read(fd, buf + len, sizeof(buf) - 1 - len);
		assert_true(r > 0);
		len += (size_t)r;
		buf[len] = '\0';
	}
	assert_non_null(strstr(buf, "data: last"));
	close(fd);
	apiproxy_free(p);
}

static void write_login(const char *path, long long exp_ms)
{
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f,
		"{\"claudeAiOauth\":{\"accessToken\":\"sk-ant-oat01-host\","
		"\"refreshToken\":\"r\",\"expiresAt\":%lld}}",
		exp_ms);
	fclose(f);
}

/* The host's login: read at each request, so a renewed one is used;
 * an expired one is a 401 that says what to do. */
static void test_login(void **state)
{
	(void)state;
	char dir[] = "/tmp/ccvm-test-apiproxy-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[128];
	snprintf(path, sizeof(path), "%s/.credentials.json", dir);
	long long now = (long long)time(NULL) * 1000;
	write_login(path, now - 60000);
	char ph[APIPROXY_PLACEHOLDER_MAX];
	struct apiproxy *p =
	    mkproxy(APIPROXY_LOGIN, NULL, path, upstream_url(), ph);
	assert_true(strncmp(ph, "sk-ant-oat01-ccvm-", 18) == 0);
	up_reset(UP_JSON);
	int fd = guest(p);
	snprintf(req, sizeof(req),
		 "GET /v1/models HTTP/1.1\r\nHost: api.ccvm.internal\r\n"
		 "Authorization: Bearer %s\r\n\r\n",
		 ph);
	assert_int_equal(ask(fd, req, out, sizeof(out)), 401);
	assert_non_null(strstr(out, "login expired"));
	assert_non_null(strstr(out, "authentication_error"));
	close(fd);
	assert_int_equal(up_reqs(), 0);
	write_login(path, now + 3600000);
	fd = guest(p);
	assert_int_equal(ask(fd, req, out, sizeof(out)), 200);
	assert_non_null(
	    strcasestr(up.head, "authorization: Bearer sk-ant-oat01-host"));
	close(fd);
	unlink(path);
	rmdir(dir);
	apiproxy_free(p);
}

/* The upstream cannot be reached: an API-shaped 502 naming it. */
static void test_upstream_down(void **state)
{
	(void)state;
	int s = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	bind(s, (struct sockaddr *)&a, sizeof(a));
	getsockname(s, (struct sockaddr *)&a, &al);
	close(s); /* a port nobody listens on */
	char url[64], ph[APIPROXY_PLACEHOLDER_MAX];
	snprintf(url, sizeof(url), "http://127.0.0.1:%u",
		 (unsigned)ntohs(a.sin_port));
	struct apiproxy *p = mkproxy(APIPROXY_API_KEY, REAL_KEY, NULL, url, ph);
	int fd = guest(p);
	snprintf(req, sizeof(req),
		 "GET /v1/models HTTP/1.1\r\nHost: api.ccvm.internal\r\n"
		 "x-api-key: %s\r\n\r\n",
		 ph);
	assert_int_equal(ask(fd, req, out, sizeof(out)), 502);
	assert_non_null(strstr(out, "api_error"));
	assert_non_null(strstr(out, url));
	close(fd);
	char *text = NULL;
	size_t tl = 0;
	FILE *f = open_memstream(&text, &tl);
	apiproxy_summary(p, f);
	fclose(f);
	assert_non_null(strstr(text, "ccvm: API proxy: 1 request"));
	assert_non_null(strstr(text, "1 upstream error"));
	free(text);
	apiproxy_free(p);
}

static void test_pieces(void **state)
{
	(void)state;
	char o[APIPROXY_URL_MAX], a[64], b[64];
	const char *why = NULL;
	assert_int_equal(apiproxy_upstream("https://gw.example/anthropic/", o,
					   sizeof(o), &why),
			 0);
	assert_string_equal(o, "https://gw.example/anthropic");
	assert_int_equal(
	    apiproxy_upstream("http://localhost:8080", o, sizeof(o), &why), 0);
	assert_int_equal(
	    apiproxy_upstream("http://[::1]:9/", o, sizeof(o), &why), 0);
	assert_string_equal(o, "http://[::1]:9");
	assert_int_equal(
	    apiproxy_upstream("http://gw.example", o, sizeof(o), &why),
	    -EINVAL);
	assert_non_null(strstr(why, "loopback"));
	assert_int_equal(
	    apiproxy_upstream("https://u:p@gw.example", o, sizeof(o), &why),
	    -EINVAL);
	assert_int_equal(
	    apiproxy_upstream("ftp://gw.example", o, sizeof(o), &why), -EINVAL);
	assert_int_equal(
	    apiproxy_upstream("https://gw.example/?q", o, sizeof(o), &why),
	    -EINVAL);
	/* Placeholders: 128 random bits each time. */
	apiproxy_placeholder(APIPROXY_API_KEY, a, sizeof(a));
	apiproxy_placeholder(APIPROXY_API_KEY, b, sizeof(b));
	assert_string_not_equal(a, b);
	assert_int_equal(strspn(a + 18, "0123456789abcdef"), 32);
	assert_true(apiproxy_ct_equal("abc", 3, "abc", 3));
	assert_false(apiproxy_ct_equal("abc", 3, "abd", 3));
	assert_false(apiproxy_ct_equal("abc", 3, "abcd", 4));
	assert_string_equal(apiproxy_guest_var(APIPROXY_LOGIN),
			    "CLAUDE_CODE_OAUTH_TOKEN");
	assert_string_equal(apiproxy_guest_var(APIPROXY_AUTH_TOKEN),
			    "ANTHROPIC_AUTH_TOKEN");
}

int main(void)
{
	up_start();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_pieces),
	    cmocka_unit_test(test_key_swapped),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_streaming),
	    cmocka_unit_test(test_login),
	    cmocka_unit_test(test_upstream_down),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
