/* Unit tests for ccvm-init's pure parts: the control phase,
 * FILE frames and the program's environment. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "setup/control.h"
#include "setup/env.h"
#include "setup.h"

#define KV(s) ((const uint8_t *)(s)), (sizeof(s) - 1)

/* The SETUP contract itself is tested in test_setup.c. */
static const char good_setup[] = "mode=agent\0cwd=/home/a/proj\0writable=0\0"
				 "share=virtiofs\0share_sync=0\0"
				 "user=alice\0uid=1000\0gid=100\0"
				 "home=/home/a\0pty=1\0rows=30\0cols=100\0"
				 "term=xterm\0projects=1\0scratch=0\0"
				 "debug=1\0";

/* Feeds one frame built from (type, payload). */
static int feed(struct ctl_state *st, uint8_t type, const void *p, size_t len,
		enum ctl_action *act, struct ctl_file *file,
		struct ccvm_err *err)
{
	struct proto_msg m = {.type = type, .len = (uint32_t)len, .data = p};
	return ctl_feed(st, &m, act, file, err);
}

static void hello(struct ctl_state *st)
{
	uint8_t h[8];
	proto_put_u32(h, PROTO_VERSION);
	memcpy(h + 4, "test", 4);
	enum ctl_action act;
	struct ctl_file f;
	struct ccvm_err err;
	assert_int_equal(feed(st, PROTO_HELLO, h, sizeof(h), &act, &f, &err),
			 0);
	assert_int_equal(act, CTL_NONE);
}

static void test_ctl_session(void **state)
{
	(void)state;
	struct ctl_state st;
	ctl_init(&st);
	enum ctl_action act;
	struct ctl_file f;
	struct ccvm_err err;
	hello(&st);
	assert_int_equal(feed(&st, PROTO_SETUP, KV(good_setup), &act, &f, &err),
			 0);
	assert_int_equal(act, CTL_SETUP);
	assert_int_equal(feed(&st, PROTO_ARG, "sh", 2, &act, &f, &err), 0);
	assert_int_equal(feed(&st, PROTO_ARG, "", 0, &act, &f, &err), 0);
	assert_int_equal(feed(&st, PROTO_ARG, "a b\n", 4, &act, &f, &err), 0);
	assert_int_equal(feed(&st, PROTO_ENV, "X=1", 3, &act, &f, &err), 0);
	assert_int_equal(feed(&st, PROTO_SECRET, "K=s", 3, &act, &f, &err), 0);
	static const char file[] = "\xa4\x01\0\0.claude/x.json\0{}";
	assert_int_equal(
	    feed(&st, PROTO_FILE, file, sizeof(file) - 1, &act, &f, &err), 0);
	assert_int_equal(act, CTL_FILE);
	assert_int_equal(f.mode, 0644);
	assert_string_equal(f.path, ".claude/x.json");
	assert_int_equal(f.len, 2);
	assert_memory_equal(f.data, "{}", 2);
	uint8_t rs[4];
	proto_put_u16(rs, 50);
	proto_put_u16(rs + 2, 132);
	assert_int_equal(feed(&st, PROTO_RESIZE, rs, 4, &act, &f, &err), 0);
	assert_int_equal(st.setup.rows, 50);
	assert_int_equal(st.setup.cols, 132);
	assert_int_equal(feed(&st, PROTO_STDIN, "ab", 2, &act, &f, &err), 0);
	assert_int_equal(act, CTL_STDIN);
	assert_int_equal(feed(&st, PROTO_START, NULL, 0, &act, &f, &err), 0);
	assert_int_equal(act, CTL_START);

	char **argv;
	assert_int_equal(ctl_argv(&st, &argv), 0);
	assert_string_equal(argv[0], "sh");
	assert_string_equal(argv[1], "");
	assert_string_equal(argv[2], "a b\n");
	assert_null(argv[3]);
	free(argv);
	assert_int_equal(st.secrets.count, 1);
	ctl_wipe_secrets(&st);
	assert_null(st.secrets.data);
	assert_int_equal(st.secrets.count, 0);
	/* Nothing but relay frames after START. */
	assert_true(feed(&st, PROTO_ARG, "x", 1, &act, &f, &err) < 0);
	ctl_free(&st);
}

static void test_ctl_order(void **state)
{
	(void)state;
	struct ctl_state st;
	enum ctl_action act;
	struct ctl_file f;
	struct ccvm_err err;
	ctl_init(&st);
	assert_true(feed(&st, PROTO_SETUP, KV(good_setup), &act, &f, &err) < 0);
	assert_non_null(strstr(err.msg, "expected HELLO"));
	uint8_t h[4];
	proto_put_u32(h, PROTO_VERSION + 1);
	assert_true(feed(&st, PROTO_HELLO, h, 4, &act, &f, &err) < 0);
	assert_non_null(strstr(err.msg, "protocol"));
	hello(&st);
	assert_true(feed(&st, PROTO_ARG, "x", 1, &act, &f, &err) < 0);
	assert_non_null(strstr(err.msg, "before SETUP"));
	assert_int_equal(feed(&st, PROTO_SETUP, KV(good_setup), &act, &f, &err),
			 0);
	assert_true(feed(&st, PROTO_SETUP, KV(good_setup), &act, &f, &err) < 0);
	assert_true(feed(&st, PROTO_START, NULL, 0, &act, &f, &err) < 0);
	assert_non_null(strstr(err.msg, "without any ARG"));
	assert_true(feed(&st, PROTO_ARG, "a\0b", 3, &act, &f, &err) < 0);
	assert_true(feed(&st, PROTO_ENV, "=x", 2, &act, &f, &err) < 0);
	assert_true(feed(&st, PROTO_ENV, "novalue", 7, &act, &f, &err) < 0);
	assert_true(feed(&st, PROTO_SECRET, "A=b\0c", 5, &act, &f, &err) < 0);
	assert_true(feed(&st, PROTO_EXIT, NULL, 0, &act, &f, &err) < 0);
	assert_non_null(strstr(err.msg, "unexpected exit"));
	ctl_free(&st);
}

