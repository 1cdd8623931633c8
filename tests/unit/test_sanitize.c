/* Unit tests for the ~/.claude.json and git config sanitizers. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sanitize.h"
#include "util.h"

/* ---- ~/.claude.json ----------------------------------------------------- */

static const char claude_json[] =
    "{\n"
    "  \"numStartups\": 42,\n"
    "  \"installMethod\": \"npm-global\",\n"
    "  \"autoUpdates\": false,\n"
    "  \"userID\": \"4f1c0ffee1234567890abcdef\",\n"
    "  \"firstStartTime\": \"2025-06-01T10:00:00.000Z\",\n"
    "  \"primaryApiKey\": \"sk-ant-api03-CANARY_PRIMARY_KEY\",\n"
    "  \"customApiKeyResponses\": {\"approved\": [\"abcdefghij0123456789\"],"
    " \"rejected\": []},\n"
    "  \"oauthAccount\": {\"accountUuid\": \"0d5e-uuid\", \"emailAddress\":"
    " \"dev@example.com\", \"organizationUuid\": \"org-uuid\","
    " \"organizationName\": \"Ex\", \"accessToken\": \"CANARY_OAUTH_TOKEN\"},\n"
    "  \"refreshToken\": \"CANARY_REFRESH\",\n"
    "  \"claudeCodeFirstTokenDate\": \"2025-06-01T10:00:00Z\",\n"
    "  \"tipsHistory\": {\"ide-hotkey\": 3},\n"
    "  \"ratio\": 0.125, \"big\": 1750000000000, \"nothing\": null,\n"
    "  \"unicode\": \"h\\u00e9llo \\u2603 \\\"q\\\"\",\n"
    "  \"mcpServers\": {\n"
    "    \"github\": {\"type\": \"stdio\", \"command\": \"npx\", \"args\":"
    " [\"-y\", \"@modelcontextprotocol/server-github\"], \"env\":"
    " {\"GITHUB_PERSONAL_ACCESS_TOKEN\": \"CANARY_GH_PAT\"}},\n"
    "    \"remote\": {\"type\": \"http\", \"url\": \"https://mcp.example/\","
    " \"headers\": {\"Authorization\": \"Bearer CANARY_BEARER\"}}\n"
    "  },\n"
    "  \"projects\": {\n"
    "    \"/home/dev/src/app\": {\"allowedTools\": [\"Bash(ls)\"],"
    " \"hasTrustDialogAccepted\": true, \"lastCost\": 0.5,"
    " \"mcpServers\": {\"db\": {\"command\": \"/usr/bin/pg-mcp\", \"env\":"
    " {\"PGPASSWORD\": \"CANARY_PG\"}, \"headers\": {\"X\": \"CANARY_X\"}}},"
    " \"history\": [{\"display\": \"fix the bug\"}]},\n"
    "    \"/home/dev/my-token\": {\"hasTrustDialogAccepted\": false}\n"
    "  }\n"
    "}\n";

static const char claude_json_expected[] =
    "{\n"
    "  \"numStartups\": 42,\n"
    "  \"installMethod\": \"npm-global\",\n"
    "  \"autoUpdates\": false,\n"
    "  \"userID\": \"4f1c0ffee1234567890abcdef\",\n"
    "  \"firstStartTime\": \"2025-06-01T10:00:00.000Z\",\n"
    "  \"customApiKeyResponses\": {\"approved\": [\"abcdefghij0123456789\"],"
    " \"rejected\": []},\n"
    "  \"oauthAccount\": {\"accountUuid\": \"0d5e-uuid\", \"emailAddress\":"
    " \"dev@example.com\", \"organizationUuid\": \"org-uuid\","
    " \"organizationName\": \"Ex\"},\n"
    "  \"claudeCodeFirstTokenDate\": \"2025-06-01T10:00:00Z\",\n"
    "  \"tipsHistory\": {\"ide-hotkey\": 3},\n"
    "  \"ratio\": 0.125, \"big\": 1750000000000, \"nothing\": null,\n"
    "  \"unicode\": \"h\\u00e9llo \\u2603 \\\"q\\\"\",\n"
    "  \"mcpServers\": {\n"
    "    \"github\": {\"type\": \"stdio\", \"command\": \"npx\", \"args\":"
    " [\"-y\", \"@modelcontextprotocol/server-github\"]},\n"
    "    \"remote\": {\"type\": \"http\", \"url\": \"https://mcp.example/\"}\n"
    "  },\n"
    "  \"projects\": {\n"
    "    \"/home/dev/src/app\": {\"allowedTools\": [\"Bash(ls)\"],"
    " \"hasTrustDialogAccepted\": true, \"lastCost\": 0.5,"
    " \"mcpServers\": {\"db\": {\"command\": \"/usr/bin/pg-mcp\"}},"
    " \"history\": [{\"display\": \"fix the bug\"}]},\n"
    "    \"/home/dev/my-token\": {\"hasTrustDialogAccepted\": false}\n"
    "  }\n"
    "}\n";

