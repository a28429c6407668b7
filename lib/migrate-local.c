/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A live migration's final round into a thin pool of another VG on this
 * host (migrate.h): the volume-to-be is an LVM snapshot of the last
 * round's replica, written through a dm device of its thin id that this
 * job maps, committed by one lvchange. Before the suspend it takes what
 * changed up to a last snapshot (pre_pass()); suspended, only what
 * changed since.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dm.h"
#include "lvm.h"
#include "metadata.h"
#include "migrate.h"
#include "replication.h"

/*
 * All that the suspended time need not pay for is made in prepare(): the
 * devices, the copy (its I/O engine and buffers); and what it need not
 * wait for is undone in finish() (the devices go after the resume; the
 * data is on disk before the commit).
 */
struct local {
	struct dmrepl_pool *pool;	/* the destination's */
	struct dmrepl_thin_dev *dev;	/* the volume-to-be, read-write */
	struct dmrepl_pool *src_pool;
	struct dmrepl_thin_dev *src;	/* the volume's thin, read-only */
	struct dmrepl_copy *copy;
	char pre_lv[300];		/* the snapshot just before the suspend */
	uint64_t pre_id, pre_bytes;
	bool made;			/* lvcreate made it */
};

static int check(struct migrate_run *r)
{
	struct dmrepl_lvm_lv *lvs = NULL;
	size_t n = 0;
	int e;

	e = dmrepl_lvm_list(r->ctx, r->dst_vg, &lvs, &n);
	for (size_t i = 0; e == 0 && i < n; i++)
		if (!strcmp(lvs[i].lv, r->src_lv)) {
			err(r->ctx, "migrate %s: %s/%s exists already", r->src, r->dst_vg,
			    r->src_lv);
			e = -EEXIST;
		}
	free(lvs);
	return e;
}

/*
 * The last changes but the newest, while the volume still runs: an LVM
 * snapshot of it (pre), and the delta from the last round's snapshot to
 * pre copied into the volume-to-be. The suspended time then pays only for
 * what changed since pre, a walk of the few subtrees that pre and the
 * volume do not share: not for the round's whole delta, whose walk grows
 * with the volume (one metadata leaf per changed block, scattered).
 */
static int pre_pass(struct migrate_run *r, struct local *l)
{
	struct dmrepl_lvm_lv pre;
	struct dmrepl_thin_dev *src = NULL;
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_delta *delta = NULL;
	struct dmrepl_copy *copy = NULL;
	struct dmrepl_copy_stats st;
	struct dmrepl_extent x;
	char name[160], tag[300];
	int e;

	snprintf(name, sizeof(name), "%.90s-migrate-%lx-pre", r->src_lv, (long)r->started);
	snprintf(tag, sizeof(tag), TAG_MIGRATE "%s", r->src_lv);
	e = dmrepl_lvm_snapshot(r->ctx, r->src, name, tag, &pre);
	if (e < 0)
		return e;
	snprintf(l->pre_lv, sizeof(l->pre_lv), "%s/%s", pre.vg, pre.lv);
	l->pre_id = pre.thin_id;
	snprintf(name, sizeof(name), "dmrepl-%d-pre-%" PRIu64, (int)getpid(), pre.thin_id);
	e = dmrepl_thin_activate(l->src_pool, pre.thin_id, r->origin.size_bytes, true, name, &src);
	if (e == 0)
		e = dmrepl_metadata_open_pool(r->ctx, r->src_pool_dm, &md);
	if (e == 0)
		e = dmrepl_delta_new(md, r->snap_ids[r->nr - 1], pre.thin_id,
				     DMREPL_DELTA_SKIP_SAME, &delta);
	if (e == 0)
		e = dmrepl_copy_new(r->ctx, dmrepl_thin_dev_get_path(src),
				    dmrepl_thin_dev_get_path(l->dev), &copy);
	if (e == 0)
		e = dmrepl_copy_set_flags(copy, DMREPL_COPY_DETECT_ZEROES);
	while (e == 0 && (e = dmrepl_delta_next_extent(delta, &x)) == 0)
		e = dmrepl_copy_add(copy, &x);
	if (e == 1)
		e = dmrepl_copy_finish(copy);
	if (e == 0) {
		dmrepl_copy_get_stats(copy, &st);
		l->pre_bytes = st.copied_bytes;
	}
	dmrepl_copy_unref(copy);
	dmrepl_delta_unref(delta);
	dmrepl_metadata_unref(md);
	dmrepl_thin_deactivate(src);
	return e;
}

