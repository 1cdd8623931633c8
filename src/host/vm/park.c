/* Saved boots (park.h). */
#define _GNU_SOURCE
#include "vm/park.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/image_build.h"
#include "image/verify.h"
#include "term/say.h"
#include "vm/qemu_proc.h"
#include "vm/qmp.h"
#include "proto.h"
#include "util.h"

#include <nettle/sha2.h>

#define PAGE  4096u
#define CHUNK (2u << 20)

int snap_key(char *const argv[], int scratch_fd, char out[65],
	     struct ccvm_err *err)
{
	struct stat q, d = {0};
	if (!argv[0] || stat(argv[0], &q) < 0)
		return ccvm_err_sys(err, errno, "%s",
				    argv[0] ? argv[0] : "QEMU");
	if (scratch_fd >= 0 && fstat(scratch_fd, &d) < 0)
		return ccvm_err_sys(err, errno, "the scratch disk");
	char *buf = util_asprintf(
	    "ccvm %s protocol %d qemu %lu:%lu:%lld:%lld.%09ld scratch %lld",
	    CCVM_VERSION, PROTO_VERSION, (unsigned long)q.st_dev,
	    (unsigned long)q.st_ino, (long long)q.st_size,
	    (long long)q.st_mtim.tv_sec, q.st_mtim.tv_nsec,
	    (long long)d.st_size);
	size_t len = buf ? strlen(buf) + 1 : 0;
	for (size_t i = 0; buf && argv[i]; i++) {
		size_t n = strlen(argv[i]) + 1;
		char *nb = realloc(buf, len + n);
		if (!nb) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = nb;
		memcpy(buf + len, argv[i], n);
		len += n;
	}
	if (!buf)
		return ccvm_err_sys(err, ENOMEM, "saved boot key");
	image_sha256_hex(buf, len, out);
	free(buf);
	return 0;
}

/* All of n bytes at off, or -errno (-EIO for an early end). */
static int full_io(int fd, void *p, size_t n, uint64_t off, bool write)
{
	for (size_t done = 0; done < n;) {
		char *at = (char *)p + done;
		off_t o = (off_t)(off + done);
		ssize_t r = write ? pwrite(fd, at, n - done, o)
				  : pread(fd, at, n - done, o);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		done += (size_t)r;
	}
	return 0;
}

static int full_pread(int fd, void *p, size_t n, uint64_t off)
{
	return full_io(fd, p, n, off, false);
}

static int full_pwrite(int fd, const void *p, size_t n, uint64_t off)
{
	return full_io(fd, (void *)p, n, off, true);
}

static void path_of(struct snap *s, const char *dir, const char *key)
{
	snprintf(s->path, sizeof(s->path), "%s/boot-%s.snap", dir, key);
}

