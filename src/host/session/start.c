/*
 * Starting a session: what the user's setup sends in, the plan's helpers
 * (virtiofsd or 9p, the share's watch, the scratch disk, a saved boot),
 * QEMU and the network relay.  Everything that can fail because of the
 * user's setup is decided before anything starts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "session/internal.h"
#include "session/projlock.h"
#include "sys/procs.h"
#include "sys/hostpath.h"
#include "term/say.h"
#include "util.h"
#include "vm/ram.h"
#include "vm/scratch.h"

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
		say_warn("PATH entry %s is inside a directory shared with the "
			 "VM: the VM can put programs there that your shell "
			 "runs",
			 entry);
	struct ccvm_err gerr = {0};
	if (hostpath_tool("git", NULL, git, &gerr) < 0)
		git[0] = '\0';
}

/* This project's transcripts only: the directory Claude Code gives it,
 * made when missing; never a link (a guest of an older ccvm could write
 * all of ~/.claude/projects). */
static int projects_dir(struct session *s, struct ccvm_err *err)
{
	const char *home = getenv("HOME");
	autofree char *name = util_claude_project_name(s->cwd);
	autofree char *rel =
	    name ? util_asprintf(".claude/projects/%s", name) : NULL;
	autofree char *p = home && rel ? util_path_join(home, rel) : NULL;
	struct stat pst;
	if (!p || util_mkdir_p(p, 0700) < 0 || lstat(p, &pst) < 0 ||
	    !S_ISDIR(pst.st_mode) || !realpath(p, s->projects))
		return ccvm_err_set(err, EINVAL,
				    "persistClaudeProjects: cannot use "
				    "~/.claude/projects/%s as a directory",
				    name ? name : "");
	return 0;
}

/* The egress policy, with the API endpoint session_check read. */
static int setup_egress(struct session *s, struct ccvm_err *err)
{
	if (egress_policy_from_config(s->cfg, &s->egress, err) < 0)
		return -EINVAL;
	if (s->proxy_on)
		egress_set_proxy(s->egress);
	else if (s->api_port &&
		 egress_set_api(s->egress, s->api_host, s->api_port) < 0)
		return ccvm_err_set(err, EINVAL,
				    "ANTHROPIC_BASE_URL: the egress policy "
				    "cannot take %s",
				    s->api_host);
	return 0;
}

/* What of the user's Claude setup enters the guest: decided and read
 * before anything starts, so an error leaves nothing behind. */
static int stage(struct session *s, const char *api_host, const char *git,
		 const struct places *pl, struct ccvm_err *err)
{
	const char *home = getenv("HOME");
	if (!home || home[0] != '/')
		return 0;
	autofree char *xdg = NULL;
	const char *x = getenv("XDG_CONFIG_HOME");
	if (!x || x[0] != '/')
		x = xdg = util_path_join(home, ".config");
	struct stage_env senv = {
	    .cwd = s->cwd,
	    .api_host = api_host,
	    .xdg_config_home = x,
	    .git_path = git[0] ? git : NULL,
	    .path_var = "", /* no other git than git */
	    .shared = {s->cwd, s->projects[0] ? s->projects : NULL},
	    .places = pl,
	    .api_key = s->key,
	    .api_key_len = s->key_len,
	    .api_proxy = s->proxy_on,
	};
	if (s->proxy_on) { /* the agent holds the placeholder only */
		bool key = s->proxy.cred == APIPROXY_API_KEY;
		senv.api_key = key ? s->proxy.placeholder : NULL;
		senv.api_key_len = key ? strlen(s->proxy.placeholder) : 0;
	}
	return stage_collect(s->cfg, home, &senv, &s->staged, err);
}

/* Everything of the user's setup that can be refused: 0, or the exit
 * code. */
static int prepare(struct session *s, const struct places *pl, const char *git,
		   struct ccvm_err *err)
{
	const struct ccvm_config *cfg = s->cfg;
	if (!s->rd || proto_writer_init(&s->wr) < 0) {
		ccvm_err_sys(err, ENOMEM, "session buffers");
		return CCVM_EXIT_FAILURE;
	}
	proto_reader_init(s->rd);
	if (accel_choose(cfg->accel, false, &s->accel, err) < 0)
		return CCVM_EXIT_FAILURE;
	if (hostpath_tool("qemu-system-x86_64", "CCVM_QEMU", s->qemu_bin, err) <
	    0) {
		if (err->code == ENOENT)
			ccvm_err_set(err, ENOENT,
				     "%s (Debian package qemu-system-x86)",
				     err->msg);
		return CCVM_EXIT_FAILURE;
	}
	if (cfg->persist_projects && projects_dir(s, err) < 0)
		return CCVM_EXIT_FAILURE;
	if (setup_egress(s, err) < 0 || stage(s, s->api_host, git, pl, err) < 0)
		return CCVM_EXIT_USAGE;
	/* The scratch disk: a file without a name, so nothing can be left
	 * behind.  A RAM-backed place is the user's to change. */
	if (s->plan.scratch) {
		int r = scratch_open(cfg->vm_disk_size_gib, err);
		if (r < 0)
			return r == -EPERM || r == -EINVAL ? CCVM_EXIT_USAGE
							   : CCVM_EXIT_FAILURE;
		s->scratch = r;
	}
	return 0;
}

