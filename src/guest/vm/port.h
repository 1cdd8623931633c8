#pragma once
/* Finding a virtio-serial port by the name QEMU gave it. */
#include <stddef.h>

#include "err.h"

/*
 * Waits up to timeout_ms for /sys/class/virtio-ports/vportNpM/name to read
 * name and its /dev/vportNpM node to exist; fills dev with that path.
 * 0, or -ENODEV/-ETIMEDOUT with err saying which port is missing.
 */
int port_find(const char *name, int timeout_ms, char *dev, size_t devsz,
	      struct ccvm_err *err);
