#define _GNU_SOURCE
/*
 * ccvm's API proxy (see apiproxy.h and docs/apiproxy.md): the pieces the
 * session uses (placeholder, upstream URL), and the proxy in the relay's
 * process: its credential, counters, the pool of libcurl easy handles.
 * A guest connection is served by apiproxy_conn.c, on a thread of its own.
 *
 * The upstream side is libcurl.  Its easy handles live in a pool: a
 * request takes the one used last (with its live upstream connection)
 * and gives it back, so sequential requests, from any guest connection,
 * reuse one upstream connection: one TLS handshake per session, not per
 * request.  (libcurl does not support sharing a connection cache between
 * threads; TLS sessions and the DNS cache are shared, so a second
 * connection for concurrent requests resumes the TLS session.)
 */
#include "net/apiproxy_int.h"

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

#include "sys/procs.h"
#include "util.h"

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

long long apiproxy_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void apiproxy_note_error(struct apiproxy *p, const char *what)
{
	pthread_mutex_lock(&p->mu);
	p->errors++;
	util_strlcpy(p->last_error, what, sizeof(p->last_error));
	pthread_mutex_unlock(&p->mu);
}

/* An easy handle from the pool (the one used last), or a new one. */
CURL *apiproxy_pool_get(struct apiproxy *p)
{
	CURL *h = NULL;
	pthread_mutex_lock(&p->mu);
	if (p->n_pool)
		h = p->pool[--p->n_pool];
	pthread_mutex_unlock(&p->mu);
	return h ? h : curl_easy_init();
}

void apiproxy_pool_put(struct apiproxy *p, CURL *h)
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
	int r;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		r = -errno;
	else
		r = apiproxy_conn_start(p, sv[1]);
	if (r == 0) {
		util_set_nonblock(sv[0], true);
		return sv[0];
	}
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
