#pragma once
/*
 * The host end of the guest's network (issue 6, docs/egress.md): a process
 * of its own, forked by the session once QEMU runs, that speaks the
 * ccvm.net port.  For every NET_OPEN it asks the policy, connects
 * (non-blocking, EGRESS_CONNECT_TIMEOUT_MS) and relays with per-stream
 * windows; for every DNS_QUERY it asks the policy, resolves allowed names
 * with getaddrinfo (in a thread, so a slow resolver stalls no stream) and
 * answers.  It ends when the port closes and writes the exit summary
 * (egress_summary) to a pipe.
 */
#include <stdint.h>
#include <sys/types.h>

#include "net/apiproxy.h"
#include "net/audit.h"
#include "net/egress_policy.h"
#include "err.h"

#define EGRESS_CONNECT_TIMEOUT_MS 10000
#define EGRESS_MAX_STREAMS	  1024
#define EGRESS_DNS_THREADS	  16
#define EGRESS_DNS_TTL		  60
/* Allowlist mode: how long a connection allowed by a name waits for its
 * first bytes (a server-first protocol sends none) before it goes on. */
#define EGRESS_SNIFF_WAIT_MS 1000
/* Refused connections waiting for their first bytes (to answer an HTTP
 * request 403) at once; more are reset at once, so a guest opening refused
 * connections in a loop holds no more than this of the relay's memory. */
#define EGRESS_DENY_WAITING_MAX 64

/*
 * Relays until net_fd reaches end of file; writes the summary line (if
 * anything was blocked) to summary_fd.  With proxy, connections to
 * api.ccvm.internal:80 are served by ccvm's API proxy (apiproxy.h); with
 * audit, every lookup and connection is a line of the session's audit
 * log (audit.h).
 * 0 or -errno.
 */
int egress_run(int net_fd, struct egress_policy *p,
	       const struct apiproxy_conf *proxy, struct audit *audit,
	       int summary_fd);

/*
 * Forks the relay: the child keeps only net_fd, the write end of a new
 * pipe and stderr, dies with its parent (PR_SET_PDEATHSIG) and runs
 * egress_run.  *summary_fd gets the pipe's read end (the summary arrives
 * there when the child ends), *pid the child.  net_fd stays open in the
 * caller, which should close it.
 */
int egress_spawn(int net_fd, struct egress_policy *p,
		 const struct apiproxy_conf *proxy, struct audit *audit,
		 int *summary_fd, pid_t *pid, struct ccvm_err *err);

/*
 * Reads the child's summary (up to timeout_ms after the port closed),
 * reaps it (killing it after the timeout) and prints the summary to
 * stderr.  Closes summary_fd.
 */
void egress_finish(pid_t pid, int summary_fd, int timeout_ms);

/*
 * ANTHROPIC_BASE_URL: the endpoint the agent talks to.  Fills host (a name
 * or an address, brackets stripped; hostsz at least DNS_NAME_MAX + 1) and
 * port (scheme default when absent), and *guest_url (malloc'ed) with the
 * URL the guest gets: the same, except that a host loopback endpoint
 * (localhost, 127.0.0.0/8, [::1]) becomes host.ccvm.internal on the same
 * port, the host it is reachable as.  0, or -EINVAL for a URL that is not
 * http(s)://host[:port][/...] (user info is refused).
 */
int egress_base_url(const char *url, char *host, size_t hostsz, uint16_t *port,
		    char **guest_url);
