#pragma once
/*
 * ccvm's resolved options: one struct filled in order
 *   built-in default -> config file -> CCVM_* environment -> flags
 * (later wins).  Names follow ../shared/DESIGN.md section 3.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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
	char *extra_claude_md;	/* "" disables */
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
