#define _GNU_SOURCE
#include "vm/scratch.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/dm-ioctl.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "glog.h"
#include "mount.h"
#include "util.h"

#define DM_BUF_SIZE  16384
#define KEY_HEX_MAX  512
#define MKFS_OUT_MAX 1024

int scratchfs_crypt_params(char *out, size_t n, const uint8_t *key,
			   size_t keylen, unsigned major, unsigned minor)
{
	static const char hex[] = "0123456789abcdef";
	if (!key || keylen == 0 || keylen * 2 > KEY_HEX_MAX)
		return -EINVAL;
	size_t o = 0;
	int k = snprintf(out, n, "%s ", SCRATCH_CIPHER);
	if (k < 0 || (size_t)k >= n)
		goto too_long;
	o = (size_t)k;
	if (o + keylen * 2 >= n)
		goto too_long;
	for (size_t i = 0; i < keylen; i++) {
		out[o++] = hex[key[i] >> 4];
		out[o++] = hex[key[i] & 0xf];
	}
	k = snprintf(out + o, n - o,
		     " 0 %u:%u 0 2 no_read_workqueue no_write_workqueue", major,
		     minor);
	if (k < 0 || (size_t)k >= n - o)
		goto too_long;
	return 0;
too_long:
	if (n)
		explicit_bzero(out, n);
	return -ENAMETOOLONG;
}

int scratchfs_sectors(uint64_t bytes, uint64_t *out)
{
	if (bytes == 0 || bytes % 4096)
		return -EINVAL;
	*out = bytes / 512;
	return 0;
}

/* --- device-mapper ioctls ------------------------------------------------ */

/* One ioctl buffer: the header, then the payload.  Static (not on the
 * stack) so that nothing of the key lingers in stack frames; wiped after
 * every use. */
static union {
	struct dm_ioctl io;
	uint8_t raw[DM_BUF_SIZE];
} dmbuf;

static struct dm_ioctl *dm_init(uint32_t flags)
{
	explicit_bzero(&dmbuf, sizeof(dmbuf));
	struct dm_ioctl *io = &dmbuf.io;
	io->version[0] = DM_VERSION_MAJOR;
	io->version[1] = 0;
	io->version[2] = 0;
	io->data_size = sizeof(dmbuf);
	io->data_start = sizeof(*io);
	io->flags = flags;
	util_strlcpy(io->name, SCRATCH_DM_NAME, sizeof(io->name));
	return io;
}

static int dm_call(int ctl, unsigned long req, const char *what,
		   struct ccvm_err *err)
{
	if (ioctl(ctl, req, &dmbuf) < 0) {
		int e = errno;
		explicit_bzero(&dmbuf, sizeof(dmbuf));
		return ccvm_err_sys(err, e, "device-mapper %s of %s", what,
				    SCRATCH_DM_NAME);
	}
	return 0;
}

static void dm_remove(int ctl)
{
	dm_init(0);
	ioctl(ctl, DM_DEV_REMOVE, &dmbuf);
	explicit_bzero(&dmbuf, sizeof(dmbuf));
}

/*
 * Creates the mapping over the disk (dev) of sectors length under a fresh
 * random key; fills *mapped with the new device's number.
 */
static int dm_crypt_create(dev_t dev, uint64_t sectors, dev_t *mapped,
			   struct ccvm_err *err)
{
	autoclose int ctl = open("/dev/mapper/control", O_RDWR | O_CLOEXEC);
	if (ctl < 0)
		return ccvm_err_sys(err, errno, "/dev/mapper/control");

	struct dm_ioctl *io = dm_init(0);
	util_strlcpy(io->uuid, SCRATCH_DM_UUID, sizeof(io->uuid));
	int r = dm_call(ctl, DM_DEV_CREATE, "create", err);
	if (r < 0)
		return r;
	dev_t made = (dev_t)io->dev;

	/* The table: one crypt target over the whole disk.  The key goes
	 * straight from getrandom into the ioctl buffer's text. */
	io = dm_init(DM_SECURE_DATA_FLAG);
	io->target_count = 1;
	struct dm_target_spec *t =
	    (struct dm_target_spec *)(dmbuf.raw + io->data_start);
	t->sector_start = 0;
	t->length = sectors;
	t->next = 0;
	util_strlcpy(t->target_type, "crypt", sizeof(t->target_type));
	char *params = (char *)(t + 1);
	size_t room = sizeof(dmbuf) - (size_t)((uint8_t *)params - dmbuf.raw);
	uint8_t key[SCRATCH_KEY_BYTES];
	ssize_t got = getrandom(key, sizeof(key), 0);
	if (got != (ssize_t)sizeof(key)) {
		int e = got < 0 ? errno : EIO;
		explicit_bzero(key, sizeof(key));
		explicit_bzero(&dmbuf, sizeof(dmbuf));
		dm_remove(ctl);
		return ccvm_err_sys(err, e, "getrandom for the scratch key");
	}
	r = scratchfs_crypt_params(params, room, key, sizeof(key), major(dev),
				   minor(dev));
	explicit_bzero(key, sizeof(key));
	if (r < 0) {
		dm_remove(ctl);
		return ccvm_err_set(err, -r, "scratch: dm-crypt table");
	}
	r = dm_call(ctl, DM_TABLE_LOAD, "table load", err);
	explicit_bzero(&dmbuf, sizeof(dmbuf));
	if (r < 0) {
		dm_remove(ctl);
		return r;
	}

