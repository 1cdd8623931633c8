/* Unit tests for the egress audit log's writer (src/host/net/audit.c). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "net/audit.h"
#include "util.h"

static char base[64];

static int setup(void **state)
{
	(void)state;
	audit_set_limits(0, 0, 0);
	snprintf(base, sizeof(base), "/tmp/ccvm-audit.XXXXXX");
	return mkdtemp(base) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	audit_set_limits(0, 0, 0);
	return util_rm_rf(base) < 0 ? -1 : 0;
}

/* base/rel in a static buffer (one of two, used in turn). */
static const char *at(const char *rel)
{
	static char p[2][PATH_MAX];
	static int i;
	i ^= 1;
	snprintf(p[i], sizeof(p[i]), "%s/%s", base, rel);
	return p[i];
}

static mode_t mode_of(const char *path)
{
	struct stat st;
	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode & 07777;
}

static struct dns_addr addr(const char *s)
{
	struct dns_addr a = {.family = strchr(s, ':') ? AF_INET6 : AF_INET};
	assert_int_equal(inet_pton(a.family, s, a.bytes), 1);
	return a;
}

/* The lines of a file, parsed (strictly, each alone); *n their count.
 * Fails the test on a line that is not one JSON object ending in '\n'. */
static json_t **read_lines(const char *path, size_t *n)
{
	char *text = NULL;
	size_t len = 0;
	struct ccvm_err err = {0};
	if (util_read_file(path, 64u << 20, &text, &len, &err) < 0)
		fail_msg("%s", err.msg);
	size_t cap = 16, k = 0;
	json_t **v = malloc(cap * sizeof(*v));
	assert_non_null(v);
	char *p = text;
	while (p < text + len) {
		char *nl = memchr(p, '\n', (size_t)(text + len - p));
		if (!nl)
			fail_msg("a last line without a newline: %s", p);
		json_error_t je;
		json_t *o = json_loadb(p, (size_t)(nl - p),
				       JSON_REJECT_DUPLICATES, &je);
		if (!o || !json_is_object(o))
			fail_msg("line %zu: %s: %.*s", k + 1, je.text,
				 (int)(nl - p), p);
		if (k == cap) {
			cap *= 2;
			v = realloc(v, cap * sizeof(*v));
			assert_non_null(v);
		}
		v[k++] = o;
		p = nl + 1;
	}
	free(text);
	*n = k;
	return v;
}

static void free_lines(json_t **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		json_decref(v[i]);
	free(v);
}

/* o has exactly keys, in that order (NULL-terminated). */
static void check_keys(const json_t *o, const char *const *keys)
{
	void *it = json_object_iter((json_t *)o);
	size_t i = 0;
	for (; keys[i]; i++, it = json_object_iter_next((json_t *)o, it)) {
		if (!it)
			fail_msg("key %s missing", keys[i]);
		assert_string_equal(json_object_iter_key(it), keys[i]);
	}
	if (it)
		fail_msg("extra key %s", json_object_iter_key(it));
}

static const char *str(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_string(v))
		fail_msg("%s is not a string", key);
	return json_string_value(v);
}

static long long num(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	if (!json_is_integer(v))
		fail_msg("%s is not an integer", key);
	return json_integer_value(v);
}

static bool is_null(const json_t *o, const char *key)
{
	return json_is_null(json_object_get(o, key));
}

/* "2026-12-07T00:25:01.123Z" within a minute of now. */
static void check_time(const char *t)
{
	assert_int_equal(strlen(t), 24);
	struct tm tm = {0};
	const char *end = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm);
	assert_non_null(end);
	assert_true(end[0] == '.' && end[4] == 'Z');
	long long d = (long long)timegm(&tm) - (long long)time(NULL);
	assert_true(d > -60 && d < 60);
}

static const char *const session_keys[] = {
    "t", "event", "session", "project", "mode", "allowlist", "ports", NULL};
static const char *const lookup_keys[] = {
    "t", "event", "name", "qtype", "verdict", "reason", "answers", NULL};