/* --- the share: the plan's transport, cache and read-only mechanism ---- */

static struct plan_facts share_facts(const struct session *s,
				     const char *vfs_bin)
{
	const struct ccvm_config *cfg = s->cfg;
	const char *cache = getenv(VFS_ENV_CACHE);
	const char *sb = getenv("CCVM_SAVED_BOOT");
	struct statfs sfs;
	return (struct plan_facts){
	    .writable = cfg->writable_cwd,
	    .virtiofsd = vfs_bin != NULL,
	    .cache_off = cache && strcmp(cache, "0") == 0,
	    .fs_complete = statfs(s->cwd, &sfs) != 0 ||
			   watch_fs_complete((long)sfs.f_type),
	    .files_max = vfs_files_max(),
	    .saved_boot_off = sb && !strcmp(sb, "0"),
	    .disk_gib = cfg->vm_disk_size_gib,
	};
}

/* Why the guest will keep nothing of the share over virtiofs. */
static void say_nocache(const struct session *s, enum plan_nocache why)
{
	bool debug = s->args->debug;
	if (why == PLAN_NOCACHE_ENV && debug)
		say("%s=0: the guest caches no name or attribute",
		    VFS_ENV_CACHE);
	else if (why == PLAN_NOCACHE_FS && debug)
		say("%s is on a network or FUSE file system: the guest caches "
		    "no name or attribute",
		    s->cwd);
	else if (why == PLAN_NOCACHE_FILES)
		say("the open-file limit (ulimit -Hn %ld) is under %d: every "
		    "file access in the VM asks the host (slower)",
		    vfs_files_max(), VFS_CACHE_MIN_FILES);
}

/*
 * Executes the plan's share: the watch that lets the guest cache (when it
 * may), virtiofsd (else 9p) with read-only mode enforced by the plan's
 * mechanism, and the guest's RAM file that virtiofs needs.  Each fallback
 * corrects a fact and plans again.
 */
static void share_start(struct session *s)
{
	const char *why = NULL;
	const char *vfs_bin = vfs_find(&why);
	struct plan_facts facts = share_facts(s, vfs_bin), *f = &facts;
	session_plan(f, &s->plan);
	say_nocache(s, s->plan.nocache);
	struct watch *w = NULL;
	struct ccvm_err e = {0};
	if (s->plan.watch && watch_open(s->cwd, &w, &e) < 0) {
		say("%s: every file access in the VM asks the host (slower)",
		    e.msg);
		f->watch_fail = true;
		session_plan(f, &s->plan);
	}
	if (s->plan.transport == PLAN_VIRTIOFS &&
	    vfs_start(vfs_bin, s->cwd, s->plan.readonly != PLAN_RO_VFS_BIND,
		      s->plan.cache == PLAN_CACHE_ALWAYS,
		      s->args->debug ? STDERR_FILENO : -1, &s->vfs, &e) < 0) {
		why = e.msg;
		watch_free(w);
		w = NULL;
		f->virtiofsd_fail = true;
		session_plan(f, &s->plan);
	}
	if (s->plan.transport == PLAN_9P) {
		if (s->args->debug)
			say("%s; sharing over 9p", why);
		return;
	}
	share_pump_init(&s->share, w, &s->wr, &s->vfs, &s->fail,
			s->args->debug);
	/* Its RAM: QEMU's memfd when the file cannot be had. */
	s->ram = ram_open(s->cfg->memory_mib, &e);
	if (s->ram < 0) {
		if (s->args->debug)
			say("%s; guest RAM in a memfd", e.msg);
		f->ram_fail = true;
		session_plan(f, &s->plan);
	}
	/* The walk runs while QEMU boots. */
	share_pump_fill_start(&s->share);
}

/* --- QEMU ---------------------------------------------------------------- */

