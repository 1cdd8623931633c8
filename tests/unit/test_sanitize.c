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

#include "setup/sanitize.h"
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
					      NULL, NULL, &out, &len, &err),
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

/* customApiKeyResponses: only the approval of the key ccvm hands the agent
 * survives, and only when the host approved it; other keys' tails (approved
 * or rejected) never reach the guest. */
static void test_claude_json_key_approval(void **state)
{
	(void)state;
	static const char host[] =
	    "{\"customApiKeyResponses\": {\"approved\": "
	    "[\"OTHER_APPROVED_TAIL_1\", \"abcdefghij0123456789\"], "
	    "\"rejected\": [\"OTHER_REJECTED_TAIL_2\"]}, \"numStartups\": 3}";
	char tail[SANITIZE_KEY_TAIL + 1];
	static const char key[] = "  sk-ant-api03-xyzabcdefghij0123456789\n";
	assert_true(sanitize_key_tail(key, strlen(key), tail));
	assert_string_equal(tail, "abcdefghij0123456789");
	char shorter[SANITIZE_KEY_TAIL + 1];
	assert_true(sanitize_key_tail("k12", 3, shorter));
	assert_string_equal(shorter, "k12");
	assert_false(sanitize_key_tail(" \t", 2, shorter));

	char *out = NULL;
	size_t len = 0;
	struct ccvm_err err = {0};
	/* Approved on the host: kept, alone. */
	assert_int_equal(sanitize_claude_json(host, strlen(host), tail, NULL,
					      &out, &len, &err),
			 0);
	json_error_t je;
	json_t *got = json_loads(out, 0, &je);
	json_t *want = json_loads("{\"customApiKeyResponses\": {\"approved\": "
				  "[\"abcdefghij0123456789\"], \"rejected\": "
				  "[]}, \"numStartups\": 3}",
				  0, &je);
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
	assert_null(strstr(out, "OTHER_"));
	free(out);
	/* The API proxy's placeholder: approved whatever the host said,
	 * and nothing of the host's list is left. */
	assert_int_equal(sanitize_claude_json(host, strlen(host), NULL, NULL,
					      &out, &len, &err),
			 0);
	assert_null(strstr(out, "customApiKeyResponses"));
	assert_int_equal(
	    sanitize_approve_key(&out, &len, "ccvm0123456789abcdef", &err), 0);
	got = json_loads(out, 0, &je);
	want = json_loads("{\"customApiKeyResponses\": {\"approved\": "
			  "[\"ccvm0123456789abcdef\"], \"rejected\": []}, "
			  "\"numStartups\": 3}",
			  0, &je);
	assert_true(json_equal(got, want));
	json_decref(got);
	json_decref(want);
	free(out);
	/* Not approved on the host (or no key handed): nothing kept, so the
	 * agent asks as it would natively. */
	static const char *const tails[] = {"OTHER_REJECTED_TAIL_2",
					    "zzzzzzzzzzzzzzzzzzzz", NULL};
	for (size_t i = 0; i < ARRAY_LEN(tails); i++) {
		assert_int_equal(sanitize_claude_json(host, strlen(host),
						      tails[i], NULL, &out,
						      &len, &err),
				 0);
		assert_null(strstr(out, "customApiKeyResponses"));
		assert_null(strstr(out, "TAIL"));
		assert_non_null(strstr(out, "numStartups"));
		free(out);
	}
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
						      NULL, NULL, &out, &len,
						      &err),
				 -EINVAL);
		assert_string_equal(out, "untouched");
		assert_true(strlen(err.msg) > 0);
		assert_null(strchr(err.msg, '\n'));
	}
	struct ccvm_err err = {0};
	char *out;
	size_t len;
	assert_int_equal(sanitize_claude_json("{\"a\": 1,\n \"b\" 2}", 17, NULL,
					      NULL, &out, &len, &err),
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
	assert_int_equal(
	    sanitize_claude_json(in, strlen(in), NULL, NULL, &out, &len, &err),
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

/* The word rules for env names: which are credentials, which are not. */
static void test_settings_env_words(void **state)
{
	(void)state;
	static const struct {
		const char *name, *value;
		bool dropped;
	} t[] = {
	    {"DB_PWD", "x", true},
	    {"MYSQL_PWD", "x", true},
	    {"PWD", "x", true},
	    {"DB_PASS", "x", true},
	    {"SMTP_PASS", "x", true},
	    {"PGPASSWORD", "x", true},
	    {"dbPassword", "x", true},
	    {"SENTRY_DSN", "https://k@o1.ingest.example/1", true},
	    {"DATABASE_DSN", "x", true},
	    {"SLACK_WEBHOOK_URL", "https://hooks.example/T0/B0/x", true},
	    {"DISCORD_WEBHOOK", "x", true},
	    {"AZURE_STORAGE_CONNECTION_STRING", "x", true},
	    {"SqlConnectionString", "x", true},
	    {"BASIC_AUTH", "x", true},
	    {"NPM_CONFIG__AUTH", "x", true},
	    {"HttpAuth", "x", true},
	    {"GITHUBTOKEN", "x", true},
	    {"myAPIToken", "x", true},
	    {"APIKey", "x", true},
	    {"COOKIE_JAR", "x", true},
	    {"CREDENTIALS_JSON", "x", true},
	    {"REPO", "https://CANARY@github.com/a/b", true},
	    {"PROXY", "http://ada:pw@proxy:3128", true},
	    {"EXTRA", "x-api-key: sk-ant-api03-x", true},
	    {"DB_PASS", "1234", true},
	    /* kept */
	    {"AUTHOR", "Ada", false},
	    {"GIT_AUTHOR_NAME", "Ada", false},
	    {"PATH", "/usr/bin", false},
	    {"PATHEXT", "x", false},
	    {"OAUTH_CLIENT_ID", "abc", false},
	    {"DISABLE_AUTOUPDATER", "1", false},
	    {"KEYBOARD_LAYOUT", "us", false},
	    {"MAX_THINKING_TOKENS", "31999", false},
	    {"TOKENIZERS_PARALLELISM", "false", false},
	    {"BYPASS_LIST", "x", false},
	    {"COMPASS_HOME", "x", false},
	    {"PASSENGER_ENV", "x", false},
	    {"DSNAME", "x", false},
	    {"CONNECTION_TIMEOUT", "30", false},
	    {"STRING_MODE", "x", false},
	    {"HTTP_PROXY", "http://proxy:3128", false},
	    {"PKG", "left-pad@1.3.0", false},
	    {"DOCS", "https://example.com/a@b", false},
	    /* flags are not credentials, whatever their name */
	    {"CLAUDE_CODE_SKIP_BEDROCK_AUTH", "1", false},
	    {"USE_AUTH", "true", false},
	    {"API_KEY", "", false},
	};
	json_t *env = json_object();
	for (size_t i = 0; i < ARRAY_LEN(t); i++)
		json_object_set_new(env, t[i].name, json_string(t[i].value));
	json_t *doc = json_pack("{s:o}", "env", env);
	char *in = json_dumps(doc, JSON_PRESERVE_ORDER);
	json_decref(doc);
	char *out = NULL, *warn = NULL;
	size_t len = 0, wlen = 0;
	struct ccvm_err err = {0};
	FILE *w = open_memstream(&warn, &wlen);
	assert_int_equal(
	    sanitize_settings_json(in, strlen(in), w, &out, &len, &err), 0);
	fclose(w);
	json_t *got = json_loads(out, 0, NULL);
	json_t *genv = json_object_get(got, "env");
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		bool kept = json_object_get(genv, t[i].name) != NULL;
		if (kept == t[i].dropped)
			fail_msg("env.%s=%s %s", t[i].name, t[i].value,
				 kept ? "kept" : "dropped");
		char line[128];
		snprintf(line, sizeof(line), "env.%s not staged", t[i].name);
		assert_int_equal(strstr(warn, line) != NULL, t[i].dropped);
	}
	assert_null(strstr(warn, "CANARY"));
	assert_null(strstr(warn, "sk-ant-"));
	json_decref(got);
	free(in);
	free(out);
	free(warn);
}

/* ~/.claude.json: credentials in MCP server entries (anywhere: args, url,
 * command, nested members), member names with the new words, Anthropic
 * keys anywhere, customApiKeyResponses. */
static const char mcp_json[] =
    "{\n"
    "  \"customApiKeyResponses\": {\"approved\": [\"CANARY_M0fingerprint\"],"
    " \"rejected\": []},\n"
    "  \"dbPwd\": \"CANARY_M1\", \"sentryDsn\": \"CANARY_M2\","
    " \"slackWebhook\": \"CANARY_M3\", \"connectionString\": \"CANARY_M4\","
    " \"basicAuth\": \"CANARY_M5\", \"smtpPass\": \"CANARY_M6\",\n"
    "  \"author\": \"Ada\", \"path\": \"/x\", \"authorName\": \"Ada\","
    " \"claudeCodeFirstTokenDate\": \"2025-06-01\","
    " \"shiftEnterKeyBindingInstalled\": true, \"passesCache\": {},\n"
    "  \"mcpServers\": {\n"
    "    \"argsrv\": {\"command\": \"npx\", \"args\": [\"--url\","
    " \"https://ada:CANARY_M7@db.example/x\"]},\n"
    "    \"tokurl\": {\"type\": \"http\", \"url\":"
    " \"https://CANARY_M8@mcp.example/\"},\n"
    "    \"cmdkey\": {\"command\": \"env K=sk-ant-api03-CANARY_M9 mcp\"},\n"
    "    \"deep\": {\"command\": \"x\", \"oauth\": {\"clientId\": \"cid\","
    " \"clientSecret\": \"CANARY_M10\"}},\n"
    "    \"fine\": {\"command\": \"npx\", \"args\": [\"-y\", \"pkg@1.2.3\","
    " \"--docs=https://example.com/a@b\"], \"url\":"
    " \"https://mcp.example/path\"}\n"
    "  },\n"
    "  \"projects\": {\n"
    "    \"/home/ada/app\": {\"lastTotalInputTokens\": 5,"
    " \"mcpServers\": {\"psrv\": {\"command\": \"c\", \"args\":"
    " [\"postgres://CANARY_M11@db/x\"]}, \"pfine\": {\"command\": \"p\"}},"
    " \"history\": [{\"display\": \"fix it\"}, {\"display\": \"key is"
    " sk-ant-api03-CANARY_M12\"}]}\n"
    "  }\n"
    "}\n";

static void test_claude_json_mcp_credentials(void **state)
{
	(void)state;
	char *out = NULL, *warn = NULL;
	size_t len = 0, wlen = 0;
	struct ccvm_err err = {0};
	FILE *w = open_memstream(&warn, &wlen);
	assert_int_equal(sanitize_claude_json(mcp_json, strlen(mcp_json), NULL,
					      w, &out, &len, &err),
			 0);
	fclose(w);
	if (strstr(out, "CANARY") || strstr(out, "sk-ant-") ||
	    strstr(out, "customApiKeyResponses"))
		fail_msg("credential staged:\n%s", out);
	assert_null(strstr(warn, "CANARY"));
	assert_null(strstr(warn, "sk-ant-"));
	static const char *const named[] = {
	    "mcpServers.argsrv not staged",
	    "mcpServers.tokurl not staged",
	    "mcpServers.cmdkey not staged",
	    "mcpServers.deep.oauth.clientSecret not staged",
	    "projects./home/ada/app.mcpServers.psrv not staged",
	    "projects./home/ada/app.history[1].display not staged",
	    "dbPwd not staged",
	    "sentryDsn not staged",
	    "slackWebhook not staged",
	    "connectionString not staged",
	    "basicAuth not staged",
	    "smtpPass not staged",
	};
	for (size_t i = 0; i < ARRAY_LEN(named); i++)
		if (!strstr(warn, named[i]))
			fail_msg("no warning \"%s\" in:\n%s", named[i], warn);
	json_t *got = json_loads(out, 0, NULL);
	assert_non_null(got);
	json_t *want = json_loads(
	    "{\"author\": \"Ada\", \"path\": \"/x\", \"authorName\": \"Ada\","
	    " \"claudeCodeFirstTokenDate\": \"2025-06-01\","
	    " \"shiftEnterKeyBindingInstalled\": true, \"passesCache\": {},"
	    " \"mcpServers\": {\"deep\": {\"command\": \"x\", \"oauth\":"
	    " {\"clientId\": \"cid\"}}, \"fine\": {\"command\": \"npx\","
	    " \"args\": [\"-y\", \"pkg@1.2.3\","
	    " \"--docs=https://example.com/a@b\"], \"url\":"
	    " \"https://mcp.example/path\"}},"
	    " \"projects\": {\"/home/ada/app\": {\"lastTotalInputTokens\": 5,"
	    " \"mcpServers\": {\"pfine\": {\"command\": \"p\"}},"
	    " \"history\": [{\"display\": \"fix it\"}, {}]}}}",
	    0, NULL);
	assert_non_null(want);
	if (!json_equal(got, want))
		fail_msg("got:\n%s", out);
	json_decref(got);
	json_decref(want);
	free(out);
	free(warn);
}

/* Names with control characters are printed escaped: a warning line never
 * carries terminal escapes. */
static void test_warning_names_escaped(void **state)
{
	(void)state;
	const char in[] = "{\"env\": {\"X_\\u001b]52;c;TOKEN\": \"v\"}}";
	char *out = NULL, *warn = NULL;
	size_t len = 0, wlen = 0;
	struct ccvm_err err = {0};
	FILE *w = open_memstream(&warn, &wlen);
	assert_int_equal(
	    sanitize_settings_json(in, strlen(in), w, &out, &len, &err), 0);
	fclose(w);
	assert_non_null(strstr(warn, "env.X_?]52;c;TOKEN not staged"));
	assert_null(strchr(warn, '\x1b'));
	free(out);
	free(warn);
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
	"remote.sub\"with\\quote.key", "x",
	"remote..emptysub", "y",
	"alias.k1", " leading and trailing ",
	"alias.k2", "semi;colon",
	"alias.k3", "multi\nline\ttab",
	"alias.k4", "",
	"alias.flag", NULL,
	"alias.k5", "ctl\x01\x7f\r end",
	"alias.k6", "utf8 \xc3\xa9\xe2\x98\x83",
	"alias.k7", "back\bspace",
	"user.name", "Ada L. Second",
	"9sect.key", "valid, but not a git section",
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
	"remote.sub\"with\\quote.key", "x",
	"remote..emptysub", "y",
	"alias.k1", " leading and trailing ",
	"alias.k2", "semi;colon",
	"alias.k3", "multi\nline\ttab",
	"alias.k4", "",
	"alias.flag", NULL,
	"alias.k5", "ctl\x01\x7f\r end",
	"alias.k6", "utf8 \xc3\xa9\xe2\x98\x83",
	"alias.k7", "back\bspace",
	"user.name", "Ada L. Second",
	"commit.gpgsign", "false",
	"tag.gpgsign", "false",
};
/* clang-format on */

/* Sanitizes the list built from kv; the rendered text, the excludes path
 * and the warnings into the out parameters. */
static void sanitize_kv(const char *const *kv, size_t n, char **text,
			size_t *text_len, char **excl, char **warnbuf)
{
	size_t in_len, warnlen = 0;
	char *in = mklist(&in_len, kv, n);
	FILE *warn = open_memstream(warnbuf, &warnlen);
	struct ccvm_err err = {0};
	assert_int_equal(sanitize_git_config(in, in_len, "/home/ada", warn,
					     text, text_len, excl, &err),
			 0);
	fclose(warn);
	free(in);
}

/* git reads text back as exactly the list want_kv. */
static void assert_git_reads(const char *git, const char *text, size_t text_len,
			     const char *const *want_list, size_t n)
{
	char *back;
	size_t back_len;
	git_reread(git, text, text_len, &back, &back_len);
	size_t want_len;
	char *want = mklist(&want_len, want_list, n);
	if (back_len != want_len || memcmp(back, want, want_len) != 0) {
		fprintf(stderr, "rendered:\n%s\n", text);
		print_list("git read back", back, back_len);
		print_list("expected", want, want_len);
		fail();
	}
	free(want);
	free(back);
}

/* The sanitized list, in the order git reads the rendered file back. */
static void test_git_sanitize_roundtrip(void **state)
{
	(void)state;
	char *text = NULL, *excl = NULL, *warnbuf = NULL;
	size_t text_len;
	sanitize_kv(in_kv, ARRAY_LEN(in_kv), &text, &text_len, &excl, &warnbuf);
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
	assert_non_null(
	    strstr(warnbuf, "dropping url.https://***@git.example/.insteadof"));
	assert_non_null(strstr(warnbuf, "core.editor"));
	assert_non_null(strstr(warnbuf, "nodot"));
	/* Sections that are not git's own are named, once, on one line. */
	const char *secs = strstr(warnbuf, "sections not staged");
	assert_non_null(secs);
	assert_non_null(strstr(secs, "sendemail, github, 9sect\n"));
	assert_null(strstr(warnbuf, "credential"));
	free(warnbuf);

	const char *git = git_bin();
	if (!git) {
		free(text);
		free(excl);
		skip(); /* git is not installed: nothing to round-trip with */
	}
	assert_git_reads(git, text, text_len, want_kv, ARRAY_LEN(want_kv));
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
			  "alias.b\nc";
	FILE *warn = fopen("/dev/null", "we");
	assert_int_equal(sanitize_git_config(in, sizeof(in) - 1, "/h", warn,
					     &text, &len, &excl, &err),
			 0);
	fclose(warn);
	assert_string_equal(excl, "/nix/store/q-ignore");
	assert_non_null(strstr(text, "[alias]\n\tb = c\n"));
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

/* Any scheme://userinfo@ is a credential, with or without a password, in
 * a subsection or in a value; and only git's own sections are staged. */
/* clang-format off */
static const char *const ui_kv[] = {
	"user.name", "Ada Lovelace",
	"url.https://ghp_CANARY_U1@github.com/.insteadof", "https://github.com/",
	"url.https://github.com/.insteadof", "https://ghp_CANARY_U2@github.com/",
	"url.https://github.com/.pushinsteadof", "https://ada:CANARY_U3@github.com/",
	"http.proxy", "http://CANARY_U4@proxy.example:3128",
	"http.https://corp.example/.proxy", "ada:CANARY_U5@proxy.example:3128",
	"remote.origin.url", "https://CANARY_U6@example.com/r.git",
	"remote.origin.pushurl", "ssh://git@example.com/r.git",
	"http.https://CANARY_U7@git.example/.sslverify", "false",
	"http.extraheader", "Authorization: Bearer CANARY_U8",
	"http.https://CANARY_U9@git.example/.extraheader", "X: CANARY_U10",
	"alias.pub", "!git push https://CANARY_U11@github.com/a/b HEAD",
	"imap.pass", "CANARY_U12",
	"sendemail.work.smtppass", "CANARY_U13",
	"gitcvs.dbpass", "CANARY_U14",
	"github.oauth-token", "CANARY_U15",
	"hub.host", "CANARY_U16",
	"delta.side-by-side", "true",
	"lfs.https://CANARY_U17@lfs.example/.access", "basic",
	"bad section.https://CANARY_U18@x.name", "v",
	"http.sslcertpasswordprotected", "true",
	"user.passwd", "CANARY_U19",
	"core.dbpass", "CANARY_U20",
	/* kept */
	"user.email", "ada@example.com",
	"remote.upstream.url", "https://example.com/r.git",
	"url.git@github.com:.insteadof", "https://github.com/",
	"url.https://mirror.example/pkg@v2/.insteadof", "https://x.example/",
	"http.proxy", "http://proxy.example:3128",
	"http.https://corp.example/.sslverify", "false",
	"alias.st", "status",
	"alias.at", "!echo user@host:path",
	"core.autocrlf", "input",
};

static const char *const ui_want[] = {
	"user.name", "Ada Lovelace",
	"user.email", "ada@example.com",
	"remote.upstream.url", "https://example.com/r.git",
	"url.git@github.com:.insteadof", "https://github.com/",
	"url.https://mirror.example/pkg@v2/.insteadof", "https://x.example/",
	"http.proxy", "http://proxy.example:3128",
	"http.https://corp.example/.sslverify", "false",
	"alias.st", "status",
	"alias.at", "!echo user@host:path",
	"core.autocrlf", "input",
	"commit.gpgsign", "false",
	"tag.gpgsign", "false",
};
/* clang-format on */

static void test_git_userinfo(void **state)
{
	(void)state;
	char *text = NULL, *excl = NULL, *warnbuf = NULL;
	size_t text_len;
	sanitize_kv(ui_kv, ARRAY_LEN(ui_kv), &text, &text_len, &excl, &warnbuf);
	if (strstr(text, "CANARY") || strstr(text, "ssh://git@") ||
	    strstr(text, "[delta]") || strstr(text, "[hub]") ||
	    strstr(text, "[github]"))
		fail_msg("secret or foreign section in rendered config:\n%s",
			 text);
	if (strstr(warnbuf, "CANARY"))
		fail_msg("a warning shows a value or userinfo:\n%s", warnbuf);
	/* Each credential is named, its userinfo masked. */
	static const char *const named[] = {
	    "url.https://***@github.com/.insteadof",
	    "url.https://github.com/.insteadof:",
	    "url.https://github.com/.pushinsteadof:",
	    "http.proxy:",
	    "http.https://corp.example/.proxy:",
	    "remote.origin.url:",
	    "remote.origin.pushurl:",
	    "http.https://***@git.example/.sslverify",
	    "http.extraheader:",
	    "http.https://***@git.example/.extraheader",
	    "alias.pub:",
	    "user.passwd:",
	    "core.dbpass:",
	    "http.sslcertpasswordprotected:",
	};
	for (size_t i = 0; i < ARRAY_LEN(named); i++)
		if (!strstr(warnbuf, named[i]))
			fail_msg("no warning naming %s in:\n%s", named[i],
				 warnbuf);
	/* Sections that are not git's own, or hold mail and CVS passwords:
	 * one line naming them all, once each. */
	const char *secs = strstr(warnbuf, "sections not staged");
	if (!secs)
		fail_msg("no line about foreign sections in:\n%s", warnbuf);
	static const char *const sections[] = {
	    "imap", "sendemail", "gitcvs", "github", "hub", "delta", "lfs"};
	for (size_t i = 0; i < ARRAY_LEN(sections); i++)
		assert_non_null(strstr(secs, sections[i]));
	assert_null(strstr(strstr(secs, "delta") + 1, "delta"));
	free(warnbuf);

	const char *git = git_bin();
	if (git) /* else: nothing to round-trip with */
		assert_git_reads(git, text, text_len, ui_want,
				 ARRAY_LEN(ui_want));
	free(text);
	free(excl);

	/* A token long enough that the warning is cut before its '@': still
	 * masked, the cut comes after the scan. */
	char key[400];
	snprintf(key, sizeof(key), "url.https://CANARY_LONG%0300d@x/.insteadof",
		 0);
	const char *const long_kv[] = {key, "https://x/"};
	sanitize_kv(long_kv, 2, &text, &text_len, &excl, &warnbuf);
	assert_null(strstr(text, "CANARY"));
	if (strstr(warnbuf, "CANARY") || !strstr(warnbuf, "url.https://***@x/"))
		fail_msg("long key warned as:\n%s", warnbuf);
	free(warnbuf);
	free(text);
	free(excl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_claude_json),
	    cmocka_unit_test(test_claude_json_key_approval),
	    cmocka_unit_test(test_claude_json_invalid),
	    cmocka_unit_test(test_claude_json_odd_shapes),
	    cmocka_unit_test(test_settings_json),
	    cmocka_unit_test(test_settings_env_words),
	    cmocka_unit_test(test_claude_json_mcp_credentials),
	    cmocka_unit_test(test_warning_names_escaped),
	    cmocka_unit_test(test_git_sanitize_roundtrip),
	    cmocka_unit_test(test_git_value_bytes),
	    cmocka_unit_test(test_git_sanitize_edges),
	    cmocka_unit_test(test_git_userinfo),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
