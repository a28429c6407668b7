/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Thin devices: the device-details tree (thin id -> details) and the
 * top level of the mapping tree (thin id -> root of the device's own
 * tree of virtual block -> data block and time).
 */
#include "config.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "base.h"
#include "metadata.h"
#include "replication.h"

#define DETAILS_VALUE_SIZE 24u
#define MAPPING_VALUE_SIZE 8u

static const char details_tree[] = "device-details tree";
static const char top_tree[] = "top-level mapping tree";

/*
 * On disk: le64 mapped_blocks, le64 transaction_id, le32 creation_time,
 * le32 snapshotted_time.
 */
static void decode_details(uint64_t thin_id, const uint8_t *v,
			   struct dmrepl_thin_info *info)
{
	uint64_t v64[2];
	uint32_t v32[2];

	memcpy(v64, v, sizeof(v64));
	memcpy(v32, v + 16, sizeof(v32));
	*info = (struct dmrepl_thin_info){
	    .thin_id = thin_id,
	    .mapped_blocks = le64toh(v64[0]),
	    .transaction_id = le64toh(v64[1]),
	    .creation_time = le32toh(v32[0]),
	    .snapshot_time = le32toh(v32[1]),
	};
}

DMREPL_EXPORT int dmrepl_metadata_get_thin(struct dmrepl_metadata *md,
					   uint64_t thin_id,
					   struct dmrepl_thin_info *ret_info)
{
	uint8_t v[DETAILS_VALUE_SIZE];
	int r;

	if (!md || !ret_info)
		return -EINVAL;
	r = btree_lookup(md, details_tree, dmrepl_metadata_get_details_root(md),
			 DETAILS_VALUE_SIZE, thin_id, v);
	if (r < 0)
		return r;
	decode_details(thin_id, v, ret_info);
	return 0;
}

DMREPL_EXPORT int dmrepl_metadata_foreach_thin(
    struct dmrepl_metadata *md,
    int (*fn)(const struct dmrepl_thin_info *info, void *userdata),
    void *userdata)
{
	struct dmrepl_thin_info info;
	struct btree_cursor c;
	const void *value;
	uint64_t id;
	int r;

	if (!md || !fn)
		return -EINVAL;
	btree_cursor_init(&c, md, details_tree,
			  dmrepl_metadata_get_details_root(md),
			  DETAILS_VALUE_SIZE);
	for (;;) {
		r = btree_cursor_next(&c, &id, &value);
		if (r != 0) {
			r = r == 1 ? 0 : r; /* the end of the tree */
			break;
		}
		decode_details(id, value, &info);
		r = fn(&info, userdata);
		if (r != 0)
			break;
	}
	btree_cursor_release(&c);
	return r;
}

int dmrepl_thin_get_mapping_root(struct dmrepl_metadata *md, uint64_t thin_id,
				 uint64_t *ret_root)
{
	uint64_t v;
	int r;

	r = btree_lookup(md, top_tree, dmrepl_metadata_get_mapping_root(md),
			 MAPPING_VALUE_SIZE, thin_id, &v);
	if (r < 0)
		return r;
	*ret_root = le64toh(v);
	return 0;
}

struct max_id {
	uint64_t max;
	bool any;
};

static int note_id(const struct dmrepl_thin_info *info, void *userdata)
{
	struct max_id *m = userdata;

	m->any = true;
	if (info->thin_id > m->max)
		m->max = info->thin_id;
	return 0;
}

int dmrepl_metadata_next_free_id(struct dmrepl_metadata *md, uint64_t *ret_id)
{
	struct max_id m = {0};
	int r;

	r = dmrepl_metadata_foreach_thin(md, note_id, &m);
	if (r < 0)
		return r;
	if (m.any && m.max >= DMREPL_THIN_ID_MAX) {
		err(dmrepl_metadata_get_ctx(md), "%s: no free thin id above %" PRIu64,
		    dmrepl_metadata_get_name(md), m.max);
		return -ENOSPC;
	}
	*ret_id = m.any ? m.max + 1 : 0;
	return 0;
}

int dmrepl_thin_ident_read(struct dmrepl_metadata *md, uint64_t thin_id,
			   struct dmrepl_thin_ident *ret)
{
	struct dmrepl_thin_info info;
	int r;

	r = dmrepl_metadata_get_thin(md, thin_id, &info);
	if (r < 0)
		return r;
	r = dmrepl_thin_get_mapping_root(md, thin_id, &ret->root);
	if (r < 0)
		return r;
	ret->thin_id = thin_id;
	ret->creation_time = info.creation_time;
	ret->mapped_blocks = info.mapped_blocks;
	return 0;
}

bool dmrepl_thin_ident_equal(const struct dmrepl_thin_ident *a,
			     const struct dmrepl_thin_ident *b)
{
	return a->thin_id == b->thin_id &&
	       a->creation_time == b->creation_time && a->root == b->root &&
	       a->mapped_blocks == b->mapped_blocks;
}
