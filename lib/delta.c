/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The delta between two thin devices: walk both mapping trees in key
 * order, one cursor per side, and classify every mapped virtual block.
 *
 * A snapshot and its origin share their btree nodes until one of them
 * is written (copy-on-write), so when both cursors stand before the same
 * node block, every mapping below it is identical on both sides. The
 * walk then steps over that subtree without reading it, or, when the
 * caller wants "same" runs, reads it on one side only. Either way the
 * cost follows the change, not the size of the volume, and the memory
 * is two cursor stacks.
 *
 * Reading those nodes one at a time would leave the device idle between
 * reads, so when a cursor enters an internal node, the walk hands the
 * children it will read to the read-ahead pool (lib/readahead.c): every
 * child, less those the other side's node at the same level shares
 * (same key, same block), which the walk will step over. Both sides'
 * children go in key order, the order the walk uses them in.
 *
 * Most entries of two leaves that differ are still equal (a 1% change
 * rewrites about one entry in a hundred), so equal entries are compared
 * in one tight loop, and only the rest go through the general merge.
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

enum delta_mode {
	MODE_UNSET = 0,
	MODE_RUNS,
	MODE_EXTENTS,
};

/* What one step of the walk produced. */
enum {
	STEP_BLOCK = 0, /* a classified virtual block */
	STEP_END = 1,
	STEP_AGAIN = 2, /* the cursors moved; nothing to report yet */
};

/* @length blocks from @block, all of @kind. */
struct block_event {
	enum dmrepl_run_kind kind;
	uint64_t block;
	uint64_t length;
};

/* Read-ahead: top up once at least this many blocks fit. */
#define PREFETCH_BATCH 16u

/* A child that read-ahead may submit, and where it is in its cursor. */
struct prefetch_cand {
	uint64_t key;
	uint64_t block;
	unsigned int depth;
	uint32_t index;
};

struct prefetch_side {
	struct prefetch_cand cand[DMREPL_READAHEAD_BATCH_MAX];
	size_t n;
	/* the first key it cannot submit yet (see gated()), or UINT64_MAX */
	uint64_t blocked_at;
	/* the frames it scanned to the end */
	unsigned int scanned_below;
};

struct dmrepl_delta {
	struct dmrepl_metadata *md;
	unsigned int flags;
	enum delta_mode mode;
	bool want_same; /* read shared subtrees to report them */
	/* > 0: side 0 walks a shared subtree whose root is at this depth */
	unsigned int same_depth;
	struct btree_cursor side[2];
	uint64_t nr_data_blocks;
	uint64_t block_bytes;
	uint64_t shared_skipped;
	struct dmrepl_run run; /* the run being built */
	bool have_run;
	struct dmrepl_extent extent; /* the extent being built */
	bool have_extent;
	int error; /* once the walk fails, it stays failed */
	struct prefetch_side prefetch[2];
	/* the node pair scouting stopped in, and where in each node */
	uint64_t scout_nodes[2];
	uint32_t scout_next[2];
};

static const char *const kind_names[] = {
    [DMREPL_RUN_SAME] = "same",
    [DMREPL_RUN_DIFFERENT] = "different",
    [DMREPL_RUN_LEFT_ONLY] = "left_only",
    [DMREPL_RUN_RIGHT_ONLY] = "right_only",
};

DMREPL_EXPORT const char *dmrepl_run_kind_name(enum dmrepl_run_kind kind)
{
	if ((unsigned int)kind >= ARRAY_SIZE(kind_names))
		return NULL;
	return kind_names[kind];
}

/* The data block a mapping points at, checked against the pool's size. */
static int data_block(struct dmrepl_delta *d, const struct btree_cursor *c,
		      const struct btree_item *item, uint64_t *ret_block)
{
	uint64_t v;

	memcpy(&v, item->value, sizeof(v));
	v = le64toh(v) >> DMREPL_BLOCK_TIME_SHIFT;
	if (v >= d->nr_data_blocks) {
		err(dmrepl_metadata_get_ctx(d->md),
		    "%s: %s: block %" PRIu64 ": virtual block %" PRIu64
		    " maps to data block %" PRIu64
		    ", past the end of the pool (%" PRIu64 " blocks)",
		    dmrepl_metadata_get_name(d->md), c->name, item->block,
		    item->key, v, d->nr_data_blocks);
		return -EBADMSG;
	}
	*ret_block = v;
	return 0;
}

