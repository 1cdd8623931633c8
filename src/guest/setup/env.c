#define _GNU_SOURCE
#include "setup/env.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "setup/locale.h"
#include "util.h"

const char *env_locale_dir = LOCALE_DIR;

static size_t name_len(const char *entry)
{
	const char *eq = strchr(entry, '=');
	return eq ? (size_t)(eq - entry) : strlen(entry);
}

/* Sets entry, replacing one with the same name; v has room for it. */
static void set_entry(struct env_block *b, char *entry)
{
	size_t nl = name_len(entry);
	for (size_t i = 0; i < b->count; i++) {
		if (name_len(b->envp[i]) == nl &&
		    !memcmp(b->envp[i], entry, nl)) {
			b->envp[i] = entry;
			return;
		}
	}
	b->envp[b->count++] = entry;
}

static size_t count_entries(const char *list, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i++)
		if (list[i] == '\0')
			n++;
	return n;
}

static void add_list(struct env_block *b, const char *list, size_t len)
{
	const char *p = list;
	while (p < list + len) {
		set_entry(b, (char *)p);
		p += strlen(p) + 1;
	}
}

/* The host's LANG only when the guest has that locale (else C.UTF-8, as
 * set by the host when it has none), its LC_* only when the guest has
 * theirs: a locale the guest lacks makes programs fall back to ASCII. */
static void keep_locales(struct env_block *b)
{
	static char c_utf8[] = "LANG=C.UTF-8";
	size_t k = 0;
	for (size_t i = 0; i < b->count; i++) {
		char *e = b->envp[i];
		bool lang = strncmp(e, "LANG=", 5) == 0;
		bool lc = strncmp(e, "LC_", 3) == 0;
		const char *v = strchr(e, '=');
		if ((lang || lc) && v &&
		    !locale_available(env_locale_dir, v + 1)) {
			if (!lang)
				continue;
			e = c_utf8;
		}
		b->envp[k++] = e;
	}
	b->count = k;
}

int env_build(const struct guest_setup *s, const char *env, size_t env_len,
	      const char *secrets, size_t secrets_len, struct env_block *out)
{
	const char *fixed[][2] = {
	    {"PATH", ENV_DEFAULT_PATH}, {"HOME", s->home},
	    {"USER", s->user},		{"LOGNAME", s->user},
	    {"SHELL", "/bin/bash"},	{"PWD", s->cwd},
	    {"TERM", s->term},
	};
	size_t nfixed = ARRAY_LEN(fixed);
	size_t base_len = 0;
	for (size_t i = 0; i < nfixed; i++)
		base_len += strlen(fixed[i][0]) + strlen(fixed[i][1]) + 2;
	struct env_block b = {0};
	size_t max = nfixed + count_entries(env, env_len) +
		     count_entries(secrets, secrets_len) + 1;
	b.envp = calloc(max, sizeof(*b.envp));
	b.base = malloc(base_len);
	if (!b.envp || !b.base) {
		env_free(&b);
		return -ENOMEM;
	}
	char *p = b.base;
	for (size_t i = 0; i < nfixed; i++) {
		size_t kl = strlen(fixed[i][0]), vl = strlen(fixed[i][1]);
		memcpy(p, fixed[i][0], kl);
		p[kl] = '=';
		memcpy(p + kl + 1, fixed[i][1], vl + 1);
		set_entry(&b, p);
		p += kl + vl + 2;
	}
	add_list(&b, env, env_len);
	keep_locales(&b);
	add_list(&b, secrets, secrets_len);
	b.envp[b.count] = NULL;
	*out = b;
	return 0;
}

void env_free(struct env_block *b)
{
	free(b->envp);
	free(b->base);
	b->envp = NULL;
	b->base = NULL;
	b->count = 0;
}

const char *env_get(char *const *envp, const char *name)
{
	size_t nl = strlen(name);
	for (; *envp; envp++)
		if (!strncmp(*envp, name, nl) && (*envp)[nl] == '=')
			return *envp + nl + 1;
	return NULL;
}
