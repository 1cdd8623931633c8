#define _GNU_SOURCE
/*
 * One session: start QEMU with the guest image, answer the guest init's
 * HELLO with the session's setup, relay the terminal until the guest
 * reports the program's exit, and leave nothing behind.
 *
 * Nothing touches the file system: the control channel is one end of a
 * socketpair handed to QEMU as an inherited fd, and so is the serial
 * console.  QEMU dies with us (PR_SET_PDEATHSIG), even on SIGKILL.
 */
#include "session/session.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vm/accel.h"
#include "term/clipboard.h"
#include "net/egress.h"
#include "sys/hostpath.h"
#include "image/image.h"
#include "sys/nosuid.h"
#include "setup/handover.h"
#include "setup/places.h"
#include "sys/procs.h"
#include "proto.h"
#include "vm/qemu.h"
#include "vm/qmp.h"
#include "vm/ram.h"
#include "vm/scratch.h"
#include "vm/park.h"
#include "setup/stage.h"
#include "term/term.h"
#include "term/termfilter.h"
#include "util.h"
#include "share/vfs.h"
#include "share/sharesync.h"

#define CHILD_CTL_FD	 3
#define CHILD_CON_FD	 4
#define CHILD_NET_FD	 5     /* ccvm.net (egress.h) */
#define CHILD_SCRATCH_FD 6     /* the scratch disk, when vmDiskSize > 0 */
#define CHILD_VFS_FD	 7     /* virtiofsd's socket (vfs.h) */
#define CHILD_RAM_FD	 8     /* guest RAM with virtiofs (ram.h) */
#define CHILD_QMP_FD	 9     /* QEMU's monitor, with a saved boot */
#define CHILD_SNAP_FD	 10    /* the saved boot QEMU restores */
#define QMP_MS		 10000 /* one QMP command */
#define MIGRATE_MS	 60000 /* saving or restoring a boot */
#define EXIT_GRACE_MS	 10000 /* guest reported exit; QEMU should follow */
#define SIGNAL_GRACE_MS	 5000  /* SIGTERM/SIGHUP forwarded; then kill */
#define ERROR_GRACE_MS	 10000 /* guest reported ERROR; it should power off */
/*
 * The control port is read only while the frames queued for the guest stay
 * under CTL_REPLY_HIGH, so a guest that asks (CLIP_REQ, STOPPED) without
 * reading the answers cannot make ccvm queue without end.  What ccvm sends
 * of its own accord stops at PROTO_WRITER_HIGH plus one chunk per source
 * (stdin 64 KiB, a share batch 60 KiB, clipboard data 64 KiB): below this
 * mark, so that input the guest is slow to take never stops its output.
 */
#define CTL_REPLY_HIGH (PROTO_WRITER_HIGH + PROTO_WRITER_HIGH / 2)
/* A SHARE_INVAL the guest has not answered within this: the share is no
 * longer followed (input held for it goes on). */
#define SHARE_SYNC_TIMEOUT_MS 10000
/* Host changes to the share: at most one batch per SHARE_BATCH_GAP_MS;
 * virtiofsd's open files counted every SHARE_FILES_CHECK_MS; at most one
 * trim per SHARE_TRIM_GAP_MS. */
#define SHARE_BATCH_GAP_MS     50
#define SHARE_FILES_CHECK_MS   1000
#define SHARE_TRIM_GAP_MS      5000
#define DEFAULT_BOOT_TIMEOUT_S 90

/* The last bytes of a stream (console, QEMU's stderr) for diagnostics. */
struct tail {
	char buf[8192];
	size_t len;
};

static void tail_add(struct tail *t, const char *p, size_t n)
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

static bool tail_has(const struct tail *t, const char *needle)
{
	return memmem(t->buf, t->len, needle, strlen(needle)) != NULL;
}

/* Prints the last max_lines lines of t to stderr, each prefixed. */
static void tail_print(const struct tail *t, const char *label, int max_lines)
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
	fprintf(stderr, "ccvm: last %s lines:\n", label);
	const char *p = t->buf + start, *end = t->buf + t->len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		/* Text only: no control byte, no escape sequence. */
		char line[1024];
		termfilter_text(p, n, line, sizeof(line));
		fprintf(stderr, "  | %s\n", line);
		p += n + (nl ? 1 : 0);
	}
}

enum phase { PH_BOOT, PH_RUN, PH_DONE };

struct session {
	const struct ccvm_config *cfg;
	const struct cli_args *args;
	struct term_state term;
	bool pty;
	bool spinner;
	enum accel_kind accel;

	int sigfd, ctl, con, qerr;
	int scratch;	       /* nameless disk file for QEMU, or -1 */
	int ram;	       /* guest RAM file for QEMU (ram.h), or -1 */
	struct vfs_daemon vfs; /* virtiofsd, when it serves the directory */
	/* A boot saved or restored (snap.h): QEMU's monitor, the file. */
	bool park, restoring, unparked;
	int qmp, qmp_child;
	struct qmp *qm;
	struct snap snap;
	pid_t qemu;
	bool qemu_reaped;
	int qemu_status;

	struct stage_list staged;
	struct proto_reader *rd;
	struct proto_writer wr;
	bool secrets_queued;
	const char *key; /* the API key (procs.h), until queued */
	size_t key_len;

	enum phase phase;
	bool stdin_open;
	long long boot_start, boot_deadline, kill_deadline;
	char status[128]; /* spinner text */
	unsigned spin;

	bool have_exit;
	bool guest_failed; /* the guest sent ERROR */
	int exit_code;
	char error[512]; /* first fatal error seen */

	/* The network relay (egress.h), its summary pipe, the guest's
	 * ANTHROPIC_BASE_URL. */
	struct egress_policy *egress;
	pid_t egress_pid;
	int egress_summary;
	char *api_url;
	struct tail console, qemu_err;
	/* What the guest prints to a host terminal goes through these
	 * (termfilter.h): its stdout, its stderr, and with --ccvm-debug the
	 * console and QEMU's stderr. */
	bool out_tty, err_tty;
	struct termfilter tf_out, tf_err, tf_con, tf_qerr;
	struct clip clip; /* clipboard image paste (clip.h) */

	/* Host changes to the share, for the guest's caches (watch.h). */
	struct watch *watch;
	pthread_t filler; /* watch_fill while QEMU boots */
	bool filling;
	int fill_result;
	bool share_busy;	/* a SHARE_INVAL awaits its SHARE_SYNCED */
	uint64_t share_acked;	/* events the guest has applied */
	uint64_t stdin_barrier; /* input waits until this is applied */
	bool watch_warned;
	bool share_trim;	  /* ask the guest to drop unused inodes */
	long long files_check_ms; /* next look at virtiofsd's open files */
	long long trim_ok_ms;	  /* no second trim before this */
	long long share_next_ms;  /* no batch before this, unless urgent */
	long long share_sent_ms;  /* the SHARE_INVAL awaited was sent then */
};

static void set_error(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(struct session *s, const char *fmt, ...)
{
	if (s->error[0])
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->error, sizeof(s->error), fmt, ap);
	va_end(ap);
}

/* --- the spinner ------------------------------------------------------ */

static void spinner_draw(struct session *s)
{
	static const char frames[] = "|/-\\";
	if (!s->spinner)
		return;
	double secs = (double)(util_now_ms() - s->boot_start) / 1000.0;
	fprintf(stderr, "\r\033[K%c ccvm: %s %.1fs", frames[s->spin++ % 4],
		s->status, secs);
	fflush(stderr);
}

static void spinner_clear(struct session *s)
{
	if (!s->spinner)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	s->spinner = false;
}

/* --- QEMU ------------------------------------------------------------- */

/* Moves fd to number target in a child (dup2 clears FD_CLOEXEC). */
static int child_place_fd(int fd, int target)
{
	if (fd == target)
		return util_set_cloexec(fd, false);
	return dup2(fd, target) < 0 ? -errno : 0;
}

