/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A live migration's parts (lib/migrate*.c). migrate.c runs the job: the
 * rounds (replications, local or through the transport) and the final
 * round's order (prepare, suspend, ship, commit, switch, resume). What
 * the final round does at the destination is a target's:
 *
 *   migrate-local.c    a pool of another VG on this host: LVM commands
 *                      and a device of the volume-to-be, here
 *   migrate-remote.c   a pool on another host: one connection to `dmrepl
 *                      receive --migrate` there, which does the same on
 *                      its side, step by step as this side says (the
 *                      protocol: doc/stream-format.md, "Migration")
 */
#ifndef DMREPL_MIGRATE_H
#define DMREPL_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "base.h"
#include "lvm.h"
#include "replication.h"

#define TAG_MIGRATE "dmrepl.migrate:"		/* a round's snapshot and replica */
#define TAG_MIGRATING "dmrepl.migrating"	/* the volume-to-be, not committed */
#define TAG_MIGRATED "dmrepl.migrated:"		/* the volume, committed: its source */
#define TAG_NOT_SWITCHED "dmrepl.migrate-not-switched"

struct dmrepl_migrate;
struct migrate_target;

/* What one run of a job holds. */
struct migrate_run {
	struct dmrepl_migrate *m;
	struct dmrepl_ctx *ctx;
	const struct migrate_target *target;
	const char *src;			/* "VG/LV" */
	const char *state_dir;			/* NULL: the default */
	char src_vg[128], src_lv[128], dst_vg[128], dst_pool[128];
	char host[256];				/* remote: the URL's [USER@]HOST */
	char origin_dm[520];			/* the volume's dm device */
	struct dmrepl_lvm_lv origin;
	char src_pool_dm[128];
	char dst_pool_dm[128];			/* local: the destination pool's */
	char snaps[DMREPL_MIGRATE_MAX_ROUNDS][128];	/* the rounds' snapshots */
	uint64_t snap_ids[DMREPL_MIGRATE_MAX_ROUNDS];
	char replicas[DMREPL_MIGRATE_MAX_ROUNDS][256];	/* their replicas, VG/LV */
	unsigned int nr;
	double rate;				/* bytes/s of the last copy */
	char final_lv[300];			/* the volume-to-be, "VG/LV" there */
	char record[4096];			/* the suspend record's path */
	time_t started;
	void *tdata;				/* the target's, in the final round */
};

/*
 * The destination's side of the final round. Each returns 0 or -errno
 * (logged). finish() is called once after prepare() was, whatever
 * happened, and frees what the target holds.
 */
struct migrate_target {
	const char *name;
	/* before the rounds: the volume can be made there (its name is free) */
	int (*check)(struct migrate_run *r);
	/*
	 * The volume-to-be, r->final_lv: a snapshot of the last round's
	 * replica (r->replicas[r->nr - 1]) tagged dmrepl.migrating, ready to
	 * be written. No LVM command runs after this until commit().
	 */
	int (*prepare)(struct migrate_run *r);
	/*
	 * The volume is suspended: the delta from the last round's snapshot
	 * to the volume (a second, read-only device of its thin) into the
	 * volume-to-be, on disk when it returns. *@ret_bytes: copied.
	 */
	int (*ship)(struct migrate_run *r, uint64_t *ret_bytes);
	/* One LVM transaction: dmrepl.migrating becomes dmrepl.migrated:SOURCE. */
	int (*commit)(struct migrate_run *r);
	/*
	 * The end: @switched, the volume-to-be is the volume; else, committed,
	 * it is tagged dmrepl.migrate-not-switched, and uncommitted, removed.
	 */
	int (*finish)(struct migrate_run *r, bool committed, bool switched);
};

extern const struct migrate_target dmrepl_migrate_local;
extern const struct migrate_target dmrepl_migrate_remote;

/* The job's settings that a target reads. */
const char *dmrepl_migrate_get_dst(const struct dmrepl_migrate *m);
const char *dmrepl_migrate_get_transport(const struct dmrepl_migrate *m);
const char *dmrepl_migrate_get_remote_cmd(const struct dmrepl_migrate *m);
const char *dmrepl_migrate_get_remote_state_dir(const struct dmrepl_migrate *m);

/* An LVM command of the run; its failure is logged, naming @what. */
int dmrepl_migrate_lvm(struct migrate_run *r, const char *what, const char *const *args);
/* The dm name of active thin pool VG/POOL; -ENODEV logged. */
int dmrepl_migrate_pool_dm(struct migrate_run *r, const char *vg, const char *pool,
			   char *buf, size_t size);
/* STATE_DIR/migrate (NULL: the default's), made if need be, into @buf. */
int dmrepl_migrate_state_dir(struct dmrepl_ctx *ctx, const char *state_dir, char *buf,
			     size_t size);
/* "VG/LV" into its parts; -EINVAL when it is not that. */
int dmrepl_migrate_split(const char *vg_lv, char *vg, size_t vs, char *lv, size_t ls);

/*
 * The far side of a migration to another host: `dmrepl receive --pool
 * VG/POOL --migrate SOURCE [--from-lv LV]`. @source names the volume
 * ("HOST:VG/LV"); its LV becomes the new LV's name, and the whole its
 * dmrepl.migrated: tag. Without @from_lv, only check that it can be made.
 * Reads the stream and the near side's words on @in_fd, writes JSON
 * lines on @out. Return: 0 (the volume made and switched, or the check
 * passed), or -errno (logged, and in the last line).
 */
struct dmrepl_migrate_receive_opts {
	const char *pool;		/* "VG/POOL", an LVM thin pool */
	const char *source;
	const char *from_lv;		/* the last round's replica, an LV of VG */
	const char *state_dir;		/* NULL: the default */
};
int dmrepl_migrate_receive(struct dmrepl_ctx *ctx,
			   const struct dmrepl_migrate_receive_opts *o, int in_fd,
			   FILE *out);

#endif
