#define _GNU_SOURCE
/* The Claude Code files staged (stage.h): CLAUDE.md with ccvm's text,
 * ~/.claude.json and ~/.claude/settings.json sanitized. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "setup/sanitize.h"
#include "setup/stage.h"
#include "setup/stage_ctx.h"
#include "util.h"

/* ---- CLAUDE.md ---------------------------------------------------------- */

char *stage_default_claude_md(const struct ccvm_config *cfg,
			      const struct stage_env *env)
{
	const char *cwd = env && env->cwd ? env->cwd : "the launch directory";
	const char *api =
	    env && env->api_host ? env->api_host : STAGE_DEFAULT_API_HOST;
	struct sanitize_buf b = {0};
	int r = 0;
	autofree char *head = util_asprintf(
	    "# ccvm\n\n"
	    "You are running inside ccvm, a disposable virtual machine. Only "
	    "the project directory %s is shared with the host.\n\n",
	    cwd);
	r = head ? sanitize_buf_add(&b, head, strlen(head)) : -ENOMEM;
	const char *proj =
	    cfg->writable_cwd
		? "- The project directory is writable: your changes there "
		  "are made on the host and persist after the session.\n"
		: "- The project directory is read-only on the host: you can "
		  "change files in it, but the changes stay in the VM and are "
		  "discarded when the session ends.\n";
	if (!r)
		r = sanitize_buf_add(&b, proj, strlen(proj));
	const char *gone = "- Everything else in the VM (your home directory, "
			   "/tmp, installed packages, system changes) is gone "
			   "when the session ends.\n";
	if (!r)
		r = sanitize_buf_add(&b, gone, strlen(gone));
	if (!r && cfg->persist_projects) {
		const char *p = "- ~/.claude/projects persists across "
				"sessions, so `claude --resume` works.\n";
		r = sanitize_buf_add(&b, p, strlen(p));
	}
	if (!r && cfg->egress_allowlist.n == 0) {
		const char *p = "- Network access is open.\n";
		r = sanitize_buf_add(&b, p, strlen(p));
	} else if (!r) {
		const char *p = "- Network access is limited: only these hosts "
				"are reachable";
		r = sanitize_buf_add(&b, p, strlen(p));
		for (size_t i = 0; i < cfg->n_egress_ports && !r; i++) {
			autofree char *s =
			    util_asprintf("%s%u", i == 0 ? " (ports " : ", ",
					  (unsigned)cfg->egress_ports[i]);
			r = s ? sanitize_buf_add(&b, s, strlen(s)) : -ENOMEM;
		}
		if (!r && cfg->n_egress_ports)
			r = sanitize_buf_add(&b, ")", 1);
		if (!r)
			r = sanitize_buf_add(&b, ": ", 2);
		for (size_t i = 0; i < cfg->egress_allowlist.n && !r; i++) {
			const char *h = cfg->egress_allowlist.v[i];
			autofree char *s = util_asprintf("%s, ", h);
			r = s ? sanitize_buf_add(&b, s, strlen(s)) : -ENOMEM;
		}
		autofree char *s =
		    env && env->api_proxy
			? strdup("and ccvm's API proxy. Other connections "
				 "fail.\n")
			: util_asprintf("and the API host %s. Other "
					"connections fail.\n",
					api);
		if (!r)
			r = s ? sanitize_buf_add(&b, s, strlen(s)) : -ENOMEM;
		const char *why =
		    "- A connection that is reset at once (or a plain HTTP "
		    "request answered 403 by ccvm) was blocked by the user's "
		    "network policy, not broken: /run/ccvm/egress.log says "
		    "why. Do not try to get around it; tell the user what you "
		    "needed.\n";
		if (!r)
			r = sanitize_buf_add(&b, why, strlen(why));
	}
	if (!r && env && env->api_proxy) {
		const char *p =
		    "- Your API requests go through ccvm's API proxy "
		    "(ANTHROPIC_BASE_URL=http://api.ccvm.internal), which adds "
		    "the user's credential on the host: the one in your "
		    "environment is a placeholder that works only through "
		    "that proxy, in this session.\n";
		r = sanitize_buf_add(&b, p, strlen(p));
	}
	const char *creds =
	    "- By design there are no SSH keys, tokens or other credentials in "
	    "this VM: do not look for them. Leave anything that needs them "
	    "(such as git push or deploying) to the user on the host.\n";
	if (!r)
		r = sanitize_buf_add(&b, creds, strlen(creds));
	if (r) {
		sanitize_buf_free(&b);
		return NULL;
	}
	return b.p ? b.p : strdup("");
}

