/*
 * Option resolution: built-in default -> config file -> CCVM_* environment
 * -> flags.  Every option is one row of opts[]; parsing, the environment,
 * copying, freeing and the dump all walk that table.
 */
#define _GNU_SOURCE
#include "options/config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "options/cli.h"
#include "util.h"

enum opt_kind {
	K_BOOL,	    /* bool */
	K_INT,	    /* long in [min, max] */
	K_ACCEL,    /* enum cfg_accel */
	K_TRISTATE, /* int: -1 null, 0 false, 1 true */
	K_STR,	    /* char * */
	K_STRLIST,  /* struct cfg_strlist */
	K_PORTS,    /* egress_ports / n_egress_ports */
};

enum opt_check {
	CK_ANY = 0,
	CK_ENV_NAME,
	CK_NPM,
	CK_EGRESS,
	CK_DEB,
	CK_ABS_PATH,
	CK_NIX, /* a nix.conf list item: non-empty, no whitespace, control
		   characters or '#' */
};

enum env_style {
	ENV_PARSE = 0, /* parsed like the option's type */
	ENV_ONLY_ZERO, /* only "0" has an effect (sets false) */
	ENV_TEXT,      /* the value itself, verbatim */
};

struct opt {
	const char *key; /* JSON path, "group.name" when nested */
	size_t off;
	long min, max;	 /* K_INT */
	const char *env; /* or NULL */
	const char *doc; /* for --ccvm-help */
	enum opt_kind kind;
	enum opt_check check;
	enum env_style env_style;
	bool claude_share; /* set by CCVM_SHARE_CLAUDE_CONFIG */
	bool build_time;
	bool nullable; /* K_STR: null (NULL) allowed, the default */
};

#define OFF(f) offsetof(struct ccvm_config, f)
#define SHARE(name, field, envname, doc_)                                      \
	{                                                                      \
		.key = "share." name, .kind = K_BOOL, .off = OFF(share.field), \
		.env = envname, .claude_share = true, .doc = doc_              \
	}

