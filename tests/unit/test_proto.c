/* Unit tests for the wire protocol codec (src/common/proto.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <sys/socket.h>
#include <sys/stat.h>

#include "proto.h"

static void test_roundtrip(void **state)
{
	(void)state;
	struct proto_writer w;
	assert_int_equal(proto_writer_init(&w), 0);
	assert_int_equal(proto_writer_put(&w, PROTO_ARG, 7, "a b", 3), 0);
	assert_int_equal(proto_writer_put(&w, PROTO_START, 0, NULL, 0), 0);
	assert_int_equal(proto_writer_queued(&w), 2 * PROTO_HDR_LEN + 3);
	struct proto_msg m;
	ssize_t n = proto_decode(w.buf, w.len, &m);
	assert_int_equal(n, PROTO_HDR_LEN + 3);
	assert_int_equal(m.type, PROTO_ARG);
	assert_int_equal(m.chan, 7);
	assert_int_equal(m.len, 3);
	assert_memory_equal(m.data, "a b", 3);
	n = proto_decode(w.buf + n, w.len - (size_t)n, &m);
	assert_int_equal(n, PROTO_HDR_LEN);
	assert_int_equal(m.type, PROTO_START);
	assert_int_equal(m.len, 0);
	proto_writer_free(&w);
}

static void test_partial(void **state)
{
	(void)state;
	uint8_t buf[PROTO_HDR_LEN + 4];
	proto_encode_hdr(buf, PROTO_STDOUT, 0, 4);
	memcpy(buf + PROTO_HDR_LEN, "abcd", 4);
	struct proto_msg m;
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(proto_decode(buf, i, &m), 0);
	assert_int_equal(proto_decode(buf, sizeof(buf), &m), sizeof(buf));
}

static void test_rejects(void **state)
{
	(void)state;
	uint8_t buf[PROTO_HDR_LEN] = {0};
	struct proto_msg m;
	proto_encode_hdr(buf, 0, 0, 0);
	assert_int_equal(proto_decode(buf, sizeof(buf), &m), -EPROTO);
	proto_encode_hdr(buf, PROTO_TYPE_MAX, 0, 0);
	assert_int_equal(proto_decode(buf, sizeof(buf), &m), -EPROTO);
	proto_encode_hdr(buf, PROTO_STDIN, 0, 0);
	buf[1] = 1; /* flags */
	assert_int_equal(proto_decode(buf, sizeof(buf), &m), -EPROTO);
	proto_encode_hdr(buf, PROTO_STDIN, 0, PROTO_MAX_PAYLOAD + 1);
	assert_int_equal(proto_decode(buf, sizeof(buf), &m), -EMSGSIZE);
	/* The length is rejected from the header alone, before any payload. */
	proto_encode_hdr(buf, PROTO_STDIN, 0, 0xffffffffu);
	assert_int_equal(proto_decode(buf, sizeof(buf), &m), -EMSGSIZE);
}

static void test_kv(void **state)
{
	(void)state;
	static const uint8_t p[] = "cwd=/a b\0uid=1000\0empty=\0";
	char k[16], v[16];
	size_t pos = 0;
	assert_int_equal(
	    proto_kv_next(p, sizeof(p) - 1, &pos, k, sizeof(k), v, sizeof(v)),
	    1);
	assert_string_equal(k, "cwd");
	assert_string_equal(v, "/a b");
	assert_int_equal(
	    proto_kv_next(p, sizeof(p) - 1, &pos, k, sizeof(k), v, sizeof(v)),
	    1);
	assert_string_equal(v, "1000");
	assert_int_equal(
	    proto_kv_next(p, sizeof(p) - 1, &pos, k, sizeof(k), v, sizeof(v)),
	    1);
	assert_string_equal(k, "empty");
	assert_string_equal(v, "");
	assert_int_equal(
	    proto_kv_next(p, sizeof(p) - 1, &pos, k, sizeof(k), v, sizeof(v)),
	    0);

	static const uint8_t bad1[] = "noequals\0";
	pos = 0;
	assert_int_equal(proto_kv_next(bad1, sizeof(bad1) - 1, &pos, k,
				       sizeof(k), v, sizeof(v)),
			 -EPROTO);
	static const uint8_t bad2[] = "k=unterminated";
	pos = 0;
	assert_int_equal(proto_kv_next(bad2, sizeof(bad2) - 1, &pos, k,
				       sizeof(k), v, sizeof(v)),
			 -EPROTO);
	static const uint8_t big[] = "k=0123456789abcdefXYZ\0";
	pos = 0;
	assert_int_equal(proto_kv_next(big, sizeof(big) - 1, &pos, k, sizeof(k),
				       v, sizeof(v)),
			 -E2BIG);
}