int snap_open(struct snap *s, const char *dir, const char *key,
	      uint64_t ram_len, struct ccvm_err *err)
{
	s->fd = -1;
	path_of(s, dir, key);
	int fd = open(s->path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT
			   ? 0
			   : ccvm_err_sys(err, errno, "%s", s->path);
	uint8_t h[SNAP_SUM_AT + SNAP_SUM_LEN];
	static const uint8_t none[SNAP_SUM_LEN];
	struct stat st;
	if (fstat(fd, &st) < 0 || full_pread(fd, h, sizeof(h), 0) < 0) {
		close(fd);
		return ccvm_err_set(err, EINVAL, "%s: cannot read its header",
				    s->path);
	}
	size_t m = strlen(SNAP_MAGIC);
	s->state_off = proto_get_u64(h + m);
	s->state_len = proto_get_u64(h + m + 8);
	s->ram_off = proto_get_u64(h + m + 16);
	s->ram_len = proto_get_u64(h + m + 24);
	memcpy(s->sum, h + SNAP_SUM_AT, SNAP_SUM_LEN);
	if (!memcmp(h, SNAP_MAGIC, m) && !memcmp(s->sum, none, SNAP_SUM_LEN)) {
		close(fd);
		return ccvm_err_set(err, ENOMSG,
				    "%s: made by an older ccvm (no checksum)",
				    s->path);
	}
	if (memcmp(h, SNAP_MAGIC, m) || s->state_off != SNAP_HDR_LEN ||
	    s->state_len == 0 || s->ram_off % PAGE ||
	    s->ram_off < s->state_off + s->state_len || s->ram_len != ram_len ||
	    s->ram_off + s->ram_len != (uint64_t)st.st_size) {
		close(fd);
		return ccvm_err_set(err, EINVAL, "%s: not a whole saved boot",
				    s->path);
	}
	s->fd = fd;
	return 1;
}

/* The page at p (of n bytes left) holds only zeros. */
static bool all_zero(const uint8_t *p, size_t n)
{
	static const uint8_t zero[PAGE];
	return memcmp(p, zero, n < PAGE ? n : PAGE) == 0;
}

/*
 * Copies the data of [from_off, from_off + len) of from to to at to_off +
 * the same distance, but neither the holes nor pages of zeros: they stay
 * holes (or whatever to held there: callers write into fresh files).
 */
static void hash_page(struct sha256_ctx *h, uint64_t rel, const uint8_t *p,
		      size_t n)
{
	if (!h)
		return;
	uint8_t o[8];
	proto_put_u64(o, rel);
	sha256_update(h, sizeof(o), o);
	sha256_update(h, n < PAGE ? n : PAGE, p);
}

static int copy_data(int from, uint64_t from_off, int to, uint64_t to_off,
		     uint64_t len, struct sha256_ctx *sum)
{
	uint8_t *buf = malloc(CHUNK);
	if (!buf)
		return -ENOMEM;
	int r = 0;
	uint64_t end = from_off + len;
	for (uint64_t at = from_off; at < end && r == 0;) {
		off_t d = lseek(from, (off_t)at, SEEK_DATA);
		if (d < 0) {
			r = errno == ENXIO ? 0 : -errno;
			break;
		}
		if ((uint64_t)d >= end)
			break;
		off_t h = lseek(from, d, SEEK_HOLE);
		if (h < 0) {
			r = -errno;
			break;
		}
		uint64_t stop = (uint64_t)h < end ? (uint64_t)h : end;
		for (uint64_t o = (uint64_t)d & ~(uint64_t)(PAGE - 1);
		     o < stop && r == 0;) {
			size_t n = stop - o < CHUNK ? stop - o : CHUNK;
			r = full_pread(from, buf, n, o);
			for (size_t p = 0; p < n && r == 0;) {
				/* A run of pages not all zeros, then one that
				 * is. */
				size_t q = p;
				while (q < n && !all_zero(buf + q, n - q))
					q += PAGE;
				if (q > n)
					q = n;
				for (size_t k = p; k < q; k += PAGE)
					hash_page(sum, o - from_off + k,
						  buf + k, n - k);
				if (q > p)
					r = full_pwrite(to, buf + p, q - p,
							to_off + o - from_off +
							    p);
				p = q + PAGE; /* past a zero page */
			}
			o += n;
		}
		at = stop;
	}
	free(buf);
	return r;
}

/* The device state, first of what the checksum covers. */
static int hash_state(const struct snap *s, struct sha256_ctx *h)
{
	uint8_t *buf = malloc(CHUNK);
	if (!buf)
		return -ENOMEM;
	int r = 0;
	for (uint64_t at = 0; at < s->state_len && r == 0;) {
		size_t n =
		    s->state_len - at < CHUNK ? s->state_len - at : CHUNK;
		r = full_pread(s->fd, buf, n, s->state_off + at);
		if (r == 0)
			sha256_update(h, n, buf);
		at += n;
	}
	free(buf);
	return r;
}

/* The saved boot's directory and name, and its checksum in hex. */
static void stamp_names(const struct snap *s, char dir[PATH_MAX],
			const char **name, char hex[65])
{
	snprintf(dir, PATH_MAX, "%s", s->path);
	char *slash = strrchr(dir, '/');
	*name = slash ? s->path + (slash - dir) + 1 : s->path;
	if (slash)
		*slash = '\0';
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < SNAP_SUM_LEN; i++) {
		hex[2 * i] = digits[s->sum[i] >> 4];
		hex[2 * i + 1] = digits[s->sum[i] & 15];
	}
	hex[64] = '\0';
}

