/*
 * ccvm-init: the guest's PID 1.  Mounts the root and the system file
 * systems, opens the control port, receives the session over it, runs the
 * program and relays until it ends, then powers off.  It never exits: any
 * fatal error is reported (ERROR frame and console) before powering off.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/reboot.h>
#include <sys/wait.h>
#include <poll.h>
#include <unistd.h>

#include "session/agent.h"
#include "term/clipboard.h"
#include "vm/park.h"
#include "setup/control.h"
#include "glog.h"
#include "mount.h"
#include "vm/port.h"
#include "net/egress.h"
#include "nix.h"
#include "proto.h"
#include "session/relay.h"
#include "vm/memwatch.h"
#include "vm/scratch.h"
#include "share/sharesync.h"
#include "setup/user.h"
#include "util.h"

#define PORT_NAME      "ccvm.ctl"
#define PORT_WAIT_MS   30000
#define FINAL_FLUSH_MS 30000
#define HANGUP_WAIT_MS 10000
#define NET_READY_MS   20000

static int port_fd = -1;
static struct proto_writer writer;
static struct proto_reader reader; /* 256 KiB: not on the stack */
static long long boot_ms;
static size_t unpark_bytes; /* entropy UNPARK brought, for the log */
static uint64_t oom_base;   /* the kernel's OOM kills before the program */

static void __attribute__((noreturn)) power_off(void)
{
	kill(-1, SIGKILL);
	relay_reap_all();
	sync();
	reboot(RB_POWER_OFF);
	for (;;)
		pause();
}

static void __attribute__((noreturn)) fatal(const struct ccvm_err *err)
{
	const char *msg = err->msg[0] ? err->msg : "unknown error";
	glog_always("fatal: %s", msg);
	if (port_fd >= 0 && writer.buf) {
		proto_writer_put(&writer, PROTO_ERROR, 0, msg, strlen(msg));
		if (relay_flush(port_fd, &writer, 2000) == 0)
			relay_wait_hangup(port_fd, 2000);
	}
	power_off();
}

/* lo comes up in a child while the root mounts: its notifiers take 15 to
 * 25 ms under TCG.  Nothing needs it before the network process starts,
 * which lo_wait precedes. */
static pid_t lo_start(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		struct ccvm_err e;
		ccvm_err_clear(&e);
		if (mnt_lo_up(&e) < 0) {
			glog_always("%s", e.msg);
			_exit(1);
		}
		_exit(0);
	}
	return pid;
}

static void lo_wait(pid_t pid, struct ccvm_err *err)
{
	int status = 0;
	if (pid < 0) { /* no child: do it here */
		if (mnt_lo_up(err) < 0)
			fatal(err);
		return;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		ccvm_err_set(err, EIO,
			     "the loopback interface did not come up");
		fatal(err);
	}
}

static void park(struct ccvm_err *err);

static void boot(struct ccvm_err *err)
{
	if (mnt_early(err) < 0)
		fatal(err);
	glog_set_console(mnt_cmdline_has("ccvm.debug"));
	glog("started");
	pid_t lo = lo_start();
	if (mnt_modules_open(err) < 0 ||
	    mnt_load_modules(MNT_MODS_BOOT, err) < 0)
		fatal(err);
	if (mnt_switch_root(err) < 0 || mnt_system(err) < 0)
		fatal(err);
	lo_wait(lo, err);
	glog("root mounted at %lld ms", util_now_ms() - boot_ms);
	if (mnt_cmdline_has("ccvm.park"))
		park(err);
	/* The scratch disk's set-up runs while the host answers. */
	if (scratchfs_start(err) < 0)
		fatal(err);
}

/* The modules booting did not need, loaded by a child while the program
 * starts; the relay reaps it.  Whoever needs one of them earlier (the
 * scratch disk) loads them itself: loading twice is harmless. */
static void load_other_modules_async(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		struct ccvm_err e;
		ccvm_err_clear(&e);
		if (mnt_load_modules(MNT_MODS_REST, &e) < 0)
			glog_always("%s", e.msg);
		_exit(0);
	}
	if (pid < 0)
		glog_always("fork: %s", strerror(errno));
}

static void open_port(struct ccvm_err *err)
{
	if (port_fd >= 0)
		return;
	char dev[300];
	if (port_find(PORT_NAME, PORT_WAIT_MS, dev, sizeof(dev), err) < 0)
		fatal(err);
	port_fd = open(dev, O_RDWR | O_CLOEXEC | O_NOCTTY);
	if (port_fd < 0) {
		ccvm_err_sys(err, errno, "%s", dev);
		fatal(err);
	}
	util_set_nonblock(port_fd, true);
	if (proto_writer_init(&writer) < 0) {
		ccvm_err_sys(err, ENOMEM, "writer");
		fatal(err);
	}
	proto_reader_init(&reader);
}

