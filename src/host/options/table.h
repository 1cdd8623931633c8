#pragma once
/*
 * The option table, inside options/: one row per option (key, field,
 * kind, check, default, environment variable, help text).  Parsing
 * (config.c), the defaults (cfg_init), copying and freeing (table.c),
 * the dump and the help (dump.c) all walk these rows; nothing else knows
 * an option's default.
 */
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "options/config.h"

enum opt_kind {
	K_BOOL,	    /* bool */
	K_INT,	    /* long in [min, max] */
	K_ACCEL,    /* enum cfg_accel */
	K_TRISTATE, /* int: -1 null, 0 false, 1 true */
	K_STR,	    /* char * */
	K_STRLIST,  /* struct cfg_strlist */
	K_PORTS,    /* egress_ports / n_egress_ports */
};

enum opt_check {
	CK_ANY = 0,
	CK_ENV_NAME,
	CK_NPM,
	CK_EGRESS, /* net/egress_parse.h: the session's own parser */
	CK_DEB,
	CK_ABS_PATH,
	CK_NIX, /* a nix.conf list item: non-empty, no whitespace, control
		   characters or '#' */
};

enum env_style {
	ENV_PARSE = 0, /* parsed like the option's type */
	ENV_ONLY_ZERO, /* only "0" has an effect (sets false) */
	ENV_TEXT,      /* the value itself, verbatim */
};

struct opt {
	const char *key; /* JSON path, "group.name" when nested */
	size_t off;
	/* K_INT: the range; K_STRLIST, K_PORTS: max is the most items
	 * (0: no limit). */
	long min, max;
	const char *def; /* the default, as JSON (as the file would say it) */
	const char *env; /* or NULL */
	/* What the option does, one sentence: --ccvm-help prints it, and
	 * tests/integration/03-docs.sh finds it word for word in the man
	 * page, docs/options.md and the home-manager module. */
	const char *desc;
	enum opt_kind kind;
	enum opt_check check;
	enum env_style env_style;
	bool claude_share; /* set by CCVM_SHARE_CLAUDE_CONFIG */
	bool build_time;
	bool nullable; /* K_STR: null (NULL) allowed */
};

extern const struct opt cfg_opts[];
extern const size_t cfg_n_opts;

struct env_var {
	const char *name;
	const char *help; /* for --ccvm-help, or NULL */
};
extern const struct env_var cfg_other_env[];
extern const size_t cfg_n_other_env;
extern const char *const cfg_test_env[];
extern const size_t cfg_n_test_env;

#define FIELD(cfg, o, type)  ((type *)((char *)(cfg) + (o)->off))
#define CFIELD(cfg, o, type) ((const type *)((const char *)(cfg) + (o)->off))

/* Room for an escaped value in a message. */
#define ESC_MAX 400

/* table.c */
const struct opt *opt_find(const char *key);
bool opt_is_group(const char *key);
void cfg_strlist_free(struct cfg_strlist *l);
/* Deep copy; dst is overwritten (not freed).  0 or -ENOMEM. */
int cfg_copy(struct ccvm_config *dst, const struct ccvm_config *src);

/* validate.c: NULL when s passes the check, else what is wrong (a
 * phrase that follows the quoted value). */
const char *opt_check_problem(enum opt_check ck, const char *s);

/* config.c: sets o in c from the JSON value val; file names the source
 * in messages ("<file>: <key>: <what is wrong>"). */
int opt_set_json(const struct opt *o, json_t *val, struct ccvm_config *c,
		 const char *file, struct ccvm_err *err);
