/*
 * Building a guest image (see image.c for the layout): a few steps, each
 * shown on stderr with its elapsed time and logged to build.log; child
 * processes get an explicit argv and a filtered environment; the whole
 * build happens in images/.tmp-XXXXXX and is renamed into place at the
 * end, or removed on failure or SIGINT/SIGTERM.
 */
#define _GNU_SOURCE
#include "image/image.h"

#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <nettle/sha2.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "image/cpio.h"
#include "sys/hostpath.h"
#include "image/kernel.h"
#include "image/image_build.h"
#include "util.h"

#define KERNEL_MAX     (128u << 20)
#define KSRC_PKG       IMAGE_KERNEL_PKG
#define TEXT_MAX       (32u << 20)
#define MODULE_MAX     (64u << 20)
#define LOG_TAIL_LINES 15
#define KILL_GRACE_MS  60000
#define NIX_PACKAGE    "nix-bin" /* bookworm: Nix 2.8 */
#define GUEST_PATH                                                             \
	"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* What an agent session needs in the guest, besides extraPackages. */
static const char *const base_packages[] = {
    "bash",	    "coreutils",
    "git",	    "ca-certificates",
    "curl",	    "less",
    "procps",	    "ripgrep",
    "sudo",	    "iproute2",
    "nftables",	    "dmsetup",
    "e2fsprogs",    "ncurses-base",
    "ncurses-term", "util-linux",
    "kmod",	    "linux-image-amd64",
};

/* The modules ccvm-init loads (Debian 6.1 names); built-in ones are
 * skipped, dependencies are added. */
static const char *const guest_modules[] = {
    "virtio_pci",
    "virtio_blk",
    "virtio_console",
    "virtio_net",
    "virtio_rng",
    "9pnet_virtio",
    "9p",
    "overlay",
    "squashfs",
    "ext4",
    "crc32c_intel",
    "dm_crypt",
    "ecb",
    "xts",
    "aesni_intel",
    "nf_tables",
    "fuse",
    "virtiofs",
    /* the guest's network without a NIC (docs/egress.md) */
    "dummy",
    "nft_chain_nat",
    "nft_redir",
};

static const char *const dpkg_excludes[] = {
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-include=/usr/share/locale/locale.alias",
    "--dpkgopt=path-exclude=/usr/share/lintian/*",
};

/* Environment variables passed on to npm and mmdebstrap. */
static const char *const env_keep[] = {
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "TMPDIR",
    "http_proxy",
    "https_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "no_proxy",
    "NO_PROXY",
    "all_proxy",
    "ALL_PROXY",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "npm_config_registry",
    "NPM_CONFIG_REGISTRY",
    "NPM_CONFIG_USERCONFIG",
};

/* ------------------------------------------------------------------ */
/* Small file helpers                                                 */

static int write_bytes(const char *path, const void *data, size_t len,
		       mode_t mode, struct ccvm_err *err)
{
	autoclose int fd =
	    open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return ccvm_err_sys(err, errno, "%s", path);
	int r = util_write_all(fd, data, len);
	if (r < 0)
		return ccvm_err_sys(err, -r, "%s", path);
	return 0;
}

static int write_text(const char *path, const char *text, mode_t mode,
		      struct ccvm_err *err)
{
	return write_bytes(path, text, strlen(text), mode, err);
}

static int copy_file(const char *src, const char *dst, mode_t mode,
		     struct ccvm_err *err)
{
	autoclose int in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0)
		return ccvm_err_sys(err, errno, "%s", src);
	autoclose int out =
	    open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (out < 0)
		return ccvm_err_sys(err, errno, "%s", dst);
	char buf[65536];
	for (;;) {
		ssize_t n = util_read_all(in, buf, sizeof(buf));
		if (n < 0)
			return ccvm_err_sys(err, (int)-n, "%s", src);
		if (n == 0)
			break;
		int r = util_write_all(out, buf, (size_t)n);
		if (r < 0)
			return ccvm_err_sys(err, -r, "%s", dst);
	}
	return 0;
}

static long long file_size(const char *dir, const char *rel)
{
	autofree char *p = util_path_join(dir, rel);
	struct stat st;
	return p && stat(p, &st) == 0 ? (long long)st.st_size : 0;
}

/* ------------------------------------------------------------------ */
/* Build: progress, signals, child processes                          */

struct build {
	const struct ccvm_config *cfg;
	const struct image_blob *scripts;
	size_t n_scripts;
	char key[65];
	char images[PATH_MAX];
	char dir[PATH_MAX]; /* images/.tmp-XXXXXX */
	char log[PATH_MAX];
	int logfd;
	bool log_bol; /* the log is at the start of a line */
	off_t step_log_start;
	bool tty;
	int step, n_steps;
	const char *step_name;
	long long t0, step_t0;
	char detail[128];
	long long last_plain_ms, last_draw_ms;
	/* Tools, as absolute paths. */
	char mmdebstrap[PATH_MAX], npm[PATH_MAX], mksquashfs[PATH_MAX];
	char unshare[PATH_MAX];
	bool skip_subids;  /* image_check_tools: the tools only */
	bool stock_kernel; /* CCVM_STOCK_KERNEL: no custom kernel */
	/* Results. */
	char custom_vmlinux[PATH_MAX]; /* the built kernel, or "" */
	char kernel_key[65];	       /* its key in kernels/, or "" */
	double kernel_build_s;	       /* 0 when it came from the cache */
	char agent_version[64];
	char claude_version[256];
	char kver[128];
	char **env;
};

static void progress_draw(struct build *b, bool final)
{
	long long now = util_now_ms();
	long long el = (now - b->step_t0) / 1000;
	if (!b->tty) {
		if (final)
			fprintf(stderr, "ccvm: [%d/%d] %s: done in %.1f s\n",
				b->step, b->n_steps, b->step_name,
				(double)(now - b->step_t0) / 1000.0);
		else if (now - b->last_plain_ms >= 30000) {
			b->last_plain_ms = now;
			fprintf(stderr, "ccvm: [%d/%d] %s (%lld:%02lld)%s%s\n",
				b->step, b->n_steps, b->step_name, el / 60,
				el % 60, b->detail[0] ? " " : "", b->detail);
		}
		return;
	}
	/* Output can arrive in many small pieces: redraw 4 times a second
	 * at most. */
	if (!final && now - b->last_draw_ms < 250)
		return;
	b->last_draw_ms = now;
	struct winsize ws;
	int cols = 80;
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20)
		cols = ws.ws_col;
	char line[512];
	int n;
	if (final)
		n = snprintf(line, sizeof(line),
			     "ccvm: [%d/%d] %s: done in "
			     "%.1f s",
			     b->step, b->n_steps, b->step_name,
			     (double)(now - b->step_t0) / 1000.0);
	else
		n = snprintf(line, sizeof(line),
			     "ccvm: [%d/%d] %s %lld:%02lld %s", b->step,
			     b->n_steps, b->step_name, el / 60, el % 60,
			     b->detail);
	if (n < 0)
		return;
	if (n >= cols)
		line[cols - 1] = '\0';
	fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
	fflush(stderr);
}

static void step_begin(struct build *b, const char *name)
{
	b->step++;
	b->step_name = name;
	b->step_t0 = util_now_ms();
	b->detail[0] = '\0';
	b->last_plain_ms = b->step_t0;
	b->last_draw_ms = 0;
	b->step_log_start = lseek(b->logfd, 0, SEEK_END);
	dprintf(b->logfd, "=== [%d/%d] %s\n", b->step, b->n_steps, name);
	if (b->tty)
		progress_draw(b, false);
	else
		fprintf(stderr, "ccvm: [%d/%d] %s\n", b->step, b->n_steps,
			name);
}

static void step_end(struct build *b)
{
	progress_draw(b, true);
}

/* Prints the last lines the failing step wrote to the log. */
static void print_log_tail(struct build *b)
{
	if (b->tty)
		fprintf(stderr, "\n");
	off_t end = lseek(b->logfd, 0, SEEK_END);
	off_t start = b->step_log_start;
	if (end - start > 256 * 1024)
		start = end - 256 * 1024;
	size_t len = (size_t)(end - start);
	autofree char *buf = malloc(len + 1);
	if (!buf || pread(b->logfd, buf, len, start) != (ssize_t)len)
		return;
	buf[len] = '\0';
	while (len && buf[len - 1] == '\n')
		buf[--len] = '\0';
	size_t lines = 0;
	char *p = buf + len;
	while (p > buf && lines < LOG_TAIL_LINES) {
		p--;
		if (*p == '\n')
			lines++;
	}
	if (*p == '\n')
		p++;
	fprintf(stderr, "ccvm: last lines of the log of step '%s':\n",
		b->step_name);
	for (char *q = p; *q;) {
		char *nl = strchr(q, '\n');
		int n = nl ? (int)(nl - q) : (int)strlen(q);
		fprintf(stderr, "  | %.*s\n", n, q);
		q += n + (nl ? 1 : 0);
	}
}

