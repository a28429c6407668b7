/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for lineage records, in both their forms (the state
 * directory's files, and an LVM tag's text): any input either is refused
 * or parses into a record that formats and parses back to the same
 * record; and the snapshot size records (lib/sizes.c), which parse only
 * into a positive multiple of 512.
 *
 * Build and run: tests/fuzz/run.sh [SECONDS]
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libdmrepl-private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dmrepl_lineage_record rec, back;
	char tag[4096];
	char *copy = malloc(size ? size : 1);
	char text[4096];
	int len;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	if (dmrepl_lineage_parse(copy, size, &rec) == 0) {
		len = dmrepl_lineage_format(&rec, text, sizeof(text));
		if (len < 0 || dmrepl_lineage_parse(text, (size_t)len, &back) != 0 ||
		    strcmp(back.src_pool, rec.src_pool) != 0 ||
		    memcmp(&back.src, &rec.src, sizeof(rec.src)) != 0 ||
		    memcmp(&back.dst, &rec.dst, sizeof(rec.dst)) != 0 ||
		    back.size_bytes != rec.size_bytes || back.anchor_id != rec.anchor_id ||
		    back.base_dst_id != rec.base_dst_id || back.time != rec.time)
			abort();
	}
	{
		/* a snapshot size record: NUL-terminated text */
		char *text = malloc(size + 1);
		uint64_t sz;
		uint32_t ct;

		if (text) {
			memcpy(text, data, size);
			text[size] = '\0';
			if (dmrepl_snap_size_parse(text, &sz, &ct) == 0 &&
			    (sz == 0 || sz % 512))
				abort();
			free(text);
		}
	}
	if (dmrepl_lineage_tag_parse(copy, size, &rec) == 0) {
		len = dmrepl_lineage_tag_format("t:", &rec, tag, sizeof(tag));
		if (len < 2 ||
		    dmrepl_lineage_tag_parse(tag + 2, (size_t)len - 2, &back) != 0 ||
		    strcmp(back.src_pool, rec.src_pool) != 0 ||
		    strcmp(back.src_name, rec.src_name) != 0 ||
		    memcmp(&back.src, &rec.src, sizeof(rec.src)) != 0 ||
		    memcmp(&back.dst, &rec.dst, sizeof(rec.dst)) != 0 ||
		    back.resumable != rec.resumable ||
		    back.checkpoint != rec.checkpoint)
			abort();
	}
	free(copy);
	return 0;
}
