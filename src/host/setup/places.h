#pragma once
/*
 * Places on the host that hold secrets, and the two decisions ccvm takes
 * about them:
 *
 *   - may a directory be shared with the guest (places_share_refused):
 *     not when it is a home directory or one of its ancestors, contains a
 *     secret place or the real ~/.claude, or lies inside a secret place;
 *   - may a host file reached through symbolic links be read for the guest
 *     (places_resolve, places_chain_refused): not when a link of the chain,
 *     or the file it ends at, lies in a directory shared with the guest (the
 *     guest could have repointed it), nor when it ends in a secret place.
 *
 * The secret places, for each home directory H ($HOME and the passwd
 * entry's, as given and resolved): H/.ssh, .gnupg, .aws, .azure,
 * .config/gcloud, .config/gh, .netrc, .git-credentials, .docker/config.json,
 * .kube, .password-store, .local/share/keyrings, .claude/.credentials.json,
 * and $XDG_CONFIG_HOME/gh and gcloud when that is elsewhere.  A list, so
 * best effort: a secret kept anywhere else is not known to ccvm.
 */
#include <stdbool.h>
#include <stddef.h>

struct places {
	char **secret; /* absolute; as given and resolved */
	size_t n_secret;
	char **home; /* home directories, as given and resolved */
	size_t n_home;
	char **claude; /* ~/.claude, as given and resolved */
	size_t n_claude;
};

/* Fills p from the home directories (either may be NULL or relative: then
 * unused) and XDG_CONFIG_HOME (may be NULL).  0 or -ENOMEM. */
int places_init(struct places *p, const char *home, const char *pw_home,
		const char *xdg_config_home);
void places_free(struct places *p);

/* The secret place path (absolute, without "." or "..") is or lies in, or
 * NULL. */
const char *places_secret_of(const struct places *p, const char *path);

/*
 * Whether the directory dir (absolute, resolved) must not be shared with
 * the guest; when so, why is one phrase naming what it holds or lies in,
 * such as "it contains /home/u/.ssh".  Pure: looks at the strings only.
 */
bool places_share_refused(const struct places *p, const char *dir, char *why,
			  size_t n);

/* A path resolved one link at a time. */
struct places_chain {
	char *final;  /* the resolved path: no link, ".", ".." in it */
	char **links; /* each link followed, where it lies (resolved) */
	size_t n_links;
};

/*
 * Resolves the absolute path as the kernel would, reading each link itself
 * (at most 40), and records every link it passes.  0; -ENOENT when a
 * component is missing (a dangling link), -ELOOP, -ENOTDIR, -EINVAL for a
 * relative path, -ENOMEM or another -errno of lstat/readlink.  *out is set
 * on success only; free it with places_chain_free.
 */
int places_resolve(const char *path, struct places_chain *out);
void places_chain_free(struct places_chain *c);

/*
 * Whether the file a chain leads to must not be read for the guest: a link
 * of it or its end lies in one of the n_shared directories (absolute,
 * resolved; the directories the guest can write), or it ends in a secret
 * place.  why gets one phrase for the warning.  Pure.
 */
bool places_chain_refused(const struct places *p, const struct places_chain *c,
			  const char *const *shared, size_t n_shared, char *why,
			  size_t n);
