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
 * Copy engine (lib/io.c, lib/io-uring.c, lib/io-aio.c, lib/io-sync.c,
 * lib/copy.c)
 * ---------------------------------------------------------------------
 */

/**
 * enum dmrepl_engine - the I/O engine of a copy.
 * @DMREPL_ENGINE_AUTO: io_uring, else libaio, else sync (the default).
 * @DMREPL_ENGINE_URING: io_uring, with registered buffers.
 * @DMREPL_ENGINE_AIO: Linux native AIO (libaio).
 * @DMREPL_ENGINE_SYNC: pread()/pwrite(), one request at a time.
 */
enum dmrepl_engine {
	DMREPL_ENGINE_AUTO = 0,	/* io_uring, else libaio, else sync */
	DMREPL_ENGINE_URING,
	DMREPL_ENGINE_AIO,
	DMREPL_ENGINE_SYNC,
};

/**
 * dmrepl_engine_name() - "auto", "uring", "aio", "sync"; NULL for an
 * unknown value.
 */
const char *dmrepl_engine_name(enum dmrepl_engine engine);

/**
 * dmrepl_engine_from_name() - the engine called @name (as
 * dmrepl_engine_name() spells it).
 * Return: 0, or -EINVAL for an unknown name.
 */
int dmrepl_engine_from_name(const char *name, enum dmrepl_engine *ret_engine);

/* Flags for dmrepl_copy_set_flags(). */
enum {
	/* Blocks read as all zeroes are discarded on the destination
	 * instead of written, so a thin destination stays thin. */
	DMREPL_COPY_DETECT_ZEROES = 1 << 0,
	/* The destination is known to read as zeroes wherever nothing is
	 * written (a new thin device): discards are counted but not sent. */
	DMREPL_COPY_DST_ZEROED = 1 << 1,
};

/**
 * struct dmrepl_copy_stats - what a copy has done so far.
 *
 * Each byte of each completed extent is counted once in copied_bytes,
 * discarded_bytes or zeroed_bytes, so done_bytes is their sum.
 * zero_detected_bytes counts the bytes of copy extents that read as
 * zeroes and were therefore discarded or zeroed, not copied.
 */
struct dmrepl_copy_stats {
	uint64_t total_bytes;		/* as set by dmrepl_copy_set_total(); 0 if unknown */
	uint64_t done_bytes;		/* bytes of extents completed (copied + discarded) */
	uint64_t copied_bytes;		/* written with data */
	uint64_t discarded_bytes;	/* unmapped on the destination */
	uint64_t zeroed_bytes;		/* written as zeroes (no discard support, unaligned edges) */
	uint64_t zero_detected_bytes;	/* read as zeroes and discarded (DETECT_ZEROES) */
};

/**
 * struct dmrepl_copy - applies extents from a source to a destination.
 *
 * A copy reads each copy extent from the source and writes it at the
 * same offset of the destination, through queue depth x I/O size bytes
 * of buffers (so memory does not grow with the volume), with O_DIRECT
 * where the offsets allow it. A discard extent becomes BLKDISCARD on a
 * block device (which unmaps on a thin device) or a punched hole in a
 * file, over the part aligned to the destination's discard granularity;
 * the unaligned edges, and everything on a destination that cannot
 * discard, are written as zeroes. A discarded range must read back as
 * zeroes (thin devices, loop devices, files): a destination whose
 * discards leave old data is not supported.
 */
struct dmrepl_copy;

/**
 * dmrepl_copy_new() - prepare to apply extents from @src_path to
 * @dst_path (files or block devices). Nothing is opened yet.
 * Return: 0, -ENOMEM, -EINVAL.
 */
int dmrepl_copy_new(struct dmrepl_ctx *ctx, const char *src_path,
		    const char *dst_path, struct dmrepl_copy **ret_copy);

/**
 * dmrepl_copy_unref() - wait for any I/O in flight, close both ends and
 * free @copy. Return: NULL.
 */
struct dmrepl_copy *dmrepl_copy_unref(struct dmrepl_copy *copy);

/*
 * Setters: only before the first dmrepl_copy_add() (engine, queue depth,
 * I/O size and I/O priority also only before dmrepl_copy_open()); -EBUSY
 * after, -EINVAL for bad values. Queue depth 1-1024 (default 32); I/O
 * size a multiple of 4096 from 4 KiB to 64 MiB (default 1 MiB); ioprio
 * class 1 (realtime), 2 (best effort) or 3 (idle) with level 0-7, or
 * class 0 to leave the thread's priority alone.
 */