	/* "Resume" without DM_SUSPEND_FLAG makes the loaded table live. */
	dm_init(0);
	if ((r = dm_call(ctl, DM_DEV_SUSPEND, "resume", err)) < 0) {
		dm_remove(ctl);
		return r;
	}
	explicit_bzero(&dmbuf, sizeof(dmbuf));
	*mapped = made;
	return 0;
}

/* --- the helper: mapping, then mke2fs --------------------------------------
 */

#define MODPROBE_SYSCTL "/proc/sys/kernel/modprobe"

/*
 * Loading the table instantiates cryptd(__xts-aes-aesni), a name no
 * module provides: the kernel still runs modprobe for it twice (~0.2 s of
 * exec under TCG) before it builds the instance itself.  ccvm-init loads
 * every module it needs at boot, so autoloading is switched off (an empty
 * path) for the duration of the load and then put back.
 */
static int modprobe_path_swap(const char *val, char *old, size_t oldsz)
{
	autoclose int fd = open(MODPROBE_SYSCTL, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (old) {
		ssize_t n = util_read_all(fd, old, oldsz - 1);
		if (n < 0)
			return (int)n;
		old[n] = '\0';
		old[strcspn(old, "\n")] = '\0';
	}
	/* An empty value needs the newline to be written at all. */
	char buf[256];
	int k = snprintf(buf, sizeof(buf), "%s\n", val);
	if (k < 0 || (size_t)k >= sizeof(buf))
		return -ENAMETOOLONG;
	if (pwrite(fd, buf, (size_t)k, 0) < 0)
		return -errno;
	return 0;
}

/* Everything up to mke2fs, in the helper child.  The key lives only in
 * this process's memory, wiped before it execs mke2fs. */
static int helper_map(struct ccvm_err *err)
{
	autoclose int disk = open(SCRATCH_DEV, O_RDONLY | O_CLOEXEC);
	if (disk < 0)
		return ccvm_err_sys(err, errno, "%s", SCRATCH_DEV);
	struct stat st;
	uint64_t bytes = 0, sectors = 0;
	if (fstat(disk, &st) < 0 || !S_ISBLK(st.st_mode))
		return ccvm_err_set(err, ENOTBLK, "%s is not a block device",
				    SCRATCH_DEV);
	if (ioctl(disk, BLKGETSIZE64, &bytes) < 0)
		return ccvm_err_sys(err, errno, "%s: BLKGETSIZE64",
				    SCRATCH_DEV);
	if (scratchfs_sectors(bytes, &sectors) < 0)
		return ccvm_err_set(err, EINVAL, "%s: unusable size %llu bytes",
				    SCRATCH_DEV, (unsigned long long)bytes);
	char old[256] = "";
	bool swapped = modprobe_path_swap("", old, sizeof(old)) == 0;
	dev_t mapped = 0;
	int r = dm_crypt_create(st.st_rdev, sectors, &mapped, err);
	if (swapped)
		modprobe_path_swap(old, NULL, 0);
	if (r < 0)
		return r;
	/* No udev here: make the /dev/mapper name ourselves. */
	if (mknod(SCRATCH_MAPPER, S_IFBLK | 0600, mapped) < 0 &&
	    errno != EEXIST)
		return ccvm_err_sys(err, errno, "mknod %s", SCRATCH_MAPPER);
	return 0;
}

static void __attribute__((noreturn)) helper(int out)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 ||
	    dup2(out, 2) < 0)
		_exit(127);
	struct ccvm_err err;
	ccvm_err_clear(&err);
	long long t0 = util_now_ms();
	/* dm-crypt, its ciphers and ext4 are not boot modules. */
	if (mnt_load_modules(MNT_MODS_REST, &err) < 0) {
		dprintf(2, "%s\n", err.msg);
		_exit(1);
	}
	if (helper_map(&err) < 0) {
		dprintf(2, "%s\n", err.msg);
		_exit(1);
	}
	/* The first line is for the log, the rest is mke2fs's. */
	dprintf(2, "dm-crypt %lld ms\n", util_now_ms() - t0);
	char *const argv[] = {
	    "mke2fs",
	    "-q",
	    "-t",
	    "ext4",
	    "-m",
	    "0",
	    "-L",
	    "scratch",
	    /* Throw-away data: a journal protects nothing that outlives
	     * a crash, and costs writes (and AES under TCG). */
	    "-O",
	    "^has_journal,^resize_inode",
	    "-E",
	    "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
	    SCRATCH_MAPPER,
	    NULL,
	};
	static char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
				     "LC_ALL=C", NULL};
	execve(SCRATCH_MKE2FS, argv, envp);
	dprintf(2, "cannot execute %s: %s\n", SCRATCH_MKE2FS, strerror(errno));
	_exit(127);
}

