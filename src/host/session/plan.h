#pragma once
/*
 * What a session runs, decided from the config and the host's facts by
 * one pure function (session_plan), executed by start.c.  When a step of
 * the plan fails in a way that has a fallback (virtiofsd does not start,
 * the watch cannot be set up, no RAM file), the fact is corrected and the
 * plan made again: the decision stays here.
 *
 * Read-only mode (writableCwd false) is enforced twice: on the host, so
 * that nothing the guest does can write to the directory (virtiofsd's
 * read-only bind, or QEMU's 9p export with readonly=on), and in the guest,
 * where an overlay on tmpfs lets the program write without the writes
 * reaching the share.
 */
#include <stdbool.h>

/* How the launch directory reaches the guest. */
enum plan_transport {
	PLAN_9P,       /* QEMU's own 9p server */
	PLAN_VIRTIOFS, /* virtiofsd, unprivileged (vfs.h) */
};

/* What makes the share read-only on the host. */
enum plan_readonly {
	PLAN_RO_NONE,	   /* writable */
	PLAN_RO_VFS_BIND,  /* a read-only bind in virtiofsd's namespace */
	PLAN_RO_9P_EXPORT, /* QEMU's -fsdev ...,readonly=on */
};

/* What the guest may keep of the share. */
enum plan_cache {
	PLAN_CACHE_9P,	   /* 9p's own rules (the guest's mount options) */
	PLAN_CACHE_AUTO,   /* virtiofs, nothing kept: cache=auto, timeout=0 */
	PLAN_CACHE_ALWAYS, /* virtiofs, kept; the host reports changes */
};

/* Why the guest keeps nothing over virtiofs (what start.c says). */
enum plan_nocache {
	PLAN_NOCACHE_NONE,     /* it does keep (PLAN_CACHE_ALWAYS) */
	PLAN_NOCACHE_9P,       /* not virtiofs */
	PLAN_NOCACHE_READONLY, /* an overlay on the share cannot be told */
	PLAN_NOCACHE_ENV,      /* CCVM_SHARE_CACHE=0 */
	PLAN_NOCACHE_FS,       /* a network or FUSE file system */
	PLAN_NOCACHE_FILES,    /* too low an open-file limit for virtiofsd */
	PLAN_NOCACHE_WATCH,    /* the watch could not be set up */
};

/* The inputs: the config's and the host's, as start.c found them. */
struct plan_facts {
	bool writable;	     /* writableCwd */
	bool virtiofsd;	     /* a virtiofsd to run was found (vfs_find) */
	bool virtiofsd_fail; /* it did not start */
	bool cache_off;	     /* CCVM_SHARE_CACHE=0 */
	bool fs_complete;    /* inotify sees every change on the share's fs */
	long files_max;	     /* virtiofsd's open-file limit */
	bool watch_fail;     /* watch_open failed */
	bool ram_fail;	     /* no RAM file for the guest (ram.h) */
	bool saved_boot_off; /* CCVM_SAVED_BOOT=0 */
	long disk_gib;	     /* vmDiskSize */
};

struct session_plan {
	enum plan_transport transport;
	enum plan_readonly readonly;
	bool guest_overlay; /* the guest mounts the share under an overlay */
	enum plan_cache cache;
	enum plan_nocache nocache;
	bool watch;	 /* follow host changes (sharesync.h) */
	bool ram_file;	 /* guest RAM in a file of ccvm's (ram.h) */
	bool saved_boot; /* save a boot, or restore one (park.h) */
	bool scratch;	 /* a scratch disk (scratch.h) */
};

/* Pure: the same facts make the same plan. */
void session_plan(const struct plan_facts *f, struct session_plan *p);
