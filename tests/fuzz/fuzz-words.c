/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target for tool_split_words() (tools/parse.c), which reads
 * what an ssh client asked a receive-only key to run (dmrepl serve):
 * untrusted input. Checked: the count is within bounds or an error, the
 * words fit the buffer, and an accepted line held no character a shell
 * would act on outside single quotes.
 *
 * Build and run: tests/fuzz/run.sh [SECONDS]
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/dmrepl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Outside single quotes, only these (and the \' escape) may appear. */
static int shell_safe(const char *s)
{
	static const char plain[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789_-./:=@%+, \t";
	int quoted = 0;

	for (; *s; s++) {
		if (*s == '\'') {
			quoted = !quoted;
		} else if (!quoted && s[0] == '\\' && s[1] == '\'') {
			s++;
		} else if (!quoted && !strchr(plain, *s)) {
			return 0;
		}
	}
	return !quoted;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size + 1), *argv[33], buf[256];
	int n;

	if (!line)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	n = tool_split_words(line, argv, 32, buf, sizeof(buf));
	if (n > 32 || (n < 0 && n != -EINVAL && n != -E2BIG))
		abort();
	if (n >= 0) {
		if (argv[n] != NULL || !shell_safe(line))
			abort();
		for (int i = 0; i < n; i++)
			if (argv[i] < buf || argv[i] + strlen(argv[i]) >= buf + sizeof(buf))
				abort();
	}
	free(line);
	return 0;
}
