#define _GNU_SOURCE
#include "nix.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "setup/env.h"
#include "glog.h"
#include "util.h"

/* The build users' uids (src/host/image/rootfs.c, hook_nix). */
#define NIX_BUILD_UID_MIN 30001
#define NIX_BUILD_UID_MAX 30008

static pid_t daemon_pid = -1;

bool nix_present(void)
{
	struct stat st;
	return access(NIX_DAEMON, X_OK) == 0 && stat(NIX_CONF, &st) == 0 &&
	       S_ISREG(st.st_mode);
}

int nix_overlay_opts(char *out, size_t n, const char *lower, const char *dir)
{
	if (strpbrk(lower, ",:") || strpbrk(dir, ",:"))
		return -EINVAL;
	int k =
	    snprintf(out, n, "lowerdir=%s,upperdir=%s/upper,workdir=%s/work",
		     lower, dir, dir);
	if (k < 0 || (size_t)k >= n)
		return -ENAMETOOLONG;
	return 0;
}

static int mkdir_mode(const char *path, mode_t mode, struct ccvm_err *err)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return ccvm_err_sys(err, errno, "mkdir %s", path);
	if (chmod(path, mode) < 0)
		return ccvm_err_sys(err, errno, "chmod %s", path);
	return 0;
}

/* /nix as an overlay: the image's store below, the scratch disk above. */
static int mount_on_scratch(struct ccvm_err *err)
{
	int r;
	/* The overlay's root takes the upper's owner and mode (/nix: 0755
	 * root); the parent stays root-only. */
	if ((r = mkdir_mode(NIX_SCRATCH_DIR, 0700, err)) < 0 ||
	    (r = mkdir_mode(NIX_SCRATCH_DIR "/upper", 0755, err)) < 0 ||
	    (r = mkdir_mode(NIX_SCRATCH_DIR "/work", 0700, err)) < 0)
		return r;
	char opts[512];
	if ((r = nix_overlay_opts(opts, sizeof(opts), NIX_DIR,
				  NIX_SCRATCH_DIR)) < 0)
		return ccvm_err_sys(err, -r, "overlay options for %s", NIX_DIR);
	if (mount("overlay", NIX_DIR, "overlay", MS_NOSUID | MS_NODEV, opts) <
	    0)
		return ccvm_err_sys(err, errno, "mount overlay on %s with %s",
				    NIX_DIR, opts);
	return 0;
}

/* profiles/per-user/<user> and gcroots/per-user/<user>, the user's own
 * (what NixOS makes for each user), so nix-env and nix profile work. */
static int user_dirs(const struct guest_setup *s, struct ccvm_err *err)
{
	static const char *const parents[] = {
	    "/nix/var/nix/profiles/per-user",
	    "/nix/var/nix/gcroots/per-user",
	};
	if (s->uid == 0)
		return 0;
	for (size_t i = 0; i < ARRAY_LEN(parents); i++) {
		int r = util_mkdir_p(parents[i], 0755);
		if (r < 0)
			return ccvm_err_sys(err, -r, "mkdir %s", parents[i]);
		autofree char *d = util_path_join(parents[i], s->user);
		if (!d)
			return ccvm_err_sys(err, errno, "%s/%s", parents[i],
					    s->user);
		if (mkdir(d, 0755) < 0 && errno != EEXIST)
			return ccvm_err_sys(err, errno, "mkdir %s", d);
		if (fchownat(AT_FDCWD, d, s->uid, s->gid, AT_SYMLINK_NOFOLLOW) <
		    0)
			return ccvm_err_sys(err, errno, "chown %s", d);
	}
	return 0;
}

static int start_daemon(struct ccvm_err *err)
{
	int log =
	    open(NIX_DAEMON_LOG,
		 O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (log < 0)
		return ccvm_err_sys(err, errno, "%s", NIX_DAEMON_LOG);
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(log);
		return ccvm_err_sys(err, e, "fork for %s", NIX_DAEMON);
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (in < 0 || dup2(in, 0) < 0 || dup2(log, 1) < 0 ||
		    dup2(log, 2) < 0)
			_exit(126);
		char *const argv[] = {"nix-daemon", NULL};
		char *const envp[] = {"PATH=" ENV_DEFAULT_PATH, "HOME=/root",
				      "LANG=C.UTF-8", NULL};
		execve(NIX_DAEMON, argv, envp);
		dprintf(2, "exec %s: %s\n", NIX_DAEMON, strerror(errno));
		_exit(127);
	}
	close(log);
	daemon_pid = pid;
	return 0;
}

int nix_start(const struct guest_setup *s, struct ccvm_err *err)
{
	if (!nix_present())
		return 0;
	long long t0 = util_now_ms();
	int r;
	if (s->uid >= NIX_BUILD_UID_MIN && s->uid <= NIX_BUILD_UID_MAX)
		glog_always("nix: the agent's uid %u is also a Nix build "
			    "user's: builds will fail",
			    (unsigned)s->uid);
	if (s->scratch && (r = mount_on_scratch(err)) < 0)
		return r;
	if ((r = user_dirs(s, err)) < 0 || (r = start_daemon(err)) < 0)
		return r;
	glog("nix: store %s, daemon pid %d started in %lld ms",
	     s->scratch ? "on the scratch disk" : "in RAM", (int)daemon_pid,
	     util_now_ms() - t0);
	return 0;
}

static bool socket_accepts(void)
{
	autoclose int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	if (fd < 0)
		return false;
	util_strlcpy(sa.sun_path, NIX_SOCKET, sizeof(sa.sun_path));
	return connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
}

int nix_wait_ready(int timeout_ms, struct ccvm_err *err)
{
	if (daemon_pid < 0)
		return 0;
	long long t0 = util_now_ms();
	struct stat st;
	for (;;) {
		if (stat(NIX_SOCKET, &st) == 0 && S_ISSOCK(st.st_mode) &&
		    socket_accepts()) {
			glog("nix: daemon ready after %lld ms",
			     util_now_ms() - t0);
			return 0;
		}
		int status;
		if (waitpid(daemon_pid, &status, WNOHANG) == daemon_pid) {
			daemon_pid = -1;
			return ccvm_err_set(err, ECHILD,
					    "nix-daemon exited (status 0x%x) "
					    "before it was ready; see %s",
					    (unsigned)status, NIX_DAEMON_LOG);
		}
		if (util_now_ms() - t0 > timeout_ms)
			return ccvm_err_set(err, ETIMEDOUT,
					    "nix-daemon not ready after %d ms",
					    timeout_ms);
		usleep(20000);
	}
}
