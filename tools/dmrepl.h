/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Shared pieces of the dmrepl command: the subcommand table and the
 * helpers every subcommand uses to report errors the same way.
 */
#ifndef DMREPL_TOOL_H
#define DMREPL_TOOL_H

#include <stdbool.h>

#include "libdmrepl.h"

/* Exit codes; documented in dmrepl(8), keep both in step. */
enum {
	EXIT_OK = 0,
	EXIT_FAILURE_OP = 1,	/* the operation failed */
	EXIT_USAGE = 2,		/* bad command line */
};

struct subcommand {
	const char *name;
	const char *summary;
	int (*run)(struct dmrepl_ctx *ctx, int argc, char *argv[]);
};

extern const char *program_name;

/* Print "dmrepl: SUBCMD: message" to stderr. */
void tool_error(const char *subcmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Report a bad command line and return EXIT_USAGE. */
int tool_usage_error(const char *subcmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

int cmd_help(struct dmrepl_ctx *ctx, int argc, char *argv[]);
int cmd_version(struct dmrepl_ctx *ctx, int argc, char *argv[]);

#endif
