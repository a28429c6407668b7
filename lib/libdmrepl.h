/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdmrepl - replicate device-mapper thin-pool snapshots by shipping
 * only the blocks that changed.
 *
 * Conventions, for every function in this header:
 *  - integer returns are 0 on success or a negative errno value;
 *  - output parameters are named ret_* and are left untouched on failure;
 *  - handles are opaque and reference counted; *_unref(NULL) is a no-op;
 *  - the library never prints: it reports through the context's log
 *    function (see dmrepl_set_log_fn()).
 */
#ifndef LIBDMREPL_H
#define LIBDMREPL_H

#include <stdarg.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * struct dmrepl_ctx - library context.
 *
 * Holds the log function and priority and is the parent of every other
 * libdmrepl object. Create one per thread of use with dmrepl_new().
 */
struct dmrepl_ctx;

/**
 * dmrepl_new() - create a library context.
 * @ret_ctx: receives the new context, with one reference.
 *
 * The log priority starts at LOG_ERR, or at the value of the environment
 * variable DMREPL_LOG, which takes a number (0-7) or a syslog name
 * ("err", "info", "debug", ...). Messages go to stderr until
 * dmrepl_set_log_fn() installs another function.
 *
 * Return: 0, or -EINVAL if @ret_ctx is NULL, -ENOMEM.
 */
int dmrepl_new(struct dmrepl_ctx **ret_ctx);

/**
 * dmrepl_ref() - take a reference on @ctx.
 * Return: @ctx, or NULL if @ctx is NULL.
 */
struct dmrepl_ctx *dmrepl_ref(struct dmrepl_ctx *ctx);

/**
 * dmrepl_unref() - drop a reference; the last one frees the context.
 * Return: NULL, so callers can write ctx = dmrepl_unref(ctx).
 */
struct dmrepl_ctx *dmrepl_unref(struct dmrepl_ctx *ctx);

/**
 * dmrepl_log_fn - log function type.
 * @ctx: the context that logs.
 * @priority: syslog priority, LOG_ERR (3) to LOG_DEBUG (7).
 * @file, @line, @fn: where the message was raised.
 * @format, @args: printf-style message, with no trailing newline.
 * @userdata: the pointer given to dmrepl_set_log_fn().
 */
typedef void (*dmrepl_log_fn)(struct dmrepl_ctx *ctx, int priority,
			      const char *file, int line, const char *fn,
			      const char *format, va_list args,
			      void *userdata);

/**
 * dmrepl_set_log_fn() - replace the log function.
 * @fn: the new function, or NULL to discard every message.
 * @userdata: passed back to @fn unchanged.
 *
 * Return: 0, or -EINVAL if @ctx is NULL.
 */
int dmrepl_set_log_fn(struct dmrepl_ctx *ctx, dmrepl_log_fn fn, void *userdata);

/**
 * dmrepl_get_log_priority() - the highest priority that is logged.
 * Return: a syslog priority, or -EINVAL if @ctx is NULL.
 */
int dmrepl_get_log_priority(const struct dmrepl_ctx *ctx);

/**
 * dmrepl_set_log_priority() - log messages up to @priority.
 * @priority: syslog priority, 0 (LOG_EMERG) to 7 (LOG_DEBUG).
 *
 * Return: 0, or -EINVAL if @ctx is NULL or @priority is out of range.
 */
int dmrepl_set_log_priority(struct dmrepl_ctx *ctx, int priority);

/**
 * dmrepl_version() - the library's version string, e.g. "0.1.0".
 */
const char *dmrepl_version(void);

/*
 * ---------------------------------------------------------------------
 * Thin-pool metadata (lib/metadata.c, lib/btree.c, lib/thin.c)
 * ---------------------------------------------------------------------
 */

/**
 * struct dmrepl_metadata - an open, read-only view of thin-pool metadata.
 *
 * Reads the dm-thin on-disk format directly (superblock, device-details
 * tree, two-level mapping tree) from an image file, a metadata block
 * device, or a live pool's held metadata snapshot. Every block read is
 * checked: checksum, block number and node bounds.
 */
struct dmrepl_metadata;

