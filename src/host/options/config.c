/*
 * Option resolution: built-in default -> config file -> CCVM_* environment
 * -> flags.  Every option is one row of the table (table.c); the config
 * file, the environment and the defaults all go through the code here.
 */
#define _GNU_SOURCE
#include "options/config.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "options/cli.h"
#include "options/jsonpos.h"
#include "options/table.h"
#include "util.h"

/* ---- the config file ---- */

static const char *json_type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number with a fraction";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "a value";
}

struct file_ctx {
	const char *file; /* escaped */
	struct ccvm_err *err;
	/* The file's text, to say where a problem is (NULL: a default). */
	const char *text;
	size_t len;
};

__attribute__((format(printf, 4, 5))) static int ferr(const struct file_ctx *fc,
						      int errnum,
						      const char *path,
						      const char *fmt, ...)
{
	char what[CCVM_ERR_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	char k[ESC_MAX];
	util_escape(k, sizeof(k), path, false);
	int line, col;
	if (fc->text && jsonpos_find(fc->text, fc->len, path, &line, &col) == 0)
		return ccvm_err_set(fc->err, errnum, "%s:%d:%d: %s: %s",
				    fc->file, line, col, k, what);
	return ccvm_err_set(fc->err, errnum, "%s: %s: %s", fc->file, k, what);
}

static int set_strlist(const struct file_ctx *fc, const struct opt *o,
		       json_t *val, struct cfg_strlist *out)
{
	if (!json_is_array(val))
		return ferr(fc, EINVAL, o->key,
			    "expected an array of strings, "
			    "got %s",
			    json_type_name(val));
	size_t n = json_array_size(val);
	if (o->max && n > (size_t)o->max)
		return ferr(fc, EINVAL, o->key, "more than %ld entries",
			    o->max);
	struct cfg_strlist l = {0};
	if (n) {
		l.v = calloc(n, sizeof(*l.v));
		if (!l.v)
			return ccvm_err_set(fc->err, ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		json_t *item = json_array_get(val, i);
		char path[128];
		snprintf(path, sizeof(path), "%s[%zu]", o->key, i);
		const char *problem = NULL;
		if (!json_is_string(item)) {
			cfg_strlist_free(&l);
			return ferr(fc, EINVAL, path,
				    "expected a string, got %s",
				    json_type_name(item));
		}
		const char *s = json_string_value(item);
		if ((problem = opt_check_problem(o->check, s))) {
			char q[ESC_MAX];
			cfg_strlist_free(&l);
			return ferr(fc, EINVAL, path, "%s %s",
				    util_escape(q, sizeof(q), s, true),
				    problem);
		}
		if (!(l.v[i] = strdup(s))) {
			cfg_strlist_free(&l);
			return ccvm_err_set(fc->err, ENOMEM, "out of memory");
		}
		l.n = i + 1;
	}
	cfg_strlist_free(out);
	*out = l;
	return 0;
}

static int set_ports(const struct file_ctx *fc, const struct opt *o,
		     json_t *val, struct ccvm_config *c)
{
	if (!json_is_array(val))
		return ferr(fc, EINVAL, o->key,
			    "expected an array of port numbers, got %s",
			    json_type_name(val));
	size_t n = json_array_size(val);
	if (o->max && n > (size_t)o->max)
		return ferr(fc, EINVAL, o->key, "more than %ld ports", o->max);
	uint16_t *ports = NULL;
	if (n && !(ports = calloc(n, sizeof(*ports))))
		return ccvm_err_set(fc->err, ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *item = json_array_get(val, i);
		char path[128];
		snprintf(path, sizeof(path), "%s[%zu]", o->key, i);
		if (!json_is_integer(item)) {
			free(ports);
			return ferr(fc, EINVAL, path,
				    "expected a port number, got %s",
				    json_type_name(item));
		}
		json_int_t v = json_integer_value(item);
		if (v < 1 || v > 65535) {
			free(ports);
			return ferr(fc, ERANGE, path,
				    "port %" JSON_INTEGER_FORMAT
				    " is outside 1..65535",
				    v);
		}
		ports[i] = (uint16_t)v;
	}
	free(c->egress_ports);
	c->egress_ports = ports;
	c->n_egress_ports = n;
	return 0;
}

static bool accel_from_name(const char *s, enum cfg_accel *a)
{
	static const char *const names[] = {"auto", "kvm", "tcg"};
	static const enum cfg_accel vals[] = {CFG_ACCEL_AUTO, CFG_ACCEL_KVM,
					      CFG_ACCEL_TCG};
	for (size_t i = 0; i < ARRAY_LEN(names); i++)
		if (strcmp(s, names[i]) == 0) {
			*a = vals[i];
			return true;
		}
	return false;
}

static int set_int(const struct file_ctx *fc, const struct opt *o, json_t *val,
		   struct ccvm_config *c)
{
	if (!json_is_integer(val))
		return ferr(fc, EINVAL, o->key, "expected an integer, got %s",
			    json_type_name(val));
	json_int_t v = json_integer_value(val);
	if (v < o->min || v > o->max)
		return ferr(fc, ERANGE, o->key,
			    "%" JSON_INTEGER_FORMAT " is out of range %ld..%ld",
			    v, o->min, o->max);
	*FIELD(c, o, long) = (long)v;
	return 0;
}

static int set_accel(const struct file_ctx *fc, const struct opt *o,
		     json_t *val, struct ccvm_config *c)
{
	char q[ESC_MAX];
	const char *s = json_string_value(val);
	if (!s)
		return ferr(fc, EINVAL, o->key,
			    "expected \"auto\", \"kvm\" or \"tcg\", got %s",
			    json_type_name(val));
	if (!accel_from_name(s, FIELD(c, o, enum cfg_accel)))
		return ferr(fc, EINVAL, o->key,
			    "expected \"auto\", \"kvm\" or \"tcg\", got %s",
			    util_escape(q, sizeof(q), s, true));
	return 0;
}

static int set_str(const struct file_ctx *fc, const struct opt *o, json_t *val,
		   struct ccvm_config *c)
{
	if (o->nullable && json_is_null(val)) {
		free(*FIELD(c, o, char *));
		*FIELD(c, o, char *) = NULL;
		return 0;
	}
	if (!json_is_string(val))
		return ferr(fc, EINVAL, o->key,
			    o->nullable ? "expected a string or null, got %s"
					: "expected a string, got %s",
			    json_type_name(val));
	const char *s = json_string_value(val);
	const char *problem = opt_check_problem(o->check, s);
	if (problem) {
		char q[ESC_MAX];
		return ferr(fc, EINVAL, o->key, "%s %s",
			    util_escape(q, sizeof(q), s, true), problem);
	}
	char *dup = strdup(s);
	if (!dup)
		return ccvm_err_set(fc->err, ENOMEM, "out of memory");
	free(*FIELD(c, o, char *));
	*FIELD(c, o, char *) = dup;
	return 0;
}

static int set_value(const struct file_ctx *fc, const struct opt *o,
		     json_t *val, struct ccvm_config *c)
{
	switch (o->kind) {
	case K_BOOL:
		if (!json_is_boolean(val))
			return ferr(fc, EINVAL, o->key,
				    "expected true or false, got %s",
				    json_type_name(val));
		*FIELD(c, o, bool) = json_is_true(val);
		return 0;
	case K_INT:
		return set_int(fc, o, val, c);
	case K_ACCEL:
		return set_accel(fc, o, val, c);
	case K_TRISTATE:
		if (json_is_null(val))
			*FIELD(c, o, int) = -1;
		else if (json_is_boolean(val))
			*FIELD(c, o, int) = json_is_true(val);
		else
			return ferr(fc, EINVAL, o->key,
				    "expected null, true or false, got %s",
				    json_type_name(val));
		return 0;
	case K_STR:
		return set_str(fc, o, val, c);
	case K_STRLIST:
		return set_strlist(fc, o, val, FIELD(c, o, struct cfg_strlist));
	case K_PORTS:
		return set_ports(fc, o, val, c);
	}
	return ferr(fc, EINVAL, o->key, "internal: unknown option kind");
}

int opt_set_json(const struct opt *o, json_t *val, struct ccvm_config *c,
		 const char *file, struct ccvm_err *err)
{
	struct file_ctx fc = {.file = file, .err = err};
	return set_value(&fc, o, val, c);
}

static int parse_object(const struct file_ctx *fc, json_t *obj,
			const char *group, struct ccvm_config *c)
{
	const char *key;
	json_t *val;
	json_object_foreach(obj, key, val)
	{
		char path[128];
		if (strlen(key) > 64) {
			char k[ESC_MAX];
			return ccvm_err_set(
			    fc->err, EINVAL, "%s: unknown key %s%s%s", fc->file,
			    group ? group : "", group ? "." : "",
			    util_escape(k, sizeof(k), key, true));
		}
		snprintf(path, sizeof(path), "%s%s%s", group ? group : "",
			 group ? "." : "", key);
		if (!group && opt_is_group(key)) {
			if (!json_is_object(val))
				return ferr(fc, EINVAL, path,
					    "expected an object, got %s",
					    json_type_name(val));
			int r = parse_object(fc, val, key, c);
			if (r < 0)
				return r;
			continue;
		}
		const struct opt *o = opt_find(path);
		if (!o)
			return ferr(fc, EINVAL, path,
				    "unknown key (see docs/options.md)");
		int r = set_value(fc, o, val, c);
		if (r < 0)
			return r;
	}
	return 0;
}

int cfg_parse_json(struct ccvm_config *cfg, const char *text, size_t len,
		   const char *filename, struct ccvm_err *err)
{
	char file[ESC_MAX];
	util_escape(file, sizeof(file), filename ? filename : "config", false);
	json_error_t je;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		char t[ESC_MAX];
		util_escape(t, sizeof(t), je.text, false);
		if (je.line > 0)
			return ccvm_err_set(err, EINVAL, "%s:%d:%d: %s", file,
					    je.line, je.column, t);
		return ccvm_err_set(err, EINVAL, "%s: %s", file, t);
	}
	struct file_ctx fc = {
	    .file = file, .err = err, .text = text, .len = len};
	int r;
	if (!json_is_object(root)) {
		r = ccvm_err_set(
		    err, EINVAL,
		    "%s: expected a JSON object at the top, got %s", file,
		    json_type_name(root));
		json_decref(root);
		return r;
	}
	struct ccvm_config tmp;
	r = cfg_copy(&tmp, cfg);
	if (r < 0) {
		json_decref(root);
		return ccvm_err_set(err, ENOMEM, "out of memory");
	}
	r = parse_object(&fc, root, NULL, &tmp);
	json_decref(root);
	if (r < 0) {
		cfg_free(&tmp);
		return r;
	}
	cfg_free(cfg);
	*cfg = tmp;
	return 0;
}

/* ---- the environment ---- */

const char *cfg_env_get(char *const *envp, const char *name)
{
	if (!envp)
		return NULL;
	size_t n = strlen(name);
	for (char *const *e = envp; *e; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

bool cfg_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"1", "true", "yes"};
	static const char *const no[] = {"0", "false", "no"};
	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return true;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return true;
		}
	}
	return false;
}

