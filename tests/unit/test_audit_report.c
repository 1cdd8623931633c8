/* Unit tests for the egress log readers (src/host/net/audit_report.c):
 * hand-written logs in, the summary and the suggestion out. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "net/audit.h"
#include "net/audit_event.h"
#include "net/audit_report.h"
#include "net/audit_suggest.h"
#include "util.h"

#define T(s) "{\"t\":\"2026-12-07T00:" s "Z\","

#define SESSION(list)                                                          \
	T("25:01.123")                                                         \
	"\"event\":\"session\",\"session\":\"20261207T002501Z-3fa9c1\","       \
	"\"project\":\"/home/u/proj\",\"mode\":\"open\",\"allowlist\":" list   \
	",\"ports\":[443]}\n"

/* A connect line: dest, sni, host as JSON values (null or "..."). */
#define CONN(t, dest, sni, host, addr, port, verdict, up, down)                \
	T(t)                                                                   \
	"\"event\":\"connect\",\"dest\":" dest ",\"sni\":" sni                 \
	",\"host\":" host ",\"addr\":\"" addr "\",\"port\":" #port             \
	",\"verdict\":\"" verdict "\",\"reason\":\"r-" verdict "\","           \
	"\"up\":" #up ",\"down\":" #down ",\"ms\":7}\n"

static FILE *input(const char *text)
{
	FILE *f = fmemopen((void *)text, strlen(text), "r");
	assert_non_null(f);
	return f;
}

/* The summary of text, malloc'ed. */
static char *summary_of(const char *text)
{
	struct audit_summary *s = audit_summary_new();
	assert_non_null(s);
	FILE *in = input(text);
	assert_int_equal(audit_summary_read(s, in), 0);
	fclose(in);
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	assert_non_null(out);
	assert_int_equal(audit_summary_print(s, out), 0);
	fclose(out);
	audit_summary_free(s);
	return buf;
}

/* The line of text that starts with prefix, into line (a copy). */
static void line_of(const char *text, const char *prefix, char *line, size_t n)
{
	const char *p = text;
	size_t pl = strlen(prefix);
	while (p && *p) {
		if (strncmp(p, prefix, pl) == 0) {
			const char *e = strchr(p, '\n');
			size_t l = e ? (size_t)(e - p) : strlen(p);
			assert_true(l < n);
			memcpy(line, p, l);
			line[l] = '\0';
			return;
		}
		p = strchr(p, '\n');
		if (p)
			p++;
	}
	fail_msg("no line starting %s in:\n%s", prefix, text);
}

static void squeeze(char *s)
{
	/* Runs of spaces to one, for column-independent comparisons. */
	char *w = s;
	for (char *r = s; *r; r++)
		if (!(*r == ' ' && w > s && w[-1] == ' '))
			*w++ = *r;
	*w = '\0';
}

static const char log1[] = SESSION("[]") T(
    "25:02.000") "\"event\":\"lookup\",\"name\":\"api.github.com\","
		 "\"qtype\":\"A\",\"verdict\":\"allowed\",\"reason\":"
		 "\"open\",\"answers\":[\"140.82.1.1\"]}\n" CONN(
		     "25:02.100", "\"api.github.com\"", "\"api.github.com\"",
		     "null", "140.82.1.1", 443, "allowed", 1000,
		     2048) CONN("25:02.200", "\"api.github.com\"",
				"\"api.github.com\"", "null", "140.82.1.1", 443,
				"allowed", 24,
				1048576) CONN("25:03.000", "null", "null",
					      "\"example.org:8080\"",
					      "93.184.216.34", 8080, "allowed",
					      5, 6) CONN("25:04.000", "null",
							 "null", "null",
							 "169.254.169.254", 80,
							 "blocked", 0, 0)
		     T("25:04.500") "\"event\":\"connect\",\"dest\":null,"
				    "\"sni\":null,"
				    "\"host\":null,\"addr\":\"169.254.169."
				    "254\",\"port\":80,"
				    "\"verdict\":\"blocked\",\"reason\":"
				    "\"metadata\"}\n" T(
					"25:05.000") "\"event\":\"lookup\","
						     "\"name\":\"evil."
						     "example\","
						     "\"qtype\":\"AAAA\","
						     "\"verdict\":\"blocked\","
						     "\"reason\":"
						     "\"not listed\"}\n" T(
							 "25:05.100") "\"event"
								      "\":"
								      "\"lookup"
								      "\","
								      "\"name\""
								      ":\"evil."
								      "example"
								      "\","
								      "\"qtype"
								      "\":"
								      "\"A\","
								      "\"verdic"
								      "t\":"
								      "\"blocke"
								      "d\","
								      "\"reason"
								      "\":"
								      "\"not "
								      "listed\""
								      "}\n"
								      "this is "
								      "not "
								      "JSON\n"
								      "[1,2]"
								      "\n" T(
									  "25:"
									  "06."
									  "000") "\"event\":\"connect\",\"addr\":\"1.2.3.4\"}\n"
										 "{\"t\":\"yesterday\",\"event\":\"lookup\"}\n" T("25:07.000") "\"event\":\"future-kind\"}\n" T(
										     "37:08.500") "\"event\":\"truncated\",\"reason\":\"size cap\"}\n"
												  "{\"partial\":";

