/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * libFuzzer target for the sync jobs' configuration (tools/conf.c over
 * libinih): the input's first byte picks dmrepl.conf or a job file, the
 * rest is its text. What the parser promises is checked: an accepted
 * file sets only valid values (keep within its range, origin and
 * destination well formed, one destination), and a refused one says why
 * with the file's name first.
 *
 * Build and run: tests/fuzz/run.sh [SECONDS]
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_job(const struct config_job *j)
{
	if (!j->origin || !strchr(j->origin, '/'))
		abort();
	if (!!j->to == !!j->to_pool)
		abort();
	if (j->to && strncmp(j->to, "ssh://", 6) != 0)
		abort();
	if (j->s.keep < 1 || j->s.keep > CONFIG_KEEP_MAX ||
	    j->s.keep_destination < 1 || j->s.keep_destination > CONFIG_KEEP_MAX)
		abort();
	if (j->trigger == TRIGGER_DEVICE && (!j->trigger_device || !j->trigger_device[0]))
		abort();
	if (j->s.state_dir && j->s.state_dir[0] != '/')
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg = { .defaults.compress = -1 };
	const char *file = "fuzz.conf";
	char *text;
	int r;

	if (size < 1)
		return 0;
	text = malloc(size);
	if (!text)
		return 0;
	/* the files are read whole and refused with a NUL byte: none here */
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	if (memchr(text, '\0', size - 1)) {
		free(text);
		return 0;
	}
	r = config_parse_text(&cfg, file, text, data[0] & 1 ? "job" : NULL, NULL, NULL);
	if (r == 0)
		r = config_finish(&cfg, NULL, NULL);
	if (r == 0) {
		for (size_t i = 0; i < cfg.nr_jobs; i++)
			check_job(&cfg.jobs[i]);
	} else if (strncmp(cfg.error, file, strlen(file)) != 0) {
		abort();
	}
	config_free(&cfg);
	free(text);
	return 0;
}