int dmrepl_copy_set_engine(struct dmrepl_copy *copy, enum dmrepl_engine engine);
int dmrepl_copy_set_queue_depth(struct dmrepl_copy *copy, unsigned int depth);	/* 0 = default */
int dmrepl_copy_set_io_size(struct dmrepl_copy *copy, uint32_t bytes);		/* 0 = default */
int dmrepl_copy_set_bwlimit(struct dmrepl_copy *copy, uint64_t bytes_per_sec);	/* 0 = none */
int dmrepl_copy_set_ioprio(struct dmrepl_copy *copy, int ioprio_class, int level);
int dmrepl_copy_set_flags(struct dmrepl_copy *copy, unsigned int flags);
/* The total for progress (the sum of the extents to come); may be set at any time. */
int dmrepl_copy_set_total(struct dmrepl_copy *copy, uint64_t total_bytes);
/* Called from within add/finish, at most about every 100 ms, and once at the end. */
int dmrepl_copy_set_progress_fn(struct dmrepl_copy *copy,
				void (*fn)(const struct dmrepl_copy_stats *stats, void *userdata),
				void *userdata);

/**
 * dmrepl_copy_open() - open both ends and choose the engine (logged at
 * LOG_INFO: "engine uring, queue depth 32, 1 MiB I/Os"). Called by the
 * first dmrepl_copy_add() if not called before.
 *
 * Return: 0; -ENOENT, -EACCES, ... (logged with the path); -ENOTSUP when
 * a forced engine is not available.
 */
int dmrepl_copy_open(struct dmrepl_copy *copy);

/* The engine in use after dmrepl_copy_open(): "uring", "aio" or "sync"; NULL before. */
const char *dmrepl_copy_get_engine_name(const struct dmrepl_copy *copy);
/*
 * Size in bytes of source and destination (after open). A character
 * device has no size: UINT64_MAX.
 */
uint64_t dmrepl_copy_get_src_size(const struct dmrepl_copy *copy);
uint64_t dmrepl_copy_get_dst_size(const struct dmrepl_copy *copy);

/**
 * dmrepl_copy_add() - queue one extent.
 *
 * @extent comes from the delta API: COPY reads the source and writes the
 * destination at the same offset, DISCARD unmaps it on the destination.
 * Blocks while the queue is full. Extents need not be aligned; an extent
 * past the end of either side is -EINVAL (logged). Extents are applied
 * in order where they overlap.
 *
 * Return: 0; the first I/O error met so far (-EIO, -ENOSPC, ..., logged
 * with the device path, the operation and the byte offset), after the
 * I/O in flight is reaped; -ECANCELED after dmrepl_copy_cancel().
 */
int dmrepl_copy_add(struct dmrepl_copy *copy, const struct dmrepl_extent *extent);

/**
 * dmrepl_copy_finish() - wait for every queued I/O, then flush the
 * destination (fsync).
 * Return: as dmrepl_copy_add(); 0 means every byte is on stable storage.
 */
int dmrepl_copy_finish(struct dmrepl_copy *copy);

/**
 * dmrepl_copy_cancel() - stop the copy. Thread-safe and
 * async-signal-safe: in-flight I/O completes, nothing more is started,
 * and the running or next add or finish returns -ECANCELED.
 */
void dmrepl_copy_cancel(struct dmrepl_copy *copy);

/* Thread-safe (another thread may poll while add/finish run). */
void dmrepl_copy_get_stats(const struct dmrepl_copy *copy, struct dmrepl_copy_stats *ret_stats);

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
 * The lock is a flock on a file in /var/lib/dmrepl/locks/ (or
 * $DMREPL_LOCK_DIR), which also records each step of the reservation
 * before and after its message, and outlives a reboot as the held root
 * does.
 *
 * The library installs no signal handlers. A process that is killed
 * while it holds the snapshot leaves it reserved in the pool's metadata,
 * where it blocks thin_check and other tools until the next dmrepl run on
 * the pool (or dmrepl_pool_recover()) releases it. So a tool should catch
 * SIGINT, SIGTERM and SIGHUP, stop its work and drop its references
 * normally. (The library blocks those signals only for the moment of
 * each message and its record.)
 *
 * Return: 0; -EBUSY when another dmrepl holds the lock, or when another
 * tool holds the metadata snapshot (the message says how to release it:
 * dmsetup message POOL 0 release_metadata_snap); -EROFS when the pool is
 * read-only or failed (the kernel then accepts no messages); errors of
 * dmrepl_pool_open() and dmrepl_metadata_open().
 */