/* Flags for dmrepl_metadata_open(). */
enum {
	/* Read the roots of the held metadata snapshot (thin_delta -m). */
	DMREPL_METADATA_USE_HELD_ROOT = 1 << 0,
	/*
	 * Read with O_DIRECT. Needed on a live pool's metadata device: the
	 * kernel writes it through its own buffer cache, so a buffered read
	 * can return stale blocks. Block devices are always read with
	 * O_DIRECT; this flag also asks it for an image file.
	 */
	DMREPL_METADATA_DIRECT = 1 << 1,
};

/**
 * dmrepl_metadata_open() - open metadata from an image file or device.
 * @path: a metadata image file or a metadata block device.
 * @flags: DMREPL_METADATA_* flags.
 * @ret_md: receives the handle, with one reference.
 *
 * Only the superblock (and the held snapshot's copy of it) is read here;
 * trees are read, and checked, as they are walked. With
 * DMREPL_METADATA_DIRECT, a file system that cannot do O_DIRECT (tmpfs)
 * fails the open with -EINVAL.
 *
 * Return: 0; -ENOENT, -EACCES (open failed); -EBADMSG (bad superblock:
 * magic, version, checksum, block number, with the reason logged);
 * -ENODATA (DMREPL_METADATA_USE_HELD_ROOT without a held metadata
 * snapshot); -EIO (read error, or an image shorter than its superblock
 * says: truncated); -EINVAL (unknown flag); -ENOMEM.
 */
int dmrepl_metadata_open(struct dmrepl_ctx *ctx, const char *path,
			 unsigned int flags, struct dmrepl_metadata **ret_md);
struct dmrepl_metadata *dmrepl_metadata_ref(struct dmrepl_metadata *md);
struct dmrepl_metadata *dmrepl_metadata_unref(struct dmrepl_metadata *md);

/**
 * struct dmrepl_pool_info - what the superblock says about the pool.
 *
 * With using_held_root, transaction_id and time are the held snapshot's
 * (those of the roots being read); the sizes are the live superblock's.
 */
struct dmrepl_pool_info {
	uint64_t transaction_id;
	uint64_t held_root_block;	/* 0 when no metadata snapshot is held */
	uint64_t data_block_size_sectors;
	uint64_t nr_data_blocks;
	uint64_t nr_metadata_blocks;
	uint32_t time;
	int using_held_root;		/* the roots below are the held snapshot's */
};

int dmrepl_metadata_get_pool_info(struct dmrepl_metadata *md,
				  struct dmrepl_pool_info *ret_info);

/**
 * struct dmrepl_thin_info - one thin device, from the device-details tree.
 */
struct dmrepl_thin_info {
	uint64_t thin_id;
	uint64_t mapped_blocks;
	uint64_t transaction_id;
	uint32_t creation_time;
	uint32_t snapshot_time;
};

/**
 * dmrepl_metadata_get_thin() - look up one thin device.
 * Return: 0; -ENOENT when @thin_id is not in the metadata; -EBADMSG on a
 * corrupt tree; -EIO.
 */
int dmrepl_metadata_get_thin(struct dmrepl_metadata *md, uint64_t thin_id,
			     struct dmrepl_thin_info *ret_info);

/**
 * dmrepl_metadata_foreach_thin() - call @fn for each thin device, in
 * increasing id order. A non-zero return from @fn stops the walk and is
 * returned.
 * Return: 0, @fn's non-zero value, or a negative errno from the walk.
 */
int dmrepl_metadata_foreach_thin(struct dmrepl_metadata *md,
				 int (*fn)(const struct dmrepl_thin_info *info,
					   void *userdata),
				 void *userdata);

/*
 * ---------------------------------------------------------------------
 * Snapshot delta (lib/delta.c)
 * ---------------------------------------------------------------------
 */

/**
 * struct dmrepl_delta - the difference between two thin devices.
 *
 * Walks both mapping trees together. A snapshot shares btree nodes with
 * its origin until either is written; a subtree the two share maps the
 * same blocks on both sides, so the walk steps over it without reading
 * it (extents, and runs with DMREPL_DELTA_SKIP_SAME): the cost follows
 * the change, not the volume. Runs with "same" read a shared subtree on
 * one side only. Memory is bounded by the tree depth (two stacks of at
 * most 16 blocks). A delta is a one-pass iterator: use either
 * dmrepl_delta_next_run() or dmrepl_delta_next_extent(), to its end.
 *
 * Nodes stepped over are not read, so not checked either: a corrupt
 * shared subtree goes unnoticed by an extent walk.
 */
