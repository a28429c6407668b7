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
/* Metadata blocks read so far: tests check that shared subtrees are skipped. */
uint64_t dmrepl_metadata_get_blocks_read(const struct dmrepl_metadata *md);

/* A buffer for one metadata block, aligned for O_DIRECT; free() it. */
void *dmrepl_metadata_block_alloc(void);
/*
 * Read metadata block @blocknr into @buf. Return: 0; -EBADMSG if
 * @blocknr is past the end the superblock gives; -EIO (short read: a
 * truncated image, or a read error).
 */
int dmrepl_metadata_read_block(struct dmrepl_metadata *md, uint64_t blocknr,
			       void *buf);

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
struct dmrepl_ctx *dmrepl_pool_get_ctx(struct dmrepl_pool *pool);
struct dmrepl_pool *dmrepl_pool_ref(struct dmrepl_pool *pool);

/*
 * lib/lock.c: the per-pool lock, a flock on $DMREPL_RUN_DIR/NAME.lock
 * (default /run/dmrepl). The file records who holds the lock and the
 * metadata snapshot that holder reserved, so a later run can tell a
 * snapshot left by a dmrepl that died from one another tool holds.
 * Lock files are never unlinked: that would let two runs lock two
 * different inodes of one name.
 */
enum dmrepl_snap_state {
	DMREPL_SNAP_NONE = 0,		/* no reservation made by dmrepl */
	DMREPL_SNAP_RESERVING,		/* reserve_metadata_snap being sent */
	DMREPL_SNAP_RESERVED,		/* held, root recorded */
};

struct dmrepl_lock_record {
	pid_t holder;			/* process holding (or last holding) the lock */
	enum dmrepl_snap_state state;
	pid_t owner;			/* process that reserved the snapshot */
	uint64_t root;			/* held metadata root, when RESERVED */
};

struct dmrepl_lock;

/* $DMREPL_RUN_DIR, else /run/dmrepl; created (one level) on demand. */
const char *dmrepl_run_dir(void);
int dmrepl_run_dir_create(struct dmrepl_ctx *ctx);

/* Return: 0; -EBUSY (logged with the holder's pid); -EACCES, -ENOMEM, ... */
int dmrepl_lock_take(struct dmrepl_ctx *ctx, const char *pool_name,
		     struct dmrepl_lock **ret_lock);
/* Drops the lock; the record stays as last written. NULL is a no-op. */
void dmrepl_lock_drop(struct dmrepl_lock *lock);
/* A missing or empty record reads as all zero. */
int dmrepl_lock_read(struct dmrepl_lock *lock,
		     struct dmrepl_lock_record *ret_record);
/* Replaces the record and fsyncs it. */
int dmrepl_lock_write(struct dmrepl_lock *lock,
		      const struct dmrepl_lock_record *record);

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
 * lib/metasnap.c: the pool's metadata snapshot, reserved under the lock.
 * dmrepl_pool_snap_release() sends release_metadata_snap, drops the
 * lock and frees @snap; NULL is a no-op.
 */
struct dmrepl_pool_snap;

int dmrepl_pool_snap_reserve(struct dmrepl_pool *pool,
			     struct dmrepl_pool_snap **ret_snap);
uint64_t dmrepl_pool_snap_get_root(const struct dmrepl_pool_snap *snap);
int dmrepl_pool_snap_release(struct dmrepl_pool_snap *snap);

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

uint64_t btree_node_key(const struct btree_node *n, uint32_t i);
const void *btree_node_value(const struct btree_node *n, uint32_t i);

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

#endif /* LIBDMREPL_PRIVATE_H */
