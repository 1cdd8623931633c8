/* Host changes to the share, batch by batch (sharesync_pump.h). */
#include "share/sharesync_pump.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "term/say.h"
#include "util.h"

void share_pump_init(struct share_pump *sp, struct watch *w,
		     struct proto_writer *wr, const struct vfs_daemon *vfs,
		     struct ccvm_err *fail, bool debug)
{
	*sp = (struct share_pump){
	    .watch = w, .wr = wr, .vfs = vfs, .fail = fail, .debug = debug};
}

static void warn_incomplete(struct share_pump *sp)
{
	if (!watch_incomplete(sp->watch) || sp->warned)
		return;
	sp->warned = true;
	say("cannot watch every directory of the share (ccvm takes at most "
	    "half of fs.inotify.max_user_watches): files changed on the host "
	    "in the others may not be seen in the VM");
}

static void *fill_main(void *arg)
{
	struct share_pump *sp = arg;
	sp->fill_result = watch_fill(sp->watch);
	return NULL;
}

void share_pump_fill_start(struct share_pump *sp)
{
	if (!sp->watch)
		return;
	sp->filling = pthread_create(&sp->filler, NULL, fill_main, sp) == 0;
	if (!sp->filling)
		sp->fill_result = watch_fill(sp->watch);
}

void share_pump_join(struct share_pump *sp)
{
	if (!sp->filling)
		return;
	pthread_join(sp->filler, NULL);
	sp->filling = false;
	if (sp->fill_result < 0)
		say("watching the shared directory: %s: files changed on the "
		    "host may not be seen in the VM",
		    strerror(-sp->fill_result));
	warn_incomplete(sp);
	if (sp->debug)
		say("watching %zu directories of the share",
		    watch_dirs(sp->watch));
}

void share_pump_free(struct share_pump *sp)
{
	share_pump_join(sp);
	watch_free(sp->watch);
	sp->watch = NULL;
}

void share_pump_stop(struct share_pump *sp, const char *why)
{
	say("%s: files changed on the host from now on may not be seen in "
	    "the VM",
	    why);
	watch_free(sp->watch);
	sp->watch = NULL;
	sp->busy = false;
}

/* Every event read so far that the guest has applied (or that changed
 * nothing it could hold). */
static uint64_t share_done(const struct share_pump *sp)
{
	if (!sp->busy && !watch_pending(sp->watch))
		return watch_seq(sp->watch);
	return sp->acked;
}

/*
 * One batch at a time, and while changes keep coming (the guest's own,
 * mostly) at most one per SHARE_BATCH_GAP_MS, unless input waits for
 * them.
 */
void share_pump_send(struct share_pump *sp, bool live)
{
	if (!sp->watch || sp->busy || !live ||
	    !(watch_pending(sp->watch) || sp->trim) ||
	    proto_writer_full(sp->wr))
		return;
	long long now = util_now_ms();
	bool urgent = sp->stdin_barrier || sp->trim;
	if (!urgent && now < sp->next_ms)
		return;
	sp->next_ms = now + SHARE_BATCH_GAP_MS;
	static uint8_t buf[PROTO_SHARE_HDR + PROTO_SHARE_BATCH];
	size_t n = watch_take(sp->watch, buf, sizeof(buf));
	if (sp->trim)
		buf[8] |= PROTO_SHARE_TRIM;
	sp->trim = false;
	int r = proto_writer_put(sp->wr, PROTO_SHARE_INVAL, 0, buf, n);
	if (r < 0 && sp->fail && !sp->fail->code)
		ccvm_err_set(sp->fail, -r, "cannot queue a %s frame: %s",
			     proto_type_name(PROTO_SHARE_INVAL), strerror(-r));
	sp->busy = true;
	sp->sent_ms = now;
}

void share_pump_read(struct share_pump *sp, bool live)
{
	uint64_t seq = watch_seq(sp->watch);
	if (watch_read(sp->watch) < 0) {
		share_pump_stop(sp, "watching the shared directory failed");
		return;
	}
	if (watch_seq(sp->watch) != seq)
		sp->read_ms = util_now_ms() + SHARE_READ_GAP_MS;
	warn_incomplete(sp);
	share_pump_send(sp, live);
}

