#define _GNU_SOURCE
#include "sanitize.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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

static int buf_str(struct sanitize_buf *b, const char *s)
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

/* ---- ~/.claude.json ----------------------------------------------------- */

static bool ends_with_ci(const char *s, size_t n, const char *suffix)
{
	size_t m = strlen(suffix);
	return n >= m && strncasecmp(s + n - m, suffix, m) == 0;
}

static bool secret_member_name(const char *key)
{
	static const char *const suffixes[] = {"apikey", "token", "tokens",
					       "secret", "password"};
	size_t n = strlen(key);
	for (size_t i = 0; i < ARRAY_LEN(suffixes); i++)
		if (ends_with_ci(key, n, suffixes[i]))
			return true;
	return false;
}

static void drop_secret_members(json_t *obj)
{
	const char *key;
	json_t *val;
	void *tmp;
	if (!json_is_object(obj))
		return;
	json_object_foreach_safe(obj, tmp, key, val)
	{
		if (secret_member_name(key))
			json_object_del(obj, key);
	}
}

static void clean_mcp_servers(json_t *servers)
{
	const char *name;
	json_t *srv;
	if (!json_is_object(servers))
		return;
	json_object_foreach(servers, name, srv)
	{
		if (!json_is_object(srv))
			continue;
		json_object_del(srv, "env");
		json_object_del(srv, "headers");
		drop_secret_members(srv);
	}
}

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

int sanitize_claude_json(const char *text, size_t len, char **out,
			 size_t *out_len, struct ccvm_err *err)
{
	json_t *root;
	int r = load_object(text, len, &root, err);
	if (r < 0)
		return r;
	json_object_del(root, "primaryApiKey");
	drop_secret_members(root);
	drop_secret_members(json_object_get(root, "oauthAccount"));
	clean_mcp_servers(json_object_get(root, "mcpServers"));
	json_t *projects = json_object_get(root, "projects");
	if (json_is_object(projects)) {
		const char *path;
		json_t *proj;
		json_object_foreach(projects, path, proj)
		{
			if (!json_is_object(proj))
				continue;
			drop_secret_members(proj);
			clean_mcp_servers(json_object_get(proj, "mcpServers"));
		}
	}
	return dump_object(root, out, out_len, err);
}

/* ---- ~/.claude/settings.json -------------------------------------------- */

static bool has_url_password(const char *s, size_t n);

/* An environment variable name whose value is a credential: one of its
 * '_'-separated words is KEY, APIKEY, TOKEN, SECRET, PASSWORD, PASSWD,
 * PAT, CREDENTIAL(S), COOKIE, AUTHORIZATION or HEADER(S) (case
 * insensitive).  Plural TOKENS is a count (MAX_THINKING_TOKENS), kept. */
static bool secret_env_name(const char *name)
{
	static const char *const words[] = {
	    "key",	     "apikey", "token",	     "secret",	    "password",
	    "passwd",	     "pat",    "credential", "credentials", "cookie",
	    "authorization", "header", "headers"};
	const char *p = name;
	while (*p) {
		size_t n = strcspn(p, "_");
		for (size_t i = 0; i < ARRAY_LEN(words); i++)
			if (n == strlen(words[i]) &&
			    strncasecmp(p, words[i], n) == 0)
				return true;
		p += n;
		if (*p == '_')
			p++;
	}
	return false;
}

static bool secret_env_value(const char *v)
{
	return strncmp(v, "sk-ant-", 7) == 0 || has_url_password(v, strlen(v));
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
			const char *v = json_string_value(val);
			if (!secret_env_name(key) &&
			    !(v && secret_env_value(v)))
				continue;
			if (warn)
				fprintf(warn,
					"ccvm: warning: settings.json: env.%s "
					"not staged (looks like a credential)"
					"\n",
					key);
			json_object_del(env, key);
		}
	}
	return dump_object(root, out, out_len, err);
}

/* ---- git config --------------------------------------------------------- */

struct git_entry {
	const char *key; /* not NUL-terminated */
	size_t key_len;
	const char *sect, *sub, *name;
	size_t sect_len, sub_len, name_len;
	bool has_sub;
	const char *val; /* NULL: key without a value */
	size_t val_len;
};

