/* Unit tests for the SETUP contract (src/common/setup.h): the encoder, the
 * decoder and the validator both sides use. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "setup.h"
#include "util.h"

#define KV(s) ((const uint8_t *)(s)), (sizeof(s) - 1)

static const char good[] = "mode=agent\0cwd=/home/a/proj\0writable=0\0"
			   "share=virtiofs\0share_sync=1\0"
			   "user=alice\0uid=1000\0gid=100\0"
			   "home=/home/a\0pty=1\0rows=30\0cols=100\0"
			   "term=xterm\0projects=1\0scratch=0\0debug=1\0";

static struct guest_setup sample(void)
{
	struct guest_setup s;
	memset(&s, 0, sizeof(s));
	s.shell = true;
	util_strlcpy(s.cwd, "/work/p q", sizeof(s.cwd));
	s.writable = true;
	s.share_sync = false;
	util_strlcpy(s.user, "jdoe.corp", sizeof(s.user));
	s.uid = 4242;
	s.gid = 100;
	util_strlcpy(s.home, "/home/jdoe.corp", sizeof(s.home));
	s.pty = false;
	s.rows = 50;
	s.cols = 132;
	util_strlcpy(s.term, "xterm-256color", sizeof(s.term));
	s.scratch = true;
	return s;
}

static void expect_invalid(const struct guest_setup *s, const char *needle)
{
	struct ccvm_err err;
	memset(&err, 0, sizeof(err));
	assert_int_equal(setup_validate(s, &err), -EINVAL);
	if (!strstr(err.msg, needle))
		fail_msg("error '%s' does not mention '%s'", err.msg, needle);
	assert_null(strchr(err.msg, '\n'));
	/* The encoder refuses what the validator refuses. */
	uint8_t buf[SETUP_MAX];
	size_t len = 0;
	assert_int_equal(setup_encode(s, buf, sizeof(buf), &len, &err),
			 -EINVAL);
}

static void expect_undecodable(const uint8_t *d, size_t len, const char *needle)
{
	struct guest_setup s;
	struct ccvm_err err;
	memset(&err, 0, sizeof(err));
	assert_true(setup_decode(d, len, &s, &err) < 0);
	if (!strstr(err.msg, needle))
		fail_msg("error '%s' does not mention '%s'", err.msg, needle);
}

static void test_decode(void **state)
{
	(void)state;
	struct guest_setup s;
	struct ccvm_err err;
	assert_int_equal(setup_decode(KV(good), &s, &err), 0);
	assert_false(s.shell);
	assert_string_equal(s.cwd, "/home/a/proj");
	assert_false(s.writable);
	assert_true(s.virtiofs);
	assert_true(s.share_sync);
	assert_string_equal(s.user, "alice");
	assert_int_equal(s.uid, 1000);
	assert_int_equal(s.gid, 100);
	assert_string_equal(s.home, "/home/a");
	assert_true(s.pty);
	assert_int_equal(s.rows, 30);
	assert_int_equal(s.cols, 100);
	assert_string_equal(s.term, "xterm");
	assert_true(s.projects);
	assert_false(s.scratch);
	assert_true(s.debug);
}

/* The exact bytes the host has always sent, in its order. */
static void test_encode(void **state)
{
	(void)state;
	struct guest_setup s = sample();
	uint8_t buf[SETUP_MAX];
	size_t len = 0;
	struct ccvm_err err;
	assert_int_equal(setup_encode(&s, buf, sizeof(buf), &len, &err), 0);
	static const char want[] =
	    "mode=shell\0cwd=/work/p q\0writable=1\0share=9p\0share_sync=0\0"
	    "user=jdoe.corp\0uid=4242\0gid=100\0home=/home/jdoe.corp\0pty=0\0"
	    "rows=50\0cols=132\0term=xterm-256color\0projects=0\0scratch=1\0"
	    "debug=0\0";
	assert_int_equal(len, sizeof(want) - 1);
	assert_memory_equal(buf, want, len);

	assert_int_equal(setup_encode(&s, buf, 40, &len, &err), -E2BIG);
}

static void test_round_trip(void **state)
{
	(void)state;
	struct guest_setup s = sample(), t;
	uint8_t buf[SETUP_MAX];
	size_t len = 0;
	struct ccvm_err err;
	assert_int_equal(setup_encode(&s, buf, sizeof(buf), &len, &err), 0);
	assert_int_equal(setup_decode(buf, len, &t, &err), 0);
	assert_memory_equal(&s, &t, sizeof(s));

	/* Rows and cols of 0 (no terminal size known) become 24 x 80. */
	s.rows = s.cols = 0;
	assert_int_equal(setup_encode(&s, buf, sizeof(buf), &len, &err), 0);
	assert_int_equal(setup_decode(buf, len, &t, &err), 0);
	assert_int_equal(t.rows, 24);
	assert_int_equal(t.cols, 80);
}

/* Every key is required: dropping any one of them fails, naming it. */
static void test_missing_key(void **state)
{
	(void)state;
	size_t n = 0;
	for (size_t off = 0; off < sizeof(good) - 1; n++) {
		const char *entry = good + off;
		size_t el = strlen(entry) + 1;
		uint8_t buf[sizeof(good)];
		memcpy(buf, good, off);
		memcpy(buf + off, good + off + el, sizeof(good) - 1 - off - el);
		char key[32];
		snprintf(key, sizeof(key), "missing key '%.*s'",
			 (int)(strchr(entry, '=') - entry), entry);
		expect_undecodable(buf, sizeof(good) - 1 - el, key);
		off += el;
	}
	assert_int_equal(n, 16);
	/* A missing writable no longer means writable. */
	static const char nowr[] =
	    "mode=agent\0cwd=/p\0share=9p\0share_sync=0\0user=u\0uid=5\0"
	    "gid=6\0home=/h\0pty=1\0rows=1\0cols=1\0term=x\0projects=0\0"
	    "scratch=0\0debug=0\0";
	expect_undecodable(KV(nowr), "missing key 'writable'");
}

