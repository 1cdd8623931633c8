/*
 * Unit tests for the guest's share-sync worker (src/guest/share/sharesync.c):
 * which paths it accepts, and that applying a batch never changes a tree.
 * The cache-dropping effect itself needs virtiofs and a host that changes
 * files: tests/integration/23-share.sh checks it on a real VM.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto.h"
#include "share/sharesync.h"
#include "util.h"

static bool ok(const char *p)
{
	return sharesync_path_ok(p, strlen(p));
}

static void test_paths(void **state)
{
	(void)state;
	assert_true(ok("."));
	assert_true(ok("a"));
	assert_true(ok("a/b/c.txt"));
	assert_true(ok(".git/index"));
	assert_true(ok("a/..b/c"));
	assert_false(ok(""));
	assert_false(ok("/etc/passwd"));
	assert_false(ok(".."));
	assert_false(ok("a/../../etc"));
	assert_false(ok("a/./b"));
	assert_false(ok("./a"));
	assert_false(ok("a//b"));
	assert_false(ok("a/"));
	assert_false(sharesync_path_ok("a\0b", 3));
}

/* A payload: seq 7, flags, then the given NUL-separated paths, each with
 * an attribute record saying "gone". */
static size_t payload(uint8_t *buf, uint8_t flags, const char *paths,
		      size_t plen)
{
	proto_put_u64(buf, 7);
	buf[8] = flags;
	size_t o = PROTO_SHARE_HDR;
	struct proto_share_attr gone = {0};
	for (size_t i = 0; i < plen;) {
		const char *nul = memchr(paths + i, '\0', plen - i);
		size_t l = nul ? (size_t)(nul - (paths + i)) + 1 : plen - i;
		proto_share_attr_put(buf + o, &gone);
		memcpy(buf + o + PROTO_SHARE_ATTR_LEN, paths + i, l);
		o += PROTO_SHARE_ATTR_LEN + l;
		i += l;
	}
	return o;
}