/* Emit one entry that only @side maps. */
static int emit_one_side(struct dmrepl_delta *d, int side,
			 const struct btree_item *item, struct block_event *ev)
{
	uint64_t unused;
	int r;

	r = data_block(d, &d->side[side], item, &unused);
	if (r < 0)
		return r;
	btree_cursor_skip(&d->side[side]);
	ev->kind = side == 0 ? DMREPL_RUN_LEFT_ONLY : DMREPL_RUN_RIGHT_ONLY;
	ev->block = item->key;
	ev->length = 1;
	return STEP_BLOCK;
}

static int emit_both(struct dmrepl_delta *d, const struct btree_item *a,
		     const struct btree_item *b, struct block_event *ev)
{
	uint64_t block_a, block_b;
	int r;

	r = data_block(d, &d->side[0], a, &block_a);
	if (r == 0)
		r = data_block(d, &d->side[1], b, &block_b);
	if (r < 0)
		return r;
	btree_cursor_skip(&d->side[0]);
	btree_cursor_skip(&d->side[1]);
	ev->kind = block_a == block_b ? DMREPL_RUN_SAME : DMREPL_RUN_DIFFERENT;
	ev->block = a->key;
	ev->length = 1;
	return STEP_BLOCK;
}

/* Must subtree @s be read before the other side's head @o can be used? */
static bool read_first(const struct btree_item *s, const struct btree_item *o)
{
	if (o->kind == BTREE_ITEM_END)
		return true;
	if (o->kind == BTREE_ITEM_VALUE)
		return s->key <= o->key;
	/*
	 * Of two subtrees, read the one that starts first or spans more:
	 * a node shared at different heights is then found at its top.
	 */
	return s->key < o->key ||
	       (s->key == o->key && s->max_key >= o->max_key);
}

/* ---- read-ahead ---- */

static bool frame_internal(const struct btree_cursor *c, unsigned int k)
{
	return k < c->depth && !c->frames[k].node.leaf;
}

/*
 * The other side has not read its node at level @k yet, but is about to:
 * wait for it, to know which children are shared.
 */
static bool gated(struct dmrepl_delta *d, int side, unsigned int k)
{
	const struct btree_frame *f = &d->side[side].frames[k];
	struct btree_cursor *o = &d->side[!side];
	struct btree_item head;

	if (o->depth > k)
		return false;
	btree_cursor_peek(o, &head);
	return head.kind == BTREE_ITEM_SUBTREE && head.key <= f->max_key &&
	       head.max_key >= btree_node_key(&f->node, 0);
}

/* Will the walk step over @block, @key's child, as shared? */
static bool shared_child(const struct dmrepl_delta *d, int side,
			 unsigned int k, uint64_t key, uint64_t block)
{
	const struct btree_cursor *o = &d->side[!side];

	if (d->want_same && side == 0)
		return false; /* side 0 reads shared subtrees for same runs */
	return frame_internal(o, k) &&
	       btree_node_child_at_key(&o->frames[k].node, key) == block;
}

/* Scan frame @k's children not yet dealt with, into @ps; false when full. */
static bool gather_frame(struct dmrepl_delta *d, int side, unsigned int k,
			 struct prefetch_side *ps, size_t max)
{
	const struct btree_frame *f = &d->side[side].frames[k];
	uint32_t i = f->prefetch_next > f->index ? f->prefetch_next : f->index;

	for (; i < f->node.nr_entries; i++) {
		uint64_t key = btree_node_key(&f->node, i);
		uint64_t block = get_le64(btree_node_value(&f->node, i), 0);

		if (shared_child(d, side, k, key, block))
			continue;
		if (ps->n == max)
			return false;
		ps->cand[ps->n++] = (struct prefetch_cand){key, block, k, i};
	}
	return true;
}

/* Side @side's next children, in key order: deepest frame first. */
static void gather(struct dmrepl_delta *d, int side, size_t max)
{
	struct prefetch_side *ps = &d->prefetch[side];
	const struct btree_cursor *c = &d->side[side];

	ps->n = 0;
	ps->blocked_at = UINT64_MAX;
	ps->scanned_below = c->depth;
	for (unsigned int k = c->depth; k-- > 0;) {
		if (!frame_internal(c, k))
			continue;
		if (!(d->want_same && side == 0) && gated(d, side, k)) {
			ps->blocked_at = btree_node_key(&c->frames[k].node, 0);
			return;
		}
		if (!gather_frame(d, side, k, ps, max))
			return;
		ps->scanned_below = k;
	}
}

