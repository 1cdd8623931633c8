#define _GNU_SOURCE
/*
 * One guest connection of ccvm's API proxy (apiproxy_int.h), on a thread
 * of its own, blocking I/O on its end of a socketpair; the relay
 * (egress.c) carries the other end to the guest with its usual windows,
 * so a slow guest slows the upstream read and nothing queues unbounded.
 * Requests are read strictly (http.h), checked, sent on with libcurl, and
 * their responses streamed back.
 */
#include "net/apiproxy_int.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net/http.h"
#include "setup/cred.h"
#include "util.h"

/* ---- reading from the guest ------------------------------------------ */

/* More bytes from the guest into c->in; false at end of file or error. */
static bool fill(struct conn *c)
{
	if (c->eof)
		return false;
	if (c->off && c->off == c->len)
		c->off = c->len = 0;
	if (c->len == sizeof(c->in)) {
		memmove(c->in, c->in + c->off, c->len - c->off);
		c->len -= c->off;
		c->off = 0;
		if (c->len == sizeof(c->in))
			return false;
	}
	ssize_t n;
	do
		n = read(c->fd, c->in + c->len, sizeof(c->in) - c->len);
	while (n < 0 && errno == EINTR);
	if (n <= 0) {
		c->eof = true;
		return false;
	}
	c->len += (size_t)n;
	return true;
}

/* The next request's head; 1 parsed, 0 the guest closed quietly, -1
 * refused (answered). */
static int read_head(struct conn *c)
{
	bool lf = true; /* a head ends with a line: parse when one came */
	for (;;) {
		int status = 0;
		const char *why = NULL;
		if (c->len > c->off && lf) {
			int r =
			    http_request_parse(c->in + c->off, c->len - c->off,
					       &c->req, &status, &why);
			if (r > 0) {
				c->off += (size_t)r;
				return 1;
			}
			if (r < 0) {
				apiproxy_answer_error(
				    c, status, "invalid_request_error",
				    why ? why : "malformed request", true);
				return -1;
			}
		}
		if (c->off) { /* keep the partial head at the start */
			memmove(c->in, c->in + c->off, c->len - c->off);
			c->len -= c->off;
			c->off = 0;
		}
		bool had = c->len > 0;
		size_t before = c->len;
		bool more = fill(c);
		lf = more && memchr(c->in + before, '\n', c->len - before);
		if (!more) {
			if (had && c->len < sizeof(c->in))
				return 0; /* closed mid-head: nothing to say */
			if (had) {
				apiproxy_answer_error(
				    c, 431, "invalid_request_error",
				    "request head too large", true);
				return -1;
			}
			return 0;
		}
	}
}

/* libcurl asks for request body bytes: decoded from what the guest
 * sends, never more than the head announced. */
static size_t body_read(char *buf, size_t size, size_t nitems, void *ud)
{
	struct conn *c = ud;
	size_t room = size * nitems;
	if (c->req.expect_continue && !c->expect_sent) {
		c->expect_sent = true;
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		if (!apiproxy_put(c, cont, sizeof(cont) - 1))
			return CURL_READFUNC_ABORT;
	}
	if (c->mem) {
		size_t n = c->mem_len - c->mem_off;
		if (n > room)
			n = room;
		memcpy(buf, c->mem + c->mem_off, n);
		c->mem_off += n;
		return n;
	}
	for (;;) {
		if (c->body_done)
			return 0;
		size_t avail = c->len - c->off;
		if (c->req.body == HTTP_BODY_LENGTH && avail) {
			size_t n = avail < room ? avail : room;
			if (n > c->body_left)
				n = (size_t)c->body_left;
			memcpy(buf, c->in + c->off, n);
			c->off += n;
			c->body_left -= n;
			c->body_done = c->body_left == 0;
			return n;
		}
		if (c->req.body == HTTP_BODY_CHUNKED && avail) {
			size_t used = 0, produced = 0;
			const char *why = NULL;
			int r = http_chunked_decode(&c->ch, c->in + c->off,
						    avail, &used, buf, room,
						    &produced, &why);
			c->off += used;
			if (r < 0) {
				c->body_bad = true;
				c->body_why = why;
				return CURL_READFUNC_ABORT;
			}
			c->body_done = r == 1;
			if (produced || c->body_done)
				return produced;
			if (used)
				continue;
		}
		if (!fill(c))
			return CURL_READFUNC_ABORT;
	}
}

