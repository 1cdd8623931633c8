#pragma once
/*
 * The SETUP frame: "key=value" strings (docs/protocol.md) parsed and
 * validated into one struct.  Pure: no I/O, so it is unit-tested.
 */
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "err.h"

#define SETUP_NAME_MAX 32
#define SETUP_TERM_MAX 64

struct guest_setup {
	char mode[16];	    /* "agent" or "shell" */
	char cwd[PATH_MAX]; /* absolute */
	bool writable;	    /* read-write, else under an overlay */
	bool virtiofs;	    /* cwd over virtiofs, else 9p */
	bool share_sync;    /* the host reports its changes (sharesync.h) */
	char user[SETUP_NAME_MAX + 1];
	uid_t uid;
	gid_t gid;
	char home[PATH_MAX]; /* absolute */
	bool pty;
	unsigned short rows, cols;
	char term[SETUP_TERM_MAX + 1];
	bool projects; /* ccvm.projects at home/.claude/projects */
	bool scratch;  /* encrypted /dev/vdb at /scratch */
	bool debug;    /* LOG frames */
};

/*
 * Parses a SETUP payload.  Unknown keys are errors (both sides ship
 * together); required: cwd, user, uid, gid, home.  Fills out on success.
 */
int setup_parse(const uint8_t *data, size_t len, struct guest_setup *out,
		struct ccvm_err *err);

/* A user name we are willing to put in /etc/passwd: [A-Za-z0-9._-], not
 * starting with '-' or '.', at most SETUP_NAME_MAX bytes. */
bool setup_user_name_valid(const char *name);

/* An absolute, normalised path: starts with '/', no "." or ".." component,
 * no "//", no trailing '/' (except "/" itself), no control characters. */
bool setup_abs_path_valid(const char *path);
