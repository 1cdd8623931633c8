#pragma once
/* Builds QEMU's argv from a session's needs: no shell, escaped values. */
#include <stdbool.h>
#include <stddef.h>

#include "vm/accel.h"
#include "err.h"

/* Fastest firmware for a PVH boot here (see notes/feasibility.md). */
#define QEMU_QBOOT_PATH "/usr/share/qemu/qboot.rom"

/* The -add-fd set holding the scratch disk's fd (/dev/fdset/N). */
#define QEMU_SCRATCH_FDSET 1

/* The guest kernel's CONFIG_HZ (ccvm's and Debian's), for lpj=. */
#define QEMU_GUEST_HZ 250

struct qemu_spec {
	const char *qemu;   /* binary, e.g. /usr/bin/qemu-system-x86_64 */
	const char *kernel; /* vmlinux */
	const char *initrd;
	const char *rootfs; /* squashfs, read-only virtio-blk (vda) */
	const char *cwd;    /* launch directory, shared as "ccvm.cwd" */
	bool writable;	    /* false: the 9p export is read-only */
	const char
	    *projects; /* NULL, or host ~/.claude/projects as "ccvm.projects" */
	/*
	 * The scratch disk (vdb): an open read-write fd in QEMU's process,
	 * passed with "-add-fd fd=N,set=QEMU_SCRATCH_FDSET" so the file
	 * never needs a name.  0: no scratch disk (fds 0-2 are stdio).
	 */
	int scratch_fd;
	long memory_mib;
	long cores;
	enum accel_kind accel;
	bool mem_lock; /* -overcommit mem-lock=on */
	/*
	 * Both fds are handed to QEMU as "-chardev socket,fd=N": each must be
	 * one end of a connected SOCK_STREAM socketpair, and the caller must
	 * clear FD_CLOEXEC on them in the child before exec.
	 */
	int ctl_fd;	/* connected socket for the ccvm.ctl port */
	int console_fd; /* guest serial console goes here (-1: none) */
	int net_fd;	/* > 0: connected socket for the ccvm.net port */
	/*
	 * > 0: the launch directory over virtiofs instead of 9p: a connected
	 * vhost-user socket to virtiofsd (vfs.h).  Guest RAM is then shared,
	 * so that virtiofsd can map it: the file on ram_fd (ram.h), else a
	 * memfd.
	 */
	int vfs_fd;
	int ram_fd;	  /* > 0: ram_open's file, inherited on this fd */
	bool debug;	  /* verbose kernel console */
	const char *bios; /* NULL: QEMU's default; else e.g. QEMU_QBOOT_PATH */
	long tsc_khz;	  /* > 0: tsc_early_khz= and lpj= on the cmdline */
	/*
	 * A boot that can be saved and restored (park.h): ccvm.park on the
	 * guest's command line, a QMP monitor on qmp_fd (a connected
	 * socket), and no virtiofs device, which cannot be migrated: the
	 * caller adds it with QEMU_VFS_DEVICE over QMP once the guest has
	 * parked.  Needs vfs_fd and ram_fd.
	 */
	bool park;
	int qmp_fd;
	bool incoming; /* park: "-incoming defer", to restore a saved boot */
};

/* The virtiofs device's QMP device_add arguments (JSON), park mode, and
 * the root port it goes in. */
#define QEMU_VFS_PORT "vfsport"
#define QEMU_VFS_DEVICE                                                        \
	"{\"driver\": \"vhost-user-fs-pci\", \"id\": \"vfs0\", "               \
	"\"chardev\": \"vfs\", \"tag\": \"ccvm.cwd\", \"queue-size\": 1024, "  \
	"\"romfile\": \"\", \"bus\": \"" QEMU_VFS_PORT "\"}"

struct qemu_argv {
	char **v; /* NULL-terminated */
	size_t n; /* entries, not counting the NULL */
};

/* Fills out (freed with qemu_argv_free) or returns -errno naming the
 * offending value.  Pure: reads no files. */
int qemu_argv_build(const struct qemu_spec *s, struct qemu_argv *out,
		    struct ccvm_err *err);
void qemu_argv_free(struct qemu_argv *a);

/* Appends value to a QEMU option string with commas doubled; rejects
 * control characters.  Exposed for tests.  0, -EINVAL (a control
 * character) or -ENAMETOOLONG (out too small). */
int qemu_escape(const char *value, char *out, size_t outsz);

/* The kernel command line the spec asks for (malloc'ed), or NULL. */
char *qemu_cmdline(const struct qemu_spec *s);

/* QEMU_QBOOT_PATH when it is readable, else NULL. */
const char *qemu_find_bios(void);

/* The host TSC frequency in kHz from /proc/cpuinfo, 0 when unknown. */
long qemu_host_tsc_khz(void);

/*
 * lockGuestMemory: QEMU's mlockall needs RLIMIT_MEMLOCK to cover the
 * guest memory plus QEMU's own (QEMU_MEMLOCK_OVERHEAD_MIB), unless the
 * process has CAP_IPC_LOCK.  0 or -ENOMEM with an error saying how much to
 * allow.  qemu_memlock_check_limit is the pure part (limit in bytes,
 * RLIM_INFINITY for unlimited).
 */
#define QEMU_MEMLOCK_OVERHEAD_MIB     1536
#define QEMU_MEMLOCK_OVERHEAD_KVM_MIB 512
int qemu_memlock_check(long memory_mib, enum accel_kind accel,
		       struct ccvm_err *err);
int qemu_memlock_check_limit(unsigned long long limit, bool cap_ipc_lock,
			     long memory_mib, enum accel_kind accel,
			     struct ccvm_err *err);
