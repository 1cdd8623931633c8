#pragma once
/*
 * Internal to staging (stage.h): the state of one stage_collect run and
 * the helpers its parts share.  stage.c reads host files safely and holds
 * the entry point; stage_claude.c stages the Claude Code files,
 * stage_git.c the git ones.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "err.h"
#include "options/config.h"
#include "setup/places.h"
#include "setup/stage.h"

struct stage_dir_id {
	dev_t dev;
	ino_t ino;
};

struct stage_ctx {
	const struct ccvm_config *cfg;
	const char *home;
	const struct stage_env *env;
	FILE *warn;
	size_t max_total, max_files, max_file;
	char *claude_dir;  /* home/.claude */
	char *claude_real; /* its realpath, NULL when missing */
	char *home_real;
	bool have_cred;
	dev_t cred_dev;
	ino_t cred_ino;
	/* ~/.claude/settings.json and ~/.claude.json: staged sanitized only. */
	struct stage_dir_id settings[2];
	size_t n_settings;
	const struct places *places;
	struct places own_places;
	struct stage_list list;
	size_t cap;
	struct ccvm_err *err;
};

/* One line "ccvm: warning: ..." on c->warn. */
void stage_warnf(struct stage_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* explicit_bzero(p, n), then free(p); NULL is fine. */
void stage_wipe_free(char *p, size_t n);

/* Adds rel to the list, taking ownership of data (wiped on failure); host
 * names the item for limit messages. */
int stage_add_file(struct stage_ctx *c, const char *rel, uint32_t mode,
		   char *data, size_t len, const char *host);

/* Reads a top-level file item, its links followed (stage.h), into *data.
 * Unless sanitized is set, it may not be the settings file.  1 when it is
 * absent or skipped (with a warning), 0 with *data set, or -errno. */
int stage_read_item_as(struct stage_ctx *c, const char *host, char **data,
		       size_t *len, struct stat *st, bool sanitized);
/* stage_read_item_as, not sanitized. */
int stage_read_item(struct stage_ctx *c, const char *host, char **data,
		    size_t *len, struct stat *st);

/* The parts stage_collect runs (0 or -errno with c->err set). */
int stage_json_item(struct stage_ctx *c, const char *dir, const char *name,
		    const char *rel, bool claude_json);
int stage_md_item(struct stage_ctx *c);
int stage_git_items(struct stage_ctx *c);