int stage_claude_md(const char *host_md, size_t host_len,
		    const struct ccvm_config *cfg, const struct stage_env *env,
		    char **out, size_t *out_len)
{
	autofree char *deflt = NULL;
	const char *extra = cfg->extra_claude_md;
	if (!extra) {
		deflt = stage_default_claude_md(cfg, env);
		if (!deflt)
			return -ENOMEM;
		extra = deflt;
	}
	size_t extra_len = strlen(extra);
	struct sanitize_buf b = {0};
	int r = 0;
	if (host_md) {
		r = sanitize_buf_add(&b, host_md, host_len);
		if (!r && extra_len && host_len &&
		    host_md[host_len - 1] != '\n')
			r = sanitize_buf_add(&b, "\n", 1);
		if (!r && extra_len && host_len)
			r = sanitize_buf_add(&b, "\n", 1);
	}
	if (!r && extra_len) {
		r = sanitize_buf_add(&b, extra, extra_len);
		if (!r && extra[extra_len - 1] != '\n')
			r = sanitize_buf_add(&b, "\n", 1);
	}
	if (r) {
		sanitize_buf_free(&b);
		return r;
	}
	if (!host_md && !extra_len) {
		*out = NULL;
		*out_len = 0;
		return 0;
	}
	if (!b.p) {
		b.p = strdup("");
		if (!b.p)
			return -ENOMEM;
	}
	*out = b.p;
	*out_len = b.len;
	return 0;
}

int stage_md_item(struct stage_ctx *c)
{
	char *host_md = NULL;
	size_t host_len = 0;
	autofree char *host = util_path_join(c->claude_dir, "CLAUDE.md");
	if (!host)
		return ccvm_err_sys(c->err, ENOMEM, "CLAUDE.md");
	if (c->cfg->share.claude_md) {
		struct stat st;
		int r = stage_read_item(c, host, &host_md, &host_len, &st);
		if (r < 0)
			return r;
	}
	char *md;
	size_t len;
	int r = stage_claude_md(host_md, host_len, c->cfg, c->env, &md, &len);
	stage_wipe_free(host_md, host_len);
	if (r)
		return ccvm_err_sys(c->err, -r, "%s", host);
	if (!md)
		return 0;
	return stage_add_file(c, ".claude/CLAUDE.md", 0600, md, len, host);
}

/* ---- ~/.claude.json and ~/.claude/settings.json ---------------------- */

/* No host ~/.claude.json to stage: with the API proxy's placeholder as
 * the agent's key, a file of ccvm's own that approves it, so the agent
 * does not ask about it. */
static int placeholder_only(struct stage_ctx *c, const char *rel,
			    const char *host)
{
	char tail[SANITIZE_KEY_TAIL + 1];
	if (!c->env || !c->env->api_proxy || !c->env->api_key ||
	    !sanitize_key_tail(c->env->api_key, c->env->api_key_len, tail))
		return 0;
	char *json = strdup("{}");
	size_t len = 2;
	struct ccvm_err jerr = {0};
	int r = json ? sanitize_approve_key(&json, &len, tail, &jerr) : -ENOMEM;
	if (r < 0) {
		free(json);
		return ccvm_err_sys(c->err, -r, "%s", rel);
	}
	return stage_add_file(c, rel, 0600, json, len, host);
}

/* Reads a host JSON file in dir, stages it sanitized at rel (0600):
 * ~/.claude.json (claude_json) or settings.json; a file the sanitizer
 * cannot parse is not staged, with a warning. */
int stage_json_item(struct stage_ctx *c, const char *dir, const char *name,
		    const char *rel, bool claude_json)
{
	autofree char *host = util_path_join(dir, name);
	if (!host)
		return ccvm_err_sys(c->err, ENOMEM, "%s", name);
	char *raw = NULL;
	size_t raw_len = 0;
	struct stat st = {0};
	int r = stage_read_item_as(c, host, &raw, &raw_len, &st, true);
	if (r > 0 && claude_json)
		return placeholder_only(c, rel, host);
	if (r)
		return r > 0 ? 0 : r;
	char *clean;
	size_t clean_len;
	struct ccvm_err jerr = {0};
	char tail[SANITIZE_KEY_TAIL + 1];
	const char *key = c->env ? c->env->api_key : NULL;
	bool have_tail =
	    key && sanitize_key_tail(key, c->env->api_key_len, tail);
	bool proxy = c->env && c->env->api_proxy;
	if (claude_json)
		r = sanitize_claude_json(raw, raw_len,
					 have_tail && !proxy ? tail : NULL,
					 c->warn, &clean, &clean_len, &jerr);
	else
		r = sanitize_settings_json(raw, raw_len, c->warn, &clean,
					   &clean_len, &jerr);
	/* The proxy's placeholder is ccvm's own: approved, so the agent
	 * does not ask about it. */
	if (claude_json && r == 0 && proxy && have_tail)
		r = sanitize_approve_key(&clean, &clean_len, tail, &jerr);
	explicit_bzero(tail, sizeof(tail));
	stage_wipe_free(raw, raw_len + 1);
	if (r == -EINVAL) {
		stage_warnf(c, "%s: %s; not staged", host, jerr.msg);
		return 0;
	}
	if (r)
		return ccvm_err_set(c->err, -r, "%s: %s", host, jerr.msg);
	return stage_add_file(c, rel, 0600, clean, clean_len, host);
}
