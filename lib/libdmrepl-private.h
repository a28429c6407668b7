/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal interfaces shared between libdmrepl's source files, its tests
 * and its tools (which link the non-installed libdmrepl-internal.la).
 */
#ifndef LIBDMREPL_PRIVATE_H
#define LIBDMREPL_PRIVATE_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <syslog.h>

#include "libdmrepl.h"

#define DMREPL_EXPORT __attribute__((visibility("default")))

#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _cleanup_(fn) __attribute__((cleanup(fn)))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Little-endian fields of on-disk structures, at any alignment. */
static inline uint32_t get_le32(const uint8_t *b, size_t off)
{
	uint32_t v;

	memcpy(&v, b + off, sizeof(v));
	return le32toh(v);
}

static inline uint64_t get_le64(const uint8_t *b, size_t off)
{
	uint64_t v;

	memcpy(&v, b + off, sizeof(v));
	return le64toh(v);
}

void dmrepl_log(struct dmrepl_ctx *ctx, int priority, const char *file,
		int line, const char *fn, const char *format, ...) _printf_(6, 7);

/*
 * The condition is checked before the arguments are evaluated, so a
 * debug message costs one comparison when debugging is off.
 */
#define dmrepl_log_cond(ctx, prio, ...)                                       \
	do {                                                                  \
		if (dmrepl_get_log_priority(ctx) >= (prio))                   \
			dmrepl_log(ctx, prio, __FILE__, __LINE__, __func__,   \
				   __VA_ARGS__);                              \
	} while (0)

#define dbg(ctx, ...) dmrepl_log_cond(ctx, LOG_DEBUG, __VA_ARGS__)
#define info(ctx, ...) dmrepl_log_cond(ctx, LOG_INFO, __VA_ARGS__)
#define notice(ctx, ...) dmrepl_log_cond(ctx, LOG_NOTICE, __VA_ARGS__)
#define warn(ctx, ...) dmrepl_log_cond(ctx, LOG_WARNING, __VA_ARGS__)
#define err(ctx, ...) dmrepl_log_cond(ctx, LOG_ERR, __VA_ARGS__)

/* Parse a DMREPL_LOG-style priority: "0".."7" or a syslog name. */
int dmrepl_parse_log_priority(const char *s, int *ret_priority);

/* SIGKILL this process here if DMREPL_TEST_KILL_AT names @name (tests). */
void dmrepl_test_point(const char *name);

/*
 * ---- Thin-pool metadata internals (crc32c.c, metadata.c, btree.c, thin.c) ----
 */

#define DMREPL_MD_BLOCK_SIZE 4096u

/*
 * CRC-32C without the final inversion, as dm computes it: a block's
 * checksum is dmrepl_crc32c(0xffffffff, block + 4, 4092) ^ a per-type
 * constant.
 */
uint32_t dmrepl_crc32c(uint32_t crc, const void *data, size_t len);
/*
 * The two implementations dmrepl_crc32c() chooses between at load time,
 * for tests: slicing-by-8, and the SSE4.2 crc32 instruction (which falls
 * back to slicing-by-8 where the CPU lacks it).
 */
uint32_t dmrepl_crc32c_sw(uint32_t crc, const void *data, size_t len);
uint32_t dmrepl_crc32c_hw(uint32_t crc, const void *data, size_t len);
bool dmrepl_crc32c_hw_supported(void);

/*
 * Open metadata held in memory (fuzzing, tests). @data must stay valid
 * until the last reference is dropped; @name names it in messages.
 */
int dmrepl_metadata_open_memory(struct dmrepl_ctx *ctx, const void *data,
				size_t size, const char *name,
				unsigned int flags,
				struct dmrepl_metadata **ret_md);

/*
 * Run @fn(@data) when the last reference is dropped, after the device
 * is closed: dmrepl_metadata_open_pool() releases the held metadata
 * snapshot and the pool lock here.
 */
void dmrepl_metadata_set_release_fn(struct dmrepl_metadata *md,
				    void (*fn)(void *data), void *data);

