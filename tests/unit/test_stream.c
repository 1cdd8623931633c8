/* The relayed stream both ends of ccvm.net share (src/common/stream.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
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

/* A stream on sv[0] (send buffer sndbuf when not 0), the peer's end in
 * sv[1], and a writer for the frames it makes. */
static void open_pair(int sv[2], struct stream *s, struct proto_writer *w,
		      int sndbuf)
{
	assert_int_equal(
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
	if (sndbuf)
		assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF,
					    &sndbuf, sizeof(sndbuf)),
				 0);
	assert_int_equal(stream_init(s, sv[0]), 0);
	assert_int_equal(proto_writer_init(w), 0);
}

static void test_relay_both_ways(void **state)
{
	(void)state;
	int sv[2];
	struct stream s;
	struct proto_writer w;
	open_pair(sv, &s, &w, 0);

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
	struct stream s;
	struct proto_writer w;
	open_pair(sv, &s, &w, 4096);

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
	struct stream s;
	struct proto_writer w;
	open_pair(sv, &s, &w, 0);
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

/* --- the table of streams ----------------------------------------------- */

/* Walks t and checks it holds exactly want[0..n) (chans), each once, each
 * with the entry get returns. */
static void check_live(const struct stream_table *t, const uint16_t *want,
		       size_t n)
{
	static unsigned char seen[STREAM_TABLE_CHANS];
	memset(seen, 0, sizeof(seen));
	struct stream_iter it = {0};
	void *e;
	size_t count = 0;
	while ((e = stream_table_next(t, &it))) {
		assert_ptr_equal(e, stream_table_get(t, it.chan));
		assert_int_equal(seen[it.chan], 0);
		seen[it.chan] = 1;
		count++;
	}
	assert_int_equal(count, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(seen[want[i]], 1);
}

static void test_table_alloc_free_reuse(void **state)
{
	(void)state;
	struct stream_table t;
	assert_int_equal(stream_table_init(&t, 0), -EINVAL);
	assert_int_equal(stream_table_init(&t, STREAM_TABLE_CHANS + 1),
			 -EINVAL);
	assert_int_equal(stream_table_init(&t, 8), 0);
	int v[16];
	uint16_t chan;

	/* Alloc until full: chans in turn, then no more. */
	for (int i = 0; i < 8; i++) {
		assert_false(stream_table_full(&t));
		assert_int_equal(stream_table_alloc(&t, &v[i], &chan), 0);
		assert_int_equal(chan, i);
		assert_ptr_equal(stream_table_get(&t, chan), &v[i]);
	}
	assert_true(stream_table_full(&t));
	chan = 999;
	assert_int_equal(stream_table_alloc(&t, &v[8], &chan), -ENOSPC);
	assert_int_equal(chan, 999); /* untouched on failure */
	assert_int_equal(stream_table_add(&t, 100, &v[8]), -ENOSPC);
	assert_null(stream_table_get(&t, 100));
	check_live(&t, (const uint16_t[]){0, 1, 2, 3, 4, 5, 6, 7}, 8);

	/* Free in the middle: gone from lookups and from the walk. */
	assert_ptr_equal(stream_table_remove(&t, 3), &v[3]);
	assert_null(stream_table_get(&t, 3));
	assert_null(stream_table_remove(&t, 3));
	assert_null(stream_table_remove(&t, 500)); /* never used */
	assert_false(stream_table_full(&t));
	check_live(&t, (const uint16_t[]){0, 1, 2, 4, 5, 6, 7}, 7);

	/* Taken chans and NULL entries are refused. */
	assert_int_equal(stream_table_add(&t, 5, &v[9]), -EEXIST);
	assert_ptr_equal(stream_table_get(&t, 5), &v[5]);
	assert_int_equal(stream_table_add(&t, 3, NULL), -EINVAL);

	/* Round robin: the freed chan comes back only after all others,
	 * and live ones are skipped on the way round. */
	assert_int_equal(stream_table_alloc(&t, &v[10], &chan), 0);
	assert_int_equal(chan, 8);
	assert_ptr_equal(stream_table_remove(&t, 8), &v[10]);
	unsigned turns = 0;
	do {
		assert_int_equal(stream_table_alloc(&t, &v[11], &chan), 0);
		assert_true(chan == 3 || chan > 8);
		turns++;
		if (chan != 3)
			assert_ptr_equal(stream_table_remove(&t, chan), &v[11]);
	} while (chan != 3);
	assert_int_equal(turns, STREAM_TABLE_CHANS - 9 + 1);
	assert_ptr_equal(stream_table_get(&t, 3), &v[11]);
	check_live(&t, (const uint16_t[]){0, 1, 2, 3, 4, 5, 6, 7}, 8);

	/* A chan given by the peer (the host's way) after a free. */
	assert_ptr_equal(stream_table_remove(&t, 0), &v[0]);
	assert_int_equal(stream_table_add(&t, 65535, &v[12]), 0);
	assert_ptr_equal(stream_table_get(&t, 65535), &v[12]);
	check_live(&t, (const uint16_t[]){65535, 1, 2, 3, 4, 5, 6, 7}, 8);
	stream_table_fini(&t);
	assert_null(t.entry);
	stream_table_fini(&t); /* twice: harmless */
}

/* Many chans, scattered: removing the current entry during a walk neither
 * skips nor repeats one. */
static void test_table_remove_while_walking(void **state)
{
	(void)state;
	enum { MAX = 1024 };
	struct stream_table t;
	assert_int_equal(stream_table_init(&t, MAX), 0);
	static int v[MAX];
	static uint16_t chans[MAX], keep[MAX];
	for (size_t i = 0; i < MAX; i++) {
		chans[i] = (uint16_t)(i * 4099 + 7);
		assert_int_equal(stream_table_add(&t, chans[i], &v[i]), 0);
	}
	assert_true(stream_table_full(&t));
	check_live(&t, chans, MAX);

	/* Remove every entry whose value index is odd, and every third
	 * one, while walking. */
	static unsigned char visited[STREAM_TABLE_CHANS];
	struct stream_iter it = {0};
	int *e;
	size_t walked = 0, nkeep = 0;
	while ((e = stream_table_next(&t, &it))) {
		assert_int_equal(visited[it.chan], 0);
		visited[it.chan] = 1;
		walked++;
		size_t i = (size_t)(e - v);
		assert_int_equal(chans[i], it.chan);
		if (i % 2 == 1 || i % 3 == 0)
			assert_ptr_equal(stream_table_remove(&t, it.chan), e);
	}
	assert_int_equal(walked, MAX);
	for (size_t i = 0; i < MAX; i++)
		if (!(i % 2 == 1 || i % 3 == 0))
			keep[nkeep++] = chans[i];
	check_live(&t, keep, nkeep);
	for (size_t i = 0; i < MAX; i++)
		assert_true((stream_table_get(&t, chans[i]) != NULL) ==
			    !(i % 2 == 1 || i % 3 == 0));

	/* Remove all while walking (how a relay shuts down). */
	it = (struct stream_iter){0};
	walked = 0;
	while ((e = stream_table_next(&t, &it))) {
		stream_table_remove(&t, it.chan);
		walked++;
	}
	assert_int_equal(walked, nkeep);
	check_live(&t, NULL, 0);
	assert_null(stream_table_next(&t, &it));
	stream_table_fini(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_relay_both_ways),
	    cmocka_unit_test(test_window_overrun_and_after_fin),
	    cmocka_unit_test(test_deliver_writes_through),
	    cmocka_unit_test(test_read_reply_and_eof_at_once),
	    cmocka_unit_test(test_table_alloc_free_reuse),
	    cmocka_unit_test(test_table_remove_while_walking),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
