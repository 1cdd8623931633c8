/* Unit tests for the image cache key, the bzImage/vmlinux helpers, the
 * module ordering and the cpio writer. */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "image/cpio.h"
#include "image/image.h"
#include "image/image_build.h"
#include "image/kernel.h"
#include "util.h"

/* ---- cache key ---- */

static char *pkgs_a[] = {"vim", "python3"};
static char *pkgs_b[] = {"python3", "vim"};
static char *subs[] = {"https://cache.example.org"};
static char *keys[] = {"cache.example.org-1:abc="};
static char *allow[] = {"github.com"};
static uint16_t ports[] = {443, 22};

static struct ccvm_config base_cfg(void)
{
	struct ccvm_config c;
	memset(&c, 0, sizeof(c));
	c.writable_cwd = true;
	c.memory_mib = 4096;
	c.cores = 4;
	c.agent_sudo = -1;
	c.package = CCVM_DEFAULT_PACKAGE; /* the option table's default */
	return c;
}

static void key_of(const struct ccvm_config *c, const struct image_blob *s,
		   size_t n, char out[65])
{
	image_key(c, s, n, NULL, out);
	assert_int_equal(strlen(out), 64);
}

static void test_key_stable_and_hex(void **state)
{
	(void)state;
	struct ccvm_config c = base_cfg();
	char k1[65], k2[65];
	key_of(&c, NULL, 0, k1);
	key_of(&c, NULL, 0, k2);
	assert_string_equal(k1, k2);
	for (int i = 0; i < 64; i++)
		assert_non_null(strchr("0123456789abcdef", k1[i]));
}

static void test_key_ignores_runtime_options(void **state)
{
	(void)state;
	struct ccvm_config c = base_cfg();
	char k0[65], k[65];
	key_of(&c, NULL, 0, k0);

	struct ccvm_config r = base_cfg();
	r.writable_cwd = false;
	r.memory_mib = 512;
	r.cores = 1;
	r.accel = CFG_ACCEL_TCG;
	r.share.settings = r.share.plugins = r.share.git_config = true;
	r.persist_projects = true;
	r.vm_disk_size_gib = 20;
	r.clipboard_images = true;
	r.egress_allowlist.v = allow;
	r.egress_allowlist.n = 1;
	r.egress_ports = ports;
	r.n_egress_ports = 2;
	r.api_key_variable = "OTHER_KEY";
	r.extra_claude_md = "";
	r.lock_guest_memory = true;
	r.config_path = "/elsewhere/config.json";
	r.config_file_found = true;
	key_of(&r, NULL, 0, k);
	assert_string_equal(k0, k);
}

static void assert_changes(const struct ccvm_config *c, const char *k0)
{
	char k[65];
	key_of(c, NULL, 0, k);
	assert_string_not_equal(k0, k);
}

static void test_key_changes_with_build_inputs(void **state)
{
	(void)state;
	struct ccvm_config c = base_cfg();
	char k0[65];
	key_of(&c, NULL, 0, k0);

	c = base_cfg();
	c.package = "@anthropic-ai/claude-code@2.1.1";
	assert_changes(&c, k0);

	c = base_cfg();
	c.extra_packages.v = pkgs_a;
	c.extra_packages.n = 2;
	assert_changes(&c, k0);
	char ka[65], kb[65];
	key_of(&c, NULL, 0, ka);
	c.extra_packages.v = pkgs_b; /* order matters: apt sees a list */
	key_of(&c, NULL, 0, kb);
	assert_string_not_equal(ka, kb);

	c = base_cfg();
	c.agent_sudo = 0;
	assert_changes(&c, k0);

	c = base_cfg();
	c.nix_enable = true;
	assert_changes(&c, k0);

	c = base_cfg();
	c.nix_substituters.v = subs;
	c.nix_substituters.n = 1;
	assert_changes(&c, k0);

	c = base_cfg();
	c.nix_trusted_keys.v = keys;
	c.nix_trusted_keys.n = 1;
	assert_changes(&c, k0);
}