static int spawn_qemu(struct session *s, char *const argv[], int ctl_child,
		      int con_child, int net_child, int err_child,
		      struct ccvm_err *err)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid < 0)
		return ccvm_err_sys(err, errno, "fork");
	if (pid == 0) {
		/* Child: only async-signal-safe calls from here on. */
		if (!util_child_dies_with(parent))
			_exit(127);
		/* Out of the terminal's process group: ccvm decides what a
		 * Ctrl-C means, not the tty driver. */
		setpgid(0, 0);
		int hi_ctl = fcntl(ctl_child, F_DUPFD_CLOEXEC, 16);
		int hi_con = fcntl(con_child, F_DUPFD_CLOEXEC, 16);
		int hi_err = fcntl(err_child, F_DUPFD_CLOEXEC, 16);
		int hi_net = fcntl(net_child, F_DUPFD_CLOEXEC, 16);
		int hi_scr = s->scratch >= 0
				 ? fcntl(s->scratch, F_DUPFD_CLOEXEC, 16)
				 : -1;
		int hi_vfs = s->vfs.qemu_fd >= 0
				 ? fcntl(s->vfs.qemu_fd, F_DUPFD_CLOEXEC, 16)
				 : -1;
		int hi_ram =
		    s->ram >= 0 ? fcntl(s->ram, F_DUPFD_CLOEXEC, 16) : -1;
		int hi_qmp = s->qmp_child >= 0
				 ? fcntl(s->qmp_child, F_DUPFD_CLOEXEC, 16)
				 : -1;
		int hi_snap = s->snap.fd >= 0 && s->restoring
				  ? fcntl(s->snap.fd, F_DUPFD_CLOEXEC, 16)
				  : -1;
		int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (hi_ctl < 0 || hi_con < 0 || hi_err < 0 || hi_net < 0 ||
		    devnull < 0 || (s->scratch >= 0 && hi_scr < 0) ||
		    (s->vfs.qemu_fd >= 0 && hi_vfs < 0) ||
		    (s->ram >= 0 && hi_ram < 0) ||
		    (s->qmp_child >= 0 && hi_qmp < 0) ||
		    (s->snap.fd >= 0 && s->restoring && hi_snap < 0))
			_exit(127);
		if (child_place_fd(devnull, 0) < 0 ||
		    child_place_fd(hi_err, 1) < 0 ||
		    child_place_fd(hi_err, 2) < 0 ||
		    child_place_fd(hi_ctl, CHILD_CTL_FD) < 0 ||
		    child_place_fd(hi_con, CHILD_CON_FD) < 0 ||
		    child_place_fd(hi_net, CHILD_NET_FD) < 0 ||
		    (hi_scr >= 0 &&
		     child_place_fd(hi_scr, CHILD_SCRATCH_FD) < 0) ||
		    (hi_vfs >= 0 && child_place_fd(hi_vfs, CHILD_VFS_FD) < 0) ||
		    (hi_ram >= 0 && child_place_fd(hi_ram, CHILD_RAM_FD) < 0) ||
		    (hi_qmp >= 0 && child_place_fd(hi_qmp, CHILD_QMP_FD) < 0) ||
		    (hi_snap >= 0 &&
		     child_place_fd(hi_snap, CHILD_SNAP_FD) < 0))
			_exit(127);
		/* Fds 3-5 always, 6 with a scratch disk, 7 with virtiofs, 8
		 * with its RAM file, 9 with a saved boot (10 restoring one);
		 * nothing else. */
		if (hi_scr < 0)
			close(CHILD_SCRATCH_FD);
		if (hi_vfs < 0)
			close(CHILD_VFS_FD);
		if (hi_ram < 0)
			close(CHILD_RAM_FD);
		if (hi_qmp < 0)
			close(CHILD_QMP_FD);
		if (hi_snap < 0)
			close(CHILD_SNAP_FD);
		close_range(CHILD_SNAP_FD + 1, ~0U, 0);
		/* 9p writes the share as QEMU: no setuid files (nosuid.h). */
		if (nosuid_install(true) < 0) {
			static const char m[] = "ccvm: cannot install QEMU's "
						"no-setuid seccomp filter\n";
			if (write(2, m, sizeof(m) - 1) < 0) {
				/* nothing more to do */
			}
			_exit(127);
		}
		static char *const envp[] = {"PATH=/usr/bin:/bin", "LC_ALL=C",
					     NULL};
		execve(argv[0], argv, envp);
		static const char msg[] = "ccvm: cannot execute QEMU\n";
		if (write(2, msg, sizeof(msg) - 1) < 0) {
			/* nothing more to do */
		}
		_exit(127);
	}
	s->qemu = pid;
	return 0;
}

static void qemu_reap(struct session *s, bool block)
{
	if (s->qemu <= 0 || s->qemu_reaped)
		return;
	int st;
	pid_t r;
	do
		r = waitpid(s->qemu, &st, block ? 0 : WNOHANG);
	while (r < 0 && errno == EINTR);
	if (r == s->qemu) {
		s->qemu_reaped = true;
		s->qemu_status = st;
	}
}

static void qemu_kill(struct session *s)
{
	if (s->qemu > 0 && !s->qemu_reaped) {
		kill(s->qemu, SIGKILL);
		qemu_reap(s, true);
	}
}

/* --- the setup sent on the guest's HELLO --------------------------------- */

static int queue(struct session *s, uint8_t type, const void *p, size_t n)
{
	int r = proto_writer_put(&s->wr, type, 0, p, n);
	if (r < 0)
		set_error(s, "cannot queue a %s frame: %s",
			  proto_type_name(type), strerror(-r));
	return r;
}

/* The hand-over (handover.h): the key and the staged files leave ccvm's
 * own memory for the writer here. */
static int send_setup(struct session *s, const char *cwd, struct ccvm_err *err)
{
	struct handover h = {
	    .shell = s->args->mode == CLI_RUN_SHELL,
	    .cwd = cwd,
	    .writable = s->cfg->writable_cwd,
	    .virtiofs = s->vfs.pid > 0,
	    .share_sync = s->watch != NULL,
	    .pty = s->pty,
	    .rows = 24,
	    .cols = 80,
	    .term = getenv("TERM"),
	    .projects = s->cfg->persist_projects,
	    .scratch = s->cfg->vm_disk_size_gib > 0,
	    .debug = s->args->debug,
	    .nix = s->cfg->nix_enable,
	    .argc = s->args->argc,
	    .argv = s->args->argv,
	    .api_url = s->api_url,
	    .key_var = s->cfg->api_key_variable,
	    .key = s->key,
	    .key_len = s->key_len,
	    .staged = &s->staged,
	};
	if (s->pty)
		term_size(STDOUT_FILENO, &h.rows, &h.cols);
	s->key = NULL;
	return handover_queue(&s->wr, &h, &s->secrets_queued, err);
}

static void send_resize(struct session *s)
{
	unsigned rows, cols;
	if (!s->pty || !term_size(STDOUT_FILENO, &rows, &cols))
		return;
	uint8_t p[4];
	proto_put_u16(p, (uint16_t)rows);
	proto_put_u16(p + 2, (uint16_t)cols);
	queue(s, PROTO_RESIZE, p, sizeof(p));
}

static void send_signal(struct session *s, int sig)
{
	uint8_t p[4];
	proto_put_u32(p, (uint32_t)sig);
	queue(s, PROTO_SIGNAL, p, sizeof(p));
}

/*
 * May ccvm stop itself, as the program did?  Only when a shell's job
 * control can continue it: ccvm is the foreground job of its controlling
 * terminal (on stdin, stdout or stderr) and not the session's leader.  No
 * terminal (a script, a service), a background job, or ccvm started as a
 * terminal's first process (ssh -t host 'exec ccvm'): nobody would.
 */
static bool may_stop(void)
{
	if (getsid(0) == getpid())
		return false;
	for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
		pid_t fg = tcgetpgrp(fd); /* -1 unless our own terminal */
		if (fg > 0)
			return fg == getpgrp();
	}
	return false;
}

/* The program stopped (Ctrl-Z, SIGSTOP): with a terminal ccvm is the
 * foreground job of, give the terminal back and stop ccvm the same way,
 * then continue the program when the shell continues us; otherwise
 * continue the program at once, so that nothing waits forever. */
static void stop_like_the_agent(struct session *s)
{
	if (!may_stop()) {
		if (s->args->debug)
			fprintf(stderr, "ccvm: the program stopped; no "
					"terminal's job control would continue "
					"ccvm: continuing it\r\n");
		queue(s, PROTO_CONT, NULL, 0);
		return;
	}
	term_restore(&s->term);
	kill(getpid(), SIGSTOP);
	/* Continued (fg). */
	if (s->pty)
		term_raw(&s->term);
	send_resize(s);
	queue(s, PROTO_CONT, NULL, 0);
}

/* --- the relay ----------------------------------------------------------- */

