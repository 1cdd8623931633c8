#pragma once
/*
 * The guest running out of memory (docs/failures.md).  The guest has no
 * swap: a program that allocates without end makes the kernel drop the
 * file pages everything runs from (the root file system's, decompressed
 * again at each fault) long before its OOM killer acts, and the VM
 * thrashes for many minutes.  A watcher, a child of PID 1 the OOM killer
 * never picks, calls the kernel's OOM killer itself (sysrq 'f': it kills
 * the task it would have) once MemAvailable stays under
 * memwatch_threshold_kb.
 *
 * The kernel's count of OOM kills (/proc/vmstat oom_kill), read before the
 * program starts and when it ends, tells the host whether the program
 * died of one (EXIT, proto.h).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The floor of MemAvailable, in KiB, for a guest of total_kb: 1/16 of it,
 * at least 32 MiB and at most 128 MiB. */
uint64_t memwatch_threshold_kb(uint64_t total_kb);

/* MemTotal and MemAvailable (KiB) from /proc/meminfo's text; 0, or
 * -EINVAL when either is missing. */
int memwatch_parse_meminfo(const char *text, size_t len, uint64_t *total_kb,
			   uint64_t *avail_kb);

/* The "oom_kill N" line of /proc/vmstat's text; 0 when there is none. */
uint64_t memwatch_parse_oom_kills(const char *text, size_t len);

/* The kernel's OOM kills since boot (0 when it cannot tell). */
uint64_t memwatch_oom_kills(void);

/* Forks the watcher; its pid, or -errno.  PID 1 reaps it like any child;
 * it ends with the VM. */
pid_t memwatch_start(void);
