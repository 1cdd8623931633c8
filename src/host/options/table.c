/*
 * The option table: one row per option of docs/options.md, with its
 * default; and what walks the rows to own a struct ccvm_config (the
 * defaults, copy, free).
 */
#define _GNU_SOURCE
#include "options/table.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net/egress_parse.h"
#include "util.h"

#define OFF(f) offsetof(struct ccvm_config, f)
#define SHARE(name, field, envname, def_, desc_)                               \
	{                                                                      \
		.key = "share." name, .kind = K_BOOL, .off = OFF(share.field), \
		.def = def_, .env = envname, .claude_share = true,             \
		.desc = desc_                                                  \
	}

const struct opt cfg_opts[] = {
    {.key = "writableCwd",
     .kind = K_BOOL,
     .off = OFF(writable_cwd),
     .def = "true",
     .env = "CCVM_WRITABLE_CWD",
     .desc =
	 "Share the project directory read-write; false shares it read-only, "
	 "and the agent's writes go to an in-VM overlay discarded on exit."},
    {.key = "memory",
     .kind = K_INT,
     .off = OFF(memory_mib),
     .min = 1,
     .max = CFG_MEMORY_MAX,
     .def = "4096",
     .env = "CCVM_MEMORY",
     .desc = "Guest memory in MiB."},
    {.key = "cores",
     .kind = K_INT,
     .off = OFF(cores),
     .min = 1,
     .max = CFG_CORES_MAX,
     .def = "4",
     .env = "CCVM_CORES",
     .desc = "Guest CPUs."},
    {.key = "acceleration",
     .kind = K_ACCEL,
     .off = OFF(accel),
     .def = "\"auto\"",
     .env = "CCVM_ACCEL",
     .desc = "auto uses KVM when a probe guest really runs under it, else TCG; "
	     "kvm fails with the reason when KVM is unusable; tcg is software "
	     "emulation."},
    SHARE("settings", settings, "CCVM_SHARE_SETTINGS", "true",
	  "Stage a sanitized ~/.claude/settings.json and ~/.claude.json."),
    SHARE("claudeMd", claude_md, "CCVM_SHARE_CLAUDEMD", "true",
	  "Stage ~/.claude/CLAUDE.md."),
    SHARE("keybindings", keybindings, "CCVM_SHARE_KEYBINDINGS", "true",
	  "Stage ~/.claude/keybindings.json."),
    SHARE("commands", commands, "CCVM_SHARE_COMMANDS", "true",
	  "Stage ~/.claude/commands."),
    SHARE("agents", agents, "CCVM_SHARE_AGENTS", "true",
	  "Stage ~/.claude/agents."),
    SHARE("skills", skills, "CCVM_SHARE_SKILLS", "true",
	  "Stage ~/.claude/skills."),
    SHARE("outputStyles", output_styles, "CCVM_SHARE_OUTPUTSTYLES", "true",
	  "Stage ~/.claude/output-styles."),
    SHARE("plugins", plugins, "CCVM_SHARE_PLUGINS", "false",
	  "Stage ~/.claude/plugins."),
    SHARE("config", config, "CCVM_SHARE_CONFIG", "false",
	  "Stage ~/.claude/config."),
    {.key = "share.gitConfig",
     .kind = K_BOOL,
     .off = OFF(share.git_config),
     .def = "true",
     .env = "CCVM_SHARE_GIT_CONFIG",
     .desc = "Stage a sanitized git config: no credentials, signing off."},
    {.key = "nix.enable",
     .kind = K_BOOL,
     .off = OFF(nix_enable),
     .def = "false",
     .build_time = true,
     .desc = "Put Nix in the guest image: Debian's nix-bin with a nix-daemon; "
	     "build-time."},
    {.key = "nix.substituters",
     .kind = K_STRLIST,
     .off = OFF(nix_substituters),
     .def = "[]",
     .check = CK_NIX,
     .build_time = true,
     .desc = "Binary caches the guest's Nix may use, written to nix.conf as "
	     "they are; build-time."},
    {.key = "nix.trustedPublicKeys",
     .kind = K_STRLIST,
     .off = OFF(nix_trusted_keys),
     .def = "[]",
     .check = CK_NIX,
     .build_time = true,
     .desc = "Public keys that verify paths from those caches; build-time."},
    {.key = "persistClaudeProjects",
     .kind = K_BOOL,
     .off = OFF(persist_projects),
     .def = "false",
     .env = "CCVM_PERSIST_PROJECTS",
     .desc = "Share this project's ~/.claude/projects directory read-write so "
	     "transcripts persist across sessions."},
    {.key = "vmDiskSize",
     .kind = K_INT,
     .off = OFF(vm_disk_size_gib),
     .min = 0,
     .max = CFG_DISK_SIZE_MAX,
     .def = "0",
     .env = "CCVM_VM_DISK_SIZE",
     .desc = "GiB of encrypted, ephemeral scratch disk at /scratch; 0 keeps "
	     "the VM to RAM."},
    {.key = "clipboard.images",
     .kind = K_BOOL,
     .off = OFF(clipboard_images),
     .def = "true",
     .env = "CCVM_CLIPBOARD_IMAGES",
     .env_style = ENV_ONLY_ZERO,
     .desc =
	 "Let the agent paste images, never text, from the host clipboard."},
    /* The session's policy takes at most EGRESS_MAX_ENTRIES entries
     * and EGRESS_MAX_PORTS ports: refused here, before any build. */
    {.key = "egressAllowlist",
     .kind = K_STRLIST,
     .off = OFF(egress_allowlist),
     .max = EGRESS_MAX_ENTRIES,
     .def = "[]",
     .check = CK_EGRESS,
     .desc = "Host names, *.example.com wildcards, IP addresses and CIDRs the "
	     "guest may reach; empty means open egress."},
    {.key = "egressPorts",
     .kind = K_PORTS,
     .off = 0,
     .max = EGRESS_MAX_PORTS,
     .def = "[443]",
     .desc = "Ports the allowlist permits."},
    /* null (auto) means on: the image code's image_agent_sudo(). */
    {.key = "agentSudo",
     .kind = K_TRISTATE,
     .off = OFF(agent_sudo),
     .def = "null",
     .build_time = true,
     .desc = "Passwordless sudo for the agent; null (auto) means on, with or "
	     "without an allowlist; build-time."},
    {.key = "apiKeyVariable",
     .kind = K_STR,
     .off = OFF(api_key_variable),
     .def = "\"ANTHROPIC_API_KEY\"",
     .check = CK_ENV_NAME,
     .desc = "The host environment variable holding the API key."},
    /* The host-side API proxy (net/apiproxy.c) holds the credential;
     * false hands it to the agent's environment, as before. */
    {.key = "credentialProxy",
     .kind = K_BOOL,
     .off = OFF(credential_proxy),
     .def = "true",
     .env = "CCVM_CREDENTIAL_PROXY",
     .desc = "Keep the API credential on the host, where ccvm adds it to the "
	     "agent's requests; false hands it to the agent's environment."},
    /* null is the built-in note, which stage.c writes from the
     * session's options (it names the allowlist and the ports). */
    {.key = "extraClaudeMd",
     .kind = K_STR,
     .off = OFF(extra_claude_md),
     .def = "null",
     .env = "CCVM_CLAUDE_MD",
     .env_style = ENV_TEXT,
     .nullable = true,
     .desc = "Text added to the agent's CLAUDE.md; null is a built-in note "
	     "about the VM, an empty string disables it."},
    {.key = "extraPackages",
     .kind = K_STRLIST,
     .off = OFF(extra_packages),
     .def = "[]",
     .check = CK_DEB,
     .build_time = true,
     .desc = "Debian package names added to the guest image; build-time."},
    {.key = "package",
     .kind = K_STR,
     .off = OFF(package),
     .def = "\"" CCVM_DEFAULT_PACKAGE "\"",
     .check = CK_NPM,
     .build_time = true,
     .desc = "The npm package spec of the agent; build-time."},
    {.key = "extraGuestModules",
     .kind = K_STRLIST,
     .off = OFF(extra_guest_modules),
     .def = "[]",
     .check = CK_ABS_PATH,
     .build_time = true,
     .desc = "Absolute paths of provisioning scripts run as root in the guest "
	     "root at image build; build-time."},
    {.key = "lockGuestMemory",
     .kind = K_BOOL,
     .off = OFF(lock_guest_memory),
     .def = "false",
     .env = "CCVM_MLOCK",
     .desc = "Lock the guest's memory in RAM (mlock); needs RLIMIT_MEMLOCK "
	     "raised."},
};

