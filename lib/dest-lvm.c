/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An LVM destination (struct dest_kind, dest.h): on a pool that LVM
 * manages, only LVM creates or deletes thin devices, so every replica is
 * an LV that lvcreate made, and its lineage record is a tag on it, which
 * travels with the VG (vgcfgbackup, vgexport).
 *
 *   NAME                   a replica: tag "dmrepl.replica:RECORD"
 *   NAME_dmrepl_staging    a replication in progress into it: tag
 *                          "dmrepl.staging:RECORD"; renamed NAME when
 *                          it is committed
 *   NAME_dmrepl_anchor     the replica's anchor (a thin snapshot of it,
 *                          see replication.h): tag "dmrepl.anchor"
 *
 * All three are created inactive with activation skip set, as LVM's own
 * thin snapshots are; dmrepl writes the staging LV through a temporary
 * dm device of its own, by the thin id LVM gave it. NAME is the source
 * LV's name ("VG/LV" of an LVM source), else POOL_ID of the source pool;
 * when an LV of that name exists, NAME.2, NAME.3, ... Cleanup deletes
 * only LVs that carry dmrepl's staging or anchor tag, never a device by
 * bare id.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "dm.h"
#include "lvm.h"
#include "replication.h"
#include "dest.h"

#define TAG_REPLICA "dmrepl.replica:"
#define TAG_STAGING "dmrepl.staging:"
#define TAG_ANCHOR "dmrepl.anchor"
#define SUFFIX_STAGING "_dmrepl_staging"
#define SUFFIX_ANCHOR "_dmrepl_anchor"
#define NAME_BASE_MAX 96	/* room for ".999" and the longest suffix */

static int relist(struct dmrepl_dest *d)
{
	free(d->lvs);
	d->lvs = NULL;
	d->nr_lvs = 0;
	d->lvs_stale = false;
	return dmrepl_lvm_list(d->ctx, d->vg, &d->lvs, &d->nr_lvs);
}

/* The listing, listed again if the VG changed since (each lvs costs). */
static int fresh(struct dmrepl_dest *d)
{
	return d->lvs_stale ? relist(d) : 0;
}

static const struct dmrepl_lvm_lv *find_lv(struct dmrepl_dest *d,
					   const char *name)
{
	for (size_t i = 0; i < d->nr_lvs; i++)
		if (strcmp(d->lvs[i].lv, name) == 0)
			return &d->lvs[i];
	return NULL;
}

/* A thin LV of our pool. */
static bool in_pool(struct dmrepl_dest *d, const struct dmrepl_lvm_lv *lv)
{
	return strcmp(lv->pool_lv, d->pool_lv) == 0 &&
	       lv->thin_id != DMREPL_THIN_ID_ANY;
}

static bool has_prefix_tag(const struct dmrepl_lvm_lv *lv, const char *prefix)
{
	char buf[8];
	int r = dmrepl_lvm_tag_value(lv, prefix, buf, sizeof(buf));

	return r == 0 || r == -ENAMETOOLONG;
}

/* Run lvm; on failure, say what it was for and what lvm said. */
static int lvm_do(struct dmrepl_dest *d, const char *what,
		  const char *const *args)
{
	char why[512] = "";
	int r = dmrepl_lvm_run(d->ctx, args, NULL, why, sizeof(why));

	if (r == -EIO)
		err(d->ctx, "%s/%s: %s failed: %s", d->vg, d->pool_lv, what, why);
	return r;
}

/* Refused while a device other than LVM's maps the thin (dm.h). */
static int lvremove(struct dmrepl_dest *d, const char *name)
{
	char vg_lv[300];

	for (size_t i = 0; i < d->nr_lvs; i++)
		if (!strcmp(d->lvs[i].lv, name)) {
			int r = dmrepl_lvm_thin_removable(d->ctx, &d->lvs[i]);

			if (r < 0)
				return r;
			break;
		}
	snprintf(vg_lv, sizeof(vg_lv), "%s/%s", d->vg, name);
	return lvm_do(d, "lvremove",
		      (const char *const[]){"lvremove", "-qq", "-y", "--", vg_lv,
					    NULL});
}

