/* Unit tests for option resolution (src/host/options/config.c). */
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
#include <sys/stat.h>
#include <unistd.h>

#include "options/cli.h"
#include "options/config.h"
#include "options/table.h"
#include "util.h"

static char tmpdir[] = "/tmp/ccvm-test-config.XXXXXX";
static int file_seq;

/* Writes text to a new file in tmpdir; returns its malloc'ed path. */
static char *write_file(const char *text, size_t len)
{
	char *path = util_asprintf("%s/c%d.json", tmpdir, file_seq++);
	assert_non_null(path);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(util_write_all(fd, text, len), 0);
	close(fd);
	return path;
}

/*
 * Resolves with an optional config file (json, via CCVM_CONFIG), extra
 * "NAME=value" env entries (NULL-ended) and the writable flag.  HOME points
 * nowhere so no real config file is read.
 */
static int resolve(struct ccvm_config *c, const char *json,
		   const char *const *extra, int writable, struct ccvm_err *e)
{
	char *env[64];
	size_t n = 0;
	char *path = NULL, *cfgvar = NULL;
	env[n++] = "HOME=/nonexistent/ccvm-test-home";
	if (json) {
		path = write_file(json, strlen(json));
		cfgvar = util_asprintf("CCVM_CONFIG=%s", path);
		env[n++] = cfgvar;
	}
	for (size_t i = 0; extra && extra[i]; i++) {
		assert_true(n < ARRAY_LEN(env) - 1);
		env[n++] = (char *)extra[i];
	}
	env[n] = NULL;
	struct cli_args args = {.writable = writable};
	int r = cfg_resolve(c, &args, env, e);
	if (path)
		unlink(path);
	free(path);
	free(cfgvar);
	return r;
}

static int group_setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	return util_rm_rf(tmpdir);
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
	(void)state;
	struct ccvm_config c;
	struct ccvm_err e = {0};
	assert_int_equal(resolve(&c, NULL, NULL, -1, &e), 0);
	assert_true(c.writable_cwd);
	assert_int_equal(c.memory_mib, 4096);
	assert_int_equal(c.cores, 4);
	assert_int_equal(c.accel, CFG_ACCEL_AUTO);
	assert_true(c.share.settings && c.share.claude_md &&
		    c.share.keybindings && c.share.commands && c.share.agents &&
		    c.share.skills && c.share.output_styles &&
		    c.share.git_config);
	assert_false(c.share.plugins);
	assert_false(c.share.config);
	assert_false(c.nix_enable);
	assert_int_equal(c.nix_substituters.n, 0);
	assert_int_equal(c.nix_trusted_keys.n, 0);
	assert_false(c.persist_projects);
	assert_int_equal(c.vm_disk_size_gib, 0);
	assert_true(c.clipboard_images);
	assert_int_equal(c.egress_allowlist.n, 0);
	assert_int_equal(c.n_egress_ports, 1);
	assert_int_equal(c.egress_ports[0], 443);
	assert_int_equal(c.agent_sudo, -1);
	assert_string_equal(c.api_key_variable, "ANTHROPIC_API_KEY");
	assert_true(c.credential_proxy);
	assert_null(c.extra_claude_md); /* the built-in note, made by stage.c */
	assert_int_equal(c.extra_packages.n, 0);
	assert_string_equal(c.package, CCVM_DEFAULT_PACKAGE);
	assert_int_equal(c.extra_guest_modules.n, 0);
	assert_false(c.lock_guest_memory);
	assert_false(c.config_file_found);
	assert_string_equal(c.config_path,
			    "/nonexistent/ccvm-test-home/.config/ccvm/"
			    "config.json");
	cfg_free(&c);
}

/*
 * One source of truth: every row of the option table has a default, that
 * default is what cfg_init gives (the dump shows it, under the row's key),
 * and the dump has no key without a row.
 */
static void test_table_defaults(void **state)
{
	(void)state;
	struct ccvm_config c;
	struct ccvm_err e = {0};
	assert_int_equal(cfg_init(&c, &e), 0);
	char *d = NULL;
	assert_int_equal(cfg_dump_json(&c, CFG_DUMP_PRETTY, &d, &e), 0);
	json_t *dump = json_loads(d, 0, NULL);
	assert_non_null(dump);
	size_t leaves = 0;
	const char *k;
	json_t *v;
	json_object_foreach(dump, k, v) leaves +=
	    json_is_object(v) ? json_object_size(v) : 1;
	assert_int_equal(leaves, cfg_n_opts);
	for (size_t i = 0; i < cfg_n_opts; i++) {
		const struct opt *o = &cfg_opts[i];
		if (!o->def)
			fail_msg("%s has no default in its row", o->key);
		json_t *want = json_loads(o->def, JSON_DECODE_ANY, NULL);
		if (!want)
			fail_msg("%s: default %s is not JSON", o->key, o->def);
		char group[32] = "";
		const char *name = o->key, *dot = strchr(o->key, '.');
		if (dot) {
			snprintf(group, sizeof(group), "%.*s",
				 (int)(dot - o->key), o->key);
			name = dot + 1;
		}
		json_t *got = json_object_get(
		    group[0] ? json_object_get(dump, group) : dump, name);
		if (!json_equal(want, got))
			fail_msg(
			    "%s: row default %s, dump shows %s", o->key, o->def,
			    got ? json_dumps(got, JSON_ENCODE_ANY) : "nothing");
		json_decref(want);
	}
	/* The same defaults as a resolution without file or environment. */
	struct ccvm_config r;
	assert_int_equal(resolve(&r, NULL, NULL, -1, &e), 0);
	char *d2 = NULL;
	assert_int_equal(cfg_dump_json(&r, CFG_DUMP_PRETTY, &d2, &e), 0);
	assert_string_equal(d, d2);
	json_decref(dump);
	free(d);
	free(d2);
	cfg_free(&c);
	cfg_free(&r);
}

/* The help's options come from the same rows: key, variable, default
 * and the description, word for word. */
static void test_usage_defaults(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	cfg_usage(f, NULL);
	fclose(f);
	static const char *const want[] = {
	    "  memory (CCVM_MEMORY; default 4096)\n      Guest memory in "
	    "MiB.\n",
	    "  acceleration (CCVM_ACCEL; default \"auto\")\n",
	    "  share.config (CCVM_SHARE_CONFIG; default false)\n      Stage "
	    "~/.claude/config.\n",
	    "  clipboard.images (CCVM_CLIPBOARD_IMAGES, only 0 counts; default "
	    "true)\n",
	    "  egressPorts (config file only; default [443])\n",
	    "  CCVM_DEBUG ",
	    "  CCVM_SHARE_CLAUDE_CONFIG ",
	};
	for (size_t i = 0; i < ARRAY_LEN(want); i++)
		if (!strstr(buf, want[i]))
			fail_msg("help lacks \"%s\"", want[i]);
	for (size_t i = 0; i < cfg_n_opts; i++) {
		char line[1024];
		snprintf(line, sizeof(line), "\n      %s\n", cfg_opts[i].desc);
		if (!cfg_opts[i].desc || !strstr(buf, line))
			fail_msg("help lacks %s's description",
				 cfg_opts[i].key);
	}
	free(buf);
}

/* ---- the precedence matrix ---- */

enum ftype { FT_BOOL, FT_LONG, FT_ACCEL, FT_STR };

struct prec {
	const char *name; /* test name */
	const char *json; /* printf format with one %s for the value */
	const char *env;  /* variable name */
	bool flag;	  /* has --writable-cwd / --read-only-cwd */
	enum ftype type;
	size_t off;
	/* Values A and B (A differs from the default, B from A): as JSON,
	 * as an env value, and as the field's expected value. */
	const char *a_json, *a_env;
	long a;
	const char *a_str;
	const char *b_json, *b_env;
	long b;
	const char *b_str;
};

