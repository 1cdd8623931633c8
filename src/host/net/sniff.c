/*
 * The reader of a connection's first bytes (sniff.h).  One pass, in
 * order: each decision uses only the bytes before it, so a decided answer
 * stays the same when more bytes come.  Running out of bytes is MORE while
 * more may come (the caller's len is below SNIFF_MAX and not final), else
 * the "incomplete" answer of the state it stopped in.
 */
#include "net/sniff.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define TLS_HANDSHAKE	    22
#define TLS_CLIENT_HELLO    1
#define TLS_RECORD_MAX	    16384
#define TLS_EXT_SERVER_NAME 0x0000
#define TLS_EXT_ECH	    0xfe0d
#define TLS_SNI_HOST_NAME   0
#define TLS_SESSION_ID_MAX  32
#define HTTP_METHOD_MAX	    16
#define NAME_MAX_LEN	    253
#define LABEL_MAX	    63

struct ctx {
	const uint8_t *b;
	size_t len;   /* at most SNIFF_MAX */
	bool no_more; /* final, or len reached SNIFF_MAX */
	struct sniff *out;
};

__attribute__((format(printf, 2, 3))) static enum sniff_kind
bad(struct ctx *c, const char *fmt, ...)
{
	struct sniff *o = c->out;
	memset(o, 0, sizeof(*o));
	o->kind = SNIFF_OTHER;
	o->malformed = true;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(o->why, sizeof(o->why), fmt, ap);
	va_end(ap);
	return o->kind;
}

static enum sniff_kind other(struct ctx *c)
{
	memset(c->out, 0, sizeof(*c->out));
	c->out->kind = SNIFF_OTHER;
	return SNIFF_OTHER;
}

static enum sniff_kind more(struct ctx *c)
{
	memset(c->out, 0, sizeof(*c->out));
	return SNIFF_MORE;
}

/* Out of bytes in something that is TLS or HTTP for sure. */
static enum sniff_kind need(struct ctx *c, const char *what)
{
	if (!c->no_more)
		return more(c);
	if (c->len >= SNIFF_MAX)
		return bad(c, "%s longer than %d bytes", what, SNIFF_MAX);
	return bad(c, "%s incomplete (%zu bytes)", what, c->len);
}

/* --- names ------------------------------------------------------------- */

static bool name_char(uint8_t ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.';
}

/* Dotted-quad IPv4, decimal, no leading zeros. */
static bool ipv4_strict(const char *s)
{
	int parts = 0;
	while (parts < 4) {
		if (*s < '0' || *s > '9')
			return false;
		unsigned v = 0;
		int digits = 0;
		const char *start = s;
		while (*s >= '0' && *s <= '9' && digits < 4) {
			v = v * 10 + (unsigned)(*s - '0');
			s++;
			digits++;
		}
		if (digits > 3 || v > 255 || (digits > 1 && *start == '0'))
			return false;
		parts++;
		if (parts < 4) {
			if (*s != '.')
				return false;
			s++;
		}
	}
	return *s == '\0';
}

/* The WHATWG URL parser reads a host whose last label is a number ("10.1",
 * "0x7f") as an IPv4 address, not a name. */
static bool numeric_label(const char *l, size_t n)
{
	if (n >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X')) {
		for (size_t i = 2; i < n; i++)
			if (!((l[i] >= '0' && l[i] <= '9') ||
			      ((l[i] | 0x20) >= 'a' && (l[i] | 0x20) <= 'f')))
				return false;
		return true;
	}
	for (size_t i = 0; i < n; i++)
		if (l[i] < '0' || l[i] > '9')
			return false;
	return true;
}

/*
 * s[0..n) as sent: a DNS name, or with allow_ip a dotted-quad IPv4
 * address.  NULL with name (lowercased, no trailing dot) and *is_ip set,
 * or what is wrong.
 */
