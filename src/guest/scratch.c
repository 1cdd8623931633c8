#define _GNU_SOURCE
#include "scratch.h"

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

#define DEV_WAIT_MS  5000
#define DM_BUF_SIZE  16384
#define KEY_HEX_MAX  512
#define MKFS_OUT_MAX 1024

int scratch_crypt_params(char *out, size_t n, const uint8_t *key, size_t keylen,
			 unsigned major, unsigned minor)
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

int scratch_sectors(uint64_t bytes, uint64_t *out)
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
	r = scratch_crypt_params(params, room, key, sizeof(key), major(dev),
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

/* --- mke2fs -----------------------------------------------------------------
 */

static int run_mkfs(const char *dev, struct ccvm_err *err)
{
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
	    "^has_journal",
	    "-E",
	    "lazy_itable_init=1,lazy_journal_init=1,nodiscard",
	    (char *)dev,
	    NULL,
	};
	static char *const envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
				     "LC_ALL=C", NULL};
	int pfd[2];
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return ccvm_err_sys(err, errno, "pipe");
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(pfd[0]);
		close(pfd[1]);
		return ccvm_err_sys(err, e, "fork");
	}
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (null < 0 || dup2(null, 0) < 0 || dup2(pfd[1], 1) < 0 ||
		    dup2(pfd[1], 2) < 0)
			_exit(127);
		execve(SCRATCH_MKE2FS, argv, envp);
		_exit(127);
	}
	close(pfd[1]);
	/* Bounded: keep the first MKFS_OUT_MAX bytes, drain the rest. */
	char out[MKFS_OUT_MAX + 1];
	size_t len = 0;
	for (;;) {
		char tmp[512];
		ssize_t n = read(pfd[0], tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		size_t take = (size_t)n;
		if (take > MKFS_OUT_MAX - len)
			take = MKFS_OUT_MAX - len;
		memcpy(out + len, tmp, take);
		len += take;
	}
	out[len] = '\0';
	close(pfd[0]);
	int st;
	pid_t w;
	do
		w = waitpid(pid, &st, 0);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return ccvm_err_sys(err, errno, "waitpid %s", SCRATCH_MKE2FS);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return 0;
	char shown[256];
	util_escape(shown, sizeof(shown), out, false);
	return ccvm_err_set(
	    err, EIO, "%s %s failed (status %d): %s", SCRATCH_MKE2FS, dev,
	    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st), shown);
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

int scratch_setup(const struct guest_setup *s, struct ccvm_err *err)
{
	long long t0 = util_now_ms();
	int r = mnt_wait_path(SCRATCH_DEV, DEV_WAIT_MS, err);
	if (r < 0)
		return r;
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
	if (scratch_sectors(bytes, &sectors) < 0)
		return ccvm_err_set(err, EINVAL, "%s: unusable size %llu bytes",
				    SCRATCH_DEV, (unsigned long long)bytes);

	dev_t mapped = 0;
	if ((r = dm_crypt_create(st.st_rdev, sectors, &mapped, err)) < 0)
		return r;
	/* No udev here: make the /dev/mapper name ourselves. */
	if (mknod(SCRATCH_MAPPER, S_IFBLK | 0600, mapped) < 0 &&
	    errno != EEXIST)
		return ccvm_err_sys(err, errno, "mknod %s", SCRATCH_MAPPER);
	long long t1 = util_now_ms();
	if ((r = run_mkfs(SCRATCH_MAPPER, err)) < 0)
		return r;
	long long t2 = util_now_ms();
	if ((r = mount_all(s, err)) < 0)
		return r;
	glog("scratch: %llu MiB, dm-crypt %lld ms, mke2fs %lld ms, mount %lld "
	     "ms",
	     (unsigned long long)(bytes >> 20), t1 - t0, t2 - t1,
	     util_now_ms() - t2);
	return 0;
}
