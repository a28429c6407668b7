/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Extents lists in text: "OFFSET_BYTES LENGTH_BYTES copy|discard", one a
 * line, as `dmrepl delta --format=extents` prints them.
 */
#include "config.h"

#include <errno.h>

#include "base.h"
#include "io.h"

struct cursor {
	const char *p, *end;
};

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static void skip_blanks(struct cursor *c)
{
	while (c->p < c->end && is_blank(*c->p))
		c->p++;
}

/* A decimal number without sign; -ERANGE past UINT64_MAX. */
static int parse_u64(struct cursor *c, uint64_t *ret)
{
	uint64_t v = 0;
	const char *start = c->p;

	for (; c->p < c->end && *c->p >= '0' && *c->p <= '9'; c->p++) {
		unsigned int d = (unsigned int)(*c->p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	if (c->p == start)
		return -EINVAL;
	*ret = v;
	return 0;
}

static bool take_word(struct cursor *c, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
		return false;
	if (c->p + n < c->end && !is_blank(c->p[n]) && c->p[n] != '\r' &&
	    c->p[n] != '\n')
		return false;
	c->p += n;
	return true;
}

static int parse_number(struct cursor *c, const char *what_missing,
			uint64_t *ret, const char **ret_reason)
{
	int r;

	skip_blanks(c);
	r = parse_u64(c, ret);
	if (r == -ERANGE)
		*ret_reason = "number too large";
	else if (r < 0)
		*ret_reason = what_missing;
	else if (c->p < c->end && !is_blank(*c->p))
		*ret_reason = what_missing, r = -EINVAL;
	return r < 0 ? -EINVAL : 0;
}

static int parse_op(struct cursor *c, enum dmrepl_extent_op *ret,
		    const char **ret_reason)
{
	skip_blanks(c);
	if (take_word(c, "copy"))
		*ret = DMREPL_EXTENT_COPY;
	else if (take_word(c, "discard"))
		*ret = DMREPL_EXTENT_DISCARD;
	else {
		*ret_reason = "expected 'copy' or 'discard' after the length";
		return -EINVAL;
	}
	skip_blanks(c);
	if (c->p < c->end && *c->p == '\r')
		c->p++;
	if (c->p < c->end && *c->p == '\n')
		c->p++;
	if (c->p != c->end) {
		*ret_reason = "unexpected text after the operation";
		return -EINVAL;
	}
	return 0;
}

static bool line_is_blank(const char *line, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!is_blank(line[i]) && line[i] != '\r' && line[i] != '\n')
			return false;
	return true;
}

int dmrepl_extent_parse_line(const char *line, size_t len,
			     struct dmrepl_extent *ret_extent,
			     const char **ret_reason)
{
	struct cursor c = { line, line + len };
	struct dmrepl_extent x;
	const char *reason = NULL;
	int r;

	if (!line || !ret_extent)
		return -EINVAL;
	if (line_is_blank(line, len))
		return 1;
	r = parse_number(&c, "expected OFFSET_BYTES LENGTH_BYTES copy|discard",
			 &x.offset_bytes, &reason);
	if (r == 0)
		r = parse_number(&c, "expected a length after the offset",
				 &x.length_bytes, &reason);
	if (r == 0)
		r = parse_op(&c, &x.op, &reason);
	if (r == 0 && x.length_bytes == 0)
		reason = "the length is 0", r = -EINVAL;
	if (r == 0 && x.offset_bytes + x.length_bytes < x.offset_bytes)
		reason = "offset + length overflows 64 bits", r = -EINVAL;
	if (r < 0) {
		if (ret_reason)
			*ret_reason = reason;
		return r;
	}
	*ret_extent = x;
	return 0;
}
