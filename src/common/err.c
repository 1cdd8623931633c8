#define CCVM_ERR_IMPL /* the functions, not err.h's analyzer wrappers */
#include "err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

__attribute__((format(printf, 4, 0))) static int
err_vset(struct ccvm_err *err, int errnum, int with_strerror, const char *fmt,
	 va_list ap)
{
	if (errnum <= 0)
		errnum = EINVAL;
	if (err == NULL)
		return -errnum;
	err->code = -errnum;
	int n = vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
	if (n < 0)
		err->msg[0] = '\0';
	else if (with_strerror && (size_t)n < sizeof(err->msg))
		snprintf(err->msg + n, sizeof(err->msg) - (size_t)n, ": %s",
			 strerror(errnum));
	return -errnum;
}

int ccvm_err_set(struct ccvm_err *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = err_vset(err, errnum, 0, fmt, ap);
	va_end(ap);
	return r;
}

int ccvm_err_sys(struct ccvm_err *err, int errnum, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = err_vset(err, errnum, 1, fmt, ap);
	va_end(ap);
	return r;
}

void ccvm_err_clear(struct ccvm_err *err)
{
	if (err) {
		err->code = 0;
		err->msg[0] = '\0';
	}
}
