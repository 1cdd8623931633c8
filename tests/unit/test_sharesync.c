/*
 * Unit tests for the share watcher (src/host/share/sharesync.c), on a real
 * directory tree with real inotify: the paths each kind of change yields,
 * new and moved directories, links that must not be followed, batches
 * and their sequence numbers.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto.h"
#include "util.h"
#include "share/sharesync.h"
#include "share/sharesync_pump.h"

static char root[256];
static char outside[256];

static void at(char *buf, size_t n, const char *rel)
{
	snprintf(buf, n, "%s/%s", root, rel);
}

static void mk(const char *rel)
{
	char p[PATH_MAX];
	at(p, sizeof(p), rel);
	assert_int_equal(util_mkdir_p(p, 0755), 0);
}

static void put(const char *rel, const char *text)
{
	char p[PATH_MAX];
	at(p, sizeof(p), rel);
	FILE *f = fopen(p, "a");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/ccvm-test-watch.XXXXXX");
	assert_non_null(mkdtemp(root));
	snprintf(outside, sizeof(outside), "/tmp/ccvm-test-watch-out.XXXXXX");
	assert_non_null(mkdtemp(outside));
	mk("a/b");
	mk("c");
	put("a/b/f", "1");
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	util_rm_rf(root);
	util_rm_rf(outside);
	return 0;
}

/* A watch on the whole test tree. */
static struct watch *watched(void)
{
	struct watch *w = NULL;
	struct ccvm_err e = {0};
	assert_int_equal(watch_open(root, &w, &e), 0);
	assert_int_equal(watch_fill(w), 0);
	return w;
}

/* Reads events and takes one batch; returns its paths as "p1|p2|...". */
static char *batch(struct watch *w, uint64_t *seq, uint8_t *flags)
{
	assert_int_equal(watch_read(w), 0);
	static uint8_t buf[PROTO_SHARE_HDR + PROTO_SHARE_BATCH];
	size_t n = watch_take(w, buf, sizeof(buf));
	assert_true(n >= PROTO_SHARE_HDR);
	if (seq)
		*seq = proto_get_u64(buf);
	if (flags)
		*flags = buf[8];
	char *out = calloc(1, n + 2);
	assert_non_null(out);
	size_t o = 0;
	for (size_t i = PROTO_SHARE_HDR; i < n;) {
		i += PROTO_SHARE_ATTR_LEN;
		size_t l = strlen((char *)buf + i);
		memcpy(out + o, buf + i, l);
		o += l;
		out[o++] = '|';
		i += l + 1;
	}
	out[o] = '\0';
	return out;
}

static bool has(const char *list, const char *path)
{
	char want[PATH_MAX + 2];
	snprintf(want, sizeof(want), "|%s|", path);
	char *l = util_asprintf("|%s", list);
	bool r = strstr(l, want) != NULL;
	free(l);
	return r;
}

static void test_changes(void **state)
{
	(void)state;
	struct watch *w = watched();
	assert_int_equal(watch_dirs(w), 4); /* ., a, a/b, c */
	assert_false(watch_pending(w));
	assert_int_equal(watch_seq(w), 0);

	/* A file written: only it; the directory did not change. */
	put("a/b/f", "2");
	uint64_t seq;
	uint8_t flags;
	autofree char *l1 = batch(w, &seq, &flags);
	assert_string_equal(l1, "a/b/f|");
	assert_int_equal(flags, 0);
	assert_true(seq > 0);
	assert_int_equal(seq, watch_seq(w));
	assert_false(watch_pending(w));

	/* Created and deleted at the root: the names and the root. */
	put("new", "x");
	char p[PATH_MAX];
	at(p, sizeof(p), "a/b/f");
	assert_int_equal(unlink(p), 0);
	autofree char *l2 = batch(w, NULL, NULL);
	assert_true(has(l2, "new"));
	assert_true(has(l2, "."));
	assert_true(has(l2, "a/b/f"));
	assert_true(has(l2, "a/b"));

	/* Nothing happened: an empty batch with the same seq. */
	uint64_t s2;
	autofree char *l3 = batch(w, &s2, NULL);
	assert_string_equal(l3, "");
	assert_int_equal(s2, watch_seq(w));
	watch_free(w);
}

