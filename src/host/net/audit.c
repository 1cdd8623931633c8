/* The egress audit log: see audit.h. */
#define _GNU_SOURCE
#include "net/audit.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "net/egress_addr.h"
#include "sys/hostpath.h"
#include "util.h"

#define SUFFIX	   ".jsonl"
#define SUFFIX_LEN (sizeof(SUFFIX) - 1)
#define FILE_LEN   (AUDIT_ID_LEN + SUFFIX_LEN)
#define LINE_STACK 4096 /* lines longer than this are built on the heap */
#define TIME_BUF   64	/* for "2026-12-07T00:25:01.123Z" */
#define ID_TRIES   8	/* new random suffixes on a name clash */
/* Room kept for the "truncated" line (about 100 bytes) below the cap. */
#define TRUNC_RESERVE 192

struct audit {
	int fd;
	bool stopped;
	uint64_t size, max; /* bytes written; the cap */
	char id[AUDIT_ID_LEN + 1];
	char *path;
};

static uint64_t lim_file = AUDIT_FILE_MAX, lim_total = AUDIT_TOTAL_MAX;
static unsigned lim_keep = AUDIT_KEEP;

void audit_set_limits(uint64_t file_max, unsigned keep, uint64_t total_max)
{
	lim_file = file_max ? file_max : AUDIT_FILE_MAX;
	lim_keep = keep ? keep : AUDIT_KEEP;
	lim_total = total_max ? total_max : AUDIT_TOTAL_MAX;
}

/* ---- names and times ---------------------------------------------- */

int audit_dir(char *out, size_t n, struct ccvm_err *err)
{
	return hostpath_xdg_dir("XDG_STATE_HOME", ".local/state",
				"the audit log directory", out, n, err);
}

static bool all_in(const char *s, size_t n, const char *set)
{
	for (size_t i = 0; i < n; i++)
		if (!s[i] || !strchr(set, s[i]))
			return false;
	return true;
}

bool audit_is_session_file(const char *name)
{
	static const char digits[] = "0123456789", hex[] = "0123456789abcdef";
	return strlen(name) == FILE_LEN && all_in(name, 8, digits) &&
	       name[8] == 'T' && all_in(name + 9, 6, digits) &&
	       name[15] == 'Z' && name[16] == '-' &&
	       all_in(name + 17, 6, hex) &&
	       strcmp(name + AUDIT_ID_LEN, SUFFIX) == 0;
}

