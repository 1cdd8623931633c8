#define _GNU_SOURCE
#include "term/clipboard.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "glog.h"
#include "util.h"

#define REPLY_HDR   5  /* u8 status, u32 length */
#define CLIENT_WAIT 60 /* seconds a stand-in waits for its answer */

/* --- the stand-ins ------------------------------------------------------ */

int paste_tool_of(const char *argv0)
{
	if (!argv0)
		return -1;
	const char *base = strrchr(argv0, '/');
	base = base ? base + 1 : argv0;
	if (!strcmp(base, "xclip"))
		return PASTE_XCLIP;
	if (!strcmp(base, "wl-paste"))
		return PASTE_WL_PASTE;
	return -1;
}

/* A type the host could be asked for (proto_clip_req_encode accepts). */
static bool askable(const char *type)
{
	struct proto_clip_req q = {.op = PROTO_CLIP_GET};
	uint8_t buf[PROTO_CLIP_REQ_MAX];
	if (strlen(type) > PROTO_CLIP_MIME_MAX)
		return false;
	util_strlcpy(q.mime, type, sizeof(q.mime));
	return proto_clip_req_encode(&q, buf) > 0;
}

enum xkind {
	X_SEL,
	X_TARGET,
	X_OUT,
	X_IN,
	X_FILTER,
	X_SENSITIVE,
	X_DISPLAY,
	X_LOOPS,
	X_FLAG,
	X_NOUTF8,
	X_HELP,
	X_VERSION,
};

/* xclip takes any prefix of an option down to a minimum length. */
static const struct {
	const char *name;
	size_t min;
	enum xkind kind;
} xopts[] = {
    {"-sensitive", 4, X_SENSITIVE},
    {"-selection", 3, X_SEL},
    {"-silent", 3, X_FLAG},
    {"-target", 2, X_TARGET},
    {"-out", 2, X_OUT},
    {"-in", 2, X_IN},
    {"-filter", 2, X_FILTER},
    {"-display", 2, X_DISPLAY},
    {"-loops", 2, X_LOOPS},
    {"-quiet", 2, X_FLAG},
    {"-verbose", 5, X_FLAG},
    {"-version", 5, X_VERSION},
    {"-help", 2, X_HELP},
    {"-noutf8", 2, X_NOUTF8},
    {"-rmlastnl", 2, X_FLAG},
};

void paste_parse_xclip(int n, char *const args[], struct paste_args *out)
{
	memset(out, 0, sizeof(*out));
	out->primary = true; /* xclip's default selection */
	bool get = false, unsupported = false, noutf8 = false;
	for (int i = 0; i < n; i++) {
		const char *a = args[i];
		size_t al = strlen(a);
		int k = -1;
		for (size_t j = 0; a[0] == '-' && j < ARRAY_LEN(xopts); j++)
			if (al >= xopts[j].min && al <= strlen(xopts[j].name) &&
			    !strncmp(xopts[j].name, a, al)) {
				k = (int)j;
				break;
			}
		if (k < 0 && a[0] != '-')
			continue; /* a file to copy in: -i decides */
		if (k < 0) {
			out->ask = PASTE_ASK_USAGE;
			out->bad = a;
			return;
		}
		enum xkind kind = xopts[k].kind;
		bool has_arg = kind == X_SEL || kind == X_TARGET ||
			       kind == X_DISPLAY || kind == X_LOOPS;
		if (has_arg && i + 1 >= n) {
			out->ask = PASTE_ASK_USAGE;
			out->bad = a;
			return;
		}
		const char *v = has_arg ? args[++i] : NULL;
		switch (kind) {
		case X_SEL:
			out->primary = v[0] != 'c';
			break;
		case X_TARGET:
			out->target = v;
			break;
		case X_OUT:
			get = true;
			break;
		case X_IN:
		case X_FILTER:
		case X_SENSITIVE:
			unsupported = true;
			if (!out->bad)
				out->bad = a;
			break;
		case X_NOUTF8:
			noutf8 = true;
			break;
		case X_HELP:
			out->ask = PASTE_ASK_HELP;
			return;
		case X_VERSION:
			out->ask = PASTE_ASK_VERSION;
			return;
		case X_DISPLAY:
		case X_LOOPS:
		case X_FLAG:
			break;
		}
	}
	if (unsupported || !get) {
		out->ask = PASTE_ASK_UNSUPPORTED;
		if (!out->bad)
			out->bad = "copying in";
		return;
	}
	if (!out->target)
		out->target = noutf8 ? "STRING" : "UTF8_STRING";
	if (!strcmp(out->target, "TARGETS"))
		out->ask = PASTE_ASK_LIST;
	else
		out->ask =
		    askable(out->target) ? PASTE_ASK_GET : PASTE_ASK_TEXT;
}

