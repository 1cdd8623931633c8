#pragma once
/*
 * Small helpers shared by host and guest: ownership via cleanup
 * attributes, fd I/O that handles EINTR and short transfers, bounded
 * string building and the one path builder.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "err.h"

void util_freep(void *p);
void util_closep(int *fd);
void util_fclosep(FILE **f);

#define autofree   __attribute__((cleanup(util_freep)))
#define autoclose  __attribute__((cleanup(util_closep)))
#define autofclose __attribute__((cleanup(util_fclosep)))

/* Hand ownership on: returns the value and clears the variable. */
#define steal_ptr(pp)                                                          \
	({                                                                     \
		__typeof__(*(pp)) steal_tmp_ = *(pp);                          \
		*(pp) = NULL;                                                  \
		steal_tmp_;                                                    \
	})
#define steal_fd(fdp)                                                          \
	({                                                                     \
		int steal_tmp_ = *(fdp);                                       \
		*(fdp) = -1;                                                   \
		steal_tmp_;                                                    \
	})

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* write(2)/read(2) the whole buffer, retrying on EINTR and short counts.
 * util_read_all returns bytes read (< len only at EOF) or -errno. */
int util_write_all(int fd, const void *buf, size_t len);
ssize_t util_read_all(int fd, void *buf, size_t len);

/* sendmsg(2) of len > 0 bytes with fd attached (SCM_RIGHTS): bytes sent
 * (the fd went with the first), or -errno.  No SIGPIPE. */
ssize_t util_send_fd(int sock, const void *buf, size_t len, int fd);

/* Reads a whole file of at most max bytes into a NUL-terminated buffer. */
int util_read_file(const char *path, size_t max, char **out, size_t *out_len,
		   struct ccvm_err *err);

/* malloc'ed printf; NULL on failure. */
char *util_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Copies src into dst of size n, always NUL-terminating; returns -ENAMETOOLONG
 * (and leaves a truncated copy) when it does not fit. */
int util_strlcpy(char *dst, const char *src, size_t n);

/*
 * The one path builder: joins base and rel with a single '/', rejecting a
 * rel that is absolute, empty, or has a ".." component.  Returns a malloc'ed
 * string or NULL with errno set (EINVAL for a rejected rel).
 */
char *util_path_join(const char *base, const char *rel);

/* mkdir -p with mode for each created component; 0 or -errno. */
int util_mkdir_p(const char *path, mode_t mode);

/* rm -rf that never follows symlinks and stays on one file system. */
int util_rm_rf(const char *path);

/* true when s parses fully as a decimal integer within [min, max]. */
bool util_parse_long(const char *s, long min, long max, long *out);

/* Sets O_NONBLOCK / FD_CLOEXEC; 0 or -errno. */
int util_set_nonblock(int fd, bool on);
int util_set_cloexec(int fd, bool on);

/* Monotonic clock in milliseconds. */
long long util_now_ms(void);

/* First thing in a child just forked by parent: every signal unblocked,
 * and SIGKILL when the parent dies (PR_SET_PDEATHSIG).  false when the
 * parent is already gone: the child should _exit. */
bool util_child_dies_with(pid_t parent);

/* realloc for buffers that held secrets: a new cap-byte buffer holding the
 * first keep bytes of old (which may be NULL); old's first wipe bytes are
 * zeroed and old freed.  NULL when out of memory, old then untouched. */
void *util_regrow(void *old, size_t keep, size_t wipe, size_t cap);

/*
 * Writes s into buf (n >= 32) for a one-line message: printable ASCII
 * kept, \n \t \\ escaped, other bytes as \xNN, cut with "..." when
 * buf runs short.  With quote, adds double quotes and escapes those inside.
 * Returns buf (empty when n < 32).
 */
const char *util_escape(char *buf, size_t n, const char *s, bool quote);

/*
 * The name Claude Code gives the directory of a project's transcripts
 * under ~/.claude/projects: the project path with every UTF-16 code unit
 * that is not an ASCII letter or digit replaced by '-' (so one '-' per
 * character, two for one outside the BMP); past 200 characters, the first
 * 200, '-' and the base-36 absolute value of the path's 32-bit
 * h = 31 * h + unit hash.  Bytes that are not UTF-8 count as one character
 * each.  Malloc'ed; NULL on ENOMEM.
 */
char *util_claude_project_name(const char *path);