/* ---- one request ------------------------------------------------------ */

/* The guest's placeholder, in x-api-key or Authorization: Bearer. */
static bool placeholder_ok(const struct conn *c)
{
	const char *ph = c->p->c.placeholder;
	size_t pl = strlen(ph);
	bool ok = false, other = false;
	for (size_t i = 0; i < c->req.nh; i++) {
		const struct http_header *h = &c->req.h[i];
		const char *v = h->value;
		size_t vl = h->value_len;
		bool key = h->name_len == 9 &&
			   strncasecmp(h->name, "x-api-key", 9) == 0;
		if (!key && h->name_len == 13 &&
		    strncasecmp(h->name, "authorization", 13) == 0) {
			if (vl < 7 || strncasecmp(v, "Bearer ", 7) != 0) {
				other = true;
				continue;
			}
			v += 7;
			vl -= 7;
		} else if (!key) {
			continue;
		}
		if (apiproxy_ct_equal(v, vl, ph, pl))
			ok = true;
		else
			other = true;
	}
	return ok && !other;
}

/* name equals want, case-insensitively, with '_' taken for '-': some
 * servers read Transfer_Encoding as Transfer-Encoding, and a framing
 * header the upstream reads differently from us is how requests get
 * smuggled into a shared connection. */
static bool name_is(const char *name, size_t nl, const char *want)
{
	if (strlen(want) != nl)
		return false;
	for (size_t i = 0; i < nl; i++) {
		char a = (char)tolower((unsigned char)name[i]);
		if (a == '_')
			a = '-';
		if (a != want[i])
			return false;
	}
	return true;
}

/* Headers the guest sent that never go upstream: hop-by-hop ones, what
 * libcurl writes itself, and every credential. */
static bool dropped(const struct conn *c, const struct http_header *h)
{
	static const char *const drop[] = {"host",
					   "content-length",
					   "transfer-encoding",
					   "expect",
					   "x-api-key",
					   "authorization",
					   "proxy-authorization",
					   "cookie",
					   "connection",
					   "keep-alive",
					   "te",
					   "trailer",
					   "upgrade",
					   "proxy-connection"};
	for (size_t i = 0; i < ARRAY_LEN(drop); i++)
		if (name_is(h->name, h->name_len, drop[i]))
			return true;
	return http_hop_by_hop(&c->req, h->name, h->name_len);
}

static void slist_wipe_free(struct curl_slist *l)
{
	for (struct curl_slist *i = l; i; i = i->next)
		explicit_bzero(i->data, strlen(i->data));
	curl_slist_free_all(l);
}

static struct curl_slist *add_header(struct curl_slist *l, bool *fail,
				     const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static struct curl_slist *add_header(struct curl_slist *l, bool *fail,
				     const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&s, fmt, ap);
	va_end(ap);
	struct curl_slist *r = n >= 0 ? curl_slist_append(l, s) : NULL;
	if (n >= 0) {
		explicit_bzero(s, (size_t)n);
		free(s);
	}
	if (!r) {
		*fail = true;
		return l;
	}
	return r;
}

/* The credential header; false with the reason answered when the host's
 * login cannot be used. */