/* The first @taken candidates of @side went to the pool. */
static void commit(struct dmrepl_delta *d, int side, size_t taken)
{
	struct prefetch_side *ps = &d->prefetch[side];
	struct btree_cursor *c = &d->side[side];

	for (unsigned int k = ps->scanned_below; k < c->depth; k++)
		if (taken == ps->n || (taken && k > ps->cand[taken - 1].depth))
			c->frames[k].prefetch_next = c->frames[k].node.nr_entries;
	if (taken)
		c->frames[ps->cand[taken - 1].depth].prefetch_next =
		    ps->cand[taken - 1].index + 1;
}

/* Merge both sides' candidates by key; return how many blocks it took. */
static size_t merge_candidates(struct dmrepl_delta *d, uint64_t *blocks,
			       size_t max, size_t taken[2])
{
	const struct prefetch_side *p = d->prefetch;
	size_t n = 0;

	taken[0] = taken[1] = 0;
	while (n < max) {
		bool ok0 = taken[0] < p[0].n &&
			   p[0].cand[taken[0]].key < p[1].blocked_at;
		bool ok1 = taken[1] < p[1].n &&
			   p[1].cand[taken[1]].key < p[0].blocked_at;
		int s;

		if (!ok0 && !ok1)
			break;
		s = ok0 && (!ok1 || p[0].cand[taken[0]].key <=
					p[1].cand[taken[1]].key)
			? 0
			: 1;
		blocks[n++] = p[s].cand[taken[s]++].block;
	}
	return n;
}

/*
 * Scouting. Read-ahead submits the children of the nodes on the cursor
 * stacks; the nodes after those (the next internal nodes of a level) are
 * often read already, sitting in the pool. Submitting their children too
 * saves a round trip to the device for each such node. The pool's copy
 * is not checked yet, so it only gives hints; the walk checks every
 * block it uses, as always.
 */
enum scout_result {
	SCOUT_DONE,	/* both nodes' children submitted */
	SCOUT_LEAVES,	/* the level holds leaves: nothing to scout */
	SCOUT_STOP,	/* not read yet, or no room: stay in key order */
};

/* @x's child @i, unless the other side's node @y shares it. */
static bool scout_child(const struct dmrepl_delta *d, int side,
			const struct btree_node *x, const struct btree_node *y,
			uint32_t i, uint64_t *ret_block)
{
	uint64_t key = btree_node_key(x, i);

	*ret_block = get_le64(btree_node_value(x, i), 0);
	if (!y || (d->want_same && side == 0))
		return true;
	return btree_node_child_at_key(y, key) != *ret_block;
}

/* The children of @n[0] and @n[1] (NULL: none) the walk will read. */
static bool scout_children(const struct dmrepl_delta *d,
			   const struct btree_node *n[2], uint32_t i[2],
			   uint64_t *blocks, size_t *nr, size_t max)
{
	for (;;) {
		int s;
		uint64_t block;

		if ((!n[0] || i[0] >= n[0]->nr_entries) &&
		    (!n[1] || i[1] >= n[1]->nr_entries))
			return true;
		s = !n[0] || i[0] >= n[0]->nr_entries ? 1
		    : !n[1] || i[1] >= n[1]->nr_entries
			? 0
			: btree_node_key(n[0], i[0]) > btree_node_key(n[1], i[1]);
		if (!scout_child(d, s, n[s], n[!s], i[s], &block)) {
			i[s]++;
			continue;
		}
		if (*nr == max)
			return false;
		blocks[(*nr)++] = block;
		i[s]++;
	}
}

static enum scout_result scout_node(struct dmrepl_delta *d, uint64_t block,
				    struct btree_node *ret_node)
{
	const void *data = dmrepl_metadata_prefetch_peek(d->md, block);

	if (!data)
		return SCOUT_STOP;
	if (btree_node_peek_internal(block, data, ret_node))
		return SCOUT_DONE;
	return get_le32(data, 4) == 2 /* leaf */ ? SCOUT_LEAVES : SCOUT_STOP;
}

