#pragma once
/*
 * Boot-time file systems of ccvm-init: the initramfs basics, kernel
 * modules, the overlay root (switched into while staying PID 1), the
 * system mounts inside it, and the 9p shares.
 */
#include <stdbool.h>

#include "err.h"
#include "setup.h"

#define MNT_MODULE_DIR	"/lib/modules/ccvm"
#define MNT_ROOT_DEV	"/dev/vda"
#define MNT_9P_CWD	"ccvm.cwd"
#define MNT_9P_PROJECTS "ccvm.projects"

/* /dev (devtmpfs), /proc, /sys in the initramfs; console on fds 0-2. */
int mnt_early(struct ccvm_err *err);

/* true when the kernel command line has the word `name` (or `name=1`). */
bool mnt_cmdline_has(const char *name);

/*
 * Kernel modules (MNT_MODULE_DIR/load.list, in dependency order) come in
 * two sets: what booting needs (virtio, the root's squashfs and overlay,
 * 9p, virtiofs) and the rest (ext4, dm-crypt, nf_tables, ...), loaded later so
 * they do not delay the program.  mnt_modules_open reads the list and keeps the
 * directory open across the switch into the root; without a list every
 * module is built in.  Loading is idempotent (EEXIST is fine).
 */
enum mnt_modset {
	MNT_MODS_BOOT, /* booting: virtio, squashfs, overlay, 9p */
	MNT_MODS_LINK, /* the guest network's interface: dummy */
	MNT_MODS_NET,  /* the guest network's rules: nf_tables, NAT */
	MNT_MODS_REST, /* everything not in the boot set */
};
int mnt_modules_open(struct ccvm_err *err);
int mnt_load_modules(enum mnt_modset set, struct ccvm_err *err);
/* Whether a module file name is in a set (exposed for tests). */
bool mnt_module_is_boot(const char *file);
bool mnt_module_in(enum mnt_modset set, const char *file);

/* Waits for path to exist (device nodes appear asynchronously). */
int mnt_wait_path(const char *path, int timeout_ms, struct ccvm_err *err);

/* squashfs /dev/vda + tmpfs upper → overlay, moved onto / and chrooted. */
int mnt_switch_root(struct ccvm_err *err);

/* devpts, shm, /tmp, /run; hostname and /etc/hosts. */
int mnt_system(struct ccvm_err *err);

/* Brings the loopback interface up (its 127.0.0.1 and ::1 appear). */
int mnt_lo_up(struct ccvm_err *err);

/*
 * Mounts the 9p share tag at path (which must exist), nosuid,nodev,
 * trying the preferred cache/access options first.
 */
int mnt_9p(const char *tag, const char *path, bool readonly,
	   struct ccvm_err *err);

/* Mounts the virtiofs share tag at path, nosuid,nodev.  Coherence with
 * the host is virtiofsd's (vfs.h): no attribute or name is cached. */
int mnt_virtiofs(const char *tag, const char *path, bool readonly,
		 struct ccvm_err *err);

/*
 * Flushes what mnt_9p and mnt_virtiofs mounted writable (the share, the
 * projects directory), with syncfs(2) on each: everything else in the
 * guest is discarded with it.  Falls back to sync(2) where one of them
 * could not be kept open or flushed.
 */
void mnt_sync_shares(void);

/* The launch directory at s->cwd (virtiofs or 9p): read-write, or read-only
 * under a tmpfs-upper overlay.  The mount point is created first. */
int mnt_cwd(const struct guest_setup *s, struct ccvm_err *err);