struct dmrepl_ctx *dmrepl_metadata_get_ctx(const struct dmrepl_metadata *md);
/* The image's path or name, for messages. */
const char *dmrepl_metadata_get_name(const struct dmrepl_metadata *md);
uint64_t dmrepl_metadata_get_mapping_root(const struct dmrepl_metadata *md);
uint64_t dmrepl_metadata_get_details_root(const struct dmrepl_metadata *md);
/*
 * Metadata blocks read so far, counted when a block is handed to its
 * reader (a prefetched block counts once it is used): tests check that
 * shared subtrees are skipped.
 */
uint64_t dmrepl_metadata_get_blocks_read(const struct dmrepl_metadata *md);

struct dmrepl_snap_copy;
/*
 * The held root's superblock copy at @blocknr of the metadata device
 * @path (O_DIRECT, checked). Return: 0, -EBADMSG (not a superblock copy:
 * logged), -EIO, or the open's -errno.
 */
int dmrepl_metadata_read_copy(struct dmrepl_ctx *ctx, const char *path,
			      uint64_t blocknr, struct dmrepl_snap_copy *ret);

/* A buffer for one metadata block, aligned for O_DIRECT; free() it. */
void *dmrepl_metadata_block_alloc(void);
/*
 * Read metadata block @blocknr into @buf. Return: 0; -EBADMSG if
 * @blocknr is past the end the superblock gives; -EIO (short read: a
 * truncated image, or a read error).
 */
int dmrepl_metadata_read_block(struct dmrepl_metadata *md, uint64_t blocknr,
			       void *buf);

/*
 * Read-ahead (lib/readahead.c). A metadata device or image opened from a
 * file reads through a bounded pool of DMREPL_READAHEAD_BLOCKS block
 * buffers; a walk submits the blocks it will need with
 * dmrepl_metadata_prefetch(), and they are read with io_uring, several
 * in flight, blocks that are consecutive on disk merged into one read.
 * Where io_uring is unavailable (ENOSYS, EPERM from
 * kernel.io_uring_disabled, seccomp), the same batches are read at once
 * with preadv. dmrepl_metadata_read_block() takes a block from the pool
 * when it is there, else reads it; the caller checks it, as before.
 *
 * DMREPL_READAHEAD=MODE[:BLOCKS] in the environment overrides the mode
 * (uring, sync: no io_uring; off: no read-ahead, one pread per block)
 * and the pool size (8 to 4096 blocks), for tests and benchmarks.
 */
#define DMREPL_READAHEAD_BLOCKS 256u
/* dmrepl_metadata_prefetch() looks at no more blocks than this at once. */
#define DMREPL_READAHEAD_BATCH_MAX 256u

enum dmrepl_readahead_mode {
	DMREPL_READAHEAD_URING = 0,
	DMREPL_READAHEAD_SYNC,
	DMREPL_READAHEAD_OFF,
};

struct dmrepl_readahead_stats {
	enum dmrepl_readahead_mode mode; /* in effect: uring may fall back */
	uint64_t requests;	/* reads sent to the device (merged or not) */
	uint64_t blocks_prefetched;
	uint64_t blocks_unused;	/* prefetched, then forgotten or dropped */
	uint64_t hits;		/* read_block served from the pool */
};

struct dmrepl_readahead;

/* @fd stays owned by the caller. Return: 0, -ENOMEM. */
int dmrepl_readahead_new(struct dmrepl_ctx *ctx, int fd, const char *name,
			 enum dmrepl_readahead_mode mode, unsigned int nr_blocks,
			 struct dmrepl_readahead **ret_ra);
void dmrepl_readahead_free(struct dmrepl_readahead *ra);
/* How many more blocks dmrepl_readahead_submit() accepts now. */
unsigned int dmrepl_readahead_room(struct dmrepl_readahead *ra);
/* Start reading @blocks (at most the room); returns how many it took. */
size_t dmrepl_readahead_submit(struct dmrepl_readahead *ra,
			       const uint64_t *blocks, size_t n);