static const struct opt opts[] = {
    {.key = "writableCwd",
     .kind = K_BOOL,
     .off = OFF(writable_cwd),
     .env = "CCVM_WRITABLE_CWD",
     .doc = "project directory writable (bool, default true)"},
    {.key = "memory",
     .kind = K_INT,
     .off = OFF(memory_mib),
     .min = 1,
     .max = CFG_MEMORY_MAX,
     .env = "CCVM_MEMORY",
     .doc = "guest memory in MiB (default 4096)"},
    {.key = "cores",
     .kind = K_INT,
     .off = OFF(cores),
     .min = 1,
     .max = CFG_CORES_MAX,
     .env = "CCVM_CORES",
     .doc = "guest CPUs (default 4)"},
    {.key = "acceleration",
     .kind = K_ACCEL,
     .off = OFF(accel),
     .env = "CCVM_ACCEL",
     .doc = "auto, kvm or tcg (default auto)"},
    SHARE("settings", settings, "CCVM_SHARE_SETTINGS",
	  "share ~/.claude/settings.json (default 1)"),
    SHARE("claudeMd", claude_md, "CCVM_SHARE_CLAUDEMD",
	  "share ~/.claude/CLAUDE.md (default 1)"),
    SHARE("keybindings", keybindings, "CCVM_SHARE_KEYBINDINGS",
	  "share ~/.claude/keybindings.json (default 1)"),
    SHARE("commands", commands, "CCVM_SHARE_COMMANDS",
	  "share ~/.claude/commands (default 1)"),
    SHARE("agents", agents, "CCVM_SHARE_AGENTS",
	  "share ~/.claude/agents (default 1)"),
    SHARE("skills", skills, "CCVM_SHARE_SKILLS",
	  "share ~/.claude/skills (default 1)"),
    SHARE("outputStyles", output_styles, "CCVM_SHARE_OUTPUTSTYLES",
	  "share ~/.claude/output-styles (default 1)"),
    SHARE("plugins", plugins, "CCVM_SHARE_PLUGINS",
	  "share ~/.claude/plugins (default 0)"),
    SHARE("config", config, "CCVM_SHARE_CONFIG",
	  "share a sanitized ~/.claude.json (default 0)"),
    {.key = "share.gitConfig",
     .kind = K_BOOL,
     .off = OFF(share.git_config),
     .env = "CCVM_SHARE_GIT_CONFIG",
     .doc = "share a sanitized git config (default 1)"},
    {.key = "nix.enable",
     .kind = K_BOOL,
     .off = OFF(nix_enable),
     .build_time = true},
    {.key = "nix.substituters",
     .kind = K_STRLIST,
     .off = OFF(nix_substituters),
     .check = CK_NIX,
     .build_time = true},
    {.key = "nix.trustedPublicKeys",
     .kind = K_STRLIST,
     .off = OFF(nix_trusted_keys),
     .check = CK_NIX,
     .build_time = true},
    {.key = "persistClaudeProjects",
     .kind = K_BOOL,
     .off = OFF(persist_projects),
     .env = "CCVM_PERSIST_PROJECTS",
     .doc = "keep this project's ~/.claude/projects transcripts "
	    "(default 0)"},
    {.key = "vmDiskSize",
     .kind = K_INT,
     .off = OFF(vm_disk_size_gib),
     .min = 0,
     .max = CFG_DISK_SIZE_MAX,
     .env = "CCVM_VM_DISK_SIZE",
     .doc = "scratch disk in GiB at /scratch, 0 = none (default 0)"},
    {.key = "clipboard.images",
     .kind = K_BOOL,
     .off = OFF(clipboard_images),
     .env = "CCVM_CLIPBOARD_IMAGES",
     .env_style = ENV_ONLY_ZERO,
     .doc = "0 disables image paste (other values are ignored)"},
    {.key = "egressAllowlist",
     .kind = K_STRLIST,
     .off = OFF(egress_allowlist),
     .check = CK_EGRESS},
    {.key = "egressPorts", .kind = K_PORTS, .off = 0},
    {.key = "agentSudo",
     .kind = K_TRISTATE,
     .off = OFF(agent_sudo),
     .build_time = true},
    {.key = "apiKeyVariable",
     .kind = K_STR,
     .off = OFF(api_key_variable),
     .check = CK_ENV_NAME},
    {.key = "extraClaudeMd",
     .kind = K_STR,
     .off = OFF(extra_claude_md),
     .env = "CCVM_CLAUDE_MD",
     .env_style = ENV_TEXT,
     .nullable = true,
     .doc = "text added to the agent's CLAUDE.md (empty disables)"},
    {.key = "extraPackages",
     .kind = K_STRLIST,
     .off = OFF(extra_packages),
     .check = CK_DEB,
     .build_time = true},
    {.key = "package",
     .kind = K_STR,
     .off = OFF(package),
     .check = CK_NPM,
     .build_time = true},
    {.key = "extraGuestModules",
     .kind = K_STRLIST,
     .off = OFF(extra_guest_modules),
     .check = CK_ABS_PATH,
     .build_time = true},
    {.key = "lockGuestMemory",
     .kind = K_BOOL,
     .off = OFF(lock_guest_memory),
     .env = "CCVM_MLOCK",
     .doc = "mlock the guest's memory (bool, default 0)"},
};

/* Objects that group keys in the file. */
static const char *const groups[] = {"share", "nix", "clipboard"};

#define FIELD(cfg, o, type)  ((type *)((char *)(cfg) + (o)->off))
#define CFIELD(cfg, o, type) ((const type *)((const char *)(cfg) + (o)->off))

/* ---- messages ---- */

#define ESC_MAX 400

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

/* ---- validators: NULL when valid, else what is wrong ---- */

static const char *env_name_problem(const char *s)
{
	size_t len = strlen(s);
	if (len == 0)
		return "is empty; expected an environment variable name";
	if (len > 255)
		return "is longer than 255 characters";
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
			     c == '_';
		if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
			return "is not an environment variable name "
			       "([A-Za-z_][A-Za-z0-9_]*)";
	}
	return NULL;
}

