#pragma once
/*
 * The guest's network (docs/egress.md): a process forked by ccvm-init that
 * gives the guest routes without a NIC (a dummy interface carries the
 * default routes), redirects every TCP connection not to loopback to its
 * forwarder with nftables, runs a DNS stub on 127.0.0.1:53, and carries
 * both over the ccvm.net virtio-serial port to the host, which decides
 * and connects.  A refused connection is reset (a plaintext HTTP request
 * on it is answered 403 by the host) and explained in NET_LOG_PATH.  The
 * process never makes ccvm-init exit; it dies with the VM.
 */
#include <stdbool.h>

#define NET_PORT_NAME "ccvm.net"
#define NET_LOG_PATH  "/run/ccvm/egress.log"
#define NET_FWD_PORT  999 /* the forwarder on 127.0.0.1 and ::1 */

/* Forks the network process (after the root is mounted).  Never fails the
 * boot: problems are logged and the guest simply has no network. */
void net_start(void);

/* Waits up to timeout_ms for the routes, rules and stub to be in place
 * (call before the program starts).  true when they are. */
bool net_wait_ready(int timeout_ms);
