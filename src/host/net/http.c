/* The API proxy's HTTP/1.1 request parser: see http.h. */
#include "net/http.h"

#include <string.h>

/* tchar (RFC 9110 5.6.2). */
static bool is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z'))
		return true;
	switch (c) {
	case '!':
	case '#':
	case '$':
	case '%':
	case '&':
	case '\'':
	case '*':
	case '+':
	case '-':
	case '.':
	case '^':
	case '_':
	case '`':
	case '|':
	case '~':
		return true;
	default:
		return false;
	}
}

/* A field value's byte: VCHAR, SP, HTAB or obs-text. */
static bool is_value_char(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

static unsigned char ascii_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c - 'A' + 'a') : c;
}

/* s[0..n) equals lit, ASCII case-insensitive. */
static bool eq_ci(const char *s, size_t n, const char *lit)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (lit[i] == '\0' || ascii_lower((unsigned char)s[i]) !=
					  ascii_lower((unsigned char)lit[i]))
			return false;
	return lit[i] == '\0';
}

static int hex_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* The parse under way: the request and what its fields said so far. */
struct parse {
	struct http_request r;
	unsigned hosts, lengths, encodings;
	bool close, keep_alive, expect;
	int status;
	const char *why;
};

static int refuse(struct parse *p, int status, const char *why)
{
	p->status = status;
	p->why = why;
	return -1;
}

/* origin-form, or what the target is instead. */
static int check_target(struct parse *p, const char *t, size_t n)
{
	if (t[0] == '/') {
		for (size_t i = 0; i < n; i++) {
			unsigned char c = (unsigned char)t[i];
			if (c < 0x21 || c > 0x7e || c == '#')
				return refuse(p, 400,
					      "request target has a byte "
					      "outside 0x21-0x7e or a '#'");
		}
		return 0;
	}
	if (n == 1 && t[0] == '*')
		return refuse(p, 400,
			      "asterisk-form request target refused: this "
			      "proxy forwards only to its own upstream");
	/* scheme ":" (RFC 3986 3.1): absolute-form. */
	size_t i = 0;
	if ((t[0] >= 'a' && t[0] <= 'z') || (t[0] >= 'A' && t[0] <= 'Z')) {
		for (i = 1; i < n; i++) {
			unsigned char c = (unsigned char)t[i];
			if (!((c >= 'a' && c <= 'z') ||
			      (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '+' || c == '-' ||
			      c == '.'))
				break;
		}
		if (i < n && t[i] == ':' && i + 2 < n && t[i + 1] == '/' &&
		    t[i + 2] == '/')
			return refuse(p, 400,
				      "absolute-form request target refused: "
				      "this proxy forwards only to its own "
				      "upstream");
	}
	if (memchr(t, '/', n) == NULL)
		return refuse(p, 400,
			      "authority-form request target refused: this "
			      "proxy forwards only to its own upstream");
	return refuse(p, 400,
		      "request target is not origin-form (a path starting "
		      "with '/')");
}

/* "HTTP/1.1" or "HTTP/1.0": the minor version; else refused. */
static int check_version(struct parse *p, const char *v, size_t n)
{
	if (n == 8 && memcmp(v, "HTTP/1.", 7) == 0 &&
	    (v[7] == '1' || v[7] == '0'))
		return v[7] - '0';
	/* HTTP-version syntax, another version (HTTP/2.0: the preface). */
	if (n == 8 && memcmp(v, "HTTP/", 5) == 0 && v[5] >= '0' &&
	    v[5] <= '9' && v[6] == '.' && v[7] >= '0' && v[7] <= '9')
		return refuse(p, 505,
			      "HTTP version not supported: only HTTP/1.1 and "
			      "HTTP/1.0");
	return refuse(p, 400, "malformed HTTP version in the request line");
}

/* METHOD SP request-target SP HTTP-version, line without its CRLF. */
static int parse_request_line(struct parse *p, const char *s, size_t n)
{
	if (n == 0)
		return refuse(p, 400, "blank line before the request line");
	const char *sp1 = memchr(s, ' ', n);
	const char *sp2 =
	    sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - s)) : NULL;
	if (!sp1 || !sp2 || sp1 == s || sp2 == sp1 + 1 || sp2 + 1 == s + n ||
	    memchr(sp2 + 1, ' ', n - (size_t)(sp2 + 1 - s)))
		return refuse(p, 400,
			      "request line is not METHOD SP request-target "
			      "SP HTTP-version (single spaces)");
	size_t mlen = (size_t)(sp1 - s);
	for (size_t i = 0; i < mlen; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!is_tchar(c) || (c >= 'a' && c <= 'z'))
			return refuse(p, 400,
				      "method is not an uppercase token");
	}
	if (mlen >= sizeof(p->r.method))
		return refuse(p, 501,
			      "method longer than 15 characters not "
			      "implemented");
	int minor = check_version(p, sp2 + 1, n - (size_t)(sp2 + 1 - s));
	if (minor < 0)
		return -1;
	if (mlen == 7 && memcmp(s, "CONNECT", 7) == 0)
		return refuse(p, 405,
			      "CONNECT refused: this proxy forwards only to "
			      "its own upstream");
	const char *t = sp1 + 1;
	size_t tlen = (size_t)(sp2 - t);
	if (check_target(p, t, tlen) < 0)
		return -1;
	memcpy(p->r.method, s, mlen);
	p->r.method[mlen] = '\0';
	p->r.target = t;
	p->r.target_len = tlen;
	p->r.minor = minor;
	return 0;
}

