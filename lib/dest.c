/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The destination side of a replication, shared by the local job
 * (replicate.c) and the stream receiver (receive.c):
 *
 *   open      the pool, its lineage folder and lock; delete the
 *             unfinished device of a replication that was killed (a
 *             resumable receive's staging is kept)
 *   begin     check the base's replica is intact, pick a free id, write
 *             the staging record, create the device (create_thin, or
 *             create_snap of the base's replica)
 *   activate  map it read-write under a temporary name
 *   commit    take the hidden anchor snapshot, identify the device and
 *             write its replica record, then drop the staging record
 *   undo      delete what begin created, unless it is kept to resume
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "dm.h"
#include "replication.h"
#include "dest.h"

/* ---- open: the folder, the lock, stale work ---- */

/* Delete those of @ids that exist (one look at the metadata for all). */
static int delete_existing(struct dmrepl_dest *d, const uint64_t *ids, size_t n)
{
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_thin_info info;
	bool exists[4];
	int r;

	if (n > ARRAY_SIZE(exists))
		return -EINVAL;
	r = dmrepl_metadata_open_pool(d->ctx, d->name, &md);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n && r == 0; i++) {
		r = dmrepl_metadata_get_thin(md, ids[i], &info);
		exists[i] = r == 0;
		r = r == -ENOENT ? 0 : r;
	}
	dmrepl_metadata_unref(md); /* release before sending messages */
	for (size_t i = 0; i < n && r == 0; i++)
		if (exists[i])
			r = dmrepl_pool_delete_thin(d->pool, ids[i]);
	return r;
}

/* The temporary dm devices a process named after itself. */
static void remove_names(struct dmrepl_dest *d,
			 const struct dmrepl_lineage_record *rec)
{
	char name[128];

	snprintf(name, sizeof(name), "dmrepl-%d-dst-%" PRIu64, (int)rec->pid,
		 rec->dst.thin_id);
	dmrepl_dm_remove(d->ctx, name);
	snprintf(name, sizeof(name), "dmrepl-%d-src-%" PRIu64, (int)rec->pid,
		 rec->src.thin_id);
	dmrepl_dm_remove(d->ctx, name);
}

int dmrepl_dest_drop_staging(struct dmrepl_dest *d,
			     const struct dmrepl_lineage_record *rec)
{
	int r;

	remove_names(d, rec);
	/* The anchor first: it is a snapshot of the replica. */
	r = delete_existing(d, (uint64_t[]){rec->anchor_id, rec->dst.thin_id}, 2);
	if (r < 0)
		return r;
	return dmrepl_lineage_remove(d->ctx, d->dir, "staging", rec->dst.thin_id);
}

struct by_dst {
	uint64_t dst_id;
	struct dmrepl_lineage_record *ret;
	bool found;
};

static int match_dst(const struct dmrepl_lineage_record *rec, void *data)
{
	struct by_dst *f = data;

	if (rec->dst.thin_id != f->dst_id)
		return 0;
	if (f->ret)
		*f->ret = *rec;
	f->found = true;
	return 0;
}

bool dmrepl_dest_replica_of(struct dmrepl_dest *d, uint64_t dst_id,
			    struct dmrepl_lineage_record *ret)
{
	struct by_dst f = {dst_id, ret, false};

	dmrepl_lineage_foreach(d->ctx, d->dir, "replica", match_dst, &f);
	return f.found;
}

static int remove_stale(const struct dmrepl_lineage_record *rec, void *data)
{
	struct dmrepl_dest *d = data;
	int r;

	/*
	 * Killed between writing the replica record and dropping this one:
	 * the device is a finished replica. Keep it.
	 */
	if (dmrepl_dest_replica_of(d, rec->dst.thin_id, NULL)) {
		remove_names(d, rec);
		return dmrepl_lineage_remove(d->ctx, d->dir, "staging",
					     rec->dst.thin_id);
	}

	if (rec->resumable) {
		info(d->ctx,
		     "%s: thin %" PRIu64 " holds a resumable receive of thin %" PRIu64
		     " of %s (up to byte %" PRIu64 "); resume it, or drop it "
		     "with dmrepl receive --abort",
		     d->name, rec->dst.thin_id, rec->src.thin_id, rec->src_pool,
		     rec->checkpoint);
		return 0;
	}
	r = dmrepl_dest_drop_staging(d, rec);
	if (r < 0)
		return r;
	warn(d->ctx,
	     "%s: deleted thin %" PRIu64 ", an unfinished replica of thin %" PRIu64
	     " of %s left by dmrepl process %d",
	     d->name, rec->dst.thin_id, rec->src.thin_id, rec->src_pool,
	     (int)rec->pid);
	return 0;
}

/* The pool, refused when LVM manages it; the lineage folder's path. */
static int open_pool(struct dmrepl_dest *d, struct dmrepl_ctx *ctx,
		     const char *pool, const char *state_dir)
{
	int r;

	memset(d, 0, sizeof(*d));
	d->ctx = ctx;
	d->name = pool;
	d->lock_fd = -1;
	d->rec.base_dst_id = DMREPL_THIN_ID_ANY;
	r = dmrepl_pool_open(ctx, pool, &d->pool);
	if (r < 0)
		return r;
	if (dmrepl_pool_get_lvm_name(d->pool)) {
		/* lib/thinpool.c would refuse each thin; refuse the whole */
		err(ctx,
		    "pool %s is LVM's (%s): dmrepl cannot make its replicas "
		    "LVM volumes yet, and never creates thin devices behind "
		    "LVM's back; replicate into a pool that LVM does not "
		    "manage; nothing written",
		    pool, dmrepl_pool_get_lvm_name(d->pool));
		return -EPERM;
	}
	return dmrepl_lineage_dir(state_dir, pool, d->dir, sizeof(d->dir));
}

int dmrepl_dest_open_readonly(struct dmrepl_dest *d, struct dmrepl_ctx *ctx,
			      const char *pool, const char *state_dir)
{
	return open_pool(d, ctx, pool, state_dir);
}

int dmrepl_dest_open(struct dmrepl_dest *d, struct dmrepl_ctx *ctx,
		     const char *pool, const char *state_dir)
{
	int r;

	r = open_pool(d, ctx, pool, state_dir);
	if (r < 0)
		return r;
	r = dmrepl_lineage_dir_create(ctx, state_dir, d->dir);
	if (r < 0)
		return r;
	r = dmrepl_lineage_lock(ctx, d->dir, &d->lock_fd);
	if (r < 0)
		return r;
	/* We hold the lock: every staging record is a dead process's. */
	return dmrepl_lineage_foreach(ctx, d->dir, "staging", remove_stale, d);
}

void dmrepl_dest_close(struct dmrepl_dest *d)
{
	dmrepl_dest_deactivate(d);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	d->lock_fd = -1;
	d->pool = dmrepl_pool_unref(d->pool);
}

/* ---- lookups ---- */

bool dmrepl_dest_find_replica(struct dmrepl_dest *d, const char *src_pool,
			      uint64_t src_id, struct dmrepl_lineage_record *ret)
{
	return dmrepl_lineage_find_replica(d->ctx, d->dir, src_pool, src_id, ret) == 0;
}

int dmrepl_dest_replica_intact(struct dmrepl_dest *d,
			       const struct dmrepl_lineage_record *rec)
{
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_thin_ident now;
	int r;

	r = dmrepl_metadata_open_pool(d->ctx, d->name, &md);
	if (r == 0)
		r = dmrepl_thin_ident_read(md, rec->dst.thin_id, &now);
	dmrepl_metadata_unref(md);
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : dmrepl_thin_ident_equal(&now, &rec->dst);
}

/* ---- begin: check the base's replica, create the new device ---- */

struct max_rec {
	uint64_t max;
	bool any;
};

static int note_rec(const struct dmrepl_lineage_record *rec, void *data)
{
	struct max_rec *m = data;
	uint64_t id = rec->dst.thin_id > rec->anchor_id ? rec->dst.thin_id
							: rec->anchor_id;

	if (!m->any || id > m->max)
		m->max = id;
	m->any = true;
	return 0;
}

/* Above every id in the pool and every id the lineage ever named. */
static int pick_id(struct dmrepl_dest *d, struct dmrepl_metadata *md,
		   uint64_t *ret_id)
{
	struct max_rec m = {0};
	uint64_t id;
	int r;

	r = dmrepl_metadata_next_free_id(md, &id);
	if (r < 0)
		return r;
	dmrepl_lineage_foreach(d->ctx, d->dir, "replica", note_rec, &m);
	dmrepl_lineage_foreach(d->ctx, d->dir, "staging", note_rec, &m);
	if (m.any && m.max >= id)
		id = m.max + 1;
	if (id + 1 > DMREPL_THIN_ID_MAX)	/* the replica and its anchor */
		return -ENOSPC;
	*ret_id = id;
	return 0;
}

int dmrepl_dest_check_replica(struct dmrepl_dest *d, struct dmrepl_metadata *md,
			      const struct dmrepl_lineage_record *base)
{
	const struct dmrepl_thin_ident *want = &base->dst;
	struct dmrepl_thin_ident now;
	int r;

	r = dmrepl_thin_ident_read(md, want->thin_id, &now);
	if (r == -ENOENT) {
		err(d->ctx,
		    "%s: thin %" PRIu64 ", the replica of thin %" PRIu64
		    " of %s, was deleted; replicate in full (--full)",
		    d->name, want->thin_id, base->src.thin_id, base->src_pool);
		return -ENOENT;
	}
	if (r < 0)
		return r;
	if (!dmrepl_thin_ident_equal(&now, want)) {
		err(d->ctx,
		    "%s: thin %" PRIu64 ", the replica of thin %" PRIu64
		    " of %s, was written to since it was received (%" PRIu64
		    " mapped blocks, was %" PRIu64 "), so it cannot be the "
		    "base; replicate in full (--full)",
		    d->name, want->thin_id, base->src.thin_id, base->src_pool,
		    now.mapped_blocks, want->mapped_blocks);
		return -ESTALE;
	}
	return 0;
}

/* The destination's metadata, read once: the base's replica, a free id. */
static int read_pool(struct dmrepl_dest *d,
		     const struct dmrepl_lineage_record *base, uint64_t *ret_id)
{
	struct dmrepl_metadata *md = NULL;
	int r;

	r = dmrepl_metadata_open_pool(d->ctx, d->name, &md);
	if (r < 0)
		return r;
	if (base)
		r = dmrepl_dest_check_replica(d, md, base);
	if (r == 0)
		r = pick_id(d, md, ret_id);
	dmrepl_metadata_unref(md);
	return r;
}

int dmrepl_dest_begin(struct dmrepl_dest *d,
		      const struct dmrepl_lineage_record *base)
{
	uint64_t id = 0;
	int r;

	r = read_pool(d, base, &id);
	if (r < 0)
		return r;
	d->rec.base_dst_id = base ? base->dst.thin_id : DMREPL_THIN_ID_ANY;
	d->rec.dst.thin_id = id;
	d->rec.anchor_id = id + 1;
	d->rec.pid = getpid();
	d->rec.time = (uint64_t)time(NULL);
	r = dmrepl_lineage_write(d->ctx, d->dir, "staging", &d->rec);
	if (r < 0)
		return r;
	d->staged = true;
	if (!base)
		r = dmrepl_pool_create_thin(d->pool, id);
	else
		r = dmrepl_pool_create_snapshot(d->pool, base->dst.thin_id, id,
						NULL);
	if (r < 0)
		return r;
	d->created = true;
	info(d->ctx, "%s: writing thin %" PRIu64 " (%s)", d->name, id,
	     base ? "incremental" : "full copy");
	return 0;
}

int dmrepl_dest_adopt(struct dmrepl_dest *d,
		      const struct dmrepl_lineage_record *staging)
{
	int r;

	remove_names(d, staging);
	d->rec = *staging;
	d->rec.pid = getpid();
	r = dmrepl_lineage_write(d->ctx, d->dir, "staging", &d->rec);
	if (r < 0)
		return r;
	d->staged = d->created = true;
	info(d->ctx, "%s: resuming thin %" PRIu64 " at byte %" PRIu64, d->name,
	     d->rec.dst.thin_id, d->rec.checkpoint);
	return 0;
}

int dmrepl_dest_checkpoint(struct dmrepl_dest *d, uint64_t stream_hash,
			   uint64_t offset)
{
	d->rec.resumable = true;
	d->rec.stream_hash = stream_hash;
	d->rec.checkpoint = offset;
	return dmrepl_lineage_write(d->ctx, d->dir, "staging", &d->rec);
}

/* ---- the device ---- */

int dmrepl_dest_activate(struct dmrepl_dest *d, const char **ret_path)
{
	char name[128];
	int r;

	snprintf(name, sizeof(name), "dmrepl-%d-dst-%" PRIu64, (int)getpid(),
		 d->rec.dst.thin_id);
	r = dmrepl_thin_activate(d->pool, d->rec.dst.thin_id, d->rec.size_bytes,
				 false, name, &d->dev);
	if (r < 0)
		return r;
	*ret_path = dmrepl_thin_dev_get_path(d->dev);
	return 0;
}

int dmrepl_dest_deactivate(struct dmrepl_dest *d)
{
	int r = dmrepl_thin_deactivate(d->dev);

	d->dev = NULL;
	return r;
}

/* ---- commit and undo ---- */

int dmrepl_dest_commit(struct dmrepl_dest *d)
{
	struct dmrepl_metadata *md = NULL;
	int r;

	r = dmrepl_dest_deactivate(d);
	if (r < 0)
		return r;
	r = dmrepl_pool_create_snapshot(d->pool, d->rec.dst.thin_id,
					d->rec.anchor_id, NULL);
	if (r < 0)
		return r;
	d->anchored = true;
	/* Reserving the metadata snapshot commits the pool's transaction. */
	r = dmrepl_metadata_open_pool(d->ctx, d->name, &md);
	if (r < 0)
		return r;
	r = dmrepl_thin_ident_read(md, d->rec.dst.thin_id, &d->rec.dst);
	dmrepl_metadata_unref(md);
	if (r < 0)
		return r;
	d->rec.pid = 0;
	d->rec.time = (uint64_t)time(NULL);
	d->rec.resumable = false;
	r = dmrepl_lineage_write(d->ctx, d->dir, "replica", &d->rec);
	if (r < 0)
		return r;
	/* From here on the device is a replica: never delete it. */
	d->created = d->anchored = d->staged = false;
	dmrepl_lineage_remove(d->ctx, d->dir, "staging", d->rec.dst.thin_id);
	return 0;
}

void dmrepl_dest_undo(struct dmrepl_dest *d, bool keep)
{
	int r;

	dmrepl_dest_deactivate(d);
	if (d->anchored &&
	    dmrepl_pool_delete_thin(d->pool, d->rec.anchor_id) < 0)
		return; /* keep the staging record for the next run */
	d->anchored = false;
	if (keep && d->created && d->rec.resumable) {
		info(d->ctx,
		     "%s: kept thin %" PRIu64 " with everything below byte %" PRIu64
		     " to resume from",
		     d->name, d->rec.dst.thin_id, d->rec.checkpoint);
		return;
	}
	if (d->created) {
		r = dmrepl_pool_delete_thin(d->pool, d->rec.dst.thin_id);
		if (r < 0) {
			err(d->ctx,
			    "%s: the unfinished thin %" PRIu64 " could not be "
			    "deleted; the next replication into the pool will "
			    "delete it",
			    d->name, d->rec.dst.thin_id);
			return; /* keep the staging record for that */
		}
		info(d->ctx, "%s: deleted the unfinished thin %" PRIu64, d->name,
		     d->rec.dst.thin_id);
		d->created = false;
	}
	if (d->staged)
		dmrepl_lineage_remove(d->ctx, d->dir, "staging",
				      d->rec.dst.thin_id);
	d->staged = false;
}