/*
 * Copy block @blocknr into @buf: from the pool, waiting for its read if
 * it is in flight, or with a pread. @ret_got: the bytes read (< 4096 at
 * the end of the file). Return: 0, or -errno of a failed read.
 */
int dmrepl_readahead_read(struct dmrepl_readahead *ra, uint64_t blocknr,
			  void *buf, size_t *ret_got);
/* The walk will not read @blocknr after all: free its buffer. */
void dmrepl_readahead_forget(struct dmrepl_readahead *ra, uint64_t blocknr);
/*
 * The contents of @blocknr if it has been read ahead, is not used yet
 * and not marked, else NULL; unchecked, so only a hint. A walk uses this
 * to submit the children of nodes it has not reached yet, and marks a
 * node once all of them are submitted.
 */
const void *dmrepl_readahead_peek(struct dmrepl_readahead *ra,
				  uint64_t blocknr);
void dmrepl_readahead_mark(struct dmrepl_readahead *ra, uint64_t blocknr);
/*
 * While dmrepl_readahead_read() waits for a block, it calls @fn(@data)
 * after each completion, so the walk can keep the queue full.
 */
void dmrepl_readahead_set_refill(struct dmrepl_readahead *ra,
				 void (*fn)(void *data), void *data);
void dmrepl_readahead_get_stats(const struct dmrepl_readahead *ra,
				struct dmrepl_readahead_stats *ret_stats);
/* Parse DMREPL_READAHEAD: 0, or -EINVAL. */
int dmrepl_readahead_parse(const char *s, enum dmrepl_readahead_mode *ret_mode,
			   unsigned int *ret_nr_blocks);

/* Read-ahead through the metadata: no-ops for memory-backed metadata. */
unsigned int dmrepl_metadata_prefetch_room(const struct dmrepl_metadata *md);
/* Blocks past the end of the metadata are left for read_block to refuse. */
size_t dmrepl_metadata_prefetch(struct dmrepl_metadata *md,
				const uint64_t *blocks, size_t n);
void dmrepl_metadata_prefetch_forget(struct dmrepl_metadata *md,
				     uint64_t blocknr);
const void *dmrepl_metadata_prefetch_peek(struct dmrepl_metadata *md,
					  uint64_t blocknr);
void dmrepl_metadata_prefetch_mark(struct dmrepl_metadata *md,
				   uint64_t blocknr);
/*
 * The walk that reads ahead (one at a time): its @fn(@data) is called
 * while a read waits. @fn NULL: the walk with @data is done.
 */
void dmrepl_metadata_set_refill(struct dmrepl_metadata *md,
				void (*fn)(void *data), void *data);
/* Return: 0; -ENODATA for memory-backed metadata (no read-ahead). */
int dmrepl_metadata_get_readahead_stats(const struct dmrepl_metadata *md,
					struct dmrepl_readahead_stats *ret);

/* Bottom-level tree values: the data block in the top 40 bits. */
#define DMREPL_BLOCK_TIME_SHIFT 24

/*
 * The root of @thin_id's own mapping tree, from the top-level tree.
 * Return: 0, -ENOENT, -EBADMSG, -ELOOP, -EIO, -ENOMEM.
 */
int dmrepl_thin_get_mapping_root(struct dmrepl_metadata *md, uint64_t thin_id,
				 uint64_t *ret_root);

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
};

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
/* @name is "dmrepl-PID-..." and process PID is gone. */
bool dmrepl_dm_name_dead_owner(const char *name);

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
int dmrepl_thin_active_find(struct dmrepl_pool *pool, uint64_t thin_id,
			    struct dmrepl_thin_active **ret);
uint64_t dmrepl_thin_active_get_size(const struct dmrepl_thin_active *a);
int dmrepl_thin_active_borrow(struct dmrepl_thin_active *a, uint64_t min_bytes,
			      struct dmrepl_thin_dev **ret_dev);
