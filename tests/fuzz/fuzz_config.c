/* libFuzzer target: the config-file parser and the dump of what it accepts,
 * which must parse back to the same dump; and what it accepts, the
 * session's egress policy accepts too (one entry parser). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "options/config.h"
#include "net/egress_policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ccvm_config c;
	struct ccvm_err e = {0};
	if (cfg_init(&c, &e) < 0)
		abort();
	if (cfg_parse_json(&c, (const char *)data, size, "fuzz.json", &e) ==
	    0) {
		struct egress_policy *p = NULL;
		if (egress_policy_from_config(&c, &p, &e) < 0)
			abort(); /* config said yes, the session would say no */
		egress_policy_free(p);
		char *d1 = NULL, *d2 = NULL;
		struct ccvm_config c2;
		if (cfg_dump_json(&c, CFG_DUMP_PRETTY, &d1, &e) < 0 ||
		    cfg_init(&c2, &e) < 0)
			abort();
		if (cfg_parse_json(&c2, d1, strlen(d1), "dump", &e) < 0 ||
		    cfg_dump_json(&c2, CFG_DUMP_PRETTY, &d2, &e) < 0 ||
		    strcmp(d1, d2) != 0)
			abort(); /* the dump must be a config giving itself */
		free(d1);
		free(d2);
		cfg_free(&c2);
	} else if (e.msg[0] == '\0' || strchr(e.msg, '\n')) {
		abort(); /* every error is one non-empty line */
	}
	cfg_free(&c);
	return 0;
}