/* Child @key of both sides' nodes at level @k: @x on side 0, @y on 1. */
static enum scout_result scout_pair(struct dmrepl_delta *d, uint64_t x,
				    uint64_t y, uint64_t *blocks, size_t *nr,
				    size_t max)
{
	struct btree_node nodes[2];
	const struct btree_node *n[2] = {&nodes[0], x == y ? NULL : &nodes[1]};
	enum scout_result r = scout_node(d, x, &nodes[0]);

	if (r == SCOUT_DONE && x != y)
		r = scout_node(d, y, &nodes[1]);
	if (r != SCOUT_DONE)
		return r;
	if (d->scout_nodes[0] != x || d->scout_nodes[1] != y) {
		d->scout_nodes[0] = x, d->scout_nodes[1] = y;
		d->scout_next[0] = d->scout_next[1] = 0;
	}
	/* the next time, on from where the room ran out */
	if (!scout_children(d, n, d->scout_next, blocks, nr, max))
		return SCOUT_STOP;
	dmrepl_metadata_prefetch_mark(d->md, x);
	dmrepl_metadata_prefetch_mark(d->md, y);
	return SCOUT_DONE;
}

/* Level @k's next nodes on both sides; false to stop scouting. */
static bool scout_level(struct dmrepl_delta *d, unsigned int k,
			uint64_t *blocks, size_t *nr, size_t max)
{
	const struct btree_frame *f0 = &d->side[0].frames[k];
	const struct btree_frame *f1 = &d->side[1].frames[k];

	for (uint32_t i = f0->index; i < f0->node.nr_entries; i++) {
		uint64_t key = btree_node_key(&f0->node, i);
		uint64_t x = get_le64(btree_node_value(&f0->node, i), 0);
		uint64_t y = btree_node_child_at_key(&f1->node, key);
		enum scout_result r;

		if (!y)
			return false;
		if (x == y && !d->want_same)
			continue; /* stepped over */
		r = scout_pair(d, x, y, blocks, nr, max);
		if (r == SCOUT_LEAVES)
			return true;
		if (r == SCOUT_STOP)
			return false;
	}
	return true;
}

static void scout(struct dmrepl_delta *d, uint64_t *blocks, size_t *nr,
		  size_t max)
{
	const struct btree_cursor *c0 = &d->side[0], *c1 = &d->side[1];
	unsigned int depth = c0->depth < c1->depth ? c0->depth : c1->depth;

	for (unsigned int k = depth; k-- > 0 && *nr < max;) {
		if (!frame_internal(c0, k) || !frame_internal(c1, k) ||
		    (k + 1 < c0->depth && c0->frames[k + 1].node.leaf))
			continue;
		if (!scout_level(d, k, blocks, nr, max))
			return;
	}
}

static void prefetch(struct dmrepl_delta *d)
{
	uint64_t blocks[DMREPL_READAHEAD_BATCH_MAX];
	size_t room = dmrepl_metadata_prefetch_room(d->md), n, taken[2];

	if (room < PREFETCH_BATCH)
		return;
	if (room > ARRAY_SIZE(blocks))
		room = ARRAY_SIZE(blocks);
	gather(d, 0, room);
	gather(d, 1, room);
	n = merge_candidates(d, blocks, room, taken);
	commit(d, 0, taken[0]);
	commit(d, 1, taken[1]);
	if (n < room)
		scout(d, blocks, &n, room);
	if (n)
		dmrepl_metadata_prefetch(d->md, blocks, n);
}

static void refill(void *data)
{
	prefetch(data);
}

/* ---- the merge ---- */

static int descend(struct dmrepl_delta *d, int side)
{
	int r = btree_cursor_descend(&d->side[side]);

	if (r < 0)
		return r;
	prefetch(d);
	return STEP_AGAIN;
}

/* Both sides stand before the same node: identical mappings below it. */
static int step_over_shared(struct dmrepl_delta *d, uint64_t block)
{
	int r;

	d->shared_skipped++;
	btree_cursor_skip(&d->side[1]);
	if (!d->want_same) {
		btree_cursor_skip(&d->side[0]);
		dmrepl_metadata_prefetch_forget(d->md, block);
		return STEP_AGAIN;
	}
	r = descend(d, 0);
	if (r < 0)
		return r;
	d->same_depth = d->side[0].depth;
	return STEP_AGAIN;
}

static struct btree_frame *top_frame(struct btree_cursor *c)
{
	return &c->frames[c->depth - 1];
}

