/* Unit tests for src/host/net/route.c: what the kernel routes to this host. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/route.h"
#include "util.h"

static int local4(const char *s)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		fail_msg("bad address %s", s);
	return route_is_local(AF_INET, &a);
}

static void test_loopback_and_own(void **state)
{
	(void)state;
	assert_int_equal(local4("127.0.0.1"), 1);
	assert_int_equal(local4("127.4.5.6"), 1); /* all of 127/8 */
	/* TEST-NET-2 is nobody's address here. */
	assert_int_equal(local4("198.51.100.77"), 0);
	struct in6_addr one = IN6ADDR_LOOPBACK_INIT;
	int r = route_is_local(AF_INET6, &one);
	assert_true(r == 1 || r == -EAFNOSUPPORT); /* IPv6 may be off */
	assert_int_equal(route_is_local(AF_UNIX, &one), -EAFNOSUPPORT);
	/* Every IPv4 address this machine has is the host. */
	struct ifaddrs *ifa;
	assert_int_equal(getifaddrs(&ifa), 0);
	unsigned n = 0;
	for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET ||
		    !(i->ifa_flags & IFF_UP))
			continue;
		const struct sockaddr_in *s =
		    (const struct sockaddr_in *)(const void *)i->ifa_addr;
		char b[INET_ADDRSTRLEN];
		inet_ntop(AF_INET, &s->sin_addr, b, sizeof(b));
		if (route_is_local(AF_INET, &s->sin_addr) != 1)
			fail_msg("%s (%s) is not local", b, i->ifa_name);
		n++;
	}
	freeifaddrs(ifa);
	assert_true(n >= 1); /* at least lo's */
}

/* One rtnetlink request needing an ACK; 0 or -errno. */
static int nl_do(int fd, void *req, size_t len)
{
	struct sockaddr_nl k = {.nl_family = AF_NETLINK};
	if (sendto(fd, req, len, 0, (struct sockaddr *)&k, sizeof(k)) < 0)
		return -errno;
	union {
		struct nlmsghdr h;
		char b[4096];
	} r;
	ssize_t n = recv(fd, &r, sizeof(r), 0);
	if (n < (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) ||
	    r.h.nlmsg_type != NLMSG_ERROR)
		return -EPROTO;
	return ((struct nlmsgerr *)NLMSG_DATA(&r.h))->error;
}

/* ip addr add ADDR/PREFIX dev lo, by hand. */
static int add_lo_addr(const char *addr, unsigned prefix)
{
	struct {
		struct nlmsghdr nh;
		struct ifaddrmsg ifa;
		char attrs[2 * RTA_SPACE(4)];
	} req;
	memset(&req, 0, sizeof(req));
	req.nh.nlmsg_len = sizeof(req);
	req.nh.nlmsg_type = RTM_NEWADDR;
	req.nh.nlmsg_flags =
	    NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK;
	req.ifa.ifa_family = AF_INET;
	req.ifa.ifa_prefixlen = (unsigned char)prefix;
	req.ifa.ifa_index = if_nametoindex("lo");
	unsigned short types[2] = {IFA_LOCAL, IFA_ADDRESS};
	for (int i = 0; i < 2; i++) {
		struct rtattr *ra =
		    (struct rtattr *)(void *)(req.attrs + i * RTA_SPACE(4));
		ra->rta_type = types[i];
		ra->rta_len = RTA_LENGTH(4);
		inet_pton(AF_INET, addr, RTA_DATA(ra));
	}
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	int r = nl_do(fd, &req, sizeof(req));
	close(fd);
	return r;
}

static int lo_up(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	util_strlcpy(ifr.ifr_name, "lo", sizeof(ifr.ifr_name));
	int r = fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0 ? -1 : 0;
	ifr.ifr_flags |= IFF_UP;
	if (r == 0 && ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		r = -1;
	if (fd >= 0)
		close(fd);
	return r;
}

/* In a network namespace of its own: exit 0 when every answer is right,
 * 77 when no namespace can be made, else the failing check's number. */
static int anyip_child(void)
{
	if (unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0)
		return 77;
	if (lo_up() < 0)
		return 10;
	if (local4("127.0.0.1") != 1)
		return 11;
	/* Before: 10.99.0.7 goes nowhere (no route at all). */
	if (local4("10.99.0.7") != 0)
		return 12;
	if (add_lo_addr("10.99.0.1", 24) < 0)
		return 13;
	/* After: the whole /24 is local (AnyIP), not only 10.99.0.1. */
	if (local4("10.99.0.1") != 1)
		return 14;
	if (local4("10.99.0.7") != 1)
		return 15;
	if (local4("10.99.0.255") != 1) /* broadcast: delivered here too */
		return 16;
	if (local4("10.99.1.7") != 0)
		return 17;
	return 0;
}

static void test_anyip_prefix(void **state)
{
	(void)state;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		_exit(anyip_child());
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	if (WEXITSTATUS(st) == 77)
		skip(); /* no user+net namespace here */
	if (WEXITSTATUS(st) != 0)
		fail_msg("AnyIP check %d failed", WEXITSTATUS(st));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_loopback_and_own),
	    cmocka_unit_test(test_anyip_prefix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
