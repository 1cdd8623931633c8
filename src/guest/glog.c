#define _GNU_SOURCE
#include "glog.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"
#include "util.h"

static bool console_on;
static struct proto_writer *log_writer;

void glog_set_console(bool on)
{
	console_on = on;
}

bool glog_console_enabled(void)
{
	return console_on;
}

void glog_set_writer(struct proto_writer *w)
{
	log_writer = w;
}

static void __attribute__((format(printf, 3, 0)))
emit(bool console, bool frame, const char *fmt, va_list ap)
{
	char line[1024];
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	if (n < 0)
		return;
	size_t len = strnlen(line, sizeof(line) - 1);
	if (frame && log_writer)
		proto_writer_put(log_writer, PROTO_LOG, 0, line, len);
	if (console) {
		line[len++] = '\n';
		/* stderr is the console; best effort. */
		(void)util_write_all(STDERR_FILENO, "ccvm-init: ", 11);
		(void)util_write_all(STDERR_FILENO, line, len);
	}
}

void glog(const char *fmt, ...)
{
	if (!console_on && !log_writer)
		return;
	va_list ap;
	va_start(ap, fmt);
	emit(console_on, true, fmt, ap);
	va_end(ap);
}

void glog_always(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(true, false, fmt, ap);
	va_end(ap);
}
