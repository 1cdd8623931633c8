#pragma once
/*
 * Every line ccvm itself prints to the user (warnings, notices, the final
 * error) goes through here, so each comes out the same way: "ccvm: " and
 * the text, ended as the terminal needs it.  While the session holds the
 * terminal in raw mode a bare "\n" would not return the cursor, so lines
 * end in "\r\n"; while a status line (a spinner, a build step's clock) is
 * on screen it is cleared first, so the message does not land after it.
 */
#include <stdarg.h>
#include <stdbool.h>

/* The terminal's mode as term.c sets it: lines end "\r\n" while raw. */
void say_set_raw(bool raw);
/* A status line is on stderr's last line (cleared before the next say). */
void say_set_status(bool shown);

/* "ccvm: <text>" on stderr. */
void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "ccvm: warning: <text>" on stderr. */
void say_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void say_v(const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
/* The end of line for text printed beside say(): "\r\n" or "\n". */
const char *say_eol(void);
