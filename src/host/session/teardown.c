/*
 * The end of a session: what went wrong, said once, then what QEMU and the
 * guest said; then nothing left behind (QEMU first, then its helpers).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "session/internal.h"
#include "sys/procs.h"
#include "term/say.h"
#include "vm/scratch.h"
#include "util.h"

void tail_add(struct tail *t, const char *p, size_t n)
{
	if (n >= sizeof(t->buf)) {
		p += n - sizeof(t->buf);
		n = sizeof(t->buf);
	}
	if (t->len + n > sizeof(t->buf)) {
		size_t drop = t->len + n - sizeof(t->buf);
		memmove(t->buf, t->buf + drop, t->len - drop);
		t->len -= drop;
	}
	memcpy(t->buf + t->len, p, n);
	t->len += n;
}

bool tail_has(const struct tail *t, const char *needle)
{
	return memmem(t->buf, t->len, needle, strlen(needle)) != NULL;
}

/* Prints the last max_lines lines of t to stderr, each prefixed. */
void tail_print(const struct tail *t, const char *label, int max_lines)
{
	if (t->len == 0)
		return;
	size_t start = t->len;
	int lines = 0;
	if (start > 0 && t->buf[start - 1] == '\n')
		start--;
	while (start > 0) {
		if (t->buf[start - 1] == '\n' && ++lines >= max_lines)
			break;
		start--;
	}
	say("last %s lines:", label);
	const char *p = t->buf + start, *end = t->buf + t->len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		/* Text only: no control byte, no escape sequence. */
		char line[1024];
		termfilter_text(p, n, line, sizeof(line));
		fprintf(stderr, "  | %s%s", line, say_eol());
		p += n + (nl ? 1 : 0);
	}
}

/* Why the VM ended when the guest did not report the program's exit. */
static void fail_unexplained(struct session *s)
{
	if (s->fail.code)
		return;
	const struct spawn_child *q = &s->qemu;
	if (tail_has(&s->console, "Kernel panic") ||
	    tail_has(&s->console, "sysrq: Trigger a crash"))
		session_fail(s, "the guest kernel panicked");
	else if (q->reaped && WIFEXITED(q->status))
		session_fail(s,
			     "QEMU exited with status %d before the session "
			     "ended",
			     WEXITSTATUS(q->status));
	else if (q->reaped && WIFSIGNALED(q->status))
		session_fail(s, "QEMU was killed by signal %d",
			     WTERMSIG(q->status));
	else
		session_fail(s, "the VM ended before the session did");
}

/* A helper's wait status in words: "status N" or "killed by signal N
 * (SIGNAME)". */
static void status_text(int st, char *buf, size_t n)
{
	const char *name = WIFSIGNALED(st) ? sigabbrev_np(WTERMSIG(st)) : NULL;
	if (WIFSIGNALED(st))
		snprintf(buf, n, "killed by signal %d%s%s%s", WTERMSIG(st),
			 name ? " (SIG" : "", name ? name : "",
			 name ? ")" : "");
	else
		snprintf(buf, n, "status %d", WEXITSTATUS(st));
}

/* pid, once ended: reaped (its status in *st) and true. */
static bool helper_ended(pid_t pid, int *st)
{
	pid_t w;
	do
		w = waitpid(pid, st, WNOHANG);
	while (w < 0 && errno == EINTR);
	return w == pid;
}

/* A helper ended by itself (status 0) because its end of QEMU closed:
 * QEMU is exiting.  True once it has, within QEMU_EXITING_MS. */
#define QEMU_EXITING_MS 2000
static bool qemu_exiting(struct session *s)
{
	long long end = util_now_ms() + QEMU_EXITING_MS;
	while (!spawn_poll(&s->qemu) && util_now_ms() < end)
		usleep(10000);
	return s->qemu.reaped;
}

