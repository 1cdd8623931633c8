#define _GNU_SOURCE
#include "proto.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util.h"

static const char *const type_names[PROTO_TYPE_MAX] = {
    [PROTO_HELLO] = "hello",
    [PROTO_SETUP] = "setup",
    [PROTO_ARG] = "arg",
    [PROTO_ENV] = "env",
    [PROTO_SECRET] = "secret",
    [PROTO_FILE] = "file",
    [PROTO_START] = "start",
    [PROTO_STDIN] = "stdin",
    [PROTO_STDOUT] = "stdout",
    [PROTO_STDERR] = "stderr",
    [PROTO_RESIZE] = "resize",
    [PROTO_SIGNAL] = "signal",
    [PROTO_STOPPED] = "stopped",
    [PROTO_CONT] = "cont",
    [PROTO_EXIT] = "exit",
    [PROTO_ERROR] = "error",
    [PROTO_LOG] = "log",
    [PROTO_NET_OPEN] = "net-open",
    [PROTO_NET_OPEN_OK] = "net-open-ok",
    [PROTO_NET_OPEN_FAIL] = "net-open-fail",
    [PROTO_NET_DATA] = "net-data",
    [PROTO_NET_WINDOW] = "net-window",
    [PROTO_NET_CLOSE] = "net-close",
    [PROTO_DNS_QUERY] = "dns-query",
    [PROTO_DNS_ANSWER] = "dns-answer",
    [PROTO_CLIP_REQ] = "clip-req",
    [PROTO_CLIP_DATA] = "clip-data",
    [PROTO_CLIP_END] = "clip-end",
    [PROTO_SHARE_INVAL] = "share-inval",
    [PROTO_SHARE_SYNCED] = "share-synced",
    [PROTO_PARK] = "park",
    [PROTO_UNPARK] = "unpark",
};

const char *proto_type_name(unsigned type)
{
	if (type < PROTO_TYPE_MAX && type_names[type])
		return type_names[type];
	return "unknown";
}

void proto_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

void proto_put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void proto_put_u64(uint8_t *p, uint64_t v)
{
	proto_put_u32(p, (uint32_t)v);
	proto_put_u32(p + 4, (uint32_t)(v >> 32));
}

uint16_t proto_get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

uint32_t proto_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

uint64_t proto_get_u64(const uint8_t *p)
{
	return proto_get_u32(p) | (uint64_t)proto_get_u32(p + 4) << 32;
}

void proto_share_attr_of_stat(struct proto_share_attr *a, const struct stat *st)
{
	*a = (struct proto_share_attr){
	    .exists = true,
	    .mode = st->st_mode,
	    .ino = st->st_ino,
	    .size = (uint64_t)st->st_size,
	    .mtime_s = st->st_mtim.tv_sec,
	    .mtime_ns = (uint32_t)st->st_mtim.tv_nsec,
	    .ctime_s = st->st_ctim.tv_sec,
	    .ctime_ns = (uint32_t)st->st_ctim.tv_nsec,
	};
}

void proto_share_attr_put(uint8_t *p, const struct proto_share_attr *a)
{
	memset(p, 0, PROTO_SHARE_ATTR_LEN);
	if (!a->exists)
		return;
	p[0] = 1;
	proto_put_u32(p + 1, a->mode);
	proto_put_u64(p + 5, a->ino);
	proto_put_u64(p + 13, a->size);
	proto_put_u64(p + 21, (uint64_t)a->mtime_s);
	proto_put_u32(p + 29, a->mtime_ns);
	proto_put_u64(p + 33, (uint64_t)a->ctime_s);
	proto_put_u32(p + 41, a->ctime_ns);
}

void proto_share_attr_get(const uint8_t *p, struct proto_share_attr *a)
{
	*a = (struct proto_share_attr){.exists = p[0] == 1};
	if (!a->exists)
		return;
	a->mode = proto_get_u32(p + 1);
	a->ino = proto_get_u64(p + 5);
	a->size = proto_get_u64(p + 13);
	a->mtime_s = (int64_t)proto_get_u64(p + 21);
	a->mtime_ns = proto_get_u32(p + 29);
	a->ctime_s = (int64_t)proto_get_u64(p + 33);
	a->ctime_ns = proto_get_u32(p + 41);
}

bool proto_share_attr_same(const struct proto_share_attr *a,
			   const struct proto_share_attr *b)
{
	return a->exists && b->exists && a->mode == b->mode &&
	       a->ino == b->ino && a->size == b->size &&
	       a->mtime_s == b->mtime_s && a->mtime_ns == b->mtime_ns &&
	       a->ctime_s == b->ctime_s && a->ctime_ns == b->ctime_ns;
}

