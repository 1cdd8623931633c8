#pragma once
/*
 * Pure sanitizers for the two host files that may carry secrets and still
 * enter the guest: ~/.claude.json and the global git config.  No I/O here
 * except optional warning lines on a caller-given stream.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "err.h"

/*
 * The rules below are best-effort heuristics: they remove what is known or
 * named to carry credentials, not every secret a file could hold.
 *
 * Names of credentials (both files): a name is split into words (runs of
 * letters or digits, split at camelCase: "dbPassword" is db + Password);
 * a word KEY, APIKEY, TOKEN, SECRET(S), PASSWORD, PASSWD, PASS, PWD, PAT,
 * DSN, AUTH, AUTHORIZATION, CREDENTIAL(S), COOKIE(S), HEADER(S),
 * WEBHOOK(S), CONNSTR, a word ending in PASSWORD, PASSWD, TOKEN, SECRET,
 * APIKEY, WEBHOOK or CONNECTIONSTRING (PGPASSWORD), or CONNECTION followed
 * by STRING, marks a credential, case-insensitively.  Whole words only:
 * DB_PWD matches, PATH, AUTHOR, OAUTH, BYPASS and KEYBOARD do not.  A value
 * that is a flag (JSON true/false/null, "0", "1", "true", "false", "yes",
 * "no", "on", "off", "") is never a credential.
 * Credential strings: an Anthropic key ("sk-ant-" anywhere in a string)
 * and a URL with userinfo ("scheme://user@" or "scheme://user:pw@": a bare
 * token looks like a user name).
 * Each removal that is not always expected is one warning line on warn
 * (when non-NULL) naming the entry by its path ("mcpServers.x",
 * "env.DB_PWD"), never the value; unprintable bytes of names as '?'.
 */

/*
 * ~/.claude.json: parses text (jansson, duplicate keys rejected) and
 * removes what carries tokens:
 *   - primaryApiKey and customApiKeyResponses (fingerprints and approvals
 *     of the user's keys), quietly; when key_tail is non-NULL (the last 20
 *     characters of the key ccvm hands the agent, as Claude Code keeps
 *     them: sanitize_key_tail) and the host's approved list holds it,
 *     customApiKeyResponses becomes {"approved": [key_tail], "rejected":
 *     []}: the agent then uses that key without asking, as natively, and
 *     learns nothing of the user's other keys;
 *   - mcpServers.*.env and mcpServers.*.headers, quietly, at top level and
 *     in every projects.*.mcpServers.*;
 *   - in each of those MCP server entries, members named like credentials
 *     at any depth (oauth.clientSecret); then the whole entry when any
 *     string left in it (command, args, url, ...) or a member name holds a
 *     credential string;
 *   - members named like credentials (last word of the name: accessToken,
 *     dbPwd, connectionString; also ...Tokens, whose counts are numbers
 *     and kept) at top level, inside oauthAccount and inside each projects
 *     entry, unless the value is a flag or a number (user-chosen names such
 *     as project paths and server names are never matched);
 *   - any string holding an Anthropic key, anywhere (a key pasted into a
 *     prompt is in projects.*.history).
 * oauthAccount itself is kept: Claude Code stores account metadata there
 * (uuid, e-mail, organization, role), its tokens live in .credentials.json.
 * Everything else is kept and re-encoded with the same meaning (member
 * order preserved, 2-space indent, trailing newline).  Returns -EINVAL
 * (err says why, with line/column) when the text is not a JSON object: the
 * caller then does not stage the file.
 */
int sanitize_claude_json(const char *text, size_t len, const char *key_tail,
			 FILE *warn, char **out, size_t *out_len,
			 struct ccvm_err *err);

/* What Claude Code keeps of an API key in customApiKeyResponses: the last
 * 20 characters after trimming white space (all of it when shorter), into
 * out (at least SANITIZE_KEY_TAIL + 1 bytes); false when nothing is left. */