static void test_reader_pipe(void **state)
{
	(void)state;
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	assert_int_equal(proto_send(fds[1], PROTO_RESIZE, 0, "\x18\0\x50\0", 4),
			 0);
	assert_int_equal(proto_send(fds[1], PROTO_STDIN, 0, "", 0), 0);
	close(fds[1]);
	static struct proto_reader r;
	proto_reader_init(&r);
	struct proto_msg m;
	assert_true(proto_reader_fill(&r, fds[0]) > 0);
	assert_int_equal(proto_reader_next(&r, &m), 1);
	assert_int_equal(m.type, PROTO_RESIZE);
	assert_int_equal(proto_get_u16(m.data), 24);
	assert_int_equal(proto_get_u16(m.data + 2), 80);
	assert_int_equal(proto_reader_next(&r, &m), 1);
	assert_int_equal(m.type, PROTO_STDIN);
	assert_int_equal(m.len, 0);
	assert_int_equal(proto_reader_next(&r, &m), 0);
	assert_int_equal(proto_reader_fill(&r, fds[0]), 0);
	close(fds[0]);
}

static void test_writer_grows_and_flags_full(void **state)
{
	(void)state;
	struct proto_writer w;
	assert_int_equal(proto_writer_init(&w), 0);
	static uint8_t chunk[PROTO_MAX_PAYLOAD];
	assert_false(proto_writer_full(&w));
	for (int i = 0; i < 5; i++)
		assert_int_equal(
		    proto_writer_put(&w, PROTO_STDOUT, 0, chunk, sizeof(chunk)),
		    0);
	assert_true(proto_writer_full(&w));
	assert_true(proto_writer_pending(&w));
	assert_int_equal(
	    proto_writer_put(&w, PROTO_STDOUT, 0, chunk, sizeof(chunk) + 1),
	    -EMSGSIZE);
	proto_writer_free(&w);
}

static void test_net_open(void **state)
{
	(void)state;
	struct proto_net_open o = {.family = AF_INET6, .port = 443}, d;
	o.addr[0] = 0x20;
	o.addr[15] = 1;
	uint8_t buf[PROTO_NET_OPEN_MAX];
	size_t n = proto_net_open_encode(&o, buf);
	assert_int_equal(n, 20);
	assert_int_equal(proto_net_open_decode(buf, n, &d), 0);
	assert_int_equal(d.family, AF_INET6);
	assert_int_equal(d.port, 443);
	assert_memory_equal(d.addr, o.addr, 16);
	o.family = AF_INET;
	n = proto_net_open_encode(&o, buf);
	assert_int_equal(n, 8);
	assert_int_equal(proto_net_open_decode(buf, n, &d), 0);
	assert_int_equal(d.family, AF_INET);
	/* wrong length, family, padding */
	assert_int_equal(proto_net_open_decode(buf, 7, &d), -EPROTO);
	assert_int_equal(proto_net_open_decode(buf, 9, &d), -EPROTO);
	buf[2] = 5;
	assert_int_equal(proto_net_open_decode(buf, 8, &d), -EPROTO);
	buf[2] = 4;
	buf[3] = 1;
	assert_int_equal(proto_net_open_decode(buf, 8, &d), -EPROTO);
	assert_string_equal(proto_type_name(PROTO_DNS_ANSWER), "dns-answer");
}

