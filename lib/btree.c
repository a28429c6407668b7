/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Persistent-data btree nodes: checking them, looking a key up, and an
 * in-order cursor that can step over a subtree without reading it.
 *
 * Every node is checked before use (checksum, block number, flags,
 * entry counts, key order, key bounds from the parent), and every walk
 * is bounded: DMREPL_BTREE_MAX_DEPTH levels and no node below itself,
 * so corrupt or hostile metadata ends in -EBADMSG or -ELOOP, never in a
 * crash or an endless walk.
 */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "metadata.h"

#define BTREE_CSUM_XOR 121107u
#define NODE_HEADER_SIZE DMREPL_BTREE_NODE_HEADER_SIZE
#define NODE_FLAG_INTERNAL 1u
#define NODE_FLAG_LEAF 2u

/* Byte offsets in the node header. */
enum {
	NODE_CSUM = 0,
	NODE_FLAGS = 4,
	NODE_BLOCKNR = 8,
	NODE_NR_ENTRIES = 16,
	NODE_MAX_ENTRIES = 20,
	NODE_VALUE_SIZE = 24,
};

/* Where a node is read from, for its checks and messages. */
struct node_ref {
	const char *tree;
	uint64_t blocknr;
	uint64_t min_key;
	uint64_t max_key;
	uint32_t leaf_value_size;
};

static uint64_t node_child(const struct btree_node *n, uint32_t i)
{
	return get_le64(btree_node_value(n, i), 0);
}