static pid_t helper_pid = -1;
static int helper_out = -1;
static long long helper_t0;

int scratchfs_start(struct ccvm_err *err)
{
	if (access("/sys/block/vdb", F_OK) < 0)
		return 0; /* no scratch disk attached */
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return ccvm_err_sys(err, errno, "pipe");
	helper_t0 = util_now_ms();
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(pfd[0]);
		close(pfd[1]);
		return ccvm_err_sys(err, e, "fork");
	}
	if (pid == 0) {
		close(pfd[0]);
		helper(pfd[1]);
	}
	close(pfd[1]);
	helper_pid = pid;
	helper_out = pfd[0];
	return 1;
}

/* Waits for the helper; fills out with the first bytes it wrote. */
static int helper_wait(char *out, size_t outsz, int *status,
		       struct ccvm_err *err)
{
	size_t len = 0;
	for (;;) {
		char tmp[512];
		ssize_t n = read(helper_out, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		size_t take = (size_t)n;
		if (take > outsz - 1 - len)
			take = outsz - 1 - len; /* bounded: drain the rest */
		memcpy(out + len, tmp, take);
		len += take;
	}
	out[len] = '\0';
	close(helper_out);
	helper_out = -1;
	pid_t w;
	do
		w = waitpid(helper_pid, status, 0);
	while (w < 0 && errno == EINTR);
	helper_pid = -1;
	if (w < 0)
		return ccvm_err_sys(err, errno, "scratch: waitpid");
	return 0;
}

/* --- mounts -----------------------------------------------------------------
 */

static int mount_all(const struct guest_setup *s, struct ccvm_err *err)
{
	const unsigned long nsd = MS_NOSUID | MS_NODEV | MS_NOATIME;
	if (mkdir(SCRATCH_FS, 0700) < 0 && errno != EEXIST)
		return ccvm_err_sys(err, errno, "mkdir %s", SCRATCH_FS);
	/* noinit_itable: the inode tables stay as they are.  A fresh inode
	 * is written whole, so nothing reads them; zeroing them in the
	 * background would encrypt and write ~1.6% of the disk for
	 * nothing. */
	if (mount(SCRATCH_MAPPER, SCRATCH_FS, "ext4", nsd, "noinit_itable") < 0)
		return ccvm_err_sys(err, errno, "mount %s on %s",
				    SCRATCH_MAPPER, SCRATCH_FS);
	autofree char *user_dir = util_path_join(SCRATCH_FS, SCRATCH_USER_DIR);
	if (!user_dir)
		return ccvm_err_sys(err, errno, "%s", SCRATCH_FS);
	if (mkdir(user_dir, 0755) < 0 && errno != EEXIST)
		return ccvm_err_sys(err, errno, "mkdir %s", user_dir);
	if (chown(user_dir, s->uid, s->gid) < 0)
		return ccvm_err_sys(err, errno, "chown %s", user_dir);
	if (mkdir(SCRATCH_MOUNT, 0755) < 0 && errno != EEXIST)
		return ccvm_err_sys(err, errno, "mkdir %s", SCRATCH_MOUNT);
	if (mount(user_dir, SCRATCH_MOUNT, NULL, MS_BIND, NULL) < 0)
		return ccvm_err_sys(err, errno, "bind %s on %s", user_dir,
				    SCRATCH_MOUNT);
	if (mount(NULL, SCRATCH_MOUNT, NULL, MS_REMOUNT | MS_BIND | nsd, NULL) <
	    0)
		return ccvm_err_sys(err, errno, "remount %s nosuid,nodev",
				    SCRATCH_MOUNT);
	return 0;
}

int scratchfs_finish(const struct guest_setup *s, struct ccvm_err *err)
{
	if (helper_pid < 0) {
		if (!s->scratch)
			return 0;
		return ccvm_err_set(err, ENODEV,
				    "scratch disk asked for (SETUP scratch=1) "
				    "but %s is missing",
				    SCRATCH_DEV);
	}
	char out[MKFS_OUT_MAX];
	int st = 0, r = helper_wait(out, sizeof(out), &st, err);
	if (r < 0)
		return r;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		char shown[256];
		util_escape(shown, sizeof(shown), out, false);
		return ccvm_err_set(err, EIO, "scratch disk set-up failed: %s",
				    shown);
	}
	if (!s->scratch)
		return 0; /* formatted but not asked for: leave it unused */
	long long t1 = util_now_ms();
	if ((r = mount_all(s, err)) < 0)
		return r;
	out[strcspn(out, "\n")] = '\0';
	glog("scratch: %s, mke2fs done %lld ms after start, mounted in %lld "
	     "ms",
	     out, t1 - helper_t0, util_now_ms() - t1);
	return 0;
}