struct dmrepl_delta;

enum dmrepl_run_kind {
	DMREPL_RUN_SAME = 0,		/* both map the block to the same data block */
	DMREPL_RUN_DIFFERENT,		/* both map it, to different data blocks */
	DMREPL_RUN_LEFT_ONLY,		/* only the first (older) device maps it */
	DMREPL_RUN_RIGHT_ONLY,		/* only the second (newer) device maps it */
};

/* A maximal run of virtual blocks of one kind, merged as thin_delta does. */
struct dmrepl_run {
	enum dmrepl_run_kind kind;
	uint64_t begin_blocks;
	uint64_t length_blocks;
};

enum dmrepl_extent_op {
	DMREPL_EXTENT_COPY = 0,		/* read from the newer device, write */
	DMREPL_EXTENT_DISCARD,		/* unmap on the destination */
};

/*
 * What turns a replica of the first device into one of the second:
 * different and right_only runs are copied, left_only runs discarded,
 * same runs skipped. Adjacent extents of one op are merged.
 */
struct dmrepl_extent {
	enum dmrepl_extent_op op;
	uint64_t offset_bytes;
	uint64_t length_bytes;
};

/* Flags for dmrepl_delta_new(). */
enum {
	/*
	 * dmrepl_delta_next_run() returns no "same" runs. Subtrees the two
	 * devices share are then stepped over unread, as
	 * dmrepl_delta_next_extent() always does; without this flag they
	 * are read (on one side) to report their blocks as "same".
	 */
	DMREPL_DELTA_SKIP_SAME = 1 << 0,
};

/**
 * dmrepl_delta_new() - prepare the delta from @thin_id1 to @thin_id2.
 * @flags: DMREPL_DELTA_* flags; 0 gives runs that include "same" runs,
 * as thin_delta prints them.
 *
 * Return: 0; -EINVAL for an unknown flag; -ENOENT (with the missing id
 * logged) when either id is not in the metadata; -EBADMSG, -ELOOP, -EIO
 * (reading the top-level mapping tree); -ENOMEM.
 */
int dmrepl_delta_new(struct dmrepl_metadata *md, uint64_t thin_id1,
		     uint64_t thin_id2, unsigned int flags,
		     struct dmrepl_delta **ret_delta);
struct dmrepl_delta *dmrepl_delta_unref(struct dmrepl_delta *delta);

/**
 * dmrepl_delta_next_run() - the next run, in increasing block order.
 *
 * Runs are maximal: two runs of one kind are never adjacent. Without
 * DMREPL_DELTA_SKIP_SAME they are exactly the elements thin_delta
 * (without --verbose) prints inside <diff>.
 *
 * Return: 0 and *@ret_run filled; 1 at the end; -EBADMSG (corrupt tree,
 * block and fault logged), -ELOOP (cycle or depth limit), -EIO; -EINVAL
 * after dmrepl_delta_next_extent() was used on @delta. An error is
 * final: every later call returns it again.
 */
int dmrepl_delta_next_run(struct dmrepl_delta *delta,
			  struct dmrepl_run *ret_run);

/**
 * dmrepl_delta_next_extent() - the next extent, in increasing offset
 * order. Shared subtrees are never read.
 * Return: as dmrepl_delta_next_run(); also -EOVERFLOW when a block's
 * byte offset does not fit in 64 bits (corrupt metadata).
 */
int dmrepl_delta_next_extent(struct dmrepl_delta *delta,
			     struct dmrepl_extent *ret_extent);

/**
 * dmrepl_run_kind_name() - "same", "different", "left_only", "right_only".
 */
const char *dmrepl_run_kind_name(enum dmrepl_run_kind kind);

/*
 * ---------------------------------------------------------------------
 * Live pools through device-mapper (lib/dm.c, lib/pool.c, lib/lock.c,
 * lib/metasnap.c)
 *
 * These need root (the device-mapper control device). libdevmapper's
 * log function is process-wide: while a libdmrepl call runs, libdm's
 * messages are routed to that call's context at LOG_INFO or below;
 * libdm calls the application makes itself keep libdm's default of
 * printing errors to stderr. An application that installs its own libdm
 * log function after its first libdmrepl call receives both.
 * ---------------------------------------------------------------------
 */

