/*
 * virtiofsd for the launch directory, unprivileged (see vfs.h).
 *
 * QEMU 7.2's C virtiofsd expects to run as root: it sandboxes itself
 * (mount, pid and net namespaces, pivot_root into the shared directory,
 * seccomp, a capability allowlist) and switches its effective ids to each
 * request's.  We give it that world without privilege:
 *
 *  - a user namespace where the host user keeps its own uid and gid (so
 *    the guest sees the files as the user's, and git trusts them), with
 *    every capability of that namespace raised as ambient so they survive
 *    execve under a non-zero uid.  Those capabilities reach only what the
 *    namespace owns: the host user's own files, nothing more.
 *  - a seccomp filter (under virtiofsd's own) that makes setgroups,
 *    setresuid and setresgid succeed without effect: in a namespace with
 *    one mapped id they could only fail, and every file the guest creates
 *    is owned by the host user anyway, as with 9p's security_model=none.
 *    Permissions are checked by the guest kernel (virtiofs mounts with
 *    default_permissions).
 *  - a second filter (nosuid.h) that refuses any mode with S_ISUID or
 *    S_ISGID, so no file the guest makes or changes is setuid on the host.
 *  - read-only mode: a recursive read-only bind of the directory over
 *    itself in the namespace's mount table, so virtiofsd cannot write
 *    there whatever the guest asks.
 */
#define _GNU_SOURCE
#include "share/vfs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/mount.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sys/nosuid.h"
#include "sys/procs.h"
#include "sys/spawn.h"
#include "util.h"

#if defined(__x86_64__)
#define VFS_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define VFS_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "vfs.c: unknown seccomp architecture"
#endif

const char *vfs_find(const char **why)
{
	const char *env = getenv(VFS_ENV_DAEMON);
	const char *bin = VFS_DAEMON_PATH;
	if (env) {
		if (!*env || !strcmp(env, "none")) {
			*why = VFS_ENV_DAEMON " is \"none\"";
			return NULL;
		}
		bin = env;
	}
	if (bin[0] != '/' || access(bin, X_OK) < 0) {
		*why = env ? VFS_ENV_DAEMON " names no executable file"
			   : VFS_DAEMON_PATH " is not installed (Debian "
					     "package qemu-system-common)";
		return NULL;
	}
	*why = NULL;
	return bin;
}

int vfs_id_map(unsigned id, char *buf, size_t n)
{
	int len = snprintf(buf, n, "%u %u 1\n", id, id);
	return len < 0 || (size_t)len >= n ? -ENAMETOOLONG : len;
}

/* dir as one virtiofsd -o value: ',' separates options and '\' escapes,
 * so both get a backslash. */
static char *source_opt(const char *dir)
{
	size_t n = strlen(dir);
	char *out = malloc(sizeof("source=") + 2 * n);
	if (!out)
		return NULL;
	size_t o = 0;
	memcpy(out, "source=", 7);
	o = 7;
	for (const char *p = dir; *p; p++) {
		if (*p == ',' || *p == '\\')
			out[o++] = '\\';
		out[o++] = *p;
	}
	out[o] = '\0';
	return out;
}

void vfs_argv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

