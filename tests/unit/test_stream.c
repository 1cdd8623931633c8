/* The relayed stream both ends of ccvm.net share (src/common/stream.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stream.h"

/* Frames queued in w, decoded one by one. */
static size_t next_frame(struct proto_writer *w, size_t *off,
			 struct proto_msg *m)
{
	ssize_t n = proto_decode(w->buf + *off, w->len - *off, m);
	if (n <= 0)
		return 0;
	*off += (size_t)n;
	return (size_t)n;
}

static void test_relay_both_ways(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	struct stream s;
	assert_int_equal(stream_init(&s, sv[0]), 0);
	struct proto_writer w;
	assert_int_equal(proto_writer_init(&w), 0);

	/* Peer -> socket, credited back once written, in steps only. */
	assert_true(stream_take(&s, (const uint8_t *)"hello", 5));
	assert_int_equal(stream_write(&s, &w, 7), STREAM_OPEN);
	char got[16] = {0};
	assert_int_equal(read(sv[1], got, sizeof(got)), 5);
	assert_string_equal(got, "hello");
	size_t off = 0;
	struct proto_msg m;
	assert_int_equal(next_frame(&w, &off, &m), 0); /* 5 < a step */
	assert_int_equal(s.consumed, 5);
	static uint8_t step[STREAM_WINDOW_ACK];
	assert_true(stream_take(&s, step, sizeof(step)));
	size_t drained = 0;
	while (s.off < s.len || drained < sizeof(step)) {
		assert_int_equal(stream_write(&s, &w, 7), STREAM_OPEN);
		static uint8_t sink[sizeof(step)];
		ssize_t k = read(sv[1], sink, sizeof(sink));
		if (k > 0)
			drained += (size_t)k;
	}
	assert_true(next_frame(&w, &off, &m) > 0);
	assert_int_equal(m.type, PROTO_NET_WINDOW);
	assert_int_equal(m.chan, 7);
	uint32_t cr = proto_get_u32(m.data);
	assert_true(cr >= STREAM_WINDOW_ACK);
	assert_int_equal(cr + s.consumed, 5 + sizeof(step));
	assert_int_equal(next_frame(&w, &off, &m), 0);

	/* Socket -> peer as NET_DATA within the credit. */
	assert_int_equal(write(sv[1], "abc", 3), 3);
	assert_int_equal(stream_read(&s, &w, 7), STREAM_OPEN);
	assert_true(next_frame(&w, &off, &m) > 0);
	assert_int_equal(m.type, PROTO_NET_DATA);
	assert_memory_equal(m.data, "abc", 3);
	assert_int_equal(s.credit, PROTO_NET_WINDOW_INIT - 3);

	/* No credit: nothing read, nothing polled for. */
	uint32_t saved = s.credit;
	s.credit = 0;
	assert_int_equal(stream_events(&s, false) & POLLIN, 0);
	assert_int_equal(stream_read(&s, &w, 7), STREAM_OPEN);
	s.credit = saved;
	uint8_t c4[4];
	proto_put_u32(c4, 100);
	stream_credit(&s, c4, 4);
	assert_int_equal(s.credit, saved + 100);

	/* Both FINs and an empty buffer: done. */
	s.peer_fin = true;
	assert_int_equal(stream_write(&s, &w, 7), STREAM_OPEN); /* half-close */
	assert_true(s.shut_wr);
	close(sv[1]);
	assert_int_equal(stream_read(&s, &w, 7), STREAM_DONE);
	assert_true(next_frame(&w, &off, &m) > 0);
	assert_int_equal(m.type, PROTO_NET_CLOSE);
	assert_int_equal(m.data[0], PROTO_NET_FIN);
	stream_close(&s, false);
	proto_writer_free(&w);
}

static void test_window_overrun_and_after_fin(void **state)
{
	(void)state;
	struct stream s;
	assert_int_equal(stream_init(&s, -1), 0);
	static uint8_t big[PROTO_NET_WINDOW_INIT + 1];
	assert_false(stream_take(&s, big, sizeof(big)));
	assert_true(stream_take(&s, big, PROTO_NET_WINDOW_INIT));
	assert_false(stream_take(&s, big, 1)); /* window full */
	s.off = s.len = 0;
	s.peer_fin = true;
	assert_false(stream_take(&s, big, 1)); /* data after FIN */
	stream_credit(&s, big, 3);	       /* malformed: ignored */
	assert_int_equal(s.credit, PROTO_NET_WINDOW_INIT);
	stream_close(&s, false);
}

/* NET_DATA straight to the socket; what it does not take waits in buf and
 * is credited back only once written. */