static void test_nix_conf(void **state)
{
	(void)state;
	struct ccvm_config c = base_cfg();
	struct ccvm_err err = {0};
	char *text = NULL;
	/* No lists: empty values, so no cache the user did not ask for. */
	assert_int_equal(image_nix_conf(&c, &text, &err), 0);
	assert_non_null(strstr(text, "\nsubstituters = \n"));
	assert_non_null(strstr(text, "\ntrusted-public-keys = \n"));
	assert_non_null(strstr(text, "\ntrusted-users = root\n"));
	assert_non_null(strstr(text, "\nrequire-sigs = true\n"));
	assert_non_null(strstr(text, "\nbuild-users-group = nixbld\n"));
	assert_null(strstr(text, "cache.nixos.org"));
	free(text);

	static char *two[] = {"https://a.example", "http://b.example:5000"};
	c.nix_substituters.v = two;
	c.nix_substituters.n = 2;
	c.nix_trusted_keys.v = keys;
	c.nix_trusted_keys.n = 1;
	assert_int_equal(image_nix_conf(&c, &text, &err), 0);
	assert_non_null(strstr(
	    text,
	    "\nsubstituters = https://a.example http://b.example:5000\n"));
	assert_non_null(
	    strstr(text, "\ntrusted-public-keys = cache.example.org-1:abc=\n"));
	/* Every setting once: nothing appended by a list item. */
	size_t lines = 0;
	for (char *p = text; *p; p++)
		lines += *p == '\n';
	assert_int_equal(lines, 8);
	free(text);

	/* Items nix.conf would misread never reach the file. */
	static char *bad[][1] = {{"a\nextra-sandbox-paths = /"},
				 {"a b"},
				 {"https://x#y"},
				 {""},
				 {"a\tb"}};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		c.nix_trusted_keys.v = bad[i];
		text = NULL;
		assert_int_equal(image_nix_conf(&c, &text, &err), -EINVAL);
		assert_null(text);
		assert_non_null(strstr(err.msg, "nix.trustedPublicKeys[0]"));
	}
}

static void test_key_nix_recipe_only_with_nix(void **state)
{
	(void)state;
	/* The Nix recipe tag enters only a Nix image's key: the default
	 * image's key does not depend on it.  Checked through the same
	 * lists with and without nix.enable. */
	struct ccvm_config c = base_cfg();
	char off[65], on[65];
	c.nix_substituters.v = subs;
	c.nix_substituters.n = 1;
	key_of(&c, NULL, 0, off);
	c.nix_enable = true;
	key_of(&c, NULL, 0, on);
	assert_string_not_equal(off, on);
}

static void test_key_agent_sudo_null_is_on(void **state)
{
	(void)state;
	struct ccvm_config c = base_cfg();
	char knull[65], kon[65];
	key_of(&c, NULL, 0, knull);
	c.agent_sudo = 1;
	key_of(&c, NULL, 0, kon);
	assert_string_equal(knull, kon);
}

/* The default package is the option table's (a resolved config has it),
 * not something the image code fills in. */
static void test_key_default_package(void **state)
{
	(void)state;
	struct ccvm_config d;
	assert_int_equal(cfg_init(&d, NULL), 0);
	struct ccvm_config c = base_cfg();
	char k0[65], k1[65];
	key_of(&d, NULL, 0, k0);
	key_of(&c, NULL, 0, k1);
	assert_string_equal(k0, k1);
	cfg_free(&d);
}

static void test_key_script_contents(void **state)
{
	(void)state;
	struct ccvm_config c = base_cfg();
	char *paths[] = {"/a.sh", "/b.sh"};
	c.extra_guest_modules.v = paths;
	c.extra_guest_modules.n = 2;
	struct image_blob s1[] = {{"echo a\n", 7}, {"echo b\n", 7}};
	struct image_blob s2[] = {{"echo a\n", 7}, {"echo B\n", 7}};
	struct image_blob s3[] = {{"echo b\n", 7}, {"echo a\n", 7}};
	struct image_blob s4[] = {{"echo a\necho b\n", 14}};
	char k1[65], k1b[65], k2[65], k3[65], k4[65], k0[65];
	key_of(&c, s1, 2, k1);
	key_of(&c, s2, 2, k2);
	key_of(&c, s3, 2, k3);
	key_of(&c, s4, 1, k4);
	key_of(&c, NULL, 0, k0);
	assert_string_not_equal(k1, k2); /* contents */
	assert_string_not_equal(k1, k3); /* order */
	assert_string_not_equal(k1, k4); /* boundaries */
	assert_string_not_equal(k1, k0);
	/* Only contents count: the same script at another path is the
	 * same image. */
	char *other[] = {"/x/a.sh", "/y/b.sh"};
	c.extra_guest_modules.v = other;
	key_of(&c, s1, 2, k1b);
	assert_string_equal(k1, k1b);
}

