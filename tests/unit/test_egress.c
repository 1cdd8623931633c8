/* The egress relay: ANTHROPIC_BASE_URL handling, and egress_run over a
 * socketpair with a server on the loopback. */
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
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/egress.h"
#include "proto.h"
#include "util.h"

static void want(const char *url, const char *host, unsigned port,
		 const char *guest)
{
	char h[DNS_NAME_MAX + 1];
	uint16_t p = 0;
	char *g = NULL;
	assert_int_equal(egress_base_url(url, h, sizeof(h), &p, &g), 0);
	assert_string_equal(h, host);
	assert_int_equal(p, port);
	assert_string_equal(g, guest);
	free(g);
}

static void bad(const char *url)
{
	char h[DNS_NAME_MAX + 1];
	uint16_t p = 0;
	char *g = NULL;
	assert_int_equal(egress_base_url(url, h, sizeof(h), &p, &g), -EINVAL);
	assert_null(g);
}

static void test_base_url(void **state)
{
	(void)state;
	want("https://api.example.com", "api.example.com", 443,
	     "https://api.example.com");
	want("http://llm.corp:8080/v1/", "llm.corp", 8080,
	     "http://llm.corp:8080/v1/");
	want("http://[2001:db8::1]:9000", "2001:db8::1", 9000,
	     "http://[2001:db8::1]:9000");
	/* Host loopback becomes host.ccvm.internal on the same port. */
	want("http://127.0.0.1:8123", "host.ccvm.internal", 8123,
	     "http://host.ccvm.internal:8123");
	want("http://localhost:8123/x?y", "host.ccvm.internal", 8123,
	     "http://host.ccvm.internal:8123/x?y");
	want("HTTP://[::1]", "host.ccvm.internal", 80,
	     "HTTP://host.ccvm.internal:80");
	want("https://127.1.2.3", "host.ccvm.internal", 443,
	     "https://host.ccvm.internal:443");
	bad("ftp://x");
	bad("http://");
	bad("http://user:pw@host/");
	bad("http://host:0");
	bad("http://host:65536");
	bad("http://host:12ab");
	bad("http://[::1");
	bad("http://[::1]x");
	bad("api.anthropic.com");
	bad("http://a b/");
}

/* The next frame from the relay, waiting up to 5 s. */
static void next_msg(struct proto_reader *r, int fd, struct proto_msg *m)
{
	for (;;) {
		if (proto_reader_next(r, m) > 0)
			return;
		struct pollfd p = {.fd = fd, .events = POLLIN};
		assert_int_equal(poll(&p, 1, 5000), 1);
		assert_true(proto_reader_fill(r, fd) > 0);
	}
}

static size_t frame(uint8_t *out, uint8_t type, uint16_t chan, const void *d,
		    size_t n)
{
	proto_encode_hdr(out, type, chan, (uint32_t)n);
	memcpy(out + PROTO_HDR_LEN, d, n);
	return PROTO_HDR_LEN + n;
}

/* A relay in a child, its policy allowing host.ccvm.internal on port;
 * sv[0] is the guest's end of the port (sv[1] is closed). */
static pid_t relay_start(uint16_t port, struct egress_policy **p, int sv[2])
{
	char *allow[] = {"host.ccvm.internal"};
	struct cfg_strlist l = {.v = allow, .n = 1};
	struct ccvm_err e = {0};
	assert_int_equal(egress_policy_new(&l, &port, 1, p, &e), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
			 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(sv[0]);
		signal(SIGPIPE, SIG_IGN); /* as in a session (blocked there) */
		_exit(egress_run(sv[1], *p, NULL, NULL, -1) < 0 ? 1 : 0);
	}
	close(sv[1]);
	return pid;
}