static void test_clip_req(void **state)
{
	(void)state;
	struct proto_clip_req q = {.op = PROTO_CLIP_GET}, d;
	uint8_t buf[PROTO_CLIP_REQ_MAX];
	strcpy(q.mime, "image/png");
	size_t n = proto_clip_req_encode(&q, buf);
	assert_int_equal(n, 2 + 9);
	assert_int_equal(proto_clip_req_decode(buf, n, &d), 0);
	assert_int_equal(d.op, PROTO_CLIP_GET);
	assert_string_equal(d.mime, "image/png");
	q.op = PROTO_CLIP_TARGETS;
	n = proto_clip_req_encode(&q, buf);
	assert_int_equal(n, 2);
	assert_int_equal(proto_clip_req_decode(buf, n, &d), 0);
	assert_int_equal(d.op, PROTO_CLIP_TARGETS);
	assert_string_equal(d.mime, "");

	/* Types that do not encode: no slash, two, upper case, control
	 * bytes, empty, too long. */
	static const char *const bad[] = {
	    "UTF8_STRING",
	    "TARGETS",
	    "image/png/x",
	    "Image/png",
	    "image/png\n",
	    "/png",
	    "image/",
	    "",
	    "text/plain;charset=utf-8",
	};
	q.op = PROTO_CLIP_GET;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		strcpy(q.mime, bad[i]);
		assert_int_equal(proto_clip_req_encode(&q, buf), 0);
	}
	memset(q.mime, 'a', PROTO_CLIP_MIME_MAX);
	q.mime[5] = '/';
	q.mime[PROTO_CLIP_MIME_MAX] = '\0';
	assert_int_equal(proto_clip_req_encode(&q, buf),
			 2 + PROTO_CLIP_MIME_MAX);

	/* Decoding: unknown op, reserved byte, TARGETS with a type, GET
	 * without one, a NUL or a second slash in the type, too long. */
	static const struct {
		const char *p;
		size_t len;
	} rej[] = {
	    {"\x02\0", 2},
	    {"\x00\x01", 2},
	    {"\x00\0image/png", 11},
	    {"\x01\0", 2},
	    {"\x01\0image\0png", 11},
	    {"\x01\0ima/ge/png", 13},
	    {"\x01", 1},
	    {"", 0},
	};
	for (size_t i = 0; i < sizeof(rej) / sizeof(rej[0]); i++)
		assert_int_equal(proto_clip_req_decode(
				     (const uint8_t *)rej[i].p, rej[i].len, &d),
				 -EPROTO);
	uint8_t longer[2 + PROTO_CLIP_MIME_MAX + 1];
	memset(longer, 'a', sizeof(longer));
	longer[0] = PROTO_CLIP_GET;
	longer[1] = 0;
	longer[4] = '/';
	assert_int_equal(proto_clip_req_decode(longer, sizeof(longer), &d),
			 -EPROTO);
	assert_int_equal(proto_clip_req_decode(longer, sizeof(longer) - 1, &d),
			 0);

	uint8_t st = 9;
	assert_int_equal(proto_clip_end_decode((const uint8_t *)"\x00", 1, &st),
			 0);
	assert_int_equal(st, PROTO_CLIP_OK);
	assert_int_equal(proto_clip_end_decode((const uint8_t *)"\x02", 1, &st),
			 0);
	assert_int_equal(st, PROTO_CLIP_FAILED);
	assert_int_equal(proto_clip_end_decode((const uint8_t *)"\x03", 1, &st),
			 -EPROTO);
	assert_int_equal(
	    proto_clip_end_decode((const uint8_t *)"\x00\x00", 2, &st),
	    -EPROTO);
	assert_int_equal(proto_clip_end_decode((const uint8_t *)"", 0, &st),
			 -EPROTO);
	assert_string_equal(proto_type_name(PROTO_CLIP_END), "clip-end");
	/* The new types decode as frames. */
	uint8_t fr[PROTO_HDR_LEN + 1];
	proto_encode_hdr(fr, PROTO_CLIP_END, 3, 1);
	fr[PROTO_HDR_LEN] = 1;
	struct proto_msg m;
	assert_int_equal(proto_decode(fr, sizeof(fr), &m), sizeof(fr));
	assert_int_equal(m.chan, 3);
}

/* A SHARE_INVAL attribute record: what stat gave, through the wire and
 * back; "same" only for an identical existing file. */
static void test_share_attr(void **state)
{
	(void)state;
	struct stat st;
	assert_int_equal(stat("/", &st), 0);
	struct proto_share_attr a, b;
	proto_share_attr_of_stat(&a, &st);
	assert_true(a.exists);
	assert_int_equal(a.ino, st.st_ino);
	assert_int_equal(a.mode, st.st_mode);
	assert_int_equal(a.mtime_ns, st.st_mtim.tv_nsec);
	uint8_t rec[PROTO_SHARE_ATTR_LEN];
	proto_share_attr_put(rec, &a);
	proto_share_attr_get(rec, &b);
	assert_true(proto_share_attr_same(&a, &b));
	b.ctime_ns ^= 1;
	assert_false(proto_share_attr_same(&a, &b));
	struct proto_share_attr gone = {0};
	proto_share_attr_put(rec, &gone);
	proto_share_attr_get(rec, &b);
	assert_false(b.exists);
	assert_false(proto_share_attr_same(&gone, &b));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_partial),
	    cmocka_unit_test(test_rejects),
	    cmocka_unit_test(test_kv),
	    cmocka_unit_test(test_reader_pipe),
	    cmocka_unit_test(test_writer_grows_and_flags_full),
	    cmocka_unit_test(test_net_open),
	    cmocka_unit_test(test_clip_req),
	    cmocka_unit_test(test_share_attr),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