#define OFF(f) offsetof(struct ccvm_config, f)
#define PBOOL(nm, js, ev, field, def)                                          \
	{                                                                      \
		nm, js, ev, false, FT_BOOL, OFF(field),                        \
		    (def) ? "false" : "true", (def) ? "0" : "1", !(def), NULL, \
		    (def) ? "true" : "false", (def) ? "yes" : "no", (def),     \
		    NULL                                                       \
	}

static const struct prec precs[] = {
    {"writableCwd", "{\"writableCwd\": %s}", "CCVM_WRITABLE_CWD", true, FT_BOOL,
     OFF(writable_cwd), "false", "false", 0, NULL, "true", "TRUE", 1, NULL},
    {"memory", "{\"memory\": %s}", "CCVM_MEMORY", false, FT_LONG,
     OFF(memory_mib), "1000", "1000", 1000, NULL, "2000", "2000", 2000, NULL},
    {"cores", "{\"cores\": %s}", "CCVM_CORES", false, FT_LONG, OFF(cores), "1",
     "1", 1, NULL, "16", "16", 16, NULL},
    {"acceleration", "{\"acceleration\": %s}", "CCVM_ACCEL", false, FT_ACCEL,
     OFF(accel), "\"tcg\"", "tcg", CFG_ACCEL_TCG, NULL, "\"kvm\"", "kvm",
     CFG_ACCEL_KVM, NULL},
    PBOOL("share.settings", "{\"share\": {\"settings\": %s}}",
	  "CCVM_SHARE_SETTINGS", share.settings, true),
    PBOOL("share.claudeMd", "{\"share\": {\"claudeMd\": %s}}",
	  "CCVM_SHARE_CLAUDEMD", share.claude_md, true),
    PBOOL("share.keybindings", "{\"share\": {\"keybindings\": %s}}",
	  "CCVM_SHARE_KEYBINDINGS", share.keybindings, true),
    PBOOL("share.commands", "{\"share\": {\"commands\": %s}}",
	  "CCVM_SHARE_COMMANDS", share.commands, true),
    PBOOL("share.agents", "{\"share\": {\"agents\": %s}}", "CCVM_SHARE_AGENTS",
	  share.agents, true),
    PBOOL("share.skills", "{\"share\": {\"skills\": %s}}", "CCVM_SHARE_SKILLS",
	  share.skills, true),
    PBOOL("share.outputStyles", "{\"share\": {\"outputStyles\": %s}}",
	  "CCVM_SHARE_OUTPUTSTYLES", share.output_styles, true),
    PBOOL("share.plugins", "{\"share\": {\"plugins\": %s}}",
	  "CCVM_SHARE_PLUGINS", share.plugins, false),
    PBOOL("share.config", "{\"share\": {\"config\": %s}}", "CCVM_SHARE_CONFIG",
	  share.config, false),
    PBOOL("share.gitConfig", "{\"share\": {\"gitConfig\": %s}}",
	  "CCVM_SHARE_GIT_CONFIG", share.git_config, true),
    PBOOL("persistClaudeProjects", "{\"persistClaudeProjects\": %s}",
	  "CCVM_PERSIST_PROJECTS", persist_projects, false),
    {"vmDiskSize", "{\"vmDiskSize\": %s}", "CCVM_VM_DISK_SIZE", false, FT_LONG,
     OFF(vm_disk_size_gib), "20", "20", 20, NULL, "0", "0", 0, NULL},
    {"extraClaudeMd", "{\"extraClaudeMd\": %s}", "CCVM_CLAUDE_MD", false,
     FT_STR, OFF(extra_claude_md), "\"from file\"", "from file", 0, "from file",
     "\"\"", "", 0, ""},
    PBOOL("credentialProxy", "{\"credentialProxy\": %s}",
	  "CCVM_CREDENTIAL_PROXY", credential_proxy, true),
    PBOOL("lockGuestMemory", "{\"lockGuestMemory\": %s}", "CCVM_MLOCK",
	  lock_guest_memory, false),
};

static void check_field(const struct prec *p, const struct ccvm_config *c,
			bool is_a, const char *combo)
{
	const char *base = (const char *)c + p->off;
	long want = is_a ? p->a : p->b;
	long got = 0;
	switch (p->type) {
	case FT_BOOL:
		got = *(const bool *)base;
		break;
	case FT_LONG:
		got = *(const long *)base;
		break;
	case FT_ACCEL:
		got = *(const enum cfg_accel *)base;
		break;
	case FT_STR: {
		const char *s = *(char *const *)base;
		const char *w = is_a ? p->a_str : p->b_str;
		if (strcmp(s, w) != 0)
			fail_msg("%s [%s]: got \"%s\", want \"%s\"", p->name,
				 combo, s, w);
		return;
	}
	}
	if (got != want)
		fail_msg("%s [%s]: got %ld, want %ld", p->name, combo, got,
			 want);
}

/*
 * Every combination of file / env / flag: the layers present alternate
 * values A, B, A (each differs from the one before), so the last present
 * layer must be the one that shows.
 */
static void test_precedence(void **state)
{
	const struct prec *p = *state;
	unsigned layers = p->flag ? 3 : 2;
	for (unsigned mask = 0; mask < (1u << layers); mask++) {
		char combo[32] = "default";
		bool next_a = true, last_a = true, any = false;
		char *json = NULL, *envset = NULL;
		int writable = -1;
		const char *extra[2] = {NULL, NULL};
		if (mask & 1) { /* file */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
			json = util_asprintf(p->json,
					     next_a ? p->a_json : p->b_json);
#pragma GCC diagnostic pop
			last_a = next_a, next_a = !next_a, any = true;
		}
		if (mask & 2) { /* env */
			envset = util_asprintf("%s=%s", p->env,
					       next_a ? p->a_env : p->b_env);
			extra[0] = envset;
			last_a = next_a, next_a = !next_a, any = true;
		}
		if (mask & 4) { /* flag */
			writable = next_a ? (int)p->a : (int)p->b;
			last_a = next_a, any = true;
		}
		if (any)
			snprintf(combo, sizeof(combo), "%s%s%s",
				 mask & 1 ? "file " : "",
				 mask & 2 ? "env " : "",
				 mask & 4 ? "flag" : "");
		struct ccvm_config c;
		struct ccvm_err e = {0};
		if (resolve(&c, json, extra, writable, &e) != 0)
			fail_msg("%s [%s]: %s", p->name, combo, e.msg);
		if (any) {
			check_field(p, &c, last_a, combo);
		} else {
			/* Default: neither A (which differs from it). */
			struct ccvm_config d;
			assert_int_equal(cfg_init(&d, NULL), 0);
			const char *x = (const char *)&c + p->off;
			const char *y = (const char *)&d + p->off;
			if (p->type == FT_STR && !*(char *const *)y)
				assert_null(*(char *const *)x);
			else if (p->type == FT_STR)
				assert_string_equal(*(char *const *)x,
						    *(char *const *)y);
			else if (p->type == FT_BOOL)
				assert_int_equal(*(const bool *)x,
						 *(const bool *)y);
			else if (p->type == FT_LONG)
				assert_int_equal(*(const long *)x,
						 *(const long *)y);
			else
				assert_int_equal(*(const int *)x,
						 *(const int *)y);
			cfg_free(&d);
		}
		assert_true(c.config_file_found == (json != NULL));
		cfg_free(&c);
		free(json);
		free(envset);
	}
}

