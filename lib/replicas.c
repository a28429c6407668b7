/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a destination pool holds: its lineage records, each checked
 * against the pool's metadata (still there, and unchanged since it was
 * received).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "libdmrepl-private.h"

static const char *const state_names[] = {
    [DMREPL_REPLICA_OK] = "ok",
    [DMREPL_REPLICA_MODIFIED] = "modified",
    [DMREPL_REPLICA_MISSING] = "missing",
};

DMREPL_EXPORT const char *
dmrepl_replica_state_name(enum dmrepl_replica_state state)
{
	if ((unsigned int)state >= ARRAY_SIZE(state_names))
		return NULL;
	return state_names[state];
}

struct collect {
	struct dmrepl_lineage_record *recs;
	size_t nr;
};

static int collect_one(const struct dmrepl_lineage_record *rec, void *data)
{
	struct collect *c = data;
	struct dmrepl_lineage_record *recs;

	recs = realloc(c->recs, (c->nr + 1) * sizeof(*recs));
	if (!recs)
		return -ENOMEM;
	recs[c->nr++] = *rec;
	c->recs = recs;
	return 0;
}

static int by_dst_id(const void *a, const void *b)
{
	const struct dmrepl_lineage_record *x = a, *y = b;

	return (x->dst.thin_id > y->dst.thin_id) -
	       (x->dst.thin_id < y->dst.thin_id);
}

static enum dmrepl_replica_state check(struct dmrepl_metadata *md,
				       const struct dmrepl_lineage_record *rec,
				       int *ret_err)
{
	struct dmrepl_thin_ident now;
	int r;

	r = dmrepl_thin_ident_read(md, rec->dst.thin_id, &now);
	if (r == -ENOENT)
		return DMREPL_REPLICA_MISSING;
	if (r < 0) {
		*ret_err = r;
		return DMREPL_REPLICA_MISSING;
	}
	return dmrepl_thin_ident_equal(&now, &rec->dst) ? DMREPL_REPLICA_OK
						       : DMREPL_REPLICA_MODIFIED;
}

static int report(struct dmrepl_metadata *md, const struct collect *c,
		  int (*fn)(const struct dmrepl_replica_info *, void *),
		  void *userdata)
{
	struct dmrepl_replica_info info;
	int r = 0;

	for (size_t i = 0; i < c->nr && r == 0; i++) {
		const struct dmrepl_lineage_record *rec = &c->recs[i];

		info = (struct dmrepl_replica_info){
		    .src_pool = rec->src_pool,
		    .src_thin_id = rec->src.thin_id,
		    .dst_thin_id = rec->dst.thin_id,
		    .base_dst_thin_id = rec->base_dst_id,
		    .size_bytes = rec->size_bytes,
		    .received_time = rec->time,
		};
		info.state = check(md, rec, &r);
		if (r == 0)
			r = fn(&info, userdata);
	}
	return r;
}

DMREPL_EXPORT int dmrepl_replicas_foreach(
    struct dmrepl_ctx *ctx, const char *state_dir, const char *dst_pool,
    int (*fn)(const struct dmrepl_replica_info *info, void *userdata),
    void *userdata)
{
	struct dmrepl_metadata *md = NULL;
	struct collect c = {0};
	char dir[PATH_MAX];
	int r;

	if (!ctx || !dst_pool || !fn)
		return -EINVAL;
	r = dmrepl_lineage_dir(state_dir ? state_dir : dmrepl_state_dir_default(),
			       dst_pool, dir, sizeof(dir));
	if (r < 0)
		return r;
	r = dmrepl_lineage_foreach(ctx, dir, "replica", collect_one, &c);
	if (r < 0)
		goto out;
	qsort(c.recs, c.nr, sizeof(*c.recs), by_dst_id);
	r = dmrepl_metadata_open_pool(ctx, dst_pool, &md);
	if (r < 0)
		goto out;
	r = report(md, &c, fn, userdata);
out:
	dmrepl_metadata_unref(md);
	free(c.recs);
	return r;
}
