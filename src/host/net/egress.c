#define _GNU_SOURCE
/*
 * The host end of ccvm.net (see egress.h and docs/egress.md).  Everything
 * that arrives on the port is hostile input: frames are bounded by the
 * reader, NET_OPEN payloads are decoded strictly, each stream may hold at
 * most the window it was granted, and every connection and every lookup is
 * the policy's decision.
 */
#include "net/egress.h"
#include "net/egress_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dns.h"
#include "net/apiproxy.h"
#include "net/audit.h"
#include "net/sniff.h"
#include "proto.h"
#include "net/route.h"
#include "stream.h"
#include "sys/spawn.h"
#include "util.h"

struct hchan {
	struct stream st; /* the socket <-> the guest */
	bool connecting;
	bool ok_pending; /* connected, NET_OPEN_OK not sent yet */
	long long deadline;
	uint16_t port;
	/* host.ccvm.internal: the host's other loopback address, tried when
	 * the first refuses (a service may listen on 127.0.0.1 or ::1 only,
	 * whichever address family the guest happened to pick). */
	bool has_alt;
	struct dns_addr alt;
	char dst[64]; /* "1.2.3.4:80" for messages */
	/* For the audit log (audit.h): when it opened, what it reached and
	 * why it was let through (or why it failed). */
	long long t0_wall, t0;
	struct dns_addr addr;
	char dest[DNS_NAME_MAX + 1];
	char why[256];
	bool refused; /* by its first bytes (sniffing) */
	/* Refused at the open: its first bytes wait only to tell a plaintext
	 * HTTP request (answered 403 with the reason) from the rest (reset). */
	bool deny;
	/* Allowlist mode, allowed by a name: no socket until the first bytes
	 * name an allowed server (or show another protocol). */
	bool sniffing;
	struct dns_addr target;
	char sni[254], host[254];
};

void egress_put(struct eg *e, uint8_t type, uint16_t chan, const void *d,
		size_t n)
{
	if (proto_writer_put(&e->wr, type, chan, d, n) < 0)
		e->failed = true;
}

