/* Unit tests for shared helpers (src/common/util.c). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "util.h"

static void check_name(const char *path, const char *want)
{
	char *got = util_claude_project_name(path);
	assert_non_null(got);
	if (strcmp(got, want) != 0)
		fail_msg("%s: got %s, want %s", path, got, want);
	free(got);
}

/* Claude Code's rule: every UTF-16 code unit that is not an ASCII letter
 * or digit becomes '-', runs kept. */
static void test_claude_project_name(void **state)
{
	(void)state;
	check_name("/home/u/proj", "-home-u-proj");
	check_name("/home/u/my_repo.v2 x", "-home-u-my-repo-v2-x");
	check_name("/home/u/.local--x", "-home-u--local--x");
	check_name("/", "-");
	/* é is one UTF-16 unit, an emoji two; a stray byte one. */
	check_name("/h/caf\xc3\xa9", "-h-caf-");
	check_name("/h/\xf0\x9f\x98\x80x", "-h---x");
	check_name("/h/\xff"
		   "a",
		   "-h--a");
	/* Exactly 200: kept whole. */
	char p[512];
	memset(p, 'a', 200);
	p[0] = '/';
	p[200] = '\0';
	char w[512];
	memcpy(w, p, 201);
	w[0] = '-';
	check_name(p, w);
}

/* Past 200 characters: the first 200, '-', the base-36 hash (h = 31h + c
 * over 32 bits, absolute value), as Claude Code computes it. */
static void test_claude_project_name_long(void **state)
{
	(void)state;
	char p[512];
	memset(p, 'a', 260);
	p[0] = '/';
	p[260] = '\0';
	uint32_t h = 0;
	for (size_t i = 0; i < 260; i++)
		h = h * 31 + (unsigned char)p[i];
	int32_t s = (int32_t)h;
	unsigned long a =
	    s < 0 ? 0ul - (unsigned long)(long)s : (unsigned long)s;
	char digits[16];
	size_t d = 0;
	do {
		digits[d++] = "0123456789abcdefghijklmnopqrstuvwxyz"[a % 36];
		a /= 36;
	} while (a);
	char w[512];
	memcpy(w, p, 200);
	w[0] = '-';
	size_t o = 200;
	w[o++] = '-';
	while (d)
		w[o++] = digits[--d];
	w[o] = '\0';
	check_name(p, w);
	char *got = util_claude_project_name(p);
	assert_true(strlen(got) <= 208);
	free(got);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_claude_project_name),
	    cmocka_unit_test(test_claude_project_name_long),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