static void test_summary(void **state)
{
	(void)state;
	char *out = summary_of(log1);
	char line[512];
	line_of(out, "session ", line, sizeof(line));
	assert_string_equal(line, "session 20261207T002501Z-3fa9c1, project "
				  "/home/u/proj, mode open");
	line_of(out, "started ", line, sizeof(line));
	assert_string_equal(line, "started 2026-12-07T00:25:01.123Z, 12m07s "
				  "from first to last event");
	/* Rows sorted by connections, then blocked, then name. */
	line_of(out, "api.github.com", line, sizeof(line));
	squeeze(line);
	assert_string_equal(line, "api.github.com 2 1.0 KiB 1.0 MiB 0");
	line_of(out, "example.org", line, sizeof(line));
	squeeze(line);
	assert_string_equal(line, "example.org 1 5 B 6 B 0");
	line_of(out, "169.254.169.254", line, sizeof(line));
	squeeze(line);
	assert_string_equal(line, "169.254.169.254 0 0 B 0 B 2");
	const char *gh = strstr(out, "\napi.github.com");
	const char *eo = strstr(out, "\nexample.org");
	const char *md = strstr(out, "\n169.254.169.254");
	assert_true(gh && eo && md && gh < eo && eo < md);
	/* Distinct reasons, each once. */
	assert_non_null(strstr(md, "\n  blocked: r-blocked\n  blocked: "
				   "metadata\n"));
	line_of(out, "  evil.example", line, sizeof(line));
	assert_string_equal(line, "  evil.example (AAAA, A) x2: not listed");
	line_of(out, "total:", line, sizeof(line));
	assert_string_equal(line, "total: 3 connections (2 blocked), 1.0 KiB "
				  "up, 1.0 MiB down; 3 lookups (2 blocked)");
	line_of(out, "log truncated:", line, sizeof(line));
	assert_string_equal(line, "log truncated: size cap");
	/* not JSON, an array, a connect without port, a bad time, the
	 * partial last line. */
	line_of(out, "skipped: ", line, sizeof(line));
	assert_string_equal(line, "skipped: 5 malformed lines");
	assert_non_null(strstr(out, "skipped: 1 events of unknown kinds\n"));
	free(out);
}

static int suggest(const char *const *logs, size_t n, char **out, char **notes);

