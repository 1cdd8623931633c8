#pragma once
/*
 * ccvm-init's diagnostics.  Quiet by default: step messages go to the
 * console only with `ccvm.debug` on the kernel command line, and as LOG
 * frames only when SETUP asked for debug.  Fatal messages always reach the
 * console.
 */
#include <stdbool.h>

struct proto_writer;

void glog_set_console(bool on);
bool glog_console_enabled(void);
/* Queue LOG frames on w (NULL stops). */
void glog_set_writer(struct proto_writer *w);

/* A step or diagnostic: console and/or LOG frame when enabled. */
void glog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Always printed on the console (fatal errors). */
void glog_always(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
