/*
 * What the option table shows: --ccvm-dump-config (every row's value, a
 * valid config file), the image hash's build-time input, and the
 * environment part of --ccvm-help (each row's variable and default).
 */
#define _GNU_SOURCE
#include "options/config.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "options/table.h"
#include "util.h"

static json_t *strlist_json(const struct cfg_strlist *l)
{
	json_t *a = json_array();
	for (size_t i = 0; a && i < l->n; i++)
		if (json_array_append_new(a, json_string(l->v[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *opt_json(const struct ccvm_config *c, const struct opt *o)
{
	static const char *const accel[] = {"auto", "kvm", "tcg"};
	switch (o->kind) {
	case K_BOOL:
		return json_boolean(*CFIELD(c, o, bool));
	case K_INT:
		return json_integer(*CFIELD(c, o, long));
	case K_ACCEL: {
		enum cfg_accel a = *CFIELD(c, o, enum cfg_accel);
		return json_string(accel[(unsigned)a < 3 ? a : 0]);
	}
	case K_TRISTATE: {
		int t = *CFIELD(c, o, int);
		return t < 0 ? json_null() : json_boolean(t);
	}
	case K_STR: {
		const char *s = *CFIELD(c, o, char *);
		return s ? json_string(s) : json_null();
	}
	case K_STRLIST:
		return strlist_json(CFIELD(c, o, struct cfg_strlist));
	case K_PORTS: {
		json_t *a = json_array();
		for (size_t i = 0; a && i < c->n_egress_ports; i++)
			if (json_array_append_new(
				a, json_integer(c->egress_ports[i])) < 0) {
				json_decref(a);
				return NULL;
			}
		return a;
	}
	}
	return NULL;
}

int cfg_dump_json(const struct ccvm_config *cfg, enum cfg_dump_mode mode,
		  char **out, struct ccvm_err *err)
{
	json_t *root = json_object();
	if (!root)
		return ccvm_err_set(err, ENOMEM, "out of memory");
	for (size_t i = 0; i < cfg_n_opts; i++) {
		const struct opt *o = &cfg_opts[i];
		if (mode == CFG_DUMP_BUILD && !o->build_time)
			continue;
		json_t *parent = root;
		const char *name = o->key;
		const char *dot = strchr(o->key, '.');
		if (dot) {
			char g[32];
			snprintf(g, sizeof(g), "%.*s", (int)(dot - o->key),
				 o->key);
			parent = json_object_get(root, g);
			if (!parent) {
				parent = json_object();
				if (json_object_set_new(root, g, parent) < 0)
					goto nomem;
			}
			name = dot + 1;
		}
		if (json_object_set_new(parent, name, opt_json(cfg, o)) < 0)
			goto nomem;
	}
	size_t flags = mode == CFG_DUMP_PRETTY
			   ? JSON_INDENT(2) | JSON_PRESERVE_ORDER
			   : JSON_COMPACT | JSON_SORT_KEYS;
	char *s = json_dumps(root, flags);
	json_decref(root);
	if (!s)
		return ccvm_err_set(err, ENOMEM, "out of memory");
	if (mode == CFG_DUMP_PRETTY) {
		char *nl = util_asprintf("%s\n", s);
		free(s);
		if (!nl)
			return ccvm_err_set(err, ENOMEM, "out of memory");
		s = nl;
	}
	*out = s;
	return 0;
nomem:
	json_decref(root);
	return ccvm_err_set(err, ENOMEM, "out of memory");
}

/* ---- help ---- */

/* One row: its key, variable and default, then what it does. */
static void print_opt(FILE *out, const struct opt *o)
{
	const char *how = o->env_style == ENV_ONLY_ZERO ? ", only 0 counts"
			  : o->env_style == ENV_TEXT	? ", the text"
							: "";
	if (o->env)
		fprintf(out, "  %s (%s%s; default %s)\n", o->key, o->env, how,
			o->def);
	else
		fprintf(out, "  %s (config file only; default %s)\n", o->key,
			o->def);
	fprintf(out, "      %s\n", o->desc);
}

void cfg_usage(FILE *out, char *const *envp)
{
	fputs("Options (the config file's key, its variable, the default; "
	      "a variable\noverrides the config file, a flag overrides "
	      "both):\n",
	      out);
	for (size_t i = 0; i < cfg_n_opts; i++)
		print_opt(out, &cfg_opts[i]);
	fputs("Other environment variables:\n", out);
	for (size_t i = 0; i < cfg_n_other_env; i++)
		if (cfg_other_env[i].help)
			fprintf(out, "  %-26s %s\n", cfg_other_env[i].name,
				cfg_other_env[i].help);
	fputs("Booleans accept 1/0, true/false, yes/no.\n\n", out);
	char *path = NULL;
	bool required = false;
	struct ccvm_err e = {0};
	if (cfg_config_path(envp, &path, &required, &e) < 0 || !path) {
		fputs("Config file: none (set HOME, XDG_CONFIG_HOME or "
		      "CCVM_CONFIG)\n",
		      out);
	} else {
		char f[ESC_MAX];
		fprintf(out, "Config file: %s%s\n",
			util_escape(f, sizeof(f), path, false),
			required ? " (from CCVM_CONFIG)" : "");
	}
	free(path);
}