static int lvrename(struct dmrepl_dest *d, const char *from, const char *to)
{
	return lvm_do(d, "lvrename",
		      (const char *const[]){"lvrename", "-qq", "--", d->vg, from,
					    to, NULL});
}

/* The anchor of LV @name: a snapshot of it with dmrepl's anchor tag. */
static const struct dmrepl_lvm_lv *anchor_of(struct dmrepl_dest *d,
					     const char *name)
{
	for (size_t i = 0; i < d->nr_lvs; i++)
		if (in_pool(d, &d->lvs[i]) &&
		    strcmp(d->lvs[i].origin, name) == 0 &&
		    dmrepl_lvm_has_tag(&d->lvs[i], TAG_ANCHOR))
			return &d->lvs[i];
	return NULL;
}

/* @lv's record of @prefix; -ENOENT: none; -EINVAL: malformed. */
static int lv_record(struct dmrepl_dest *d, const struct dmrepl_lvm_lv *lv,
		     const char *prefix, struct dmrepl_lineage_record *ret)
{
	const struct dmrepl_lvm_lv *a;
	char text[1024];
	int r;

	r = dmrepl_lvm_tag_value(lv, prefix, text, sizeof(text));
	if (r < 0)
		return r == -ENAMETOOLONG ? -EINVAL : r;
	r = dmrepl_lineage_tag_parse(text, strlen(text), ret);
	if (r < 0)
		return r;
	/* the LV is the truth of where the record is */
	ret->dst.thin_id = lv->thin_id;
	snprintf(ret->dst_lv, sizeof(ret->dst_lv), "%s", lv->lv);
	a = anchor_of(d, lv->lv);
	snprintf(ret->anchor_lv, sizeof(ret->anchor_lv), "%s", a ? a->lv : "");
	if (a)
		ret->anchor_id = a->thin_id;
	return 0;
}

static int lvm_foreach(struct dmrepl_dest *d, const char *what,
		       dmrepl_record_fn fn, void *userdata)
{
	const char *prefix = strcmp(what, "replica") == 0 ? TAG_REPLICA
							   : TAG_STAGING;
	struct dmrepl_lvm_lv *lvs;
	size_t n;
	int r = fresh(d);

	if (r < 0)
		return r;
	n = d->nr_lvs;
	/* fn may change the VG (and relist): walk a copy */
	lvs = malloc((n ? n : 1) * sizeof(*lvs));
	if (!lvs)
		return -ENOMEM;
	memcpy(lvs, d->lvs, n * sizeof(*lvs));
	for (size_t i = 0; i < n && r == 0; i++) {
		struct dmrepl_lineage_record rec;

		if (!in_pool(d, &lvs[i]) || !has_prefix_tag(&lvs[i], prefix))
			continue;
		if (lv_record(d, &lvs[i], prefix, &rec) < 0) {
			warn(d->ctx, "%s/%s: ignoring its malformed dmrepl tag",
			     d->vg, lvs[i].lv);
			continue;
		}
		r = fn(&rec, userdata);
	}
	free(lvs);
	return r;
}

/* ---- names ---- */

static bool name_taken(struct dmrepl_dest *d, const char *name)
{
	char helper[160];

	if (find_lv(d, name))
		return true;
	snprintf(helper, sizeof(helper), "%s" SUFFIX_STAGING, name);
	if (find_lv(d, helper))
		return true;
	snprintf(helper, sizeof(helper), "%s" SUFFIX_ANCHOR, name);
	return find_lv(d, helper) != NULL;
}

/* Keep what LVM allows in a name; anything else becomes '_'. */
static void sanitize(const char *s, size_t len, char *buf, size_t size)
{
	size_t n = 0;

	for (size_t i = 0; i < len && s[i] && n + 1 < size; i++) {
		char c = s[i];

		buf[n++] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
				   (c >= '0' && c <= '9') || strchr("+_.-", c)
			       ? c
			       : '_';
	}
	buf[n] = '\0';
	if (buf[0] == '-' || buf[0] == '.')
		buf[0] = '_';
}

