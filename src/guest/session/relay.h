#pragma once
/*
 * The relay between the control port and the running program: STDIN,
 * RESIZE, SIGNAL and CONT in; STDOUT/STDERR, STOPPED out, with
 * backpressure (the program's output is not read while the writer is
 * full); SIGCHLD through a signalfd, reaping every child.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "session/agent.h"
#include "term/clipboard.h"
#include "err.h"
#include "proto.h"

#define RELAY_STDIN_MAX (1024 * 1024)

struct relay {
	int port;
	int sigfd;
	struct proto_reader *rd;
	struct proto_writer *wr;
	struct agent *ag;
	struct paste_srv *clip; /* image paste for the program, or NULL */
	bool pty;
	/* bytes for the program's stdin */
	uint8_t *in_buf;
	size_t in_len;
	bool in_eof;	/* host sent EOF: close after draining */
	bool in_closed; /* no more stdin possible */
	/* The share-sync worker's socket (sharesync.h), or -1. */
	int share_fd;
	bool share_busy;      /* a batch is with the worker */
	uint8_t share_seq[8]; /* ... and its seq */
};

/* Sets up r (the SIGCHLD signalfd among it); SIGCHLD must be blocked. */
int relay_init(struct relay *r, int port, struct proto_reader *rd,
	       struct proto_writer *wr, struct ccvm_err *err);
void relay_free(struct relay *r);

/* Queues bytes for the program's stdin (typed before it started too);
 * len 0 is EOF. */
int relay_queue_stdin(struct relay *r, const void *data, size_t len);

/*
 * Runs until the program ends (returns 0 with kind and code for EXIT, after
 * its output is drained and queued with the EOF frames) or the host goes
 * away (-EPIPE).  Other errors are fatal (-errno, err filled).
 */
int relay_run(struct relay *r, struct agent *ag, uint32_t *kind, uint32_t *code,
	      struct ccvm_err *err);

/* Writes everything queued, waiting up to timeout_ms. */
int relay_flush(int fd, struct proto_writer *w, int timeout_ms);

/*
 * Waits until the host closes its end of the port (it has read everything:
 * data still queued in the virtqueue would be lost at power-off), discarding
 * input; 0, or -ETIMEDOUT.
 */
int relay_wait_hangup(int fd, int timeout_ms);

/* Reaps every exited child without waiting; returns how many. */
int relay_reap_all(void);