bool cfg_valid_env_name(const char *s)
{
	return env_name_problem(s) == NULL;
}

/* A DNS host name: labels of 1-63 letters, digits and inner '-', at most
 * 253 characters, optional final '.', last label not all digits. */
static bool valid_hostname(const char *s)
{
	size_t len = strlen(s);
	if (len > 0 && s[len - 1] == '.')
		len--;
	if (len == 0 || len > 253)
		return false;
	size_t label = 0;
	bool all_digits = true;
	for (size_t i = 0; i <= len; i++) {
		char c = i < len ? s[i] : '.';
		if (c == '.') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				return false;
			if (i == len && all_digits)
				return false;
			label = 0;
			all_digits = true;
			continue;
		}
		bool digit = c >= '0' && c <= '9';
		bool alnum =
		    digit || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
		if (!alnum && !(c == '-' && label > 0))
			return false;
		if (!digit)
			all_digits = false;
		label++;
	}
	return true;
}

static const char *egress_problem(const char *s)
{
	const char *what = "is not a host name, *.wildcard, IP address or CIDR";
	if (*s == '\0')
		return "is empty";
	if (strstr(s, "://"))
		return "is a URL; give only the host name";
	const char *slash = strchr(s, '/');
	if (slash) {
		char addr[INET6_ADDRSTRLEN];
		size_t alen = (size_t)(slash - s);
		if (alen == 0 || alen >= sizeof(addr))
			return "is not a valid CIDR (address/prefix)";
		memcpy(addr, s, alen);
		addr[alen] = '\0';
		unsigned char bin[16];
		long max;
		if (inet_pton(AF_INET, addr, bin) == 1)
			max = 32;
		else if (inet_pton(AF_INET6, addr, bin) == 1)
			max = 128;
		else
			return "is not a valid CIDR: bad IP address before '/'";
		const char *p = slash + 1;
		size_t plen = strlen(p);
		bool digits =
		    plen >= 1 && plen <= 3 && strspn(p, "0123456789") == plen;
		long prefix;
		if (!digits || (plen > 1 && p[0] == '0') ||
		    !util_parse_long(p, 0, max, &prefix))
			return max == 32
				   ? "is not a valid CIDR: prefix must be "
				     "0..32 for IPv4"
				   : "is not a valid CIDR: prefix must be "
				     "0..128 for IPv6";
		return NULL;
	}
	unsigned char bin[16];
	if (inet_pton(AF_INET, s, bin) == 1 || inet_pton(AF_INET6, s, bin) == 1)
		return NULL;
	if (strchr(s, ':'))
		return "is not a valid IPv6 address (a port goes in "
		       "egressPorts, not here)";
	if (s[0] == '*') {
		if (s[1] != '.' || !valid_hostname(s + 2))
			return "is not a valid wildcard (use *.example.com)";
		return NULL;
	}
	if (strspn(s, "0123456789.") == strlen(s))
		return "is not a valid IPv4 address";
	return valid_hostname(s) ? NULL : what;
}

bool cfg_valid_egress(const char *s)
{
	return egress_problem(s) == NULL;
}

/* Debian policy 5.6.1: [a-z0-9][a-z0-9+.-]+ */
static const char *deb_problem(const char *s)
{
	size_t len = strlen(s);
	if (len < 2 || len > 128)
		return "is not a Debian package name (2..128 characters)";
	if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
		return "is not a Debian package name (must start with a "
		       "lowercase letter or digit)";
	if (strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789+.-") != len)
		return "is not a Debian package name (only a-z, 0-9, '+', "
		       "'.', '-')";
	return NULL;
}

bool cfg_valid_deb_name(const char *s)
{
	return deb_problem(s) == NULL;
}

static bool has_space_or_ctl(const char *s, bool ascii_only)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p <= 0x20 || *p == 0x7f || (ascii_only && *p >= 0x80))
			return true;
	return false;
}

static bool has_ctl(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return true;
	return false;
}

