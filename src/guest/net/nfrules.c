#define _GNU_SOURCE
/*
 * nfrules.h's ruleset over nfnetlink.  A cold `nft -f` (twelve libraries
 * and a parser, from the compressed root) costs ~0.5 s of CPU under TCG
 * beside the session's own start; the same transaction built here costs
 * a few system calls.  `nft list ruleset` in the guest shows what it made
 * (30-egress compares it with nft's own).
 */
#include "net/nfrules.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/nl.h"
#include "util.h"

#ifndef NETLINK_CAP_ACK
#define NETLINK_CAP_ACK 10
#endif

static void nfgen(struct nl_req *r, uint16_t type, uint16_t flags,
		  uint8_t family, uint16_t res_id)
{
	struct nfgenmsg *g = nl_msg(r, type, flags, sizeof(*g));
	g->nfgen_family = family;
	g->version = NFNETLINK_V0;
	g->res_id = htons(res_id);
}

static void nft_msg(struct nl_req *r, uint16_t msg, uint16_t flags)
{
	nfgen(r, (uint16_t)(NFNL_SUBSYS_NFTABLES << 8 | msg),
	      (uint16_t)(flags | NLM_F_ACK), NFPROTO_INET, 0);
}

/* One expression of a rule: NFTA_LIST_ELEM { NAME, DATA { ... } }; the
 * caller fills DATA and closes both with expr_end. */
struct expr {
	size_t elem, data;
};

static struct expr expr_begin(struct nl_req *r, const char *name)
{
	struct expr e;
	e.elem = nl_nest(r, NFTA_LIST_ELEM);
	nl_attr_str(r, NFTA_EXPR_NAME, name);
	e.data = nl_nest(r, NFTA_EXPR_DATA);
	return e;
}

static void expr_end(struct nl_req *r, struct expr e)
{
	nl_nest_end(r, e.data);
	nl_nest_end(r, e.elem);
}

static void data_value(struct nl_req *r, uint16_t type, const void *v,
		       size_t len)
{
	size_t d = nl_nest(r, type);
	nl_attr(r, NFTA_DATA_VALUE, v, len);
	nl_nest_end(r, d);
}

static void meta_load(struct nl_req *r, uint32_t key)
{
	struct expr e = expr_begin(r, "meta");
	nl_attr_be32(r, NFTA_META_KEY, key);
	nl_attr_be32(r, NFTA_META_DREG, NFT_REG_1);
	expr_end(r, e);
}

static void cmp(struct nl_req *r, uint32_t op, const void *v, size_t len)
{
	struct expr e = expr_begin(r, "cmp");
	nl_attr_be32(r, NFTA_CMP_SREG, NFT_REG_1);
	nl_attr_be32(r, NFTA_CMP_OP, op);
	data_value(r, NFTA_CMP_DATA, v, len);
	expr_end(r, e);
}

static void network_load(struct nl_req *r, uint32_t offset, uint32_t len)
{
	struct expr e = expr_begin(r, "payload");
	nl_attr_be32(r, NFTA_PAYLOAD_DREG, NFT_REG_1);
	nl_attr_be32(r, NFTA_PAYLOAD_BASE, NFT_PAYLOAD_NETWORK_HEADER);
	nl_attr_be32(r, NFTA_PAYLOAD_OFFSET, offset);
	nl_attr_be32(r, NFTA_PAYLOAD_LEN, len);
	expr_end(r, e);
}

static void redirect_to(struct nl_req *r, unsigned short port)
{
	uint16_t be = htons(port);
	struct expr e = expr_begin(r, "immediate");
	nl_attr_be32(r, NFTA_IMMEDIATE_DREG, NFT_REG_1);
	data_value(r, NFTA_IMMEDIATE_DATA, &be, sizeof(be));
	expr_end(r, e);
	e = expr_begin(r, "redir");
	nl_attr_be32(r, NFTA_REDIR_REG_PROTO_MIN, NFT_REG_1);
	nl_attr_be32(r, NFTA_REDIR_FLAGS, NF_NAT_RANGE_PROTO_SPECIFIED);
	expr_end(r, e);
}

/* meta l4proto tcp <family> daddr != <loopback> redirect to :port; IPv4
 * compares the address's first byte (127.0.0.0/8), IPv6 all of ::1. */
static void rule(struct nl_req *r, uint8_t nfproto, unsigned short port)
{
	static const uint8_t tcp = IPPROTO_TCP, lo4 = 127;
	static const struct in6_addr lo6 = IN6ADDR_LOOPBACK_INIT;
	nft_msg(r, NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND);
	nl_attr_str(r, NFTA_RULE_TABLE, NFRULES_TABLE);
	nl_attr_str(r, NFTA_RULE_CHAIN, NFRULES_CHAIN);
	size_t list = nl_nest(r, NFTA_RULE_EXPRESSIONS);
	meta_load(r, NFT_META_L4PROTO);
	cmp(r, NFT_CMP_EQ, &tcp, sizeof(tcp));
	meta_load(r, NFT_META_NFPROTO);
	cmp(r, NFT_CMP_EQ, &nfproto, sizeof(nfproto));
	if (nfproto == NFPROTO_IPV4) {
		network_load(r, 16, 1); /* iphdr.daddr's first byte */
		cmp(r, NFT_CMP_NEQ, &lo4, sizeof(lo4));
	} else {
		network_load(r, 24, 16); /* ipv6hdr.daddr */
		cmp(r, NFT_CMP_NEQ, &lo6, sizeof(lo6));
	}
	redirect_to(r, port);
	nl_nest_end(r, list);
}

int nfrules_load(unsigned short port, struct ccvm_err *err)
{
	struct nl_req r;
	nl_req_init(&r);
	nfgen(&r, NFNL_MSG_BATCH_BEGIN, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);

	nft_msg(&r, NFT_MSG_NEWTABLE, NLM_F_CREATE);
	nl_attr_str(&r, NFTA_TABLE_NAME, NFRULES_TABLE);

	nft_msg(&r, NFT_MSG_NEWCHAIN, NLM_F_CREATE);
	nl_attr_str(&r, NFTA_CHAIN_TABLE, NFRULES_TABLE);
	nl_attr_str(&r, NFTA_CHAIN_NAME, NFRULES_CHAIN);
	size_t hook = nl_nest(&r, NFTA_CHAIN_HOOK);
	nl_attr_be32(&r, NFTA_HOOK_HOOKNUM, NF_INET_LOCAL_OUT);
	nl_attr_be32(&r, NFTA_HOOK_PRIORITY, (uint32_t)-100);
	nl_nest_end(&r, hook);
	nl_attr_be32(&r, NFTA_CHAIN_POLICY, NF_ACCEPT);
	nl_attr_str(&r, NFTA_CHAIN_TYPE, "nat");

	rule(&r, NFPROTO_IPV4, port);
	rule(&r, NFPROTO_IPV6, port);
	nfgen(&r, NFNL_MSG_BATCH_END, 0, AF_UNSPEC, NFNL_SUBSYS_NFTABLES);

	autoclose int fd =
	    socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
	if (fd < 0)
		return ccvm_err_sys(err, errno, "netfilter netlink socket");
	int one = 1; /* errors without a copy of the request */
	(void)setsockopt(fd, SOL_NETLINK, NETLINK_CAP_ACK, &one, sizeof(one));
	unsigned seq = 1;
	int rc = nl_talk(fd, &r, &seq);
	if (rc < 0)
		return ccvm_err_sys(err, -rc, "loading the nftables rules");
	return 0;
}