static void test_claude_json(void **state)
{
	(void)state;
	char *out = NULL;
	size_t len = 0;
	struct ccvm_err err = {0};
	assert_int_equal(sanitize_claude_json(claude_json, strlen(claude_json),
					      &out, &len, &err),
			 0);
	assert_int_equal(strlen(out), len);
	assert_int_equal(out[len - 1], '\n');
	static const char *const canaries[] = {
	    "CANARY_PRIMARY_KEY", "CANARY_OAUTH_TOKEN", "CANARY_REFRESH",
	    "CANARY_GH_PAT",	  "CANARY_BEARER",	"CANARY_PG",
	    "CANARY_X",		  "primaryApiKey",	"\"env\"",
	    "\"headers\""};
	for (size_t i = 0; i < ARRAY_LEN(canaries); i++)
		assert_null(strstr(out, canaries[i]));
	/* Same meaning as the expected document, member order kept. */
	json_error_t je;
	json_t *got = json_loads(out, 0, &je);
	json_t *want = json_loads(claude_json_expected, 0, &je);
	assert_non_null(got);
	assert_non_null(want);
	assert_true(json_equal(got, want));
	const char *k1 = NULL;
	void *it = json_object_iter(got);
	k1 = json_object_iter_key(it);
	assert_string_equal(k1, "numStartups");
	json_decref(got);
	json_decref(want);
	free(out);
}

static void test_claude_json_invalid(void **state)
{
	(void)state;
	static const char *const bad[] = {
	    "{\"a\": 1,",		   /* truncated */
	    "[1, 2]",			   /* not an object */
	    "{\"a\": 1, \"a\": 2}",	   /* duplicate key */
	    "",				   /* empty */
	    "{\"primaryApiKey\": \"x\"} x" /* trailing junk */
	};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
		char *out = (char *)"untouched";
		size_t len = 7;
		struct ccvm_err err = {0};
		assert_int_equal(sanitize_claude_json(bad[i], strlen(bad[i]),
						      &out, &len, &err),
				 -EINVAL);
		assert_string_equal(out, "untouched");
		assert_true(strlen(err.msg) > 0);
		assert_null(strchr(err.msg, '\n'));
	}
	struct ccvm_err err = {0};
	char *out;
	size_t len;
	assert_int_equal(
	    sanitize_claude_json("{\"a\": 1,\n \"b\" 2}", 17, &out, &len, &err),
	    -EINVAL);
	assert_non_null(strstr(err.msg, "line 2"));
}

static void test_claude_json_odd_shapes(void **state)
{
	(void)state;
	/* mcpServers / projects of unexpected types are left alone, not a
	 * crash; an mcpServers entry that is not an object too. */
	const char *in = "{\"mcpServers\": [1], \"projects\": {\"/p\": 3,"
			 " \"/q\": {\"mcpServers\": {\"s\": \"str\", \"t\":"
			 " {\"env\": 1, \"command\": \"c\"}}}}}";
	char *out;
	size_t len;
	struct ccvm_err err = {0};
	assert_int_equal(sanitize_claude_json(in, strlen(in), &out, &len, &err),
			 0);
	json_t *got = json_loads(out, 0, NULL);
	json_t *want =
	    json_loads("{\"mcpServers\": [1], \"projects\": {\"/p\": 3, \"/q\":"
		       " {\"mcpServers\": {\"s\": \"str\", \"t\": "
		       "{\"command\": \"c\"}}}}}",
		       0, NULL);
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
	free(out);
}