int vfs_argv(const char *bin, const char *dir, bool debug, bool cached,
	     char ***out, struct ccvm_err *err)
{
	for (const unsigned char *p = (const unsigned char *)dir; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return ccvm_err_set(err, EINVAL,
					    "virtiofs: the directory's path "
					    "has a control character");
	/*
	 * When the host reports its changes to the guest (cached: watch.h,
	 * docs/share.md): cache=always with timeout=VFS_CACHED_TIMEOUT, so
	 * the guest keeps names, attributes, directory listings and file
	 * pages, and drops them when told.  Otherwise cache=auto with
	 * timeout=0: pages are dropped at every open (close-to-open), names
	 * and attributes never kept: every lookup and stat asks us, and an
	 * edit on the host is seen at once.  bench/README.md has the
	 * measurements.
	 * --rlimit-nofile=0: raising the limit needs a privilege we lack.
	 * --thread-pool-size=0: requests are served on the queue's thread,
	 * without a hand-off to a pool.
	 */
	const char *fixed[] = {
	    "-o",
	    cached ? "cache=always" : "cache=auto",
	    "-o",
	    cached ? "timeout=" VFS_CACHED_TIMEOUT : "timeout=0",
	    "-o",
	    "announce_submounts",
	    "--rlimit-nofile=0",
	    "--thread-pool-size=0",
	    "-o",
	    debug ? "log_level=info" : "log_level=err",
	};
	size_t n = 2 + 2 + ARRAY_LEN(fixed);
	char **v = calloc(n + 1, sizeof(*v));
	if (!v)
		return ccvm_err_sys(err, ENOMEM, "virtiofsd argv");
	size_t i = 0;
	v[i++] = strdup(bin);
	v[i++] = util_asprintf("--fd=%d", VFS_CHILD_LISTEN_FD);
	v[i++] = strdup("-o");
	v[i++] = source_opt(dir);
	for (size_t k = 0; k < ARRAY_LEN(fixed); k++)
		v[i++] = strdup(fixed[k]);
	for (size_t k = 0; k < n; k++) {
		if (!v[k]) {
			vfs_argv_free(v);
			return ccvm_err_sys(err, ENOMEM, "virtiofsd argv");
		}
	}
	*out = v;
	return 0;
}

/* --- the child: set up the namespace, then exec ----------------------- */

/* What the pre-exec hook needs (spawn.h): prepared before the fork. */
struct child_plan {
	const char *dir;
	bool writable;
	char uid_map[32], gid_map[32];
};

static int write_proc(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, s, strlen(s));
	int e = errno;
	close(fd);
	errno = e;
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

int vfs_unshare_self(const char *uid_map, const char *gid_map,
		     const char **step)
{
	/* A process writes its own maps only while dumpable (procs.h
	 * turned that off): briefly on, with no secret left to show. */
	procs_forget_secrets();
	*step = "unshare(user, mount namespaces)";
	if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
		return -1;
	*step = "PR_SET_DUMPABLE";
	if (prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) < 0)
		return -1;
	*step = "/proc/self/setgroups";
	if (write_proc("/proc/self/setgroups", "deny") < 0)
		return -1;
	*step = "/proc/self/uid_map";
	if (write_proc("/proc/self/uid_map", uid_map) < 0)
		return -1;
	*step = "/proc/self/gid_map";
	if (write_proc("/proc/self/gid_map", gid_map) < 0)
		return -1;
	*step = "PR_SET_DUMPABLE";
	return prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

static int raise_ambient_caps(void)
{
	struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
	struct __user_cap_data_struct d[_LINUX_CAPABILITY_U32S_3];
	if (syscall(SYS_capget, &h, d) < 0)
		return -1;
	for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		d[i].inheritable = d[i].permitted;
	if (syscall(SYS_capset, &h, d) < 0)
		return -1;
	for (int c = 0; c < 64; c++) {
		if (!(d[c / 32].permitted & (1u << (c % 32))))
			continue;
		if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, c, 0, 0) < 0 &&
		    errno != EINVAL)
			return -1;
	}
	return 0;
}

static int id_calls_succeed(void)
{
	struct sock_filter f[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		     offsetof(struct seccomp_data, arch)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, VFS_AUDIT_ARCH, 1, 0),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		     offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_setgroups, 3, 0),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_setresuid, 2, 0),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_setresgid, 1, 0),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | 0),
	};
	struct sock_fprog prog = {.len = ARRAY_LEN(f), .filter = f};
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog);
}

static int bind_read_only(const char *dir)
{
	if (mount(dir, dir, NULL, MS_BIND | MS_REC, NULL) < 0)
		return -1;
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
	return (int)syscall(SYS_mount_setattr, AT_FDCWD, dir, AT_RECURSIVE,
			    &attr, sizeof(attr));
}

/*
 * In the child, after the fd map and before execve (spawn.h's pre-exec
 * hook).  Ids and capabilities change only within what PR_SET_PDEATHSIG
 * survives (a new user namespace, a subset of capabilities), so
 * virtiofsd still dies with ccvm, even on SIGKILL.
 */
static int child_setup(void *arg, const char **step)
{
	const struct child_plan *p = arg;
	if (vfs_unshare_self(p->uid_map, p->gid_map, step) < 0)
		return -1;
	*step = "making mounts private";
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return -1;
	*step = "read-only bind of the directory";
	if (!p->writable && bind_read_only(p->dir) < 0)
		return -1;
	*step = "ambient capabilities";
	if (raise_ambient_caps() < 0)
		return -1;
	*step = "seccomp filter";
	if (id_calls_succeed() < 0)
		return -1;
	*step = "seccomp filter (no setuid files)";
	return nosuid_install(false);
}

/* --- the parent ---------------------------------------------------------- */

/* A listening socket and a connected client for it.  The path exists only
 * inside this function, in a fresh 0700 directory. */
