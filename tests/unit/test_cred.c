/* Unit tests for the readers of the host's Claude login and settings
 * (src/host/setup/cred.c). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "setup/cred.h"
#include "util.h"

static char dir[64];

static int group_setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/tmp/ccvm-cred.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	return util_rm_rf(dir) < 0 ? -1 : 0;
}

/* dir/name, written with text (replacing what was there); returns the
 * path in a static buffer. */
static const char *put(const char *name, const char *text)
{
	static char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	unlink(p);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(util_write_all(fd, text, strlen(text)), 0);
	close(fd);
	return p;
}

#define TOKEN "sk-ant-oat01-AbC_d-123"
#define GOOD                                                                   \
	"{\"claudeAiOauth\": {\"accessToken\": \"" TOKEN "\","                 \
	" \"refreshToken\": \"sk-ant-ort01-zz\", \"expiresAt\": "              \
	"1785876647907, \"scopes\": [\"user:inference\", \"user:profile\"],"   \
	" \"subscriptionType\": \"max\", \"rateLimitTier\": null},"            \
	" \"mcpOAuth\": {\"srv\": {\"accessToken\": \"other\"}}}"

struct got {
	int r;
	char token[256];
	long long exp;
	const char *why;
};

/* Reads path with a token buffer of tokensz bytes; the outputs start
 * poisoned so that "untouched on failure" can be checked. */
static struct got login(const char *path, size_t tokensz)
{
	struct got g;
	memset(g.token, 'X', sizeof(g.token));
	g.exp = -7;
	g.why = NULL;
	assert_true(tokensz <= sizeof(g.token));
	g.r = cred_login_read(path, g.token, tokensz, &g.exp, &g.why);
	if (g.r == 0)
		assert_null(g.why);
	else if (!g.why || strchr(g.why, '\n'))
		fail_msg("%s: no one-line reason (%d)", path, g.r);
	return g;
}

static void expect_fail(const char *path, int err, const char *why)
{
	struct got g = login(path, sizeof(g.token));
	if (g.r != -err || strcmp(g.why, why) != 0)
		fail_msg("%s: got %d \"%s\", want %d \"%s\"", path, g.r,
			 g.why ? g.why : "(null)", -err, why);
	/* Outputs untouched. */
	assert_int_equal(g.exp, -7);
	assert_int_equal(g.token[0], 'X');
}

/* ---- the login ---- */

static void test_login_good(void **state)
{
	(void)state;
	struct got g = login(put("cred.json", GOOD), sizeof(g.token));
	assert_int_equal(g.r, 0);
	assert_string_equal(g.token, TOKEN);
	assert_int_equal(g.exp, 1785876647907LL);
	/* The smallest buffer that holds it, and one byte less. */
	g = login(put("cred.json", GOOD), sizeof(TOKEN));
	assert_int_equal(g.r, 0);
	assert_string_equal(g.token, TOKEN);
	g = login(put("cred.json", GOOD), sizeof(TOKEN) - 1);
	assert_int_equal(g.r, -E2BIG);
	assert_string_equal(g.why, "claudeAiOauth.accessToken is too long");
	assert_int_equal(g.token[0], 'X');
	g = login(put("cred.json", GOOD), 0);
	assert_int_equal(g.r, -E2BIG);
}

/* The reader reports the expiry; deciding is the caller's.  Absent or
 * null: 0 (not known). */
static void test_login_expiry(void **state)
{
	(void)state;
	struct got g = login(put("cred.json", "{\"claudeAiOauth\": "
					      "{\"accessToken\": \"t\", "
					      "\"expiresAt\": 1000}}"),
			     64);
	assert_int_equal(g.r, 0);
	assert_int_equal(g.exp, 1000);
	assert_true(g.exp < (long long)time(NULL) * 1000); /* expired */
	g = login(put("cred.json", "{\"claudeAiOauth\": {\"accessToken\": "
				   "\"t\"}}"),
		  64);
	assert_int_equal(g.r, 0);
	assert_int_equal(g.exp, 0);
	assert_string_equal(g.token, "t");
	g = login(put("cred.json", "{\"claudeAiOauth\": {\"accessToken\": "
				   "\"t\", \"expiresAt\": null}}"),
		  64);
	assert_int_equal(g.r, 0);
	assert_int_equal(g.exp, 0);
	/* A JSON real, as a writer in another language might put it. */
	g = login(put("cred.json", "{\"claudeAiOauth\": {\"accessToken\": "
				   "\"t\", \"expiresAt\": 1.7e12}}"),
		  64);
	assert_int_equal(g.r, 0);
	assert_int_equal(g.exp, 1700000000000LL);
}

