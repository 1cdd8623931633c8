/* Unit tests for the hand-over (src/host/setup/handover.c): the frames a
 * struct handover becomes, in order, and the checks made before booting. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "proto.h"
#include "setup.h"
#include "setup/handover.h"
#include "setup/stage.h"
#include "sys/procs.h"
#include "util.h"

/*
 * ccvm's copy of the key lives in sys/procs.c.  This binary is linked
 * with -Wl,--wrap=procs_secret_free (Makefile), so handover.o's call
 * lands here: the test sees the wipe, then the real function runs.
 */
static char key_copy[] = "sk-ant-test-0123456789";
static int wipes;

void __real_procs_secret_free(void);
void __wrap_procs_secret_free(void);
void __wrap_procs_secret_free(void)
{
	explicit_bzero(key_copy, sizeof(key_copy));
	wipes++;
	__real_procs_secret_free();
}

struct frames {
	struct proto_msg v[64];
	size_t n;
};

static void split(const struct proto_writer *w, struct frames *f)
{
	f->n = 0;
	for (size_t off = w->off; off < w->len;) {
		assert_true(f->n < ARRAY_LEN(f->v));
		ssize_t n =
		    proto_decode(w->buf + off, w->len - off, &f->v[f->n]);
		assert_true(n > 0);
		off += (size_t)n;
		f->n++;
	}
}

static void expect_frame(const struct proto_msg *m, uint8_t type,
			 const char *payload)
{
	assert_string_equal(proto_type_name(m->type), proto_type_name(type));
	if (payload) {
		assert_int_equal(m->len, strlen(payload));
		assert_memory_equal(m->data, payload, m->len);
	}
}

static void add_staged(struct stage_list *l, const char *path, uint32_t mode,
		       size_t len, char fill)
{
	l->v = reallocarray(l->v, l->n + 1, sizeof(*l->v));
	assert_non_null(l->v);
	struct stage_file *f = &l->v[l->n++];
	f->path = strdup(path);
	f->mode = mode;
	f->data = malloc(len);
	assert_non_null(f->data);
	memset(f->data, fill, len);
	f->len = len;
	l->total_bytes += len;
}

/* The variables that may cross (handover_env_value), all unset. */
static void clear_env(void)
{
	static const char *const vars[] = {"COLORTERM",
					   "TERM_PROGRAM",
					   "TERM_PROGRAM_VERSION",
					   "TZ",
					   "NO_COLOR",
					   "LANG",
					   "LC_ALL",
					   "LC_CTYPE",
					   "LC_NUMERIC",
					   "LC_TIME",
					   "LC_COLLATE",
					   "LC_MONETARY",
					   "LC_MESSAGES",
					   "LC_PAPER",
					   "LC_NAME",
					   "LC_ADDRESS",
					   "LC_TELEPHONE",
					   "LC_MEASUREMENT",
					   "LC_IDENTIFICATION"};
	for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
		unsetenv(vars[i]);
}

static void test_env_value(void **state)
{
	(void)state;
	assert_int_equal(handover_env_value("TZ", "Europe/Berlin"), 0);
	assert_int_equal(handover_env_value("NO_COLOR", ""), 0);
	assert_int_equal(handover_env_value("LC_MESSAGES", "de_DE.UTF-8"), 0);
	assert_int_equal(handover_env_value("TZ", NULL), -EINVAL);
	assert_int_equal(handover_env_value("TZ", "a\nb"), -EINVAL);
	assert_int_equal(handover_env_value("LANG", "x\x7f"), -EINVAL);
	assert_int_equal(handover_env_value("HOME", "/root"), -EINVAL);
	assert_int_equal(handover_env_value("LC_BOGUS", "C"), -EINVAL);
	char big[300];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(handover_env_value("TZ", big), -EINVAL);
	big[256] = '\0';
	assert_int_equal(handover_env_value("TZ", big), 0);
}

