#pragma once
/*
 * The hand-over: everything the host sends the guest init between its
 * HELLO and START (docs/protocol.md): HELLO, SETUP, the program's ARGs,
 * its ENV, the API key as a SECRET, the staged files as FILE frames, and
 * START.  Queued on the control port's writer in one go; the secret and
 * the files then live only in the writer, which the caller wipes once it
 * has sent them.
 */
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"
#include "options/cli.h"

struct proto_writer;
struct stage_list;

struct handover {
	bool shell;	 /* --shell: the command or bash -l */
	const char *cwd; /* the shared directory, same path in the guest */
	bool writable;	 /* the share is read-write */
	bool virtiofs;	 /* else 9p */
	bool share_sync; /* the host reports share changes */
	bool pty;	 /* the program gets a PTY of rows x cols */
	unsigned rows, cols;
	const char *term; /* TERM for the program */
	bool projects;	  /* ~/.claude/projects/NAME is shared */
	bool scratch;	  /* /scratch on the second disk */
	bool debug;	  /* --ccvm-debug */
	bool nix;	  /* NIX_REMOTE=daemon for the agent */
	size_t argc;	  /* the agent's arguments, or the --shell command */
	char *const *argv;
	const char *api_url; /* ANTHROPIC_BASE_URL, or NULL */
	const char *key_var; /* the variable the key was taken from */
	const char *key_env; /* the agent's variable for it (NULL: the API
				key's, ANTHROPIC_API_KEY) */
	const char *key;     /* the API key (procs.h), or NULL */
	size_t key_len;
	struct stage_list *staged; /* freed once queued */
};

/*
 * Runs the guest's checks (setup.h) on the SETUP handover_queue would send
 * for h, as the user ccvm runs as: called before QEMU starts, so what the
 * guest would refuse (a user name like jdoe@corp.example, a home of
 * /home/u/) is refused before booting.  Of h, only cwd and term matter
 * here.  0, or -errno with err holding one line naming
 * the value and the SETUP key.
 */
int handover_check(const struct handover *h, struct ccvm_err *err);

/*
 * Whether the host's variable name with value v crosses into the agent's
 * environment: COLORTERM, TERM_PROGRAM(_VERSION), TZ, NO_COLOR, LANG and
 * the LC_* categories, with a value of at most 256 bytes without control
 * characters.  0 or -EINVAL.
 */
int handover_env_value(const char *name, const char *v);

/*
 * Queues HELLO .. START on w.  The key, once queued, is wiped from ccvm's
 * own buffer (procs_secret_free) and the staged list is freed; *secrets is
 * set when the writer holds secret bytes to wipe after sending.  0, or a
 * negative errno with err saying what.
 */
int handover_queue(struct proto_writer *w, const struct handover *h,
		   bool *secrets, struct ccvm_err *err);
