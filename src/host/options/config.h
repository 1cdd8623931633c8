#pragma once
/*
 * ccvm's resolved options: one struct filled in order
 *   built-in default -> config file -> CCVM_* environment -> flags
 * (later wins).  Names follow ../shared/DESIGN.md section 3.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

enum cfg_accel { CFG_ACCEL_AUTO = 0, CFG_ACCEL_KVM, CFG_ACCEL_TCG };

/* Where an option's value came from, for --ccvm-dump-config. */
enum cfg_source {
	CFG_SRC_DEFAULT = 0,
	CFG_SRC_FILE,
	CFG_SRC_ENV,
	CFG_SRC_FLAG
};

struct cfg_strlist {
	char **v;
	size_t n;
};

struct cfg_share {
	bool settings, claude_md, keybindings, commands, agents, skills,
	    output_styles, plugins, config, git_config;
};

struct ccvm_config {
	bool writable_cwd;
	long memory_mib; /* > 0 */
	long cores;	 /* > 0 */
	enum cfg_accel accel;
	struct cfg_share share;
	bool nix_enable;		     /* build-time */
	struct cfg_strlist nix_substituters; /* build-time */
	struct cfg_strlist nix_trusted_keys; /* build-time */
	bool persist_projects;
	long vm_disk_size_gib; /* >= 0 */
	bool clipboard_images;
	struct cfg_strlist egress_allowlist; /* validated FQDN/IP/CIDR */
	uint16_t *egress_ports;		     /* each 1..65535 */
	size_t n_egress_ports;
	int agent_sudo;		/* -1 auto (null), 0, 1; build-time */
	char *api_key_variable; /* valid env var name */
	bool credential_proxy;	/* the host-side API proxy holds the key */
	char *extra_claude_md;	/* NULL: the built-in note; "" disables */
	struct cfg_strlist extra_packages;	/* build-time */
	char *package;				/* npm spec; build-time */
	struct cfg_strlist extra_guest_modules; /* absolute paths; build-time */
	bool lock_guest_memory;

	/* Not options of the design table, but resolved here too. */
	char *config_path; /* the file read, or the one that would be */
	bool config_file_found;
};

/* The pinned agent package (verified to run: see README). */
#define CCVM_DEFAULT_PACKAGE "@anthropic-ai/claude-code@2.1.332"

/* Bounds of the integer options (DESIGN.md leaves the upper ends to us). */
#define CFG_MEMORY_MAX	  4194304L /* MiB: 4 TiB */
#define CFG_CORES_MAX	  1024L
#define CFG_DISK_SIZE_MAX 65536L	/* GiB: 64 TiB */
#define CFG_FILE_MAX	  (1024 * 1024) /* bytes of config file read */
#define CFG_NPM_SPEC_MAX  512		/* characters of an npm spec */

/* Fills cfg with the built-in defaults, the option table's (table.c).
 * 0 or -ENOMEM. */
int cfg_init(struct ccvm_config *cfg, struct ccvm_err *err);

/* Frees everything cfg owns and leaves it zeroed; safe on a zeroed cfg. */
void cfg_free(struct ccvm_config *cfg);

/*
 * The config-file layer: parses text (len bytes, JSON) strictly and applies
 * the keys it sets over cfg.  filename only names the source in messages.
 * Pure: no I/O.  On error cfg is unchanged and err says
 * "<file>: <key>: <what is wrong>" (or "<file>:<line>:<col>: ..." for
 * syntax errors).
 */
int cfg_parse_json(struct ccvm_config *cfg, const char *text, size_t len,
		   const char *filename, struct ccvm_err *err);

/*
 * Looks a variable up in an envp-style array ("NAME=value", NULL-ended);
 * the first match wins, like getenv(3).  NULL when absent.
 */
const char *cfg_env_get(char *const *envp, const char *name);

/*
 * Which config file applies: $CCVM_CONFIG (required to exist), else
 * $XDG_CONFIG_HOME/ccvm/config.json (when absolute), else
 * $HOME/.config/ccvm/config.json (both optional).  *path is malloc'ed, or
 * NULL when neither XDG_CONFIG_HOME nor HOME gives one.
 */
int cfg_config_path(char *const *envp, char **path, bool *required,
		    struct ccvm_err *err);

/* The CCVM_* environment layer over cfg; on error cfg is unchanged and err
 * names the variable. */
int cfg_apply_env(struct ccvm_config *cfg, char *const *envp,
		  struct ccvm_err *err);

/*
 * The whole resolution: defaults, config file, environment, then the
 * flags (args->writable; args may be NULL).  On success cfg is filled
 * (free it with cfg_free); on error cfg is untouched.
 */
struct cli_args;
int cfg_resolve(struct ccvm_config *cfg, const struct cli_args *args,
		char *const *envp, struct ccvm_err *err);

/*
 * JSON text of the options, with the config file's key names.
 * CFG_DUMP_PRETTY: every option, indented, in table order: itself a valid
 * config file (--ccvm-dump-config).  CFG_DUMP_BUILD: only the build-time
 * options, compact, keys sorted: a stable input for the image hash.
 * *out is malloc'ed and ends with a newline for CFG_DUMP_PRETTY.
 */
enum cfg_dump_mode { CFG_DUMP_PRETTY = 0, CFG_DUMP_BUILD };
int cfg_dump_json(const struct ccvm_config *cfg, enum cfg_dump_mode mode,
		  char **out, struct ccvm_err *err);

/*
 * Refuses host root: -EPERM with the reason when euid is 0, unless
 * CCVM_ALLOW_ROOT is a true boolean in envp (an invalid value is an error
 * too).
 */
int cfg_check_root(unsigned euid, char *const *envp, struct ccvm_err *err);

/* Parses an environment boolean: 1/0, true/false, yes/no (any case). */
bool cfg_parse_bool(const char *s, bool *out);

/*
 * The option checks (true when valid), the only copies: config resolution
 * applies them to every value, the image build calls the package-name ones
 * again before handing names to npm and mmdebstrap.  cfg_valid_egress is
 * the session's own entry parser (net/egress_parse.h).
 */
bool cfg_valid_env_name(const char *s);
bool cfg_valid_egress(const char *s);
/* Debian policy 5.6.1 [a-z0-9][a-z0-9+.-]+, 2..128 characters; no
 * version or architecture. */
bool cfg_valid_deb_name(const char *s);
/* Printable ASCII without spaces, not starting with '-', at most
 * CFG_NPM_SPEC_MAX characters. */
bool cfg_valid_npm_spec(const char *s);
/* A nix.conf list item: non-empty, no whitespace, control characters or
 * '#'. */
bool cfg_valid_nix_item(const char *s);

/*
 * CCVM_* variables (envcheck.c).  cfg_env_known: whether ccvm (or its test
 * runner) reads name.  cfg_env_unknown: the next CCVM_* entry of envp from
 * *i on that ccvm does not know, its name in name (at most n bytes, cut
 * there) and the nearest known name in *hint (NULL when none is close);
 * NULL when there is none left.  cfg_env_debug: CCVM_DEBUG as a boolean
 * (false when unset), -EINVAL with err set when it is not one.
 */
bool cfg_env_known(const char *name);
const char *cfg_env_unknown(char *const *envp, size_t *i, char *name, size_t n,
			    const char **hint);
int cfg_env_debug(char *const *envp, bool *on, struct ccvm_err *err);

/* Writes the options, environment and config-file part of --ccvm-help. */
void cfg_usage(FILE *out, char *const *envp);
