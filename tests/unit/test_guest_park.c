/*
 * Unit tests for the UNPARK payload (src/guest/vm/park.c).  park_apply itself
 * sets the clock, reseeds the kernel's generator and rescans PCI: it runs
 * in real guests only (tests/integration/24-saved-boot.sh).
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>
#include <time.h>

#include "vm/park.h"
#include "proto.h"

static void test_parse(void **state)
{
	(void)state;
	uint8_t p[PROTO_UNPARK_LEN + 300];
	memset(p, 0x5a, sizeof(p));
	proto_put_u64(p, 1764700000);
	proto_put_u32(p + 8, 999999999);
	struct timespec ts = {0};
	assert_int_equal(park_parse(p, PROTO_UNPARK_LEN, &ts), 0);
	assert_int_equal(ts.tv_sec, 1764700000);
	assert_int_equal(ts.tv_nsec, 999999999);
	/* Too little entropy, or an absurd amount. */
	assert_int_equal(park_parse(p, PROTO_UNPARK_LEN - 1, &ts), -EPROTO);
	assert_int_equal(park_parse(p, 12, &ts), -EPROTO);
	assert_int_equal(park_parse(p, sizeof(p), &ts), -EPROTO);
	/* Nanoseconds past a second; a time no clock takes. */
	proto_put_u32(p + 8, 1000000000);
	assert_int_equal(park_parse(p, PROTO_UNPARK_LEN, &ts), -EPROTO);
	proto_put_u32(p + 8, 0);
	proto_put_u64(p, UINT64_MAX);
	assert_int_equal(park_parse(p, PROTO_UNPARK_LEN, &ts), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