static long long wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "2026-12-07T00:25:01.123Z" into out (the epoch when out of range). */
static void format_time(long long ms, char out[TIME_BUF])
{
	if (ms < 0)
		ms = 0;
	time_t s = (time_t)(ms / 1000);
	struct tm tm;
	if (!gmtime_r(&s, &tm) || tm.tm_year + 1900 > 9999) {
		util_strlcpy(out, "1970-01-01T00:00:00.000Z", TIME_BUF);
		return;
	}
	snprintf(out, TIME_BUF, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
		 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		 tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

/* A new session id (the time now_ms and 6 random hex digits) into id. */
static int make_id(long long now_ms, char id[AUDIT_ID_LEN + 1],
		   struct ccvm_err *err)
{
	uint8_t rnd[3];
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
		return ccvm_err_sys(err, errno, "getrandom");
	time_t now = (time_t)(now_ms / 1000);
	struct tm tm;
	if (!gmtime_r(&now, &tm))
		return ccvm_err_set(err, EOVERFLOW,
				    "the clock is out of range");
	int r = snprintf(
	    id, AUDIT_ID_LEN + 1, "%04d%02d%02dT%02d%02d%02dZ-%02x%02x%02x",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
	    tm.tm_sec, rnd[0], rnd[1], rnd[2]);
	if (r != AUDIT_ID_LEN)
		return ccvm_err_set(err, EOVERFLOW,
				    "the clock is out of range");
	return 0;
}

/* ---- the directory ------------------------------------------------ */

/* Opens dir, creating it (and its parents) 0700; refuses what another
 * user could have planted or can change.  The fd, or -errno. */
static int open_dir(const char *dir, struct ccvm_err *err)
{
	char d[PATH_MAX];
	if (dir[0] != '/')
		return ccvm_err_set(err, EINVAL,
				    "audit log directory %s: not an absolute "
				    "path",
				    dir);
	if (util_strlcpy(d, dir, sizeof(d)) < 0)
		return ccvm_err_set(err, ENAMETOOLONG,
				    "audit log directory path too long");
	size_t len = strlen(d);
	while (len > 1 && d[len - 1] == '/')
		d[--len] = '\0';
	char *slash = strrchr(d, '/');
	if (slash && slash != d) {
		*slash = '\0';
		int r = util_mkdir_p(d, 0700);
		*slash = '/';
		if (r < 0)
			return ccvm_err_sys(err, -r, "creating %s's parents",
					    d);
	}
	bool created = mkdir(d, 0700) == 0;
	if (!created && errno != EEXIST)
		return ccvm_err_sys(err, errno, "creating %s", d);
	struct stat lst, st;
	if (lstat(d, &lst) < 0)
		return ccvm_err_sys(err, errno, "%s", d);
	if (S_ISLNK(lst.st_mode))
		return ccvm_err_set(err, ELOOP,
				    "%s is a symlink: not writing the audit "
				    "log through it",
				    d);
	if (!S_ISDIR(lst.st_mode))
		return ccvm_err_set(err, ENOTDIR, "%s is not a directory", d);
	autoclose int fd =
	    open(d, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return ccvm_err_sys(err, errno, "opening %s", d);
	if (fstat(fd, &st) < 0)
		return ccvm_err_sys(err, errno, "%s", d);
	if (st.st_dev != lst.st_dev || st.st_ino != lst.st_ino)
		return ccvm_err_set(err, EAGAIN, "%s changed while opened", d);
	if (st.st_uid != geteuid())
		return ccvm_err_set(err, EPERM,
				    "%s is owned by uid %u, not by us: not "
				    "writing the audit log there",
				    d, (unsigned)st.st_uid);
	/* Only what we made is set to 0700 (the umask may have taken more);
	 * a directory others may write to is refused. */
	if (created && fchmod(fd, 0700) < 0)
		return ccvm_err_sys(err, errno, "chmod %s", d);
	if (!created && (st.st_mode & 022))
		return ccvm_err_set(err, EPERM,
				    "%s is writable by group or others (mode "
				    "%04o): not writing the audit log there",
				    d, (unsigned)(st.st_mode & 07777));
	return steal_fd(&fd);
}

struct old_file {
	char name[FILE_LEN + 1];
	off_t size;
};

static int newest_first(const void *x, const void *y)
{
	const struct old_file *a = x, *b = y;
	return strcmp(b->name, a->name);
}

/* Lists the session files in dfd (regular files only) into *out. */
static int list_sessions(int dfd, struct old_file **out, size_t *n_out)
{
	int dup_fd = fcntl(dfd, F_DUPFD_CLOEXEC, 0);
	if (dup_fd < 0)
		return -errno;
	DIR *d = fdopendir(dup_fd);
	if (!d) {
		int e = errno;
		close(dup_fd);
		return -e;
	}
	rewinddir(d);
	autofree struct old_file *v = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	const struct dirent *e;
	while ((e = readdir(d))) {
		struct stat st;
		if (!audit_is_session_file(e->d_name) ||
		    fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct old_file *nv = realloc(v, ncap * sizeof(*v));
			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
			cap = ncap;
		}
		util_strlcpy(v[n].name, e->d_name, sizeof(v[n].name));
		v[n].size = st.st_size;
		n++;
	}
	closedir(d);
	if (r < 0)
		return r;
	*out = steal_ptr(&v);
	*n_out = n;
	return 0;
}

/*
 * Deletes the oldest session files in dfd: keeps the newest while fewer
 * than keep - 1 are kept and those kept plus a full new file (file_max)
 * stay within total_max; deletes that one and every older one.
 */
static int rotate(int dfd, unsigned keep, uint64_t file_max, uint64_t total_max)
{
	autofree struct old_file *v = NULL;
	size_t n = 0;
	int r = list_sessions(dfd, &v, &n);
	if (r < 0)
		return r;
	if (n)
		qsort(v, n, sizeof(*v), newest_first);
	uint64_t total = file_max;
	size_t kept = 0;
	bool full = total > total_max;
	for (size_t i = 0; i < n; i++) {
		uint64_t sz = (uint64_t)v[i].size;
		if (!full && kept + 1 < keep && total + sz <= total_max) {
			total += sz;
			kept++;
			continue;
		}
		full = true;
		if (unlinkat(dfd, v[i].name, 0) < 0 && errno != ENOENT)
			r = -errno;
	}
	return r;
}

/* ---- lines -------------------------------------------------------- */

/* A line being built: an object and whether anything failed. */
struct line {
	json_t *o;
	bool bad;
};

static void put(struct line *l, const char *key, json_t *v)
{
	if (!v || !l->o) {
		json_decref(v);
		l->bad = true;
		return;
	}
	if (json_object_set_new_nocheck(l->o, key, v) < 0)
		l->bad = true;
}

/* s as a JSON string of printable ASCII ('?' for any other byte), at most
 * AUDIT_STR_MAX bytes; null for NULL. */
static json_t *jstr(const char *s)
{
	if (!s)
		return json_null();
	char b[AUDIT_STR_MAX];
	size_t i;
	for (i = 0; i < sizeof(b) && s[i]; i++) {
		unsigned char c = (unsigned char)s[i];
		b[i] = c >= 0x20 && c < 0x7f ? (char)c : '?';
	}
	return json_stringn_nocheck(b, i);
}

static json_t *jtime(long long ms)
{
	char t[TIME_BUF];
	format_time(ms, t);
	return json_string_nocheck(t);
}

static json_t *jaddr(const struct dns_addr *addr)
{
	if (!addr)
		return json_null();
	char b[64];
	return jstr(egress_addr_str(addr, b, sizeof(b)));
}

static json_t *juint(uint64_t v)
{
	return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static struct line line_start(long long ms, const char *event)
{
	struct line l = {.o = json_object()};
	put(&l, "t", jtime(ms));
	put(&l, "event", json_string_nocheck(event));
	return l;
}

/* One write(2) of the whole line; anything else stops the log. */
static void write_line(struct audit *a, const char *buf, size_t n)
{
	ssize_t w;
	do
		w = write(a->fd, buf, n);
	while (w < 0 && errno == EINTR);
	if (w < 0 || (size_t)w != n) {
		a->stopped = true;
		return;
	}
	a->size += n;
}

static void write_truncated(struct audit *a)
{
	char why[96];
	if (a->max % (1u << 20) == 0)
		snprintf(why, sizeof(why),
			 "the log reached its cap of %llu MiB",
			 (unsigned long long)(a->max >> 20));
	else
		snprintf(why, sizeof(why),
			 "the log reached its cap of %llu bytes",
			 (unsigned long long)a->max);
	char b[256];
	struct line l = line_start(wall_ms(), "truncated");
	put(&l, "reason", json_string_nocheck(why));
	size_t n = l.bad ? 0 : json_dumpb(l.o, b, sizeof(b) - 1, JSON_COMPACT);
	json_decref(l.o);
	a->stopped = true;
	if (n == 0 || n > sizeof(b) - 1 || a->size + n + 1 > a->max)
		return;
	b[n++] = '\n';
	write_line(a, b, n);
}

/* Encodes l and writes it as one line, or the "truncated" line when it
 * would take the file past its cap (first: written anyway, the session
 * line).  Consumes l. */
static void emit(struct audit *a, struct line *l, bool first)
{
	char stack[LINE_STACK];
	autofree char *heap = NULL;
	char *b = stack;
	size_t n = 0;
	if (!l->bad) {
		n = json_dumpb(l->o, stack, sizeof(stack) - 1, JSON_COMPACT);
		if (n > sizeof(stack) - 1) {
			heap = malloc(n + 1);
			b = heap;
			if (!heap ||
			    json_dumpb(l->o, heap, n, JSON_COMPACT) != n)
				n = 0;
		}
	}
	json_decref(l->o);
	l->o = NULL;
	if (n == 0)
		return; /* out of memory: this line is lost, not the log */
	b[n++] = '\n';
	if (!first && a->size + n + TRUNC_RESERVE > a->max) {
		write_truncated(a);
		return;
	}
	write_line(a, b, n);
}

/* ---- the API ------------------------------------------------------ */

static int write_session(struct audit *a, long long now_ms, const char *project,
			 bool open_mode, const char *const *allow,
			 size_t n_allow, const uint16_t *ports, size_t n_ports)
{
	struct line l = line_start(now_ms, "session");
	put(&l, "session", json_string_nocheck(a->id));
	put(&l, "project", jstr(project));
	put(&l, "mode", json_string_nocheck(open_mode ? "open" : "allowlist"));
	json_t *al = json_array();
	for (size_t i = 0; al && i < n_allow; i++)
		if (json_array_append_new(al, jstr(allow[i])) < 0)
			l.bad = true;
	put(&l, "allowlist", al);
	json_t *pl = json_array();
	for (size_t i = 0; pl && i < n_ports; i++)
		if (json_array_append_new(pl, json_integer(ports[i])) < 0)
			l.bad = true;
	put(&l, "ports", pl);
	if (l.bad) {
		json_decref(l.o);
		return -ENOMEM;
	}
	emit(a, &l, true);
	return a->stopped ? -EIO : 0;
}

/* Creates <id>.jsonl in dfd under a fresh id; the fd or -errno. */
static int create_file(struct audit *a, long long now_ms, int dfd,
		       const char *dir, struct ccvm_err *err)
{
	for (int i = 0; i < ID_TRIES; i++) {
		int r = make_id(now_ms, a->id, err);
		if (r < 0)
			return r;
		char name[FILE_LEN + 1];
		snprintf(name, sizeof(name), "%s" SUFFIX, a->id);
		int fd = openat(dfd, name,
				O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				    O_CLOEXEC | O_APPEND,
				0600);
		if (fd < 0 && errno == EEXIST)
			continue;
		if (fd < 0)
			return ccvm_err_sys(err, errno, "creating %s/%s", dir,
					    name);
		free(a->path);
		a->path = util_path_join(dir, name);
		if (!a->path || fchmod(fd, 0600) < 0) {
			int e = a->path ? errno : ENOMEM;
			unlinkat(dfd, name, 0);
			close(fd);
			return ccvm_err_sys(err, e, "creating %s/%s", dir,
					    name);
		}
		return fd;
	}
	return ccvm_err_set(err, EEXIST, "%s: no free session file name", dir);
}

struct audit *audit_open(const char *dir, const char *project, bool open_mode,
			 const char *const *allow, size_t n_allow,
			 const uint16_t *ports, size_t n_ports,
			 struct ccvm_err *err)
{
	char def[PATH_MAX];
	if (!dir) {
		if (audit_dir(def, sizeof(def), err) < 0)
			return NULL;
		dir = def;
	}
	autoclose int dfd = open_dir(dir, err);
	if (dfd < 0)
		return NULL;
	/* A failed rotation leaves old files behind: not a reason to go
	 * without a log. */
	(void)rotate(dfd, lim_keep, lim_file, lim_total);
	struct audit *a = calloc(1, sizeof(*a));
	if (!a) {
		ccvm_err_set(err, ENOMEM, "out of memory");
		return NULL;
	}
	/* A file size limit (ulimit -f) below the cap would end the relay
	 * with SIGXFSZ: the cap comes down to it. */
	struct rlimit fsz;
	a->max = lim_file;
	if (getrlimit(RLIMIT_FSIZE, &fsz) == 0 &&
	    fsz.rlim_cur != RLIM_INFINITY && fsz.rlim_cur < a->max)
		a->max = fsz.rlim_cur;
	long long now = wall_ms();
	a->fd = create_file(a, now, dfd, dir, err);
	if (a->fd < 0) {
		free(a->path);
		free(a);
		return NULL;
	}
	int r = write_session(a, now, project, open_mode, allow, n_allow, ports,
			      n_ports);
	if (r < 0) {
		ccvm_err_sys(err, -r, "writing %s", a->path);
		unlinkat(dfd, strrchr(a->path, '/') + 1, 0);
		audit_close(a);
		return NULL;
	}
	return a;
}

const char *audit_id(const struct audit *a)
{
	return a->id;
}

const char *audit_path(const struct audit *a)
{
	return a->path;
}

int audit_fd(const struct audit *a)
{
	return a->fd;
}

void audit_set_fd(struct audit *a, int fd)
{
	a->fd = fd;
}

bool audit_stopped(const struct audit *a)
{
	return !a || a->stopped;
}

void audit_lookup(struct audit *a, const char *name, const char *qtype,
		  bool allowed, const char *reason,
		  const struct dns_addr *answers, size_t n)
{
	if (!a || a->stopped)
		return;
	struct line l = line_start(wall_ms(), "lookup");
	put(&l, "name", jstr(name));
	put(&l, "qtype", jstr(qtype));
	put(&l, "verdict",
	    json_string_nocheck(allowed ? "allowed" : "blocked"));
	put(&l, "reason", jstr(reason));
	json_t *ans = json_array();
	for (size_t i = 0; ans && i < n; i++)
		if (json_array_append_new(ans, jaddr(&answers[i])) < 0)
			l.bad = true;
	put(&l, "answers", ans);
	emit(a, &l, false);
}

void audit_conn(struct audit *a, const struct audit_conn *c)
{
	if (!a || a->stopped)
		return;
	struct line l = line_start(
	    c->start_wall_ms > 0 ? c->start_wall_ms : wall_ms(), "connect");
	put(&l, "dest", jstr(c->dest));
	put(&l, "sni", jstr(c->sni));
	put(&l, "host", jstr(c->host));
	put(&l, "addr", jaddr(c->addr));
	put(&l, "port", json_integer(c->port));
	put(&l, "verdict",
	    json_string_nocheck(c->allowed ? "allowed" : "blocked"));
	put(&l, "reason", jstr(c->reason));
	put(&l, "up", juint(c->up));
	put(&l, "down", juint(c->down));
	put(&l, "ms", json_integer(c->ms < 0 ? 0 : c->ms));
	emit(a, &l, false);
}

void audit_close(struct audit *a)
{
	if (!a)
		return;
	if (a->fd >= 0)
		close(a->fd);
	free(a->path);
	free(a);
}
