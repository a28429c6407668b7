/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdmrepl's dm control layer, internal: libdevmapper, live pools, the
 * per-pool lock, the metadata snapshot, thin devices of a live pool.
 */
#ifndef DMREPL_DM_H
#define DMREPL_DM_H

#include "base.h"

/*
 * ---------------------------------------------------------------------
 * Device-mapper and live pools (lib/dm.c, lib/pool.c, lib/lock.c,
 * lib/metasnap.c)
 * ---------------------------------------------------------------------
 */

#include <signal.h>
#include <sys/types.h>

/*
 * lib/dm.c: the only file that calls libdevmapper. libdm's log messages
 * (a process-wide setting) are routed to the context of the dmrepl call
 * that caused them, at LOG_INFO or below; each function logs its own
 * error, naming the device.
 */
struct dmrepl_dm_target {
	uint32_t major, minor;		/* of the dm device itself */
	uint32_t nr_targets;		/* in the table; 0 when none is loaded */
	uint64_t length_sectors;	/* of the first target */
	char *type;			/* first target's type, e.g. "thin-pool" */
	char *params;			/* its table or status parameters */
	char *uuid;			/* the device's dm UUID ("" when none) */
};

/* The same, -ENODEV not logged: for asking whether a device is there. */
int dmrepl_dm_get_table_quiet(struct dmrepl_ctx *ctx, const char *name,
			      struct dmrepl_dm_target *ret_target);

/*
 * Split an LVM device's dm name ("vg-lv-layer", dashes in a name doubled)
 * into its VG, LV and layer; each buffer is "" when absent.
 * Return: 0, -EINVAL (not an LVM-style name), -ENAMETOOLONG.
 */
int dmrepl_dm_split_lvm_name(const char *dm_name, char *vg, size_t vg_size,
			     char *lv, size_t lv_size, char *layer,
			     size_t layer_size);

/* Return: 0; -ENODEV (no such device), -EACCES, -ENOMEM, another -errno. */
int dmrepl_dm_get_table(struct dmrepl_ctx *ctx, const char *name,
			struct dmrepl_dm_target *ret_target);
int dmrepl_dm_get_status(struct dmrepl_ctx *ctx, const char *name,
			 struct dmrepl_dm_target *ret_target);
void dmrepl_dm_target_clear(struct dmrepl_dm_target *target);

/*
 * Send @message to sector 0 of @name. Failures are logged at debug level
 * only: the kernel's errno means different things per message (EBUSY
 * for reserve_metadata_snap is "already held"), so callers explain.
 */
int dmrepl_dm_message(struct dmrepl_ctx *ctx, const char *name,
		      const char *message);

/* Suspend or resume @name (suspend flushes and waits for its I/O). */
int dmrepl_dm_suspend(struct dmrepl_ctx *ctx, const char *name);
int dmrepl_dm_resume(struct dmrepl_ctx *ctx, const char *name);
/* Remove @name, retrying a few seconds while it is busy. -ENODEV: gone. */
int dmrepl_dm_remove(struct dmrepl_ctx *ctx, const char *name);
/* How many times @name is open (mounts and programs). */
int dmrepl_dm_get_open_count(struct dmrepl_ctx *ctx, const char *name,
			     int *ret_count);
/* Create and activate @name with one target covering @length_sectors. */
int dmrepl_dm_create(struct dmrepl_ctx *ctx, const char *name,
		     const char *type, const char *params,
		     uint64_t length_sectors, bool read_only,
		     uint32_t *ret_major, uint32_t *ret_minor);
/* Call @fn for each dm device's name; a non-zero return stops the walk. */
int dmrepl_dm_foreach(struct dmrepl_ctx *ctx,
		      int (*fn)(const char *name, void *userdata),
		      void *userdata);

/* lib/pool.c: pure parsers of thin-pool table and status lines. */
struct dmrepl_pool_table {
	uint32_t metadata_major, metadata_minor;
	uint32_t data_major, data_minor;
	uint64_t data_block_size_sectors;
	uint64_t low_water_blocks;
};