static int env_set(struct ccvm_config *c, const struct opt *o, const char *v,
		   struct ccvm_err *err)
{
	char q[ESC_MAX];
	switch (o->env_style) {
	case ENV_ONLY_ZERO:
		if (strcmp(v, "0") == 0)
			*FIELD(c, o, bool) = false;
		return 0;
	case ENV_TEXT: {
		char *dup = strdup(v);
		if (!dup)
			return ccvm_err_set(err, ENOMEM, "out of memory");
		free(*FIELD(c, o, char *));
		*FIELD(c, o, char *) = dup;
		return 0;
	}
	case ENV_PARSE:
		break;
	}
	switch (o->kind) {
	case K_BOOL: {
		bool b;
		if (!cfg_parse_bool(v, &b))
			return ccvm_err_set(err, EINVAL,
					    "%s: expected 1/0, true/false or "
					    "yes/no, got %s",
					    o->env,
					    util_escape(q, sizeof(q), v, true));
		*FIELD(c, o, bool) = b;
		return 0;
	}
	case K_INT: {
		long l;
		if (strspn(v, "0123456789") != strlen(v) ||
		    !util_parse_long(v, o->min, o->max, &l))
			return ccvm_err_set(err, EINVAL,
					    "%s: expected an integer in "
					    "%ld..%ld, got %s",
					    o->env, o->min, o->max,
					    util_escape(q, sizeof(q), v, true));
		*FIELD(c, o, long) = l;
		return 0;
	}
	case K_ACCEL:
		if (!accel_from_name(v, FIELD(c, o, enum cfg_accel)))
			return ccvm_err_set(err, EINVAL,
					    "%s: expected auto, kvm or tcg, "
					    "got %s",
					    o->env,
					    util_escape(q, sizeof(q), v, true));
		return 0;
	default:
		return ccvm_err_set(err, EINVAL, "%s: internal: no parser",
				    o->env);
	}
}