const size_t cfg_n_opts = ARRAY_LEN(cfg_opts);

/*
 * Every other CCVM_* variable ccvm reads (the rows' own are above), with
 * what --ccvm-help says of it (NULL: documented in the man page only, a
 * developer knob); a variable named in neither place gets a warning.
 */
const struct env_var cfg_other_env[] = {
    {"CCVM_SHARE_CLAUDE_CONFIG",
     "0/1: all share.* but gitConfig at once (per-item variables win)"},
    {"CCVM_CONFIG", "config file to read instead of the default (must exist)"},
    {"CCVM_DEBUG", "1 works as --ccvm-debug"},
    {"CCVM_ALLOW_ROOT", "1 lets ccvm run as root (refused otherwise)"},
    {"CCVM_ALLOW_SECRET_DIRS",
     "1 lets ccvm share a directory holding or inside ~/.ssh and the like"},
    {"CCVM_QEMU", "the QEMU binary (default qemu-system-x86_64)"},
    {"CCVM_VIRTIOFSD", "the virtiofsd binary; none shares over 9p"},
    {"CCVM_XCLIP", NULL},
    {"CCVM_WL_PASTE", NULL},
    {"CCVM_BOOT_TIMEOUT", "seconds to wait for the guest (default 90)"},
    {"CCVM_SCRATCH_DIR", NULL},
    {"CCVM_STOCK_KERNEL", NULL},
    {"CCVM_KERNEL_SOURCE",
     "a Linux 6.1 .tar.xz to build the guest kernel from instead of "
     "Debian's linux-source-6.1 (absolute path)"},
    {"CCVM_SHARE_CACHE", NULL},
    {"CCVM_SAVED_BOOT", NULL},
    {"CCVM_EGRESS_LOG", "0 keeps no egress audit log for the session"},
};
const size_t cfg_n_other_env = ARRAY_LEN(cfg_other_env);