/* ---- CCVM_SHARE_CLAUDE_CONFIG and CCVM_CLIPBOARD_IMAGES ---- */

static void assert_claude_shares(const struct ccvm_config *c, bool v)
{
	assert_int_equal(c->share.settings, v);
	assert_int_equal(c->share.claude_md, v);
	assert_int_equal(c->share.keybindings, v);
	assert_int_equal(c->share.commands, v);
	assert_int_equal(c->share.agents, v);
	assert_int_equal(c->share.skills, v);
	assert_int_equal(c->share.output_styles, v);
	assert_int_equal(c->share.plugins, v);
	assert_int_equal(c->share.config, v);
}

static void test_share_claude_config(void **state)
{
	(void)state;
	struct ccvm_config c;
	struct ccvm_err e = {0};
	const char *off[] = {"CCVM_SHARE_CLAUDE_CONFIG=0", NULL};
	assert_int_equal(resolve(&c, NULL, off, -1, &e), 0);
	assert_claude_shares(&c, false);
	assert_true(c.share.git_config); /* not a claude item */
	cfg_free(&c);

	const char *on[] = {"CCVM_SHARE_CLAUDE_CONFIG=1", NULL};
	assert_int_equal(resolve(&c,
				 "{\"share\": {\"plugins\": false, "
				 "\"settings\": false, \"gitConfig\": false}}",
				 on, -1, &e),
			 0);
	assert_claude_shares(&c, true); /* env beats file */
	assert_false(c.share.git_config);
	cfg_free(&c);

	/* Per-item variables win, whatever their order in envp. */
	const char *mix1[] = {"CCVM_SHARE_SKILLS=1",
			      "CCVM_SHARE_CLAUDE_CONFIG=0", NULL};
	assert_int_equal(resolve(&c, NULL, mix1, -1, &e), 0);
	assert_true(c.share.skills);
	assert_false(c.share.settings);
	assert_false(c.share.agents);
	cfg_free(&c);
	const char *mix2[] = {"CCVM_SHARE_CLAUDE_CONFIG=1",
			      "CCVM_SHARE_PLUGINS=0", "CCVM_SHARE_CONFIG=no",
			      NULL};
	assert_int_equal(resolve(&c, NULL, mix2, -1, &e), 0);
	assert_false(c.share.plugins);
	assert_false(c.share.config);
	assert_true(c.share.settings);
	assert_true(c.share.output_styles);
	cfg_free(&c);

	const char *bad[] = {"CCVM_SHARE_CLAUDE_CONFIG=2", NULL};
	assert_int_equal(resolve(&c, NULL, bad, -1, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "CCVM_SHARE_CLAUDE_CONFIG"));
	assert_non_null(strstr(e.msg, "\"2\""));
}

static void test_clipboard_only_zero(void **state)
{
	(void)state;
	struct ccvm_config c;
	struct ccvm_err e = {0};
	static const char *const ignored[] = {"1",  "false", "no",  "",
					      "00", "off",   "junk"};
	for (size_t i = 0; i < ARRAY_LEN(ignored); i++) {
		char *v = util_asprintf("CCVM_CLIPBOARD_IMAGES=%s", ignored[i]);
		const char *env[] = {v, NULL};
		assert_int_equal(resolve(&c, NULL, env, -1, &e), 0);
		assert_true(c.clipboard_images);
		cfg_free(&c);
		/* Nor does it re-enable what the file disabled. */
		assert_int_equal(resolve(&c,
					 "{\"clipboard\": {\"images\": false}}",
					 env, -1, &e),
				 0);
		assert_false(c.clipboard_images);
		cfg_free(&c);
		free(v);
	}
	const char *zero[] = {"CCVM_CLIPBOARD_IMAGES=0", NULL};
	assert_int_equal(resolve(&c, NULL, zero, -1, &e), 0);
	assert_false(c.clipboard_images);
	cfg_free(&c);
	assert_int_equal(
	    resolve(&c, "{\"clipboard\": {\"images\": true}}", zero, -1, &e),
	    0);
	assert_false(c.clipboard_images);
	cfg_free(&c);
	assert_int_equal(
	    resolve(&c, "{\"clipboard\": {\"images\": false}}", NULL, -1, &e),
	    0);
	assert_false(c.clipboard_images);
	cfg_free(&c);
}

static void test_env_bool_forms(void **state)
{
	(void)state;
	static const char *const t[] = {"1", "true", "yes", "TRUE", "Yes"};
	static const char *const f[] = {"0", "false", "no", "FALSE", "No"};
	bool b;
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		assert_true(cfg_parse_bool(t[i], &b));
		assert_true(b);
		assert_true(cfg_parse_bool(f[i], &b));
		assert_false(b);
	}
	static const char *const bad[] = {"",  "2",  "on", "off",   "y",
					  "n", " 1", "1 ", "truee", "-1"};
	for (size_t i = 0; i < ARRAY_LEN(bad); i++)
		assert_false(cfg_parse_bool(bad[i], &b));
}

/* ---- validation errors ---- */

struct bad {
	const char *json;
	const char *key; /* must appear in the message */
	const char *what;
};