#define node_err(md, ref, fmt, ...)                                            \
	err(dmrepl_metadata_get_ctx(md),                                       \
	    "%s: %s: block %" PRIu64 ": " fmt DAMAGED_HINT,                    \
	    dmrepl_metadata_get_name(md), (ref)->tree, (ref)->blocknr,         \
	    ##__VA_ARGS__)

static int check_header(struct dmrepl_metadata *md, const struct node_ref *ref,
			const uint8_t *b)
{
	uint32_t csum;

	csum = dmrepl_crc32c(0xffffffffu, b + 4, DMREPL_MD_BLOCK_SIZE - 4) ^
	       BTREE_CSUM_XOR;
	if (csum != get_le32(b, NODE_CSUM)) {
		node_err(md, ref,
			 "bad checksum 0x%08" PRIx32 ", computed 0x%08" PRIx32,
			 get_le32(b, NODE_CSUM), csum);
		return -EBADMSG;
	}
	if (get_le64(b, NODE_BLOCKNR) != ref->blocknr) {
		node_err(md, ref, "node records block number %" PRIu64,
			 get_le64(b, NODE_BLOCKNR));
		return -EBADMSG;
	}
	return 0;
}

static int check_shape(struct dmrepl_metadata *md, const struct node_ref *ref,
		       const struct btree_node *n, uint32_t flags)
{
	uint32_t want_size = n->leaf ? ref->leaf_value_size : 8;

	if (flags != NODE_FLAG_INTERNAL && flags != NODE_FLAG_LEAF) {
		node_err(md, ref,
			 "bad node flags 0x%" PRIx32 " (neither "
			 "internal nor leaf)",
			 flags);
		return -EBADMSG;
	}
	if (n->value_size != want_size) {
		node_err(
		    md, ref,
		    "%s node has %" PRIu32 "-byte values, expected %" PRIu32,
		    n->leaf ? "leaf" : "internal", n->value_size, want_size);
		return -EBADMSG;
	}
	if (NODE_HEADER_SIZE + (uint64_t)n->max_entries * (8 + n->value_size) >
	    DMREPL_MD_BLOCK_SIZE) {
		node_err(md, ref, "max_entries %" PRIu32 " does not fit in a block",
			 n->max_entries);
		return -EBADMSG;
	}
	if (n->nr_entries > n->max_entries) {
		node_err(md, ref,
			 "nr_entries %" PRIu32 " > max_entries %" PRIu32,
			 n->nr_entries, n->max_entries);
		return -EBADMSG;
	}
	return 0;
}

/* The common case, in one pass: keys ascending and inside the range. */
static bool keys_ok(const struct node_ref *ref, const struct btree_node *n)
{
	const uint8_t *k = n->data + NODE_HEADER_SIZE;
	uint32_t nr = n->nr_entries;

	if (nr == 0)
		return true;
	for (uint32_t i = 1; i < nr; i++)
		if (get_le64(k, (size_t)i * 8) <= get_le64(k, (size_t)(i - 1) * 8))
			return false;
	return get_le64(k, 0) >= ref->min_key &&
	       get_le64(k, (size_t)(nr - 1) * 8) <= ref->max_key;
}

static int check_keys(struct dmrepl_metadata *md, const struct node_ref *ref,
		      const struct btree_node *n)
{
	uint64_t prev = 0;

	if (keys_ok(ref, n))
		return 0;

	for (uint32_t i = 0; i < n->nr_entries; i++) {
		uint64_t key = btree_node_key(n, i);

		if (i > 0 && key <= prev) {
			node_err(md, ref,
				 "keys out of order: key %" PRIu32 " (%" PRIu64
				 ") <= key %" PRIu32 " (%" PRIu64 ")",
				 i, key, i - 1, prev);
			return -EBADMSG;
		}
		if (key < ref->min_key || key > ref->max_key) {
			node_err(md, ref,
				 "key %" PRIu64
				 " is outside the range [%" PRIu64 ", %" PRIu64
				 "] its parent gives",
				 key, ref->min_key, ref->max_key);
			return -EBADMSG;
		}
		prev = key;
	}
	return 0;
}

static int read_node(struct dmrepl_metadata *md, const struct node_ref *ref,
		     uint8_t *buf, struct btree_node *ret_node)
{
	struct btree_node n;
	int r;

	r = dmrepl_metadata_read_block(md, ref->blocknr, buf);
	if (r < 0)
		return r;
	r = check_header(md, ref, buf);
	if (r < 0)
		return r;
	n = (struct btree_node){
	    .blocknr = ref->blocknr,
	    .nr_entries = get_le32(buf, NODE_NR_ENTRIES),
	    .max_entries = get_le32(buf, NODE_MAX_ENTRIES),
	    .value_size = get_le32(buf, NODE_VALUE_SIZE),
	    .leaf = get_le32(buf, NODE_FLAGS) == NODE_FLAG_LEAF,
	    .data = buf,
	};
	r = check_shape(md, ref, &n, get_le32(buf, NODE_FLAGS));
	if (r == 0)
		r = check_keys(md, ref, &n);
	if (r == 0)
		*ret_node = n;
	return r;
}

/* Refuse a node that is its own ancestor, or one level too many. */
static int check_path(struct dmrepl_metadata *md, const struct node_ref *ref,
		      const uint64_t *path, unsigned int depth)
{
	if (depth >= DMREPL_BTREE_MAX_DEPTH) {
		node_err(md, ref, "the tree is deeper than %d levels",
			 DMREPL_BTREE_MAX_DEPTH);
		return -ELOOP;
	}
	for (unsigned int i = 0; i < depth; i++) {
		if (path[i] == ref->blocknr) {
			node_err(md, ref,
				 "cycle: the node is its own ancestor (level %u)",
				 i);
			return -ELOOP;
		}
	}
	return 0;
}

/* The last entry whose key is <= @key, or -1. */
static int64_t node_search(const struct btree_node *n, uint64_t key)
{
	int64_t lo = 0, hi = (int64_t)n->nr_entries - 1, found = -1;

	while (lo <= hi) {
		int64_t mid = lo + (hi - lo) / 2;

		if (btree_node_key(n, (uint32_t)mid) <= key) {
			found = mid;
			lo = mid + 1;
		} else {
			hi = mid - 1;
		}
	}
	return found;
}

uint64_t btree_node_child_at_key(const struct btree_node *n, uint64_t key)
{
	int64_t i = node_search(n, key);

	if (i < 0 || n->leaf || btree_node_key(n, (uint32_t)i) != key)
		return 0;
	return node_child(n, (uint32_t)i);
}

bool btree_node_peek_internal(uint64_t blocknr, const void *data,
			      struct btree_node *ret_node)
{
	const uint8_t *b = data;
	struct btree_node n = {
	    .blocknr = blocknr,
	    .nr_entries = get_le32(b, NODE_NR_ENTRIES),
	    .max_entries = get_le32(b, NODE_MAX_ENTRIES),
	    .value_size = get_le32(b, NODE_VALUE_SIZE),
	    .data = b,
	};

	if (get_le32(b, NODE_FLAGS) != NODE_FLAG_INTERNAL ||
	    get_le64(b, NODE_BLOCKNR) != blocknr || n.value_size != 8 ||
	    n.nr_entries > n.max_entries ||
	    NODE_HEADER_SIZE + (uint64_t)n.max_entries * 16 >
		DMREPL_MD_BLOCK_SIZE)
		return false;
	*ret_node = n;
	return true;
}

/* The key range child @i of internal node @n may hold. */
static void child_range(const struct btree_node *n, uint32_t i,
			uint64_t parent_max, uint64_t *ret_min,
			uint64_t *ret_max)
{
	*ret_min = btree_node_key(n, i);
	*ret_max =
	    i + 1 < n->nr_entries ? btree_node_key(n, i + 1) - 1 : parent_max;
}

static int lookup_step(struct dmrepl_metadata *md, struct node_ref *ref,
		       const struct btree_node *n, uint64_t key,
		       void *ret_value)
{
	int64_t i = node_search(n, key);

	if (i < 0 || (n->leaf && btree_node_key(n, (uint32_t)i) != key))
		return -ENOENT;
	if (n->leaf) {
		memcpy(ret_value, btree_node_value(n, (uint32_t)i),
		       n->value_size);
		return 0;
	}
	ref->blocknr = node_child(n, (uint32_t)i);
	child_range(n, (uint32_t)i, ref->max_key, &ref->min_key, &ref->max_key);
	return 1;
}

int btree_lookup(struct dmrepl_metadata *md, const char *tree, uint64_t root,
		 uint32_t value_size, uint64_t key, void *ret_value)
{
	struct node_ref ref = {
	    .tree = tree,
	    .blocknr = root,
	    .max_key = UINT64_MAX,
	    .leaf_value_size = value_size,
	};
	uint64_t path[DMREPL_BTREE_MAX_DEPTH];
	struct btree_node n;
	uint8_t *buf;
	int r = 1;

	buf = dmrepl_metadata_block_alloc();
	if (!buf)
		return -ENOMEM;
	for (unsigned int depth = 0; r == 1; depth++) {
		r = check_path(md, &ref, path, depth);
		if (r == 0)
			r = read_node(md, &ref, buf, &n);
		if (r < 0)
			break;
		path[depth] = ref.blocknr;
		r = lookup_step(md, &ref, &n, key, ret_value);
	}
	free(buf);
	return r;
}

void btree_cursor_init(struct btree_cursor *c, struct dmrepl_metadata *md,
		       const char *name, uint64_t root, uint32_t value_size)
{
	memset(c, 0, sizeof(*c));
	c->md = md;
	snprintf(c->name, sizeof(c->name), "%s", name);
	c->root = root;
	c->root_pending = true;
	c->value_size = value_size;
}

void btree_cursor_release(struct btree_cursor *c)
{
	for (unsigned int i = 0; i < DMREPL_BTREE_MAX_DEPTH; i++) {
		free(c->frames[i].buf);
		c->frames[i].buf = NULL;
	}
	c->depth = 0;
	c->root_pending = false;
}

static void pop_finished(struct btree_cursor *c)
{
	while (c->depth > 0) {
		const struct btree_frame *f = &c->frames[c->depth - 1];

		if (f->index < f->node.nr_entries)
			break;
		c->depth--;
	}
}

void btree_cursor_peek(struct btree_cursor *c, struct btree_item *ret_item)
{
	const struct btree_frame *f;
	uint32_t i;

	pop_finished(c);
	if (c->depth == 0) {
		*ret_item = (struct btree_item){
		    .kind =
			c->root_pending ? BTREE_ITEM_SUBTREE : BTREE_ITEM_END,
		    .max_key = UINT64_MAX,
		    .block = c->root,
		};
		return;
	}
	f = &c->frames[c->depth - 1];
	i = f->index;
	*ret_item = (struct btree_item){.key = btree_node_key(&f->node, i)};
	if (f->node.leaf) {
		ret_item->kind = BTREE_ITEM_VALUE;
		ret_item->block = f->node.blocknr;
		ret_item->value = btree_node_value(&f->node, i);
		return;
	}
	ret_item->kind = BTREE_ITEM_SUBTREE;
	ret_item->block = node_child(&f->node, i);
	child_range(&f->node, i, f->max_key, &ret_item->key,
		    &ret_item->max_key);
}

void btree_cursor_skip(struct btree_cursor *c)
{
	pop_finished(c);
	if (c->depth == 0)
		c->root_pending = false;
	else
		c->frames[c->depth - 1].index++;
}

static int frame_buffer(struct btree_frame *f)
{
	if (!f->buf)
		f->buf = dmrepl_metadata_block_alloc();
	return f->buf ? 0 : -ENOMEM;
}

int btree_cursor_descend(struct btree_cursor *c)
{
	struct node_ref ref = {.tree = c->name,
			       .leaf_value_size = c->value_size};
	uint64_t path[DMREPL_BTREE_MAX_DEPTH];
	struct btree_item head;
	struct btree_frame *f;
	int r;

	btree_cursor_peek(c, &head);
	if (head.kind != BTREE_ITEM_SUBTREE)
		return -EINVAL;
	ref.blocknr = head.block;
	ref.min_key = head.key;
	ref.max_key = head.max_key;
	for (unsigned int i = 0; i < c->depth; i++)
		path[i] = c->frames[i].node.blocknr;
	r = check_path(c->md, &ref, path, c->depth);
	if (r < 0)
		return r;
	f = &c->frames[c->depth];
	r = frame_buffer(f);
	if (r == 0)
		r = read_node(c->md, &ref, f->buf, &f->node);
	if (r < 0)
		return r;
	btree_cursor_skip(c);
	f->index = 0;
	f->prefetch_next = 0;
	f->max_key = head.max_key;
	c->depth++;
	return 0;
}

int btree_cursor_next(struct btree_cursor *c, uint64_t *ret_key,
		      const void **ret_value)
{
	struct btree_item item;
	int r;

	for (;;) {
		btree_cursor_peek(c, &item);
		if (item.kind == BTREE_ITEM_END)
			return 1;
		if (item.kind == BTREE_ITEM_VALUE)
			break;
		r = btree_cursor_descend(c);
		if (r < 0)
			return r;
	}
	btree_cursor_skip(c);
	*ret_key = item.key;
	*ret_value = item.value;
	return 0;
}
