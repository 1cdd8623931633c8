/* Unit tests for staging (src/host/setup/stage.c) over fixture home trees. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "setup/stage.h"
#include "util.h"

/* Every secret of the fixture; none may appear in any staged byte. */
static const char *const canaries[] = {
    "CANARY_CRED_TOP",	   "CANARY_CRED_NESTED", "CANARY_OUTSIDE",
    "CANARY_PROJECT",	   "CANARY_HISTORY",	 "CANARY_SESSION",
    "CANARY_TODO",	   "CANARY_STATSIG",	 "CANARY_SNAPSHOT",
    "CANARY_APIKEY",	   "CANARY_MCP_ENV",	 "CANARY_MCP_HDR",
    "CANARY_GIT_CRED",	   "CANARY_SSH",	 "CANARY_OUTSIDE_DIR",
    "CANARY_SETTINGS_ENV",
};

struct fx {
	char *root; /* temp dir */
	char *home; /* root/home */
};

static void put(const char *path, const char *content, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		fail_msg("create %s: %s", path, strerror(errno));
	assert_int_equal(util_write_all(fd, content, strlen(content)), 0);
	close(fd);
	assert_int_equal(chmod(path, mode), 0);
}

static char *P(const struct fx *f, const char *rel)
{
	char *p = util_path_join(f->root, rel);
	assert_non_null(p);
	return p;
}

static void fput(const struct fx *f, const char *rel, const char *content,
		 mode_t mode)
{
	char *p = P(f, rel);
	char *slash = strrchr(p, '/');
	*slash = '\0';
	assert_int_equal(util_mkdir_p(p, 0700), 0);
	*slash = '/';
	put(p, content, mode);
	free(p);
}

static void flink(const struct fx *f, const char *target, const char *rel)
{
	char *p = P(f, rel);
	if (symlink(target, p) < 0)
		fail_msg("symlink %s: %s", p, strerror(errno));
	free(p);
}

static const char claude_json[] =
    "{\"userID\": \"u-123\", \"primaryApiKey\": \"CANARY_APIKEY\","
    " \"mcpServers\": {\"gh\": {\"command\": \"gh-mcp\", \"env\":"
    " {\"T\": \"CANARY_MCP_ENV\"}, \"headers\": {\"A\": \"CANARY_MCP_HDR\"}}},"
    " \"projects\": {\"/p\": {\"mcpServers\": {\"x\": {\"command\": \"xc\","
    " \"env\": {\"T\": \"CANARY_MCP_ENV\"}}}}}}\n";

static int fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char tmpl[] = "/tmp/ccvm-test-stage.XXXXXX";
	assert_non_null(mkdtemp(tmpl));
	f->root = strdup(tmpl);
	f->home = P(f, "home");
	/* The ~/.claude tree. */
	fput(f, "home/.claude/.credentials.json",
	     "{\"claudeAiOauth\": {\"accessToken\": \"CANARY_CRED_TOP\"}}",
	     0600);
	fput(f, "home/.claude/settings.json",
	     "{\"theme\": \"dark\", \"env\": {\"GH_TOKEN\": "
	     "\"CANARY_SETTINGS_ENV\", \"DISABLE_TELEMETRY\": \"1\"}}\n",
	     0644);
	fput(f, "home/.claude/CLAUDE.md", "Host instructions.", 0644);
	fput(f, "store/keybindings.json", "{\"bindings\": []}\n", 0444);
	flink(f, "../../store/keybindings.json",
	      "home/.claude/keybindings.json");
	fput(f, "home/.claude/commands/hello.md", "say hello\n", 0644);
	fput(f, "home/.claude/commands/run.sh", "#!/bin/sh\necho hi\n", 0755);
	fput(f, "home/.claude/commands/nested/deep/x.md", "deep\n", 0644);
	fput(f, "home/.claude/commands/nested/.credentials.json",
	     "CANARY_CRED_NESTED", 0600);
	flink(f, "../.credentials.json", "home/.claude/commands/cred-link.md");
	char *cred = P(f, "home/.claude/.credentials.json");
	char *hard = P(f, "home/.claude/commands/cred-hard.md");
	assert_int_equal(link(cred, hard), 0);
	free(cred);
	free(hard);
	fput(f, "home/.claude/agents/reviewer.md", "review\n", 0644);
	fput(f, "home/.claude/skills/s1/SKILL.md", "skill one\n", 0644);
	/* Inside the item, so only its name keeps it out. */
	fput(f, "home/.claude/skills/s1/.credentials.json",
	     "CANARY_CRED_NESTED", 0600);
	flink(f, "s1/.credentials.json", "home/.claude/skills/cred-in-item.md");
	fput(f, "outside/secret.txt", "CANARY_OUTSIDE", 0600);
	fput(f, "outside/dir/inner.md", "CANARY_OUTSIDE_DIR", 0600);
	fput(f, "home/.ssh/id_ed25519", "CANARY_SSH", 0600);
	flink(f, "../../../outside/secret.txt", "home/.claude/skills/outside");
	flink(f, "../../../outside/dir", "home/.claude/skills/outside-dir");
	flink(f, "../../.ssh/id_ed25519", "home/.claude/skills/ssh-key");
	flink(f, "../agents/reviewer.md", "home/.claude/skills/agent-link.md");
	flink(f, "s1", "home/.claude/skills/s1-alias");
	flink(f, ".", "home/.claude/skills/loop");
	flink(f, "../projects/p.jsonl", "home/.claude/skills/proj-link");
	flink(f, "../history.jsonl", "home/.claude/skills/hist-link");
	flink(f, "/nonexistent/ccvm-test", "home/.claude/skills/dangling");
	char *fifo = P(f, "home/.claude/skills/fifo");
	assert_int_equal(mkfifo(fifo, 0600), 0);
	free(fifo);
	fput(f, "store/output-styles/terse.md", "be terse\n", 0444);
	flink(f, "../../store/output-styles", "home/.claude/output-styles");
	fput(f, "home/.claude/plugins/installed_plugins.json", "{}\n", 0644);
	fput(f, "home/.claude/config/c.json", "{}\n", 0644);
	/* Never staged. */
	fput(f, "home/.claude/projects/p.jsonl", "CANARY_PROJECT", 0600);
	fput(f, "home/.claude/history.jsonl", "CANARY_HISTORY", 0600);
	fput(f, "home/.claude/sessions/s.json", "CANARY_SESSION", 0600);
	fput(f, "home/.claude/todos/t.json", "CANARY_TODO", 0600);
	fput(f, "home/.claude/statsig/s", "CANARY_STATSIG", 0600);
	fput(f, "home/.claude/shell-snapshots/s.sh", "CANARY_SNAPSHOT", 0600);
	/* Home root. */
	fput(f, "home/.claude.json", claude_json, 0600);
	fput(f, "home/.gitignore_global", "*.o\n", 0644);
	*state = f;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	util_rm_rf(f->root);
	free(f->home);
	free(f->root);
	free(f);
	return 0;
}

