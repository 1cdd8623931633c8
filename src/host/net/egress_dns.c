#define _GNU_SOURCE
/*
 * The egress relay's DNS (egress_int.h, docs/egress.md "DNS stub"): every
 * name the guest looks up is the policy's decision; allowed names are
 * resolved with getaddrinfo in a thread each (at most EGRESS_DNS_THREADS),
 * so a slow resolver stalls no stream; the answers are remembered for the
 * connections that follow, and each lookup is a line of the audit log.
 */
#include "net/egress.h"
#include "net/egress_int.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <resolv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

/* --- DNS --------------------------------------------------------------- */

/* A lookup's line in the audit log. */
static void audit_dns(struct eg *e, const struct dns_query *q, bool allowed,
		      const char *reason, const struct dns_addr *a, size_t n)
{
	if (!e->audit)
		return;
	char t[8];
	const char *type = q->qtype == DNS_TYPE_A      ? "A"
			   : q->qtype == DNS_TYPE_AAAA ? "AAAA"
						       : t;
	snprintf(t, sizeof(t), "%u", (unsigned)q->qtype);
	audit_lookup(e->audit, q->name, type, allowed, reason, a, n);
}

static void dns_answer(struct eg *e, uint16_t id, uint8_t flags,
		       const struct dns_query *q, enum dns_rcode rc,
		       const struct dns_addr *a, size_t n, uint8_t transport)
{
	static uint8_t out[1 + DNS_TCP_MAX];
	size_t len = 0;
	out[0] = flags;
	if (dns_build_response(q, rc, a, n, EGRESS_DNS_TTL,
			       transport == PROTO_DNS_TCP ? DNS_TCP_MAX
							  : DNS_UDP_MAX,
			       out + 1, sizeof(out) - 1, &len) < 0)
		len = 0;
	egress_put(e, PROTO_DNS_ANSWER, id, out, 1 + len);
}

static void *dns_thread(void *arg)
{
	struct dns_job *j = arg;
	/* The name as given, never with the host's search list: a trailing
	 * dot would do that for DNS but glibc's files backend then misses
	 * /etc/hosts entries, so switch the search list off instead (_res is
	 * per thread). */
	res_init();
	_res.options &= ~(unsigned long)(RES_DNSRCH | RES_DEFNAMES);
	const char *name = j->q.name;
	struct addrinfo hints = {
	    .ai_family = j->q.qtype == DNS_TYPE_A ? AF_INET : AF_INET6,
	    .ai_socktype = SOCK_STREAM,
	};
	struct addrinfo *res = NULL;
	j->gai = getaddrinfo(name, NULL, &hints, &res);
	for (struct addrinfo *ai = res; ai && j->n < ARRAY_LEN(j->addrs);
	     ai = ai->ai_next) {
		struct dns_addr a = {.family = ai->ai_family};
		if (ai->ai_family == AF_INET)
			memcpy(a.bytes,
			       &((struct sockaddr_in *)ai->ai_addr)->sin_addr,
			       4);
		else if (ai->ai_family == AF_INET6)
			memcpy(a.bytes,
			       &((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr,
			       16);
		else
			continue;
		bool dup = false;
		for (size_t i = 0; i < j->n; i++)
			dup |= memcmp(&j->addrs[i], &a, sizeof(a)) == 0;
		if (!dup)
			j->addrs[j->n++] = a;
	}
	if (res)
		freeaddrinfo(res);
	if (write(j->wfd, &j, sizeof(j)) != sizeof(j)) {
		/* the relay is gone */
	}
	return NULL;
}

void egress_dns_query(struct eg *e, const struct proto_msg *m)
{
	static uint8_t out[1 + DNS_HEADER_LEN + 16];
	if (m->len < 1 + DNS_HEADER_LEN)
		return;
	uint8_t transport = m->data[0];
	const uint8_t *msg = m->data + 1;
	size_t len = m->len - 1;
	struct dns_query q;
	int r = dns_parse_query(msg, len, &q);
	if (r < 0) {
		enum dns_rcode rc =
		    r == -EOPNOTSUPP ? DNS_RCODE_NOTIMP : DNS_RCODE_FORMERR;
		size_t ol = 0;
		out[0] = 0;
		if (dns_build_error(msg, len, rc, out + 1, sizeof(out) - 1,
				    &ol) < 0)
			ol = 0;
		egress_put(e, PROTO_DNS_ANSWER, m->chan, out, 1 + ol);
		return;
	}
	enum egress_name_verdict v = egress_name_check(e->p, q.name);
	if (v == EGRESS_NAME_DENY) {
		egress_note_blocked(e->p, q.name, 0);
		audit_dns(e, &q, false, "blocked: not in egressAllowlist", NULL,
			  0);
		dns_answer(e, m->chan, PROTO_DNS_DENIED, &q, DNS_RCODE_NXDOMAIN,
			   NULL, 0, transport);
		return;
	}
	if (v == EGRESS_NAME_HOST_ALIAS || v == EGRESS_NAME_PROXY) {
		struct dns_addr a[2];
		if (v == EGRESS_NAME_PROXY)
			egress_proxy_addrs(a);
		else
			egress_host_alias_addrs(a);
		audit_dns(e, &q, true, "allowed: ccvm's own name", a, 2);
		dns_answer(e, m->chan, 0, &q, DNS_RCODE_NOERROR, a, 2,
			   transport);
		return;
	}
	if ((q.qtype != DNS_TYPE_A && q.qtype != DNS_TYPE_AAAA) ||
	    q.qclass != DNS_CLASS_IN) {
		dns_answer(e, m->chan, 0, &q, DNS_RCODE_NOERROR, NULL, 0,
			   transport);
		return;
	}
	struct dns_job *j = NULL;
	pthread_t t;
	pthread_attr_t at;
	if (e->dns_busy < EGRESS_DNS_THREADS && (j = calloc(1, sizeof(*j)))) {
		j->id = m->chan;
		j->transport = transport;
		j->q = q;
		j->wfd = e->jobs[1];
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		pthread_attr_setstacksize(&at, 256 * 1024);
		if (pthread_create(&t, &at, dns_thread, j) == 0) {
			e->dns_busy++;
			pthread_attr_destroy(&at);
			return;
		}
		pthread_attr_destroy(&at);
		free(j);
	}
	dns_answer(e, m->chan, 0, &q, DNS_RCODE_SERVFAIL, NULL, 0, transport);
}

void egress_dns_done(struct eg *e)
{
	struct dns_job *j;
	while (read(e->jobs[0], &j, sizeof(j)) == sizeof(j)) {
		e->dns_busy--;
		enum dns_rcode rc = DNS_RCODE_NOERROR;
		if (j->gai == EAI_NONAME)
			rc = DNS_RCODE_NXDOMAIN;
		else if (j->gai != 0 && j->gai != EAI_NODATA &&
			 j->gai != EAI_ADDRFAMILY)
			rc = DNS_RCODE_SERVFAIL;
		if (rc == DNS_RCODE_NOERROR && j->n)
			egress_note_resolved(e->p, j->q.name, j->addrs, j->n);
		audit_dns(e, &j->q, true,
			  rc == DNS_RCODE_NOERROR    ? "allowed: resolved"
			  : rc == DNS_RCODE_NXDOMAIN ? "allowed: no such name"
						     : "allowed: lookup failed",
			  j->addrs, rc == DNS_RCODE_NOERROR ? j->n : 0);
		dns_answer(e, j->id, 0, &j->q, rc, j->addrs,
			   rc == DNS_RCODE_NOERROR ? j->n : 0, j->transport);
		free(j);
	}
}