static void test_frames(void **state)
{
	(void)state;
	clear_env();
	setenv("COLORTERM", "truecolor", 1);
	/* The host's time zone, colour choice and locale cross. */
	setenv("TZ", "Pacific/Auckland", 1);
	setenv("NO_COLOR", "1", 1);
	setenv("LANG", "de_DE.UTF-8", 1);
	setenv("LC_TIME", "en_GB.UTF-8", 1);
	setenv("LC_ALL", "bad\tvalue", 1);
	struct stage_list staged = {0};
	add_staged(&staged, ".claude/settings.json", 0644, 3, 's');
	/* One byte more than fits a frame with this path: two frames. */
	size_t big = PROTO_MAX_PAYLOAD - 4 - sizeof(".gitconfig") + 1;
	add_staged(&staged, ".gitconfig", 0755, big, 'g');
	char *argv[] = {"-p", "hello world"};
	struct handover h = {
	    .cwd = "/work/proj",
	    .writable = false,
	    .virtiofs = true,
	    .share_sync = true,
	    .pty = true,
	    .rows = 40,
	    .cols = 120,
	    .term = "xterm-kitty",
	    .projects = true,
	    .scratch = false,
	    .debug = true,
	    .nix = true,
	    .argc = 2,
	    .argv = argv,
	    .api_url = "http://10.0.2.2:8080",
	    .key_var = "CCVM_TEST_KEY",
	    .key = key_copy,
	    .key_len = strlen(key_copy),
	    .staged = &staged,
	};
	struct proto_writer w;
	assert_int_equal(proto_writer_init(&w), 0);
	bool secrets = false;
	struct ccvm_err err = {0};
	wipes = 0;
	assert_int_equal(handover_queue(&w, &h, &secrets, &err), 0);
	assert_true(secrets);
	/* ccvm's own copy of the key is wiped once queued. */
	assert_int_equal(wipes, 1);
	for (size_t i = 0; i < sizeof(key_copy); i++)
		assert_int_equal(key_copy[i], 0);
	assert_null(staged.v); /* the list is freed */

	struct frames f;
	split(&w, &f);
	assert_int_equal(f.n, 18);
	size_t i = 0;
	expect_frame(&f.v[i], PROTO_HELLO, NULL);
	assert_int_equal(proto_get_u32(f.v[i++].data), PROTO_VERSION);

	expect_frame(&f.v[i], PROTO_SETUP, NULL);
	struct guest_setup s;
	assert_int_equal(setup_decode(f.v[i].data, f.v[i].len, &s, &err), 0);
	assert_memory_equal(f.v[i].data, "mode=agent\0cwd=/work/proj\0", 26);
	i++;
	struct passwd *pw = getpwuid(getuid());
	assert_non_null(pw);
	assert_false(s.shell);
	assert_string_equal(s.cwd, "/work/proj");
	assert_false(s.writable);
	assert_true(s.virtiofs);
	assert_true(s.share_sync);
	assert_string_equal(s.user, pw->pw_name);
	assert_int_equal(s.uid, getuid());
	assert_int_equal(s.gid, getgid());
	assert_string_equal(s.home, pw->pw_dir);
	assert_true(s.pty);
	assert_int_equal(s.rows, 40);
	assert_int_equal(s.cols, 120);
	assert_string_equal(s.term, "xterm-kitty");
	assert_true(s.projects);
	assert_false(s.scratch);
	assert_true(s.debug);

	expect_frame(&f.v[i++], PROTO_ARG, "claude");
	expect_frame(&f.v[i++], PROTO_ARG, "-p");
	expect_frame(&f.v[i++], PROTO_ARG, "hello world");
	expect_frame(&f.v[i++], PROTO_ENV, "LANG=C.UTF-8");
	expect_frame(&f.v[i++], PROTO_ENV, "NIX_REMOTE=daemon");
	expect_frame(&f.v[i++], PROTO_ENV, "COLORTERM=truecolor");
	expect_frame(&f.v[i++], PROTO_ENV, "TZ=Pacific/Auckland");
	expect_frame(&f.v[i++], PROTO_ENV, "NO_COLOR=1");
	expect_frame(&f.v[i++], PROTO_ENV, "LANG=de_DE.UTF-8");
	expect_frame(&f.v[i++], PROTO_ENV, "LC_TIME=en_GB.UTF-8");
	expect_frame(&f.v[i++], PROTO_ENV,
		     "ANTHROPIC_BASE_URL=http://10.0.2.2:8080");
	expect_frame(&f.v[i++], PROTO_SECRET,
		     "ANTHROPIC_API_KEY=sk-ant-test-0123456789");

	struct {
		const char *path;
		uint32_t mode;
		size_t len;
		char fill;
	} files[] = {
	    {".claude/settings.json", 0644, 3, 's'},
	    {".gitconfig", 0755, big - 1, 'g'},
	    {".gitconfig", 0755 | PROTO_FILE_APPEND, 1, 'g'},
	};
	for (size_t k = 0; k < ARRAY_LEN(files); k++, i++) {
		expect_frame(&f.v[i], PROTO_FILE, NULL);
		const uint8_t *d = f.v[i].data;
		size_t pl = strlen(files[k].path) + 1;
		assert_int_equal(proto_get_u32(d), files[k].mode);
		assert_memory_equal(d + 4, files[k].path, pl);
		assert_int_equal(f.v[i].len, 4 + pl + files[k].len);
		for (size_t b = 0; b < files[k].len; b++)
			assert_int_equal(d[4 + pl + b], files[k].fill);
	}
	expect_frame(&f.v[i], PROTO_START, "");
	assert_int_equal(f.v[i].len, 0);
	proto_writer_wipe(&w);
	proto_writer_free(&w);
	clear_env();
}

