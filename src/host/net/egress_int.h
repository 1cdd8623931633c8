#pragma once
/*
 * What the egress relay's parts share (egress.h is the session's view):
 * egress.c runs the streams and the loop, egress_dns.c answers lookups.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns.h"
#include "net/apiproxy.h"
#include "net/audit.h"
#include "net/egress_policy.h"
#include "proto.h"
#include "stream.h"

struct dns_job {
	uint16_t id;
	uint8_t transport;
	struct dns_query q;
	int gai;
	struct dns_addr addrs[64];
	size_t n;
	int wfd;
};

struct eg {
	int net;
	struct egress_policy *p;
	struct proto_reader *rd;
	struct proto_writer wr;
	struct stream_table ch; /* struct hchan by stream id */
	int jobs[2];		/* finished dns_job pointers */
	unsigned dns_busy;
	bool failed;
	struct apiproxy *proxy; /* ccvm's API proxy, or NULL */
	struct audit *audit;	/* the session's audit log, or NULL */
	unsigned denying;	/* refused, waiting for first bytes (deny) */
};

/* Queues a frame to the guest (a full writer fails the relay). */
void egress_put(struct eg *e, uint8_t type, uint16_t chan, const void *d,
		size_t n);

/* egress_dns.c: a DNS_QUERY from the guest's stub, answered at once or by
 * a resolver thread; the answers of finished threads. */
void egress_dns_query(struct eg *e, const struct proto_msg *m);
void egress_dns_done(struct eg *e);
