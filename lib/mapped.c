/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The mapped extents of one thin device: what a full copy must move.
 * A walk of the device's own mapping tree, merging consecutive mapped
 * virtual blocks into one extent; memory is the cursor's stack.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>

#include "base.h"
#include "metadata.h"
#include "replication.h"

#define MAPPING_VALUE_SIZE 8u

struct dmrepl_mapped {
	struct dmrepl_metadata *md;
	struct btree_cursor cursor;
	uint64_t block_bytes;
	bool have_run, done;
	uint64_t run_begin, run_end;	/* virtual blocks [begin, end) */
	int error;
};

int dmrepl_mapped_new(struct dmrepl_metadata *md, uint64_t thin_id,
		      struct dmrepl_mapped **ret)
{
	struct dmrepl_pool_info pi;
	struct dmrepl_mapped *m;
	uint64_t root;
	int r;

	r = dmrepl_metadata_get_pool_info(md, &pi);
	if (r < 0)
		return r;
	r = dmrepl_thin_get_mapping_root(md, thin_id, &root);
	if (r == -ENOENT)
		err(dmrepl_metadata_get_ctx(md), "%s: no thin device %" PRIu64,
		    dmrepl_metadata_get_name(md), thin_id);
	if (r < 0)
		return r;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->md = dmrepl_metadata_ref(md);
	m->block_bytes = pi.data_block_size_sectors * 512;
	btree_cursor_init(&m->cursor, md, "mapping tree", root,
			  MAPPING_VALUE_SIZE);
	*ret = m;
	return 0;
}

struct dmrepl_mapped *dmrepl_mapped_unref(struct dmrepl_mapped *m)
{
	if (!m)
		return NULL;
	btree_cursor_release(&m->cursor);
	dmrepl_metadata_unref(m->md);
	free(m);
	return NULL;
}

static int emit(struct dmrepl_mapped *m, struct dmrepl_extent *ret)
{
	uint64_t len = m->run_end - m->run_begin;

	if (m->run_begin > UINT64_MAX / m->block_bytes ||
	    len > UINT64_MAX / m->block_bytes - m->run_begin) {
		err(dmrepl_metadata_get_ctx(m->md),
		    "%s: virtual block %" PRIu64 " is beyond any device size",
		    dmrepl_metadata_get_name(m->md), m->run_begin);
		return -EOVERFLOW;
	}
	ret->op = DMREPL_EXTENT_COPY;
	ret->offset_bytes = m->run_begin * m->block_bytes;
	ret->length_bytes = len * m->block_bytes;
	return 0;
}

/* Return: 0 and *@ret filled; 1 at the end; -errno (final). */
int dmrepl_mapped_next_extent(struct dmrepl_mapped *m,
			      struct dmrepl_extent *ret)
{
	const void *value;
	uint64_t key;
	int r;

	if (m->error)
		return m->error;
	while (!m->done) {
		r = btree_cursor_next(&m->cursor, &key, &value);
		if (r < 0)
			return m->error = r;
		if (r == 1) {
			m->done = true;
			break;
		}
		if (m->have_run && key == m->run_end) {
			m->run_end++;
			continue;
		}
		if (m->have_run) {
			r = emit(m, ret);
			m->run_begin = key;
			m->run_end = key + 1;
			return r < 0 ? (m->error = r) : 0;
		}
		m->have_run = true;
		m->run_begin = key;
		m->run_end = key + 1;
	}
	if (!m->have_run)
		return 1;
	m->have_run = false;
	r = emit(m, ret);
	return r < 0 ? (m->error = r) : 0;
}

/* ---- what to ship: a delta's extents, or the mapped ones ---- */

struct dmrepl_extent_iter {
	struct dmrepl_delta *delta;
	struct dmrepl_mapped *mapped;
};

static int iter_alloc(struct dmrepl_extent_iter **ret)
{
	*ret = calloc(1, sizeof(**ret));
	return *ret ? 0 : -ENOMEM;
}

int dmrepl_extent_iter_delta(struct dmrepl_metadata *md, uint64_t from,
			     uint64_t to, struct dmrepl_extent_iter **ret)
{
	struct dmrepl_extent_iter *it;
	int r;

	r = iter_alloc(&it);
	if (r < 0)
		return r;
	r = dmrepl_delta_new(md, from, to, DMREPL_DELTA_SKIP_SAME, &it->delta);
	if (r < 0) {
		dmrepl_extent_iter_free(it);
		return r;
	}
	*ret = it;
	return 0;
}

int dmrepl_extent_iter_mapped(struct dmrepl_metadata *md, uint64_t thin_id,
			      struct dmrepl_extent_iter **ret)
{
	struct dmrepl_extent_iter *it;
	int r;

	r = iter_alloc(&it);
	if (r < 0)
		return r;
	r = dmrepl_mapped_new(md, thin_id, &it->mapped);
	if (r < 0) {
		dmrepl_extent_iter_free(it);
		return r;
	}
	*ret = it;
	return 0;
}

int dmrepl_extent_iter_next(struct dmrepl_extent_iter *it,
			    struct dmrepl_extent *ret)
{
	if (it->delta)
		return dmrepl_delta_next_extent(it->delta, ret);
	return dmrepl_mapped_next_extent(it->mapped, ret);
}

void dmrepl_extent_iter_free(struct dmrepl_extent_iter *it)
{
	if (!it)
		return;
	dmrepl_delta_unref(it->delta);
	dmrepl_mapped_unref(it->mapped);
	free(it);
}