static const char *name_check(const uint8_t *s, size_t n, bool allow_ip,
			      char name[254], bool *is_ip)
{
	if (n > 0 && s[n - 1] == '.')
		n--;
	if (n == 0)
		return "empty name";
	if (n > NAME_MAX_LEN)
		return "name longer than 253 bytes";
	char tmp[NAME_MAX_LEN + 1];
	size_t label = 0, last = 0;
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = s[i];
		if (!name_char(ch))
			return "character not allowed in a name";
		if (ch == '.') {
			if (label == 0)
				return "empty label in a name";
			label = 0;
			last = i + 1;
		} else if (++label > LABEL_MAX) {
			return "label longer than 63 bytes";
		}
		tmp[i] =
		    (ch >= 'A' && ch <= 'Z') ? (char)(ch | 0x20) : (char)ch;
	}
	if (label == 0)
		return "empty label in a name";
	tmp[n] = '\0';
	bool ip = false;
	if (numeric_label(tmp + last, n - last)) {
		if (!ipv4_strict(tmp))
			return "numeric last label (not a name)";
		if (!allow_ip)
			return "IP address, not a name";
		ip = true;
	}
	memcpy(name, tmp, n + 1);
	*is_ip = ip;
	return NULL;
}

/* "[v6]" contents: canonical text into name. */
static const char *ipv6_check(const uint8_t *s, size_t n, char name[254])
{
	char tmp[INET6_ADDRSTRLEN];
	if (n == 0 || n >= sizeof(tmp))
		return "bad IPv6 address";
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = s[i];
		if (!((ch >= '0' && ch <= '9') ||
		      ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f') || ch == ':' ||
		      ch == '.'))
			return "bad IPv6 address";
		tmp[i] = (char)ch;
	}
	tmp[n] = '\0';
	struct in6_addr a;
	if (inet_pton(AF_INET6, tmp, &a) != 1 ||
	    !inet_ntop(AF_INET6, &a, name, 254))
		return "bad IPv6 address";
	return NULL;
}

/* host [":" port] (HTTP): the host into name.  With need_port, the port
 * must be there (CONNECT's authority-form). */
static const char *hostport(const uint8_t *s, size_t n, bool need_port,
			    char name[254], bool *is_ip)
{
	size_t hl;
	const uint8_t *port;
	const char *why;
	if (n > 0 && s[0] == '[') {
		const uint8_t *e = memchr(s, ']', n);
		if (!e)
			return "'[' without ']'";
		hl = (size_t)(e - s) + 1;
		why = ipv6_check(s + 1, hl - 2, name);
		*is_ip = true;
		if (hl < n && s[hl] != ':')
			return "bytes after ']'";
	} else {
		const uint8_t *colon = memchr(s, ':', n);
		hl = colon ? (size_t)(colon - s) : n;
		why = name_check(s, hl, true, name, is_ip);
	}
	if (why)
		return why;
	if (hl == n)
		return need_port ? "no port" : NULL;
	port = s + hl + 1;
	size_t pl = n - hl - 1;
	if (pl == 0 || pl > 5)
		return "bad port";
	unsigned v = 0;
	for (size_t i = 0; i < pl; i++) {
		if (port[i] < '0' || port[i] > '9')
			return "bad port";
		v = v * 10 + (unsigned)(port[i] - '0');
	}
	return v > 65535 ? "bad port" : NULL;
}

/* --- TLS --------------------------------------------------------------- */

struct rd {
	const uint8_t *p;
	size_t n, off;
};

static bool rd_u8(struct rd *r, size_t *v)
{
	if (r->n - r->off < 1)
		return false;
	*v = r->p[r->off++];
	return true;
}

static bool rd_u16(struct rd *r, size_t *v)
{
	if (r->n - r->off < 2)
		return false;
	*v = (size_t)r->p[r->off] << 8 | r->p[r->off + 1];
	r->off += 2;
	return true;
}

static bool rd_skip(struct rd *r, size_t k)
{
	if (r->n - r->off < k)
		return false;
	r->off += k;
	return true;
}