int dmrepl_metadata_open_pool(struct dmrepl_ctx *ctx, const char *pool_dm_name,
			      struct dmrepl_metadata **ret_md);

/**
 * struct dmrepl_recover_result - what dmrepl_pool_recover() did.
 */
struct dmrepl_recover_result {
	unsigned int devices_removed;	/* dm devices a killed dmrepl left */
	int metadata_snapshot_released;	/* one a killed dmrepl held */
	int destination;		/* the pool holds replicas (lineage) */
	unsigned int resumable;		/* resumable receives, kept */
};

/**
 * dmrepl_pool_recover() - resolve what a killed dmrepl left on a pool.
 *
 * Removes the dm devices "dmrepl-PID-..." that map the pool's thins and
 * whose process is gone (not those a program holds open); releases a
 * metadata snapshot that a killed dmrepl held, judged by the record in
 * the pool's lock file, the held root's superblock copy and the metadata
 * device's openers, never one another tool holds or anything reads;
 * and, when @state_dir (NULL: /var/lib/dmrepl) holds lineage records for
 * the pool, deletes the devices of unfinished replications into it,
 * keeping resumable receives. Every dmrepl call that reserves the pool's
 * metadata does the first two itself; this does all three at once, and
 * says what it did in @ret (filled also on failure).
 *
 * Return: 0; -EBUSY when another dmrepl holds the pool's lock, or a
 * metadata snapshot is held that is not a killed dmrepl's or is being
 * read (the message says which, and how to release it); -EROFS (a
 * read-only or failed pool); errors of dmrepl_pool_open().
 */
int dmrepl_pool_recover(struct dmrepl_ctx *ctx, const char *pool_dm_name,
			const char *state_dir,
			struct dmrepl_recover_result *ret);

/*
 * ---------------------------------------------------------------------
 * Snapshots and replication between live pools (lib/thinpool.c,
 * lib/lineage.c, lib/replicate.c)
 * ---------------------------------------------------------------------
 */

/* dm-thin device ids are 24 bits wide. */
#define DMREPL_THIN_ID_MAX ((UINT64_C(1) << 24) - 1)
/* "Pick an id" (as a new id), or "none" (as a base). */
#define DMREPL_THIN_ID_ANY UINT64_MAX

/**
 * dmrepl_pool_create_snapshot() - a consistent snapshot of thin
 * @origin_id: every active device of the origin is suspended (which
 * flushes its writes), create_snap is sent, and they are resumed, also
 * when the message fails.
 * @new_id: the snapshot's id, or DMREPL_THIN_ID_ANY for one above the
 * highest id in use (read through the pool's metadata snapshot).
 * @ret_id: the id used; may be NULL.
 *
 * Return: 0; -EEXIST (@new_id in use); -ENODATA (no thin @origin_id);
 * -EINVAL; errors of the device-mapper calls, logged.
 */
int dmrepl_pool_create_snapshot(struct dmrepl_pool *pool, uint64_t origin_id,
				uint64_t new_id, uint64_t *ret_id);

/**
 * struct dmrepl_replicate - one replication of a source snapshot into a
 * destination pool: the blueprint's snapshot_replicate(snapshot,
 * source, destination, force_full_copy), run as a job.
 *
 * Full (dmrepl_replicate_set_full(), or no common base): a new thin
 * device in the destination receives the snapshot's mapped extents.
 * Incremental: the destination's replica of the base is snapshotted
 * inside the destination pool and the delta from base to snapshot is
 * applied to that new device. Without dmrepl_replicate_set_base(), the
 * base is the newest snapshot older than @snap_id, unchanged in the
 * source, whose replica the destination holds intact.
 *
 * The lineage (which destination device replicates which source
 * snapshot) is kept in a state directory (default /var/lib/dmrepl, or
 * $DMREPL_STATE_DIR). A device becomes a replica only after every byte
 * is on stable storage; an interrupted or failed replication deletes
 * its unfinished device, and one left by a killed process is deleted by
 * the next replication into the same pool. An incremental is refused
 * when the destination holds no replica of the base, when that replica
 * was written to since it was received, or when the base id in the
 * source now names another device (deleted and reused).
 */