/* ---- ~/.claude/settings.json -------------------------------------------- */

static void test_settings_json(void **state)
{
	(void)state;
	static const char in[] =
	    "{\n"
	    "  \"model\": \"opus\",\n"
	    "  \"apiKeyHelper\": \"/home/u/bin/print-key CANARY_HELPER\",\n"
	    "  \"awsAuthRefresh\": \"aws sso login CANARY_AWS\",\n"
	    "  \"permissions\": {\"allow\": [\"Bash(npm test)\"]},\n"
	    "  \"env\": {\n"
	    "    \"ANTHROPIC_API_KEY\": \"CANARY_K1\",\n"
	    "    \"ANTHROPIC_AUTH_TOKEN\": \"CANARY_K2\",\n"
	    "    \"AWS_SECRET_ACCESS_KEY\": \"CANARY_K3\",\n"
	    "    \"GITHUB_PAT\": \"CANARY_K4\",\n"
	    "    \"ANTHROPIC_CUSTOM_HEADERS\": \"x-auth: CANARY_K5\",\n"
	    "    \"db_password\": \"CANARY_K6\",\n"
	    "    \"SOME_VAR\": \"sk-ant-api03-CANARY_K7\",\n"
	    "    \"DATABASE_URL\": \"postgres://me:CANARY_K8@db/x\",\n"
	    "    \"MAX_THINKING_TOKENS\": \"31999\",\n"
	    "    \"CLAUDE_CODE_MAX_OUTPUT_TOKENS\": \"8000\",\n"
	    "    \"KEYBOARD_LAYOUT\": \"us\",\n"
	    "    \"DISABLE_TELEMETRY\": \"1\",\n"
	    "    \"PLAIN_URL\": \"https://example.com/x\"\n"
	    "  }\n"
	    "}\n";
	char *out = NULL, *warn = NULL;
	size_t len = 0, wlen = 0;
	struct ccvm_err err = {0};
	FILE *w = open_memstream(&warn, &wlen);
	assert_non_null(w);
	assert_int_equal(
	    sanitize_settings_json(in, strlen(in), w, &out, &len, &err), 0);
	fclose(w);
	assert_int_equal(strlen(out), len);
	for (int i = 1; i <= 8; i++) {
		char c[16];
		snprintf(c, sizeof(c), "CANARY_K%d", i);
		assert_null(strstr(out, c));
		assert_null(strstr(warn, c)); /* names, never values */
	}
	assert_null(strstr(out, "CANARY_HELPER"));
	assert_null(strstr(out, "CANARY_AWS"));
	assert_non_null(strstr(warn, "env.ANTHROPIC_API_KEY not staged"));
	assert_non_null(strstr(warn, "env.DATABASE_URL not staged"));
	assert_non_null(strstr(warn, "apiKeyHelper not staged"));
	json_error_t je;
	json_t *got = json_loads(out, 0, &je);
	assert_non_null(got);
	json_t *env = json_object_get(got, "env");
	static const char *const kept[] = {
	    "MAX_THINKING_TOKENS", "CLAUDE_CODE_MAX_OUTPUT_TOKENS",
	    "KEYBOARD_LAYOUT", "DISABLE_TELEMETRY", "PLAIN_URL"};
	for (size_t i = 0; i < ARRAY_LEN(kept); i++)
		assert_non_null(json_object_get(env, kept[i]));
	assert_int_equal(json_object_size(env), ARRAY_LEN(kept));
	assert_string_equal(json_string_value(json_object_get(got, "model")),
			    "opus");
	assert_non_null(json_object_get(got, "permissions"));
	json_decref(got);
	free(out);
	free(warn);

	/* Not an object, or not JSON: -EINVAL, the caller does not stage. */
	assert_int_equal(
	    sanitize_settings_json("[1]", 3, NULL, &out, &len, &err), -EINVAL);
	assert_int_equal(
	    sanitize_settings_json("{\"env\": {", 9, NULL, &out, &len, &err),
	    -EINVAL);
	assert_non_null(strstr(err.msg, "line 1"));
}

