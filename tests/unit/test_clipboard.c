/* Unit tests for the host's side of image paste (src/host/term/clipboard.c): which
 * types may cross, the type-list filter, image signatures, the tools' argv
 * and environment. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "term/clipboard.h"

static void test_allowed(void **state)
{
	(void)state;
	static const char *const yes[] = {"image/png",	"image/jpeg",
					  "image/jpg",	"image/gif",
					  "image/webp", "image/bmp"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		assert_true(clip_mime_allowed(yes[i]));
	static const char *const no[] = {
	    "text/plain", "UTF8_STRING",   "STRING",
	    "TARGETS",	  "image/svg+xml", "image/PNG",
	    "image/png ", "text/uri-list", "image/x-bmp",
	    "",		  "image/png;x",   "text/html"};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_false(clip_mime_allowed(no[i]));
}

static void test_filter(void **state)
{
	(void)state;
	char out[256];
	/* What xclip prints for a browser's copied image with text. */
	static const char x11[] = "TARGETS\nMULTIPLE\nSAVE_TARGETS\n"
				  "UTF8_STRING\ntext/plain\nimage/png\n"
				  "text/html\nimage/bmp\nimage/png\n";
	size_t n = clip_filter_targets(x11, strlen(x11), out, sizeof(out));
	assert_int_equal(n, strlen("image/png\nimage/bmp\n"));
	assert_memory_equal(out, "image/png\nimage/bmp\n", n);
	/* wl-paste -l with CRLF and no final newline. */
	static const char wl[] = "text/plain;charset=utf-8\r\nimage/jpeg\r\n"
				 "image/webp";
	n = clip_filter_targets(wl, strlen(wl), out, sizeof(out));
	assert_int_equal(n, strlen("image/jpeg\nimage/webp\n"));
	assert_memory_equal(out, "image/jpeg\nimage/webp\n", n);
	/* Text only, look-alikes, empty. */
	static const char text[] = "UTF8_STRING\nimage/pngx\nximage/png\n"
				   " image/png\ntext/plain\n";
	assert_int_equal(
	    clip_filter_targets(text, strlen(text), out, sizeof(out)), 0);
	assert_int_equal(clip_filter_targets("", 0, out, sizeof(out)), 0);
	/* Never more than outsz. */
	n = clip_filter_targets(x11, strlen(x11), out, 12);
	assert_int_equal(n, 10);
}

static void test_magic(void **state)
{
	(void)state;
	static const uint8_t png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";
	static const uint8_t jpg[] = "\xff\xd8\xff\xe0\0\x10JFIF";
	static const uint8_t gif[] = "GIF89a\x01\0\x01\0";
	static const uint8_t webp[] = "RIFF\x10\0\0\0WEBPVP8 ";
	static const uint8_t bmp[] = "BM\x36\0\0\0\0\0\0\0\x36\0\0\0";
	static const uint8_t text[] = "hello, this is text";
	assert_true(clip_magic_ok("image/png", png, sizeof(png) - 1));
	assert_true(clip_magic_ok("image/jpeg", jpg, sizeof(jpg) - 1));
	assert_true(clip_magic_ok("image/jpg", jpg, sizeof(jpg) - 1));
	assert_true(clip_magic_ok("image/gif", gif, sizeof(gif) - 1));
	assert_true(clip_magic_ok("image/webp", webp, sizeof(webp) - 1));
	assert_true(clip_magic_ok("image/bmp", bmp, sizeof(bmp) - 1));
	/* Wrong type for the bytes, text, too short, unknown type. */
	assert_false(clip_magic_ok("image/png", jpg, sizeof(jpg) - 1));
	assert_false(clip_magic_ok("image/png", text, sizeof(text) - 1));
	assert_false(clip_magic_ok("image/bmp", (const uint8_t *)"BM", 2));
	assert_false(clip_magic_ok("image/png", png, 7));
	assert_false(clip_magic_ok("image/webp", webp, 11));
	assert_false(clip_magic_ok("text/plain", text, sizeof(text) - 1));
	assert_false(clip_magic_ok("image/png", png, 0));
}

