#define _GNU_SOURCE
/*
 * The guest network's interface over rtnetlink: the same effect as
 *   ip link set lo up; ip link add ccvm0 type dummy; ip link set ccvm0 up
 *   ip addr add 169.254.77.1/32 dev ccvm0
 *   ip addr add 2001:db8:ffff::1/128 dev ccvm0 nodad
 *   ip route add default dev ccvm0; ip route add ::/0 dev ccvm0
 * without executing ip, which costs a cold exec and its libraries from the
 * compressed root under TCG.  Every request asks for an acknowledgement
 * and the answer is checked.
 */
#include "link.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

#define NL_BUF 512

struct nlreq {
	struct nlmsghdr h;
	char buf[NL_BUF];
};

static void *tail(struct nlreq *r)
{
	return (char *)&r->h + NLMSG_ALIGN(r->h.nlmsg_len);
}

static struct rtattr *attr(struct nlreq *r, unsigned short type,
			   const void *data, size_t len)
{
	struct rtattr *a = tail(r);
	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	if (len)
		memcpy(RTA_DATA(a), data, len);
	r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
	return a;
}

static void attr_end(struct nlreq *r, struct rtattr *nest)
{
	nest->rta_len = (unsigned short)((char *)tail(r) - (char *)nest);
}

/* Sends r and waits for its acknowledgement: 0 or -errno. */
static int talk(int fd, struct nlreq *r, unsigned seq)
{
	r->h.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
	r->h.nlmsg_seq = seq;
	struct sockaddr_nl k = {.nl_family = AF_NETLINK};
	if (sendto(fd, &r->h, r->h.nlmsg_len, 0, (struct sockaddr *)&k,
		   sizeof(k)) < 0)
		return -errno;
	for (;;) {
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
			if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR)
				continue;
			if (h->nlmsg_len <
			    NLMSG_LENGTH(sizeof(struct nlmsgerr)))
				return -EPROTO;
			const struct nlmsgerr *e = NLMSG_DATA(h);
			return e->error; /* 0 or -errno */
		}
	}
}

static void init(struct nlreq *r, unsigned short type, unsigned short flags,
		 size_t body)
{
	memset(r, 0, sizeof(*r));
	r->h.nlmsg_type = type;
	r->h.nlmsg_flags = flags;
	r->h.nlmsg_len = (unsigned)NLMSG_LENGTH(body);
}

static int link_up(int fd, int ifindex, unsigned seq)
{
	struct nlreq r;
	init(&r, RTM_NEWLINK, 0, sizeof(struct ifinfomsg));
	struct ifinfomsg *i = NLMSG_DATA(&r.h);
	i->ifi_family = AF_UNSPEC;
	i->ifi_index = ifindex;
	i->ifi_flags = IFF_UP;
	i->ifi_change = IFF_UP;
	return talk(fd, &r, seq);
}

static int add_dummy(int fd, const char *name, unsigned seq)
{
	struct nlreq r;
	init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL,
	     sizeof(struct ifinfomsg));
	struct ifinfomsg *i = NLMSG_DATA(&r.h);
	i->ifi_family = AF_UNSPEC;
	attr(&r, IFLA_IFNAME, name, strlen(name) + 1);
	struct rtattr *info = attr(&r, IFLA_LINKINFO, NULL, 0);
	attr(&r, IFLA_INFO_KIND, "dummy", 5);
	attr_end(&r, info);
	return talk(fd, &r, seq);
}

static int add_addr(int fd, int family, const char *text, int ifindex,
		    unsigned seq)
{
	unsigned char a[16];
	if (inet_pton(family, text, a) != 1)
		return -EINVAL;
	size_t len = family == AF_INET ? 4 : 16;
	struct nlreq r;
	init(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL,
	     sizeof(struct ifaddrmsg));
	struct ifaddrmsg *m = NLMSG_DATA(&r.h);
	m->ifa_family = (unsigned char)family;
	m->ifa_prefixlen = (unsigned char)(len * 8);
	m->ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;
	m->ifa_scope = RT_SCOPE_UNIVERSE;
	m->ifa_index = (unsigned)ifindex;
	attr(&r, IFA_LOCAL, a, len);
	attr(&r, IFA_ADDRESS, a, len);
	return talk(fd, &r, seq);
}

static int add_default_route(int fd, int family, int ifindex, unsigned seq)
{
	struct nlreq r;
	init(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, sizeof(struct rtmsg));
	struct rtmsg *m = NLMSG_DATA(&r.h);
	m->rtm_family = (unsigned char)family;
	m->rtm_table = RT_TABLE_MAIN;
	m->rtm_protocol = RTPROT_BOOT;
	m->rtm_scope = RT_SCOPE_LINK;
	m->rtm_type = RTN_UNICAST;
	uint32_t oif = (uint32_t)ifindex;
	attr(&r, RTA_OIF, &oif, sizeof(oif));
	return talk(fd, &r, seq);
}

int link_setup(struct ccvm_err *err)
{
	autoclose int fd =
	    socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return ccvm_err_sys(err, errno, "netlink socket");
	unsigned seq = 1;
	int lo = (int)if_nametoindex("lo");
	int r = lo ? link_up(fd, lo, seq++) : -ENODEV;
	if (r < 0)
		return ccvm_err_sys(err, -r, "bringing lo up");
	r = add_dummy(fd, LINK_NAME, seq++);
	if (r < 0)
		return ccvm_err_sys(err, -r, "creating %s (dummy)", LINK_NAME);
	int ix = (int)if_nametoindex(LINK_NAME);
	if (!ix)
		return ccvm_err_sys(err, errno, "%s", LINK_NAME);
	if ((r = link_up(fd, ix, seq++)) < 0)
		return ccvm_err_sys(err, -r, "bringing %s up", LINK_NAME);
	if ((r = add_addr(fd, AF_INET, LINK_ADDR4, ix, seq++)) < 0 ||
	    (r = add_addr(fd, AF_INET6, LINK_ADDR6, ix, seq++)) < 0)
		return ccvm_err_sys(err, -r, "addresses on %s", LINK_NAME);
	if ((r = add_default_route(fd, AF_INET, ix, seq++)) < 0 ||
	    (r = add_default_route(fd, AF_INET6, ix, seq++)) < 0)
		return ccvm_err_sys(err, -r, "default routes via %s",
				    LINK_NAME);
	return 0;
}