static const char *npm_problem(const char *s)
{
	if (*s == '\0')
		return "is empty; expected an npm package spec";
	if (strlen(s) > 1024)
		return "is longer than 1024 characters";
	if (s[0] == '-')
		return "must not start with '-'";
	if (has_space_or_ctl(s, true))
		return "is not an npm package spec (printable ASCII without "
		       "spaces)";
	return NULL;
}

bool cfg_valid_npm_spec(const char *s)
{
	return npm_problem(s) == NULL;
}

static const char *check_problem(enum opt_check ck, const char *s)
{
	switch (ck) {
	case CK_ANY:
		return NULL;
	case CK_ENV_NAME:
		return env_name_problem(s);
	case CK_NPM:
		return npm_problem(s);
	case CK_EGRESS:
		return egress_problem(s);
	case CK_DEB:
		return deb_problem(s);
	case CK_ABS_PATH:
		if (s[0] != '/')
			return "is not an absolute path";
		if (strlen(s) >= PATH_MAX)
			return "is longer than PATH_MAX";
		if (has_ctl(s))
			return "contains control characters";
		return NULL;
	case CK_NIX:
		if (*s == '\0')
			return "is empty";
		if (has_space_or_ctl(s, false))
			return "contains whitespace or control characters";
		/* nix.conf drops everything from '#' on as a comment. */
		if (strchr(s, '#'))
			return "contains '#' (nix.conf reads it as a comment)";
		return NULL;
	}
	return NULL;
}

/* ---- struct ownership ---- */

static void strlist_free(struct cfg_strlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int strlist_copy(struct cfg_strlist *dst, const struct cfg_strlist *src)
{
	dst->v = NULL;
	dst->n = 0;
	if (src->n == 0)
		return 0;
	dst->v = calloc(src->n, sizeof(*dst->v));
	if (!dst->v)
		return -ENOMEM;
	for (size_t i = 0; i < src->n; i++) {
		dst->v[i] = strdup(src->v[i]);
		if (!dst->v[i]) {
			dst->n = i;
			strlist_free(dst);
			return -ENOMEM;
		}
	}
	dst->n = src->n;
	return 0;
}

void cfg_free(struct ccvm_config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < ARRAY_LEN(opts); i++) {
		const struct opt *o = &opts[i];
		if (o->kind == K_STR)
			free(*FIELD(cfg, o, char *));
		else if (o->kind == K_STRLIST)
			strlist_free(FIELD(cfg, o, struct cfg_strlist));
	}
	free(cfg->egress_ports);
	free(cfg->config_path);
	memset(cfg, 0, sizeof(*cfg));
}

/* Deep copy; dst is overwritten (not freed). */
static int cfg_copy(struct ccvm_config *dst, const struct ccvm_config *src)
{
	*dst = *src;
	for (size_t i = 0; i < ARRAY_LEN(opts); i++) {
		const struct opt *o = &opts[i];
		if (o->kind == K_STR)
			*FIELD(dst, o, char *) = NULL;
		else if (o->kind == K_STRLIST)
			*FIELD(dst, o, struct cfg_strlist) =
			    (struct cfg_strlist){0};
	}
	dst->egress_ports = NULL;
	dst->config_path = NULL;
	for (size_t i = 0; i < ARRAY_LEN(opts); i++) {
		const struct opt *o = &opts[i];
		if (o->kind == K_STR && *CFIELD(src, o, char *)) {
			char *s = strdup(*CFIELD(src, o, char *));
			if (!s)
				goto nomem;
			*FIELD(dst, o, char *) = s;
		} else if (o->kind == K_STRLIST &&
			   strlist_copy(FIELD(dst, o, struct cfg_strlist),
					CFIELD(src, o, struct cfg_strlist)) <
			       0) {
			goto nomem;
		}
	}
	if (src->n_egress_ports) {
		dst->egress_ports =
		    calloc(src->n_egress_ports, sizeof(uint16_t));
		if (!dst->egress_ports)
			goto nomem;
		memcpy(dst->egress_ports, src->egress_ports,
		       src->n_egress_ports * sizeof(uint16_t));
	}
	if (src->config_path && !(dst->config_path = strdup(src->config_path)))
		goto nomem;
	return 0;
nomem:
	cfg_free(dst);
	return -ENOMEM;
}

