#define _GNU_SOURCE
#include "share/sharesync.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "proto.h"
#include "util.h"

#define WATCH_MASK                                                             \
	(IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_CREATE | IN_DELETE |      \
	 IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |         \
	 IN_ONLYDIR | IN_EXCL_UNLINK | IN_MASK_CREATE)
#define RESOLVE_TREE                                                           \
	(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

/* A watched directory, indexed by its watch descriptor. */
struct node {
	int parent; /* the parent's wd; 0 for the root */
	char *name; /* NULL: a free slot; "" for the root */
};

struct watch {
	int fd;	    /* inotify */
	int rootfd; /* the shared directory, for walking new directories */
	int root_wd;
	struct node *nodes;
	size_t cap; /* nodes[0 .. cap) */
	size_t ndirs, max_dirs;
	bool incomplete;
	/* The pending set: open addressing over malloc'ed strings. */
	char **set;
	size_t set_cap, set_n;
	bool all;
	uint64_t seq;	   /* events read */
	uint64_t sent_seq; /* every event up to this one was in a batch */
};

static long sys_openat2(int dirfd, const char *path, uint64_t flags,
			uint64_t resolve)
{
	struct open_how how = {.flags = flags, .resolve = resolve};
	return syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

/* --- the pending set ------------------------------------------------------ */

static size_t hash(const char *s)
{
	size_t h = 14695981039346656037ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static void set_clear(struct watch *w)
{
	for (size_t i = 0; i < w->set_cap; i++) {
		free(w->set[i]);
		w->set[i] = NULL;
	}
	w->set_n = 0;
}

/* Inserts s (taken over). */
static int set_insert(struct watch *w, char *s);

static int set_grow(struct watch *w)
{
	size_t ncap = w->set_cap ? w->set_cap * 2 : 256;
	char **old = w->set;
	size_t ocap = w->set_cap;
	w->set = calloc(ncap, sizeof(*w->set));
	if (!w->set) {
		w->set = old;
		return -ENOMEM;
	}
	w->set_cap = ncap;
	w->set_n = 0;
	for (size_t i = 0; i < ocap; i++)
		if (old[i])
			set_insert(w, old[i]);
	free(old);
	return 0;
}

static int set_insert(struct watch *w, char *s)
{
	if ((w->set_n + 1) * 2 > w->set_cap && set_grow(w) < 0) {
		free(s);
		return -ENOMEM;
	}
	size_t m = w->set_cap - 1;
	for (size_t i = hash(s) & m;; i = (i + 1) & m) {
		if (!w->set[i]) {
			w->set[i] = s;
			w->set_n++;
			return 0;
		}
		if (strcmp(w->set[i], s) == 0) {
			free(s);
			return 0;
		}
	}
}

/* A changed path; too many, or no memory: recheck everything instead. */
static void pend(struct watch *w, char *path)
{
	if (w->all) {
		free(path);
		return;
	}
	if (!path || set_insert(w, path) < 0 || w->set_n > WATCH_PENDING_MAX) {
		set_clear(w);
		w->all = true;
	}
}

/* --- the tree of watched directories -------------------------------------- */

static bool live(const struct watch *w, int wd)
{
	return wd > 0 && (size_t)wd < w->cap && w->nodes[wd].name;
}

/* The relative path of wd's directory ("." for the root), malloc'ed. */
static char *node_path(const struct watch *w, int wd)
{
	size_t len = 0;
	for (int k = wd; k != w->root_wd; k = w->nodes[k].parent) {
		if (!live(w, k))
			return NULL; /* cut off from the root */
		len += strlen(w->nodes[k].name) + 1;
	}
	if (len == 0)
		return strdup(".");
	char *p = malloc(len);
	if (!p)
		return NULL;
	size_t end = len - 1;
	p[end] = '\0';
	for (int k = wd; k != w->root_wd; k = w->nodes[k].parent) {
		size_t n = strlen(w->nodes[k].name);
		end -= n;
		memcpy(p + end, w->nodes[k].name, n);
		if (end > 0)
			p[--end] = '/';
	}
	return p;
}

/* dir/name, or name when dir is the root. */
static char *child_path(const struct watch *w, int wd, const char *name)
{
	if (wd == w->root_wd)
		return strdup(name);
	autofree char *dir = node_path(w, wd);
	return dir ? util_asprintf("%s/%s", dir, name) : NULL;
}

static int node_set(struct watch *w, int wd, int parent, const char *name)
{
	if ((size_t)wd >= w->cap) {
		size_t ncap = w->cap ? w->cap : 64;
		while (ncap <= (size_t)wd)
			ncap *= 2;
		struct node *n = realloc(w->nodes, ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		memset(n + w->cap, 0, (ncap - w->cap) * sizeof(*n));
		w->nodes = n;
		w->cap = ncap;
	}
	char *copy = strdup(name);
	if (!copy)
		return -ENOMEM;
	w->nodes[wd] = (struct node){.parent = parent, .name = copy};
	w->ndirs++;
	return 0;
}

static void node_drop(struct watch *w, int wd)
{
	free(w->nodes[wd].name);
	w->nodes[wd] = (struct node){0};
	w->ndirs--;
}

/*
 * Watches the directory open at dfd as child `name` of parent (0: it is
 * the root).  Returns its wd, 0 when it was watched already (a bind mount
 * seen twice), -ENOSPC at the limit, other -errno.
 */
static int add_one(struct watch *w, int dfd, int parent, const char *name)
{
	if (w->ndirs >= w->max_dirs)
		return -ENOSPC;
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", dfd);
	int wd = inotify_add_watch(w->fd, proc, WATCH_MASK);
	if (wd < 0)
		return errno == EEXIST ? 0 : -errno;
	if (live(w, wd))
		return 0; /* cannot happen with IN_MASK_CREATE; be safe */
	int r = node_set(w, wd, parent, name);
	if (r < 0) {
		inotify_rm_watch(w->fd, wd);
		return r;
	}
	return wd;
}

/*
 * Watches the tree under wd (already watched), breadth first; each
 * directory is opened from the root, beneath it, following no link.
 * A directory that vanished meanwhile is skipped.
 */
static int add_tree(struct watch *w, int top)
{
	size_t qcap = 64, qh = 0, qt = 0;
	autofree int *q = malloc(qcap * sizeof(*q));
	if (!q)
		return -ENOMEM;
	q[qt++] = top;
	while (qh < qt) {
		int wd = q[qh++];
		if (!live(w, wd))
			continue;
		autofree char *rel = node_path(w, wd);
		if (!rel)
			return -ENOMEM;
		int dfd = (int)sys_openat2(w->rootfd, rel,
					   O_RDONLY | O_DIRECTORY | O_CLOEXEC,
					   RESOLVE_TREE);
		if (dfd < 0) {
			if (errno == ENOENT || errno == ENOTDIR ||
			    errno == ELOOP || errno == EXDEV || errno == EACCES)
				continue;
			return -errno;
		}
		DIR *d = fdopendir(dfd);
		if (!d) {
			int e = errno;
			close(dfd);
			return -e;
		}
		struct dirent *de;
		int r = 0;
		while ((de = readdir(d))) {
			if (!strcmp(de->d_name, ".") ||
			    !strcmp(de->d_name, ".."))
				continue;
			if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)
				continue;
			int c = (int)sys_openat2(
			    dirfd(d), de->d_name,
			    O_RDONLY | O_DIRECTORY | O_CLOEXEC, RESOLVE_TREE);
			if (c < 0)
				continue; /* not a directory, gone, a link */
			r = add_one(w, c, wd, de->d_name);
			close(c);
			if (r < 0)
				break;
			if (r == 0)
				continue;
			if (qt == qcap) {
				int *nq = realloc(q, 2 * qcap * sizeof(*q));
				if (!nq) {
					r = -ENOMEM;
					break;
				}
				q = nq;
				qcap *= 2;
			}
			q[qt++] = r;
			r = 0;
		}
		closedir(d);
		if (r < 0)
			return r;
	}
	return 0;
}

/* True when wd is top or lies under it. */
static bool under(const struct watch *w, int wd, int top)
{
	for (int a = wd; a > 0 && (size_t)a < w->cap && w->nodes[a].name;
	     a = w->nodes[a].parent)
		if (a == top)
			return true;
	return false;
}

/* Stops watching one directory. */
static void drop_one(struct watch *w, int wd)
{
	inotify_rm_watch(w->fd, wd);
	node_drop(w, wd);
}

/* Stops watching the directory top and everything under it: all found
 * first, then dropped (a dropped node breaks its children's chain). */
static void drop_tree(struct watch *w, int top)
{
	autofree bool *gone = calloc(w->cap, sizeof(*gone));
	if (!gone) {
		/* Its children are cut off from the root: their paths
		 * fail, which turns into "recheck everything". */
		drop_one(w, top);
		return;
	}
	for (size_t k = 1; k < w->cap; k++)
		gone[k] = w->nodes[k].name && under(w, (int)k, top);
	for (size_t k = 1; k < w->cap; k++)
		if (gone[k])
			drop_one(w, (int)k);
}

static int find_child(const struct watch *w, int parent, const char *name)
{
	for (size_t k = 1; k < w->cap; k++)
		if (w->nodes[k].name && w->nodes[k].parent == parent &&
		    (int)k != w->root_wd && !strcmp(w->nodes[k].name, name))
			return (int)k;
	return 0;
}

/* A directory appeared (made, or moved in) under wd: watch it all. */
static void watch_new_dir(struct watch *w, int wd, const char *name)
{
	autofree char *rel = child_path(w, wd, name);
	if (!rel)
		return;
	int dfd = (int)sys_openat2(
	    w->rootfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC, RESOLVE_TREE);
	if (dfd < 0)
		return; /* gone again, or a link: nothing to watch */
	int r = add_one(w, dfd, wd, name);
	close(dfd);
	if (r > 0)
		r = add_tree(w, r);
	if (r < 0)
		w->incomplete = true;
}

/* --- public ------------------------------------------------------------- */

bool watch_fs_complete(long f_type)
{
	static const unsigned long remote[] = {
	    NFS_SUPER_MAGIC,  SMB_SUPER_MAGIC,	 CIFS_SUPER_MAGIC,
	    SMB2_SUPER_MAGIC, FUSE_SUPER_MAGIC,	 V9FS_MAGIC,
	    CEPH_SUPER_MAGIC, AFS_SUPER_MAGIC,	 AFS_FS_MAGIC,
	    CODA_SUPER_MAGIC, OCFS2_SUPER_MAGIC, 0x01161970, /* GFS2 */
	    0x0bd00bd0,					     /* Lustre */
	};
	for (size_t i = 0; i < ARRAY_LEN(remote); i++)
		if ((unsigned long)(unsigned int)f_type == remote[i])
			return false;
	return true;
}

static long watch_limit(void)
{
	autofree char *s = NULL;
	size_t n;
	long v;
	if (util_read_file("/proc/sys/fs/inotify/max_user_watches", 64, &s, &n,
			   NULL) < 0)
		return WATCH_DEFAULT_MAX;
	s[strcspn(s, "\n")] = '\0';
	if (!util_parse_long(s, 1, 1L << 30, &v))
		return WATCH_DEFAULT_MAX;
	return v / 2 > 0 ? v / 2 : 1;
}

int watch_open(const char *root, struct watch **out, struct ccvm_err *err)
{
	struct watch *w = calloc(1, sizeof(*w));
	if (!w)
		return ccvm_err_sys(err, ENOMEM, "watching %s", root);
	w->fd = w->rootfd = -1;
	w->max_dirs = (size_t)watch_limit();
	int r;
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		r = ccvm_err_sys(err, errno, "inotify");
		goto fail;
	}
	w->rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->rootfd < 0) {
		r = ccvm_err_sys(err, errno, "%s", root);
		goto fail;
	}
	r = add_one(w, w->rootfd, 0, "");
	if (r <= 0) {
		r = ccvm_err_sys(err, r ? -r : EEXIST, "watching %s", root);
		goto fail;
	}
	w->root_wd = r;
	*out = w;
	return 0;
fail:
	watch_free(w);
	return r;
}

int watch_fill(struct watch *w)
{
	int r = add_tree(w, w->root_wd);
	if (r == -ENOSPC) {
		w->incomplete = true;
		return 0;
	}
	return r;
}

void watch_free(struct watch *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->rootfd >= 0)
		close(w->rootfd);
	for (size_t k = 0; k < w->cap; k++)
		free(w->nodes[k].name);
	free(w->nodes);
	set_clear(w);
	free(w->set);
	free(w);
}