static const char git_list[] = "user.name\nAda\0"
			       "user.email\nada@example.com\0"
			       "credential.helper\nstore CANARY_GIT_CRED\0"
			       "core.excludesfile\n~/.gitignore_global\0";

static void all_on(struct ccvm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->writable_cwd = true;
	cfg->share = (struct cfg_share){true, true, true, true, true,
					true, true, true, true, true};
}

struct run {
	struct stage_list list;
	char *warn;
	size_t warn_len;
	int rc;
	struct ccvm_err err;
};

static void run_stage(const struct fx *f, const struct ccvm_config *cfg,
		      struct stage_env *env, struct run *r)
{
	memset(r, 0, sizeof(*r));
	FILE *w = open_memstream(&r->warn, &r->warn_len);
	env->warn = w;
	if (!env->git_config_given) {
		env->git_config_given = true;
		env->git_config = git_list;
		env->git_config_len = sizeof(git_list) - 1;
	}
	r->rc = stage_collect(cfg, f->home, env, &r->list, &r->err);
	fclose(w);
	if (r->rc == 0) {
		size_t total = 0;
		for (size_t i = 0; i < r->list.n; i++)
			total += r->list.v[i].len;
		assert_int_equal(total, r->list.total_bytes);
	}
}

static void run_free(struct run *r)
{
	if (r->rc == 0)
		stage_list_free(&r->list);
	free(r->warn);
}

static const struct stage_file *find(const struct run *r, const char *path)
{
	for (size_t i = 0; i < r->list.n; i++)
		if (strcmp(r->list.v[i].path, path) == 0)
			return &r->list.v[i];
	return NULL;
}

static bool has_prefix(const struct run *r, const char *prefix)
{
	for (size_t i = 0; i < r->list.n; i++)
		if (strncmp(r->list.v[i].path, prefix, strlen(prefix)) == 0)
			return true;
	return false;
}

static void assert_content(const struct run *r, const char *path,
			   const char *content)
{
	const struct stage_file *s = find(r, path);
	if (!s)
		fail_msg("%s not staged", path);
	assert_int_equal(s->len, strlen(content));
	assert_memory_equal(s->data, content, s->len);
}

static void assert_no_canary(const struct run *r)
{
	for (size_t i = 0; i < r->list.n; i++) {
		const struct stage_file *s = &r->list.v[i];
		for (size_t c = 0; c < ARRAY_LEN(canaries); c++)
			if (memmem(s->data, s->len, canaries[c],
				   strlen(canaries[c])))
				fail_msg("%s found in staged %s", canaries[c],
					 s->path);
		assert_null(strstr(s->path, ".credentials.json"));
		assert_null(strstr(s->path, ".."));
		assert_true(s->path[0] != '/');
	}
}