static void test_backend_and_argv(void **state)
{
	(void)state;
	assert_int_equal(clip_backend_choose("wayland-0", ":0"),
			 CLIP_BACKEND_WAYLAND);
	assert_int_equal(clip_backend_choose("", ":0"), CLIP_BACKEND_X11);
	assert_int_equal(clip_backend_choose(NULL, ":1"), CLIP_BACKEND_X11);
	assert_int_equal(clip_backend_choose(NULL, ""), CLIP_BACKEND_NONE);
	assert_int_equal(clip_backend_choose(NULL, NULL), CLIP_BACKEND_NONE);

	const char *argv[CLIP_ARGV_MAX];
	struct proto_clip_req list = {.op = PROTO_CLIP_TARGETS};
	struct proto_clip_req get = {.op = PROTO_CLIP_GET, .mime = "image/gif"};
	clip_argv_build(CLIP_BACKEND_WAYLAND, "/usr/bin/wl-paste", &list, argv);
	assert_string_equal(argv[0], "/usr/bin/wl-paste");
	assert_string_equal(argv[1], "--list-types");
	assert_null(argv[2]);
	clip_argv_build(CLIP_BACKEND_WAYLAND, "/usr/bin/wl-paste", &get, argv);
	assert_string_equal(argv[1], "--no-newline");
	assert_string_equal(argv[2], "--type");
	assert_string_equal(argv[3], "image/gif");
	assert_null(argv[4]);
	clip_argv_build(CLIP_BACKEND_X11, "/usr/bin/xclip", &list, argv);
	static const char *const xl[] = {
	    "/usr/bin/xclip", "-selection", "clipboard", "-o", "-t", "TARGETS"};
	for (size_t i = 0; i < 6; i++)
		assert_string_equal(argv[i], xl[i]);
	assert_null(argv[6]);
	clip_argv_build(CLIP_BACKEND_X11, "/usr/bin/xclip", &get, argv);
	assert_string_equal(argv[5], "image/gif");
	assert_null(argv[6]);
}

static const char *fake_env(const char *name)
{
	if (!strcmp(name, "WAYLAND_DISPLAY"))
		return "wayland-1";
	if (!strcmp(name, "XDG_RUNTIME_DIR"))
		return "/run/user/1000";
	if (!strcmp(name, "DISPLAY"))
		return ":0";
	if (!strcmp(name, "XAUTHORITY"))
		return "/tmp/x\nEVIL=1"; /* a control byte: left out */
	if (!strcmp(name, "HOME"))
		return "/home/u";
	return "leaked"; /* nothing else may be asked for */
}

static size_t count(char *const *v)
{
	size_t n = 0;
	while (v[n])
		n++;
	return n;
}

static void test_envp(void **state)
{
	(void)state;
	static struct clip_envp e;
	clip_envp_build(CLIP_BACKEND_WAYLAND, fake_env, &e);
	assert_int_equal(count(e.v), 4);
	assert_string_equal(e.v[0], "PATH=/usr/bin:/bin");
	assert_string_equal(e.v[1], "LC_ALL=C");
	assert_string_equal(e.v[2], "WAYLAND_DISPLAY=wayland-1");
	assert_string_equal(e.v[3], "XDG_RUNTIME_DIR=/run/user/1000");
	clip_envp_build(CLIP_BACKEND_X11, fake_env, &e);
	assert_int_equal(count(e.v), 4);
	assert_string_equal(e.v[2], "DISPLAY=:0");
	assert_string_equal(e.v[3], "HOME=/home/u");
	for (size_t i = 0; e.v[i]; i++)
		assert_null(strstr(e.v[i], "leaked"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_allowed),
	    cmocka_unit_test(test_filter),
	    cmocka_unit_test(test_magic),
	    cmocka_unit_test(test_backend_and_argv),
	    cmocka_unit_test(test_envp),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
