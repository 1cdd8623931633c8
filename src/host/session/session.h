#pragma once
/* One ccvm session: boot, relay, tear down.  Returns the exit status ccvm
 * should exit with (the agent's, or a CCVM_EXIT_* code). */
#include "options/cli.h"
#include "options/config.h"
#include "err.h"

/* ccvm's own exit codes (documented in the README). */
#define CCVM_EXIT_USAGE	  2   /* bad flag, option, config file or env var */
#define CCVM_EXIT_FAILURE 125 /* ccvm or the VM failed (boot, QEMU, image) */

/* Set true, lets ccvm share a directory that holds or lies in a secret
 * place, or is an ancestor of a home directory (places.h). */
#define SESSION_ENV_ALLOW_SECRET_DIRS "CCVM_ALLOW_SECRET_DIRS"

int session_run(const struct ccvm_config *cfg, const struct cli_args *args,
		struct ccvm_err *err);