void dmrepl_thin_active_free(struct dmrepl_thin_active *a);

/*
 * ---- The mapped extents of one device (mapped.c): a full copy ----
 * An iterator like dmrepl_delta_next_extent(): COPY extents of the
 * maximal runs of mapped blocks, in offset order.
 * Return of next: 0 and *@ret filled; 1 at the end; -errno (final).
 */
struct dmrepl_mapped;
int dmrepl_mapped_new(struct dmrepl_metadata *md, uint64_t thin_id,
		      struct dmrepl_mapped **ret);
int dmrepl_mapped_next_extent(struct dmrepl_mapped *m,
			      struct dmrepl_extent *ret);
struct dmrepl_mapped *dmrepl_mapped_unref(struct dmrepl_mapped *m);

/*
 * What a replication ships (mapped.c): the extents of the delta from
 * @from to @to, or every mapped extent of @thin_id. next returns as
 * dmrepl_delta_next_extent() does: 0, 1 at the end, or -errno.
 */
struct dmrepl_extent_iter;
int dmrepl_extent_iter_delta(struct dmrepl_metadata *md, uint64_t from,
			     uint64_t to, struct dmrepl_extent_iter **ret);
int dmrepl_extent_iter_mapped(struct dmrepl_metadata *md, uint64_t thin_id,
			      struct dmrepl_extent_iter **ret);
int dmrepl_extent_iter_next(struct dmrepl_extent_iter *it,
			    struct dmrepl_extent *ret);
void dmrepl_extent_iter_free(struct dmrepl_extent_iter *it);

/*
 * ---- Lineage records in the state directory (lineage.c) ----
 */

/* What identifies one thin device's contents over time. */
struct dmrepl_thin_ident {
	uint64_t thin_id;
	uint32_t creation_time;	/* the pool's snapshot counter at creation */
	uint64_t root;		/* its mapping tree's root block */
	uint64_t mapped_blocks;
};

/* Read @thin_id's identity. Return: 0, -ENOENT, or a read error. */
int dmrepl_thin_ident_read(struct dmrepl_metadata *md, uint64_t thin_id,
			   struct dmrepl_thin_ident *ret);
bool dmrepl_thin_ident_equal(const struct dmrepl_thin_ident *a,
			     const struct dmrepl_thin_ident *b);
/* One above the highest thin id in @md (0 when none). -ENOSPC when none is left. */
int dmrepl_metadata_next_free_id(struct dmrepl_metadata *md, uint64_t *ret_id);

struct dmrepl_lineage_record {
	char src_pool[128];		/* dm names are at most 127 bytes */
	struct dmrepl_thin_ident src;	/* the source snapshot */
	struct dmrepl_thin_ident dst;	/* its replica (staging: being written) */
	uint64_t size_bytes;
	uint64_t base_dst_id;		/* DMREPL_THIN_ID_ANY for a full copy */
	/*
	 * A hidden snapshot of the replica, taken when it was received. It
	 * shares every block, so any write to the replica must break the
	 * sharing and so changes the replica's mapping tree: without it an
	 * overwrite of an unshared block changes no metadata at all.
	 */
	uint64_t anchor_id;
	uint64_t time;			/* seconds since the epoch */
	pid_t pid;			/* staging: the replicating process */
	/*
	 * Staging of a stream being received (receive.c): it survives its
	 * process, holding every change below @checkpoint, flushed, of the
	 * stream whose identity hash is @stream_hash.
	 */
	bool resumable;
	uint64_t stream_hash;
	uint64_t checkpoint;
};

/* $DMREPL_STATE_DIR, else /var/lib/dmrepl. */
const char *dmrepl_state_dir_default(void);
/* Return: the length, or -ENAMETOOLONG. */
int dmrepl_lineage_format(const struct dmrepl_lineage_record *rec, char *buf,
			  size_t size);
/* Return: 0, or -EINVAL for anything malformed or missing. */
int dmrepl_lineage_parse(const char *text, size_t len,
			 struct dmrepl_lineage_record *ret);