int snap_load_ram(const struct snap *s, int ram_fd, struct ccvm_err *err)
{
	if (ftruncate(ram_fd, (off_t)s->ram_len) < 0)
		return ccvm_err_sys(err, errno, "the guest RAM file");
	/* The checksum is computed over what is read anyway, unless this
	 * file matched it before and has not changed since (verify.h). */
	char dir[PATH_MAX], hex[65];
	const char *name;
	stamp_names(s, dir, &name, hex);
	struct stat sb;
	bool known =
	    fstat(s->fd, &sb) == 0 && image_stamp_ok(dir, name, hex, &sb);
	struct sha256_ctx h;
	sha256_init(&h);
	int r = known ? 0 : hash_state(s, &h);
	/* Zero pages skipped here too: where the cache's file system does
	 * not report holes, its whole RAM reads as data. */
	if (r == 0)
		r = copy_data(s->fd, s->ram_off, ram_fd, 0, s->ram_len,
			      known ? NULL : &h);
	uint8_t d[SHA256_DIGEST_SIZE];
	sha256_digest(&h, sizeof(d), d);
	if (r == 0 && !known && memcmp(d, s->sum, sizeof(d)))
		return ccvm_err_set(err, EBADMSG,
				    "%s does not match its checksum", s->path);
	if (r == 0 && !known)
		image_stamp_put(dir, name, hex, &sb);
	/* Back where QEMU reads the device state (SEEK_DATA moved it). */
	if (r == 0 && lseek(s->fd, (off_t)s->state_off, SEEK_SET) < 0)
		r = -errno;
	if (r < 0)
		return ccvm_err_sys(err, -r, "loading %s", s->path);
	return 0;
}

int snap_create(struct snap *s, const char *dir, const char *key,
		struct ccvm_err *err)
{
	path_of(s, dir, key);
	s->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (s->fd < 0)
		return ccvm_err_sys(err, errno, "%s", dir);
	if (lseek(s->fd, SNAP_HDR_LEN, SEEK_SET) < 0) {
		int e = errno;
		snap_close(s);
		return ccvm_err_sys(err, e, "%s", dir);
	}
	return 0;
}

struct aged {
	char name[80];
	struct timespec mtime;
};

static int newest_first(const void *a, const void *b)
{
	const struct timespec *x = &((const struct aged *)a)->mtime;
	const struct timespec *y = &((const struct aged *)b)->mtime;
	if (x->tv_sec != y->tv_sec)
		return x->tv_sec < y->tv_sec ? 1 : -1;
	return x->tv_nsec < y->tv_nsec ? 1 : x->tv_nsec > y->tv_nsec ? -1 : 0;
}

/* Keeps dir's SNAP_KEEP newest saved boots: one per set of options a
 * user starts sessions with, not one per ccvm build ever run. */
static void prune(const char *dir)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct aged *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		struct stat st;
		size_t len = strlen(e->d_name);
		if (strncmp(e->d_name, "boot-", 5) || len < 10 ||
		    len >= sizeof(v->name) ||
		    strcmp(e->d_name + len - 5, ".snap") ||
		    fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (n == cap) {
			struct aged *nv =
			    realloc(v, (cap = cap * 2 + 8) * sizeof(*v));
			if (!nv)
				break;
			v = nv;
		}
		memcpy(v[n].name, e->d_name, len + 1);
		v[n++].mtime = st.st_mtim;
	}
	if (n > SNAP_KEEP) {
		qsort(v, n, sizeof(*v), newest_first);
		for (size_t i = SNAP_KEEP; i < n; i++)
			unlinkat(dirfd(d), v[i].name, 0);
	}
	free(v);
	closedir(d);
}

int snap_finish(struct snap *s, int ram_fd, uint64_t ram_len,
		struct ccvm_err *err)
{
	struct stat st;
	if (fstat(s->fd, &st) < 0)
		return ccvm_err_sys(err, errno, "%s", s->path);
	s->state_off = SNAP_HDR_LEN;
	if ((uint64_t)st.st_size <= s->state_off)
		return ccvm_err_set(err, EIO, "%s: QEMU saved nothing",
				    s->path);
	s->state_len = (uint64_t)st.st_size - s->state_off;
	s->ram_off =
	    (s->state_off + s->state_len + CHUNK - 1) & ~(uint64_t)(CHUNK - 1);
	s->ram_len = ram_len;
	struct sha256_ctx h;
	sha256_init(&h);
	int r = hash_state(s, &h);
	if (r == 0)
		r = copy_data(ram_fd, 0, s->fd, s->ram_off, ram_len, &h);
	if (r == 0 && ftruncate(s->fd, (off_t)(s->ram_off + ram_len)) < 0)
		r = -errno;
	uint8_t hdr[SNAP_HDR_LEN] = {0};
	size_t m = strlen(SNAP_MAGIC);
	memcpy(hdr, SNAP_MAGIC, m);
	proto_put_u64(hdr + m, s->state_off);
	proto_put_u64(hdr + m + 8, s->state_len);
	proto_put_u64(hdr + m + 16, s->ram_off);
	proto_put_u64(hdr + m + 24, s->ram_len);
	sha256_digest(&h, SNAP_SUM_LEN, hdr + SNAP_SUM_AT);
	r = full_pwrite(s->fd, hdr, sizeof(hdr), 0);
	/* On disk before it has a name: a crash leaves no torn file. */
	if (r == 0 && fdatasync(s->fd) < 0)
		r = -errno;
	if (r < 0)
		return ccvm_err_sys(err, -r, "saving %s", s->path);
	char fdpath[64];
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", s->fd);
	if (linkat(AT_FDCWD, fdpath, AT_FDCWD, s->path, AT_SYMLINK_FOLLOW) <
		0 &&
	    errno != EEXIST) /* another session saved the same boot */
		return ccvm_err_sys(err, errno, "%s", s->path);
	memcpy(s->sum, hdr + SNAP_SUM_AT, SNAP_SUM_LEN);
	char dir[PATH_MAX], hex[65];
	const char *name;
	stamp_names(s, dir, &name, hex);
	struct stat sb; /* linked: its change time is final */
	if (fstat(s->fd, &sb) == 0 && sb.st_nlink > 0)
		image_stamp_put(dir, name, hex, &sb);
	char *slash = strrchr(s->path, '/');
	if (slash) {
		*slash = '\0';
		prune(s->path);
		*slash = '/';
	}
	return 0;
}

