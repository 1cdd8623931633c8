/* libFuzzer target: the SETUP contract (src/common/setup.h).  Whatever the
 * decoder accepts must validate, re-encode, and decode to the same struct:
 * the guest never takes a SETUP the host could not have sent. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "setup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct guest_setup a, b;
	static uint8_t buf[SETUP_MAX];
	struct ccvm_err err = {0};
	memset(&a, 0, sizeof(a));
	if (setup_decode(data, size, &a, &err) < 0)
		return 0;
	if (setup_validate(&a, &err) < 0)
		__builtin_trap();
	size_t len = 0;
	if (setup_encode(&a, buf, sizeof(buf), &len, &err) < 0)
		__builtin_trap();
	memset(&b, 0, sizeof(b));
	if (setup_decode(buf, len, &b, &err) < 0 ||
	    memcmp(&a, &b, sizeof(a)) != 0)
		__builtin_trap();
	return 0;
}