/*
 * Optimistic open: the guest sends NET_OPEN, the first data and its FIN in
 * one write.  Allowed: the data reaches the server once connected, the
 * reply comes back.  Refused: OPEN_FAIL, and the data that came with the
 * open goes nowhere (no connection is made at all); a refused plaintext
 * HTTP request is answered 403 with the reason instead, and a refused open
 * that sends nothing gets its OPEN_FAIL after EGRESS_SNIFF_WAIT_MS.
 */
static void test_relay_optimistic_open(void **state)
{
	(void)state;
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_in la = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t ll = sizeof(la);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&la, sizeof(la)), 0);
	assert_int_equal(listen(lfd, 8), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&la, &ll), 0);
	uint16_t port = ntohs(la.sin_port);

	struct egress_policy *p = NULL;
	int sv[2];
	pid_t pid = relay_start(port, &p, sv);

	static uint8_t out[512];
	size_t n = 0;
	uint8_t op[PROTO_NET_OPEN_MAX], fin = PROTO_NET_FIN;
	struct proto_net_open o = {.family = AF_INET, .port = port};
	inet_pton(AF_INET, "192.0.2.2", o.addr); /* host.ccvm.internal */
	n += frame(out + n, PROTO_NET_OPEN, 5, op,
		   proto_net_open_encode(&o, op));
	n += frame(out + n, PROTO_NET_DATA, 5, "ping", 4);
	n += frame(out + n, PROTO_NET_CLOSE, 5, &fin, 1);
	inet_pton(AF_INET, "127.0.0.1", o.addr); /* host loopback: refused */
	n += frame(out + n, PROTO_NET_OPEN, 6, op,
		   proto_net_open_encode(&o, op));
	n += frame(out + n, PROTO_NET_DATA, 6, "secret", 6);
	static const char get[] = "GET /x HTTP/1.1\r\nHost: h.test\r\n\r\n";
	n += frame(out + n, PROTO_NET_OPEN, 7, op,
		   proto_net_open_encode(&o, op));
	n += frame(out + n, PROTO_NET_DATA, 7, get, sizeof(get) - 1);
	n += frame(out + n, PROTO_NET_OPEN, 8, op,
		   proto_net_open_encode(&o, op));
	long long t_sent = util_now_ms();
	assert_int_equal(write(sv[0], out, n), (ssize_t)n);

	/* The allowed stream's data and FIN reach the server. */
	struct pollfd pl = {.fd = lfd, .events = POLLIN};
	assert_int_equal(poll(&pl, 1, 5000), 1);
	int c = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	assert_true(c >= 0);
	char got[16];
	size_t gl = 0;
	ssize_t k;
	while ((k = read(c, got + gl, sizeof(got) - gl)) > 0)
		gl += (size_t)k;
	assert_int_equal(gl, 4);
	assert_memory_equal(got, "ping", 4);
	assert_int_equal(write(c, "pong", 4), 4);
	close(c);

	static struct proto_reader r;
	proto_reader_init(&r);
	bool ok5 = false, fail6 = false, fin5 = false, ok7 = false;
	bool fin7 = false, fail8 = false;
	char reply[8] = {0}, answer[1024] = {0};
	long long t_fail8 = 0;
	while (!(fail6 && fin5 && fin7 && fail8)) {
		struct proto_msg m;
		next_msg(&r, sv[0], &m);
		if (m.type == PROTO_NET_OPEN_FAIL) {
			assert_true(m.chan == 6 || m.chan == 8);
			assert_int_equal(m.data[0], PROTO_NET_FAIL_POLICY);
			if (m.chan == 8) {
				fail8 = true;
				t_fail8 = util_now_ms();
			}
			fail6 |= m.chan == 6;
		} else if (m.type == PROTO_NET_OPEN_OK) {
			assert_true(m.chan == 5 || m.chan == 7);
			ok5 |= m.chan == 5;
			ok7 |= m.chan == 7;
		} else if (m.type == PROTO_NET_DATA && m.chan == 7) {
			assert_true(ok7);
			assert_true(m.len < sizeof(answer));
			memcpy(answer, m.data, m.len);
		} else if (m.type == PROTO_NET_DATA) {
			assert_int_equal(m.chan, 5);
			assert_true(ok5);
			assert_int_equal(m.len, 4);
			memcpy(reply, m.data, 4);
		} else if (m.type == PROTO_NET_CLOSE) {
			assert_true(m.chan == 5 || m.chan == 7);
			assert_int_equal(m.data[0], PROTO_NET_FIN);
			fin5 |= m.chan == 5;
			fin7 |= m.chan == 7;
		}
	}
	assert_string_equal(reply, "pong");
	print_message("# refused HTTP: %s\n", answer);
	assert_true(strncmp(answer, "HTTP/1.1 403 ", 13) == 0);
	assert_non_null(strstr(answer, "\r\n\r\nccvm: blocked: "));
	/* Nothing sent: refused once the wait for first bytes is over. */
	assert_true(t_fail8 - t_sent >= EGRESS_SNIFF_WAIT_MS - 50);
	/* The refused open made no connection. */
	assert_int_equal(poll(&pl, 1, 200), 0);

	close(sv[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	close(lfd);
	egress_policy_free(p);
}

/* Writes what the non-blocking fd takes of buf; the count. */
static size_t write_some(int fd, const uint8_t *buf, size_t len)
{
	ssize_t k = write(fd, buf, len);
	return k > 0 ? (size_t)k : 0;
}

/*
 * A guest that asks and never reads the answers: each refused NET_OPEN
 * (16 bytes) earns a NET_OPEN_FAIL several times its size.  The relay must
 * stop reading the port once its queue for the guest is full, so the
 * guest's writes stall after a few MiB at most (unbounded, the relay would
 * take all 32 MiB, queueing more than that).  Once the guest reads the
 * answers, the relay reads on.
 */
static void test_relay_bounded_answers(void **state)
{
	(void)state;
	struct egress_policy *p = NULL;
	int sv[2];
	pid_t pid = relay_start(80, &p, sv);
	assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);

	/* 4096 opens of 169.254.169.254:80 (metadata: refused). */
	static uint8_t out[4096 * (PROTO_HDR_LEN + 8)];
	size_t n = 0;
	uint8_t op[PROTO_NET_OPEN_MAX];
	struct proto_net_open o = {.family = AF_INET, .port = 80};
	inet_pton(AF_INET, "169.254.169.254", o.addr);
	for (uint16_t i = 0; i < 4096; i++)
		n += frame(out + n, PROTO_NET_OPEN, i, op,
			   proto_net_open_encode(&o, op));
	assert_int_equal(n, sizeof(out));

	size_t sent = 0, off = 0;
	long long idle_since = util_now_ms();
	while (sent < (32u << 20) && util_now_ms() - idle_since < 1000) {
		size_t k = write_some(sv[0], out + off, sizeof(out) - off);
		if (k) {
			sent += k;
			off = (off + k) % sizeof(out);
			idle_since = util_now_ms();
		} else {
			poll(NULL, 0, 10);
		}
	}
	print_message("# the guest got %zu bytes of requests in\n", sent);
	assert_true(sent < (4u << 20));

	/* Reading the answers lets the relay read again. */
	static uint8_t sink[65536];
	size_t got = 0, more = 0;
	long long deadline = util_now_ms() + 10000;
	while (more == 0 && util_now_ms() < deadline) {
		ssize_t k = read(sv[0], sink, sizeof(sink));
		if (k > 0)
			got += (size_t)k;
		else
			poll(NULL, 0, 10);
		more = write_some(sv[0], out + off, sizeof(out) - off);
	}
	assert_true(got > 0);
	assert_true(more > 0);

	close(sv[0]);
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	egress_policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_base_url),
	    cmocka_unit_test(test_relay_optimistic_open),
	    cmocka_unit_test(test_relay_bounded_answers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