int watch_fd(const struct watch *w)
{
	return w->fd;
}

size_t watch_dirs(const struct watch *w)
{
	return w->ndirs;
}

uint64_t watch_seq(const struct watch *w)
{
	return w->seq;
}

bool watch_pending(const struct watch *w)
{
	return w->all || w->set_n > 0;
}

bool watch_incomplete(const struct watch *w)
{
	return w->incomplete;
}

static void on_event(struct watch *w, const struct inotify_event *ev)
{
	w->seq++;
	if (ev->mask & IN_Q_OVERFLOW) {
		set_clear(w);
		w->all = true;
		return;
	}
	if (!live(w, ev->wd))
		return; /* a watch dropped already */
	if (ev->mask & IN_IGNORED) {
		/* The directory is gone (or its watch was removed). */
		if (ev->wd != w->root_wd)
			node_drop(w, ev->wd);
		return;
	}
	const uint32_t names =
	    IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO;
	if (ev->len && ev->name[0]) {
		pend(w, child_path(w, ev->wd, ev->name));
		if (ev->mask & names) /* the directory's own times changed */
			pend(w, node_path(w, ev->wd));
		if ((ev->mask & IN_ISDIR) && (ev->mask & IN_MOVED_FROM)) {
			int c = find_child(w, ev->wd, ev->name);
			if (c)
				drop_tree(w, c);
		}
		if ((ev->mask & IN_ISDIR) &&
		    (ev->mask & (IN_CREATE | IN_MOVED_TO)))
			watch_new_dir(w, ev->wd, ev->name);
		return;
	}
	/* An event on a watched directory itself (its attributes; it was
	 * deleted or moved: its parent reports that with its name). */
	if (ev->wd == w->root_wd ||
	    (ev->mask & (IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)))
		pend(w, node_path(w, ev->wd));
}