struct dmrepl_replicate;

enum dmrepl_replicate_phase {
	DMREPL_PHASE_PENDING = 0,	/* not started */
	DMREPL_PHASE_PREPARE,		/* locks, checks, stale work removed */
	DMREPL_PHASE_DELTA,		/* reading the source pool's metadata */
	DMREPL_PHASE_COPY,		/* moving the extents */
	DMREPL_PHASE_COMMIT,		/* recording the replica */
	DMREPL_PHASE_DONE,		/* finished, successfully or not */
};

/* "pending", "prepare", "delta", "copy", "commit", "done". */
const char *dmrepl_replicate_phase_name(enum dmrepl_replicate_phase phase);

struct dmrepl_replicate_progress {
	enum dmrepl_replicate_phase phase;
	uint64_t done_bytes;
	uint64_t total_bytes;		/* known from the copy phase on */
	int finished;			/* dmrepl_replicate_wait() will not block */
};

struct dmrepl_replicate_result {
	uint64_t dst_thin_id;		/* the replica */
	uint64_t base_dst_thin_id;	/* replica it was built on; ANY when full */
	uint64_t size_bytes;
	uint64_t extents;
	uint64_t copied_bytes;
	uint64_t discarded_bytes;
	uint64_t zeroed_bytes;
	int full;
	int already_replicated;		/* nothing done: the replica existed */
	/* To another host (an ssh:// destination): */
	uint64_t base_thin_id;		/* the source base chosen; ANY when full */
	int resumed;			/* an interrupted transfer was resumed */
	unsigned int streams;		/* sent (a chain sends several) */
	int dry_run;			/* planned only: extents and copied_bytes
					   say what would be copied */
	char dst_lv[256];		/* "VG/LV" of the replica when the
					   destination is LVM's, else "" */
};

/**
 * dmrepl_replicate_new() - describe a replication of thin @snap_id of
 * pool @src_pool into pool @dst_pool (device-mapper names).
 *
 * @dst_pool may instead be ssh://[USER@]HOST/POOL: a pool on another
 * host. The job then runs `dmrepl receive --negotiate` there through ssh
 * (or dmrepl_replicate_set_transport()), picks the base by itself (the
 * newest snapshot older than @snap_id that the far side holds an intact
 * replica of; dmrepl_replicate_set_base() restricts it to one), resumes
 * an interrupted transfer of the same stream, and sends the stream.
 * Return: 0, -EINVAL, -ENOMEM.
 */
int dmrepl_replicate_new(struct dmrepl_ctx *ctx, const char *src_pool,
			 uint64_t snap_id, const char *dst_pool,
			 struct dmrepl_replicate **ret_rep);
struct dmrepl_replicate *dmrepl_replicate_unref(struct dmrepl_replicate *rep);

/* Setters, before the job starts (else -EBUSY). */
int dmrepl_replicate_set_base(struct dmrepl_replicate *rep, uint64_t base_id);
int dmrepl_replicate_set_full(struct dmrepl_replicate *rep, int full);
/*
 * Plan only: pick the base and count the extents and bytes to copy, and
 * write nothing (not even the destination's lineage folder). Local
 * destinations only (-EOPNOTSUPP with ssh://).
 */
int dmrepl_replicate_set_dry_run(struct dmrepl_replicate *rep, int dry_run);
int dmrepl_replicate_set_state_dir(struct dmrepl_replicate *rep,
				   const char *dir);
/* The snapshot's size; by default that of an active device of it. */
int dmrepl_replicate_set_size(struct dmrepl_replicate *rep,
			      uint64_t size_bytes);
/* Passed to the copy engine (see dmrepl_copy_set_*()). */
int dmrepl_replicate_set_engine(struct dmrepl_replicate *rep,
				enum dmrepl_engine engine);
int dmrepl_replicate_set_queue_depth(struct dmrepl_replicate *rep,
				     unsigned int depth);
int dmrepl_replicate_set_io_size(struct dmrepl_replicate *rep, uint32_t bytes);
int dmrepl_replicate_set_bwlimit(struct dmrepl_replicate *rep,
				 uint64_t bytes_per_sec);
int dmrepl_replicate_set_ioprio(struct dmrepl_replicate *rep,
				int ioprio_class, int level);