/* host [":" port]: a reg-name of letters, digits, "-._~", or an IP
 * literal in brackets; a port of 1-5 digits up to 65535. */
static bool valid_host(const char *s, size_t n)
{
	size_t i = 0;
	if (n > 0 && s[0] == '[') {
		for (i = 1; i < n && s[i] != ']'; i++)
			if (hex_digit((unsigned char)s[i]) < 0 && s[i] != ':' &&
			    s[i] != '.')
				return false;
		if (i == n || i == 1)
			return false;
		i++;
	} else {
		for (; i < n && s[i] != ':'; i++) {
			unsigned char c = (unsigned char)s[i];
			if (!((c >= 'a' && c <= 'z') ||
			      (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '-' || c == '.' ||
			      c == '_' || c == '~'))
				return false;
		}
		if (i == 0)
			return false;
	}
	if (i == n)
		return true;
	if (s[i] != ':' || n - i - 1 < 1 || n - i - 1 > 5)
		return false;
	unsigned long port = 0;
	for (i++; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		port = port * 10 + (unsigned long)(s[i] - '0');
	}
	return port <= 65535;
}

static int parse_content_length(struct parse *p, const char *v, size_t n)
{
	if (++p->lengths > 1)
		return refuse(p, 400, "more than one Content-Length header");
	if (n == 0)
		return refuse(p, 400, "empty Content-Length");
	if (memchr(v, ',', n))
		return refuse(p, 400, "Content-Length list refused");
	uint64_t x = 0;
	bool overflow = false;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return refuse(p, 400,
				      "Content-Length is not a decimal "
				      "number");
		unsigned d = (unsigned)(v[i] - '0');
		if (x > (UINT64_MAX - d) / 10)
			overflow = true;
		else
			x = x * 10 + d;
	}
	if (overflow)
		return refuse(p, 400, "Content-Length overflows");
	if (x > HTTP_BODY_MAX)
		return refuse(p, 413,
			      "Content-Length above the 64 MiB request body "
			      "limit");
	p->r.length = x;
	return 0;
}

/* Connection: 1#token (empty elements allowed, RFC 9110 5.6.1). */
static int parse_connection(struct parse *p, const char *v, size_t n)
{
	size_t i = 0;
	while (i <= n) {
		size_t a = i;
		while (i < n && v[i] != ',')
			i++;
		size_t b = i;
		while (a < b && is_ows((unsigned char)v[a]))
			a++;
		while (b > a && is_ows((unsigned char)v[b - 1]))
			b--;
		for (size_t k = a; k < b; k++)
			if (!is_tchar((unsigned char)v[k]))
				return refuse(p, 400,
					      "Connection is not a list of "
					      "tokens");
		if (eq_ci(v + a, b - a, "close"))
			p->close = true;
		else if (eq_ci(v + a, b - a, "keep-alive"))
			p->keep_alive = true;
		i++;
	}
	return 0;
}