/* Return: 0 or -EINVAL on anything malformed. */
int dmrepl_pool_parse_table(const char *params,
			    struct dmrepl_pool_table *ret_table);
/* Return: 0 (also for "Fail"), -EIO for "Error", -EINVAL when malformed. */
int dmrepl_pool_parse_status(const char *params,
			     struct dmrepl_pool_status *ret_status);

const char *dmrepl_pool_get_name(struct dmrepl_pool *pool);
/* The pool device's own major:minor, as a thin target's table names it. */
void dmrepl_pool_get_devt(struct dmrepl_pool *pool, uint32_t *ret_major,
			  uint32_t *ret_minor);
uint64_t dmrepl_pool_get_block_sectors(struct dmrepl_pool *pool);
dev_t dmrepl_pool_get_metadata_devt(struct dmrepl_pool *pool);
/* "VG/LV" of a pool that LVM manages (its dm UUID says so), else NULL. */
const char *dmrepl_pool_get_lvm_name(struct dmrepl_pool *pool);
/*
 * A path to block device @devt: the kernel's name under /dev, else
 * /dev/block/MAJ:MIN, else a node made in the run directory.
 */
int dmrepl_resolve_devt(struct dmrepl_ctx *ctx, dev_t devt, char **ret_path);
struct dmrepl_ctx *dmrepl_pool_get_ctx(struct dmrepl_pool *pool);
struct dmrepl_pool *dmrepl_pool_ref(struct dmrepl_pool *pool);

/*
 * lib/lock.c: the per-pool lock, a flock on $DMREPL_LOCK_DIR/NAME.lock
 * (default /var/lib/dmrepl/locks: it must outlive a reboot, as a held
 * root does). The file records who holds the lock and the metadata
 * snapshot that holder reserved, so a later run can tell a snapshot left
 * by a dmrepl that died from one another tool holds (lib/metasnap.c).
 * Lock files are never unlinked: that would let two runs lock two
 * different inodes of one name.
 */
enum dmrepl_snap_state {
	DMREPL_SNAP_NONE = 0,		/* no reservation made by dmrepl */
	DMREPL_SNAP_RESERVING,		/* reserve_metadata_snap being sent */
	DMREPL_SNAP_RESERVED,		/* held, root and copy recorded */
	DMREPL_SNAP_RELEASING,		/* release_metadata_snap being sent */
};

/* What the held root's superblock copy says: the pool as it was reserved. */
struct dmrepl_snap_copy {
	uint64_t trans_id;
	uint64_t mapping_root;
	uint64_t details_root;
	uint32_t time;
};

struct dmrepl_lock_record {
	pid_t holder;			/* process holding (or last holding) the lock */
	enum dmrepl_snap_state state;
	pid_t owner;			/* process that reserved the snapshot */
	uint64_t root;			/* held metadata root: RESERVED, RELEASING */
	/*
	 * RESERVED, RELEASING: the copy at @root. RESERVING: only trans_id,
	 * the pool's transaction id just before the message was sent.
	 */
	struct dmrepl_snap_copy copy;
};

struct dmrepl_lock;

/* $DMREPL_RUN_DIR, else /run/dmrepl; created (one level) on demand. */
const char *dmrepl_run_dir(void);
int dmrepl_run_dir_create(struct dmrepl_ctx *ctx);
/* $DMREPL_LOCK_DIR, else /var/lib/dmrepl/locks; created on demand. */
const char *dmrepl_lock_dir(void);

/* Return: 0; -EBUSY (logged with the holder's pid); -EACCES, -ENOMEM, ... */
int dmrepl_lock_take(struct dmrepl_ctx *ctx, const char *pool_name,
		     struct dmrepl_lock **ret_lock);
/* Drops the lock; the record stays as last written. NULL is a no-op. */
void dmrepl_lock_drop(struct dmrepl_lock *lock);
/* A missing or empty record reads as all zero. */
int dmrepl_lock_read(struct dmrepl_lock *lock,
		     struct dmrepl_lock_record *ret_record);
/*
 * Replaces the record; fsyncs it when @sync (a record that must survive
 * a power cut: see lib/metasnap.c for which).
 */