static void test_new_and_moved_dirs(void **state)
{
	(void)state;
	struct watch *w = watched();
	size_t before = watch_dirs(w);

	/* A tree made at once: watched as a whole before it is used. */
	mk("d/e/f");
	autofree char *l1 = batch(w, NULL, NULL);
	assert_true(has(l1, "d"));
	assert_int_equal(watch_dirs(w), before + 3);
	put("d/e/f/x", "x");
	autofree char *l2 = batch(w, NULL, NULL);
	assert_true(has(l2, "d/e/f/x"));

	/* A directory renamed: old and new names, and its files under
	 * their new path from then on. */
	char from[PATH_MAX], to[PATH_MAX];
	at(from, sizeof(from), "d");
	at(to, sizeof(to), "z");
	assert_int_equal(rename(from, to), 0);
	autofree char *l3 = batch(w, NULL, NULL);
	assert_true(has(l3, "d"));
	assert_true(has(l3, "z"));
	assert_true(has(l3, "."));
	put("z/e/f/x", "y");
	autofree char *l4 = batch(w, NULL, NULL);
	assert_string_equal(l4, "z/e/f/x|");
	assert_int_equal(watch_dirs(w), before + 3);

	/* Moved out of the tree: no longer watched. */
	char away[PATH_MAX];
	snprintf(away, sizeof(away), "%s/z", outside);
	assert_int_equal(rename(to, away), 0);
	autofree char *l5 = batch(w, NULL, NULL);
	assert_true(has(l5, "z"));
	assert_int_equal(watch_dirs(w), before);
	char px[PATH_MAX];
	snprintf(px, sizeof(px), "%s/z/e/f/x", outside);
	FILE *f = fopen(px, "a");
	assert_non_null(f);
	fputs("z", f);
	fclose(f);
	autofree char *l6 = batch(w, NULL, NULL);
	assert_string_equal(l6, "");

	/* Removed: its watches go. */
	mk("g/h");
	autofree char *l7 = batch(w, NULL, NULL);
	assert_int_equal(watch_dirs(w), before + 2);
	char g[PATH_MAX];
	at(g, sizeof(g), "g");
	assert_int_equal(util_rm_rf(g), 0);
	autofree char *l8 = batch(w, NULL, NULL);
	assert_true(has(l8, "g"));
	assert_int_equal(watch_dirs(w), before);
	watch_free(w);
}

static void test_links_not_followed(void **state)
{
	(void)state;
	char link[PATH_MAX], in[PATH_MAX];
	snprintf(in, sizeof(in), "%s/secret", outside);
	assert_int_equal(util_mkdir_p(in, 0755), 0);
	at(link, sizeof(link), "ln");
	assert_int_equal(symlink(outside, link), 0);

	struct watch *w = watched();
	size_t n = watch_dirs(w);
	/* A change behind the link is nobody's business here. */
	char f[PATH_MAX];
	snprintf(f, sizeof(f), "%s/secret/key", outside);
	FILE *fp = fopen(f, "w");
	assert_non_null(fp);
	fclose(fp);
	autofree char *l1 = batch(w, NULL, NULL);
	assert_string_equal(l1, "");

	/* A link made while watching (the guest's move): the link's name
	 * changes, nothing behind it is watched. */
	char link2[PATH_MAX];
	at(link2, sizeof(link2), "c/ln2");
	assert_int_equal(symlink(outside, link2), 0);
	autofree char *l2 = batch(w, NULL, NULL);
	assert_true(has(l2, "c/ln2"));
	assert_int_equal(watch_dirs(w), n);
	unlink(f);
	autofree char *l3 = batch(w, NULL, NULL);
	assert_string_equal(l3, "");
	watch_free(w);
	unlink(link);
	unlink(link2);
}