static const struct bad bad_files[] = {
    {"{\"enable\": true}", "enable", "unknown key"},
    {"{\"memroy\": 1}", "memroy", "unknown key"},
    {"{\"share\": {\"foo\": true}}", "share.foo", "unknown key"},
    {"{\"nix\": {\"foo\": []}}", "nix.foo", "unknown key"},
    {"{\"clipboard\": {\"text\": true}}", "clipboard.text", "unknown key"},
    {"{\"share\": true}", "share", "expected an object"},
    {"{\"nix\": []}", "nix", "expected an object"},
    {"{\"writableCwd\": \"yes\"}", "writableCwd", "expected true or false"},
    {"{\"writableCwd\": 1}", "writableCwd", "expected true or false"},
    {"{\"share\": {\"plugins\": \"true\"}}", "share.plugins",
     "expected true or false"},
    {"{\"share\": {\"gitConfig\": null}}", "share.gitConfig", "got null"},
    {"{\"nix\": {\"enable\": 1}}", "nix.enable", "expected true or false"},
    {"{\"clipboard\": {\"images\": 0}}", "clipboard.images",
     "expected true or false"},
    {"{\"persistClaudeProjects\": null}", "persistClaudeProjects", "null"},
    {"{\"lockGuestMemory\": \"1\"}", "lockGuestMemory", "a string"},
    {"{\"credentialProxy\": 0}", "credentialProxy", "expected true or false"},
    {"{\"credentialProxy\": null}", "credentialProxy", "null"},
    {"{\"memory\": \"4096\"}", "memory", "expected an integer"},
    {"{\"memory\": 1.5}", "memory", "expected an integer"},
    {"{\"memory\": 0}", "memory", "out of range"},
    {"{\"memory\": -1}", "memory", "out of range"},
    {"{\"memory\": 99999999999}", "memory", "out of range"},
    {"{\"memory\": 99999999999999999999999}", "config", "too big"},
    {"{\"cores\": 0}", "cores", "out of range"},
    {"{\"cores\": 1025}", "cores", "out of range"},
    {"{\"vmDiskSize\": -1}", "vmDiskSize", "out of range"},
    {"{\"vmDiskSize\": true}", "vmDiskSize", "expected an integer"},
    {"{\"acceleration\": \"fast\"}", "acceleration", "\"fast\""},
    {"{\"acceleration\": \"KVM\"}", "acceleration", "\"KVM\""},
    {"{\"acceleration\": 1}", "acceleration", "an integer"},
    {"{\"agentSudo\": \"auto\"}", "agentSudo", "expected null, true or false"},
    {"{\"agentSudo\": 0}", "agentSudo", "expected null, true or false"},
    {"{\"apiKeyVariable\": \"1ABC\"}", "apiKeyVariable",
     "not an environment variable name"},
    {"{\"apiKeyVariable\": \"MY-KEY\"}", "apiKeyVariable",
     "not an environment variable name"},
    {"{\"apiKeyVariable\": \"\"}", "apiKeyVariable", "empty"},
    {"{\"apiKeyVariable\": null}", "apiKeyVariable", "expected a string"},
    {"{\"extraClaudeMd\": 5}", "extraClaudeMd", "expected a string or null"},
    {"{\"egressAllowlist\": \"github.com\"}", "egressAllowlist",
     "expected an array"},
    {"{\"egressAllowlist\": [\"ok.com\", 1]}", "egressAllowlist[1]",
     "expected a string"},
    {"{\"egressAllowlist\": [\"bad host\"]}", "egressAllowlist[0]",
     "\"bad host\""},
    {"{\"egressAllowlist\": [\"a.com\", \"-a.com\"]}", "egressAllowlist[1]",
     "not a host name"},
    {"{\"egressAllowlist\": [\"a-.com\"]}", "egressAllowlist[0]",
     "not a host name"},
    {"{\"egressAllowlist\": [\"a..b\"]}", "egressAllowlist[0]",
     "not a host name"},
    {"{\"egressAllowlist\": [\"\"]}", "egressAllowlist[0]", "empty"},
    {"{\"egressAllowlist\": [\"1.2.3.999\"]}", "egressAllowlist[0]",
     "not a valid IPv4"},
    {"{\"egressAllowlist\": [\"1.2.3\"]}", "egressAllowlist[0]",
     "not a valid IPv4"},
    {"{\"egressAllowlist\": [\"10.0.0.0/33\"]}", "egressAllowlist[0]", "0..32"},
    {"{\"egressAllowlist\": [\"::1/129\"]}", "egressAllowlist[0]", "0..128"},
    {"{\"egressAllowlist\": [\"10.0.0.0/\"]}", "egressAllowlist[0]", "CIDR"},
    {"{\"egressAllowlist\": [\"10.0.0.0/08\"]}", "egressAllowlist[0]", "CIDR"},
    {"{\"egressAllowlist\": [\"10.0.0.0/-1\"]}", "egressAllowlist[0]", "CIDR"},
    {"{\"egressAllowlist\": [\"/8\"]}", "egressAllowlist[0]", "CIDR"},
    {"{\"egressAllowlist\": [\"example.com/8\"]}", "egressAllowlist[0]",
     "bad IP address"},
    {"{\"egressAllowlist\": [\"*\"]}", "egressAllowlist[0]", "wildcard"},
    {"{\"egressAllowlist\": [\"*.\"]}", "egressAllowlist[0]", "wildcard"},
    {"{\"egressAllowlist\": [\"foo.*.com\"]}", "egressAllowlist[0]",
     "not a host name"},
    {"{\"egressAllowlist\": [\"*example.com\"]}", "egressAllowlist[0]",
     "wildcard"},
    {"{\"egressAllowlist\": [\"example.com:443\"]}", "egressAllowlist[0]",
     "egressPorts"},
    {"{\"egressAllowlist\": [\"https://example.com\"]}", "egressAllowlist[0]",
     "https"},
    {"{\"egressAllowlist\": [\"under_score.com\"]}", "egressAllowlist[0]",
     "not a host name"},
    /* What the session's egress policy refuses, refused here already
     * (the same parser): before any image build or VM. */
    {"{\"egressAllowlist\": [\"127.0.0.1\"]}", "egressAllowlist[0]",
     "\"127.0.0.1\" is host loopback"},
    {"{\"egressAllowlist\": [\"github.com\", \"::1\"]}", "egressAllowlist[1]",
     "\"::1\" is host loopback"},
    {"{\"egressAllowlist\": [\"::ffff:127.0.0.1\"]}", "egressAllowlist[0]",
     "host loopback"},
    {"{\"egressAllowlist\": [\"0.0.0.0\"]}", "egressAllowlist[0]",
     "host loopback"},
    {"{\"egressAllowlist\": [\"192.0.2.0/24\"]}", "egressAllowlist[0]",
     "reserved"},
    {"{\"egressAllowlist\": [\"192.0.2.2\"]}", "egressAllowlist[0]",
     "host.ccvm.internal"},
    {"{\"egressAllowlist\": [\"100.100.100.100\"]}", "egressAllowlist[0]",
     "a service on this host"},
    {"{\"egressAllowlist\": [\"a.ccvm.internal\"]}", "egressAllowlist[0]",
     "ccvm's own namespace"},
    {"{\"egressPorts\": 443}", "egressPorts", "expected an array"},
    {"{\"egressPorts\": [443, 0]}", "egressPorts[1]", "outside 1..65535"},
    {"{\"egressPorts\": [443, 80, 65536]}", "egressPorts[2]",
     "outside 1..65535"},
    {"{\"egressPorts\": [-1]}", "egressPorts[0]", "outside"},
    {"{\"egressPorts\": [\"443\"]}", "egressPorts[0]", "a string"},
    {"{\"egressPorts\": [443.0]}", "egressPorts[0]", "fraction"},
    {"{\"extraPackages\": [\"Foo\"]}", "extraPackages[0]",
     "not a Debian package name"},
    {"{\"extraPackages\": [\"vim\", \"a\"]}", "extraPackages[1]",
     "not a Debian package name"},
    {"{\"extraPackages\": [\"foo bar\"]}", "extraPackages[0]",
     "not a Debian package name"},
    {"{\"extraPackages\": [\"-foo\"]}", "extraPackages[0]",
     "not a Debian package name"},
    {"{\"extraPackages\": [\"foo=1.0\"]}", "extraPackages[0]",
     "not a Debian package name"},
    {"{\"extraPackages\": \"vim\"}", "extraPackages", "expected an array"},
    {"{\"package\": \"\"}", "package", "empty"},
    {"{\"package\": \"foo bar\"}", "package", "not an npm package spec"},
    {"{\"package\": \"-g\"}", "package", "must not start with '-'"},
    {"{\"package\": \"foo\\u0007\"}", "package", "\\x07"},
    {"{\"package\": \"caf\\u00e9\"}", "package", "printable ASCII"},
    {"{\"package\": [\"x\"]}", "package", "expected a string"},
    {"{\"extraGuestModules\": [\"rel/path.sh\"]}", "extraGuestModules[0]",
     "not an absolute path"},
    {"{\"extraGuestModules\": [\"\"]}", "extraGuestModules[0]",
     "not an absolute path"},
    {"{\"extraGuestModules\": [\"/a\\nb\"]}", "extraGuestModules[0]",
     "control characters"},
    {"{\"nix\": {\"substituters\": [\"\"]}}", "nix.substituters[0]", "empty"},
    {"{\"nix\": {\"trustedPublicKeys\": [\"a b\"]}}",
     "nix.trustedPublicKeys[0]", "whitespace"},
    {"{\"nix\": {\"substituters\": [\"https://c.example/#x\"]}}",
     "nix.substituters[0]", "comment"},
    /* Syntax: jansson's message with line:column. */
    {"{\"memory\": 1,\n \"memory\": 2}", ":2:", "duplicate object key"},
    {"{\"share\": {\"plugins\": true, \"plugins\": false}}",
     ":1:", "duplicate"},
    {"{\"memory\": 1,}", ":1:", ""},
    {"", ":", "end of file"},
    {"{} {}", ":1:", "end of file expected"},
    {"[]", "config", "expected a JSON object"},
    {"{\"a\\u0000b\": 1}", ":1:", "NUL"},
};