int dmrepl_replicate_set_copy_flags(struct dmrepl_replicate *rep,
				    unsigned int flags);
/*
 * An ssh:// destination only (else -EINVAL): the command that reaches
 * the far side instead of ssh (it gets the far side's command line as
 * one argument, as ssh does); dmrepl's path there; the state directory
 * there; zstd compression of the stream (level 1-19, 0 off); a chain
 * (also every snapshot between the base and @snap_id, each its own
 * replica); this pool's name in the stream (default HOSTNAME:POOL).
 */
int dmrepl_replicate_set_transport(struct dmrepl_replicate *rep,
				   const char *command);
int dmrepl_replicate_set_remote_command(struct dmrepl_replicate *rep,
					const char *dmrepl_path);
int dmrepl_replicate_set_remote_state_dir(struct dmrepl_replicate *rep,
					  const char *dir);
/*
 * The replica gets LVM tag @tag too, in the transaction that commits it
 * (a sync job's, which finds its replicas by it); the destination must be
 * an LVM pool. NULL: none. -EINVAL: not a tag LVM takes.
 */
int dmrepl_replicate_set_replica_tag(struct dmrepl_replicate *rep, const char *tag);
/*
 * An ssh:// destination with a replica tag: once the replica is
 * committed, the far side removes all but the @keep newest intact
 * replicas carrying that tag (of the sources its key allows; never the
 * new one). 0 (the default): it removes nothing. A local destination's
 * retention is the caller's.
 */
int dmrepl_replicate_set_remote_keep(struct dmrepl_replicate *rep, unsigned int keep);
/* After the job: the far side's @i-th removed replica, "VG/LV", or NULL. */
const char *dmrepl_replicate_get_pruned(struct dmrepl_replicate *rep, size_t i);
int dmrepl_replicate_set_compression(struct dmrepl_replicate *rep, int level);
int dmrepl_replicate_set_chain(struct dmrepl_replicate *rep, int chain);
int dmrepl_replicate_set_source_name(struct dmrepl_replicate *rep,
				     const char *name);
/*
 * The snapshot's LVM name, "VG/LV", when the caller knows it (else it is
 * asked of LVM when needed): a replica in a pool that LVM manages is an
 * LV named after it.
 */
int dmrepl_replicate_set_snap_lv(struct dmrepl_replicate *rep,
				 const char *vg_lv);

/**
 * dmrepl_snapshot_replicate() - start the replication as a job on a
 * thread of its own, and return at once. The job logs through @rep's
 * context from that thread. Poll it with dmrepl_replicate_get_progress(),
 * stop it with dmrepl_replicate_cancel(), and collect it with
 * dmrepl_replicate_wait().
 * Return: 0; -EBUSY (already started); -EAGAIN/-ENOMEM (no thread).
 */
int dmrepl_snapshot_replicate(struct dmrepl_replicate *rep);
/* Thread-safe. */
int dmrepl_replicate_get_progress(struct dmrepl_replicate *rep,
				  struct dmrepl_replicate_progress *ret);
/* Thread-safe (not from a signal handler): the job stops, undoes its
 * unfinished device, and ends with -ECANCELED. */
void dmrepl_replicate_cancel(struct dmrepl_replicate *rep);
/**
 * dmrepl_replicate_wait() - wait for the job to end.
 * Return: the job's result: 0 with *@ret filled (may be NULL); -ECANCELED;
 * -ENOENT (no such snapshot, or base replica missing); -ESTALE (the
 * base replica was written to, or the base id was reused); -EBUSY
 * (another replication into the pool runs); -ENOSPC; -EIO; another
 * -errno; -EINVAL when never started.
 */
int dmrepl_replicate_wait(struct dmrepl_replicate *rep,
			  struct dmrepl_replicate_result *ret);
/* Run the job on the calling thread: start and wait in one. */
int dmrepl_replicate_run(struct dmrepl_replicate *rep,
			 struct dmrepl_replicate_result *ret);

enum dmrepl_replica_state {
	DMREPL_REPLICA_OK = 0,		/* unchanged since it was received */
	DMREPL_REPLICA_MODIFIED,	/* written to since: no longer a base */
	DMREPL_REPLICA_MISSING,		/* deleted from the pool */
};

