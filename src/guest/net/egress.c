#define _GNU_SOURCE
/*
 * The guest's network process (net.h, docs/egress.md).  Nothing here is a
 * security boundary: root in the guest may replace all of it.  The policy
 * lives on the host; this only makes ordinary programs' connections and
 * lookups reach it and fail fast and visibly when it says no.
 */
#include "net/egress.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter_ipv4.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dns.h"
#include "glog.h"
#include "net/link.h"
#include "proto.h"
#include "stream.h"
#include "mount.h"
#include "net/nfrules.h"
#include "vm/port.h"
#include "util.h"

#define PORT_WAIT_MS 10000
#define LOG_MAX	     (4 * 1024 * 1024)
#define MAX_STREAMS  1024
#define DNS_SLOTS    256
#define DNS_TCP_MAXC 16

static int ready_fd = -1; /* parent: read end of the ready pipe */

/* --- set-up --------------------------------------------------------------- */

static int write_file(const char *path, const char *text, mode_t mode)
{
	unlink(path); /* a symlink (resolv.conf) is replaced, not followed */
	int fd = open(
	    path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	int r = util_write_all(fd, text, strlen(text));
	fchmod(fd, mode);
	close(fd);
	return r;
}

/* The interface and its routes (link.c), and the resolver: what a
 * connection needs to leave a socket at all.  Until the rules (below) are
 * in, a SYN goes to the dummy interface and is dropped; TCP sends it again
 * a second later, when they are.  Nothing can leak either way: the guest
 * has no NIC. */
static int setup_routes(void)
{
	struct ccvm_err err;
	ccvm_err_clear(&err);
	int r = link_setup(&err);
	if (r < 0) {
		glog_always("net: %s", err.msg);
		return r;
	}
	return write_file("/etc/resolv.conf", "nameserver 127.0.0.1\n", 0644);
}

/* The nftables rules that send every TCP connection to the forwarder
 * (nfrules.h), set by a worker while the program starts: with Debian's
 * stock kernel it loads the netfilter modules first (~0.5 s under TCG).
 * The worker is orphaned at once so PID 1 reaps it; a failure leaves the
 * guest without a network (fails closed) and says so on the console. */
static void setup_rules_async(void)
{
	pid_t mid = fork();
	if (mid != 0) {
		if (mid > 0)
			waitpid(mid, NULL, 0);
		return;
	}
	if (fork() != 0)
		_exit(0);
	struct ccvm_err err;
	ccvm_err_clear(&err);
	if (mnt_load_modules(MNT_MODS_NET, &err) < 0)
		glog_always("net: %s", err.msg);
	ccvm_err_clear(&err);
	if (nfrules_load(NET_FWD_PORT, &err) < 0) {
		glog_always("net: %s: the guest has no network", err.msg);
		_exit(1);
	}
	glog("net: rules in at %lld ms (since the kernel started)",
	     util_now_ms());
	_exit(0);
}

/* --- the relay state --------------------------------------------------- */

struct gchan {
	struct stream st; /* the client's socket <-> the host */
	char dst[64];
};

struct dns_pending {
	bool used;
	bool tcp;
	uint8_t gen;
	int conn; /* TCP: index into tcpc */
	unsigned conn_gen;
	struct sockaddr_storage from;
	socklen_t fromlen;
	char name[DNS_NAME_MAX + 1];
};

struct dns_conn {
	int fd;
	unsigned gen;
	uint8_t *buf; /* 2 + DNS_TCP_MAX */
	size_t len;
};

struct net {
	int port;
	struct proto_reader *rd;
	struct proto_writer wr;
	/* struct gchan by stream id; the loop walks only the live ones
	 * (65536 slots cost ~0.2 ms per wakeup under TCG). */
	struct stream_table ch;
	int fwd4, fwd6, udp53, tcp53;
	struct dns_pending dns[DNS_SLOTS];
	unsigned dns_next;
	struct dns_conn tcpc[DNS_TCP_MAXC];
	int logfd;
	size_t logged;
};

static void log_line(struct net *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void log_line(struct net *n, const char *fmt, ...)
{
	char line[512];
	time_t t = time(NULL);
	struct tm tm;
	gmtime_r(&t, &tm);
	size_t k = strftime(line, sizeof(line), "%H:%M:%S ", &tm);
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(line + k, sizeof(line) - k - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	k +=
	    (size_t)m < sizeof(line) - k - 1 ? (size_t)m : sizeof(line) - k - 2;
	for (size_t i = 0; i < k; i++)
		if ((unsigned char)line[i] < 0x20)
			line[i] = ' ';
	line[k++] = '\n';
	if (n->logfd < 0 || n->logged + k > LOG_MAX)
		return;
	if (util_write_all(n->logfd, line, k) == 0)
		n->logged += k;
}

static void put(struct net *n, uint8_t type, uint16_t chan, const void *d,
		size_t len)
{
	proto_writer_put(&n->wr, type, chan, d, len);
}

static void chan_free(struct net *n, uint16_t id, bool reset)
{
	struct gchan *c = stream_table_remove(&n->ch, id);
	if (!c)
		return;
	stream_close(&c->st, reset);
	free(c);
}

static void chan_abort(struct net *n, uint16_t id)
{
	uint8_t k = PROTO_NET_ABORT;
	put(n, PROTO_NET_CLOSE, id, &k, 1);
	chan_free(n, id, true);
}

/* After a stream_* step: free what finished, abort what broke. */
static void chan_after(struct net *n, uint16_t id, enum stream_state st)
{
	if (st == STREAM_DONE)
		chan_free(n, id, false);
	else if (st == STREAM_BROKEN)
		chan_abort(n, id);
}

/* --- the forwarder --------------------------------------------------- */

static void client_write(struct net *n, uint16_t id)
{
	struct gchan *c = stream_table_get(&n->ch, id);
	chan_after(n, id, stream_write(&c->st, &n->wr, id));
}

static void client_read(struct net *n, uint16_t id)
{
	struct gchan *c = stream_table_get(&n->ch, id);
	chan_after(n, id, stream_read(&c->st, &n->wr, id));
}

static void fwd_accept(struct net *n, int lfd, bool v6)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	struct proto_net_open o = {0};
	char as[INET6_ADDRSTRLEN];
	if (v6) {
		struct sockaddr_in6 d;
		socklen_t l = sizeof(d);
		if (getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &d, &l) < 0)
			goto drop;
		o.family = AF_INET6;
		o.port = ntohs(d.sin6_port);
		memcpy(o.addr, &d.sin6_addr, 16);
	} else {
		struct sockaddr_in d;
		socklen_t l = sizeof(d);
		if (getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &d, &l) < 0)
			goto drop;
		o.family = AF_INET;
		o.port = ntohs(d.sin_port);
		memcpy(o.addr, &d.sin_addr, 4);
	}
	if (stream_table_full(&n->ch)) {
		log_line(n, "failed: too many open connections");
		goto drop;
	}
	struct gchan *c = calloc(1, sizeof(*c));
	if (!c)
		goto drop;
	if (stream_init(&c->st, fd) < 0) {
		stream_close(&c->st, true); /* closes fd */
		free(c);
		return;
	}
	inet_ntop(o.family, o.addr, as, sizeof(as));
	snprintf(c->dst, sizeof(c->dst), v6 ? "[%s]:%u" : "%s:%u", as,
		 (unsigned)o.port);
	uint16_t id;
	stream_table_alloc(&n->ch, c, &id); /* not full: checked above */
	uint8_t p[PROTO_NET_OPEN_MAX];
	put(n, PROTO_NET_OPEN, id, p, proto_net_open_encode(&o, p));
	/* The client usually wrote its first bytes already: send them with
	 * the open, in the same write to the port, instead of one loop turn
	 * later.  The host holds them until it connected, or drops them
	 * with the stream when the policy refuses. */
	client_read(n, id);
	return;
drop : {
	struct linger l = {.l_onoff = 1, .l_linger = 0};
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
	close(fd);
}
}