/* What the fields with a meaning for the parser say. */
static int field_semantics(struct parse *p, const struct http_header *h)
{
	const char *n = h->name, *v = h->value;
	size_t nl = h->name_len, vl = h->value_len;
	if (eq_ci(n, nl, "host")) {
		if (++p->hosts > 1)
			return refuse(p, 400, "more than one Host header");
		if (!valid_host(v, vl))
			return refuse(p, 400, "Host header is not host[:port]");
		p->r.host = h;
		return 0;
	}
	if (eq_ci(n, nl, "content-length"))
		return parse_content_length(p, v, vl);
	if (eq_ci(n, nl, "transfer-encoding")) {
		if (++p->encodings > 1)
			return refuse(p, 501,
				      "more than one Transfer-Encoding "
				      "header: only one chunked is "
				      "implemented");
		if (vl == 0)
			return refuse(p, 400, "empty Transfer-Encoding");
		if (!eq_ci(v, vl, "chunked"))
			return refuse(p, 501,
				      "Transfer-Encoding other than chunked "
				      "not implemented");
		return 0;
	}
	if (eq_ci(n, nl, "expect")) {
		if (!eq_ci(v, vl, "100-continue"))
			return refuse(p, 417, "Expect other than 100-continue");
		p->expect = true;
		return 0;
	}
	if (eq_ci(n, nl, "connection"))
		return parse_connection(p, v, vl);
	return 0;
}

/* field-name ":" OWS field-value OWS, line without its CRLF. */
static int parse_field_line(struct parse *p, const char *s, size_t n)
{
	if (is_ows((unsigned char)s[0]))
		return refuse(p, 400,
			      "obs-fold (a header line starting with "
			      "whitespace) refused");
	const char *colon = memchr(s, ':', n);
	if (!colon)
		return refuse(p, 400, "header line without a colon");
	size_t nl = (size_t)(colon - s);
	if (nl == 0)
		return refuse(p, 400, "empty header name");
	if (is_ows((unsigned char)s[nl - 1]))
		return refuse(p, 400,
			      "whitespace between a header name and its "
			      "colon refused");
	for (size_t i = 0; i < nl; i++)
		if (!is_tchar((unsigned char)s[i]))
			return refuse(p, 400, "header name is not a token");
	const char *v = colon + 1, *end = s + n;
	for (const char *q = v; q < end; q++)
		if (!is_value_char((unsigned char)*q))
			return refuse(p, 400,
				      "control character in a header value");
	while (v < end && is_ows((unsigned char)*v))
		v++;
	while (end > v && is_ows((unsigned char)end[-1]))
		end--;
	if (p->r.nh == HTTP_HEADERS_MAX)
		return refuse(p, 431, "more than 100 header fields");
	struct http_header *h = &p->r.h[p->r.nh++];
	*h = (struct http_header){.name = s,
				  .name_len = nl,
				  .value = v,
				  .value_len = (size_t)(end - v)};
	return field_semantics(p, h);
}

/* The checks across fields, once the head is complete. */
static int finish(struct parse *p)
{
	struct http_request *r = &p->r;
	if (r->minor == 1 && p->hosts == 0)
		return refuse(p, 400, "HTTP/1.1 request without a Host header");
	if (p->lengths && p->encodings)
		return refuse(p, 400,
			      "both Content-Length and Transfer-Encoding: "
			      "refused");
	if (p->encodings && r->minor == 0)
		return refuse(p, 400,
			      "Transfer-Encoding in an HTTP/1.0 request "
			      "refused");
	r->body = p->encodings ? HTTP_BODY_CHUNKED
		  : p->lengths ? HTTP_BODY_LENGTH
			       : HTTP_BODY_NONE;
	if (r->body != HTTP_BODY_LENGTH)
		r->length = 0;
	r->keep_alive = !p->close && (r->minor == 1 || p->keep_alive);
	/* A server ignores 100-continue from HTTP/1.0 (RFC 9110 10.1.1). */
	r->expect_continue = p->expect && r->minor == 1;
	return 0;
}

