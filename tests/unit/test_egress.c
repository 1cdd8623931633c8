/* The pure part of the egress relay: ANTHROPIC_BASE_URL handling. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "egress.h"

static void want(const char *url, const char *host, unsigned port,
		 const char *guest)
{
	char h[DNS_NAME_MAX + 1];
	uint16_t p = 0;
	char *g = NULL;
	assert_int_equal(egress_base_url(url, h, sizeof(h), &p, &g), 0);
	assert_string_equal(h, host);
	assert_int_equal(p, port);
	assert_string_equal(g, guest);
	free(g);
}

static void bad(const char *url)
{
	char h[DNS_NAME_MAX + 1];
	uint16_t p = 0;
	char *g = NULL;
	assert_int_equal(egress_base_url(url, h, sizeof(h), &p, &g), -EINVAL);
	assert_null(g);
}

static void test_base_url(void **state)
{
	(void)state;
	want("https://api.example.com", "api.example.com", 443,
	     "https://api.example.com");
	want("http://llm.corp:8080/v1/", "llm.corp", 8080,
	     "http://llm.corp:8080/v1/");
	want("http://[2001:db8::1]:9000", "2001:db8::1", 9000,
	     "http://[2001:db8::1]:9000");
	/* Host loopback becomes host.ccvm.internal on the same port. */
	want("http://127.0.0.1:8123", "host.ccvm.internal", 8123,
	     "http://host.ccvm.internal:8123");
	want("http://localhost:8123/x?y", "host.ccvm.internal", 8123,
	     "http://host.ccvm.internal:8123/x?y");
	want("HTTP://[::1]", "host.ccvm.internal", 80,
	     "HTTP://host.ccvm.internal:80");
	want("https://127.1.2.3", "host.ccvm.internal", 443,
	     "https://host.ccvm.internal:443");
	bad("ftp://x");
	bad("http://");
	bad("http://user:pw@host/");
	bad("http://host:0");
	bad("http://host:65536");
	bad("http://host:12ab");
	bad("http://[::1");
	bad("http://[::1]x");
	bad("api.anthropic.com");
	bad("http://a b/");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_base_url),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