static void test_summary_hostile(void **state)
{
	(void)state;
	/* Control characters from the guest are escaped; an overlong line
	 * is skipped, not a crash. */
	size_t big = AUDIT_LINE_MAX + 100;
	char *text = malloc(big + 1024);
	assert_non_null(text);
	int n = snprintf(text, 1024, "%s",
			 CONN("25:02.100", "null", "\"a\\u001b[2Jb.example\"",
			      "null", "1.1.1.1", 443, "allowed", 1, 1));
	memset(text + n, 'x', big);
	strcpy(text + n + big, "\n");
	char *out = summary_of(text);
	assert_null(strchr(out, '\x1b'));
	assert_non_null(strstr(out, "a\\x1b[2Jb.example"));
	assert_non_null(strstr(out, "skipped: 1 malformed lines"));
	/* No session line. */
	assert_non_null(strstr(out, "session (unknown)"));
	free(out);
	free(text);
	/* What the writer may also write: a numeric qtype, a null address. */
	out = summary_of(
	    T("25:01.000") "\"event\":\"lookup\",\"name\":\"x.example\","
			   "\"qtype\":65,\"verdict\":\"blocked\",\"reason\":"
			   "\"no\"}\n" CONN("25:02.000", "null", "null", "null",
					    "X", 443, "blocked", 0, 0));
	assert_non_null(strstr(out, "x.example (TYPE65) x1: no"));
	free(out);
	static const char nulladdr[] =
	    T("25:02.000") "\"event\":\"connect\",\"dest\":null,\"sni\":null,"
			   "\"host\":null,\"addr\":null,\"port\":443,"
			   "\"verdict\":\"allowed\",\"reason\":\"r\",\"up\":1,"
			   "\"down\":2,\"ms\":3500}\n";
	out = summary_of(nulladdr);
	assert_non_null(strstr(out, "(no address)"));
	assert_null(strstr(out, "malformed"));
	/* The duration runs to the end of the last connection. */
	assert_non_null(strstr(out, ", 3.5s from first to last event"));
	free(out);
	char *sug = NULL, *notes = NULL;
	const char *logs[] = {nulladdr};
	assert_int_equal(suggest(logs, 1, &sug, &notes), -ENODATA);
	assert_non_null(strstr(notes, "1 connections with neither a name nor "
				      "an address"));
	free(sug);
	free(notes);
	/* Nothing at all. */
	out = summary_of("");
	assert_non_null(strstr(out, "total: 0 connections"));
	free(out);
}

static void test_event_line(void **state)
{
	(void)state;
	char buf[512];
	const char *l = CONN("25:02.100", "\"x.example\"", "null", "null",
			     "2001:db8::9", 443, "blocked", 0, 0);
	audit_event_line(l, strlen(l) - 1, buf, sizeof(buf));
	assert_string_equal(buf, "00:25:02 connect x.example [2001:db8::9]:443 "
				 "blocked: r-blocked");
	l = CONN("25:02.100", "\"x.example\"", "null", "null", "1.2.3.4", 443,
		 "allowed", 2048, 5);
	audit_event_line(l, strlen(l) - 1, buf, sizeof(buf));
	assert_string_equal(buf, "00:25:02 connect x.example 1.2.3.4:443 "
				 "allowed, 2.0 KiB up, 5 B down, 0.0s");
	audit_event_line("junk", 4, buf, sizeof(buf));
	assert_string_equal(buf, "");
}

static int fake_local(int family, const void *addr)
{
	/* 8.8.4.4 plays an address of this host. */
	static const uint8_t self[4] = {8, 8, 4, 4};
	return family == AF_INET && memcmp(addr, self, 4) == 0;
}

/* The suggestion for the given logs (one per session); notes too. */
static int suggest(const char *const *logs, size_t n, char **out, char **notes)
{
	struct audit_suggest *s = audit_suggest_new(fake_local);
	assert_non_null(s);
	for (size_t i = 0; i < n; i++) {
		FILE *in = input(logs[i]);
		assert_int_equal(audit_suggest_read(s, in), 0);
		fclose(in);
	}
	size_t l1, l2;
	FILE *o = open_memstream(out, &l1), *e = open_memstream(notes, &l2);
	struct ccvm_err err = {0};
	int r = audit_suggest_write(s, o, e, "ccvm: ", &err);
	fclose(o);
	fclose(e);
	audit_suggest_free(s);
	return r;
}