void snap_close(struct snap *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* --- a session's saved boot ---------------------------------------------- */

#define QMP_MS	   10000 /* one QMP command */
#define MIGRATE_MS 60000 /* saving or restoring a boot */

void park_boot_init(struct park_boot *b, uint64_t ram_len, bool debug)
{
	*b = (struct park_boot){.qmp = -1,
				.qmp_child = -1,
				.snap = {.fd = -1},
				.ram_len = ram_len,
				.debug = debug};
}

int park_boot_enable(struct park_boot *b, struct qemu_spec *spec,
		     struct ccvm_err *err)
{
	int qp[2];
	b->qm = malloc(sizeof(*b->qm));
	if (!b->qm ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, qp) < 0)
		return ccvm_err_sys(err, errno, "QMP socket");
	b->qmp = qp[0];
	b->qmp_child = qp[1];
	b->enabled = spec->park = true;
	spec->qmp_fd = QEMU_FD_QMP;
	return 0;
}

int park_boot_prepare(struct park_boot *b, struct qemu_spec *spec,
		      struct qemu_argv *qa, const char *dir, int scratch_fd,
		      int ram_fd, struct ccvm_err *err)
{
	char key[65];
	struct ccvm_err e = {0};
	int r = snap_key(qa->v, scratch_fd, key, &e);
	if (r == 0)
		r = snap_open(&b->snap, dir, key, b->ram_len, &e);
	int lr = r > 0 ? snap_load_ram(&b->snap, ram_fd, &e) : 0;
	if (r > 0 && lr == 0) {
		b->restoring = spec->incoming = true;
		qemu_argv_free(qa);
		return qemu_argv_build(spec, qa, err);
	}
	if (r == -EINVAL || lr == -EBADMSG) /* damaged: said once */
		say("no saved boot: %s (damaged); removed, this session "
		    "boots and saves a new one",
		    e.msg);
	else if (r != 0 && b->debug) /* here r > 0: it did not load */
		say("no saved boot: %s", e.msg);
	if (r > 0 || (r < 0 && b->snap.path[0])) {
		/* Unusable: this session saves a new one. */
		snap_close(&b->snap);
		r = ftruncate(ram_fd, 0) < 0 ||
			    (unlink(b->snap.path) < 0 && errno != ENOENT)
			? -errno
			: 0;
	}
	if (r >= 0 && snap_create(&b->snap, dir, key, &e) < 0 && b->debug)
		say("this boot will not be saved: %s", e.msg);
	return 0;
}

void park_boot_started(struct park_boot *b)
{
	if (b->qmp_child >= 0) {
		close(b->qmp_child);
		b->qmp_child = -1;
	}
}

/* The guest is parked (restored, or booted and maybe saved): the time and
 * fresh entropy, so that no two sessions of one saved boot share either. */
static int send_unpark(struct park_boot *b, struct proto_writer *wr,
		       struct ccvm_err *err)
{
	uint8_t p[PROTO_UNPARK_LEN];
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	proto_put_u64(p, (uint64_t)now.tv_sec);
	proto_put_u32(p + 8, (uint32_t)now.tv_nsec);
	if (getrandom(p + PROTO_UNPARK_TIME, PROTO_UNPARK_ENTROPY, 0) !=
	    PROTO_UNPARK_ENTROPY)
		return ccvm_err_sys(err, errno, "getrandom");
	int r = proto_writer_put(wr, PROTO_UNPARK, 0, p, sizeof(p));
	explicit_bzero(p, sizeof(p));
	b->unparked = true;
	if (r < 0)
		return ccvm_err_set(err, -r, "cannot queue a %s frame: %s",
				    proto_type_name(PROTO_UNPARK),
				    strerror(-r));
	return 0;
}

