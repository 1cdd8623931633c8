#pragma once
/*
 * Splits ccvm's argv into ccvm's own flags and the agent's arguments.
 * ccvm flags are recognised anywhere before a literal "--"; everything else
 * (bare --help and --version included) goes to the agent byte for byte and
 * in order.  In agent mode a "--" and all after it are forwarded as they
 * are; with --shell, "--" introduces the command to run instead of a shell.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "err.h"

enum cli_mode {
	CLI_RUN_AGENT = 0, /* default: claude with the remaining args */
	CLI_RUN_SHELL,	   /* --shell [-- CMD ARGS...] */
	CLI_HELP,	   /* --ccvm-help */
	CLI_VERSION,	   /* --ccvm-version */
	CLI_DUMP_CONFIG,   /* --ccvm-dump-config */
	CLI_BUILD,	   /* --ccvm-build */
	CLI_IMAGES,	   /* --ccvm-images: list cached images */
	CLI_PRUNE,  /* --ccvm-prune: delete images other than the current */
	CLI_DOCTOR, /* --ccvm-doctor: check what a session needs */
	CLI_EGRESS, /* --ccvm-egress [SESSION]: summarise an egress log */
	CLI_EGRESS_SUGGEST, /* --ccvm-egress-suggest [SESSION...] */
};

struct cli_args {
	enum cli_mode mode;
	int writable; /* -1 no flag, 0 --read-only-cwd, 1 --writable-cwd */
	bool debug;   /* --ccvm-debug */
	bool json;    /* --ccvm-egress --json */
	bool follow;  /* --ccvm-egress --follow / -f */
	/* Agent argv (without "claude"), the --shell command (argc 0: an
	 * interactive login shell) or the SESSION arguments of the egress
	 * modes, NULL-terminated.  The array is malloc'ed
	 * (cli_free); the strings point into main's argv. */
	char **argv;
	size_t argc;
};

/*
 * An argument that starts with "--ccvm-" but is not one of ours (before
 * "--") is a usage error: it is surely a typo, and the agent has no such
 * flag; put it after "--" to forward it anyway.  --ccvm-help and
 * --ccvm-version win over any other flag or error.  Two different modes
 * (--shell, --ccvm-dump-config, --ccvm-build, --ccvm-images, --ccvm-prune,
 * --ccvm-doctor, --ccvm-egress, --ccvm-egress-suggest) conflict; the other
 * non-agent modes take no further arguments, and --shell takes its command
 * only after "--".  The egress modes run no agent, so there every other
 * argument is theirs: --json and --follow (-f, --ccvm-egress only), and
 * SESSION arguments (one for --ccvm-egress, any number for the suggestion),
 * also as --ccvm-egress=SESSION and after "--".  Returns 0 or -EINVAL (err
 * says why).
 */
int cli_parse(int argc, char **argv, struct cli_args *out,
	      struct ccvm_err *err);
void cli_free(struct cli_args *a);

/* Writes the usage and flag part of --ccvm-help. */
void cli_usage(FILE *out);
