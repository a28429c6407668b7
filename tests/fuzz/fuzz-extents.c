/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for the extents-list parser: the input is cut into
 * lines as `dmrepl copy --extents` reads them, and each line is parsed
 * from an exact-size heap copy, so reading one byte past the line is an
 * AddressSanitizer error. Each accepted extent must satisfy what the
 * parser promises: a length above 0 and no overflow of offset + length.
 *
 * Build and run: tests/fuzz/run.sh [SECONDS]
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libdmrepl-private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse_one(const uint8_t *line, size_t len)
{
	struct dmrepl_extent x;
	const char *reason = NULL;
	char *copy = malloc(len ? len : 1);
	int r;

	if (!copy)
		return;
	memcpy(copy, line, len);
	r = dmrepl_extent_parse_line(copy, len, &x, &reason);
	if (r == 0 && (x.length_bytes == 0 ||
		       x.offset_bytes + x.length_bytes < x.offset_bytes ||
		       (x.op != DMREPL_EXTENT_COPY && x.op != DMREPL_EXTENT_DISCARD)))
		abort();
	if (r < 0 && (!reason || !*reason))
		abort();
	if (r != 0 && r != 1 && r != -EINVAL)
		abort();
	free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t start = 0;

	for (size_t i = 0; i < size; i++) {
		if (data[i] != '\n')
			continue;
		parse_one(data + start, i + 1 - start);
		start = i + 1;
	}
	if (start < size)
		parse_one(data + start, size - start);
	return 0;
}
