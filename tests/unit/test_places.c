/* Unit tests for the secret places and link chains (src/host/setup/places.c). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "setup/places.h"
#include "util.h"

/* Which directories may be shared: homes (given and passwd), their
 * ancestors, what holds or lies in a secret place are not. */
static void test_share_decision(void **state)
{
	(void)state;
	struct places p;
	assert_int_equal(places_init(&p, "/nonexistent/h/u", "/nonexistent/pw",
				     "/nonexistent/xdg"),
			 0);
	static const struct {
		const char *dir;
		const char *why; /* NULL: may be shared */
	} t[] = {
	    {"/", "contains the home directory /nonexistent/h/u"},
	    {"/nonexistent", "contains the home directory"},
	    {"/nonexistent/h", "contains the home directory /nonexistent/h/u"},
	    {"/nonexistent/h/u", "is a home directory"},
	    {"/nonexistent/pw", "is a home directory (/nonexistent/pw)"},
	    {"/nonexistent/h/u/proj", NULL},
	    {"/nonexistent/h/u/proj/.ssh-notes", NULL},
	    {"/nonexistent/h/u/.ssh", "contains /nonexistent/h/u/.ssh"},
	    {"/nonexistent/h/u/.ssh/keys", "inside /nonexistent/h/u/.ssh"},
	    {"/nonexistent/h/u/.sshx", NULL},
	    {"/nonexistent/h/u/.gnupg/x", "inside"},
	    {"/nonexistent/h/u/.aws", "contains"},
	    {"/nonexistent/h/u/.config", "contains /nonexistent/h/u/.config/"},
	    {"/nonexistent/h/u/.config/nvim", NULL},
	    {"/nonexistent/h/u/.config/gh", "contains"},
	    {"/nonexistent/h/u/.docker", "contains"},
	    {"/nonexistent/h/u/.kube/cache", "inside"},
	    {"/nonexistent/h/u/.local/share", "contains"},
	    {"/nonexistent/h/u/.local/share/keyrings", "contains"},
	    {"/nonexistent/h/u/.local/share/fonts", NULL},
	    {"/nonexistent/h/u/.password-store/web", "inside"},
	    {"/nonexistent/h/u/.claude", "(~/.claude)"},
	    {"/nonexistent/h/u/.claude/skills/mine", NULL},
	    {"/nonexistent/pw/.ssh", "contains /nonexistent/pw/.ssh"},
	    {"/nonexistent/pw/work", NULL},
	    {"/nonexistent/xdg/gh/x", "inside /nonexistent/xdg/gh"},
	    {"/nonexistent/xdg/nvim", NULL},
	    {"/srv/project", NULL},
	};
	for (size_t i = 0; i < ARRAY_LEN(t); i++) {
		char why[512] = "";
		bool refused =
		    places_share_refused(&p, t[i].dir, why, sizeof(why));
		if (refused != (t[i].why != NULL))
			fail_msg("%s: %s (%s)", t[i].dir,
				 refused ? "refused" : "allowed", why);
		if (t[i].why && !strstr(why, t[i].why))
			fail_msg("%s: \"%s\" lacks \"%s\"", t[i].dir, why,
				 t[i].why);
	}
	places_free(&p);
	/* No home at all: nothing but the lists' absence. */
	assert_int_equal(places_init(&p, NULL, "relative", NULL), 0);
	char why[64];
	assert_false(places_share_refused(&p, "/", why, sizeof(why)));
	places_free(&p);
}

struct tree {
	char root[64];
};

static char *T(const struct tree *t, const char *rel)
{
	char *p = util_path_join(t->root, rel);
	assert_non_null(p);
	return p;
}

static void tmkdir(const struct tree *t, const char *rel)
{
	char *p = T(t, rel);
	assert_int_equal(util_mkdir_p(p, 0700), 0);
	free(p);
}

static void tlink(const struct tree *t, const char *target, const char *rel)
{
	char *p = T(t, rel);
	if (symlink(target, p) < 0)
		fail_msg("symlink %s: %s", p, strerror(errno));
	free(p);
}