static enum sniff_kind tls_sni(struct ctx *c, const uint8_t *p, size_t n)
{
	struct rd r = {p, n, 0};
	size_t list, type, hl;
	if (!rd_u16(&r, &list) || list != n - 2)
		return bad(c, "TLS server_name: list length %s",
			   n < 2 ? "missing" : "does not match");
	if (list == 0)
		return bad(c, "TLS server_name: empty list");
	if (!rd_u8(&r, &type) || type != TLS_SNI_HOST_NAME)
		return bad(c, "TLS server_name: first entry not a host_name");
	if (!rd_u16(&r, &hl) || hl > r.n - r.off)
		return bad(c, "TLS server_name: host_name length overruns");
	const uint8_t *name = p + r.off;
	r.off += hl;
	if (r.off != r.n) {
		size_t t2 = 0;
		(void)rd_u8(&r, &t2);
		return bad(c, "TLS server_name: %s",
			   t2 == TLS_SNI_HOST_NAME ? "two host_names"
						   : "more than one entry");
	}
	bool ip = false;
	const char *why = name_check(name, hl, false, c->out->name, &ip);
	if (why)
		return bad(c, "TLS server_name: %s", why);
	c->out->has_name = true;
	return SNIFF_TLS;
}

/* The ClientHello's body (after its 4-byte header). */
static enum sniff_kind tls_hello(struct ctx *c, const uint8_t *m, size_t n)
{
	struct rd r = {m, n, 0};
	size_t v, k;
	if (!rd_u16(&r, &v))
		return bad(c, "TLS ClientHello: truncated legacy_version");
	if (v < 0x0301 || v > 0x0304)
		return bad(c, "TLS ClientHello: version 0x%04zx", v);
	if (!rd_skip(&r, 32))
		return bad(c, "TLS ClientHello: truncated random");
	if (!rd_u8(&r, &k) || k > TLS_SESSION_ID_MAX || !rd_skip(&r, k))
		return bad(c, "TLS ClientHello: bad session_id length");
	if (!rd_u16(&r, &k) || k == 0 || k % 2 || !rd_skip(&r, k))
		return bad(c, "TLS ClientHello: bad cipher_suites length");
	if (!rd_u8(&r, &k) || k == 0 || !rd_skip(&r, k))
		return bad(c,
			   "TLS ClientHello: bad compression_methods length");
	memset(c->out, 0, sizeof(*c->out));
	c->out->kind = SNIFF_TLS;
	if (r.off == r.n)
		return SNIFF_TLS; /* no extensions */
	if (!rd_u16(&r, &k) || k != r.n - r.off)
		return bad(c, "TLS ClientHello: extensions length does not "
			      "match");
	bool sni = false, ech = false;
	while (r.off < r.n) {
		size_t type, el;
		if (!rd_u16(&r, &type) || !rd_u16(&r, &el) || el > r.n - r.off)
			return bad(c, "TLS ClientHello: extension overruns");
		const uint8_t *ed = m + r.off;
		r.off += el;
		if (type == TLS_EXT_SERVER_NAME) {
			if (sni)
				return bad(c,
					   "TLS ClientHello: two server_name "
					   "extensions");
			sni = true;
			if (tls_sni(c, ed, el) != SNIFF_TLS)
				return SNIFF_OTHER;
		} else if (type == TLS_EXT_ECH) {
			if (ech)
				return bad(c, "TLS ClientHello: two "
					      "encrypted_client_hello "
					      "extensions");
			ech = true;
			c->out->ech = true;
		}
	}
	return SNIFF_TLS;
}

/*
 * Handshake records from the start: their bodies are the handshake
 * stream, whose first message must be a ClientHello ending at a record
 * boundary.  The record bodies are copied together (16 KiB of stack).
 */