static const char *const conn_keys[] = {
    "t",       "event",	 "dest", "sni",	 "host", "addr", "port",
    "verdict", "reason", "up",	 "down", "ms",	 NULL};

static struct audit *open_in(const char *dir)
{
	static const char *const allow[] = {"example.com", "*.github.com",
					    "10.0.0.0/8"};
	static const uint16_t ports[] = {443, 80};
	struct ccvm_err err = {0};
	struct audit *a =
	    audit_open(dir, "/home/u/proj", false, allow, 3, ports, 2, &err);
	if (!a)
		fail_msg("audit_open: %s", err.msg);
	return a;
}

static void test_session_line_and_modes(void **state)
{
	(void)state;
	/* Missing parents are made too. */
	const char *dir = at("state/deep/ccvm");
	struct audit *a = open_in(dir);
	assert_int_equal(mode_of(dir), 0700);
	assert_int_equal(mode_of(at("state/deep")), 0700);
	assert_int_equal(mode_of(audit_path(a)), 0600);
	char name[64];
	snprintf(name, sizeof(name), "%s.jsonl", audit_id(a));
	assert_true(audit_is_session_file(name));
	char want[PATH_MAX];
	snprintf(want, sizeof(want), "%s/%s", dir, name);
	assert_string_equal(audit_path(a), want);
	/* The fd appends and is not inherited across exec. */
	int fl = fcntl(audit_fd(a), F_GETFL);
	assert_true(fl & O_APPEND);
	assert_true(fcntl(audit_fd(a), F_GETFD) & FD_CLOEXEC);
	/* The id's time is now, in UTC. */
	struct tm tm = {0};
	assert_non_null(strptime(audit_id(a), "%Y%m%dT%H%M%SZ", &tm));
	long long d = (long long)timegm(&tm) - (long long)time(NULL);
	assert_true(d > -60 && d <= 0);

	size_t n;
	json_t **v = read_lines(audit_path(a), &n);
	assert_int_equal(n, 1);
	check_keys(v[0], session_keys);
	check_time(str(v[0], "t"));
	assert_string_equal(str(v[0], "event"), "session");
	assert_string_equal(str(v[0], "session"), audit_id(a));
	assert_string_equal(str(v[0], "project"), "/home/u/proj");
	assert_string_equal(str(v[0], "mode"), "allowlist");
	const json_t *al = json_object_get(v[0], "allowlist");
	assert_int_equal(json_array_size(al), 3);
	assert_string_equal(json_string_value(json_array_get(al, 1)),
			    "*.github.com");
	const json_t *pl = json_object_get(v[0], "ports");
	assert_int_equal(json_array_size(pl), 2);
	assert_int_equal(json_integer_value(json_array_get(pl, 0)), 443);
	assert_int_equal(json_integer_value(json_array_get(pl, 1)), 80);
	free_lines(v, n);
	/* The session line's "t" and the id are the same second. */
	audit_close(a);

	/* Open mode, no project, nothing listed; two sessions, two files. */
	struct ccvm_err err = {0};
	a = audit_open(dir, NULL, true, NULL, 0, NULL, 0, &err);
	assert_non_null(a);
	v = read_lines(audit_path(a), &n);
	assert_int_equal(n, 1);
	check_keys(v[0], session_keys);
	assert_true(is_null(v[0], "project"));
	assert_string_equal(str(v[0], "mode"), "open");
	assert_int_equal(json_array_size(json_object_get(v[0], "allowlist")),
			 0);
	assert_int_equal(json_array_size(json_object_get(v[0], "ports")), 0);
	free_lines(v, n);
	audit_close(a);

	/* The umask does not loosen or tighten the modes. */
	mode_t old = umask(0277);
	a = open_in(at("umask/ccvm"));
	umask(old);
	assert_int_equal(mode_of(at("umask/ccvm")), 0700);
	assert_int_equal(mode_of(audit_path(a)), 0600);
	audit_close(a);
	audit_close(NULL);
}

