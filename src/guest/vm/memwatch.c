/* The guest's memory watcher and OOM count (memwatch.h). */
#define _GNU_SOURCE
#include "vm/memwatch.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "glog.h"
#include "util.h"

#define SAMPLE_MS     250  /* MemAvailable is read this often */
#define CONFIRM_MS    100  /* and once more this soon when it is low */
#define AFTER_KILL_MS 2000 /* the kill frees memory meanwhile */
#define PROC_MAX      (64 * 1024)

uint64_t memwatch_threshold_kb(uint64_t total_kb)
{
	uint64_t t = total_kb / 16;
	if (t < 32 * 1024)
		t = 32 * 1024;
	if (t > 128 * 1024)
		t = 128 * 1024;
	return t;
}

/* The number after "name" at the start of a line of text, or -1. */
static int64_t field(const char *text, size_t len, const char *name)
{
	size_t nl = strlen(name);
	for (size_t i = 0; i < len;) {
		const char *line = text + i;
		const char *end = memchr(line, '\n', len - i);
		size_t ll = end ? (size_t)(end - line) : len - i;
		if (ll > nl && !memcmp(line, name, nl) &&
		    (line[nl] == ' ' || line[nl] == '\t')) {
			uint64_t v = 0;
			size_t k = nl;
			while (k < ll && (line[k] == ' ' || line[k] == '\t'))
				k++;
			size_t digits = 0;
			for (; k < ll && line[k] >= '0' && line[k] <= '9';
			     k++, digits++) {
				if (v > (UINT64_MAX - 9) / 10)
					return -1;
				v = v * 10 + (uint64_t)(line[k] - '0');
			}
			return digits && v <= INT64_MAX ? (int64_t)v : -1;
		}
		i += ll + 1;
	}
	return -1;
}

int memwatch_parse_meminfo(const char *text, size_t len, uint64_t *total_kb,
			   uint64_t *avail_kb)
{
	int64_t t = field(text, len, "MemTotal:");
	int64_t a = field(text, len, "MemAvailable:");
	if (t < 0 || a < 0)
		return -EINVAL;
	*total_kb = (uint64_t)t;
	*avail_kb = (uint64_t)a;
	return 0;
}

uint64_t memwatch_parse_oom_kills(const char *text, size_t len)
{
	int64_t v = field(text, len, "oom_kill");
	return v < 0 ? 0 : (uint64_t)v;
}

/* Reads a /proc file into buf (NUL-terminated); its length, or -1. */
static ssize_t read_proc(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t n = 0;
	while (n < size - 1) {
		ssize_t k = read(fd, buf + n, size - 1 - n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		n += (size_t)k;
	}
	close(fd);
	buf[n] = '\0';
	return (ssize_t)n;
}

uint64_t memwatch_oom_kills(void)
{
	static char buf[PROC_MAX];
	ssize_t n = read_proc("/proc/vmstat", buf, sizeof(buf));
	return n > 0 ? memwatch_parse_oom_kills(buf, (size_t)n) : 0;
}

/* MemAvailable under the threshold; false when it cannot tell. */
static bool low(void)
{
	static char buf[PROC_MAX];
	uint64_t total, avail;
	ssize_t n = read_proc("/proc/meminfo", buf, sizeof(buf));
	if (n <= 0 ||
	    memwatch_parse_meminfo(buf, (size_t)n, &total, &avail) < 0)
		return false;
	return avail < memwatch_threshold_kb(total);
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000,
			      .tv_nsec = (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static void __attribute__((noreturn)) watch(void)
{
	glog_set_writer(NULL); /* the port is PID 1's */
	/* Never the OOM killer's pick. */
	int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)util_write_all(fd, "-1000", 5);
		close(fd);
	}
	for (;;) {
		sleep_ms(SAMPLE_MS);
		if (!low())
			continue;
		sleep_ms(CONFIRM_MS);
		if (!low())
			continue;
		fd = open("/proc/sysrq-trigger", O_WRONLY | O_CLOEXEC);
		if (fd >= 0) {
			(void)util_write_all(fd, "f", 1);
			close(fd);
		}
		glog("memory low: the OOM killer was called");
		sleep_ms(AFTER_KILL_MS);
	}
}

pid_t memwatch_start(void)
{
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* No fd of PID 1's: not the port, not the program's pty or
		 * pipes (its stdin would never see EOF). */
		syscall(SYS_close_range, 3, ~0u, 0);
		prctl(PR_SET_NAME, "ccvm-memwatch");
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		watch();
	}
	return pid;
}
