#define _GNU_SOURCE
/*
 * ccvm's API proxy (see apiproxy.h and docs/apiproxy.md).  One thread per
 * guest connection, blocking I/O on its end of a socketpair; the relay
 * (egress.c) carries the other end to the guest with its usual windows,
 * so a slow guest slows the upstream read and nothing queues unbounded.
 * The upstream side is libcurl.  Its easy handles live in a pool: a
 * request takes the one used last (with its live upstream connection)
 * and gives it back, so sequential requests, from any guest connection,
 * reuse one upstream connection: one TLS handshake per session, not per
 * request.  (libcurl does not support sharing a connection cache between
 * threads; TLS sessions and the DNS cache are shared, so a second
 * connection for concurrent requests resumes the TLS session.)
 */
#include "net/apiproxy.h"

#include <arpa/inet.h>
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
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "net/http.h"
#include "setup/cred.h"
#include "sys/procs.h"
#include "util.h"

#define IO_TIMEOUT_S	600   /* a guest connection idle this long closes */
#define RESP_HEAD_MAX	65536 /* the upstream's response head */
#define CONNECT_TIMEOUT 10000 /* ms, to the upstream */
#define LOGIN_TOKEN_MAX 8192
#define BUFFERED_MAX	(128u << 20) /* chunked bodies held at once */

struct apiproxy {
	struct apiproxy_conf c;
	char *secret; /* our copy of the credential */
	size_t secret_len;
	bool https;
	CURLSH *share;
	CURL *pool[APIPROXY_CONN_MAX]; /* idle easy handles, last used on top */
	unsigned n_pool;
	pthread_mutex_t locks[CURL_LOCK_DATA_LAST];
	pthread_mutex_t mu; /* the counters below */
	unsigned conns;
	unsigned long requests, errors;
	unsigned long long bytes;
	size_t buffered; /* chunked bodies held, all connections */
	char last_error[200];
};

/* One guest connection. */
struct conn {
	struct apiproxy *p;
	int fd;
	CURL *curl;
	char in[HTTP_HEAD_MAX + 16384]; /* read from the guest */
	size_t off, len;		/* unconsumed: in[off, len) */
	bool eof;

	/* The request being served. */
	struct http_request req;
	uint64_t body_left; /* HTTP_BODY_LENGTH */
	struct http_chunked ch;
	bool body_done, body_bad, expect_sent;
	/* A chunked body, decoded whole before anything goes upstream. */
	char *mem;
	size_t mem_len, mem_off;
	const char *body_why;

	/* Its response. */
	int status;
	bool final_head; /* the upstream's final head is complete */
	bool head_sent, chunked_out, has_length, write_failed;
	char head[RESP_HEAD_MAX];
	size_t head_len;
	char errbuf[CURL_ERROR_SIZE];
};

/* ---- small pieces --------------------------------------------------- */

const char *apiproxy_guest_var(enum apiproxy_cred cred)
{
	switch (cred) {
	case APIPROXY_AUTH_TOKEN:
		return "ANTHROPIC_AUTH_TOKEN";
	case APIPROXY_API_KEY:
		return "ANTHROPIC_API_KEY";
	case APIPROXY_OAUTH_TOKEN:
	case APIPROXY_LOGIN:
		return "CLAUDE_CODE_OAUTH_TOKEN";
	case APIPROXY_NONE:
		break;
	}
	return NULL;
}

const char *apiproxy_cred_name(enum apiproxy_cred cred, const char *key_var)
{
	switch (cred) {
	case APIPROXY_AUTH_TOKEN:
		return "ANTHROPIC_AUTH_TOKEN";
	case APIPROXY_API_KEY:
		return key_var;
	case APIPROXY_OAUTH_TOKEN:
		return "CLAUDE_CODE_OAUTH_TOKEN";
	case APIPROXY_LOGIN:
		return "the host's Claude login";
	case APIPROXY_NONE:
		break;
	}
	return "no credential";
}

int apiproxy_placeholder(enum apiproxy_cred cred, char *out, size_t n)
{
	/* The prefix says what it is to whoever finds one: a ccvm
	 * placeholder, worthless outside its session. */
	const char *prefix = cred == APIPROXY_API_KEY ? "sk-ant-api03-ccvm-"
						      : "sk-ant-oat01-ccvm-";
	uint8_t r[16];
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return -EIO;
	size_t pl = strlen(prefix);
	if (n < pl + 2 * sizeof(r) + 1)
		return -ENAMETOOLONG;
	memcpy(out, prefix, pl);
	for (size_t i = 0; i < sizeof(r); i++)
		snprintf(out + pl + 2 * i, 3, "%02x", r[i]);
	explicit_bzero(r, sizeof(r));
	return 0;
}