static void send_hello(struct ccvm_err *err)
{
	uint8_t hello[64];
	proto_put_u32(hello, PROTO_VERSION);
	int n = snprintf((char *)hello + 4, sizeof(hello) - 4, "ccvm-init %s",
			 CCVM_VERSION);
	proto_writer_put(&writer, PROTO_HELLO, 0, hello, 4 + (size_t)n);
	if (relay_flush(port_fd, &writer, FINAL_FLUSH_MS) < 0) {
		ccvm_err_set(err, EIO, "cannot send HELLO");
		fatal(err);
	}
	glog("HELLO sent at %lld ms", util_now_ms() - boot_ms);
}

static void do_setup(const struct guest_setup *s, struct ccvm_err *err)
{
	if (s->debug)
		glog_set_writer(&writer);
	glog("setup: cwd %s, user %s (%u:%u), %s, %s", s->cwd, s->user,
	     (unsigned)s->uid, (unsigned)s->gid,
	     s->writable ? "read-write" : "read-only",
	     s->pty ? "pty" : "pipes");
	/* Over the port (LOG frames), unlike the console, whole lines. */
	if (unpark_bytes)
		glog("unparked: clock set, random generator reseeded from %zu "
		     "host bytes, PCI rescanned",
		     unpark_bytes);
	if (user_create("/", s, err) < 0 || mnt_cwd(s, err) < 0)
		fatal(err);
	if (s->projects) {
		/* This project's transcripts only, where Claude Code looks
		 * for them. */
		autofree char *name = util_claude_project_name(s->cwd);
		autofree char *rel =
		    name ? util_asprintf(".claude/projects/%s", name) : NULL;
		autofree char *dir = rel ? util_path_join(s->home, rel) : NULL;
		if (!dir) {
			ccvm_err_sys(err, errno, "%s", s->home);
			fatal(err);
		}
		if (user_mkdir_owned(dir, s->home, 0700, s->uid, s->gid, err) <
			0 ||
		    mnt_9p(MNT_9P_PROJECTS, dir, false, err) < 0)
			fatal(err);
	}
	/* Encrypted /scratch, then Nix (its store may go on the scratch
	 * disk); the daemon starts while the rest of the session arrives. */
	if (scratchfs_finish(s, err) < 0 || nix_start(s, err) < 0)
		fatal(err);
}

/* Blocking read of the next frame during the control phase. */
static int next_frame(struct proto_msg *m, struct ccvm_err *err)
{
	for (;;) {
		int k = proto_reader_next(&reader, m);
		if (k > 0)
			return 0;
		if (k < 0)
			return ccvm_err_set(err, -k,
					    "protocol error from the host");
		struct pollfd p = {.fd = port_fd, .events = POLLIN};
		if (poll(&p, 1, -1) < 0 && errno != EINTR)
			return ccvm_err_sys(err, errno, "poll");
		ssize_t n = proto_reader_fill(&reader, port_fd);
		if (n == 0)
			return ccvm_err_set(err, EPIPE,
					    "the host closed the control port");
		if (n < 0 && n != -EAGAIN)
			return ccvm_err_sys(err, (int)-n, "reading the port");
	}
}

/*
 * Booted with ccvm.park: tell the host, which may save the VM as it is
 * now, and wait.  Whatever answers may be a later session's ccvm that
 * restored the saved VM: all that comes after this point is its.
 */
static void park(struct ccvm_err *err)
{
	open_port(err);
	proto_writer_put(&writer, PROTO_PARK, 0, NULL, 0);
	if (relay_flush(port_fd, &writer, FINAL_FLUSH_MS) < 0) {
		ccvm_err_set(err, EIO, "cannot send PARK");
		fatal(err);
	}
	glog("parked at %lld ms", util_now_ms() - boot_ms);
	struct proto_msg m;
	if (next_frame(&m, err) < 0)
		fatal(err);
	if (m.type != PROTO_UNPARK) {
		ccvm_err_set(err, EPROTO,
			     "expected UNPARK from the host, got %s",
			     proto_type_name(m.type));
		fatal(err);
	}
	size_t n = m.len;
	if (park_apply((uint8_t *)m.data, n, err) < 0)
		fatal(err);
	unpark_bytes = n - PROTO_UNPARK_TIME;
	glog("unparked at %lld ms", util_now_ms() - boot_ms);
}

static void control_phase(struct ctl_state *st, struct relay *rl,
			  struct ccvm_err *err)
{
	for (;;) {
		struct proto_msg m;
		if (next_frame(&m, err) < 0)
			fatal(err);
		enum ctl_action act;
		struct ctl_file file;
		if (ctl_feed(st, &m, &act, &file, err) < 0)
			fatal(err);
		switch (act) {
		case CTL_SETUP:
			do_setup(&st->setup, err);
			break;
		case CTL_FILE:
			if (user_write_file(&st->setup, file.path, file.mode,
					    file.append, file.data, file.len,
					    err) < 0)
				fatal(err);
			break;
		case CTL_STDIN:
			relay_queue_stdin(rl, m.data, m.len);
			break;
		case CTL_START:
			return;
		case CTL_NONE:
			break;
		}
		/* Flush LOG frames as we go. */
		proto_writer_flush(&writer, port_fd);
	}
}

/* The program started with the session's secrets, which then live only
 * in the child; the memory watcher and the share-sync worker forked
 * after, with none left. */