static void test_login_missing(void **state)
{
	(void)state;
	static const char *const texts[] = {
	    "{}",
	    "{\"claudeAiOauth\": {}}",
	    "{\"claudeAiOauth\": {\"refreshToken\": \"r\"}}",
	    "{\"claudeAiOauth\": {\"accessToken\": \"\"}}",
	    /* Only an MCP server's token: not the login's. */
	    "{\"mcpOAuth\": {\"accessToken\": \"t\"}}",
	    "{\"accessToken\": \"t\"}",
	};
	for (size_t i = 0; i < ARRAY_LEN(texts); i++)
		expect_fail(put("cred.json", texts[i]), ENODATA,
			    "no claudeAiOauth.accessToken");
	expect_fail("/nonexistent/ccvm-test/.credentials.json", ENOENT,
		    "no such file");
}

static void test_login_not_json(void **state)
{
	(void)state;
	static const char *const texts[] = {
	    "",
	    "not json",
	    "{\"claudeAiOauth\": {\"accessToken\": \"t\"}",
	    "{\"claudeAiOauth\": {\"accessToken\": \"t\"}} trailing",
	    "{\"claudeAiOauth\": {\"accessToken\": \"t\", \"expiresAt\": "
	    "99999999999999999999999}}",
	    /* jansson takes only an object or array at the top. */
	    "\"sk-ant-oat01-x\"",
	};
	for (size_t i = 0; i < ARRAY_LEN(texts); i++)
		expect_fail(put("cred.json", texts[i]), EINVAL,
			    "not valid JSON");
}

static void test_login_wrong_types(void **state)
{
	(void)state;
	static const char *const no_token[] = {
	    "[]",
	    "{\"claudeAiOauth\": \"sk-ant-oat01-x\"}",
	    "{\"claudeAiOauth\": [{\"accessToken\": \"t\"}]}",
	    "{\"claudeAiOauth\": {\"accessToken\": 12345}}",
	    "{\"claudeAiOauth\": {\"accessToken\": null}}",
	    "{\"claudeAiOauth\": {\"accessToken\": [\"t\"]}}",
	    "{\"claudeAiOauth\": {\"accessToken\": {\"v\": \"t\"}}}",
	};
	for (size_t i = 0; i < ARRAY_LEN(no_token); i++)
		expect_fail(put("cred.json", no_token[i]), ENODATA,
			    "no claudeAiOauth.accessToken");
	static const char *const bad_exp[] = {
	    "\"1785876647907\"", "true", "0", "-5", "{}", "[1]", "0.5",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad_exp); i++) {
		char *t = util_asprintf("{\"claudeAiOauth\": {\"accessToken\":"
					" \"t\", \"expiresAt\": %s}}",
					bad_exp[i]);
		expect_fail(put("cred.json", t), EINVAL,
			    "claudeAiOauth.expiresAt is not a time");
		free(t);
	}
	/* The token goes into a header line: nothing that could break it. */
	static const char *const bad_tok[] = {
	    "a\\r\\nX-Evil: 1", "a b", "a\\tb", "caf\\u00e9", "a\\u007f",
	};
	for (size_t i = 0; i < ARRAY_LEN(bad_tok); i++) {
		char *t = util_asprintf(
		    "{\"claudeAiOauth\": {\"accessToken\": \"%s\"}}",
		    bad_tok[i]);
		expect_fail(put("cred.json", t), EINVAL,
			    "claudeAiOauth.accessToken has spaces or control "
			    "characters");
		free(t);
	}
}

static void test_login_not_regular(void **state)
{
	(void)state;
	char p[PATH_MAX], target[PATH_MAX];
	/* A symbolic link to a good file is refused; the file itself is
	 * read (the positive control). */
	snprintf(target, sizeof(target), "%s", put("real.json", GOOD));
	snprintf(p, sizeof(p), "%s/link.json", dir);
	unlink(p);
	assert_int_equal(symlink(target, p), 0);
	expect_fail(p, ELOOP, "a symbolic link (refused)");
	assert_int_equal(login(target, 256).r, 0);
	/* A directory, and a FIFO (which must not block the open). */
	snprintf(p, sizeof(p), "%s/adir", dir);
	assert_int_equal(mkdir(p, 0700), 0);
	expect_fail(p, EINVAL, "not a regular file");
	snprintf(p, sizeof(p), "%s/fifo", dir);
	assert_int_equal(mkfifo(p, 0600), 0);
	expect_fail(p, EINVAL, "not a regular file");
	expect_fail("/dev/null", EINVAL, "not a regular file");
}

