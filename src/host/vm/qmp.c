/* A small blocking QMP client (qmp.h). */
#define _GNU_SOURCE
#include "vm/qmp.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/* The next line from QEMU as JSON, or NULL with err set. */
static json_t *next_line(struct qmp *q, long long deadline,
			 struct ccvm_err *err)
{
	for (;;) {
		char *nl = memchr(q->buf, '\n', q->len);
		if (nl) {
			size_t n = (size_t)(nl - q->buf) + 1;
			json_error_t je;
			json_t *j = json_loadb(q->buf, n, 0, &je);
			memmove(q->buf, q->buf + n, q->len - n);
			q->len -= n;
			if (!j || !json_is_object(j)) {
				json_decref(j);
				ccvm_err_set(
				    err, EPROTO,
				    "QMP: unreadable answer from QEMU");
				return NULL;
			}
			return j;
		}
		if (q->len == sizeof(q->buf)) {
			ccvm_err_set(err, EMSGSIZE,
				     "QMP: an answer over %zu bytes",
				     sizeof(q->buf));
			return NULL;
		}
		long long left = deadline - util_now_ms();
		if (left <= 0) {
			ccvm_err_set(err, ETIMEDOUT,
				     "QMP: QEMU did not answer in time");
			return NULL;
		}
		struct pollfd p = {.fd = q->fd, .events = POLLIN};
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno != EINTR) {
			ccvm_err_sys(err, errno, "QMP: poll");
			return NULL;
		}
		if (r <= 0)
			continue;
		ssize_t n =
		    read(q->fd, q->buf + q->len, sizeof(q->buf) - q->len);
		if (n == 0) {
			ccvm_err_set(err, EPIPE,
				     "QMP: QEMU closed its monitor");
			return NULL;
		}
		if (n < 0 && errno != EINTR && errno != EAGAIN) {
			ccvm_err_sys(err, errno, "QMP: read");
			return NULL;
		}
		if (n > 0)
			q->len += (size_t)n;
	}
}

int qmp_open(struct qmp *q, int fd, int timeout_ms, struct ccvm_err *err)
{
	q->fd = fd;
	q->len = 0;
	json_t *g = next_line(q, util_now_ms() + timeout_ms, err);
	if (!g)
		return err->code;
	bool ok = json_object_get(g, "QMP") != NULL;
	json_decref(g);
	if (!ok)
		return ccvm_err_set(err, EPROTO, "QMP: no greeting from QEMU");
	return qmp_call(q, "qmp_capabilities", NULL, NULL, timeout_ms, err);
}

/* The command's text, with fd attached when >= 0. */
static int send_cmd(struct qmp *q, const char *text, size_t n, int fd)
{
	if (fd < 0)
		return util_write_all(q->fd, text, n) < 0 ? -errno : 0;
	ssize_t w = util_send_fd(q->fd, text, n, fd);
	if (w < 0)
		return (int)w;
	/* The fd went with the first byte; the rest as usual. */
	return util_write_all(q->fd, text + w, n - (size_t)w) < 0 ? -errno : 0;
}

int qmp_call(struct qmp *q, const char *cmd, json_t *args, json_t **ret,
	     int timeout_ms, struct ccvm_err *err)
{
	return qmp_call_fd(q, cmd, args, -1, ret, timeout_ms, err);
}

int qmp_call_fd(struct qmp *q, const char *cmd, json_t *args, int fd,
		json_t **ret, int timeout_ms, struct ccvm_err *err)
{
	if (ret)
		*ret = NULL;
	json_t *req = json_pack("{s:s}", "execute", cmd);
	if (req && args && json_object_set_new(req, "arguments", args) < 0) {
		json_decref(req);
		req = NULL;
	} else if (!req) {
		json_decref(args);
	}
	char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
	json_decref(req);
	if (!text)
		return ccvm_err_sys(err, ENOMEM, "QMP: %s", cmd);
	size_t n = strlen(text);
	text[n] = '\n'; /* json_dumps leaves room for the NUL only */
	int r = send_cmd(q, text, n + 1, fd);
	free(text);
	if (r < 0)
		return ccvm_err_sys(err, -r, "QMP: sending %s", cmd);
	long long deadline = util_now_ms() + timeout_ms;
	for (;;) {
		json_t *a = next_line(q, deadline, err);
		if (!a)
			return err->code;
		json_t *e = json_object_get(a, "error");
		json_t *v = json_object_get(a, "return");
		if (e) {
			const char *d =
			    json_string_value(json_object_get(e, "desc"));
			ccvm_err_set(err, EIO, "QEMU refused %s: %s", cmd,
				     d ? d : "no reason given");
			json_decref(a);
			return -EIO;
		}
		if (v) {
			if (ret)
				*ret = json_incref(v);
			json_decref(a);
			return 0;
		}
		json_decref(a); /* an event */
	}
}

int qmp_wait_migration(struct qmp *q, int timeout_ms, struct ccvm_err *err)
{
	long long deadline = util_now_ms() + timeout_ms;
	for (;;) {
		json_t *v = NULL;
		int r = qmp_call(q, "query-migrate", NULL, &v, timeout_ms, err);
		if (r < 0)
			return r;
		const char *st =
		    json_string_value(json_object_get(v, "status"));
		bool done = st && !strcmp(st, "completed");
		bool failed =
		    st && (!strcmp(st, "failed") || !strcmp(st, "cancelled"));
		if (failed) {
			const char *why =
			    json_string_value(json_object_get(v, "error-desc"));
			ccvm_err_set(err, EIO, "QEMU's migration failed: %s",
				     why ? why : st);
		}
		json_decref(v);
		if (done)
			return 0;
		if (failed)
			return -EIO;
		if (util_now_ms() > deadline)
			return ccvm_err_set(err, ETIMEDOUT,
					    "QEMU's migration took over %d ms",
					    timeout_ms);
		struct timespec ts = {0, 2 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}
