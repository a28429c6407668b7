/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Internal interfaces shared between libdmrepl's source files, its tests
 * and its tools (which link the non-installed libdmrepl-internal.la).
 */
#ifndef LIBDMREPL_PRIVATE_H
#define LIBDMREPL_PRIVATE_H

#include <syslog.h>

#include "libdmrepl.h"

#define DMREPL_EXPORT __attribute__((visibility("default")))

#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _cleanup_(fn) __attribute__((cleanup(fn)))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

void dmrepl_log(struct dmrepl_ctx *ctx, int priority, const char *file,
		int line, const char *fn, const char *format, ...) _printf_(6, 7);

/*
 * The condition is checked before the arguments are evaluated, so a
 * debug message costs one comparison when debugging is off.
 */
#define dmrepl_log_cond(ctx, prio, ...)                                       \
	do {                                                                  \
		if (dmrepl_get_log_priority(ctx) >= (prio))                   \
			dmrepl_log(ctx, prio, __FILE__, __LINE__, __func__,   \
				   __VA_ARGS__);                              \
	} while (0)

#define dbg(ctx, ...) dmrepl_log_cond(ctx, LOG_DEBUG, __VA_ARGS__)
#define info(ctx, ...) dmrepl_log_cond(ctx, LOG_INFO, __VA_ARGS__)
#define notice(ctx, ...) dmrepl_log_cond(ctx, LOG_NOTICE, __VA_ARGS__)
#define warn(ctx, ...) dmrepl_log_cond(ctx, LOG_WARNING, __VA_ARGS__)
#define err(ctx, ...) dmrepl_log_cond(ctx, LOG_ERR, __VA_ARGS__)

/* Parse a DMREPL_LOG-style priority: "0".."7" or a syslog name. */
int dmrepl_parse_log_priority(const char *s, int *ret_priority);

#endif /* LIBDMREPL_PRIVATE_H */
