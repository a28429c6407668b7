/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The snapshots between a base and a newer snapshot, for a chain of
 * streams (dmrepl send --chain, in the spirit of zfs send -I).
 *
 * dm-thin records no parent of a snapshot, so the chain is found from
 * what it does record: a candidate was created after the base and
 * before the target (creation time, the pool's snapshot counter), and
 * it shares at least one data block with the target at the same
 * offset, which only devices of one snapshot family do. A writable
 * clone of the base taken in between also qualifies; name the links by
 * hand where that matters.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "base.h"
#include "transfer.h"

struct candidates {
	struct dmrepl_metadata *md;
	uint32_t after, before;		/* creation times, exclusive */
	uint64_t base, snap;
	struct dmrepl_thin_info *v;
	size_t n, cap;
	int error;
};

/* A "same" run: some block maps to the same data block in both. */
static int shares(struct dmrepl_metadata *md, uint64_t a, uint64_t b)
{
	struct dmrepl_delta *delta = NULL;
	struct dmrepl_run run;
	int r;

	r = dmrepl_delta_new(md, a, b, 0, &delta);
	while (r == 0) {
		r = dmrepl_delta_next_run(delta, &run);
		if (r == 0 && run.kind == DMREPL_RUN_SAME)
			r = 2;
	}
	dmrepl_delta_unref(delta);
	return r == 2 ? 1 : r == 1 ? 0 : r;
}

static int consider(const struct dmrepl_thin_info *info, void *data)
{
	struct candidates *c = data;
	int r;

	if (info->thin_id == c->base || info->thin_id == c->snap ||
	    info->creation_time <= c->after || info->creation_time >= c->before)
		return 0;
	r = shares(c->md, info->thin_id, c->snap);
	if (r <= 0)
		return r;
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		void *v = realloc(c->v, cap * sizeof(*c->v));

		if (!v)
			return -ENOMEM;
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = *info;
	return 0;
}

static int by_time(const void *a, const void *b)
{
	const struct dmrepl_thin_info *x = a, *y = b;

	if (x->creation_time != y->creation_time)
		return x->creation_time < y->creation_time ? -1 : 1;
	return x->thin_id < y->thin_id ? -1 : x->thin_id > y->thin_id;
}

int dmrepl_chain_list(struct dmrepl_ctx *ctx, const char *pool, uint64_t base,
		      uint64_t snap, uint64_t **ret_ids, size_t *ret_n)
{
	struct candidates c = {.base = base, .snap = snap};
	struct dmrepl_thin_info bi, si;
	uint64_t *ids = NULL;
	int r;

	r = dmrepl_metadata_open_pool(ctx, pool, &c.md);
	if (r < 0)
		return r;
	r = dmrepl_metadata_get_thin(c.md, base, &bi);
	if (r == -ENOENT)
		err(ctx, "%s: no thin %" PRIu64 " (the base)", pool, base);
	if (r == 0) {
		r = dmrepl_metadata_get_thin(c.md, snap, &si);
		if (r == -ENOENT)
			err(ctx, "%s: no thin %" PRIu64, pool, snap);
	}
	if (r == 0 && bi.creation_time >= si.creation_time) {
		err(ctx, "%s: thin %" PRIu64 " is not older than thin %" PRIu64
			 ", so it cannot be the base of a chain to it",
		    pool, base, snap);
		r = -EINVAL;
	}
	c.after = bi.creation_time;
	c.before = si.creation_time;
	if (r == 0)
		r = dmrepl_metadata_foreach_thin(c.md, consider, &c);
	dmrepl_metadata_unref(c.md);
	if (r == 0 && c.n) {
		qsort(c.v, c.n, sizeof(*c.v), by_time);
		ids = calloc(c.n, sizeof(*ids));
		r = ids ? 0 : -ENOMEM;
		for (size_t i = 0; ids && i < c.n; i++)
			ids[i] = c.v[i].thin_id;
	}
	free(c.v);
	if (r < 0)
		return r;
	*ret_ids = ids;
	*ret_n = c.n;
	return 0;
}
