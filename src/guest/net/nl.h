#pragma once
/*
 * Netlink requests built in a fixed buffer: one message or a batch of
 * them, attributes and nests, sent at once, every acknowledgement asked
 * for checked.  Used for the few fixed requests ccvm-init makes itself
 * instead of executing ip (link.c) or nft (nfrules.c).
 */
#include <linux/netlink.h>
#include <stddef.h>
#include <stdint.h>

#define NL_BUF_MAX 2048

struct nl_req {
	size_t len;   /* bytes of messages so far */
	size_t cur;   /* offset of the message being built */
	int overflow; /* an append did not fit: nl_talk fails */
	_Alignas(struct nlmsghdr) unsigned char buf[NL_BUF_MAX];
};

void nl_req_init(struct nl_req *r);

/* Starts a message of type with flags (NLM_F_REQUEST is added) and a
 * family header of hdrlen bytes (at most NL_BUF_MAX), zeroed; returns that
 * header (or, after an overflow, the request's own buffer as scratch: an
 * overflowed request is never sent). */
void *nl_msg(struct nl_req *r, uint16_t type, uint16_t flags, size_t hdrlen);

/* Appends an attribute to the current message; nests are closed by
 * nl_nest_end with what nl_nest returned. */
void nl_attr(struct nl_req *r, uint16_t type, const void *data, size_t len);
void nl_attr_str(struct nl_req *r, uint16_t type, const char *s);
void nl_attr_be32(struct nl_req *r, uint16_t type, uint32_t host_value);
size_t nl_nest(struct nl_req *r, uint16_t type);
void nl_nest_end(struct nl_req *r, size_t nest);

/* Numbers the messages from *seq on, sends them in one datagram and reads
 * until every message that asked for an acknowledgement (NLM_F_ACK) has
 * one: 0, or the first error as -errno (-EMSGSIZE after an overflow). */
int nl_talk(int fd, struct nl_req *r, unsigned *seq);