/* The replica's name: NAME, or NAME.2, NAME.3, ... when it is taken. */
static int choose_name(struct dmrepl_dest *d, char *buf, size_t size)
{
	const struct dmrepl_lineage_record *rec = &d->rec;
	char base[NAME_BASE_MAX + 1], tmp[160];
	const char *s;

	if (rec->src_name[0]) {
		s = strrchr(rec->src_name, '/');
		s = s ? s + 1 : rec->src_name;
		sanitize(s, strlen(s), base, sizeof(base));
	} else {
		s = strrchr(rec->src_pool, ':');
		s = s ? s + 1 : rec->src_pool;
		snprintf(tmp, sizeof(tmp), "%s_%" PRIu64, s, rec->src.thin_id);
		sanitize(tmp, strlen(tmp), base, sizeof(base));
	}
	if (!dmrepl_lvm_name_valid(base))
		snprintf(base, sizeof(base), "replica_%" PRIu64, rec->src.thin_id);
	for (unsigned int k = 1; k < 1000; k++) {
		if (k == 1)
			snprintf(buf, size, "%s", base);
		else
			snprintf(buf, size, "%s.%u", base, k);
		if (dmrepl_lvm_name_valid(buf) && !name_taken(d, buf))
			return 0;
	}
	err(d->ctx, "%s: no free LV name for a replica of %s", d->vg,
	    rec->src_name[0] ? rec->src_name : rec->src_pool);
	return -EEXIST;
}

/* The name a staging LV will have as a replica: without the suffix. */
static void final_name(struct dmrepl_dest *d)
{
	size_t n = strlen(d->rec.dst_lv), k = strlen(SUFFIX_STAGING);

	if (d->final_lv[0])
		return;
	if (n > k && strcmp(d->rec.dst_lv + n - k, SUFFIX_STAGING) == 0)
		snprintf(d->final_lv, sizeof(d->final_lv), "%.*s", (int)(n - k),
			 d->rec.dst_lv);
	else
		snprintf(d->final_lv, sizeof(d->final_lv), "%s", d->rec.dst_lv);
}

/* ---- open: the pool's VG; what a killed run left ---- */

/*
 * A replica still named as its staging: killed before its rename.
 * Return: 1 renamed, 0 nothing to do, or an error.
 */
static int finish_rename(struct dmrepl_dest *d, const struct dmrepl_lvm_lv *lv)
{
	char name[128];
	size_t n = strlen(lv->lv), k = strlen(SUFFIX_STAGING);
	int r;

	if (n <= k || strcmp(lv->lv + n - k, SUFFIX_STAGING) != 0)
		return 0;
	snprintf(name, sizeof(name), "%.*s", (int)(n - k), lv->lv);
	if (find_lv(d, name))
		return 0;	/* keep the name it has; it works as it is */
	r = lvrename(d, lv->lv, name);
	if (r < 0)
		return r;
	notice(d->ctx, "%s: renamed the replica %s to %s (its replication "
		       "was stopped as it finished)",
	       d->vg, lv->lv, name);
	return 1;
}

/*
 * An anchor whose replica is gone (lvremove'd by hand): it holds the
 * replica's blocks and nothing else. Anchors of staging LVs are the
 * staging's, dropped with it.
 */
static bool orphan_anchor(struct dmrepl_dest *d, const struct dmrepl_lvm_lv *lv)
{
	const struct dmrepl_lvm_lv *o;

	if (!in_pool(d, lv) || !dmrepl_lvm_has_tag(lv, TAG_ANCHOR))
		return false;
	o = lv->origin[0] ? find_lv(d, lv->origin) : NULL;
	return !o || (!has_prefix_tag(o, TAG_REPLICA) &&
		      !has_prefix_tag(o, TAG_STAGING));
}