static void test_bad_files(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad_files); i++) {
		const struct bad *b = &bad_files[i];
		struct ccvm_config c;
		struct ccvm_err e = {0};
		char *path = write_file(b->json, strlen(b->json));
		char *var = util_asprintf("CCVM_CONFIG=%s", path);
		char *env[] = {var, NULL};
		int r = cfg_resolve(&c, NULL, env, &e);
		if (r == 0)
			fail_msg("accepted: %s", b->json);
		assert_true(r == -EINVAL || r == -ERANGE);
		if (strncmp(e.msg, path, strlen(path)) != 0 ||
		    !strstr(e.msg, b->key) || !strstr(e.msg, b->what) ||
		    strchr(e.msg, '\n'))
			fail_msg("%s: message \"%s\" lacks file, \"%s\" or "
				 "\"%s\"",
				 b->json, e.msg, b->key, b->what);
		unlink(path);
		free(path);
		free(var);
	}
}

static void test_good_values(void **state)
{
	(void)state;
	static const char json[] =
	    "{\"writableCwd\": false, \"memory\": 4194304, \"cores\": 1024,"
	    " \"acceleration\": \"kvm\","
	    " \"share\": {\"settings\": false, \"claudeMd\": false,"
	    "  \"keybindings\": false, \"commands\": false, \"agents\": false,"
	    "  \"skills\": false, \"outputStyles\": false, \"plugins\": true,"
	    "  \"config\": true, \"gitConfig\": false},"
	    " \"nix\": {\"enable\": true, \"substituters\":"
	    "  [\"https://cache.nixos.org\"], \"trustedPublicKeys\":"
	    "  "
	    "[\"cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="
	    "\"]},"
	    " \"persistClaudeProjects\": true, \"vmDiskSize\": 65536,"
	    " \"clipboard\": {\"images\": false},"
	    " \"egressAllowlist\": [\"github.com\", \"*.npmjs.org\","
	    "  \"1.2.3.4\", \"2606:4700::1111\", \"2600:1f00::/24\", "
	    "\"10.0.0.0/8\","
	    "  \"0.0.0.0/0\", \"::/0\", \"host.ccvm.internal\", \"a-b.c\","
	    "  \"example.com.\", \"xn--bcher-kva.example\", \"localhost\","
	    "  \"10.1.2.3/32\", \"fe80::1/128\", \"123.example\"],"
	    " \"egressPorts\": [1, 443, 65535],"
	    " \"agentSudo\": false, \"apiKeyVariable\": \"_MY_KEY2\","
	    " \"credentialProxy\": false,"
	    " \"extraClaudeMd\": \"line1\\nline2 \\u00e9\","
	    " \"extraPackages\": [\"vim\", \"g++\", \"libc6-dev\", \"0ad\","
	    "  \"python3.11\"],"
	    " \"package\": \"@anthropic-ai/claude-code@1.0.0\","
	    " \"extraGuestModules\": [\"/etc/ccvm/a b.sh\", \"/x\"],"
	    " \"lockGuestMemory\": true}";
	struct ccvm_config c;
	struct ccvm_err e = {0};
	if (resolve(&c, json, NULL, -1, &e) != 0)
		fail_msg("%s", e.msg);
	assert_false(c.writable_cwd);
	assert_int_equal(c.memory_mib, CFG_MEMORY_MAX);
	assert_int_equal(c.cores, 1024);
	assert_int_equal(c.accel, CFG_ACCEL_KVM);
	assert_false(c.share.settings);
	assert_false(c.share.output_styles);
	assert_true(c.share.plugins);
	assert_true(c.share.config);
	assert_false(c.share.git_config);
	assert_int_equal(c.egress_allowlist.n, 16);
	assert_int_equal(c.n_egress_ports, 3);
	assert_int_equal(c.egress_ports[2], 65535);
	assert_string_equal(c.extra_claude_md, "line1\nline2 \xc3\xa9");
	assert_int_equal(c.extra_packages.n, 5);
	assert_string_equal(c.extra_guest_modules.v[0], "/etc/ccvm/a b.sh");
	assert_true(c.lock_guest_memory);
	assert_false(c.credential_proxy);
	assert_int_equal(c.vm_disk_size_gib, 65536);
	assert_int_equal(c.agent_sudo, 0);
	cfg_free(&c);
}

static void test_good_values_fields(void **state)
{
	(void)state;
	struct ccvm_config c;
	struct ccvm_err e = {0};
	if (resolve(&c,
		    "{\"share\": {\"plugins\": true, \"settings\": false},"
		    " \"nix\": {\"enable\": true, \"substituters\": [\"a\","
		    " \"b\"]}, \"agentSudo\": true, \"egressPorts\": [],"
		    " \"egressAllowlist\": [\"*.example.com\", "
		    "\"2606:4700::1111\"],"
		    " \"extraPackages\": [\"g++\"], \"vmDiskSize\": 0,"
		    " \"extraGuestModules\": [\"/p\"], \"apiKeyVariable\":"
		    " \"K\", \"package\": \"x@1\"}",
		    NULL, -1, &e) != 0)
		fail_msg("%s", e.msg);
	assert_true(c.share.plugins);
	assert_false(c.share.settings);
	assert_true(c.share.claude_md); /* untouched keys keep defaults */
	assert_true(c.nix_enable);
	assert_int_equal(c.nix_substituters.n, 2);
	assert_string_equal(c.nix_substituters.v[1], "b");
	assert_int_equal(c.agent_sudo, 1);
	assert_int_equal(c.n_egress_ports, 0);
	assert_int_equal(c.egress_allowlist.n, 2);
	assert_string_equal(c.egress_allowlist.v[0], "*.example.com");
	assert_string_equal(c.extra_packages.v[0], "g++");
	assert_string_equal(c.extra_guest_modules.v[0], "/p");
	assert_string_equal(c.api_key_variable, "K");
	assert_string_equal(c.package, "x@1");
	assert_true(c.config_file_found);
	cfg_free(&c);
	assert_int_equal(resolve(&c, "{\"agentSudo\": null}", NULL, -1, &e), 0);
	assert_int_equal(c.agent_sudo, -1);
	cfg_free(&c);
	assert_int_equal(resolve(&c, "{}", NULL, -1, &e), 0);
	assert_int_equal(c.memory_mib, 4096);
	cfg_free(&c);
}

static void test_validators(void **state)
{
	(void)state;
	assert_true(cfg_valid_env_name("A"));
	assert_true(cfg_valid_env_name("_a9"));
	assert_false(cfg_valid_env_name("9a"));
	assert_false(cfg_valid_env_name("A B"));
	assert_false(cfg_valid_env_name("A=B"));
	assert_true(cfg_valid_egress("*.a.b"));
	assert_true(cfg_valid_egress("2606:4700::1111"));
	assert_false(cfg_valid_egress("2001:db8::1")); /* documentation */
	assert_false(cfg_valid_egress("127.0.0.1"));   /* the session's no */
	assert_true(cfg_valid_egress("192.168.0.0/16"));
	assert_false(cfg_valid_egress("192.168.0.0/16/1"));
	assert_false(cfg_valid_egress("fe80::1%eth0"));
	assert_false(cfg_valid_egress("01.2.3.4"));
	char label[70];
	memset(label, 'a', 64);
	strcpy(label + 64, ".com");
	assert_false(cfg_valid_egress(label)); /* label of 64 */
	label[0] = '.';
	assert_true(cfg_valid_egress(label + 1)); /* 63 */
	char longname[300];
	for (size_t i = 0; i < 127; i++)
		memcpy(longname + 2 * i, "a.", 2);
	strcpy(longname + 254, "ab");
	assert_false(cfg_valid_egress(longname)); /* > 253 */
	assert_true(cfg_valid_deb_name("g++"));
	assert_false(cfg_valid_deb_name("G++"));
	assert_true(cfg_valid_npm_spec("@scope/pkg@^1.2"));
	assert_true(cfg_valid_npm_spec("file:/tmp/x.tgz"));
	assert_false(cfg_valid_npm_spec("a\tb"));
}

