// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * A sync job's LVs on each side: which are the job's (its tag), which is
 * newest, whether anything changed since the last run, and the retention
 * that keeps the N newest and the newest common base. See sync.h.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dm.h"
#include "dmrepl.h"
#include "sync.h"
#include "transfer.h"

void sync_split_vg_lv(const char *vg_lv, char *vg, size_t vg_size, const char **lv)
{
	const char *slash = strchr(vg_lv, '/');

	snprintf(vg, vg_size, "%.*s", (int)(slash - vg_lv), vg_lv);
	*lv = slash + 1;
}

const struct dmrepl_lvm_lv *sync_lv_at(const struct lv_list *l, size_t i)
{
	return &l->lvs[l->sel[i]];
}

static int by_lv_name(const void *a, const void *b, void *lvs)
{
	const struct dmrepl_lvm_lv *v = lvs;

	return strcmp(v[*(const size_t *)a].lv, v[*(const size_t *)b].lv);
}

/*
 * The LVs of @vg tagged as job @tag's; with @origin, only the thin
 * snapshots of that LV (a source's), else only replicas (a destination's).
 */
int sync_list_job_lvs(struct dmrepl_ctx *ctx, const char *vg, const char *tag,
			const char *origin, struct lv_list *l)
{
	int r;

	memset(l, 0, sizeof(*l));
	/* a listing this run made, when nothing changed since: no second lvs */
	r = dmrepl_lvm_list_kept(ctx, vg, &l->lvs, &l->n);
	if (r < 0)
		return r;
	l->sel = calloc(l->n ? l->n : 1, sizeof(*l->sel));
	if (!l->sel)
		return -ENOMEM;
	for (size_t i = 0; i < l->n; i++) {
		const struct dmrepl_lvm_lv *lv = &l->lvs[i];
		char rec[8];

		if (!dmrepl_lvm_has_tag(lv, tag) || strcmp(lv->segtype, "thin") != 0)
			continue;
		if (origin && strcmp(lv->origin, origin) != 0)
			continue;
		/* a replica carries its lineage; a staging LV is not one */
		if (!origin && dmrepl_lvm_tag_value(lv, "dmrepl.replica:", rec, sizeof(rec)) == -ENOENT)
			continue;
		l->sel[l->nr_sel++] = i;
	}
	qsort_r(l->sel, l->nr_sel, sizeof(*l->sel), by_lv_name, l->lvs);
	return 0;
}

void sync_lv_list_free(struct lv_list *l)
{
	free(l->lvs);
	free(l->sel);
	memset(l, 0, sizeof(*l));
}

/* "NAME" of a replica "NAME" or "NAME.2" (a collision's): its source's. */
static size_t base_name_len(const char *lv)
{
	const char *dot = strrchr(lv, '.');

	if (dot && dot[1] && strspn(dot + 1, "0123456789") == strlen(dot + 1))
		return (size_t)(dot - lv);
	return strlen(lv);
}

static bool has_replica(const struct lv_list *dst, const char *src_lv)
{
	for (size_t i = 0; i < dst->nr_sel; i++) {
		const char *name = sync_lv_at(dst, i)->lv;

		if (base_name_len(name) == strlen(src_lv) &&
		    strncmp(name, src_lv, strlen(src_lv)) == 0)
			return true;
	}
	return false;
}

static bool has_source(const struct lv_list *src, const char *dst_lv)
{
	size_t len = base_name_len(dst_lv);

	for (size_t i = 0; i < src->nr_sel; i++)
		if (strlen(sync_lv_at(src, i)->lv) == len && !strncmp(sync_lv_at(src, i)->lv, dst_lv, len))
			return true;
	return false;
}

static int add_pruned(char ***list, size_t *n, const char *vg, const char *lv)
{
	char **l = realloc(*list, (*n + 1) * sizeof(**list));

	if (!l)
		return -ENOMEM;
	*list = l;
	if (asprintf(&l[*n], "%s/%s", vg, lv) < 0)
		return -ENOMEM;
	(*n)++;
	return 0;
}