static uint64_t leaf_block(const struct btree_frame *f, uint32_t i)
{
	return get_le64(btree_node_value(&f->node, i), 0) >>
	       DMREPL_BLOCK_TIME_SHIFT;
}

/*
 * Walking a shared subtree on side 0: the head leaf's entries from the
 * head on, while their keys follow each other, are one same run.
 */
static int same_run(struct dmrepl_delta *d, const struct btree_item *item,
		    struct block_event *ev)
{
	struct btree_cursor *c = &d->side[0];
	struct btree_frame *f = top_frame(c);
	uint64_t key = item->key, unused;
	uint32_t i = f->index;
	int r;

	r = data_block(d, c, item, &unused);
	if (r < 0)
		return r;
	for (i++; i < f->node.nr_entries; i++) {
		if (btree_node_key(&f->node, i) != key + (i - f->index) ||
		    leaf_block(f, i) >= d->nr_data_blocks)
			break;
	}
	*ev = (struct block_event){DMREPL_RUN_SAME, key, i - f->index};
	f->index = i;
	return STEP_BLOCK;
}

static int shared_step(struct dmrepl_delta *d, struct block_event *ev)
{
	struct btree_cursor *c = &d->side[0];
	struct btree_item item;

	btree_cursor_peek(c, &item);
	if (c->depth < d->same_depth) {
		d->same_depth = 0;
		return STEP_AGAIN;
	}
	if (item.kind == BTREE_ITEM_SUBTREE)
		return descend(d, 0);
	return same_run(d, &item, ev);
}

/*
 * Both heads are leaf entries with one key. Take the entries that are
 * equal on both sides (same key, same data block; the time may differ)
 * in one loop. Without same runs they are passed over; with them, those
 * whose keys follow each other make one event. An entry that differs, or
 * that is out of the pool's range, is left to emit_both().
 */
/* A mapping leaf's key and value arrays (the values are 8 bytes each). */
struct leaf_arrays {
	const uint8_t *keys, *values;
};

static struct leaf_arrays leaf_arrays(const struct btree_frame *f)
{
	const uint8_t *keys = f->node.data + DMREPL_BTREE_NODE_HEADER_SIZE;

	return (struct leaf_arrays){keys, keys + (size_t)f->node.max_entries * 8};
}

static int equal_entries(struct dmrepl_delta *d, const struct btree_item *a,
			 const struct btree_item *b, struct block_event *ev)
{
	struct btree_frame *fa = top_frame(&d->side[0]);
	struct btree_frame *fb = top_frame(&d->side[1]);
	struct leaf_arrays la = leaf_arrays(fa), lb = leaf_arrays(fb);
	uint32_t i = fa->index, j = fb->index, n = 0;
	uint64_t first = a->key;

	while (i < fa->node.nr_entries && j < fb->node.nr_entries) {
		uint64_t key = get_le64(la.keys, (size_t)i * 8);
		uint64_t va = get_le64(la.values, (size_t)i * 8);
		uint64_t vb = get_le64(lb.values, (size_t)j * 8);

		if (key != get_le64(lb.keys, (size_t)j * 8) ||
		    (va ^ vb) >> DMREPL_BLOCK_TIME_SHIFT ||
		    va >> DMREPL_BLOCK_TIME_SHIFT >= d->nr_data_blocks ||
		    (d->want_same && key != first + n))
			break;
		i++, j++, n++;
	}
	if (!n)
		return emit_both(d, a, b, ev);
	fa->index = i;
	fb->index = j;
	if (!d->want_same)
		return STEP_AGAIN;
	*ev = (struct block_event){DMREPL_RUN_SAME, first, n};
	return STEP_BLOCK;
}