/* A JSON config whose key holds n copies of item: [item, item, ...]. */
static char *repeat_json(const char *key, const char *item, size_t n)
{
	size_t il = strlen(item);
	size_t cap = strlen(key) + 16 + n * (il + 1);
	char *s = malloc(cap);
	assert_non_null(s);
	size_t o = (size_t)snprintf(s, cap, "{\"%s\": [", key);
	for (size_t i = 0; i < n; i++) {
		memcpy(s + o, item, il);
		o += il;
		s[o++] = i + 1 < n ? ',' : ']';
	}
	memcpy(s + o, "}", 2);
	return s;
}

/*
 * Limits the image build or the session enforced only after the image
 * was built (or while building it) hold in config resolution already:
 * the npm spec's length (image_build.c refused over 512), the allowlist's
 * and the ports' counts (egress_policy.c refused over 1024 / 65535).
 */
static void test_limits_before_build(void **state)
{
	(void)state;
	struct ccvm_config c;
	struct ccvm_err e = {0};
	char spec[600];
	memset(spec, 'a', sizeof(spec));
	spec[512] = '\0';
	assert_true(cfg_valid_npm_spec(spec));
	spec[512] = 'a';
	spec[513] = '\0';
	assert_false(cfg_valid_npm_spec(spec));
	char *json = util_asprintf("{\"package\": \"%s\"}", spec);
	assert_int_equal(resolve(&c, json, NULL, -1, &e), -EINVAL);
	assert_non_null(strstr(e.msg, ": package: "));
	assert_non_null(strstr(e.msg, "512"));
	free(json);

	json = repeat_json("egressAllowlist", "\"a.com\"", 1024);
	if (resolve(&c, json, NULL, -1, &e) != 0)
		fail_msg("1024 entries: %s", e.msg);
	cfg_free(&c);
	free(json);
	json = repeat_json("egressAllowlist", "\"a.com\"", 1025);
	assert_true(resolve(&c, json, NULL, -1, &e) < 0);
	assert_non_null(strstr(e.msg, ": egressAllowlist: "));
	assert_non_null(strstr(e.msg, "1024"));
	assert_null(strchr(e.msg, '\n'));
	free(json);

	json = repeat_json("egressPorts", "1", 65535);
	if (resolve(&c, json, NULL, -1, &e) != 0)
		fail_msg("65535 ports: %s", e.msg);
	cfg_free(&c);
	free(json);
	json = repeat_json("egressPorts", "1", 65536);
	assert_true(resolve(&c, json, NULL, -1, &e) < 0);
	assert_non_null(strstr(e.msg, ": egressPorts: "));
	assert_non_null(strstr(e.msg, "65535"));
	free(json);
}

static void test_parse_keeps_cfg_on_error(void **state)
{
	(void)state;
	struct ccvm_config c;
	struct ccvm_err e = {0};
	assert_int_equal(cfg_init(&c, &e), 0);
	static const char j[] = "{\"memory\": 100, \"package\": \"p@1\", "
				"\"egressPorts\": [22], \"cores\": 0}";
	assert_int_equal(cfg_parse_json(&c, j, sizeof(j) - 1, "f.json", &e),
			 -ERANGE);
	/* The key's line and column, found in the text (jsonpos.c). */
	assert_string_equal(e.msg,
			    "f.json:1:56: cores: 0 is out of range 1..1024");
	assert_int_equal(c.memory_mib, 4096);
	assert_string_equal(c.package, CCVM_DEFAULT_PACKAGE);
	assert_int_equal(c.egress_ports[0], 443);
	/* Layers stack: a second parse applies over the first. */
	static const char j1[] = "{\"memory\": 100}", j2[] = "{\"cores\": 2}";
	assert_int_equal(cfg_parse_json(&c, j1, sizeof(j1) - 1, NULL, &e), 0);
	assert_int_equal(cfg_parse_json(&c, j2, sizeof(j2) - 1, NULL, &e), 0);
	assert_int_equal(c.memory_mib, 100);
	assert_int_equal(c.cores, 2);
	/* An env error leaves it too. */
	char *env[] = {"CCVM_MEMORY=5", "CCVM_CORES=x", NULL};
	assert_int_equal(cfg_apply_env(&c, env, &e), -EINVAL);
	assert_int_equal(c.memory_mib, 100);
	cfg_free(&c);
	cfg_free(&c); /* zeroed: safe twice */
}

struct bad_env {
	const char *set;
	const char *var;
};

static const struct bad_env bad_envs[] = {
    {"CCVM_WRITABLE_CWD=maybe", "CCVM_WRITABLE_CWD"},
    {"CCVM_WRITABLE_CWD=", "CCVM_WRITABLE_CWD"},
    {"CCVM_MEMORY=0", "CCVM_MEMORY"},
    {"CCVM_MEMORY=abc", "CCVM_MEMORY"},
    {"CCVM_MEMORY=12abc", "CCVM_MEMORY"},
    {"CCVM_MEMORY=-5", "CCVM_MEMORY"},
    {"CCVM_MEMORY= 5", "CCVM_MEMORY"},
    {"CCVM_MEMORY=+5", "CCVM_MEMORY"},
    {"CCVM_MEMORY=4194305", "CCVM_MEMORY"},
    {"CCVM_MEMORY=99999999999999999999999", "CCVM_MEMORY"},
    {"CCVM_MEMORY=", "CCVM_MEMORY"},
    {"CCVM_CORES=0", "CCVM_CORES"},
    {"CCVM_CORES=1.5", "CCVM_CORES"},
    {"CCVM_VM_DISK_SIZE=-1", "CCVM_VM_DISK_SIZE"},
    {"CCVM_VM_DISK_SIZE=1G", "CCVM_VM_DISK_SIZE"},
    {"CCVM_VM_DISK_SIZE=-0", "CCVM_VM_DISK_SIZE"},
    {"CCVM_ACCEL=fast", "CCVM_ACCEL"},
    {"CCVM_ACCEL=KVM", "CCVM_ACCEL"},
    {"CCVM_ACCEL=", "CCVM_ACCEL"},
    {"CCVM_SHARE_SETTINGS=on", "CCVM_SHARE_SETTINGS"},
    {"CCVM_SHARE_CLAUDEMD=2", "CCVM_SHARE_CLAUDEMD"},
    {"CCVM_SHARE_KEYBINDINGS=off", "CCVM_SHARE_KEYBINDINGS"},
    {"CCVM_SHARE_COMMANDS=y", "CCVM_SHARE_COMMANDS"},
    {"CCVM_SHARE_AGENTS=n", "CCVM_SHARE_AGENTS"},
    {"CCVM_SHARE_SKILLS=-1", "CCVM_SHARE_SKILLS"},
    {"CCVM_SHARE_OUTPUTSTYLES=x", "CCVM_SHARE_OUTPUTSTYLES"},
    {"CCVM_SHARE_PLUGINS=enabled", "CCVM_SHARE_PLUGINS"},
    {"CCVM_SHARE_CONFIG=10", "CCVM_SHARE_CONFIG"},
    {"CCVM_SHARE_GIT_CONFIG=t", "CCVM_SHARE_GIT_CONFIG"},
    {"CCVM_PERSIST_PROJECTS=1 ", "CCVM_PERSIST_PROJECTS"},
    {"CCVM_MLOCK=2", "CCVM_MLOCK"},
    {"CCVM_CREDENTIAL_PROXY=off", "CCVM_CREDENTIAL_PROXY"},
    {"CCVM_CREDENTIAL_PROXY=", "CCVM_CREDENTIAL_PROXY"},
    {"CCVM_MLOCK=1\n2", "CCVM_MLOCK"},
};

