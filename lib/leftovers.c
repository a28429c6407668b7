/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The dm devices a killed dmrepl left on a pool. Every device dmrepl
 * activates is named after its process, "dmrepl-PID-...": a sender's or
 * replication's read-only view of the source (src), its destination
 * device (dst), verify's replica (verify-dst; its source is src). A process
 * killed outright leaves them mapped, and a mapped thin cannot be
 * deleted. Each run that reserves a pool's metadata snapshot first
 * removes the devices of that pool whose process is gone and that
 * nothing holds open (a program reading one keeps it; the kernel's
 * teardown of the dead process's io_uring holds it a moment).
 *
 * A process is gone when kill(pid, 0) says ESRCH. A pid reused by an
 * unrelated process keeps its devices until that process exits; the
 * devices of a live dmrepl in another PID namespace are open while it
 * uses them, which keeps them too.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "dm.h"
#include "lvm.h"

#define CLOSE_WAIT_STEPS 30
#define CLOSE_WAIT_US 100000

struct sweep {
	struct dmrepl_pool *pool;
	char prefix[32];	/* "MAJ:MIN " of the pool, as thin tables name it */
	unsigned int removed;
	bool dry_run;		/* count, remove nothing */
};

bool dmrepl_dm_name_dead_owner(const char *name)
{
	int pid, end = 0;

	if (sscanf(name, "dmrepl-%d-%n", &pid, &end) != 1 || !end ||
	    !name[end] || pid <= 0 || pid == getpid())
		return false;
	return kill(pid, 0) < 0 && errno == ESRCH;
}

static int sweep_one(const char *name, void *data)
{
	struct sweep *s = data;
	struct dmrepl_ctx *ctx = dmrepl_pool_get_ctx(s->pool);
	struct dmrepl_dm_target t = {0};
	int count = 1;
	bool ours;

	if (!dmrepl_dm_name_dead_owner(name) ||
	    dmrepl_dm_get_table(ctx, name, &t) < 0)
		return 0;
	/*
	 * A device killed half-made has no live table (its process died
	 * between create and resume): it maps nothing, whichever pool its
	 * inactive table names, and that table still holds the thin open.
	 */
	ours = t.nr_targets == 0 ||
	       (t.nr_targets == 1 && t.type && strcmp(t.type, "thin") == 0 &&
		t.params && strncmp(t.params, s->prefix, strlen(s->prefix)) == 0);
	dmrepl_dm_target_clear(&t);
	if (!ours)
		return 0;
	/*
	 * A dead process's io_uring is torn down by a kernel worker after
	 * it exits, and holds the device open until its I/O completes: give
	 * that a few seconds. A program reading the device holds it longer.
	 * A dry run counts what is closed now.
	 */
	for (int i = 0; i < (s->dry_run ? 1 : CLOSE_WAIT_STEPS); i++) {
		if (dmrepl_dm_get_open_count(ctx, name, &count) < 0)
			return 0;
		if (!count)
			break;
		usleep(CLOSE_WAIT_US);
	}
	if (count) {
		notice(ctx,
		       "%s, left by a dmrepl process that was killed, is open: "
		       "left in place until whatever reads it closes it",
		       name);
		return 0;
	}
	if (s->dry_run) {
		notice(ctx, "would remove %s, left by a dmrepl process that was "
			    "killed", name);
		s->removed++;
		return 0;
	}
	if (dmrepl_dm_remove(ctx, name) == 0) {
		warn(ctx, "removed %s, left by a dmrepl process that was killed",
		     name);
		s->removed++;
	}
	return 0;
}

static int sweep(struct dmrepl_pool *pool, bool dry_run,
		 unsigned int *ret_removed)
{
	struct sweep s = {.pool = pool, .dry_run = dry_run};
	uint32_t maj, min;
	int r;

	dmrepl_pool_get_devt(pool, &maj, &min);
	snprintf(s.prefix, sizeof(s.prefix), "%u:%u ", maj, min);
	r = dmrepl_dm_foreach(dmrepl_pool_get_ctx(pool), sweep_one, &s);
	if (ret_removed)
		*ret_removed = s.removed;
	return r;
}

int dmrepl_pool_sweep(struct dmrepl_pool *pool, unsigned int *ret_removed)
{
	return sweep(pool, false, ret_removed);
}

int dmrepl_pool_sweep_count(struct dmrepl_pool *pool, unsigned int *ret_n)
{
	return sweep(pool, true, ret_n);
}

int dmrepl_lvm_thin_removable(struct dmrepl_ctx *ctx, const struct dmrepl_lvm_lv *lv)
{
	struct dmrepl_pool *pool = NULL;
	struct dmrepl_thin_active *a = NULL;
	char vg_pool[300], pool_dm[128], own[520];
	const char *other = NULL;
	int e;

	if (strcmp(lv->segtype, "thin") != 0 || lv->thin_id == DMREPL_THIN_ID_ANY)
		return 0;
	snprintf(vg_pool, sizeof(vg_pool), "%s/%s", lv->vg, lv->pool_lv);
	e = dmrepl_lvm_active_pool(ctx, vg_pool, pool_dm, sizeof(pool_dm));
	if (e == -ENODEV)
		return 0;	/* an inactive pool: nothing maps its thins */
	if (e == 0)
		e = dmrepl_pool_open(ctx, pool_dm, &pool);
	if (e == 0)
		e = dmrepl_pool_sweep(pool, NULL);
	if (e == 0)
		e = dmrepl_thin_active_find(pool, lv->thin_id, &a);
	if (e == 0)
		e = dmrepl_lvm_dm_name(lv->vg, lv->lv, own, sizeof(own));
	for (size_t i = 0; e == 0 && i < dmrepl_thin_active_count(a) && !other; i++)
		if (strcmp(dmrepl_thin_active_get_name(a, i), own) != 0)
			other = dmrepl_thin_active_get_name(a, i);
	if (other) {
		err(ctx, "%s/%s: %s maps its thin (%" PRIu64 "), not LVM: not removing it "
			 "(lvremove would drop the LV and leave the thin)",
		    lv->vg, lv->lv, other, lv->thin_id);
		e = -EBUSY;
	}
	dmrepl_thin_active_free(a);
	dmrepl_pool_unref(pool);
	return e;
}
