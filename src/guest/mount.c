#define _GNU_SOURCE
#include "mount.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "glog.h"
#include "setup/user.h"
#include "util.h"

#define STAGE	    "/.ccvm"
#define NEWROOT	    "/newroot"
#define MODLIST_MAX (64 * 1024)

static int do_mount(const char *src, const char *dst, const char *type,
		    unsigned long flags, const char *opts, struct ccvm_err *err)
{
	if (mount(src, dst, type, flags, opts) < 0)
		return ccvm_err_sys(err, errno, "mount %s (%s) on %s%s%s", src,
				    type ? type : "bind/move", dst,
				    opts ? " with " : "", opts ? opts : "");
	return 0;
}

static int mkdir_if(const char *path, mode_t mode, struct ccvm_err *err)
{
	if (mkdir(path, mode) < 0 && errno != EEXIST)
		return ccvm_err_sys(err, errno, "mkdir %s", path);
	return 0;
}

static void console_on_stdio(void)
{
	int fd = open("/dev/console", O_RDWR | O_NOCTTY);
	if (fd < 0)
		return;
	for (int i = 0; i < 3; i++)
		if (fd != i)
			dup2(fd, i);
	if (fd > 2)
		close(fd);
}

int mnt_early(struct ccvm_err *err)
{
	static const struct {
		const char *src, *dst, *type;
	} m[] = {
	    {"devtmpfs", "/dev", "devtmpfs"},
	    {"proc", "/proc", "proc"},
	    {"sysfs", "/sys", "sysfs"},
	};
	for (size_t i = 0; i < ARRAY_LEN(m); i++) {
		int r = mkdir_if(m[i].dst, 0755, err);
		if (r < 0)
			return r;
		if (mount(m[i].src, m[i].dst, m[i].type, MS_NOSUID | MS_NOEXEC,
			  NULL) < 0 &&
		    errno != EBUSY)
			return ccvm_err_sys(err, errno, "mount %s on %s",
					    m[i].type, m[i].dst);
	}
	/* An initramfs without /dev/console leaves us no stdio. */
	console_on_stdio();
	return 0;
}

bool mnt_cmdline_has(const char *name)
{
	/* /proc files report size 0: util_read_file does not fit. */
	char cmd[4096];
	autoclose int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = util_read_all(fd, cmd, sizeof(cmd) - 1);
	if (n < 0)
		return false;
	cmd[n] = '\0';
	for (char *save = NULL, *w = strtok_r(cmd, " \t\n", &save); w;
	     w = strtok_r(NULL, " \t\n", &save))
		if (!strcmp(w, name) || (!strncmp(w, name, strlen(name)) &&
					 !strcmp(w + strlen(name), "=1")))
			return true;
	return false;
}

static int module_dir = -1;
static char *module_list; /* load.list, read once */

bool mnt_module_is_boot(const char *file)
{
	static const char *const boot[] = {
	    "virtio_pci_legacy_dev.ko",
	    "virtio_pci_modern_dev.ko",
	    "virtio_ring.ko",
	    "virtio.ko",
	    "virtio_pci.ko",
	    "virtio_blk.ko",
	    "virtio_console.ko",
	    "9pnet.ko",
	    "9pnet_virtio.ko",
	    "netfs.ko",
	    "fscache.ko",
	    "9p.ko",
	    "fuse.ko",
	    "virtiofs.ko",
	    "overlay.ko",
	    "squashfs.ko",
	};
	for (size_t i = 0; i < ARRAY_LEN(boot); i++)
		if (!strcmp(file, boot[i]))
			return true;
	return false;
}

bool mnt_module_in(enum mnt_modset set, const char *file)
{
	static const char *const net[] = {
	    "crc32c-intel.ko", "nfnetlink.ko",	    "libcrc32c.ko",
	    "nf_tables.ko",    "nf_defrag_ipv6.ko", "nf_defrag_ipv4.ko",
	    "nf_conntrack.ko", "nf_nat.ko",	    "nft_chain_nat.ko",
	    "nft_redir.ko",
	};
	switch (set) {
	case MNT_MODS_BOOT:
		return mnt_module_is_boot(file);
	case MNT_MODS_LINK:
		return !strcmp(file, "dummy.ko");
	case MNT_MODS_NET:
		for (size_t i = 0; i < ARRAY_LEN(net); i++)
			if (!strcmp(file, net[i]))
				return true;
		return false;
	case MNT_MODS_REST:
		return !mnt_module_is_boot(file);
	}
	return false;
}