static int socket_pair_via_path(int *listen_out, int *client_out,
				struct ccvm_err *err)
{
	const char *base = getenv("XDG_RUNTIME_DIR");
	if (!base || base[0] != '/' || access(base, W_OK | X_OK) < 0)
		base = "/tmp";
	autofree char *tmpl = util_path_join(base, "ccvm-vfs.XXXXXX");
	if (!tmpl)
		return ccvm_err_sys(err, ENOMEM, "virtiofs socket directory");
	if (!mkdtemp(tmpl)) /* mode 0700 */
		return ccvm_err_sys(err, errno, "virtiofs: mkdtemp %s", tmpl);
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int r = 0;
	autoclose int lfd = -1;
	autoclose int cfd = -1;
	if (snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/sock", tmpl) >=
	    (int)sizeof(sa.sun_path)) {
		r = ccvm_err_set(err, ENAMETOOLONG,
				 "virtiofs: socket path under %s is too long",
				 base);
		goto out;
	}
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || cfd < 0) {
		r = ccvm_err_sys(err, errno, "virtiofs: socket");
		goto out;
	}
	if (bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 1) < 0 ||
	    connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = ccvm_err_sys(err, errno, "virtiofs: socket %s",
				 sa.sun_path);
		goto out;
	}
out:
	unlink(sa.sun_path);
	rmdir(tmpl);
	if (r == 0) {
		*listen_out = steal_fd(&lfd);
		*client_out = steal_fd(&cfd);
	}
	return r;
}

int vfs_start(const char *bin, const char *dir, bool writable, bool cached,
	      int errfd, struct vfs_daemon *d, struct ccvm_err *err)
{
	char **argv = NULL;
	int r = vfs_argv(bin, dir, errfd >= 0, cached, &argv, err);
	if (r < 0)
		return r;
	int lfd = -1, cfd = -1;
	struct child_plan p = {.dir = dir, .writable = writable};
	if (vfs_id_map(getuid(), p.uid_map, sizeof(p.uid_map)) < 0 ||
	    vfs_id_map(getgid(), p.gid_map, sizeof(p.gid_map)) < 0) {
		r = ccvm_err_set(err, EINVAL, "virtiofs: id map");
		goto out;
	}
	if ((r = socket_pair_via_path(&lfd, &cfd, err)) < 0)
		goto out;
	static const char *const envp[] = {"PATH=/usr/bin:/bin", "LC_ALL=C",
					   NULL};
	int out_fd = errfd >= 0 ? errfd : SPAWN_NULL;
	const struct spawn_fd fds[] = {{0, SPAWN_NULL},
				       {1, out_fd},
				       {2, out_fd},
				       {VFS_CHILD_LISTEN_FD, lfd}};
	/* Its own process group: the terminal's Ctrl-C is ccvm's to
	 * handle.  virtiofsd holds a file for every inode the guest knows,
	 * and the guest keeps what it caches: as many as the user may
	 * have (nofile_max). */
	struct spawn_opts o = {.argv = (const char *const *)argv,
			       .envp = envp,
			       .fds = fds,
			       .n_fds = ARRAY_LEN(fds),
			       .new_pgrp = true,
			       .nofile_max = true,
			       .pre_exec = child_setup,
			       .pre_exec_arg = &p};
	struct spawn_child c;
	struct ccvm_err e = {0};
	r = spawn_start(&o, &c, &e);
	if (r < 0) {
		r = ccvm_err_set(err, -r, "virtiofs: starting virtiofsd: %s",
				 e.msg);
		goto out;
	}
	d->pid = c.pid;
	d->qemu_fd = cfd;
	cfd = -1;
	r = 0;
out:
	if (lfd >= 0)
		close(lfd);
	if (cfd >= 0)
		close(cfd);
	vfs_argv_free(argv);
	return r;
}

long vfs_files_max(void)
{
	struct rlimit r;
	if (getrlimit(RLIMIT_NOFILE, &r) < 0)
		return 0;
	return r.rlim_max == RLIM_INFINITY ? LONG_MAX : (long)r.rlim_max;
}

/* Entries of /proc/<pid>/fd, or -errno. */
static long count_fds(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(path);
	if (!d)
		return -errno;
	long n = 0;
	struct dirent *de;
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

long vfs_open_files(const struct vfs_daemon *d)
{
	if (d->pid <= 0)
		return -ESRCH;
	/* virtiofsd serves from a child in its own pid namespace. */
	char path[80], buf[64] = "";
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)d->pid,
		 (int)d->pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		buf[n > 0 ? n : 0] = '\0';
	}
	long child;
	char *end = buf;
	child = strtol(buf, &end, 10);
	long a = count_fds(d->pid);
	if (end == buf || child <= 0)
		return a;
	long b = count_fds((pid_t)child);
	return b < 0 ? a : (a < 0 ? b : a + b);
}

void vfs_stop(struct vfs_daemon *d)
{
	if (d->qemu_fd >= 0) {
		close(d->qemu_fd);
		d->qemu_fd = -1;
	}
	if (d->pid > 0) {
		/* Its namespace's processes die with it (PDEATHSIG). */
		kill(d->pid, SIGKILL);
		while (waitpid(d->pid, NULL, 0) < 0 && errno == EINTR)
			;
		d->pid = 0;
	}
}