static enum sniff_kind tls(struct ctx *c)
{
	const uint8_t *b = c->b;
	uint8_t msg[SNIFF_MAX];
	size_t pos = 0, have = 0, total = 0; /* total: 4 + length, 0 unknown */
	for (;;) {
		if (c->len - pos < 5)
			return need(c, "TLS ClientHello");
		const uint8_t *h = b + pos;
		size_t ver = (size_t)h[1] << 8 | h[2];
		size_t rl = (size_t)h[3] << 8 | h[4];
		if (h[0] != TLS_HANDSHAKE)
			return bad(c,
				   "TLS record type %u before the ClientHello "
				   "ended",
				   h[0]);
		if (ver < 0x0301 || ver > 0x0304)
			return bad(c, "TLS record version 0x%04zx", ver);
		if (rl == 0 || rl > TLS_RECORD_MAX)
			return bad(c, "TLS record length %zu", rl);
		size_t avail = c->len - pos - 5;
		if (avail > rl)
			avail = rl;
		memcpy(msg + have, h + 5, avail); /* have + avail <= len */
		if (total == 0 && have + avail >= 4) {
			if (msg[0] != TLS_CLIENT_HELLO)
				return bad(c,
					   "TLS handshake type %u, not a "
					   "ClientHello",
					   msg[0]);
			total = 4 + ((size_t)msg[1] << 16 |
				     (size_t)msg[2] << 8 | msg[3]);
			if (total + 5 > SNIFF_MAX)
				return bad(c, "TLS ClientHello of %zu bytes",
					   total);
		}
		if (total && have + rl > total)
			return bad(c, "TLS ClientHello does not end at a "
				      "record boundary");
		if (avail < rl) {
			have += avail;
			return need(c, "TLS ClientHello");
		}
		have += rl;
		pos += 5 + rl;
		if (total && have == total)
			return tls_hello(c, msg + 4, total - 4);
	}
}

/* An SSLv2-format ClientHello: a 2-byte header with the high bit set,
 * message type 1, version 0x0002 or 0x03xx. */
static enum sniff_kind sslv2(struct ctx *c)
{
	const uint8_t *b = c->b;
	if (c->len < 3 || (b[2] == 1 && c->len < 5))
		return c->no_more ? other(c) : more(c);
	if (b[2] == 1 && ((b[3] == 0 && b[4] == 2) || (b[3] == 3 && b[4] <= 4)))
		return bad(c, "TLS ClientHello in SSLv2 format");
	return other(c);
}

/* --- HTTP -------------------------------------------------------------- */

static bool tchar(uint8_t ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool known_method(const uint8_t *m, size_t n)
{
	static const char *const known[] = {
	    "GET",	"HEAD",	     "POST",   "PUT",	"DELETE",
	    "CONNECT",	"OPTIONS",   "TRACE",  "PATCH", "PRI",
	    "PROPFIND", "PROPPATCH", "MKCOL",  "COPY",	"MOVE",
	    "LOCK",	"UNLOCK",    "SEARCH", "QUERY",
	};
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strlen(known[i]) == n &&
		    strncasecmp(known[i], (const char *)m, n) == 0)
			return true;
	return false;
}

/* Before the line is sure to be HTTP: a known method makes a deviation
 * malformed, else it is some other protocol. */
static enum sniff_kind soft(struct ctx *c, bool known, const char *why)
{
	return known ? bad(c, "HTTP %s", why) : other(c);
}

static enum sniff_kind soft_need(struct ctx *c, bool known)
{
	if (!c->no_more)
		return more(c);
	return soft(c, known,
		    c->len >= SNIFF_MAX ? "request line too long"
					: "request line incomplete");
}

enum target_form { T_ORIGIN, T_ASTERISK, T_AUTHORITY, T_ABSOLUTE };

/* The request target's form, and for authority and absolute forms its
 * host into name. */