static int step_fail(struct build *b, struct ccvm_err *err, int r)
{
	print_log_tail(b);
	/* The build dir goes away: keep its log next to the images. */
	char saved[PATH_MAX];
	if (snprintf(saved, sizeof(saved), "%.4000s/failed-build.log",
		     b->images) < (int)sizeof(saved) &&
	    rename(b->log, saved) == 0)
		snprintf(b->log, sizeof(b->log), "%s", saved);
	char msg[CCVM_ERR_MAX];
	snprintf(msg, sizeof(msg), "%s", err->msg);
	return ccvm_err_set(err, r < 0 ? -r : EIO,
			    "image build failed at step '%s': %s (full log: "
			    "%s)",
			    b->step_name, msg, b->log);
}

/* Finds an executable in the trusted directories (hostpath.h). */
static int find_tool(const char *name, char out[PATH_MAX])
{
	return hostpath_find(name, out);
}

static void free_env(char **env)
{
	if (!env)
		return;
	for (char **e = env; *e; e++)
		free(*e);
	free(env);
}

/* The environment for build tools: a short allowlist of the caller's
 * (home, proxies, CA bundles), the trusted directories as PATH, and
 * the given extra "K=V" entries. */
static char **make_env(const char *const *extra, size_t n_extra)
{
	size_t cap = ARRAY_LEN(env_keep) + n_extra + 2, n = 0;
	autofree char *path = hostpath_search_list(getenv("PATH"));
	char **env = calloc(cap, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < ARRAY_LEN(env_keep); i++) {
		const char *v = getenv(env_keep[i]);
		if (v && !(env[n++] = util_asprintf("%s=%s", env_keep[i], v)))
			goto fail;
	}
	if (!path || !(env[n++] = util_asprintf("PATH=%s", path)))
		goto fail;
	for (size_t i = 0; i < n_extra; i++)
		if (!(env[n++] = strdup(extra[i])))
			goto fail;
	return env;
fail:
	free_env(env);
	return NULL;
}

struct cmd {
	const char *const *argv; /* argv[0] an absolute path */
	const char *cwd;
	int in_fd;  /* -1: /dev/null */
	int out_fd; /* -1: the log */
};

static void child_exec(const struct cmd *c, char **env, int in, int out,
		       int log)
{
	setpgid(0, 0);
	/* A ccvm killed outright takes its build tools with it (mmdebstrap
	 * then removes its own temp dir). */
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() == 1)
		_exit(126);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(log, 2) < 0)
		_exit(126);
	if (c->cwd && chdir(c->cwd) < 0) {
		dprintf(2, "chdir %s: %s\n", c->cwd, strerror(errno));
		_exit(126);
	}
	execve(c->argv[0], (char *const *)c->argv, env);
	dprintf(2, "exec %s: %s\n", c->argv[0], strerror(errno));
	_exit(127);
}

/* Copies child output to the log, each line stamped with the seconds
 * since the build started. */
static void log_output(struct build *b, const char *buf, size_t n)
{
	const char *p = buf, *end = buf + n;
	while (p < end) {
		if (b->log_bol)
			dprintf(b->logfd, "[%6.1f] ",
				(double)(util_now_ms() - b->t0) / 1000.0);
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		util_write_all(b->logfd, p, len);
		b->log_bol = nl != NULL;
		p += len;
	}
}

/* Scans fresh output for a status line worth showing in the progress
 * line: mmdebstrap's "I: ..." and our hooks' "ccvm-step: ...". */
static void note_detail(struct build *b, const char *buf, size_t n)
{
	const char *p = buf, *end = buf + n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		if (len > 3 && !memcmp(p, "I: ", 3))
			snprintf(b->detail, sizeof(b->detail), "%.*s",
				 (int)(len - 3), p + 3);
		else if (len > 11 && !memcmp(p, "ccvm-step: ", 11))
			snprintf(b->detail, sizeof(b->detail), "%.*s",
				 (int)(len - 11), p + 11);
		p = nl ? nl + 1 : end;
	}
}

/*
 * Runs n commands (a pipeline when n > 1: each one's stdout feeds the
 * next one's stdin), their stderr (and the last one's stdout unless
 * redirected) going to the build log, while the progress line ticks.
 * SIGINT/SIGTERM to ccvm are passed to the children's process groups,
 * which are then waited for.
 */
static int run_cmds(struct build *b, const struct cmd *cmds, size_t n,
		    struct ccvm_err *err)
{
	pid_t pids[4] = {0};
	int status[4] = {0};
	bool done[4] = {false};
	if (n == 0 || n > ARRAY_LEN(pids))
		return ccvm_err_set(err, EINVAL, "bad command count");
	autoclose int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
	int lp[2];
	if (devnull < 0 || pipe2(lp, O_CLOEXEC) < 0)
		return ccvm_err_sys(err, errno, "pipe");
	autoclose int log_r = lp[0];
	autoclose int log_w = lp[1];
	autoclose int prev_r = -1;
	size_t started = 0;
	int r = 0;
	for (size_t i = 0; i < n; i++) {
		int in = cmds[i].in_fd >= 0 ? cmds[i].in_fd : devnull;
		if (i > 0)
			in = prev_r;
		int out = cmds[i].out_fd >= 0 ? cmds[i].out_fd : log_w;
		int pp[2] = {-1, -1};
		if (i + 1 < n) {
			if (pipe2(pp, O_CLOEXEC) < 0) {
				r = ccvm_err_sys(err, errno, "pipe");
				break;
			}
			out = pp[1];
		}
		dprintf(b->logfd, "$");
		for (const char *const *a = cmds[i].argv; *a; a++)
			dprintf(b->logfd, " %s", *a);
		dprintf(b->logfd, "\n");
		pid_t pid = fork();
		if (pid < 0) {
			r = ccvm_err_sys(err, errno, "fork");
			if (pp[0] >= 0) {
				close(pp[0]);
				close(pp[1]);
			}
			break;
		}
		if (pid == 0)
			child_exec(&cmds[i], b->env, in, out, log_w);
		setpgid(pid, pid);
		pids[i] = pid;
		started++;
		if (prev_r >= 0)
			close(prev_r);
		prev_r = -1;
		if (pp[1] >= 0) {
			close(pp[1]);
			prev_r = pp[0];
		}
	}
	if (prev_r >= 0) {
		close(prev_r);
		prev_r = -1;
	}
	close(log_w);
	log_w = -1;
	if (r < 0 && started == 0)
		return r;

