#pragma once
/*
 * Error reporting for library code.  Only main() exits; every other
 * function returns 0 or a negative errno and may describe the failure in a
 * struct ccvm_err, naming the file, option or path involved.
 */
#include <stddef.h>

#define CCVM_ERR_MAX 1024

struct ccvm_err {
	int code; /* negative errno, 0 when unset */
	char msg[CCVM_ERR_MAX];
};

/* Fills err (if non-NULL) and returns -errnum (errnum > 0). */
int ccvm_err_set(struct ccvm_err *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Like ccvm_err_set, appending ": strerror(errnum)". */
int ccvm_err_sys(struct ccvm_err *err, int errnum, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void ccvm_err_clear(struct ccvm_err *err);

#if defined(__clang_analyzer__) && !defined(CCVM_ERR_IMPL)
/* clang-tidy's analyzer reads one file at a time and cannot see that the
 * two above return < 0, so it follows "error" paths as if they succeeded:
 * here it may know. */
static inline int ccvm_err_neg_(int r)
{
	return r < 0 ? r : -1;
}
#define ccvm_err_set(...) ccvm_err_neg_(ccvm_err_set(__VA_ARGS__))
#define ccvm_err_sys(...) ccvm_err_neg_(ccvm_err_sys(__VA_ARGS__))
#endif
