#define _GNU_SOURCE
#include "setup/places.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define MAX_LINKS 40

/* Relative to each home directory. */
static const char *const home_secrets[] = {
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".config/gcloud",
    ".config/gh",
    ".netrc",
    ".git-credentials",
    ".docker/config.json",
    ".kube",
    ".password-store",
    ".local/share/keyrings",
    ".claude/.credentials.json",
};

/* Relative to XDG_CONFIG_HOME. */
static const char *const xdg_secrets[] = {"gh", "gcloud"};

static bool under(const char *p, const char *root)
{
	size_t n = strlen(root);
	if (n == 1 && root[0] == '/')
		return p[0] == '/';
	return strncmp(p, root, n) == 0 && (p[n] == '/' || p[n] == '\0');
}

/* Adds path to the list unless there; takes ownership.  0 or -ENOMEM. */
static int push(char ***v, size_t *n, char *path)
{
	if (!path)
		return -ENOMEM;
	for (size_t i = 0; i < *n; i++)
		if (strcmp((*v)[i], path) == 0) {
			free(path);
			return 0;
		}
	char **nv = reallocarray(*v, *n + 1, sizeof(*nv));
	if (!nv) {
		free(path);
		return -ENOMEM;
	}
	nv[(*n)++] = path;
	*v = nv;
	return 0;
}

/* Adds path and, when it exists, its resolved form. */
static int push_both(char ***v, size_t *n, char *path)
{
	if (!path)
		return -ENOMEM;
	char *real = realpath(path, NULL);
	int r = push(v, n, path);
	if (!r && real)
		return push(v, n, real);
	free(real);
	return r;
}

static int add_home(struct places *p, const char *h)
{
	if (!h || h[0] != '/')
		return 0;
	int r = push_both(&p->home, &p->n_home, strdup(h));
	for (size_t i = 0; i < ARRAY_LEN(home_secrets) && !r; i++)
		r = push_both(&p->secret, &p->n_secret,
			      util_path_join(h, home_secrets[i]));
	if (!r)
		r = push_both(&p->claude, &p->n_claude,
			      util_path_join(h, ".claude"));
	return r;
}

int places_init(struct places *p, const char *home, const char *pw_home,
		const char *xdg_config_home)
{
	*p = (struct places){0};
	int r = add_home(p, home);
	if (!r)
		r = add_home(p, pw_home);
	if (xdg_config_home && xdg_config_home[0] == '/')
		for (size_t i = 0; i < ARRAY_LEN(xdg_secrets) && !r; i++)
			r = push_both(
			    &p->secret, &p->n_secret,
			    util_path_join(xdg_config_home, xdg_secrets[i]));
	if (r)
		places_free(p);
	return r;
}