static void start_program(struct ctl_state *st, struct relay *rl,
			  struct agent *ag, struct ccvm_err *err)
{
	/* xclip and wl-paste for the program: image paste from the host. */
	static struct paste_srv clip;
	paste_srv_init(&clip);
	if (paste_install(st->setup.uid, st->setup.gid, &clip, err) < 0) {
		glog_always("image paste unavailable: %s", err->msg);
		ccvm_err_clear(err);
	} else {
		rl->clip = &clip;
	}
	net_wait_ready(NET_READY_MS);
	if (nix_wait_ready(NIX_READY_MS, err) < 0)
		fatal(err);
	oom_base = memwatch_oom_kills();
	int r = agent_spawn(st, ag, err);
	/* Secrets now live only in the child. */
	ctl_wipe_secrets(st);
	ctl_reader_scrub(&reader);
	if (r < 0)
		fatal(err);
	/* Forked with no secret left, like the share-sync worker. */
	pid_t mw = memwatch_start();
	if (mw < 0)
		glog_always("memory watcher: %s", strerror((int)-mw));
	glog("started %s (pid %d) at %lld ms", st->args.data, (int)ag->pid,
	     util_now_ms() - boot_ms);
	if (st->setup.share_sync) {
		pid_t sp;
		r = sharesync_start(st->setup.cwd, &sp, err);
		if (r < 0)
			fatal(err);
		rl->share_fd = r;
	}
}

/* EXIT to the host once the shares are synced, then power off. */
__attribute__((noreturn)) static void finish(struct agent *ag, uint32_t kind,
					     uint32_t code)
{
	/* Whether the OOM killer struck, and the program itself: dead of
	 * SIGKILL while the kernel's count of OOM kills grew. */
	uint64_t kills = memwatch_oom_kills() - oom_base;
	if (kills > UINT32_MAX)
		kills = UINT32_MAX;
	uint32_t flags = kills && kind == PROTO_EXIT_SIGNAL && code == SIGKILL
			     ? PROTO_EXIT_F_OOM
			     : 0;
	if (kills)
		glog("the OOM killer killed %u process(es)%s", (unsigned)kills,
		     flags ? ", the program too" : "");
	uint8_t ex[PROTO_EXIT_OOM_LEN];
	proto_put_u32(ex, kind);
	proto_put_u32(ex + 4, code);
	proto_put_u32(ex + 8, (uint32_t)kills);
	proto_put_u32(ex + 12, flags);
	glog("relay done, %zu bytes to send", writer.len - writer.off);
	/* Whatever is still dirty on the share (a shared mapping some
	 * leftover process holds) reaches the host before EXIT: once the host
	 * has EXIT it stops the VM at once.  Only the shares: the scratch
	 * disk and the rest are thrown away, so writing them back (through
	 * dm-crypt, under TCG) would only delay the end. */
	mnt_sync_shares();
	proto_writer_put(&writer, PROTO_EXIT, 0, ex, sizeof(ex));
	int r = relay_flush(port_fd, &writer, FINAL_FLUSH_MS);
	if (r < 0)
		glog_always("sending EXIT: %s", strerror(-r));
	/* A write returns once the data is in the virtqueue, not once the
	 * host has it: wait for the host to hang up after reading EXIT. */
	else if (relay_wait_hangup(port_fd, HANGUP_WAIT_MS) < 0)
		glog_always("the host did not close the port after EXIT");
	agent_close(ag);
	power_off();
}

int main(int argc, char *argv[])
{
	struct ccvm_err err;
	ccvm_err_clear(&err);
	boot_ms = util_now_ms();
	if (getpid() != 1) {
		/* Also the agent's xclip and wl-paste (paste.h). */
		int tool = paste_tool_of(argc > 0 ? argv[0] : NULL);
		if (tool >= 0)
			return paste_standin_main((enum paste_tool)tool, argc,
						  argv);
		fprintf(stderr, "ccvm-init: must run as PID 1 in the ccvm "
				"guest\n");
		return 1;
	}
	sigset_t chld;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, NULL);

	boot(&err);
	net_start(); /* the guest's network (docs/egress.md) */
	if (paste_install_bin(&err) < 0) {
		glog_always("image paste unavailable: %s", err.msg);
		ccvm_err_clear(&err);
	}
	open_port(&err);
	send_hello(&err);

	static struct ctl_state st;
	struct relay rl;
	ctl_init(&st);
	if (relay_init(&rl, port_fd, &reader, &writer, &err) < 0)
		fatal(&err);
	control_phase(&st, &rl, &err);
	glog("set-up received at %lld ms (%lld ms since the kernel started)",
	     util_now_ms() - boot_ms, util_now_ms());
	struct agent ag;
	start_program(&st, &rl, &ag, &err);
	load_other_modules_async();

	uint32_t kind = 0, code = 0;
	int r = relay_run(&rl, &ag, &kind, &code, &err);
	if (r == -EPIPE) {
		glog_always("the host went away; powering off");
		power_off();
	}
	if (r < 0)
		fatal(&err);
	finish(&ag, kind, code);
}
