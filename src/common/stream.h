#pragma once
/*
 * One relayed TCP stream of the ccvm.net port (docs/protocol.md), the same
 * on both of its ends: the guest's forwarder (src/guest/net/egress.c) and the
 * host's egress process (src/host/net/egress.c).
 *
 * Data from the peer (NET_DATA) waits in buf until the socket takes it;
 * what the socket took is credited back with NET_WINDOW.  Data from the
 * socket goes to the peer as NET_DATA within the credit the peer gave.
 * End of file either way is a NET_CLOSE FIN and a half-close.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

/* Credit back in steps of this (less than PROTO_NET_WINDOW_INIT). */
#define STREAM_WINDOW_ACK (64 * 1024)

struct stream {
	int fd;		 /* the local socket, -1 before it exists */
	uint32_t credit; /* bytes we may still send to the peer */
	uint8_t *buf;	 /* peer -> socket, PROTO_NET_WINDOW_INIT bytes */
	size_t off, len;
	size_t consumed; /* written to the socket, not yet credited back */
	bool peer_fin;	 /* the peer sent FIN */
	bool sent_fin;	 /* we sent FIN (the socket hit end of file) */
	bool shut_wr;	 /* we half-closed the socket */
	/* Totals for the record (the host's audit log): bytes written to
	 * the socket (from the peer) and read from it (to the peer). */
	uint64_t to_sock, from_sock;
};

enum stream_state {
	STREAM_OPEN = 0,
	STREAM_DONE,	 /* both directions finished: free it */
	STREAM_BROKEN,	 /* the socket failed: abort the stream */
	STREAM_NO_QUEUE, /* a frame could not be queued */
};

/* Allocates the buffer and sets the initial credit; fd is taken. */
int stream_init(struct stream *s, int fd);
/* Closes the socket (with a reset when asked) and frees the buffer. */
void stream_close(struct stream *s, bool reset);

/* NET_DATA from the peer.  false: it overruns the window or follows the
 * peer's FIN, so the stream must be aborted. */
bool stream_take(struct stream *s, const uint8_t *data, size_t len);
/* NET_WINDOW from the peer (a u32 credit, capped at 1 GiB). */
void stream_credit(struct stream *s, const uint8_t *data, size_t len);

/* NET_DATA from the peer for a stream whose socket is connected: written
 * to the socket at once when nothing waits before it, the rest kept in
 * buf; then as stream_write.  STREAM_BROKEN also when it overruns the
 * window or follows the peer's FIN. */
enum stream_state stream_deliver(struct stream *s, struct proto_writer *w,
				 uint16_t id, const uint8_t *data, size_t len);
/* Writes what buf holds to the socket; credits it back; half-closes after
 * the peer's FIN. */
enum stream_state stream_write(struct stream *s, struct proto_writer *w,
			       uint16_t id);
/* Reads the socket (a few times, until it would block) within the credit
 * into NET_DATA frames, or sends FIN at its end of file. */
enum stream_state stream_read(struct stream *s, struct proto_writer *w,
			      uint16_t id);

/* Both directions finished and nothing left to write. */
bool stream_done(const struct stream *s);
/* poll(2) events the stream wants; none for reading while full. */
short stream_events(const struct stream *s, bool writer_full);

/*
 * The streams of one end, by channel number, each an entry of the caller's
 * (the table only holds the pointer).  The live channels are also kept in
 * a dense list, so a loop walks what is live rather than all 65536 slots;
 * adding, removing and looking up are O(1).
 */
#define STREAM_TABLE_CHANS 65536

struct stream_table {
	void **entry;	/* by chan, NULL when free */
	uint16_t *pos;	/* by chan: its index in live */
	uint16_t *live; /* the live chans, densely: live[0..n) */
	size_t n, max;
	uint16_t next; /* where stream_table_alloc looks first */
};

/* An empty table for at most max (<= STREAM_TABLE_CHANS) entries. */
int stream_table_init(struct stream_table *t, size_t max);
/* Frees the table, not the entries. */
void stream_table_fini(struct stream_table *t);
bool stream_table_full(const struct stream_table *t);
/* The entry on chan, or NULL. */
void *stream_table_get(const struct stream_table *t, uint16_t chan);
/* Puts entry (not NULL) on chan: -EEXIST when chan is taken, -ENOSPC when
 * the table is full. */
int stream_table_add(struct stream_table *t, uint16_t chan, void *entry);
/* Puts entry on the next free chan after the last one allocated (round
 * robin, so a number is not soon reused) and sets *chan; -ENOSPC. */
int stream_table_alloc(struct stream_table *t, void *entry, uint16_t *chan);
/* Takes chan's entry out of the table and returns it (NULL: none). */
void *stream_table_remove(struct stream_table *t, uint16_t chan);

/* A walk of the live entries:
 *	struct stream_iter it = {0};
 *	while ((e = stream_table_next(t, &it)))  ... it.chan ...
 * The body may remove the current entry (it.chan), no other. */
struct stream_iter {
	size_t k;      /* index in live of the current entry */
	uint16_t chan; /* the current entry's */
	bool started;
};
void *stream_table_next(const struct stream_table *t, struct stream_iter *it);
