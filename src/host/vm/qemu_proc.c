/* QEMU started through the host spawner (qemu_proc.h). */
#define _GNU_SOURCE
#include "vm/qemu_proc.h"

#include <errno.h>
#include <unistd.h>

#include "sys/nosuid.h"
#include "sys/spawn.h"
#include "util.h"

char *const qemu_proc_env[] = {"PATH=/usr/bin:/bin", "LC_ALL=C", NULL};

bool qemu_launch_fd(struct qemu_launch *l, int fd, int child)
{
	if (l->nfds >= QEMU_PROC_FDS_MAX)
		return false;
	l->fds[l->nfds++] = (struct qemu_proc_fd){.fd = fd, .child = child};
	return true;
}

/* In the child, after the fd map (spawn.h): 9p writes the share as
 * QEMU, so no setuid files (nosuid.h). */
static int child_nosuid(void *arg, const char **step)
{
	(void)arg;
	*step = "QEMU's no-setuid seccomp filter";
	return nosuid_install(true);
}

int qemu_proc_start(struct spawn_child *c, const struct qemu_launch *l,
		    struct ccvm_err *err)
{
	struct spawn_fd fds[3 + QEMU_PROC_FDS_MAX] = {
	    {0, SPAWN_NULL}, {1, l->out_fd}, {2, l->out_fd}};
	size_t n = 3;
	for (size_t i = 0; i < l->nfds; i++)
		fds[n++] = (struct spawn_fd){l->fds[i].child, l->fds[i].fd};
	/* Out of the terminal's process group: ccvm decides what a Ctrl-C
	 * means, not the tty driver. */
	struct spawn_opts o = {
	    .argv = (const char *const *)l->argv,
	    .envp = (const char *const *)(l->envp ? l->envp : qemu_proc_env),
	    .fds = fds,
	    .n_fds = n,
	    .new_pgrp = true,
	    .pre_exec = l->nosuid ? child_nosuid : NULL,
	};
	int r = spawn_start(&o, c, err);
	if (r == 0)
		spawn_child_close(c);
	return r;
}