static void test_all_on(void **state)
{
	struct fx *f = *state;
	struct ccvm_config cfg;
	all_on(&cfg);
	struct stage_env env = {.cwd = "/work/proj"};
	struct run r;
	run_stage(f, &cfg, &env, &r);
	if (r.rc)
		fail_msg("stage_collect: %s", r.err.msg);
	static const char *const want[] = {
	    ".claude.json",
	    ".claude/settings.json",
	    ".claude/keybindings.json",
	    ".claude/commands/hello.md",
	    ".claude/commands/nested/deep/x.md",
	    ".claude/commands/run.sh",
	    ".claude/agents/reviewer.md",
	    ".claude/skills/agent-link.md",
	    ".claude/skills/s1/SKILL.md",
	    ".claude/skills/s1-alias/SKILL.md",
	    ".claude/output-styles/terse.md",
	    ".claude/plugins/installed_plugins.json",
	    ".claude/config/c.json",
	    ".claude/CLAUDE.md",
	    ".gitconfig",
	    ".config/git/ignore",
	};
	if (r.list.n != ARRAY_LEN(want)) {
		for (size_t i = 0; i < r.list.n; i++)
			fprintf(stderr, "# staged %s\n", r.list.v[i].path);
		fail_msg("%zu files staged, want %zu", r.list.n,
			 ARRAY_LEN(want));
	}
	for (size_t i = 0; i < ARRAY_LEN(want); i++)
		assert_string_equal(r.list.v[i].path, want[i]);
	assert_no_canary(&r);

	assert_content(&r, ".claude/settings.json",
		       "{\n  \"theme\": \"dark\",\n  \"env\": {\n    "
		       "\"DISABLE_TELEMETRY\": \"1\"\n  }\n}\n");
	assert_non_null(
	    strstr(r.warn, "settings.json: env.GH_TOKEN not staged"));
	assert_content(&r, ".claude/keybindings.json", "{\"bindings\": []}\n");
	assert_content(&r, ".claude/skills/agent-link.md", "review\n");
	assert_content(&r, ".claude/output-styles/terse.md", "be terse\n");
	assert_content(&r, ".config/git/ignore", "*.o\n");
	assert_int_equal(find(&r, ".claude/commands/run.sh")->mode, 0700);
	assert_int_equal(find(&r, ".claude/commands/hello.md")->mode, 0600);
	assert_int_equal(find(&r, ".claude/keybindings.json")->mode, 0600);
	const struct stage_file *cj = find(&r, ".claude.json");
	assert_non_null(memmem(cj->data, cj->len, "u-123", 5));
	assert_non_null(memmem(cj->data, cj->len, "gh-mcp", 6));
	const struct stage_file *gc = find(&r, ".gitconfig");
	assert_non_null(memmem(gc->data, gc->len, "name = Ada", 10));
	assert_null(memmem(gc->data, gc->len, "excludes", 8));
	const struct stage_file *md = find(&r, ".claude/CLAUDE.md");
	assert_true(md->len > 20);
	assert_memory_equal(md->data, "Host instructions.\n\n# ccvm", 26);
	assert_non_null(memmem(md->data, md->len, "/work/proj", 10));

	/* One warning per refused entry, naming it. */
	static const char *const warned[] = {
	    "skills/outside:",	 "skills/outside-dir:", "skills/ssh-key:",
	    "skills/proj-link:", "skills/hist-link:",	"skills/dangling:",
	    "skills/fifo:",	 "directory loop",
	};
	for (size_t i = 0; i < ARRAY_LEN(warned); i++)
		if (!strstr(r.warn, warned[i]))
			fail_msg("no warning about %s in:\n%s", warned[i],
				 r.warn);
	for (size_t c = 0; c < ARRAY_LEN(canaries); c++)
		assert_null(strstr(r.warn, canaries[c]));
	run_free(&r);
}

/* Each toggle off removes exactly its item. */
static void test_toggles(void **state)
{
	struct fx *f = *state;
	static const struct {
		size_t off;
		const char *prefixes[3];
	} t[] = {
	    {offsetof(struct cfg_share, settings),
	     {".claude/settings.json", ".claude.json", NULL}},
	    {offsetof(struct cfg_share, keybindings),
	     {".claude/keybindings.json", NULL, NULL}},
	    {offsetof(struct cfg_share, commands), {".claude/commands/", NULL}},
	    {offsetof(struct cfg_share, agents), {".claude/agents/", NULL}},
	    {offsetof(struct cfg_share, skills), {".claude/skills/", NULL}},
	    {offsetof(struct cfg_share, output_styles),
	     {".claude/output-styles/", NULL}},
	    {offsetof(struct cfg_share, plugins), {".claude/plugins/", NULL}},
	    {offsetof(struct cfg_share, config), {".claude/config/", NULL}},
	    {offsetof(struct cfg_share, git_config),
	     {".gitconfig", ".config/git/ignore", NULL}},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		for (int on = 0; on < 2; on++) {
			struct ccvm_config cfg;
			all_on(&cfg);
			*(bool *)((char *)&cfg.share + t[i].off) = on;
			struct stage_env env = {0};
			struct run r;
			run_stage(f, &cfg, &env, &r);
			assert_int_equal(r.rc, 0);
			assert_no_canary(&r);
			for (size_t p = 0; p < 3 && t[i].prefixes[p]; p++)
				if (has_prefix(&r, t[i].prefixes[p]) != on)
					fail_msg("%s: %s with toggle %d",
						 t[i].prefixes[p],
						 on ? "absent" : "present", on);
			/* The rest is unaffected. */
			assert_non_null(find(&r, ".claude/CLAUDE.md"));
			if (i != 4)
				assert_true(has_prefix(&r, ".claude/skills/"));
			run_free(&r);
		}
	}
	/* claudeMd off: only the built-in text. */
	struct ccvm_config cfg;
	all_on(&cfg);
	cfg.share.claude_md = false;
	struct stage_env env = {0};
	struct run r;
	run_stage(f, &cfg, &env, &r);
	const struct stage_file *md = find(&r, ".claude/CLAUDE.md");
	assert_non_null(md);
	assert_null(memmem(md->data, md->len, "Host instructions", 17));
	assert_memory_equal(md->data, "# ccvm", 6);
	run_free(&r);
	/* Everything off and extraClaudeMd "": nothing at all. */
	memset(&cfg, 0, sizeof(cfg));
	cfg.extra_claude_md = (char *)"";
	struct stage_env env2 = {0};
	run_stage(f, &cfg, &env2, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.list.n, 0);
	assert_int_equal(r.list.total_bytes, 0);
	run_free(&r);
}

