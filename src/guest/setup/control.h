#pragma once
/*
 * The control phase of a session: everything the host sends between its
 * HELLO and START (docs/protocol.md), collected with a cap on the count and
 * total size of each kind.  ctl_feed() is pure: it validates one frame,
 * stores ARG/ENV/SECRET, and tells the caller what to do next, so the
 * effects (mounts, files) stay in main.c and this part is unit-tested.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "proto.h"
#include "setup.h"

#define CTL_ARGS_MAX	  4096
#define CTL_ARGS_BYTES	  (1024 * 1024)
#define CTL_ENV_MAX	  1024
#define CTL_ENV_BYTES	  (512 * 1024)
#define CTL_SECRETS_MAX	  64
#define CTL_SECRETS_BYTES (64 * 1024)
/* Above the host's staging limits (5,000 files, 64 MiB), counting the
 * continuation frames of large files. */
#define CTL_FILES_MAX	    8192
#define CTL_FILES_BYTES	    (80 * 1024 * 1024)
#define CTL_EARLY_STDIN_MAX (256 * 1024)

/* NUL-separated strings with caps on count and bytes. */
struct ctl_list {
	char *data;
	size_t len, count;
	size_t max_bytes, max_count;
	bool secret; /* wiped on growth and free */
};

struct ctl_state {
	bool got_hello, got_setup, started;
	struct guest_setup setup;
	struct ctl_list args, env, secrets;
	size_t files, file_bytes, early_stdin;
};

enum ctl_action {
	CTL_NONE,  /* stored; read the next frame */
	CTL_SETUP, /* st->setup is valid: mount, create the user */
	CTL_FILE,  /* write *file */
	CTL_STDIN, /* input (or EOF) before START: queue it */
	CTL_START, /* spawn the program */
};

struct ctl_file {
	uint32_t mode;
	bool append;	  /* PROTO_FILE_APPEND: continues the previous FILE */
	const char *path; /* NUL-terminated, inside the frame */
	const uint8_t *data;
	size_t len;
};

void ctl_init(struct ctl_state *st);
/* Frees all lists, wiping the secrets. */
void ctl_free(struct ctl_state *st);
/* Wipes and frees the secrets only (PID 1 after fork). */
void ctl_wipe_secrets(struct ctl_state *st);

/*
 * Handles one frame from the host.  Returns 0 and sets *action (and *file
 * for CTL_FILE, pointing into msg), or -errno with err describing the
 * protocol violation.
 */
int ctl_feed(struct ctl_state *st, const struct proto_msg *msg,
	     enum ctl_action *action, struct ctl_file *file,
	     struct ccvm_err *err);

/* Parses a FILE payload: u32 mode, relative path, NUL, contents. */
int ctl_parse_file(const uint8_t *data, size_t len, struct ctl_file *out,
		   struct ccvm_err *err);

/*
 * Builds a NULL-terminated argv whose strings point into st->args.  The
 * array is malloc'ed (free() it); NULL with -ENOMEM or -EINVAL (no args).
 */
int ctl_argv(const struct ctl_state *st, char ***out);

/* Zeroes the bytes of r that were already consumed (secrets passed
 * through it), keeping unread data. */
void ctl_reader_scrub(struct proto_reader *r);
