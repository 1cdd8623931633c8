#pragma once
/*
 * The host<->guest control protocol, spoken over one virtio-serial port.
 *
 * Every frame is an 8-byte header followed by a payload:
 *
 *   u8  type      enum proto_type
 *   u8  flags     0 for now; non-zero is rejected
 *   u16 chan      stream number (0 unless a type says otherwise)
 *   u32 len       payload length, at most PROTO_MAX_PAYLOAD
 *
 * all little-endian.  The decoder is a pure function over a byte buffer so
 * it can be unit-tested and fuzzed; it never allocates, and a peer that
 * sends an unknown type, non-zero flags or an oversized length is a
 * protocol error, not a reason to allocate.
 *
 * A session: the guest sends HELLO once its port is open; the host answers
 * HELLO, then SETUP, ARG*, ENV*, SECRET*, FILE*, START.  Then both sides
 * relay STDIN/STDOUT/STDERR, RESIZE, SIGNAL, STOPPED/CONT until the guest
 * sends EXIT.  An empty STDIN/STDOUT/STDERR payload means end of file.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROTO_VERSION 2
#define PROTO_HDR_LEN 8
/* Big enough for one argv element (MAX_ARG_STRLEN is 128 KiB). */
#define PROTO_MAX_PAYLOAD (256 * 1024)

enum proto_type {
	PROTO_HELLO = 1, /* both ways: u32 version, then free text */
	PROTO_SETUP,	 /* h->g: "key=value" strings, NUL-separated */
	PROTO_ARG,	 /* h->g: one argv element (may be empty) */
	PROTO_ENV,	 /* h->g: one "NAME=value" for the agent */
	PROTO_SECRET,	 /* h->g: one "NAME=value", agent env only, wiped */
	PROTO_FILE,	 /* h->g: u32 mode, path, NUL, contents */
	PROTO_START,	 /* h->g: run the agent now */
	PROTO_STDIN,	 /* h->g: data; empty = EOF */
	PROTO_STDOUT,	 /* g->h: data; empty = EOF */
	PROTO_STDERR,	 /* g->h: data; empty = EOF */
	PROTO_RESIZE,	 /* h->g: u16 rows, u16 cols */
	PROTO_SIGNAL,	 /* h->g: u32 signal number for the agent */
	PROTO_STOPPED,	 /* g->h: the agent stopped itself (Ctrl-Z) */
	PROTO_CONT,	 /* h->g: continue the stopped agent */
	PROTO_EXIT,	 /* g->h: u32 kind (0 exited, 1 signal), u32 code,
			    then (optional) u32 OOM kills, u32 flags */
	PROTO_ERROR,	 /* g->h: fatal error text; the guest powers off */
	PROTO_LOG,	 /* g->h: progress/diagnostic text */
	/* The ccvm.net port (docs/protocol.md, docs/egress.md). */
	PROTO_NET_OPEN,	     /* g->h: chan; struct proto_net_open */
	PROTO_NET_OPEN_OK,   /* h->g: chan; why text */
	PROTO_NET_OPEN_FAIL, /* h->g: chan; u8 kind, why text */
	PROTO_NET_DATA,	     /* both: chan; 1..PROTO_NET_DATA_MAX bytes */
	PROTO_NET_WINDOW,    /* both: chan; u32 more bytes the peer may send */
	PROTO_NET_CLOSE,     /* both: chan; u8 enum proto_net_close */
	PROTO_DNS_QUERY,     /* g->h: chan = id; u8 transport, DNS message */
	PROTO_DNS_ANSWER,    /* h->g: chan = id; u8 flags, DNS message */
	/* Clipboard image paste on ccvm.ctl (docs/protocol.md). */
	PROTO_CLIP_REQ,	 /* g->h: chan = id; struct proto_clip_req */
	PROTO_CLIP_DATA, /* h->g: chan = id; 1..PROTO_CLIP_CHUNK image bytes */
	PROTO_CLIP_END,	 /* h->g: chan = id; u8 enum proto_clip_status */
	/* Host changes to the shared directory (docs/share.md). */
	PROTO_SHARE_INVAL,  /* h->g: u64 seq, u8 flags, NUL-ended paths */
	PROTO_SHARE_SYNCED, /* g->h: u64 seq, u8 status (0 ok, 1 gave up) */

	PROTO_PARK,   /* g->h: booted; waiting (the host may save the VM) */
	PROTO_UNPARK, /* h->g: u64 s, u32 ns (the time), entropy bytes */
	PROTO_TYPE_MAX
};

/*
 * SHARE_INVAL: the guest forgets what it caches of each path (relative to
 * the share, "." for its root; PROTO_SHARE_ALL: of everything), then
 * answers SHARE_SYNCED with the same seq.  The host sends one batch at a
 * time, of at most PROTO_SHARE_BATCH bytes: the 9-byte header, then
 * entries of a PROTO_SHARE_ATTR_LEN record (the path as the host saw it
 * when sending: the guest keeps what it caches when that matches) and
 * the NUL-terminated path.
 */
