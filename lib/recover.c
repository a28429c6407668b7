/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Recover a pool: resolve, in one call, what a killed dmrepl can leave on
 * it: the dm devices it had mapped and the metadata snapshot it held
 * (lib/metasnap.c, lib/leftovers.c), and, on a destination, the devices
 * of its unfinished replications (lib/dest.c, through the receive side's
 * walk of the staging records, which keeps resumable ones).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "dm.h"
#include "replication.h"
#include "transfer.h"

static int count_one(const char *token, const struct dmrepl_lineage_record *rec,
		     void *userdata)
{
	struct dmrepl_recover_result *res = userdata;

	res->resumable++;
	return 0;
}

/* The pool's lineage folder exists: it is a destination of dmrepl's. */
static bool is_destination(const char *state_dir, const char *pool)
{
	char dir[PATH_MAX];

	if (dmrepl_lineage_dir(state_dir, pool, dir, sizeof(dir)) < 0)
		return false;
	return access(dir, F_OK) == 0;
}

DMREPL_EXPORT int dmrepl_pool_recover(struct dmrepl_ctx *ctx,
				      const char *pool_dm_name,
				      const char *state_dir,
				      struct dmrepl_recover_result *ret)
{
	struct dmrepl_recover_result res = {0};
	struct dmrepl_pool *pool = NULL;
	bool released = false;
	int r;

	if (!ctx || !pool_dm_name || !ret)
		return -EINVAL;
	if (!state_dir)
		state_dir = dmrepl_state_dir_default();
	r = dmrepl_pool_open(ctx, pool_dm_name, &pool);
	if (r < 0)
		return r;
	r = dmrepl_pool_snap_recover(pool, &released, &res.devices_removed);
	res.metadata_snapshot_released = released;
	/* an LVM pool's replicas are LVs: any may be one of dmrepl's */
	if (r == 0 && (is_destination(state_dir, pool_dm_name) ||
		       dmrepl_pool_get_lvm_name(pool))) {
		res.destination = 1;
		/* opening the destination deletes unfinished replications */
		r = dmrepl_receive_foreach_resumable(ctx, pool_dm_name, state_dir,
						     count_one, &res);
	}
	dmrepl_pool_unref(pool);
	*ret = res;
	return r;
}

int dmrepl_pool_recover_dry_run(struct dmrepl_ctx *ctx, const char *pool_dm_name,
				const char *state_dir,
				struct dmrepl_recover_result *ret,
				unsigned int *ret_unfinished)
{
	struct dmrepl_recover_result res = {0};
	struct dmrepl_pool *pool = NULL;
	unsigned int unfinished = 0;
	bool released = false;
	int r;

	if (!ctx || !pool_dm_name || !ret)
		return -EINVAL;
	if (!state_dir)
		state_dir = dmrepl_state_dir_default();
	r = dmrepl_pool_open(ctx, pool_dm_name, &pool);
	if (r < 0)
		return r;
	r = dmrepl_pool_snap_recover_dry_run(pool, &released,
					     &res.devices_removed);
	res.metadata_snapshot_released = released;
	if (r == 0 && (is_destination(state_dir, pool_dm_name) ||
		       dmrepl_pool_get_lvm_name(pool))) {
		res.destination = 1;
		r = dmrepl_receive_count_left(ctx, pool_dm_name, state_dir,
					      &res.resumable, &unfinished);
	}
	dmrepl_pool_unref(pool);
	*ret = res;
	if (ret_unfinished)
		*ret_unfinished = unfinished;
	return r;
}