int mnt_modules_open(struct ccvm_err *err)
{
	module_dir = open(MNT_MODULE_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (module_dir < 0) {
		if (errno == ENOENT)
			return 0; /* everything is built in */
		return ccvm_err_sys(err, errno, "%s", MNT_MODULE_DIR);
	}
	return util_read_file(MNT_MODULE_DIR "/load.list", MODLIST_MAX,
			      &module_list, NULL, err);
}

int mnt_load_modules(enum mnt_modset set, struct ccvm_err *err)
{
	if (module_dir < 0 || !module_list)
		return 0;
	autofree char *list = strdup(module_list);
	if (!list)
		return ccvm_err_sys(err, ENOMEM, "load.list");
	long long t0 = util_now_ms();
	unsigned n = 0;
	for (char *save = NULL, *w = strtok_r(list, "\n", &save); w;
	     w = strtok_r(NULL, "\n", &save)) {
		while (*w == ' ' || *w == '\t')
			w++;
		if (*w == '\0' || *w == '#')
			continue;
		if (strchr(w, '/'))
			return ccvm_err_set(
			    err, EINVAL, "load.list: '%s' is not a file name",
			    w);
		if (!mnt_module_in(set, w))
			continue;
		autoclose int fd = openat(module_dir, w, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return ccvm_err_sys(err, errno, "module %s", w);
		/* dummy would make a dummy0 nobody uses; ccvm-net makes its
		 * own interface. */
		const char *params =
		    strcmp(w, "dummy.ko") ? "" : "numdummies=0";
		if (syscall(SYS_finit_module, fd, params, 0) < 0 &&
		    errno != EEXIST)
			return ccvm_err_sys(err, errno, "loading module %s", w);
		n++;
	}
	static const char *const names[] = {"boot", "link", "network", "other"};
	glog("loaded %u %s modules in %lld ms", n, names[set],
	     util_now_ms() - t0);
	return 0;
}

int mnt_wait_path(const char *path, int timeout_ms, struct ccvm_err *err)
{
	long long deadline = util_now_ms() + timeout_ms;
	while (access(path, F_OK) < 0) {
		if (util_now_ms() > deadline)
			return ccvm_err_set(err, ETIMEDOUT,
					    "%s did not appear within %d ms",
					    path, timeout_ms);
		struct timespec ts = {0, 5 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return 0;
}

/* Frees the initramfs: everything on its file system but keep, the
 * modules (lib/), which mnt_load_modules still reads through its fd, and
 * init, ccvm-init itself: mapped while it runs anyway, and bound as the
 * clipboard stand-ins (paste.h), which a deleted file cannot be. */
static void free_initramfs(const char *keep)
{
	struct stat root;
	if (stat("/", &root) < 0)
		return;
	DIR *d = opendir("/");
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d)) != NULL) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    !strcmp(de->d_name, keep) || !strcmp(de->d_name, "lib") ||
		    !strcmp(de->d_name, "init"))
			continue;
		char path[NAME_MAX + 2];
		snprintf(path, sizeof(path), "/%s", de->d_name);
		struct stat st;
		if (lstat(path, &st) == 0 && st.st_dev == root.st_dev)
			util_rm_rf(path); /* best effort */
	}
	closedir(d);
}

/*
 * What nearly every session reads from the root first: the dynamic loader
 * and libc (every dynamically linked program, the agent's included) and
 * the account files user_create edits.  Under TCG each cold block of the
 * root is a virtio-blk read and its decompression; a child pages these in
 * as soon as the root is mounted, beside ccvm-init's own work and its
 * waits for the host and virtiofsd, so they are cached when wanted
 * (bench/README.md, "Paging in what every session reads").  Paths are
 * relative to the squashfs root, whose page cache the overlay shares.
 */
static const char *const prefetch_paths[] = {
    "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "usr/lib/x86_64-linux-gnu/libc.so.6",
    "etc/passwd",
    "etc/group",
    "etc/shadow",
};

static void prefetch_start(const char *root)
{
	int dfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return;
	pid_t pid = fork(); /* reaped by the relay, like the module loader */
	if (pid == 0) {
		long long t0 = util_now_ms();
		unsigned n = 0;
		long long bytes = 0;
		for (size_t i = 0; i < ARRAY_LEN(prefetch_paths); i++) {
			int fd = openat(dfd, prefetch_paths[i],
					O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
			struct stat st;
			if (fd < 0)
				continue;
			if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
			    readahead(fd, 0, (size_t)st.st_size) == 0) {
				n++;
				bytes += st.st_size;
			}
			close(fd);
		}
		glog("prefetched %u of %zu files (%lld KiB) in %lld ms", n,
		     ARRAY_LEN(prefetch_paths), bytes / 1024,
		     util_now_ms() - t0);
		_exit(0);
	}
	if (pid < 0)
		glog_always("prefetch: fork: %s", strerror(errno));
	close(dfd);
}

