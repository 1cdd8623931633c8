/* Unit tests for the agent user (src/guest/setup/user.c): account file editors,
 * group membership, and home/FILE creation in a temporary tree. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "setup/user.h"
#include "util.h"

static struct guest_setup setup_for(const char *user, uid_t uid, gid_t gid,
				    const char *home)
{
	struct guest_setup s;
	memset(&s, 0, sizeof(s));
	util_strlcpy(s.user, user, sizeof(s.user));
	s.uid = uid;
	s.gid = gid;
	util_strlcpy(s.home, home, sizeof(s.home));
	util_strlcpy(s.cwd, "/p", sizeof(s.cwd));
	return s;
}

static void test_passwd(void **state)
{
	(void)state;
	struct guest_setup s = setup_for("alice", 1000, 1000, "/home/alice");
	const char *old =
	    "root:x:0:0:root:/root:/bin/bash\n"
	    "alice:x:5:5::/old:/bin/sh\n"
	    "bob:x:1000:1000::/home/bob:/bin/sh\n"
	    "nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin";
	char *out;
	assert_int_equal(user_passwd_edit(old, &s, &out), 0);
	assert_string_equal(out,
			    "root:x:0:0:root:/root:/bin/bash\n"
			    "nobody:x:65534:65534::/nonexistent:/usr/sbin/"
			    "nologin\n"
			    "alice:x:1000:1000:alice:/home/alice:/bin/bash\n");
	free(out);
	/* A prefix of a name or uid is not a match. */
	s = setup_for("ali", 100, 100, "/h");
	assert_int_equal(user_passwd_edit("alice:x:1000:1:::\n", &s, &out), 0);
	assert_string_equal(out, "alice:x:1000:1:::\nali:x:100:100:ali:/h:"
				 "/bin/bash\n");
	free(out);
}

static void test_group(void **state)
{
	(void)state;
	struct guest_setup s = setup_for("alice", 1000, 1000, "/h");
	char *out;
	/* New gid: a group named after the user; sudo group gets a member. */
	assert_int_equal(user_group_edit("root:x:0:\nccvm-sudo:x:990:\n"
					 "alice:x:7:\n",
					 &s, &out),
			 0);
	assert_string_equal(out, "root:x:0:\nccvm-sudo:x:990:alice\n"
				 "alice:x:1000:\n");
	free(out);
	/* Existing gid is reused; existing members kept, no duplicate. */
	s = setup_for("alice", 1000, 100, "/h");
	assert_int_equal(user_group_edit("users:x:100:\n"
					 "ccvm-sudo:x:990:bob,alice\n",
					 &s, &out),
			 0);
	assert_string_equal(out, "users:x:100:\nccvm-sudo:x:990:bob,alice\n");
	free(out);
	assert_int_equal(user_group_edit("ccvm-sudo:x:990:bob\n", &s, &out), 0);
	assert_string_equal(out, "ccvm-sudo:x:990:bob,alice\n"
				 "alice:x:100:\n");
	free(out);
}

static void test_shadow(void **state)
{
	(void)state;
	struct guest_setup s = setup_for("alice", 1000, 1000, "/h");
	char *out;
	assert_int_equal(
	    user_shadow_edit("root:*:1::::::\nalice:$6$x:1::::::\n", &s, &out),
	    0);
	assert_string_equal(out,
			    "root:*:1::::::\nalice:!:19000:0:99999:7:::\n");
	free(out);
}

static void test_groups(void **state)
{
	(void)state;
	const char *grp = "root:x:0:\nsudo:x:27:bob,alice\nccvm-sudo:x:990:"
			  "alice\nstaff:x:50:alicex\nalice:x:1000:alice\n"
			  "bad:x:zz:alice\n";
	gid_t g[8];
	size_t n = user_groups(grp, "alice", 1000, g, 8);
	assert_int_equal(n, 3);
	assert_int_equal(g[0], 1000);
	assert_int_equal(g[1], 27);
	assert_int_equal(g[2], 990);
	assert_int_equal(user_groups(grp, "alice", 1000, g, 2), 2);
}

static char tmp[64];