/* What ccvm's test runner (tests/run) sets around ccvm: no warning for
 * these either, and no documentation (03-docs.sh skips these lines). */
const char *const cfg_test_env[] = {
    "CCVM_SRC",		 /* test runner */
    "CCVM_BUILD",	 /* test runner */
    "CCVM_FUZZ_RUNS",	 /* test runner */
    "CCVM_EGRESS_INNER", /* test runner */
    "CCVM_FAULTS_INNER", /* test runner */
};
const size_t cfg_n_test_env = ARRAY_LEN(cfg_test_env);

/* Objects that group keys in the file. */
static const char *const groups[] = {"share", "nix", "clipboard"};

const struct opt *opt_find(const char *key)
{
	for (size_t i = 0; i < cfg_n_opts; i++)
		if (strcmp(cfg_opts[i].key, key) == 0)
			return &cfg_opts[i];
	return NULL;
}

bool opt_is_group(const char *key)
{
	for (size_t i = 0; i < ARRAY_LEN(groups); i++)
		if (strcmp(groups[i], key) == 0)
			return true;
	return false;
}

void cfg_strlist_free(struct cfg_strlist *l)
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
			cfg_strlist_free(dst);
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
	for (size_t i = 0; i < cfg_n_opts; i++) {
		const struct opt *o = &cfg_opts[i];
		if (o->kind == K_STR)
			free(*FIELD(cfg, o, char *));
		else if (o->kind == K_STRLIST)
			cfg_strlist_free(FIELD(cfg, o, struct cfg_strlist));
	}
	free(cfg->egress_ports);
	free(cfg->config_path);
	memset(cfg, 0, sizeof(*cfg));
}

int cfg_copy(struct ccvm_config *dst, const struct ccvm_config *src)
{
	*dst = *src;
	for (size_t i = 0; i < cfg_n_opts; i++) {
		const struct opt *o = &cfg_opts[i];
		if (o->kind == K_STR)
			*FIELD(dst, o, char *) = NULL;
		else if (o->kind == K_STRLIST)
			*FIELD(dst, o, struct cfg_strlist) =
			    (struct cfg_strlist){0};
	}
	dst->egress_ports = NULL;
	dst->config_path = NULL;
	for (size_t i = 0; i < cfg_n_opts; i++) {
		const struct opt *o = &cfg_opts[i];
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

/*
 * Every option from its row's default, through the same code that reads
 * a config file: the table is the only place a default is written.
 */
int cfg_init(struct ccvm_config *cfg, struct ccvm_err *err)
{
	struct ccvm_config c = {0};
	for (size_t i = 0; i < cfg_n_opts; i++) {
		const struct opt *o = &cfg_opts[i];
		json_error_t je;
		json_t *v =
		    json_loads(o->def ? o->def : "", JSON_DECODE_ANY, &je);
		if (!v) {
			cfg_free(&c);
			return ccvm_err_set(
			    err, EINVAL, "internal: %s: bad default", o->key);
		}
		int r = opt_set_json(o, v, &c, "built-in default", err);
		json_decref(v);
		if (r < 0) {
			cfg_free(&c);
			return r;
		}
	}
	*cfg = c;
	return 0;
}
