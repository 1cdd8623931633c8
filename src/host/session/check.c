/*
 * What a session refuses before anything starts: a directory that may not
 * be shared, a config file the guest could rewrite; then the image.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session/internal.h"
#include "setup/handover.h"
#include "util.h"

/* CCVM_ALLOW_SECRET_DIRS: 1 when set true, 0 when unset or false, or
 * -EINVAL with err set. */
static int allow_secret_dirs(struct ccvm_err *err)
{
	const char *v = getenv(SESSION_ENV_ALLOW_SECRET_DIRS);
	bool allow = false;
	if (v && !cfg_parse_bool(v, &allow)) {
		char q[128];
		return ccvm_err_set(err, EINVAL,
				    "%s: expected 1/0, true/false or yes/no, "
				    "got %s",
				    SESSION_ENV_ALLOW_SECRET_DIRS,
				    util_escape(q, sizeof(q), v, true));
	}
	return allow;
}

static int check_cwd(char *cwd, size_t n, const struct places *pl,
		     struct ccvm_err *err)
{
	if (!getcwd(cwd, n))
		return ccvm_err_sys(err, errno,
				    "cannot get the current "
				    "directory");
	if (strcmp(cwd, "/") == 0)
		return ccvm_err_set(err, EPERM,
				    "refusing to share / with the VM: run ccvm "
				    "in a project directory");
	const char *home = getenv("HOME");
	char real_home[PATH_MAX];
	if (home && realpath(home, real_home) && strcmp(real_home, cwd) == 0)
		return ccvm_err_set(err, EPERM,
				    "refusing to share your whole home "
				    "directory (%s) with the VM: run ccvm in a "
				    "project directory",
				    cwd);
	for (const char *p = cwd; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return ccvm_err_set(err, EINVAL,
					    "the current directory's path has "
					    "a control character");
	/* A directory holding or inside a secret place, a home directory
	 * or one of its ancestors (places.h). */
	char why[2 * PATH_MAX];
	if (!places_share_refused(pl, cwd, why, sizeof(why)))
		return 0;
	int allow = allow_secret_dirs(err);
	if (allow < 0)
		return allow;
	if (allow)
		return 0;
	return ccvm_err_set(err, EPERM,
			    "refusing to share %s with the VM: %s (%s=1 "
			    "overrides)",
			    cwd, why, SESSION_ENV_ALLOW_SECRET_DIRS);
}

/* The config file must not be one the guest could rewrite for the next
 * session: its link chain may not pass through the shared directory
 * (nor end in a secret place). */
static int check_config_links(const struct ccvm_config *cfg, const char *cwd,
			      const struct places *pl, struct ccvm_err *err)
{
	if (!cfg->config_file_found || !cfg->config_path)
		return 0;
	autofree char *abs =
	    cfg->config_path[0] == '/'
		? strdup(cfg->config_path)
		: util_asprintf("%s/%s", cwd, cfg->config_path);
	if (!abs)
		return ccvm_err_sys(err, ENOMEM, "config file");
	struct places_chain ch;
	if (places_resolve(abs, &ch) < 0)
		return 0; /* read already; nothing of it enters the guest */
	const char *shared[] = {cwd};
	char why[2 * PATH_MAX];
	bool bad = places_chain_refused(pl, &ch, shared, 1, why, sizeof(why));
	places_chain_free(&ch);
	if (!bad)
		return 0;
	char f[256];
	return ccvm_err_set(err, EPERM,
			    "config file %s: %s: refusing to start, the guest "
			    "could rewrite it; move it out of %s",
			    util_escape(f, sizeof(f), cfg->config_path, false),
			    why, cwd);
}

int session_check(struct session *s, const struct places *pl,
		  struct ccvm_err *err)
{
	/* What the guest would refuse in SETUP, refused before booting. */
	struct handover hc = {.cwd = s->cwd, .term = getenv("TERM")};
	if (check_cwd(s->cwd, sizeof(s->cwd), pl, err) < 0 ||
	    check_config_links(s->cfg, s->cwd, pl, err) < 0 ||
	    handover_check(&hc, err) < 0)
		return CCVM_EXIT_USAGE;
	if (session_check_api(s, err) < 0)
		return CCVM_EXIT_USAGE;
	s->boot_timeout_s = DEFAULT_BOOT_TIMEOUT_S;
	const char *bt = getenv("CCVM_BOOT_TIMEOUT");
	if (bt && !util_parse_long(bt, 1, 3600, &s->boot_timeout_s)) {
		ccvm_err_set(err, EINVAL,
			     "CCVM_BOOT_TIMEOUT: expected seconds "
			     "(1-3600), got \"%s\"",
			     bt);
		return CCVM_EXIT_USAGE;
	}
	return 0;
}
