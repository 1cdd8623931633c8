#pragma once
/*
 * Nix in the guest (nix.enable; the image has Debian's nix-bin, its
 * /etc/nix/nix.conf and the nixbld build users, see src/host/image/image.h).
 * Multi-user mode without systemd: ccvm-init starts nix-daemon as root;
 * the agent is not a trusted user and talks to it (NIX_REMOTE=daemon in
 * its environment, sent by the host).
 *
 * The store is writable in every session: by default through the root's
 * own tmpfs overlay (the image's /nix is its lower layer), and with a
 * scratch disk through an overlay mounted on /nix whose upper and work
 * directories are on the encrypted disk, in NIX_SCRATCH_DIR, root-only and
 * out of the agent's reach.
 */
#include <stdbool.h>
#include <stddef.h>

#include "err.h"
#include "setup.h"

#define NIX_DAEMON	"/usr/bin/nix-daemon"
#define NIX_CONF	"/etc/nix/nix.conf"
#define NIX_DIR		"/nix"
#define NIX_SOCKET	"/nix/var/nix/daemon-socket/socket"
#define NIX_SCRATCH_DIR "/run/ccvm/scratch/nix" /* under SCRATCH_FS */
#define NIX_DAEMON_LOG	"/run/ccvm/nix-daemon.log"
#define NIX_READY_MS	60000

/* Whether the image has Nix (nix-daemon and nix.conf). */
bool nix_present(void);

/*
 * The overlay options that put /nix's upper and work directories under
 * dir: "lowerdir=<lower>,upperdir=<dir>/upper,workdir=<dir>/work" into
 * out (n bytes).  Pure.  0, -EINVAL (a path with ',' or ':' that the
 * option string would misread) or -ENAMETOOLONG.
 */
int nix_overlay_opts(char *out, size_t n, const char *lower, const char *dir);

/*
 * After the scratch disk is mounted (SETUP known): when the image has Nix,
 * mounts the store overlay on the scratch disk (s->scratch), makes the
 * agent's per-user profile and GC-root directories, and starts nix-daemon
 * (its own session, output in NIX_DAEMON_LOG).  0 (also without Nix) or
 * -errno.
 */
int nix_start(const struct guest_setup *s, struct ccvm_err *err);

/*
 * Before the program starts: waits (at most timeout_ms) until the daemon
 * accepts connections.  0 when ready or when nix_start started nothing;
 * -ETIMEDOUT or -ECHILD (the daemon exited) otherwise, with err set.
 */
int nix_wait_ready(int timeout_ms, struct ccvm_err *err);