static const char log_a[] =
    SESSION("[]") CONN("25:02", "\"api.github.com\"", "\"api.github.com\"",
		       "null", "140.82.1.1", 443, "allowed", 1, 1)
	CONN("25:03", "\"codeload.github.com\"", "\"codeload.github.com\"",
	     "null", "140.82.1.2", 443, "allowed", 1, 1)
	    CONN("25:04", "\"registry.npmjs.org\"", "\"registry.npmjs.org\"",
		 "null", "104.16.1.1", 443, "allowed", 1, 1)
    /* Blocked: never suggested, and its port not either. */
    CONN("25:05", "\"evil.example\"", "null", "null", "6.6.6.6", 6666,
	 "blocked", 0, 0)
    /* No name: exact address; private is fine. */
    CONN("25:06", "null", "null", "null", "10.1.2.3", 22, "allowed", 1, 1)
	CONN("25:06", "null", "null", "null", "::ffff:93.184.216.34", 443,
	     "allowed", 1, 1)
    /* Excluded classes. */
    CONN("25:07", "null", "null", "null", "169.254.169.254", 80, "allowed", 1,
	 1) CONN("25:07", "null", "null", "null", "169.254.1.1", 81, "allowed",
		 1, 1) CONN("25:07", "null", "null", "null", "127.0.0.1", 82,
			    "allowed", 1, 1)
	CONN("25:07", "null", "null", "null", "8.8.4.4", 83, "allowed", 1, 1)
	    CONN("25:07", "null", "null", "null", "224.0.0.1", 84, "allowed", 1,
		 1)
    /* ccvm's own. */
    CONN("25:08", "\"api.ccvm.internal\"", "null", "\"api.ccvm.internal\"",
	 "192.0.2.3", 80, "allowed", 1, 1)
	CONN("25:08", "\"x.ccvm.internal\"", "null", "null", "1.1.1.1", 85,
	     "allowed", 1, 1)
    /* host.ccvm.internal used, but this session did not list it. */
    CONN("25:09", "\"host.ccvm.internal\"", "null", "null", "192.0.2.2", 5432,
	 "allowed", 1, 1)
    /* A Host with a port; an SNI that is no valid entry. */
    CONN("25:10", "\"www.example.com\"", "null", "\"www.example.com:8080\"",
	 "93.184.216.34", 8080, "allowed", 1,
	 1) CONN("25:11", "\"ok.example.net\"", "\"bad_name!\"", "null",
		 "93.184.216.35", 443, "allowed", 1, 1)
	T("25:12") "\"event\":\"lookup\",\"name\":\"only.looked.up\","
		   "\"qtype\":\"A\",\"verdict\":\"allowed\",\"reason\":\"o\"}\n"
		   "garbage\n";

/* A second session that listed host.ccvm.internal and used it, and a
 * subdomain of a parent the first used once. */
static const char log_b[] = SESSION("[\"github.com\", \"host.ccvm.internal\"]")
    CONN("30:01", "\"host.ccvm.internal\"", "null", "null", "192.0.2.2", 5432,
	 "allowed", 1, 1)
	CONN("30:02", "\"objects.npmjs.org\"", "\"objects.npmjs.org\"", "null",
	     "104.16.1.2", 443, "allowed", 1, 1)
	    CONN("30:03", "\"github.com\"", "\"github.com\"", "null",
		 "140.82.1.3", 443, "allowed", 1, 1)
		CONN("30:04", "\"a.b.c.deep.example\"", "null", "null",
		     "9.9.9.9", 443, "allowed", 1, 1)
		    CONN("30:05", "\"x.co.uk\"", "null", "null", "9.9.9.10",
			 443, "allowed", 1, 1);

static void test_suggest_one(void **state)
{
	(void)state;
	char *out = NULL, *notes = NULL;
	const char *logs[] = {log_a};
	assert_int_equal(suggest(logs, 1, &out, &notes), 0);
	assert_string_equal(out, "{\n"
				 "  \"egressAllowlist\": [\n"
				 "    \"*.github.com\",\n"
				 "    \"10.1.2.3\",\n"
				 "    \"93.184.216.34\",\n"
				 "    \"ok.example.net\",\n"
				 "    \"registry.npmjs.org\",\n"
				 "    \"www.example.com\"\n"
				 "  ],\n"
				 "  \"egressPorts\": [\n"
				 "    22,\n"
				 "    443,\n"
				 "    8080\n"
				 "  ]\n"
				 "}\n");
	static const char *const want[] = {
	    "ccvm: not suggested: 1 blocked connections",
	    "ccvm: not suggested: 1 connections to ccvm's API proxy",
	    "ccvm: not suggested: 1 connections to host.ccvm.internal in "
	    "sessions that did not list it",
	    "ccvm: not suggested: 169.254.169.254 (cloud metadata: never "
	    "listable)",
	    "ccvm: not suggested: 169.254.1.1 (link-local: never listable)",
	    "ccvm: not suggested: 127.0.0.1 (host loopback: never listable)",
	    "ccvm: not suggested: 8.8.4.4 (the kernel delivers it to this "
	    "host",
	    "ccvm: not suggested: 224.0.0.1 (reserved",
	    "ccvm: not suggested: x.ccvm.internal (ccvm's own names",
	    "ccvm: not suggested: bad_name! (not a valid egressAllowlist "
	    "entry)",
	    "ccvm: not suggested: only.looked.up (looked up, never connected",
	    "ccvm: skipped: 1 malformed log lines",
	};
	for (size_t i = 0; i < ARRAY_LEN(want); i++)
		if (!strstr(notes, want[i]))
			fail_msg("notes lack \"%s\":\n%s", want[i], notes);
	/* One line per kind. */
	size_t lines = 0;
	for (const char *p = notes; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, ARRAY_LEN(want));
	free(out);
	free(notes);
}