#define SANITIZE_KEY_TAIL 20
bool sanitize_key_tail(const char *key, size_t len, char *out);

/*
 * The staged ~/.claude.json (sanitize_claude_json's output) with
 * customApiKeyResponses {"approved": [key_tail], "rejected": []}: the
 * API proxy's placeholder, ccvm's own, which the agent then uses without
 * asking.  *json is replaced (the old text wiped and freed).  0 or -errno.
 */
int sanitize_approve_key(char **json, size_t *len, const char *key_tail,
			 struct ccvm_err *err);

/*
 * ~/.claude/settings.json: parses text as above and removes what carries or
 * fetches credentials:
 *   - apiKeyHelper, awsAuthRefresh, awsCredentialExport, otelHeadersHelper
 *     (host commands; ccvm hands the agent its key itself);
 *   - env members with a credential word anywhere in the name (unless the
 *     value is a flag), or whose value holds a credential string, whatever
 *     the name.  Counts such as MAX_THINKING_TOKENS are kept;
 *   - mcpServers, if present, as in ~/.claude.json, and any string holding
 *     an Anthropic key.
 * Everything else is kept as in sanitize_claude_json; -EINVAL when the text
 * is not a JSON object (the caller does not stage).
 */
int sanitize_settings_json(const char *text, size_t len, FILE *warn, char **out,
			   size_t *out_len, struct ccvm_err *err);

/*
 * Git config: list is the output of `git config --global --null --list
 * --includes` (entries "key\nvalue\0", or "key\0" for a key without a
 * value; --includes has resolved include.path and those includeIf
 * conditions that hold outside a repository, such as hasconfig:, so their
 * entries are judged like the rest).  Keeps only git's own sections
 * (an allowlist, see git_sections in sanitize.c; every other section is
 * dropped and named once in one summary warning line), and in them
 * identity, aliases and everything else except:
 *   - credential.*, credential.<url>.* and credentialCache.*;
 *   - include.* and includeIf.* (already resolved by --includes);
 *   - core.excludesFile: its path (a leading "~/" expanded with home) is
 *     returned in *excludes_path (NULL when absent or unusable) for the
 *     caller to stage by content, and the key is dropped;
 *   - every value containing "/nix/store/";
 *   - user.signingKey, gpg.*, commit.gpgSign and tag.gpgSign, then
 *     commit.gpgsign=false and tag.gpgsign=false are appended;
 *   - any key or value holding a URL with userinfo, with or without a
 *     password ("url.https://ghp_x@github.com/.insteadOf",
 *     remote.<name>.url, pushInsteadOf values, alias commands), and a
 *     proxy setting with a user part, scheme or not ("user:pw@proxy:3128");
 *   - secret-looking entries: extraHeader (http.extraHeader and
 *     http.<url>.extraHeader), names containing "password", "passwd",
 *     "token" or "secret" or ending in "pass" (outside alias.*).
 * Entries that git could not have produced (bad section or name) are
 * dropped.  Dropped entries are reported as one line each on warn
 * (naming the key with the userinfo of URLs in it masked as "***", never
 * the value) when warn is non-NULL, except the expected ones (credential,
 * include, signing, excludesFile).
 * *text is a git config file ("[section \"sub\"]\n\tname = value\n"),
 * values quoted and escaped where git requires it.
 */
int sanitize_git_config(const char *list, size_t len, const char *home,
			FILE *warn, char **text, size_t *text_len,
			char **excludes_path, struct ccvm_err *err);

/* Appends one config value to *buf as git would read it back: quoted when
 * it has leading/trailing blanks, '#', ';', '"', '\\' or control
 * characters; exposed for tests.  0 or -ENOMEM. */
struct sanitize_buf {
	char *p;
	size_t len, cap;
};
int sanitize_buf_add(struct sanitize_buf *b, const char *s, size_t n);
int sanitize_git_value(struct sanitize_buf *b, const char *v, size_t n);
/* Wipes and frees the buffer. */
void sanitize_buf_free(struct sanitize_buf *b);
