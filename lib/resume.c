/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Resume tokens: what a receiver hands back to a sender so that an
 * interrupted stream continues at its last checkpoint.
 *
 *   dmrepl1-SNAP-BASE-HASH-OFFSET-CHECK
 *
 * SNAP and BASE are the source's thin ids (BASE "full" for a full
 * stream), HASH the stream's identity hash (16 hex digits), OFFSET the
 * byte to continue at (decimal), CHECK the low 32 bits of the XXH3-64
 * of everything before it (8 hex digits), which catches a mistyped or
 * truncated token. The sender recomputes the identity from its own
 * pool and refuses a token whose hash differs, and it sends only the
 * part of that delta at or after OFFSET: a token cannot make it read
 * anything else.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "transfer.h"

#define PREFIX "dmrepl1-"

static uint32_t check_of(const char *s, size_t len)
{
	return (uint32_t)XXH3_64bits(s, len);
}

int dmrepl_resume_token_format(const struct dmrepl_resume_token *t, char *buf,
			       size_t size)
{
	char base[24];
	int n, m;

	if (t->base_id == DMREPL_THIN_ID_ANY)
		snprintf(base, sizeof(base), "full");
	else
		snprintf(base, sizeof(base), "%" PRIu64, t->base_id);
	n = snprintf(buf, size, PREFIX "%" PRIu64 "-%s-%016" PRIx64 "-%" PRIu64 "-",
		     t->snap_id, base, t->identity_hash, t->offset);
	if (n < 0 || (size_t)n >= size)
		return -ENAMETOOLONG;
	m = snprintf(buf + n, size - (size_t)n, "%08" PRIx32,
		     check_of(buf, (size_t)n));
	if (m < 0 || (size_t)(n + m) >= size)
		return -ENAMETOOLONG;
	return 0;
}

/* A decimal (@hex: 16 hex digits) field ending at @end, or -EINVAL. */
static int field(const char **p, char end, bool hex, uint64_t *ret)
{
	const char *s = *p;
	char *e;

	if (hex ? strspn(s, "0123456789abcdef") != 16 : (*s < '0' || *s > '9'))
		return -EINVAL;
	errno = 0;
	*ret = strtoull(s, &e, hex ? 16 : 10);
	if (errno || *e != end)
		return -EINVAL;
	*p = e + 1;
	return 0;
}

int dmrepl_resume_token_parse(const char *s, struct dmrepl_resume_token *ret)
{
	struct dmrepl_resume_token t;
	const char *p = s;
	uint64_t check;

	if (!s || strncmp(s, PREFIX, strlen(PREFIX)) != 0 ||
	    strlen(s) >= DMREPL_RESUME_TOKEN_MAX)
		return -EINVAL;
	p += strlen(PREFIX);
	if (field(&p, '-', false, &t.snap_id) < 0)
		return -EINVAL;
	if (strncmp(p, "full-", 5) == 0) {
		t.base_id = DMREPL_THIN_ID_ANY;
		p += 5;
	} else if (field(&p, '-', false, &t.base_id) < 0) {
		return -EINVAL;
	}
	if (field(&p, '-', true, &t.identity_hash) < 0 ||
	    field(&p, '-', false, &t.offset) < 0)
		return -EINVAL;
	if (strlen(p) != 8 || strspn(p, "0123456789abcdef") != 8)
		return -EINVAL;
	check = strtoull(p, NULL, 16);
	if (check != check_of(s, (size_t)(p - s)))
		return -EINVAL;
	if (t.snap_id > DMREPL_THIN_ID_MAX ||
	    (t.base_id != DMREPL_THIN_ID_ANY && t.base_id > DMREPL_THIN_ID_MAX) ||
	    t.offset % 512)
		return -EINVAL;
	*ret = t;
	return 0;
}
