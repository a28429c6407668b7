// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * The parsers of numbers, sizes and ionice values that the command line
 * and the configuration files share (declared in dmrepl.h). Pure: no
 * state, no output; the fuzz target of the configuration links them.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dmrepl.h"

int tool_parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end != '\0')
		return -EINVAL;
	if (errno == ERANGE || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

int tool_parse_size(const char *s, uint64_t *ret)
{
	static const char units[] = "KMGT";
	unsigned long long v;
	const char *u;
	char *end;
	int shift;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	if (*end == '\0') {
		*ret = v;
		return 0;
	}
	u = strchr(units, toupper((unsigned char)*end));
	if (!u || (end[1] && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0))
		return -EINVAL;
	shift = 10 * (int)(u - units + 1);
	if (v > (UINT64_MAX >> shift))
		return -ERANGE;
	*ret = (uint64_t)v << shift;
	return 0;
}

int tool_parse_ionice(const char *s, int *ret_class, int *ret_level)
{
	static const char *const names[] = {"realtime", "best-effort", "idle"};
	const char *colon = strchr(s, ':');
	size_t n = colon ? (size_t)(colon - s) : strlen(s);
	int cls = 0, level = 4;

	for (int i = 0; i < 3; i++)
		if (strlen(names[i]) == n && strncmp(s, names[i], n) == 0)
			cls = i + 1;
	if (!cls && n == 1 && s[0] >= '1' && s[0] <= '3')
		cls = s[0] - '0';
	if (!cls)
		return -EINVAL;
	if (colon) {
		if (colon[1] < '0' || colon[1] > '7' || colon[2])
			return -EINVAL;
		level = colon[1] - '0';
	}
	*ret_class = cls;
	*ret_level = level;
	return 0;
}

/*
 * What a POSIX shell would make of @line, for the few forms a dmrepl
 * command line takes: words of letters, digits and _-./:=@%+, separated
 * by blanks, and 'single-quoted' text (with \' for a quote, as
 * lib/remote.c writes it). Anything else a shell would give meaning to
 * ($, `, ;, |, &, <, >, ", *, ?, a backslash elsewhere, a newline) is
 * refused: -EINVAL. The words go into @buf, pointed to from @argv (at
 * most @max of them, then NULL): their number, or -E2BIG.
 */
int tool_split_words(const char *line, char **argv, int max, char *buf, size_t size)
{
	static const char plain[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789_-./:=@%+,";
	size_t n = 0;
	int argc = 0;
	const char *c = line;

	for (;;) {
		while (*c == ' ' || *c == '\t')
			c++;
		if (!*c)
			break;
		if (argc == max)
			return -E2BIG;
		argv[argc++] = buf + n;
		while (*c && *c != ' ' && *c != '\t') {
			if (*c == '\'') {
				for (c++; *c && *c != '\''; c++) {
					if (n + 1 >= size)
						return -E2BIG;
					buf[n++] = *c;
				}
				if (*c != '\'')
					return -EINVAL;	/* unterminated */
				c++;
			} else if (c[0] == '\\' && c[1] == '\'') {
				if (n + 1 >= size)
					return -E2BIG;
				buf[n++] = '\'';
				c += 2;
			} else if (strchr(plain, *c)) {
				if (n + 1 >= size)
					return -E2BIG;
				buf[n++] = *c++;
			} else {
				return -EINVAL;
			}
		}
		if (n + 1 >= size)
			return -E2BIG;
		buf[n++] = '\0';
	}
	argv[argc] = NULL;
	return argc;
}