static bool valid_section(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

static bool valid_name(const char *s, size_t n)
{
	if (n == 0 || !isalpha((unsigned char)s[0]))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-')
			return false;
	return true;
}

/* Splits "section[.sub].name"; false when git could not have printed it. */
static bool split_key(struct git_entry *e)
{
	const char *first = memchr(e->key, '.', e->key_len);
	const char *last = memrchr(e->key, '.', e->key_len);
	if (!first)
		return false;
	e->sect = e->key;
	e->sect_len = (size_t)(first - e->key);
	e->name = last + 1;
	e->name_len = e->key_len - (size_t)(last + 1 - e->key);
	e->has_sub = first != last;
	e->sub = first + 1;
	e->sub_len = e->has_sub ? (size_t)(last - first - 1) : 0;
	if (memchr(e->sub, '\n', e->sub_len))
		return false;
	return valid_section(e->sect, e->sect_len) &&
	       valid_name(e->name, e->name_len);
}

static bool eq_ci(const char *s, size_t n, const char *lit)
{
	return strlen(lit) == n && strncasecmp(s, lit, n) == 0;
}

static bool contains(const char *s, size_t n, const char *needle)
{
	return memmem(s, n, needle, strlen(needle)) != NULL;
}

static bool contains_ci(const char *s, size_t n, const char *needle)
{
	size_t m = strlen(needle);
	for (size_t i = 0; i + m <= n; i++)
		if (strncasecmp(s + i, needle, m) == 0)
			return true;
	return false;
}

/* true when s holds "scheme://user:password@host". */
static bool has_url_password(const char *s, size_t n)
{
	const char *end = s + n;
	const char *p = s;
	while ((p = memmem(p, (size_t)(end - p), "://", 3)) != NULL) {
		p += 3;
		bool colon = false;
		for (const char *q = p; q < end; q++) {
			if (*q == '/' || *q == '?' || *q == '#' ||
			    isspace((unsigned char)*q))
				break;
			if (*q == ':')
				colon = true;
			if (*q == '@') {
				if (colon)
					return true;
				break;
			}
		}
	}
	return false;
}

/* DROP_REDACT: warn without printing the key, which holds a secret. */
enum verdict { KEEP, DROP_QUIET, DROP_WARN, DROP_REDACT };

static enum verdict judge(const struct git_entry *e, const char **why)
{
	if (eq_ci(e->sect, e->sect_len, "credential") ||
	    eq_ci(e->sect, e->sect_len, "include") ||
	    eq_ci(e->sect, e->sect_len, "includeif") ||
	    eq_ci(e->sect, e->sect_len, "gpg"))
		return DROP_QUIET;
	if (!e->has_sub) {
		if ((eq_ci(e->sect, e->sect_len, "user") &&
		     eq_ci(e->name, e->name_len, "signingkey")) ||
		    ((eq_ci(e->sect, e->sect_len, "commit") ||
		      eq_ci(e->sect, e->sect_len, "tag")) &&
		     eq_ci(e->name, e->name_len, "gpgsign")))
			return DROP_QUIET;
	}
	if (e->val && contains(e->val, e->val_len, "/nix/store/")) {
		*why = "value points into /nix/store";
		return DROP_WARN;
	}
	if (eq_ci(e->sect, e->sect_len, "http") &&
	    eq_ci(e->name, e->name_len, "extraheader")) {
		*why = "may hold an authorization header";
		return DROP_WARN;
	}
	if (!eq_ci(e->sect, e->sect_len, "alias") &&
	    (contains_ci(e->name, e->name_len, "password") ||
	     contains_ci(e->name, e->name_len, "token") ||
	     contains_ci(e->name, e->name_len, "secret") ||
	     eq_ci(e->name, e->name_len, "smtppass"))) {
		*why = "looks like a secret";
		return DROP_WARN;
	}
	if (has_url_password(e->key, e->key_len) ||
	    (e->val && has_url_password(e->val, e->val_len))) {
		*why = "holds a URL with a password";
		return DROP_REDACT;
	}
	return KEEP;
}

int sanitize_git_value(struct sanitize_buf *b, const char *v, size_t n)
{
	bool quote = n > 0 && (isspace((unsigned char)v[0]) ||
			       isspace((unsigned char)v[n - 1]));
	for (size_t i = 0; i < n && !quote; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c == '#' || c == ';' || c == '"' || c == '\\' || c < 0x20 ||
		    c == 0x7f)
			quote = true;
	}
	if (!quote)
		return sanitize_buf_add(b, v, n);
	int r = sanitize_buf_add(b, "\"", 1);
	for (size_t i = 0; i < n && r == 0; i++) {
		switch (v[i]) {
		case '\\':
			r = sanitize_buf_add(b, "\\\\", 2);
			break;
		case '"':
			r = sanitize_buf_add(b, "\\\"", 2);
			break;
		case '\n':
			r = sanitize_buf_add(b, "\\n", 2);
			break;
		case '\t':
			r = sanitize_buf_add(b, "\\t", 2);
			break;
		case '\b':
			r = sanitize_buf_add(b, "\\b", 2);
			break;
		default:
			r = sanitize_buf_add(b, v + i, 1);
		}
	}
	return r ? r : sanitize_buf_add(b, "\"", 1);
}