/* --- DNS stub ---------------------------------------------------------- */

static void dns_forward(struct net *n, const uint8_t *msg, size_t len, bool tcp,
			int conn, const struct sockaddr_storage *from,
			socklen_t fromlen)
{
	struct dns_query q;
	if (len < DNS_HEADER_LEN || len > DNS_TCP_MAX)
		return;
	unsigned slot = n->dns_next++ % DNS_SLOTS;
	struct dns_pending *d = &n->dns[slot];
	d->used = true;
	d->gen++;
	d->tcp = tcp;
	d->conn = conn;
	d->conn_gen = tcp ? n->tcpc[conn].gen : 0;
	if (from) {
		d->from = *from;
		d->fromlen = fromlen;
	}
	d->name[0] = '\0';
	if (dns_parse_query(msg, len, &q) == 0)
		util_strlcpy(d->name, q.name, sizeof(d->name));
	static uint8_t out[1 + DNS_TCP_MAX];
	out[0] = tcp ? PROTO_DNS_TCP : PROTO_DNS_UDP;
	memcpy(out + 1, msg, len);
	put(n, PROTO_DNS_QUERY, (uint16_t)(slot | (unsigned)d->gen << 8), out,
	    1 + len);
}

static void dns_udp_read(struct net *n)
{
	uint8_t buf[4096];
	struct sockaddr_storage from;
	socklen_t fl = sizeof(from);
	ssize_t k = recvfrom(n->udp53, buf, sizeof(buf), 0,
			     (struct sockaddr *)&from, &fl);
	if (k > 0)
		dns_forward(n, buf, (size_t)k, false, 0, &from, fl);
}

