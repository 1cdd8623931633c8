/* Guest RAM on a private huge-page tmpfs (ram.h). */
#define _GNU_SOURCE
#include "vm/ram.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sys/spawn.h"
#include "util.h"
#include "share/vfs.h"

/* What the child sends when a step fails (no fd attached). */
struct ram_fail {
	int err;
	char step[48];
};

static __attribute__((noreturn)) void child_fail(int sock, const char *step)
{
	struct ram_fail f = {.err = errno};
	snprintf(f.step, sizeof(f.step), "%s", step);
	if (send(sock, &f, sizeof(f), MSG_NOSIGNAL) < 0) {
		/* the parent sees the socket close */
	}
	_exit(1);
}

static __attribute__((noreturn)) void child_run(int sock, const char *uid_map,
						const char *gid_map, long mib)
{
	const char *step;
	if (vfs_unshare_self(uid_map, gid_map, &step) < 0)
		child_fail(sock, step);
	int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
	if (fs < 0)
		child_fail(sock, "fsopen tmpfs");
	/* huge=always: 2 MiB pages wherever they fit (QEMU aligns the
	 * mapping to 2 MiB).  Two inodes: the root and the file. */
	char size[32];
	snprintf(size, sizeof(size), "%ldm", mib);
	if (fsconfig(fs, FSCONFIG_SET_STRING, "huge", "always", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "size", size, 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "nr_inodes", "2", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0700", 0) < 0 ||
	    fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		child_fail(sock, "tmpfs with huge=always");
	int mnt =
	    fsmount(fs, FSMOUNT_CLOEXEC,
		    MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
	if (mnt < 0)
		child_fail(sock, "fsmount");
	int fd = openat(mnt, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0)
		child_fail(sock, "O_TMPFILE");
	char one = 0;
	if (util_send_fd(sock, &one, 1, fd) < 0)
		child_fail(sock, "sending the file");
	_exit(0);
}

/* The fd the child sent, or -errno with err set. */
static int receive(int sock, struct ccvm_err *err)
{
	union {
		struct ram_fail f;
		char one;
	} buf;
	char ctl[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = &buf, .iov_len = sizeof(buf)};
	struct msghdr m = {.msg_iov = &iov,
			   .msg_iovlen = 1,
			   .msg_control = ctl,
			   .msg_controllen = sizeof(ctl)};
	ssize_t n;
	while ((n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (n < 0)
		return ccvm_err_sys(err, errno, "guest RAM: recvmsg");
	struct cmsghdr *c = CMSG_FIRSTHDR(&m);
	if (n == 1 && c && c->cmsg_level == SOL_SOCKET &&
	    c->cmsg_type == SCM_RIGHTS &&
	    c->cmsg_len == CMSG_LEN(sizeof(int))) {
		int fd;
		memcpy(&fd, CMSG_DATA(c), sizeof(int));
		return fd;
	}
	if (n == (ssize_t)sizeof(buf.f)) {
		buf.f.step[sizeof(buf.f.step) - 1] = '\0';
		return ccvm_err_sys(err, buf.f.err ? buf.f.err : EIO,
				    "guest RAM: %s", buf.f.step);
	}
	return ccvm_err_set(err, EIO, "guest RAM: the helper died");
}

struct ram_plan {
	char uid_map[32], gid_map[32];
	long mib;
};

/* The child (spawn_call): the socket is its fd 3. */
static int ram_child(void *arg)
{
	const struct ram_plan *p = arg;
	child_run(3, p->uid_map, p->gid_map, p->mib);
}

int ram_open(long mib, struct ccvm_err *err)
{
	if (mib <= 0)
		return ccvm_err_set(err, EINVAL, "guest RAM: %ld MiB", mib);
	struct ram_plan p = {.mib = mib};
	if (vfs_id_map(getuid(), p.uid_map, sizeof(p.uid_map)) < 0 ||
	    vfs_id_map(getgid(), p.gid_map, sizeof(p.gid_map)) < 0)
		return ccvm_err_set(err, EINVAL, "guest RAM: id map");
	int sp[2];
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return ccvm_err_sys(err, errno, "guest RAM: socketpair");
	const struct spawn_fd fds[] = {{2, STDERR_FILENO}, {3, sp[1]}};
	struct spawn_opts o = {.fds = fds, .n_fds = ARRAY_LEN(fds)};
	struct spawn_child c;
	struct ccvm_err e = {0};
	int r = spawn_call(&o, ram_child, &p, &c, &e);
	close(sp[1]);
	if (r < 0) {
		close(sp[0]);
		return ccvm_err_set(err, -r, "guest RAM: %s", e.msg);
	}
	int fd = receive(sp[0], err);
	close(sp[0]);
	spawn_wait(&c, 0, NULL, NULL);
	return fd;
}