static void tfile(const struct tree *t, const char *rel)
{
	char *p = T(t, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	free(p);
}

static int tree_setup(void **state)
{
	struct tree *t = calloc(1, sizeof(*t));
	snprintf(t->root, sizeof(t->root), "/tmp/ccvm-test-places.XXXXXX");
	assert_non_null(mkdtemp(t->root));
	/* mkdtemp's directory may sit under a linked /tmp: use its real
	 * path, as the resolver reports physical paths. */
	char *real = realpath(t->root, NULL);
	assert_non_null(real);
	assert_int_equal(util_strlcpy(t->root, real, sizeof(t->root)), 0);
	free(real);
	*state = t;
	return 0;
}

static int tree_teardown(void **state)
{
	struct tree *t = *state;
	util_rm_rf(t->root);
	free(t);
	return 0;
}

/* Resolution records every link, relative and absolute, in directories
 * and at the end, and ".." after a link is the physical parent. */
static void test_resolve(void **state)
{
	struct tree *t = *state;
	tmkdir(t, "home/.claude");
	tmkdir(t, "proj/dotfiles");
	tmkdir(t, "home/.ssh");
	tfile(t, "home/.ssh/id_ed25519");
	tlink(t, "dotfiles", "proj/df");
	tlink(t, "../../proj/df/CLAUDE.md", "home/.claude/CLAUDE.md");
	char *key = T(t, "home/.ssh/id_ed25519");
	tlink(t, key, "proj/dotfiles/CLAUDE.md");

	char *md = T(t, "home/.claude/CLAUDE.md");
	struct places_chain c;
	assert_int_equal(places_resolve(md, &c), 0);
	assert_string_equal(c.final, key);
	assert_int_equal(c.n_links, 3);
	assert_string_equal(c.links[0], md);
	char *df = T(t, "proj/df");
	char *dmd = T(t, "proj/dotfiles/CLAUDE.md");
	assert_string_equal(c.links[1], df);
	assert_string_equal(c.links[2], dmd);

	/* The decision: the project shared, or not; secret at the end. */
	char *proj = T(t, "proj");
	char *home = T(t, "home");
	struct places p;
	assert_int_equal(places_init(&p, home, NULL, NULL), 0);
	char why[2 * PATH_MAX];
	const char *shared[] = {proj};
	assert_true(places_chain_refused(&p, &c, shared, 1, why, sizeof(why)));
	assert_non_null(strstr(why, "shared with the guest"));
	assert_true(places_chain_refused(&p, &c, NULL, 0, why, sizeof(why)));
	assert_non_null(strstr(why, "holds secrets"));
	places_chain_free(&c);

	/* A benign chain: allowed unless shared. */
	assert_int_equal(unlink(dmd), 0);
	tfile(t, "proj/dotfiles/CLAUDE.md");
	assert_int_equal(places_resolve(md, &c), 0);
	assert_string_equal(c.final, dmd);
	assert_false(places_chain_refused(&p, &c, NULL, 0, why, sizeof(why)));
	const char *other[] = {home};
	assert_true(places_chain_refused(&p, &c, other, 1, why, sizeof(why)));
	places_chain_free(&c);

	/* ".." after a link: the physical parent. */
	tlink(t, "../home/.claude", "proj/cl");
	char *dotdot = util_asprintf("%s/proj/cl/../.ssh/id_ed25519", t->root);
	assert_int_equal(places_resolve(dotdot, &c), 0);
	assert_string_equal(c.final, key);
	places_chain_free(&c);

	/* Errors: dangling, loops, relative paths, a file as a directory. */
	tlink(t, "/nonexistent/ccvm", "dangling");
	tlink(t, "loop", "loop");
	char *dang = T(t, "dangling");
	char *loop = T(t, "loop");
	char *notdir = T(t, "home/.ssh/id_ed25519/x");
	assert_int_equal(places_resolve(dang, &c), -ENOENT);
	assert_int_equal(places_resolve(loop, &c), -ELOOP);
	assert_int_equal(places_resolve("rel/path", &c), -EINVAL);
	assert_int_equal(places_resolve(notdir, &c), -ENOTDIR);
	assert_int_equal(places_resolve("/", &c), 0);
	assert_string_equal(c.final, "/");
	places_chain_free(&c);

	places_free(&p);
	free(dang);
	free(loop);
	free(notdir);
	free(dotdot);
	free(proj);
	free(home);
	free(df);
	free(dmd);
	free(md);
	free(key);
}

/* Secret places are known by their resolved path too: ~/.ssh as a link
 * into a synced directory makes that directory unshareable. */
static void test_resolved_secrets(void **state)
{
	struct tree *t = *state;
	tmkdir(t, "home");
	tmkdir(t, "sync/ssh");
	tmkdir(t, "dots/claude");
	tlink(t, "../sync/ssh", "home/.ssh");
	tlink(t, "../dots/claude", "home/.claude");
	char *home = T(t, "home");
	struct places p;
	assert_int_equal(places_init(&p, home, NULL, NULL), 0);
	char why[2 * PATH_MAX];
	char *sync = T(t, "sync");
	char *dots = T(t, "dots");
	char *ok = T(t, "elsewhere");
	assert_true(places_share_refused(&p, sync, why, sizeof(why)));
	assert_non_null(strstr(why, "sync/ssh"));
	assert_true(places_share_refused(&p, dots, why, sizeof(why)));
	assert_non_null(strstr(why, "dots/claude"));
	assert_false(places_share_refused(&p, ok, why, sizeof(why)));
	char *inside = T(t, "sync/ssh/id_rsa");
	assert_non_null(places_secret_of(&p, inside));
	places_free(&p);
	free(inside);
	free(home);
	free(sync);
	free(dots);
	free(ok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_share_decision),
	    cmocka_unit_test_setup_teardown(test_resolve, tree_setup,
					    tree_teardown),
	    cmocka_unit_test_setup_teardown(test_resolved_secrets, tree_setup,
					    tree_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