ssize_t proto_decode(const uint8_t *buf, size_t len, struct proto_msg *msg)
{
	if (len < PROTO_HDR_LEN)
		return 0;
	uint8_t type = buf[0];
	uint8_t flags = buf[1];
	uint32_t plen = proto_get_u32(buf + 4);
	if (type == 0 || type >= PROTO_TYPE_MAX || flags != 0)
		return -EPROTO;
	if (plen > PROTO_MAX_PAYLOAD)
		return -EMSGSIZE;
	if (len - PROTO_HDR_LEN < plen)
		return 0;
	msg->type = type;
	msg->flags = flags;
	msg->chan = proto_get_u16(buf + 2);
	msg->len = plen;
	msg->data = buf + PROTO_HDR_LEN;
	return (ssize_t)(PROTO_HDR_LEN + plen);
}

void proto_encode_hdr(uint8_t out[PROTO_HDR_LEN], uint8_t type, uint16_t chan,
		      uint32_t len)
{
	out[0] = type;
	out[1] = 0;
	proto_put_u16(out + 2, chan);
	proto_put_u32(out + 4, len);
}

int proto_kv_next(const uint8_t *data, size_t len, size_t *pos, char *key,
		  size_t keysz, char *val, size_t valsz)
{
	if (*pos >= len)
		return 0;
	const uint8_t *start = data + *pos;
	const uint8_t *nul = memchr(start, '\0', len - *pos);
	if (!nul)
		return -EPROTO;
	const uint8_t *eq = memchr(start, '=', (size_t)(nul - start));
	if (!eq || eq == start)
		return -EPROTO;
	size_t kl = (size_t)(eq - start);
	size_t vl = (size_t)(nul - eq - 1);
	if (kl >= keysz || vl >= valsz)
		return -E2BIG;
	memcpy(key, start, kl);
	key[kl] = '\0';
	memcpy(val, eq + 1, vl);
	val[vl] = '\0';
	*pos = (size_t)(nul - data) + 1;
	return 1;
}

void proto_reader_init(struct proto_reader *r)
{
	r->len = 0;
	r->off = 0;
}