/* Judges the complete lines of buf[0..len): >0 head length, 0 more. */
static int parse_head(struct parse *p, const char *buf, size_t len)
{
	size_t win = len < HTTP_HEAD_MAX ? len : HTTP_HEAD_MAX;
	size_t pos = 0;
	bool first = true;
	for (;;) {
		const char *lf =
		    pos < win ? memchr(buf + pos, '\n', win - pos) : NULL;
		if (!lf) {
			if (len >= HTTP_HEAD_MAX)
				return refuse(p, 431,
					      "request head larger than "
					      "32768 bytes");
			return 0;
		}
		size_t end = (size_t)(lf - buf);
		if (end == pos || buf[end - 1] != '\r')
			return refuse(p, 400,
				      "bare LF (a line ending without CR) "
				      "refused");
		const char *s = buf + pos;
		size_t n = end - 1 - pos;
		if (memchr(s, '\r', n))
			return refuse(p, 400, "CR not followed by LF");
		pos = end + 1;
		if (first) {
			if (parse_request_line(p, s, n) < 0)
				return -1;
			first = false;
		} else if (n == 0) {
			if (finish(p) < 0)
				return -1;
			return (int)pos;
		} else if (parse_field_line(p, s, n) < 0) {
			return -1;
		}
	}
}

int http_request_parse(const char *buf, size_t len, struct http_request *r,
		       int *status, const char **why)
{
	struct parse p;
	memset(&p, 0, sizeof(p));
	int rc = parse_head(&p, buf, len);
	if (rc < 0) {
		*status = p.status;
		*why = p.why;
		return -1;
	}
	if (rc > 0) {
		*r = p.r;
		if (p.r.host)
			r->host = r->h + (p.r.host - p.r.h);
	}
	return rc;
}

const struct http_header *http_header_get(const struct http_request *r,
					  const char *name)
{
	for (size_t i = 0; i < r->nh; i++)
		if (eq_ci(r->h[i].name, r->h[i].name_len, name))
			return &r->h[i];
	return NULL;
}

/* name is one of the tokens of the request's Connection headers. */
static bool named_by_connection(const struct http_request *r, const char *name,
				size_t name_len)
{
	for (size_t i = 0; i < r->nh; i++) {
		const struct http_header *h = &r->h[i];
		if (!eq_ci(h->name, h->name_len, "connection"))
			continue;
		const char *v = h->value;
		size_t n = h->value_len, k = 0;
		while (k <= n) {
			size_t a = k;
			while (k < n && v[k] != ',')
				k++;
			size_t b = k;
			while (a < b && is_ows((unsigned char)v[a]))
				a++;
			while (b > a && is_ows((unsigned char)v[b - 1]))
				b--;
			if (b - a == name_len && b > a) {
				size_t j = 0;
				while (j < name_len &&
				       ascii_lower((unsigned char)v[a + j]) ==
					   ascii_lower((unsigned char)name[j]))
					j++;
				if (j == name_len)
					return true;
			}
			k++;
		}
	}
	return false;
}

bool http_hop_by_hop(const struct http_request *r, const char *name,
		     size_t name_len)
{
	static const char *const fixed[] = {
	    "connection", "keep-alive",	       "te",
	    "trailer",	  "transfer-encoding", "upgrade"};
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		if (eq_ci(name, name_len, fixed[i]))
			return true;
	if (name_len >= 6 && eq_ci(name, 6, "proxy-"))
		return true;
	return r && named_by_connection(r, name, name_len);
}