static void test_suggest_merged(void **state)
{
	(void)state;
	char *out = NULL, *notes = NULL;
	const char *logs[] = {log_a, log_b};
	assert_int_equal(suggest(logs, 2, &out, &notes), 0);
	/* github.com itself listed because it was used; *.npmjs.org from
	 * one subdomain per session; host.ccvm.internal from the session
	 * that listed it (port 5432 with it); a deep name alone stays
	 * exact, as does a single subdomain (x.co.uk). */
	assert_string_equal(out, "{\n"
				 "  \"egressAllowlist\": [\n"
				 "    \"*.github.com\",\n"
				 "    \"*.npmjs.org\",\n"
				 "    \"10.1.2.3\",\n"
				 "    \"93.184.216.34\",\n"
				 "    \"a.b.c.deep.example\",\n"
				 "    \"github.com\",\n"
				 "    \"host.ccvm.internal\",\n"
				 "    \"ok.example.net\",\n"
				 "    \"www.example.com\",\n"
				 "    \"x.co.uk\"\n"
				 "  ],\n"
				 "  \"egressPorts\": [\n"
				 "    22,\n"
				 "    443,\n"
				 "    5432,\n"
				 "    8080\n"
				 "  ]\n"
				 "}\n");
	free(out);
	free(notes);
}

static void test_suggest_collapse_rules(void **state)
{
	(void)state;
	char *out = NULL, *notes = NULL;
	/* Two under b.example.com and two under example.com: the wider
	 * wildcard covers the narrower; a single-label parent never. */
	static const char log[] = SESSION("[]")
	    CONN("25:01", "\"x.b.example.com\"", "null", "null", "1.1.1.1", 443,
		 "allowed", 1, 1) CONN("25:02", "\"y.b.example.com\"", "null",
				       "null", "1.1.1.1", 443, "allowed", 1, 1)
		CONN("25:03", "\"b.example.com\"", "null", "null", "1.1.1.1",
		     443, "allowed", 1, 1)
		    CONN("25:04", "\"c.example.com\"", "null", "null",
			 "1.1.1.1", 443, "allowed", 1, 1)
			CONN("25:05", "\"one.com\"", "null", "null", "1.1.1.1",
			     443, "allowed", 1, 1)
			    CONN("25:06", "\"two.com\"", "null", "null",
				 "1.1.1.1", 443, "allowed", 1, 1);
	const char *logs[] = {log};
	assert_int_equal(suggest(logs, 1, &out, &notes), 0);
	assert_string_equal(out, "{\n"
				 "  \"egressAllowlist\": [\n"
				 "    \"*.example.com\",\n"
				 "    \"one.com\",\n"
				 "    \"two.com\"\n"
				 "  ],\n"
				 "  \"egressPorts\": [\n"
				 "    443\n"
				 "  ]\n"
				 "}\n");
	assert_string_equal(notes, "");
	free(out);
	free(notes);
}

/* Two names under a public suffix (ICANN's co.uk, or a private one such
 * as github.io, where every user has a site) stay exact: "*.co.uk" or
 * "*.github.io" would allow strangers' hosts. */
static void test_suggest_public_suffix(void **state)
{
	(void)state;
	char *out = NULL, *notes = NULL;
	static const char log[] = SESSION("[]")
	    CONN("26:01", "\"a.co.uk\"", "null", "null", "1.1.1.1", 443,
		 "allowed", 1, 1) CONN("26:02", "\"b.co.uk\"", "null", "null",
				       "1.1.1.1", 443, "allowed", 1, 1)
		CONN("26:03", "\"alice.github.io\"", "null", "null", "1.1.1.1",
		     443, "allowed", 1, 1)
		    CONN("26:04", "\"bob.github.io\"", "null", "null",
			 "1.1.1.1", 443, "allowed", 1, 1)
			CONN("26:05", "\"x.a.co.uk\"", "null", "null",
			     "1.1.1.1", 443, "allowed", 1, 1)
			    CONN("26:06", "\"y.a.co.uk\"", "null", "null",
				 "1.1.1.1", 443, "allowed", 1, 1);
	const char *logs[] = {log};
	assert_int_equal(suggest(logs, 1, &out, &notes), 0);
	assert_string_equal(out, "{\n"
				 "  \"egressAllowlist\": [\n"
				 "    \"*.a.co.uk\",\n"
				 "    \"a.co.uk\",\n"
				 "    \"alice.github.io\",\n"
				 "    \"b.co.uk\",\n"
				 "    \"bob.github.io\"\n"
				 "  ],\n"
				 "  \"egressPorts\": [\n"
				 "    443\n"
				 "  ]\n"
				 "}\n");
	free(out);
	free(notes);
}