static int sweep(struct dmrepl_dest *d)
{
	bool changed = false;
	int r = 0;

	for (size_t i = 0; i < d->nr_lvs && r == 0; i++) {
		const struct dmrepl_lvm_lv *lv = &d->lvs[i];

		if (in_pool(d, lv) && has_prefix_tag(lv, TAG_REPLICA)) {
			r = finish_rename(d, lv);
			changed |= r > 0;
			r = r < 0 ? r : 0;
		} else if (orphan_anchor(d, lv)) {
			r = lvremove(d, lv->lv);
			if (r == 0)
				notice(d->ctx, "%s: deleted %s, the anchor of a "
					       "replica that was removed",
				       d->vg, lv->lv);
			changed = true;
		}
	}
	d->lvs_stale = changed;
	return r;
}

static int lvm_open(struct dmrepl_dest *d, bool rw)
{
	const char *name = dmrepl_pool_get_lvm_name(d->pool);
	const char *slash = strchr(name, '/');
	int r;

	if (!slash || (size_t)(slash - name) >= sizeof(d->vg) ||
	    strlen(slash + 1) >= sizeof(d->pool_lv)) {
		err(d->ctx, "%s: LVM's, but its name %s is not VG/POOL", d->name,
		    name);
		return -EINVAL;
	}
	snprintf(d->vg, sizeof(d->vg), "%.*s", (int)(slash - name), name);
	snprintf(d->pool_lv, sizeof(d->pool_lv), "%s", slash + 1);
	r = relist(d);
	if (r < 0 || !rw)
		return r;
	return sweep(d);
}

static void lvm_close(struct dmrepl_dest *d)
{
	free(d->lvs);
	d->lvs = NULL;
	d->nr_lvs = 0;
}

/*
 * An unused LVM pool is the pool LV's own dm device; its first thin LV
 * moves the pool to a "-tpool" layer, and the LV's device becomes a
 * linear mapping of it. Follow the pool there.
 */
static int follow_pool(struct dmrepl_dest *d)
{
	const struct dmrepl_lvm_lv *lv = find_lv(d, d->pool_lv);
	struct dmrepl_pool *pool = NULL;
	char name[256];
	int r;

	if (!lv)
		return -ENOENT;
	r = dmrepl_lvm_pool_dm_name(d->ctx, lv, name, sizeof(name));
	if (r < 0 || strcmp(name, d->pool_name) == 0)
		return r;
	if (strlen(name) >= sizeof(d->pool_name))
		return -ENAMETOOLONG;
	r = dmrepl_pool_open(d->ctx, name, &pool);
	if (r < 0)
		return r;
	dbg(d->ctx, "%s/%s: the pool moved from %s to %s", d->vg, d->pool_lv,
	    d->pool_name, name);
	dmrepl_pool_unref(d->pool);
	d->pool = pool;
	snprintf(d->pool_name, sizeof(d->pool_name), "%s", name);
	return 0;
}

/* ---- begin: the staging LV ---- */

static int staging_tag(struct dmrepl_dest *d, char *buf, size_t size)
{
	int r = dmrepl_lineage_tag_format(TAG_STAGING, &d->rec, buf, size);

	return r < 0 ? r : 0;
}

/* LVM sizes LVs in extents: grow or shrink @lv to hold exactly the volume. */
static int fit_size(struct dmrepl_dest *d, const struct dmrepl_lvm_lv *lv)
{
	uint64_t want = d->rec.size_bytes, ext = lv->extent_bytes;
	char size[32], vg_lv[300];

	if (lv->size_bytes >= want && (!ext || lv->size_bytes - want < ext))
		return 0;
	snprintf(size, sizeof(size), "%" PRIu64 "b", want);
	snprintf(vg_lv, sizeof(vg_lv), "%s/%s", d->vg, lv->lv);
	return lvm_do(d, "lvresize",
		      (const char *const[]){"lvresize", "-qq", "-y", "-f", "-L",
					    size, "--", vg_lv, NULL});
}