static bool add_credential(struct conn *c, struct curl_slist **l, bool *fail)
{
	struct apiproxy *p = c->p;
	if (p->c.cred == APIPROXY_API_KEY) {
		*l = add_header(*l, fail, "x-api-key: %.*s", (int)p->secret_len,
				p->secret);
		return true;
	}
	if (p->c.cred != APIPROXY_LOGIN) {
		*l = add_header(*l, fail, "Authorization: Bearer %.*s",
				(int)p->secret_len, p->secret);
		return true;
	}
	static char tok[LOGIN_TOKEN_MAX];
	long long exp = 0;
	const char *why = NULL;
	int r = cred_login_read(p->c.login_path, tok, sizeof(tok), &exp, &why);
	char msg[300];
	if (r < 0) {
		snprintf(msg, sizeof(msg),
			 "the host's Claude login cannot be used (%s): run "
			 "`claude` on the host and log in",
			 why ? why : strerror(-r));
	} else if (exp > 0 && exp <= apiproxy_wall_ms()) {
		time_t t = (time_t)(exp / 1000);
		struct tm tm;
		char when[32] = "";
		if (localtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
		snprintf(msg, sizeof(msg),
			 "the host's Claude login expired at %s: run `claude` "
			 "on the host (it renews the login), then try again",
			 when);
		r = -EKEYEXPIRED;
	}
	if (r < 0) {
		explicit_bzero(tok, sizeof(tok));
		apiproxy_note_error(p, msg);
		apiproxy_answer_error(c, 401, "authentication_error", msg,
				      true);
		return false;
	}
	*l = add_header(*l, fail, "Authorization: Bearer %s", tok);
	explicit_bzero(tok, sizeof(tok));
	return true;
}

static CURLcode add_extra_ca(CURL *curl, void *sslctx, void *ud)
{
	(void)curl;
	const char *file = ud;
	X509_STORE *st = SSL_CTX_get_cert_store(sslctx);
	/* An unreadable file is what Node does too: a warning there,
	 * nothing here; the verification then fails on its own. */
	if (st)
		X509_STORE_load_file(st, file);
	return CURLE_OK;
}

static void set_options(struct conn *c, const char *url,
			struct curl_slist *hdrs)
{
	struct apiproxy *p = c->p;
	CURL *h = c->curl;
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_SHARE, p->share);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, p->https ? "https" : "http");
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)CONNECT_TIMEOUT);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, apiproxy_on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, apiproxy_on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
	curl_easy_setopt(h, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
	/* The proxy is the host's setting, never the environment's guess
	 * for a loopback upstream. */
	curl_easy_setopt(h, CURLOPT_PROXY,
			 p->https && p->c.https_proxy ? p->c.https_proxy : "");
	if (p->c.no_proxy)
		curl_easy_setopt(h, CURLOPT_NOPROXY, p->c.no_proxy);
	if (p->c.ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, p->c.ca_file);
	if (p->c.extra_ca) {
		curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, add_extra_ca);
		curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, p->c.extra_ca);
	}
	const char *m = c->req.method;
	if (c->req.body != HTTP_BODY_NONE) {
		curl_easy_setopt(h, CURLOPT_POST, 1L);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, body_read);
		curl_easy_setopt(h, CURLOPT_READDATA, c);
		/* A chunked body was decoded whole: its length is known. */
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)c->req.length);
		if (strcmp(m, "POST") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
	} else if (strcmp(m, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (strcmp(m, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, m);
	}
}

/* The request's headers for upstream; NULL with the answer sent when
 * the request cannot go. */
static struct curl_slist *upstream_headers(struct conn *c, bool *answered)
{
	struct curl_slist *l = NULL;
	bool fail = false;
	for (size_t i = 0; i < c->req.nh; i++) {
		const struct http_header *h = &c->req.h[i];
		if (!dropped(c, h))
			l = add_header(l, &fail, "%.*s: %.*s", (int)h->name_len,
				       h->name, (int)h->value_len, h->value);
	}
	/* What libcurl would add on its own and the agent did not ask for. */
	l = add_header(l, &fail, "Expect:");
	l = add_header(l, &fail, "Accept:");
	if (!add_credential(c, &l, &fail)) {
		*answered = true;
		slist_wipe_free(l);
		return NULL;
	}
	if (fail) {
		slist_wipe_free(l);
		return NULL;
	}
	return l;
}

static bool host_ok(const struct http_request *r)
{
	static const char name[] = "api.ccvm.internal";
	const struct http_header *h = r->host;
	if (!h)
		return false;
	size_t n = sizeof(name) - 1;
	if (h->value_len == n)
		return strncasecmp(h->value, name, n) == 0;
	return h->value_len == n + 3 && strncasecmp(h->value, name, n) == 0 &&
	       memcmp(h->value + n, ":80", 3) == 0;
}

/* Room for n more bytes of a chunked body, within the proxy's budget. */
static bool mem_grow(struct conn *c, size_t *cap, size_t n)
{
	if (c->mem_len + n <= *cap)
		return true;
	size_t more = n < 65536 ? 65536 : n;
	pthread_mutex_lock(&c->p->mu);
	bool ok = c->p->buffered + more <= BUFFERED_MAX;
	if (ok)
		c->p->buffered += more;
	pthread_mutex_unlock(&c->p->mu);
	char *m = ok ? realloc(c->mem, *cap + more) : NULL;
	if (!m) {
		if (ok) {
			pthread_mutex_lock(&c->p->mu);
			c->p->buffered -= more;
			pthread_mutex_unlock(&c->p->mu);
		}
		return false;
	}
	c->mem = m;
	*cap += more;
	return true;
}

static void mem_free(struct conn *c, size_t cap)
{
	free(c->mem);
	c->mem = NULL;
	c->mem_len = c->mem_off = 0;
	pthread_mutex_lock(&c->p->mu);
	c->p->buffered -= cap;
	pthread_mutex_unlock(&c->p->mu);
}

/*
 * A chunked body, decoded whole before the request goes upstream: its
 * framing is checked before the upstream sees a byte of the request
 * (the agent sends its bodies with Content-Length; chunked ones are
 * rare and held in memory, within BUFFERED_MAX for all connections).
 * false with the answer sent.
 */
static bool read_chunked(struct conn *c, size_t *cap)
{
	*cap = 0;
	if (c->req.expect_continue) {
		c->expect_sent = true;
		static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
		if (!apiproxy_put(c, cont, sizeof(cont) - 1))
			return false;
	}
	for (;;) {
		size_t avail = c->len - c->off;
		if (!mem_grow(c, cap, 16384)) {
			apiproxy_answer_error(
			    c, 413, "request_too_large",
			    "a chunked request body larger than the "
			    "proxy holds; send it with Content-Length",
			    true);
			return false;
		}
		size_t used = 0, produced = 0;
		const char *why = NULL;
		int r = avail
			    ? http_chunked_decode(&c->ch, c->in + c->off, avail,
						  &used, c->mem + c->mem_len,
						  *cap - c->mem_len, &produced,
						  &why)
			    : 0;
		c->off += used;
		c->mem_len += produced;
		if (r < 0) {
			apiproxy_answer_error(
			    c, 400, "invalid_request_error",
			    why ? why : "malformed chunked body", true);
			return false;
		}
		if (r == 1) {
			c->body_done = true;
			c->req.length = c->mem_len;
			return true;
		}
		if (!used && !produced && !fill(c)) {
			apiproxy_answer_error(c, 400, "invalid_request_error",
					      "the request body ended early",
					      true);
			return false;
		}
	}
}

static bool serve_upstream(struct conn *c, const char *url,
			   struct curl_slist *hdrs);

/* Serves one request; false when the connection must close. */
static bool serve(struct conn *c)
{
	c->body_left = c->req.body == HTTP_BODY_LENGTH ? c->req.length : 0;
	c->body_done = c->req.body == HTTP_BODY_NONE ||
		       (c->req.body == HTTP_BODY_LENGTH && c->body_left == 0);
	c->body_bad = c->expect_sent = false;
	http_chunked_init(&c->ch);
	c->status = 0;
	c->final_head = c->head_sent = c->chunked_out = c->has_length = false;
	c->head_len = 0;
	c->errbuf[0] = '\0';
	if (!host_ok(&c->req)) {
		apiproxy_answer_error(
		    c, 421, "invalid_request_error",
		    "this proxy serves api.ccvm.internal only; the "
		    "Host header names something else",
		    true);
		return false;
	}
	if (!placeholder_ok(c)) {
		apiproxy_answer_error(
		    c, 401, "authentication_error",
		    "the request does not carry this session's "
		    "credential placeholder (ccvm's API proxy adds "
		    "the real credential on the host)",
		    true);
		return false;
	}
	/* The URL and headers are copies: the head's bytes in c->in are
	 * gone once the body is read. */
	bool answered = false;
	struct curl_slist *hdrs = upstream_headers(c, &answered);
	if (!hdrs) {
		if (!answered)
			apiproxy_answer_error(c, 503, "api_error",
					      "out of memory", true);
		return false; /* the body, if any, was not read */
	}
	char *url = util_asprintf("%s%.*s", c->p->c.upstream,
				  (int)c->req.target_len, c->req.target);
	size_t cap = 0;
	bool keep = false;
	if (!url)
		apiproxy_answer_error(c, 503, "api_error", "out of memory",
				      true);
	else if (c->req.body != HTTP_BODY_CHUNKED || read_chunked(c, &cap))
		keep = serve_upstream(c, url, hdrs);
	slist_wipe_free(hdrs);
	free(url);
	mem_free(c, cap);
	return keep;
}

/* The request, checked and read, goes upstream; false when the
 * connection must close. */
static bool serve_upstream(struct conn *c, const char *url,
			   struct curl_slist *hdrs)
{
	struct apiproxy *p = c->p;
	pthread_mutex_lock(&p->mu);
	p->requests++;
	pthread_mutex_unlock(&p->mu);
	c->curl = apiproxy_pool_get(p);
	if (!c->curl) {
		apiproxy_answer_error(c, 503, "api_error", "out of memory",
				      true);
		return false;
	}
	set_options(c, url, hdrs);
	CURLcode rc = curl_easy_perform(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	apiproxy_pool_put(p, c->curl);
	c->curl = NULL;
	bool keep = c->req.keep_alive && c->body_done && !c->write_failed;
	if (rc == CURLE_OK && c->final_head) {
		if (!apiproxy_send_head(c))
			return false;
		if (c->chunked_out && !apiproxy_put(c, "0\r\n\r\n", 5))
			return false;
		return keep;
	}
	if (c->write_failed)
		return false; /* the guest went away */
	if (c->body_bad) {
		if (!c->head_sent)
			apiproxy_answer_error(c, 400, "invalid_request_error",
					      c->body_why
						  ? c->body_why
						  : "malformed chunked body",
					      true);
		return false;
	}
	char msg[CURL_ERROR_SIZE + APIPROXY_URL_MAX + 64];
	snprintf(msg, sizeof(msg), "the upstream %s failed: %s", p->c.upstream,
		 c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
	apiproxy_note_error(p, msg);
	if (!c->head_sent)
		apiproxy_answer_error(c, 502, "api_error", msg, true);
	return false;
}

/*
 * A lingering close, as HTTP servers do: the answer is out, the guest's
 * side stays open a moment for what it was still sending (a body the
 * proxy refused or could not send on).  Closing with unread bytes would
 * reset the connection, and a reset can destroy the answer before the
 * agent reads it.
 */
static void linger_close(int fd)
{
	shutdown(fd, SHUT_WR);
	struct timeval tv = {.tv_sec = 2};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	static char junk[16384]; /* never read: shared is fine */
	uint64_t total = 0;
	while (total < HTTP_BODY_MAX) {
		ssize_t n = read(fd, junk, sizeof(junk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		total += (uint64_t)n;
	}
	close(fd);
}

static void *conn_main(void *arg)
{
	struct conn *c = arg;
	struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
	setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	while (read_head(c) > 0 && serve(c))
		memset(&c->req, 0, sizeof(c->req));
	linger_close(c->fd);
	pthread_mutex_lock(&c->p->mu);
	c->p->conns--;
	pthread_mutex_unlock(&c->p->mu);
	free(c);
	return NULL;
}

int apiproxy_conn_start(struct apiproxy *p, int fd)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->p = p;
	c->fd = fd;
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	int e = pthread_create(&t, &at, conn_main, c);
	pthread_attr_destroy(&at);
	if (e != 0) {
		free(c);
		return -e;
	}
	return 0;
}
