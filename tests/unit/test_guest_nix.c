/* Unit tests for the pure part of the guest's Nix set-up
 * (src/guest/nix.c): the store overlay's mount options. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "nix.h"

static void test_overlay_opts(void **state)
{
	(void)state;
	char out[256];
	assert_int_equal(
	    nix_overlay_opts(out, sizeof(out), NIX_DIR, NIX_SCRATCH_DIR), 0);
	assert_string_equal(out,
			    "lowerdir=/nix,upperdir=/run/ccvm/scratch/"
			    "nix/upper,workdir=/run/ccvm/scratch/nix/work");
}

static void test_overlay_opts_rejects(void **state)
{
	(void)state;
	char out[256];
	/* ',' would start another option, ':' another lower layer. */
	assert_int_equal(nix_overlay_opts(out, sizeof(out), "/nix", "/a,b"),
			 -EINVAL);
	assert_int_equal(nix_overlay_opts(out, sizeof(out), "/a:b", "/s"),
			 -EINVAL);
	char small[40];
	assert_int_equal(
	    nix_overlay_opts(small, sizeof(small), NIX_DIR, NIX_SCRATCH_DIR),
	    -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_overlay_opts),
	    cmocka_unit_test(test_overlay_opts_rejects),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