static void share_warn_incomplete(struct session *s)
{
	if (!watch_incomplete(s->watch) || s->watch_warned)
		return;
	s->watch_warned = true;
	fprintf(stderr,
		"ccvm: cannot watch every directory of the share (ccvm takes "
		"at most half of fs.inotify.max_user_watches): files changed "
		"on the host in the others may not be seen in the VM\r\n");
}

static void *fill_main(void *arg)
{
	struct session *s = arg;
	s->fill_result = watch_fill(s->watch);
	return NULL;
}

/* The tree is watched before the guest sees the share (SETUP). */
static void share_join(struct session *s)
{
	if (!s->filling)
		return;
	pthread_join(s->filler, NULL);
	s->filling = false;
	if (s->fill_result < 0)
		fprintf(stderr,
			"ccvm: watching the shared directory: %s: files "
			"changed on the host may not be seen in the VM\r\n",
			strerror(-s->fill_result));
	share_warn_incomplete(s);
	if (s->args->debug)
		fprintf(stderr,
			"ccvm: watching %zu directories of the share\r\n",
			watch_dirs(s->watch));
}

/* Stops reporting host changes, saying why, once. */
static void share_stop(struct session *s, const char *why)
{
	fprintf(stderr,
		"ccvm: %s: files changed on the host from now on may not be "
		"seen in the VM\r\n",
		why);
	watch_free(s->watch);
	s->watch = NULL;
	s->share_busy = false;
}

/* Every event read so far that the guest has applied (or that changed
 * nothing it could hold). */
static uint64_t share_done(const struct session *s)
{
	if (!s->share_busy && !watch_pending(s->watch))
		return watch_seq(s->watch);
	return s->share_acked;
}

/*
 * Sends the next batch of host changes: one at a time, and while changes
 * keep coming (the guest's own, mostly) at most one per
 * SHARE_BATCH_GAP_MS, unless input waits for them.
 */
static void share_pump(struct session *s)
{
	if (!s->watch || s->share_busy || s->phase != PH_RUN || s->ctl < 0 ||
	    !(watch_pending(s->watch) || s->share_trim) ||
	    proto_writer_full(&s->wr))
		return;
	long long now = util_now_ms();
	bool urgent = s->stdin_barrier || s->share_trim;
	if (!urgent && now < s->share_next_ms)
		return;
	s->share_next_ms = now + SHARE_BATCH_GAP_MS;
	static uint8_t buf[PROTO_SHARE_HDR + PROTO_SHARE_BATCH];
	size_t n = watch_take(s->watch, buf, sizeof(buf));
	if (s->share_trim)
		buf[8] |= PROTO_SHARE_TRIM;
	s->share_trim = false;
	queue(s, PROTO_SHARE_INVAL, buf, n);
	s->share_busy = true;
	s->share_sent_ms = now;
}

/* A guest that never answers a SHARE_INVAL holds no input for ever: past
 * SHARE_SYNC_TIMEOUT_MS the share is no longer followed.  The time left
 * (ms), or -1 when nothing is awaited. */
static int share_check_synced(struct session *s, long long now)
{
	if (!s->watch || !s->share_busy)
		return -1;
	long long due = s->share_sent_ms + SHARE_SYNC_TIMEOUT_MS;
	if (now < due)
		return (int)(due - now);
	char why[96];
	snprintf(why, sizeof(why),
		 "the guest did not confirm host changes within %d s",
		 SHARE_SYNC_TIMEOUT_MS / 1000);
	share_stop(s, why);
	return -1;
}

/*
 * virtiofsd keeps a file open for every inode the guest caches; past 3/4
 * of its limit, the guest is asked to let go of those it does not use (at
 * most every few seconds).  Checked every SHARE_FILES_CHECK_MS.
 */
static void share_check_files(struct session *s, long long now)
{
	if (now < s->files_check_ms)
		return;
	s->files_check_ms = now + SHARE_FILES_CHECK_MS;
	long open = vfs_open_files(&s->vfs);
	if (open < 0 || open <= vfs_files_max() / 4 * 3 || now < s->trim_ok_ms)
		return;
	if (s->args->debug)
		fprintf(stderr,
			"ccvm: virtiofsd holds %ld files (limit %ld): asking "
			"the guest to drop unused inodes\r\n",
			open, vfs_files_max());
	s->share_trim = true;
	s->trim_ok_ms = now + SHARE_TRIM_GAP_MS;
	share_pump(s);
}

static void share_read(struct session *s)
{
	int r = watch_read(s->watch);
	if (r < 0) {
		share_stop(s, "watching the shared directory failed");
		return;
	}
	share_warn_incomplete(s);
	share_pump(s);
}

/*
 * Input the user typed after editing a file on the host must not reach
 * the guest before the edit's invalidation: read stdin only once every
 * change read until now is applied in the guest.  True when it may be
 * read now.
 */
static bool stdin_may_read(struct session *s)
{
	if (!s->watch)
		return true;
	if (s->stdin_barrier) {
		/* Waited for the changes before this input already. */
		s->stdin_barrier = 0;
		return true;
	}
	share_read(s);
	if (!s->watch || share_done(s) >= watch_seq(s->watch))
		return true;
	s->stdin_barrier = watch_seq(s->watch);
	share_pump(s); /* now urgent */
	return false;
}

static bool stdin_held(const struct session *s)
{
	return s->watch && s->stdin_barrier && share_done(s) < s->stdin_barrier;
}

/* The guest is parked (restored, or booted and maybe saved): the time and
 * fresh entropy, so that no two sessions of one saved boot share either. */
static int send_unpark(struct session *s, struct ccvm_err *err)
{
	uint8_t p[PROTO_UNPARK_LEN];
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	proto_put_u64(p, (uint64_t)now.tv_sec);
	proto_put_u32(p + 8, (uint32_t)now.tv_nsec);
	if (getrandom(p + PROTO_UNPARK_TIME, PROTO_UNPARK_ENTROPY, 0) !=
	    PROTO_UNPARK_ENTROPY)
		return ccvm_err_sys(err, errno, "getrandom");
	int r = queue(s, PROTO_UNPARK, p, sizeof(p));
	explicit_bzero(p, sizeof(p));
	s->unparked = true;
	return r;
}

/* Adds the share's device (it cannot be saved), lets a stopped VM run,
 * and unparks the guest. */
static int park_resume(struct session *s, bool stopped, struct ccvm_err *err)
{
	json_t *dev = json_loads(QEMU_VFS_DEVICE, 0, NULL);
	if (!dev)
		return ccvm_err_set(err, EINVAL, "QEMU_VFS_DEVICE");
	if (qmp_call(s->qm, "device_add", dev, NULL, QMP_MS, err) < 0 ||
	    (stopped && qmp_call(s->qm, "cont", NULL, NULL, QMP_MS, err) < 0))
		return err->code;
	/* Nothing more to ask QEMU: its monitor goes, so that no event it
	 * reports waits unread (and no buffer of QEMU's fills with them). */
	close(s->qmp);
	s->qmp = -1;
	return send_unpark(s, err);
}

static int set_ignore_shared(struct session *s, struct ccvm_err *err)
{
	json_t *a = json_pack("{s:[{s:s,s:b}]}", "capabilities", "capability",
			      "x-ignore-shared", "state", 1);
	return qmp_call(s->qm, "migrate-set-capabilities", a, NULL, QMP_MS,
			err);
}

/* Stops the VM and saves it (its RAM from the RAM file, not through
 * QEMU); *stopped tells whether it needs a cont. */
static int park_save(struct session *s, bool *stopped, struct ccvm_err *err)
{
	long long t0 = util_now_ms();
	if (qmp_call(s->qm, "stop", NULL, NULL, QMP_MS, err) < 0)
		return err->code;
	*stopped = true;
	/* An outgoing fd: migration takes only a named one. */
	if (set_ignore_shared(s, err) < 0 ||
	    qmp_call_fd(s->qm, "getfd", json_pack("{s:s}", "fdname", "snap"),
			s->snap.fd, NULL, QMP_MS, err) < 0 ||
	    qmp_call(s->qm, "migrate", json_pack("{s:s}", "uri", "fd:snap"),
		     NULL, QMP_MS, err) < 0 ||
	    qmp_wait_migration(s->qm, MIGRATE_MS, err) < 0 ||
	    snap_finish(&s->snap, s->ram, (uint64_t)s->cfg->memory_mib << 20,
			err) < 0)
		return err->code;
	if (s->args->debug)
		fprintf(stderr, "ccvm: boot saved as %s in %lld ms\r\n",
			s->snap.path, util_now_ms() - t0);
	return 0;
}