/* The destination pool's folder: STATE/NAME (NAME escaped as lock files). */
int dmrepl_lineage_dir(const char *state_dir, const char *dst_pool, char *buf,
		       size_t size);
int dmrepl_lineage_dir_create(struct dmrepl_ctx *ctx, const char *state_dir,
			      const char *dir);
/* @kind: "replica" or "staging". Writes atomically (rename). */
int dmrepl_lineage_write(struct dmrepl_ctx *ctx, const char *dir,
			 const char *kind,
			 const struct dmrepl_lineage_record *rec);
int dmrepl_lineage_remove(struct dmrepl_ctx *ctx, const char *dir,
			  const char *kind, uint64_t dst_id);
/* Malformed records are skipped with a warning. */
int dmrepl_lineage_foreach(struct dmrepl_ctx *ctx, const char *dir,
			   const char *kind,
			   int (*fn)(const struct dmrepl_lineage_record *rec,
				     void *userdata),
			   void *userdata);
/* An exclusive flock on DIR/lock, without waiting: -EBUSY (logged). */
int dmrepl_lineage_lock(struct dmrepl_ctx *ctx, const char *dir, int *ret_fd);
/*
 * The newest replica record in @dir of thin @src_id of @src_pool (a
 * source id may have been replicated twice). Return: 0, -ENOENT (none;
 * not logged), or the error of reading @dir.
 */
int dmrepl_lineage_find_replica(struct dmrepl_ctx *ctx, const char *dir,
				const char *src_pool, uint64_t src_id,
				struct dmrepl_lineage_record *ret);

#include <stdio.h>

/*
 * lib/replicas.c, for verify. dmrepl_replica_lookup(): the replica of
 * thin @src_id of @src_pool that @dst_pool holds (its newest lineage
 * record under @state_dir, NULL for the default) and its state, ok or
 * modified (written to since it was received: not an error, a
 * comparison shows how). Return: 0; -ENOENT when there is no record or
 * the replica was deleted (logged).
 * dmrepl_replica_check_source(): check, through the source pool's
 * metadata snapshot (released before it returns), that thin @rec->src is
 * still the snapshot that was replicated; with @spool, write its mapped
 * extents there (struct dmrepl_extent, binary) and count them. Return:
 * 0; -ESTALE when it was deleted, its id reused or written to (logged).
 */
int dmrepl_replica_lookup(struct dmrepl_ctx *ctx, const char *state_dir,
			  const char *src_pool, uint64_t src_id,
			  const char *dst_pool,
			  struct dmrepl_lineage_record *ret_rec,
			  enum dmrepl_replica_state *ret_state);
int dmrepl_replica_check_source(struct dmrepl_ctx *ctx, const char *dst_pool,
				const struct dmrepl_lineage_record *rec,
				FILE *spool, uint64_t *ret_nr_extents,
				uint64_t *ret_total_bytes);

/*
 * ---- Persistent-data btrees (btree.c) ----
 *
 * A node is a 4096-byte block: a 32-byte header, then max_entries le64
 * keys, then max_entries values of value_size bytes. Internal nodes hold
 * le64 child block numbers; child i holds keys in [key i, key i+1).
 */

#define DMREPL_BTREE_MAX_DEPTH 16

struct btree_node {
	uint64_t blocknr;
	uint32_t nr_entries;
	uint32_t max_entries;
	uint32_t value_size;
	bool leaf;
	const uint8_t *data;
};

#define DMREPL_BTREE_NODE_HEADER_SIZE 32u

/* Inline: a delta calls these for every mapping it compares. */
static inline uint64_t btree_node_key(const struct btree_node *n, uint32_t i)
{
	return get_le64(n->data, DMREPL_BTREE_NODE_HEADER_SIZE + (size_t)i * 8);
}

static inline const void *btree_node_value(const struct btree_node *n,
					   uint32_t i)
{
	return n->data + DMREPL_BTREE_NODE_HEADER_SIZE +
	       (size_t)n->max_entries * 8 + (size_t)i * n->value_size;
}