static int merge_step(struct dmrepl_delta *d, struct block_event *ev)
{
	struct btree_item a, b;

	btree_cursor_peek(&d->side[0], &a);
	btree_cursor_peek(&d->side[1], &b);
	if (a.kind == BTREE_ITEM_END && b.kind == BTREE_ITEM_END)
		return STEP_END;
	if (a.kind == BTREE_ITEM_SUBTREE && b.kind == BTREE_ITEM_SUBTREE &&
	    a.block == b.block)
		return step_over_shared(d, a.block);
	if (a.kind == BTREE_ITEM_SUBTREE && read_first(&a, &b))
		return descend(d, 0);
	if (b.kind == BTREE_ITEM_SUBTREE && read_first(&b, &a))
		return descend(d, 1);
	/* Now each head is a value, or lies beyond the other head's value. */
	if (a.kind == BTREE_ITEM_VALUE && b.kind == BTREE_ITEM_VALUE &&
	    a.key == b.key)
		return equal_entries(d, &a, &b, ev);
	if (a.kind == BTREE_ITEM_VALUE &&
	    (b.kind == BTREE_ITEM_END || a.key < b.key))
		return emit_one_side(d, 0, &a, ev);
	return emit_one_side(d, 1, &b, ev);
}

static int next_block(struct dmrepl_delta *d, struct block_event *ev)
{
	int r;

	do {
		r = d->same_depth ? shared_step(d, ev) : merge_step(d, ev);
	} while (r == STEP_AGAIN);
	return r;
}

static bool run_extends(const struct dmrepl_run *run,
			const struct block_event *ev)
{
	return run->kind == ev->kind && ev->block > run->begin_blocks &&
	       ev->block - run->begin_blocks == run->length_blocks;
}

static int build_run(struct dmrepl_delta *d, struct dmrepl_run *ret_run)
{
	struct block_event ev;
	struct dmrepl_run done;
	bool had_run;
	int r;

	for (;;) {
		r = next_block(d, &ev);
		if (r < 0)
			return r;
		if (r == STEP_END)
			break;
		if (ev.kind == DMREPL_RUN_SAME && !d->want_same)
			continue;
		if (d->have_run && run_extends(&d->run, &ev)) {
			d->run.length_blocks += ev.length;
			continue;
		}
		done = d->run;
		had_run = d->have_run;
		d->run = (struct dmrepl_run){ev.kind, ev.block, ev.length};
		d->have_run = true;
		if (had_run) {
			*ret_run = done;
			return 0;
		}
	}
	if (!d->have_run)
		return 1;
	*ret_run = d->run;
	d->have_run = false;
	return 0;
}

static int run_to_extent(struct dmrepl_delta *d, const struct dmrepl_run *run,
			 struct dmrepl_extent *ret_extent)
{
	uint64_t offset, length, end;

	if (__builtin_mul_overflow(run->begin_blocks, d->block_bytes,
				   &offset) ||
	    __builtin_mul_overflow(run->length_blocks, d->block_bytes,
				   &length) ||
	    __builtin_add_overflow(offset, length, &end)) {
		err(dmrepl_metadata_get_ctx(d->md),
		    "%s: %s: virtual blocks %" PRIu64 "+%" PRIu64
		    " lie beyond 2^64 bytes: the metadata is corrupt",
		    dmrepl_metadata_get_name(d->md), d->side[1].name,
		    run->begin_blocks, run->length_blocks);
		return -EOVERFLOW;
	}
	ret_extent->op = run->kind == DMREPL_RUN_LEFT_ONLY
			     ? DMREPL_EXTENT_DISCARD
			     : DMREPL_EXTENT_COPY;
	ret_extent->offset_bytes = offset;
	ret_extent->length_bytes = length;
	return 0;
}

static bool extent_extends(const struct dmrepl_extent *e,
			   const struct dmrepl_extent *next)
{
	return e->op == next->op &&
	       e->offset_bytes + e->length_bytes == next->offset_bytes;
}

static int build_extent(struct dmrepl_delta *d,
			struct dmrepl_extent *ret_extent)
{
	struct dmrepl_extent e, done;
	bool had_extent;
	struct dmrepl_run run;
	int r;

	while ((r = build_run(d, &run)) == 0) {
		r = run_to_extent(d, &run, &e);
		if (r < 0)
			return r;
		if (d->have_extent && extent_extends(&d->extent, &e)) {
			d->extent.length_bytes += e.length_bytes;
			continue;
		}
		done = d->extent;
		had_extent = d->have_extent;
		d->extent = e;
		d->have_extent = true;
		if (had_extent) {
			*ret_extent = done;
			return 0;
		}
	}
	if (r < 0 || !d->have_extent)
		return r;
	*ret_extent = d->extent;
	d->have_extent = false;
	return 0;
}

