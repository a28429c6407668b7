/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The base of libdmrepl's internal interfaces: on-disk field readers,
 * logging, the test hook. Each layer's internal interface has a header
 * of its own (doc/architecture.md); libdmrepl-private.h includes them all
 * for the tools and the tests.
 */
#ifndef DMREPL_BASE_H
#define DMREPL_BASE_H

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <syslog.h>

#include "libdmrepl.h"

#define DMREPL_EXPORT __attribute__((visibility("default")))

#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _cleanup_(fn) __attribute__((cleanup(fn)))

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* Little-endian fields of on-disk structures, at any alignment. */
static inline uint32_t get_le32(const uint8_t *b, size_t off)
{
	uint32_t v;

	memcpy(&v, b + off, sizeof(v));
	return le32toh(v);
}

static inline uint64_t get_le64(const uint8_t *b, size_t off)
{
	uint64_t v;

	memcpy(&v, b + off, sizeof(v));
	return le64toh(v);
}

/*
 * The context's slot for lib/lvm.c's cached listings: made by @create on
 * first use, freed by @destroy with the context.
 */
void *dmrepl_ctx_lvm_cache(struct dmrepl_ctx *ctx, void *(*create)(void),
			   void (*destroy)(void *cache));

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

/* SIGKILL this process here if DMREPL_TEST_KILL_AT names @name (tests). */
void dmrepl_test_point(const char *name);

#endif /* DMREPL_BASE_H */
