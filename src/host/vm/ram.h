#pragma once
/*
 * Guest RAM for a VM with a vhost-user device (virtiofs, vfs.h).
 * virtiofsd maps the guest's memory, so it must be a shared file QEMU can
 * pass on.  QEMU's memory-backend-memfd gets 4 KiB pages: memfds live on
 * the kernel's internal tmpfs, which most distributions (Debian too) leave
 * at shmem_enabled=never, so every page the guest touches is a host page
 * fault (~50,000 for a boot, about 0.3 s under TCG), where QEMU's
 * anonymous RAM gets 2 MiB pages.  ram_open gives a nameless file on a
 * tmpfs of its own mounted with huge=always, which asks the host for 2 MiB
 * pages whatever shmem_enabled says (but "deny").
 *
 * The tmpfs is made by a short-lived child in a user and mount namespace
 * of its own (as virtiofsd's, vfs.h) and never attached to any directory
 * (fsmount), and the file has never had a name (O_TMPFILE): nobody else can
 * reach it, and it is gone once the last of ccvm, QEMU and virtiofsd
 * closes it.
 */
#include "err.h"

/* The flag QEMU gets for ccvm's RAM file: memory-backend-file's mem-path
 * is this with the fd number QEMU inherits it on. */
#define RAM_PATH_FMT "/proc/self/fd/%d"

/*
 * An empty file for mib MiB of guest RAM (QEMU sizes it), on a tmpfs
 * limited to that size: an fd (close-on-exec), or -errno with err naming
 * the step that failed.  A failure is no error for the session: QEMU's
 * memfd does the same job, slower.
 */
int ram_open(long mib, struct ccvm_err *err);