static void test_key_list_boundaries(void **state)
{
	(void)state;
	struct ccvm_config c = base_cfg();
	char *one[] = {"ab"};
	char *two[] = {"a", "b"};
	char k1[65], k2[65];
	c.extra_packages.v = one;
	c.extra_packages.n = 1;
	key_of(&c, NULL, 0, k1);
	c.extra_packages.v = two;
	c.extra_packages.n = 2;
	key_of(&c, NULL, 0, k2);
	assert_string_not_equal(k1, k2);
}

static void test_key_kernel(void **state)
{
	(void)state;
	struct ccvm_config c = base_cfg();
	struct image_blob k1 = {"CONFIG_A=y\n", 11}, k2 = {"CONFIG_A=n\n", 11};
	char ks[65], ka[65], ka2[65], kb[65];
	image_key(&c, NULL, 0, NULL, ks);
	image_key(&c, NULL, 0, &k1, ka);
	image_key(&c, NULL, 0, &k1, ka2);
	image_key(&c, NULL, 0, &k2, kb);
	/* Stock vs built kernel, and each fragment: different images. */
	assert_string_not_equal(ks, ka);
	assert_string_not_equal(ka, kb);
	assert_string_equal(ka, ka2);
}

/* ---- the guest kernel's config check ---- */

static void test_kernel_config_check(void **state)
{
	(void)state;
	struct ccvm_err err = {0};
	const char *frag = "# comment\n\nCONFIG_A=y\nCONFIG_S=\"x y\"\n"
			   "CONFIG_N=n\nCONFIG_M=n\n";
	const char *ok = "CONFIG_A=y\nCONFIG_S=\"x y\"\n"
			 "# CONFIG_N is not set\nCONFIG_AB=y\n";
	assert_int_equal(kernel_config_check(frag, ok, &err), 0);
	/* A dropped option (unmet dependency) is named. */
	const char *dropped = "CONFIG_S=\"x y\"\n# CONFIG_A is not set\n";
	assert_int_equal(kernel_config_check(frag, dropped, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "CONFIG_A=y"));
	/* A prefix is not a match. */
	assert_int_equal(kernel_config_check("CONFIG_A=y\n",
					     "CONFIG_A=yy\n"
					     "CONFIG_AA=y\n",
					     &err),
			 -ENOENT);
	/* =n: set is an error, absent or "is not set" is fine. */
	assert_int_equal(kernel_config_check(frag,
					     "CONFIG_A=y\nCONFIG_S=\"x y\"\n"
					     "CONFIG_M=y\n",
					     &err),
			 -ENOENT);
	assert_non_null(strstr(err.msg, "CONFIG_M"));
	assert_int_equal(
	    kernel_config_check("CONFIG_M=n", "CONFIG_MM=y\n", &err), 0);
	/* Not an assignment. */
	assert_int_equal(kernel_config_check("FOO=y\n", "", &err), -EINVAL);
	assert_int_equal(kernel_config_check("CONFIG_A\n", "", &err), -EINVAL);
}

/* ---- bzImage setup header ---- */

static void put32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

/* A synthetic bzImage: setup_sects=3 -> protected mode code at 2048,
 * payload at 2048+0x100. */
static unsigned char *fake_bzimage(size_t *len, const unsigned char *magic,
				   size_t mlen, uint16_t version)
{
	size_t n = 8192;
	unsigned char *b = calloc(1, n);
	assert_non_null(b);
	b[0x1f1] = 3;
	b[0x1fe] = 0x55;
	b[0x1ff] = 0xaa;
	memcpy(b + 0x202, "HdrS", 4);
	b[0x206] = (unsigned char)version;
	b[0x207] = (unsigned char)(version >> 8);
	put32(b + 0x248, 0x100);
	put32(b + 0x24c, 1000);
	memcpy(b + 2048 + 0x100, magic, mlen);
	put32(b + 2048 + 0x100 + 1000 - 4, 123456);
	*len = n;
	return b;
}

