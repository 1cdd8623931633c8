#define _GNU_SOURCE
/*
 * The guest network's interface over rtnetlink: the same effect as
 *   ip link set lo up; ip link add ccvm0 type dummy; ip link set ccvm0 up
 *   ip addr add 169.254.77.1/32 dev ccvm0
 *   ip addr add 2001:db8:ffff::1/128 dev ccvm0 nodad
 *   ip route add default dev ccvm0; ip route add ::/0 dev ccvm0
 * without executing ip, which costs a cold exec and its libraries from the
 * compressed root under TCG.  Every request asks for an acknowledgement
 * and the answer is checked (nl.h).
 */
#include "net/link.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/nl.h"
#include "util.h"

static int link_up(int fd, int ifindex, unsigned *seq)
{
	struct nl_req r;
	nl_req_init(&r);
	struct ifinfomsg *i = nl_msg(&r, RTM_NEWLINK, NLM_F_ACK, sizeof(*i));
	i->ifi_family = AF_UNSPEC;
	i->ifi_index = ifindex;
	i->ifi_flags = IFF_UP;
	i->ifi_change = IFF_UP;
	return nl_talk(fd, &r, seq);
}

static int add_dummy(int fd, const char *name, unsigned *seq)
{
	struct nl_req r;
	nl_req_init(&r);
	struct ifinfomsg *i = nl_msg(
	    &r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, sizeof(*i));
	i->ifi_family = AF_UNSPEC;
	nl_attr_str(&r, IFLA_IFNAME, name);
	size_t info = nl_nest(&r, IFLA_LINKINFO);
	nl_attr(&r, IFLA_INFO_KIND, "dummy", 5);
	nl_nest_end(&r, info);
	return nl_talk(fd, &r, seq);
}

static int add_addr(int fd, int family, const char *text, int ifindex,
		    unsigned *seq)
{
	unsigned char a[16];
	if (inet_pton(family, text, a) != 1)
		return -EINVAL;
	size_t len = family == AF_INET ? 4 : 16;
	struct nl_req r;
	nl_req_init(&r);
	struct ifaddrmsg *m = nl_msg(
	    &r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK, sizeof(*m));
	m->ifa_family = (unsigned char)family;
	m->ifa_prefixlen = (unsigned char)(len * 8);
	m->ifa_flags = family == AF_INET6 ? IFA_F_NODAD : 0;
	m->ifa_scope = RT_SCOPE_UNIVERSE;
	m->ifa_index = (unsigned)ifindex;
	nl_attr(&r, IFA_LOCAL, a, len);
	nl_attr(&r, IFA_ADDRESS, a, len);
	return nl_talk(fd, &r, seq);
}

static int add_default_route(int fd, int family, int ifindex, unsigned *seq)
{
	struct nl_req r;
	nl_req_init(&r);
	struct rtmsg *m =
	    nl_msg(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK,
		   sizeof(*m));
	m->rtm_family = (unsigned char)family;
	m->rtm_table = RT_TABLE_MAIN;
	m->rtm_protocol = RTPROT_BOOT;
	m->rtm_scope = RT_SCOPE_LINK;
	m->rtm_type = RTN_UNICAST;
	uint32_t oif = (uint32_t)ifindex;
	nl_attr(&r, RTA_OIF, &oif, sizeof(oif));
	return nl_talk(fd, &r, seq);
}

int link_setup(struct ccvm_err *err)
{
	autoclose int fd =
	    socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return ccvm_err_sys(err, errno, "netlink socket");
	unsigned seq = 1;
	int lo = (int)if_nametoindex("lo");
	int r = lo ? link_up(fd, lo, &seq) : -ENODEV;
	if (r < 0)
		return ccvm_err_sys(err, -r, "bringing lo up");
	r = add_dummy(fd, LINK_NAME, &seq);
	if (r < 0)
		return ccvm_err_sys(err, -r, "creating %s (dummy)", LINK_NAME);
	int ix = (int)if_nametoindex(LINK_NAME);
	if (!ix)
		return ccvm_err_sys(err, errno, "%s", LINK_NAME);
	if ((r = link_up(fd, ix, &seq)) < 0)
		return ccvm_err_sys(err, -r, "bringing %s up", LINK_NAME);
	if ((r = add_addr(fd, AF_INET, LINK_ADDR4, ix, &seq)) < 0 ||
	    (r = add_addr(fd, AF_INET6, LINK_ADDR6, ix, &seq)) < 0)
		return ccvm_err_sys(err, -r, "addresses on %s", LINK_NAME);
	if ((r = add_default_route(fd, AF_INET, ix, &seq)) < 0 ||
	    (r = add_default_route(fd, AF_INET6, ix, &seq)) < 0)
		return ccvm_err_sys(err, -r, "default routes via %s",
				    LINK_NAME);
	return 0;
}
