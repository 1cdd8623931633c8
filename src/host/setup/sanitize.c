#define _GNU_SOURCE
/* The JSON sanitizers, and the rules they share with sanitize_git.c
 * (sanitize.h, sanitize_rules.h). */
#include "setup/sanitize.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "setup/sanitize_rules.h"
#include "util.h"

/* ---- growable byte buffer ---------------------------------------------- */

int sanitize_buf_add(struct sanitize_buf *b, const char *s, size_t n)
{
	if (n > SIZE_MAX - b->len - 1)
		return -ENOMEM;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *p = util_regrow(b->p, b->len, b->cap, cap);
		if (!p)
			return -ENOMEM;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int sanitize_buf_str(struct sanitize_buf *b, const char *s)
{
	return sanitize_buf_add(b, s, strlen(s));
}

void sanitize_buf_free(struct sanitize_buf *b)
{
	if (b->p) {
		explicit_bzero(b->p, b->cap);
		free(b->p);
	}
	b->p = NULL;
	b->len = b->cap = 0;
}

/* ---- shared rules ------------------------------------------------------- */

/* true when s holds "scheme://userinfo@host": a user name, a token
 * ("https://ghp_x@github.com") or user:password.  Any of them is treated
 * as a credential: a bare token looks exactly like a user name. */
bool sanitize_url_userinfo(const char *s, size_t n)
{
	const char *end = s + n;
	const char *p = s;
	while ((p = memmem(p, (size_t)(end - p), "://", 3)) != NULL) {
		p += 3;
		for (const char *q = p; q < end; q++) {
			if (*q == '/' || *q == '?' || *q == '#' ||
			    isspace((unsigned char)*q))
				break;
			if (*q == '@')
				return true;
		}
	}
	return false;
}

/* An Anthropic API or OAuth key ("sk-ant-api03-...", "sk-ant-oat01-..."). */
static bool has_anthropic_key(const char *s, size_t n)
{
	return memmem(s, n, "sk-ant-", 7) != NULL;
}

/* Appends s to a warning: printable ASCII as it is, everything else
 * (control characters, bytes of multi-byte characters) as '?', so a name
 * never carries terminal escapes.  Truncated to fit out[cap]. */
size_t sanitize_printable(char *out, size_t cap, size_t at, const char *s,
			  size_t n)
{
	for (size_t i = 0; i < n && at + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		out[at++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	if (at < cap)
		out[at] = '\0';
	return at;
}

/*
 * Names of credentials (best-effort).  A name is split into words: runs of
 * letters or of digits, split again at camelCase ("dbPassword": db,
 * Password; "APIKey": API, Key); every other character separates.  A word
 * marks a credential when it is one of secret_words, or ends in one of
 * secret_suffixes (compounds such as PGPASSWORD or GITHUBTOKEN), or is
 * STRING after CONNECTION.  Whole words only for the short ones, so PWD
 * matches DB_PWD while PATH, AUTHOR, OAUTH, BYPASS and KEYBOARD do not
 * match PAT, AUTH, PASS and KEY; TOKENS is a count (MAX_THINKING_TOKENS).
 */
static const char *const secret_words[] = {
    "key",	"apikey",  "token",	    "secret",	  "secrets",
    "password", "passwd",  "pass",	    "pwd",	  "pat",
    "dsn",	"auth",	   "authorization", "credential", "credentials",
    "cookie",	"cookies", "header",	    "headers",	  "webhook",
    "webhooks", "connstr",
};
static const char *const secret_suffixes[] = {
    "password", "passwd",	    "token", "secret", "apikey",
    "webhook",	"connectionstring",
};

bool sanitize_eq_ci(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

bool sanitize_ends_with_ci(const char *s, size_t n, const char *suffix)
{
	size_t m = strlen(suffix);
	return n >= m && strncasecmp(s + n - m, suffix, m) == 0;
}

/* The next word of s from *pos (see above); false at the end. */
static bool next_word(const char *s, size_t *pos, const char **w, size_t *n)
{
	size_t i = *pos;
	while (s[i] && !isalnum((unsigned char)s[i]))
		i++;
	if (!s[i])
		return false;
	size_t b = i++;
	bool digit = isdigit((unsigned char)s[b]);
	for (; isalnum((unsigned char)s[i]); i++) {
		unsigned char c = (unsigned char)s[i];
		unsigned char p = (unsigned char)s[i - 1];
		if ((bool)isdigit(c) != digit)
			break;
		if (!digit && isupper(c) &&
		    (islower(p) ||
		     (isupper(p) && islower((unsigned char)s[i + 1]))))
			break;
	}
	*w = s + b;
	*n = i - b;
	*pos = i;
	return true;
}

/* true when s[n] equals one of v[k], case-insensitively. */
bool sanitize_in_list_ci(const char *s, size_t n, const char *const *v,
			 size_t k)
{
	for (size_t i = 0; i < k; i++)
		if (sanitize_eq_ci(s, n, v[i]))
			return true;
	return false;
}

static bool secret_word(const char *w, size_t n, const char *prev,
			size_t prev_n, bool member)
{
	if (sanitize_in_list_ci(w, n, secret_words, ARRAY_LEN(secret_words)))
		return true;
	for (size_t i = 0; i < ARRAY_LEN(secret_suffixes); i++)
		if (sanitize_ends_with_ci(w, n, secret_suffixes[i]))
			return true;
	if (member && sanitize_eq_ci(w, n, "tokens"))
		return true;
	return prev && sanitize_eq_ci(prev, prev_n, "connection") &&
	       sanitize_eq_ci(w, n, "string");
}

/* Environment names (DB_PWD, SLACK_WEBHOOK_URL): any word counts.  JSON
 * member names (accessToken, dbPwd, connectionString): the last word, the
 * one that says what the member is (claudeCodeFirstTokenDate is a date),
 * and TOKENS too (their counts are numbers, kept by harmless_value). */
static bool secret_name(const char *name, bool member)
{
	size_t pos = 0, n, prev_n = 0;
	const char *w, *prev = NULL;
	bool hit = false;
	while (next_word(name, &pos, &w, &n)) {
		hit = secret_word(w, n, prev, prev_n, member);
		if (hit && !member)
			return true;
		prev = w;
		prev_n = n;
	}
	return hit;
}

/* Values no credential can be: JSON booleans and null, flag strings ("1",
 * "true", "off", "") and, for members, numbers (counts).  So
 * CLAUDE_CODE_SKIP_BEDROCK_AUTH=1 and shiftEnterKeyBindingInstalled stay. */
static bool harmless_value(const json_t *v, bool member)
{
	static const char *const flags[] = {"",	   "0",	 "1",  "true", "false",
					    "yes", "no", "on", "off"};
	if (json_is_boolean(v) || json_is_null(v))
		return true;
	if (json_is_number(v))
		return member;
	const char *s = json_string_value(v);
	if (!s)
		return false;
	return sanitize_in_list_ci(s, json_string_length(v), flags,
				   ARRAY_LEN(flags));
}

/* ---- JSON files: where a removal happened, for its warning ----------- */

struct jctx {
	FILE *warn;
	const char *file; /* "~/.claude.json" or "settings.json" */
	char path[256];	  /* "projects./p.mcpServers.x", printable */
	size_t len;
};

/* Appends ".name" (no dot at the start) to c->path; returns the length to
 * restore with jpop. */
static size_t jpush(struct jctx *c, const char *name)
{
	size_t old = c->len;
	if (c->len)
		c->len = sanitize_printable(c->path, sizeof(c->path), c->len,
					    ".", 1);
	c->len = sanitize_printable(c->path, sizeof(c->path), c->len, name,
				    strlen(name));
	return old;
}

static size_t jpush_index(struct jctx *c, size_t i)
{
	char tmp[32];
	int k = snprintf(tmp, sizeof(tmp), "[%zu]", i);
	size_t old = c->len;
	c->len = sanitize_printable(c->path, sizeof(c->path), c->len, tmp,
				    (size_t)k);
	return old;
}

static void jpop(struct jctx *c, size_t old)
{
	c->len = old;
	c->path[old] = '\0';
}

static void jwarn(const struct jctx *c, const char *why)
{
	if (c->warn)
		fprintf(c->warn, "ccvm: warning: %s: %s not staged (%s)\n",
			c->file, c->path, why);
}

/* A reason when any string in v (values, array elements, member names)
 * holds an Anthropic key or a URL with userinfo; NULL otherwise. */
static const char *credential_inside(const json_t *v)
{
	if (json_is_string(v)) {
		const char *s = json_string_value(v);
		size_t n = json_string_length(v);
		if (has_anthropic_key(s, n))
			return "holds an Anthropic API key";
		if (sanitize_url_userinfo(s, n))
			return "holds a URL with a user, token or password "
			       "in it";
		return NULL;
	}
	if (json_is_array(v)) {
		size_t i;
		json_t *e;
		json_array_foreach(v, i, e)
		{
			const char *why = credential_inside(e);
			if (why)
				return why;
		}
		return NULL;
	}
	const char *key;
	json_t *m;
	json_object_foreach((json_t *)v, key, m)
	{
		size_t n = strlen(key);
		if (has_anthropic_key(key, n) || sanitize_url_userinfo(key, n))
			return "a member name holds a credential";
		const char *why = credential_inside(m);
		if (why)
			return why;
	}
	return NULL;
}

/* Removes members of obj named like credentials (see secret_name) unless
 * their value is harmless; with deep, also inside nested objects and
 * arrays. */
static void drop_secret_members(struct jctx *c, json_t *obj, bool deep)
{
	const char *key;
	json_t *val;
	void *tmp;
	if (json_is_array(obj) && deep) {
		size_t i;
		json_array_foreach(obj, i, val)
		{
			size_t old = jpush_index(c, i);
			drop_secret_members(c, val, deep);
			jpop(c, old);
		}
		return;
	}
	if (!json_is_object(obj))
		return;
	json_object_foreach_safe(obj, tmp, key, val)
	{
		size_t old = jpush(c, key);
		if (secret_name(key, true) && !harmless_value(val, true)) {
			jwarn(c, "looks like a credential");
			json_object_del(obj, key);
		} else if (deep) {
			drop_secret_members(c, val, deep);
		}
		jpop(c, old);
	}
}

/* Every MCP server entry: env and headers removed (they are where
 * credentials belong; quietly, that is expected), members named like
 * credentials removed at any depth, and the whole entry dropped when a
 * string anywhere in it (command, args, url, ...) still holds an Anthropic
 * key or a URL with userinfo: without that string the server would not
 * work anyway. */
static void clean_mcp_servers(struct jctx *c, json_t *servers)
{
	const char *name;
	json_t *srv;
	void *tmp;
	if (!json_is_object(servers))
		return;
	json_object_foreach_safe(servers, tmp, name, srv)
	{
		if (!json_is_object(srv))
			continue;
		size_t old = jpush(c, name);
		json_object_del(srv, "env");
		json_object_del(srv, "headers");
		drop_secret_members(c, srv, true);
		const char *why = credential_inside(srv);
		if (why) {
			jwarn(c, why);
			json_object_del(servers, name);
		}
		jpop(c, old);
	}
}

/* Removes every string holding an Anthropic key, anywhere in v (a key
 * pasted into a prompt ends up in projects.*.history). */
static void drop_anthropic_keys(struct jctx *c, json_t *v)
{
	if (json_is_array(v)) {
		size_t orig = 0;
		for (size_t i = 0; i < json_array_size(v); orig++) {
			json_t *e = json_array_get(v, i);
			size_t old = jpush_index(c, orig);
			if (json_is_string(e) &&
			    has_anthropic_key(json_string_value(e),
					      json_string_length(e))) {
				jwarn(c, "holds an Anthropic API key");
				json_array_remove(v, i);
			} else {
				drop_anthropic_keys(c, e);
				i++;
			}
			jpop(c, old);
		}
		return;
	}
	if (!json_is_object(v))
		return;
	const char *key;
	json_t *m;
	void *tmp;
	json_object_foreach_safe(v, tmp, key, m)
	{
		if (has_anthropic_key(key, strlen(key))) {
			if (c->warn)
				fprintf(c->warn,
					"ccvm: warning: %s: a member of %s "
					"named with an Anthropic API key not "
					"staged\n",
					c->file, c->len ? c->path : "the top");
			json_object_del(v, key);
			continue;
		}
		size_t old = jpush(c, key);
		if (json_is_string(m) &&
		    has_anthropic_key(json_string_value(m),
				      json_string_length(m))) {
			jwarn(c, "holds an Anthropic API key");
			json_object_del(v, key);
		} else {
			drop_anthropic_keys(c, m);
		}
		jpop(c, old);
	}
}

/* ---- ~/.claude.json ----------------------------------------------------- */

/* The two JSON files share their framing: a strict parse of one object
 * (duplicate keys rejected), and the sanitized result re-encoded with a
 * 2-space indent, member order kept and a trailing newline. */
static int load_object(const char *text, size_t len, json_t **root,
		       struct ccvm_err *err)
{
	json_error_t jerr;
	*root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
			   &jerr);
	if (!*root)
		return ccvm_err_set(err, EINVAL, "line %d column %d: %s",
				    jerr.line, jerr.column, jerr.text);
	if (!json_is_object(*root)) {
		json_decref(*root);
		return ccvm_err_set(err, EINVAL, "not a JSON object");
	}
	return 0;
}

/* Encodes root into *out and drops the reference. */
static int dump_object(json_t *root, char **out, size_t *out_len,
		       struct ccvm_err *err)
{
	char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!s)
		return ccvm_err_set(err, ENOMEM, "cannot encode JSON");
	size_t n = strlen(s);
	char *r = realloc(s, n + 2);
	if (!r) {
		explicit_bzero(s, n);
		free(s);
		return ccvm_err_set(err, ENOMEM, "cannot encode JSON");
	}
	r[n] = '\n';
	r[n + 1] = '\0';
	*out = r;
	*out_len = n + 1;
	return 0;
}

bool sanitize_key_tail(const char *key, size_t len, char *out)
{
	while (len > 0 && isspace((unsigned char)key[len - 1]))
		len--;
	while (len > 0 && isspace((unsigned char)*key)) {
		key++;
		len--;
	}
	size_t n = len < SANITIZE_KEY_TAIL ? len : SANITIZE_KEY_TAIL;
	memcpy(out, key + len - n, n);
	out[n] = '\0';
	return n > 0;
}

/* True when responses.approved holds tail. */
static bool key_approved(const json_t *responses, const char *tail)
{
	const json_t *approved = json_object_get(responses, "approved");
	size_t i;
	const json_t *v;
	json_array_foreach(approved, i, v)
	{
		if (json_is_string(v) &&
		    strcmp(json_string_value(v), tail) == 0)
			return true;
	}
	return false;
}

int sanitize_approve_key(char **json, size_t *len, const char *key_tail,
			 struct ccvm_err *err)
{
	json_t *root;
	int r = load_object(*json, *len, &root, err);
	if (r < 0)
		return r;
	if (json_object_set_new(root, "customApiKeyResponses",
				json_pack("{s:[s],s:[]}", "approved", key_tail,
					  "rejected")) < 0) {
		json_decref(root);
		return ccvm_err_set(err, ENOMEM, "cannot encode JSON");
	}
	char *out;
	size_t out_len;
	r = dump_object(root, &out, &out_len, err);
	if (r < 0)
		return r;
	explicit_bzero(*json, *len);
	free(*json);
	*json = out;
	*len = out_len;
	return 0;
}

int sanitize_claude_json(const char *text, size_t len, const char *key_tail,
			 FILE *warn, char **out, size_t *out_len,
			 struct ccvm_err *err)
{
	json_t *root;
	int r = load_object(text, len, &root, err);
	if (r < 0)
		return r;
	struct jctx c = {.warn = warn, .file = "~/.claude.json"};
	json_object_del(root, "primaryApiKey");
	bool approved =
	    key_tail &&
	    key_approved(json_object_get(root, "customApiKeyResponses"),
			 key_tail);
	json_object_del(root, "customApiKeyResponses");
	if (approved &&
	    json_object_set_new(root, "customApiKeyResponses",
				json_pack("{s:[s],s:[]}", "approved", key_tail,
					  "rejected")) < 0) {
		json_decref(root);
		return ccvm_err_set(err, ENOMEM, "cannot encode JSON");
	}
	drop_secret_members(&c, root, false);
	size_t old = jpush(&c, "oauthAccount");
	drop_secret_members(&c, json_object_get(root, "oauthAccount"), false);
	jpop(&c, old);
	old = jpush(&c, "mcpServers");
	clean_mcp_servers(&c, json_object_get(root, "mcpServers"));
	jpop(&c, old);
	json_t *projects = json_object_get(root, "projects");
	if (json_is_object(projects)) {
		const char *path;
		json_t *proj;
		json_object_foreach(projects, path, proj)
		{
			if (!json_is_object(proj))
				continue;
			old = jpush(&c, "projects");
			jpush(&c, path);
			drop_secret_members(&c, proj, false);
			jpush(&c, "mcpServers");
			clean_mcp_servers(&c,
					  json_object_get(proj, "mcpServers"));
			jpop(&c, old);
		}
	}
	drop_anthropic_keys(&c, root);
	return dump_object(root, out, out_len, err);
}

/* ---- ~/.claude/settings.json -------------------------------------------- */

/* An env entry that is a credential: its name (any word, see secret_name)
 * unless the value is a flag, or its value (an Anthropic key, a URL with
 * userinfo), whatever the name. */
static bool secret_env(const char *name, const json_t *val)
{
	const char *v = json_string_value(val);
	if (v && (has_anthropic_key(v, json_string_length(val)) ||
		  sanitize_url_userinfo(v, json_string_length(val))))
		return true;
	return secret_name(name, false) && !harmless_value(val, false);
}

int sanitize_settings_json(const char *text, size_t len, FILE *warn, char **out,
			   size_t *out_len, struct ccvm_err *err)
{
	/* Host commands that print credentials: in the guest they would run
	 * against nothing (or against the project), and ccvm hands over the
	 * key itself. */
	static const char *const helpers[] = {"apiKeyHelper", "awsAuthRefresh",
					      "awsCredentialExport",
					      "otelHeadersHelper"};
	json_t *root;
	int r = load_object(text, len, &root, err);
	if (r < 0)
		return r;
	struct jctx c = {.warn = warn, .file = "settings.json"};
	for (size_t i = 0; i < ARRAY_LEN(helpers); i++) {
		if (json_object_get(root, helpers[i]) &&
		    json_object_del(root, helpers[i]) == 0 && warn)
			fprintf(warn,
				"ccvm: warning: settings.json: %s not staged "
				"(a host credential helper)\n",
				helpers[i]);
	}
	json_t *env = json_object_get(root, "env");
	if (json_is_object(env)) {
		const char *key;
		json_t *val;
		void *tmp;
		json_object_foreach_safe(env, tmp, key, val)
		{
			/* ccvm gives the agent its own (the API proxy, or the
			 * host's URL as the guest reaches it). */
			if (strcmp(key, "ANTHROPIC_BASE_URL") == 0) {
				json_object_del(env, key);
				continue;
			}
			if (!secret_env(key, val))
				continue;
			size_t old = jpush(&c, "env");
			jpush(&c, key);
			jwarn(&c, "looks like a credential");
			jpop(&c, old);
			json_object_del(env, key);
		}
	}
	size_t old = jpush(&c, "mcpServers");
	clean_mcp_servers(&c, json_object_get(root, "mcpServers"));
	jpop(&c, old);
	drop_anthropic_keys(&c, root);
	return dump_object(root, out, out_len, err);
}