static void test_bzimage_parse(void **state)
{
	(void)state;
	static const unsigned char xz[] = {0xfd, '7', 'z', 'X', 'Z', 0};
	size_t len;
	autofree unsigned char *b = fake_bzimage(&len, xz, sizeof(xz), 0x20f);
	struct kernel_payload kp;
	struct ccvm_err err = {0};
	assert_int_equal(kernel_parse_bzimage(b, len, &kp, &err), 0);
	assert_int_equal(kp.offset, 2048 + 0x100);
	assert_int_equal(kp.length, 996); /* size trailer stripped */
	assert_int_equal(kp.comp, KERNEL_COMP_XZ);
	assert_int_equal(kp.size, 123456);
	assert_string_equal(kernel_comp_name(kp.comp), "xz");

	static const unsigned char gz[] = {0x1f, 0x8b, 8};
	autofree unsigned char *g = fake_bzimage(&len, gz, sizeof(gz), 0x20f);
	assert_int_equal(kernel_parse_bzimage(g, len, &kp, &err), 0);
	assert_int_equal(kp.comp, KERNEL_COMP_GZIP);
	assert_int_equal(kp.length, 1000); /* gzip keeps its own trailer */

	static const unsigned char zs[] = {0x28, 0xb5, 0x2f, 0xfd};
	autofree unsigned char *z = fake_bzimage(&len, zs, sizeof(zs), 0x20f);
	assert_int_equal(kernel_parse_bzimage(z, len, &kp, &err), 0);
	assert_int_equal(kp.comp, KERNEL_COMP_ZSTD);

	/* setup_sects 0 means 4 */
	b[0x1f1] = 0;
	memcpy(b + 2560 + 0x100, xz, sizeof(xz));
	put32(b + 2560 + 0x100 + 1000 - 4, 99);
	assert_int_equal(kernel_parse_bzimage(b, len, &kp, &err), 0);
	assert_int_equal(kp.offset, 2560 + 0x100);
	assert_int_equal(kp.size, 99);
}

static void test_bzimage_rejects(void **state)
{
	(void)state;
	static const unsigned char xz[] = {0xfd, '7', 'z', 'X', 'Z', 0};
	size_t len;
	struct kernel_payload kp;
	struct ccvm_err err = {0};
	autofree unsigned char *b = fake_bzimage(&len, xz, sizeof(xz), 0x20f);

	assert_int_equal(kernel_parse_bzimage(b, 0x100, &kp, &err), -EINVAL);
	b[0x202] = 'X';
	assert_int_equal(kernel_parse_bzimage(b, len, &kp, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "not a bzImage"));
	b[0x202] = 'H';
	/* old boot protocol */
	b[0x206] = 0x07;
	b[0x207] = 0x02;
	assert_int_equal(kernel_parse_bzimage(b, len, &kp, &err), -EINVAL);
	b[0x206] = 0x0f;
	/* payload past the end */
	put32(b + 0x24c, 100000);
	assert_int_equal(kernel_parse_bzimage(b, len, &kp, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "outside"));
	put32(b + 0x248, 0xffffffffu);
	put32(b + 0x24c, 0xffffffffu);
	assert_int_equal(kernel_parse_bzimage(b, len, &kp, &err), -EINVAL);
	/* unknown compression */
	put32(b + 0x248, 0x100);
	put32(b + 0x24c, 1000);
	memset(b + 2048 + 0x100, 0xee, 8);
	assert_int_equal(kernel_parse_bzimage(b, len, &kp, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "compression"));
}

static void test_detect_comp(void **state)
{
	(void)state;
	static const unsigned char lz4[] = {0x02, 0x21, 0x4c, 0x18};
	static const unsigned char bz[] = {'B', 'Z', 'h', '9'};
	static const unsigned char lzma[] = {0x5d, 0, 0, 0x80};
	assert_int_equal(kernel_detect_comp(lz4, 4), KERNEL_COMP_LZ4);
	assert_int_equal(kernel_detect_comp(bz, 4), KERNEL_COMP_BZIP2);
	assert_int_equal(kernel_detect_comp(lzma, 4), KERNEL_COMP_LZMA);
	assert_int_equal(kernel_detect_comp(lz4, 2), KERNEL_COMP_UNKNOWN);
}

