/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The destination side of a replication, shared by the local job
 * (replicate.c) and the stream receiver (receive.c):
 *
 *   open      the pool, its kind, its lineage folder and lock; delete the
 *             unfinished device of a replication that was killed (a
 *             resumable receive's staging is kept)
 *   begin     check the base's replica is intact, write the staging
 *             record, create the device (a new thin, or a snapshot of
 *             the base's replica)
 *   activate  map it read-write under a temporary name
 *   commit    take the anchor snapshot, identify the device and write
 *             its replica record, which replaces the staging record
 *   undo      delete what begin created, unless it is kept to resume
 *
 * The flow is here; what differs between a raw pool and an LVM one is
 * behind struct dest_kind: the raw kind below, the LVM kind in
 * dest-lvm.c.
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

/* ---- the raw kind: dmrepl picks ids, records are files ---- */

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

static int raw_foreach(struct dmrepl_dest *d, const char *what,
		       dmrepl_record_fn fn, void *userdata)
{
	return dmrepl_lineage_foreach(d->ctx, d->dir, what, fn, userdata);
}

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
static int raw_prepare(struct dmrepl_dest *d, struct dmrepl_metadata *md)
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
	d->next_id = id;
	return 0;
}

static int raw_create(struct dmrepl_dest *d,
		      const struct dmrepl_lineage_record *base)
{
	uint64_t id = d->next_id;
	int r;

	d->rec.dst.thin_id = id;
	d->rec.anchor_id = id + 1;
	/* The record first: a kill after the message leaves it to clean. */
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
	return 0;
}

static int raw_update_staging(struct dmrepl_dest *d)
{
	return dmrepl_lineage_write(d->ctx, d->dir, "staging", &d->rec);
}

static int raw_anchor(struct dmrepl_dest *d)
{
	return dmrepl_pool_create_snapshot(d->pool, d->rec.dst.thin_id,
					   d->rec.anchor_id, NULL);
}

static int raw_record_replica(struct dmrepl_dest *d)
{
	int r = dmrepl_lineage_write(d->ctx, d->dir, "replica", &d->rec);

	if (r < 0)
		return r;
	dmrepl_lineage_remove(d->ctx, d->dir, "staging", d->rec.dst.thin_id);
	return 0;
}

static int raw_delete(struct dmrepl_dest *d,
		      const struct dmrepl_lineage_record *rec, bool anchor)
{
	uint64_t id = anchor ? rec->anchor_id : rec->dst.thin_id;

	/* Ours since begin: it exists. A stale one may not. */
	if (rec == &d->rec)
		return dmrepl_pool_delete_thin(d->pool, id);
	return delete_existing(d, &id, 1);
}

static int raw_forget_staging(struct dmrepl_dest *d,
			      const struct dmrepl_lineage_record *rec)
{
	return dmrepl_lineage_remove(d->ctx, d->dir, "staging", rec->dst.thin_id);
}

const struct dest_kind dmrepl_dest_raw = {
    .name = "raw",
    .foreach = raw_foreach,
    .prepare = raw_prepare,
    .create = raw_create,
    .update_staging = raw_update_staging,
    .anchor = raw_anchor,
    .record_replica = raw_record_replica,
    .delete = raw_delete,
    .forget_staging = raw_forget_staging,
};

/* ---- open: the kind, the folder, the lock, stale work ---- */

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

int dmrepl_dest_drop_anchor(struct dmrepl_dest *d,
			    const struct dmrepl_lineage_record *rec)
{
	return d->kind->delete(d, rec, true);
}

int dmrepl_dest_forget_staging(struct dmrepl_dest *d,
			       const struct dmrepl_lineage_record *rec)
{
	return d->kind->forget_staging(d, rec);
}

int dmrepl_dest_drop_staging(struct dmrepl_dest *d,
			     const struct dmrepl_lineage_record *rec)
{
	int r;

	remove_names(d, rec);
	/* The anchor first: it is a snapshot of the replica. */
	r = d->kind->delete(d, rec, true);
	r = r ?: d->kind->delete(d, rec, false);
	return r ?: d->kind->forget_staging(d, rec);
}

int dmrepl_dest_foreach(struct dmrepl_dest *d, const char *what,
			dmrepl_record_fn fn, void *userdata)
{
	return d->kind->foreach(d, what, fn, userdata);
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

	dmrepl_dest_foreach(d, "replica", match_dst, &f);
	return f.found;
}

/* "thin N", or "VG/LV (thin N)" of a replica that is an LV. */
static const char *dst_desc(struct dmrepl_dest *d,
			    const struct dmrepl_lineage_record *rec, char *buf,
			    size_t size)
{
	if (rec->dst_lv[0])
		snprintf(buf, size, "%s/%s (thin %" PRIu64 ")", d->vg,
			 rec->dst_lv, rec->dst.thin_id);
	else
		snprintf(buf, size, "thin %" PRIu64, rec->dst.thin_id);
	return buf;
}

static int remove_stale(const struct dmrepl_lineage_record *rec, void *data)
{
	struct dmrepl_dest *d = data;
	char desc[300];
	int r;

	/*
	 * Killed between writing the replica record and dropping this one:
	 * the device is a finished replica. Keep it.
	 */
	if (dmrepl_dest_replica_of(d, rec->dst.thin_id, NULL)) {
		remove_names(d, rec);
		return d->kind->forget_staging(d, rec);
	}

	if (rec->resumable) {
		info(d->ctx,
		     "%s: thin %" PRIu64 " holds a resumable receive of thin %" PRIu64
		     " of %s (up to byte %" PRIu64 "); resume it, or drop it "
		     "with dmrepl receive --abort",
		     d->name, rec->dst.thin_id, rec->src.thin_id,
		     dmrepl_source_shown(rec->src_pool), rec->checkpoint);
		return 0;
	}
	r = dmrepl_dest_drop_staging(d, rec);
	if (r < 0)
		return r;
	warn(d->ctx,
	     "%s: deleted %s, an unfinished replica of thin %" PRIu64
	     " of %s left by dmrepl process %d",
	     d->name, dst_desc(d, rec, desc, sizeof(desc)), rec->src.thin_id,
	     dmrepl_source_shown(rec->src_pool), (int)rec->pid);
	return 0;
}

static int open_pool(struct dmrepl_dest *d, struct dmrepl_ctx *ctx,
		     const char *pool, const char *state_dir, bool rw)
{
	int r;

	memset(d, 0, sizeof(*d));
	d->ctx = ctx;
	snprintf(d->pool_name, sizeof(d->pool_name), "%s", pool);
	d->name = d->pool_name;
	d->lock_fd = -1;
	d->kind = &dmrepl_dest_raw;
	d->rec.base_dst_id = DMREPL_THIN_ID_ANY;
	r = dmrepl_pool_open(ctx, pool, &d->pool);
	/* to read, records in files need no pool (which may be gone) */
	if (r < 0 && rw)
		return r;
	if (d->pool && dmrepl_pool_get_lvm_name(d->pool))
		d->kind = &dmrepl_dest_lvm;
	/*
	 * An LVM pool by its LVM name: its dm name changes when its first
	 * thin LV comes (the pool moves to a "-tpool" layer).
	 */
	r = dmrepl_lineage_dir(state_dir,
			       d->kind == &dmrepl_dest_lvm
				   ? dmrepl_pool_get_lvm_name(d->pool)
				   : pool,
			       d->dir, sizeof(d->dir));
	if (r < 0 || !rw)
		return r;
	r = dmrepl_lineage_dir_create(ctx, state_dir, d->dir);
	if (r < 0)
		return r;
	return dmrepl_lineage_lock(ctx, d->dir, &d->lock_fd);
}

int dmrepl_dest_open_readonly(struct dmrepl_dest *d, struct dmrepl_ctx *ctx,
			      const char *pool, const char *state_dir)
{
	int r = open_pool(d, ctx, pool, state_dir, false);

	if (r == 0 && d->kind->open)
		r = d->kind->open(d, false);
	return r;
}

int dmrepl_dest_open(struct dmrepl_dest *d, struct dmrepl_ctx *ctx,
		     const char *pool, const char *state_dir)
{
	int r;

	r = open_pool(d, ctx, pool, state_dir, true);
	if (r == 0 && d->kind->open)
		r = d->kind->open(d, true);
	if (r < 0)
		return r;
	/* We hold the lock: every staging record is a dead process's. */
	return dmrepl_dest_foreach(d, "staging", remove_stale, d);
}

void dmrepl_dest_close(struct dmrepl_dest *d)
{
	dmrepl_dest_deactivate(d);
	if (d->kind && d->kind->close)
		d->kind->close(d);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	d->lock_fd = -1;
	d->pool = dmrepl_pool_unref(d->pool);
}

const char *dmrepl_dest_lvm_name(struct dmrepl_dest *d)
{
	return d->pool ? dmrepl_pool_get_lvm_name(d->pool) : NULL;
}

/* ---- lookups ---- */

struct newest {
	const char *src_pool;
	uint64_t src_id;
	struct dmrepl_lineage_record *ret;
	bool found;
};

static int match_newest(const struct dmrepl_lineage_record *rec, void *data)
{
	struct newest *f = data;

	if (rec->src.thin_id != f->src_id ||
	    !dmrepl_source_matches(rec->src_pool, f->src_pool))
		return 0;
	if (!f->found || rec->time > f->ret->time ||
	    (rec->time == f->ret->time && rec->dst.thin_id > f->ret->dst.thin_id))
		*f->ret = *rec;
	f->found = true;
	return 0;
}

bool dmrepl_dest_find_replica(struct dmrepl_dest *d, const char *src_pool,
			      uint64_t src_id, struct dmrepl_lineage_record *ret)
{
	struct newest f = {src_pool, src_id, ret, false};

	dmrepl_dest_foreach(d, "replica", match_newest, &f);
	return f.found;
}

int dmrepl_dest_replica_intact(struct dmrepl_dest *d,
			       const struct dmrepl_lineage_record *rec)
{
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_thin_ident now;
	int r;

	/* without its anchor, a write to it could go unseen */
	if (rec->anchor_id == DMREPL_THIN_ID_ANY)
		return 0;
	r = dmrepl_metadata_open_pool(d->ctx, d->name, &md);
	if (r == 0)
		r = dmrepl_thin_ident_read(md, rec->dst.thin_id, &now);
	dmrepl_metadata_unref(md);
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : dmrepl_thin_ident_equal(&now, &rec->dst);
}

/* "thin 12" or "the LV vg/lv (thin 12)", for messages. */
int dmrepl_dest_check_replica(struct dmrepl_dest *d, struct dmrepl_metadata *md,
			      const struct dmrepl_lineage_record *base)
{
	const struct dmrepl_thin_ident *want = &base->dst;
	struct dmrepl_thin_ident now;
	char desc[300];
	int r;

	if (base->anchor_id == DMREPL_THIN_ID_ANY) {
		err(d->ctx,
		    "%s: %s, the replica of thin %" PRIu64 " of %s, lost its "
		    "anchor (%s" "_dmrepl_anchor was removed), so a write to it "
		    "could have gone unseen and it cannot be the base; replicate "
		    "from an older base, or in full (--full)",
		    d->name, dst_desc(d, base, desc, sizeof(desc)),
		    base->src.thin_id, dmrepl_source_shown(base->src_pool), base->dst_lv);
		return -ESTALE;
	}
	r = dmrepl_thin_ident_read(md, want->thin_id, &now);
	if (r == -ENOENT) {
		err(d->ctx,
		    "%s: %s, the replica of thin %" PRIu64 " of %s, was deleted; "
		    "replicate in full (--full)",
		    d->name, dst_desc(d, base, desc, sizeof(desc)),
		    base->src.thin_id, dmrepl_source_shown(base->src_pool));
		return -ENOENT;
	}
	if (r < 0)
		return r;
	if (!dmrepl_thin_ident_equal(&now, want)) {
		char how[128];

		if (now.mapped_blocks != want->mapped_blocks)
			snprintf(how, sizeof(how),
				 "%" PRIu64 " mapped blocks, was %" PRIu64,
				 now.mapped_blocks, want->mapped_blocks);
		else
			snprintf(how, sizeof(how),
				 "its mappings changed: tree root %" PRIu64
				 ", was %" PRIu64, now.root, want->root);
		err(d->ctx,
		    "%s: %s, the replica of thin %" PRIu64 " of %s, was written "
		    "to since it was received (%s), so it cannot be the base; "
		    "replicate in full (--full)",
		    d->name, dst_desc(d, base, desc, sizeof(desc)),
		    base->src.thin_id, dmrepl_source_shown(base->src_pool), how);
		return -ESTALE;
	}
	return 0;
}

/* ---- begin: check the base's replica, create the new device ---- */

/* The destination's metadata, read once: the base's replica, a free id. */
static int read_pool(struct dmrepl_dest *d,
		     const struct dmrepl_lineage_record *base)
{
	struct dmrepl_metadata *md = NULL;
	int r;

	if (!base && !d->kind->prepare)
		return 0;
	r = dmrepl_metadata_open_pool(d->ctx, d->name, &md);
	if (r < 0)
		return r;
	if (base)
		r = dmrepl_dest_check_replica(d, md, base);
	if (r == 0 && d->kind->prepare)
		r = d->kind->prepare(d, md);
	dmrepl_metadata_unref(md); /* released before the pool is changed */
	return r;
}

int dmrepl_dest_begin(struct dmrepl_dest *d, const struct dmrepl_dest_source *src,
		      const struct dmrepl_lineage_record *base)
{
	char desc[300];
	int r;

	if (!src || !src->pool || !src->ident ||
	    strlen(src->pool) >= sizeof(d->rec.src_pool) ||
	    (src->name && strlen(src->name) >= sizeof(d->rec.src_name)))
		return -EINVAL;
	snprintf(d->rec.src_pool, sizeof(d->rec.src_pool), "%s", src->pool);
	snprintf(d->rec.src_name, sizeof(d->rec.src_name), "%s",
		 src->name ? src->name : "");
	d->rec.src = *src->ident;
	d->rec.size_bytes = src->size_bytes;
	if (d->replica_tag && d->kind != &dmrepl_dest_lvm) {
		err(d->ctx, "%s: the replica cannot be tagged '%s': the pool is not LVM's",
		    d->name, d->replica_tag);
		return -EINVAL;
	}
	r = read_pool(d, base);
	if (r < 0)
		return r;
	d->rec.base_dst_id = base ? base->dst.thin_id : DMREPL_THIN_ID_ANY;
	d->rec.pid = getpid();
	d->rec.time = (uint64_t)time(NULL);
	r = d->kind->create(d, base);
	if (r < 0)
		return r;
	info(d->ctx, "%s: writing %s (%s)", d->name,
	     dst_desc(d, &d->rec, desc, sizeof(desc)),
	     base ? "incremental" : "full copy");
	return 0;
}

int dmrepl_dest_adopt(struct dmrepl_dest *d,
		      const struct dmrepl_lineage_record *staging)
{
	char desc[300];
	int r;

	remove_names(d, staging);
	d->rec = *staging;
	d->rec.pid = getpid();
	r = d->kind->update_staging(d);
	if (r < 0)
		return r;
	d->staged = d->created = true;
	info(d->ctx, "%s: resuming %s at byte %" PRIu64, d->name,
	     dst_desc(d, &d->rec, desc, sizeof(desc)), d->rec.checkpoint);
	return 0;
}

int dmrepl_dest_checkpoint(struct dmrepl_dest *d, uint64_t stream_hash,
			   uint64_t offset)
{
	d->rec.resumable = true;
	d->rec.stream_hash = stream_hash;
	d->rec.checkpoint = offset;
	return d->kind->update_staging(d);
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
	r = d->kind->anchor(d);
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
	r = d->kind->record_replica(d);
	if (r < 0)
		return r;
	/* From here on the device is a replica: never delete it. */
	d->created = d->anchored = d->staged = false;
	return 0;
}

void dmrepl_dest_undo(struct dmrepl_dest *d, bool keep)
{
	char desc[300];
	int r;

	dmrepl_dest_deactivate(d);
	if (d->anchored && d->kind->delete(d, &d->rec, true) < 0)
		return; /* keep the staging record for the next run */
	d->anchored = false;
	dst_desc(d, &d->rec, desc, sizeof(desc));
	if (keep && d->created && d->rec.resumable) {
		info(d->ctx, "%s: kept %s with everything below byte %" PRIu64
			     " to resume from",
		     d->name, desc, d->rec.checkpoint);
		return;
	}
	if (d->created) {
		r = d->kind->delete(d, &d->rec, false);
		if (r < 0) {
			err(d->ctx,
			    "%s: the unfinished %s could not be deleted; the "
			    "next replication into the pool will delete it",
			    d->name, desc);
			return; /* keep the staging record for that */
		}
		info(d->ctx, "%s: deleted the unfinished %s", d->name, desc);
		d->created = false;
	}
	if (d->staged)
		d->kind->forget_staging(d, &d->rec);
	d->staged = false;
}