/* The guest booted and parked. */
static void on_park(struct session *s, struct ccvm_err *err)
{
	if (!s->park || s->unparked || s->restoring)
		return;
	bool stopped = false;
	if (qmp_open(s->qm, s->qmp, QMP_MS, err) < 0) {
		set_error(s, "%s", err->msg);
		qemu_kill(s);
		return;
	}
	if (s->snap.fd >= 0) {
		struct ccvm_err e = {0};
		if (park_save(s, &stopped, &e) < 0)
			fprintf(stderr, "ccvm: the boot was not saved: %s\r\n",
				e.msg);
		snap_close(&s->snap);
	}
	if (s->ram >= 0) {
		close(s->ram);
		s->ram = -1;
	}
	if (park_resume(s, stopped, err) < 0) {
		set_error(s, "%s", err->msg);
		qemu_kill(s);
	}
}

/*
 * A saved boot for this session's argv: load its RAM and restore it
 * (spec->incoming), or save this boot when the guest parks.  Failing to
 * find, load or prepare one is never an error: the session boots.
 */
static int saved_boot_prepare(struct session *s, struct qemu_spec *spec,
			      struct qemu_argv *qa, const char *dir,
			      struct ccvm_err *err)
{
	char key[65];
	struct ccvm_err e = {0};
	int r = snap_key(qa->v, s->scratch, key, &e);
	if (r == 0)
		r = snap_open(&s->snap, dir, key,
			      (uint64_t)s->cfg->memory_mib << 20, &e);
	if (r > 0 && snap_load_ram(&s->snap, s->ram, &e) == 0) {
		s->restoring = spec->incoming = true;
		qemu_argv_free(qa);
		return qemu_argv_build(spec, qa, err);
	}
	if (r != 0 && s->args->debug) /* here r > 0: it did not load */
		fprintf(stderr, "ccvm: no saved boot: %s\n", e.msg);
	if (r > 0 || (r < 0 && s->snap.path[0])) {
		/* Unusable: this session saves a new one. */
		snap_close(&s->snap);
		r = ftruncate(s->ram, 0) < 0 ||
			    (unlink(s->snap.path) < 0 && errno != ENOENT)
			? -errno
			: 0;
	}
	if (r >= 0 && snap_create(&s->snap, dir, key, &e) < 0 && s->args->debug)
		fprintf(stderr, "ccvm: this boot will not be saved: %s\n",
			e.msg);
	return 0;
}

/* Restores the saved boot into the QEMU just started with -incoming. */
static int restore(struct session *s, struct ccvm_err *err)
{
	long long t0 = util_now_ms();
	char uri[32];
	snprintf(uri, sizeof(uri), "fd:%d", CHILD_SNAP_FD);
	if (qmp_open(s->qm, s->qmp, QMP_MS, err) < 0 ||
	    set_ignore_shared(s, err) < 0 ||
	    qmp_call(s->qm, "migrate-incoming", json_pack("{s:s}", "uri", uri),
		     NULL, QMP_MS, err) < 0 ||
	    qmp_wait_migration(s->qm, MIGRATE_MS, err) < 0 ||
	    park_resume(s, true, err) < 0)
		return err->code;
	if (s->args->debug)
		fprintf(stderr, "ccvm: restored %s in %lld ms\r\n",
			s->snap.path, util_now_ms() - t0);
	snap_close(&s->snap);
	return 0;
}

/* Guest output for fd: through f (termfilter.h) when fd is a terminal;
 * into a file or a pipe unchanged (it may be data, not text). */
static void write_guest(struct termfilter *f, bool tty, int fd, const void *p,
			size_t n)
{
	enum { CHUNK = 16384 };
	static uint8_t buf[TERMFILTER_OUT_MAX(CHUNK)];
	if (!tty) {
		if (n)
			util_write_all(fd, p, n);
		return;
	}
	for (size_t off = 0; off < n; off += CHUNK) {
		size_t k = n - off < CHUNK ? n - off : CHUNK;
		size_t w = termfilter_run(f, (const uint8_t *)p + off, k, buf);
		if (w)
			util_write_all(fd, buf, w);
	}
}

static void handle_msg(struct session *s, const struct proto_msg *m,
		       const char *cwd, struct ccvm_err *err)
{
	switch (m->type) {
	case PROTO_HELLO:
		if (s->phase != PH_BOOT)
			break;
		share_join(s);
		if (m->len < 4 || proto_get_u32(m->data) != PROTO_VERSION) {
			set_error(s,
				  "guest speaks protocol version %u, ccvm "
				  "speaks %u: rebuild the image",
				  m->len >= 4 ? proto_get_u32(m->data) : 0,
				  PROTO_VERSION);
			qemu_kill(s);
			break;
		}
		if (send_setup(s, cwd, err) < 0) {
			set_error(s, "%s", err->msg);
			qemu_kill(s);
			break;
		}
		s->phase = PH_RUN;
		spinner_clear(s);
		if (s->pty && term_raw(&s->term) < 0)
			set_error(s, "cannot put the terminal in raw mode");
		break;
	case PROTO_PARK:
		if (s->phase == PH_BOOT)
			on_park(s, err);
		break;
	case PROTO_STDOUT:
		write_guest(&s->tf_out, s->out_tty, STDOUT_FILENO, m->data,
			    m->len);
		break;
	case PROTO_STDERR:
		write_guest(&s->tf_err, s->err_tty, STDERR_FILENO, m->data,
			    m->len);
		break;
	case PROTO_STOPPED:
		if (s->phase == PH_RUN)
			stop_like_the_agent(s);
		break;
	case PROTO_EXIT:
		if (m->len < 8 || s->have_exit)
			break;
		s->have_exit = true;
		uint32_t kind = proto_get_u32(m->data);
		uint32_t code = proto_get_u32(m->data + 4);
		s->exit_code = kind == PROTO_EXIT_SIGNAL
				   ? 128 + (int)(code & 0x7f)
				   : (int)(code & 0xff);
		s->phase = PH_DONE;
		s->kill_deadline = util_now_ms() + EXIT_GRACE_MS;
		break;
	case PROTO_ERROR: {
		char text[401];
		termfilter_text(m->data, m->len, text, sizeof(text));
		s->guest_failed = true;
		set_error(s, "guest: %s", text);
		/* It powers off next; one that does not is stopped. */
		if (!s->kill_deadline)
			s->kill_deadline = util_now_ms() + ERROR_GRACE_MS;
		break;
	}
	case PROTO_SHARE_SYNCED:
		if (!s->watch || !s->share_busy || m->len < PROTO_SHARE_HDR)
			break;
		s->share_busy = false;
		uint64_t seq = proto_get_u64(m->data);
		if (seq > s->share_acked)
			s->share_acked = seq;
		if (m->data[8] != 0)
			share_stop(s,
				   "the guest stopped following host changes");
		else
			share_pump(s);
		break;
	case PROTO_CLIP_REQ:
		if (s->phase == PH_RUN)
			clip_request(&s->clip, m->chan, m->data, m->len,
				     &s->wr);
		break;
	case PROTO_LOG:
		if (s->args->debug) {
			char text[401];
			termfilter_text(m->data, m->len, text, sizeof(text));
			fprintf(stderr, "ccvm: guest: %s\r\n", text);
		} else if (s->phase == PH_BOOT) {
			termfilter_text(m->data, m->len, s->status, 61);
		}
		break;
	default:
		/* Frames meant for the guest, or newer ones: ignore. */
		break;
	}
}

/* True while the guest is owed more than CTL_REPLY_HIGH bytes: its frames
 * wait (unread, or unhandled in the reader) until it takes some.  Once
 * QEMU is gone nothing can be sent, and what it left is read to the end. */
static bool ctl_held(const struct session *s)
{
	return !s->qemu_reaped && proto_writer_queued(&s->wr) >= CTL_REPLY_HIGH;
}

/*
 * Handles the frames the reader holds while the guest is not owed too
 * much (ctl_held), then, when readable and not held, reads the port once
 * and handles what that brought: bounded work, so the loop polls (and
 * sees signals) between reads however fast the guest writes.  True when
 * it read something (there may be more).
 */
