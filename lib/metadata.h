/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdmrepl's metadata layer, internal: checksums, blocks and read-ahead,
 * persistent-data btrees, thin device details.
 */
#ifndef DMREPL_METADATA_H
#define DMREPL_METADATA_H

#include "base.h"

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
/* Every message about a failed check of the metadata's blocks ends so. */
#define DAMAGED_HINT                                                           \
	" (the metadata is damaged: thin_check reports all of it; "          \
	"thin_repair rebuilds it onto another device)"
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

#endif /* DMREPL_METADATA_H */
