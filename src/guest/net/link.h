#pragma once
/*
 * The guest network's only interface: a dummy `ccvm0` carrying the default
 * routes, so that connections leave their sockets and meet the nftables
 * redirect to the forwarder (net.c).  Packets that reach ccvm0 itself are
 * dropped: the guest has no NIC.
 */
#include "err.h"

#define LINK_NAME  "ccvm0"
#define LINK_ADDR4 "169.254.77.1"     /* /32 */
#define LINK_ADDR6 "2001:db8:ffff::1" /* /128, no DAD */

/* lo up, ccvm0 created and up with both addresses, IPv4 and IPv6 default
 * routes through it, over rtnetlink; 0 or -errno with err set. */
int link_setup(struct ccvm_err *err);
