#define _GNU_SOURCE
/* git config, sanitized for the guest (sanitize.h). */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "setup/sanitize.h"
#include "setup/sanitize_rules.h"
#include "util.h"

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

/*
 * An allowlist of sections, not a denylist.  git's own sections are known
 * and documented (git-config(1)); any other section belongs to some other
 * tool (hub.oauthtoken, github.token, gitlab.token, lfs.<url>.access,
 * tools yet to be written), and such tools are the ones that keep tokens in
 * the git config under names no denylist can guess.  Their settings are of
 * little use in the guest, where those tools are not installed.  So only
 * the sections below are staged, and even there the name and value rules
 * of judge() apply.  Left out of git's own: credential, credentialCache,
 * gpg, include and includeIf (dropped quietly, see sanitize.h), and imap,
 * sendemail and gitcvs, which hold mail and CVS passwords (imap.pass,
 * sendemail.smtpPass, gitcvs.dbPass) and have no use in the guest.
 */
static const char *const git_sections[] = {
    "add",	     "advice",	   "alias",	  "am",		"apply",
    "attr",	     "author",	   "blame",	  "branch",	"browser",
    "bundle",	     "checkout",   "clean",	  "clone",	"color",
    "column",	     "commit",	   "commitgraph", "committer",	"completion",
    "core",	     "diff",	   "difftool",	  "extensions", "fastimport",
    "feature",	     "fetch",	   "filter",	  "format",	"fsck",
    "fsmonitor",     "gc",	   "gitweb",	  "grep",	"gui",
    "guitool",	     "help",	   "http",	  "i18n",	"index",
    "init",	     "instaweb",   "interactive", "log",	"lsrefs",
    "mailinfo",	     "mailmap",	   "maintenance", "man",	"merge",
    "mergetool",     "notes",	   "pack",	  "pager",	"pretty",
    "promisor",	     "protocol",   "pull",	  "push",	"rebase",
    "receive",	     "reftable",   "remote",	  "remotes",	"repack",
    "rerere",	     "revert",	   "safe",	  "sequence",	"showbranch",
    "sparse",	     "splitindex", "ssh",	  "stash",	"status",
    "submodule",     "tag",	   "tar",	  "trace2",	"transfer",
    "uploadarchive", "uploadpack", "url",	  "user",	"versionsort",
    "web",	     "worktree",
};

static bool git_section_staged(const struct git_entry *e)
{
	return sanitize_in_list_ci(e->sect, e->sect_len, git_sections,
				   ARRAY_LEN(git_sections));
}

/* A proxy setting ([scheme://][user[:password]@]host[:port]) with a user
 * part, scheme or not. */
static bool proxy_userinfo(const struct git_entry *e)
{
	if (!e->val || !sanitize_eq_ci(e->name, e->name_len, "proxy"))
		return false;
	const char *slash = memchr(e->val, '/', e->val_len);
	size_t n = slash ? (size_t)(slash - e->val) : e->val_len;
	return memchr(e->val, '@', n) != NULL;
}

/* FOREIGN: not one of git_sections; listed once in a summary line. */
enum verdict { KEEP, DROP_QUIET, DROP_WARN, FOREIGN };

static enum verdict judge(const struct git_entry *e, const char **why)
{
	if (sanitize_eq_ci(e->sect, e->sect_len, "credential") ||
	    sanitize_eq_ci(e->sect, e->sect_len, "credentialcache") ||
	    sanitize_eq_ci(e->sect, e->sect_len, "include") ||
	    sanitize_eq_ci(e->sect, e->sect_len, "includeif") ||
	    sanitize_eq_ci(e->sect, e->sect_len, "gpg"))
		return DROP_QUIET;
	if (!e->has_sub) {
		if ((sanitize_eq_ci(e->sect, e->sect_len, "user") &&
		     sanitize_eq_ci(e->name, e->name_len, "signingkey")) ||
		    ((sanitize_eq_ci(e->sect, e->sect_len, "commit") ||
		      sanitize_eq_ci(e->sect, e->sect_len, "tag")) &&
		     sanitize_eq_ci(e->name, e->name_len, "gpgsign")))
			return DROP_QUIET;
	}
	if (!git_section_staged(e))
		return FOREIGN;
	*why = "holds a URL with a user, token or password in it";
	if (sanitize_url_userinfo(e->key, e->key_len) ||
	    (e->val && sanitize_url_userinfo(e->val, e->val_len)) ||
	    proxy_userinfo(e))
		return DROP_WARN;
	if (e->val && contains(e->val, e->val_len, "/nix/store/")) {
		*why = "value points into /nix/store";
		return DROP_WARN;
	}
	if (sanitize_eq_ci(e->name, e->name_len, "extraheader")) {
		*why = "may hold an authorization header";
		return DROP_WARN;
	}
	if (!sanitize_eq_ci(e->sect, e->sect_len, "alias") &&
	    (contains_ci(e->name, e->name_len, "password") ||
	     contains_ci(e->name, e->name_len, "passwd") ||
	     contains_ci(e->name, e->name_len, "token") ||
	     contains_ci(e->name, e->name_len, "secret") ||
	     sanitize_ends_with_ci(e->name, e->name_len, "pass"))) {
		*why = "looks like a secret";
		return DROP_WARN;
	}
	return KEEP;
}