static void test_malformed(void **state)
{
	(void)state;
	uint8_t buf[1024];
	int root = open("/tmp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(root >= 0);
	assert_int_equal(sharesync_apply(root, NULL, buf, 3, NULL), -EPROTO);
	/* A record without its path. */
	assert_int_equal(
	    sharesync_apply(root, NULL, buf, PROTO_SHARE_HDR + 10, NULL),
	    -EPROTO);
	/* Not NUL-terminated; absolute; "..": the whole batch is refused. */
	assert_int_equal(
	    sharesync_apply(root, NULL, buf, payload(buf, 0, "a", 1), NULL),
	    -EPROTO);
	assert_int_equal(sharesync_apply(root, NULL, buf,
					 payload(buf, 0, "a\0/etc\0", 7), NULL),
			 -EPROTO);
	assert_int_equal(sharesync_apply(root, NULL, buf,
					 payload(buf, 0, "../x\0", 5), NULL),
			 -EPROTO);
	assert_int_equal(
	    sharesync_apply(root, NULL, buf, payload(buf, 0, "", 0), NULL), 0);
	close(root);
}

/* Applying a batch naming everything (and what is not there) leaves a
 * local tree exactly as it was. */
static void test_harmless(void **state)
{
	(void)state;
	char dir[] = "/tmp/ccvm-test-sharesync.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char p[256];
	snprintf(p, sizeof(p), "%s/sub/deeper", dir);
	assert_int_equal(util_mkdir_p(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/sub/f", dir);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs("content", f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/ln", dir);
	assert_int_equal(symlink("/etc/passwd", p), 0);
	struct stat before;
	snprintf(p, sizeof(p), "%s/sub/f", dir);
	assert_int_equal(stat(p, &before), 0);

	int root = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(root >= 0);
	static const char names[] = ".\0sub\0sub/f\0sub/deeper\0ln\0ln/x\0"
				    "missing\0sub/missing\0nodir/x";
	uint8_t buf[1024];
	size_t n = payload(buf, PROTO_SHARE_ALL, names, sizeof(names));
	size_t asked = 99;
	assert_int_equal(sharesync_apply(root, NULL, buf, n, &asked), 0);
	/* The ones that exist and are "gone" for the host: asked about. */
	assert_int_equal(asked, 5);

	/* What the host saw is what is cached: nothing to ask. */
	struct stat st;
	snprintf(p, sizeof(p), "%s/sub/f", dir);
	assert_int_equal(lstat(p, &st), 0);
	struct proto_share_attr same;
	proto_share_attr_of_stat(&same, &st);
	n = PROTO_SHARE_HDR;
	buf[8] = 0;
	proto_share_attr_put(buf + n, &same);
	memcpy(buf + n + PROTO_SHARE_ATTR_LEN, "sub/f", 6);
	n += PROTO_SHARE_ATTR_LEN + 6;
	assert_int_equal(sharesync_apply(root, NULL, buf, n, &asked), 0);
	assert_int_equal(asked, 0);
	same.size++; /* ... and when it differs, it asks */
	proto_share_attr_put(buf + PROTO_SHARE_HDR, &same);
	assert_int_equal(sharesync_apply(root, NULL, buf, n, &asked), 0);
	assert_int_equal(asked, 1);
	/* A directory is asked about even when its attributes are the
	 * host's: its cached listing is dropped (FUSE would trust mtime). */
	char q[256];
	snprintf(q, sizeof(q), "%s/sub/deeper", dir);
	assert_int_equal(lstat(q, &st), 0);
	proto_share_attr_of_stat(&same, &st);
	n = PROTO_SHARE_HDR;
	proto_share_attr_put(buf + n, &same);
	memcpy(buf + n + PROTO_SHARE_ATTR_LEN, "sub/deeper", 11);
	n += PROTO_SHARE_ATTR_LEN + 11;
	assert_int_equal(sharesync_apply(root, NULL, buf, n, &asked), 0);
	assert_int_equal(asked, 1);
	close(root);

	struct stat after;
	assert_int_equal(stat(p, &after), 0);
	assert_int_equal(before.st_ino, after.st_ino);
	assert_int_equal(before.st_size, after.st_size);
	assert_int_equal(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
	char target[64] = "";
	snprintf(p, sizeof(p), "%s/ln", dir);
	assert_true(readlink(p, target, sizeof(target) - 1) > 0);
	assert_string_equal(target, "/etc/passwd");
	snprintf(p, sizeof(p), "%s/missing", dir);
	assert_int_equal(access(p, F_OK), -1);
	snprintf(p, sizeof(p), "%s/nodir", dir);
	assert_int_equal(access(p, F_OK), -1);
	assert_int_equal(util_rm_rf(dir), 0);
}

/* Which request each difference costs: none for what is cached, a GETATTR
 * for the same inode changed, a LOOKUP (the rename) for a name that now
 * names something else, is gone, or is a directory (its listing). */
static void test_decide(void **state)
{
	(void)state;
	const struct proto_share_attr file = {
	    .exists = true,
	    .mode = S_IFREG | 0644,
	    .ino = 42,
	    .size = 1024,
	    .mtime_s = 1000,
	    .ctime_s = 1000,
	};
	struct proto_share_attr host = file, mine = file;
	assert_int_equal(sharesync_decide(&host, &mine, true), SHARESYNC_NONE);
	assert_int_equal(sharesync_decide(NULL, &mine, false),
			 SHARESYNC_REVALIDATE);
	/* The guest's own write: its cached times are the older ones. */
	host.mtime_ns = 5;
	host.ctime_ns = 5;
	assert_int_equal(sharesync_decide(&host, &mine, true),
			 SHARESYNC_REFRESH);
	host.size = 1; /* shrunk in place */
	assert_int_equal(sharesync_decide(&host, &mine, true),
			 SHARESYNC_REFRESH);
	host.mode = S_IFREG | 0600; /* chmod */
	assert_int_equal(sharesync_decide(&host, &mine, true),
			 SHARESYNC_REFRESH);
	host.ino = 43; /* replaced: written aside, renamed over it */
	assert_int_equal(sharesync_decide(&host, &mine, true),
			 SHARESYNC_REVALIDATE);
	host = file;
	host.mode = S_IFLNK | 0777; /* the same number, another type */
	host.size = 7;
	assert_int_equal(sharesync_decide(&host, &mine, true),
			 SHARESYNC_REVALIDATE);
	host = (struct proto_share_attr){0}; /* gone on the host */
	assert_int_equal(sharesync_decide(&host, &mine, true),
			 SHARESYNC_REVALIDATE);
	mine.exists = false; /* nothing the kernel says it caches */
	host = file;
	host.size = 2;
	assert_int_equal(sharesync_decide(&host, &mine, true),
			 SHARESYNC_REVALIDATE);

	/* A directory: always with reval_drops_listing; without it, only
	 * when it differs (its listing goes another way), never a GETATTR. */
	const struct proto_share_attr dir = {
	    .exists = true, .mode = S_IFDIR | 0755, .ino = 7, .size = 40};
	host = mine = dir;
	assert_int_equal(sharesync_decide(&host, &mine, true),
			 SHARESYNC_REVALIDATE);
	assert_int_equal(sharesync_decide(&host, &mine, false), SHARESYNC_NONE);
	host.size = 60;
	assert_int_equal(sharesync_decide(&host, &mine, false),
			 SHARESYNC_REVALIDATE);
}

/* Everything: drop_caches is written, then each path a process holds
 * under the share is revalidated from the top (a fake /proc here). */
static void test_all(void **state)
{
	(void)state;
	char dir[] = "/tmp/ccvm-test-sharesync.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char p[256], q[256];
	snprintf(p, sizeof(p), "%s/share/sub/deeper", dir);
	assert_int_equal(util_mkdir_p(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/share/sub/f", dir);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fclose(f);
	snprintf(p, sizeof(p), "%s/proc/123/fd", dir);
	assert_int_equal(util_mkdir_p(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/proc/124/fd", dir);
	assert_int_equal(util_mkdir_p(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/proc/123/cwd", dir);
	snprintf(q, sizeof(q), "%s/share/sub/deeper", dir);
	assert_int_equal(symlink(q, p), 0);
	snprintf(p, sizeof(p), "%s/proc/123/fd/3", dir);
	snprintf(q, sizeof(q), "%s/share/sub/f", dir);
	assert_int_equal(symlink(q, p), 0);
	snprintf(p, sizeof(p), "%s/proc/124/cwd", dir);
	assert_int_equal(symlink("/etc", p), 0); /* not the share's */
	snprintf(p, sizeof(p), "%s/proc/124/fd/4", dir);
	snprintf(q, sizeof(q), "%s/share-other/x", dir); /* a prefix only */
	assert_int_equal(symlink(q, p), 0);
	char share[256], proc[256], drop[256];
	snprintf(share, sizeof(share), "%s/share", dir);
	snprintf(proc, sizeof(proc), "%s/proc", dir);
	snprintf(drop, sizeof(drop), "%s/drop", dir);
	f = fopen(drop, "w");
	assert_non_null(f);
	fclose(f);
	struct sharesync_env env = {
	    .root = share, .proc = proc, .drop_caches = drop};

	int root = open(share, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(root >= 0);
	uint8_t buf[64];
	size_t n = payload(buf, PROTO_SHARE_ALL, "", 0), asked = 0;
	assert_int_equal(sharesync_apply(root, &env, buf, n, &asked), 0);
	/* The root; sub and sub/deeper (a cwd); sub and sub/f (an open
	 * file); nothing for /etc or share-other. */
	assert_int_equal(asked, 5);
	char *text = NULL;
	size_t tl;
	assert_int_equal(util_read_file(drop, 16, &text, &tl, NULL), 0);
	assert_string_equal(text, "2\n");
	free(text);
	/* TRIM alone: drop_caches only. */
	f = fopen(drop, "w");
	fclose(f);
	n = payload(buf, PROTO_SHARE_TRIM, "", 0);
	assert_int_equal(sharesync_apply(root, &env, buf, n, &asked), 0);
	assert_int_equal(asked, 0);
	assert_int_equal(util_read_file(drop, 16, &text, &tl, NULL), 0);
	assert_string_equal(text, "2\n");
	free(text);
	close(root);
	snprintf(p, sizeof(p), "%s/share/sub/f", dir);
	assert_int_equal(access(p, F_OK), 0);
	assert_int_equal(util_rm_rf(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_paths),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_harmless),
	    cmocka_unit_test(test_decide),
	    cmocka_unit_test(test_all),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