/*
 * Look up @key in the tree at @root, whose leaves hold @value_size-byte
 * values, and copy its value to @ret_value. @tree names the tree in
 * messages. Return: 0; -ENOENT; -EBADMSG (corrupt node, logged); -ELOOP
 * (cycle or depth limit, logged); -EIO; -ENOMEM.
 */
int btree_lookup(struct dmrepl_metadata *md, const char *tree, uint64_t root,
		 uint32_t value_size, uint64_t key, void *ret_value);

/*
 * An in-order cursor over one tree, with an explicit stack of at most
 * DMREPL_BTREE_MAX_DEPTH nodes. The head item is either a leaf entry or
 * a subtree not yet read, so a caller can skip a subtree without reading
 * it (btree_cursor_skip) or read it (btree_cursor_descend).
 */
enum btree_item_kind {
	BTREE_ITEM_END = 0,
	BTREE_ITEM_VALUE,
	BTREE_ITEM_SUBTREE,
};

struct btree_item {
	enum btree_item_kind kind;
	uint64_t key;		/* VALUE: its key; SUBTREE: lowest key it may hold */
	uint64_t max_key;	/* SUBTREE: highest key it may hold */
	uint64_t block;		/* SUBTREE: its root; VALUE: the leaf holding it */
	const void *value;	/* VALUE: valid until the cursor moves */
};

struct btree_frame {
	struct btree_node node;
	uint32_t index;		/* the next entry */
	uint32_t prefetch_next;	/* read-ahead has dealt with children below */
	uint64_t max_key;
	uint8_t *buf;
};

struct btree_cursor {
	struct dmrepl_metadata *md;
	char name[64];
	uint32_t value_size;
	unsigned int depth;
	bool root_pending;
	uint64_t root;
	struct btree_frame frames[DMREPL_BTREE_MAX_DEPTH];
};

void btree_cursor_init(struct btree_cursor *c, struct dmrepl_metadata *md,
		       const char *name, uint64_t root, uint32_t value_size);
void btree_cursor_release(struct btree_cursor *c);
/* The head item, without moving. */
void btree_cursor_peek(struct btree_cursor *c, struct btree_item *ret_item);
/* Move past the head item (a value, or a whole subtree, unread). */
void btree_cursor_skip(struct btree_cursor *c);
/*
 * Read the subtree at the head and make its first entry the head.
 * Return: 0, or as btree_lookup().
 */
int btree_cursor_descend(struct btree_cursor *c);
/* The next leaf entry. Return: 0; 1 at the end; or as btree_lookup(). */
int btree_cursor_next(struct btree_cursor *c, uint64_t *ret_key,
		      const void **ret_value);
/* The child of internal node @n whose key is @key, or 0 if none. */
uint64_t btree_node_child_at_key(const struct btree_node *n, uint64_t key);
/*
 * @data, not checked, as an internal node, for read-ahead hints: false
 * unless its header is that of an internal node whose entries fit.
 */
bool btree_node_peek_internal(uint64_t blocknr, const void *data,
			      struct btree_node *ret_node);

/*
 * ---------------------------------------------------------------------
 * I/O engines (lib/io.c, lib/io-uring.c, lib/io-aio.c, lib/io-sync.c)
 *
 * lib/copy.c drives one of three engines through this ops table. A
 * request is a single read or write of one buffer; the engine may hold
 * submitted requests back until the next reap (batching). Short
 * transfers and -EAGAIN are returned as they are: the caller resubmits.
 * ---------------------------------------------------------------------
 */
struct iovec;

enum dmrepl_io_dir { DMREPL_IO_READ = 0, DMREPL_IO_WRITE };

struct dmrepl_io_req {
	int fd;
	enum dmrepl_io_dir dir;
	unsigned int tag;	/* < depth: the engine's per-request slot */
	int buf_index;		/* registered buffer holding @buf, or -1 */
	void *buf;
	uint64_t offset_bytes;
	uint32_t length_bytes;
	int64_t result;		/* on completion: bytes moved or -errno */
};