static void test_partial_batches(void **state)
{
	(void)state;
	struct watch *w = watched();
	for (int i = 0; i < 40; i++) {
		char n[32];
		snprintf(n, sizeof(n), "c/file-%02d", i);
		put(n, "x");
	}
	assert_int_equal(watch_read(w), 0);
	uint64_t all = watch_seq(w);
	assert_true(all >= 40);
	/* Room for a few paths only: a batch that leaves some behind claims
	 * no seq beyond the last complete one. */
	uint8_t buf[PROTO_SHARE_HDR + 3 * (PROTO_SHARE_ATTR_LEN + 12)];
	size_t total = 0, n;
	int batches = 0;
	uint64_t seq = 0;
	while (watch_pending(w)) {
		n = watch_take(w, buf, sizeof(buf));
		seq = proto_get_u64(buf);
		if (watch_pending(w))
			assert_int_equal(seq, 0);
		for (size_t i = PROTO_SHARE_HDR; i < n;
		     i += PROTO_SHARE_ATTR_LEN +
			  strlen((char *)buf + i + PROTO_SHARE_ATTR_LEN) + 1)
			total++;
		batches++;
		assert_true(batches < 100);
	}
	assert_int_equal(seq, all);
	assert_int_equal(total, 41); /* 40 files and c */
	assert_true(batches > 1);
	watch_free(w);
}

/* The attributes a batch gives for path; false when it is not there. */
static bool batch_attr(const uint8_t *buf, size_t n, const char *path,
		       struct proto_share_attr *a)
{
	for (size_t i = PROTO_SHARE_HDR; i < n;) {
		const char *p = (const char *)buf + i + PROTO_SHARE_ATTR_LEN;
		if (!strcmp(p, path)) {
			proto_share_attr_get(buf + i, a);
			return true;
		}
		i += PROTO_SHARE_ATTR_LEN + strlen(p) + 1;
	}
	return false;
}

/* Each path travels with what the host sees there now. */
static void test_attrs(void **state)
{
	(void)state;
	struct watch *w = watched();
	put("c/file", "12345");
	char p[PATH_MAX];
	at(p, sizeof(p), "c/gone");
	put("c/gone", "x");
	assert_int_equal(unlink(p), 0);
	assert_int_equal(watch_read(w), 0);
	static uint8_t buf[PROTO_SHARE_HDR + PROTO_SHARE_BATCH];
	size_t n = watch_take(w, buf, sizeof(buf));
	struct stat st;
	at(p, sizeof(p), "c/file");
	assert_int_equal(stat(p, &st), 0);
	struct proto_share_attr a;
	assert_true(batch_attr(buf, n, "c/file", &a));
	assert_true(a.exists);
	assert_int_equal(a.ino, st.st_ino);
	assert_int_equal(a.size, 5);
	assert_int_equal(a.mode, st.st_mode);
	assert_int_equal(a.mtime_s, st.st_mtim.tv_sec);
	assert_int_equal(a.mtime_ns, st.st_mtim.tv_nsec);
	assert_int_equal(a.ctime_ns, st.st_ctim.tv_nsec);
	assert_true(batch_attr(buf, n, "c/gone", &a));
	assert_false(a.exists);
	watch_free(w);
}

/* What a path is looked at through: beneath the root, following no link,
 * neither the last name (a link is reported as the link) nor one before it
 * (a directory swapped for a link after the event: "does not exist"). */
static void test_attrs_no_links(void **state)
{
	(void)state;
	char p[PATH_MAX], q[PATH_MAX], o[PATH_MAX];
	mk("c/d");
	snprintf(o, sizeof(o), "%s/x", outside);
	FILE *fp = fopen(o, "w");
	assert_non_null(fp);
	fputs("outside", fp);
	fclose(fp);
	struct watch *w = watched();
	put("c/d/x", "12");
	at(p, sizeof(p), "c/lnk");
	assert_int_equal(symlink(o, p), 0);
	assert_int_equal(watch_read(w), 0);
	at(p, sizeof(p), "c/d");
	at(q, sizeof(q), "c/d-away");
	assert_int_equal(rename(p, q), 0);
	assert_int_equal(symlink(outside, p), 0);
	static uint8_t buf[PROTO_SHARE_HDR + PROTO_SHARE_BATCH];
	size_t n = watch_take(w, buf, sizeof(buf));
	struct proto_share_attr a;
	assert_true(batch_attr(buf, n, "c/d/x", &a));
	assert_false(a.exists);
	assert_true(batch_attr(buf, n, "c/lnk", &a));
	assert_true(a.exists);
	assert_true(S_ISLNK(a.mode));
	watch_free(w);
}

