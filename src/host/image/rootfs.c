/*
 * The guest's root file system: the build's tools, the agent installed
 * by npm on the host, and the Debian root made by mmdebstrap in a user
 * namespace (the agent, hostname and sudo, Nix, the provisioning scripts
 * and a `claude --version` check run as customize hooks; the kernel and
 * modules are handed out with sync-out), streamed as a tar into
 * `mksquashfs -tar`.
 */
#define _GNU_SOURCE
#include "image/build.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "image/image_build.h"
#include "image/run.h"
#include "sys/hostpath.h"
#include "util.h"

#define NIX_PACKAGE "nix-bin" /* bookworm: Nix 2.8 */
#define GUEST_PATH                                                             \
	"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* What an agent session needs in the guest, besides extraPackages. */
static const char *const base_packages[] = {
    "bash",	    "coreutils",
    "git",	    "ca-certificates",
    "curl",	    "less",
    "procps",	    "ripgrep",
    "sudo",	    "iproute2",
    "nftables",	    "dmsetup",
    "e2fsprogs",    "ncurses-base",
    "ncurses-term", "util-linux",
    "kmod",	    "linux-image-amd64",
};

static const char *const dpkg_excludes[] = {
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-include=/usr/share/locale/locale.alias",
    "--dpkgopt=path-exclude=/usr/share/lintian/*",
};

static int check_subids(const char *file, struct ccvm_err *err)
{
	struct passwd *pw = getpwuid(geteuid());
	autofree char *text = NULL;
	struct ccvm_err e = {0};
	char uid[32];
	snprintf(uid, sizeof(uid), "%u", (unsigned)geteuid());
	if (util_read_file(file, TEXT_MAX, &text, NULL, &e) == 0) {
		for (char *line = text; line && *line;) {
			char *nl = strchr(line, '\n');
			size_t len = nl ? (size_t)(nl - line) : strlen(line);
			char *colon = memchr(line, ':', len);
			size_t nlen = colon ? (size_t)(colon - line) : 0;
			if (colon &&
			    ((pw && strlen(pw->pw_name) == nlen &&
			      !memcmp(line, pw->pw_name, nlen)) ||
			     (strlen(uid) == nlen && !memcmp(line, uid, nlen))))
				return 0;
			line = nl ? nl + 1 : NULL;
		}
	}
	const char *name = pw ? pw->pw_name : uid;
	return ccvm_err_set(err, EPERM,
			    "building the guest image without root needs a "
			    "subordinate id range for user %s in %s (for "
			    "mmdebstrap's unshare mode); add one with: sudo "
			    "usermod --add-subuids 100000-165535 "
			    "--add-subgids 100000-165535 %s",
			    name, file, name);
}

int rootfs_step_tools(void *ctx, struct ccvm_err *err)
{
	struct build *b = ctx;
	char dummy[PATH_MAX];
	struct tool_req req[] = {
	    {"mmdebstrap", "mmdebstrap", b->mmdebstrap},
	    {"npm", "npm", b->npm},
	    {"mksquashfs", "squashfs-tools (4.5 or later)", b->mksquashfs},
	    {"xz", "xz-utils", dummy},
	    {"zstd", "zstd", dummy},
	    {"gzip", "gzip", dummy},
	    {"unshare", "util-linux", b->unshare},
	    {"newuidmap", "uidmap", dummy},
	    {"newgidmap", "uidmap", dummy},
	};
	size_t n = ARRAY_LEN(req);
	if (geteuid() == 0)
		n -= 2; /* root mode needs no id mapping */
	for (size_t i = 0; i < n; i++)
		if (hostpath_find(req[i].tool, req[i].dst) < 0)
			return ccvm_err_set(err, ENOENT,
					    "%s not found: install the Debian "
					    "package %s",
					    req[i].tool, req[i].package);
	return b->skip_subids ? 0 : image_check_subids(err);
}

