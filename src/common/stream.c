#define _GNU_SOURCE
#include "stream.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Reads of the socket per stream_read (fairness between streams). */
#define STREAM_READS 4

int stream_init(struct stream *s, int fd)
{
	memset(s, 0, sizeof(*s));
	s->fd = fd;
	s->credit = PROTO_NET_WINDOW_INIT;
	s->buf = malloc(PROTO_NET_WINDOW_INIT);
	return s->buf ? 0 : -ENOMEM;
}

void stream_close(struct stream *s, bool reset)
{
	if (s->fd >= 0) {
		if (reset) {
			struct linger l = {.l_onoff = 1, .l_linger = 0};
			setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
		}
		close(s->fd);
		s->fd = -1;
	}
	free(s->buf);
	s->buf = NULL;
}

bool stream_take(struct stream *s, const uint8_t *data, size_t len)
{
	if (s->peer_fin || len > PROTO_NET_WINDOW_INIT - (s->len - s->off))
		return false;
	if (s->len + len > PROTO_NET_WINDOW_INIT) {
		memmove(s->buf, s->buf + s->off, s->len - s->off);
		s->len -= s->off;
		s->off = 0;
	}
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	return true;
}

void stream_credit(struct stream *s, const uint8_t *data, size_t len)
{
	if (len != 4)
		return;
	uint64_t v = (uint64_t)s->credit + proto_get_u32(data);
	s->credit = v > (1u << 30) ? (1u << 30) : (uint32_t)v;
}

static enum stream_state put(struct proto_writer *w, uint8_t type, uint16_t id,
			     const void *p, size_t n)
{
	return proto_writer_put(w, type, id, p, n) < 0 ? STREAM_NO_QUEUE
						       : STREAM_OPEN;
}

/* Writes p to the socket until it is all written or the socket would
 * block; what it took counts as consumed.  -1: the socket failed. */
static ssize_t write_some(struct stream *s, const uint8_t *p, size_t len)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = write(s->fd, p + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0)
			return -1;
		done += (size_t)n;
		s->consumed += (size_t)n;
		s->to_sock += (uint64_t)n;
	}
	return (ssize_t)done;
}

bool stream_done(const struct stream *s)
{
	return s->peer_fin && s->sent_fin && s->off == s->len;
}

enum stream_state stream_write(struct stream *s, struct proto_writer *w,
			       uint16_t id)
{
	ssize_t n = write_some(s, s->buf + s->off, s->len - s->off);
	if (n < 0)
		return STREAM_BROKEN;
	s->off += (size_t)n;
	if (s->off == s->len)
		s->off = s->len = 0;
	/* Only in steps: the peer has credit left until WINDOW_INIT are
	 * unacknowledged, so a step below that never stalls it, and a small
	 * credit for every request written would be a frame of its own
	 * (under TCG a guest wakeup) per connection. */
	if (s->consumed >= STREAM_WINDOW_ACK) {
		uint8_t c[4];
		proto_put_u32(c, (uint32_t)s->consumed);
		s->consumed = 0;
		if (put(w, PROTO_NET_WINDOW, id, c, sizeof(c)) != STREAM_OPEN)
			return STREAM_NO_QUEUE;
	}
	if (s->len == 0 && s->peer_fin && !s->shut_wr) {
		shutdown(s->fd, SHUT_WR);
		s->shut_wr = true;
	}
	return stream_done(s) ? STREAM_DONE : STREAM_OPEN;
}

enum stream_state stream_deliver(struct stream *s, struct proto_writer *w,
				 uint16_t id, const uint8_t *data, size_t len)
{
	if (s->peer_fin || len > PROTO_NET_WINDOW_INIT - (s->len - s->off))
		return STREAM_BROKEN;
	/* Nothing waiting: straight from the frame to the socket, and only
	 * what the socket does not take into buf (one copy fewer). */
	if (s->off == s->len) {
		ssize_t n = write_some(s, data, len);
		if (n < 0)
			return STREAM_BROKEN;
		data += n;
		len -= (size_t)n;
	}
	if (len > 0)
		stream_take(s, data, len); /* fits: checked above */
	return stream_write(s, w, id);
}