static void test_suggest_nothing(void **state)
{
	(void)state;
	char *out = NULL, *notes = NULL;
	static const char log[] = SESSION("[]")
	    CONN("25:01", "null", "null", "null", "127.0.0.1", 80, "allowed", 1,
		 1) CONN("25:02", "\"x.example\"", "null", "null", "1.1.1.1",
			 443, "blocked", 0, 0);
	const char *logs[] = {log, ""};
	assert_int_equal(suggest(logs, 2, &out, &notes), -ENODATA);
	assert_string_equal(out, "");
	assert_non_null(strstr(notes, "1 blocked connections"));
	free(out);
	free(notes);
}

static void test_dir_and_find(void **state)
{
	(void)state;
	char tmp[] = "/tmp/test_audit_report.XXXXXX";
	assert_non_null(mkdtemp(tmp));
	struct ccvm_err err = {0};
	char *p = NULL;
	char *missing = util_asprintf("%s/none", tmp);
	assert_int_equal(audit_report_find(missing, NULL, &p, &err), -ENOENT);
	assert_non_null(strstr(err.msg, missing));
	assert_int_equal(audit_report_find(tmp, NULL, &p, &err), -ENOENT);
	static const char *const names[] = {
	    "20261206T100000Z-aaaaaa.jsonl", "20261207T002501Z-3fa9c1.jsonl",
	    "20261207T002501Z-3fa9c2.jsonl", ".20291231T000000Z-000000.jsonl",
	    "20301231T000000Z-ffffff.txt",   "20311231T000000Z-notes.jsonl"};
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		char *f = util_asprintf("%s/%s", tmp, names[i]);
		FILE *fp = fopen(f, "w");
		assert_non_null(fp);
		fclose(fp);
		free(f);
	}
	/* Newest by name: files not named like a session are ignored. */
	assert_int_equal(audit_report_find(tmp, NULL, &p, &err), 0);
	assert_non_null(strstr(p, "/20261207T002501Z-3fa9c2.jsonl"));
	free(p);
	assert_int_equal(
	    audit_report_find(tmp, "20261207T002501Z-3fa9c1", &p, &err), 0);
	assert_non_null(strstr(p, "/20261207T002501Z-3fa9c1.jsonl"));
	free(p);
	assert_int_equal(audit_report_find(tmp, "20261207", &p, &err), -EEXIST);
	assert_int_equal(audit_report_find(tmp, "20261206", &p, &err), 0);
	assert_non_null(strstr(p, "/20261206T100000Z-aaaaaa.jsonl"));
	free(p);
	assert_int_equal(audit_report_find(tmp, "2026", &p, &err), -EEXIST);
	assert_non_null(strstr(err.msg, "give more of the id"));
	assert_int_equal(audit_report_find(tmp, "1999", &p, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "\"1999\""));
	/* A path is taken as it is. */
	assert_int_equal(audit_report_find(tmp, "./some.jsonl", &p, &err), 0);
	assert_string_equal(p, "./some.jsonl");
	free(p);
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		char *f = util_asprintf("%s/%s", tmp, names[i]);
		unlink(f);
		free(f);
	}
	rmdir(tmp);
	free(missing);
}