/* ---- git config --------------------------------------------------------- */

static const char *git_bin(void)
{
	static const char *const cands[] = {"/usr/bin/git", "/bin/git",
					    "/usr/local/bin/git"};
	for (size_t i = 0; i < ARRAY_LEN(cands); i++)
		if (access(cands[i], X_OK) == 0)
			return cands[i];
	return NULL;
}

/* `git config --file <text in a temp file> --null --list` into *out. */
static void git_reread(const char *git, const char *text, size_t len,
		       char **out, size_t *out_len)
{
	char path[] = "/tmp/ccvm-test-gitcfg.XXXXXX";
	int fd = mkostemp(path, O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(util_write_all(fd, text, len), 0);
	close(fd);
	int p[2];
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 1);
		char *argv[] = {"git",	  "config", "--file", path,
				"--null", "--list", NULL};
		char *envp[] = {"HOME=/nonexistent", "GIT_CONFIG_NOSYSTEM=1",
				"LC_ALL=C", NULL};
		execve(git, argv, envp);
		_exit(127);
	}
	close(p[1]);
	size_t cap = 1 << 16;
	char *buf = malloc(cap);
	ssize_t n = util_read_all(p[0], buf, cap - 1);
	close(p[0]);
	assert_true(n >= 0);
	int st;
	waitpid(pid, &st, 0);
	unlink(path);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("git rejected the rendered config:\n%s", text);
	buf[n] = '\0';
	*out = buf;
	*out_len = (size_t)n;
}

/* Builds a --null list from key/value pairs (value NULL: no value). */
static char *mklist(size_t *len, const char *const *kv, size_t n)
{
	struct sanitize_buf b = {0};
	for (size_t i = 0; i + 1 < n; i += 2) {
		assert_int_equal(sanitize_buf_add(&b, kv[i], strlen(kv[i])), 0);
		if (kv[i + 1]) {
			assert_int_equal(sanitize_buf_add(&b, "\n", 1), 0);
			assert_int_equal(
			    sanitize_buf_add(&b, kv[i + 1], strlen(kv[i + 1])),
			    0);
		}
		assert_int_equal(sanitize_buf_add(&b, "", 1), 0);
		/* sanitize_buf_add of "" with n=1 appends the NUL byte. */
	}
	*len = b.len;
	return b.p;
}

static void print_list(const char *what, const char *l, size_t n)
{
	fprintf(stderr, "%s:\n", what);
	for (size_t i = 0; i < n; i++)
		fputc(l[i] == '\0' ? '|' : l[i], stderr);
	fputc('\n', stderr);
}