static bool read_ctl(struct session *s, bool readable, const char *cwd,
		     struct ccvm_err *err)
{
	ssize_t n = -EAGAIN;
	for (int pass = 0; pass < 2; pass++) {
		struct proto_msg m;
		int r = 0;
		while (!ctl_held(s) && (r = proto_reader_next(s->rd, &m)) > 0)
			handle_msg(s, &m, cwd, err);
		if (r < 0) {
			set_error(s, "protocol error from the guest: %s",
				  strerror(-r));
			qemu_kill(s);
			return false;
		}
		if (s->have_exit || s->guest_failed) {
			/* The guest waits for this close before it powers
			 * off: only then is all it wrote known to be here. */
			close(s->ctl);
			s->ctl = -1;
			/* After EXIT nothing of the guest's is left to
			 * keep (it synced before sending it): stop the VM
			 * rather than wait for its power-off and QEMU's
			 * orderly device teardown. */
			if (s->have_exit)
				qemu_kill(s);
			return false;
		}
		if (pass > 0 || !readable || ctl_held(s))
			break;
		n = proto_reader_fill(s->rd, s->ctl);
		if (n == 0 || (n < 0 && n != -EAGAIN && n != -EINTR)) {
			/* QEMU closed the port: it is exiting. */
			close(s->ctl);
			s->ctl = -1;
			return false;
		}
	}
	return n > 0;
}

/* Reads a diagnostic stream into t; with --ccvm-debug echoes it to stderr
 * through echo (NULL: no echo). */
static void read_stream(struct session *s, int *fd, struct tail *t,
			struct termfilter *echo)
{
	char buf[4096];
	ssize_t n = read(*fd, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		close(*fd);
		*fd = -1;
		return;
	}
	tail_add(t, buf, (size_t)n);
	if (echo && s->args->debug)
		write_guest(echo, s->err_tty, STDERR_FILENO, buf, (size_t)n);
}

static void read_stdin(struct session *s)
{
	static char buf[65536];
	ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n > 0) {
		queue(s, PROTO_STDIN, buf, (size_t)n);
		return;
	}
	s->stdin_open = false;
	if (s->pty)
		send_signal(s, SIGHUP); /* the terminal went away */
	else
		queue(s, PROTO_STDIN, NULL, 0);
}

static int handle_signal(struct session *s, int sig)
{
	switch (sig) {
	case SIGCHLD:
		qemu_reap(s, false);
		clip_on_sigchld(&s->clip);
		return 0;
	case SIGWINCH:
		if (s->phase == PH_RUN)
			send_resize(s);
		return 0;
	case SIGCONT:
		if (s->phase == PH_RUN && s->pty) {
			s->term.raw = false; /* whoever stopped us reset it */
			term_raw(&s->term);
			send_resize(s);
		}
		return 0;
	default:
		break;
	}
	if (s->phase == PH_BOOT) {
		/* Nothing runs yet: stop booting. */
		set_error(s, "interrupted while the VM was starting");
		qemu_kill(s);
		return 128 + sig;
	}
	if (s->phase == PH_RUN) {
		send_signal(s, sig);
		if (sig == SIGTERM || sig == SIGHUP) {
			if (!s->kill_deadline)
				s->kill_deadline =
				    util_now_ms() + SIGNAL_GRACE_MS;
			return 128 + sig;
		}
	}
	return 0;
}

