/*
 * The network workload for bench/egress: one static binary that is both the
 * test server (on the host's loopback) and the client (in the guest), so the
 * two guests under comparison run exactly the same code.
 *
 *   netbench serve              listen on 127.0.0.1, print the port, serve
 *                               "GET /N" with N bytes (HTTP/1.0, then close)
 *   netbench get IP PORT BYTES  one download; prints "get SECONDS MB/s"
 *   netbench rtt IP PORT COUNT  COUNT sequential connections, each a short
 *                               request and response; prints
 *                               "rtt MEDIAN_MS MEAN_MS" per connection
 *
 * IP is numeric (the baseline guest has no resolver). Timing uses the
 * guest's CLOCK_MONOTONIC, so boot time is not part of any figure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static char buf[1 << 16];

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void serve_one(int c)
{
	char req[1024];
	size_t got = 0;
	while (got < sizeof(req) - 1) {
		ssize_t r = read(c, req + got, sizeof(req) - 1 - got);
		if (r <= 0)
			return;
		got += (size_t)r;
		req[got] = '\0';
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	unsigned long long n = 0;
	if (sscanf(req, "GET /%llu", &n) != 1)
		return;
	char head[128];
	int hl = snprintf(head, sizeof(head),
			  "HTTP/1.0 200 OK\r\nContent-Length: %llu\r\n\r\n", n);
	if (write_all(c, head, (size_t)hl) < 0)
		return;
	while (n > 0) {
		size_t k = n < sizeof(buf) ? (size_t)n : sizeof(buf);
		if (write_all(c, buf, k) < 0)
			return;
		n -= k;
	}
}

static int serve(void)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	if (s < 0 ||
	    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) ||
	    bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, 64) ||
	    getsockname(s, (struct sockaddr *)&a, &al)) {
		perror("netbench serve");
		return 1;
	}
	memset(buf, 'x', sizeof(buf));
	printf("%u\n", ntohs(a.sin_port));
	fflush(stdout);
	for (;;) {
		int c = accept4(s, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("netbench accept");
			return 1;
		}
		serve_one(c);
		close(c);
	}
}

/* One request for BYTES; returns the body bytes received or -1. */
static long long fetch(const struct sockaddr_in *a, unsigned long long bytes)
{
	int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0 || connect(s, (const struct sockaddr *)a, sizeof(*a))) {
		if (s >= 0)
			close(s);
		return -1;
	}
	int one = 1;
	setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	char req[128];
	int rl = snprintf(req, sizeof(req),
			  "GET /%llu HTTP/1.0\r\nHost: bench\r\n\r\n", bytes);
	if (write_all(s, req, (size_t)rl) < 0) {
		close(s);
		return -1;
	}
	long long total = 0, body = -1;
	char head[256];
	size_t hl = 0;
	for (;;) {
		ssize_t r = read(s, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		total += r;
		if (body < 0) {
			size_t k = (size_t)r;
			if (k > sizeof(head) - 1 - hl)
				k = sizeof(head) - 1 - hl;
			memcpy(head + hl, buf, k);
			hl += k;
			head[hl] = '\0';
			char *e = strstr(head, "\r\n\r\n");
			if (e)
				body =
				    total - (long long)((size_t)(e + 4 - head));
		} else {
			body += r;
		}
	}
	close(s);
	return body;
}

static int cmp(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return (a > b) - (a < b);
}

int main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	if (argc == 2 && !strcmp(argv[1], "serve"))
		return serve();
	if (argc != 5) {
		fprintf(stderr, "usage: netbench serve | get IP PORT BYTES | "
				"rtt IP PORT COUNT\n");
		return 2;
	}
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port =
				    htons((unsigned short)atoi(argv[3]))};
	if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) {
		fprintf(stderr, "netbench: bad address %s\n", argv[2]);
		return 2;
	}
	unsigned long long n = strtoull(argv[4], NULL, 10);
	if (!strcmp(argv[1], "get")) {
		double t0 = now();
		long long got = fetch(&a, n);
		double t = now() - t0;
		if (got != (long long)n) {
			fprintf(stderr, "netbench: got %lld of %llu bytes\n",
				got, n);
			return 1;
		}
		printf("get %.4f %.2f\n", t, (double)n / t / 1e6);
		return 0;
	}
	if (!strcmp(argv[1], "rtt") && n > 0 && n <= 100000) {
		double *ms = calloc(n, sizeof(*ms)), sum = 0;
		if (!ms)
			return 1;
		for (unsigned long long i = 0; i < n; i++) {
			double t0 = now();
			if (fetch(&a, 64) != 64) {
				fprintf(stderr,
					"netbench: round trip %llu "
					"failed\n",
					i);
				return 1;
			}
			ms[i] = (now() - t0) * 1e3;
			sum += ms[i];
		}
		qsort(ms, n, sizeof(*ms), cmp);
		double med =
		    n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2;
		printf("rtt %.3f %.3f\n", med, sum / (double)n);
		return 0;
	}
	fprintf(stderr, "netbench: bad arguments\n");
	return 2;
}
