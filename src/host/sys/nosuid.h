#pragma once
/*
 * No setuid or setgid file from the guest on the host (issue 20).  The
 * processes that write the shared directories for the guest (virtiofsd,
 * and QEMU for 9p) run under a seccomp filter of ccvm's that refuses every
 * call that would give a file S_ISUID or S_ISGID:
 *
 *  - chmod, fchmod, fchmodat, fchmodat2 with either bit in the mode;
 *  - creat, mkdir, mkdirat, mknod, mknodat with either bit in the mode;
 *  - open and openat with O_CREAT or O_TMPFILE and either bit in the mode;
 *
 * fail with EPERM (the guest sees its chmod fail).  openat2 fails with
 * ENOSYS: its mode is in a structure a filter cannot read, and callers fall
 * back to openat.  Calls through another ABI (x32) fail with ENOSYS.  An
 * ordinary mode (0755, 0644, sticky 01777) is untouched.
 *
 * What the filter does not cover: the kernel itself sets S_ISGID on a
 * directory made inside a setgid directory (that bit on a directory grants
 * nothing; it only passes the directory's group on, and a setgid directory
 * in the share can come only from the host user).
 */
#include <stdbool.h>

/*
 * Installs the filter in the calling process, for it and every program it
 * executes.  set_nnp: set no_new_privs first (needed without CAP_SYS_ADMIN
 * in the process's user namespace).  Async-signal-safe: meant for a child
 * between fork and execve.  0, or -1 with errno set.
 */
int nosuid_install(bool set_nnp);