/* What audit.c writes, read back: the two ends agree on the format. */
static void test_writer_roundtrip(void **state)
{
	(void)state;
	char tmp[] = "/tmp/test_audit_report.XXXXXX";
	assert_non_null(mkdtemp(tmp));
	char *dir = util_asprintf("%s/ccvm", tmp);
	struct ccvm_err err = {0};
	const char *allow[] = {"host.ccvm.internal"};
	uint16_t ports[] = {443, 5432};
	struct audit *a = audit_open(dir, "/p", true, allow, 1, ports, 2, &err);
	assert_non_null(a);
	struct dns_addr gh = {.family = AF_INET},
			hostalias = {.family = AF_INET};
	inet_pton(AF_INET, "140.82.1.1", gh.bytes);
	inet_pton(AF_INET, "192.0.2.2", hostalias.bytes);
	audit_lookup(a, "api.github.com", "A", true, "open mode", &gh, 1);
	audit_lookup(a, "evil.example", "AAAA", false, "not listed", NULL, 0);
	struct audit_conn c = {.dest = "api.github.com",
			       .addr = &gh,
			       .port = 443,
			       .allowed = true,
			       .reason = "ok",
			       .up = 3000,
			       .down = 4096,
			       .ms = 20};
	audit_conn(a, &c);
	c.dest = "codeload.github.com";
	audit_conn(a, &c);
	struct audit_conn h = {.dest = "host.ccvm.internal",
			       .addr = &hostalias,
			       .port = 5432,
			       .allowed = true,
			       .reason = "listed"};
	audit_conn(a, &h);
	struct audit_conn b = {.addr = &gh,
			       .port = 22,
			       .allowed = false,
			       .reason = "port 22 not in egressPorts"};
	audit_conn(a, &b);
	char *path = strdup(audit_path(a));
	audit_close(a);

	char *found = NULL;
	assert_int_equal(audit_report_find(dir, NULL, &found, &err), 0);
	assert_string_equal(found, path);
	FILE *in = fopen(path, "r");
	assert_non_null(in);
	struct audit_summary *sum = audit_summary_new();
	assert_int_equal(audit_summary_read(sum, in), 0);
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	assert_int_equal(audit_summary_print(sum, out), 0);
	fclose(out);
	audit_summary_free(sum);
	assert_null(strstr(buf, "skipped"));
	assert_non_null(strstr(buf, ", project /p, mode open\n"));
	assert_non_null(strstr(buf, "total: 3 connections (1 blocked), 5.9 KiB "
				    "up, 8.0 KiB down; 2 lookups (1 blocked)"));
	assert_non_null(strstr(buf, "  blocked: port 22 not in egressPorts\n"));
	assert_non_null(strstr(buf, "  evil.example (AAAA) x1: not listed\n"));
	free(buf);

	rewind(in);
	struct audit_suggest *sg = audit_suggest_new(NULL);
	assert_int_equal(audit_suggest_read(sg, in), 0);
	fclose(in);
	char *sug = NULL, *notes = NULL;
	out = open_memstream(&sug, &len);
	FILE *nf = open_memstream(&notes, &len);
	assert_int_equal(audit_suggest_write(sg, out, nf, "", &err), 0);
	fclose(out);
	fclose(nf);
	audit_suggest_free(sg);
	assert_string_equal(sug, "{\n"
				 "  \"egressAllowlist\": [\n"
				 "    \"*.github.com\",\n"
				 "    \"host.ccvm.internal\"\n"
				 "  ],\n"
				 "  \"egressPorts\": [\n"
				 "    443,\n"
				 "    5432\n"
				 "  ]\n"
				 "}\n");
	free(sug);
	free(notes);
	unlink(path);
	rmdir(dir);
	rmdir(tmp);
	free(path);
	free(found);
	free(dir);
}

static void test_follow_stops(void **state)
{
	(void)state;
	/* With stop already set, follow reads nothing and prints the (empty)
	 * summary; --json prints nothing. */
	volatile sig_atomic_t stop = 1;
	FILE *in = input(log1);
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	struct ccvm_err err = {0};
	assert_int_equal(audit_report_follow(in, out, true, &stop, &err), 0);
	fclose(out);
	assert_int_equal(len, 0);
	free(buf);
	fclose(in);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_summary),
	    cmocka_unit_test(test_summary_hostile),
	    cmocka_unit_test(test_event_line),
	    cmocka_unit_test(test_suggest_one),
	    cmocka_unit_test(test_suggest_merged),
	    cmocka_unit_test(test_suggest_collapse_rules),
	    cmocka_unit_test(test_suggest_public_suffix),
	    cmocka_unit_test(test_suggest_nothing),
	    cmocka_unit_test(test_dir_and_find),
	    cmocka_unit_test(test_writer_roundtrip),
	    cmocka_unit_test(test_follow_stops),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