/* ---- vmlinux PVH note ---- */

static unsigned char *fake_elf(size_t *len, bool with_pvh, uint16_t machine)
{
	size_t n = 4096;
	unsigned char *b = calloc(1, n);
	assert_non_null(b);
	Elf64_Ehdr eh = {0};
	memcpy(eh.e_ident, ELFMAG, SELFMAG);
	eh.e_ident[EI_CLASS] = ELFCLASS64;
	eh.e_ident[EI_DATA] = ELFDATA2LSB;
	eh.e_ident[EI_VERSION] = EV_CURRENT;
	eh.e_type = ET_EXEC;
	eh.e_machine = machine;
	eh.e_phoff = sizeof(eh);
	eh.e_phentsize = sizeof(Elf64_Phdr);
	eh.e_phnum = 2;
	memcpy(b, &eh, sizeof(eh));
	Elf64_Phdr ph[2] = {{0}};
	ph[0].p_type = PT_LOAD;
	ph[1].p_type = PT_NOTE;
	ph[1].p_offset = 1024;
	/* Two notes: a GNU build id, then Xen's (or another Xen note). */
	unsigned char *p = b + 1024;
	Elf64_Nhdr nh = {4, 8, NT_GNU_BUILD_ID};
	memcpy(p, &nh, sizeof(nh));
	memcpy(p + 12, "GNU", 4);
	p += 12 + 4 + 8;
	Elf64_Nhdr xh = {4, 8, with_pvh ? 18 : 17};
	memcpy(p, &xh, sizeof(xh));
	memcpy(p + 12, "Xen", 4);
	put32(p + 16, 0x1000000);
	p += 12 + 4 + 8;
	ph[1].p_filesz = (uint64_t)(p - (b + 1024));
	memcpy(b + sizeof(eh), ph, sizeof(ph));
	*len = n;
	return b;
}

static void test_pvh_note(void **state)
{
	(void)state;
	size_t len;
	struct ccvm_err err = {0};
	autofree unsigned char *good = fake_elf(&len, true, EM_X86_64);
	assert_int_equal(kernel_check_pvh_elf(good, len, &err), 0);

	autofree unsigned char *nopvh = fake_elf(&len, false, EM_X86_64);
	assert_int_equal(kernel_check_pvh_elf(nopvh, len, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "PVH"));

	autofree unsigned char *arm = fake_elf(&len, true, EM_AARCH64);
	assert_int_equal(kernel_check_pvh_elf(arm, len, &err), -EINVAL);

	/* A note segment running past the file is ignored, not read. */
	Elf64_Phdr ph;
	memcpy(&ph, good + sizeof(Elf64_Ehdr) + sizeof(ph), sizeof(ph));
	ph.p_filesz = 1u << 30;
	memcpy(good + sizeof(Elf64_Ehdr) + sizeof(ph), &ph, sizeof(ph));
	assert_int_equal(kernel_check_pvh_elf(good, len, &err), -EINVAL);

	/* A note with a huge name size stops the walk. */
	autofree unsigned char *bad = fake_elf(&len, true, EM_X86_64);
	Elf64_Nhdr nh = {0xfffffff0u, 8, NT_GNU_BUILD_ID};
	memcpy(bad + 1024, &nh, sizeof(nh));
	assert_int_equal(kernel_check_pvh_elf(bad, len, &err), -EINVAL);

	assert_int_equal(
	    kernel_check_pvh_elf((unsigned char *)"\177ELF", 4, &err), -EINVAL);
}

/* ---- module order ---- */

