/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a destination pool holds: its lineage records, each checked
 * against the pool's metadata (still there, and unchanged since it was
 * received); and, for verify, one replica and its source snapshot.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "metadata.h"
#include "replication.h"
#include "dest.h"

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
	const char *vg;			/* an LVM destination's */
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
	char lv[300];
	int r = 0;

	for (size_t i = 0; i < c->nr && r == 0; i++) {
		const struct dmrepl_lineage_record *rec = &c->recs[i];

		snprintf(lv, sizeof(lv), "%s/%s", c->vg ? c->vg : "", rec->dst_lv);
		info = (struct dmrepl_replica_info){
		    .src_pool = rec->src_pool,
		    .src_thin_id = rec->src.thin_id,
		    .dst_thin_id = rec->dst.thin_id,
		    .base_dst_thin_id = rec->base_dst_id,
		    .size_bytes = rec->size_bytes,
		    .received_time = rec->time,
		    .src_creation_time = rec->src.creation_time,
		    .src_root = rec->src.root,
		    .src_mapped_blocks = rec->src.mapped_blocks,
		    .src_name = rec->src_name[0] ? rec->src_name : NULL,
		    .dst_lv = rec->dst_lv[0] ? lv : NULL,
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
	struct dmrepl_dest d;
	int r;

	if (!ctx || !dst_pool || !fn)
		return -EINVAL;
	r = dmrepl_dest_open_readonly(&d, ctx, dst_pool,
				      state_dir ? state_dir
						: dmrepl_state_dir_default());
	if (r == 0)
		r = dmrepl_dest_foreach(&d, "replica", collect_one, &c);
	c.vg = d.vg[0] ? d.vg : NULL;
	if (r < 0)
		goto out;
	if (c.nr)	/* none: c.recs is NULL, which qsort() must not get */
		qsort(c.recs, c.nr, sizeof(*c.recs), by_dst_id);
	r = dmrepl_metadata_open_pool(ctx, dst_pool, &md);
	if (r < 0)
		goto out;
	r = report(md, &c, fn, userdata);
out:
	dmrepl_metadata_unref(md);
	dmrepl_dest_close(&d);
	free(c.recs);
	return r;
}

/* ---- one replica, for verify ---- */

int dmrepl_replica_lookup(struct dmrepl_ctx *ctx, const char *state_dir,
			  const char *src_pool, uint64_t src_id,
			  const char *dst_pool,
			  struct dmrepl_lineage_record *ret_rec,
			  enum dmrepl_replica_state *ret_state)
{
	struct dmrepl_lineage_record rec;
	struct dmrepl_metadata *md = NULL;
	enum dmrepl_replica_state state;
	struct dmrepl_dest d;
	int r, e = 0;

	if (!ctx || !src_pool || !dst_pool || !ret_rec || !ret_state)
		return -EINVAL;
	r = dmrepl_dest_open_readonly(&d, ctx, dst_pool,
				      state_dir ? state_dir
						: dmrepl_state_dir_default());
	if (r == 0 && !dmrepl_dest_find_replica(&d, src_pool, src_id, &rec))
		r = -ENOENT;
	dmrepl_dest_close(&d);
	if (r == -ENOENT)
		err(ctx, "%s holds no replica of thin %" PRIu64 " of %s",
		    dst_pool, src_id, dmrepl_source_shown(src_pool));
	if (r < 0)
		return r;
	r = dmrepl_metadata_open_pool(ctx, dst_pool, &md);
	if (r < 0)
		return r;
	state = check(md, &rec, &e);
	dmrepl_metadata_unref(md);
	if (e < 0)
		return e;
	if (state == DMREPL_REPLICA_MISSING) {
		err(ctx, "%s: thin %" PRIu64 ", the replica of thin %" PRIu64
		    " of %s, was deleted", dst_pool, rec.dst.thin_id, src_id,
		    dmrepl_source_shown(src_pool));
		return -ENOENT;
	}
	*ret_rec = rec;
	*ret_state = state;
	return 0;
}

static int spool_mapped(struct dmrepl_metadata *md, uint64_t thin_id,
			FILE *spool, uint64_t *ret_nr, uint64_t *ret_total)
{
	struct dmrepl_mapped *m = NULL;
	struct dmrepl_extent e;
	uint64_t nr = 0, total = 0;
	int r;

	r = dmrepl_mapped_new(md, thin_id, &m);
	while (r == 0 && (r = dmrepl_mapped_next_extent(m, &e)) == 0) {
		if (fwrite(&e, sizeof(e), 1, spool) != 1) {
			r = -errno ? -errno : -EIO;
			err(dmrepl_metadata_get_ctx(md), "cannot write the extent "
			    "list to a temporary file: %s", strerror(-r));
			break;
		}
		nr++;
		total += e.length_bytes;
	}
	dmrepl_mapped_unref(m);
	if (r < 0)
		return r;
	if (fflush(spool) != 0)
		return -EIO;
	rewind(spool);
	*ret_nr = nr;
	*ret_total = total;
	return 0;
}

static int source_changed(struct dmrepl_ctx *ctx, const char *dst_pool,
			  const struct dmrepl_lineage_record *rec, const char *why)
{
	err(ctx, "thin %" PRIu64 " of %s is not the snapshot that thin %" PRIu64
	    " of %s replicates: %s", rec->src.thin_id,
	    dmrepl_source_shown(rec->src_pool), rec->dst.thin_id, dst_pool, why);
	return -ESTALE;
}

int dmrepl_replica_check_source(struct dmrepl_ctx *ctx, const char *dst_pool,
				const struct dmrepl_lineage_record *rec,
				FILE *spool, uint64_t *ret_nr_extents,
				uint64_t *ret_total_bytes)
{
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_thin_ident now;
	uint64_t nr = 0, total = 0;
	int r;

	if (!ctx || !dst_pool || !rec)
		return -EINVAL;
	if (!dmrepl_source_local_pool(rec->src_pool)) {
		err(ctx, "thin %" PRIu64 " of %s replicates thin %" PRIu64 " of "
		    "%s, a pool of another host: verify it there, or compare "
		    "with dmrepl verify FILE FILE", rec->dst.thin_id, dst_pool,
		    rec->src.thin_id, rec->src_pool);
		return -EXDEV;
	}
	r = dmrepl_metadata_open_pool(ctx, dmrepl_source_local_pool(rec->src_pool),
				      &md);
	if (r < 0)
		return r;
	r = dmrepl_thin_ident_read(md, rec->src.thin_id, &now);
	if (r == -ENOENT)
		r = source_changed(ctx, dst_pool, rec, "it was deleted since");
	else if (r == 0 && !dmrepl_thin_ident_equal(&now, &rec->src))
		r = source_changed(ctx, dst_pool, rec, "it was deleted and its "
				   "id reused, or written to since");
	if (r == 0 && spool)
		r = spool_mapped(md, rec->src.thin_id, spool, &nr, &total);
	dmrepl_metadata_unref(md); /* releases the metadata snapshot */
	if (r < 0)
		return r;
	if (ret_nr_extents)
		*ret_nr_extents = nr;
	if (ret_total_bytes)
		*ret_total_bytes = total;
	return 0;
}