/**
 * struct dmrepl_pool - an active thin-pool device, by its dm name.
 */
struct dmrepl_pool;

/**
 * dmrepl_pool_open() - find an active thin pool by device-mapper name.
 *
 * Reads the pool's table, which names its metadata device.
 *
 * Return: 0; -ENODEV (no such device, or not a thin-pool target, logged);
 * -EPERM/-EACCES (not root); -EBADMSG (a table line we cannot parse);
 * -EINVAL; -ENOMEM; another -errno from the device-mapper ioctl.
 */
int dmrepl_pool_open(struct dmrepl_ctx *ctx, const char *dm_name,
		     struct dmrepl_pool **ret_pool);
struct dmrepl_pool *dmrepl_pool_unref(struct dmrepl_pool *pool);

/* The pool's status line, as the kernel reports it. */
struct dmrepl_pool_status {
	uint64_t transaction_id;
	uint64_t used_metadata_blocks;
	uint64_t total_metadata_blocks;
	uint64_t used_data_blocks;
	uint64_t total_data_blocks;
	uint64_t held_metadata_root;	/* 0 when none is held */
	int read_only;			/* "ro": the kernel refuses messages */
	int out_of_data_space;		/* writes block or fail; metadata is fine */
	int needs_check;		/* thin_check must run before rw again */
	int fail;			/* fail mode: every other field is 0 */
};

/**
 * dmrepl_pool_get_status() - the pool's current status.
 *
 * Return: 0 (also in fail mode, with @ret_status->fail set); -EIO when
 * the kernel reports "Error" (it cannot read its own metadata);
 * -EBADMSG (a status line we cannot parse, logged); -ENODEV (the device
 * went away or is no longer a thin pool); -EINVAL.
 */
int dmrepl_pool_get_status(struct dmrepl_pool *pool,
			   struct dmrepl_pool_status *ret_status);

/**
 * dmrepl_pool_get_metadata_path() - a path to the pool's metadata device:
 * the kernel's name under /dev (e.g. /dev/dm-0, /dev/loop1), else
 * /dev/block/MAJ:MIN, else a node made in dmrepl's run directory when
 * /dev has none (no udev). Valid while @pool is.
 */
const char *dmrepl_pool_get_metadata_path(struct dmrepl_pool *pool);

/**
 * dmrepl_metadata_open_pool() - open a live pool's metadata through a
 * metadata snapshot that this call reserves.
 *
 * Takes the per-pool lock (so two dmrepl runs do not collide on the
 * pool's single metadata snapshot), sends reserve_metadata_snap, and
 * opens the metadata device with O_DIRECT on the held root. The last
 * dmrepl_metadata_unref() releases the snapshot and the lock. A
 * snapshot left reserved by a dmrepl process that died is released and
 * reserved again, with a warning.
 *
 * The lock is a flock on a file in /run/dmrepl/ (or $DMREPL_RUN_DIR),
 * which also records who reserved the snapshot.
 *
 * The library installs no signal handlers. A process that is killed
 * while it holds the snapshot leaves it reserved in the pool's metadata
 * (even across a reboot, though the record in /run is lost then), where
 * it blocks thin_check and other tools until the next dmrepl run on the
 * pool releases it. So a tool must catch SIGINT, SIGTERM and SIGHUP,
 * stop its work and drop its references normally. (The library blocks
 * those signals only for the moment of each message and its record.)
 *
 * Return: 0; -EBUSY when another dmrepl holds the lock, or when another
 * tool holds the metadata snapshot (the message says how to release it:
 * dmsetup message POOL 0 release_metadata_snap); -EROFS when the pool is
 * read-only or failed (the kernel then accepts no messages); errors of
 * dmrepl_pool_open() and dmrepl_metadata_open().
 */
int dmrepl_metadata_open_pool(struct dmrepl_ctx *ctx, const char *pool_dm_name,
			      struct dmrepl_metadata **ret_md);

#ifdef __cplusplus
}
#endif

#endif /* LIBDMREPL_H */