static void test_bad_env(void **state)
{
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(bad_envs); i++) {
		struct ccvm_config c;
		struct ccvm_err e = {0};
		const char *env[] = {bad_envs[i].set, NULL};
		if (resolve(&c, NULL, env, -1, &e) != -EINVAL)
			fail_msg("accepted %s", bad_envs[i].set);
		size_t vl = strlen(bad_envs[i].var);
		if (strncmp(e.msg, bad_envs[i].var, vl) != 0 ||
		    e.msg[vl] != ':' || strchr(e.msg, '\n'))
			fail_msg("%s: bad message \"%s\"", bad_envs[i].set,
				 e.msg);
	}
	/* The value appears escaped. */
	struct ccvm_config c;
	struct ccvm_err e = {0};
	const char *env[] = {"CCVM_MLOCK=1\n\xff", NULL};
	assert_int_equal(resolve(&c, NULL, env, -1, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "\"1\\n\\xff\""));
	/* CCVM_CLAUDE_MD takes any text, empty included. */
	const char *md[] = {"CCVM_CLAUDE_MD=a\nb", NULL};
	assert_int_equal(resolve(&c, NULL, md, -1, &e), 0);
	assert_string_equal(c.extra_claude_md, "a\nb");
	cfg_free(&c);
	const char *mdoff[] = {"CCVM_CLAUDE_MD=", NULL};
	assert_int_equal(resolve(&c, NULL, mdoff, -1, &e), 0);
	assert_string_equal(c.extra_claude_md, "");
	cfg_free(&c);
}

/* extraClaudeMd: null is the built-in note, in a file and in a dump. */
static void test_extra_claude_md_null(void **state)
{
	(void)state;
	struct ccvm_config c;
	struct ccvm_err e = {0};
	const char *md[] = {"CCVM_CLAUDE_MD=", NULL};
	if (resolve(&c, "{\"extraClaudeMd\": \"text\"}", md, -1, &e) != 0)
		fail_msg("%s", e.msg);
	assert_string_equal(c.extra_claude_md, "");
	cfg_free(&c);
	if (resolve(&c, "{\"extraClaudeMd\": null}", NULL, -1, &e) != 0)
		fail_msg("%s", e.msg);
	assert_null(c.extra_claude_md);
	char *d = NULL;
	assert_int_equal(cfg_dump_json(&c, CFG_DUMP_PRETTY, &d, &e), 0);
	assert_non_null(strstr(d, "\"extraClaudeMd\": null"));
	struct ccvm_config c2;
	if (resolve(&c2, d, NULL, -1, &e) != 0)
		fail_msg("dump is not a valid config: %s", e.msg);
	assert_null(c2.extra_claude_md);
	free(d);
	cfg_free(&c);
	cfg_free(&c2);
	/* Other strings stay non-nullable. */
	assert_int_equal(resolve(&c, "{\"package\": null}", NULL, -1, &e),
			 -EINVAL);
}

/* ---- the config file's location ---- */

static void test_config_path(void **state)
{
	(void)state;
	char *p = NULL;
	bool req = true;
	struct ccvm_err e = {0};
	char *e1[] = {"HOME=/h", NULL};
	assert_int_equal(cfg_config_path(e1, &p, &req, &e), 0);
	assert_string_equal(p, "/h/.config/ccvm/config.json");
	assert_false(req);
	free(p);
	char *e2[] = {"HOME=/h", "XDG_CONFIG_HOME=/x/", NULL};
	assert_int_equal(cfg_config_path(e2, &p, &req, &e), 0);
	assert_string_equal(p, "/x/ccvm/config.json");
	free(p);
	char *e3[] = {"HOME=/h", "XDG_CONFIG_HOME=rel", NULL}; /* ignored */
	assert_int_equal(cfg_config_path(e3, &p, &req, &e), 0);
	assert_string_equal(p, "/h/.config/ccvm/config.json");
	free(p);
	char *e4[] = {"HOME=/h", "XDG_CONFIG_HOME=/x", "CCVM_CONFIG=my.json",
		      NULL};
	assert_int_equal(cfg_config_path(e4, &p, &req, &e), 0);
	assert_string_equal(p, "my.json");
	assert_true(req);
	free(p);
	char *e5[] = {"PATH=/bin", NULL};
	p = (char *)1;
	assert_int_equal(cfg_config_path(e5, &p, &req, &e), 0);
	assert_null(p);
	char *e6[] = {"CCVM_CONFIG=", NULL};
	assert_int_equal(cfg_config_path(e6, &p, &req, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "CCVM_CONFIG"));
	assert_null(cfg_env_get(e1, "HOM"));
	char *e7[] = {"CCVM_MEMORYX=1", "CCVM_MEMORY", "CCVM_MEMORY=7",
		      "CCVM_MEMORY=8", NULL};
	assert_string_equal(cfg_env_get(e7, "CCVM_MEMORY"), "7");
	assert_null(cfg_env_get(NULL, "X"));
}

static void test_config_files(void **state)
{
	(void)state;
	struct ccvm_config c;
	struct ccvm_err e = {0};
	/* CCVM_CONFIG naming a missing file is an error naming both. */
	char *missing = util_asprintf("CCVM_CONFIG=%s/nope.json", tmpdir);
	char *env1[] = {missing, NULL};
	assert_int_equal(cfg_resolve(&c, NULL, env1, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "CCVM_CONFIG"));
	assert_non_null(strstr(e.msg, "nope.json"));
	free(missing);

	/* The default file is found under XDG_CONFIG_HOME, and read. */
	char *xdg = util_asprintf("%s/xdg", tmpdir);
	char *dir = util_asprintf("%s/ccvm", xdg);
	assert_int_equal(util_mkdir_p(dir, 0700), 0);
	char *file = util_asprintf("%s/config.json", dir);
	char *xdgvar = util_asprintf("XDG_CONFIG_HOME=%s", xdg);
	char *env2[] = {"HOME=/nonexistent", xdgvar, NULL};
	assert_int_equal(cfg_resolve(&c, NULL, env2, &e), 0); /* missing: ok */
	assert_false(c.config_file_found);
	assert_string_equal(c.config_path, file);
	cfg_free(&c);
	int fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(util_write_all(fd, "{\"cores\": 3}", 12), 0);
	close(fd);
	assert_int_equal(cfg_resolve(&c, NULL, env2, &e), 0);
	assert_true(c.config_file_found);
	assert_int_equal(c.cores, 3);
	cfg_free(&c);
	/* A default path that exists but is not a file is an error. */
	unlink(file);
	assert_int_equal(mkdir(file, 0700), 0);
	assert_true(cfg_resolve(&c, NULL, env2, &e) < 0);
	assert_non_null(strstr(e.msg, "not a regular file"));
	assert_non_null(strstr(e.msg, file));
	rmdir(file);
	/* Unreadable (skipped as root, who reads anything). */
	if (geteuid() != 0) {
		fd = open(file, O_WRONLY | O_CREAT | O_CLOEXEC, 0);
		close(fd);
		assert_int_equal(cfg_resolve(&c, NULL, env2, &e), -EACCES);
		assert_non_null(strstr(e.msg, file));
		unlink(file);
	}
	/* Too big. */
	size_t big = CFG_FILE_MAX + 1;
	char *text = malloc(big);
	assert_non_null(text);
	memset(text, ' ', big);
	text[0] = '{';
	text[big - 1] = '}';
	char *bigpath = write_file(text, big);
	char *bigvar = util_asprintf("CCVM_CONFIG=%s", bigpath);
	char *env3[] = {bigvar, NULL};
	assert_int_equal(cfg_resolve(&c, NULL, env3, &e), -EFBIG);
	assert_non_null(strstr(e.msg, "larger than"));
	free(text);
	free(bigpath);
	free(bigvar);
	free(xdg);
	free(dir);
	free(file);
	free(xdgvar);
}

