/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The pieces of a sync job that tools/cmd-sync.c puts together: the
 * job's LVs on each side and their retention (sync-lvs.c), and what
 * systemd and udev ask of the configuration (sync-units.c).
 */
#ifndef DMREPL_TOOL_SYNC_H
#define DMREPL_TOOL_SYNC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf.h"
#include "libdmrepl-private.h"

/* The tag on every LV a job made: "dmrepl.sync:JOB". */
#define SYNC_TAG_PREFIX "dmrepl.sync:"

/* One job's LVs of one side, newest last (the names sort by time). */
struct lv_list {
	struct dmrepl_lvm_lv *lvs;	/* dmrepl_lvm_list()'s */
	size_t n;
	size_t *sel;			/* indexes of the job's LVs, sorted */
	size_t nr_sel;
};

/* What one run did, for the summary line and the JSON result. */
struct sync_result {
	char snapshot[300];		/* VG/LV made at the source */
	char replica[300];		/* VG/LV of its replica */
	uint64_t base;			/* source thin id of the base; ANY: full */
	bool full, already;
	bool unchanged;			/* the origin is as its last snapshot */
	uint64_t copied, discarded, zeroed;
	char **pruned_src, **pruned_dst;	/* VG/LV removed (or, -n, would be) */
	size_t nr_pruned_src, nr_pruned_dst;
	double seconds;
};

/* "VG/LV" into @vg and, pointing into @vg_lv, *@lv. */
void sync_split_vg_lv(const char *vg_lv, char *vg, size_t vg_size, const char **lv);
/*
 * The LVs of @vg tagged @tag, sorted by name (the time): with @origin
 * the thin snapshots of that LV (a source), else replicas (a
 * destination). From this run's last listing when nothing changed since.
 */
int sync_list_job_lvs(struct dmrepl_ctx *ctx, const char *vg, const char *tag,
		      const char *origin, struct lv_list *l);
const struct dmrepl_lvm_lv *sync_lv_at(const struct lv_list *l, size_t i);
void sync_lv_list_free(struct lv_list *l);
/*
 * Job @j's retention: the N newest of its snapshots and of its replicas
 * (a local destination's) stay, and the newest common base whatever N;
 * what goes (with @dry_run: would go) is listed in @res.
 */
int sync_prune(struct dmrepl_ctx *ctx, const struct config_job *j, const char *tag,
	       bool dry_run, struct sync_result *res);
/* The newest thin snapshot of @origin in @vg not tagged @tag: -ENOENT, none. */
int sync_newest_taken(struct dmrepl_ctx *ctx, const char *vg, const char *origin,
		      const char *tag, struct dmrepl_lvm_lv *ret);
/*
 * The origin maps what the job's newest snapshot maps, at its size, and
 * that snapshot's replica is in the destination pool: 1 (the snapshot in
 * *@ret, its replica in @replica), 0 not (or cannot tell), -errno.
 */
int sync_unchanged(struct dmrepl_ctx *ctx, const char *subcmd,
		   const struct config_job *j, const char *tag,
		   struct dmrepl_lvm_lv *ret, char *replica, size_t size);
/*
 * A destination's half of a far sync job's retention (receive --tag
 * @tag --keep @keep, after it received @received, "VG/LV"): of the
 * intact replicas in @pool (a dm name) that carry @tag and whose source
 * @only_sources allows (NULL: any), all but the @keep newest are removed,
 * never @received. A replica written to since it was received (promoted,
 * in use) is not counted, nor removed. The removed ones, "VG/LV", in
 * *@ret (free each, and the array).
 */
int sync_prune_received(struct dmrepl_ctx *ctx, const char *subcmd, const char *pool,
			const char *state_dir, const char *tag, unsigned int keep,
			const char *const *only_sources, const char *received,
			char ***ret, size_t *ret_n);
/* The systemd generator's work: each scheduled job's timer, enabled, in @dir. */
int sync_generate_units(const struct config *cfg, const char *dir, const char *unit_dir);
/* The udev rule's: DMREPL_SYNC_UNITS= the jobs this event (the environment) triggers. */
int sync_udev_jobs(const struct config *cfg);

#endif