/* QEMU's argv for the plan, with a saved boot to restore or to make. */
static int qemu_prepare(struct session *s, struct ccvm_err *err)
{
	const struct ccvm_config *cfg = s->cfg;
	struct qemu_spec spec = {
	    .qemu = s->qemu_bin,
	    .kernel = s->img.kernel,
	    .initrd = s->img.initrd,
	    .rootfs = s->img.rootfs,
	    .cwd = s->cwd,
	    .writable = s->plan.readonly != PLAN_RO_9P_EXPORT,
	    .projects = s->projects[0] ? s->projects : NULL,
	    .scratch_fd = s->scratch >= 0 ? QEMU_FD_SCRATCH : 0,
	    .memory_mib = cfg->memory_mib,
	    .cores = cfg->cores,
	    .accel = s->accel,
	    .mem_lock = cfg->lock_guest_memory,
	    .ctl_fd = QEMU_FD_CTL,
	    .console_fd = QEMU_FD_CON,
	    .net_fd = QEMU_FD_NET,
	    .vfs_fd = s->vfs.qemu_fd >= 0 ? QEMU_FD_VFS : 0,
	    .ram_fd = s->ram >= 0 ? QEMU_FD_RAM : 0,
	    .debug = s->args->debug,
	    .bios = qemu_find_bios(),
	    .tsc_khz = qemu_host_tsc_khz(),
	};
	if (cfg->lock_guest_memory &&
	    qemu_memlock_check(cfg->memory_mib, s->accel, err) < 0)
		return -1;
	/* A boot that can be saved and restored (park.h) when the share is
	 * over virtiofs with its RAM file.  CCVM_SAVED_BOOT=0: always boot
	 * (a developer's knob, for side-by-side figures). */
	if (s->plan.saved_boot && park_boot_enable(&s->park, &spec, err) < 0)
		return -1;
	if (qemu_argv_build(&spec, &s->qa, err) < 0)
		return -1;
	if (s->park.enabled &&
	    park_boot_prepare(&s->park, &spec, &s->qa, s->img.dir, s->scratch,
			      s->ram, err) < 0)
		return -1;
	return 0;
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

/* Signals through the signalfd, the terminal's state, the spinner and
 * the boot's deadline.  0, or the exit code. */
static int before_boot(struct session *s, struct ccvm_err *err)
{
	if (block_signals(&s->oldmask, &s->sigfd, err) < 0)
		return CCVM_EXIT_FAILURE;
	s->blocked = true;
	s->pty = isatty(STDIN_FILENO) && isatty(STDOUT_FILENO);
	s->out_tty = isatty(STDOUT_FILENO);
	s->err_tty = isatty(STDERR_FILENO);
	termfilter_init(&s->tf_out, TERMFILTER_TERMINAL);
	termfilter_init(&s->tf_err, TERMFILTER_TERMINAL);
	termfilter_init(&s->tf_con, TERMFILTER_TERMINAL);
	termfilter_init(&s->tf_qerr, TERMFILTER_TERMINAL);
	term_init(&s->term, STDIN_FILENO);
	s->spinner = isatty(STDERR_FILENO) && !s->args->debug;
	snprintf(s->status, sizeof(s->status), "starting the VM (%s)",
		 s->accel == ACCEL_KVM ? "KVM" : "TCG");
	s->boot_start = util_now_ms();
	s->boot_deadline = s->boot_start + s->boot_timeout_s * 1000;
	return 0;
}

static void close_pair_end(int p[2], int i)
{
	if (p[i] >= 0)
		close(p[i]);
	p[i] = -1;
}

/* QEMU's fds: its ends of the channels, and what the plan gives it. */
static void qemu_launch_map(struct session *s, struct qemu_launch *l)
{
	*l = (struct qemu_launch){
	    .argv = s->qa.v, .out_fd = s->errp[1], .nosuid = true};
	qemu_launch_fd(l, s->ctlp[1], QEMU_FD_CTL);
	qemu_launch_fd(l, s->conp[1], QEMU_FD_CON);
	qemu_launch_fd(l, s->netp[1], QEMU_FD_NET);
	if (s->scratch >= 0)
		qemu_launch_fd(l, s->scratch, QEMU_FD_SCRATCH);
	if (s->vfs.qemu_fd >= 0)
		qemu_launch_fd(l, s->vfs.qemu_fd, QEMU_FD_VFS);
	if (s->ram >= 0)
		qemu_launch_fd(l, s->ram, QEMU_FD_RAM);
	if (s->park.qmp_child >= 0)
		qemu_launch_fd(l, s->park.qmp_child, QEMU_FD_QMP);
	if (s->park.snap.fd >= 0 && s->park.restoring)
		qemu_launch_fd(l, s->park.snap.fd, QEMU_FD_SNAP);
}

/* Starts QEMU and the network relay; what is QEMU's alone is closed. */
static int launch(struct session *s, struct ccvm_err *err)
{
	struct qemu_launch l;
	qemu_launch_map(s, &l);
	if (qemu_proc_start(&s->qemu, &l, err) < 0)
		return -1;
	close_pair_end(s->netp, 1);
	/* The audit log: opened here, written by the relay alone. */
	struct ccvm_err ae = {0};
	const struct ccvm_config *cfg = s->cfg;
	const char *off = getenv(AUDIT_ENV_OFF);
	bool want_log = !(off && strcmp(off, "0") == 0);
	struct audit *audit =
	    !want_log ? NULL
		      : audit_open(NULL, s->cwd, egress_open_mode(s->egress),
				   (const char *const *)cfg->egress_allowlist.v,
				   cfg->egress_allowlist.n, cfg->egress_ports,
				   cfg->n_egress_ports, &ae);
	if (!audit && want_log)
		say_warn("the egress audit log is off for this session: %s",
			 ae.msg);
	int r =
	    egress_spawn(s->netp[0], s->egress, s->proxy_on ? &s->proxy : NULL,
			 audit, &s->egress_summary, &s->egress_pid, err);
	audit_close(audit);
	if (r < 0)
		return -1;
	if (s->proxy_on) {
		/* The relay holds the credential now; ccvm forgets it. */
		procs_secret_free();
		s->key = s->auth_token = s->oauth_token = s->proxy.secret =
		    NULL;
	}
	close_pair_end(s->netp, 0);
	close_pair_end(s->ctlp, 1);
	close_pair_end(s->conp, 1);
	close_pair_end(s->errp, 1);
	if (s->vfs.qemu_fd >= 0) { /* QEMU's now: it closes with QEMU */
		close(s->vfs.qemu_fd);
		s->vfs.qemu_fd = -1;
	}
	/* The scratch disk (s->scratch) stays open until the teardown, which
	 * looks at it before closing it: did it run out of host space? Its
	 * blocks are freed when the last of ccvm and QEMU is gone. */
	if (s->ram >= 0 && (s->park.restoring || s->park.snap.fd < 0)) {
		/* The same for its RAM (kept to save the boot). */
		close(s->ram);
		s->ram = -1;
	}
	park_boot_started(&s->park);
	s->ctl = steal_fd(&s->ctlp[0]);
	s->con = steal_fd(&s->conp[0]);
	s->qerr = steal_fd(&s->errp[0]);
	util_set_nonblock(s->ctl, true);
	util_set_nonblock(s->con, true);
	util_set_nonblock(s->qerr, true);
	return 0;
}

/* Restores the saved boot; on failure it is removed (the next session
 * boots and saves anew) and QEMU's last words are shown. */
static int restore(struct session *s, struct ccvm_err *err)
{
	if (park_boot_restore(&s->park, &s->wr, err) == 0)
		return 0;
	unlink(s->park.snap.path);
	spinner_clear(s);
	session_kill_qemu(s);
	util_set_nonblock(s->qerr, false);
	while (s->qerr >= 0)
		session_read_stream(s, &s->qerr, &s->qemu_err, NULL);
	tail_print(&s->qemu_err, "QEMU", 10);
	char cause[sizeof(err->msg)];
	snprintf(cause, sizeof(cause), "%s", err->msg);
	ccvm_err_set(err, err->code ? -err->code : EIO,
		     "restoring the saved boot failed: %s; it is removed, run "
		     "ccvm again",
		     cause);
	return -1;
}

int session_start(struct session *s, const struct places *pl,
		  struct ccvm_err *err)
{
	char git[PATH_MAX] = "";
	host_programs(s->cfg, s->cwd, git);
	clip_init(&s->clip, s->cfg->clipboard_images, getenv("WAYLAND_DISPLAY"),
		  getenv("DISPLAY"));
	s->plan.scratch = s->cfg->vm_disk_size_gib > 0;
	int code = prepare(s, pl, git, err);
	if (code)
		return code;
	projlock_take(s->cwd); /* says when another session is here */
	/* Only once everything of the user's that can be refused has been
	 * (prepare): a build can take minutes. */
	if (image_ensure(s->cfg, IMAGE_SESSION, &s->img, err) < 0)
		return image_interrupt_status() ? image_interrupt_status()
						: CCVM_EXIT_FAILURE;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s->ctlp) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s->conp) < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s->netp) < 0 ||
	    pipe2(s->errp, O_CLOEXEC) < 0) {
		ccvm_err_sys(err, errno, "socketpair");
		return CCVM_EXIT_FAILURE;
	}
	share_start(s);
	if (qemu_prepare(s, err) < 0)
		return CCVM_EXIT_FAILURE;
	if ((code = before_boot(s, err)) != 0)
		return code;
	if (launch(s, err) < 0)
		return CCVM_EXIT_FAILURE;
	spinner_draw(s);
	if (s->park.restoring && restore(s, err) < 0)
		return CCVM_EXIT_FAILURE;
	return 0;
}
