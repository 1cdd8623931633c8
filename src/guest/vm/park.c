/* Leaving a saved boot behind (park.h). */
#define _GNU_SOURCE
#include "vm/park.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "glog.h"
#include "proto.h"
#include "util.h"

int park_parse(const uint8_t *p, size_t len, struct timespec *now)
{
	if (len < PROTO_UNPARK_LEN || len > PROTO_UNPARK_LEN + 256)
		return -EPROTO;
	uint64_t s = proto_get_u64(p);
	uint32_t ns = proto_get_u32(p + 8);
	if (s > (uint64_t)INT64_MAX / 2 || ns >= 1000000000u)
		return -EPROTO;
	now->tv_sec = (time_t)s;
	now->tv_nsec = (long)ns;
	return 0;
}

/* Every byte credited, then a reseed: whatever the saved boot's generator
 * held, what it gives from now on depends on this host's bytes. */
static int reseed(const uint8_t *bytes, size_t n, struct ccvm_err *err)
{
	/* The header, then room for the bytes in its flexible array. */
	union {
		struct rand_pool_info info;
		uint8_t raw[sizeof(struct rand_pool_info) +
			    PROTO_UNPARK_ENTROPY + 256];
	} req;
	if (n > sizeof(req) - sizeof(req.info))
		n = sizeof(req) - sizeof(req.info);
	req.info.entropy_count = (int)(n * 8);
	req.info.buf_size = (int)n;
	memcpy(req.info.buf, bytes, n);
	autoclose int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	int r = 0;
	if (fd < 0)
		r = ccvm_err_sys(err, errno, "/dev/urandom");
	else if (ioctl(fd, RNDADDENTROPY, &req.info) < 0)
		r = ccvm_err_sys(err, errno, "RNDADDENTROPY");
	else if (ioctl(fd, RNDRESEEDCRNG) < 0)
		r = ccvm_err_sys(err, errno, "RNDRESEEDCRNG");
	explicit_bzero(&req, sizeof(req));
	return r;
}

int park_apply(uint8_t *p, size_t len, struct ccvm_err *err)
{
	struct timespec now;
	if (park_parse(p, len, &now) < 0) {
		explicit_bzero(p, len);
		return ccvm_err_set(err, EPROTO, "malformed UNPARK (%zu bytes)",
				    len);
	}
	int r = reseed(p + PROTO_UNPARK_TIME, len - PROTO_UNPARK_TIME, err);
	explicit_bzero(p, len);
	if (r < 0)
		return r;
	if (clock_settime(CLOCK_REALTIME, &now) < 0)
		return ccvm_err_sys(err, errno, "setting the clock");
	/* The host adds the share's device after the restore: no hotplug
	 * driver is needed for a rescan to find it. */
	autoclose int fd = open("/sys/bus/pci/rescan", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "1", 1) != 1)
		return ccvm_err_sys(err, errno, "/sys/bus/pci/rescan");
	return 0;
}