static void test_lookup_and_conn_lines(void **state)
{
	(void)state;
	struct audit *a = open_in(at("ccvm"));
	struct dns_addr ans[2] = {addr("93.184.215.14"),
				  addr("2606:2800:21f:cb07::1")};
	audit_lookup(a, "example.com", "A", true, "listed: example.com", ans,
		     2);
	audit_lookup(a, "evil.test", "AAAA", false, "not in the allowlist",
		     NULL, 0);
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	long long start = (long long)ts.tv_sec * 1000 - 1500;
	struct audit_conn c = {.dest = "example.com",
			       .sni = "example.com",
			       .host = NULL,
			       .addr = &ans[0],
			       .port = 443,
			       .allowed = true,
			       .reason = "resolved for example.com",
			       .up = 1234,
			       .down = 5000000000ull,
			       .start_wall_ms = start,
			       .ms = 1499};
	audit_conn(a, &c);
	struct audit_conn r = {
	    .addr = &ans[1], .port = 22, .reason = "port 22 is not allowed"};
	audit_conn(a, &r);
	/* A line longer than the stack buffer: 300 IPv6 answers. */
	struct dns_addr many[300];
	for (int i = 0; i < 300; i++) {
		many[i] = addr("2001:db8:1234:5678:9abc:def0:1234:0");
		many[i].bytes[15] = (uint8_t)i;
		many[i].bytes[14] = (uint8_t)(i >> 8);
	}
	audit_lookup(a, "many.example.com", "AAAA", true, "listed", many, 300);
	audit_lookup(NULL, "x", "A", true, "", NULL, 0); /* no log: no-op */
	audit_conn(NULL, &r);
	assert_false(audit_stopped(a));

	size_t n;
	const json_t *av;
	json_t **v = read_lines(audit_path(a), &n);
	assert_int_equal(n, 6);
	check_keys(v[5], lookup_keys);
	av = json_object_get(v[5], "answers");
	assert_int_equal(json_array_size(av), 300);
	assert_string_equal(json_string_value(json_array_get(av, 299)),
			    "2001:db8:1234:5678:9abc:def0:1234:12b");
	check_keys(v[1], lookup_keys);
	check_time(str(v[1], "t"));
	assert_string_equal(str(v[1], "event"), "lookup");
	assert_string_equal(str(v[1], "name"), "example.com");
	assert_string_equal(str(v[1], "qtype"), "A");
	assert_string_equal(str(v[1], "verdict"), "allowed");
	assert_string_equal(str(v[1], "reason"), "listed: example.com");
	av = json_object_get(v[1], "answers");
	assert_int_equal(json_array_size(av), 2);
	assert_string_equal(json_string_value(json_array_get(av, 0)),
			    "93.184.215.14");
	assert_string_equal(json_string_value(json_array_get(av, 1)),
			    "2606:2800:21f:cb07::1");

	check_keys(v[2], lookup_keys);
	assert_string_equal(str(v[2], "qtype"), "AAAA");
	assert_string_equal(str(v[2], "verdict"), "blocked");
	assert_string_equal(str(v[2], "reason"), "not in the allowlist");
	assert_int_equal(json_array_size(json_object_get(v[2], "answers")), 0);

	check_keys(v[3], conn_keys);
	/* "t" is the connection's start, to the millisecond. */
	char want[32];
	time_t s = (time_t)(start / 1000);
	struct tm tm;
	gmtime_r(&s, &tm);
	strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(want + 19, sizeof(want) - 19, ".%03dZ", (int)(start % 1000));
	assert_string_equal(str(v[3], "t"), want);
	assert_string_equal(str(v[3], "event"), "connect");
	assert_string_equal(str(v[3], "dest"), "example.com");
	assert_string_equal(str(v[3], "sni"), "example.com");
	assert_true(is_null(v[3], "host"));
	assert_string_equal(str(v[3], "addr"), "93.184.215.14");
	assert_int_equal(num(v[3], "port"), 443);
	assert_string_equal(str(v[3], "verdict"), "allowed");
	assert_string_equal(str(v[3], "reason"), "resolved for example.com");
	assert_int_equal(num(v[3], "up"), 1234);
	assert_int_equal(num(v[3], "down"), 5000000000ll);
	assert_int_equal(num(v[3], "ms"), 1499);

	check_keys(v[4], conn_keys);
	check_time(str(v[4], "t")); /* no start given: now */
	assert_true(is_null(v[4], "dest"));
	assert_true(is_null(v[4], "sni"));
	assert_true(is_null(v[4], "host"));
	assert_string_equal(str(v[4], "addr"), "2606:2800:21f:cb07::1");
	assert_int_equal(num(v[4], "port"), 22);
	assert_string_equal(str(v[4], "verdict"), "blocked");
	assert_int_equal(num(v[4], "up"), 0);
	assert_int_equal(num(v[4], "ms"), 0);
	free_lines(v, n);
	audit_close(a);
}