static void test_limits(void **state)
{
	struct fx *f = *state;
	struct ccvm_config cfg;
	all_on(&cfg);
	struct run r;
	/* Per file: run.sh is 18 bytes, the largest command file (and
	 * ~/.claude.json, larger, is not shared here). */
	cfg.share.settings = false;
	struct stage_env env = {.max_file = 17};
	run_stage(f, &cfg, &env, &r);
	assert_int_equal(r.rc, -EFBIG);
	assert_non_null(strstr(r.err.msg, "commands/run.sh"));
	assert_non_null(strstr(r.err.msg, "per-file limit"));
	assert_null(strchr(r.err.msg, '\n'));
	run_free(&r);
	cfg.share.settings = true;
	/* Count: .claude.json, settings, keybindings, then commands. */
	struct stage_env env2 = {.max_files = 4};
	run_stage(f, &cfg, &env2, &r);
	assert_int_equal(r.rc, -EMFILE);
	assert_non_null(strstr(r.err.msg, "commands/nested/deep/x.md"));
	run_free(&r);
	/* Total. */
	struct stage_env env3 = {.max_total = 100};
	run_stage(f, &cfg, &env3, &r);
	assert_int_equal(r.rc, -EFBIG);
	assert_non_null(strstr(r.err.msg, "in total"));
	run_free(&r);
	/* An oversized file in a shared directory. */
	char *big = malloc(70000);
	memset(big, 'a', 69999);
	big[69999] = '\0';
	fput(f, "home/.claude/agents/big.md", big, 0644);
	free(big);
	struct stage_env env4 = {.max_file = 65536};
	run_stage(f, &cfg, &env4, &r);
	assert_int_equal(r.rc, -EFBIG);
	assert_non_null(strstr(r.err.msg, "agents/big.md"));
	run_free(&r);
}

static void test_bad_claude_json(void **state)
{
	struct fx *f = *state;
	fput(f, "home/.claude.json", "{\"primaryApiKey\": \"CANARY_APIKEY\",",
	     0600);
	struct ccvm_config cfg;
	all_on(&cfg);
	struct stage_env env = {0};
	struct run r;
	run_stage(f, &cfg, &env, &r);
	assert_int_equal(r.rc, 0);
	assert_null(find(&r, ".claude.json"));
	assert_non_null(find(&r, ".claude/settings.json"));
	assert_non_null(strstr(r.warn, ".claude.json"));
	assert_non_null(strstr(r.warn, "not staged"));
	assert_null(strstr(r.warn, "CANARY"));
	assert_no_canary(&r);
	run_free(&r);
}

/* The API proxy's placeholder is approved in the staged ~/.claude.json,
 * whatever the host approved, and in a file of ccvm's own when the host
 * has none (issue 22: the agent must not ask about it). */
static void test_proxy_placeholder_approved(void **state)
{
	struct fx *f = *state;
	static const char ph[] =
	    "sk-ant-api03-ccvm-0123456789abcdef0123456789abcdef";
	struct ccvm_config cfg;
	all_on(&cfg);
	for (int have = 1; have >= 0; have--) {
		if (!have) {
			char *p = util_path_join(f->home, ".claude.json");
			assert_int_equal(unlink(p), 0);
			free(p);
		}
		struct stage_env env = {.api_key = ph,
					.api_key_len = sizeof(ph) - 1,
					.api_proxy = true};
		struct run r;
		run_stage(f, &cfg, &env, &r);
		assert_int_equal(r.rc, 0);
		const struct stage_file *j = find(&r, ".claude.json");
		assert_non_null(j);
		char *text = strndup(j->data, j->len);
		assert_non_null(strstr(text, "\"customApiKeyResponses\""));
		assert_non_null(strstr(text, "\"cdef0123456789abcdef\""));
		free(text);
		assert_no_canary(&r);
		run_free(&r);
	}
	/* Without the proxy and without a host file: nothing staged. */
	struct stage_env env = {.api_key = ph, .api_key_len = sizeof(ph) - 1};
	struct run r;
	run_stage(f, &cfg, &env, &r);
	assert_null(find(&r, ".claude.json"));
	run_free(&r);
}

/* FIFOs and devices as items are skipped without being opened (a FIFO
 * opened for reading would block here). */
static void test_special_items(void **state)
{
	struct fx *f = *state;
	char *sett = P(f, "home/.claude/settings.json");
	assert_int_equal(unlink(sett), 0);
	assert_int_equal(mkfifo(sett, 0600), 0);
	char *kb = P(f, "home/.claude/keybindings.json");
	assert_int_equal(unlink(kb), 0);
	flink(f, "/dev/null", "home/.claude/keybindings.json");
	char *md = P(f, "home/.claude/CLAUDE.md");
	assert_int_equal(unlink(md), 0);
	assert_int_equal(mkfifo(md, 0600), 0);
	struct ccvm_config cfg;
	all_on(&cfg);
	struct stage_env env = {0};
	struct run r;
	run_stage(f, &cfg, &env, &r);
	assert_int_equal(r.rc, 0);
	assert_null(find(&r, ".claude/settings.json"));
	assert_null(find(&r, ".claude/keybindings.json"));
	const struct stage_file *m = find(&r, ".claude/CLAUDE.md");
	assert_memory_equal(m->data, "# ccvm", 6);
	assert_non_null(strstr(r.warn, "settings.json: not a regular file"));
	assert_non_null(strstr(r.warn, "keybindings.json: not a regular file"));
	assert_non_null(strstr(r.warn, "CLAUDE.md: not a regular file"));
	run_free(&r);
	free(sett);
	free(kb);
	free(md);
}

/* Item-level links are followed wherever they point, but never to the
 * home directory or ~/.claude itself, nor to a credentials file. */