static void dns_conn_close(struct net *n, int i)
{
	struct dns_conn *c = &n->tcpc[i];
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->len = 0;
	c->gen++;
}

static void dns_tcp_accept(struct net *n)
{
	int fd = accept4(n->tcp53, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return;
	for (int i = 0; i < DNS_TCP_MAXC; i++) {
		struct dns_conn *c = &n->tcpc[i];
		if (c->fd >= 0)
			continue;
		if (!c->buf && !(c->buf = malloc(2 + DNS_TCP_MAX)))
			break;
		struct timeval tv = {.tv_sec = 1};
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		c->fd = fd;
		c->len = 0;
		return;
	}
	close(fd);
}

static void dns_tcp_read(struct net *n, int i)
{
	struct dns_conn *c = &n->tcpc[i];
	ssize_t k = read(c->fd, c->buf + c->len, 2 + DNS_TCP_MAX - c->len);
	if (k <= 0) {
		dns_conn_close(n, i);
		return;
	}
	c->len += (size_t)k;
	for (;;) {
		const uint8_t *msg;
		size_t ml;
		ssize_t f = dns_tcp_frame(c->buf, c->len, &msg, &ml);
		if (f < 0) {
			dns_conn_close(n, i);
			return;
		}
		if (f == 0)
			break;
		dns_forward(n, msg, ml, true, i, NULL, 0);
		memmove(c->buf, c->buf + f, c->len - (size_t)f);
		c->len -= (size_t)f;
	}
}

static void dns_answer(struct net *n, const struct proto_msg *m)
{
	struct dns_pending *d = &n->dns[m->chan & 0xff];
	if (!d->used || d->gen != (uint8_t)(m->chan >> 8) || m->len < 1)
		return;
	d->used = false;
	if (m->data[0] & PROTO_DNS_DENIED)
		log_line(n,
			 "blocked: lookup of %s: not in egressAllowlist "
			 "(answered NXDOMAIN, nothing asked outside)",
			 d->name[0] ? d->name : "(unparsed name)");
	const uint8_t *msg = m->data + 1;
	size_t len = m->len - 1;
	if (len == 0)
		return;
	if (!d->tcp) {
		sendto(n->udp53, msg, len, MSG_DONTWAIT,
		       (struct sockaddr *)&d->from, d->fromlen);
		return;
	}
	struct dns_conn *c = &n->tcpc[d->conn];
	uint8_t pre[2];
	if (c->fd < 0 || c->gen != d->conn_gen || dns_tcp_put_len(pre, len) < 0)
		return;
	if (util_write_all(c->fd, pre, 2) < 0 ||
	    util_write_all(c->fd, msg, len) < 0)
		dns_conn_close(n, d->conn);
}

/* --- frames from the host -------------------------------------------- */

static void handle(struct net *n, const struct proto_msg *m)
{
	struct gchan *c = stream_table_get(&n->ch, m->chan);
	switch (m->type) {
	case PROTO_NET_OPEN_OK:
		/* Data already flows within the window.  "blocked: ...": the
		 * host refused it and answers for it (a 403): logged. */
		if (c && m->len > 9 && !memcmp(m->data, "blocked: ", 9))
			log_line(n, "%s: %.*s", c->dst,
				 (int)(m->len > 299 ? 299 : m->len),
				 (const char *)m->data);
		break;
	case PROTO_NET_OPEN_FAIL:
		if (!c)
			break;
		log_line(
		    n, "%s: %.*s", c->dst,
		    (int)(m->len > 1 ? (m->len > 300 ? 299 : m->len - 1) : 0),
		    (const char *)m->data + 1);
		chan_free(n, m->chan, true);
		break;
	case PROTO_NET_DATA:
		if (!c || !m->len)
			break;
		/* Broken also for more than the window: aborted. */
		chan_after(
		    n, m->chan,
		    stream_deliver(&c->st, &n->wr, m->chan, m->data, m->len));
		break;
	case PROTO_NET_WINDOW:
		if (c)
			stream_credit(&c->st, m->data, m->len);
		break;
	case PROTO_NET_CLOSE:
		if (!c)
			break;
		if (m->len == 1 && m->data[0] == PROTO_NET_FIN) {
			c->st.peer_fin = true;
			client_write(n, m->chan);
		} else {
			chan_free(n, m->chan, true);
		}
		break;
	case PROTO_DNS_ANSWER:
		dns_answer(n, m);
		break;
	default:
		break;
	}
}

/* --- sockets and the loop ---------------------------------------------- */

static int listen_on(int family, int type, uint16_t port)
{
	int fd = socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	int r;
	if (family == AF_INET) {
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_port = htons(port),
					.sin_addr.s_addr =
					    htonl(INADDR_LOOPBACK)};
		r = bind(fd, (struct sockaddr *)&a, sizeof(a));
	} else {
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
		struct sockaddr_in6 a = {.sin6_family = AF_INET6,
					 .sin6_port = htons(port),
					 .sin6_addr = IN6ADDR_LOOPBACK_INIT};
		r = bind(fd, (struct sockaddr *)&a, sizeof(a));
	}
	if (r < 0 || (type == SOCK_STREAM && listen(fd, 128) < 0)) {
		glog("net: cannot listen on port %u: %s", (unsigned)port,
		     strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void loop(struct net *n)
{
	static struct pollfd pf[8 + DNS_TCP_MAXC + MAX_STREAMS];
	static uint16_t ids[8 + DNS_TCP_MAXC + MAX_STREAMS];
	for (;;) {
		bool full = proto_writer_full(&n->wr);
		int np = 0;
		pf[np++] = (struct pollfd){
		    .fd = n->port,
		    .events =
			POLLIN | (proto_writer_pending(&n->wr) ? POLLOUT : 0)};
		short lev = full ? 0 : POLLIN;
		pf[np++] = (struct pollfd){.fd = n->fwd4, .events = lev};
		pf[np++] = (struct pollfd){.fd = n->fwd6, .events = lev};
		pf[np++] = (struct pollfd){.fd = n->udp53, .events = lev};
		pf[np++] = (struct pollfd){.fd = n->tcp53, .events = lev};
		int base_tcp = np;
		for (int i = 0; i < DNS_TCP_MAXC; i++)
			pf[np++] =
			    (struct pollfd){.fd = n->tcpc[i].fd, .events = lev};
		int base_ch = np;
		struct stream_iter it = {0};
		struct gchan *c;
		while ((c = stream_table_next(&n->ch, &it))) {
			short ev = stream_events(&c->st, full);
			if (!ev)
				continue;
			ids[np] = it.chan;
			pf[np++] =
			    (struct pollfd){.fd = c->st.fd, .events = ev};
		}
		if (poll(pf, (nfds_t)np, -1) <= 0)
			continue;
		for (int i = base_ch; i < np; i++) {
			c = stream_table_get(&n->ch, ids[i]);
			short re = pf[i].revents;
			if (!c || !re || c->st.fd != pf[i].fd)
				continue;
			if (re & POLLOUT)
				client_write(n, ids[i]);
			if (stream_table_get(&n->ch, ids[i]) &&
			    (re & (POLLIN | POLLHUP | POLLERR)))
				client_read(n, ids[i]);
		}
		if (pf[1].revents & POLLIN)
			fwd_accept(n, n->fwd4, false);
		if (pf[2].revents & POLLIN)
			fwd_accept(n, n->fwd6, true);
		if (pf[3].revents & POLLIN)
			dns_udp_read(n);
		if (pf[4].revents & POLLIN)
			dns_tcp_accept(n);
		for (int i = 0; i < DNS_TCP_MAXC; i++)
			if (n->tcpc[i].fd >= 0 &&
			    pf[base_tcp + i].fd == n->tcpc[i].fd &&
			    (pf[base_tcp + i].revents & (POLLIN | POLLHUP)))
				dns_tcp_read(n, i);
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			for (;;) {
				ssize_t k = proto_reader_fill(n->rd, n->port);
				struct proto_msg m;
				int r;
				while ((r = proto_reader_next(n->rd, &m)) > 0)
					handle(n, &m);
				if (r < 0 || k == 0 || (k < 0 && k != -EAGAIN))
					return; /* the host went away */
				if (k == -EAGAIN)
					break;
			}
		}
		proto_writer_flush(&n->wr, n->port);
	}
}

static void __attribute__((noreturn)) child(int ready)
{
	prctl(PR_SET_NAME, "ccvm-net");
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* dummy is not a boot module: load just that. */
	struct ccvm_err merr;
	ccvm_err_clear(&merr);
	if (mnt_load_modules(MNT_MODS_LINK, &merr) < 0)
		glog_always("net: %s", merr.msg);
	signal(SIGPIPE, SIG_IGN);
	static struct net n;
	n.logfd = -1;
	for (int i = 0; i < DNS_TCP_MAXC; i++)
		n.tcpc[i].fd = -1;
	mkdir("/run/ccvm", 0755);
	n.logfd =
	    open(NET_LOG_PATH,
		 O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0644);
	char dev[300];
	struct ccvm_err perr;
	if (port_find(NET_PORT_NAME, PORT_WAIT_MS, dev, sizeof(dev), &perr) <
	    0) {
		glog("net: no %s port: the guest has no network",
		     NET_PORT_NAME);
		_exit(0);
	}
	int r = setup_routes();
	if (r == 0)
		setup_rules_async();
	n.fwd4 = listen_on(AF_INET, SOCK_STREAM, NET_FWD_PORT);
	n.fwd6 = listen_on(AF_INET6, SOCK_STREAM, NET_FWD_PORT);
	n.udp53 = listen_on(AF_INET, SOCK_DGRAM, 53);
	n.tcp53 = listen_on(AF_INET, SOCK_STREAM, 53);
	n.port = open(dev, O_RDWR | O_CLOEXEC | O_NOCTTY);
	n.rd = malloc(sizeof(*n.rd));
	if (r < 0 || n.fwd4 < 0 || n.fwd6 < 0 || n.udp53 < 0 || n.tcp53 < 0 ||
	    n.port < 0 || !n.rd || stream_table_init(&n.ch, MAX_STREAMS) < 0 ||
	    proto_writer_init(&n.wr) < 0) {
		glog_always("net: set-up failed: the guest has no network");
		_exit(1);
	}
	util_set_nonblock(n.port, true);
	proto_reader_init(n.rd);
	if (write(ready, "1", 1) < 0) {
		/* ccvm-init stopped waiting */
	}
	close(ready);
	glog("net: ready at %lld ms (since the kernel started)", util_now_ms());
	loop(&n);
	_exit(0);
}

void net_start(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return;
	pid_t pid = fork();
	if (pid < 0) {
		glog_always("net: fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid == 0) {
		close(p[0]);
		child(p[1]);
	}
	close(p[1]);
	ready_fd = p[0];
}

bool net_wait_ready(int timeout_ms)
{
	if (ready_fd < 0)
		return false;
	struct pollfd p = {.fd = ready_fd, .events = POLLIN};
	char c = 0;
	bool ok = poll(&p, 1, timeout_ms) > 0 && read(ready_fd, &c, 1) == 1;
	close(ready_fd);
	ready_fd = -1;
	if (!ok)
		glog_always("net: not ready after %d ms", timeout_ms);
	return ok;
}