static bool ended_clean(int st)
{
	return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

void session_watch_helpers(struct session *s)
{
	char why[64];
	int st;
	/* virtiofsd: the guest's every access to the share would hang from
	 * now on.  It also ends, with status 0, when QEMU (its only client)
	 * does: that is QEMU's story, told by fail_unexplained. */
	if (s->vfs.pid > 0 && helper_ended(s->vfs.pid, &st)) {
		s->vfs.pid = 0;
		if (!ended_clean(st) || !qemu_exiting(s)) {
			status_text(st, why, sizeof(why));
			session_fail(s,
				     "the project share stopped (virtiofsd "
				     "exited: %s)",
				     why);
			s->fail_said_all = true;
			session_kill_qemu(s);
		}
	}
	/* The network relay: the guest's only way out.  Without it the
	 * ccvm.net port stays closed, so the guest has no network at all
	 * (docs/failures.md): the session goes on, and the user is told
	 * once.  It ends with status 0 when the port closes, as QEMU
	 * exits: nothing to say then. */
	if (s->egress_pid > 0 && helper_ended(s->egress_pid, &st)) {
		s->egress_pid = 0;
		if (!ended_clean(st) && !s->qemu.reaped &&
		    s->phase != PH_DONE) {
			status_text(st, why, sizeof(why));
			/* say() clears a spinner's line first. */
			say("the network relay stopped (%s): the guest has no "
			    "network for the rest of this session (nothing "
			    "bypasses the egress policy); restart ccvm to get "
			    "it back",
			    why);
		}
	}
}

/* What ran out in the guest, each in one line: its memory (the guest's
 * OOM killer struck), the scratch disk's host space. */
static void report_guest_limits(struct session *s)
{
	long mib = s->cfg->memory_mib;
	if (s->oom_killed)
		say("the guest ran out of memory (memory = %ld MiB): its OOM "
		    "killer killed the program; raise memory (CCVM_MEMORY)",
		    mib);
	else if (s->oom_kills)
		say("the guest ran out of memory (memory = %ld MiB): its OOM "
		    "killer killed %u process%s; raise memory (CCVM_MEMORY)",
		    mib, s->oom_kills, s->oom_kills == 1 ? "" : "es");
	if (s->scratch >= 0 && scratch_out_of_space(s->scratch)) {
		bool may_create;
		struct ccvm_err e = {0};
		autofree char *dir = scratch_dir_choose(
		    getenv(SCRATCH_DIR_ENV), getenv("XDG_CACHE_HOME"),
		    getenv("HOME"), &may_create, &e);
		say("the scratch disk ran out of host space in %s: writes to "
		    "/scratch failed (I/O errors in the guest); free space "
		    "there or set %s to a roomier directory",
		    dir ? dir : "its directory", SCRATCH_DIR_ENV);
	}
}

void session_report(struct session *s, int code)
{
	spinner_clear(s);
	term_restore(&s->term);
	if (!s->have_exit) {
		fail_unexplained(s);
		/* The error first, then what QEMU and the guest said. */
		say("%s", s->fail.msg);
		if (!s->args->debug && code == CCVM_EXIT_FAILURE &&
		    !s->fail_said_all) {
			tail_print(&s->qemu_err, "QEMU", 10);
			tail_print(&s->console, "guest console", 15);
		}
	} else if (s->fail.code) {
		say("%s", s->fail.msg);
	}
	report_guest_limits(s);
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

void session_teardown(struct session *s)
{
	session_kill_qemu(s);
	clip_free(&s->clip);
	share_pump_free(&s->share);
	spinner_clear(s);
	term_restore(&s->term);
	vfs_stop(&s->vfs); /* after QEMU, its only client */
	/* QEMU is gone: the relay sees the port close.  One that has
	 * already ended (session_watch_helpers) may have left a summary. */
	if (s->egress_pid > 0 || s->egress_summary >= 0)
		egress_finish(s->egress_pid, s->egress_summary, 2000);
	s->egress_summary = -1;
	for (int i = 0; i < 2; i++) {
		close_fd(&s->netp[i]);
		close_fd(&s->ctlp[i]);
		close_fd(&s->conp[i]);
		close_fd(&s->errp[i]);
	}
	close_fd(&s->ctl);
	close_fd(&s->con);
	close_fd(&s->qerr);
	close_fd(&s->sigfd);
	close_fd(&s->scratch);
	close_fd(&s->ram);
	park_boot_free(&s->park);
	if (s->blocked)
		sigprocmask(SIG_SETMASK, &s->oldmask, NULL);
	s->blocked = false;
}