struct dmrepl_replica_info {
	const char *src_pool;
	uint64_t src_thin_id;
	uint64_t dst_thin_id;
	uint64_t base_dst_thin_id;	/* DMREPL_THIN_ID_ANY: a full copy */
	uint64_t size_bytes;
	uint64_t received_time;		/* seconds since the epoch */
	enum dmrepl_replica_state state;
	/* The source snapshot's identity when it was replicated. */
	uint32_t src_creation_time;	/* the source pool's snapshot counter */
	uint64_t src_root;		/* its mapping tree's root block */
	uint64_t src_mapped_blocks;
	const char *src_name;		/* "VG/LV" of an LVM source, or NULL */
	const char *dst_lv;		/* "VG/LV" of the replica when LVM
					   manages the pool, or NULL */
};

/* "ok", "modified", "missing". */
const char *dmrepl_replica_state_name(enum dmrepl_replica_state state);

/**
 * dmrepl_replicas_foreach() - the replicas pool @dst_pool holds, by
 * destination id, each checked against the pool's metadata.
 * @state_dir: NULL for the default.
 * Return: 0; what @fn returned, when not 0; errors of
 * dmrepl_metadata_open_pool().
 */
int dmrepl_replicas_foreach(struct dmrepl_ctx *ctx, const char *state_dir,
			    const char *dst_pool,
			    int (*fn)(const struct dmrepl_replica_info *info,
				      void *userdata),
			    void *userdata);

/*
 * ---------------------------------------------------------------------
 * Live migration (lib/migrate.c)
 * ---------------------------------------------------------------------
 */

/**
 * struct dmrepl_migrate - moves an LVM thin volume into another VG's thin
 * pool while it stays in use: converging incrementals, then a short
 * final round with the volume suspended.
 *
 * Rounds: each takes an LVM snapshot of the volume and replicates it,
 * the first in full, each later one from the round before. After each,
 * what changed since (through a held metadata snapshot) is compared with
 * the converge size (dmrepl_migrate_set_converge(); by default what the
 * last incremental round's copy rate ships in 0.5 s, at least 4 MiB;
 * after the first, full round, 4 MiB). Larger, and not
 * smaller than after the round before, or the rounds (default 10) run
 * out: the job ends with -EAGAIN, the reason in the result, and the
 * volume untouched and running.
 *
 * The final round: the volume-to-be is made first (an LVM snapshot of
 * the last replica, under the volume's name, tagged dmrepl.migrating);
 * then the volume is suspended (its I/O queued, none failed), the last
 * delta is read from the quiet volume and written into the volume-to-be,
 * which one lvchange commits (tag dmrepl.migrated:VG/LV); the switch
 * function runs (it moves the volume's user, while the volume is still
 * suspended); the volume is resumed. If anything in the final round
 * fails, is cancelled, or the switch function returns < 0, the volume is
 * resumed unchanged and stays the volume of record, and the volume-to-be
 * is removed (or, once committed, tagged dmrepl.migrate-not-switched).
 * A killed job leaves a record: dmrepl_migrate_recover() (and the next
 * job) resumes its volume. The source volume is never deleted; of the
 * rounds' snapshots and replicas, the last pair stays (a common base).
 */
struct dmrepl_migrate;

#define DMREPL_MIGRATE_MAX_ROUNDS 64

enum dmrepl_migrate_phase {
	DMREPL_MIGRATE_PENDING = 0,
	DMREPL_MIGRATE_ROUND,		/* a round: snapshot and replicate */
	DMREPL_MIGRATE_FINAL,		/* the final round */
	DMREPL_MIGRATE_SWITCH,		/* the switch function runs */
	DMREPL_MIGRATE_DONE,
};

struct dmrepl_migrate_progress {
	enum dmrepl_migrate_phase phase;
	unsigned int round;		/* 1, 2, ... */
	uint64_t done_bytes, total_bytes;	/* of the round's copy */
	int finished;			/* dmrepl_migrate_wait() will not block */
};

struct dmrepl_migrate_round {
	uint64_t bytes;			/* copied */
	double seconds;
	int full;
};

struct dmrepl_migrate_result {
	unsigned int nr_rounds;		/* the final one included */
	struct dmrepl_migrate_round rounds[DMREPL_MIGRATE_MAX_ROUNDS];
	uint64_t size_bytes;		/* the volume's */
	uint64_t total_bytes;		/* copied, all rounds */
	uint64_t converge_bytes;	/* the last converge size used */
	uint64_t suspended_ms;		/* suspend to resume; 0: never suspended */
	int converged;			/* a final round was tried */
	int switched;			/* the switch succeeded: dst_lv is the volume */
	double seconds;
	char dst_lv[256];		/* "VG/LV" of the committed volume, or "" */
	char reason[256];		/* why it stopped without a final round */
};

