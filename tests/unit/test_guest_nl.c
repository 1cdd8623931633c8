/* ccvm-init's netlink requests (nl.h): the layout of messages, nests and
 * batches, overflow, and acknowledgements from this host's own kernel
 * (rtnetlink needs no privilege to read). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/nl.h"

static struct nlmsghdr *msg_at(struct nl_req *r, size_t off)
{
	return (struct nlmsghdr *)(void *)(r->buf + off);
}

static void test_layout(void **state)
{
	(void)state;
	struct nl_req r;
	nl_req_init(&r);
	struct ifinfomsg *i = nl_msg(&r, RTM_NEWLINK, NLM_F_ACK, sizeof(*i));
	i->ifi_index = 7;
	nl_attr_str(&r, IFLA_IFNAME, "abc"); /* 4 + 4 bytes */
	size_t nest = nl_nest(&r, IFLA_LINKINFO);
	nl_attr(&r, IFLA_INFO_KIND, "dummy", 5); /* 4 + 5, padded to 12 */
	nl_nest_end(&r, nest);
	nl_attr_be32(&r, IFLA_MTU, 0x01020304);

	struct nlmsghdr *h = msg_at(&r, 0);
	assert_int_equal(h->nlmsg_type, RTM_NEWLINK);
	assert_int_equal(h->nlmsg_flags, NLM_F_REQUEST | NLM_F_ACK);
	size_t want = NLMSG_LENGTH(sizeof(*i)) + 8 + (4 + 12) + 8;
	assert_int_equal(h->nlmsg_len, want);
	assert_int_equal(r.len, want);
	assert_int_equal(((struct ifinfomsg *)NLMSG_DATA(h))->ifi_index, 7);

	const unsigned char *a = r.buf + NLMSG_LENGTH(sizeof(*i));
	const struct nlattr *name = (const void *)a;
	assert_int_equal(name->nla_type, IFLA_IFNAME);
	assert_int_equal(name->nla_len, 8);
	assert_string_equal((const char *)a + 4, "abc");
	const struct nlattr *info = (const void *)(a + 8);
	assert_int_equal(info->nla_type, IFLA_LINKINFO | NLA_F_NESTED);
	assert_int_equal(info->nla_len, 4 + 12); /* the nest holds the pad */
	const struct nlattr *kind = (const void *)(a + 12);
	assert_int_equal(kind->nla_len, 9);
	assert_memory_equal((const char *)kind + 4, "dummy", 5);
	const unsigned char *mtu = a + 8 + 16 + 4;
	assert_int_equal(mtu[0], 1); /* big-endian */
	assert_int_equal(mtu[3], 4);

	/* A second message starts where the first ends, aligned. */
	nl_msg(&r, RTM_GETLINK, 0, sizeof(struct ifinfomsg));
	assert_int_equal(msg_at(&r, want)->nlmsg_type, RTM_GETLINK);
	assert_int_equal(msg_at(&r, want)->nlmsg_len,
			 NLMSG_LENGTH(sizeof(struct ifinfomsg)));
}

static void test_overflow(void **state)
{
	(void)state;
	struct nl_req r;
	nl_req_init(&r);
	nl_msg(&r, RTM_NEWLINK, 0, sizeof(struct ifinfomsg));
	char big[NL_BUF_MAX];
	memset(big, 'x', sizeof(big));
	nl_attr(&r, IFLA_IFALIAS, big, sizeof(big));
	assert_true(r.overflow);
	size_t len = r.len;
	nl_attr_str(&r, IFLA_IFNAME, "a"); /* ignored from now on */
	nl_nest_end(&r, 0);
	/* A message started now gets a zeroed header to fill, never sent. */
	struct ifinfomsg *i =
	    nl_msg(&r, RTM_NEWLINK, 0, sizeof(struct ifinfomsg));
	assert_non_null(i);
	assert_int_equal(i->ifi_index, 0);
	i->ifi_index = 1;
	assert_int_equal(r.len, len);
	unsigned seq = 1;
	assert_int_equal(nl_talk(-1, &r, &seq), -EMSGSIZE);
	assert_int_equal(seq, 1);
}

static int rtnl(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	assert_true(fd >= 0);
	return fd;
}

static void get_link(struct nl_req *r, int ifindex)
{
	struct ifinfomsg *i = nl_msg(r, RTM_GETLINK, NLM_F_ACK, sizeof(*i));
	i->ifi_family = AF_UNSPEC;
	i->ifi_index = ifindex;
}

static void test_kernel_acks(void **state)
{
	(void)state;
	int fd = rtnl();
	int lo = (int)if_nametoindex("lo");
	assert_true(lo > 0);

	/* Two requests in one datagram, each answered (a link, then an
	 * acknowledgement), numbered from seq on. */
	struct nl_req r;
	nl_req_init(&r);
	get_link(&r, lo);
	get_link(&r, lo);
	unsigned seq = 40;
	assert_int_equal(nl_talk(fd, &r, &seq), 0);
	assert_int_equal(seq, 42);

	/* An error comes back as -errno. */
	nl_req_init(&r);
	get_link(&r, 0x7ffffff0);
	assert_int_equal(nl_talk(fd, &r, &seq), -ENODEV);
	assert_int_equal(seq, 43);
	close(fd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_layout),
	    cmocka_unit_test(test_overflow),
	    cmocka_unit_test(test_kernel_acks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