int dmrepl_lock_write(struct dmrepl_lock *lock,
		      const struct dmrepl_lock_record *record, bool sync);

/* The record's one-line text form, for tests. */
int dmrepl_lock_record_parse(const char *text,
			     struct dmrepl_lock_record *ret_record);
int dmrepl_lock_record_format(const struct dmrepl_lock_record *record,
			      char *buf, size_t size);
/* The lock file's name for a pool: safe characters kept, others %XX. */
int dmrepl_lock_file_name(const char *pool_name, char *buf, size_t size);

/*
 * Block the signals whose default action kills the process, so that an
 * ioctl and the record that describes it cannot be separated by Ctrl-C.
 * The library installs no signal handlers.
 */
void dmrepl_signals_block(sigset_t *ret_old);
void dmrepl_signals_restore(const sigset_t *old);

/*
 * lib/leftovers.c: remove the dm devices "dmrepl-PID-..." that map a thin
 * of @pool, whose process is gone and that nothing holds open (a killed
 * dmrepl's). *@ret_removed counts them (may be NULL).
 */
int dmrepl_pool_sweep(struct dmrepl_pool *pool, unsigned int *ret_removed);
/* The same, removing nothing: *@ret_n counts what it would remove now. */
int dmrepl_pool_sweep_count(struct dmrepl_pool *pool, unsigned int *ret_n);
/* @name is "dmrepl-PID-..." and process PID is gone. */
bool dmrepl_dm_name_dead_owner(const char *name);
/*
 * Before lvremove of thin LV @lv: what dead dmrepl processes left on its
 * pool goes; then -EBUSY (logged, naming it) while a device other than
 * LVM's own maps its thin: lvremove would drop the LV and leave the thin
 * in the kernel. 0: LVM may remove it.
 */
struct dmrepl_lvm_lv;
int dmrepl_lvm_thin_removable(struct dmrepl_ctx *ctx, const struct dmrepl_lvm_lv *lv);

/*
 * lib/openers.c: who has a block device open. dmrepl_dev_openers() finds
 * the processes other than this one with a descriptor on @devt (up to
 * @max pids kept; *@ret_n counts them all). For a dm device,
 * dmrepl_dev_unseen_openers() gives how many opens its open count has
 * beyond the dm devices stacked on it and the @seen processes: openers
 * /proc does not show (another PID namespace, the kernel); 0 for others.
 */
int dmrepl_dev_openers(dev_t devt, pid_t *pids, size_t max, size_t *ret_n);
int dmrepl_dev_unseen_openers(struct dmrepl_ctx *ctx, dev_t devt, size_t seen,
			      int *ret_n);
/* /proc/PID/comm, or "?" */
void dmrepl_pid_comm(pid_t pid, char *buf, size_t size);

/*
 * lib/metasnap.c: the pool's metadata snapshot, reserved under the lock.
 * dmrepl_pool_snap_release() sends release_metadata_snap, drops the
 * lock and frees @snap; NULL is a no-op.
 */
struct dmrepl_pool_snap;

int dmrepl_pool_snap_reserve(struct dmrepl_pool *pool,
			     struct dmrepl_pool_snap **ret_snap);
/*
 * Resolve what a killed dmrepl left on @pool without reserving anything:
 * remove its dm devices (*@ret_removed), release a metadata snapshot it
 * left (*@ret_released), refuse (-EBUSY, logged) one another tool holds
 * or that is being read. dmrepl_pool_snap_reserve() does the same first.
 */
int dmrepl_pool_snap_recover(struct dmrepl_pool *pool, bool *ret_released,
			     unsigned int *ret_removed);
/*
 * Its dry run: the same judgement, under the same lock, and the same
 * refusals; nothing removed, released or recorded. *@ret_released: a
 * left snapshot would be released; *@ret_removed: devices that would go.
 */
int dmrepl_pool_snap_recover_dry_run(struct dmrepl_pool *pool,
				     bool *ret_released,
				     unsigned int *ret_removed);

