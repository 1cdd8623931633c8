#pragma once
/*
 * The encrypted, ephemeral /scratch (SETUP scratch=1): the second
 * virtio-blk disk is a nameless sparse file on the host.  Everything the
 * guest writes there goes through dm-crypt (plain mode, aes-xts-plain64)
 * under a 512-bit key from getrandom(2) that exists only in guest RAM: it
 * is built into the table in this process and handed to the kernel by the
 * device-mapper ioctls, never on a command line, and wiped here after.  A
 * random key needs no stretching, so there is no LUKS header and no KDF.
 *
 * Layout: the ext4 file system is mounted root-only at SCRATCH_FS; the
 * agent's part, SCRATCH_FS/SCRATCH_USER_DIR, is bind-mounted at
 * SCRATCH_MOUNT (nosuid, nodev) and owned by the agent user.  Nix's store
 * overlay (upper and work dirs) is in a root-owned sibling under
 * SCRATCH_FS, out of the agent's reach (nix.h, NIX_SCRATCH_DIR), made by
 * nix_start() after scratchfs_finish().
 */
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "setup.h"

#define SCRATCH_DEV	"/dev/vdb"
#define SCRATCH_DM_NAME "ccvm-scratch"
/* cryptsetup's convention for plain mappings, so lsblk & co. see "crypt". */
#define SCRATCH_DM_UUID	  "CRYPT-PLAIN-ccvm-scratch"
#define SCRATCH_MAPPER	  "/dev/mapper/" SCRATCH_DM_NAME
#define SCRATCH_CIPHER	  "aes-xts-plain64"
#define SCRATCH_KEY_BYTES 64 /* AES-256 in XTS: two 256-bit keys */
#define SCRATCH_FS	  "/run/ccvm/scratch"
#define SCRATCH_USER_DIR  "scratch"
#define SCRATCH_MOUNT	  "/scratch"
#define SCRATCH_MKE2FS	  "/usr/sbin/mke2fs"

/*
 * The dm-crypt target's parameters:
 *   "<cipher> <key in hex> 0 <major>:<minor> 0 2 no_read_workqueue
 *    no_write_workqueue"
 * into out (n bytes).  Pure.  0, -EINVAL (no key, or a key longer than
 * 256 bytes) or -ENAMETOOLONG (out too small; out is then wiped).
 */
int scratchfs_crypt_params(char *out, size_t n, const uint8_t *key,
			   size_t keylen, unsigned major, unsigned minor);

/* The disk's length in 512-byte sectors from its size in bytes: 0 or
 * -EINVAL when empty or not a whole number of 4 KiB blocks. */
int scratchfs_sectors(uint64_t bytes, uint64_t *out);

/*
 * Two halves, so that the slow part overlaps the rest of the boot:
 * scratchfs_start, right after the root is up, checks whether the host
 * attached a second disk and, if so, forks a helper that creates the
 * mapping and runs mke2fs (no journal, lazy inode tables).  Returns 1
 * when started, 0 when there is no disk, or -errno.
 * scratchfs_finish, once SETUP is known, waits for the helper and mounts
 * the result for the agent user in s; without s->scratch it only reaps
 * the helper.  0 or -errno with err naming the step.
 */
int scratchfs_start(struct ccvm_err *err);
int scratchfs_finish(const struct guest_setup *s, struct ccvm_err *err);
