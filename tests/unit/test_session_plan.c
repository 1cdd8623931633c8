/* Unit tests for the session's plan (src/host/session/plan.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>

#include "session/plan.h"
#include "share/vfs.h"

/* A host with virtiofsd, a local file system and a high file limit. */
static struct plan_facts host(bool writable)
{
	return (struct plan_facts){
	    .writable = writable,
	    .virtiofsd = true,
	    .fs_complete = true,
	    .files_max = 1 << 20,
	};
}

static struct session_plan plan(const struct plan_facts *f)
{
	struct session_plan p;
	session_plan(f, &p);
	return p;
}

static void test_virtiofs_writable(void **state)
{
	(void)state;
	struct plan_facts f = host(true);
	struct session_plan p = plan(&f);
	assert_int_equal(p.transport, PLAN_VIRTIOFS);
	assert_int_equal(p.readonly, PLAN_RO_NONE);
	assert_false(p.guest_overlay);
	assert_int_equal(p.cache, PLAN_CACHE_ALWAYS);
	assert_int_equal(p.nocache, PLAN_NOCACHE_NONE);
	assert_true(p.watch);
	assert_true(p.ram_file);
	assert_true(p.saved_boot);
	assert_false(p.scratch);
}

/* Read-only over virtiofs: virtiofsd's read-only bind on the host, the
 * overlay in the guest, and no cache (the overlay cannot be told). */
static void test_virtiofs_readonly(void **state)
{
	(void)state;
	struct plan_facts f = host(false);
	struct session_plan p = plan(&f);
	assert_int_equal(p.transport, PLAN_VIRTIOFS);
	assert_int_equal(p.readonly, PLAN_RO_VFS_BIND);
	assert_true(p.guest_overlay);
	assert_int_equal(p.cache, PLAN_CACHE_AUTO);
	assert_int_equal(p.nocache, PLAN_NOCACHE_READONLY);
	assert_false(p.watch);
	assert_true(p.saved_boot);
}

/* Read-only over 9p: QEMU's export is readonly=on; the guest overlays. */
static void test_9p_readonly(void **state)
{
	(void)state;
	struct plan_facts f = host(false);
	f.virtiofsd = false;
	struct session_plan p = plan(&f);
	assert_int_equal(p.transport, PLAN_9P);
	assert_int_equal(p.readonly, PLAN_RO_9P_EXPORT);
	assert_true(p.guest_overlay);
	assert_int_equal(p.cache, PLAN_CACHE_9P);
	assert_int_equal(p.nocache, PLAN_NOCACHE_9P);
	assert_false(p.watch);
	assert_false(p.ram_file);
	assert_false(p.saved_boot);
}

static void test_9p_writable(void **state)
{
	(void)state;
	struct plan_facts f = host(true);
	f.virtiofsd = false;
	struct session_plan p = plan(&f);
	assert_int_equal(p.transport, PLAN_9P);
	assert_int_equal(p.readonly, PLAN_RO_NONE);
	assert_false(p.guest_overlay);
	assert_false(p.watch);
	assert_false(p.saved_boot);
}

/* virtiofsd did not start: 9p, and read-only mode moves to QEMU. */
static void test_virtiofsd_fails(void **state)
{
	(void)state;
	struct plan_facts f = host(false);
	f.virtiofsd_fail = true;
	struct session_plan p = plan(&f);
	assert_int_equal(p.transport, PLAN_9P);
	assert_int_equal(p.readonly, PLAN_RO_9P_EXPORT);
	assert_true(p.guest_overlay);
	f.writable = true;
	p = plan(&f);
	assert_int_equal(p.readonly, PLAN_RO_NONE);
	assert_false(p.watch);
}

/* Each reason to keep nothing, in the order they are said. */
static void test_nocache(void **state)
{
	(void)state;
	struct plan_facts f = host(true);
	f.watch_fail = true;
	assert_int_equal(plan(&f).nocache, PLAN_NOCACHE_WATCH);
	f.files_max = VFS_CACHE_MIN_FILES - 1;
	assert_int_equal(plan(&f).nocache, PLAN_NOCACHE_FILES);
	f.fs_complete = false;
	assert_int_equal(plan(&f).nocache, PLAN_NOCACHE_FS);
	f.cache_off = true;
	assert_int_equal(plan(&f).nocache, PLAN_NOCACHE_ENV);
	f.writable = false;
	assert_int_equal(plan(&f).nocache, PLAN_NOCACHE_READONLY);
	struct session_plan p = plan(&f);
	assert_false(p.watch);
	assert_int_equal(p.cache, PLAN_CACHE_AUTO);
	assert_int_equal(p.transport, PLAN_VIRTIOFS);
	f = host(true);
	f.files_max = VFS_CACHE_MIN_FILES;
	assert_true(plan(&f).watch);
}

static void test_saved_boot(void **state)
{
	(void)state;
	struct plan_facts f = host(true);
	f.saved_boot_off = true;
	assert_false(plan(&f).saved_boot);
	assert_true(plan(&f).ram_file);
	f = host(true);
	f.ram_fail = true;
	struct session_plan p = plan(&f);
	assert_false(p.ram_file);
	assert_false(p.saved_boot);
	assert_true(p.watch); /* QEMU's memfd serves virtiofs all the same */
	f = host(true);
	f.disk_gib = 4;
	assert_true(plan(&f).scratch);
}

/* Pure: the same facts, the same plan. */
static void test_pure(void **state)
{
	(void)state;
	struct plan_facts f = host(false);
	struct session_plan a = plan(&f), b = plan(&f);
	assert_int_equal(a.transport, b.transport);
	assert_int_equal(a.readonly, b.readonly);
	assert_int_equal(a.cache, b.cache);
	assert_int_equal(a.nocache, b.nocache);
	assert_true(a.guest_overlay == b.guest_overlay && a.watch == b.watch &&
		    a.ram_file == b.ram_file && a.saved_boot == b.saved_boot &&
		    a.scratch == b.scratch);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_virtiofs_writable),
	    cmocka_unit_test(test_virtiofs_readonly),
	    cmocka_unit_test(test_9p_readonly),
	    cmocka_unit_test(test_9p_writable),
	    cmocka_unit_test(test_virtiofsd_fails),
	    cmocka_unit_test(test_nocache),
	    cmocka_unit_test(test_saved_boot),
	    cmocka_unit_test(test_pure),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