static void test_decode_refusals(void **state)
{
	(void)state;
	static const char unk[] = "cwd=/p\0bogus=1\0";
	expect_undecodable(KV(unk), "unknown key 'bogus'");
	static const char twice[] = "cwd=/p\0cwd=/q\0";
	expect_undecodable(KV(twice), "'cwd' given twice");
	static const char b[] = "writable=yes\0";
	expect_undecodable(KV(b), "writable=yes");
	static const char share[] = "share=nfs\0";
	expect_undecodable(KV(share), "share=nfs");
	static const char mode[] = "mode=root\0";
	expect_undecodable(KV(mode), "mode=root");
	static const char uid[] = "uid=-1\0";
	expect_undecodable(KV(uid), "uid=-1");
	static const char big[] = "uid=4294967295\0";
	expect_undecodable(KV(big), "uid=4294967295");
	static const char rows[] = "rows=65536\0";
	expect_undecodable(KV(rows), "rows=65536");
	static const char noeq[] = "cwd\0";
	expect_undecodable(KV(noeq), "malformed");
	static const char unterminated[] = "cwd=/p";
	expect_undecodable(KV(unterminated), "malformed");

	/* A complete frame with one bad value: the validator's reason. */
	char bad[sizeof(good)];
	memcpy(bad, good, sizeof(good));
	char *user = memmem(bad, sizeof(bad), "user=alice", 10);
	assert_non_null(user);
	memcpy(user + 5, "al:ce", 5);
	expect_undecodable((const uint8_t *)bad, sizeof(bad) - 1,
			   "user name al:ce is not usable");
}

static void test_validate(void **state)
{
	(void)state;
	struct guest_setup s = sample();
	struct ccvm_err err;
	assert_int_equal(setup_validate(&s, &err), 0);

	util_strlcpy(s.user, "jdoe@corp.example", sizeof(s.user));
	expect_invalid(&s, "user name jdoe@corp.example is not usable in the "
			   "guest (SETUP user");
	util_strlcpy(s.user, "abcdefghijklmnopqrstuvwxyz0123456",
		     sizeof(s.user));
	expect_invalid(&s, "33 bytes, at most 32");
	util_strlcpy(s.user, "abcdefghijklmnopqrstuvwxyz012345",
		     sizeof(s.user));
	assert_int_equal(setup_validate(&s, &err), 0);
	util_strlcpy(s.user, "-x", sizeof(s.user));
	expect_invalid(&s, "user name -x");
	util_strlcpy(s.user, ".x", sizeof(s.user));
	expect_invalid(&s, "user name .x");
	util_strlcpy(s.user, "a\nb", sizeof(s.user));
	expect_invalid(&s, "user name a?b"); /* shown on one line */
	s.user[0] = '\0';
	expect_invalid(&s, "user name is empty");

	s = sample();
	util_strlcpy(s.home, "/home/u/", sizeof(s.home));
	expect_invalid(&s, "home directory /home/u/ is not usable in the "
			   "guest (SETUP home");
	util_strlcpy(s.home, "home/u", sizeof(s.home));
	expect_invalid(&s, "home directory home/u");

	s = sample();
	util_strlcpy(s.cwd, "work/p", sizeof(s.cwd));
	expect_invalid(&s, "directory work/p is not usable in the guest "
			   "(SETUP cwd");
	util_strlcpy(s.cwd, "/a/../b", sizeof(s.cwd));
	expect_invalid(&s, "/a/../b");
	util_strlcpy(s.cwd, "/", sizeof(s.cwd));
	expect_invalid(&s, "root directory");

	s = sample();
	util_strlcpy(s.term, "../x", sizeof(s.term));
	expect_invalid(&s, "TERM value ../x");
	memset(s.term, 'x', SETUP_TERM_MAX + 1);
	s.term[SETUP_TERM_MAX + 1] = '\0';
	expect_invalid(&s, "SETUP term");
	s.term[SETUP_TERM_MAX] = '\0';
	assert_int_equal(setup_validate(&s, &err), 0);

	s = sample();
	s.uid = (uid_t)-1;
	expect_invalid(&s, "SETUP uid");
	s = sample();
	s.gid = (gid_t)-1;
	expect_invalid(&s, "SETUP gid");
}

static void test_abs_path(void **state)
{
	(void)state;
	assert_true(setup_abs_path_valid("/"));
	assert_true(setup_abs_path_valid("/a/b c/.d"));
	assert_false(setup_abs_path_valid(""));
	assert_false(setup_abs_path_valid("a"));
	assert_false(setup_abs_path_valid("/a/"));
	assert_false(setup_abs_path_valid("/a//b"));
	assert_false(setup_abs_path_valid("/a/./b"));
	assert_false(setup_abs_path_valid("/a/.."));
	assert_false(setup_abs_path_valid("/a\nb"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decode),
	    cmocka_unit_test(test_encode),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_missing_key),
	    cmocka_unit_test(test_decode_refusals),
	    cmocka_unit_test(test_validate),
	    cmocka_unit_test(test_abs_path),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