enum wkind {
	W_HELP,
	W_VERSION,
	W_LIST,
	W_TYPE,
	W_PRIMARY,
	W_NONL,
	W_SEAT,
	W_WATCH
};

static const struct {
	const char *name;
	char shrt;
	enum wkind kind;
	bool arg;
} wopts[] = {
    {"help", 'h', W_HELP, false},	{"version", 'v', W_VERSION, false},
    {"list-types", 'l', W_LIST, false}, {"type", 't', W_TYPE, true},
    {"primary", 'p', W_PRIMARY, false}, {"no-newline", 'n', W_NONL, false},
    {"seat", 's', W_SEAT, true},	{"watch", 'w', W_WATCH, false},
};

/* A long option by exact name or unique prefix (getopt_long's rule). */
static int wl_long(const char *name, size_t nl)
{
	int found = -1;
	for (size_t j = 0; j < ARRAY_LEN(wopts); j++) {
		if (strncmp(wopts[j].name, name, nl) != 0)
			continue;
		if (strlen(wopts[j].name) == nl)
			return (int)j;
		if (found >= 0)
			return -2; /* ambiguous */
		found = (int)j;
	}
	return found;
}

static int wl_short(char c)
{
	for (size_t j = 0; j < ARRAY_LEN(wopts); j++)
		if (wopts[j].shrt == c)
			return (int)j;
	return -1;
}

/* One wl-paste option's effect on out; true when parsing ends here. */
static bool wl_apply(int kind, const char *val, const char *arg,
		     struct paste_args *out, bool *list)
{
	switch (kind) {
	case W_HELP:
		out->ask = PASTE_ASK_HELP;
		return true;
	case W_VERSION:
		out->ask = PASTE_ASK_VERSION;
		return true;
	case W_LIST:
		*list = true;
		break;
	case W_TYPE:
		out->target = val;
		break;
	case W_PRIMARY:
		out->primary = true;
		break;
	case W_WATCH:
		out->ask = PASTE_ASK_UNSUPPORTED;
		out->bad = arg;
		return true;
	default: /* W_NONL, W_SEAT: no effect on a paste */
		break;
	}
	return false;
}

void paste_parse_wl_paste(int n, char *const args[], struct paste_args *out)
{
	memset(out, 0, sizeof(*out));
	bool list = false;
	for (int i = 0; i < n; i++) {
		const char *a = args[i];
		if (a[0] != '-' || !strcmp(a, "-") || !strcmp(a, "--")) {
			/* wl-paste takes no operands */
			if (!strcmp(a, "--") && i + 1 == n)
				break;
			out->ask = PASTE_ASK_USAGE;
			out->bad = a;
			return;
		}
		/* One or more options in this argument. */
		const char *p = a + 1;
		bool is_long = a[1] == '-';
		while (*p) {
			int k;
			const char *val = NULL;
			if (is_long) {
				const char *eq = strchr(a + 2, '=');
				size_t nl =
				    eq ? (size_t)(eq - a - 2) : strlen(a + 2);
				k = wl_long(a + 2, nl);
				if (eq)
					val = eq + 1;
				p = a + strlen(a); /* consumed */
				if (k >= 0 && !wopts[k].arg && eq)
					k = -1;
			} else {
				k = wl_short(*p++);
				if (k >= 0 && wopts[k].arg && *p) {
					val = p;
					p += strlen(p);
				}
			}
			if (k < 0) {
				out->ask = PASTE_ASK_USAGE;
				out->bad = a;
				return;
			}
			if (wopts[k].arg && !val) {
				if (i + 1 >= n) {
					out->ask = PASTE_ASK_USAGE;
					out->bad = a;
					return;
				}
				val = args[++i];
			}
			if (wl_apply(wopts[k].kind, val, a, out, &list))
				return;
		}
	}
	if (list)
		out->ask = PASTE_ASK_LIST;
	else if (out->target && askable(out->target))
		out->ask = PASTE_ASK_GET;
	else
		out->ask = PASTE_ASK_TEXT;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n > 0)
		(void)util_write_all(STDERR_FILENO, msg,
				     strnlen(msg, sizeof(msg)));
}

