/* Unit tests for the pure parts of the guest scratch disk
 * (src/guest/vm/scratch.c): the dm-crypt table parameters and the size. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "vm/scratch.h"

static void test_params(void **state)
{
	(void)state;
	uint8_t key[SCRATCH_KEY_BYTES];
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)(i * 17 + 1);
	char out[512];
	assert_int_equal(
	    scratchfs_crypt_params(out, sizeof(out), key, sizeof(key), 254, 16),
	    0);
	char want[512] = "aes-xts-plain64 ";
	static const char hex[] = "0123456789abcdef";
	size_t o = strlen(want);
	for (size_t i = 0; i < sizeof(key); i++) {
		want[o++] = hex[key[i] >> 4];
		want[o++] = hex[key[i] & 15];
	}
	strcpy(want + o, " 0 254:16 0 2 no_read_workqueue no_write_workqueue");
	assert_string_equal(out, want);
	/* 64 bytes of key: 128 hex digits, nothing else between. */
	assert_int_equal(strchr(out + 16, ' ') - (out + 16), 128);
}

static void test_params_bounds(void **state)
{
	(void)state;
	uint8_t key[SCRATCH_KEY_BYTES] = {0xab, 0xcd};
	char out[100];
	memset(out, 'x', sizeof(out));
	/* Too small: refused, and no part of the key is left behind. */
	assert_int_equal(
	    scratchfs_crypt_params(out, sizeof(out), key, sizeof(key), 254, 16),
	    -ENAMETOOLONG);
	for (size_t i = 0; i < sizeof(out); i++)
		assert_int_equal(out[i], 0);
	char big[1024];
	assert_int_equal(
	    scratchfs_crypt_params(big, sizeof(big), NULL, 64, 1, 2), -EINVAL);
	assert_int_equal(scratchfs_crypt_params(big, sizeof(big), key, 0, 1, 2),
			 -EINVAL);
	uint8_t huge[300] = {0};
	assert_int_equal(
	    scratchfs_crypt_params(big, sizeof(big), huge, sizeof(huge), 1, 2),
	    -EINVAL);
	/* Exactly big enough (the NUL included) works; one less does not. */
	char ref[512];
	assert_int_equal(
	    scratchfs_crypt_params(ref, sizeof(ref), key, sizeof(key), 8, 0),
	    0);
	size_t need = strlen(ref) + 1;
	assert_int_equal(
	    scratchfs_crypt_params(big, need, key, sizeof(key), 8, 0), 0);
	assert_string_equal(big, ref);
	assert_int_equal(
	    scratchfs_crypt_params(big, need - 1, key, sizeof(key), 8, 0),
	    -ENAMETOOLONG);
}

static void test_sectors(void **state)
{
	(void)state;
	uint64_t s = 5;
	assert_int_equal(scratchfs_sectors(10ull << 30, &s), 0);
	assert_true(s == (10ull << 30) / 512);
	s = 5;
	assert_int_equal(scratchfs_sectors(0, &s), -EINVAL);
	assert_int_equal(scratchfs_sectors(4096 + 512, &s), -EINVAL);
	assert_true(s == 5);
	assert_int_equal(scratchfs_sectors(4096, &s), 0);
	assert_true(s == 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_params),
	    cmocka_unit_test(test_params_bounds),
	    cmocka_unit_test(test_sectors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