static const char dep_text[] =
    "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko "
    "kernel/fs/jbd2/jbd2.ko\n"
    "kernel/lib/crc16.ko:\n"
    "kernel/fs/mbcache.ko:\n"
    "kernel/fs/jbd2/jbd2.ko:\n"
    "kernel/drivers/md/dm-crypt.ko: kernel/drivers/md/dm-mod.ko\n"
    "kernel/drivers/md/dm-mod.ko:\n"
    "kernel/drivers/virtio/virtio_pci.ko: "
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko "
    "kernel/drivers/virtio/virtio_ring.ko kernel/drivers/virtio/virtio.ko\n"
    "kernel/drivers/virtio/virtio_pci_modern_dev.ko:\n"
    "kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko\n"
    "kernel/drivers/virtio/virtio_ring.ko:\n"
    "kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko "
    "kernel/drivers/virtio/virtio_ring.ko\n";

static size_t index_of(const struct kernel_modlist *l, const char *suffix)
{
	for (size_t i = 0; i < l->n; i++) {
		size_t a = strlen(l->paths[i]), b = strlen(suffix);
		if (a >= b && !strcmp(l->paths[i] + a - b, suffix))
			return i;
	}
	fail_msg("%s not in list", suffix);
	return 0;
}

static void test_modules_order(void **state)
{
	(void)state;
	const char *wanted[] = {"virtio_blk", "dm_crypt", "ext4", "virtio_pci",
				"squashfs"};
	struct kernel_modlist l = {0};
	struct ccvm_err err = {0};
	assert_int_equal(
	    kernel_modules_order(dep_text, "kernel/fs/squashfs/squashfs.ko\n",
				 wanted, 5, &l, &err),
	    0);
	/* Each once, dependencies first; squashfs is built in. */
	assert_int_equal(l.n, 11);
	assert_true(index_of(&l, "/virtio_ring.ko") <
		    index_of(&l, "/virtio.ko"));
	assert_true(index_of(&l, "/virtio.ko") <
		    index_of(&l, "/virtio_blk.ko"));
	assert_true(index_of(&l, "/virtio.ko") <
		    index_of(&l, "/virtio_pci.ko"));
	assert_true(index_of(&l, "/virtio_pci_modern_dev.ko") <
		    index_of(&l, "/virtio_pci.ko"));
	assert_true(index_of(&l, "/dm-mod.ko") < index_of(&l, "/dm-crypt.ko"));
	assert_true(index_of(&l, "/jbd2.ko") < index_of(&l, "/ext4.ko"));
	assert_true(index_of(&l, "/crc16.ko") < index_of(&l, "/ext4.ko"));
	for (size_t i = 0; i < l.n; i++)
		for (size_t j = i + 1; j < l.n; j++)
			assert_string_not_equal(l.paths[i], l.paths[j]);
	kernel_modlist_free(&l);
}

static void test_modules_errors(void **state)
{
	(void)state;
	struct kernel_modlist l = {0};
	struct ccvm_err err = {0};
	const char *missing[] = {"nosuchmod"};
	assert_int_equal(
	    kernel_modules_order(dep_text, NULL, missing, 1, &l, &err),
	    -ENOENT);
	assert_non_null(strstr(err.msg, "nosuchmod"));
	const char *loop_text = "a/x.ko: a/y.ko\na/y.ko: a/x.ko\n";
	const char *x[] = {"x"};
	assert_int_equal(kernel_modules_order(loop_text, NULL, x, 1, &l, &err),
			 -ELOOP);
	const char *dangling = "a/x.ko: a/gone.ko\n";
	assert_int_equal(kernel_modules_order(dangling, NULL, x, 1, &l, &err),
			 -ENOENT);
	assert_int_equal(l.n, 0);
}

static void test_module_name(void **state)
{
	(void)state;
	char n[64];
	const char *p = "kernel/arch/x86/crypto/aesni-intel.ko";
	assert_int_equal(kernel_module_name(p, strlen(p), n, sizeof(n)), 0);
	assert_string_equal(n, "aesni_intel");
	p = "kernel/fs/fuse/virtiofs.ko.xz";
	assert_int_equal(kernel_module_name(p, strlen(p), n, sizeof(n)), 0);
	assert_string_equal(n, "virtiofs");
	assert_int_equal(kernel_module_name("x/", 2, n, sizeof(n)), -EINVAL);
}

/* ---- cpio ---- */

