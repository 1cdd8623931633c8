/*
 * What a valid option value is: the checks of the option table's rows
 * (enum opt_check), and the one copy of the npm and Debian package-name
 * checks that the image build calls too.  NULL when valid, else what is
 * wrong.
 */
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include "options/table.h"
#include "net/egress_parse.h"

static const char *env_name_problem(const char *s)
{
	size_t len = strlen(s);
	if (len == 0)
		return "is empty; expected an environment variable name";
	if (len > 255)
		return "is longer than 255 characters";
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			     c == '_';
		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return "is not an environment variable name "
			       "([A-Za-z_][A-Za-z0-9_]*)";
	}
	return NULL;
}

bool cfg_valid_env_name(const char *s)
{
	return env_name_problem(s) == NULL;
}

/* The session's own parser (net/egress_parse.h): what it refuses, the
 * config file cannot hold. */
static const char *egress_problem(const char *s)
{
	struct egress_entry e;
	return egress_entry_parse(s, &e);
}

bool cfg_valid_egress(const char *s)
{
	return egress_problem(s) == NULL;
}

/* Debian policy 5.6.1: [a-z0-9][a-z0-9+.-]+ */
static const char *deb_problem(const char *s)
{
	size_t len = strlen(s);
	if (len < 2 || len > 128)
		return "is not a Debian package name (2..128 characters)";
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return "is not a Debian package name (must start with a "
		       "lowercase letter or digit)";
	if (strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789+.-") != len)
		return "is not a Debian package name (only a-z, 0-9, '+', "
		       "'.', '-')";
	return NULL;
}

bool cfg_valid_deb_name(const char *s)
{
	return deb_problem(s) == NULL;
}

static bool has_space_or_ctl(const char *s, bool ascii_only)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= 0x20 || *p == 0x7f || (ascii_only && *p >= 0x80))
			return true;
	return false;
}

static bool has_ctl(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return true;
	return false;
}

static const char *npm_problem(const char *s)
{
	if (*s == '\0')
		return "is empty; expected an npm package spec";
	_Static_assert(CFG_NPM_SPEC_MAX == 512, "the message below says 512");
	if (strlen(s) > CFG_NPM_SPEC_MAX)
		return "is longer than 512 characters";
	if (s[0] == '-')
		return "must not start with '-'";
	if (has_space_or_ctl(s, true))
		return "is not an npm package spec (printable ASCII without "
		       "spaces)";
	return NULL;
}

bool cfg_valid_npm_spec(const char *s)
{
	return npm_problem(s) == NULL;
}

static const char *nix_problem(const char *s)
{
	if (*s == '\0')
		return "is empty";
	if (has_space_or_ctl(s, false))
		return "contains whitespace or control characters";
	/* nix.conf drops everything from '#' on as a comment. */
	if (strchr(s, '#'))
		return "contains '#' (nix.conf reads it as a comment)";
	return NULL;
}

bool cfg_valid_nix_item(const char *s)
{
	return nix_problem(s) == NULL;
}

const char *opt_check_problem(enum opt_check ck, const char *s)
{
	switch (ck) {
	case CK_ANY:
		return NULL;
	case CK_ENV_NAME:
		return env_name_problem(s);
	case CK_NPM:
		return npm_problem(s);
	case CK_EGRESS:
		return egress_problem(s);
	case CK_DEB:
		return deb_problem(s);
	case CK_ABS_PATH:
		if (s[0] != '/')
			return "is not an absolute path";
		if (strlen(s) >= PATH_MAX)
			return "is longer than PATH_MAX";
		if (has_ctl(s))
			return "contains control characters";
		return NULL;
	case CK_NIX:
		return nix_problem(s);
	}
	return NULL;
}