/* Adds the share's device (it cannot be saved), lets a stopped VM run,
 * and unparks the guest. */
static int park_resume(struct park_boot *b, struct proto_writer *wr,
		       bool stopped, struct ccvm_err *err)
{
	json_t *dev = json_loads(QEMU_VFS_DEVICE, 0, NULL);
	if (!dev)
		return ccvm_err_set(err, EINVAL, "QEMU_VFS_DEVICE");
	if (qmp_call(b->qm, "device_add", dev, NULL, QMP_MS, err) < 0 ||
	    (stopped && qmp_call(b->qm, "cont", NULL, NULL, QMP_MS, err) < 0))
		return err->code;
	/* Nothing more to ask QEMU: its monitor goes, so that no event it
	 * reports waits unread (and no buffer of QEMU's fills with them). */
	close(b->qmp);
	b->qmp = -1;
	return send_unpark(b, wr, err);
}

static int set_ignore_shared(struct park_boot *b, struct ccvm_err *err)
{
	json_t *a = json_pack("{s:[{s:s,s:b}]}", "capabilities", "capability",
			      "x-ignore-shared", "state", 1);
	return qmp_call(b->qm, "migrate-set-capabilities", a, NULL, QMP_MS,
			err);
}

/* Stops the VM and saves it (its RAM from the RAM file, not through
 * QEMU); *stopped tells whether it needs a cont. */
static int park_save(struct park_boot *b, int ram_fd, bool *stopped,
		     struct ccvm_err *err)
{
	long long t0 = util_now_ms();
	if (qmp_call(b->qm, "stop", NULL, NULL, QMP_MS, err) < 0)
		return err->code;
	*stopped = true;
	/* An outgoing fd: migration takes only a named one. */
	if (set_ignore_shared(b, err) < 0 ||
	    qmp_call_fd(b->qm, "getfd", json_pack("{s:s}", "fdname", "snap"),
			b->snap.fd, NULL, QMP_MS, err) < 0 ||
	    qmp_call(b->qm, "migrate", json_pack("{s:s}", "uri", "fd:snap"),
		     NULL, QMP_MS, err) < 0 ||
	    qmp_wait_migration(b->qm, MIGRATE_MS, err) < 0 ||
	    snap_finish(&b->snap, ram_fd, b->ram_len, err) < 0)
		return err->code;
	if (b->debug)
		say("boot saved as %s in %lld ms", b->snap.path,
		    util_now_ms() - t0);
	return 0;
}

int park_boot_parked(struct park_boot *b, struct proto_writer *wr, int *ram_fd,
		     struct ccvm_err *err)
{
	if (!b->enabled || b->unparked || b->restoring)
		return 0;
	bool stopped = false;
	int r = qmp_open(b->qm, b->qmp, QMP_MS, err);
	if (r < 0)
		return r;
	if (b->snap.fd >= 0) {
		struct ccvm_err e = {0};
		if (park_save(b, *ram_fd, &stopped, &e) < 0)
			say("the boot was not saved: %s", e.msg);
		snap_close(&b->snap);
	}
	if (*ram_fd >= 0) {
		close(*ram_fd);
		*ram_fd = -1;
	}
	return park_resume(b, wr, stopped, err);
}

int park_boot_restore(struct park_boot *b, struct proto_writer *wr,
		      struct ccvm_err *err)
{
	long long t0 = util_now_ms();
	char uri[32];
	snprintf(uri, sizeof(uri), "fd:%d", QEMU_FD_SNAP);
	if (qmp_open(b->qm, b->qmp, QMP_MS, err) < 0 ||
	    set_ignore_shared(b, err) < 0 ||
	    qmp_call(b->qm, "migrate-incoming", json_pack("{s:s}", "uri", uri),
		     NULL, QMP_MS, err) < 0 ||
	    qmp_wait_migration(b->qm, MIGRATE_MS, err) < 0 ||
	    park_resume(b, wr, true, err) < 0)
		return err->code;
	if (b->debug)
		say("restored %s in %lld ms", b->snap.path, util_now_ms() - t0);
	snap_close(&b->snap);
	return 0;
}

void park_boot_free(struct park_boot *b)
{
	if (b->qmp >= 0)
		close(b->qmp);
	if (b->qmp_child >= 0)
		close(b->qmp_child);
	b->qmp = b->qmp_child = -1;
	snap_close(&b->snap);
	free(b->qm);
	b->qm = NULL;
}
