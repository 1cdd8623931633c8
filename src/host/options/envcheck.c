/*
 * The CCVM_* variables as a whole: a name ccvm does not read is most
 * likely a typo (CCVM_MEMROY=8192), which would otherwise be ignored in
 * silence; and CCVM_DEBUG, the variable form of --ccvm-debug.
 */
#define _GNU_SOURCE
#include "options/config.h"

#include <errno.h>
#include <string.h>

#include "options/table.h"
#include "util.h"

#define PREFIX	     "CCVM_"
#define TEST_PREFIX  "CCVM_TEST_" /* test runner */
#define HINT_MAX_LEN 64

bool cfg_env_known(const char *name)
{
	if (strncmp(name, TEST_PREFIX, strlen(TEST_PREFIX)) == 0)
		return true;
	for (size_t i = 0; i < cfg_n_opts; i++)
		if (cfg_opts[i].env && strcmp(cfg_opts[i].env, name) == 0)
			return true;
	for (size_t i = 0; i < cfg_n_other_env; i++)
		if (strcmp(cfg_other_env[i].name, name) == 0)
			return true;
	for (size_t i = 0; i < cfg_n_test_env; i++)
		if (strcmp(cfg_test_env[i], name) == 0)
			return true;
	return false;
}

/* Edit distance with adjacent transpositions (MEMROY -> MEMORY is 1). */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > HINT_MAX_LEN || lb > HINT_MAX_LEN)
		return (size_t)-1;
	size_t d[HINT_MAX_LEN + 1][HINT_MAX_LEN + 1];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			size_t v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < v)
				v = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

static void consider(const char *name, const char *cand, const char **best,
		     size_t *best_d)
{
	size_t dd = distance(name, cand);
	if (dd < *best_d) {
		*best_d = dd;
		*best = cand;
	}
}

/* The known name nearest to name, within 2 edits; else NULL. */
static const char *nearest(const char *name)
{
	const char *best = NULL;
	size_t best_d = 3;
	for (size_t i = 0; i < cfg_n_opts; i++)
		if (cfg_opts[i].env)
			consider(name, cfg_opts[i].env, &best, &best_d);
	for (size_t i = 0; i < cfg_n_other_env; i++)
		consider(name, cfg_other_env[i].name, &best, &best_d);
	return best;
}

const char *cfg_env_unknown(char *const *envp, size_t *i, char *name, size_t n,
			    const char **hint)
{
	if (!envp || n == 0)
		return NULL;
	for (; envp[*i]; (*i)++) {
		const char *e = envp[*i];
		if (strncmp(e, PREFIX, strlen(PREFIX)) != 0)
			continue;
		size_t len = strcspn(e, "=");
		char full[256];
		if (len < sizeof(full)) {
			memcpy(full, e, len);
			full[len] = '\0';
			if (cfg_env_known(full))
				continue;
		}
		if (len >= n)
			len = n - 1;
		memcpy(name, e, len);
		name[len] = '\0';
		*hint = nearest(name);
		(*i)++;
		return name;
	}
	return NULL;
}

int cfg_env_debug(char *const *envp, bool *on, struct ccvm_err *err)
{
	const char *v = cfg_env_get(envp, "CCVM_DEBUG");
	bool b = false;
	if (v && !cfg_parse_bool(v, &b)) {
		char q[ESC_MAX];
		return ccvm_err_set(err, EINVAL,
				    "CCVM_DEBUG: expected 1/0, true/false or "
				    "yes/no, got %s",
				    util_escape(q, sizeof(q), v, true));
	}
	*on = b;
	return 0;
}