static const char *target_check(const uint8_t *m, size_t ml, const uint8_t *t,
				size_t tl, enum target_form *form,
				char name[254], bool *is_ip)
{
	if (memchr(t, '#', tl))
		return "'#' in the request target";
	if (ml == 7 && memcmp(m, "CONNECT", 7) == 0) {
		*form = T_AUTHORITY;
		if (memchr(t, '@', tl))
			return "userinfo in the request target";
		return hostport(t, tl, true, name, is_ip);
	}
	if (t[0] == '/') {
		*form = T_ORIGIN;
		return NULL;
	}
	if (tl == 1 && t[0] == '*') {
		*form = T_ASTERISK;
		return ml == 7 && memcmp(m, "OPTIONS", 7) == 0
			   ? NULL
			   : "'*' target without OPTIONS";
	}
	size_t sl;
	if (tl > 7 && strncasecmp((const char *)t, "http://", 7) == 0)
		sl = 7;
	else if (tl > 8 && strncasecmp((const char *)t, "https://", 8) == 0)
		sl = 8;
	else
		return "request target not origin-form or an http(s) URL";
	*form = T_ABSOLUTE;
	const uint8_t *a = t + sl;
	size_t al = 0;
	while (al < tl - sl && a[al] != '/' && a[al] != '?')
		al++;
	if (memchr(a, '@', al))
		return "userinfo in the request target";
	return hostport(a, al, false, name, is_ip);
}

/* One header field line at b[p..]: *next is where the next line starts.
 * MORE (out of bytes), OTHER (malformed, done) or HTTP (read). */
static enum sniff_kind header_line(struct ctx *c, size_t p, size_t *next,
				   size_t *vs, size_t *ve, bool *is_host)
{
	const uint8_t *b = c->b;
	size_t q = p;
	while (q < c->len && tchar(b[q]))
		q++;
	if (q == c->len)
		return need(c, "HTTP request head");
	if (b[q] != ':')
		return bad(c, "HTTP %s",
			   b[q] == ' ' || b[q] == '\t'
			       ? "whitespace before a header's colon"
			       : "bad header name");
	if (q == p)
		return bad(c, "HTTP empty header name");
	*is_host =
	    q - p == 4 && strncasecmp((const char *)b + p, "host", 4) == 0;
	size_t r = q + 1;
	while (r < c->len && (b[r] == ' ' || b[r] == '\t'))
		r++;
	*vs = r;
	for (; r < c->len && b[r] != '\r'; r++) {
		uint8_t ch = b[r];
		if (ch == '\n')
			return bad(c, "HTTP bare LF in a header line");
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return bad(c,
				   "HTTP control character in a header value");
	}
	if (c->len - r < 2)
		return need(c, "HTTP request head");
	if (b[r + 1] != '\n')
		return bad(c, "HTTP CR without LF");
	size_t e = r;
	while (e > *vs && (b[e - 1] == ' ' || b[e - 1] == '\t'))
		e--;
	*ve = e;
	*next = r + 2;
	return SNIFF_HTTP;
}