#define PROTO_SHARE_ALL 0x01
/* ... and let go of what it caches but does not use (virtiofsd holds a
 * file for each inode the guest keeps; the host's limit is near). */
#define PROTO_SHARE_TRIM     0x02
#define PROTO_SHARE_BATCH    (60 * 1024)
#define PROTO_SHARE_HDR	     9
#define PROTO_SHARE_ATTR_LEN 45

struct proto_share_attr {
	bool exists; /* false: gone, or not a thing the host would stat */
	uint32_t mode;
	uint64_t ino, size;
	int64_t mtime_s, ctime_s;
	uint32_t mtime_ns, ctime_ns;
};
struct stat;
/* The record for what a stat of the path gave. */
void proto_share_attr_of_stat(struct proto_share_attr *a,
			      const struct stat *st);
void proto_share_attr_put(uint8_t *p, const struct proto_share_attr *a);
void proto_share_attr_get(const uint8_t *p, struct proto_share_attr *a);
/* Equal as far as a cache could tell (a gone one equals nothing). */
bool proto_share_attr_same(const struct proto_share_attr *a,
			   const struct proto_share_attr *b);

/*
 * A guest booted with ccvm.park on its command line sends PARK once its
 * root is mounted and waits for UNPARK, which may reach a copy of it
 * restored from a saved boot (docs/protocol.md): the time it sets and at
 * least PROTO_UNPARK_ENTROPY random bytes it reseeds its random number
 * generator with, so no two sessions of one saved boot share either.
 */
#define PROTO_UNPARK_TIME    12 /* u64 s, u32 ns; the entropy follows */
#define PROTO_UNPARK_ENTROPY 64
#define PROTO_UNPARK_LEN     (PROTO_UNPARK_TIME + PROTO_UNPARK_ENTROPY)

/* In a FILE frame's mode: append to the file the previous frame began. */
#define PROTO_FILE_APPEND 0x80000000u

/*
 * ccvm.net: one TCP stream per chan, opened by the guest.  Each side may
 * send PROTO_NET_WINDOW_INIT bytes of NET_DATA on a chan before it hears a
 * NET_WINDOW; more is a protocol error for that chan (it is aborted).
 */
#define PROTO_NET_DATA_MAX    (64 * 1024)
#define PROTO_NET_WINDOW_INIT (256 * 1024)

enum proto_net_close {
	PROTO_NET_FIN = 0,   /* the sender sends no more data (half-close) */
	PROTO_NET_ABORT = 1, /* the stream is gone both ways (reset) */
};

enum proto_net_fail {
	PROTO_NET_FAIL_POLICY = 0,  /* refused by the egress policy */
	PROTO_NET_FAIL_CONNECT = 1, /* allowed, but the connect failed */
};

enum proto_dns_transport { PROTO_DNS_UDP = 0, PROTO_DNS_TCP = 1 };
/* DNS_ANSWER flag: the name is not allowed (the answer is NXDOMAIN). */
#define PROTO_DNS_DENIED 0x01

struct proto_net_open {
	int family; /* AF_INET or AF_INET6 */
	uint16_t port;
	uint8_t addr[16]; /* network order; 4 bytes used for AF_INET */
};

/* NET_OPEN payload: u16 port, u8 4|6, u8 0, 4 or 16 address bytes. */
#define PROTO_NET_OPEN_MAX 20
size_t proto_net_open_encode(const struct proto_net_open *o,
			     uint8_t out[PROTO_NET_OPEN_MAX]);
/* 0, or -EPROTO for a malformed payload (o is set on success only). */
int proto_net_open_decode(const uint8_t *p, size_t len,
			  struct proto_net_open *o);

/*
 * Clipboard image paste: the guest asks (CLIP_REQ), the host answers with
 * CLIP_DATA frames and one CLIP_END for the same chan.  Only image types
 * ever cross; the host decides, whatever the guest asks.
 */
#define PROTO_CLIP_CHUNK    (64 * 1024)
#define PROTO_CLIP_MAX	    (32 * 1024 * 1024) /* one answer, in all */
#define PROTO_CLIP_MIME_MAX 63

enum proto_clip_op {
	PROTO_CLIP_TARGETS =
	    0,		    /* the image types on the clipboard, one a line */
	PROTO_CLIP_GET = 1, /* the clipboard's content as one type */
};

enum proto_clip_status {
	PROTO_CLIP_OK = 0,     /* the data sent is the whole answer */
	PROTO_CLIP_NONE = 1,   /* no image (of that type), or paste is off */
	PROTO_CLIP_FAILED = 2, /* no tool, timed out, too large, busy */
	PROTO_CLIP_STATUS_MAX = PROTO_CLIP_FAILED,
};

struct proto_clip_req {
	uint8_t op;			    /* enum proto_clip_op */
	char mime[PROTO_CLIP_MIME_MAX + 1]; /* GET only; "" for TARGETS */
};

/* CLIP_REQ payload: u8 op, u8 0, then (GET only) the MIME type: 1 to 63
 * bytes of [a-z0-9] and "/.+-_", exactly one '/', no NUL. */
