#pragma once
/*
 * ccvm's API proxy (issue 22, docs/apiproxy.md): the agent in the guest
 * never holds the user's credential.  Its ANTHROPIC_BASE_URL names
 * http://api.ccvm.internal, which only exists inside the VM: the egress
 * relay (egress.h) serves a connection there itself, over a socketpair
 * to one of this module's threads, so no port on the host is opened.
 * The agent's credential variable holds a per-session random placeholder;
 * every request must carry it (checked in constant time), loses whatever
 * credential headers the guest sent, gains the real one and goes to the
 * one upstream origin over HTTPS with certificate verification (libcurl),
 * its response relayed back as it arrives.
 *
 * The request side is parsed by http.h (strict, bounded, fuzzed); the
 * guest is hostile, the upstream is trusted as much as the user trusts
 * the API.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "err.h"

/* Which credential the proxy adds, in the order Claude Code itself
 * prefers them (docs/apiproxy.md). */
enum apiproxy_cred {
	APIPROXY_NONE = 0,
	APIPROXY_AUTH_TOKEN,  /* ANTHROPIC_AUTH_TOKEN: Authorization: Bearer */
	APIPROXY_API_KEY,     /* apiKeyVariable: x-api-key */
	APIPROXY_OAUTH_TOKEN, /* CLAUDE_CODE_OAUTH_TOKEN: Bearer */
	APIPROXY_LOGIN,	      /* the host's ~/.claude/.credentials.json */
};

#define APIPROXY_UPSTREAM	 "https://api.anthropic.com"
#define APIPROXY_CONN_MAX	 32 /* guest connections served at once */
#define APIPROXY_PLACEHOLDER_MAX 64
#define APIPROXY_URL_MAX	 2048

/* What the proxy needs; filled by the session before the relay starts.
 * Pointers must stay valid in the relay's process (forked). */
struct apiproxy_conf {
	enum apiproxy_cred cred;
	const char *secret; /* the credential (procs.h), not for LOGIN */
	size_t secret_len;
	const char *login_path; /* APIPROXY_LOGIN: read at each request */
	char placeholder[APIPROXY_PLACEHOLDER_MAX];
	char upstream[APIPROXY_URL_MAX]; /* scheme://host[:port][/prefix] */
	/* The host's proxy and CA settings, or NULL. */
	const char *https_proxy, *no_proxy, *ca_file, *extra_ca;
};

/* The variable the agent reads its credential from, for cred. */
const char *apiproxy_guest_var(enum apiproxy_cred cred);
/* How messages name cred's source ("ANTHROPIC_API_KEY", "the host's
 * Claude login"); key_var names the API key's variable. */
const char *apiproxy_cred_name(enum apiproxy_cred cred, const char *key_var);

/*
 * A fresh placeholder for cred: a recognisable prefix and 128 random bits
 * in hex, from getrandom.  0 or -errno.
 */
int apiproxy_placeholder(enum apiproxy_cred cred, char *out, size_t n);

/*
 * The upstream base from a URL (the host's ANTHROPIC_BASE_URL): https://
 * anywhere, http:// only on the host's loopback (localhost, 127/8, [::1]);
 * no user info, no query or fragment.  Copies it to out without a
 * trailing slash.  0, or -EINVAL with *why a static reason.
 */
int apiproxy_upstream(const char *url, char *out, size_t n, const char **why);

/* Constant-time comparison of two byte strings (the length is public). */
bool apiproxy_ct_equal(const char *a, size_t an, const char *b, size_t bn);

struct apiproxy;

/*
 * In the relay's process: copies the credential out of conf (and then
 * wipes procs.h's secrets there), initialises libcurl.  NULL on failure.
 */
struct apiproxy *apiproxy_new(const struct apiproxy_conf *conf);

/*
 * A new guest connection: returns the relay's end of a socketpair
 * (non-blocking, close-on-exec) whose other end a new thread serves, or
 * -EMFILE when APIPROXY_CONN_MAX connections are open, or -errno.
 */
int apiproxy_accept(struct apiproxy *p);

/*
 * Waits (up to two seconds) for the connections' threads to end, then
 * wipes the credential and frees everything; a thread still running
 * keeps the proxy (it is leaked, not freed under it).  The relay does not
 * call it: its process ends instead.
 */
void apiproxy_free(struct apiproxy *p);

/* One line when any request failed on the way to the upstream:
 *   ccvm: API proxy: 12 requests, 1.2 MB; 2 upstream errors (last: ...)
 */
void apiproxy_summary(struct apiproxy *p, FILE *out);
