#pragma once
/*
 * What the API proxy's parts share (apiproxy.h is the relay's view):
 * apiproxy.c keeps the proxy, its credential, counters and libcurl's
 * handles; apiproxy_conn.c serves one guest connection on its thread;
 * apiproxy_out.c writes what goes back to the guest.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "net/apiproxy.h"
#include "net/http.h"

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

/* apiproxy_out.c: to the guest.  Pieces in one sendmsg (false once the
 * guest has gone); one piece; ccvm's own answer, API-shaped; the
 * upstream's response head; libcurl's header and body callbacks. */
bool apiproxy_putv(struct conn *c, struct iovec *iov, int n);
bool apiproxy_put(struct conn *c, const void *d, size_t n);
void apiproxy_answer_error(struct conn *c, int status, const char *type,
			   const char *msg, bool close_after);
bool apiproxy_send_head(struct conn *c);
size_t apiproxy_on_header(char *b, size_t size, size_t n, void *ud);
size_t apiproxy_on_data(char *b, size_t size, size_t n, void *ud);

/* apiproxy_conn.c: serves fd (the proxy's end of a guest connection) on
 * a thread of its own, which closes it; 0 or -errno. */
int apiproxy_conn_start(struct apiproxy *p, int fd);

/* apiproxy.c: an easy handle from the pool (the one used last, with its
 * live upstream connection), or a new one; and back into the pool. */
CURL *apiproxy_pool_get(struct apiproxy *p);
void apiproxy_pool_put(struct apiproxy *p, CURL *h);
/* Counts an upstream error for the exit summary, keeping its text. */
void apiproxy_note_error(struct apiproxy *p, const char *what);
long long apiproxy_wall_ms(void);
