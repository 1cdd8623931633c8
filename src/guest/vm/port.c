#define _GNU_SOURCE
#include "vm/port.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mount.h"
#include "util.h"

/* 1 and dev filled when the sysfs entry dirname is the port called name. */
static int port_is(const char *dirname, const char *name, char *dev,
		   size_t devsz)
{
	char path[320], got[64];
	snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name",
		 dirname);
	autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : util_read_all(fd, got, sizeof(got) - 1);
	if (n <= 0)
		return 0;
	got[n] = '\0';
	got[strcspn(got, "\n")] = '\0';
	if (strcmp(got, name))
		return 0;
	snprintf(dev, devsz, "/dev/%s", dirname);
	return 1;
}

int port_find(const char *name, int timeout_ms, char *dev, size_t devsz,
	      struct ccvm_err *err)
{
	long long deadline = util_now_ms() + timeout_ms;
	for (;;) {
		DIR *d = opendir("/sys/class/virtio-ports");
		struct dirent *de;
		int found = 0;
		while (!found && d && (de = readdir(d)) != NULL)
			if (de->d_name[0] != '.')
				found = port_is(de->d_name, name, dev, devsz);
		if (d)
			closedir(d);
		if (found)
			return mnt_wait_path(dev, timeout_ms, err);
		if (util_now_ms() > deadline)
			return ccvm_err_set(err, ENODEV,
					    "no virtio-serial port named %s",
					    name);
		usleep(5000);
	}
}