ssize_t proto_reader_fill(struct proto_reader *r, int fd)
{
	if (r->off > 0) {
		memmove(r->buf, r->buf + r->off, r->len - r->off);
		r->len -= r->off;
		r->off = 0;
	}
	if (r->len == sizeof(r->buf))
		return -ENOBUFS; /* cannot happen: a frame always fits */
	for (;;) {
		ssize_t n = read(fd, r->buf + r->len, sizeof(r->buf) - r->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		r->len += (size_t)n;
		return n;
	}
}

int proto_reader_next(struct proto_reader *r, struct proto_msg *msg)
{
	ssize_t n = proto_decode(r->buf + r->off, r->len - r->off, msg);
	if (n <= 0)
		return (int)n;
	r->off += (size_t)n;
	return 1;
}

int proto_writer_init(struct proto_writer *w)
{
	w->cap = 64 * 1024;
	w->len = w->off = 0;
	w->buf = malloc(w->cap);
	return w->buf ? 0 : -ENOMEM;
}

void proto_writer_free(struct proto_writer *w)
{
	if (w->buf) {
		explicit_bzero(w->buf, w->cap);
		free(w->buf);
	}
	w->buf = NULL;
	w->len = w->off = w->cap = 0;
}

int proto_writer_put(struct proto_writer *w, uint8_t type, uint16_t chan,
		     const void *data, size_t len)
{
	if (len > PROTO_MAX_PAYLOAD)
		return -EMSGSIZE;
	size_t need = PROTO_HDR_LEN + len;
	if (w->off > 0 && w->len + need > w->cap) {
		memmove(w->buf, w->buf + w->off, w->len - w->off);
		w->len -= w->off;
		w->off = 0;
	}
	if (w->len + need > w->cap) {
		size_t cap = w->cap;
		while (w->len + need > cap)
			cap *= 2;
		/* Not realloc: old bytes (secrets) are wiped. */
		uint8_t *nb = util_regrow(w->buf, w->len, w->cap, cap);
		if (!nb)
			return -ENOMEM;
		w->buf = nb;
		w->cap = cap;
	}
	proto_encode_hdr(w->buf + w->len, type, chan, (uint32_t)len);
	if (len)
		memcpy(w->buf + w->len + PROTO_HDR_LEN, data, len);
	w->len += need;
	return 0;
}

int proto_writer_flush(struct proto_writer *w, int fd)
{
	while (w->off < w->len) {
		ssize_t n = write(fd, w->buf + w->off, w->len - w->off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		w->off += (size_t)n;
	}
	w->off = w->len = 0;
	return 0;
}

bool proto_writer_pending(const struct proto_writer *w)
{
	return w->off < w->len;
}

size_t proto_writer_queued(const struct proto_writer *w)
{
	return w->len - w->off;
}

bool proto_writer_full(const struct proto_writer *w)
{
	return proto_writer_queued(w) >= PROTO_WRITER_HIGH;
}

void proto_writer_wipe(struct proto_writer *w)
{
	if (w->buf)
		explicit_bzero(w->buf, w->cap);
}

int proto_send(int fd, uint8_t type, uint16_t chan, const void *data,
	       size_t len)
{
	if (len > PROTO_MAX_PAYLOAD)
		return -EMSGSIZE;
	uint8_t hdr[PROTO_HDR_LEN];
	proto_encode_hdr(hdr, type, chan, (uint32_t)len);
	struct iovec iov[2] = {
	    {.iov_base = hdr, .iov_len = sizeof(hdr)},
	    {.iov_base = (void *)data, .iov_len = len},
	};
	int cnt = len ? 2 : 1;
	size_t total = sizeof(hdr) + len, done = 0;
	while (done < total) {
		ssize_t n = writev(fd, iov, cnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
		/* Advance the iovecs past what was written. */
		size_t adv = (size_t)n;
		for (int i = 0; i < cnt && adv; i++) {
			size_t k = adv < iov[i].iov_len ? adv : iov[i].iov_len;
			iov[i].iov_base = (char *)iov[i].iov_base + k;
			iov[i].iov_len -= k;
			adv -= k;
		}
	}
	return 0;
}

size_t proto_net_open_encode(const struct proto_net_open *o,
			     uint8_t out[PROTO_NET_OPEN_MAX])
{
	size_t alen = o->family == AF_INET ? 4 : 16;
	proto_put_u16(out, o->port);
	out[2] = o->family == AF_INET ? 4 : 6;
	out[3] = 0;
	memcpy(out + 4, o->addr, alen);
	return 4 + alen;
}

int proto_net_open_decode(const uint8_t *p, size_t len,
			  struct proto_net_open *o)
{
	if (len < 4 || p[3] != 0)
		return -EPROTO;
	size_t alen;
	int family;
	if (p[2] == 4) {
		alen = 4;
		family = AF_INET;
	} else if (p[2] == 6) {
		alen = 16;
		family = AF_INET6;
	} else {
		return -EPROTO;
	}
	if (len != 4 + alen)
		return -EPROTO;
	memset(o, 0, sizeof(*o));
	o->family = family;
	o->port = proto_get_u16(p);
	memcpy(o->addr, p + 4, alen);
	return 0;
}

static bool clip_mime_ok(const uint8_t *p, size_t len)
{
	if (len == 0 || len > PROTO_CLIP_MIME_MAX)
		return false;
	size_t slashes = 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = p[i];
		if (c == '/')
			slashes++;
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			   c == '.' || c == '+' || c == '-' || c == '_'))
			return false;
	}
	return slashes == 1 && p[0] != '/' && p[len - 1] != '/';
}

size_t proto_clip_req_encode(const struct proto_clip_req *q,
			     uint8_t out[PROTO_CLIP_REQ_MAX])
{
	out[0] = q->op;
	out[1] = 0;
	if (q->op == PROTO_CLIP_TARGETS)
		return 2;
	size_t ml = strnlen(q->mime, sizeof(q->mime));
	if (q->op != PROTO_CLIP_GET ||
	    !clip_mime_ok((const uint8_t *)q->mime, ml))
		return 0;
	memcpy(out + 2, q->mime, ml);
	return 2 + ml;
}

int proto_clip_req_decode(const uint8_t *p, size_t len,
			  struct proto_clip_req *q)
{
	if (len < 2 || p[1] != 0)
		return -EPROTO;
	if (p[0] == PROTO_CLIP_TARGETS) {
		if (len != 2)
			return -EPROTO;
	} else if (p[0] == PROTO_CLIP_GET) {
		if (!clip_mime_ok(p + 2, len - 2))
			return -EPROTO;
	} else {
		return -EPROTO;
	}
	memset(q, 0, sizeof(*q));
	q->op = p[0];
	memcpy(q->mime, p + 2, len - 2);
	return 0;
}

int proto_clip_end_decode(const uint8_t *p, size_t len, uint8_t *status)
{
	if (len != 1 || p[0] > PROTO_CLIP_STATUS_MAX)
		return -EPROTO;
	*status = p[0];
	return 0;
}