/* Prints a git key for a warning: the userinfo of every URL in it masked
 * as three stars ("url.https://" "***@github.com/.insteadof"), unprintable
 * bytes as '?', at most 191 characters. */
static void warn_key(FILE *warn, const char *key, size_t n)
{
	char out[192]; /* the whole key is scanned, what is printed is cut */
	size_t at = 0;
	const char *p = key, *end = key + n;
	while (p < end) {
		const char *sep = memmem(p, (size_t)(end - p), "://", 3);
		if (!sep) {
			at = sanitize_printable(out, sizeof(out), at, p,
						(size_t)(end - p));
			break;
		}
		sep += 3;
		at = sanitize_printable(out, sizeof(out), at, p,
					(size_t)(sep - p));
		const char *q = sep, *last_at = NULL;
		for (; q < end && *q != '/' && *q != '?' && *q != '#' &&
		       !isspace((unsigned char)*q);
		     q++)
			if (*q == '@')
				last_at = q;
		if (last_at) {
			at = sanitize_printable(out, sizeof(out), at, "***", 3);
			sep = last_at;
		}
		at = sanitize_printable(out, sizeof(out), at, sep,
					(size_t)(q - sep));
		p = q;
	}
	out[at] = '\0';
	fprintf(warn, "%s", out);
}

/* Adds a section name to the ", "-separated list b unless it is there;
 * at most 24 names, then "...". */
static int add_foreign(struct sanitize_buf *b, size_t *count,
		       const struct git_entry *e)
{
	const char *p = b->p ? b->p : "";
	while (*p) {
		size_t n = strcspn(p, ",");
		if (n == e->sect_len && strncasecmp(p, e->sect, n) == 0)
			return 0;
		p += n;
		while (*p == ',' || *p == ' ')
			p++;
	}
	if (*count > 24)
		return 0;
	int r = 0;
	if (b->len)
		r = sanitize_buf_add(b, ", ", 2);
	if (!r)
		r = *count == 24 ? sanitize_buf_add(b, "...", 3)
				 : sanitize_buf_add(b, e->sect, e->sect_len);
	(*count)++;
	return r;
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
	struct sanitize_buf b = {0}, foreign = {0};
	size_t n_foreign = 0;
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
			if (warn) {
				fputs("ccvm: warning: git config: dropping "
				      "malformed key \"",
				      warn);
				warn_key(warn, e.key, e.key_len);
				fputs("\"\n", warn);
			}
			continue;
		}
		if (!e.has_sub && sanitize_eq_ci(e.sect, e.sect_len, "core") &&
		    sanitize_eq_ci(e.name, e.name_len, "excludesfile")) {
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
		if (v == DROP_WARN && warn) {
			fputs("ccvm: warning: git config: dropping ", warn);
			warn_key(warn, e.key, e.key_len);
			fprintf(warn, ": %s\n", why);
		}
		if (v == FOREIGN)
			r = add_foreign(&foreign, &n_foreign, &e);
		if (v != KEEP)
			continue;
		r = render_entry(&b, prev, &e);
		prev_store = e;
		prev = &prev_store;
	}
	if (r == 0)
		r = sanitize_buf_str(&b, "[commit]\n\tgpgsign = false\n"
					 "[tag]\n\tgpgsign = false\n");
	if (r == 0 && foreign.len && warn)
		fprintf(warn,
			"ccvm: warning: git config: sections not staged (not "
			"git's own, or mail and CVS settings): %s\n",
			foreign.p);
	sanitize_buf_free(&foreign);
	if (r < 0) {
		sanitize_buf_free(&b);
		return ccvm_err_set(err, -r, "git config: out of memory");
	}
	*text = steal_ptr(&b.p);
	*text_len = b.len;
	*excludes = steal_ptr(&excl);
	return 0;
}