struct dmrepl_io {
	const struct dmrepl_io_ops *ops;
	struct dmrepl_ctx *ctx;
	unsigned int depth;		/* at most this many requests in flight */
	const struct iovec *bufs;	/* to register (io_uring), nr_bufs of them */
	unsigned int nr_bufs;
	int ioprio;			/* IOPRIO_PRIO_VALUE(), 0 for none */
	int saved_ioprio;		/* the thread's, restored by close; -1 */
	unsigned int inflight;		/* submitted and not yet reaped */
	void *priv;			/* the engine's */
};

struct dmrepl_io_ops {
	const char *name;		/* "uring", "aio", "sync" */
	/*
	 * Return: 0; -ENOSYS, -EPERM, -EAGAIN, -ENOTSUP when the kernel
	 * refuses the engine (the caller falls back); -ENOMEM.
	 */
	int (*setup)(struct dmrepl_io *io);
	/* Queue @req; it stays owned by the engine until reaped. */
	int (*submit)(struct dmrepl_io *io, struct dmrepl_io_req *req);
	/*
	 * Send what is queued, wait for at least @min_nr completions (fewer
	 * on a signal), and store up to @max_nr completed requests in @reqs.
	 * Return: the number stored, or -errno.
	 */
	int (*reap)(struct dmrepl_io *io, unsigned int min_nr,
		    struct dmrepl_io_req **reqs, unsigned int max_nr);
	void (*teardown)(struct dmrepl_io *io);
};

extern const struct dmrepl_io_ops dmrepl_io_uring_ops;
extern const struct dmrepl_io_ops dmrepl_io_aio_ops;
extern const struct dmrepl_io_ops dmrepl_io_sync_ops;

/*
 * Set up @io (ctx, depth, bufs, nr_bufs and ioprio filled in) with
 * @engine, or for DMREPL_ENGINE_AUTO the first of io_uring, libaio and
 * sync that the kernel accepts; the choice and the reason for a fallback
 * are logged at LOG_INFO. io_uring counts as unavailable when
 * /proc/sys/kernel/io_uring_disabled says so, or (a test hook) when the
 * environment has DMREPL_IO_URING_DISABLE=1. Sync and libaio carry
 * @io->ioprio through ioprio_set() on the calling thread.
 * Return: 0; -ENOTSUP when a forced engine is unavailable (logged).
 */
int dmrepl_io_open(struct dmrepl_io *io, enum dmrepl_engine engine);
/* Tear down (every request must have been reaped) and restore the ioprio. */
void dmrepl_io_close(struct dmrepl_io *io);

/*
 * lib/copy.c for streams (receive.c): a copy with no source, whose data
 * comes from dmrepl_copy_write(); discards go through dmrepl_copy_add()
 * as usual. The data is copied into the engine's buffers, so the caller
 * may reuse @data on return.
 */
int dmrepl_copy_new_sink(struct dmrepl_ctx *ctx, const char *dst_path,
			 struct dmrepl_copy **ret_copy);
int dmrepl_copy_write(struct dmrepl_copy *copy, uint64_t offset,
		      const void *data, uint64_t len);
/* Wait for every write in flight, then flush the destination (fsync). */
int dmrepl_copy_sync(struct dmrepl_copy *copy);

/*
 * lib/extents.c: one line of an extents list, as `dmrepl delta
 * --format=extents` prints it: "OFFSET_BYTES LENGTH_BYTES copy|discard",
 * decimal, separated by blanks, with an optional line end. @len bytes of
 * @line are read (no NUL needed).
 * Return: 0 and *@ret_extent filled; 1 for a blank line; -EINVAL with
 * *@ret_reason (a static string) naming the fault.
 */
int dmrepl_extent_parse_line(const char *line, size_t len,
			     struct dmrepl_extent *ret_extent,
			     const char **ret_reason);

#endif /* LIBDMREPL_PRIVATE_H */