/* Asks PID 1: the status, with the data copied to stdout when OK; or
 * -errno when ccvm-init cannot be reached or the answer is cut short. */
static int ask_host(const struct proto_clip_req *q)
{
	uint8_t req[PROTO_CLIP_REQ_MAX];
	size_t rl = proto_clip_req_encode(q, req);
	if (rl == 0)
		return PROTO_CLIP_NONE;
	autoclose int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	util_strlcpy(sa.sun_path, PASTE_SOCK, sizeof(sa.sun_path));
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	struct timeval tv = {.tv_sec = CLIENT_WAIT};
	setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	int r = util_write_all(s, req, rl);
	if (r < 0)
		return r;
	shutdown(s, SHUT_WR);
	uint8_t hdr[REPLY_HDR];
	ssize_t n = util_read_all(s, hdr, sizeof(hdr));
	if (n < 0)
		return (int)n;
	if (n != (ssize_t)sizeof(hdr) || hdr[0] > PROTO_CLIP_STATUS_MAX)
		return -EPROTO;
	if (hdr[0] != PROTO_CLIP_OK)
		return hdr[0];
	size_t left = proto_get_u32(hdr + 1);
	static uint8_t buf[64 * 1024];
	while (left > 0) {
		size_t want = left < sizeof(buf) ? left : sizeof(buf);
		n = read(s, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPROTO;
		if ((r = util_write_all(STDOUT_FILENO, buf, (size_t)n)) < 0)
			return r;
		left -= (size_t)n;
	}
	return PROTO_CLIP_OK;
}

static int usage(enum paste_tool tool, bool ok)
{
	static const char xu[] =
	    "Usage: xclip -selection clipboard -o [-t TARGETS|image/TYPE]\n"
	    "ccvm's stand-in: pastes images (png, jpeg, gif, webp, bmp) from\n"
	    "the host's clipboard, never text, and copies nothing in.\n";
	static const char wu[] =
	    "Usage: wl-paste [--list-types | --type image/TYPE]\n"
	    "ccvm's stand-in: pastes images (png, jpeg, gif, webp, bmp) from\n"
	    "the host's clipboard, never text.\n";
	const char *u = tool == PASTE_XCLIP ? xu : wu;
	(void)util_write_all(ok ? STDOUT_FILENO : STDERR_FILENO, u, strlen(u));
	return ok ? 0 : 2;
}

int paste_standin_main(enum paste_tool tool, int argc, char *argv[])
{
	struct paste_args a;
	int n = argc > 0 ? argc - 1 : 0;
	char *const *args = argc > 0 ? argv + 1 : argv;
	if (tool == PASTE_XCLIP)
		paste_parse_xclip(n, args, &a);
	else
		paste_parse_wl_paste(n, args, &a);
	const char *me = tool == PASTE_XCLIP ? "xclip" : "wl-paste";
	switch (a.ask) {
	case PASTE_ASK_HELP:
		return usage(tool, true);
	case PASTE_ASK_VERSION:
		say("%s (ccvm stand-in %s: images from the host clipboard "
		    "only)\n",
		    me, CCVM_VERSION);
		return 0;
	case PASTE_ASK_USAGE:
		say("%s: unknown or incomplete option %s\n", me,
		    a.bad ? a.bad : "");
		return usage(tool, false);
	case PASTE_ASK_UNSUPPORTED:
		say("%s: %s is not supported: in ccvm this only pastes images "
		    "from the host clipboard\n",
		    me, a.bad ? a.bad : "this");
		return 1;
	default:
		break;
	}
	int st = PROTO_CLIP_NONE;
	if (!a.primary && a.ask != PASTE_ASK_TEXT) {
		struct proto_clip_req q = {.op = a.ask == PASTE_ASK_LIST
						     ? PROTO_CLIP_TARGETS
						     : PROTO_CLIP_GET};
		if (a.ask == PASTE_ASK_GET)
			util_strlcpy(q.mime, a.target, sizeof(q.mime));
		st = ask_host(&q);
	}
	if (st == PROTO_CLIP_OK)
		return 0;
	if (st < 0 || st == PROTO_CLIP_FAILED) {
		if (tool == PASTE_XCLIP)
			say("Error: ccvm: cannot read the host clipboard "
			    "(%s)\n",
			    st < 0 ? strerror(-st) : "the host failed");
		else
			say("ccvm: cannot read the host clipboard (%s)\n",
			    st < 0 ? strerror(-st) : "the host failed");
		return 1;
	}
	if (tool == PASTE_XCLIP)
		say("Error: target %s not available\n",
		    a.ask == PASTE_ASK_LIST ? "TARGETS" : a.target);
	else if (a.ask == PASTE_ASK_LIST)
		say("Nothing is copied\n");
	else
		say("No suitable type of content copied\n");
	return 1;
}

/* --- the server in PID 1 -------------------------------------------------- */

void paste_srv_init(struct paste_srv *c)
{
	memset(c, 0, sizeof(*c));
	c->lfd = c->cfd = -1;
	c->next_chan = 1;
}

/* ccvm-init itself (/proc/self/exe, a file of the initramfs) bound
 * read-only over an empty file at dst: nothing to copy (a copy of its
 * 1 MB took ~50 ms of guest CPU under TCG, while the guest boots). */
static int bind_self(const char *dst, struct ccvm_err *err)
{
	unlink(dst);
	autoclose int f = open(
	    dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0755);
	if (f < 0)
		return ccvm_err_sys(err, errno, "%s", dst);
	autoclose int t = open_tree(AT_FDCWD, "/proc/self/exe",
				    OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
	if (t < 0)
		return ccvm_err_sys(err, errno, "open_tree /proc/self/exe");
	struct mount_attr ro = {.attr_set = MOUNT_ATTR_RDONLY |
					    MOUNT_ATTR_NOSUID |
					    MOUNT_ATTR_NODEV};
	if (mount_setattr(t, "", AT_EMPTY_PATH, &ro, sizeof(ro)) < 0)
		return ccvm_err_sys(err, errno, "read-only bind of ccvm-init");
	if (move_mount(t, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return ccvm_err_sys(err, errno, "bind mount on %s", dst);
	return 0;
}

int paste_install_bin(struct ccvm_err *err)
{
	int r = util_mkdir_p(PASTE_BIN_DIR, 0755);
	if (r < 0)
		return ccvm_err_sys(err, -r, "%s", PASTE_BIN_DIR);
	if ((r = bind_self(PASTE_BIN_DIR "/ccvm-clip", err)) < 0)
		return r;
	static const char *const names[] = {"xclip", "wl-paste"};
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		char link[64];
		snprintf(link, sizeof(link), PASTE_BIN_DIR "/%s", names[i]);
		unlink(link);
		if (symlink("ccvm-clip", link) < 0)
			return ccvm_err_sys(err, errno, "%s", link);
	}
	return 0;
}

static int open_socket(uid_t uid, gid_t gid, struct ccvm_err *err)
{
	if (mkdir(PASTE_SOCK_DIR, 0755) < 0 && errno != EEXIST)
		return ccvm_err_sys(err, errno, "%s", PASTE_SOCK_DIR);
	if (chown(PASTE_SOCK_DIR, 0, 0) < 0 || chmod(PASTE_SOCK_DIR, 0755) < 0)
		return ccvm_err_sys(err, errno, "%s", PASTE_SOCK_DIR);
	unlink(PASTE_SOCK);
	autoclose int s =
	    socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0)
		return ccvm_err_sys(err, errno, "socket");
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	util_strlcpy(sa.sun_path, PASTE_SOCK, sizeof(sa.sun_path));
	mode_t old = umask(0177);
	int r = bind(s, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	umask(old);
	if (r < 0)
		return ccvm_err_sys(err, e, "%s", PASTE_SOCK);
	if (chown(PASTE_SOCK, uid, gid) < 0 || chmod(PASTE_SOCK, 0600) < 0 ||
	    listen(s, 8) < 0)
		return ccvm_err_sys(err, errno, "%s", PASTE_SOCK);
	return steal_fd(&s);
}

int paste_install(uid_t uid, gid_t gid, struct paste_srv *c,
		  struct ccvm_err *err)
{
	int r = open_socket(uid, gid, err);
	if (r < 0)
		return r;
	c->lfd = r;
	return 0;
}

static void drop_answer(struct paste_srv *c)
{
	if (c->buf) {
		explicit_bzero(c->buf, c->len);
		free(c->buf);
	}
	c->buf = NULL;
	c->len = c->off = c->cap = 0;
	c->replying = c->overflow = false;
}

static void drop_client(struct paste_srv *c)
{
	if (c->cfd >= 0)
		close(c->cfd);
	c->cfd = -1;
	c->req_len = 0;
	if (!c->waiting)
		drop_answer(c);
}

void paste_srv_free(struct paste_srv *c)
{
	c->waiting = false;
	drop_client(c);
	if (c->lfd >= 0)
		close(c->lfd);
	c->lfd = -1;
}

static bool reserve(struct paste_srv *c, size_t more)
{
	if (c->buf && c->len + more <= c->cap)
		return true;
	if (c->len + more > REPLY_HDR + (size_t)PROTO_CLIP_MAX)
		return false;
	size_t cap = c->cap ? c->cap : 256 * 1024;
	while (cap < c->len + more)
		cap *= 2;
	if (cap > REPLY_HDR + (size_t)PROTO_CLIP_MAX)
		cap = REPLY_HDR + (size_t)PROTO_CLIP_MAX;
	uint8_t *nb = util_regrow(c->buf, c->len, c->len, cap);
	if (!nb)
		return false;
	c->buf = nb;
	c->cap = cap;
	return true;
}

/* The answer for the client: status, length, data (OK only). */
static void reply(struct paste_srv *c, uint8_t status, long long now)
{
	c->waiting = false;
	if (c->overflow)
		status = PROTO_CLIP_FAILED;
	if (!c->buf && !reserve(c, REPLY_HDR)) {
		drop_client(c);
		return;
	}
	if (c->len < REPLY_HDR)
		c->len = REPLY_HDR;
	if (status != PROTO_CLIP_OK) {
		explicit_bzero(c->buf + REPLY_HDR, c->len - REPLY_HDR);
		c->len = REPLY_HDR;
	}
	c->buf[0] = status;
	proto_put_u32(c->buf + 1, (uint32_t)(c->len - REPLY_HDR));
	c->off = 0;
	c->replying = true;
	c->deadline = now + PASTE_IDLE_MS;
	if (c->cfd < 0)
		drop_answer(c);
}

void paste_srv_poll(const struct paste_srv *c, struct pollfd *listen,
		    struct pollfd *client)
{
	*listen = (struct pollfd){.fd = -1};
	*client = (struct pollfd){.fd = -1};
	if (c->lfd >= 0 && c->cfd < 0 && !c->waiting && !c->replying)
		*listen = (struct pollfd){.fd = c->lfd, .events = POLLIN};
	if (c->cfd >= 0)
		*client = (struct pollfd){.fd = c->cfd,
					  .events = c->replying	 ? POLLOUT
						    : c->waiting ? 0
								 : POLLIN};
}

int paste_srv_timeout(const struct paste_srv *c, long long now)
{
	if (c->cfd < 0 && !c->waiting)
		return -1;
	return c->deadline > now ? (int)(c->deadline - now) : 0;
}

static void read_request(struct paste_srv *c, long long now,
			 struct proto_writer *w)
{
	for (;;) {
		if (c->req_len == sizeof(c->req)) {
			reply(c, PROTO_CLIP_FAILED, now); /* too long */
			return;
		}
		ssize_t n = recv(c->cfd, c->req + c->req_len,
				 sizeof(c->req) - c->req_len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0) {
			drop_client(c);
			return;
		}
		if (n > 0) {
			c->req_len += (size_t)n;
			continue;
		}
		/* EOF: the whole request is here. */
		struct proto_clip_req q;
		if (proto_clip_req_decode(c->req, c->req_len, &q) < 0) {
			reply(c, PROTO_CLIP_FAILED, now);
			return;
		}
		c->chan = c->next_chan++;
		if (c->next_chan == 0)
			c->next_chan = 1;
		drop_answer(c);
		if (!reserve(c, REPLY_HDR) ||
		    proto_writer_put(w, PROTO_CLIP_REQ, c->chan, c->req,
				     c->req_len) < 0) {
			reply(c, PROTO_CLIP_FAILED, now);
			return;
		}
		c->len = REPLY_HDR;
		c->waiting = true;
		c->deadline = now + PASTE_IDLE_MS;
		return;
	}
}

static void write_reply(struct paste_srv *c, long long now)
{
	while (c->off < c->len) {
		ssize_t n = send(c->cfd, c->buf + c->off, c->len - c->off,
				 MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n <= 0)
			break;
		c->off += (size_t)n;
		c->deadline = now + PASTE_IDLE_MS;
	}
	drop_client(c); /* all sent, or the client went away */
}

void paste_srv_step(struct paste_srv *c, short listen_rev, short client_rev,
		    long long now, struct proto_writer *w)
{
	if (c->cfd >= 0 && client_rev) {
		if (c->replying)
			write_reply(c, now);
		else if (!c->waiting)
			read_request(c, now, w);
		else if (client_rev & (POLLHUP | POLLERR))
			drop_client(c); /* gone; the answer is dropped */
	}
	if ((listen_rev & POLLIN) && c->cfd < 0 && !c->waiting &&
	    !c->replying) {
		int fd =
		    accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0) {
			c->cfd = fd;
			c->req_len = 0;
			c->deadline = now + PASTE_IDLE_MS;
		}
	}
	if ((c->cfd >= 0 || c->waiting) && now >= c->deadline) {
		if (c->waiting)
			reply(c, PROTO_CLIP_FAILED, now); /* the host is late */
		else
			drop_client(c);
		if (c->replying && c->cfd >= 0)
			write_reply(c, now);
	}
}

void paste_srv_frame(struct paste_srv *c, const struct proto_msg *m,
		     long long now)
{
	if (!c->waiting || m->chan != c->chan)
		return; /* stale: for a request given up on */
	c->deadline = now + PASTE_IDLE_MS;
	if (m->type == PROTO_CLIP_DATA) {
		if (c->overflow || m->len == 0)
			return;
		if (!reserve(c, m->len)) {
			c->overflow = true;
			return;
		}
		memcpy(c->buf + c->len, m->data, m->len);
		c->len += m->len;
		return;
	}
	if (m->type != PROTO_CLIP_END)
		return;
	uint8_t status;
	if (proto_clip_end_decode(m->data, m->len, &status) < 0)
		status = PROTO_CLIP_FAILED;
	reply(c, status, now);
	if (c->cfd >= 0)
		write_reply(c, now);
}