/*
 * lvremove of @lv (as lvs listed it), refused while a device other than
 * LVM's maps its thin (what a killed dmrepl left goes first).
 */
static int lv_remove(struct dmrepl_ctx *ctx, const struct dmrepl_lvm_lv *lv)
{
	char full[300], why[512] = "";
	int r;

	snprintf(full, sizeof(full), "%s/%s", lv->vg, lv->lv);
	r = dmrepl_lvm_thin_removable(ctx, lv);
	if (r < 0)
		return r;
	r = dmrepl_lvm_run(ctx, (const char *const[]){"lvremove", "-qq", "-y", "--", full, NULL},
			   NULL, why, sizeof(why));
	if (r == -EIO)
		tool_error("prune", "%s: lvremove failed: %s", full, why);
	return r;
}

/*
 * The retention of job @j: the @keep newest of the job's snapshots of the
 * origin, and the @keep_destination newest of its replicas (a local
 * destination's). The newest common base (the newest snapshot with a
 * replica, and that replica) is kept whatever the counts.
 */
int sync_prune(struct dmrepl_ctx *ctx, const struct config_job *j, const char *tag,
		 bool dry_run, struct sync_result *res)
{
	char src_vg[128], dst_vg[128] = "";
	const char *origin, *pool;
	struct lv_list src = { 0 }, dst = { 0 };
	size_t common_src = SIZE_MAX, common_dst = SIZE_MAX;
	int r;

	sync_split_vg_lv(j->origin, src_vg, sizeof(src_vg), &origin);
	r = sync_list_job_lvs(ctx, src_vg, tag, origin, &src);
	if (r == 0 && j->to_pool) {
		sync_split_vg_lv(j->to_pool, dst_vg, sizeof(dst_vg), &pool);
		r = sync_list_job_lvs(ctx, dst_vg, tag, NULL, &dst);
	}
	if (r < 0)
		goto out;
	if (j->to_pool) {
		for (size_t i = src.nr_sel; i-- > 0;)
			if (has_replica(&dst, sync_lv_at(&src, i)->lv)) {
				common_src = i;
				break;
			}
		for (size_t i = dst.nr_sel; i-- > 0;)
			if (common_src != SIZE_MAX &&
			    has_source(&src, sync_lv_at(&dst, i)->lv) &&
			    base_name_len(sync_lv_at(&dst, i)->lv) == strlen(sync_lv_at(&src, common_src)->lv) &&
			    !strncmp(sync_lv_at(&dst, i)->lv, sync_lv_at(&src, common_src)->lv,
				     strlen(sync_lv_at(&src, common_src)->lv))) {
				common_dst = i;
				break;
			}
	} else {
		/*
		 * The far side's replicas are not listed here: the newest
		 * snapshot, which this run replicated (prune runs only after
		 * a replication succeeded), stands for the common base.
		 */
		common_src = src.nr_sel ? src.nr_sel - 1 : SIZE_MAX;
	}
	for (size_t i = 0; r == 0 && i + j->s.keep < src.nr_sel; i++) {
		if (i == common_src)
			continue;
		r = add_pruned(&res->pruned_src, &res->nr_pruned_src, src_vg, sync_lv_at(&src, i)->lv);
		if (r == 0 && !dry_run)
			r = lv_remove(ctx, sync_lv_at(&src, i));
	}
	for (size_t i = 0; r == 0 && i + j->s.keep_destination < dst.nr_sel; i++) {
		if (i == common_dst)
			continue;
		r = add_pruned(&res->pruned_dst, &res->nr_pruned_dst, dst_vg, sync_lv_at(&dst, i)->lv);
		if (r == 0 && !dry_run)
			r = lv_remove(ctx, sync_lv_at(&dst, i));
	}
out:
	sync_lv_list_free(&src);
	sync_lv_list_free(&dst);
	return r;
}