int cfg_init(struct ccvm_config *cfg, struct ccvm_err *err)
{
	struct ccvm_config c = {
	    .writable_cwd = true,
	    .memory_mib = 4096,
	    .cores = 4,
	    .accel = CFG_ACCEL_AUTO,
	    .share = {.settings = true,
		      .claude_md = true,
		      .keybindings = true,
		      .commands = true,
		      .agents = true,
		      .skills = true,
		      .output_styles = true,
		      .plugins = false,
		      .config = false,
		      .git_config = true},
	    .vm_disk_size_gib = 0,
	    .clipboard_images = true,
	    .agent_sudo = -1,
	};
	c.egress_ports = calloc(1, sizeof(uint16_t));
	c.api_key_variable = strdup("ANTHROPIC_API_KEY");
	/* extraClaudeMd: NULL, the built-in note (stage.c), which depends
	 * on the session's options. */
	c.package = strdup(CCVM_DEFAULT_PACKAGE);
	if (!c.egress_ports || !c.api_key_variable || !c.package) {
		cfg_free(&c);
		return ccvm_err_set(err, ENOMEM, "out of memory");
	}
	c.egress_ports[0] = 443;
	c.n_egress_ports = 1;
	*cfg = c;
	return 0;
}

/* ---- the config file ---- */

static const struct opt *opt_find(const char *key)
{
	for (size_t i = 0; i < ARRAY_LEN(opts); i++)
		if (strcmp(opts[i].key, key) == 0)
			return &opts[i];
	return NULL;
}

static bool is_group(const char *key)
{
	for (size_t i = 0; i < ARRAY_LEN(groups); i++)
		if (strcmp(groups[i], key) == 0)
			return true;
	return false;
}

struct file_ctx {
	const char *file; /* escaped */
	struct ccvm_err *err;
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
	return ccvm_err_set(fc->err, errnum, "%s: %s: %s", fc->file,
			    util_escape(k, sizeof(k), path, false), what);
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
			strlist_free(&l);
			return ferr(fc, EINVAL, path,
				    "expected a string, got %s",
				    json_type_name(item));
		}
		const char *s = json_string_value(item);
		if ((problem = check_problem(o->check, s))) {
			char q[ESC_MAX];
			strlist_free(&l);
			return ferr(fc, EINVAL, path, "%s %s",
				    util_escape(q, sizeof(q), s, true),
				    problem);
		}
		if (!(l.v[i] = strdup(s))) {
			strlist_free(&l);
			return ccvm_err_set(fc->err, ENOMEM, "out of memory");
		}
		l.n = i + 1;
	}
	strlist_free(out);
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