/*
 * A job that moves thin LV @src_vg_lv into thin pool @dst_vg_pool:
 * "VG/POOL" of another VG, or "ssh://[USER@]HOST/VG/POOL" of another
 * host, where `dmrepl receive --migrate` does the destination's part
 * (the rounds are replications there; the volume becomes
 * ssh://HOST/VG/LV, tagged dmrepl.migrated:THISHOST:VG/LV).
 */
int dmrepl_migrate_new(struct dmrepl_ctx *ctx, const char *src_vg_lv,
		       const char *dst_vg_pool, struct dmrepl_migrate **ret);
struct dmrepl_migrate *dmrepl_migrate_unref(struct dmrepl_migrate *m);
/* 0: what the last incremental round's rate ships in 0.5 s (at least 4 MiB). */
int dmrepl_migrate_set_converge(struct dmrepl_migrate *m, uint64_t bytes);
int dmrepl_migrate_set_max_rounds(struct dmrepl_migrate *m, unsigned int n);
/*
 * Called in the final round with the volume suspended and the
 * destination committed as @dst_vg_lv: move the volume's user there.
 * Return < 0 to refuse: the volume is resumed and stays the volume.
 */
int dmrepl_migrate_set_switch_fn(struct dmrepl_migrate *m,
				 int (*fn)(const char *dst_vg_lv, void *data), void *data);
int dmrepl_migrate_set_state_dir(struct dmrepl_migrate *m, const char *dir);
/*
 * Another host's: how to reach it (as dmrepl_replicate_set_transport()),
 * its dmrepl and its state directory. -EINVAL for a local destination.
 */
int dmrepl_migrate_set_transport(struct dmrepl_migrate *m, const char *command);
int dmrepl_migrate_set_remote_command(struct dmrepl_migrate *m, const char *dmrepl_path);
int dmrepl_migrate_set_remote_state_dir(struct dmrepl_migrate *m, const char *dir);
/* Start on a thread of its own; poll, cancel, wait. */
int dmrepl_migrate_start(struct dmrepl_migrate *m);
int dmrepl_migrate_get_progress(struct dmrepl_migrate *m,
				struct dmrepl_migrate_progress *ret);
void dmrepl_migrate_cancel(struct dmrepl_migrate *m);
/*
 * Return: 0 migrated (result's switched); -EAGAIN did not converge (the
 * reason in the result); -ECANCELED; another -errno. *@ret is filled
 * whatever the result.
 */
int dmrepl_migrate_wait(struct dmrepl_migrate *m, struct dmrepl_migrate_result *ret);
int dmrepl_migrate_run(struct dmrepl_migrate *m, struct dmrepl_migrate_result *ret);
/*
 * The volumes that killed migrate jobs left suspended (their records in
 * @state_dir/migrate) resumed, and their uncommitted destinations
 * removed (committed ones tagged dmrepl.migrate-not-switched).
 */
int dmrepl_migrate_recover(struct dmrepl_ctx *ctx, const char *state_dir,
			   unsigned int *ret_resumed);

/*
 * ---------------------------------------------------------------------
 * Verify (lib/verify.c)
 * ---------------------------------------------------------------------
 */

/**
 * struct dmrepl_verify - compares two files or block devices by hashing.
 *
 * Each range given to dmrepl_verify_range() is read on both sides, in
 * large sequential reads (O_DIRECT on block devices, so the device's
 * contents are compared, not the page cache), both sides at once. Each
 * chunk (by default 1 MiB; chunks start at multiples of the chunk size,
 * clipped to the range) is hashed with XXH3-128 on each side and the
 * hashes compared. Memory is bounded (two 8 MiB buffers) whatever the
 * size of the devices.
 */
struct dmrepl_verify;

/**
 * dmrepl_verify_new() - prepare to compare @path1 with @path2 (regular
 * files or block devices). Nothing is opened yet.
 * Return: 0, -EINVAL, -ENOMEM.
 */
int dmrepl_verify_new(struct dmrepl_ctx *ctx, const char *path1, const char *path2,
		      struct dmrepl_verify **ret_verify);
