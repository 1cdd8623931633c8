#pragma once
/*
 * Saved boots.  A session whose guest parks (qemu.h, park) can be saved
 * once booted, and later sessions restore it instead of booting: QEMU
 * loads its device state (a migration stream without RAM: x-ignore-shared)
 * and ccvm copies the guest's RAM into the new session's RAM file.
 *
 * One file per key, <image dir>/boot-<key>.snap:
 *   a SNAP_HDR_LEN header: SNAP_MAGIC, then u64 state offset, state length,
 *   RAM offset and RAM length (little-endian), then at SNAP_SUM_AT the
 *   SHA-256 of the device state followed by, for each RAM page that is not
 *   all zeros, its offset in the RAM (u64, little-endian) and its bytes;
 *   QEMU's device state;
 *   the guest's RAM at the RAM offset, its zero pages left as holes.
 * Written unnamed and linked when complete: a reader sees a whole file or
 * none.  The key covers everything the saved state depends on (snap_key).
 * Restoring computes the checksum over what it reads anyway (the state and
 * the RAM's data): a file that does not match is removed and the session
 * boots instead.  Files without a checksum (an older ccvm's) are remade.
 */

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "proto.h"
#include "vm/qemu.h"

#define SNAP_MAGIC   "ccvm saved boot\n"
#define SNAP_HDR_LEN 4096
#define SNAP_KEEP    4 /* saved boots kept per image (the newest) */
#define SNAP_SUM_AT  48
#define SNAP_SUM_LEN 32

struct snap {
	int fd; /* -1: none */
	char path[PATH_MAX];
	uint64_t state_off, state_len, ram_off, ram_len;
	uint8_t sum[SNAP_SUM_LEN]; /* the header's checksum */
};

/*
 * The key of a boot with QEMU argv (NULL-terminated; its fds are fixed
 * numbers) and, when scratch_fd >= 0, that scratch disk's size: a hash of
 * both, of the QEMU binary's identity and of ccvm's protocol version.
 */
int snap_key(char *const argv[], int scratch_fd, char out[65],
	     struct ccvm_err *err);

/* Opens dir's saved boot for key: 1 (s is set), 0 when there is none,
 * -errno for one that is unusable. */
int snap_open(struct snap *s, const char *dir, const char *key,
	      uint64_t ram_len, struct ccvm_err *err);

/* Copies the saved RAM into ram_fd (the new session's RAM file) and
 * positions s->fd at the device state, for QEMU to read; -EBADMSG when
 * the state and RAM do not match the header's checksum. */
int snap_load_ram(const struct snap *s, int ram_fd, struct ccvm_err *err);

/* An unnamed file in dir to save into; its fd is positioned where QEMU
 * writes the device state. */
int snap_create(struct snap *s, const char *dir, const char *key,
		struct ccvm_err *err);

/* After QEMU wrote the device state (the VM stopped): appends the RAM of
 * ram_fd, writes the header, links the file under its name, and removes
 * all but the SNAP_KEEP newest saved boots of the directory. */
int snap_finish(struct snap *s, int ram_fd, uint64_t ram_len,
		struct ccvm_err *err);

void snap_close(struct snap *s);

/* --- a session's saved boot ---------------------------------------------- */

struct qmp;

/*
 * What a session does with saved boots: QEMU's monitor (ccvm's end, and
 * QEMU's until it has started), the saved-boot file, and where it stands.
 * A session that may save or restore one is "enabled" (qemu.h, park).
 */
struct park_boot {
	bool enabled;	/* the guest parks; a boot is saved or restored */
	bool restoring; /* QEMU was started to restore one (-incoming) */
	bool unparked;	/* UNPARK queued */
	int qmp, qmp_child;
	struct qmp *qm;
	struct snap snap;
	uint64_t ram_len; /* the guest's RAM, bytes */
	bool debug;	  /* --ccvm-debug: say what happens */
};

void park_boot_init(struct park_boot *b, uint64_t ram_len, bool debug);

/* The monitor's socket; spec gets park and its QMP fd.  0 or -errno. */
int park_boot_enable(struct park_boot *b, struct qemu_spec *spec,
		     struct ccvm_err *err);

/*
 * A saved boot for QEMU's argv qa: load its RAM into ram_fd and rebuild qa
 * to restore it (spec->incoming), or be ready to save this boot when the
 * guest parks.  Failing to find, load or prepare one is never an error:
 * the session boots.  -errno only when qa cannot be rebuilt.
 */
int park_boot_prepare(struct park_boot *b, struct qemu_spec *spec,
		      struct qemu_argv *qa, const char *dir, int scratch_fd,
		      int ram_fd, struct ccvm_err *err);

/* QEMU started: its end of the monitor socket is QEMU's alone. */
void park_boot_started(struct park_boot *b);

/* Restores the saved boot into the QEMU just started with -incoming, and
 * unparks the guest (queued on wr).  0 or -errno. */
int park_boot_restore(struct park_boot *b, struct proto_writer *wr,
		      struct ccvm_err *err);

/*
 * The guest booted and parked (PROTO_PARK): save the boot (when one is
 * being made; its failure is only said), close *ram_fd, add the share's
 * device, let the VM run, unpark the guest.  0, or -errno when the
 * session cannot go on.
 */
int park_boot_parked(struct park_boot *b, struct proto_writer *wr, int *ram_fd,
		     struct ccvm_err *err);

void park_boot_free(struct park_boot *b);