int image_check_subids(struct ccvm_err *err)
{
	if (geteuid() == 0)
		return 0;
	int r = check_subids("/etc/subuid", err);
	return r < 0 ? r : check_subids("/etc/subgid", err);
}

int image_check_tools(struct ccvm_err *err)
{
	struct build b = {.skip_subids = true};
	return rootfs_step_tools(&b, err);
}

/* Finds an executable in the trusted directories (hostpath.h). */
int image_find_tool(const char *name, char out[PATH_MAX])
{
	return hostpath_find(name, out);
}

static bool json_list_has(json_t *a, const char *s)
{
	size_t i;
	json_t *v;
	if (!json_is_array(a))
		return false;
	json_array_foreach(a, i,
			   v) if (json_is_string(v) &&
				  !strcmp(json_string_value(v), s)) return true;
	return false;
}

/* Is dir (an installed npm package) the linux-x64 glibc native build
 * of the agent, with an ELF executable named claude?  Fills version. */
static bool is_native_pkg(const char *dir, char *version, size_t vsz)
{
	autofree char *pj = util_path_join(dir, "package.json");
	autofree char *bin = util_path_join(dir, "claude");
	if (!pj || !bin)
		return false;
	json_error_t je;
	json_t *j = json_load_file(pj, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		return false;
	bool ok = json_list_has(json_object_get(j, "os"), "linux") &&
		  json_list_has(json_object_get(j, "cpu"), "x64") &&
		  !json_list_has(json_object_get(j, "libc"), "musl");
	json_t *v = json_object_get(j, "version");
	if (ok && json_is_string(v))
		snprintf(version, vsz, "%s", json_string_value(v));
	else
		ok = false;
	json_decref(j);
	if (!ok)
		return false;
	autoclose int fd = open(bin, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	unsigned char magic[4];
	return fd >= 0 && util_read_all(fd, magic, 4) == 4 &&
	       !memcmp(magic, "\177ELF", 4) && access(bin, X_OK) == 0;
}

static int find_native(const char *node_modules, char out[PATH_MAX],
		       char *version, size_t vsz)
{
	DIR *d = opendir(node_modules);
	if (!d)
		return -ENOENT;
	int r = -ENOENT;
	struct dirent *de;
	while (r < 0 && (de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		autofree char *p = util_path_join(node_modules, de->d_name);
		if (!p)
			continue;
		if (de->d_name[0] == '@') {
			r = find_native(p, out, version, vsz);
			continue;
		}
		if (is_native_pkg(p, version, vsz) &&
		    snprintf(out, PATH_MAX, "%s/claude", p) < PATH_MAX)
			r = 0;
	}
	closedir(d);
	return r;
}

int rootfs_step_npm(void *ctx, struct ccvm_err *err)
{
	struct build *b = ctx;
	const char *spec = image_agent_package(b->cfg);
	if (!cfg_valid_npm_spec(spec))
		return ccvm_err_set(err, EINVAL, "package: bad npm spec '%s'",
				    spec);
	autofree char *prefix = util_path_join(b->dir, "npm");
	autofree char *cache = util_path_join(b->dir, "npm-cache");
	autofree char *nm = util_path_join(b->dir, "npm/node_modules");
	autofree char *dst = util_path_join(b->dir, "claude");
	if (!prefix || !cache || !nm || !dst)
		return ccvm_err_set(err, ENAMETOOLONG, "path too long");
	if (mkdir(prefix, 0755) < 0)
		return ccvm_err_sys(err, errno, "%s", prefix);
	const char *argv[] = {b->npm,
			      "install",
			      "--prefix",
			      prefix,
			      "--cache",
			      cache,
			      "--no-audit",
			      "--no-fund",
			      "--ignore-scripts",
			      "--no-save",
			      "--no-update-notifier",
			      "--loglevel=warn",
			      spec,
			      NULL};
	struct run_cmd c = {
	    .argv = argv, .cwd = b->dir, .in_fd = -1, .out_fd = -1};
	int r = run_cmds(&b->st, b->env, &c, 1, err);
	if (r < 0)
		return r;
	char bin[PATH_MAX];
	if (find_native(nm, bin, b->agent_version, sizeof(b->agent_version)) <
	    0)
		return ccvm_err_set(err, ENOENT,
				    "npm package %s brought no linux-x64 "
				    "(glibc) native claude binary",
				    spec);
	dprintf(b->st.logfd, "agent binary: %s (version %s)\n", bin,
		b->agent_version);
	if (rename(bin, dst) < 0)
		return ccvm_err_sys(err, errno, "%s", dst);
	util_rm_rf(prefix);
	util_rm_rf(cache);
	return 0;
}

struct argv_buf {
	char **v;
	size_t n, cap;
};

static int av_add(struct argv_buf *a, char *s)
{
	if (!s)
		return -ENOMEM;
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 64;
		char **nv = realloc(a->v, cap * sizeof(*nv));
		if (!nv) {
			free(s);
			return -ENOMEM;
		}
		a->v = nv;
		a->cap = cap;
	}
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
	return 0;
}

static void av_free(struct argv_buf *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
}

#define HOOK(s) av_add(&a, strdup("--customize-hook=" s))

static const char hook_agent[] = "chmod 0755 \"$1/usr/local/bin/claude\"";
static const char hook_host[] =
    "echo 'ccvm-step: hostname, sudo'; "
    "printf 'ccvm\\n' > \"$1/etc/hostname\" && "
    "printf '127.0.0.1\\tlocalhost\\n127.0.1.1\\tccvm\\n"
    "::1\\tlocalhost ip6-localhost ip6-loopback\\n' > \"$1/etc/hosts\" && "
    "chmod 0644 \"$1/etc/hostname\" \"$1/etc/hosts\" && "
    "rm -f \"$1/etc/resolv.conf\"";
static const char hook_sudo[] =
    "chroot \"$1\" /usr/sbin/groupadd --system ccvm-sudo && "
    "printf '%s\\n' '%ccvm-sudo ALL=(ALL:ALL) NOPASSWD: ALL' "
    "> \"$1/etc/sudoers.d/ccvm-sudo\" && "
    "chmod 0440 \"$1/etc/sudoers.d/ccvm-sudo\" && "
    "chroot \"$1\" /usr/sbin/visudo -c -q -f /etc/sudoers.d/ccvm-sudo";
static const char hook_verify[] =
    "echo 'ccvm-step: claude --version'; "
    "mkdir -p \"$1/ccvm-out\" \"$1/tmp/ccvm-home\" && "
    "chroot \"$1\" /usr/bin/env -i PATH=" GUEST_PATH " HOME=/tmp/ccvm-home "
    "DISABLE_AUTOUPDATER=1 /usr/local/bin/claude --version "
    "> \"$1/ccvm-out/claude-version\" && rm -rf \"$1/tmp/ccvm-home\" && "
    "cat \"$1/ccvm-out/claude-version\"";
static const char hook_kernel[] =
    "echo 'ccvm-step: kernel out'; "
    "mv \"$1\"/boot/vmlinuz-* \"$1/ccvm-out/\" && "
    "mv \"$1/lib/modules\" \"$1/ccvm-out/modules\" && "
    "mkdir \"$1/lib/modules\" && "
    "rm -rf \"$1\"/boot/* \"$1\"/vmlinuz* \"$1\"/initrd.img*";

/* Nix (nix.enable): build users as upstream's installer makes them (gid
 * 30000, uids 30001-30008, out of the range a host user's uid usually
 * has), the store initialised by root so that /nix/store is 1775
 * root:nixbld, and `nix --version` checked.  /etc/nix/nix.conf is
 * uploaded before this (written by image_nix_conf, never through a
 * shell). */
static const char hook_nix[] =
    "echo 'ccvm-step: nix build users and store'; "
    "chmod 0644 \"$1/etc/nix/nix.conf\" && "
    "chroot \"$1\" /usr/sbin/groupadd --system --gid 30000 nixbld && "
    "for i in 1 2 3 4 5 6 7 8; do "
    "chroot \"$1\" /usr/sbin/useradd --system --uid $((30000 + i)) "
    "--gid nixbld --groups nixbld --no-create-home "
    "--home-dir /nonexistent --shell /usr/sbin/nologin "
    "--comment \"Nix build user $i\" \"nixbld$i\" || exit 1; done && "
    "chroot \"$1\" /usr/bin/env -i PATH=" GUEST_PATH " HOME=/root "
    "/usr/bin/nix-store --init && "
    "chroot \"$1\" /usr/bin/env -i PATH=" GUEST_PATH " HOME=/root "
    "/usr/bin/nix --version";

/* The value of a nix.conf list: items joined by one space.  Each item was
 * checked by config.c (CK_NIX); checked again here because this text is
 * a file another program parses. */
static int nix_list(const struct cfg_strlist *l, const char *name, char **out,
		    struct ccvm_err *err)
{
	size_t len = 1;
	for (size_t i = 0; i < l->n; i++) {
		const char *v = l->v[i];
		if (!cfg_valid_nix_item(v))
			return ccvm_err_set(err, EINVAL,
					    "nix.%s[%zu]: empty or contains "
					    "whitespace, control characters "
					    "or '#'",
					    name, i);
		len += strlen(v) + 1;
	}
	char *s = calloc(1, len);
	if (!s)
		return ccvm_err_set(err, ENOMEM, "out of memory");
	size_t used = 0;
	for (size_t i = 0; i < l->n; i++) {
		size_t n = strlen(l->v[i]);
		if (i)
			s[used++] = ' ';
		memcpy(s + used, l->v[i], n);
		used += n;
	}
	*out = s;
	return 0;
}

int image_nix_conf(const struct ccvm_config *cfg, char **out,
		   struct ccvm_err *err)
{
	autofree char *subs = NULL, *keys = NULL;
	int r = nix_list(&cfg->nix_substituters, "substituters", &subs, err);
	if (r < 0)
		return r;
	r = nix_list(&cfg->nix_trusted_keys, "trustedPublicKeys", &keys, err);
	if (r < 0)
		return r;
	char *text = util_asprintf(
	    "# Written by ccvm at image build from the nix.* options.\n"
	    "# Multi-user: nix-daemon (started by ccvm-init) builds as the\n"
	    "# nixbld users; only root is trusted.\n"
	    "build-users-group = nixbld\n"
	    "trusted-users = root\n"
	    "require-sigs = true\n"
	    "substituters = %s\n"
	    "trusted-public-keys = %s\n",
	    subs, keys);
	if (!text)
		return ccvm_err_set(err, ENOMEM, "out of memory");
	*out = text;
	return 0;
}

/* --include=base,extra[,nix-bin] (names checked by root_inputs), or NULL
 * when out of memory. */
static char *include_arg(const struct build *b)
{
	size_t len = 16;
	for (size_t i = 0; i < ARRAY_LEN(base_packages); i++)
		len += strlen(base_packages[i]) + 1;
	const struct cfg_strlist *x = &b->cfg->extra_packages;
	for (size_t i = 0; i < x->n; i++)
		len += strlen(x->v[i]) + 1;
	if (b->cfg->nix_enable)
		len += strlen(NIX_PACKAGE) + 1;
	char *inc = malloc(len);
	if (!inc)
		return NULL;
	size_t used = (size_t)snprintf(inc, len, "--include=");
	for (size_t i = 0; i < ARRAY_LEN(base_packages) + x->n; i++) {
		const char *name = i < ARRAY_LEN(base_packages)
				       ? base_packages[i]
				       : x->v[i - ARRAY_LEN(base_packages)];
		used += (size_t)snprintf(inc + used, len - used, "%s%s",
					 i ? "," : "", name);
	}
	if (b->cfg->nix_enable)
		snprintf(inc + used, len - used, ",%s", NIX_PACKAGE);
	return inc;
}

static int mmdebstrap_argv(struct build *b, struct argv_buf *out)
{
	struct argv_buf a = {0};
	int r = av_add(&a, strdup(b->mmdebstrap));
	r = r ?: av_add(&a, strdup("--variant=minbase"));
	r = r
		?: av_add(&a, strdup(geteuid() == 0 ? "--mode=root"
						    : "--mode=unshare"));
	r = r ?: av_add(&a, strdup("--format=tar"));
	r = r ?: av_add(&a, strdup("--verbose"));
	r = r ?: av_add(&a, include_arg(b));
	for (size_t i = 0; i < ARRAY_LEN(dpkg_excludes); i++)
		r = r ?: av_add(&a, strdup(dpkg_excludes[i]));
	r = r ?: HOOK("upload claude /usr/local/bin/claude");
	r = r ?: av_add(&a, util_asprintf("--customize-hook=%s", hook_agent));
	r = r ?: av_add(&a, util_asprintf("--customize-hook=%s", hook_host));
	if (image_agent_sudo(b->cfg))
		r = r
			?: av_add(&a, util_asprintf("--customize-hook=%s",
						    hook_sudo));
	if (b->cfg->nix_enable) {
		r = r ?: HOOK("mkdir -p \"$1/etc/nix\"");
		r = r ?: HOOK("upload nix.conf /etc/nix/nix.conf");
		r = r
			?: av_add(&a, util_asprintf("--customize-hook=%s",
						    hook_nix));
	}
	for (size_t i = 0; i < b->n_scripts; i++) {
		const struct image_blob *s = &b->scripts[i];
		bool shebang = s->len >= 2 && !memcmp(s->data, "#!", 2);
		r = r
			?: av_add(&a,
				  util_asprintf("--customize-hook=upload "
						"provision-%02zu "
						"/root/ccvm-provision-%02zu",
						i, i));
		r = r
			?: av_add(&a,
				  util_asprintf(
				      "--customize-hook=echo 'ccvm-step: "
				      "provisioning "
				      "script %zu of %zu'; "
				      "chmod 0700 "
				      "\"$1/root/ccvm-provision-%02zu\" && "
				      "chroot \"$1\" /usr/bin/env -i "
				      "PATH=" GUEST_PATH
				      " HOME=/root LC_ALL=C.UTF-8 TERM=dumb "
				      "DEBIAN_FRONTEND=noninteractive "
				      "%s/root/ccvm-provision-%02zu && "
				      "rm -f \"$1/root/ccvm-provision-%02zu\"",
				      i + 1, b->n_scripts, i,
				      shebang ? "" : "/bin/sh ", i, i));
	}
	r = r ?: av_add(&a, util_asprintf("--customize-hook=%s", hook_verify));
	r = r ?: av_add(&a, util_asprintf("--customize-hook=%s", hook_kernel));
	r = r ?: HOOK("sync-out /ccvm-out out");
	r = r ?: HOOK("rm -rf \"$1/ccvm-out\"; echo 'ccvm-step: packing'");
	r = r ?: av_add(&a, strdup(IMAGE_SUITE));
	r = r ?: av_add(&a, strdup("-"));
	if (r < 0) {
		av_free(&a);
		return r;
	}
	*out = a;
	return 0;
}

/* What the hooks upload into the root: the provisioning scripts and
 * nix.conf, written into the build directory; the package names checked. */
static int root_inputs(struct build *b, struct ccvm_err *err)
{
	for (size_t i = 0; i < b->cfg->extra_packages.n; i++)
		if (!cfg_valid_deb_name(b->cfg->extra_packages.v[i]))
			return ccvm_err_set(err, EINVAL,
					    "extraPackages: '%s' is not a "
					    "Debian package name",
					    b->cfg->extra_packages.v[i]);
	for (size_t i = 0; i < b->n_scripts; i++) {
		char name[32];
		snprintf(name, sizeof(name), "provision-%02zu", i);
		autofree char *p = util_path_join(b->dir, name);
		if (!p)
			return ccvm_err_set(err, ENAMETOOLONG, "path too long");
		autoclose int fd =
		    open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0700);
		if (fd < 0)
			return ccvm_err_sys(err, errno, "%s", p);
		int r =
		    util_write_all(fd, b->scripts[i].data, b->scripts[i].len);
		if (r < 0)
			return ccvm_err_sys(err, -r, "%s", p);
	}
	if (b->cfg->nix_enable) {
		autofree char *conf = NULL;
		autofree char *cp = util_path_join(b->dir, "nix.conf");
		if (!cp)
			return ccvm_err_set(err, ENAMETOOLONG, "path too long");
		int r = image_nix_conf(b->cfg, &conf, err);
		if (r < 0 || (r = build_write_text(cp, conf, 0644, err)) < 0)
			return r;
		dprintf(b->st.logfd, "/etc/nix/nix.conf:\n%s", conf);
	}
	return 0;
}

int rootfs_step_root(void *ctx, struct ccvm_err *err)
{
	struct build *b = ctx;
	int r = root_inputs(b, err);
	if (r < 0)
		return r;
	autofree char *outdir = util_path_join(b->dir, "out");
	autofree char *sqfs = util_path_join(b->dir, "root.sqfs");
	if (!outdir || !sqfs)
		return ccvm_err_set(err, ENAMETOOLONG, "path too long");
	if (mkdir(outdir, 0755) < 0)
		return ccvm_err_sys(err, errno, "%s", outdir);
	struct argv_buf a = {0};
	r = mmdebstrap_argv(b, &a);
	if (r < 0)
		return ccvm_err_set(err, -r, "cannot build mmdebstrap's argv");
	/* mksquashfs -tar takes owners from the tar headers but makes the
	 * root directory its caller's: run it as uid 0 of a user namespace
	 * (-root-uid is ignored with -tar in squashfs-tools 4.5).
	 * lz4hc, not zstd: the guest decompresses every page it reads from
	 * the root, and under TCG zstd made the agent's first start 1.5 s
	 * slower for a 13% smaller image (bench/README.md, "The root's
	 * compression"). */
	const char *sq[] = {b->unshare,
			    "--map-root-user",
			    "--",
			    b->mksquashfs,
			    "-",
			    sqfs,
			    "-tar",
			    "-root-mode",
			    "0755",
			    "-comp",
			    "lz4",
			    "-Xhc",
			    "-no-progress",
			    "-quiet",
			    NULL};
	struct run_cmd cmds[2] = {
	    {.argv = (const char *const *)a.v,
	     .cwd = b->dir,
	     .in_fd = -1,
	     .out_fd = -1},
	    {.argv = geteuid() == 0 ? sq + 3 : sq,
	     .cwd = b->dir,
	     .in_fd = -1,
	     .out_fd = -1},
	};
	r = run_cmds(&b->st, b->env, cmds, 2, err);
	av_free(&a);
	if (r < 0)
		return r;
	/* The hooks ran `claude --version` inside the new root. */
	autofree char *vp = util_path_join(outdir, "claude-version");
	autofree char *vtext = NULL;
	if (!vp || util_read_file(vp, 4096, &vtext, NULL, err) < 0)
		return ccvm_err_set(err, ENOENT,
				    "claude --version left no output");
	vtext[strcspn(vtext, "\r\n")] = '\0';
	snprintf(b->claude_version, sizeof(b->claude_version), "%s", vtext);
	if (!strstr(vtext, b->agent_version))
		return ccvm_err_set(err, EINVAL,
				    "claude --version in the new root printed "
				    "'%s', not version %s",
				    vtext, b->agent_version);
	return 0;
}