	bool signalled = r < 0;
	long long kill_at = 0;
	size_t left = started;
	bool log_open = true;
	while (left > 0 || log_open) {
		if ((image_interrupted || signalled) && kill_at == 0) {
			int sig =
			    image_interrupted ? image_interrupted : SIGTERM;
			for (size_t i = 0; i < started; i++)
				if (!done[i])
					kill(-pids[i], sig);
			kill_at = util_now_ms() + KILL_GRACE_MS;
		}
		if (kill_at && util_now_ms() > kill_at) {
			for (size_t i = 0; i < started; i++)
				if (!done[i])
					kill(-pids[i], SIGKILL);
		}
		struct pollfd pfd = {.fd = log_r, .events = POLLIN};
		int pr = log_open ? poll(&pfd, 1, 1000) : 0;
		if (!log_open)
			usleep(100000);
		if (pr > 0) {
			char buf[8192];
			ssize_t got = read(log_r, buf, sizeof(buf));
			if (got > 0) {
				log_output(b, buf, (size_t)got);
				note_detail(b, buf, (size_t)got);
			} else if (got == 0 || errno != EINTR) {
				log_open = false;
			}
		}
		for (size_t i = 0; i < started; i++) {
			if (done[i])
				continue;
			pid_t w = waitpid(pids[i], &status[i], WNOHANG);
			if (w == pids[i]) {
				done[i] = true;
				left--;
			}
		}
		if (b->tty && !image_interrupted)
			progress_draw(b, false);
		else if (!b->tty)
			progress_draw(b, false);
		/* A child that has exited may leave grandchildren holding
		 * the log pipe; stop reading once all children are gone. */
		if (left == 0 && pr <= 0)
			break;
	}
	if (r < 0)
		return r;
	if (image_interrupted)
		return ccvm_err_set(err, EINTR, "interrupted by signal %d",
				    (int)image_interrupted);
	for (size_t i = 0; i < started; i++) {
		const char *name = strrchr(cmds[i].argv[0], '/');
		name = name ? name + 1 : cmds[i].argv[0];
		if (WIFEXITED(status[i]) && WEXITSTATUS(status[i]) == 0)
			continue;
		if (WIFSIGNALED(status[i]))
			return ccvm_err_set(err, EIO,
					    "%s was killed by signal "
					    "%d",
					    name, WTERMSIG(status[i]));
		return ccvm_err_set(err, EIO, "%s exited with status %d", name,
				    WEXITSTATUS(status[i]));
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Build steps                                                        */

struct tool_req {
	const char *tool;
	const char *package;
	char *dst;
};

static int check_subids(const char *file, struct ccvm_err *err)
{
	struct passwd *pw = getpwuid(geteuid());
	autofree char *text = NULL;
	struct ccvm_err e = {0};
	char uid[32];
	snprintf(uid, sizeof(uid), "%u", (unsigned)geteuid());
	if (util_read_file(file, TEXT_MAX, &text, NULL, &e) == 0) {
		for (char *line = text; line && *line;) {
			char *nl = strchr(line, '\n');
			size_t len = nl ? (size_t)(nl - line) : strlen(line);
			char *colon = memchr(line, ':', len);
			size_t nlen = colon ? (size_t)(colon - line) : 0;
			if (colon &&
			    ((pw && strlen(pw->pw_name) == nlen &&
			      !memcmp(line, pw->pw_name, nlen)) ||
			     (strlen(uid) == nlen && !memcmp(line, uid, nlen))))
				return 0;
			line = nl ? nl + 1 : NULL;
		}
	}
	const char *name = pw ? pw->pw_name : uid;
	return ccvm_err_set(err, EPERM,
			    "building the guest image without root needs a "
			    "subordinate id range for user %s in %s (for "
			    "mmdebstrap's unshare mode); add one with: sudo "
			    "usermod --add-subuids 100000-165535 "
			    "--add-subgids 100000-165535 %s",
			    name, file, name);
}

static int step_tools(struct build *b, struct ccvm_err *err)
{
	char dummy[PATH_MAX];
	struct tool_req req[] = {
	    {"mmdebstrap", "mmdebstrap", b->mmdebstrap},
	    {"npm", "npm", b->npm},
	    {"mksquashfs", "squashfs-tools (4.5 or later)", b->mksquashfs},
	    {"xz", "xz-utils", dummy},
	    {"zstd", "zstd", dummy},
	    {"gzip", "gzip", dummy},
	    {"unshare", "util-linux", b->unshare},
	    {"newuidmap", "uidmap", dummy},
	    {"newgidmap", "uidmap", dummy},
	};
	size_t n = ARRAY_LEN(req);
	if (geteuid() == 0)
		n -= 2; /* root mode needs no id mapping */
	for (size_t i = 0; i < n; i++)
		if (find_tool(req[i].tool, req[i].dst) < 0)
			return ccvm_err_set(err, ENOENT,
					    "%s not found: install the Debian "
					    "package %s",
					    req[i].tool, req[i].package);
	return b->skip_subids ? 0 : image_check_subids(err);
}

int image_check_subids(struct ccvm_err *err)
{
	if (geteuid() == 0)
		return 0;
	int r = check_subids("/etc/subuid", err);
	return r < 0 ? r : check_subids("/etc/subgid", err);
}

int image_check_tools(struct ccvm_err *err)
{
	struct build b = {.skip_subids = true};
	return step_tools(&b, err);
}

int image_find_tool(const char *name, char out[PATH_MAX])
{
	return find_tool(name, out);
}

static bool json_list_has(json_t *a, const char *s)
{
	size_t i;
	json_t *v;
	if (!json_is_array(a))
		return false;
	json_array_foreach(a, i,
			   v) if (json_is_string(v) &&
				  !strcmp(json_string_value(v), s)) return true;
	return false;
}

/* Is dir (an installed npm package) the linux-x64 glibc native build
 * of the agent, with an ELF executable named claude?  Fills version. */
static bool is_native_pkg(const char *dir, char *version, size_t vsz)
{
	autofree char *pj = util_path_join(dir, "package.json");
	autofree char *bin = util_path_join(dir, "claude");
	if (!pj || !bin)
		return false;
	json_error_t je;
	json_t *j = json_load_file(pj, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return false;
	bool ok = json_list_has(json_object_get(j, "os"), "linux") &&
		  json_list_has(json_object_get(j, "cpu"), "x64") &&
		  !json_list_has(json_object_get(j, "libc"), "musl");
	json_t *v = json_object_get(j, "version");
	if (ok && json_is_string(v))
		snprintf(version, vsz, "%s", json_string_value(v));
	else
		ok = false;
	json_decref(j);
	if (!ok)
		return false;
	autoclose int fd = open(bin, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	unsigned char magic[4];
	return fd >= 0 && util_read_all(fd, magic, 4) == 4 &&
	       !memcmp(magic, "\177ELF", 4) && access(bin, X_OK) == 0;
}

static int find_native(const char *node_modules, char out[PATH_MAX],
		       char *version, size_t vsz)
{
	DIR *d = opendir(node_modules);
	if (!d)
		return -ENOENT;
	int r = -ENOENT;
	struct dirent *de;
	while (r < 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		autofree char *p = util_path_join(node_modules, de->d_name);
		if (!p)
			continue;
		if (de->d_name[0] == '@') {
			r = find_native(p, out, version, vsz);
			continue;
		}
		if (is_native_pkg(p, version, vsz) &&
		    snprintf(out, PATH_MAX, "%s/claude", p) < PATH_MAX)
			r = 0;
	}
	closedir(d);
	return r;
}

static int step_npm(struct build *b, struct ccvm_err *err)
{
	const char *spec = image_agent_package(b->cfg);
	if (!cfg_valid_npm_spec(spec))
		return ccvm_err_set(err, EINVAL, "package: bad npm spec '%s'",
				    spec);
	autofree char *prefix = util_path_join(b->dir, "npm");
	autofree char *cache = util_path_join(b->dir, "npm-cache");
	autofree char *nm = util_path_join(b->dir, "npm/node_modules");
	autofree char *dst = util_path_join(b->dir, "claude");
	if (!prefix || !cache || !nm || !dst)
		return ccvm_err_set(err, ENAMETOOLONG, "path too long");
	if (mkdir(prefix, 0755) < 0)
		return ccvm_err_sys(err, errno, "%s", prefix);
	const char *argv[] = {b->npm,
			      "install",
			      "--prefix",
			      prefix,
			      "--cache",
			      cache,
			      "--no-audit",
			      "--no-fund",
			      "--ignore-scripts",
			      "--no-save",
			      "--no-update-notifier",
			      "--loglevel=warn",
			      spec,
			      NULL};
	struct cmd c = {.argv = argv, .cwd = b->dir, .in_fd = -1, .out_fd = -1};
	int r = run_cmds(b, &c, 1, err);
	if (r < 0)
		return r;
	char bin[PATH_MAX];
	if (find_native(nm, bin, b->agent_version, sizeof(b->agent_version)) <
	    0)
		return ccvm_err_set(err, ENOENT,
				    "npm package %s brought no linux-x64 "
				    "(glibc) native claude binary",
				    spec);
	dprintf(b->logfd, "agent binary: %s (version %s)\n", bin,
		b->agent_version);
	if (rename(bin, dst) < 0)
		return ccvm_err_sys(err, errno, "%s", dst);
	util_rm_rf(prefix);
	util_rm_rf(cache);
	return 0;
}

struct argv_buf {
	char **v;
	size_t n, cap;
};

static int av_add(struct argv_buf *a, char *s)
{
	if (!s)
		return -ENOMEM;
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		char **nv = realloc(a->v, cap * sizeof(*nv));
		if (!nv) {
			free(s);
			return -ENOMEM;
		}
		a->v = nv;
		a->cap = cap;
	}
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
	return 0;
}

static void av_free(struct argv_buf *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
}

#define HOOK(s) av_add(&a, strdup("--customize-hook=" s))

static const char hook_agent[] = "chmod 0755 \"$1/usr/local/bin/claude\"";
static const char hook_host[] =
    "echo 'ccvm-step: hostname, sudo'; "
    "printf 'ccvm\\n' > \"$1/etc/hostname\" && "
    "printf '127.0.0.1\\tlocalhost\\n127.0.1.1\\tccvm\\n"
    "::1\\tlocalhost ip6-localhost ip6-loopback\\n' > \"$1/etc/hosts\" && "
    "chmod 0644 \"$1/etc/hostname\" \"$1/etc/hosts\" && "
    "rm -f \"$1/etc/resolv.conf\"";
static const char hook_sudo[] =
    "chroot \"$1\" /usr/sbin/groupadd --system ccvm-sudo && "
    "printf '%s\\n' '%ccvm-sudo ALL=(ALL:ALL) NOPASSWD: ALL' "
    "> \"$1/etc/sudoers.d/ccvm-sudo\" && "
    "chmod 0440 \"$1/etc/sudoers.d/ccvm-sudo\" && "
    "chroot \"$1\" /usr/sbin/visudo -c -q -f /etc/sudoers.d/ccvm-sudo";
static const char hook_verify[] =
    "echo 'ccvm-step: claude --version'; "
    "mkdir -p \"$1/ccvm-out\" \"$1/tmp/ccvm-home\" && "
    "chroot \"$1\" /usr/bin/env -i PATH=" GUEST_PATH " HOME=/tmp/ccvm-home "
    "DISABLE_AUTOUPDATER=1 /usr/local/bin/claude --version "
    "> \"$1/ccvm-out/claude-version\" && rm -rf \"$1/tmp/ccvm-home\" && "
    "cat \"$1/ccvm-out/claude-version\"";
static const char hook_kernel[] =
    "echo 'ccvm-step: kernel out'; "
    "mv \"$1\"/boot/vmlinuz-* \"$1/ccvm-out/\" && "
    "mv \"$1/lib/modules\" \"$1/ccvm-out/modules\" && "
    "mkdir \"$1/lib/modules\" && "
    "rm -rf \"$1\"/boot/* \"$1\"/vmlinuz* \"$1\"/initrd.img*";

/* Nix (nix.enable): build users as upstream's installer makes them (gid
 * 30000, uids 30001-30008, out of the range a host user's uid usually
 * has), the store initialised by root so that /nix/store is 1775
 * root:nixbld, and `nix --version` checked.  /etc/nix/nix.conf is
 * uploaded before this (written by image_nix_conf, never through a
 * shell). */
static const char hook_nix[] =
    "echo 'ccvm-step: nix build users and store'; "
    "chmod 0644 \"$1/etc/nix/nix.conf\" && "
    "chroot \"$1\" /usr/sbin/groupadd --system --gid 30000 nixbld && "
    "for i in 1 2 3 4 5 6 7 8; do "
    "chroot \"$1\" /usr/sbin/useradd --system --uid $((30000 + i)) "
    "--gid nixbld --groups nixbld --no-create-home "
    "--home-dir /nonexistent --shell /usr/sbin/nologin "
    "--comment \"Nix build user $i\" \"nixbld$i\" || exit 1; done && "
    "chroot \"$1\" /usr/bin/env -i PATH=" GUEST_PATH " HOME=/root "
    "/usr/bin/nix-store --init && "
    "chroot \"$1\" /usr/bin/env -i PATH=" GUEST_PATH " HOME=/root "
    "/usr/bin/nix --version";

/* The value of a nix.conf list: items joined by one space.  Each item was
 * checked by config.c (CK_NIX); checked again here because this text is
 * a file another program parses. */
static int nix_list(const struct cfg_strlist *l, const char *name, char **out,
		    struct ccvm_err *err)
{
	size_t len = 1;
	for (size_t i = 0; i < l->n; i++) {
		const char *v = l->v[i];
		if (!cfg_valid_nix_item(v))
			return ccvm_err_set(err, EINVAL,
					    "nix.%s[%zu]: empty or contains "
					    "whitespace, control characters "
					    "or '#'",
					    name, i);
		len += strlen(v) + 1;
	}
	char *s = calloc(1, len);
	if (!s)
		return ccvm_err_set(err, ENOMEM, "out of memory");
	size_t used = 0;
	for (size_t i = 0; i < l->n; i++) {
		size_t n = strlen(l->v[i]);
		if (i)
			s[used++] = ' ';
		memcpy(s + used, l->v[i], n);
		used += n;
	}
	*out = s;
	return 0;
}

int image_nix_conf(const struct ccvm_config *cfg, char **out,
		   struct ccvm_err *err)
{
	autofree char *subs = NULL, *keys = NULL;
	int r = nix_list(&cfg->nix_substituters, "substituters", &subs, err);
	if (r < 0)
		return r;
	r = nix_list(&cfg->nix_trusted_keys, "trustedPublicKeys", &keys, err);
	if (r < 0)
		return r;
	char *text = util_asprintf(
	    "# Written by ccvm at image build from the nix.* options.\n"
	    "# Multi-user: nix-daemon (started by ccvm-init) builds as the\n"
	    "# nixbld users; only root is trusted.\n"
	    "build-users-group = nixbld\n"
	    "trusted-users = root\n"
	    "require-sigs = true\n"
	    "substituters = %s\n"
	    "trusted-public-keys = %s\n",
	    subs, keys);
	if (!text)
		return ccvm_err_set(err, ENOMEM, "out of memory");
	*out = text;
	return 0;
}

static int mmdebstrap_argv(struct build *b, struct argv_buf *out)
{
	struct argv_buf a = {0};
	int r = av_add(&a, strdup(b->mmdebstrap));
	r = r ?: av_add(&a, strdup("--variant=minbase"));
	r = r
		?: av_add(&a, strdup(geteuid() == 0 ? "--mode=root"
						    : "--mode=unshare"));
	r = r ?: av_add(&a, strdup("--format=tar"));
	r = r ?: av_add(&a, strdup("--verbose"));
	/* --include=base,extra (names checked by step_root) */
	size_t len = 16;
	for (size_t i = 0; i < ARRAY_LEN(base_packages); i++)
		len += strlen(base_packages[i]) + 1;
	const struct cfg_strlist *x = &b->cfg->extra_packages;
	for (size_t i = 0; i < x->n; i++)
		len += strlen(x->v[i]) + 1;
	if (b->cfg->nix_enable)
		len += strlen(NIX_PACKAGE) + 1;
	char *inc = malloc(len);
	if (!inc) {
		av_free(&a);
		return -ENOMEM;
	}
	size_t used = (size_t)snprintf(inc, len, "--include=");
	for (size_t i = 0; i < ARRAY_LEN(base_packages) + x->n; i++) {
		const char *name = i < ARRAY_LEN(base_packages)
				       ? base_packages[i]
				       : x->v[i - ARRAY_LEN(base_packages)];
		used += (size_t)snprintf(inc + used, len - used, "%s%s",
					 i ? "," : "", name);
	}
	if (b->cfg->nix_enable)
		snprintf(inc + used, len - used, ",%s", NIX_PACKAGE);
	r = r ?: av_add(&a, inc);
	for (size_t i = 0; i < ARRAY_LEN(dpkg_excludes); i++)
		r = r ?: av_add(&a, strdup(dpkg_excludes[i]));
	r = r ?: HOOK("upload claude /usr/local/bin/claude");
	r = r ?: av_add(&a, util_asprintf("--customize-hook=%s", hook_agent));
	r = r ?: av_add(&a, util_asprintf("--customize-hook=%s", hook_host));
	if (image_agent_sudo(b->cfg))
		r = r
			?: av_add(&a, util_asprintf("--customize-hook=%s",
						    hook_sudo));
	if (b->cfg->nix_enable) {
		r = r ?: HOOK("mkdir -p \"$1/etc/nix\"");
		r = r ?: HOOK("upload nix.conf /etc/nix/nix.conf");
		r = r
			?: av_add(&a, util_asprintf("--customize-hook=%s",
						    hook_nix));
	}
	for (size_t i = 0; i < b->n_scripts; i++) {
		const struct image_blob *s = &b->scripts[i];
		bool shebang = s->len >= 2 && !memcmp(s->data, "#!", 2);
		r = r
			?: av_add(&a,
				  util_asprintf("--customize-hook=upload "
						"provision-%02zu "
						"/root/ccvm-provision-%02zu",
						i, i));
		r = r
			?: av_add(&a,
				  util_asprintf(
				      "--customize-hook=echo 'ccvm-step: "
				      "provisioning "
				      "script %zu of %zu'; "
				      "chmod 0700 "
				      "\"$1/root/ccvm-provision-%02zu\" && "
				      "chroot \"$1\" /usr/bin/env -i "
				      "PATH=" GUEST_PATH
				      " HOME=/root LC_ALL=C.UTF-8 TERM=dumb "
				      "DEBIAN_FRONTEND=noninteractive "
				      "%s/root/ccvm-provision-%02zu && "
				      "rm -f \"$1/root/ccvm-provision-%02zu\"",
				      i + 1, b->n_scripts, i,
				      shebang ? "" : "/bin/sh ", i, i));
	}
	r = r ?: av_add(&a, util_asprintf("--customize-hook=%s", hook_verify));
	r = r ?: av_add(&a, util_asprintf("--customize-hook=%s", hook_kernel));
	r = r ?: HOOK("sync-out /ccvm-out out");
	r = r ?: HOOK("rm -rf \"$1/ccvm-out\"; echo 'ccvm-step: packing'");
	r = r ?: av_add(&a, strdup(IMAGE_SUITE));
	r = r ?: av_add(&a, strdup("-"));
	if (r < 0) {
		av_free(&a);
		return r;
	}
	*out = a;
	return 0;
}

static int step_root(struct build *b, struct ccvm_err *err)
{
	for (size_t i = 0; i < b->cfg->extra_packages.n; i++)
		if (!cfg_valid_deb_name(b->cfg->extra_packages.v[i]))
			return ccvm_err_set(err, EINVAL,
					    "extraPackages: '%s' is not a "
					    "Debian package name",
					    b->cfg->extra_packages.v[i]);
	for (size_t i = 0; i < b->n_scripts; i++) {
		char name[32];
		snprintf(name, sizeof(name), "provision-%02zu", i);
		autofree char *p = util_path_join(b->dir, name);
		if (!p)
			return ccvm_err_set(err, ENAMETOOLONG, "path too long");
		autoclose int fd =
		    open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
		if (fd < 0)
			return ccvm_err_sys(err, errno, "%s", p);
		int r =
		    util_write_all(fd, b->scripts[i].data, b->scripts[i].len);
		if (r < 0)
			return ccvm_err_sys(err, -r, "%s", p);
	}
	if (b->cfg->nix_enable) {
		autofree char *conf = NULL;
		autofree char *cp = util_path_join(b->dir, "nix.conf");
		if (!cp)
			return ccvm_err_set(err, ENAMETOOLONG, "path too long");
		int r = image_nix_conf(b->cfg, &conf, err);
		if (r < 0 || (r = write_text(cp, conf, 0644, err)) < 0)
			return r;
		dprintf(b->logfd, "/etc/nix/nix.conf:\n%s", conf);
	}
	autofree char *outdir = util_path_join(b->dir, "out");
	autofree char *sqfs = util_path_join(b->dir, "root.sqfs");
	if (!outdir || !sqfs)
		return ccvm_err_set(err, ENAMETOOLONG, "path too long");
	if (mkdir(outdir, 0755) < 0)
		return ccvm_err_sys(err, errno, "%s", outdir);
	struct argv_buf a = {0};
	int r = mmdebstrap_argv(b, &a);
	if (r < 0)
		return ccvm_err_set(err, -r, "cannot build mmdebstrap's argv");
	/* mksquashfs -tar takes owners from the tar headers but makes the
	 * root directory its caller's: run it as uid 0 of a user namespace
	 * (-root-uid is ignored with -tar in squashfs-tools 4.5).
	 * lz4hc, not zstd: the guest decompresses every page it reads from
	 * the root, and under TCG zstd made the agent's first start 1.5 s
	 * slower for a 13% smaller image (bench/README.md, "The root's
	 * compression"). */
	const char *sq[] = {b->unshare,
			    "--map-root-user",
			    "--",
			    b->mksquashfs,
			    "-",
			    sqfs,
			    "-tar",
			    "-root-mode",
			    "0755",
			    "-comp",
			    "lz4",
			    "-Xhc",
			    "-no-progress",
			    "-quiet",
			    NULL};
	struct cmd cmds[2] = {
	    {.argv = (const char *const *)a.v,
	     .cwd = b->dir,
	     .in_fd = -1,
	     .out_fd = -1},
	    {.argv = geteuid() == 0 ? sq + 3 : sq,
	     .cwd = b->dir,
	     .in_fd = -1,
	     .out_fd = -1},
	};
	r = run_cmds(b, cmds, 2, err);
	av_free(&a);
	if (r < 0)
		return r;
	/* The hooks ran `claude --version` inside the new root. */
	autofree char *vp = util_path_join(outdir, "claude-version");
	autofree char *vtext = NULL;
	if (!vp || util_read_file(vp, 4096, &vtext, NULL, err) < 0)
		return ccvm_err_set(err, ENOENT,
				    "claude --version left no output");
	vtext[strcspn(vtext, "\r\n")] = '\0';
	snprintf(b->claude_version, sizeof(b->claude_version), "%s", vtext);
	if (!strstr(vtext, b->agent_version))
		return ccvm_err_set(err, EINVAL,
				    "claude --version in the new root printed "
				    "'%s', not version %s",
				    vtext, b->agent_version);
	return 0;
}

static int find_vmlinuz(const char *outdir, char *kver, size_t ksz,
			char path[PATH_MAX], struct ccvm_err *err)
{
	DIR *d = opendir(outdir);
	if (!d)
		return ccvm_err_sys(err, errno, "%s", outdir);
	int found = 0;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "vmlinuz-", 8) != 0)
			continue;
		found++;
		snprintf(kver, ksz, "%s", de->d_name + 8);
		snprintf(path, PATH_MAX, "%s/%s", outdir, de->d_name);
	}
	closedir(d);
	if (found != 1)
		return ccvm_err_set(err, ENOENT,
				    "expected one /boot/vmlinuz-* in the "
				    "root, found %d",
				    found);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The guest kernel built from Debian's kernel source                 */

/*
 * Built once per (source package version, config fragment) into
 * <cache>/ccvm/kernels/<key>/vmlinux, shared by every image; when the
 * source package is missing or the build fails, the image gets Debian's
 * stock kernel and modules instead (one line says why).  A failed build
 * leaves kernels/<key>.failed so that later images do not try again;
 * removing it (or --ccvm-prune) retries.
 */
#define KSRC_TAR	   IMAGE_KERNEL_SOURCE
#define KSRC_DIR	   KSRC_PKG
#define KERNEL_RECIPE	   "1"
#define KERNEL_NICE	   "10"
#define KERNEL_VERSION_MAX 256

static void build_note(struct build *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void build_note(struct build *b, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%sccvm: %s\n", b->tty ? "\r\033[K" : "", msg);
	dprintf(b->logfd, "ccvm: %s\n", msg);
	b->last_draw_ms = 0;
}

int image_kernels_dir(const char *images, char out[PATH_MAX])
{
	const char *slash = strrchr(images, '/');
	if (!slash || slash == images)
		return -EINVAL;
	int n = snprintf(out, PATH_MAX, "%.*s/kernels", (int)(slash - images),
			 images);
	return n < 0 || n >= PATH_MAX ? -ENAMETOOLONG : 0;
}

/* The installed source package's version (dpkg-query), or "". */
static void ksrc_version(struct build *b, const char *tmpdir, char *out,
			 size_t outsz)
{
	out[0] = '\0';
	char dq[PATH_MAX];
	if (find_tool("dpkg-query", dq) < 0)
		return;
	autofree char *p = util_path_join(tmpdir, "ksrc-version");
	if (!p)
		return;
	autoclose int fd =
	    open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	const char *argv[] = {dq, "-W", "-f=${Version}", KSRC_PKG, NULL};
	struct cmd c = {.argv = argv, .cwd = tmpdir, .in_fd = -1, .out_fd = fd};
	struct ccvm_err e = {0};
	if (run_cmds(b, &c, 1, &e) == 0) {
		ssize_t n = pread(fd, out, outsz - 1, 0);
		out[n > 0 ? n : 0] = '\0';
		out[strcspn(out, "\r\n")] = '\0';
	}
	unlink(p);
}

/* The tools the kernel build runs, found on PATH. */
struct ktools {
	char make[PATH_MAX], tar[PATH_MAX], nice[PATH_MAX], patch[PATH_MAX];
};

/* What the kernel build needs besides the source: tool, Debian package. */
static int kernel_tools(struct ktools *t, struct ccvm_err *err)
{
	char dummy[PATH_MAX];
	struct tool_req req[] = {
	    {"make", "make", t->make},
	    {"tar", "tar", t->tar},
	    {"nice", "coreutils", t->nice},
	    {"patch", "patch", t->patch},
	    {"xz", "xz-utils", dummy},
	    {"gcc", "gcc", dummy},
	    {"bc", "bc", dummy},
	    {"bison", "bison", dummy},
	    {"flex", "flex", dummy},
	    {"perl", "perl-base", dummy},
	};
	for (size_t i = 0; i < ARRAY_LEN(req); i++)
		if (find_tool(req[i].tool, req[i].dst) < 0)
			return ccvm_err_set(err, ENOENT,
					    "%s not found (install the Debian "
					    "package %s)",
					    req[i].tool, req[i].package);
	static const struct {
		const char *path, *package;
	} hdr[] = {
	    {"/usr/include/gelf.h", "libelf-dev"},
	    {"/usr/include/openssl/opensslv.h", "libssl-dev"},
	};
	for (size_t i = 0; i < ARRAY_LEN(hdr); i++)
		if (access(hdr[i].path, R_OK) < 0)
			return ccvm_err_set(err, ENOENT,
					    "%s not found (install the Debian "
					    "package %s)",
					    hdr[i].path, hdr[i].package);
	return 0;
}

static void kernel_key(const char *version, const struct stat *tar,
		       char out[65])
{
	size_t flen, plen;
	const void *frag = image_kernel_config(&flen);
	const void *patch = image_kernel_patch(&plen);
	struct sha256_ctx c;
	sha256_init(&c);
	char meta[128];
	snprintf(meta, sizeof(meta), "ccvm-kernel %s %lld %lld", KERNEL_RECIPE,
		 (long long)tar->st_size, (long long)tar->st_mtime);
	sha256_update(&c, strlen(meta) + 1, (const uint8_t *)meta);
	sha256_update(&c, strlen(version) + 1, (const uint8_t *)version);
	sha256_update(&c, flen, frag);
	sha256_update(&c, plen, patch);
	uint8_t d[SHA256_DIGEST_SIZE];
	sha256_digest(&c, sizeof(d), d);
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < sizeof(d); i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[64] = '\0';
}

/* Extracts the source into tmp, configures it with the fragment, checks
 * the result, builds vmlinux and moves it to tmp/vmlinux; release gets
 * the kernel's release string. */
static int kernel_compile(struct build *b, const char *tmp,
			  const struct ktools *t, char *release, size_t relsz,
			  struct ccvm_err *err)
{
	autofree char *src = util_path_join(tmp, KSRC_DIR);
	autofree char *frag = util_path_join(tmp, "guest-kernel.config");
	autofree char *pfile = util_path_join(tmp, "guest-kernel.patch");
	autofree char *allconfig = util_asprintf("KCONFIG_ALLCONFIG=%s", frag);
	autofree char *dotconfig = util_path_join(src, ".config");
	autofree char *relp = util_path_join(src, "include/config/"
						  "kernel.release");
	autofree char *built = util_path_join(src, "vmlinux");
	autofree char *out = util_path_join(tmp, "vmlinux");
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	autofree char *jobs = util_asprintf("-j%ld", cpus > 0 ? cpus : 1);
	if (!src || !frag || !pfile || !allconfig || !dotconfig || !relp ||
	    !built || !out || !jobs)
		return ccvm_err_set(err, ENAMETOOLONG, "%s: path too long",
				    tmp);
	size_t flen;
	const char *ftext = image_kernel_config(&flen);
	autofree char *fstr = strndup(ftext, flen);
	if (!fstr)
		return ccvm_err_set(err, ENOMEM, "out of memory");
	size_t plen;
	const char *ptext = image_kernel_patch(&plen);
	int r = write_text(frag, fstr, 0644, err);
	if (r < 0 || (r = write_bytes(pfile, ptext, plen, 0644, err)) < 0)
		return r;
	snprintf(b->detail, sizeof(b->detail), "extracting the source");
	const char *untar[] = {t->tar, "-xf", KSRC_TAR, "-C", tmp, NULL};
	struct cmd c = {.argv = untar, .cwd = tmp, .in_fd = -1, .out_fd = -1};
	if ((r = run_cmds(b, &c, 1, err)) < 0)
		return r;
	/* A source it no longer applies to fails the build: the image gets
	 * the stock kernel, and build.log says which hunk. */
	snprintf(b->detail, sizeof(b->detail), "patching");
	const char *pat[] = {t->patch,
			     "-d",
			     src,
			     "-p1",
			     "--batch",
			     "--forward",
			     "--no-backup-if-mismatch",
			     "-i",
			     pfile,
			     NULL};
	c.argv = pat;
	if ((r = run_cmds(b, &c, 1, err)) < 0)
		return r;
	snprintf(b->detail, sizeof(b->detail), "configuring");
	const char *conf[] = {t->nice, "-n", KERNEL_NICE,   t->make,   "-C",
			      src,     "-s", "allnoconfig", allconfig, NULL};
	c.argv = conf;
	if ((r = run_cmds(b, &c, 1, err)) < 0)
		return r;
	autofree char *dc = NULL;
	if ((r = util_read_file(dotconfig, TEXT_MAX, &dc, NULL, err)) < 0 ||
	    (r = kernel_config_check(fstr, dc, err)) < 0)
		return r;
	snprintf(b->detail, sizeof(b->detail), "compiling (%s, nice %s)", jobs,
		 KERNEL_NICE);
	const char *mk[] = {t->nice,
			    "-n",
			    KERNEL_NICE,
			    t->make,
			    "-C",
			    src,
			    "-s",
			    jobs,
			    "vmlinux",
			    "KBUILD_BUILD_USER=ccvm",
			    "KBUILD_BUILD_HOST=ccvm",
			    NULL};
	c.argv = mk;
	if ((r = run_cmds(b, &c, 1, err)) < 0)
		return r;
	autofree char *rel = NULL;
	if ((r = util_read_file(relp, 4096, &rel, NULL, err)) < 0)
		return r;
	rel[strcspn(rel, "\r\n")] = '\0';
	snprintf(release, relsz, "%s", rel);
	if (rename(built, out) < 0)
		return ccvm_err_sys(err, errno, "%s", out);
	/* The resolved config stays next to the kernel, for reference. */
	autofree char *keep = util_path_join(tmp, "config");
	if (keep)
		rename(dotconfig, keep);
	autofree char *img = NULL;
	size_t len = 0;
	if ((r = util_read_file(out, KERNEL_MAX, &img, &len, err)) < 0)
		return r;
	return kernel_check_pvh_elf((unsigned char *)img, len, err);
}

/* Builds the kernel for key into kdir (via kernels/.tmp-XXXXXX). */
static int kernel_build(struct build *b, const char *kernels, const char *kdir,
			const char *version, struct ccvm_err *err)
{
	struct ktools t;
	int r = kernel_tools(&t, err);
	if (r < 0)
		return r;
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s/.tmp-XXXXXX", kernels) >=
	    (int)sizeof(tmp))
		return ccvm_err_set(err, ENAMETOOLONG, "%s: path too long",
				    kernels);
	if (!mkdtemp(tmp))
		return ccvm_err_sys(err, errno, "%s", tmp);
	long long t0 = util_now_ms();
	char release[128] = "";
	r = kernel_compile(b, tmp, &t, release, sizeof(release), err);
	if (r < 0 && !image_interrupted) {
		char msg[CCVM_ERR_MAX];
		snprintf(msg, sizeof(msg), "%s", err->msg);
		ccvm_err_set(err, -r,
			     "building it failed (%s; the image's build.log "
			     "has the details)",
			     msg);
	}
	autofree char *src = util_path_join(tmp, KSRC_DIR);
	if (src)
		util_rm_rf(src);
	double secs = (double)(util_now_ms() - t0) / 1000.0;
	if (r == 0) {
		size_t flen, plen;
		const void *frag = image_kernel_config(&flen);
		const void *kpatch = image_kernel_patch(&plen);
		char fh[65], ph[65];
		image_sha256_hex(frag, flen, fh);
		image_sha256_hex(kpatch, plen, ph);
		json_t *j =
		    json_pack("{s:s, s:s, s:s, s:s, s:s, s:f}", "release",
			      release, "sourcePackage", KSRC_PKG,
			      "sourceVersion", version, "configSha256", fh,
			      "patchSha256", ph, "buildSeconds", secs);
		autofree char *jp = util_path_join(tmp, "kernel.json");
		if (!j || !jp ||
		    json_dump_file(j, jp, JSON_INDENT(2) | JSON_SORT_KEYS) < 0)
			r = ccvm_err_set(err, EIO,
					 "cannot write %s/kernel.json", tmp);
		json_decref(j);
	}
	if (r == 0 && rename(tmp, kdir) < 0)
		r = ccvm_err_sys(err, errno, "%s", kdir);
	if (r < 0) {
		util_rm_rf(tmp);
		return r;
	}
	b->kernel_build_s = secs;
	build_note(b,
		   "guest kernel %s built from %s %s in %.0f s (%s, nice %s)",
		   release, KSRC_PKG, version, secs,
		   sysconf(_SC_NPROCESSORS_ONLN) > 1 ? "all cores" : "1 core",
		   KERNEL_NICE);
	return 0;
}

int image_kernel_check(struct ccvm_err *err)
{
	if (image_stock_kernel())
		return ccvm_err_set(err, ENOENT, "CCVM_STOCK_KERNEL is set");
	struct stat st;
	if (stat(KSRC_TAR, &st) < 0)
		return ccvm_err_set(err, ENOENT,
				    "%s is not installed (install it and "
				    "make gcc bc bison flex patch libelf-dev "
				    "libssl-dev)",
				    KSRC_PKG);
	struct ktools t;
	return kernel_tools(&t, err);
}

static int custom_kernel(struct build *b, struct ccvm_err *err)
{
	struct stat st;
	if (stat(KSRC_TAR, &st) < 0 || !S_ISREG(st.st_mode))
		return ccvm_err_set(err, ENOENT, "%s is not installed (no %s)",
				    KSRC_PKG, KSRC_TAR);
	char kernels[PATH_MAX];
	int r = image_kernels_dir(b->images, kernels);
	if (r < 0)
		return ccvm_err_set(err, -r, "%s: bad cache path", b->images);
	if ((r = util_mkdir_p(kernels, 0700)) < 0)
		return ccvm_err_sys(err, -r, "%s", kernels);
	image_remove_stale(kernels, NULL); /* we hold the images lock */
	char version[KERNEL_VERSION_MAX];
	ksrc_version(b, kernels, version, sizeof(version));
	if (image_interrupted)
		return ccvm_err_set(err, EINTR, "interrupted by signal %d",
				    (int)image_interrupted);
	char key[65];
	kernel_key(version, &st, key);
	autofree char *kdir = util_path_join(kernels, key);
	autofree char *failed = util_asprintf("%s/%s.failed", kernels, key);
	autofree char *vml = util_path_join(kdir ? kdir : "", "vmlinux");
	if (!kdir || !failed || !vml)
		return ccvm_err_set(err, ENAMETOOLONG, "%s: path too long",
				    kernels);
	dprintf(b->logfd, "guest kernel: %s %s, key %s\n", KSRC_PKG, version,
		key);
	if (access(failed, F_OK) == 0)
		return ccvm_err_set(err, EIO,
				    "an earlier build of this kernel failed "
				    "(remove %s to try again)",
				    failed);
	if (access(vml, R_OK) != 0) {
		util_rm_rf(kdir); /* an incomplete leftover */
		r = kernel_build(b, kernels, kdir, version, err);
		if (r < 0) {
			if (!image_interrupted)
				write_text(failed, err->msg, 0644,
					   &(struct ccvm_err){0});
			return r;
		}
	} else {
		build_note(b, "guest kernel from the cache: %s", kdir);
	}
	snprintf(b->custom_vmlinux, sizeof(b->custom_vmlinux), "%s", vml);
	snprintf(b->kernel_key, sizeof(b->kernel_key), "%s", key);
	autofree char *jp = util_path_join(kdir, "kernel.json");
	json_error_t je;
	json_t *j = jp ? json_load_file(jp, 0, &je) : NULL;
	const char *rel = NULL;
	if (j && json_unpack(j, "{s:s}", "release", &rel) == 0)
		snprintf(b->kver, sizeof(b->kver), "%s", rel);
	json_decref(j);
	return 0;
}

static int step_custom_kernel(struct build *b, struct ccvm_err *err)
{
	if (b->stock_kernel) {
		build_note(b, "guest kernel: CCVM_STOCK_KERNEL is set: using "
			      "Debian's stock kernel and modules");
		return 0;
	}
	struct ccvm_err e = {0};
	int r = custom_kernel(b, &e);
	if (r < 0 && image_interrupted)
		return ccvm_err_set(err, -r, "%s", e.msg);
	if (r < 0)
		build_note(b,
			   "guest kernel: %s; using Debian's stock kernel "
			   "and modules instead (slower boot)",
			   e.msg);
	return 0;
}

static int step_kernel(struct build *b, struct ccvm_err *err)
{
	if (b->custom_vmlinux[0]) {
		/* Shared with the kernel cache: a hard link when it can. */
		autofree char *dst = util_path_join(b->dir, "vmlinux");
		if (!dst)
			return ccvm_err_set(err, ENAMETOOLONG, "path too long");
		if (link(b->custom_vmlinux, dst) == 0)
			return 0;
		return copy_file(b->custom_vmlinux, dst, 0644, err);
	}
	autofree char *outdir = util_path_join(b->dir, "out");
	autofree char *payload = util_path_join(b->dir, "kernel-payload");
	autofree char *vmlinux = util_path_join(b->dir, "vmlinux");
	if (!outdir || !payload || !vmlinux)
		return ccvm_err_set(err, ENAMETOOLONG, "path too long");
	char bz[PATH_MAX];
	int r = find_vmlinuz(outdir, b->kver, sizeof(b->kver), bz, err);
	if (r < 0)
		return r;
	autofree char *img = NULL;
	size_t len = 0;
	r = util_read_file(bz, KERNEL_MAX, &img, &len, err);
	if (r < 0)
		return r;
	struct kernel_payload kp;
	r = kernel_parse_bzimage((unsigned char *)img, len, &kp, err);
	if (r < 0)
		return ccvm_err_set(err, -r, "%s: %s", bz, err->msg);
	dprintf(b->logfd, "%s: %s payload at %zu, %zu bytes -> %u bytes\n", bz,
		kernel_comp_name(kp.comp), kp.offset, kp.length, kp.size);
	const char *tool = NULL;
	const char *const *args = NULL;
	static const char *const xz_args[] = {"-dc", "--single-stream", "-q",
					      NULL};
	static const char *const zstd_args[] = {"-dc", "-q", NULL};
	static const char *const gzip_args[] = {"-dc", "-q", NULL};
	switch (kp.comp) {
	case KERNEL_COMP_XZ:
		tool = "xz", args = xz_args;
		break;
	case KERNEL_COMP_ZSTD:
		tool = "zstd", args = zstd_args;
		break;
	case KERNEL_COMP_GZIP:
		tool = "gzip", args = gzip_args;
		break;
	default:
		return ccvm_err_set(err, ENOTSUP,
				    "%s: %s-compressed kernels are not "
				    "supported (xz, zstd, gzip are)",
				    bz, kernel_comp_name(kp.comp));
	}
	char toolpath[PATH_MAX];
	if (find_tool(tool, toolpath) < 0)
		return ccvm_err_set(err, ENOENT, "%s not found", tool);
	autoclose int pfd =
	    open(payload, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (pfd < 0)
		return ccvm_err_sys(err, errno, "%s", payload);
	r = util_write_all(pfd, img + kp.offset, kp.length);
	if (r < 0 || lseek(pfd, 0, SEEK_SET) < 0)
		return ccvm_err_sys(err, r < 0 ? -r : errno, "%s", payload);
	autoclose int vfd =
	    open(vmlinux, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (vfd < 0)
		return ccvm_err_sys(err, errno, "%s", vmlinux);
	const char *argv[6] = {toolpath};
	for (size_t i = 0; i < 4 && args[i]; i++)
		argv[i + 1] = args[i];
	struct cmd c = {
	    .argv = argv, .cwd = b->dir, .in_fd = pfd, .out_fd = vfd};
	r = run_cmds(b, &c, 1, err);
	unlink(payload);
	if (r < 0)
		return r;
	struct stat st;
	if (fstat(vfd, &st) < 0)
		return ccvm_err_sys(err, errno, "%s", vmlinux);
	if ((uint32_t)st.st_size != kp.size)
		return ccvm_err_set(err, EINVAL,
				    "%s: decompressed to %lld bytes, the "
				    "bzImage says %u",
				    bz, (long long)st.st_size, kp.size);
	void *m =
	    mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, vfd, 0);
	if (m == MAP_FAILED)
		return ccvm_err_sys(err, errno, "%s", vmlinux);
	r = kernel_check_pvh_elf(m, (size_t)st.st_size, err);
	munmap(m, (size_t)st.st_size);
	return r;
}

static int step_modules(struct build *b, struct ccvm_err *err)
{
	if (b->custom_vmlinux[0]) {
		/* Everything is built in: nothing for ccvm-init to load. */
		autofree char *moddir = util_path_join(b->dir, "modules");
		autofree char *listp = util_path_join(b->dir, "modules/"
							      "load.list");
		if (!moddir || !listp)
			return ccvm_err_set(err, ENOMEM, "out of memory");
		if (mkdir(moddir, 0755) < 0)
			return ccvm_err_sys(err, errno, "%s", moddir);
		return write_text(listp, "", 0644, err);
	}
	autofree char *kdir =
	    util_asprintf("%s/out/modules/%s", b->dir, b->kver);
	autofree char *depp = util_asprintf("%s/modules.dep", kdir);
	autofree char *builtp = util_asprintf("%s/modules.builtin", kdir);
	autofree char *moddir = util_path_join(b->dir, "modules");
	autofree char *listp = util_path_join(b->dir, "modules/load.list");
	if (!kdir || !depp || !builtp || !moddir || !listp)
		return ccvm_err_set(err, ENOMEM, "out of memory");
	autofree char *dep = NULL, *built = NULL;
	int r = util_read_file(depp, TEXT_MAX, &dep, NULL, err);
	if (r < 0)
		return r;
	r = util_read_file(builtp, TEXT_MAX, &built, NULL, err);
	if (r < 0)
		return r;
	struct kernel_modlist l = {0};
	char *list = NULL;
	r = kernel_modules_order(dep, built, guest_modules,
				 ARRAY_LEN(guest_modules), &l, err);
	if (r < 0)
		return r;
	if (mkdir(moddir, 0755) < 0) {
		r = ccvm_err_sys(err, errno, "%s", moddir);
		goto out;
	}
	size_t cap = 1, used = 0;
	for (size_t i = 0; i < l.n; i++)
		cap += strlen(l.paths[i]) + 1;
	list = calloc(1, cap);
	if (!list) {
		r = ccvm_err_set(err, ENOMEM, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < l.n; i++) {
		const char *base = strrchr(l.paths[i], '/');
		base = base ? base + 1 : l.paths[i];
		size_t bl = strlen(base);
		if (bl < 4 || strcmp(base + bl - 3, ".ko") != 0) {
			r = ccvm_err_set(err, ENOTSUP,
					 "%s: compressed modules are not "
					 "supported",
					 l.paths[i]);
			goto out;
		}
		autofree char *src = util_path_join(kdir, l.paths[i]);
		autofree char *dst = util_path_join(moddir, base);
		if (!src || !dst) {
			r = ccvm_err_set(err, EINVAL, "bad module path %s",
					 l.paths[i]);
			goto out;
		}
		r = copy_file(src, dst, 0644, err);
		if (r < 0)
			goto out;
		memcpy(list + used, base, bl);
		used += bl;
		list[used++] = '\n';
		dprintf(b->logfd, "module %s\n", l.paths[i]);
	}
	r = write_text(listp, list, 0644, err);
out:
	free(list);
	kernel_modlist_free(&l);
	return r;
}

static int write_manifest(struct build *b, double seconds, struct ccvm_err *err)
{
	json_t *pk = json_array(), *mods = json_array(), *nixs = json_array(),
	       *nixk = json_array();
	for (size_t i = 0; i < b->cfg->extra_packages.n; i++)
		json_array_append_new(pk,
				      json_string(b->cfg->extra_packages.v[i]));
	for (size_t i = 0; i < b->n_scripts; i++) {
		char h[65];
		image_sha256_hex(b->scripts[i].data, b->scripts[i].len, h);
		json_array_append_new(
		    mods,
		    json_pack("{s:s, s:s}", "path",
			      b->cfg->extra_guest_modules.v[i], "sha256", h));
	}
	for (size_t i = 0; i < b->cfg->nix_substituters.n; i++)
		json_array_append_new(
		    nixs, json_string(b->cfg->nix_substituters.v[i]));
	for (size_t i = 0; i < b->cfg->nix_trusted_keys.n; i++)
		json_array_append_new(
		    nixk, json_string(b->cfg->nix_trusted_keys.v[i]));
	autofree char *md = util_path_join(b->dir, "modules");
	long long modules_size = md ? image_dir_size(md, 0) : 0;
	time_t now = time(NULL);
	char when[64];
	struct tm tm;
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
	json_t *j = json_pack(
	    "{s:i, s:s, s:{s:s, s:s, s:o, s:o, s:b, s:{s:b, s:o, s:o}}, "
	    "s:s, s:s, s:s, s:s, s:s, s:f, s:s, s:I, s:f, s:{s:I, s:I, s:I}}",
	    "recipe", IMAGE_RECIPE_VERSION, "key", b->key, "inputs", "suite",
	    IMAGE_SUITE, "package", image_agent_package(b->cfg),
	    "extraPackages", pk, "extraGuestModules", mods, "agentSudo",
	    image_agent_sudo(b->cfg), "nix", "enable", b->cfg->nix_enable,
	    "substituters", nixs, "trustedPublicKeys", nixk, "agentVersion",
	    b->agent_version, "claudeVersionOutput", b->claude_version,
	    "kernelVersion", b->kver, "kernel",
	    b->custom_vmlinux[0] ? "custom" : "stock", "kernelKey",
	    b->kernel_key, "kernelBuildSeconds", b->kernel_build_s, "built",
	    when, "builtEpoch", (json_int_t)now, "buildSeconds", seconds,
	    "sizes", "vmlinux", (json_int_t)file_size(b->dir, "vmlinux"),
	    "rootfs", (json_int_t)file_size(b->dir, "root.sqfs"), "modules",
	    (json_int_t)modules_size);
	if (!j)
		return ccvm_err_set(err, ENOMEM, "cannot build the manifest");
	autofree char *p = util_path_join(b->dir, "manifest.json");
	int r = 0;
	if (!p || json_dump_file(j, p, JSON_INDENT(2) | JSON_SORT_KEYS) < 0)
		r = ccvm_err_set(err, EIO, "cannot write %s/manifest.json",
				 b->dir);
	json_decref(j);
	return r;
}

/* Removes build directories a killed ccvm left behind (we hold the lock,
 * so no build is running). */
void image_remove_stale(const char *images, FILE *out)
{
	DIR *d = opendir(images);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, ".tmp-", 5) != 0)
			continue;
		autofree char *p = util_path_join(images, de->d_name);
		if (!p)
			continue;
		int r = util_rm_rf(p);
		if (out)
			fprintf(out,
				"ccvm: removed an interrupted build %s%s\n", p,
				r < 0 ? " (partly)" : "");
	}
	closedir(d);
}

static int step_finish(struct build *b, struct ccvm_err *err)
{
	autofree char *outdir = util_path_join(b->dir, "out");
	autofree char *claude = util_path_join(b->dir, "claude");
	autofree char *final = util_path_join(b->images, b->key);
	if (!outdir || !claude || !final)
		return ccvm_err_set(err, ENAMETOOLONG, "%s: path too long",
				    b->images);
	util_rm_rf(outdir);
	unlink(claude);
	autofree char *nixconf = util_path_join(b->dir, "nix.conf");
	if (nixconf)
		unlink(nixconf);
	for (size_t i = 0; i < b->n_scripts; i++) {
		char name[32];
		snprintf(name, sizeof(name), "provision-%02zu", i);
		autofree char *p = util_path_join(b->dir, name);
		if (p)
			unlink(p);
	}
	int r =
	    write_manifest(b, (double)(util_now_ms() - b->t0) / 1000.0, err);
	if (r < 0)
		return r;
	if (rename(b->dir, final) < 0)
		return ccvm_err_sys(err, errno, "%s", final);
	snprintf(b->dir, sizeof(b->dir), "%s", final);
	return 0;
}

static int run_steps(struct build *b, struct ccvm_err *err)
{
	static const struct {
		const char *name;
		int (*fn)(struct build *, struct ccvm_err *);
	} steps[] = {
	    {"checking tools", step_tools},
	    {"installing the agent (npm)", step_npm},
	    {"Debian root and squashfs (mmdebstrap)", step_root},
	    {"guest kernel (" KSRC_PKG ")", step_custom_kernel},
	    {"kernel (vmlinux)", step_kernel},
	    {"kernel modules", step_modules},
	    {"finishing", step_finish},
	};
	b->n_steps = (int)ARRAY_LEN(steps);
	for (size_t i = 0; i < ARRAY_LEN(steps); i++) {
		step_begin(b, steps[i].name);
		int r = steps[i].fn(b, err);
		if (r == 0 && image_interrupted && i + 1 < ARRAY_LEN(steps))
			r = ccvm_err_set(err, EINTR, "interrupted by signal %d",
					 (int)image_interrupted);
		if (r < 0)
			return step_fail(b, err, r);
		step_end(b);
	}
	return 0;
}

int image_build(const struct ccvm_config *cfg, const char *images,
		const char *key, const struct image_blob *scripts,
		size_t n_scripts, struct ccvm_err *err)
{
	struct build b = {
	    .cfg = cfg,
	    .scripts = scripts,
	    .n_scripts = n_scripts,
	    .logfd = -1,
	    .log_bol = true,
	    .tty = isatty(STDERR_FILENO),
	    .t0 = util_now_ms(),
	    .stock_kernel = image_stock_kernel(),
	};
	snprintf(b.key, sizeof(b.key), "%s", key);
	snprintf(b.images, sizeof(b.images), "%s", images);
	if (snprintf(b.dir, sizeof(b.dir), "%s/.tmp-XXXXXX", images) >=
	    (int)sizeof(b.dir))
		return ccvm_err_set(err, ENAMETOOLONG, "%s: path too long",
				    images);
	if (!mkdtemp(b.dir))
		return ccvm_err_sys(err, errno, "%s", b.dir);
	chmod(b.dir, 0755);
	if (snprintf(b.log, sizeof(b.log), "%.4000s/build.log", b.dir) >=
	    (int)sizeof(b.log))
		b.log[0] = '\0';
	const char *extra_env[] = {"INITRD=No", "LC_ALL=C.UTF-8"};
	b.env = make_env(extra_env, ARRAY_LEN(extra_env));
	b.logfd = open(b.log, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	int r;
	if (!b.env || b.logfd < 0) {
		r = ccvm_err_sys(err, b.env ? errno : ENOMEM, "%s", b.log);
	} else {
		fprintf(stderr,
			"ccvm: building the guest image %.12s (takes a few "
			"minutes; log: %s/<key>/build.log)\n",
			key, images);
		r = run_steps(&b, err);
	}
	if (r == 0)
		fprintf(stderr, "ccvm: guest image built in %.1f s: %s\n",
			(double)(util_now_ms() - b.t0) / 1000.0, b.dir);
	if (b.logfd >= 0)
		close(b.logfd);
	free_env(b.env);
	if (r < 0)
		util_rm_rf(b.dir);
	return r;
}
