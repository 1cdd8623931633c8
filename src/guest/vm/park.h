#pragma once
/*
 * A guest restored from a saved boot (docs/protocol.md, PARK/UNPARK): what
 * it must not keep from the boot it was saved from.
 */

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "err.h"

/* Checks an UNPARK payload and takes its time; 0 or -EPROTO. */
int park_parse(const uint8_t *p, size_t len, struct timespec *now);

/*
 * Applies an UNPARK payload: sets the clock, credits the entropy to the
 * kernel's pool and forces its generator to reseed from it, then looks for
 * the PCI devices the host added (the shared directory's).  The payload
 * is wiped.  0 or -errno with err set.
 */
int park_apply(uint8_t *p, size_t len, struct ccvm_err *err);
