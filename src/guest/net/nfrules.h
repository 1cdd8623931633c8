#pragma once
/*
 * The guest's one nftables ruleset, loaded over nfnetlink by ccvm-init
 * itself: every TCP connection not to loopback is redirected to the
 * forwarder's port (net.c, docs/egress.md).  Nothing here is a security
 * boundary; the policy is on the host.
 */
#include "err.h"

#define NFRULES_TABLE "ccvm"
#define NFRULES_CHAIN "out"

/* Loads, as one transaction, what `nft -f` would load from
 *
 *   table inet ccvm {
 *     chain out {
 *       type nat hook output priority -100; policy accept;
 *       meta l4proto tcp ip daddr != 127.0.0.0/8 redirect to :PORT
 *       meta l4proto tcp ip6 daddr != ::1 redirect to :PORT
 *     }
 *   }
 *
 * with the same expressions nft 1.0.6 generates for it.  0, or -errno
 * with err set. */
int nfrules_load(unsigned short port, struct ccvm_err *err);