static void test_cpio_newc(void **state)
{
	(void)state;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	assert_non_null(f);
	struct cpio_writer w;
	cpio_init(&w, f);
	assert_int_equal(cpio_add_dir(&w, "dev", 0755), 0);
	assert_int_equal(cpio_add_chardev(&w, "dev/console", 0600, 5, 1), 0);
	assert_int_equal(cpio_add_file(&w, "init", 0755, "hello", 5), 0);
	assert_int_equal(cpio_finish(&w), 0);
	fclose(f);
	/* Every record starts on a 4-byte boundary with the newc magic. */
	assert_memory_equal(buf, "070701", 6);
	/* mode of the first entry: directory 0755 */
	assert_memory_equal(buf + 14, "000041ED", 8);
	/* name "dev" at 110, padded so the next header is aligned */
	assert_string_equal(buf + 110, "dev");
	size_t off = 110 + 4; /* 114 -> next multiple of 4 is 116 */
	off = (off + 3) & ~(size_t)3;
	assert_memory_equal(buf + off, "070701", 6);
	assert_memory_equal(buf + off + 14, "00002180", 8); /* chr 0600 */
	assert_memory_equal(buf + off + 78, "00000005", 8); /* rdevmajor */
	assert_memory_equal(buf + off + 86, "00000001", 8); /* rdevminor */
	/* The file's data follows its name. */
	char *init = memmem(buf, len, "init", 5);
	assert_non_null(init);
	/* 110 + 5 name bytes, padded to 116 */
	assert_memory_equal(init + 6, "hello", 5);
	assert_non_null(memmem(buf, len, "TRAILER!!!", 11));
	assert_int_equal(len % 4, 0);
	free(buf);
}

