#pragma once
/*
 * Readers of the host's Claude files the API proxy (net/apiproxy.c) needs
 * at request time, in the egress relay process: the login's access token
 * and the settings' environment.  Pure readers: no state, no message
 * printed, nothing cached; every buffer that held file bytes is wiped.
 *
 * The login file is Claude Code's own (Linux: ~/.claude/.credentials.json,
 * mode 0600, rewritten by Claude Code when it refreshes the login):
 *
 *   {"claudeAiOauth": {"accessToken": "sk-ant-oat01-...",
 *                      "refreshToken": "sk-ant-ort01-...",
 *                      "expiresAt": 1785876647907,
 *                      "scopes": ["user:inference", ...],
 *                      "subscriptionType": "max", ...},
 *    "mcpOAuth": {...}}
 *
 * expiresAt is milliseconds since the epoch; Claude Code has been seen to
 * write the file without it, so absent (or null) means "not known".
 */
#include <stddef.h>

/* At most this many bytes of either file are read. */
#define CRED_FILE_MAX (1024 * 1024)

/*
 * The host's Claude login: path's claudeAiOauth.accessToken and expiresAt.
 * Opens path with O_NOFOLLOW|O_CLOEXEC (a regular file, at most
 * CRED_FILE_MAX bytes) and parses it with jansson.  On success 0, token
 * holds the access token (NUL-terminated, at most tokensz-1 bytes of
 * printable ASCII without spaces) and *expires_ms its expiry (0 when the
 * file does not say).  On failure a negative errno, token and *expires_ms
 * untouched, and *why a static one-line reason (without the path):
 *   -ENOENT   "no such file"
 *   -ELOOP    "a symbolic link (refused)"
 *   -EINVAL   "not a regular file", "not valid JSON",
 *             "claudeAiOauth.expiresAt is not a time",
 *             "claudeAiOauth.accessToken has spaces or control characters"
 *   -EFBIG    "larger than 1 MiB"
 *   -ENODATA  "no claudeAiOauth.accessToken" (absent, empty or not a string)
 *   -E2BIG    "claudeAiOauth.accessToken is too long"
 *   -EAGAIN   "changed while being read" (it grew: try again)
 *   other     "cannot be opened", "cannot be read", "out of memory" (the
 *             errno says why)
 * Whether the token has expired is the caller's decision (it knows the
 * time and the margin it wants).
 */
int cred_login_read(const char *path, char *token, size_t tokensz,
		    long long *expires_ms, const char **why);

/*
 * The value of name in the "env" object of a Claude settings file (the
 * host's ~/.claude/settings.json), e.g. "ANTHROPIC_BASE_URL": malloc'ed,
 * or NULL when there is no such file, it is a symbolic link, not a
 * regular file, larger than CRED_FILE_MAX or not JSON, or has no "env"
 * object, no such key, or a value that is not a string.  The settings'
 * "env" may hold secrets (tokens): the file's bytes are wiped after use.
 */
char *cred_settings_env(const char *path, const char *name);
