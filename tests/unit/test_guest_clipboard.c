/* Unit tests for the guest's xclip and wl-paste stand-ins: the command
 * lines Claude Code and people use, and which ones may ask the host. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "term/clipboard.h"

#define ARGS(...)                                                              \
	(sizeof((char *[]){__VA_ARGS__}) / sizeof(char *)),                    \
	    ((char *[]){__VA_ARGS__})

static void xclip(struct paste_args *a, int n, char *args[])
{
	paste_parse_xclip(n, args, a);
}

static void wl(struct paste_args *a, int n, char *args[])
{
	paste_parse_wl_paste(n, args, a);
}

static void test_xclip(void **state)
{
	(void)state;
	struct paste_args a;
	/* Claude Code's list and read. */
	xclip(&a, ARGS("-selection", "clipboard", "-o", "-t", "TARGETS"));
	assert_int_equal(a.ask, PASTE_ASK_LIST);
	assert_false(a.primary);
	xclip(&a, ARGS("-selection", "clipboard", "-t", "image/png", "-o"));
	assert_int_equal(a.ask, PASTE_ASK_GET);
	assert_string_equal(a.target, "image/png");
	assert_false(a.primary);
	/* Abbreviations and flags xclip takes. */
	xclip(&a, ARGS("-sel", "c", "-out", "-target", "image/bmp", "-quiet",
		       "-d", ":1"));
	assert_int_equal(a.ask, PASTE_ASK_GET);
	assert_false(a.primary);
	/* Default selection is PRIMARY; default target text. */
	xclip(&a, ARGS("-o", "-t", "image/png"));
	assert_int_equal(a.ask, PASTE_ASK_GET);
	assert_true(a.primary);
	xclip(&a, ARGS("-selection", "clipboard", "-o"));
	assert_int_equal(a.ask, PASTE_ASK_TEXT);
	assert_string_equal(a.target, "UTF8_STRING");
	xclip(&a, ARGS("-selection", "clipboard", "-o", "-noutf8"));
	assert_string_equal(a.target, "STRING");
	xclip(&a, ARGS("-selection", "clipboard", "-o", "-t", "UTF8_STRING"));
	assert_int_equal(a.ask, PASTE_ASK_TEXT);
	/* text/plain is well-formed: it goes to the host, which says no. */
	xclip(&a, ARGS("-selection", "clipboard", "-o", "-t", "text/plain"));
	assert_int_equal(a.ask, PASTE_ASK_GET);
	/* Copying in (Claude Code's screenshot copy), no mode at all. */
	xclip(&a, ARGS("-selection", "clipboard", "-t", "image/png", "-i",
		       "/tmp/shot.png"));
	assert_int_equal(a.ask, PASTE_ASK_UNSUPPORTED);
	xclip(&a, ARGS("-selection", "clipboard"));
	assert_int_equal(a.ask, PASTE_ASK_UNSUPPORTED);
	xclip(&a, ARGS("-o", "-filter"));
	assert_int_equal(a.ask, PASTE_ASK_UNSUPPORTED);
	/* Bad options, missing values. */
	xclip(&a, ARGS("-o", "-bogus"));
	assert_int_equal(a.ask, PASTE_ASK_USAGE);
	assert_string_equal(a.bad, "-bogus");
	xclip(&a, ARGS("-o", "-t"));
	assert_int_equal(a.ask, PASTE_ASK_USAGE);
	xclip(&a, ARGS("-o", "-"));
	assert_int_equal(a.ask, PASTE_ASK_USAGE);
	xclip(&a, ARGS("-h"));
	assert_int_equal(a.ask, PASTE_ASK_HELP);
	xclip(&a, ARGS("-version"));
	assert_int_equal(a.ask, PASTE_ASK_VERSION);
}

static void test_wl_paste(void **state)
{
	(void)state;
	struct paste_args a;
	wl(&a, ARGS("--list-types"));
	assert_int_equal(a.ask, PASTE_ASK_LIST);
	wl(&a, ARGS("-l"));
	assert_int_equal(a.ask, PASTE_ASK_LIST);
	wl(&a, ARGS("--type", "image/png"));
	assert_int_equal(a.ask, PASTE_ASK_GET);
	assert_string_equal(a.target, "image/png");
	assert_false(a.primary);
	wl(&a, ARGS("--type=image/jpeg", "--no-newline"));
	assert_int_equal(a.ask, PASTE_ASK_GET);
	assert_string_equal(a.target, "image/jpeg");
	wl(&a, ARGS("-nt", "image/gif"));
	assert_int_equal(a.ask, PASTE_ASK_GET);
	assert_string_equal(a.target, "image/gif");
	wl(&a, ARGS("-timage/webp"));
	assert_string_equal(a.target, "image/webp");
	wl(&a, ARGS("--ty", "image/png")); /* a unique prefix */
	assert_int_equal(a.ask, PASTE_ASK_GET);
	wl(&a, ARGS("-p", "-t", "image/png"));
	assert_true(a.primary);
	/* No type, or text: never an image request. */
	wl(&a, ARGS("--no-newline"));
	assert_int_equal(a.ask, PASTE_ASK_TEXT);
	wl(&a, ARGS("--type", "text"));
	assert_int_equal(a.ask, PASTE_ASK_TEXT);
	wl(&a, ARGS("-s", "seat0", "--type", "text/plain"));
	assert_int_equal(a.ask, PASTE_ASK_GET);
	/* Unsupported and bad. */
	wl(&a, ARGS("--watch", "cat"));
	assert_int_equal(a.ask, PASTE_ASK_UNSUPPORTED);
	wl(&a, ARGS("--type"));
	assert_int_equal(a.ask, PASTE_ASK_USAGE);
	wl(&a, ARGS("--list-types=x"));
	assert_int_equal(a.ask, PASTE_ASK_USAGE);
	wl(&a, ARGS("extra"));
	assert_int_equal(a.ask, PASTE_ASK_USAGE);
	wl(&a, ARGS("-x"));
	assert_int_equal(a.ask, PASTE_ASK_USAGE);
	wl(&a, ARGS("--help"));
	assert_int_equal(a.ask, PASTE_ASK_HELP);
	wl(&a, ARGS("-v"));
	assert_int_equal(a.ask, PASTE_ASK_VERSION);
}

static void test_tool_of(void **state)
{
	(void)state;
	assert_int_equal(paste_tool_of("xclip"), PASTE_XCLIP);
	assert_int_equal(paste_tool_of("/run/ccvm-bin/wl-paste"),
			 PASTE_WL_PASTE);
	assert_int_equal(paste_tool_of("/init"), -1);
	assert_int_equal(paste_tool_of("ccvm-clip"), -1);
	assert_int_equal(paste_tool_of("xclip-copyfile"), -1);
	assert_int_equal(paste_tool_of(NULL), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_xclip),
	    cmocka_unit_test(test_wl_paste),
	    cmocka_unit_test(test_tool_of),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