static void test_deliver_writes_through(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	int small = 4096;
	assert_int_equal(
	    setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
	struct stream s;
	assert_int_equal(stream_init(&s, sv[0]), 0);
	struct proto_writer w;
	assert_int_equal(proto_writer_init(&w), 0);

	assert_int_equal(stream_deliver(&s, &w, 3, (const uint8_t *)"hi", 2),
			 STREAM_OPEN);
	assert_int_equal(s.len, 0); /* nothing buffered */
	assert_int_equal(s.consumed, 2);
	char got[4] = {0};
	assert_int_equal(read(sv[1], got, sizeof(got)), 2);
	assert_string_equal(got, "hi");
	size_t off = 0;
	struct proto_msg m;

	/* More than the socket takes: the rest is kept, in order. */
	static uint8_t big[PROTO_NET_DATA_MAX];
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 7);
	assert_int_equal(stream_deliver(&s, &w, 3, big, sizeof(big)),
			 STREAM_OPEN);
	assert_true(s.len - s.off > 0);
	assert_true(s.len - s.off < sizeof(big));
	/* A second frame while some wait goes behind them. */
	assert_int_equal(stream_deliver(&s, &w, 3, (const uint8_t *)"Z", 1),
			 STREAM_OPEN);
	static uint8_t back[PROTO_NET_DATA_MAX + 1];
	size_t n = 0;
	while (n < sizeof(back)) {
		ssize_t k = read(sv[1], back + n, sizeof(back) - n);
		if (k > 0) {
			n += (size_t)k;
			continue;
		}
		assert_int_equal(stream_write(&s, &w, 3), STREAM_OPEN);
	}
	assert_memory_equal(back, big, sizeof(big));
	assert_int_equal(back[sizeof(big)], 'Z');
	/* Credited: what was written, in steps; the rest is owed. */
	assert_int_equal(stream_write(&s, &w, 3), STREAM_OPEN);
	uint64_t credited = 0;
	while (next_frame(&w, &off, &m) > 0) {
		assert_int_equal(m.type, PROTO_NET_WINDOW);
		assert_true(proto_get_u32(m.data) >= STREAM_WINDOW_ACK);
		credited += proto_get_u32(m.data);
	}
	assert_int_equal(credited + s.consumed, 2 + sizeof(big) + 1);
	assert_true(s.consumed < STREAM_WINDOW_ACK);

	/* Over the window, or after the peer's FIN: broken (aborted). */
	static uint8_t huge[PROTO_NET_WINDOW_INIT + 1];
	assert_int_equal(stream_deliver(&s, &w, 3, huge, sizeof(huge)),
			 STREAM_BROKEN);
	s.peer_fin = true;
	assert_int_equal(stream_deliver(&s, &w, 3, (const uint8_t *)"x", 1),
			 STREAM_BROKEN);
	stream_close(&s, false);
	close(sv[1]);
	proto_writer_free(&w);
}

/* A reply and its end of file leave in one stream_read: DATA then FIN. */
static void test_read_reply_and_eof_at_once(void **state)
{
	(void)state;
	int sv[2];
	assert_int_equal(
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	struct stream s;
	assert_int_equal(stream_init(&s, sv[0]), 0);
	struct proto_writer w;
	assert_int_equal(proto_writer_init(&w), 0);
	assert_int_equal(write(sv[1], "reply", 5), 5);
	shutdown(sv[1], SHUT_WR);
	assert_int_equal(stream_read(&s, &w, 9), STREAM_OPEN);
	size_t off = 0;
	struct proto_msg m;
	assert_true(next_frame(&w, &off, &m) > 0);
	assert_int_equal(m.type, PROTO_NET_DATA);
	assert_memory_equal(m.data, "reply", 5);
	assert_true(next_frame(&w, &off, &m) > 0);
	assert_int_equal(m.type, PROTO_NET_CLOSE);
	assert_int_equal(m.data[0], PROTO_NET_FIN);
	assert_true(s.sent_fin);

	/* Never beyond the credit, even with more to read. */
	struct stream t;
	int sw[2];
	assert_int_equal(
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sw), 0);
	assert_int_equal(stream_init(&t, sw[0]), 0);
	t.credit = 3;
	assert_int_equal(write(sw[1], "abcdef", 6), 6);
	assert_int_equal(stream_read(&t, &w, 9), STREAM_OPEN);
	assert_true(next_frame(&w, &off, &m) > 0);
	assert_int_equal(m.type, PROTO_NET_DATA);
	assert_int_equal(m.len, 3);
	assert_int_equal(next_frame(&w, &off, &m), 0);
	assert_int_equal(t.credit, 0);
	stream_close(&t, false);
	close(sw[1]);
	stream_close(&s, false);
	close(sv[1]);
	proto_writer_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_relay_both_ways),
	    cmocka_unit_test(test_window_overrun_and_after_fin),
	    cmocka_unit_test(test_deliver_writes_through),
	    cmocka_unit_test(test_read_reply_and_eof_at_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