static int render_header(struct sanitize_buf *b, const struct git_entry *e)
{
	int r = sanitize_buf_add(b, "[", 1);
	if (!r)
		r = sanitize_buf_add(b, e->sect, e->sect_len);
	if (!r && e->has_sub) {
		r = sanitize_buf_add(b, " \"", 2);
		for (size_t i = 0; i < e->sub_len && !r; i++) {
			if (e->sub[i] == '\\' || e->sub[i] == '"')
				r = sanitize_buf_add(b, "\\", 1);
			if (!r)
				r = sanitize_buf_add(b, e->sub + i, 1);
		}
		if (!r)
			r = sanitize_buf_add(b, "\"", 1);
	}
	return r ? r : sanitize_buf_add(b, "]\n", 2);
}

static bool same_section(const struct git_entry *a, const struct git_entry *b)
{
	return a && a->sect_len == b->sect_len &&
	       strncasecmp(a->sect, b->sect, a->sect_len) == 0 &&
	       a->has_sub == b->has_sub && a->sub_len == b->sub_len &&
	       memcmp(a->sub, b->sub, a->sub_len) == 0;
}

static int render_entry(struct sanitize_buf *b, const struct git_entry *prev,
			const struct git_entry *e)
{
	int r = 0;
	if (!same_section(prev, e))
		r = render_header(b, e);
	if (!r)
		r = sanitize_buf_add(b, "\t", 1);
	if (!r)
		r = sanitize_buf_add(b, e->name, e->name_len);
	if (!r && e->val) {
		r = sanitize_buf_add(b, " = ", 3);
		if (!r)
			r = sanitize_git_value(b, e->val, e->val_len);
	}
	return r ? r : sanitize_buf_add(b, "\n", 1);
}

/* "~/x" -> home/x; absolute paths as they are; anything else NULL. */
static char *excludes_path(const char *v, size_t n, const char *home)
{
	if (n >= 2 && v[0] == '~' && v[1] == '/') {
		if (!home || home[0] != '/')
			return NULL;
		return util_asprintf("%s/%.*s", home, (int)(n - 2), v + 2);
	}
	if (n >= 1 && v[0] == '/')
		return strndup(v, n);
	return NULL;
}

int sanitize_git_config(const char *list, size_t len, const char *home,
			FILE *warn, char **text, size_t *text_len,
			char **excludes, struct ccvm_err *err)
{
	struct sanitize_buf b = {0};
	autofree char *excl = NULL;
	struct git_entry prev_store, *prev = NULL;
	size_t off = 0;
	int r = 0;
	while (off < len && r == 0) {
		const char *ent = list + off;
		const char *nul = memchr(ent, '\0', len - off);
		size_t ent_len = nul ? (size_t)(nul - ent) : len - off;
		off += ent_len + 1;
		if (ent_len == 0)
			continue;
		struct git_entry e = {.key = ent};
		const char *nl = memchr(ent, '\n', ent_len);
		e.key_len = nl ? (size_t)(nl - ent) : ent_len;
		if (nl) {
			e.val = nl + 1;
			e.val_len = ent_len - e.key_len - 1;
		}
		if (!split_key(&e)) {
			if (warn)
				fprintf(warn,
					"ccvm: warning: git config: dropping "
					"malformed key \"%.*s\"\n",
					(int)(e.key_len > 80 ? 80 : e.key_len),
					e.key);
			continue;
		}
		if (!e.has_sub && eq_ci(e.sect, e.sect_len, "core") &&
		    eq_ci(e.name, e.name_len, "excludesfile")) {
			free(excl);
			excl = e.val ? excludes_path(e.val, e.val_len, home)
				     : NULL;
			if (!excl && warn)
				fprintf(warn,
					"ccvm: warning: git config: "
					"core.excludesFile is not an absolute "
					"or ~/ path, not staged\n");
			continue;
		}
		const char *why = "";
		enum verdict v = judge(&e, &why);
		if (v == DROP_REDACT && warn)
			fprintf(warn,
				"ccvm: warning: git config: dropping "
				"%.*s.(...).%.*s: %s\n",
				(int)e.sect_len, e.sect, (int)e.name_len,
				e.name, why);
		else if (v == DROP_WARN && warn)
			fprintf(warn,
				"ccvm: warning: git config: dropping %.*s: "
				"%s\n",
				(int)e.key_len, e.key, why);
		if (v != KEEP)
			continue;
		r = render_entry(&b, prev, &e);
		prev_store = e;
		prev = &prev_store;
	}
	if (r == 0)
		r = buf_str(&b, "[commit]\n\tgpgsign = false\n"
				"[tag]\n\tgpgsign = false\n");
	if (r < 0) {
		sanitize_buf_free(&b);
		return ccvm_err_set(err, -r, "git config: out of memory");
	}
	*text = steal_ptr(&b.p);
	*text_len = b.len;
	*excludes = steal_ptr(&excl);
	return 0;
}
