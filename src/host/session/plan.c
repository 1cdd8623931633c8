/* What a session runs (plan.h). */
#include "session/plan.h"

#include "share/vfs.h"

static enum plan_nocache nocache(const struct plan_facts *f)
{
	if (!f->writable)
		return PLAN_NOCACHE_READONLY;
	if (f->cache_off)
		return PLAN_NOCACHE_ENV;
	if (!f->fs_complete)
		return PLAN_NOCACHE_FS;
	if (f->files_max < VFS_CACHE_MIN_FILES)
		return PLAN_NOCACHE_FILES;
	if (f->watch_fail)
		return PLAN_NOCACHE_WATCH;
	return PLAN_NOCACHE_NONE;
}

void session_plan(const struct plan_facts *f, struct session_plan *p)
{
	bool vfs = f->virtiofsd && !f->virtiofsd_fail;
	*p = (struct session_plan){
	    .transport = vfs ? PLAN_VIRTIOFS : PLAN_9P,
	    .guest_overlay = !f->writable,
	    .scratch = f->disk_gib > 0,
	};
	if (!f->writable)
		p->readonly = vfs ? PLAN_RO_VFS_BIND : PLAN_RO_9P_EXPORT;
	if (!vfs) {
		p->cache = PLAN_CACHE_9P;
		p->nocache = PLAN_NOCACHE_9P;
		return;
	}
	p->nocache = nocache(f);
	p->watch = p->nocache == PLAN_NOCACHE_NONE;
	p->cache = p->watch ? PLAN_CACHE_ALWAYS : PLAN_CACHE_AUTO;
	/* Virtiofs maps guest RAM: in a file of ccvm's when one can be had
	 * (else QEMU's memfd), and only that file can be saved. */
	p->ram_file = !f->ram_fail;
	p->saved_boot = p->ram_file && !f->saved_boot_off;
}