static void put_u8_text(struct eg *e, uint8_t type, uint16_t chan, uint8_t b,
			const char *text)
{
	uint8_t buf[300];
	size_t n = strlen(text);
	if (n > sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	buf[0] = b;
	memcpy(buf + 1, text, n);
	egress_put(e, type, chan, buf, n + 1);
}

static long long wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A connection's line in the audit log, when it ends. */
static void audit_stream(struct eg *e, const struct hchan *c)
{
	if (!e->audit)
		return;
	struct audit_conn r = {.dest = c->dest[0] ? c->dest : NULL,
			       .sni = c->sni[0] ? c->sni : NULL,
			       .host = c->host[0] ? c->host : NULL,
			       .addr = &c->addr,
			       .port = c->port,
			       .allowed = !c->refused,
			       .reason = c->why,
			       .up = c->st.to_sock,
			       .down = c->st.from_sock,
			       .start_wall_ms = c->t0_wall,
			       .ms = util_now_ms() - c->t0};
	audit_conn(e->audit, &r);
}

static void chan_free(struct eg *e, uint16_t id, bool reset)
{
	struct hchan *c = stream_table_remove(&e->ch, id);
	if (!c)
		return;
	if (c->deny)
		e->denying--;
	audit_stream(e, c);
	stream_close(&c->st, reset);
	free(c);
}

static void chan_abort(struct eg *e, uint16_t id)
{
	uint8_t k = PROTO_NET_ABORT;
	egress_put(e, PROTO_NET_CLOSE, id, &k, 1);
	chan_free(e, id, true);
}

/* --- opening ----------------------------------------------------------- */

static void open_fail(struct eg *e, uint16_t id, uint8_t kind, const char *why)
{
	put_u8_text(e, PROTO_NET_OPEN_FAIL, id, kind, why);
}

/* A non-blocking connect of c's socket (a new one; an old one is closed)
 * to target:c->port; 0, -EINPROGRESS or -errno. */
static int chan_connect(struct hchan *c, const struct dns_addr *target)
{
	union {
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
	} sa;
	socklen_t sl;
	char ts[48];
	egress_addr_str(target, ts, sizeof(ts));
	snprintf(c->dst, sizeof(c->dst),
		 target->family == AF_INET6 ? "[%s]:%u" : "%s:%u", ts,
		 (unsigned)c->port);
	memset(&sa, 0, sizeof(sa));
	if (target->family == AF_INET) {
		sa.in.sin_family = AF_INET;
		sa.in.sin_port = htons(c->port);
		memcpy(&sa.in.sin_addr, target->bytes, 4);
		sl = sizeof(sa.in);
	} else {
		sa.in6.sin6_family = AF_INET6;
		sa.in6.sin6_port = htons(c->port);
		memcpy(&sa.in6.sin6_addr, target->bytes, 16);
		sl = sizeof(sa.in6);
	}
	if (c->st.fd >= 0)
		close(c->st.fd);
	c->st.fd = socket(target->family,
			  SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->st.fd < 0)
		return -errno;
	if (connect(c->st.fd, (struct sockaddr *)&sa, sl) < 0)
		return -errno;
	return 0;
}

/* api.ccvm.internal: the stream's socket is a thread of the proxy's. */
static void proxy_open(struct eg *e, uint16_t id, struct hchan *c)
{
	snprintf(c->dst, sizeof(c->dst), "%s:%u", EGRESS_PROXY_NAME,
		 (unsigned)c->port);
	int fd = e->proxy ? apiproxy_accept(e->proxy) : -ENOTCONN;
	if (fd < 0) {
		char why[256];
		snprintf(why, sizeof(why), "failed: %s: %s", c->dst,
			 fd == -EMFILE ? "too many connections to the proxy"
				       : strerror(-fd));
		open_fail(e, id, PROTO_NET_FAIL_CONNECT, why);
		chan_free(e, id, false);
		return;
	}
	c->st.fd = fd;
	c->ok_pending = true;
}

static void chan_start(struct eg *e, uint16_t id, struct hchan *c);

/* The "host:port" of a channel's address, for messages. */
static void chan_dst(struct hchan *c)
{
	char as[64];
	egress_addr_str(&c->addr, as, sizeof(as));
	snprintf(c->dst, sizeof(c->dst),
		 c->addr.family == AF_INET6 ? "[%s]:%u" : "%s:%u", as,
		 (unsigned)c->port);
}

/*
 * A connection the policy refused: rather than resetting it at once, wait
 * up to EGRESS_SNIFF_WAIT_MS for its first bytes, so that a plaintext HTTP
 * request is answered 403 with the reason (the agent reads why; docs/
 * egress.md, "Denials").  No socket is ever made for it.  False when no
 * channel is free or EGRESS_DENY_WAITING_MAX wait already: then it is
 * reset at once.
 */
static bool deny_wait(struct eg *e, uint16_t id, const struct proto_net_open *o,
		      const struct egress_decision *d)
{
	if (stream_table_full(&e->ch) || e->denying >= EGRESS_DENY_WAITING_MAX)
		return false;
	struct hchan *c = calloc(1, sizeof(*c));
	if (!c || stream_init(&c->st, -1) < 0) {
		if (c)
			stream_close(&c->st, false);
		free(c);
		return false;
	}
	c->deny = c->sniffing = c->connecting = true;
	c->port = o->port;
	c->t0_wall = wall_ms();
	c->t0 = util_now_ms();
	c->deadline = c->t0 + EGRESS_SNIFF_WAIT_MS;
	c->addr.family = o->family;
	memcpy(c->addr.bytes, o->addr, sizeof(o->addr));
	egress_addr_normalize(&c->addr);
	char as[64];
	if (d->dest[0] &&
	    strcmp(d->dest, egress_addr_str(&c->addr, as, sizeof(as))) != 0)
		util_strlcpy(c->dest, d->dest, sizeof(c->dest));
	util_strlcpy(c->why, d->why, sizeof(c->why));
	chan_dst(c);
	stream_table_add(&e->ch, id, c);
	e->denying++;
	return true;
}

static void net_open(struct eg *e, const struct proto_msg *m)
{
	uint16_t id = m->chan;
	if (stream_table_get(&e->ch, id)) {
		/* A second open on a live stream: the guest is confused. */
		chan_abort(e, id);
		return;
	}
	struct proto_net_open o;
	if (proto_net_open_decode(m->data, m->len, &o) < 0) {
		open_fail(e, id, PROTO_NET_FAIL_POLICY,
			  "blocked: malformed open request");
		return;
	}
	struct egress_decision d;
	memset(&d, 0, sizeof(d));
	egress_connect_check(e->p, o.family, o.addr, o.port, &d);
	if (d.verdict != EGRESS_ALLOW) {
		struct dns_addr a = {.family = o.family};
		memcpy(a.bytes, o.addr, sizeof(o.addr));
		char as[64];
		egress_addr_str(&a, as, sizeof(as));
		egress_note_blocked(e->p, d.dest[0] ? d.dest : as, o.port);
		if (deny_wait(e, id, &o, &d))
			return;
		open_fail(e, id, PROTO_NET_FAIL_POLICY, d.why);
		if (e->audit) {
			struct audit_conn r = {
			    .dest =
				d.dest[0] && strcmp(d.dest, as) ? d.dest : NULL,
			    .addr = &a,
			    .port = o.port,
			    .reason = d.why,
			    .start_wall_ms = wall_ms()};
			audit_conn(e->audit, &r);
		}
		return;
	}
	if (stream_table_full(&e->ch)) {
		open_fail(e, id, PROTO_NET_FAIL_CONNECT,
			  "failed: too many open connections");
		return;
	}
	struct hchan *c = calloc(1, sizeof(*c));
	if (!c || stream_init(&c->st, -1) < 0) {
		if (c)
			stream_close(&c->st, false);
		free(c);
		open_fail(e, id, PROTO_NET_FAIL_CONNECT, "failed: no memory");
		return;
	}
	c->port = o.port;
	c->t0_wall = wall_ms();
	c->t0 = util_now_ms();
	c->addr.family = o.family;
	memcpy(c->addr.bytes, o.addr, sizeof(o.addr));
	egress_addr_normalize(&c->addr);
	char as[64];
	if (strcmp(d.dest, egress_addr_str(&c->addr, as, sizeof(as))) != 0)
		util_strlcpy(c->dest, d.dest, sizeof(c->dest));
	util_strlcpy(c->why, d.why, sizeof(c->why));
	if (d.proxy) {
		stream_table_add(&e->ch, id, c);
		proxy_open(e, id, c);
		return;
	}
	if (strcmp(d.dest, EGRESS_HOST_NAME) == 0) {
		c->has_alt = true;
		c->alt.family = d.target.family == AF_INET ? AF_INET6 : AF_INET;
		if (c->alt.family == AF_INET)
			inet_pton(AF_INET, "127.0.0.1", c->alt.bytes);
		else
			c->alt.bytes[15] = 1; /* ::1 */
	}
	stream_table_add(&e->ch, id, c); /* free and not full: checked */
	c->target = d.target;
	if (d.by_name && !egress_open_mode(e->p)) {
		chan_dst(c);
		/* What it sent with the open arrives as data next. */
		c->sniffing = c->connecting = true;
		c->deadline = util_now_ms() + EGRESS_SNIFF_WAIT_MS;
		return;
	}
	chan_start(e, id, c);
}

/* The connection to c->target (and host.ccvm.internal's other address). */
static void chan_start(struct eg *e, uint16_t id, struct hchan *c)
{
	int rc = chan_connect(c, &c->target);
	if (rc == -ECONNREFUSED && c->has_alt) {
		c->has_alt = false;
		rc = chan_connect(c, &c->alt);
	}
	if (rc == -EINPROGRESS) {
		c->connecting = true;
		c->deadline = util_now_ms() + EGRESS_CONNECT_TIMEOUT_MS;
		return;
	}
	if (rc < 0) {
		char why[256];
		snprintf(why, sizeof(why), "failed: connect to %s: %s", c->dst,
			 strerror(-rc));
		util_strlcpy(c->why, why, sizeof(c->why));
		open_fail(e, id, PROTO_NET_FAIL_CONNECT, why);
		chan_free(e, id, false);
		return;
	}
	c->ok_pending = true;
}

static void connect_done(struct eg *e, uint16_t id, int error)
{
	struct hchan *c = stream_table_get(&e->ch, id);
	if (error == ECONNREFUSED && c->has_alt) {
		c->has_alt = false;
		int rc = chan_connect(c, &c->alt);
		if (rc == -EINPROGRESS)
			return; /* still connecting, same deadline */
		error = -rc;
	}
	if (error) {
		char why[256];
		snprintf(why, sizeof(why), "failed: connect to %s: %s", c->dst,
			 error == ETIMEDOUT ? "timed out" : strerror(error));
		util_strlcpy(c->why, why, sizeof(c->why));
		open_fail(e, id, PROTO_NET_FAIL_CONNECT, why);
		chan_free(e, id, false);
		return;
	}
	c->connecting = false;
	c->ok_pending = true;
}

/*
 * NET_OPEN_OK travels with the stream's first other frame to the guest,
 * not alone: the guest has sent its data already (optimistic open) and
 * needs nothing from it, and a lone frame costs it a wakeup (under TCG
 * about a millisecond) per connection.  reading: a read of the socket
 * follows (a frame will); else a write, which queues a frame only when it
 * completes a credit step (more: bytes about to be added).
 */
static void ok_before(struct eg *e, uint16_t id, bool reading, size_t more)
{
	struct hchan *c = stream_table_get(&e->ch, id);
	if (!c->ok_pending ||
	    (!reading && c->st.consumed + (c->st.len - c->st.off) + more <
			     STREAM_WINDOW_ACK))
		return;
	c->ok_pending = false;
	char why[128];
	snprintf(why, sizeof(why), "connected: %s", c->dst);
	egress_put(e, PROTO_NET_OPEN_OK, id, why, strlen(why));
}

/* --- streams ----------------------------------------------------------- */

/* After a stream_* step: free what finished, abort what broke. */
static void chan_after(struct eg *e, uint16_t id, enum stream_state st)
{
	if (st == STREAM_DONE)
		chan_free(e, id, false);
	else if (st == STREAM_BROKEN)
		chan_abort(e, id);
	else if (st == STREAM_NO_QUEUE)
		e->failed = true;
}

static void sock_write(struct eg *e, uint16_t id)
{
	struct hchan *c = stream_table_get(&e->ch, id);
	ok_before(e, id, false, 0);
	chan_after(e, id, stream_write(&c->st, &e->wr, id));
}

static void sock_read(struct eg *e, uint16_t id)
{
	struct hchan *c = stream_table_get(&e->ch, id);
	ok_before(e, id, true, 0);
	chan_after(e, id, stream_read(&c->st, &e->wr, id));
}

/* A plaintext HTTP request refused by its Host: 403 with the reason. */
static void answer_403(struct eg *e, uint16_t id, const char *why)
{
	char body[900], resp[1100];
	int bl = snprintf(body, sizeof(body), "ccvm: %s\n", why);
	if (bl < 0 || (size_t)bl >= sizeof(body))
		bl = (int)strlen(body);
	int rl = snprintf(resp, sizeof(resp),
			  "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain"
			  "\r\nContent-Length: %d\r\nConnection: close\r\n"
			  "\r\n%s",
			  bl, body);
	/* The text begins "blocked: ": the guest logs it (egress.log). */
	egress_put(e, PROTO_NET_OPEN_OK, id, why, strlen(why));
	egress_put(e, PROTO_NET_DATA, id, resp,
		   (size_t)rl < sizeof(resp) ? (size_t)rl : sizeof(resp) - 1);
	uint8_t f = PROTO_NET_FIN;
	egress_put(e, PROTO_NET_CLOSE, id, &f, 1);
}

/*
 * Allowlist mode, a connection allowed by a name: its first bytes decide
 * (docs/egress.md, "Names bound to connections").  A TLS ClientHello's
 * server_name or an HTTP request's Host must itself be allowed; TLS or
 * HTTP without a name, or malformed, is refused; another protocol (or
 * nothing within EGRESS_SNIFF_WAIT_MS: the server speaks first) goes on.
 * final: no more bytes will come before the decision.
 */
static void sniff_decide(struct eg *e, uint16_t id, bool final)
{
	struct hchan *c = stream_table_get(&e->ch, id);
	struct sniff sn;
	const uint8_t *b = c->st.buf + c->st.off;
	size_t n = c->st.len - c->st.off;
	enum sniff_kind k = final || n >= SNIFF_MAX ? sniff_final(b, n, &sn)
						    : sniff_stream(b, n, &sn);
	if (k == SNIFF_MORE)
		return;
	c->sniffing = false;
	bool named = k == SNIFF_TLS || k == SNIFF_HTTP;
	if (named && sn.has_name)
		util_strlcpy(k == SNIFF_TLS ? c->sni : c->host, sn.name,
			     sizeof(c->sni));
	if (c->deny) { /* refused at the open: only the answer is chosen */
		c->refused = true;
		if (k == SNIFF_HTTP && !sn.malformed)
			answer_403(e, id, c->why);
		else
			open_fail(e, id, PROTO_NET_FAIL_POLICY, c->why);
		chan_free(e, id, false);
		return;
	}
	char why[800] = "";
	char as[64];
	egress_addr_str(&c->addr, as, sizeof(as));
	if (sn.malformed)
		snprintf(why, sizeof(why), "blocked: %s: %s", c->dst, sn.why);
	else if (named && !sn.has_name)
		snprintf(why, sizeof(why),
			 "blocked: %s: %s without a server name (only an "
			 "address or CIDR entry allows that)",
			 c->dst, k == SNIFF_TLS ? "TLS" : "HTTP");
	else if (named && sn.is_ip && strcmp(sn.name, as) != 0)
		snprintf(why, sizeof(why),
			 "blocked: %s: the request names %s, another address",
			 c->dst, sn.name);
	else if (named && !sn.is_ip && !egress_name_allowed(e->p, sn.name))
		snprintf(why, sizeof(why),
			 "blocked: %s: %s %s is not in egressAllowlist (the "
			 "address was allowed for %s)",
			 c->dst, k == SNIFF_TLS ? "server name" : "Host",
			 sn.name, c->dest[0] ? c->dest : as);
	if (!why[0]) {
		chan_start(e, id, c);
		return;
	}
	c->refused = true;
	util_strlcpy(c->why, why, sizeof(c->why));
	egress_note_blocked(e->p, sn.has_name ? sn.name : as, c->port);
	if (k == SNIFF_HTTP && !sn.malformed)
		answer_403(e, id, why);
	else
		open_fail(e, id, PROTO_NET_FAIL_POLICY, why);
	chan_free(e, id, false);
}

static void net_data(struct eg *e, const struct proto_msg *m)
{
	struct hchan *c = stream_table_get(&e->ch, m->chan);
	if (!c || m->len == 0)
		return; /* a stream that ended meanwhile */
	if (!c->connecting) {
		ok_before(e, m->chan, false, m->len);
		/* Broken also for more than the window: aborted. */
		chan_after(
		    e, m->chan,
		    stream_deliver(&c->st, &e->wr, m->chan, m->data, m->len));
		return;
	}
	/* Sent with the open (optimistic): kept until connected. */
	if (!stream_take(&c->st, m->data, m->len))
		chan_abort(e, m->chan); /* more than the window */
	else if (c->sniffing)
		sniff_decide(e, m->chan, false);
}

static void net_window(struct eg *e, const struct proto_msg *m)
{
	struct hchan *c = stream_table_get(&e->ch, m->chan);
	if (c)
		stream_credit(&c->st, m->data, m->len);
}

static void net_close(struct eg *e, const struct proto_msg *m)
{
	struct hchan *c = stream_table_get(&e->ch, m->chan);
	if (!c)
		return;
	if (m->len != 1 || m->data[0] != PROTO_NET_FIN) {
		chan_free(e, m->chan, true);
		return;
	}
	c->st.peer_fin = true;
	if (c->sniffing)
		sniff_decide(e, m->chan, true);
	else if (!c->connecting)
		sock_write(e, m->chan);
}

/* --- the loop ------------------------------------------------------------ */

static void handle(struct eg *e, const struct proto_msg *m)
{
	switch (m->type) {
	case PROTO_NET_OPEN:
		net_open(e, m);
		break;
	case PROTO_NET_DATA:
		net_data(e, m);
		break;
	case PROTO_NET_WINDOW:
		net_window(e, m);
		break;
	case PROTO_NET_CLOSE:
		net_close(e, m);
		break;
	case PROTO_DNS_QUERY:
		egress_dns_query(e, m);
		break;
	default:
		break; /* nothing else belongs on this port */
	}
}

/*
 * Handles the frames the reader holds while what is queued for the guest
 * stays under PROTO_WRITER_HIGH, then, when readable and still under it,
 * reads the port once and handles what that brought.  A guest that asks
 * (NET_OPEN, DNS_QUERY, NET_DATA to credit) without reading the answers
 * is read no further, so the queue stays bounded; one read per turn keeps
 * the streams served while it writes.  1 go on, 0 end of file or a
 * protocol error.
 */
static int read_net(struct eg *e, bool readable)
{
	for (int pass = 0; pass < 2; pass++) {
		struct proto_msg m;
		int r = 0;
		while (!proto_writer_full(&e->wr) &&
		       (r = proto_reader_next(e->rd, &m)) > 0)
			handle(e, &m);
		if (r < 0)
			return 0;
		if (pass > 0 || !readable || proto_writer_full(&e->wr))
			break;
		ssize_t n = proto_reader_fill(e->rd, e->net);
		if (n == 0 || (n < 0 && n != -EAGAIN))
			return 0;
	}
	return 1;
}

/* The relay's poll loop: the port, the resolver's answers and every
 * stream (a little over 80 lines: the poll set and its dispatch read best
 * together). */
static int loop(struct eg *e)
{
	static struct pollfd pf[2 + EGRESS_MAX_STREAMS];
	static uint16_t ids[2 + EGRESS_MAX_STREAMS];
	for (;;) {
		if (e->failed)
			return -ENOMEM;
		/* Frames held while the queue was full: the port may have
		 * nothing more to wake the poll. */
		if (!read_net(e, false))
			return 0;
		bool full = proto_writer_full(&e->wr);
		int np = 0;
		pf[np++] = (struct pollfd){
		    .fd = e->net,
		    .events = (full ? 0 : POLLIN) |
			      (proto_writer_pending(&e->wr) ? POLLOUT : 0)};
		pf[np++] = (struct pollfd){.fd = e->jobs[0], .events = POLLIN};
		long long now = util_now_ms(), next = -1;
		struct stream_iter it = {0};
		struct hchan *c;
		while ((c = stream_table_next(&e->ch, &it))) {
			if (c->sniffing) { /* no socket yet */
				if (now >= c->deadline)
					sniff_decide(e, it.chan, true);
				else if (next < 0 || c->deadline < next)
					next = c->deadline;
				continue;
			}
			if (c->connecting && now >= c->deadline) {
				/* May free c: the walk goes on all the same. */
				connect_done(e, it.chan, ETIMEDOUT);
				continue;
			}
			short ev = 0;
			if (c->connecting) {
				ev = POLLOUT;
				if (next < 0 || c->deadline < next)
					next = c->deadline;
			} else {
				ev = stream_events(&c->st, full);
			}
			if (!ev)
				continue;
			ids[np] = it.chan;
			pf[np++] =
			    (struct pollfd){.fd = c->st.fd, .events = ev};
		}
		/* A decision in the walk may have queued frames. */
		if (proto_writer_pending(&e->wr))
			pf[0].events |= POLLOUT;
		int timeout = next < 0 ? -1 : (int)(next - now + 1);
		int n = poll(pf, (nfds_t)np, timeout);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n <= 0)
			continue;
		for (int i = 2; i < np; i++) {
			c = stream_table_get(&e->ch, ids[i]);
			short re = pf[i].revents;
			if (!c || !re || c->st.fd != pf[i].fd)
				continue;
			if (c->connecting) {
				int err = 0;
				socklen_t sl = sizeof(err);
				getsockopt(c->st.fd, SOL_SOCKET, SO_ERROR, &err,
					   &sl);
				connect_done(e, ids[i], err);
				c = stream_table_get(&e->ch, ids[i]);
				/* What the guest sent meanwhile (optimistic
				 * open), and its FIN. */
				if (c && !c->connecting &&
				    (c->st.len || c->st.peer_fin))
					sock_write(e, ids[i]);
				continue;
			}
			if (re & POLLOUT)
				sock_write(e, ids[i]);
			if (stream_table_get(&e->ch, ids[i]) &&
			    (re & (POLLIN | POLLHUP | POLLERR)))
				sock_read(e, ids[i]);
		}
		if (pf[1].revents & POLLIN)
			egress_dns_done(e);
		if ((pf[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    !read_net(e, true))
			return 0;
		int r = proto_writer_flush(&e->wr, e->net);
		if (r < 0 && r != -EAGAIN)
			return 0; /* the port is gone */
	}
}

int egress_run(int net_fd, struct egress_policy *p,
	       const struct apiproxy_conf *proxy, struct audit *audit,
	       int summary_fd)
{
	struct eg e = {.net = net_fd, .p = p, .jobs = {-1, -1}, .audit = audit};
	int r = -ENOMEM;
	if (proxy && !(e.proxy = apiproxy_new(proxy)))
		fprintf(stderr, "ccvm: the API proxy cannot start; the agent's "
				"requests will fail\n");
	e.rd = malloc(sizeof(*e.rd));
	if (!e.rd || stream_table_init(&e.ch, EGRESS_MAX_STREAMS) < 0 ||
	    proto_writer_init(&e.wr) < 0)
		goto out;
	proto_reader_init(e.rd);
	if (pipe2(e.jobs, O_CLOEXEC) < 0) {
		r = -errno;
		goto out;
	}
	util_set_nonblock(e.jobs[0], true);
	util_set_nonblock(net_fd, true);
	egress_set_local_check(p, route_is_local);
	r = loop(&e);
out:
	if (summary_fd >= 0) {
		FILE *f = fdopen(summary_fd, "w");
		if (f) {
			egress_summary(p, f);
			if (e.proxy)
				apiproxy_summary(e.proxy, f);
			fclose(f);
		}
	}
	struct stream_iter it = {0};
	while (stream_table_next(&e.ch, &it))
		chan_free(&e, it.chan, true);
	audit_close(e.audit);
	stream_table_fini(&e.ch);
	free(e.rd);
	proto_writer_free(&e.wr);
	/* Resolver threads may still run: leave their pipe to exit(). */
	return r;
}

struct relay_arg {
	struct egress_policy *p;
	const struct apiproxy_conf *proxy;
	struct audit *audit;
};

/* The relay's process (spawn_call): the port is its fd 3, the summary
 * pipe fd 4, the audit log fd 5. */
static int relay_main(void *arg)
{
	const struct relay_arg *a = arg;
	if (a->audit)
		audit_set_fd(a->audit, 5);
	return egress_run(3, a->p, a->proxy, a->audit, 4) < 0 ? 1 : 0;
}

int egress_spawn(int net_fd, struct egress_policy *p,
		 const struct apiproxy_conf *proxy, struct audit *audit,
		 int *summary_fd, pid_t *pid, struct ccvm_err *err)
{
	int sp[2];
	if (pipe2(sp, O_CLOEXEC) < 0)
		return ccvm_err_sys(err, errno, "pipe");
	/* Keep the port, the summary pipe and stderr; the terminal and
	 * everything else of the session stay out of reach.  The API
	 * proxy keeps the one credential it adds and wipes the rest
	 * (apiproxy_new); without it the spawner wipes them all.  A forked
	 * function, not a program: it keeps ccvm's signal state, SIGPIPE
	 * blocked included. */
	const struct spawn_fd fds[] = {
	    {0, SPAWN_NULL},	{1, SPAWN_NULL},
	    {2, STDERR_FILENO}, {3, net_fd},
	    {4, sp[1]},		{5, audit ? audit_fd(audit) : SPAWN_NULL}};
	struct spawn_opts o = {.fds = fds,
			       .n_fds = ARRAY_LEN(fds),
			       .keep_signals = true,
			       .keep_secrets = proxy != NULL,
			       .name = "ccvm-egress"};
	struct relay_arg a = {.p = p, .proxy = proxy, .audit = audit};
	struct spawn_child c;
	struct ccvm_err e = {0};
	int r = spawn_call(&o, relay_main, &a, &c, &e);
	close(sp[1]);
	if (r < 0) {
		close(sp[0]);
		return ccvm_err_set(err, -r, "egress relay: %s", e.msg);
	}
	*summary_fd = sp[0];
	*pid = c.pid;
	return 0;
}

void egress_finish(pid_t pid, int summary_fd, int timeout_ms)
{
	char buf[4096];
	size_t len = 0;
	long long deadline = util_now_ms() + timeout_ms;
	if (summary_fd >= 0) {
		for (;;) {
			long long left = deadline - util_now_ms();
			struct pollfd p = {.fd = summary_fd, .events = POLLIN};
			if (left <= 0 || poll(&p, 1, (int)left) <= 0)
				break;
			ssize_t n =
			    read(summary_fd, buf + len, sizeof(buf) - 1 - len);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			len += (size_t)n;
			if (len == sizeof(buf) - 1)
				break;
		}
		close(summary_fd);
	}
	if (pid > 0) {
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (len)
		util_write_all(STDERR_FILENO, buf, len);
}

int egress_base_url(const char *url, char *host, size_t hostsz, uint16_t *port,
		    char **guest_url)
{
	size_t skip;
	long def;
	if (strncasecmp(url, "https://", 8) == 0) {
		skip = 8;
		def = 443;
	} else if (strncasecmp(url, "http://", 7) == 0) {
		skip = 7;
		def = 80;
	} else {
		return -EINVAL;
	}
	const char *a = url + skip;
	size_t alen = strcspn(a, "/?#");
	const char *rest = a + alen;
	if (alen == 0 || memchr(a, '@', alen))
		return -EINVAL;
	const char *h = a, *hend, *colon;
	if (a[0] == '[') {
		const char *rb = memchr(a, ']', alen);
		if (!rb)
			return -EINVAL;
		h = a + 1;
		hend = rb;
		colon = rb + 1 < a + alen ? rb + 1 : NULL;
		if (colon && *colon != ':')
			return -EINVAL;
	} else {
		colon = memchr(a, ':', alen);
		hend = colon ? colon : a + alen;
	}
	size_t hl = (size_t)(hend - h);
	if (hl == 0 || hl >= hostsz || hl > DNS_NAME_MAX)
		return -EINVAL;
	long pv = def;
	if (colon) {
		char num[8];
		size_t nl = (size_t)(a + alen - colon - 1);
		if (nl == 0 || nl >= sizeof(num))
			return -EINVAL;
		memcpy(num, colon + 1, nl);
		num[nl] = '\0';
		if (!util_parse_long(num, 1, 65535, &pv))
			return -EINVAL;
	}
	memcpy(host, h, hl);
	host[hl] = '\0';
	for (char *p = host; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return -EINVAL;
	if (host[hl - 1] == '.' && hl > 1)
		host[hl - 1] = '\0';
	uint8_t ab[16];
	bool loop = strcasecmp(host, "localhost") == 0 ||
		    (inet_pton(AF_INET, host, ab) == 1 && ab[0] == 127) ||
		    (inet_pton(AF_INET6, host, ab) == 1 &&
		     memcmp(ab, &in6addr_loopback, 16) == 0);
	*port = (uint16_t)pv;
	if (loop) {
		util_strlcpy(host, EGRESS_HOST_NAME, hostsz);
		*guest_url = util_asprintf("%.*s%s:%ld%s", (int)skip, url,
					   EGRESS_HOST_NAME, pv, rest);
	} else {
		*guest_url = strdup(url);
	}
	return *guest_url ? 0 : -ENOMEM;
}