static void test_item_links(void **state)
{
	struct fx *f = *state;
	char *cmds = P(f, "home/.claude/commands");
	assert_int_equal(util_rm_rf(cmds), 0);
	flink(f, "..", "home/.claude/commands");
	char *agents = P(f, "home/.claude/agents");
	assert_int_equal(util_rm_rf(agents), 0);
	flink(f, "../..", "home/.claude/agents");
	char *sett = P(f, "home/.claude/settings.json");
	assert_int_equal(unlink(sett), 0);
	flink(f, ".credentials.json", "home/.claude/settings.json");
	/* A dotfiles-style link for skills: followed. */
	char *skills = P(f, "home/.claude/skills");
	assert_int_equal(util_rm_rf(skills), 0);
	fput(f, "dotfiles/skills/x/SKILL.md", "dotfile skill\n", 0644);
	flink(f, "../../dotfiles/skills", "home/.claude/skills");
	struct ccvm_config cfg;
	all_on(&cfg);
	struct stage_env env = {0};
	struct run r;
	run_stage(f, &cfg, &env, &r);
	assert_int_equal(r.rc, 0);
	assert_false(has_prefix(&r, ".claude/commands"));
	assert_false(has_prefix(&r, ".claude/agents"));
	assert_null(find(&r, ".claude/settings.json"));
	assert_content(&r, ".claude/skills/x/SKILL.md", "dotfile skill\n");
	assert_non_null(strstr(r.warn, "commands: resolves to"));
	assert_non_null(strstr(r.warn, "agents: resolves to"));
	assert_non_null(strstr(r.warn, "credentials file"));
	assert_no_canary(&r);
	run_free(&r);
	free(cmds);
	free(agents);
	free(sett);
	free(skills);
}

/* Has a staged file with content holding needle. */
static bool staged_has(const struct run *r, const char *needle)
{
	for (size_t i = 0; i < r->list.n; i++)
		if (memmem(r->list.v[i].data, r->list.v[i].len, needle,
			   strlen(needle)))
			return true;
	return false;
}

static void replace_link(const struct fx *f, const char *target,
			 const char *rel)
{
	char *p = P(f, rel);
	assert_int_equal(util_rm_rf(p), 0);
	free(p);
	flink(f, target, rel);
}

/*
 * Issue 20 item 2: dotfiles kept in a project, ~/.claude/CLAUDE.md linked
 * into them.  While that project is shared the link is refused; once the
 * guest has repointed the project's file at ~/.ssh/id_ed25519, a session
 * elsewhere must not stage the key.  A benign link outside any share is
 * staged (positive control).
 */
static void test_chain_claude_md(void **state)
{
	struct fx *f = *state;
	fput(f, "proj/dotfiles/CLAUDE.md", "DOTFILE_MD_MARKER\n", 0644);
	replace_link(f, "../../proj/dotfiles/CLAUDE.md",
		     "home/.claude/CLAUDE.md");
	char *proj = P(f, "proj");
	char *other = P(f, "other");
	assert_int_equal(util_mkdir_p(other, 0700), 0);
	struct ccvm_config cfg;
	all_on(&cfg);
	struct run r;

	/* Another project: the dotfile is staged. */
	struct stage_env e1 = {.shared = {other}};
	run_stage(f, &cfg, &e1, &r);
	assert_int_equal(r.rc, 0);
	assert_true(staged_has(&r, "DOTFILE_MD_MARKER"));
	run_free(&r);

	/* Its own project: refused, one line naming the item. */
	struct stage_env e2 = {.shared = {proj}};
	run_stage(f, &cfg, &e2, &r);
	assert_int_equal(r.rc, 0);
	assert_false(staged_has(&r, "DOTFILE_MD_MARKER"));
	assert_non_null(find(&r, ".claude/CLAUDE.md")); /* the built-in note */
	if (!strstr(r.warn, ".claude/CLAUDE.md: ") ||
	    !strstr(r.warn, "shared with the guest"))
		fail_msg("no warning naming CLAUDE.md in:\n%s", r.warn);
	run_free(&r);

	/* The guest repoints the project's file at the ssh key; the next
	 * session runs in another directory. */
	char *home = f->home;
	char *key = util_path_join(home, ".ssh/id_ed25519");
	replace_link(f, key, "proj/dotfiles/CLAUDE.md");
	free(key);
	struct stage_env e3 = {.shared = {other}};
	run_stage(f, &cfg, &e3, &r);
	assert_int_equal(r.rc, 0);
	assert_false(staged_has(&r, "CANARY_SSH"));
	assert_no_canary(&r);
	if (!strstr(r.warn, ".claude/CLAUDE.md: ") ||
	    !strstr(r.warn, "holds secrets"))
		fail_msg("no warning naming CLAUDE.md in:\n%s", r.warn);
	run_free(&r);
	/* The same through a relative link and a linked directory. */
	replace_link(f, "../../home/.ssh/id_ed25519",
		     "proj/dotfiles/CLAUDE.md");
	flink(f, "dotfiles", "proj/df");
	replace_link(f, "../../proj/df/CLAUDE.md", "home/.claude/CLAUDE.md");
	run_stage(f, &cfg, &e3, &r);
	assert_false(staged_has(&r, "CANARY_SSH"));
	run_free(&r);
	free(proj);
	free(other);
}

/* Every item kind goes through the same check: file and directory items,
 * links inside directories, the git excludes file. */
