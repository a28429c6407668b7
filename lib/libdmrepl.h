/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdmrepl - replicate device-mapper thin-pool snapshots by shipping
 * only the blocks that changed.
 *
 * Conventions, for every function in this header:
 *  - integer returns are 0 on success or a negative errno value;
 *  - output parameters are named ret_* and are left untouched on failure;
 *  - handles are opaque and reference counted; *_unref(NULL) is a no-op;
 *  - the library never prints: it reports through the context's log
 *    function (see dmrepl_set_log_fn()).
 */
#ifndef LIBDMREPL_H
#define LIBDMREPL_H

#include <stdarg.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * struct dmrepl_ctx - library context.
 *
 * Holds the log function and priority and is the parent of every other
 * libdmrepl object. Create one per thread of use with dmrepl_new().
 */
struct dmrepl_ctx;

/**
 * dmrepl_new() - create a library context.
 * @ret_ctx: receives the new context, with one reference.
 *
 * The log priority starts at LOG_ERR, or at the value of the environment
 * variable DMREPL_LOG, which takes a number (0-7) or a syslog name
 * ("err", "info", "debug", ...). Messages go to stderr until
 * dmrepl_set_log_fn() installs another function.
 *
 * Return: 0, or -EINVAL if @ret_ctx is NULL, -ENOMEM.
 */
int dmrepl_new(struct dmrepl_ctx **ret_ctx);

/**
 * dmrepl_ref() - take a reference on @ctx.
 * Return: @ctx, or NULL if @ctx is NULL.
 */
struct dmrepl_ctx *dmrepl_ref(struct dmrepl_ctx *ctx);

/**
 * dmrepl_unref() - drop a reference; the last one frees the context.
 * Return: NULL, so callers can write ctx = dmrepl_unref(ctx).
 */
struct dmrepl_ctx *dmrepl_unref(struct dmrepl_ctx *ctx);

/**
 * dmrepl_log_fn - log function type.
 * @ctx: the context that logs.
 * @priority: syslog priority, LOG_ERR (3) to LOG_DEBUG (7).
 * @file, @line, @fn: where the message was raised.
 * @format, @args: printf-style message, with no trailing newline.
 * @userdata: the pointer given to dmrepl_set_log_fn().
 */
typedef void (*dmrepl_log_fn)(struct dmrepl_ctx *ctx, int priority,
			      const char *file, int line, const char *fn,
			      const char *format, va_list args,
			      void *userdata);

/**
 * dmrepl_set_log_fn() - replace the log function.
 * @fn: the new function, or NULL to discard every message.
 * @userdata: passed back to @fn unchanged.
 *
 * Return: 0, or -EINVAL if @ctx is NULL.
 */
int dmrepl_set_log_fn(struct dmrepl_ctx *ctx, dmrepl_log_fn fn, void *userdata);

/**
 * dmrepl_get_log_priority() - the highest priority that is logged.
 * Return: a syslog priority, or -EINVAL if @ctx is NULL.
 */
int dmrepl_get_log_priority(const struct dmrepl_ctx *ctx);

/**
 * dmrepl_set_log_priority() - log messages up to @priority.
 * @priority: syslog priority, 0 (LOG_EMERG) to 7 (LOG_DEBUG).
 *
 * Return: 0, or -EINVAL if @ctx is NULL or @priority is out of range.
 */
int dmrepl_set_log_priority(struct dmrepl_ctx *ctx, int priority);

/**
 * dmrepl_version() - the library's version string, e.g. "0.1.0".
 */
const char *dmrepl_version(void);

#ifdef __cplusplus
}
#endif

#endif /* LIBDMREPL_H */