bool apiproxy_ct_equal(const char *a, size_t an, const char *b, size_t bn)
{
	if (an != bn)
		return false;
	volatile unsigned char d = 0;
	for (size_t i = 0; i < an; i++)
		d |= (unsigned char)(a[i] ^ b[i]);
	return d == 0;
}

static bool host_is_loopback(const char *h, size_t hl)
{
	char b[64];
	uint8_t ab[16];
	if (hl == 0 || hl >= sizeof(b))
		return false;
	memcpy(b, h, hl);
	b[hl] = '\0';
	if (b[0] == '[' && b[hl - 1] == ']') {
		b[hl - 1] = '\0';
		return inet_pton(AF_INET6, b + 1, ab) == 1 &&
		       memcmp(ab, &in6addr_loopback, 16) == 0;
	}
	return strcasecmp(b, "localhost") == 0 ||
	       (inet_pton(AF_INET, b, ab) == 1 && ab[0] == 127);
}

int apiproxy_upstream(const char *url, char *out, size_t n, const char **why)
{
	bool https = strncasecmp(url, "https://", 8) == 0;
	if (!https && strncasecmp(url, "http://", 7) != 0) {
		*why = "expected an https:// URL";
		return -EINVAL;
	}
	const char *a = url + (https ? 8 : 7);
	size_t alen = strcspn(a, "/?#");
	if (alen == 0 || memchr(a, '@', alen)) {
		*why = "expected https://host[:port][/path] without user "
		       "information";
		return -EINVAL;
	}
	if (strpbrk(url, "?#") ||
	    strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			"0123456789-._~:/[]%!$&'()*+,;=") != strlen(url)) {
		*why = "a query, fragment or space in the URL";
		return -EINVAL;
	}
	const char *colon = a[0] == '[' ? NULL : memchr(a, ':', alen);
	if (a[0] == '[') {
		const char *rb = memchr(a, ']', alen);
		colon = rb && rb + 1 < a + alen && rb[1] == ':' ? rb + 1 : NULL;
		if (!rb) {
			*why = "an unclosed [ in the host";
			return -EINVAL;
		}
	}
	size_t hl = colon ? (size_t)(colon - a) : alen;
	if (!https && !host_is_loopback(a, hl)) {
		*why = "http:// is allowed only on the host's own loopback "
		       "(the credential would cross the network in the "
		       "clear); use https://, or credentialProxy=false";
		return -EINVAL;
	}
	size_t len = strlen(url);
	while (len > (size_t)(a - url) + alen && url[len - 1] == '/')
		len--;
	if (len >= n) {
		*why = "the URL is too long";
		return -ENAMETOOLONG;
	}
	memcpy(out, url, len);
	out[len] = '\0';
	return 0;
}

static long long wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void note_error(struct apiproxy *p, const char *what)
{
	pthread_mutex_lock(&p->mu);
	p->errors++;
	util_strlcpy(p->last_error, what, sizeof(p->last_error));
	pthread_mutex_unlock(&p->mu);
}

/* ---- writing to the guest -------------------------------------------- */

/*
 * Pieces to the guest in one sendmsg where they fit: each write here is
 * a frame on the port and a wakeup of the guest, which under TCG costs
 * about a millisecond.  sendmsg, not write: a guest that went away is an
 * error here, never a SIGPIPE for the relay's whole process.
 */
static bool putv(struct conn *c, struct iovec *iov, int n)
{
	if (c->write_failed)
		return false;
	while (n > 0) {
		struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
		ssize_t w = sendmsg(c->fd, &m, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			c->write_failed = true;
			return false;
		}
		size_t done = (size_t)w;
		while (n > 0 && done >= iov->iov_len) {
			done -= iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + done;
			iov->iov_len -= done;
		}
	}
	return true;
}

static bool put(struct conn *c, const void *d, size_t n)
{
	struct iovec v = {.iov_base = (void *)d, .iov_len = n};
	return putv(c, &v, 1);
}

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 401:
		return "Unauthorized";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 413:
		return "Content Too Large";
	case 417:
		return "Expectation Failed";
	case 421:
		return "Misdirected Request";
	case 429:
		return "Too Many Requests";
	case 431:
		return "Request Header Fields Too Large";
	case 501:
		return "Not Implemented";
	case 502:
		return "Bad Gateway";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	}
	return status < 300 ? "OK" : status < 500 ? "Error" : "Server Error";
}