/* ---- dump ---- */

static void test_dump_roundtrip(void **state)
{
	(void)state;
	struct ccvm_config c;
	struct ccvm_err e = {0};
	const char *env[] = {"CCVM_MEMORY=1234", "CCVM_SHARE_CLAUDE_CONFIG=0",
			     "CCVM_CLAUDE_MD=\"quoted\"\n\\ \xc3\xa9", NULL};
	if (resolve(&c,
		    "{\"egressAllowlist\": [\"a.com\", \"10.0.0.0/8\"],"
		    " \"egressPorts\": [80, 443], \"agentSudo\": true,"
		    " \"nix\": {\"substituters\": [\"s\"]},"
		    " \"extraPackages\": [\"vim\"], \"package\": \"p@2\"}",
		    env, 0, &e) != 0)
		fail_msg("%s", e.msg);
	char *d1 = NULL;
	assert_int_equal(cfg_dump_json(&c, CFG_DUMP_PRETTY, &d1, &e), 0);
	assert_true(d1[strlen(d1) - 1] == '\n');
	/* Feed the dump back as a config file: same options. */
	struct ccvm_config c2;
	if (resolve(&c2, d1, NULL, -1, &e) != 0)
		fail_msg("dump is not a valid config: %s", e.msg);
	char *d2 = NULL;
	assert_int_equal(cfg_dump_json(&c2, CFG_DUMP_PRETTY, &d2, &e), 0);
	assert_string_equal(d1, d2);
	assert_false(c2.writable_cwd);
	assert_int_equal(c2.memory_mib, 1234);
	assert_false(c2.share.skills);
	assert_int_equal(c2.n_egress_ports, 2);
	assert_int_equal(c2.egress_ports[0], 80);
	assert_string_equal(c2.extra_claude_md, "\"quoted\"\n\\ \xc3\xa9");
	/* Every key of the dump is a known key: parsing checked that. Also
	 * the top level holds exactly the documented keys. */
	json_t *j = json_loads(d1, 0, NULL);
	assert_non_null(j);
	assert_int_equal(json_object_size(j), 19);
	assert_int_equal(json_object_size(json_object_get(j, "share")), 10);
	assert_true(json_is_true(json_object_get(j, "agentSudo")));
	json_decref(j);

	char *b = NULL;
	assert_int_equal(cfg_dump_json(&c, CFG_DUMP_BUILD, &b, &e), 0);
	assert_string_equal(
	    b, "{\"agentSudo\":true,\"extraGuestModules\":[],"
	       "\"extraPackages\":[\"vim\"],\"nix\":{\"enable\":false,"
	       "\"substituters\":[\"s\"],\"trustedPublicKeys\":[]},"
	       "\"package\":\"p@2\"}");
	free(b);
	free(d1);
	free(d2);
	cfg_free(&c);
	cfg_free(&c2);
}

/* ---- root ---- */

static void test_check_root(void **state)
{
	(void)state;
	struct ccvm_err e = {0};
	char *none[] = {NULL};
	assert_int_equal(cfg_check_root(1000, none, &e), 0);
	assert_int_equal(cfg_check_root(0, none, &e), -EPERM);
	assert_non_null(strstr(e.msg, "refusing to run as root"));
	assert_non_null(strstr(e.msg, "CCVM_ALLOW_ROOT=1"));
	char *yes[] = {"CCVM_ALLOW_ROOT=1", NULL};
	assert_int_equal(cfg_check_root(0, yes, &e), 0);
	char *no[] = {"CCVM_ALLOW_ROOT=0", NULL};
	assert_int_equal(cfg_check_root(0, no, &e), -EPERM);
	char *bad[] = {"CCVM_ALLOW_ROOT=please", NULL};
	assert_int_equal(cfg_check_root(0, bad, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "CCVM_ALLOW_ROOT"));
	assert_int_equal(cfg_check_root(1000, bad, &e), 0);
}

static void test_usage(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	char *env[] = {"HOME=/home/u", NULL};
	cfg_usage(f, env);
	fclose(f);
	static const char *const vars[] = {"CCVM_WRITABLE_CWD",
					   "CCVM_MEMORY",
					   "CCVM_CORES",
					   "CCVM_ACCEL",
					   "CCVM_SHARE_SETTINGS",
					   "CCVM_SHARE_CLAUDEMD",
					   "CCVM_SHARE_KEYBINDINGS",
					   "CCVM_SHARE_COMMANDS",
					   "CCVM_SHARE_AGENTS",
					   "CCVM_SHARE_SKILLS",
					   "CCVM_SHARE_OUTPUTSTYLES",
					   "CCVM_SHARE_PLUGINS",
					   "CCVM_SHARE_CONFIG",
					   "CCVM_SHARE_CLAUDE_CONFIG",
					   "CCVM_SHARE_GIT_CONFIG",
					   "CCVM_PERSIST_PROJECTS",
					   "CCVM_VM_DISK_SIZE",
					   "CCVM_CLIPBOARD_IMAGES",
					   "CCVM_CREDENTIAL_PROXY",
					   "CCVM_CLAUDE_MD",
					   "CCVM_MLOCK",
					   "CCVM_CONFIG",
					   "CCVM_ALLOW_ROOT",
					   "/home/u/.config/ccvm/config.json"};
	for (size_t i = 0; i < ARRAY_LEN(vars); i++)
		if (!strstr(buf, vars[i]))
			fail_msg("help lacks %s", vars[i]);
	free(buf);
}

int main(void)
{
	static struct CMUnitTest tests[64];
	size_t n = 0;
#define T(f) tests[n++] = (struct CMUnitTest)cmocka_unit_test(f)
	T(test_defaults);
	T(test_table_defaults);
	T(test_usage_defaults);
	for (size_t i = 0; i < ARRAY_LEN(precs); i++) {
		static char names[ARRAY_LEN(precs)][64];
		snprintf(names[i], sizeof(names[i]), "test_precedence %s",
			 precs[i].name);
		tests[n++] = (struct CMUnitTest){
		    .name = names[i],
		    .test_func = test_precedence,
		    .initial_state = (void *)&precs[i],
		};
	}
	T(test_share_claude_config);
	T(test_clipboard_only_zero);
	T(test_env_bool_forms);
	T(test_bad_files);
	T(test_good_values);
	T(test_good_values_fields);
	T(test_validators);
	T(test_limits_before_build);
	T(test_parse_keeps_cfg_on_error);
	T(test_bad_env);
	T(test_extra_claude_md_null);
	T(test_config_path);
	T(test_config_files);
	T(test_dump_roundtrip);
	T(test_check_root);
	T(test_usage);
	return _cmocka_run_group_tests("config", tests, n, group_setup,
				       group_teardown);
}