static void test_hostile_strings(void **state)
{
	(void)state;
	struct audit *a = open_in(at("ccvm"));
	const char *evil = "a\"b\nc\r\x1b[2J\x80\xff\xc3\xa9\\d\",\"x\":\"";
	audit_lookup(a, evil, "A\n", false, evil, NULL, 0);
	char long_name[5000];
	memset(long_name, 'x', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	struct audit_conn c = {.dest = evil,
			       .sni = long_name,
			       .host = "h\x7fost\t",
			       .port = 80,
			       .reason = "Host h?ost? is not allowed"};
	audit_conn(a, &c);

	size_t n;
	json_t **v = read_lines(audit_path(a), &n);
	assert_int_equal(n, 3); /* so no newline came through */
	const char *want = "a\"b?c??[2J????\\d\",\"x\":\"";
	check_keys(v[1], lookup_keys);
	assert_string_equal(str(v[1], "name"), want);
	assert_string_equal(str(v[1], "qtype"), "A?");
	assert_string_equal(str(v[1], "reason"), want);
	check_keys(v[2], conn_keys);
	assert_string_equal(str(v[2], "dest"), want);
	assert_int_equal(strlen(str(v[2], "sni")), AUDIT_STR_MAX);
	assert_string_equal(str(v[2], "host"), "h?ost?");
	assert_true(is_null(v[2], "addr"));
	free_lines(v, n);

	/* Every byte of the file is printable ASCII or a newline. */
	char *text;
	size_t len;
	assert_int_equal(
	    util_read_file(audit_path(a), 1u << 20, &text, &len, NULL), 0);
	for (size_t i = 0; i < len; i++)
		assert_true(text[i] == '\n' ||
			    (text[i] >= 0x20 && text[i] < 0x7f));
	free(text);
	audit_close(a);
}

/* Fills a log capped at cap bytes (by rlimit instead of the limits when
 * fsize); checks the cap and the last line. */
static void fill_to_cap(uint64_t cap, bool fsize, const char *reason)
{
	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	if (fsize) {
		lim.rlim_cur = cap;
		assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	} else {
		audit_set_limits(cap, 0, 0);
	}
	struct audit *a = open_in(at("ccvm"));
	struct dns_addr ans = addr("192.0.2.7");
	size_t tries = 0;
	while (!audit_stopped(a)) {
		audit_lookup(a, "www.example.com", "A", true, "listed", &ans,
			     1);
		assert_true(++tries < cap / 50);
	}
	struct stat st;
	assert_int_equal(stat(audit_path(a), &st), 0);
	assert_true((uint64_t)st.st_size <= cap);
	assert_true((uint64_t)st.st_size > cap - 512);
	/* Nothing more is written. */
	audit_lookup(a, "late.example.com", "A", true, "listed", NULL, 0);
	struct audit_conn c = {.port = 1};
	audit_conn(a, &c);
	struct stat st2;
	assert_int_equal(stat(audit_path(a), &st2), 0);
	assert_int_equal(st2.st_size, st.st_size);

	size_t n;
	json_t **v = read_lines(audit_path(a), &n);
	assert_int_equal(n, tries + 1); /* the session, tries - 1, truncated */
	assert_string_equal(str(v[n - 2], "event"), "lookup");
	check_keys(v[n - 1],
		   (const char *const[]){"t", "event", "reason", NULL});
	check_time(str(v[n - 1], "t"));
	assert_string_equal(str(v[n - 1], "event"), "truncated");
	assert_string_equal(str(v[n - 1], "reason"), reason);
	free_lines(v, n);
	audit_close(a);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	util_rm_rf(at("ccvm"));
}

static void test_cap(void **state)
{
	(void)state;
	fill_to_cap(4096, false, "the log reached its cap of 4096 bytes");
	fill_to_cap(1u << 20, false, "the log reached its cap of 1 MiB");
	/* ulimit -f below the cap: the cap, not SIGXFSZ (which would end
	 * this test, as it would the relay). */
	fill_to_cap(8192, true, "the log reached its cap of 8192 bytes");
}

/* A write that fails or comes up short ends the log, quietly. */
static void test_short_write(void **state)
{
	(void)state;
	struct audit *a = open_in(at("ccvm"));
	struct stat st;
	assert_int_equal(fstat(audit_fd(a), &st), 0);
	struct rlimit old, lim;
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = (rlim_t)st.st_size + 20; /* a lookup line is longer */
	void (*oldsig)(int) = signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	audit_lookup(a, "example.com", "A", true, "listed", NULL, 0);
	assert_true(audit_stopped(a));
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, oldsig);
	audit_lookup(a, "example.com", "A", true, "listed", NULL, 0);
	struct stat st2;
	assert_int_equal(fstat(audit_fd(a), &st2), 0);
	assert_int_equal(st2.st_size, st.st_size + 20);
	audit_close(a);
}