int mnt_switch_root(struct ccvm_err *err)
{
	int r;
	if ((r = mnt_wait_path(MNT_ROOT_DEV, 30000, err)) < 0)
		return r;
	if ((r = mkdir_if(STAGE, 0700, err)) < 0 ||
	    (r = mkdir_if(STAGE "/lower", 0755, err)) < 0 ||
	    (r = mkdir_if(STAGE "/rw", 0755, err)) < 0 ||
	    (r = mkdir_if(NEWROOT, 0755, err)) < 0)
		return r;
	if ((r = do_mount(MNT_ROOT_DEV, STAGE "/lower", "squashfs", MS_RDONLY,
			  NULL, err)) < 0)
		return r;
	prefetch_start(STAGE "/lower");
	if ((r = do_mount("tmpfs", STAGE "/rw", "tmpfs", 0, "mode=0755", err)) <
	    0)
		return r;
	if ((r = mkdir_if(STAGE "/rw/upper", 0755, err)) < 0 ||
	    (r = mkdir_if(STAGE "/rw/work", 0755, err)) < 0)
		return r;
	if ((r = do_mount("overlay", NEWROOT, "overlay", 0,
			  "lowerdir=" STAGE "/lower,upperdir=" STAGE
			  "/rw/upper,workdir=" STAGE "/rw/work",
			  err)) < 0)
		return r;
	/* The overlay holds private clones of its layers: hide ours. */
	umount2(STAGE "/lower", MNT_DETACH);
	umount2(STAGE "/rw", MNT_DETACH);
	static const char *const moved[] = {"/dev", "/proc", "/sys"};
	for (size_t i = 0; i < ARRAY_LEN(moved); i++) {
		char dst[64];
		snprintf(dst, sizeof(dst), NEWROOT "%s", moved[i]);
		if ((r = mkdir_if(dst, 0755, err)) < 0)
			return r;
		if ((r = do_mount(moved[i], dst, NULL, MS_MOVE, NULL, err)) < 0)
			return r;
	}
	free_initramfs("newroot");
	if (chdir(NEWROOT) < 0)
		return ccvm_err_sys(err, errno, "chdir %s", NEWROOT);
	if ((r = do_mount(".", "/", NULL, MS_MOVE, NULL, err)) < 0)
		return r;
	if (chroot(".") < 0)
		return ccvm_err_sys(err, errno, "chroot %s", NEWROOT);
	if (chdir("/") < 0)
		return ccvm_err_sys(err, errno, "chdir /");
	return 0;
}

int mnt_lo_up(struct ccvm_err *err)
{
	autoclose int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return ccvm_err_sys(err, errno, "socket for lo");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	util_strlcpy(ifr.ifr_name, "lo", sizeof(ifr.ifr_name));
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return ccvm_err_sys(err, errno, "lo: SIOCGIFFLAGS");
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		return ccvm_err_sys(err, errno, "lo: SIOCSIFFLAGS");
	return 0;
}

