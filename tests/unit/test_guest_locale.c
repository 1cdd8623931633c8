/* setup/locale.c (which locales the guest has) and env_build's use of it:
 * the host's LANG and LC_* reach the agent only when the guest has them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "setup/env.h"
#include "setup/locale.h"
#include "setup.h"

static char dir[] = "/tmp/ccvm-locale-XXXXXX";

static void put_u32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, sizeof(v));
}

/* A locale-archive as glibc lays it out: the header's namehash offset
 * and size, 12-byte entries {hash, name offset, record offset}. */
static void write_archive(void)
{
	unsigned char a[256] = {0};
	put_u32(a, 0xde020109u);
	put_u32(a + 8, 64); /* namehash_offset */
	put_u32(a + 12, 1); /* used */
	put_u32(a + 16, 3); /* size: three slots */
	/* slot 0 empty, slot 1 a name, slot 2 a name without a record */
	put_u32(a + 64 + 12 + 4, 160);
	put_u32(a + 64 + 12 + 8, 200);
	put_u32(a + 64 + 24 + 4, 180);
	memcpy(a + 160, "de_DE.iso88591", 15);
	memcpy(a + 180, "fr_FR.utf8", 11);
	char path[128];
	snprintf(path, sizeof(path), "%s/locale-archive", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, a, sizeof(a)), (ssize_t)sizeof(a));
	close(fd);
}

static int setup_dir(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	char p[128];
	snprintf(p, sizeof(p), "%s/en_US.utf8", dir);
	if (mkdir(p, 0755) < 0)
		return -1;
	snprintf(p, sizeof(p), "%s/sv_SE", dir);
	if (mkdir(p, 0755) < 0)
		return -1;
	write_archive();
	return 0;
}

static int teardown_dir(void **state)
{
	(void)state;
	char p[128];
	snprintf(p, sizeof(p), "%s/en_US.utf8", dir);
	rmdir(p);
	snprintf(p, sizeof(p), "%s/sv_SE", dir);
	rmdir(p);
	snprintf(p, sizeof(p), "%s/locale-archive", dir);
	unlink(p);
	rmdir(dir);
	return 0;
}

static void test_available(void **state)
{
	(void)state;
	static const char *const yes[] = {"C",
					  "POSIX",
					  "C.UTF-8",
					  "C.utf8",
					  "en_US.UTF-8",
					  "en_US.utf8",
					  "en_US.Utf-8",
					  "sv_SE",
					  "de_DE.ISO-8859-1",
					  "de_DE.iso88591"};
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
		if (!locale_available(dir, yes[i]))
			fail_msg("%s: not available", yes[i]);
	static const char *const no[] = {
	    "",
	    "fr_FR.UTF-8", /* in the archive without a record */
	    "en_GB.UTF-8",
	    "en_US",
	    "../en_US.utf8",
	    "en_US.utf8/..",
	    ".",
	    "en_US.UTF-8\n",
	    "de_DE"};
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		if (locale_available(dir, no[i]))
			fail_msg("\"%s\": available", no[i]);
	/* No such directory: only the built-in ones. */
	assert_true(locale_available("/nonexistent", "C.UTF-8"));
	assert_false(locale_available("/nonexistent", "en_US.UTF-8"));
}

static void test_env_locales(void **state)
{
	(void)state;
	env_locale_dir = dir;
	struct guest_setup s;
	memset(&s, 0, sizeof(s));
	strcpy(s.home, "/home/a");
	strcpy(s.user, "a");
	strcpy(s.cwd, "/p");
	strcpy(s.term, "xterm");
	static const char env[] =
	    "LANG=C.UTF-8\0TZ=Europe/Oslo\0NO_COLOR=1\0"
	    "LANG=fr_FR.UTF-8\0LC_TIME=de_DE.ISO-8859-1\0"
	    "LC_MESSAGES=xx_XX.UTF-8\0LC_ALL=en_US.UTF-8\0";
	struct env_block b;
	assert_int_equal(env_build(&s, env, sizeof(env) - 1, "", 0, &b), 0);
	assert_string_equal(env_get(b.envp, "LANG"), "C.UTF-8");
	assert_string_equal(env_get(b.envp, "TZ"), "Europe/Oslo");
	assert_string_equal(env_get(b.envp, "NO_COLOR"), "1");
	assert_string_equal(env_get(b.envp, "LC_TIME"), "de_DE.ISO-8859-1");
	assert_string_equal(env_get(b.envp, "LC_ALL"), "en_US.UTF-8");
	assert_null(env_get(b.envp, "LC_MESSAGES"));
	/* 7 base + LANG, TZ, NO_COLOR, LC_TIME, LC_ALL */
	assert_int_equal(b.count, 12);
	assert_null(b.envp[12]);
	env_free(&b);

	static const char env2[] = "LANG=C.UTF-8\0LANG=en_US.UTF-8\0";
	assert_int_equal(env_build(&s, env2, sizeof(env2) - 1, "", 0, &b), 0);
	assert_string_equal(env_get(b.envp, "LANG"), "en_US.UTF-8");
	env_free(&b);
	env_locale_dir = LOCALE_DIR;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_available),
	    cmocka_unit_test(test_env_locales),
	};
	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