static int lvm_create(struct dmrepl_dest *d,
		      const struct dmrepl_lineage_record *base)
{
	char staging[128], size[32], pool[300], origin[300];
	const struct dmrepl_lvm_lv *lv;
	int r;

	r = fresh(d);
	r = r ?: choose_name(d, d->final_lv, sizeof(d->final_lv));
	r = r ?: staging_tag(d, d->tag, sizeof(d->tag));
	if (r < 0)
		return r;
	if (snprintf(staging, sizeof(staging), "%.*s" SUFFIX_STAGING,
		     NAME_BASE_MAX + 4, d->final_lv) >= (int)sizeof(staging))
		return -ENAMETOOLONG;
	if (!base) {
		snprintf(size, sizeof(size), "%" PRIu64 "b", d->rec.size_bytes);
		snprintf(pool, sizeof(pool), "%s/%s", d->vg, d->pool_lv);
		r = lvm_do(d, "lvcreate of the replica",
			   (const char *const[]){"lvcreate", "-qq", "-y", "-an",
						 "-ky", "-V", size, "-T", pool,
						 "-n", staging, "--addtag",
						 d->tag, NULL});
	} else {
		snprintf(origin, sizeof(origin), "%s/%s", d->vg, base->dst_lv);
		r = lvm_do(d, "lvcreate -s of the base's replica",
			   (const char *const[]){"lvcreate", "-qq", "-y", "-s",
						 "-an", "-ky", "-n", staging,
						 "--addtag", d->tag, "--",
						 origin, NULL});
	}
	if (r < 0)
		return r;
	/* The LV and its record came in one LVM transaction. */
	d->staged = d->created = true;
	snprintf(d->rec.dst_lv, sizeof(d->rec.dst_lv), "%s", staging);
	r = relist(d);
	if (r < 0)
		return r;
	lv = find_lv(d, staging);
	if (!lv || !in_pool(d, lv)) {
		err(d->ctx, "%s: lvcreate made no thin LV %s", d->vg, staging);
		return -EIO;
	}
	d->rec.dst.thin_id = lv->thin_id;
	d->rec.anchor_id = DMREPL_THIN_ID_ANY;
	r = fit_size(d, lv);
	return r ?: follow_pool(d);
}

static int lvm_update_staging(struct dmrepl_dest *d)
{
	char old[1024], new[1024], vg_lv[300];
	const struct dmrepl_lvm_lv *lv;
	int r;

	r = staging_tag(d, new, sizeof(new));
	if (r < 0)
		return r;
	if (d->tag[0]) {
		snprintf(old, sizeof(old), "%s", d->tag);
	} else { /* adopted: the tag the LV carries */
		char v[1024 - sizeof(TAG_STAGING)];

		r = fresh(d);
		if (r < 0)
			return r;
		lv = find_lv(d, d->rec.dst_lv);
		if (!lv || dmrepl_lvm_tag_value(lv, TAG_STAGING, v, sizeof(v)) < 0) {
			err(d->ctx, "%s/%s: its staging tag is gone", d->vg,
			    d->rec.dst_lv);
			return -ENOENT;
		}
		snprintf(old, sizeof(old), TAG_STAGING "%s", v);
	}
	if (strcmp(old, new) == 0)
		return 0;
	snprintf(vg_lv, sizeof(vg_lv), "%s/%s", d->vg, d->rec.dst_lv);
	r = lvm_do(d, "lvchange of the staging's tag",
		   (const char *const[]){"lvchange", "-qq", "--deltag", old,
					 "--addtag", new, "--", vg_lv, NULL});
	if (r == 0)
		snprintf(d->tag, sizeof(d->tag), "%s", new);
	return r;
}

/* ---- commit ---- */

static int lvm_anchor(struct dmrepl_dest *d)
{
	char anchor[128], origin[300];
	int r;

	final_name(d);
	if (snprintf(anchor, sizeof(anchor), "%.*s" SUFFIX_ANCHOR,
		     NAME_BASE_MAX + 4, d->final_lv) >= (int)sizeof(anchor))
		return -ENAMETOOLONG;
	snprintf(origin, sizeof(origin), "%s/%s", d->vg, d->rec.dst_lv);
	r = lvm_do(d, "lvcreate -s of the anchor",
		   (const char *const[]){"lvcreate", "-qq", "-y", "-s", "-an",
					 "-ky", "-n", anchor, "--addtag",
					 TAG_ANCHOR, "--", origin, NULL});
	if (r == 0)
		snprintf(d->rec.anchor_lv, sizeof(d->rec.anchor_lv), "%s", anchor);
	return r;
}