/*
 * The newest thin snapshot of @origin in @vg that the job did not make
 * (the highest thin id: LVM gives a new thin volume the next one).
 */
int sync_newest_taken(struct dmrepl_ctx *ctx, const char *vg, const char *origin,
			const char *tag, struct dmrepl_lvm_lv *ret)
{
	struct dmrepl_lvm_lv *lvs = NULL;
	size_t n = 0, best = SIZE_MAX;
	int r = dmrepl_lvm_list(ctx, vg, &lvs, &n);

	for (size_t i = 0; r == 0 && i < n; i++) {
		if (strcmp(lvs[i].segtype, "thin") != 0 || strcmp(lvs[i].origin, origin) != 0 ||
		    dmrepl_lvm_has_tag(&lvs[i], tag) || lvs[i].thin_id == DMREPL_THIN_ID_ANY)
			continue;
		if (best == SIZE_MAX || lvs[i].thin_id > lvs[best].thin_id)
			best = i;
	}
	if (r == 0 && best == SIZE_MAX)
		r = -ENOENT;
	if (r == 0)
		*ret = lvs[best];
	free(lvs);
	return r;
}

/*
 * Nothing to do: the job's newest snapshot of the origin has its replica
 * at the destination (a local one: another host's replicas are not
 * listed here), and the origin maps exactly what that snapshot maps, at
 * the same size (the pool's metadata says so, through a held metadata
 * snapshot). Then no snapshot is taken and nothing is sent: *@ret is
 * that snapshot, *@replica its replica. 1 when unchanged, 0 when not (or
 * when it cannot tell), -errno.
 */
int sync_unchanged(struct dmrepl_ctx *ctx, const char *subcmd,
		     const struct config_job *j, const char *tag,
		     struct dmrepl_lvm_lv *ret, char *replica, size_t size)
{
	char src_vg[128], dst_vg[128], pool[256];
	const char *origin_lv, *dst_pool;
	struct lv_list src = { 0 }, dst = { 0 };
	const struct dmrepl_lvm_lv *snap = NULL, *origin = NULL, *rep = NULL;
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_delta *delta = NULL;
	struct dmrepl_run run;
	int r;

	if (!j->to_pool)
		return 0;
	sync_split_vg_lv(j->origin, src_vg, sizeof(src_vg), &origin_lv);
	sync_split_vg_lv(j->to_pool, dst_vg, sizeof(dst_vg), &dst_pool);
	r = sync_list_job_lvs(ctx, src_vg, tag, origin_lv, &src);
	if (r == 0)
		r = sync_list_job_lvs(ctx, dst_vg, tag, NULL, &dst);
	if (r < 0 || !src.nr_sel)
		goto out;
	snap = sync_lv_at(&src, src.nr_sel - 1);
	for (size_t i = 0; i < src.n; i++)
		if (!strcmp(src.lvs[i].lv, origin_lv))
			origin = &src.lvs[i];
	for (size_t i = dst.nr_sel; i-- > 0;)
		if (base_name_len(sync_lv_at(&dst, i)->lv) == strlen(snap->lv) &&
		    !strncmp(sync_lv_at(&dst, i)->lv, snap->lv, strlen(snap->lv)) &&
		    !strcmp(sync_lv_at(&dst, i)->pool_lv, dst_pool)) {
			rep = sync_lv_at(&dst, i);
			break;
		}
	if (!origin || !rep || origin->size_bytes != snap->size_bytes ||
	    strcmp(origin->pool_lv, snap->pool_lv) != 0)
		goto out;
	snprintf(pool, sizeof(pool), "%s/%s", snap->vg, snap->pool_lv);
	{
		const char *p = pool;

		if (tool_resolve_lvm_pool(ctx, subcmd, &p)) {
			r = -EINVAL;
			goto out;
		}
		snprintf(pool, sizeof(pool), "%s", p);
	}
	r = dmrepl_metadata_open_pool(ctx, pool, &md);
	if (r == 0)
		r = dmrepl_delta_new(md, snap->thin_id, origin->thin_id,
				     DMREPL_DELTA_SKIP_SAME, &delta);
	if (r == 0)
		r = dmrepl_delta_next_run(delta, &run);
	if (r == 1) {
		*ret = *snap;
		snprintf(replica, size, "%s/%s", rep->vg, rep->lv);
	}
out:
	dmrepl_delta_unref(delta);
	dmrepl_metadata_unref(md);
	sync_lv_list_free(&src);
	sync_lv_list_free(&dst);
	return r < 0 ? r : r == 1;
}