/* The request line at b[start..] (after start bytes of CR and LF). */
static enum sniff_kind http(struct ctx *c, size_t start)
{
	const uint8_t *b = c->b;
	size_t len = c->len;
	bool blank = start > 0;
	size_t i = start;
	for (;;) {
		if (i == len)
			return soft_need(c, false);
		if (b[i] == ' ')
			break;
		if (!tchar(b[i]) || i - start == HTTP_METHOD_MAX)
			return other(c);
		i++;
	}
	if (i == start)
		return other(c);
	const uint8_t *m = b + start;
	size_t ml = i - start;
	bool known = known_method(m, ml);
	if (blank && known)
		return bad(c, "HTTP empty line before the request line");
	size_t t = i + 1, j = t;
	for (;;) {
		if (j == len)
			return soft_need(c, known);
		if (b[j] == ' ')
			break;
		if (b[j] == '\r' || b[j] == '\n')
			return soft(c, known, "request line without HTTP/");
		if (b[j] < 0x21 || b[j] > 0x7e)
			return soft(c, known, "bad byte in the request target");
		j++;
	}
	if (j == t)
		return soft(c, known, "empty request target");
	size_t k = j + 1;
	for (size_t x = 0; x < 5; x++) {
		if (k + x == len)
			return soft_need(c, known);
		if (b[k + x] != (uint8_t) "HTTP/"[x])
			return soft(c, known, "request line without HTTP/");
	}
	/* From here on it is HTTP for sure. */
	if (blank)
		return bad(c, "HTTP empty line before the request line");
	k += 5;
	if (len - k < 5)
		return need(c, "HTTP request head");
	if (b[k] != '1' || b[k + 1] != '.' ||
	    (b[k + 2] != '0' && b[k + 2] != '1'))
		return bad(c, "HTTP version not 1.0 or 1.1");
	int minor = b[k + 2] - '0';
	if (b[k + 3] != '\r' || b[k + 4] != '\n')
		return bad(c, "HTTP request line not ended by CRLF");
	enum target_form form = T_ORIGIN;
	char tname[254] = "";
	bool tip = false;
	const char *why = target_check(m, ml, b + t, j - t, &form, tname, &tip);
	if (why)
		return bad(c, "HTTP %s", why);
	size_t p = k + 5;
	int hosts = 0;
	char hname[254] = "";
	bool hip = false, hempty = false;
	for (;;) {
		if (p == len)
			return need(c, "HTTP request head");
		if (b[p] == '\r') {
			if (p + 1 == len)
				return need(c, "HTTP request head");
			if (b[p + 1] != '\n')
				return bad(c, "HTTP CR without LF");
			break;
		}
		if (b[p] == '\n')
			return bad(c, "HTTP bare LF");
		if (b[p] == ' ' || b[p] == '\t')
			return bad(c, "HTTP obs-fold (a line starting with "
				      "whitespace)");
		size_t vs = 0, ve = 0, next = 0;
		bool is_host = false;
		enum sniff_kind st =
		    header_line(c, p, &next, &vs, &ve, &is_host);
		if (st != SNIFF_HTTP)
			return st;
		if (is_host) {
			if (++hosts > 1)
				return bad(c, "HTTP two Host headers");
			hempty = ve == vs;
			why = hempty ? NULL
				     : hostport(b + vs, ve - vs, false, hname,
						&hip);
			if (why)
				return bad(c, "HTTP Host: %s", why);
		}
		p = next;
	}
	if (hosts == 0 && minor == 1 && form != T_AUTHORITY)
		return bad(c, "HTTP/1.1 request without Host");
	struct sniff *o = c->out;
	memset(o, 0, sizeof(*o));
	o->kind = SNIFF_HTTP;
	if (form == T_AUTHORITY || form == T_ABSOLUTE) {
		if (hosts && (hempty || strcmp(hname, tname) != 0))
			return bad(c, "HTTP Host does not match the request "
				      "target");
		memcpy(o->name, tname, sizeof(o->name));
		o->is_ip = tip;
		o->has_name = true;
	} else if (hosts && !hempty) {
		memcpy(o->name, hname, sizeof(o->name));
		o->is_ip = hip;
		o->has_name = true;
	}
	return SNIFF_HTTP;
}

/* --- entry points ------------------------------------------------------ */

static enum sniff_kind sniff(const uint8_t *buf, size_t len, bool final,
			     struct sniff *out)
{
	struct ctx c = {
	    .b = buf,
	    .len = len < SNIFF_MAX ? len : SNIFF_MAX,
	    .no_more = final || len >= SNIFF_MAX,
	    .out = out,
	};
	if (c.len == 0)
		return c.no_more ? other(&c) : more(&c);
	uint8_t b0 = buf[0];
	if (b0 == TLS_HANDSHAKE)
		return tls(&c);
	if (b0 & 0x80)
		return sslv2(&c);
	if (b0 == '\r' || b0 == '\n') {
		size_t s = 0;
		while (s < c.len && (buf[s] == '\r' || buf[s] == '\n'))
			s++;
		if (s == c.len)
			return c.no_more ? other(&c) : more(&c);
		return http(&c, s);
	}
	if (tchar(b0))
		return http(&c, 0);
	return other(&c);
}

enum sniff_kind sniff_stream(const uint8_t *buf, size_t len, struct sniff *out)
{
	return sniff(buf, len, false, out);
}

enum sniff_kind sniff_final(const uint8_t *buf, size_t len, struct sniff *out)
{
	return sniff(buf, len, true, out);
}