static void test_chain_items(void **state)
{
	struct fx *f = *state;
	char *proj = P(f, "proj");
	fput(f, "proj/kb.json", "{\"kb\": \"PROJ_KB\"}\n", 0644);
	replace_link(f, "../../proj/kb.json", "home/.claude/keybindings.json");
	fput(f, "proj/cmds/c.md", "PROJ_CMD\n", 0644);
	char *cmds = P(f, "home/.claude/commands");
	assert_int_equal(util_rm_rf(cmds), 0);
	free(cmds);
	flink(f, "../../proj/cmds", "home/.claude/commands");
	/* A link inside an item through the project back into ~/.claude. */
	flink(f, "../home/.claude/agents/reviewer.md", "proj/to-agent");
	flink(f, "../../../proj/to-agent", "home/.claude/skills/via-proj.md");
	/* The excludes file: a link into the project. */
	fput(f, "proj/ignore", "PROJ_IGNORE\n", 0644);
	char *gi = P(f, "home/.gitignore_global");
	assert_int_equal(unlink(gi), 0);
	free(gi);
	flink(f, "../proj/ignore", "home/.gitignore_global");
	struct ccvm_config cfg;
	all_on(&cfg);
	struct run r;
	/* Positive control: nothing shared, all staged. */
	struct stage_env e1 = {0};
	run_stage(f, &cfg, &e1, &r);
	assert_int_equal(r.rc, 0);
	assert_true(staged_has(&r, "PROJ_KB"));
	assert_true(staged_has(&r, "PROJ_CMD"));
	assert_true(staged_has(&r, "PROJ_IGNORE"));
	assert_non_null(find(&r, ".claude/skills/via-proj.md"));
	run_free(&r);
	/* The project shared: each refused with a warning naming it. */
	struct stage_env e2 = {.shared = {NULL, proj}};
	run_stage(f, &cfg, &e2, &r);
	assert_int_equal(r.rc, 0);
	assert_false(staged_has(&r, "PROJ_KB"));
	assert_false(staged_has(&r, "PROJ_CMD"));
	assert_false(staged_has(&r, "PROJ_IGNORE"));
	assert_null(find(&r, ".claude/skills/via-proj.md"));
	assert_non_null(find(&r, ".claude/skills/s1/SKILL.md"));
	static const char *const warned[] = {
	    "keybindings.json: ", "commands: ", "skills/via-proj.md: ",
	    ".gitignore_global: "};
	for (size_t i = 0; i < ARRAY_LEN(warned); i++)
		if (!strstr(r.warn, warned[i]))
			fail_msg("no warning about %s in:\n%s", warned[i],
				 r.warn);
	run_free(&r);
	/* Ending in a secret place: the excludes file linked to ~/.aws. */
	fput(f, "home/.aws/credentials", "CANARY_SSH aws\n", 0600);
	replace_link(f, "../home/.aws/credentials", "proj/ignore");
	run_stage(f, &cfg, &e1, &r);
	assert_int_equal(r.rc, 0);
	assert_no_canary(&r);
	assert_non_null(strstr(r.warn, ".gitignore_global: "));
	run_free(&r);
	free(proj);
}

/* A directory item resolving to a directory that holds a secret place
 * would stage it whole: refused. */
static void test_dir_item_holding_secret(void **state)
{
	struct fx *f = *state;
	fput(f, "home/.config/gh/hosts.yml", "CANARY_SSH gh token\n", 0600);
	fput(f, "home/.config/nvim/init.lua", "NVIM_MARKER\n", 0644);
	replace_link(f, "../.config", "home/.claude/config");
	replace_link(f, "../.config/nvim", "home/.claude/plugins");
	struct ccvm_config cfg;
	all_on(&cfg);
	struct stage_env env = {0};
	struct run r;
	run_stage(f, &cfg, &env, &r);
	assert_int_equal(r.rc, 0);
	assert_no_canary(&r);
	assert_false(has_prefix(&r, ".claude/config/"));
	assert_true(staged_has(&r, "NVIM_MARKER")); /* positive control */
	assert_non_null(strstr(r.warn, ".claude/config: "));
	run_free(&r);
}

/* Links inside a shared directory into ~/.claude: settings.json never
 * (it would skip the sanitizer), other items only when they are on. */
static void test_inner_links_to_items(void **state)
{
	struct fx *f = *state;
	flink(f, "../settings.json", "home/.claude/skills/sett.json");
	flink(f, "../../.claude.json", "home/.claude/skills/cj.json");
	flink(f, "../plugins/installed_plugins.json",
	      "home/.claude/skills/plug.json");
	flink(f, "../config/c.json", "home/.claude/skills/conf.json");
	struct ccvm_config cfg;
	all_on(&cfg);
	struct stage_env env = {0};
	struct run r;
	run_stage(f, &cfg, &env, &r);
	assert_int_equal(r.rc, 0);
	assert_no_canary(&r);
	assert_null(find(&r, ".claude/skills/sett.json"));
	assert_null(find(&r, ".claude/skills/cj.json"));
	assert_non_null(find(&r, ".claude/skills/plug.json"));
	assert_non_null(find(&r, ".claude/skills/conf.json"));
	assert_non_null(strstr(r.warn, "skills/sett.json: "));
	run_free(&r);
	cfg.share.plugins = cfg.share.config = false;
	run_stage(f, &cfg, &env, &r);
	assert_int_equal(r.rc, 0);
	assert_null(find(&r, ".claude/skills/plug.json"));
	assert_null(find(&r, ".claude/skills/conf.json"));
	assert_non_null(strstr(r.warn, "skills/plug.json: "));
	assert_non_null(strstr(r.warn, "skills/conf.json: "));
	run_free(&r);
}