/* The chunked decoder's states (RFC 9112 7.1). */
enum {
	CH_SIZE,       /* chunk-size digits */
	CH_EXT_START,  /* after ';': a chunk-ext-name */
	CH_EXT_NAME,   /* in the name */
	CH_EXT_VAL,    /* after '=': a token or quoted-string */
	CH_EXT_TOKEN,  /* in a token value */
	CH_EXT_QUOTED, /* in a quoted-string */
	CH_EXT_QESC,   /* after a backslash in it */
	CH_EXT_QEND,   /* after its closing quote */
	CH_SIZE_LF,    /* the chunk line's CR seen */
	CH_DATA,       /* chunk data, left bytes to go */
	CH_DATA_CR,    /* the CRLF after the data */
	CH_DATA_LF,
	CH_TR_START, /* a trailer line or the final CRLF */
	CH_TR_NAME,  /* in a trailer field's name */
	CH_TR_VALUE, /* in its value */
	CH_TR_LF,    /* its CR seen */
	CH_END_LF,   /* the final CR seen */
	CH_DONE,
	CH_FAILED,
};

void http_chunked_init(struct http_chunked *c)
{
	*c = (struct http_chunked){.state = CH_SIZE};
}

static int chunk_fail(struct http_chunked *c, const char *why)
{
	c->state = CH_FAILED;
	c->error = why;
	return -1;
}

/* The chunk line: chunk-size [ chunk-ext ] CRLF. */
static int chunk_line_byte(struct http_chunked *c, unsigned char ch)
{
	if (ch != '\r' && ++c->line > HTTP_CHUNK_LINE_MAX)
		return chunk_fail(c, "chunk line longer than 4096 bytes");
	if (ch == '\n')
		return chunk_fail(c, "bare LF in a chunk line");
	switch (c->state) {
	case CH_SIZE: {
		int d = hex_digit(ch);
		if (d >= 0) {
			if (c->line > 16)
				return chunk_fail(c, "chunk size longer than "
						     "16 hex digits");
			c->left = c->left * 16 + (unsigned)d;
			if (c->left > HTTP_BODY_MAX - c->total)
				return chunk_fail(c, "chunked body above the "
						     "64 MiB request body "
						     "limit");
			return 0;
		}
		if (ch != ';' && ch != '\r')
			return chunk_fail(c, "chunk size is not hex digits");
		if (c->line == (ch == '\r' ? 0U : 1U))
			return chunk_fail(c, "empty chunk size");
		c->state = ch == ';' ? CH_EXT_START : CH_SIZE_LF;
		return 0;
	}
	case CH_EXT_START:
		if (!is_tchar(ch))
			return chunk_fail(c, "malformed chunk extension");
		c->state = CH_EXT_NAME;
		return 0;
	case CH_EXT_NAME:
	case CH_EXT_TOKEN:
		if (is_tchar(ch))
			return 0;
		if (ch == '=' && c->state == CH_EXT_NAME)
			c->state = CH_EXT_VAL;
		else if (ch == ';')
			c->state = CH_EXT_START;
		else if (ch == '\r')
			c->state = CH_SIZE_LF;
		else
			return chunk_fail(c, "malformed chunk extension");
		return 0;
	case CH_EXT_VAL:
		if (ch == '"')
			c->state = CH_EXT_QUOTED;
		else if (is_tchar(ch))
			c->state = CH_EXT_TOKEN;
		else
			return chunk_fail(c, "malformed chunk extension");
		return 0;
	case CH_EXT_QUOTED:
		if (ch == '"')
			c->state = CH_EXT_QEND;
		else if (ch == '\\')
			c->state = CH_EXT_QESC;
		else if (!is_value_char(ch))
			return chunk_fail(c, "malformed chunk extension");
		return 0;
	case CH_EXT_QESC:
		if (!is_value_char(ch))
			return chunk_fail(c, "malformed chunk extension");
		c->state = CH_EXT_QUOTED;
		return 0;
	default: /* CH_EXT_QEND */
		if (ch == ';')
			c->state = CH_EXT_START;
		else if (ch == '\r')
			c->state = CH_SIZE_LF;
		else
			return chunk_fail(c, "malformed chunk extension");
		return 0;
	}
}