bool share_pump_read_due(const struct share_pump *sp, long long now)
{
	return sp->watch && now >= sp->read_ms;
}

void share_pump_synced(struct share_pump *sp, const uint8_t *p, size_t n,
		       bool live)
{
	if (!sp->watch || !sp->busy || n < PROTO_SHARE_HDR)
		return;
	sp->busy = false;
	uint64_t seq = proto_get_u64(p);
	if (seq > sp->acked)
		sp->acked = seq;
	if (p[8] != 0)
		share_pump_stop(sp, "the guest stopped following host changes");
	else
		share_pump_send(sp, live);
}

/* A guest that never answers a SHARE_INVAL holds no input for ever. */
int share_pump_check_synced(struct share_pump *sp, long long now)
{
	if (!sp->watch || !sp->busy)
		return -1;
	long long due = sp->sent_ms + SHARE_SYNC_TIMEOUT_MS;
	if (now < due)
		return (int)(due - now);
	char why[96];
	snprintf(why, sizeof(why),
		 "the guest did not confirm host changes within %d s",
		 SHARE_SYNC_TIMEOUT_MS / 1000);
	share_pump_stop(sp, why);
	return -1;
}

/*
 * virtiofsd keeps a file open for every inode the guest caches; past 3/4
 * of its limit, the guest is asked to let go of those it does not use.
 * A program reading thousands of files a second (find -exec cat) can fill
 * the last quarter within a second, hence the closer look past half.
 */
bool share_pump_files_trim(struct share_pump *sp, long open, long max,
			   long long now)
{
	bool high = open > max / 4 * 3;
	sp->files_check_ms =
	    now + (open > max / 2 ? SHARE_FILES_BUSY_MS : SHARE_FILES_CHECK_MS);
	if (open < 0)
		return false;
	if (!high) {
		sp->trim_worked = true;
		return false;
	}
	if (sp->trim_ms &&
	    now < sp->trim_ms + (sp->trim_worked ? SHARE_TRIM_GAP_MS
						 : SHARE_TRIM_IDLE_MS))
		return false;
	sp->trim_ms = now;
	sp->trim_worked = false;
	return true;
}

void share_pump_check_files(struct share_pump *sp, long long now, bool live)
{
	if (!sp->watch || now < sp->files_check_ms)
		return;
	long open = vfs_open_files(sp->vfs);
	if (!share_pump_files_trim(sp, open, vfs_files_max(), now))
		return;
	if (sp->debug)
		say("virtiofsd holds %ld files (limit %ld): asking the guest "
		    "to drop unused inodes",
		    open, vfs_files_max());
	sp->trim = true;
	share_pump_send(sp, live);
}

int share_pump_timeout(const struct share_pump *sp, long long now)
{
	if (!sp->watch)
		return -1;
	long long due = sp->files_check_ms;
	if (watch_pending(sp->watch) && !sp->busy && sp->next_ms < due)
		due = sp->next_ms;
	if (now < sp->read_ms && sp->read_ms < due)
		due = sp->read_ms;
	return due > now ? (int)(due - now) : 0;
}

/*
 * Input the user typed after editing a file on the host must not reach
 * the guest before the edit's invalidation: read stdin only once every
 * change read until now is applied in the guest.
 */
bool share_pump_input_may_read(struct share_pump *sp, bool live)
{
	if (!sp->watch)
		return true;
	if (sp->stdin_barrier) {
		/* Waited for the changes before this input already. */
		sp->stdin_barrier = 0;
		return true;
	}
	share_pump_read(sp, live);
	if (!sp->watch || share_done(sp) >= watch_seq(sp->watch))
		return true;
	sp->stdin_barrier = watch_seq(sp->watch);
	share_pump_send(sp, live); /* now urgent */
	return false;
}

bool share_pump_input_held(const struct share_pump *sp)
{
	return sp->watch && sp->stdin_barrier &&
	       share_done(sp) < sp->stdin_barrier;
}
