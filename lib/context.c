/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The library context: reference counting and logging.
 */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base.h"

struct dmrepl_ctx {
	int refcount;
	int log_priority;
	dmrepl_log_fn log_fn;
	void *log_data;
	/* lib/lvm.c's listings, freed with the context */
	void *lvm_cache;
	void (*lvm_cache_free)(void *cache);
};

static const char *const priority_names[] = {
	"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
};

__attribute__((format(printf, 6, 0)))
static void log_stderr(struct dmrepl_ctx *ctx, int priority, const char *file,
		       int line, const char *fn, const char *format,
		       va_list args, void *userdata)
{
	fprintf(stderr, "libdmrepl: %s: ", fn);
	vfprintf(stderr, format, args);
	fputc('\n', stderr);
}

int dmrepl_parse_log_priority(const char *s, int *ret_priority)
{
	char *end;
	long n;

	if (!s || !*s)
		return -EINVAL;

	errno = 0;
	n = strtol(s, &end, 10);
	if (end != s && *end == '\0') {
		if (errno || n < LOG_EMERG || n > LOG_DEBUG)
			return -ERANGE;
		*ret_priority = (int)n;
		return 0;
	}

	for (size_t i = 0; i < ARRAY_SIZE(priority_names); i++) {
		if (strcasecmp(s, priority_names[i]) == 0) {
			*ret_priority = (int)i;
			return 0;
		}
	}
	return -EINVAL;
}

DMREPL_EXPORT int dmrepl_new(struct dmrepl_ctx **ret_ctx)
{
	struct dmrepl_ctx *ctx;
	const char *env;
	int prio;

	if (!ret_ctx)
		return -EINVAL;

	ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return -ENOMEM;

	ctx->refcount = 1;
	ctx->log_priority = LOG_ERR;
	ctx->log_fn = log_stderr;

	env = secure_getenv("DMREPL_LOG");
	if (env && dmrepl_parse_log_priority(env, &prio) == 0)
		ctx->log_priority = prio;

	dbg(ctx, "context %p created, log priority %d", (void *)ctx,
	    ctx->log_priority);
	*ret_ctx = ctx;
	return 0;
}

DMREPL_EXPORT struct dmrepl_ctx *dmrepl_ref(struct dmrepl_ctx *ctx)
{
	if (ctx)
		ctx->refcount++;
	return ctx;
}

DMREPL_EXPORT struct dmrepl_ctx *dmrepl_unref(struct dmrepl_ctx *ctx)
{
	if (!ctx || --ctx->refcount > 0)
		return NULL;

	dbg(ctx, "context %p released", (void *)ctx);
	if (ctx->lvm_cache_free)
		ctx->lvm_cache_free(ctx->lvm_cache);
	free(ctx);
	return NULL;
}

DMREPL_EXPORT int dmrepl_set_log_fn(struct dmrepl_ctx *ctx, dmrepl_log_fn fn,
				    void *userdata)
{
	if (!ctx)
		return -EINVAL;

	ctx->log_fn = fn;
	ctx->log_data = userdata;
	return 0;
}

DMREPL_EXPORT int dmrepl_get_log_priority(const struct dmrepl_ctx *ctx)
{
	if (!ctx)
		return -EINVAL;
	return ctx->log_priority;
}

DMREPL_EXPORT int dmrepl_set_log_priority(struct dmrepl_ctx *ctx, int priority)
{
	if (!ctx || priority < LOG_EMERG || priority > LOG_DEBUG)
		return -EINVAL;

	ctx->log_priority = priority;
	return 0;
}

void dmrepl_log(struct dmrepl_ctx *ctx, int priority, const char *file,
		int line, const char *fn, const char *format, ...)
{
	va_list args;

	if (!ctx || !ctx->log_fn)
		return;

	va_start(args, format);
	ctx->log_fn(ctx, priority, file, line, fn, format, args, ctx->log_data);
	va_end(args);
}

DMREPL_EXPORT const char *dmrepl_version(void)
{
	return PACKAGE_VERSION;
}

/*
 * DMREPL_TEST_KILL_AT=NAME: the process kills itself (SIGKILL) when it
 * reaches the point named NAME. The fault tests use it to stop dmrepl
 * exactly between a message to the kernel and its record.
 */
void dmrepl_test_point(const char *name)
{
	const char *at = secure_getenv("DMREPL_TEST_KILL_AT");

	if (at && strcmp(at, name) == 0)
		raise(SIGKILL);
}

void *dmrepl_ctx_lvm_cache(struct dmrepl_ctx *ctx, void *(*create)(void),
			   void (*destroy)(void *cache))
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

	pthread_mutex_lock(&lock);
	if (!ctx->lvm_cache && (ctx->lvm_cache = create()))
		ctx->lvm_cache_free = destroy;
	pthread_mutex_unlock(&lock);
	return ctx->lvm_cache;
}