/* The trailer section: field lines as in a head, then CRLF. */
static int trailer_byte(struct http_chunked *c, unsigned char ch)
{
	if (++c->left > HTTP_HEAD_MAX)
		return chunk_fail(c, "trailer section larger than 32768 bytes");
	switch (c->state) {
	case CH_TR_START:
		if (ch == '\r') {
			c->state = CH_END_LF;
		} else if (is_ows(ch)) {
			return chunk_fail(c, "obs-fold in the trailer section "
					     "refused");
		} else if (is_tchar(ch)) {
			if (++c->fields > HTTP_HEADERS_MAX)
				return chunk_fail(c, "more than 100 trailer "
						     "fields");
			c->state = CH_TR_NAME;
		} else {
			return chunk_fail(c, ch == '\n'
						 ? "bare LF in the trailer "
						   "section"
						 : "trailer name is not a "
						   "token");
		}
		return 0;
	case CH_TR_NAME:
		if (ch == ':')
			c->state = CH_TR_VALUE;
		else if (is_ows(ch))
			return chunk_fail(c, "whitespace between a trailer "
					     "name and its colon refused");
		else if (!is_tchar(ch))
			return chunk_fail(c, "trailer name is not a token");
		return 0;
	case CH_TR_VALUE:
		if (ch == '\r')
			c->state = CH_TR_LF;
		else if (ch == '\n')
			return chunk_fail(c, "bare LF in the trailer section");
		else if (!is_value_char(ch))
			return chunk_fail(c, "control character in a trailer "
					     "value");
		return 0;
	case CH_TR_LF:
		if (ch != '\n')
			return chunk_fail(c, "CR not followed by LF in the "
					     "trailer section");
		c->state = CH_TR_START;
		return 0;
	default: /* CH_END_LF */
		if (ch != '\n')
			return chunk_fail(c, "CR not followed by LF after the "
					     "trailer section");
		c->state = CH_DONE;
		return 0;
	}
}

/* One byte outside chunk data. */
static int chunk_byte(struct http_chunked *c, unsigned char ch)
{
	switch (c->state) {
	case CH_SIZE_LF:
		if (ch != '\n')
			return chunk_fail(c, "CR not followed by LF in a "
					     "chunk line");
		c->line = 0;
		c->total += c->left;
		if (c->left == 0) {
			c->state = CH_TR_START;
			c->left = 0;
		} else {
			c->state = CH_DATA;
		}
		return 0;
	case CH_DATA_CR:
		if (ch != '\r')
			return chunk_fail(c, "chunk data not followed by CRLF");
		c->state = CH_DATA_LF;
		return 0;
	case CH_DATA_LF:
		if (ch != '\n')
			return chunk_fail(c, "chunk data not followed by CRLF");
		c->state = CH_SIZE;
		c->left = 0;
		return 0;
	case CH_TR_START:
	case CH_TR_NAME:
	case CH_TR_VALUE:
	case CH_TR_LF:
	case CH_END_LF:
		return trailer_byte(c, ch);
	default:
		return chunk_line_byte(c, ch);
	}
}

int http_chunked_decode(struct http_chunked *c, const char *in, size_t n,
			size_t *used, char *out, size_t outsz, size_t *produced,
			const char **why)
{
	size_t i = 0, o = 0;
	int rc = 0;
	if (c->state == CH_FAILED) {
		rc = -1;
	} else {
		while (c->state != CH_DONE && i < n) {
			if (c->state != CH_DATA) {
				if (chunk_byte(c, (unsigned char)in[i]) < 0) {
					rc = -1;
					break;
				}
				i++;
				continue;
			}
			size_t k = n - i;
			if (k > c->left)
				k = (size_t)c->left;
			if (k > outsz - o)
				k = outsz - o;
			if (k == 0)
				break; /* the output is full */
			memcpy(out + o, in + i, k);
			i += k;
			o += k;
			c->left -= k;
			if (c->left == 0)
				c->state = CH_DATA_CR;
		}
		if (c->state == CH_DONE)
			rc = 1;
	}
	*used = i;
	*produced = o;
	if (rc < 0)
		*why = c->error;
	return rc;
}