static void test_ctl_caps(void **state)
{
	(void)state;
	struct ctl_state st;
	enum ctl_action act;
	struct ctl_file f;
	struct ccvm_err err;
	ctl_init(&st);
	hello(&st);
	assert_int_equal(feed(&st, PROTO_SETUP, KV(good_setup), &act, &f, &err),
			 0);
	int r = 0;
	for (int i = 0; i <= CTL_SECRETS_MAX && r == 0; i++)
		r = feed(&st, PROTO_SECRET, "A=1", 3, &act, &f, &err);
	assert_int_equal(r, -E2BIG);
	assert_int_equal(st.secrets.count, CTL_SECRETS_MAX);
	/* A big ENV entry fits once, then the byte cap refuses. */
	size_t big = CTL_ENV_BYTES / 2;
	char *e = malloc(big);
	assert_non_null(e);
	memset(e, 'v', big);
	e[0] = 'X';
	e[1] = '=';
	assert_int_equal(feed(&st, PROTO_ENV, e, big, &act, &f, &err), 0);
	assert_int_equal(feed(&st, PROTO_ENV, e, big, &act, &f, &err), -E2BIG);
	free(e);
	ctl_free(&st);
}

static void test_file_parse(void **state)
{
	(void)state;
	struct ctl_file f;
	struct ccvm_err err;
	static const char ok[] = "\x80\x01\0\0a/b\0data";
	assert_int_equal(ctl_parse_file(KV(ok), &f, &err), 0);
	assert_int_equal(f.mode, 0600);
	assert_string_equal(f.path, "a/b");
	assert_int_equal(f.len, 4);
	static const char abs[] = "\x80\x01\0\0/etc/x\0d";
	assert_true(ctl_parse_file(KV(abs), &f, &err) < 0);
	static const char dd[] = "\x80\x01\0\0a/../../x\0d";
	assert_true(ctl_parse_file(KV(dd), &f, &err) < 0);
	static const char empty[] = "\x80\x01\0\0\0d";
	assert_true(ctl_parse_file(KV(empty), &f, &err) < 0);
	static const char nonul[] = "\x80\x01\0\0abc";
	assert_true(ctl_parse_file(KV(nonul), &f, &err) < 0);
	static const char mode[] = "\0\0\1\0a\0d";
	assert_true(ctl_parse_file(KV(mode), &f, &err) < 0);
	static const char ctl[] = "\x80\x01\0\0a\nb\0d";
	assert_true(ctl_parse_file(KV(ctl), &f, &err) < 0);
	assert_true(ctl_parse_file((const uint8_t *)"\0\0", 2, &f, &err) < 0);
}

static void test_reader_scrub(void **state)
{
	(void)state;
	static struct proto_reader r;
	proto_reader_init(&r);
	memcpy(r.buf, "SECRETSTDIN", 11);
	r.len = 11;
	r.off = 6;
	ctl_reader_scrub(&r);
	assert_int_equal(r.off, 0);
	assert_int_equal(r.len, 5);
	assert_memory_equal(r.buf, "STDIN", 5);
	for (size_t i = 5; i < 11; i++)
		assert_int_equal(r.buf[i], 0);
}

static void test_env(void **state)
{
	(void)state;
	struct guest_setup s;
	struct ccvm_err err;
	assert_int_equal(setup_decode(KV(good_setup), &s, &err), 0);
	static const char env[] = "TERM=dumb\0FOO=1\0PATH=/x\0FOO=2\0";
	static const char sec[] = "KEY=s3cret\0FOO=sec\0";
	struct env_block b;
	assert_int_equal(
	    env_build(&s, env, sizeof(env) - 1, sec, sizeof(sec) - 1, &b), 0);
	assert_string_equal(env_get(b.envp, "PATH"), "/x");
	assert_string_equal(env_get(b.envp, "HOME"), "/home/a");
	assert_string_equal(env_get(b.envp, "USER"), "alice");
	assert_string_equal(env_get(b.envp, "LOGNAME"), "alice");
	assert_string_equal(env_get(b.envp, "SHELL"), "/bin/bash");
	assert_string_equal(env_get(b.envp, "PWD"), "/home/a/proj");
	assert_string_equal(env_get(b.envp, "TERM"), "dumb");
	assert_string_equal(env_get(b.envp, "FOO"), "sec");
	assert_string_equal(env_get(b.envp, "KEY"), "s3cret");
	assert_null(env_get(b.envp, "FO"));
	/* 7 base + FOO + KEY, each name once. */
	assert_int_equal(b.count, 9);
	assert_null(b.envp[9]);
	env_free(&b);

	assert_int_equal(env_build(&s, "", 0, "", 0, &b), 0);
	assert_string_equal(env_get(b.envp, "PATH"), ENV_DEFAULT_PATH);
	assert_string_equal(env_get(b.envp, "TERM"), "xterm");
	assert_int_equal(b.count, 7);
	env_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_ctl_session),
	    cmocka_unit_test(test_ctl_order),
	    cmocka_unit_test(test_ctl_caps),
	    cmocka_unit_test(test_file_parse),
	    cmocka_unit_test(test_reader_scrub),
	    cmocka_unit_test(test_env),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