int cfg_apply_env(struct ccvm_config *cfg, char *const *envp,
		  struct ccvm_err *err)
{
	struct ccvm_config tmp;
	if (cfg_copy(&tmp, cfg) < 0)
		return ccvm_err_set(err, ENOMEM, "out of memory");
	int r = 0;
	const char *all = cfg_env_get(envp, "CCVM_SHARE_CLAUDE_CONFIG");
	if (all) {
		bool b;
		if (!cfg_parse_bool(all, &b)) {
			char q[ESC_MAX];
			r = ccvm_err_set(
			    err, EINVAL,
			    "CCVM_SHARE_CLAUDE_CONFIG: expected 1/0, "
			    "true/false or yes/no, got %s",
			    util_escape(q, sizeof(q), all, true));
			goto out;
		}
		for (size_t i = 0; i < cfg_n_opts; i++)
			if (cfg_opts[i].claude_share)
				*FIELD(&tmp, &cfg_opts[i], bool) = b;
	}
	for (size_t i = 0; i < cfg_n_opts; i++) {
		const char *v;
		if (!cfg_opts[i].env ||
		    !(v = cfg_env_get(envp, cfg_opts[i].env)))
			continue;
		if ((r = env_set(&tmp, &cfg_opts[i], v, err)) < 0)
			goto out;
	}
out:
	if (r < 0) {
		cfg_free(&tmp);
		return r;
	}
	cfg_free(cfg);
	*cfg = tmp;
	return 0;
}