static int lvm_record_replica(struct dmrepl_dest *d)
{
	char replica[1024], vg_lv[300];
	int r;

	if (!d->tag[0]) {
		r = lvm_update_staging(d);	/* learn the tag it carries */
		if (r < 0)
			return r;
	}
	r = dmrepl_lineage_tag_format(TAG_REPLICA, &d->rec, replica,
				      sizeof(replica));
	if (r < 0)
		return r;
	snprintf(vg_lv, sizeof(vg_lv), "%s/%s", d->vg, d->rec.dst_lv);
	/*
	 * The commit: one LVM transaction turns the staging into a replica
	 * (and gives it the caller's tag, a sync job's, in the same one).
	 */
	r = lvm_do(d, "lvchange of the replica's tag",
		   d->replica_tag
			? (const char *const[]){"lvchange", "-qq", "--deltag", d->tag,
						"--addtag", replica, "--addtag",
						d->replica_tag, "--", vg_lv, NULL}
			: (const char *const[]){"lvchange", "-qq", "--deltag", d->tag,
						"--addtag", replica, "--", vg_lv, NULL});
	if (r < 0)
		return r;
	d->tag[0] = '\0';
	final_name(d);
	r = lvrename(d, d->rec.dst_lv, d->final_lv);
	if (r < 0) {
		/* taken since begin: another free name */
		relist(d);
		if (choose_name(d, d->final_lv, sizeof(d->final_lv)) < 0 ||
		    lvrename(d, d->rec.dst_lv, d->final_lv) < 0) {
			warn(d->ctx, "%s/%s: the replica keeps its staging name",
			     d->vg, d->rec.dst_lv);
			d->final_lv[0] = '\0';
			d->lvs_stale = true;
			return 0;
		}
	}
	snprintf(d->rec.dst_lv, sizeof(d->rec.dst_lv), "%s", d->final_lv);
	d->final_lv[0] = '\0';
	/* the next stream of a chain looks its base up in the VG again */
	d->lvs_stale = true;
	return 0;
}

/* ---- undo, stale work ---- */

static int lvm_delete(struct dmrepl_dest *d,
		      const struct dmrepl_lineage_record *rec, bool anchor)
{
	const struct dmrepl_lvm_lv *lv;
	char name[128];
	int r;

	r = relist(d);
	if (r < 0)
		return r;
	if (anchor) {
		lv = rec->dst_lv[0] ? anchor_of(d, rec->dst_lv) : NULL;
		if (!lv)
			return 0;
	} else {
		lv = rec->dst_lv[0] ? find_lv(d, rec->dst_lv) : NULL;
		if (!lv)
			return 0;
		/* never an LV that is not an unfinished replica of ours */
		if (!in_pool(d, lv) || !has_prefix_tag(lv, TAG_STAGING) ||
		    lv->thin_id != rec->dst.thin_id) {
			err(d->ctx, "%s/%s is not dmrepl's unfinished replica "
				    "(thin %" PRIu64 "); not deleting it",
			    d->vg, lv->lv, rec->dst.thin_id);
			return -EPERM;
		}
	}
	snprintf(name, sizeof(name), "%s", lv->lv);
	r = lvremove(d, name);
	d->lvs_stale = true;
	return r;
}

static int lvm_forget_staging(struct dmrepl_dest *d,
			      const struct dmrepl_lineage_record *rec)
{
	/* The record is the LV's tag: gone with the LV, or retagged. */
	(void)d;
	(void)rec;
	return 0;
}

const struct dest_kind dmrepl_dest_lvm = {
    .name = "lvm",
    .open = lvm_open,
    .close = lvm_close,
    .foreach = lvm_foreach,
    .create = lvm_create,
    .update_staging = lvm_update_staging,
    .anchor = lvm_anchor,
    .record_replica = lvm_record_replica,
    .delete = lvm_delete,
    .forget_staging = lvm_forget_staging,
};
