/* ccvm-init's module sets: only what booting needs is loaded up front. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "mount.h"

static void test_boot_set(void **state)
{
	(void)state;
	/* The root device, the root's file systems, the port, the share. */
	assert_true(mnt_module_is_boot("virtio_pci.ko"));
	assert_true(mnt_module_is_boot("virtio_blk.ko"));
	assert_true(mnt_module_is_boot("virtio_console.ko"));
	assert_true(mnt_module_is_boot("squashfs.ko"));
	assert_true(mnt_module_is_boot("overlay.ko"));
	assert_true(mnt_module_is_boot("9p.ko"));
	assert_true(mnt_module_is_boot("9pnet_virtio.ko"));
	assert_true(mnt_module_is_boot("fuse.ko"));
	assert_true(mnt_module_is_boot("virtiofs.ko"));
	/* Later: scratch disk, firewall, unused devices. */
	assert_false(mnt_module_is_boot("ext4.ko"));
	assert_false(mnt_module_is_boot("dm-crypt.ko"));
	assert_false(mnt_module_is_boot("nf_tables.ko"));
	assert_false(mnt_module_is_boot("virtio_net.ko"));
	assert_false(mnt_module_is_boot("9p"));
	assert_false(mnt_module_is_boot(""));
}

static void test_sets(void **state)
{
	(void)state;
	assert_true(mnt_module_in(MNT_MODS_NET, "nf_tables.ko"));
	assert_true(mnt_module_in(MNT_MODS_NET, "nft_redir.ko"));
	assert_false(mnt_module_in(MNT_MODS_NET, "ext4.ko"));
	assert_false(mnt_module_in(MNT_MODS_NET, "dummy.ko"));
	assert_true(mnt_module_in(MNT_MODS_LINK, "dummy.ko"));
	assert_false(mnt_module_in(MNT_MODS_LINK, "nf_tables.ko"));
	assert_true(mnt_module_in(MNT_MODS_REST, "dummy.ko"));
	assert_false(mnt_module_in(MNT_MODS_NET, "virtio_pci.ko"));
	assert_true(mnt_module_in(MNT_MODS_REST, "ext4.ko"));
	assert_true(mnt_module_in(MNT_MODS_REST, "nf_tables.ko"));
	assert_false(mnt_module_in(MNT_MODS_REST, "virtio_pci.ko"));
	assert_true(mnt_module_in(MNT_MODS_BOOT, "virtio_pci.ko"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_boot_set),
	    cmocka_unit_test(test_sets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
