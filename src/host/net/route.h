#pragma once
/*
 * Whether the kernel delivers to an address on this host: the route it
 * would use for a connection (rtnetlink RTM_GETROUTE, as `ip route get`),
 * so that every way an address becomes the host's counts, not only the
 * interface addresses: a local prefix route (`ip addr add 10.99.0.1/24 dev
 * lo` makes all of 10.99.0.0/24 local, "AnyIP"), `ip route add local ...`,
 * policy rules, an address gained a moment ago.
 */

/*
 * family AF_INET (addr 4 bytes) or AF_INET6 (16), network order.  1 when
 * the route is of type local, anycast or broadcast (delivered to this
 * host), 0 when it leads elsewhere or there is none, -errno when the kernel
 * could not be asked or answered something unexpected.
 */
int route_is_local(int family, const void *addr);
