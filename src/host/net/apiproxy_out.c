#define _GNU_SOURCE
/*
 * What the API proxy writes to the guest (apiproxy_int.h): its own
 * answers (API-shaped errors) and the upstream's responses, relayed as
 * they arrive, head and each piece in one write.
 */
#include "net/apiproxy_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "util.h"

/* ---- writing to the guest -------------------------------------------- */

/*
 * Pieces to the guest in one sendmsg where they fit: each write here is
 * a frame on the port and a wakeup of the guest, which under TCG costs
 * about a millisecond.  sendmsg, not write: a guest that went away is an
 * error here, never a SIGPIPE for the relay's whole process.
 */
bool apiproxy_putv(struct conn *c, struct iovec *iov, int n)
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

bool apiproxy_put(struct conn *c, const void *d, size_t n)
{
	struct iovec v = {.iov_base = (void *)d, .iov_len = n};
	return apiproxy_putv(c, &v, 1);
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
void apiproxy_answer_error(struct conn *c, int status, const char *type,
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
	if (apiproxy_put(c, head, (size_t)hl) &&
	    strcmp(c->req.method, "HEAD") != 0)
		apiproxy_put(c, b, strlen(b));
	free(body);
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

size_t apiproxy_on_header(char *b, size_t size, size_t n, void *ud)
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

bool apiproxy_send_head(struct conn *c)
{
	struct iovec iov[5];
	char line[128];
	int n = head_iov(c, iov, line);
	return n == 0 || apiproxy_putv(c, iov, n);
}

size_t apiproxy_on_data(char *b, size_t size, size_t n, void *ud)
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
	if (!apiproxy_putv(c, iov, k))
		return 0;
	pthread_mutex_lock(&c->p->mu);
	c->p->bytes += len;
	pthread_mutex_unlock(&c->p->mu);
	return len;
}
