#pragma once
/*
 * Rules shared by the sanitizers of sanitize.h: sanitize.c (the JSON
 * files) and sanitize_git.c (git config).  Internal to src/host/setup.
 */
#include <stdbool.h>
#include <stddef.h>

#include "setup/sanitize.h"

/* sanitize_buf_add of a NUL-terminated string. */
int sanitize_buf_str(struct sanitize_buf *b, const char *s);

/* true when s holds "scheme://userinfo@host": a user name, a token
 * ("https://ghp_x@github.com") or user:password, all taken for a
 * credential. */
bool sanitize_url_userinfo(const char *s, size_t n);

/* Appends s to a warning in out[cap] at at: printable ASCII as it is,
 * everything else as '?'.  Returns the new end. */
size_t sanitize_printable(char *out, size_t cap, size_t at, const char *s,
			  size_t n);

/* s[n] equals lit / ends with suffix / is one of v[k], ignoring case. */
bool sanitize_eq_ci(const char *s, size_t n, const char *lit);
bool sanitize_ends_with_ci(const char *s, size_t n, const char *suffix);
bool sanitize_in_list_ci(const char *s, size_t n, const char *const *v,
			 size_t k);