#define PROTO_CLIP_REQ_MAX (2 + PROTO_CLIP_MIME_MAX)
/* The encoded length, or 0 for a request that would not decode. */
size_t proto_clip_req_encode(const struct proto_clip_req *q,
			     uint8_t out[PROTO_CLIP_REQ_MAX]);
/* 0, or -EPROTO for a malformed payload (q is set on success only). */
int proto_clip_req_decode(const uint8_t *p, size_t len,
			  struct proto_clip_req *q);
/* CLIP_END payload: exactly one status byte; 0 or -EPROTO. */
int proto_clip_end_decode(const uint8_t *p, size_t len, uint8_t *status);

enum proto_exit_kind { PROTO_EXIT_CODE = 0, PROTO_EXIT_SIGNAL = 1 };

/*
 * EXIT: u32 kind, u32 code (PROTO_EXIT_LEN); a guest that can tell adds
 * u32 the OOM killer's kills while the program ran and u32 flags
 * (PROTO_EXIT_OOM_LEN).  A host reads what it knows and ignores the rest.
 */
#define PROTO_EXIT_LEN	   8
#define PROTO_EXIT_OOM_LEN 16
/* EXIT flag: the OOM killer killed the program itself. */
#define PROTO_EXIT_F_OOM 0x1u

struct proto_msg {
	uint8_t type;
	uint8_t flags;
	uint16_t chan;
	uint32_t len;
	const uint8_t *data; /* points into the decoded buffer */
};

const char *proto_type_name(unsigned type);

/*
 * Decodes one frame from buf.  Returns the frame's total size (> 0) and
 * fills msg; 0 when buf holds only part of a frame; -EPROTO for an unknown
 * type or non-zero flags; -EMSGSIZE for a length over PROTO_MAX_PAYLOAD.
 */
ssize_t proto_decode(const uint8_t *buf, size_t len, struct proto_msg *msg);

/* Writes a header for a payload of len bytes into out. */
void proto_encode_hdr(uint8_t out[PROTO_HDR_LEN], uint8_t type, uint16_t chan,
		      uint32_t len);

/* Little-endian integer helpers for payloads. */
void proto_put_u16(uint8_t *p, uint16_t v);
void proto_put_u32(uint8_t *p, uint32_t v);
void proto_put_u64(uint8_t *p, uint64_t v);
uint16_t proto_get_u16(const uint8_t *p);
uint32_t proto_get_u32(const uint8_t *p);
uint64_t proto_get_u64(const uint8_t *p);

/*
 * Iterates a NUL-separated list of "key=value" strings (SETUP payloads).
 * *pos starts at 0.  Returns 1 and sets key/val (NUL-terminated copies in
 * the caller's buffers, truncated never: too long is an error), 0 at the
 * end, -EPROTO for an entry without '=' or a missing final NUL, -E2BIG for
 * an entry that does not fit.
 */
int proto_kv_next(const uint8_t *data, size_t len, size_t *pos, char *key,
		  size_t keysz, char *val, size_t valsz);

/* A fixed-size incoming buffer: no allocation driven by the peer. */
struct proto_reader {
	size_t len; /* bytes buffered */
	size_t off; /* start of unconsumed data */
	uint8_t buf[PROTO_HDR_LEN + PROTO_MAX_PAYLOAD];
};

void proto_reader_init(struct proto_reader *r);
/* read(2)s what is available: bytes read, 0 at EOF, or -errno (-EAGAIN). */
ssize_t proto_reader_fill(struct proto_reader *r, int fd);
/* 1 with msg set (valid until the next fill/next), 0 need more, < 0 error. */
int proto_reader_next(struct proto_reader *r, struct proto_msg *msg);

/*
 * An outgoing queue, so neither side blocks writing to the port while the
 * other blocks writing back.  Producers check proto_writer_full() and stop
 * reading their sources while it is true (backpressure).
 */
struct proto_writer {
	uint8_t *buf;
	size_t len, off, cap;
};

#define PROTO_WRITER_HIGH (1024 * 1024)

int proto_writer_init(struct proto_writer *w);
void proto_writer_free(struct proto_writer *w);
/* Queues one frame: 0, -EMSGSIZE (len too big) or -ENOMEM. */
int proto_writer_put(struct proto_writer *w, uint8_t type, uint16_t chan,
		     const void *data, size_t len);
/* Writes what the fd takes: 0 when drained or would block, else -errno. */
int proto_writer_flush(struct proto_writer *w, int fd);
bool proto_writer_pending(const struct proto_writer *w);
/* Bytes queued and not yet written. */
size_t proto_writer_queued(const struct proto_writer *w);
bool proto_writer_full(const struct proto_writer *w);
/* Zeroes the whole buffer (used after secrets have been queued and sent). */
void proto_writer_wipe(struct proto_writer *w);

/* Sends one frame on a blocking fd. */
int proto_send(int fd, uint8_t type, uint16_t chan, const void *data,
	       size_t len);
