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
 * ~/.claude.json: parses text (jansson, duplicate keys rejected) and
 * removes what carries tokens:
 *   - mcpServers.*.env and mcpServers.*.headers, at top level and in every
 *     projects.*.mcpServers.*;
 *   - primaryApiKey;
 *   - any member whose name ends (case-insensitively) in "apikey", "token",
 *     "tokens", "secret" or "password" at top level, inside oauthAccount,
 *     inside each mcpServers entry and inside each projects entry
 *     (defence for future formats; user-chosen names such as project paths
 *     and server names are never matched).
 * oauthAccount itself is kept: Claude Code stores account metadata there
 * (uuid, e-mail, organization, role), its tokens live in .credentials.json.
 * customApiKeyResponses is kept: it holds only the last 20 characters of
 * keys the user approved, and without it the agent asks again about the
 * key it is given.  Everything else is kept and re-encoded with the same
 * meaning (member order preserved, 2-space indent, trailing newline).
 * Returns -EINVAL (err says why, with line/column) when the text is not a
 * JSON object: the caller then does not stage the file.
 */
int sanitize_claude_json(const char *text, size_t len, char **out,
			 size_t *out_len, struct ccvm_err *err);

/*
 * ~/.claude/settings.json: parses text as above and removes what carries or
 * fetches credentials:
 *   - apiKeyHelper, awsAuthRefresh, awsCredentialExport, otelHeadersHelper
 *     (host commands; ccvm hands the agent its key itself);
 *   - env members whose name has a word (split at '_') KEY, APIKEY, TOKEN,
 *     SECRET, PASSWORD, PASSWD, PAT, CREDENTIAL(S), COOKIE, AUTHORIZATION
 *     or HEADER(S), or whose value starts with "sk-ant-" or holds a URL
 *     with a password.  Counts such as MAX_THINKING_TOKENS are kept.
 * Each removal is one warning line on warn (when non-NULL) naming the key,
 * never the value.  Everything else is kept as in sanitize_claude_json;
 * -EINVAL when the text is not a JSON object (the caller does not stage).
 */
int sanitize_settings_json(const char *text, size_t len, FILE *warn, char **out,
			   size_t *out_len, struct ccvm_err *err);

/*
 * Git config: list is the output of `git config --global --null --list
 * --includes` (entries "key\nvalue\0", or "key\0" for a key without a
 * value).  Keeps identity, aliases and everything else except:
 *   - credential.* and credential.<url>.*;
 *   - include.* and includeIf.* (already resolved by --includes);
 *   - core.excludesFile: its path (a leading "~/" expanded with home) is
 *     returned in *excludes_path (NULL when absent or unusable) for the
 *     caller to stage by content, and the key is dropped;
 *   - every value containing "/nix/store/";
 *   - user.signingKey, gpg.*, commit.gpgSign and tag.gpgSign, then
 *     commit.gpgsign=false and tag.gpgsign=false are appended;
 *   - secret-looking entries: http.extraHeader and http.<url>.extraHeader,
 *     names containing "password", "token" or "secret" or named
 *     "smtppass" (outside alias.*), and any key or value holding a URL with
 *     a password in it ("scheme://user:pass@").
 * Entries that git could not have produced (bad section or name) are
 * dropped.  Dropped entries are reported as one line each on warn
 * (naming the key, never the value) when warn is non-NULL, except the
 * expected ones (credential, include, signing, excludesFile).
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
