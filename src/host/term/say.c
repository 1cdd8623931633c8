/* ccvm's own lines on stderr (say.h). */
#include "term/say.h"

#include <stdio.h>
#include <unistd.h>

static bool raw_mode;
static bool status_shown;

void say_set_raw(bool raw)
{
	raw_mode = raw;
}

void say_set_status(bool shown)
{
	status_shown = shown;
}

const char *say_eol(void)
{
	return raw_mode ? "\r\n" : "\n";
}

void say_v(const char *prefix, const char *fmt, va_list ap)
{
	/* One buffer and one write: a line is never interleaved with the
	 * guest's output written from the same process. */
	char line[2048];
	int n = snprintf(line, sizeof(line), "%sccvm: %s",
			 status_shown ? "\r\033[K" : "", prefix);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (m < 0)
		return;
	size_t len = (size_t)n + (size_t)m;
	if (len > sizeof(line) - 3)
		len = sizeof(line) - 3;
	const char *eol = say_eol();
	for (const char *e = eol; *e; e++)
		line[len++] = *e;
	status_shown = false;
	fflush(stderr);
	for (size_t off = 0; off < len;) {
		ssize_t w = write(STDERR_FILENO, line + off, len - off);
		if (w <= 0)
			break;
		off += (size_t)w;
	}
}

void say(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say_v("", fmt, ap);
	va_end(ap);
}

void say_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say_v("warning: ", fmt, ap);
	va_end(ap);
}