/* The first call picks the mode; a delta cannot switch halfway. */
static int enter_mode(struct dmrepl_delta *d, enum delta_mode mode)
{
	if (d->mode == MODE_UNSET) {
		d->mode = mode;
		d->want_same =
		    mode == MODE_RUNS && !(d->flags & DMREPL_DELTA_SKIP_SAME);
	}
	return d->mode == mode ? 0 : -EINVAL;
}

static int finish_call(struct dmrepl_delta *d, int r)
{
	if (r < 0)
		d->error = r;
	else if (r == 1)
		dbg(dmrepl_metadata_get_ctx(d->md),
		    "delta done: %" PRIu64 " shared subtrees %s",
		    d->shared_skipped,
		    d->want_same ? "read on one side" : "skipped");
	return r;
}

DMREPL_EXPORT int dmrepl_delta_next_run(struct dmrepl_delta *delta,
					struct dmrepl_run *ret_run)
{
	struct dmrepl_run run;
	int r;

	if (!delta || !ret_run || enter_mode(delta, MODE_RUNS) < 0)
		return -EINVAL;
	if (delta->error)
		return delta->error;
	r = finish_call(delta, build_run(delta, &run));
	if (r == 0)
		*ret_run = run;
	return r;
}

DMREPL_EXPORT int dmrepl_delta_next_extent(struct dmrepl_delta *delta,
					   struct dmrepl_extent *ret_extent)
{
	struct dmrepl_extent e;
	int r;

	if (!delta || !ret_extent || enter_mode(delta, MODE_EXTENTS) < 0)
		return -EINVAL;
	if (delta->error)
		return delta->error;
	r = finish_call(delta, build_extent(delta, &e));
	if (r == 0)
		*ret_extent = e;
	return r;
}

static int find_root(struct dmrepl_metadata *md, uint64_t thin_id,
		     uint64_t *ret_root)
{
	struct dmrepl_pool_info info;
	int r = dmrepl_thin_get_mapping_root(md, thin_id, ret_root);

	if (r != -ENOENT)
		return r;
	/* A device created after the snapshot was reserved is not in it. */
	dmrepl_metadata_get_pool_info(md, &info);
	err(dmrepl_metadata_get_ctx(md), "%s: thin device %" PRIu64 " is not in %s",
	    dmrepl_metadata_get_name(md), thin_id,
	    info.using_held_root ? "the held metadata snapshot" : "the metadata");
	return r;
}

static void init_side(struct dmrepl_delta *d, int side, uint64_t thin_id,
		      uint64_t root)
{
	char name[64];

	snprintf(name, sizeof(name), "mapping tree of thin %" PRIu64, thin_id);
	btree_cursor_init(&d->side[side], d->md, name, root, 8);
}

DMREPL_EXPORT int dmrepl_delta_new(struct dmrepl_metadata *md,
				   uint64_t thin_id1, uint64_t thin_id2,
				   unsigned int flags,
				   struct dmrepl_delta **ret_delta)
{
	struct dmrepl_pool_info info;
	struct dmrepl_delta *d;
	uint64_t root1, root2;
	int r;

	if (!md || !ret_delta ||
	    (flags & ~(unsigned int)DMREPL_DELTA_SKIP_SAME))
		return -EINVAL;
	r = find_root(md, thin_id1, &root1);
	if (r == 0)
		r = find_root(md, thin_id2, &root2);
	if (r < 0)
		return r;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	dmrepl_metadata_get_pool_info(md, &info);
	d->md = dmrepl_metadata_ref(md);
	d->flags = flags;
	d->nr_data_blocks = info.nr_data_blocks;
	d->block_bytes = info.data_block_size_sectors * 512;
	init_side(d, 0, thin_id1, root1);
	init_side(d, 1, thin_id2, root2);
	/* Both roots in one round trip (one tree, read or not, if equal). */
	if (root1 != root2)
		dmrepl_metadata_prefetch(md, (const uint64_t[]){root1, root2}, 2);
	dmrepl_metadata_set_refill(md, refill, d);
	*ret_delta = d;
	return 0;
}

DMREPL_EXPORT struct dmrepl_delta *
dmrepl_delta_unref(struct dmrepl_delta *delta)
{
	if (!delta)
		return NULL;
	dmrepl_metadata_set_refill(delta->md, NULL, delta);
	btree_cursor_release(&delta->side[0]);
	btree_cursor_release(&delta->side[1]);
	dmrepl_metadata_unref(delta->md);
	free(delta);
	return NULL;
}