/* clang-format off */
static const char *const in_kv[] = {
	"user.name", "Ada Lovelace",
	"user.email", "ada@example.com",
	"user.signingkey", "ssh-ed25519 AAAACANARY_SIGNKEY",
	"credential.helper", "store --file ~/.CANARY_CREDSTORE",
	"credential.https://github.com.helper", "!gh auth git-credential",
	"credential.https://github.com.username", "ada",
	"gpg.format", "ssh",
	"gpg.ssh.program", "/nix/store/abc-openssh/bin/ssh-keygen",
	"commit.gpgsign", "true",
	"tag.gpgsign", "true",
	"core.excludesfile", "~/.gitignore_global",
	"core.editor", "/nix/store/xyz-vim/bin/vim",
	"core.autocrlf", "input",
	"include.path", "~/.gitconfig.local",
	"includeif.gitdir:~/work/.path", "~/.gitconfig.work",
	"http.https://git.corp.example/.extraheader", "AUTHORIZATION: basic CANARY_HDR",
	"url.https://ada:CANARY_URLPW@git.example/.insteadof", "https://git.example/",
	"url.git@github.com:.insteadof", "https://github.com/",
	"sendemail.smtppass", "CANARY_SMTP",
	"github.oauth-token", "CANARY_HUBTOKEN",
	"alias.co", "checkout",
	"alias.lg", "log --graph --pretty=format:'%h %s' # not a comment",
	"alias.token", "!echo alias named token is kept",
	"alias.q", "!f() { echo \"a\\\\b\"; }; f",
	"remote.my.remote.url", "https://example.com/r.git",
	"weird.sub\"with\\quote.key", "x",
	"weird..emptysub", "y",
	"s.k1", " leading and trailing ",
	"s.k2", "semi;colon",
	"s.k3", "multi\nline\ttab",
	"s.k4", "",
	"s.flag", NULL,
	"s.k5", "ctl\x01\x7f\r end",
	"s.k6", "utf8 \xc3\xa9\xe2\x98\x83",
	"s.k7", "back\bspace",
	"user.name", "Ada L. Second",
	"9sect.key", "kept: a section may start with a digit",
	"nodot", "dropped",
	"s.1bad", "dropped",
};

static const char *const want_kv[] = {
	"user.name", "Ada Lovelace",
	"user.email", "ada@example.com",
	"core.autocrlf", "input",
	"url.git@github.com:.insteadof", "https://github.com/",
	"alias.co", "checkout",
	"alias.lg", "log --graph --pretty=format:'%h %s' # not a comment",
	"alias.token", "!echo alias named token is kept",
	"alias.q", "!f() { echo \"a\\\\b\"; }; f",
	"remote.my.remote.url", "https://example.com/r.git",
	"weird.sub\"with\\quote.key", "x",
	"weird..emptysub", "y",
	"s.k1", " leading and trailing ",
	"s.k2", "semi;colon",
	"s.k3", "multi\nline\ttab",
	"s.k4", "",
	"s.flag", NULL,
	"s.k5", "ctl\x01\x7f\r end",
	"s.k6", "utf8 \xc3\xa9\xe2\x98\x83",
	"s.k7", "back\bspace",
	"user.name", "Ada L. Second",
	"9sect.key", "kept: a section may start with a digit",
	"commit.gpgsign", "false",
	"tag.gpgsign", "false",
};
/* clang-format on */

/* The sanitized list, in the order git reads the rendered file back. */
static void test_git_sanitize_roundtrip(void **state)
{
	(void)state;
	size_t in_len;
	char *in = mklist(&in_len, in_kv, ARRAY_LEN(in_kv));
	char *warnbuf = NULL;
	size_t warnlen = 0;
	FILE *warn = open_memstream(&warnbuf, &warnlen);
	char *text = NULL, *excl = NULL;
	size_t text_len;
	struct ccvm_err err = {0};
	assert_int_equal(sanitize_git_config(in, in_len, "/home/ada", warn,
					     &text, &text_len, &excl, &err),
			 0);
	fclose(warn);
	assert_string_equal(excl, "/home/ada/.gitignore_global");
	assert_int_equal(strlen(text), text_len);
	static const char *const canaries[] = {
	    "CANARY",  "signingkey",  "credential", "/nix/store",  "gpg.",
	    "include", "extraheader", "smtppass",   "excludesfile"};
	for (size_t i = 0; i < ARRAY_LEN(canaries); i++) {
		if (strstr(text, canaries[i]))
			fail_msg("\"%s\" in rendered config:\n%s", canaries[i],
				 text);
	}
	/* Warnings name the keys dropped for unexpected reasons, never the
	 * values. */
	assert_null(strstr(warnbuf, "CANARY_SMTP"));
	assert_null(strstr(warnbuf, "CANARY_HUBTOKEN"));
	assert_null(strstr(warnbuf, "CANARY_HDR"));
	assert_null(strstr(warnbuf, "CANARY_URLPW"));
	assert_non_null(strstr(warnbuf, "dropping url.(...).insteadof"));
	assert_non_null(strstr(warnbuf, "core.editor"));
	assert_non_null(strstr(warnbuf, "sendemail.smtppass"));
	assert_non_null(strstr(warnbuf, "nodot"));
	assert_null(strstr(warnbuf, "credential"));
	free(warnbuf);

	const char *git = git_bin();
	if (!git) {
		free(in);
		free(text);
		free(excl);
		skip(); /* git is not installed: nothing to round-trip with */
	}
	char *back;
	size_t back_len;
	git_reread(git, text, text_len, &back, &back_len);
	size_t want_len;
	char *want = mklist(&want_len, want_kv, ARRAY_LEN(want_kv));
	if (back_len != want_len || memcmp(back, want, want_len) != 0) {
		fprintf(stderr, "rendered:\n%s\n", text);
		print_list("git read back", back, back_len);
		print_list("expected", want, want_len);
		fail();
	}
	free(want);
	free(back);
	free(in);
	free(text);
	free(excl);
}