static void test_git_default_excludes(void **state)
{
	struct fx *f = *state;
	fput(f, "home/.config/git/ignore", "default-ignore\n", 0644);
	fput(f, "xdg/git/ignore", "xdg-ignore\n", 0644);
	struct ccvm_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.share.git_config = true;
	cfg.extra_claude_md = (char *)"";
	static const char list[] = "user.name\nAda\0";
	struct stage_env env = {.git_config_given = true,
				.git_config = list,
				.git_config_len = sizeof(list) - 1};
	struct run r;
	run_stage(f, &cfg, &env, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.list.n, 2);
	assert_content(&r, ".config/git/ignore", "default-ignore\n");
	assert_content(&r, ".gitconfig",
		       "[user]\n\tname = Ada\n[commit]\n\tgpgsign = false\n"
		       "[tag]\n\tgpgsign = false\n");
	run_free(&r);
	char *xdg = P(f, "xdg");
	struct stage_env env2 = {.git_config_given = true,
				 .git_config = list,
				 .git_config_len = sizeof(list) - 1,
				 .xdg_config_home = xdg};
	run_stage(f, &cfg, &env2, &r);
	assert_content(&r, ".config/git/ignore", "xdg-ignore\n");
	run_free(&r);
	free(xdg);
	/* An explicit excludes file that is missing: warned, not staged. */
	static const char list2[] = "core.excludesfile\n/nonexistent/ign\0";
	struct stage_env env3 = {.git_config_given = true,
				 .git_config = list2,
				 .git_config_len = sizeof(list2) - 1};
	run_stage(f, &cfg, &env3, &r);
	assert_int_equal(r.list.n, 1);
	assert_non_null(strstr(r.warn, "/nonexistent/ign"));
	run_free(&r);
}

/* Stages the git config alone, read by the real git at git. */
static void run_stage_git(const struct fx *f, const char *git, struct run *r)
{
	struct ccvm_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.share.git_config = true;
	cfg.extra_claude_md = (char *)"";
	struct stage_env env = {.git_path = git};
	memset(r, 0, sizeof(*r));
	FILE *w = open_memstream(&r->warn, &r->warn_len);
	env.warn = w;
	r->rc = stage_collect(&cfg, f->home, &env, &r->list, &r->err);
	fclose(w);
}

/* The real git: includes resolved, the system config not read. */
static void test_git_read(void **state)
{
	struct fx *f = *state;
	char *git = stage_find_git("/nonexistent:relative:/usr/bin:/bin");
	if (!git)
		skip(); /* git is not installed here */
	char *out;
	size_t len;
	struct ccvm_err err = {0};
	/* No config at all: empty, without an error. */
	assert_int_equal(
	    stage_git_config_read(git, f->home, NULL, &out, &len, &err), 0);
	assert_int_equal(len, 0);
	free(out);
	fput(f, "home/.gitconfig",
	     "[user]\n\tname = Ada\n[include]\n\tpath = ~/.gitconfig.local\n"
	     "[credential]\n\thelper = store\n",
	     0644);
	fput(f, "home/.gitconfig.local", "[alias]\n\tst = status\n", 0644);
	assert_int_equal(
	    stage_git_config_read(git, f->home, NULL, &out, &len, &err), 0);
	static const char want[] = "user.name\nAda\0"
				   "include.path\n~/.gitconfig.local\0"
				   "alias.st\nstatus\0"
				   "credential.helper\nstore\0";
	assert_int_equal(len, sizeof(want) - 1);
	assert_memory_equal(out, want, len);
	free(out);
	/* A broken config is an error naming git's complaint. */
	fput(f, "home/.gitconfig", "[user\n", 0644);
	assert_true(
	    stage_git_config_read(git, f->home, NULL, &out, &len, &err) < 0);
	assert_non_null(strstr(err.msg, "bad config"));
	/* ...which stage_collect turns into a warning. */
	struct run r;
	run_stage_git(f, git, &r);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.list.n, 0);
	assert_non_null(strstr(r.warn, "git config not shared"));
	run_free(&r);
	free(git);
}

/* Tokens in the git config, also in files it includes (include.path and
 * includeIf hasconfig, which `git config --global --includes` resolves),
 * read by the real git: none is staged, each dropped key is named (never
 * its value), user.name still arrives. */
static void test_git_tokens_real(void **state)
{
	struct fx *f = *state;
	char *git = stage_find_git("/usr/bin:/bin");
	if (!git)
		skip(); /* git is not installed here */
	fput(f, "home/.gitconfig",
	     "[user]\n\tname = Ada\n"
	     "[remote \"origin\"]\n\turl = https://example.com/r.git\n"
	     "[url \"https://ghp_CANARY_G1@github.com/\"]\n"
	     "\tinsteadOf = https://github.com/\n"
	     "[http]\n\tproxy = http://CANARY_G2@proxy.example:3128\n"
	     "\textraHeader = Authorization: Bearer CANARY_G3\n"
	     "[include]\n\tpath = ~/.gitconfig.local\n"
	     "[includeIf \"hasconfig:remote.*.url:https://example.com/**\"]\n"
	     "\tpath = ~/.gitconfig.work\n"
	     "[hub]\n\toauthtoken = CANARY_G4\n",
	     0644);
	fput(f, "home/.gitconfig.local",
	     "[url \"https://github.com/\"]\n"
	     "\tpushInsteadOf = https://ada:CANARY_G5@github.com/\n"
	     "[alias]\n\tst = status\n"
	     "[remote \"work\"]\n\turl = https://CANARY_G6@git.corp/x.git\n",
	     0644);
	/* (git refuses remote URLs in files hasconfig includes.) */
	fput(f, "home/.gitconfig.work",
	     "[url \"https://CANARY_G8@git.corp/\"]\n"
	     "\tinsteadOf = https://git.corp/\n"
	     "[http \"https://git.corp/\"]\n\textraHeader = X: CANARY_G7\n"
	     "[core]\n\tautocrlf = input\n",
	     0644);
	struct run r;
	run_stage_git(f, git, &r);
	assert_int_equal(r.rc, 0);
	const struct stage_file *gc = find(&r, ".gitconfig");
	if (!gc)
		fail_msg("no .gitconfig staged:\n%s", r.warn);
	if (memmem(gc->data, gc->len, "CANARY", 6))
		fail_msg("token staged:\n%.*s", (int)gc->len, gc->data);
	if (strstr(r.warn, "CANARY"))
		fail_msg("token in a warning:\n%s", r.warn);
	/* Positive controls, from the file and from both included ones. */
	assert_non_null(memmem(gc->data, gc->len, "name = Ada", 10));
	assert_non_null(memmem(gc->data, gc->len, "st = status", 11));
	assert_non_null(memmem(gc->data, gc->len, "autocrlf = input", 16));
	static const char *const named[] = {
	    "url.https://***@github.com/.insteadof",
	    "http.proxy:",
	    "http.extraheader:",
	    "url.https://github.com/.pushinsteadof:",
	    "remote.work.url:",
	    "http.https://git.corp/.extraheader:",
	    "url.https://***@git.corp/.insteadof",
	    "sections not staged",
	};
	for (size_t i = 0; i < ARRAY_LEN(named); i++)
		if (!strstr(r.warn, named[i]))
			fail_msg("no warning naming %s in:\n%s", named[i],
				 r.warn);
	run_free(&r);
	free(git);
}