/* ---- a far destination's retention (receive --tag T --keep N) ---- */

struct received {
	char vg_lv[256];
	uint64_t time, id;
};

struct received_list {
	const char *const *only;
	struct received *v;
	size_t n;
	int error;
};

static int add_received(const struct dmrepl_replica_info *info, void *data)
{
	struct received_list *l = data;
	struct received *v;

	/* written to since (promoted, in use): not a replica to remove */
	if (info->state != DMREPL_REPLICA_OK || !info->dst_lv)
		return 0;
	if (!dmrepl_source_allowed(l->only, info->src_pool))
		return 0;	/* another source's: not this key's */
	v = realloc(l->v, (l->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	l->v = v;
	snprintf(v[l->n].vg_lv, sizeof(v[l->n].vg_lv), "%s", info->dst_lv);
	v[l->n].time = info->received_time;
	v[l->n].id = info->dst_thin_id;
	l->n++;
	return 0;
}

static int by_time(const void *a, const void *b)
{
	const struct received *x = a, *y = b;

	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

int sync_prune_received(struct dmrepl_ctx *ctx, const char *subcmd, const char *pool,
			const char *state_dir, const char *tag, unsigned int keep,
			const char *const *only_sources, const char *received,
			char ***ret, size_t *ret_n)
{
	struct received_list l = { .only = only_sources };
	struct dmrepl_lvm_lv *lvs = NULL;
	size_t nr_lvs = 0, tagged = 0;
	char vg[128];
	int r;

	*ret = NULL;
	*ret_n = 0;
	r = dmrepl_replicas_foreach(ctx, state_dir, pool, add_received, &l);
	if (r == 0 && l.n) {
		sync_split_vg_lv(l.v[0].vg_lv, vg, sizeof(vg), &(const char *){ NULL });
		r = dmrepl_lvm_list(ctx, vg, &lvs, &nr_lvs);
	}
	/* only the replicas carrying the job's tag count */
	for (size_t i = 0; r == 0 && i < l.n; i++) {
		const char *lv = strchr(l.v[i].vg_lv, '/') + 1;
		bool has = false;

		for (size_t k = 0; k < nr_lvs; k++)
			if (!strcmp(lvs[k].lv, lv) && dmrepl_lvm_has_tag(&lvs[k], tag))
				has = true;
		if (has)
			l.v[tagged++] = l.v[i];
	}
	qsort(l.v, tagged, sizeof(*l.v), by_time);
	for (size_t i = 0; r == 0 && i + keep < tagged; i++) {
		char sv[128];
		const char *lv;

		if (received && !strcmp(l.v[i].vg_lv, received))
			continue;	/* the one just received: the common base */
		sync_split_vg_lv(l.v[i].vg_lv, sv, sizeof(sv), &lv);
		r = add_pruned(ret, ret_n, sv, lv);
		for (size_t k = 0; r == 0 && k < nr_lvs; k++)
			if (!strcmp(lvs[k].lv, lv)) {
				r = lv_remove(ctx, &lvs[k]);
				break;
			}
	}
	if (r < 0 && r != -EIO)
		tool_fail_r(subcmd, r, "%s: the retention of '%s' failed: %s", pool, tag,
			    strerror(-r));
	free(lvs);
	free(l.v);
	return r;
}
