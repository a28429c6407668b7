/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for lvs' JSON answers and tag text (lib/lvm.c): any
 * input is either refused or read into an LV (or a list of LVs) whose
 * names are terminated within their fields, whose thin id is a thin id or
 * none, and that reads the same when parsed again; tag text unescapes
 * only to what escapes back to it.
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
	struct dmrepl_lvm_lv a, b;
	char *text = malloc(size + 1);

	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (dmrepl_lvm_parse_lv(text, &a) == 0) {
		if (strnlen(a.vg, sizeof(a.vg)) == sizeof(a.vg) ||
		    strnlen(a.lv, sizeof(a.lv)) == sizeof(a.lv) ||
		    strnlen(a.segtype, sizeof(a.segtype)) == sizeof(a.segtype) ||
		    strnlen(a.pool_lv, sizeof(a.pool_lv)) == sizeof(a.pool_lv) ||
		    !a.vg[0] || !a.lv[0] ||
		    (a.thin_id > DMREPL_THIN_ID_MAX &&
		     a.thin_id != DMREPL_THIN_ID_ANY))
			abort();
		if (dmrepl_lvm_parse_lv(text, &b) != 0 ||
		    memcmp(&a, &b, sizeof(a)) != 0)
			abort();
	}
	{
		struct dmrepl_lvm_lv *lvs = NULL;
		size_t n = 0;

		if (dmrepl_lvm_parse_lvs(text, &lvs, &n) == 0) {
			for (size_t i = 0; i < n; i++)
				if (strnlen(lvs[i].tags, sizeof(lvs[i].tags)) ==
					sizeof(lvs[i].tags) ||
				    strnlen(lvs[i].origin, sizeof(lvs[i].origin)) ==
					sizeof(lvs[i].origin) ||
				    !lvs[i].vg[0] || !lvs[i].lv[0])
					abort();
			free(lvs);
		}
	}
	{
		char raw[512], esc[2048];

		if (size < sizeof(raw) &&
		    dmrepl_lvm_tag_unescape(text, size, raw, sizeof(raw)) == 0 &&
		    strlen(raw) == strnlen(raw, sizeof(raw)) &&
		    (dmrepl_lvm_tag_escape(raw, esc, sizeof(esc)) != 0 ||
		     strlen(esc) != size || memcmp(esc, text, size) != 0))
			abort();
	}
	free(text);
	return 0;
}