static int prepare(struct migrate_run *r)
{
	struct local *l = calloc(1, sizeof(*l));
	struct dmrepl_lvm_lv fin;
	char pool_dm[128] = "", name[128];
	int e;

	if (!l)
		return -ENOMEM;
	r->tdata = l;
	e = dmrepl_migrate_lvm(r, "lvcreate -s of the volume-to-be",
		(const char *const[]){"lvcreate", "-qq", "-y", "-s", "-an", "-kn", "-n",
				      r->src_lv, "--addtag", TAG_MIGRATING, "--",
				      r->replicas[r->nr - 1], NULL});
	if (e < 0)
		return e;
	l->made = true;
	e = dmrepl_lvm_lookup(r->ctx, r->final_lv, &fin);
	if (e == 0)
		e = dmrepl_migrate_pool_dm(r, r->dst_vg, r->dst_pool, pool_dm, sizeof(pool_dm));
	snprintf(r->dst_pool_dm, sizeof(r->dst_pool_dm), "%s", pool_dm);
	if (e == 0)
		e = dmrepl_pool_open(r->ctx, pool_dm, &l->pool);
	snprintf(name, sizeof(name), "dmrepl-%d-dst-%" PRIu64, (int)getpid(), fin.thin_id);
	if (e == 0)
		e = dmrepl_thin_activate(l->pool, fin.thin_id, r->origin.size_bytes, false, name,
					 &l->dev);
	if (e == 0)
		e = dmrepl_pool_open(r->ctx, r->src_pool_dm, &l->src_pool);
	if (e == 0)
		e = pre_pass(r, l);
	/*
	 * A second, read-only device of the volume's thin (the volume's own
	 * will be suspended): read only once the volume is quiet.
	 */
	snprintf(name, sizeof(name), "dmrepl-%d-src-%" PRIu64, (int)getpid(), r->origin.thin_id);
	if (e == 0)
		e = dmrepl_thin_activate(l->src_pool, r->origin.thin_id, r->origin.size_bytes, true,
					 name, &l->src);
	if (e == 0)
		e = dmrepl_copy_new(r->ctx, dmrepl_thin_dev_get_path(l->src),
				    dmrepl_thin_dev_get_path(l->dev), &l->copy);
	if (e == 0)
		e = dmrepl_copy_set_flags(l->copy, DMREPL_COPY_DETECT_ZEROES);
	return e;
}

static int ship(struct migrate_run *r, uint64_t *ret_bytes)
{
	struct local *l = r->tdata;
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_delta *delta = NULL;
	struct dmrepl_copy_stats st;
	struct dmrepl_extent e;
	int rc;

	/* the held snapshot: the pool commits first, the volume is quiet */
	rc = dmrepl_metadata_open_pool(r->ctx, r->src_pool_dm, &md);
	if (rc == 0)
		rc = dmrepl_delta_new(md, l->pre_id, r->origin.thin_id, DMREPL_DELTA_SKIP_SAME,
				      &delta);
	while (rc == 0 && (rc = dmrepl_delta_next_extent(delta, &e)) == 0)
		rc = dmrepl_copy_add(l->copy, &e);
	if (rc == 1)
		rc = dmrepl_copy_finish(l->copy);	/* waits, flushes */
	if (rc == 0) {
		dmrepl_copy_get_stats(l->copy, &st);
		*ret_bytes = l->pre_bytes + st.copied_bytes;
		info(r->ctx, "migrate %s: the last changes: %" PRIu64 " bytes while the volume "
			     "ran, %" PRIu64 " suspended", r->src, l->pre_bytes, st.copied_bytes);
	}
	dmrepl_delta_unref(delta);
	dmrepl_metadata_unref(md);
	return rc;
}

static int commit(struct migrate_run *r)
{
	char tag[300];

	snprintf(tag, sizeof(tag), TAG_MIGRATED "%s", r->src);
	return dmrepl_migrate_lvm(r, "lvchange of the volume's tag",
		(const char *const[]){"lvchange", "-qq", "--deltag", TAG_MIGRATING,
				      "--addtag", tag, "--", r->final_lv, NULL});
}

static int finish(struct migrate_run *r, bool committed, bool switched)
{
	struct local *l = r->tdata;
	char tag[300];
	int e = 0;

	if (!l)
		return 0;
	l->copy = dmrepl_copy_unref(l->copy);
	dmrepl_thin_deactivate(l->src);
	dmrepl_pool_unref(l->src_pool);
	dmrepl_thin_deactivate(l->dev);
	dmrepl_pool_unref(l->pool);
	if (l->pre_lv[0])
		dmrepl_migrate_lvm(r, "lvremove of the last snapshot",
			(const char *const[]){"lvremove", "-qq", "-y", "--", l->pre_lv, NULL});
	snprintf(tag, sizeof(tag), TAG_MIGRATED "%s", r->src);
	if (switched)
		;
	else if (committed)
		e = dmrepl_migrate_lvm(r, "lvchange of the copy's tag",
			(const char *const[]){"lvchange", "-qq", "--deltag", tag, "--addtag",
					      TAG_NOT_SWITCHED, "--", r->final_lv, NULL});
	else if (l->made)
		e = dmrepl_migrate_lvm(r, "lvremove of the volume-to-be",
			(const char *const[]){"lvremove", "-qq", "-y", "--", r->final_lv, NULL});
	free(l);
	r->tdata = NULL;
	return e;
}

const struct migrate_target dmrepl_migrate_local = {
	.name = "local",
	.check = check,
	.prepare = prepare,
	.ship = ship,
	.commit = commit,
	.finish = finish,
};