struct dmrepl_verify *dmrepl_verify_unref(struct dmrepl_verify *verify);

/**
 * dmrepl_verify_set_chunk_size() - the unit of comparison, and so of the
 * mismatching ranges reported: a multiple of 512 from 512 bytes to 64 MiB;
 * 0 for the default, 1 MiB.
 * Return: 0; -EINVAL (logged); -EBUSY after dmrepl_verify_open().
 */
int dmrepl_verify_set_chunk_size(struct dmrepl_verify *verify, uint32_t bytes);

/**
 * dmrepl_verify_set_total() - the bytes all ranges to come add up to, for
 * progress; may be set at any time. 0: unknown.
 */
int dmrepl_verify_set_total(struct dmrepl_verify *verify, uint64_t total_bytes);

/**
 * dmrepl_verify_set_progress_fn() - have @fn called from within
 * dmrepl_verify_range() with the bytes compared so far and the total:
 * at most about every 100 ms, and when the total is reached.
 */
int dmrepl_verify_set_progress_fn(struct dmrepl_verify *verify,
				  void (*fn)(uint64_t done_bytes, uint64_t total_bytes,
					     void *userdata),
				  void *userdata);

/**
 * dmrepl_verify_open() - open both sides and read their sizes. Sizes
 * that differ are not an error: compare them with
 * dmrepl_verify_get_size(). Called by the first dmrepl_verify_range()
 * if not before.
 * Return: 0; -ENOENT, -EACCES, ... (logged with the path); -EINVAL for
 * something neither a regular file nor a block device; -ENOMEM.
 */
int dmrepl_verify_open(struct dmrepl_verify *verify);

/**
 * dmrepl_verify_get_size() - the size in bytes of side @side (0 for
 * @path1, 1 for @path2); 0 before dmrepl_verify_open().
 */
uint64_t dmrepl_verify_get_size(const struct dmrepl_verify *verify, int side);

/**
 * dmrepl_verify_range() - hash and compare [@offset_bytes,
 * @offset_bytes + @length_bytes) on both sides.
 *
 * A difference is not an error: it is recorded in the result. Give
 * ranges in increasing offset order: mismatching chunks that are
 * adjacent, within one range or across two calls, make one mismatching
 * range.
 * Return: 0 (equal or not: see dmrepl_verify_get_result()); -errno of a
 * failed read (logged with the path and byte offset; -EIO when a file
 * ended early), which every later call returns too; -EINVAL (logged)
 * when the range ends past the end of either side; -ECANCELED after
 * dmrepl_verify_cancel(); errors of dmrepl_verify_open().
 */
int dmrepl_verify_range(struct dmrepl_verify *verify, uint64_t offset_bytes,
			uint64_t length_bytes);

/**
 * struct dmrepl_verify_result - what the ranges compared so far showed.
 * @compared_bytes: the bytes compared on each side.
 * @mismatched_bytes: the bytes of the chunks whose hashes differ.
 * @nr_mismatches: maximal mismatching ranges (adjacent chunks merged).
 * @digest: XXH3-128 of each side's compared bytes, in the order compared,
 * in canonical (big-endian) byte order: for one whole-device range, what
 * xxh128sum prints for that device.
 */
struct dmrepl_verify_result {
	uint64_t compared_bytes;
	uint64_t mismatched_bytes;
	uint64_t nr_mismatches;
	uint8_t digest[2][16];
};

/** dmrepl_verify_get_result() - Return: 0, -EINVAL. */
int dmrepl_verify_get_result(const struct dmrepl_verify *verify,
			     struct dmrepl_verify_result *ret);

/**
 * dmrepl_verify_get_mismatch() - mismatching range @index (from 0): the
 * first 16 are kept, in the order found.
 * Return: 0; -ENOENT past the last one kept.
 */
int dmrepl_verify_get_mismatch(const struct dmrepl_verify *verify, unsigned int index,
			       uint64_t *ret_offset_bytes, uint64_t *ret_length_bytes);

/**
 * dmrepl_verify_cancel() - make dmrepl_verify_range() return -ECANCELED
 * before its next read (within one 8 MiB span). Thread-safe and
 * async-signal-safe.
 */
void dmrepl_verify_cancel(struct dmrepl_verify *verify);

#ifdef __cplusplus
}
#endif

#endif /* LIBDMREPL_H */
