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
 */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libdmrepl-private.h"

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

struct block_event {
	enum dmrepl_run_kind kind;
	uint64_t block;
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

static int descend(struct dmrepl_delta *d, int side)
{
	int r = btree_cursor_descend(&d->side[side]);

	return r < 0 ? r : STEP_AGAIN;
}

/* Both sides stand before the same node: identical mappings below it. */
static int step_over_shared(struct dmrepl_delta *d)
{
	int r;

	d->shared_skipped++;
	btree_cursor_skip(&d->side[1]);
	if (!d->want_same) {
		btree_cursor_skip(&d->side[0]);
		return STEP_AGAIN;
	}
	r = btree_cursor_descend(&d->side[0]);
	if (r < 0)
		return r;
	d->same_depth = d->side[0].depth;
	return STEP_AGAIN;
}

static int shared_step(struct dmrepl_delta *d, struct block_event *ev)
{
	struct btree_cursor *c = &d->side[0];
	struct btree_item item;
	uint64_t unused;
	int r;

	btree_cursor_peek(c, &item);
	if (c->depth < d->same_depth) {
		d->same_depth = 0;
		return STEP_AGAIN;
	}
	if (item.kind == BTREE_ITEM_SUBTREE)
		return descend(d, 0);
	r = data_block(d, c, &item, &unused);
	if (r < 0)
		return r;
	btree_cursor_skip(c);
	ev->kind = DMREPL_RUN_SAME;
	ev->block = item.key;
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
		return step_over_shared(d);
	if (a.kind == BTREE_ITEM_SUBTREE && read_first(&a, &b))
		return descend(d, 0);
	if (b.kind == BTREE_ITEM_SUBTREE && read_first(&b, &a))
		return descend(d, 1);
	/* Now each head is a value, or lies beyond the other head's value. */
	if (a.kind == BTREE_ITEM_VALUE && b.kind == BTREE_ITEM_VALUE &&
	    a.key == b.key)
		return emit_both(d, &a, &b, ev);
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
			d->run.length_blocks++;
			continue;
		}
		done = d->run;
		had_run = d->have_run;
		d->run = (struct dmrepl_run){ev.kind, ev.block, 1};
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
	*ret_delta = d;
	return 0;
}

DMREPL_EXPORT struct dmrepl_delta *
dmrepl_delta_unref(struct dmrepl_delta *delta)
{
	if (!delta)
		return NULL;
	btree_cursor_release(&delta->side[0]);
	btree_cursor_release(&delta->side[1]);
	dmrepl_metadata_unref(delta->md);
	free(delta);
	return NULL;
}