/* Every byte value (but NUL and newline-as-is) survives quoting. */
static void test_git_value_bytes(void **state)
{
	(void)state;
	const char *git = git_bin();
	if (!git)
		skip();
	char val[300];
	size_t n = 0;
	val[n++] = ' ';
	for (int c = 1; c < 256; c++)
		val[n++] = (char)c;
	val[n++] = ' ';
	struct sanitize_buf b = {0};
	assert_int_equal(sanitize_buf_add(&b, "[x]\n\tv = ", 9), 0);
	assert_int_equal(sanitize_git_value(&b, val, n), 0);
	assert_int_equal(sanitize_buf_add(&b, "\n", 1), 0);
	char *back;
	size_t back_len;
	git_reread(git, b.p, b.len, &back, &back_len);
	assert_int_equal(back_len, 4 + n + 1);
	assert_memory_equal(back, "x.v\n", 4);
	assert_memory_equal(back + 4, val, n);
	free(back);
	sanitize_buf_free(&b);
}

static void test_git_sanitize_edges(void **state)
{
	(void)state;
	char *text, *excl;
	size_t len;
	struct ccvm_err err = {0};
	/* Empty input: only the forced signing settings. */
	assert_int_equal(
	    sanitize_git_config("", 0, "/h", NULL, &text, &len, &excl, &err),
	    0);
	assert_string_equal(text, "[commit]\n\tgpgsign = false\n"
				  "[tag]\n\tgpgsign = false\n");
	assert_null(excl);
	free(text);
	/* No trailing NUL, a relative excludes file, an absolute one wins
	 * when it comes last; an excludes file in /nix/store is still
	 * returned for copying by content. */
	const char in[] = "core.excludesfile\nrel/ignore\0"
			  "core.excludesfile\n/nix/store/q-ignore\0"
			  "a.b\nc";
	FILE *warn = fopen("/dev/null", "we");
	assert_int_equal(sanitize_git_config(in, sizeof(in) - 1, "/h", warn,
					     &text, &len, &excl, &err),
			 0);
	fclose(warn);
	assert_string_equal(excl, "/nix/store/q-ignore");
	assert_non_null(strstr(text, "[a]\n\tb = c\n"));
	free(text);
	free(excl);
	/* "~/" without a usable home: not staged. */
	const char in2[] = "core.excludesfile\n~/x\0";
	assert_int_equal(sanitize_git_config(in2, sizeof(in2) - 1, NULL, NULL,
					     &text, &len, &excl, &err),
			 0);
	assert_null(excl);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_claude_json),
	    cmocka_unit_test(test_claude_json_invalid),
	    cmocka_unit_test(test_claude_json_odd_shapes),
	    cmocka_unit_test(test_settings_json),
	    cmocka_unit_test(test_git_sanitize_roundtrip),
	    cmocka_unit_test(test_git_value_bytes),
	    cmocka_unit_test(test_git_sanitize_edges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
