#pragma once
/*
 * The SETUP frame's contract, defined once for both sides
 * (docs/protocol.md): the struct with every key, the encoder the host
 * uses, the decoder the guest uses, and the validator both run, so the
 * host refuses before booting what the guest would refuse.  Pure: no I/O.
 *
 * The frame is "key=value" strings, each NUL-terminated.  Every key is
 * required exactly once and unknown keys are refused: both sides ship
 * together, and a missing key fails closed instead of taking a default.
 */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

#define SETUP_NAME_MAX 32   /* user name, bytes */
#define SETUP_TERM_MAX 64   /* TERM, bytes */
#define SETUP_MAX      8192 /* the encoded frame, bytes */

struct guest_setup {
	bool shell;	    /* mode=shell (informational), else agent */
	char cwd[PATH_MAX]; /* the share, same path in the guest; absolute */
	bool writable;	    /* read-write, else under an overlay */
	bool virtiofs;	    /* cwd over virtiofs, else 9p */
	bool share_sync;    /* the host reports its changes (sharesync.h) */
	/* Wider than SETUP_NAME_MAX so the validator, not a copy, says
	 * what is wrong with a long name. */
	char user[256];
	uid_t uid;
	gid_t gid;
	char home[PATH_MAX]; /* absolute */
	bool pty;
	unsigned short rows, cols; /* 0 in the frame: 24 x 80 */
	char term[256];		   /* at most SETUP_TERM_MAX */
	bool projects;		   /* ccvm.projects at home/.claude/projects */
	bool scratch;		   /* encrypted /dev/vdb at /scratch */
	bool debug;		   /* LOG frames */
};

/*
 * Checks s against the guest's rules.  0, or -EINVAL with err holding one
 * line that names the key and its value, e.g. "user name a@b is not usable
 * in the guest (SETUP user: ...)".
 */
int setup_validate(const struct guest_setup *s, struct ccvm_err *err);

/*
 * Encodes s (validated first) into buf as the SETUP payload; *len is its
 * length.  0, -EINVAL (err from setup_validate) or -E2BIG.
 */
int setup_encode(const struct guest_setup *s, uint8_t *buf, size_t size,
		 size_t *len, struct ccvm_err *err);

/*
 * Decodes and validates a SETUP payload.  Every key exactly once; unknown
 * keys, duplicates and malformed entries are errors.  Fills out on
 * success only.
 */
int setup_decode(const uint8_t *data, size_t len, struct guest_setup *out,
		 struct ccvm_err *err);

/* A user name we are willing to put in /etc/passwd: [A-Za-z0-9._-], not
 * starting with '-' or '.', at most SETUP_NAME_MAX bytes. */
bool setup_user_name_valid(const char *name);

/* An absolute, normalised path: starts with '/', no "." or ".." component,
 * no "//", no trailing '/' (except "/" itself), no control characters. */
bool setup_abs_path_valid(const char *path);