/* Where another machine (or a FUSE server) may change files without an
 * inotify event, nothing may be cached. */
static void test_fs_complete(void **state)
{
	(void)state;
	assert_true(watch_fs_complete(0xEF53));	     /* ext4 */
	assert_true(watch_fs_complete(0x01021994));  /* tmpfs */
	assert_true(watch_fs_complete(0x9123683E));  /* btrfs */
	assert_true(watch_fs_complete(0x58465342));  /* xfs */
	assert_false(watch_fs_complete(0x6969));     /* nfs */
	assert_false(watch_fs_complete(0xFE534D42)); /* smb2 */
	assert_false(watch_fs_complete(0xFF534D42)); /* cifs */
	assert_false(watch_fs_complete(0x65735546)); /* fuse (sshfs, ...) */
	assert_false(watch_fs_complete(0x01021997)); /* 9p */
	/* f_type is signed in struct statfs: the same bits either way. */
	assert_false(watch_fs_complete((long)(int)0xFF534D42));
}

static void test_open_errors(void **state)
{
	(void)state;
	struct watch *w = NULL;
	struct ccvm_err e = {0};
	assert_int_equal(watch_open("/nonexistent/ccvm", &w, &e), -ENOENT);
	assert_null(w);
	assert_non_null(strstr(e.msg, "/nonexistent/ccvm"));
}

/* The guest's answer to the batch in flight: it applied up to seq. */
static void synced(struct share_pump *sp, uint64_t seq, uint8_t flags)
{
	uint8_t p[PROTO_SHARE_HDR] = {0};
	proto_put_u64(p, seq);
	p[8] = flags;
	share_pump_synced(sp, p, sizeof(p), true);
}

/* What a pump borrows for its life: a writer, a virtiofsd, an error. */
struct pump_parts {
	struct proto_writer wr;
	struct vfs_daemon vfs;
	struct ccvm_err fail;
};

static void pump_open(struct share_pump *sp, struct pump_parts *pp)
{
	*pp = (struct pump_parts){.vfs = {.pid = 0, .qemu_fd = -1}};
	assert_int_equal(proto_writer_init(&pp->wr), 0);
	share_pump_init(sp, watched(), &pp->wr, &pp->vfs, &pp->fail, false);
}

/*
 * The pump (sharesync_pump.c): input read after a host change waits until
 * the guest has applied it; a guest that stops following, or does not
 * answer in time, lets input go and the share is no longer followed.
 */
static void test_pump(void **state)
{
	(void)state;
	struct pump_parts pp;
	struct share_pump sp;
	pump_open(&sp, &pp);
	assert_true(share_pump_input_may_read(&sp, true)); /* nothing new */
	assert_int_equal(proto_writer_queued(&pp.wr), 0);

	put("c/new", "x");
	assert_false(share_pump_input_may_read(&sp, true));
	assert_true(share_pump_input_held(&sp));
	assert_true(sp.busy);
	assert_true(proto_writer_queued(&pp.wr) > 0); /* the SHARE_INVAL */
	assert_true(share_pump_check_synced(&sp, sp.sent_ms) > 0);
	synced(&sp, watch_seq(sp.watch), 0);
	assert_false(share_pump_input_held(&sp));
	assert_true(share_pump_input_may_read(&sp, true));

	/* Not live (the guest is not running): nothing is sent. */
	put("c/new", "y");
	size_t q = proto_writer_queued(&pp.wr);
	share_pump_read(&sp, false);
	assert_false(sp.busy);
	assert_int_equal(proto_writer_queued(&pp.wr), q);

	/* No answer in time: no longer followed, input goes on. */
	assert_false(share_pump_input_may_read(&sp, true));
	assert_true(sp.busy);
	assert_int_equal(
	    share_pump_check_synced(&sp, sp.sent_ms + SHARE_SYNC_TIMEOUT_MS),
	    -1);
	assert_null(sp.watch);
	assert_false(share_pump_input_held(&sp));
	assert_true(share_pump_input_may_read(&sp, true));
	assert_int_equal(share_pump_timeout(&sp, 0), -1);
	assert_int_equal(pp.fail.code, 0);
	share_pump_free(&sp);

	/* The guest says it stopped following. */
	share_pump_init(&sp, watched(), &pp.wr, &pp.vfs, &pp.fail, false);
	put("a/b/f", "z");
	assert_false(share_pump_input_may_read(&sp, true));
	synced(&sp, 0, 1);
	assert_null(sp.watch);
	assert_true(share_pump_input_may_read(&sp, true));
	share_pump_free(&sp);
	proto_writer_free(&pp.wr);
}