static int setup_tmp(void **state)
{
	(void)state;
	strcpy(tmp, "/tmp/ccvm-guest-user.XXXXXX");
	if (!mkdtemp(tmp))
		return -1;
	char p[128];
	snprintf(p, sizeof(p), "%s/etc", tmp);
	mkdir(p, 0755);
	static const char *const files[][2] = {
	    {"etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"},
	    {"etc/group", "root:x:0:\nccvm-sudo:x:990:\n"},
	};
	for (size_t i = 0; i < 2; i++) {
		snprintf(p, sizeof(p), "%s/%s", tmp, files[i][0]);
		int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			return -1;
		util_write_all(fd, files[i][1], strlen(files[i][1]));
		close(fd);
	}
	return 0;
}

static int teardown_tmp(void **state)
{
	(void)state;
	util_rm_rf(tmp);
	return 0;
}

static void test_create_and_files(void **state)
{
	(void)state;
	/* Our own uid/gid so chown works without privileges. */
	char home[128];
	snprintf(home, sizeof(home), "%s/home/me", tmp);
	struct guest_setup s = setup_for("me", getuid(), getgid(), home);
	struct ccvm_err err;
	/* user_create takes a root and an absolute home inside it: use "/"
	 * with the temp tree's absolute home would touch /etc, so give the
	 * tree as root and home relative to it. */
	struct guest_setup t = s;
	util_strlcpy(t.home, "/home/me", sizeof(t.home));
	if (getuid() == 0) {
		/* root's account is never rewritten; use another id. */
		t.uid = 4242;
		t.gid = 4242;
	}
	assert_int_equal(user_create(tmp, &t, &err), 0);
	char *passwd = NULL;
	char p[160];
	snprintf(p, sizeof(p), "%s/etc/passwd", tmp);
	assert_int_equal(util_read_file(p, 4096, &passwd, NULL, &err), 0);
	assert_non_null(strstr(passwd, "\nme:x:"));
	free(passwd);
	struct stat st;
	assert_int_equal(stat(home, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(st.st_uid, t.uid);

	assert_int_equal(
	    user_write_file(&s, ".claude/agents/a.md", 0640, false, "hello", 5, &err),
	    0);
	snprintf(p, sizeof(p), "%s/.claude/agents/a.md", home);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	assert_int_equal(st.st_size, 5);
	/* A continuation frame appends; a new file truncates. */
	assert_int_equal(user_write_file(&s, ".claude/agents/a.md", 0640, true,
					 " world", 6, &err),
			 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 11);
	assert_int_equal(user_write_file(&s, ".claude/agents/a.md", 0640, false,
					 "x", 1, &err),
			 0);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, 1);
	snprintf(p, sizeof(p), "%s/.claude/agents", home);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	assert_int_equal(st.st_uid, getuid());

	assert_true(user_write_file(&s, "../escape", 0600, false, "x", 1, &err) < 0);
	assert_true(user_write_file(&s, "/etc/passwd", 0600, false, "x", 1, &err) < 0);
	/* Symlinks are not followed. */
	snprintf(p, sizeof(p), "%s/link", home);
	assert_int_equal(symlink("/etc/passwd", p), 0);
	assert_true(user_write_file(&s, "link", 0600, false, "x", 1, &err) < 0);
}

static void test_mkdir_owned(void **state)
{
	(void)state;
	char base[128], path[192];
	snprintf(base, sizeof(base), "%s/b", tmp);
	snprintf(path, sizeof(path), "%s/b/c/d", tmp);
	struct ccvm_err err;
	assert_int_equal(
	    user_mkdir_owned(path, base, 0711, getuid(), getgid(), &err), 0);
	struct stat st;
	assert_int_equal(stat(base, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0755);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0711);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_passwd),
	    cmocka_unit_test(test_group),
	    cmocka_unit_test(test_shadow),
	    cmocka_unit_test(test_groups),
	    cmocka_unit_test_setup_teardown(test_create_and_files, setup_tmp,
					    teardown_tmp),
	    cmocka_unit_test_setup_teardown(test_mkdir_owned, setup_tmp,
					    teardown_tmp),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