static void test_initrd_from_modules(void **state)
{
	(void)state;
	char dir[] = "/tmp/ccvm-test-image-XXXXXX";
	assert_non_null(mkdtemp(dir));
	autofree char *md = util_path_join(dir, "modules");
	assert_int_equal(mkdir(md, 0755), 0);
	autofree char *list = util_path_join(dir, "modules/load.list");
	autofree char *ko = util_path_join(dir, "modules/a.ko");
	FILE *f = fopen(list, "w");
	fputs("a.ko\n", f);
	fclose(f);
	f = fopen(ko, "w");
	fputs("MODULEDATA", f);
	fclose(f);
	autofree char *out = util_path_join(dir, "initrd-x.cpio");
	struct ccvm_err err = {0};
	assert_int_equal(image_write_initrd(dir, "INITBIN", 7, out, &err), 0);
	autofree char *data = NULL;
	size_t len = 0;
	assert_int_equal(util_read_file(out, 1 << 20, &data, &len, &err), 0);
	assert_non_null(memmem(data, len, "lib/modules/ccvm/a.ko", 21));
	assert_non_null(memmem(data, len, "MODULEDATA", 10));
	assert_non_null(memmem(data, len, "INITBIN", 7));
	assert_non_null(memmem(data, len, "lib/modules/ccvm/load.list", 26));
	struct stat st;
	assert_int_equal(stat(out, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);

	/* A list entry with a path is refused, and nothing is left. */
	f = fopen(list, "w");
	fputs("../../etc/passwd\n", f);
	fclose(f);
	autofree char *out2 = util_path_join(dir, "initrd-y.cpio");
	assert_int_equal(image_write_initrd(dir, "I", 1, out2, &err), -EINVAL);
	assert_int_not_equal(access(out2, F_OK), 0);
	assert_int_equal(util_rm_rf(dir), 0);
}

static void test_cache_dir(void **state)
{
	(void)state;
	char p[PATH_MAX];
	struct ccvm_err err = {0};
	setenv("XDG_CACHE_HOME", "/x/cache", 1);
	assert_int_equal(image_cache_dir(p, &err), 0);
	assert_string_equal(p, "/x/cache/ccvm/images");
	setenv("XDG_CACHE_HOME", "relative", 1); /* ignored, per XDG */
	setenv("HOME", "/home/u", 1);
	assert_int_equal(image_cache_dir(p, &err), 0);
	assert_string_equal(p, "/home/u/.cache/ccvm/images");
}

static void test_ensure_without_build(void **state)
{
	(void)state;
	char dir[] = "/tmp/ccvm-test-cache-XXXXXX";
	assert_non_null(mkdtemp(dir));
	setenv("XDG_CACHE_HOME", dir, 1);
	struct ccvm_config c = base_cfg();
	struct image_paths p;
	struct ccvm_err err = {0};
	assert_int_equal(image_ensure(&c, IMAGE_FIND, &p, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "ccvm --ccvm-build"));
	/* An unreadable provisioning script is named. */
	char *mods[] = {"/nonexistent/provision.sh"};
	c.extra_guest_modules.v = mods;
	c.extra_guest_modules.n = 1;
	assert_true(image_ensure(&c, IMAGE_FIND, &p, &err) < 0);
	assert_non_null(strstr(err.msg, "/nonexistent/provision.sh"));
	assert_int_equal(util_rm_rf(dir), 0);
}

/* The list and prune report what an image takes on disk: a saved boot's
 * sparse RAM file counts its written blocks, not its length. */
static void test_dir_size_allocated(void **state)
{
	(void)state;
	char dir[] = "/tmp/ccvm-test-size-XXXXXX";
	assert_non_null(mkdtemp(dir));
	autofree char *sparse = util_path_join(dir, "boot-x.snap");
	autofree char *full = util_path_join(dir, "root.sqfs");
	FILE *f = fopen(sparse, "w");
	assert_non_null(f);
	assert_int_equal(ftruncate(fileno(f), 1LL << 30), 0);
	fclose(f);
	static char block[65536];
	memset(block, 'x', sizeof(block));
	f = fopen(full, "w");
	assert_non_null(f);
	assert_int_equal(fwrite(block, 1, sizeof(block), f), sizeof(block));
	fclose(f);
	long long apparent = image_dir_size(dir, 1, false);
	long long used = image_dir_size(dir, 1, true);
	assert_true(apparent == (1LL << 30) + (long long)sizeof(block));
	assert_true(used >= (long long)sizeof(block));
	assert_true(used < 4 * 1048576);
	unlink(sparse);
	unlink(full);
	rmdir(dir);
}

/* CCVM_KERNEL_SOURCE: another tarball when absolute, Debian's when unset
 * or relative. */
static void test_kernel_source(void **state)
{
	(void)state;
	unsetenv(IMAGE_KERNEL_SOURCE_ENV);
	assert_string_equal(image_kernel_source(), IMAGE_KERNEL_SOURCE);
	setenv(IMAGE_KERNEL_SOURCE_ENV, "linux.tar.xz", 1);
	assert_string_equal(image_kernel_source(), IMAGE_KERNEL_SOURCE);
	setenv(IMAGE_KERNEL_SOURCE_ENV, "/nix/store/x-linux-6.1.tar.xz", 1);
	assert_string_equal(image_kernel_source(),
			    "/nix/store/x-linux-6.1.tar.xz");
	unsetenv(IMAGE_KERNEL_SOURCE_ENV);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_key_stable_and_hex),
	    cmocka_unit_test(test_key_ignores_runtime_options),
	    cmocka_unit_test(test_key_changes_with_build_inputs),
	    cmocka_unit_test(test_key_agent_sudo_null_is_on),
	    cmocka_unit_test(test_nix_conf),
	    cmocka_unit_test(test_key_nix_recipe_only_with_nix),
	    cmocka_unit_test(test_key_default_package),
	    cmocka_unit_test(test_key_script_contents),
	    cmocka_unit_test(test_key_list_boundaries),
	    cmocka_unit_test(test_key_kernel),
	    cmocka_unit_test(test_kernel_config_check),
	    cmocka_unit_test(test_bzimage_parse),
	    cmocka_unit_test(test_bzimage_rejects),
	    cmocka_unit_test(test_detect_comp),
	    cmocka_unit_test(test_pvh_note),
	    cmocka_unit_test(test_modules_order),
	    cmocka_unit_test(test_modules_errors),
	    cmocka_unit_test(test_module_name),
	    cmocka_unit_test(test_cpio_newc),
	    cmocka_unit_test(test_initrd_from_modules),
	    cmocka_unit_test(test_cache_dir),
	    cmocka_unit_test(test_ensure_without_build),
	    cmocka_unit_test(test_dir_size_allocated),
	    cmocka_unit_test(test_kernel_source),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