/* ---- the whole order ---- */

int cfg_config_path(char *const *envp, char **path, bool *required,
		    struct ccvm_err *err)
{
	const char *v = cfg_env_get(envp, "CCVM_CONFIG");
	char *p = NULL;
	bool req = false;
	if (v) {
		if (*v == '\0') {
			ccvm_err_set(err, EINVAL,
				     "CCVM_CONFIG is set but empty");
			return -EINVAL;
		}
		p = strdup(v);
		req = true;
	} else if ((v = cfg_env_get(envp, "XDG_CONFIG_HOME")) && v[0] == '/') {
		p = util_path_join(v, "ccvm/config.json");
	} else if ((v = cfg_env_get(envp, "HOME")) && v[0] == '/') {
		p = util_path_join(v, ".config/ccvm/config.json");
	} else {
		*path = NULL;
		*required = false;
		return 0;
	}
	if (!p) {
		char q[ESC_MAX];
		return ccvm_err_sys(err, errno ? errno : ENOMEM,
				    "config file path from %s",
				    util_escape(q, sizeof(q), v, true));
	}
	*path = p;
	*required = req;
	return 0;
}

static int load_file(struct ccvm_config *c, bool required, struct ccvm_err *err)
{
	char *text = NULL;
	size_t len = 0;
	struct ccvm_err rerr = {0};
	int r =
	    util_read_file(c->config_path, CFG_FILE_MAX, &text, &len, &rerr);
	if (r == -ENOENT && !required)
		return 0;
	if (r < 0) {
		char f[ESC_MAX];
		util_escape(f, sizeof(f), c->config_path, false);
		const char *how = r == -EINVAL	? "not a regular file"
				  : r == -EFBIG ? "larger than 1 MiB"
						: strerror(-r);
		return ccvm_err_set(err, -r, "%sconfig file %s: %s",
				    required ? "CCVM_CONFIG: " : "", f, how);
	}
	r = cfg_parse_json(c, text, len, c->config_path, err);
	free(text);
	if (r == 0)
		c->config_file_found = true;
	return r;
}

int cfg_resolve(struct ccvm_config *cfg, const struct cli_args *args,
		char *const *envp, struct ccvm_err *err)
{
	struct ccvm_config c = {0};
	int r = cfg_init(&c, err);
	if (r < 0)
		return r;
	bool required = false;
	if ((r = cfg_config_path(envp, &c.config_path, &required, err)) < 0)
		goto fail;
	if (c.config_path && (r = load_file(&c, required, err)) < 0)
		goto fail;
	if ((r = cfg_apply_env(&c, envp, err)) < 0)
		goto fail;
	if (args && args->writable >= 0)
		c.writable_cwd = args->writable == 1;
	*cfg = c;
	return 0;
fail:
	cfg_free(&c);
	return r;
}

/* ---- root ---- */

int cfg_check_root(unsigned euid, char *const *envp, struct ccvm_err *err)
{
	if (euid != 0)
		return 0;
	const char *v = cfg_env_get(envp, "CCVM_ALLOW_ROOT");
	bool allow = false;
	if (v && !cfg_parse_bool(v, &allow)) {
		char q[ESC_MAX];
		return ccvm_err_set(err, EINVAL,
				    "CCVM_ALLOW_ROOT: expected 1/0, true/false "
				    "or yes/no, got %s",
				    util_escape(q, sizeof(q), v, true));
	}
	if (allow)
		return 0;
	return ccvm_err_set(err, EPERM,
			    "refusing to run as root: an escape from the VM "
			    "would then own the host, and the image cache and "
			    "project files would become root's; run ccvm as "
			    "your normal user (CCVM_ALLOW_ROOT=1 overrides)");
}
