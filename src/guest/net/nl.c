#define _GNU_SOURCE
#include "net/nl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>

void nl_req_init(struct nl_req *r)
{
	memset(r, 0, sizeof(*r));
}

static struct nlmsghdr *cur(struct nl_req *r)
{
	return (struct nlmsghdr *)(void *)(r->buf + r->cur);
}

/* Room for n more bytes (aligned) at the end, or the overflow mark. */
static void *grow(struct nl_req *r, size_t n)
{
	n = NLMSG_ALIGN(n);
	if (r->overflow || n > sizeof(r->buf) - r->len) {
		r->overflow = 1;
		return NULL;
	}
	void *p = r->buf + r->len;
	memset(p, 0, n);
	r->len += n;
	return p;
}

void *nl_msg(struct nl_req *r, uint16_t type, uint16_t flags, size_t hdrlen)
{
	size_t at = r->len;
	struct nlmsghdr *h = grow(r, NLMSG_LENGTH(hdrlen));
	if (!h) {
		/* Never sent now: the buffer is the caller's scratch. */
		memset(r->buf, 0, sizeof(r->buf));
		return r->buf;
	}
	r->cur = at;
	h->nlmsg_len = (uint32_t)NLMSG_LENGTH(hdrlen);
	h->nlmsg_type = type;
	h->nlmsg_flags = (uint16_t)(flags | NLM_F_REQUEST);
	return NLMSG_DATA(h);
}

void nl_attr(struct nl_req *r, uint16_t type, const void *data, size_t len)
{
	struct nlattr *a = grow(r, NLA_HDRLEN + len);
	if (!a)
		return;
	a->nla_type = type;
	a->nla_len = (uint16_t)(NLA_HDRLEN + len);
	if (len)
		memcpy((char *)a + NLA_HDRLEN, data, len);
	cur(r)->nlmsg_len = (uint32_t)(r->len - r->cur);
}

void nl_attr_str(struct nl_req *r, uint16_t type, const char *s)
{
	nl_attr(r, type, s, strlen(s) + 1);
}

void nl_attr_be32(struct nl_req *r, uint16_t type, uint32_t host_value)
{
	uint32_t v = htonl(host_value);
	nl_attr(r, type, &v, sizeof(v));
}

size_t nl_nest(struct nl_req *r, uint16_t type)
{
	size_t at = r->len;
	nl_attr(r, (uint16_t)(type | NLA_F_NESTED), NULL, 0);
	return at;
}

void nl_nest_end(struct nl_req *r, size_t nest)
{
	if (r->overflow)
		return;
	struct nlattr *a = (struct nlattr *)(void *)(r->buf + nest);
	a->nla_len = (uint16_t)(r->len - nest);
}

int nl_talk(int fd, struct nl_req *r, unsigned *seq)
{
	if (r->overflow)
		return -EMSGSIZE;
	unsigned first = *seq, waiting = 0;
	for (size_t off = 0; off < r->len;) {
		struct nlmsghdr *h = (struct nlmsghdr *)(void *)(r->buf + off);
		h->nlmsg_seq = (*seq)++;
		if (h->nlmsg_flags & NLM_F_ACK)
			waiting++;
		off += NLMSG_ALIGN(h->nlmsg_len);
	}
	struct sockaddr_nl k = {.nl_family = AF_NETLINK};
	if (sendto(fd, r->buf, r->len, 0, (struct sockaddr *)&k, sizeof(k)) < 0)
		return -errno;
	while (waiting) {
		union {
			struct nlmsghdr h;
			char b[4096];
		} ans;
		ssize_t n = recv(fd, &ans, sizeof(ans), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		size_t left = (size_t)n;
		for (struct nlmsghdr *h = &ans.h; NLMSG_OK(h, left);
		     h = NLMSG_NEXT(h, left)) {
			if (h->nlmsg_type != NLMSG_ERROR ||
			    h->nlmsg_seq < first || h->nlmsg_seq >= *seq)
				continue;
			if (h->nlmsg_len <
			    NLMSG_LENGTH(sizeof(struct nlmsgerr)))
				return -EPROTO;
			const struct nlmsgerr *e = NLMSG_DATA(h);
			if (e->error)
				return e->error; /* -errno */
			waiting--;
		}
	}
	return 0;
}