/* A read that found changes rests the watch for SHARE_READ_GAP_MS (the
 * relay wakes for it then); one that found none does not; input still
 * reads what came meanwhile. */
static void test_read_gap(void **state)
{
	(void)state;
	struct pump_parts pp;
	struct share_pump sp;
	pump_open(&sp, &pp);
	long long now = util_now_ms();
	sp.files_check_ms = now + 100000;
	sp.next_ms = now + 100000;   /* no batch due either */
	share_pump_read(&sp, false); /* nothing there */
	assert_true(share_pump_read_due(&sp, now));
	assert_int_equal(share_pump_timeout(&sp, now), 100000);

	put("c/new", "x");
	share_pump_read(&sp, false);
	now = util_now_ms();
	assert_false(share_pump_read_due(&sp, now));
	assert_true(share_pump_read_due(&sp, now + SHARE_READ_GAP_MS));
	int t = share_pump_timeout(&sp, now);
	assert_true(t >= 0 && t <= SHARE_READ_GAP_MS);
	uint64_t seq = watch_seq(sp.watch);
	put("c/new", "y");
	assert_false(share_pump_input_may_read(&sp, false));
	assert_true(watch_seq(sp.watch) > seq);
	share_pump_free(&sp);
	assert_false(share_pump_read_due(&sp, now + 100000)); /* no watch */
	proto_writer_free(&pp.wr);
}

/* When virtiofsd's open files are counted, and when the guest is asked to
 * trim: past 3/4 of the limit; again a second later when the last trim
 * brought the count down (files keep coming), else five seconds later. */
static void test_files_trim(void **state)
{
	(void)state;
	struct share_pump sp = {0};
	long long t = 100000;
	/* Below half: no trim, the next count in a second. */
	assert_false(share_pump_files_trim(&sp, 100, 1000, t));
	assert_int_equal(sp.files_check_ms, t + SHARE_FILES_CHECK_MS);
	/* Past half: counted five times as often. */
	assert_false(share_pump_files_trim(&sp, 600, 1000, t));
	assert_int_equal(sp.files_check_ms, t + SHARE_FILES_BUSY_MS);
	/* Past 3/4: a trim, then none while the count stays high... */
	assert_true(share_pump_files_trim(&sp, 800, 1000, t));
	assert_false(share_pump_files_trim(&sp, 800, 1000, t + 200));
	assert_false(
	    share_pump_files_trim(&sp, 800, 1000, t + SHARE_TRIM_GAP_MS));
	/* ...until the idle gap: trimming files in use frees none. */
	assert_true(
	    share_pump_files_trim(&sp, 800, 1000, t + SHARE_TRIM_IDLE_MS));
	/* A trim that worked (a count below 3/4 since): the next one may
	 * follow a second later. */
	t += SHARE_TRIM_IDLE_MS;
	assert_false(share_pump_files_trim(&sp, 300, 1000, t + 200));
	assert_false(share_pump_files_trim(&sp, 900, 1000, t + 400));
	assert_true(
	    share_pump_files_trim(&sp, 900, 1000, t + SHARE_TRIM_GAP_MS));
	/* virtiofsd not counted (gone): nothing to do. */
	assert_false(share_pump_files_trim(&sp, -3, 1000, t + 60000));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_changes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_new_and_moved_dirs, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_links_not_followed, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_partial_batches, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_attrs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_attrs_no_links, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_pump, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_read_gap, setup, teardown),
	    cmocka_unit_test(test_fs_complete),
	    cmocka_unit_test(test_files_trim),
	    cmocka_unit_test(test_open_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