/*
 * Whose is a held root, found by a run that holds the pool's lock: the
 * record a dead dmrepl left (@rec), the root the kernel holds (@held),
 * that root's superblock copy (@copy, NULL if unreadable), and whether
 * anything has the metadata device open (@in_use). Pure, for tests; the
 * reasoning is in lib/metasnap.c and doc/architecture.md.
 */
enum dmrepl_held_verdict {
	DMREPL_HELD_OURS,	/* left by a dead dmrepl: release it */
	DMREPL_HELD_OTHER,	/* another tool's: leave it */
	DMREPL_HELD_IN_USE,	/* being read: leave it, whoever's it is */
};
enum dmrepl_held_verdict dmrepl_held_judge(const struct dmrepl_lock_record *rec,
					   uint64_t held,
					   const struct dmrepl_snap_copy *copy,
					   bool in_use);
uint64_t dmrepl_pool_snap_get_root(const struct dmrepl_pool_snap *snap);
int dmrepl_pool_snap_release(struct dmrepl_pool_snap *snap);

/*
 * ---- Thin devices of a live pool (thinpool.c) ----
 */

/* Messages to the pool; errors are logged naming the pool and the id. */
int dmrepl_pool_create_thin(struct dmrepl_pool *pool, uint64_t thin_id);
int dmrepl_pool_delete_thin(struct dmrepl_pool *pool, uint64_t thin_id);
/* One above the highest thin id in use (read through a metadata snapshot). */
int dmrepl_pool_next_free_id(struct dmrepl_pool *pool, uint64_t *ret_id);
/* The size of an active dm device of @thin_id. Return: 0, -ENOENT. */
/*
 * 1 when an active dm device that maps thin @thin_id is open (mounted, or
 * held by a program), its name in @ret_name; 0 when none is; -errno.
 */
int dmrepl_pool_thin_in_use(struct dmrepl_pool *pool, uint64_t thin_id,
			    char *ret_name, size_t size);
int dmrepl_pool_get_active_size(struct dmrepl_pool *pool, uint64_t thin_id,
				uint64_t *ret_size_bytes);

/* A thin device activated under a dm name of ours. */
struct dmrepl_thin_dev;
int dmrepl_thin_activate(struct dmrepl_pool *pool, uint64_t thin_id,
			 uint64_t size_bytes, bool read_only, const char *name,
			 struct dmrepl_thin_dev **ret_dev);
const char *dmrepl_thin_dev_get_path(const struct dmrepl_thin_dev *dev);
/* Remove the dm device and free @dev; NULL is a no-op. */
int dmrepl_thin_deactivate(struct dmrepl_thin_dev *dev);

/*
 * The dm devices that map one thin id, from one listing: its size (the
 * largest; 0 when none is active), and one to read through instead of
 * activating one. A borrowed device is held open until
 * dmrepl_thin_deactivate(), which leaves it in place; it is checked once
 * open to still map the thin (no external origin) and at least
 * @min_bytes. Borrow returns -ENOENT when none fits.
 */
struct dmrepl_thin_active;
/*
 * dmrepl_pool_create_snapshot()'s dry run: the same refusals, whether
 * the origin exists (and a given @new_id does not), the id it would
 * take, and how many active devices of the origin it would suspend;
 * nothing is created or suspended.
 */
int dmrepl_pool_create_snapshot_dry_run(struct dmrepl_pool *pool,
					uint64_t origin_id, uint64_t new_id,
					uint64_t *ret_id, size_t *ret_nr_active);
int dmrepl_thin_active_find(struct dmrepl_pool *pool, uint64_t thin_id,
			    struct dmrepl_thin_active **ret);
uint64_t dmrepl_thin_active_get_size(const struct dmrepl_thin_active *a);
/* How many active devices map the thin, and the name of each. */
size_t dmrepl_thin_active_count(const struct dmrepl_thin_active *a);
const char *dmrepl_thin_active_get_name(const struct dmrepl_thin_active *a, size_t i);
int dmrepl_thin_active_borrow(struct dmrepl_thin_active *a, uint64_t min_bytes,
			      struct dmrepl_thin_dev **ret_dev);
void dmrepl_thin_active_free(struct dmrepl_thin_active *a);

#endif /* DMREPL_DM_H */