static int relay(struct session *s, const char *cwd, struct ccvm_err *err)
{
	int signal_code = 0;
	for (;;) {
		if (s->qemu_reaped) {
			/* Whatever QEMU wrote before it died is still ours. */
			while (s->ctl >= 0 && read_ctl(s, true, cwd, err))
				;
			while (s->con >= 0)
				read_stream(s, &s->con, &s->console,
					    &s->tf_con);
			while (s->qerr >= 0)
				read_stream(s, &s->qerr, &s->qemu_err,
					    &s->tf_qerr);
			break;
		}
		/* Frames held while the guest was owed too much (ctl_held):
		 * the port may have nothing more to wake the poll. */
		if (s->ctl >= 0)
			read_ctl(s, false, cwd, err);
		int sync_left = share_check_synced(s, util_now_ms());
		if (s->secrets_queued && !proto_writer_pending(&s->wr)) {
			proto_writer_wipe(&s->wr);
			s->secrets_queued = false;
		}
		struct pollfd p[7];
		int np = 0, i_ctl = -1, i_con = -1, i_err = -1, i_in = -1;
		int i_clip = -1, i_watch = -1;
		p[np++] = (struct pollfd){.fd = s->sigfd, .events = POLLIN};
		if (s->ctl >= 0) {
			i_ctl = np;
			p[np++] = (struct pollfd){
			    .fd = s->ctl,
			    .events =
				(ctl_held(s) ? 0 : POLLIN) |
				(proto_writer_pending(&s->wr) ? POLLOUT : 0)};
		}
		if (s->con >= 0) {
			i_con = np;
			p[np++] =
			    (struct pollfd){.fd = s->con, .events = POLLIN};
		}
		if (s->qerr >= 0) {
			i_err = np;
			p[np++] =
			    (struct pollfd){.fd = s->qerr, .events = POLLIN};
		}
		if (s->phase == PH_RUN && s->stdin_open && s->ctl >= 0 &&
		    !proto_writer_full(&s->wr) && !stdin_held(s)) {
			i_in = np;
			p[np++] = (struct pollfd){.fd = STDIN_FILENO,
						  .events = POLLIN};
		}
		if (s->watch && s->phase == PH_RUN) {
			i_watch = np;
			p[np++] = (struct pollfd){.fd = watch_fd(s->watch),
						  .events = POLLIN};
		}
		if (clip_fd(&s->clip) >= 0) {
			i_clip = np;
			p[np++] = (struct pollfd){.fd = clip_fd(&s->clip),
						  .events = POLLIN};
		}

		long long now = util_now_ms();
		int timeout = -1;
		if (s->phase == PH_BOOT) {
			if (now >= s->boot_deadline) {
				set_error(s,
					  "the guest did not answer within "
					  "%lld s (boot timed out; last step: "
					  "%s)",
					  (s->boot_deadline - s->boot_start) /
					      1000,
					  s->status);
				qemu_kill(s);
				continue;
			}
			timeout = (int)(s->boot_deadline - now);
			if (s->spinner && timeout > 100)
				timeout = 100;
		}
		if (s->kill_deadline) {
			if (now >= s->kill_deadline) {
				qemu_kill(s);
				continue;
			}
			int left = (int)(s->kill_deadline - now);
			if (timeout < 0 || left < timeout)
				timeout = left;
		}
		if (sync_left >= 0 && (timeout < 0 || sync_left < timeout))
			timeout = sync_left;
		if (s->watch && s->phase == PH_RUN) {
			long long due = s->files_check_ms;
			if (watch_pending(s->watch) && !s->share_busy &&
			    s->share_next_ms < due)
				due = s->share_next_ms;
			int left = due > now ? (int)(due - now) : 0;
			if (timeout < 0 || left < timeout)
				timeout = left;
		}
		int cl = clip_timeout_ms(&s->clip, now);
		if (cl >= 0 && (timeout < 0 || cl < timeout))
			timeout = cl;

		int n = poll(p, (nfds_t)np, timeout);
		if (n < 0 && errno != EINTR)
			return ccvm_err_sys(err, errno, "poll");
		if (s->phase == PH_BOOT)
			spinner_draw(s);
		if (s->watch && s->phase == PH_RUN) {
			share_check_files(s, util_now_ms());
			share_pump(s);
		}
		if (n <= 0) {
			clip_pump(&s->clip, util_now_ms(), &s->wr);
			continue;
		}

		if (p[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			while (read(s->sigfd, &si, sizeof(si)) == sizeof(si)) {
				int c = handle_signal(s, (int)si.ssi_signo);
				if (c && !signal_code)
					signal_code = c;
			}
		}
		if (i_ctl >= 0 && s->ctl >= 0) {
			if (p[i_ctl].revents & POLLOUT) {
				int r = proto_writer_flush(&s->wr, s->ctl);
				if (r < 0 && r != -EPIPE)
					set_error(s, "writing to the guest: %s",
						  strerror(-r));
			}
			/* Also what waited in the reader while the guest
			 * was owed too much. */
			bool in =
			    p[i_ctl].revents & (POLLIN | POLLHUP | POLLERR);
			read_ctl(s, in, cwd, err);
		}
		if (i_con >= 0 && (p[i_con].revents & (POLLIN | POLLHUP)))
			read_stream(s, &s->con, &s->console, &s->tf_con);
		if (i_err >= 0 && (p[i_err].revents & (POLLIN | POLLHUP)))
			read_stream(s, &s->qerr, &s->qemu_err, &s->tf_qerr);
		if (i_watch >= 0 && s->watch && (p[i_watch].revents & POLLIN))
			share_read(s);
		if (i_in >= 0 &&
		    (p[i_in].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    stdin_may_read(s))
			read_stdin(s);
		if (i_clip >= 0 &&
		    (p[i_clip].revents & (POLLIN | POLLHUP | POLLERR)))
			clip_on_readable(&s->clip);
		if (s->ctl >= 0)
			clip_pump(&s->clip, util_now_ms(), &s->wr);
		if (s->ctl >= 0 && proto_writer_pending(&s->wr))
			proto_writer_flush(&s->wr, s->ctl);
	}
	if (s->have_exit)
		return s->exit_code;
	if (signal_code)
		return signal_code;
	return CCVM_EXIT_FAILURE;
}

/* --- set-up and tear-down ------------------------------------------------ */

/* CCVM_ALLOW_SECRET_DIRS: 1 when set true, 0 when unset or false, or
 * -EINVAL with err set. */
static int allow_secret_dirs(struct ccvm_err *err)
{
	const char *v = getenv(SESSION_ENV_ALLOW_SECRET_DIRS);
	bool allow = false;
	if (v && !cfg_parse_bool(v, &allow)) {
		char q[128];
		return ccvm_err_set(err, EINVAL,
				    "%s: expected 1/0, true/false or yes/no, "
				    "got %s",
				    SESSION_ENV_ALLOW_SECRET_DIRS,
				    util_escape(q, sizeof(q), v, true));
	}
	return allow;
}

static int check_cwd(char *cwd, size_t n, const struct places *pl,
		     struct ccvm_err *err)
{
	if (!getcwd(cwd, n))
		return ccvm_err_sys(err, errno,
				    "cannot get the current "
				    "directory");
	if (strcmp(cwd, "/") == 0)
		return ccvm_err_set(err, EPERM,
				    "refusing to share / with the VM: run ccvm "
				    "in a project directory");
	const char *home = getenv("HOME");
	char real_home[PATH_MAX];
	if (home && realpath(home, real_home) && strcmp(real_home, cwd) == 0)
		return ccvm_err_set(err, EPERM,
				    "refusing to share your whole home "
				    "directory (%s) with the VM: run ccvm in a "
				    "project directory",
				    cwd);
	for (const char *p = cwd; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return ccvm_err_set(err, EINVAL,
					    "the current directory's path has "
					    "a control character");
	/* A directory holding or inside a secret place, a home directory
	 * or one of its ancestors (places.h). */
	char why[2 * PATH_MAX];
	if (!places_share_refused(pl, cwd, why, sizeof(why)))
		return 0;
	int allow = allow_secret_dirs(err);
	if (allow < 0)
		return allow;
	if (allow)
		return 0;
	return ccvm_err_set(err, EPERM,
			    "refusing to share %s with the VM: %s (%s=1 "
			    "overrides)",
			    cwd, why, SESSION_ENV_ALLOW_SECRET_DIRS);
}

/* The config file must not be one the guest could rewrite for the next
 * session: its link chain may not pass through the shared directory
 * (nor end in a secret place). */
static int check_config_links(const struct ccvm_config *cfg, const char *cwd,
			      const struct places *pl, struct ccvm_err *err)
{
	if (!cfg->config_file_found || !cfg->config_path)
		return 0;
	autofree char *abs =
	    cfg->config_path[0] == '/'
		? strdup(cfg->config_path)
		: util_asprintf("%s/%s", cwd, cfg->config_path);
	if (!abs)
		return ccvm_err_sys(err, ENOMEM, "config file");
	struct places_chain ch;
	if (places_resolve(abs, &ch) < 0)
		return 0; /* read already; nothing of it enters the guest */
	const char *shared[] = {cwd};
	char why[2 * PATH_MAX];
	bool bad = places_chain_refused(pl, &ch, shared, 1, why, sizeof(why));
	places_chain_free(&ch);
	if (!bad)
		return 0;
	char f[256];
	return ccvm_err_set(err, EPERM,
			    "config file %s: %s: refusing to start, the guest "
			    "could rewrite it; move it out of %s",
			    util_escape(f, sizeof(f), cfg->config_path, false),
			    why, cwd);
}

static int block_signals(sigset_t *old, int *sigfd, struct ccvm_err *err)
{
	sigset_t set;
	sigemptyset(&set);
	static const int sigs[] = {SIGINT,   SIGQUIT, SIGTERM, SIGHUP, SIGTSTP,
				   SIGWINCH, SIGCHLD, SIGCONT, SIGPIPE};
	for (size_t i = 0; i < ARRAY_LEN(sigs); i++)
		sigaddset(&set, sigs[i]);
	if (sigprocmask(SIG_BLOCK, &set, old) < 0)
		return ccvm_err_sys(err, errno, "sigprocmask");
	sigdelset(&set, SIGPIPE); /* EPIPE is handled where it happens */
	*sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (*sigfd < 0) {
		int e = errno;
		sigprocmask(SIG_SETMASK, old, NULL);
		return ccvm_err_sys(err, e, "signalfd");
	}
	return 0;
}

/*
 * The watch that lets the guest cache the share (watch.h), or NULL when it
 * may not: read-only mode (an overlay on the share cannot be told),
 * CCVM_SHARE_CACHE=0, a network or FUSE file system (changes come without
 * an event), too low an open-file limit for virtiofsd, or no inotify.
 */
static struct watch *share_watch_open(const struct ccvm_config *cfg,
				      const struct cli_args *args,
				      const char *cwd)
{
	if (!cfg->writable_cwd)
		return NULL;
	const char *cache = getenv(VFS_ENV_CACHE);
	if (cache && strcmp(cache, "0") == 0) {
		if (args->debug)
			fprintf(stderr,
				"ccvm: %s=0: the guest caches no name or "
				"attribute\n",
				VFS_ENV_CACHE);
		return NULL;
	}
	struct statfs sfs;
	if (statfs(cwd, &sfs) == 0 && !watch_fs_complete((long)sfs.f_type)) {
		if (args->debug)
			fprintf(stderr,
				"ccvm: %s is on a network or FUSE file system: "
				"the guest caches no name or attribute\n",
				cwd);
		return NULL;
	}
	if (vfs_files_max() < VFS_CACHE_MIN_FILES) {
		fprintf(stderr,
			"ccvm: the open-file limit (ulimit -Hn %ld) is under "
			"%d: every file access in the VM asks the host "
			"(slower)\n",
			vfs_files_max(), VFS_CACHE_MIN_FILES);
		return NULL;
	}
	struct watch *w = NULL;
	struct ccvm_err err = {0};
	if (watch_open(cwd, &w, &err) < 0) {
		fprintf(stderr,
			"ccvm: %s: every file access in the VM asks the host "
			"(slower)\n",
			err.msg);
		return NULL;
	}
	return w;
}

/* The egress policy, and the API endpoint from ANTHROPIC_BASE_URL. */
static int setup_egress(struct session *s, char *api_host, size_t n,
			struct ccvm_err *err)
{
	if (egress_policy_from_config(s->cfg, &s->egress, err) < 0)
		return -EINVAL;
	util_strlcpy(api_host, STAGE_DEFAULT_API_HOST, n);
	const char *url = getenv("ANTHROPIC_BASE_URL");
	if (!url || !*url)
		return 0;
	uint16_t port;
	if (egress_base_url(url, api_host, n, &port, &s->api_url) < 0 ||
	    egress_set_api(s->egress, api_host, port) < 0)
		return ccvm_err_set(err, EINVAL,
				    "ANTHROPIC_BASE_URL: expected "
				    "http(s)://host[:port][/path], got \"%s\"",
				    url);
	return 0;
}

/*
 * Where the host's programs may come from, before anything runs: never a
 * directory the guest can write (hostpath.h).  Fills git (or "").  With
 * persistClaudeProjects all of ~/.claude/projects counts as shared here
 * (only this project's directory is, but none of it is a place for
 * programs).  A PATH entry of the user's inside a share gets one warning:
 * the guest can plant what the user's shell runs there later.
 */
static void host_programs(const struct ccvm_config *cfg, const char *cwd,
			  char git[PATH_MAX])
{
	const char *home = getenv("HOME");
	char projects[PATH_MAX] = "";
	if (cfg->persist_projects && home && home[0] == '/') {
		autofree char *p = util_path_join(home, ".claude/projects");
		if (!p || util_strlcpy(projects, p, PATH_MAX) < 0)
			projects[0] = '\0';
	}
	const char *shares[] = {cwd, projects};
	hostpath_set_shares(shares, ARRAY_LEN(shares));
	char entry[PATH_MAX];
	if (hostpath_shared_entry(getenv("PATH"), cwd, entry))
		fprintf(stderr,
			"ccvm: warning: PATH entry %s is inside a directory "
			"shared with the VM: the VM can put programs there "
			"that your shell runs\n",
			entry);
	struct ccvm_err gerr = {0};
	if (hostpath_tool("git", NULL, git, &gerr) < 0)
		git[0] = '\0';
}

static int run(const struct ccvm_config *cfg, const struct cli_args *args,
	       const struct places *pl, struct ccvm_err *err)
{
	/* The key out of the environment before anything is forked: no
	 * child inherits it there, /proc/PID/environ no longer shows it. */
	size_t key_len;
	const char *key = procs_take_secret(cfg->api_key_variable, &key_len);
	char cwd[PATH_MAX];
	int r = check_cwd(cwd, sizeof(cwd), pl, err);
	/* What the guest would refuse in SETUP, refused before booting. */
	struct handover hc = {.cwd = cwd, .term = getenv("TERM")};
	if (r < 0 || check_config_links(cfg, cwd, pl, err) < 0 ||
	    handover_check(&hc, err) < 0) {
		procs_secret_free();
		return CCVM_EXIT_USAGE;
	}

	struct image_paths img;
	if (image_ensure(cfg, true, &img, err) < 0) {
		procs_secret_free();
		return CCVM_EXIT_FAILURE;
	}

	struct session *s = calloc(1, sizeof(*s));
	if (!s) {
		procs_secret_free();
		ccvm_err_sys(err, ENOMEM, "session");
		return CCVM_EXIT_FAILURE;
	}
	s->cfg = cfg;
	s->key = key;
	s->key_len = key_len;
	s->args = args;
	s->sigfd = s->ctl = s->con = s->qerr = s->scratch = s->ram = -1;
	s->qmp = s->qmp_child = s->snap.fd = -1;
	s->vfs.qemu_fd = -1;
	s->egress_summary = -1;
	s->stdin_open = true;
	s->rd = malloc(sizeof(*s->rd));
	char projects[PATH_MAX] = "";
	char git_bin[PATH_MAX] = "";
	host_programs(cfg, cwd, git_bin);
	clip_init(&s->clip, cfg->clipboard_images, getenv("WAYLAND_DISPLAY"),
		  getenv("DISPLAY"));
	int code = CCVM_EXIT_FAILURE;
	sigset_t oldmask;
	bool blocked = false;
	char qemu_bin[PATH_MAX];
	struct qemu_argv qa = {0};
	int ctlp[2] = {-1, -1}, conp[2] = {-1, -1}, errp[2] = {-1, -1};
	int netp[2] = {-1, -1};

	if (!s->rd || proto_writer_init(&s->wr) < 0) {
		ccvm_err_sys(err, ENOMEM, "session buffers");
		goto out;
	}
	proto_reader_init(s->rd);

	if (accel_choose(cfg->accel, false, &s->accel, err) < 0)
		goto out;

	if (hostpath_tool("qemu-system-x86_64", "CCVM_QEMU", qemu_bin, err) <
	    0) {
		if (err->code == ENOENT)
			ccvm_err_set(err, ENOENT,
				     "%s (Debian package qemu-system-x86)",
				     err->msg);
		goto out;
	}

	if (cfg->persist_projects) {
		/* This project's transcripts only: the directory Claude Code
		 * gives it, made when missing; never a link (a guest of
		 * an older ccvm could write all of ~/.claude/projects). */
		const char *home = getenv("HOME");
		autofree char *name = util_claude_project_name(cwd);
		autofree char *rel =
		    name ? util_asprintf(".claude/projects/%s", name) : NULL;
		autofree char *p =
		    home && rel ? util_path_join(home, rel) : NULL;
		struct stat pst;
		if (!p || util_mkdir_p(p, 0700) < 0 || lstat(p, &pst) < 0 ||
		    !S_ISDIR(pst.st_mode) || !realpath(p, projects)) {
			ccvm_err_set(err, EINVAL,
				     "persistClaudeProjects: cannot use "
				     "~/.claude/projects/%s as a directory",
				     name ? name : "");
			goto out;
		}
	}

	char api_host[DNS_NAME_MAX + 1];
	if (setup_egress(s, api_host, sizeof(api_host), err) < 0) {
		code = CCVM_EXIT_USAGE;
		goto out;
	}

	/* What of the user's Claude setup enters the guest: decided and
	 * read before anything starts, so an error leaves nothing behind. */
	const char *home = getenv("HOME");
	if (home && home[0] == '/') {
		autofree char *xdg = NULL;
		const char *x = getenv("XDG_CONFIG_HOME");
		if (!x || x[0] != '/')
			x = xdg = util_path_join(home, ".config");
		struct stage_env senv = {
		    .cwd = cwd,
		    .api_host = api_host,
		    .xdg_config_home = x,
		    .git_path = git_bin[0] ? git_bin : NULL,
		    .path_var = "", /* no other git than git_bin */
		    .shared = {cwd, projects[0] ? projects : NULL},
		    .places = pl,
		    .api_key = s->key,
		    .api_key_len = s->key_len,
		};
		if (stage_collect(cfg, home, &senv, &s->staged, err) < 0) {
			code = CCVM_EXIT_USAGE;
			goto out;
		}
	}

	/* The scratch disk: a file without a name, so nothing can be left
	 * behind.  A RAM-backed place is the user's to change. */
	if (cfg->vm_disk_size_gib > 0) {
		r = scratch_open(cfg->vm_disk_size_gib, err);
		if (r < 0) {
			if (r == -EPERM || r == -EINVAL)
				code = CCVM_EXIT_USAGE; /* the user's to fix */
			goto out;
		}
		s->scratch = r;
	}

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctlp) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, conp) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, netp) < 0 ||
	    pipe2(errp, O_CLOEXEC) < 0) {
		ccvm_err_sys(err, errno, "socketpair");
		goto out;
	}

	/* The directory over virtiofs where virtiofsd runs, else 9p. */
	const char *why = NULL;
	const char *vfs_bin = vfs_find(&why);
	if (vfs_bin) {
		/* With a watch, the guest caches what the host reports
		 * changes of. */
		s->watch = share_watch_open(cfg, args, cwd);
		struct ccvm_err verr = {0};
		if (vfs_start(vfs_bin, cwd, cfg->writable_cwd, s->watch != NULL,
			      args->debug ? STDERR_FILENO : -1, &s->vfs,
			      &verr) < 0) {
			if (args->debug)
				fprintf(stderr, "ccvm: %s; sharing over 9p\n",
					verr.msg);
			watch_free(s->watch);
			s->watch = NULL;
		} else {
			/* Its RAM: QEMU's memfd when the file cannot be had. */
			struct ccvm_err rerr = {0};
			s->ram = ram_open(cfg->memory_mib, &rerr);
			if (s->ram < 0 && args->debug)
				fprintf(stderr,
					"ccvm: %s; guest RAM in a memfd\n",
					rerr.msg);
			if (s->watch) {
				/* The walk runs while QEMU boots. */
				s->filling = pthread_create(&s->filler, NULL,
							    fill_main, s) == 0;
				if (!s->filling)
					s->fill_result = watch_fill(s->watch);
			}
		}
	} else if (args->debug) {
		fprintf(stderr, "ccvm: %s; sharing over 9p\n", why);
	}

	struct qemu_spec spec = {
	    .qemu = qemu_bin,
	    .kernel = img.kernel,
	    .initrd = img.initrd,
	    .rootfs = img.rootfs,
	    .cwd = cwd,
	    .writable = cfg->writable_cwd,
	    .projects = projects[0] ? projects : NULL,
	    .scratch_fd = s->scratch >= 0 ? CHILD_SCRATCH_FD : 0,
	    .memory_mib = cfg->memory_mib,
	    .cores = cfg->cores,
	    .accel = s->accel,
	    .mem_lock = cfg->lock_guest_memory,
	    .ctl_fd = CHILD_CTL_FD,
	    .console_fd = CHILD_CON_FD,
	    .net_fd = CHILD_NET_FD,
	    .vfs_fd = s->vfs.qemu_fd >= 0 ? CHILD_VFS_FD : 0,
	    .ram_fd = s->ram >= 0 ? CHILD_RAM_FD : 0,
	    .debug = args->debug,
	    .bios = qemu_find_bios(),
	    .tsc_khz = qemu_host_tsc_khz(),
	};
	if (cfg->lock_guest_memory &&
	    qemu_memlock_check(cfg->memory_mib, s->accel, err) < 0)
		goto out;
	/* A boot that can be saved and restored (snap.h) when the share is
	 * over virtiofs with its RAM file.  CCVM_SAVED_BOOT=0: always boot
	 * (a developer's knob, for side-by-side figures). */
	const char *sb = getenv("CCVM_SAVED_BOOT");
	if (s->vfs.qemu_fd >= 0 && s->ram >= 0 && !(sb && !strcmp(sb, "0"))) {
		int qp[2];
		s->qm = malloc(sizeof(*s->qm));
		if (!s->qm || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
					 qp) < 0) {
			ccvm_err_sys(err, errno, "QMP socket");
			goto out;
		}
		s->qmp = qp[0];
		s->qmp_child = qp[1];
		s->park = spec.park = true;
		spec.qmp_fd = CHILD_QMP_FD;
	}
	if (qemu_argv_build(&spec, &qa, err) < 0)
		goto out;
	if (s->park && saved_boot_prepare(s, &spec, &qa, img.dir, err) < 0)
		goto out;

	if (block_signals(&oldmask, &s->sigfd, err) < 0)
		goto out;
	blocked = true;

	s->pty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	s->out_tty = isatty(STDOUT_FILENO);
	s->err_tty = isatty(STDERR_FILENO);
	termfilter_init(&s->tf_out, TERMFILTER_TERMINAL);
	termfilter_init(&s->tf_err, TERMFILTER_TERMINAL);
	termfilter_init(&s->tf_con, TERMFILTER_TERMINAL);
	termfilter_init(&s->tf_qerr, TERMFILTER_TERMINAL);
	term_init(&s->term, STDIN_FILENO);
	s->spinner = isatty(STDERR_FILENO) && !args->debug;
	snprintf(s->status, sizeof(s->status), "starting the VM (%s)",
		 s->accel == ACCEL_KVM ? "KVM" : "TCG");
	s->boot_start = util_now_ms();
	long timeout_s = DEFAULT_BOOT_TIMEOUT_S;
	const char *bt = getenv("CCVM_BOOT_TIMEOUT");
	if (bt && !util_parse_long(bt, 1, 3600, &timeout_s)) {
		ccvm_err_set(err, EINVAL,
			     "CCVM_BOOT_TIMEOUT: expected seconds "
			     "(1-3600), got \"%s\"",
			     bt);
		code = CCVM_EXIT_USAGE;
		goto out;
	}
	s->boot_deadline = s->boot_start + timeout_s * 1000;

	if (spawn_qemu(s, qa.v, ctlp[1], conp[1], netp[1], errp[1], err) < 0)
		goto out;
	close(netp[1]);
	netp[1] = -1;
	if (egress_spawn(netp[0], s->egress, &s->egress_summary, &s->egress_pid,
			 err) < 0)
		goto out;
	close(netp[0]);
	netp[0] = -1;
	close(ctlp[1]);
	close(conp[1]);
	close(errp[1]);
	ctlp[1] = conp[1] = errp[1] = -1;
	if (s->vfs.qemu_fd >= 0) { /* QEMU's now: it closes with QEMU */
		close(s->vfs.qemu_fd);
		s->vfs.qemu_fd = -1;
	}
	if (s->scratch >= 0) {
		/* QEMU holds the disk now; its last holder frees it. */
		close(s->scratch);
		s->scratch = -1;
	}
	if (s->ram >= 0 && (s->restoring || s->snap.fd < 0)) {
		/* The same for its RAM (kept to save the boot). */
		close(s->ram);
		s->ram = -1;
	}
	if (s->qmp_child >= 0) {
		close(s->qmp_child);
		s->qmp_child = -1;
	}
	s->ctl = steal_fd(&ctlp[0]);
	s->con = steal_fd(&conp[0]);
	s->qerr = steal_fd(&errp[0]);
	util_set_nonblock(s->ctl, true);
	util_set_nonblock(s->con, true);
	util_set_nonblock(s->qerr, true);
	spinner_draw(s);
	if (s->restoring && restore(s, err) < 0) {
		/* The next session boots and saves anew. */
		unlink(s->snap.path);
		spinner_clear(s);
		qemu_kill(s);
		util_set_nonblock(s->qerr, false);
		while (s->qerr >= 0)
			read_stream(s, &s->qerr, &s->qemu_err, NULL);
		tail_print(&s->qemu_err, "QEMU", 10);
		char cause[sizeof(err->msg)];
		snprintf(cause, sizeof(cause), "%s", err->msg);
		ccvm_err_set(err, err->code ? -err->code : EIO,
			     "restoring the saved boot failed: %s; it is "
			     "removed, run ccvm again",
			     cause);
		goto out;
	}

	code = relay(s, cwd, err);
	spinner_clear(s);
	term_restore(&s->term);

	if (!s->have_exit) {
		if (!s->error[0]) {
			if (tail_has(&s->console, "Kernel panic") ||
			    tail_has(&s->console, "sysrq: Trigger a crash"))
				set_error(s, "the guest kernel panicked");
			else if (s->qemu_reaped && WIFEXITED(s->qemu_status))
				set_error(s,
					  "QEMU exited with status %d before "
					  "the session ended",
					  WEXITSTATUS(s->qemu_status));
			else if (s->qemu_reaped && WIFSIGNALED(s->qemu_status))
				set_error(s, "QEMU was killed by signal %d",
					  WTERMSIG(s->qemu_status));
			else
				set_error(s, "the VM ended before the session "
					     "did");
		}
		/* The error first, then what QEMU and the guest said. */
		fprintf(stderr, "ccvm: %s\n", s->error);
		if (!args->debug && code == CCVM_EXIT_FAILURE) {
			tail_print(&s->qemu_err, "QEMU", 10);
			tail_print(&s->console, "guest console", 15);
		}
	} else if (s->error[0]) {
		fprintf(stderr, "ccvm: %s\n", s->error);
	}