int mnt_system(struct ccvm_err *err)
{
	int r;
	const unsigned long nsd = MS_NOSUID | MS_NODEV;
	if ((r = mkdir_if("/dev/pts", 0755, err)) < 0 ||
	    (r = mkdir_if("/dev/shm", 01777, err)) < 0)
		return r;
	if ((r = do_mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
			  "newinstance,ptmxmode=0666,mode=0620,gid=5", err)) <
	    0)
		return r;
	if (unlink("/dev/ptmx") < 0 && errno != ENOENT)
		return ccvm_err_sys(err, errno, "unlink /dev/ptmx");
	if (symlink("pts/ptmx", "/dev/ptmx") < 0)
		return ccvm_err_sys(err, errno, "symlink /dev/ptmx");
	static const char *const links[][2] = {
	    {"/proc/self/fd", "/dev/fd"},
	    {"/proc/self/fd/0", "/dev/stdin"},
	    {"/proc/self/fd/1", "/dev/stdout"},
	    {"/proc/self/fd/2", "/dev/stderr"},
	};
	for (size_t i = 0; i < ARRAY_LEN(links); i++)
		if (symlink(links[i][0], links[i][1]) < 0 && errno != EEXIST)
			return ccvm_err_sys(err, errno, "symlink %s",
					    links[i][1]);
	if ((r = do_mount("shm", "/dev/shm", "tmpfs", nsd, "mode=1777", err)) <
	    0)
		return r;
	if ((r = mkdir_if("/tmp", 01777, err)) < 0 ||
	    (r = do_mount("tmpfs", "/tmp", "tmpfs", nsd, "mode=1777", err)) < 0)
		return r;
	if ((r = mkdir_if("/run", 0755, err)) < 0 ||
	    (r = do_mount("tmpfs", "/run", "tmpfs", nsd | MS_NOEXEC,
			  "mode=0755", err)) < 0)
		return r;
	if ((r = mkdir_if("/run/lock", 01777, err)) < 0 ||
	    (r = mkdir_if("/run/ccvm", 0700, err)) < 0)
		return r;
	if (sethostname("ccvm", 4) < 0)
		return ccvm_err_sys(err, errno, "sethostname");
	/* So that sudo and friends resolve the host name. */
	static const char hosts[] =
	    "127.0.0.1\tlocalhost\n"
	    "127.0.1.1\tccvm\n"
	    "::1\tlocalhost ip6-localhost ip6-loopback\n";
	autoclose int hfd =
	    open("/etc/hosts",
		 O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (hfd < 0 || util_write_all(hfd, hosts, sizeof(hosts) - 1) < 0)
		return ccvm_err_sys(err, errno, "/etc/hosts");
	return 0;
}

/* The host's file systems mounted writable (the share, the projects
 * directory): a shared mapping can leave dirty pages on them.  Nothing else
 * in the guest outlives it, so only these are flushed at the end. */
static int share_fds[2] = {-1, -1};
static bool share_fd_lost;

static void keep_for_sync(const char *path)
{
	for (size_t i = 0; i < ARRAY_LEN(share_fds); i++) {
		if (share_fds[i] >= 0)
			continue;
		share_fds[i] =
		    open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOCTTY);
		share_fd_lost = share_fd_lost || share_fds[i] < 0;
		return;
	}
	share_fd_lost = true;
}

void mnt_sync_shares(void)
{
	bool all = share_fd_lost;
	for (size_t i = 0; i < ARRAY_LEN(share_fds) && !all; i++)
		if (share_fds[i] >= 0 && syncfs(share_fds[i]) < 0)
			all = true;
	if (all)
		sync();
}

/*
 * 9p options, best first.  cache=mmap keeps the host's view coherent (the
 * user edits the same tree on the host) while allowing shared mmap, which
 * cache=none refuses; access=client lets the guest kernel check
 * permissions (QEMU's security_model=none does none).  Older kernels or
 * servers may refuse some: fall back.
 */
static const char *const p9_opts[] = {
    "cache=mmap,access=client",
    "cache=mmap",
    "",
};

int mnt_9p(const char *tag, const char *path, bool readonly,
	   struct ccvm_err *err)
{
	unsigned long flags = MS_NOSUID | MS_NODEV | (readonly ? MS_RDONLY : 0);
	int last = 0;
	for (size_t i = 0; i < ARRAY_LEN(p9_opts); i++) {
		char opts[160];
		snprintf(opts, sizeof(opts),
			 "trans=virtio,version=9p2000.L,msize=512000%s%s",
			 p9_opts[i][0] ? "," : "", p9_opts[i]);
		if (mount(tag, path, "9p", flags, opts) == 0) {
			glog("9p %s on %s (%s)", tag, path, opts);
			if (!readonly)
				keep_for_sync(path);
			return 0;
		}
		last = errno;
		glog("9p %s with %s: %s", tag, opts, strerror(last));
		if (last == ENOENT || last == ENODEV)
			break; /* no such tag or no 9p: options do not help */
	}
	return ccvm_err_sys(err, last, "mounting 9p share %s on %s", tag, path);
}

int mnt_virtiofs(const char *tag, const char *path, bool readonly,
		 struct ccvm_err *err)
{
	unsigned long flags = MS_NOSUID | MS_NODEV | (readonly ? MS_RDONLY : 0);
	if (mount(tag, path, "virtiofs", flags, NULL) < 0)
		return ccvm_err_sys(
		    err, errno, "mounting virtiofs share %s on %s", tag, path);
	glog("virtiofs %s on %s", tag, path);
	if (!readonly)
		keep_for_sync(path);
	return 0;
}