/* The proxy's own answer, shaped like the API's errors so that the
 * agent shows the message. */
static void answer_error(struct conn *c, int status, const char *type,
			 const char *msg, bool close_after)
{
	autofree char *m = util_asprintf("ccvm: %s", msg);
	json_t *o = json_pack("{s:s, s:{s:s, s:s}}", "type", "error", "error",
			      "type", type, "message", m ? m : msg);
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	const char *b = body ? body : "{}";
	char head[256];
	int hl = snprintf(head, sizeof(head),
			  "HTTP/1.1 %d %s\r\nContent-Type: application/json"
			  "\r\nContent-Length: %zu\r\n%s\r\n",
			  status, reason(status), strlen(b),
			  close_after ? "Connection: close\r\n" : "");
	if (put(c, head, (size_t)hl) && strcmp(c->req.method, "HEAD") != 0)
		put(c, b, strlen(b));
	free(body);
}

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
				answer_error(c, status, "invalid_request_error",
					     why ? why : "malformed request",
					     true);
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
				answer_error(c, 431, "invalid_request_error",
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
		if (!put(c, cont, sizeof(cont) - 1))
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

/* ---- the upstream's response ----------------------------------------- */

static bool response_hop(const char *n, size_t nl)
{
	static const char *const hop[] = {"connection",
					  "keep-alive",
					  "transfer-encoding",
					  "te",
					  "trailer",
					  "upgrade",
					  "proxy-authenticate",
					  "proxy-connection"};
	for (size_t i = 0; i < ARRAY_LEN(hop); i++)
		if (strlen(hop[i]) == nl && strncasecmp(n, hop[i], nl) == 0)
			return true;
	return false;
}

static size_t on_header(char *b, size_t size, size_t n, void *ud)
{
	struct conn *c = ud;
	size_t len = size * n;
	if (len >= 5 && memcmp(b, "HTTP/", 5) == 0) {
		/* A new response head (an interim one is dropped). */
		const char *sp = memchr(b, ' ', len);
		c->status =
		    sp && (size_t)(sp - b) + 4 <= len ? atoi(sp + 1) : 502;
		c->head_len = 0;
		c->has_length = c->final_head = false;
		return len;
	}
	if (len <= 2 && (len == 0 || b[0] == '\r' || b[0] == '\n')) {
		c->final_head = c->status >= 200;
		return len;
	}
	const char *colon = memchr(b, ':', len);
	if (!colon)
		return len;
	size_t nl = (size_t)(colon - b);
	if (response_hop(b, nl))
		return len;
	if (nl == 14 && strncasecmp(b, "content-length", 14) == 0)
		c->has_length = true;
	if (c->head_len + len > sizeof(c->head))
		return 0; /* aborts: a head this large is not the API's */
	memcpy(c->head + c->head_len, b, len);
	c->head_len += len;
	/* Lines end in CRLF for the guest, whatever curl got. */
	if (len < 2 || b[len - 2] != '\r') {
		if (c->head_len + 1 > sizeof(c->head))
			return 0;
		c->head[c->head_len - 1] = '\r';
		c->head[c->head_len++] = '\n';
	}
	return len;
}

/* The response head as pieces (at most 5) in iov, once; 0 when it went
 * already.  line holds the status line. */
static int head_iov(struct conn *c, struct iovec *iov, char line[128])
{
	if (c->head_sent)
		return 0;
	c->head_sent = true;
	bool bodiless = strcmp(c->req.method, "HEAD") == 0 ||
			c->status == 204 || c->status == 304;
	c->chunked_out = !bodiless && !c->has_length;
	int ll = snprintf(line, 128, "HTTP/1.1 %d %s\r\n", c->status,
			  reason(c->status));
	const char *tail =
	    c->chunked_out ? "Transfer-Encoding: chunked\r\n" : "";
	const char *conn = c->req.keep_alive ? "" : "Connection: close\r\n";
	iov[0] = (struct iovec){line, (size_t)ll};
	iov[1] = (struct iovec){c->head, c->head_len};
	iov[2] = (struct iovec){(void *)tail, strlen(tail)};
	iov[3] = (struct iovec){(void *)conn, strlen(conn)};
	iov[4] = (struct iovec){"\r\n", 2};
	return 5;
}

static bool send_head(struct conn *c)
{
	struct iovec iov[5];
	char line[128];
	int n = head_iov(c, iov, line);
	return n == 0 || putv(c, iov, n);
}

static size_t on_data(char *b, size_t size, size_t n, void *ud)
{
	struct conn *c = ud;
	size_t len = size * n;
	if (!c->final_head || len == 0)
		return 0;
	/* The head (the first time) and this piece, in one write. */
	struct iovec iov[8];
	char line[128], sz[24];
	int k = head_iov(c, iov, line);
	if (c->chunked_out) {
		int sl = snprintf(sz, sizeof(sz), "%zx\r\n", len);
		iov[k++] = (struct iovec){sz, (size_t)sl};
		iov[k++] = (struct iovec){b, len};
		iov[k++] = (struct iovec){"\r\n", 2};
	} else {
		iov[k++] = (struct iovec){b, len};
	}
	if (!putv(c, iov, k))
		return 0;
	pthread_mutex_lock(&c->p->mu);
	c->p->bytes += len;
	pthread_mutex_unlock(&c->p->mu);
	return len;
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
	} else if (exp > 0 && exp <= wall_ms()) {
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
		note_error(p, msg);
		answer_error(c, 401, "authentication_error", msg, true);
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
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
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
		if (!put(c, cont, sizeof(cont) - 1))
			return false;
	}
	for (;;) {
		size_t avail = c->len - c->off;
		if (!mem_grow(c, cap, 16384)) {
			answer_error(c, 413, "request_too_large",
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
			answer_error(c, 400, "invalid_request_error",
				     why ? why : "malformed chunked body",
				     true);
			return false;
		}
		if (r == 1) {
			c->body_done = true;
			c->req.length = c->mem_len;
			return true;
		}
		if (!used && !produced && !fill(c)) {
			answer_error(c, 400, "invalid_request_error",
				     "the request body ended early", true);
			return false;
		}
	}
}

/* An easy handle from the pool (the one used last), or a new one. */
static CURL *pool_get(struct apiproxy *p)
{
	CURL *h = NULL;
	pthread_mutex_lock(&p->mu);
	if (p->n_pool)
		h = p->pool[--p->n_pool];
	pthread_mutex_unlock(&p->mu);
	return h ? h : curl_easy_init();
}

static void pool_put(struct apiproxy *p, CURL *h)
{
	pthread_mutex_lock(&p->mu);
	if (p->n_pool < ARRAY_LEN(p->pool)) {
		p->pool[p->n_pool++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&p->mu);
	if (h)
		curl_easy_cleanup(h);
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
		answer_error(c, 421, "invalid_request_error",
			     "this proxy serves api.ccvm.internal only; the "
			     "Host header names something else",
			     true);
		return false;
	}
	if (!placeholder_ok(c)) {
		answer_error(c, 401, "authentication_error",
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
			answer_error(c, 503, "api_error", "out of memory",
				     true);
		return false; /* the body, if any, was not read */
	}
	char *url = util_asprintf("%s%.*s", c->p->c.upstream,
				  (int)c->req.target_len, c->req.target);
	size_t cap = 0;
	bool keep = false;
	if (!url)
		answer_error(c, 503, "api_error", "out of memory", true);
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
	c->curl = pool_get(p);
	if (!c->curl) {
		answer_error(c, 503, "api_error", "out of memory", true);
		return false;
	}
	set_options(c, url, hdrs);
	CURLcode rc = curl_easy_perform(c->curl);
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	pool_put(p, c->curl);
	c->curl = NULL;
	bool keep = c->req.keep_alive && c->body_done && !c->write_failed;
	if (rc == CURLE_OK && c->final_head) {
		if (!send_head(c))
			return false;
		if (c->chunked_out && !put(c, "0\r\n\r\n", 5))
			return false;
		return keep;
	}
	if (c->write_failed)
		return false; /* the guest went away */
	if (c->body_bad) {
		if (!c->head_sent)
			answer_error(c, 400, "invalid_request_error",
				     c->body_why ? c->body_why
						 : "malformed chunked body",
				     true);
		return false;
	}
	char msg[CURL_ERROR_SIZE + APIPROXY_URL_MAX + 64];
	snprintf(msg, sizeof(msg), "the upstream %s failed: %s", p->c.upstream,
		 c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc));
	note_error(p, msg);
	if (!c->head_sent)
		answer_error(c, 502, "api_error", msg, true);
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

/* ---- the proxy -------------------------------------------------------- */

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *ud)
{
	(void)h;
	(void)a;
	struct apiproxy *p = ud;
	pthread_mutex_lock(&p->locks[d]);
}

static void share_unlock(CURL *h, curl_lock_data d, void *ud)
{
	(void)h;
	struct apiproxy *p = ud;
	pthread_mutex_unlock(&p->locks[d]);
}

struct apiproxy *apiproxy_new(const struct apiproxy_conf *conf)
{
	struct apiproxy *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->c = *conf;
	p->https = strncasecmp(conf->upstream, "https://", 8) == 0;
	if (conf->cred != APIPROXY_LOGIN && conf->secret) {
		p->secret = malloc(conf->secret_len + 1);
		if (p->secret) {
			memcpy(p->secret, conf->secret, conf->secret_len);
			p->secret[conf->secret_len] = '\0';
			p->secret_len = conf->secret_len;
		}
	}
	/* The relay keeps this copy only; the session's are wiped here. */
	procs_forget_secrets();
	p->c.secret = NULL;
	if ((conf->cred != APIPROXY_LOGIN && !p->secret) ||
	    curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		goto fail;
	pthread_mutex_init(&p->mu, NULL);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_init(&p->locks[i], NULL);
	p->share = curl_share_init();
	if (!p->share)
		goto fail;
	curl_share_setopt(p->share, CURLSHOPT_LOCKFUNC, share_lock);
	curl_share_setopt(p->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
	curl_share_setopt(p->share, CURLSHOPT_USERDATA, p);
	curl_share_setopt(p->share, CURLSHOPT_SHARE,
			  CURL_LOCK_DATA_SSL_SESSION);
	curl_share_setopt(p->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	return p;
fail:
	if (p->secret) {
		explicit_bzero(p->secret, p->secret_len);
		free(p->secret);
	}
	free(p);
	return NULL;
}

int apiproxy_accept(struct apiproxy *p)
{
	pthread_mutex_lock(&p->mu);
	bool full = p->conns >= APIPROXY_CONN_MAX;
	if (!full)
		p->conns++;
	pthread_mutex_unlock(&p->mu);
	if (full)
		return -EMFILE;
	int sv[2] = {-1, -1};
	struct conn *c = NULL;
	int r = -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		r = -errno;
		goto fail;
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		goto fail;
	c->p = p;
	c->fd = sv[1];
	pthread_t t;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	int e = pthread_create(&t, &at, conn_main, c);
	pthread_attr_destroy(&at);
	if (e != 0) {
		r = -e;
		goto fail;
	}
	util_set_nonblock(sv[0], true);
	return sv[0];
fail:
	free(c);
	if (sv[0] >= 0) {
		close(sv[0]);
		close(sv[1]);
	}
	pthread_mutex_lock(&p->mu);
	p->conns--;
	pthread_mutex_unlock(&p->mu);
	return r;
}

void apiproxy_free(struct apiproxy *p)
{
	if (!p)
		return;
	for (int i = 0; i < 200; i++) {
		pthread_mutex_lock(&p->mu);
		unsigned n = p->conns;
		pthread_mutex_unlock(&p->mu);
		if (n == 0)
			break;
		if (i == 199)
			return;
		usleep(10000);
	}
	for (unsigned i = 0; i < p->n_pool; i++)
		curl_easy_cleanup(p->pool[i]);
	curl_share_cleanup(p->share);
	if (p->secret) {
		explicit_bzero(p->secret, p->secret_len);
		free(p->secret);
	}
	pthread_mutex_destroy(&p->mu);
	for (int i = 0; i < CURL_LOCK_DATA_LAST; i++)
		pthread_mutex_destroy(&p->locks[i]);
	free(p);
}

void apiproxy_summary(struct apiproxy *p, FILE *out)
{
	pthread_mutex_lock(&p->mu);
	if (p->errors) {
		double mb = (double)p->bytes / 1e6;
		fprintf(out,
			"ccvm: API proxy: %lu request%s, %.1f MB; %lu "
			"upstream error%s (last: %s)\n",
			p->requests, p->requests == 1 ? "" : "s", mb, p->errors,
			p->errors == 1 ? "" : "s", p->last_error);
	}
	pthread_mutex_unlock(&p->mu);
}