/* ~/.claude.json's warnings reach the staging warning stream. */
static void test_claude_json_warns(void **state)
{
	struct fx *f = *state;
	fput(f, "home/.claude.json",
	     "{\"userID\": \"u-1\", \"mcpServers\": {\"tok\": {\"url\":"
	     " \"https://CANARY_APIKEY@mcp.example/\"}, \"ok\": {\"command\":"
	     " \"okc\"}}, \"customApiKeyResponses\": {\"approved\":"
	     " [\"CANARY_MCP_ENV\"]}}",
	     0600);
	struct ccvm_config cfg;
	all_on(&cfg);
	struct stage_env env = {0};
	struct run r;
	run_stage(f, &cfg, &env, &r);
	assert_int_equal(r.rc, 0);
	assert_no_canary(&r);
	const struct stage_file *cj = find(&r, ".claude.json");
	assert_non_null(cj);
	assert_non_null(memmem(cj->data, cj->len, "okc", 3));
	assert_null(memmem(cj->data, cj->len, "customApiKeyResponses", 21));
	assert_non_null(strstr(r.warn, ".claude.json: mcpServers.tok not "
				       "staged"));
	assert_null(strstr(r.warn, "CANARY"));
	run_free(&r);
}

static void test_claude_md_text(void **state)
{
	(void)state;
	struct ccvm_config cfg;
	memset(&cfg, 0, sizeof(cfg));
	cfg.writable_cwd = false;
	char *hosts[] = {"github.com", "10.0.0.0/8"};
	cfg.egress_allowlist = (struct cfg_strlist){hosts, 2};
	uint16_t ports[] = {443, 22};
	cfg.egress_ports = ports;
	cfg.n_egress_ports = 2;
	cfg.persist_projects = true;
	struct stage_env env = {.cwd = "/src/app", .api_host = "api.x.test"};
	char *md;
	size_t len;
	assert_int_equal(stage_claude_md(NULL, 0, &cfg, &env, &md, &len), 0);
	assert_int_equal(strlen(md), len);
	assert_non_null(strstr(md, "ccvm"));
	assert_non_null(strstr(md, "/src/app"));
	assert_non_null(strstr(md, "read-only"));
	assert_non_null(strstr(md, "discarded"));
	assert_non_null(strstr(md, "~/.claude/projects persists"));
	assert_non_null(strstr(md, "github.com, 10.0.0.0/8, and the API host "
				   "api.x.test"));
	assert_non_null(strstr(md, "ports 443, 22"));
	/* A reset means the user's policy; the log says why (issue 23). */
	assert_non_null(strstr(md, "blocked by the user's network policy"));
	assert_non_null(strstr(md, "/run/ccvm/egress.log"));
	assert_non_null(strstr(md, "no SSH keys"));
	assert_null(strstr(md, "writable"));
	free(md);

	cfg.writable_cwd = true;
	cfg.persist_projects = false;
	cfg.egress_allowlist.n = 0;
	assert_int_equal(stage_claude_md("mine", 4, &cfg, NULL, &md, &len), 0);
	assert_memory_equal(md, "mine\n\n# ccvm", 12);
	assert_non_null(strstr(md, "writable"));
	assert_non_null(strstr(md, "Network access is open"));
	assert_null(strstr(md, "egress.log"));
	assert_null(strstr(md, "projects persists"));
	free(md);

	cfg.extra_claude_md = (char *)"Extra rule";
	assert_int_equal(stage_claude_md("mine\n", 5, &cfg, NULL, &md, &len),
			 0);
	assert_string_equal(md, "mine\n\nExtra rule\n");
	free(md);
	cfg.extra_claude_md = (char *)"";
	assert_int_equal(stage_claude_md("mine", 4, &cfg, NULL, &md, &len), 0);
	assert_string_equal(md, "mine");
	free(md);
	assert_int_equal(stage_claude_md(NULL, 0, &cfg, NULL, &md, &len), 0);
	assert_null(md);
	/* An empty host file is still a file. */
	assert_int_equal(stage_claude_md("", 0, &cfg, NULL, &md, &len), 0);
	assert_string_equal(md, "");
	assert_int_equal(len, 0);
	free(md);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_all_on, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_toggles, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_limits, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_proxy_placeholder_approved,
					    fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_bad_claude_json, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_special_items, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_item_links, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_chain_claude_md, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_chain_items, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_dir_item_holding_secret,
					    fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_inner_links_to_items, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_git_default_excludes, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_git_read, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_git_tokens_real, fx_setup,
					    fx_teardown),
	    cmocka_unit_test_setup_teardown(test_claude_json_warns, fx_setup,
					    fx_teardown),
	    cmocka_unit_test(test_claude_md_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
