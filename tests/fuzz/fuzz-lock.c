/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for the per-pool lock record (lib/lock.c), the file
 * that tells a later run whether a held metadata snapshot is one a
 * killed dmrepl left: any input either is refused or parses into a
 * record that formats and parses back to the same record.
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
	struct dmrepl_lock_record rec, back;
	char *text = malloc(size + 1);
	char out[256];
	int len;

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (dmrepl_lock_record_parse(text, &rec) == 0) {
		len = dmrepl_lock_record_format(&rec, out, sizeof(out));
		if (len < 0 || dmrepl_lock_record_parse(out, &back) != 0 ||
		    back.holder != rec.holder || back.state != rec.state ||
		    back.owner != rec.owner || back.root != rec.root ||
		    memcmp(&back.copy, &rec.copy, sizeof(rec.copy)) != 0)
			abort();
	}
	free(text);
	return 0;
}
