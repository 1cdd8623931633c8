/*
 * The agent's API: which credential the session has, whether ccvm's API
 * proxy carries it (net/apiproxy.h, docs/apiproxy.md), and the
 * ANTHROPIC_BASE_URL the guest gets.  Decided before anything starts.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "net/egress.h"
#include "session/internal.h"
#include "setup/cred.h"
#include "sys/procs.h"
#include "term/say.h"
#include "util.h"

void session_take_credentials(struct session *s)
{
	/* Out of the environment before anything is forked: no child
	 * inherits them there, /proc/PID/environ no longer shows them. */
	s->key = procs_take_secret(s->cfg->api_key_variable, &s->key_len);
	s->auth_token = procs_take_secret("ANTHROPIC_AUTH_TOKEN", &s->auth_len);
	s->oauth_token =
	    procs_take_secret("CLAUDE_CODE_OAUTH_TOKEN", &s->oauth_len);
}

/* ANTHROPIC_BASE_URL from the environment, else from the host's
 * ~/.claude/settings.json "env" (malloc'ed), or NULL. */
static char *base_url(const char *home)
{
	const char *e = getenv("ANTHROPIC_BASE_URL");
	if (e && *e)
		return strdup(e);
	if (!home || home[0] != '/')
		return NULL;
	autofree char *path = util_path_join(home, ".claude/settings.json");
	char *v = path ? cred_settings_env(path, "ANTHROPIC_BASE_URL") : NULL;
	/* home-manager links the file into the Nix store (root's, read
	 * only): read it there, as staging does. */
	autofree char *real = !v && path ? realpath(path, NULL) : NULL;
	if (real && strncmp(real, "/nix/store/", 11) == 0)
		v = cred_settings_env(real, "ANTHROPIC_BASE_URL");
	if (v && !*v) {
		free(v);
		v = NULL;
	}
	return v;
}

/* The host's login, when it has one the proxy can use; warns once when
 * it has expired already (the host may renew it during the session). */
static bool login_usable(struct session *s, const char *home)
{
	if (!home || home[0] != '/')
		return false;
	char *path = util_path_join(home, ".claude/.credentials.json");
	static char tok[8192];
	long long exp = 0;
	const char *why = NULL;
	int r = path ? cred_login_read(path, tok, sizeof(tok), &exp, &why)
		     : -ENOMEM;
	explicit_bzero(tok, sizeof(tok));
	if (r < 0) {
		if (r != -ENOENT && r != -ENODATA)
			say_warn("~/.claude/.credentials.json: %s; the agent "
				 "logs in inside the VM",
				 why ? why : strerror(-r));
		free(path);
		return false;
	}
	if (exp > 0 && exp <= (long long)time(NULL) * 1000)
		say_warn("the host's Claude login has expired: run `claude` on "
			 "the host to renew it (the API proxy reads it again "
			 "at each request)");
	s->proxy.login_path = s->proxy_owned[0] = path;
	return true;
}

static enum apiproxy_cred pick(struct session *s, const char *home)
{
	if (s->auth_token && s->auth_len)
		return APIPROXY_AUTH_TOKEN;
	if (s->key && s->key_len)
		return APIPROXY_API_KEY;
	if (s->oauth_token && s->oauth_len)
		return APIPROXY_OAUTH_TOKEN;
	return login_usable(s, home) ? APIPROXY_LOGIN : APIPROXY_NONE;
}

static const char *env_any(const char *a, const char *b)
{
	const char *v = getenv(a);
	if (!v || !*v)
		v = b ? getenv(b) : NULL;
	return v && *v ? v : NULL;
}

static char *own(struct session *s, int i, const char *v)
{
	s->proxy_owned[i] = v ? strdup(v) : NULL;
	return s->proxy_owned[i];
}

/* The proxy on: the upstream, the placeholder, the host's settings. */
static int proxy_setup(struct session *s, enum apiproxy_cred cred,
		       const char *url, struct ccvm_err *err)
{
	struct apiproxy_conf *c = &s->proxy;
	const char *why = NULL;
	c->cred = cred;
	if (apiproxy_upstream(url ? url : APIPROXY_UPSTREAM, c->upstream,
			      sizeof(c->upstream), &why) < 0)
		return ccvm_err_set(err, EINVAL, "ANTHROPIC_BASE_URL: %s: %s",
				    why, url);
	if (apiproxy_placeholder(cred, c->placeholder, sizeof(c->placeholder)) <
	    0)
		return ccvm_err_set(err, EIO,
				    "no random bytes for the API "
				    "proxy's placeholder");
	if (cred == APIPROXY_AUTH_TOKEN) {
		c->secret = s->auth_token;
		c->secret_len = s->auth_len;
	} else if (cred == APIPROXY_API_KEY) {
		c->secret = s->key;
		c->secret_len = s->key_len;
	} else if (cred == APIPROXY_OAUTH_TOKEN) {
		c->secret = s->oauth_token;
		c->secret_len = s->oauth_len;
	}
	c->https_proxy = own(s, 1, env_any("https_proxy", "HTTPS_PROXY"));
	c->no_proxy = own(s, 2, env_any("no_proxy", "NO_PROXY"));
	c->ca_file = own(s, 3, env_any("SSL_CERT_FILE", NULL));
	c->extra_ca = own(s, 4, env_any("NODE_EXTRA_CA_CERTS", NULL));
	s->api_url = strdup(EGRESS_PROXY_URL);
	if (!s->api_url)
		return ccvm_err_sys(err, ENOMEM, "the API proxy");
	util_strlcpy(s->api_host, EGRESS_PROXY_NAME, sizeof(s->api_host));
	s->api_port = 0;
	s->proxy_on = true;
	return 0;
}

int session_check_api(struct session *s, struct ccvm_err *err)
{
	const char *home = getenv("HOME");
	autofree char *url = base_url(home);
	util_strlcpy(s->api_host, STAGE_DEFAULT_API_HOST, sizeof(s->api_host));
	enum apiproxy_cred cred =
	    s->cfg->credential_proxy ? pick(s, home) : APIPROXY_NONE;
	if (cred != APIPROXY_NONE)
		return proxy_setup(s, cred, url, err);
	/* The agent holds the key itself (credentialProxy=false), or has
	 * none and logs in inside the VM. */
	if (!url)
		return 0;
	if (egress_base_url(url, s->api_host, sizeof(s->api_host), &s->api_port,
			    &s->api_url) < 0 ||
	    s->api_port == 0)
		return ccvm_err_set(err, EINVAL,
				    "ANTHROPIC_BASE_URL: expected "
				    "http(s)://host[:port][/path], got \"%s\"",
				    url);
	return 0;
}

void session_api_free(struct session *s)
{
	for (size_t i = 0; i < ARRAY_LEN(s->proxy_owned); i++) {
		free(s->proxy_owned[i]);
		s->proxy_owned[i] = NULL;
	}
	explicit_bzero(s->proxy.placeholder, sizeof(s->proxy.placeholder));
}