/*
 * Most answers from virtiofsd come within this (its own part of a request
 * is 10-80 us under TCG here, bench/README.md); a program looks no longer
 * than this before it sleeps, and after a look that ran out the kernel
 * looks less often (guest-kernel.patch item 8).
 */
#define FUSE_POLL_US "200"

/* Sets one of the FUSE parameters ccvm's kernel adds (guest-kernel.patch);
 * Debian's kernel has none of them. */
static void fuse_param(const char *name, const char *value)
{
	char path[96];
	snprintf(path, sizeof(path), "/sys/module/fuse/parameters/%s", name);
	autoclose int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || util_write_all(fd, value, strlen(value)) < 0)
		glog("no FUSE %s: %s", name, strerror(errno));
}

/*
 * ccvm's kernel (src/host/image/guest-kernel.patch, docs/share.md) saves
 * requests to virtiofsd when asked: a file opened with O_CREAT is created
 * without a LOOKUP first (create_nolookup), a name made in a directory
 * leaves its mode and owner cached (dir_keep_perm), close() sends no FLUSH
 * (noflush: virtiofsd's POSIX locks are off and writes go through).  A
 * program waiting for an answer looks for it in the virtqueue for up to
 * FUSE_POLL_US microseconds before it sleeps until the interrupt (poll_us).
 * async_release stays off: with poll_us, close() finds RELEASE's answer by
 * looking, where a RELEASE sent in the background is answered through the
 * interrupt and a worker, and untarring small files took a quarter longer
 * that way (bench/README.md).  When the guest keeps what it looks up
 * (the host reports its changes): the first lookup that misses in a
 * directory fills the whole directory with one READDIRPLUS (lookup_prefetch),
 * and the share sync's revalidation of a directory drops its listing too
 * (reval_drops_listing, sharesync.c).
 */
static int mnt_share(const struct guest_setup *s, const char *path,
		     bool readonly, struct ccvm_err *err)
{
	if (s->virtiofs) {
		fuse_param("create_nolookup", "Y");
		fuse_param("dir_keep_perm", "Y");
		fuse_param("noflush", "Y");
		fuse_param("poll_us", FUSE_POLL_US);
	}
	if (s->virtiofs && s->share_sync) {
		fuse_param("lookup_prefetch", "Y");
		fuse_param("reval_drops_listing", "Y");
	}
	if (s->virtiofs)
		return mnt_virtiofs(MNT_9P_CWD, path, readonly, err);
	return mnt_9p(MNT_9P_CWD, path, readonly, err);
}

int mnt_cwd(const struct guest_setup *s, struct ccvm_err *err)
{
	int r = user_mkdir_owned(s->cwd, s->home, 0755, s->uid, s->gid, err);
	if (r < 0)
		return r;
	if (s->writable)
		return mnt_share(s, s->cwd, false, err);

	const char *lower = "/run/ccvm/cwd-lower", *rw = "/run/ccvm/cwd-rw";
	if ((r = mkdir_if(lower, 0755, err)) < 0 ||
	    (r = mkdir_if(rw, 0755, err)) < 0)
		return r;
	if ((r = mnt_share(s, lower, true, err)) < 0)
		return r;
	if ((r = do_mount("tmpfs", rw, "tmpfs", MS_NOSUID | MS_NODEV,
			  "mode=0755", err)) < 0)
		return r;
	/* The overlay's root takes the upper's owner and mode: copy the
	 * host directory's so the agent can write at the top level. */
	struct stat st;
	if (stat(lower, &st) < 0)
		return ccvm_err_sys(err, errno, "stat %s", lower);
	if ((r = mkdir_if("/run/ccvm/cwd-rw/upper", 0755, err)) < 0 ||
	    (r = mkdir_if("/run/ccvm/cwd-rw/work", 0700, err)) < 0)
		return r;
	if (chown("/run/ccvm/cwd-rw/upper", st.st_uid, st.st_gid) < 0 ||
	    chmod("/run/ccvm/cwd-rw/upper", st.st_mode & 07777) < 0)
		return ccvm_err_sys(err, errno, "/run/ccvm/cwd-rw/upper");
	autofree char *opts = util_asprintf(
	    "lowerdir=%s,upperdir=%s/upper,workdir=%s/work", lower, rw, rw);
	if (!opts)
		return ccvm_err_sys(err, ENOMEM, "overlay options");
	if ((r = do_mount("overlay", s->cwd, "overlay", MS_NOSUID | MS_NODEV,
			  opts, err)) < 0)
		return r;
	umount2(lower, MNT_DETACH);
	umount2(rw, MNT_DETACH);
	return 0;
}