static int set_value(const struct file_ctx *fc, const struct opt *o,
		     json_t *val, struct ccvm_config *c)
{
	char q[ESC_MAX];
	switch (o->kind) {
	case K_BOOL:
		if (!json_is_boolean(val))
			return ferr(fc, EINVAL, o->key,
				    "expected true or false, got %s",
				    json_type_name(val));
		*FIELD(c, o, bool) = json_is_true(val);
		return 0;
	case K_INT: {
		if (!json_is_integer(val))
			return ferr(fc, EINVAL, o->key,
				    "expected an integer, got %s",
				    json_type_name(val));
		json_int_t v = json_integer_value(val);
		if (v < o->min || v > o->max)
			return ferr(fc, ERANGE, o->key,
				    "%" JSON_INTEGER_FORMAT
				    " is out of range %ld..%ld",
				    v, o->min, o->max);
		*FIELD(c, o, long) = (long)v;
		return 0;
	}
	case K_ACCEL: {
		const char *s = json_string_value(val);
		enum cfg_accel a;
		if (!s)
			return ferr(fc, EINVAL, o->key,
				    "expected \"auto\", \"kvm\" or \"tcg\", "
				    "got %s",
				    json_type_name(val));
		if (!strcmp(s, "auto"))
			a = CFG_ACCEL_AUTO;
		else if (!strcmp(s, "kvm"))
			a = CFG_ACCEL_KVM;
		else if (!strcmp(s, "tcg"))
			a = CFG_ACCEL_TCG;
		else
			return ferr(fc, EINVAL, o->key,
				    "expected \"auto\", \"kvm\" or \"tcg\", "
				    "got %s",
				    util_escape(q, sizeof(q), s, true));
		*FIELD(c, o, enum cfg_accel) = a;
		return 0;
	}
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
	case K_STR: {
		if (o->nullable && json_is_null(val)) {
			free(*FIELD(c, o, char *));
			*FIELD(c, o, char *) = NULL;
			return 0;
		}
		if (!json_is_string(val))
			return ferr(fc, EINVAL, o->key,
				    o->nullable ? "expected a string or null, "
						  "got %s"
						: "expected a string, got %s",
				    json_type_name(val));
		const char *s = json_string_value(val);
		const char *problem = check_problem(o->check, s);
		if (problem)
			return ferr(fc, EINVAL, o->key, "%s %s",
				    util_escape(q, sizeof(q), s, true),
				    problem);
		char *dup = strdup(s);
		if (!dup)
			return ccvm_err_set(fc->err, ENOMEM, "out of memory");
		free(*FIELD(c, o, char *));
		*FIELD(c, o, char *) = dup;
		return 0;
	}
	case K_STRLIST:
		return set_strlist(fc, o, val, FIELD(c, o, struct cfg_strlist));
	case K_PORTS:
		return set_ports(fc, o, val, c);
	}
	return ferr(fc, EINVAL, o->key, "internal: unknown option kind");
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
		if (!group && is_group(key)) {
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
	struct file_ctx fc = {.file = file, .err = err};
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
		if (!strcmp(v, "auto"))
			*FIELD(c, o, enum cfg_accel) = CFG_ACCEL_AUTO;
		else if (!strcmp(v, "kvm"))
			*FIELD(c, o, enum cfg_accel) = CFG_ACCEL_KVM;
		else if (!strcmp(v, "tcg"))
			*FIELD(c, o, enum cfg_accel) = CFG_ACCEL_TCG;
		else
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
		for (size_t i = 0; i < ARRAY_LEN(opts); i++)
			if (opts[i].claude_share)
				*FIELD(&tmp, &opts[i], bool) = b;
	}
	for (size_t i = 0; i < ARRAY_LEN(opts); i++) {
		const char *v;
		if (!opts[i].env || !(v = cfg_env_get(envp, opts[i].env)))
			continue;
		if ((r = env_set(&tmp, &opts[i], v, err)) < 0)
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

/* ---- dump ---- */

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
	for (size_t i = 0; i < ARRAY_LEN(opts); i++) {
		const struct opt *o = &opts[i];
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

/* ---- root, help ---- */

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

void cfg_usage(FILE *out, char *const *envp)
{
	fputs("Environment (override the config file; flags override "
	      "these):\n",
	      out);
	bool all_shown = false;
	for (size_t i = 0; i < ARRAY_LEN(opts); i++) {
		if (!opts[i].env)
			continue;
		if (opts[i].claude_share && !all_shown) {
			fprintf(out, "  %-26s %s\n", "CCVM_SHARE_CLAUDE_CONFIG",
				"0/1: all share.* but gitConfig at once "
				"(per-item variables win)");
			all_shown = true;
		}
		fprintf(out, "  %-26s %s\n", opts[i].env, opts[i].doc);
	}
	fprintf(out, "  %-26s %s\n", "CCVM_CONFIG",
		"config file to read instead of the default (must exist)");
	fprintf(out, "  %-26s %s\n", "CCVM_ALLOW_ROOT",
		"1 lets ccvm run as root (refused otherwise)");
	fprintf(out, "  %-26s %s\n", "CCVM_ALLOW_SECRET_DIRS",
		"1 lets ccvm share a directory holding or inside ~/.ssh and "
		"the like");
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
