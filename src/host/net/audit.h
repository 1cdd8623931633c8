#pragma once
/*
 * The egress audit log (issue 23): one JSON object per line for every DNS
 * lookup and every connection the guest makes, written by the egress relay
 * (egress.c).  No payloads.  One file per session, <id>.jsonl, mode 0600,
 * in $XDG_STATE_HOME/ccvm/ (an absolute XDG_STATE_HOME only), else
 * ~/.local/state/ccvm/ (0700).  The lines, keys in this order:
 *
 *   {"t":"2026-12-07T00:25:01.123Z","event":"session","session":"<id>",
 *    "project":"/abs/path","mode":"open"|"allowlist","allowlist":[...],
 *    "ports":[443,...]}                                   (the first line)
 *   {"t":...,"event":"lookup","name":"example.com","qtype":"A",
 *    "verdict":"allowed"|"blocked","reason":"...","answers":["1.2.3.4"]}
 *   {"t":<start>,"event":"connect","dest":<name the address was resolved
 *    for, or null>,"sni":<TLS server name or null>,"host":<HTTP Host or
 *    null>,"addr":"1.2.3.4","port":443,"verdict":...,"reason":...,
 *    "up":<bytes guest->out>,"down":<bytes in->guest>,"ms":<duration>}
 *   {"t":...,"event":"truncated","reason":"the log reached its cap of 16 MiB"}
 *
 * "t" is UTC with milliseconds.  A session id is the UTC time of the
 * start and 6 random hex digits, "20261207T002501Z-3fa9c1", so ids sort
 * by time.  Every string is ASCII: a byte that is not printable ASCII
 * (control characters, anything >= 0x80, so also invalid UTF-8 from the
 * guest) is written as '?', and a string is cut at AUDIT_STR_MAX bytes.
 *
 * Limits: a file stops at AUDIT_FILE_MAX bytes, with the "truncated" line
 * last (the file never exceeds the cap; a lower file size limit, ulimit
 * -f, lowers it).  Opening a session keeps the
 * AUDIT_KEEP - 1 newest session files and deletes older ones, and deletes
 * more of the oldest until the ones kept and a full new file fit in
 * AUDIT_TOTAL_MAX.  Only files named like a session (<id>.jsonl) are
 * counted or deleted.
 *
 * Writing never blocks the relay on anything but the file itself: each
 * line is one write(2) to an O_APPEND fd (lines of processes sharing it
 * never interleave), no fsync, and a failed or short write ends the log
 * quietly.  After a fork, only one process should write through the
 * struct (each copy counts its own bytes against the cap).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns.h"
#include "err.h"

/* "0": no audit log for the session (docs/egress-report.md). */
#define AUDIT_ENV_OFF	"CCVM_EGRESS_LOG"
#define AUDIT_FILE_MAX	(16u << 20)  /* bytes per session file */
#define AUDIT_KEEP	50	     /* session files kept, the new one too */
#define AUDIT_TOTAL_MAX (256u << 20) /* bytes of all session files */
#define AUDIT_STR_MAX	1024	     /* bytes of one string value */
#define AUDIT_ID_LEN	23	     /* "20261207T002501Z-3fa9c1" */

struct audit;

/*
 * The log directory: $XDG_STATE_HOME/ccvm when XDG_STATE_HOME is an
 * absolute path, else $HOME/.local/state/ccvm (HOME from the password
 * database when unset or relative).  0 or -errno with err set.
 */
int audit_dir(char *out, size_t n, struct ccvm_err *err);

/* true when name is a session file's name (<id>.jsonl). */
bool audit_is_session_file(const char *name);

/*
 * Starts a session's log in dir (NULL: audit_dir()).  Creates dir 0700
 * (its missing parents too), refusing a dir that is a symlink, is not a
 * directory, is not owned by the effective user or is writable by group or
 * others; rotates old sessions (above); creates <id>.jsonl with O_EXCL and
 * O_NOFOLLOW, 0600, and writes the session line.  project may be NULL
 * (null); allow[0..n_allow) are the allowlist's entries, ports[0..n_ports)
 * the allowed ports.  NULL with err set on failure: the caller warns and
 * runs without a log.
 */
struct audit *audit_open(const char *dir, const char *project, bool open_mode,
			 const char *const *allow, size_t n_allow,
			 const uint16_t *ports, size_t n_ports,
			 struct ccvm_err *err);

const char *audit_id(const struct audit *a);
const char *audit_path(const struct audit *a);
/* The file's fd (O_CLOEXEC), for a forked relay that keeps it open. */
int audit_fd(const struct audit *a);
/* In the relay's process, where the log's fd arrived as fd: writes go
 * there from now on (the old number is not this process's any more). */
void audit_set_fd(struct audit *a, int fd);

/* One lookup: qtype as text ("A", "AAAA", "TYPE65"...); answers[0..n) the
 * addresses given (none when blocked).  a may be NULL (no log). */
void audit_lookup(struct audit *a, const char *name, const char *qtype,
		  bool allowed, const char *reason,
		  const struct dns_addr *answers, size_t n);

/* One connection, when it ends (at once when refused).  NULL strings and
 * a NULL addr are written as null. */
struct audit_conn {
	const char *dest, *sni, *host;
	const struct dns_addr *addr;
	uint16_t port;
	bool allowed;
	const char *reason;
	uint64_t up, down;
	long long start_wall_ms; /* CLOCK_REALTIME ms; <= 0: now */
	long long ms;		 /* duration */
};
void audit_conn(struct audit *a, const struct audit_conn *c);

/* Closes the file and frees a (NULL is fine).  Writes nothing. */
void audit_close(struct audit *a);

/* true once the log has stopped (cap reached or a write failed). */
bool audit_stopped(const struct audit *a);

/*
 * For tests: the limits audit_open() applies from now on (0 for any of
 * them: its default above).
 */
void audit_set_limits(uint64_t file_max, unsigned keep, uint64_t total_max);