static void test_shell(void **state)
{
	(void)state;
	clear_env();
	struct stage_list staged = {0};
	struct handover h = {
	    .shell = true, .cwd = "/p", .term = "", .staged = &staged};
	struct proto_writer w;
	assert_int_equal(proto_writer_init(&w), 0);
	bool secrets = false;
	struct ccvm_err err = {0};
	wipes = 0;
	assert_int_equal(handover_queue(&w, &h, &secrets, &err), 0);
	/* No key to send: ccvm's copies of the other credentials are wiped
	 * all the same. */
	assert_int_equal(wipes, 1);
	struct frames f;
	split(&w, &f);
	assert_int_equal(f.n, 6);
	struct guest_setup s;
	assert_int_equal(setup_decode(f.v[1].data, f.v[1].len, &s, &err), 0);
	assert_true(s.shell);
	assert_string_equal(s.term, "xterm-256color"); /* TERM unset */
	expect_frame(&f.v[2], PROTO_ARG, "bash");
	expect_frame(&f.v[3], PROTO_ARG, "-l");
	expect_frame(&f.v[4], PROTO_ENV, "LANG=C.UTF-8");
	expect_frame(&f.v[5], PROTO_START, "");
	proto_writer_free(&w);
}

static void test_long_argument(void **state)
{
	(void)state;
	char *arg = malloc(PROTO_MAX_PAYLOAD + 2);
	assert_non_null(arg);
	memset(arg, 'a', PROTO_MAX_PAYLOAD + 1);
	arg[PROTO_MAX_PAYLOAD + 1] = '\0';
	char *argv[] = {"ok", arg};
	struct stage_list staged = {0};
	struct handover h = {
	    .cwd = "/p", .argc = 2, .argv = argv, .staged = &staged};
	struct proto_writer w;
	assert_int_equal(proto_writer_init(&w), 0);
	bool secrets = false;
	struct ccvm_err err = {0};
	assert_int_equal(handover_queue(&w, &h, &secrets, &err), -E2BIG);
	assert_string_equal(err.msg, "argument 2 is too long");
	proto_writer_free(&w);
	free(arg);
}

/* What the guest would refuse is refused by the host, before booting. */
static void test_check(void **state)
{
	(void)state;
	struct ccvm_err err = {0};
	struct handover h = {.cwd = "/work/proj", .term = NULL};
	assert_int_equal(handover_check(&h, &err), 0);
	h.cwd = "/";
	assert_int_equal(handover_check(&h, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "root directory"));
	h.cwd = "/work/proj/";
	assert_int_equal(handover_check(&h, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "directory /work/proj/ is not usable "
					"in the guest (SETUP cwd"));
	h.cwd = "/work/proj";
	h.term = "screen 256";
	assert_int_equal(handover_check(&h, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "TERM value screen 256"));

	/* The queue refuses the same, before any frame. */
	struct stage_list staged = {0};
	h.staged = &staged;
	struct proto_writer w;
	assert_int_equal(proto_writer_init(&w), 0);
	bool secrets = false;
	assert_int_equal(handover_queue(&w, &h, &secrets, &err), -EINVAL);
	assert_false(proto_writer_pending(&w));
	proto_writer_free(&w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_env_value),
	    cmocka_unit_test(test_frames),
	    cmocka_unit_test(test_shell),
	    cmocka_unit_test(test_long_argument),
	    cmocka_unit_test(test_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