int watch_read(struct watch *w)
{
	char buf[64 * 1024]
	    __attribute__((aligned(__alignof__(struct inotify_event))));
	for (;;) {
		ssize_t n = read(w->fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? 0 : -errno;
		}
		if (n == 0)
			return 0;
		for (ssize_t off = 0; off < n;) {
			const struct inotify_event *ev =
			    (const struct inotify_event *)(buf + off);
			on_event(w, ev);
			off += (ssize_t)(sizeof(*ev) + ev->len);
		}
	}
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The path as it is now, looked at beneath the root without following
 * any link (a gone or unreachable one "does not exist").  Its directory is
 * opened, not the file: an O_PATH descriptor of a file the guest has just
 * deleted would keep its blocks for as long as it is open, and the guest's
 * next write could find the disk still full. */
static void path_attr(const struct watch *w, const char *path,
		      struct proto_share_attr *a)
{
	*a = (struct proto_share_attr){0};
	const char *slash = strrchr(path, '/');
	const char *base = slash ? slash + 1 : path;
	if (strcmp(base, "..") == 0) /* not a name inotify reports */
		return;
	autoclose int dfd = -1;
	if (slash) {
		autofree char *dir = strndup(path, (size_t)(slash - path));
		if (!dir)
			return;
		dfd = (int)sys_openat2(w->rootfd, dir,
				       O_PATH | O_DIRECTORY | O_CLOEXEC,
				       RESOLVE_TREE);
		if (dfd < 0)
			return;
	}
	struct stat st;
	if (fstatat(slash ? dfd : w->rootfd, base, &st, AT_SYMLINK_NOFOLLOW) ==
	    0)
		proto_share_attr_of_stat(a, &st);
}

size_t watch_take(struct watch *w, uint8_t *buf, size_t cap)
{
	if (cap < PROTO_SHARE_HDR)
		return 0;
	size_t len = PROTO_SHARE_HDR;
	buf[8] = 0;
	if (w->all) {
		set_clear(w);
		w->all = false;
		buf[8] = PROTO_SHARE_ALL;
		w->sent_seq = w->seq;
		proto_put_u64(buf, w->sent_seq);
		return len;
	}
	/* Sorted, so the guest meets each directory's entries together. */
	char **v = malloc((w->set_n ? w->set_n : 1) * sizeof(*v));
	if (!v) {
		proto_put_u64(buf, w->sent_seq);
		return len;
	}
	size_t n = 0;
	for (size_t i = 0; i < w->set_cap; i++) {
		if (w->set[i])
			v[n++] = w->set[i];
		w->set[i] = NULL;
	}
	w->set_n = 0;
	qsort(v, n, sizeof(*v), cmp_str);
	size_t i = 0;
	for (; i < n; i++) {
		size_t l = PROTO_SHARE_ATTR_LEN + strlen(v[i]) + 1;
		if (l > cap - PROTO_SHARE_HDR) {
			w->all = true; /* can never be sent: recheck all */
			free(v[i]);
			continue;
		}
		if (l > cap - len)
			break;
		struct proto_share_attr a;
		path_attr(w, v[i], &a);
		proto_share_attr_put(buf + len, &a);
		memcpy(buf + len + PROTO_SHARE_ATTR_LEN, v[i],
		       l - PROTO_SHARE_ATTR_LEN);
		len += l;
		free(v[i]);
	}
	for (; i < n; i++) /* the rest waits for the next batch */
		if (set_insert(w, v[i]) < 0)
			w->all = true;
	free(v);
	if (w->set_n == 0 && !w->all)
		w->sent_seq = w->seq;
	proto_put_u64(buf, w->sent_seq);
	return len;
}
