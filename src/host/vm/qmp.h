#pragma once
/*
 * A QMP client for the few commands a saved boot needs (snap.h): blocking,
 * one command at a time, over the socket QEMU's monitor is on.
 */

#include <jansson.h>
#include <stddef.h>

#include "err.h"

struct qmp {
	int fd;
	size_t len;
	char buf[16384];
};

/* Reads the greeting and leaves capability negotiation: 0 or -errno. */
int qmp_open(struct qmp *q, int fd, int timeout_ms, struct ccvm_err *err);

/*
 * Runs cmd with args (taken, may be NULL) and waits up to timeout_ms for
 * its answer, skipping events.  *ret (may be NULL) gets the "return"
 * value, a new reference.  An "error" answer is -EIO with its text in err.
 */
int qmp_call(struct qmp *q, const char *cmd, json_t *args, json_t **ret,
	     int timeout_ms, struct ccvm_err *err);

/* The same, passing fd along (SCM_RIGHTS), as getfd wants. */
int qmp_call_fd(struct qmp *q, const char *cmd, json_t *args, int fd,
		json_t **ret, int timeout_ms, struct ccvm_err *err);

/* Waits until an incoming or outgoing migration has completed; -EIO when
 * it failed. */
int qmp_wait_migration(struct qmp *q, int timeout_ms, struct ccvm_err *err);