enum stream_state stream_read(struct stream *s, struct proto_writer *w,
			      uint16_t id)
{
	static uint8_t buf[PROTO_NET_DATA_MAX];
	/* A few reads per wakeup: a reply and the end of file that follows
	 * it leave in one write to the port, not one loop turn apart. */
	for (int i = 0; i < STREAM_READS && s->credit > 0; i++) {
		size_t want = s->credit < sizeof(buf) ? s->credit : sizeof(buf);
		ssize_t n = read(s->fd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return STREAM_OPEN;
		if (n < 0)
			return STREAM_BROKEN;
		if (n == 0) {
			uint8_t f = PROTO_NET_FIN;
			s->sent_fin = true;
			if (put(w, PROTO_NET_CLOSE, id, &f, 1) != STREAM_OPEN)
				return STREAM_NO_QUEUE;
			return stream_done(s) ? STREAM_DONE : STREAM_OPEN;
		}
		s->credit -= (uint32_t)n;
		s->from_sock += (uint64_t)n;
		if (put(w, PROTO_NET_DATA, id, buf, (size_t)n) != STREAM_OPEN)
			return STREAM_NO_QUEUE;
	}
	return STREAM_OPEN;
}

short stream_events(const struct stream *s, bool writer_full)
{
	short ev = 0;
	if (!writer_full && s->credit && !s->sent_fin)
		ev |= POLLIN;
	if (s->off < s->len)
		ev |= POLLOUT;
	return ev;
}

/* --- the table of streams ---------------------------------------------- */

int stream_table_init(struct stream_table *t, size_t max)
{
	memset(t, 0, sizeof(*t));
	if (max == 0 || max > STREAM_TABLE_CHANS)
		return -EINVAL;
	t->max = max;
	t->entry = calloc(STREAM_TABLE_CHANS, sizeof(*t->entry));
	t->pos = calloc(STREAM_TABLE_CHANS, sizeof(*t->pos));
	t->live = calloc(max, sizeof(*t->live));
	if (!t->entry || !t->pos || !t->live) {
		stream_table_fini(t);
		return -ENOMEM;
	}
	return 0;
}

void stream_table_fini(struct stream_table *t)
{
	free(t->entry);
	free(t->pos);
	free(t->live);
	memset(t, 0, sizeof(*t));
}

bool stream_table_full(const struct stream_table *t)
{
	return t->n >= t->max;
}

void *stream_table_get(const struct stream_table *t, uint16_t chan)
{
	return t->entry[chan];
}

int stream_table_add(struct stream_table *t, uint16_t chan, void *entry)
{
	if (!entry)
		return -EINVAL;
	if (t->entry[chan])
		return -EEXIST;
	if (stream_table_full(t))
		return -ENOSPC;
	t->entry[chan] = entry;
	t->pos[chan] = (uint16_t)t->n;
	t->live[t->n++] = chan;
	return 0;
}

int stream_table_alloc(struct stream_table *t, void *entry, uint16_t *chan)
{
	if (stream_table_full(t))
		return -ENOSPC;
	uint16_t c = t->next;
	while (t->entry[c]) /* ends: fewer than 65536 are live */
		c++;
	int r = stream_table_add(t, c, entry);
	if (r < 0)
		return r;
	t->next = (uint16_t)(c + 1);
	*chan = c;
	return 0;
}

void *stream_table_remove(struct stream_table *t, uint16_t chan)
{
	void *e = t->entry[chan];
	if (!e)
		return NULL;
	uint16_t last = t->live[--t->n];
	t->live[t->pos[chan]] = last;
	t->pos[last] = t->pos[chan];
	t->entry[chan] = NULL;
	return e;
}

void *stream_table_next(const struct stream_table *t, struct stream_iter *it)
{
	/* Removing the current entry moves the last one into its place:
	 * that one comes next, at the same index. */
	if (it->started && it->k < t->n && t->live[it->k] == it->chan)
		it->k++;
	if (it->k >= t->n)
		return NULL;
	it->started = true;
	it->chan = t->live[it->k];
	return t->entry[it->chan];
}
