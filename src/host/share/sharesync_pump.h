#pragma once
/*
 * The session's side of sharesync.h: host changes to the share go to the
 * guest in SHARE_INVAL batches, one at a time, and terminal input read
 * after a change waits until the guest has applied it (docs/share.md).
 * virtiofsd's open files are watched too: past 3/4 of its limit the guest
 * is asked to drop the inodes it does not use.
 *
 * "live" below: the guest runs and the control port is open, so frames
 * may be queued.  A frame that cannot be queued is a fatal error, kept in
 * *fail unless one is there already.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "proto.h"
#include "share/sharesync.h"
#include "share/vfs.h"

/* A SHARE_INVAL the guest has not answered within this: the share is no
 * longer followed (input held for it goes on). */
#define SHARE_SYNC_TIMEOUT_MS 10000
/* Host changes to the share: at most one batch per SHARE_BATCH_GAP_MS.
 * virtiofsd's open files are counted every SHARE_FILES_CHECK_MS, every
 * SHARE_FILES_BUSY_MS past half its limit; past 3/4 the guest is asked to
 * trim, again after SHARE_TRIM_GAP_MS when the last trim brought the count
 * down (a program opening files faster than a trim a second), else after
 * SHARE_TRIM_IDLE_MS (the files are in use: trimming again frees none). */
#define SHARE_BATCH_GAP_MS   50
#define SHARE_FILES_CHECK_MS 1000
#define SHARE_FILES_BUSY_MS  200
#define SHARE_TRIM_GAP_MS    1000
#define SHARE_TRIM_IDLE_MS   5000

/* After a read that found changes, the watch is not polled again for
 * this long: a burst (the guest untarring thousands of files, each a few
 * events) is read in a few hundred wake-ups a second, not one an event.
 * Input still reads every pending change before it goes on. */
#define SHARE_READ_GAP_MS 5

struct share_pump {
	struct watch *watch; /* NULL: host changes are not followed */
	struct proto_writer *wr;
	const struct vfs_daemon *vfs;
	struct ccvm_err *fail;
	bool debug;

	pthread_t filler; /* watch_fill while QEMU boots */
	bool filling;
	int fill_result;
	bool busy;		  /* a SHARE_INVAL awaits its SHARE_SYNCED */
	uint64_t acked;		  /* events the guest has applied */
	uint64_t stdin_barrier;	  /* input waits until this is applied */
	bool warned;		  /* said the watch is incomplete */
	bool trim;		  /* ask the guest to drop unused inodes */
	long long files_check_ms; /* next look at virtiofsd's open files */
	long long trim_ms;	  /* the last trim was asked for then */
	bool trim_worked;	  /* a count below 3/4 since the last trim */
	long long next_ms;	  /* no batch before this, unless urgent */
	long long read_ms;	  /* the watch is polled again from then */
	long long sent_ms;	  /* the SHARE_INVAL awaited was sent then */
};

/* Takes w (may be NULL); the rest is borrowed for the pump's life. */
void share_pump_init(struct share_pump *sp, struct watch *w,
		     struct proto_writer *wr, const struct vfs_daemon *vfs,
		     struct ccvm_err *fail, bool debug);

/* Walks the tree (watch_fill) in a thread while QEMU boots. */
void share_pump_fill_start(struct share_pump *sp);

/* Waits for that walk: the tree is watched before the guest sees the
 * share (SETUP).  Says when the watch is incomplete or failed. */
void share_pump_join(struct share_pump *sp);

/* Joins the walk and stops watching. */
void share_pump_free(struct share_pump *sp);

/* Stops following host changes, saying why, once. */
void share_pump_stop(struct share_pump *sp, const char *why);

/* Sends the next batch, when one is due. */
void share_pump_send(struct share_pump *sp, bool live);

/* Reads the watch's events (its fd was readable). */
void share_pump_read(struct share_pump *sp, bool live);

/* Whether the relay polls the watch's fd now (SHARE_READ_GAP_MS). */
bool share_pump_read_due(const struct share_pump *sp, long long now);

/* The guest's SHARE_SYNCED. */
void share_pump_synced(struct share_pump *sp, const uint8_t *p, size_t n,
		       bool live);

/* Past SHARE_SYNC_TIMEOUT_MS without SHARE_SYNCED, the share is no longer
 * followed.  The time left (ms), or -1 when nothing is awaited. */
int share_pump_check_synced(struct share_pump *sp, long long now);

/* Counts virtiofsd's open files when due; asks for a trim past 3/4. */
void share_pump_check_files(struct share_pump *sp, long long now, bool live);

/* The decision behind it, for `open` files of at most `max` at `now`:
 * sets when to count next, and returns whether to trim now. */
bool share_pump_files_trim(struct share_pump *sp, long open, long max,
			   long long now);

/* The most the relay may sleep for the pump (ms), -1: no limit. */
int share_pump_timeout(const struct share_pump *sp, long long now);

/* May terminal input be read now?  False holds it until the guest has
 * applied every change read so far (it asks for them, urgently). */
bool share_pump_input_may_read(struct share_pump *sp, bool live);

/* True while input waits for the guest (do not poll stdin). */
bool share_pump_input_held(const struct share_pump *sp);