static void free_list(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void places_free(struct places *p)
{
	if (!p)
		return;
	free_list(p->secret, p->n_secret);
	free_list(p->home, p->n_home);
	free_list(p->claude, p->n_claude);
	*p = (struct places){0};
}

const char *places_secret_of(const struct places *p, const char *path)
{
	for (size_t i = 0; i < p->n_secret; i++)
		if (under(path, p->secret[i]))
			return p->secret[i];
	return NULL;
}

bool places_share_refused(const struct places *p, const char *dir, char *why,
			  size_t n)
{
	for (size_t i = 0; i < p->n_home; i++)
		if (under(p->home[i], dir)) {
			snprintf(why, n,
				 strcmp(p->home[i], dir) == 0
				     ? "it is a home directory (%s)"
				     : "it contains the home directory %s",
				 p->home[i]);
			return true;
		}
	for (size_t i = 0; i < p->n_claude; i++)
		if (under(p->claude[i], dir)) {
			snprintf(why, n, "it contains %s (~/.claude)",
				 p->claude[i]);
			return true;
		}
	for (size_t i = 0; i < p->n_secret; i++) {
		if (under(p->secret[i], dir)) {
			snprintf(why, n, "it contains %s, which holds secrets",
				 p->secret[i]);
			return true;
		}
		if (under(dir, p->secret[i])) {
			snprintf(why, n, "it is inside %s, which holds secrets",
				 p->secret[i]);
			return true;
		}
	}
	return false;
}

void places_chain_free(struct places_chain *c)
{
	if (!c)
		return;
	free(c->final);
	free_list(c->links, c->n_links);
	*c = (struct places_chain){0};
}

/* Reads the link at path into a malloc'ed string; NULL with errno set. */
static char *read_link(const char *path)
{
	char buf[PATH_MAX];
	ssize_t k = readlink(path, buf, sizeof(buf));
	if (k < 0)
		return NULL;
	if ((size_t)k >= sizeof(buf) || k == 0) {
		errno = k ? ENAMETOOLONG : ENOENT;
		return NULL;
	}
	buf[k] = '\0';
	return strdup(buf);
}

/* One link at a time, like the kernel (places.h).  Kept as one loop of
 * about 80 lines: every step reads and rewrites the same state (the
 * resolved prefix, the rest of the path, the hop count). */
int places_resolve(const char *path, struct places_chain *out)
{
	if (!path || path[0] != '/')
		return -EINVAL;
	struct places_chain c = {0};
	/* done: the resolved prefix ("" for /); todo: what is left. */
	char done[PATH_MAX] = "";
	char *todo = strdup(path);
	int r = todo ? 0 : -ENOMEM;
	size_t hops = 0;
	const char *p = todo;
	while (!r && *p) {
		while (*p == '/')
			p++;
		size_t len = strcspn(p, "/");
		if (len == 0)
			break;
		const char *comp = p;
		p += len;
		bool more = strspn(p, "/") < strlen(p);
		if (len == 1 && comp[0] == '.')
			continue;
		if (len == 2 && comp[0] == '.' && comp[1] == '.') {
			char *s = strrchr(done, '/');
			if (s)
				*s = '\0';
			continue;
		}
		size_t dl = strlen(done);
		if (dl + 1 + len >= sizeof(done)) {
			r = -ENAMETOOLONG;
			break;
		}
		char cand[PATH_MAX];
		memcpy(cand, done, dl);
		cand[dl] = '/';
		memcpy(cand + dl + 1, comp, len);
		cand[dl + 1 + len] = '\0';
		struct stat st;
		if (lstat(cand, &st) < 0) {
			r = -errno;
			break;
		}
		if (!S_ISLNK(st.st_mode)) {
			if (more && !S_ISDIR(st.st_mode)) {
				r = -ENOTDIR;
				break;
			}
			memcpy(done, cand, strlen(cand) + 1);
			continue;
		}
		if (++hops > MAX_LINKS) {
			r = -ELOOP;
			break;
		}
		autofree char *target = read_link(cand);
		if (!target) {
			r = -errno;
			break;
		}
		if ((r = push(&c.links, &c.n_links, strdup(cand))) < 0)
			break;
		char *next = util_asprintf("%s/%s", target, p);
		if (!next) {
			r = -ENOMEM;
			break;
		}
		if (target[0] == '/')
			done[0] = '\0';
		free(todo);
		todo = next;
		p = todo;
	}
	free(todo);
	if (!r) {
		c.final = strdup(done[0] ? done : "/");
		if (!c.final)
			r = -ENOMEM;
	}
	if (r) {
		places_chain_free(&c);
		return r;
	}
	*out = c;
	return 0;
}

bool places_chain_refused(const struct places *p, const struct places_chain *c,
			  const char *const *shared, size_t n_shared, char *why,
			  size_t n)
{
	for (size_t i = 0; i < n_shared; i++) {
		if (!shared[i])
			continue;
		for (size_t k = 0; k < c->n_links; k++)
			if (under(c->links[k], shared[i])) {
				snprintf(why, n,
					 "its link %s lies in %s, which is "
					 "shared with the guest",
					 c->links[k], shared[i]);
				return true;
			}
		if (under(c->final, shared[i])) {
			snprintf(why, n,
				 "it leads to %s, in %s, which is shared "
				 "with the guest",
				 c->final, shared[i]);
			return true;
		}
	}
	const char *s = places_secret_of(p, c->final);
	if (s && strcmp(s, c->final) == 0) {
		snprintf(why, n, "it leads to %s, a credentials file", s);
		return true;
	}
	if (s) {
		snprintf(why, n, "it leads to %s, in %s, which holds secrets",
			 c->final, s);
		return true;
	}
	return false;
}
