#pragma once
/*
 * QEMU's process: started from an argv, a fixed environment and an fd map
 * (all data, see struct qemu_launch) through the host spawner (spawn.h),
 * which reaps or kills it.  QEMU dies with ccvm (PR_SET_PDEATHSIG) and
 * leaves the terminal's process group, so that ccvm decides what a Ctrl-C
 * means.
 */
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "err.h"
#include "sys/spawn.h"

/* The fd numbers QEMU finds its channels on (qemu.h's spec names them). */
#define QEMU_FD_CTL	  3  /* the control port (ccvm.ctl) */
#define QEMU_FD_CON	  4  /* the serial console */
#define QEMU_FD_NET	  5  /* ccvm.net (egress.h) */
#define QEMU_FD_SCRATCH	  6  /* the scratch disk, when vmDiskSize > 0 */
#define QEMU_FD_VFS	  7  /* virtiofsd's socket (vfs.h) */
#define QEMU_FD_RAM	  8  /* guest RAM with virtiofs (ram.h) */
#define QEMU_FD_QMP	  9  /* QEMU's monitor, with a saved boot */
#define QEMU_FD_SNAP	  10 /* the saved boot QEMU restores */
#define QEMU_PROC_FDS_MAX 8

/* The environment QEMU runs with: nothing of the user's. */
extern char *const qemu_proc_env[];

/* An fd of ccvm's that the child finds as number child (>= 3). */
struct qemu_proc_fd {
	int fd;
	int child;
};

/*
 * What to start: argv[0] is an absolute path; stdin is /dev/null, stdout
 * and stderr go to out_fd; fds lists every other fd the child has (none
 * else survives exec).  nosuid: the no-setuid seccomp filter (nosuid.h).
 */
struct qemu_launch {
	char *const *argv;
	char *const *envp; /* NULL: qemu_proc_env */
	int out_fd;
	struct qemu_proc_fd fds[QEMU_PROC_FDS_MAX];
	size_t nfds;
	bool nosuid;
};

/* Adds fd as child's number child; false when the map is full. */
bool qemu_launch_fd(struct qemu_launch *l, int fd, int child);

/* Starts l through the host spawner: 0 with c->pid set (no pipes left
 * open), or -errno with err naming what failed (fork, the seccomp filter,
 * exec).  The process is the spawner's from then on: spawn_poll reaps it
 * once it has ended, spawn_kill ends it. */
int qemu_proc_start(struct spawn_child *c, const struct qemu_launch *l,
		    struct ccvm_err *err);
