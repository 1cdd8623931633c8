#pragma once
/*
 * Staging: decides which of the user's Claude and git files enter the
 * guest and prepares their (sanitized) contents in memory.  The session
 * sends each staged file as one FILE frame; the guest writes it under the
 * agent's fresh home.  Nothing is written to disk here.
 *
 * What is staged, paths relative to the home directory:
 *   .claude.json                 share.settings, sanitized (sanitize.h)
 *   .claude/settings.json        share.settings
 *   .claude/CLAUDE.md            host file if share.claudeMd, then
 *                                extraClaudeMd (built-in text when NULL)
 *   .claude/keybindings.json     share.keybindings
 *   .claude/commands/ agents/ skills/ output-styles/ plugins/ config/
 *                                share.commands ... share.config
 *   .gitconfig                   share.gitConfig, sanitized
 *   .config/git/ignore           the host's core.excludesFile (or git's
 *                                default $XDG_CONFIG_HOME/git/ignore)
 * Never staged, whatever the toggles: any file named .credentials.json (or
 * a symlink resolving to one, or a hard link to ~/.claude/.credentials.json),
 * and projects/, sessions/, history.jsonl, statsig/, todos/,
 * shell-snapshots/ (only named items are staged, and symlinks resolving
 * into those are refused).
 *
 * Symlinks: every path read (items, links inside them, the git excludes
 * file) is resolved one link at a time (places.h),
 * and refused, with one warning line naming it, when a link of the chain
 * or its end lies in a directory shared with the guest (env->shared: the
 * guest could have repointed it) or when it ends in a secret place
 * (~/.ssh, ~/.aws, the credentials file, ...).  The end is then opened
 * with RESOLVE_NO_SYMLINKS (O_NOFOLLOW where openat2 is missing), so it
 * cannot be swapped for a link after the check.  Beyond that:
 *   - an item itself (e.g. ~/.claude/settings.json or ~/.claude/skills as a
 *     home-manager link into /nix/store, or a stow link into ~/dotfiles) is
 *     followed wherever it points: the user put it there as that item; a
 *     directory item that resolves to a directory ccvm would not share
 *     (places_share_refused: a home directory or an ancestor, one holding
 *     ~/.claude or a secret place) is refused;
 *   - a symlink inside a shared directory is followed only when its fully
 *     resolved target lies inside the item's own resolved directory, inside
 *     /nix/store, or inside ~/.claude under the name of an item that is on
 *     (never settings.json, nor any file that is ~/.claude/settings.json or
 *     ~/.claude.json: those are staged sanitized only); anything else
 *     (~/.ssh, other host paths, dangling links) is skipped with a warning.
 * Only regular files are staged (FIFOs, sockets and devices are skipped
 * with a warning, without being opened); empty directories
 * are not recreated.  Mode is 0700 when the host file has any execute bit,
 * else 0600.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "options/config.h"
#include "err.h"
#include "setup/places.h"

struct stage_file {
	char *path; /* relative to the agent's home, e.g. ".claude/x.json" */
	uint32_t mode;
	char *data;
	size_t len;
};

struct stage_list {
	struct stage_file *v;
	size_t n;
	size_t total_bytes;
};

#define STAGE_DEFAULT_MAX_TOTAL (64u * 1024 * 1024)
#define STAGE_DEFAULT_MAX_FILES 5000u
#define STAGE_DEFAULT_MAX_FILE	(16u * 1024 * 1024)
#define STAGE_DEFAULT_API_HOST	"api.anthropic.com"
#define STAGE_MAX_SHARED	2

/* Inputs that would otherwise be process globals.  Zero/NULL members take
 * the documented default. */
struct stage_env {
	const char *cwd;	     /* project directory, for CLAUDE.md text */
	const char *api_host;	     /* STAGE_DEFAULT_API_HOST */
	const char *xdg_config_home; /* home/.config */
	/* The git config list (`git config --global --null --list
	 * --includes`); when git_config_given is false and share.gitConfig is
	 * on, stage_collect runs git_path (found in the PATH given as
	 * path_var when NULL) through stage_git_config_read. */
	bool git_config_given;
	const char *git_config;
	size_t git_config_len;
	const char *git_path;
	const char *path_var;
	/* The directories shared with the guest this session (absolute,
	 * resolved; NULL when unused): an item whose link chain passes
	 * through one of them is refused. */
	const char *shared[STAGE_MAX_SHARED];
	/* The secret places (places.h); made from home alone when NULL. */
	const struct places *places;
	/* The API key ccvm hands the agent (NULL when none): only its last
	 * 20 characters are used, to keep the host's approval of that key in
	 * ~/.claude.json (sanitize_claude_json). */
	const char *api_key;
	size_t api_key_len;
	/* The agent's API goes through ccvm's API proxy (CLAUDE.md says so). */
	bool api_proxy;
	/* Limits: STAGE_DEFAULT_* when 0. */
	size_t max_total, max_files, max_file;
	FILE *warn; /* warning lines; stderr when NULL */
};

/*
 * Collects every staged file for cfg from the host home directory.  Missing
 * items are silently absent; unusable ones (unparsable .claude.json, a
 * symlink leaving the allowed roots, a FIFO, git failing) are skipped with
 * one warning line each.  Errors (-errno, err filled with one line naming
 * the path): a limit crossed (-EFBIG / -EMFILE), an unreadable file, no
 * memory.  *out is set on success only; free it with stage_list_free.
 */
int stage_collect(const struct ccvm_config *cfg, const char *home,
		  const struct stage_env *env, struct stage_list *out,
		  struct ccvm_err *err);

/* Wipes every file's contents (explicit_bzero) and frees the list. */
void stage_list_free(struct stage_list *l);

/*
 * The staged CLAUDE.md: host_md (NULL when absent or not shared) followed by
 * a blank line and cfg->extra_claude_md, or the built-in text when that is
 * NULL ("" adds nothing).  *out is NULL when there is nothing to stage.
 * 0 or -ENOMEM.
 */
int stage_claude_md(const char *host_md, size_t host_len,
		    const struct ccvm_config *cfg, const struct stage_env *env,
		    char **out, size_t *out_len);

/* The built-in extraClaudeMd text for cfg (malloc'ed; NULL on ENOMEM). */
char *stage_default_claude_md(const struct ccvm_config *cfg,
			      const struct stage_env *env);

/* Absolute path of an executable "git" in the colon-separated path_var, or
 * NULL (malloc'ed). */
char *stage_find_git(const char *path_var);

/*
 * Runs `git config --global --null --list --includes` with git_path, in /,
 * with stdin from /dev/null and the environment HOME=home,
 * GIT_CONFIG_NOSYSTEM=1, LC_ALL=C, PATH=/usr/bin:/bin and XDG_CONFIG_HOME
 * when given.  Output is capped at 4 MiB and the run at 10 s.  When neither
 * home/.gitconfig nor the XDG config file exists the result is empty
 * without running git.  *out is NUL-terminated.
 */
int stage_git_config_read(const char *git_path, const char *home,
			  const char *xdg_config_home, char **out,
			  size_t *out_len, struct ccvm_err *err);