static void test_login_oversized(void **state)
{
	(void)state;
	/* Exactly CRED_FILE_MAX bytes: read (the good JSON, then spaces). */
	char *big = malloc(CRED_FILE_MAX + 2);
	assert_non_null(big);
	size_t n = strlen(GOOD);
	memcpy(big, GOOD, n);
	memset(big + n, ' ', CRED_FILE_MAX - n);
	big[CRED_FILE_MAX] = '\0';
	struct got g = login(put("big.json", big), 256);
	assert_int_equal(g.r, 0);
	assert_string_equal(g.token, TOKEN);
	/* One byte more: refused before it is read. */
	big[CRED_FILE_MAX] = ' ';
	big[CRED_FILE_MAX + 1] = '\0';
	expect_fail(put("big.json", big), EFBIG, "larger than 1 MiB");
	free(big);
}

/* ---- the settings' env ---- */

static void test_settings_env(void **state)
{
	(void)state;
	const char *p = put("settings.json",
			    "{\"model\": \"opus\", \"env\": {"
			    "\"ANTHROPIC_BASE_URL\": \"http://127.0.0.1:4000\","
			    " \"NUM\": 5, \"NUL\": null, \"OBJ\": {},"
			    " \"EMPTY\": \"\"}}");
	char *v = cred_settings_env(p, "ANTHROPIC_BASE_URL");
	assert_non_null(v);
	assert_string_equal(v, "http://127.0.0.1:4000");
	free(v);
	v = cred_settings_env(p, "EMPTY");
	assert_non_null(v);
	assert_string_equal(v, "");
	free(v);
	/* Absent, or not a string. */
	assert_null(cred_settings_env(p, "ANTHROPIC_API_KEY"));
	assert_null(cred_settings_env(p, "NUM"));
	assert_null(cred_settings_env(p, "NUL"));
	assert_null(cred_settings_env(p, "OBJ"));
	assert_null(cred_settings_env(p, "model")); /* not under env */
	/* Duplicate keys: the last wins, as JSON.parse (Claude Code) has it. */
	p = put("settings.json", "{\"env\": {\"K\": \"a\", \"K\": \"b\"}}");
	v = cred_settings_env(p, "K");
	assert_non_null(v);
	assert_string_equal(v, "b");
	free(v);
}

static void test_settings_env_absent(void **state)
{
	(void)state;
	static const char *const texts[] = {
	    "{}",
	    "{\"env\": null}",
	    "{\"env\": \"ANTHROPIC_BASE_URL=http://x\"}",
	    "{\"env\": [\"ANTHROPIC_BASE_URL\"]}",
	    "[{\"env\": {\"ANTHROPIC_BASE_URL\": \"http://x\"}}]",
	    "{\"env\": {\"ANTHROPIC_BASE_URL\": \"http://x\"}",
	    "",
	};
	for (size_t i = 0; i < ARRAY_LEN(texts); i++)
		if (cred_settings_env(put("settings.json", texts[i]),
				      "ANTHROPIC_BASE_URL"))
			fail_msg("a value from \"%s\"", texts[i]);
	assert_null(cred_settings_env("/nonexistent/ccvm-test/settings.json",
				      "ANTHROPIC_BASE_URL"));
	/* A symbolic link is not followed; its target is read. */
	char target[PATH_MAX], p[PATH_MAX];
	snprintf(target, sizeof(target), "%s",
		 put("s-real.json", "{\"env\": {\"X\": \"y\"}}"));
	snprintf(p, sizeof(p), "%s/s-link.json", dir);
	unlink(p);
	assert_int_equal(symlink(target, p), 0);
	assert_null(cred_settings_env(p, "X"));
	char *v = cred_settings_env(target, "X");
	assert_non_null(v);
	free(v);
	/* Bounded. */
	char *big = malloc(CRED_FILE_MAX + 2);
	assert_non_null(big);
	const char *good = "{\"env\": {\"X\": \"y\"}}";
	size_t n = strlen(good);
	memcpy(big, good, n);
	memset(big + n, ' ', CRED_FILE_MAX + 1 - n);
	big[CRED_FILE_MAX + 1] = '\0';
	assert_null(cred_settings_env(put("s-big.json", big), "X"));
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_login_good),
	    cmocka_unit_test(test_login_expiry),
	    cmocka_unit_test(test_login_missing),
	    cmocka_unit_test(test_login_not_json),
	    cmocka_unit_test(test_login_wrong_types),
	    cmocka_unit_test(test_login_not_regular),
	    cmocka_unit_test(test_login_oversized),
	    cmocka_unit_test(test_settings_env),
	    cmocka_unit_test(test_settings_env_absent),
	};
	return cmocka_run_group_tests_name("cred", tests, group_setup,
					   group_teardown);
}
