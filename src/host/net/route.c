/* Is an address this host?  The kernel's route decides: see route.h. */
#include "net/route.h"

#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

#define ROUTE_SEQ 0x63637677u /* "ccvw" */

struct route_req {
	struct nlmsghdr nh;
	struct rtmsg rt;
	char attrs[RTA_SPACE(16)];
};

/* The answer to req on fd: 1 local, 0 not, -errno. */
static int route_answer(int fd)
{
	union {
		struct nlmsghdr h;
		char b[8192];
	} buf;
	struct sockaddr_nl from;
	socklen_t fl = sizeof(from);
	ssize_t n;
	do
		n = recvfrom(fd, &buf, sizeof(buf), MSG_TRUNC,
			     (struct sockaddr *)&from, &fl);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n > sizeof(buf) || fl != sizeof(from) || from.nl_pid != 0)
		return -EPROTO;
	size_t len = (size_t)n;
	for (struct nlmsghdr *h = &buf.h; NLMSG_OK(h, len);
	     h = NLMSG_NEXT(h, len)) {
		if (h->nlmsg_seq != ROUTE_SEQ)
			continue;
		if (h->nlmsg_type == NLMSG_ERROR) {
			if (h->nlmsg_len <
			    NLMSG_LENGTH(sizeof(struct nlmsgerr)))
				return -EPROTO;
			const struct nlmsgerr *e = NLMSG_DATA(h);
			/* No route, an unreachable or a prohibited one: not
			 * this host (a connection fails anyway). */
			if (e->error == -ENETUNREACH ||
			    e->error == -EHOSTUNREACH || e->error == -EACCES)
				return 0;
			return e->error < 0 ? e->error : -EPROTO;
		}
		if (h->nlmsg_type != RTM_NEWROUTE ||
		    h->nlmsg_len < NLMSG_LENGTH(sizeof(struct rtmsg)))
			return -EPROTO;
		const struct rtmsg *rt = NLMSG_DATA(h);
		return rt->rtm_type == RTN_LOCAL ||
		       rt->rtm_type == RTN_ANYCAST ||
		       rt->rtm_type == RTN_BROADCAST;
	}
	return -EPROTO;
}

int route_is_local(int family, const void *addr)
{
	size_t alen;
	if (family == AF_INET)
		alen = 4;
	else if (family == AF_INET6)
		alen = 16;
	else
		return -EAFNOSUPPORT;
	struct route_req req;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len =
	    NLMSG_LENGTH(sizeof(struct rtmsg)) + (unsigned)RTA_SPACE(alen);
	req.nh.nlmsg_type = RTM_GETROUTE;
	req.nh.nlmsg_flags = NLM_F_REQUEST;
	req.nh.nlmsg_seq = ROUTE_SEQ;
	req.rt.rtm_family = (unsigned char)family;
	req.rt.rtm_dst_len = (unsigned char)(alen * 8);
	struct rtattr *ra = (struct rtattr *)(void *)req.attrs;
	ra->rta_type = RTA_DST;
	ra->rta_len = (unsigned short)RTA_LENGTH(alen);
	memcpy(RTA_DATA(ra), addr, alen);

	autoclose int fd =
	    socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
	ssize_t n;
	do
		n = sendto(fd, &req, req.nh.nlmsg_len, 0,
			   (struct sockaddr *)&kernel, sizeof(kernel));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if ((size_t)n != req.nh.nlmsg_len)
		return -EIO;
	return route_answer(fd);
}