/* dir/<id>.jsonl of size bytes, ids counting up from 2020. */
static void fake_session(const char *dir, int i, off_t size)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/20200101T%06dZ-%06x.jsonl", dir, i, i);
	int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, size), 0);
	close(fd);
}

static bool exists_fake(const char *dir, int i)
{
	char p[PATH_MAX];
	snprintf(p, sizeof(p), "%s/20200101T%06dZ-%06x.jsonl", dir, i, i);
	return access(p, F_OK) == 0;
}

static size_t count_sessions(const char *dir)
{
	size_t n = 0;
	for (int i = 0; i < 100; i++)
		n += exists_fake(dir, i);
	return n;
}

static void test_rotation_keep(void **state)
{
	(void)state;
	const char *dir = at("ccvm");
	assert_int_equal(util_mkdir_p(dir, 0700), 0);
	for (int i = 0; i < 60; i++)
		fake_session(dir, i, (off_t)(i + 1) * 1000);
	/* Not session files: left alone, even when named like one. */
	char p[PATH_MAX], q[PATH_MAX];
	snprintf(p, sizeof(p), "%s/notes.jsonl", dir);
	close(open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	snprintf(p, sizeof(p), "%s/20000101T000000Z-000000.jsonl", dir);
	snprintf(q, sizeof(q), "%s/target", base);
	close(open(q, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	assert_int_equal(symlink(q, p), 0);

	struct audit *a = open_in(dir);
	/* The 49 newest and the new one: 50. */
	assert_int_equal(count_sessions(dir), 49);
	for (int i = 0; i < 60; i++)
		assert_int_equal(exists_fake(dir, i), i >= 11);
	assert_int_equal(access(audit_path(a), F_OK), 0);
	snprintf(p, sizeof(p), "%s/notes.jsonl", dir);
	assert_int_equal(access(p, F_OK), 0);
	snprintf(p, sizeof(p), "%s/20000101T000000Z-000000.jsonl", dir);
	assert_int_equal(access(p, F_OK), 0); /* the symlink */
	assert_int_equal(access(q, F_OK), 0); /* and its target */
	audit_close(a);

	/* Another session: the oldest kept one goes, and the first
	 * session's file stays (it is the newest). */
	a = open_in(dir);
	assert_int_equal(count_sessions(dir), 48);
	assert_false(exists_fake(dir, 11));
	audit_close(a);

	/* A smaller keep, as a test hook. */
	audit_set_limits(0, 5, 0);
	a = open_in(dir);
	assert_int_equal(count_sessions(dir), 2); /* and 2 real ones */
	assert_true(exists_fake(dir, 58) && exists_fake(dir, 59));
	audit_close(a);
}

static void test_rotation_total(void **state)
{
	(void)state;
	const char *dir = at("ccvm");
	assert_int_equal(util_mkdir_p(dir, 0700), 0);
	for (int i = 0; i < 60; i++)
		fake_session(dir, i, 10000);
	/* Kept: the newest whose sizes and a full new file fit in 200000:
	 * 19 of them. */
	audit_set_limits(10000, 0, 200000);
	struct audit *a = open_in(dir);
	assert_int_equal(count_sessions(dir), 19);
	for (int i = 0; i < 60; i++)
		assert_int_equal(exists_fake(dir, i), i >= 41);
	audit_close(a);

	/* Growing sizes: one big old file ends what is kept, even when
	 * smaller older ones would still fit. */
	const char *dir2 = at("ccvm2");
	assert_int_equal(util_mkdir_p(dir2, 0700), 0);
	for (int i = 0; i < 60; i++)
		fake_session(dir2, i, i == 57 ? 190000 : 1000);
	a = open_in(dir2);
	assert_int_equal(count_sessions(dir2), 2);
	assert_true(exists_fake(dir2, 58) && exists_fake(dir2, 59));
	audit_close(a);
}

static void test_dir_refused(void **state)
{
	(void)state;
	struct ccvm_err err = {0};
	/* A symlink to a directory of ours. */
	char real[PATH_MAX];
	snprintf(real, sizeof(real), "%s", at("real"));
	assert_int_equal(mkdir(real, 0700), 0);
	assert_int_equal(symlink(real, at("link")), 0);
	assert_null(audit_open(at("link"), "/p", true, NULL, 0, NULL, 0, &err));
	assert_int_equal(err.code, -ELOOP);
	assert_non_null(strstr(err.msg, "symlink"));
	/* ... also as the last component with a trailing slash. */
	assert_null(
	    audit_open(at("link/"), "/p", true, NULL, 0, NULL, 0, &err));
	assert_int_equal(err.code, -ELOOP);
	assert_int_equal(rmdir(real), 0); /* still empty: nothing written */

	/* A file, a relative path. */
	close(open(at("file"), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
	assert_null(audit_open(at("file"), "/p", true, NULL, 0, NULL, 0, &err));
	assert_int_equal(err.code, -ENOTDIR);
	assert_null(audit_open("rel/ccvm", "/p", true, NULL, 0, NULL, 0, &err));
	assert_int_equal(err.code, -EINVAL);

	/* Others may write to it. */
	const char *open_dir = at("loose");
	assert_int_equal(mkdir(open_dir, 0700), 0);
	assert_int_equal(chmod(open_dir, 0777), 0);
	assert_null(audit_open(open_dir, "/p", true, NULL, 0, NULL, 0, &err));
	assert_int_equal(err.code, -EPERM);
	/* A group-readable one of ours is fine. */
	assert_int_equal(chmod(open_dir, 0750), 0);
	struct audit *a = open_in(open_dir);
	audit_close(a);

	/* Somebody else's (root can make one). */
	if (geteuid() != 0)
		return;
	const char *theirs = at("theirs");
	assert_int_equal(mkdir(theirs, 0700), 0);
	assert_int_equal(chown(theirs, 65534, 65534), 0);
	assert_null(audit_open(theirs, "/p", true, NULL, 0, NULL, 0, &err));
	assert_int_equal(err.code, -EPERM);
	assert_non_null(strstr(err.msg, "owned by uid 65534"));
}

static void test_default_dir(void **state)
{
	(void)state;
	char *old_xdg = getenv("XDG_STATE_HOME"), *old_home = getenv("HOME");
	old_xdg = old_xdg ? strdup(old_xdg) : NULL;
	old_home = old_home ? strdup(old_home) : NULL;
	char d[PATH_MAX], want[PATH_MAX];
	struct ccvm_err err = {0};

	/* A relative XDG_STATE_HOME does not count. */
	setenv("XDG_STATE_HOME", "rel/state", 1);
	setenv("HOME", base, 1);
	assert_int_equal(audit_dir(d, sizeof(d), &err), 0);
	snprintf(want, sizeof(want), "%s/.local/state/ccvm", base);
	assert_string_equal(d, want);
	struct audit *a = audit_open(NULL, "/p", true, NULL, 0, NULL, 0, &err);
	assert_non_null(a);
	assert_int_equal(strncmp(audit_path(a), want, strlen(want)), 0);
	assert_int_equal(mode_of(want), 0700);
	assert_int_equal(mode_of(at(".local")), 0700);
	audit_close(a);
	unsetenv("XDG_STATE_HOME");
	assert_int_equal(audit_dir(d, sizeof(d), &err), 0);
	assert_string_equal(d, want);

	/* An absolute one does. */
	snprintf(want, sizeof(want), "%s/xdg", base);
	setenv("XDG_STATE_HOME", want, 1);
	assert_int_equal(audit_dir(d, sizeof(d), &err), 0);
	snprintf(want, sizeof(want), "%s/xdg/ccvm", base);
	assert_string_equal(d, want);
	a = audit_open(NULL, "/p", true, NULL, 0, NULL, 0, &err);
	assert_non_null(a);
	assert_int_equal(strncmp(audit_path(a), want, strlen(want)), 0);
	audit_close(a);

	/* Too long for the buffer. */
	assert_true(audit_dir(d, 8, &err) < 0);
	assert_int_equal(err.code, -ENAMETOOLONG);

	if (old_xdg)
		setenv("XDG_STATE_HOME", old_xdg, 1);
	else
		unsetenv("XDG_STATE_HOME");
	if (old_home)
		setenv("HOME", old_home, 1);
	else
		unsetenv("HOME");
	free(old_xdg);
	free(old_home);
}

static void test_session_file_names(void **state)
{
	(void)state;
	assert_true(audit_is_session_file("20261207T002501Z-3fa9c1.jsonl"));
	assert_false(audit_is_session_file("20261207T002501Z-3fa9c1.json"));
	assert_false(audit_is_session_file("20261207T002501Z-3FA9C1.jsonl"));
	assert_false(audit_is_session_file("20261207T002501Z-3fa9c.jsonl"));
	assert_false(audit_is_session_file("2026120xT002501Z-3fa9c1.jsonl"));
	assert_false(audit_is_session_file("20261207T002501Z_3fa9c1.jsonl"));
	assert_false(audit_is_session_file("20261207T002501Z-3fa9c1.jsonl~"));
	assert_false(audit_is_session_file("x.jsonl"));
	assert_false(audit_is_session_file(""));
}

/* What writing costs the relay: 100k connection lines. */
static void test_speed(void **state)
{
	(void)state;
	audit_set_limits(256u << 20, 0, 1u << 30);
	struct audit *a = open_in(at("ccvm"));
	struct dns_addr ad = addr("140.82.112.3");
	struct audit_conn c = {.dest = "api.github.com",
			       .sni = "api.github.com",
			       .addr = &ad,
			       .port = 443,
			       .allowed = true,
			       .reason = "resolved for *.github.com",
			       .up = 2345,
			       .down = 123456,
			       .ms = 321};
	enum { N = 100000 };
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < N; i++) {
		c.start_wall_ms = 1796602501123ll + i;
		audit_conn(a, &c);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_false(audit_stopped(a));
	long long ns =
	    (t1.tv_sec - t0.tv_sec) * 1000000000ll + (t1.tv_nsec - t0.tv_nsec);
	struct stat st;
	assert_int_equal(stat(audit_path(a), &st), 0);
	print_message("# %d connection lines in %lld ms: %lld ns per line, "
		      "%lld bytes per line\n",
		      N, ns / 1000000, ns / N, (long long)st.st_size / N);
	size_t n;
	json_t **v = read_lines(audit_path(a), &n);
	assert_int_equal(n, N + 1);
	free_lines(v, n);
	audit_close(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_session_line_and_modes, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_lookup_and_conn_lines, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_hostile_strings, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_cap, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_short_write, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rotation_keep, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_rotation_total, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_dir_refused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_default_dir, setup, teardown),
	    cmocka_unit_test(test_session_file_names),
	    cmocka_unit_test_setup_teardown(test_speed, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