out:
	if (s->qemu > 0) {
		qemu_kill(s);
	}
	clip_free(&s->clip);
	share_join(s);
	watch_free(s->watch);
	spinner_clear(s);
	term_restore(&s->term);
	vfs_stop(&s->vfs);     /* after QEMU, its only client */
	if (s->egress_pid > 0) /* QEMU is gone: the relay sees the port close */
		egress_finish(s->egress_pid, s->egress_summary, 2000);
	else if (s->egress_summary >= 0)
		close(s->egress_summary);
	egress_policy_free(s->egress);
	free(s->api_url);
	for (int i = 0; i < 2; i++) {
		if (netp[i] >= 0)
			close(netp[i]);
		if (ctlp[i] >= 0)
			close(ctlp[i]);
		if (conp[i] >= 0)
			close(conp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	if (s->ctl >= 0)
		close(s->ctl);
	if (s->con >= 0)
		close(s->con);
	if (s->qerr >= 0)
		close(s->qerr);
	if (s->sigfd >= 0)
		close(s->sigfd);
	if (s->scratch >= 0)
		close(s->scratch);
	if (s->ram >= 0)
		close(s->ram);
	if (s->qmp >= 0)
		close(s->qmp);
	if (s->qmp_child >= 0)
		close(s->qmp_child);
	snap_close(&s->snap);
	free(s->qm);
	if (blocked)
		sigprocmask(SIG_SETMASK, &oldmask, NULL);
	qemu_argv_free(&qa);
	proto_writer_free(&s->wr);
	stage_list_free(&s->staged);
	procs_secret_free();
	free(s->rd);
	free(s);
	return code;
}

int session_run(const struct ccvm_config *cfg, const struct cli_args *args,
		struct ccvm_err *err)
{
	/* The secret places of $HOME and of the passwd entry's home. */
	struct passwd *pw = getpwuid(getuid());
	struct places pl;
	if (places_init(&pl, getenv("HOME"), pw ? pw->pw_dir : NULL,
			getenv("XDG_CONFIG_HOME")) < 0) {
		ccvm_err_sys(err, ENOMEM, "session");
		return CCVM_EXIT_FAILURE;
	}
	int code = run(cfg, args, &pl, err);
	places_free(&pl);
	return code;
}
