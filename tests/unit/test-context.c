/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The library context: reference counting, log priority, the DMREPL_LOG
 * override and the log callback.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libdmrepl-private.h"
#include "unit.h"

struct captured {
	int calls;
	int priority;
	char text[256];
};

__attribute__((format(printf, 6, 0)))
static void capture_log(struct dmrepl_ctx *ctx, int priority, const char *file,
			int line, const char *fn, const char *format,
			va_list args, void *userdata)
{
	struct captured *c = userdata;

	c->calls++;
	c->priority = priority;
	vsnprintf(c->text, sizeof(c->text), format, args);
}

static void test_new_rejects_null(void)
{
	CU_ASSERT_EQUAL(dmrepl_new(NULL), -EINVAL);
}

static void test_refcount(void)
{
	struct dmrepl_ctx *ctx = NULL;

	CU_ASSERT_EQUAL_FATAL(dmrepl_new(&ctx), 0);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
	CU_ASSERT_PTR_EQUAL(dmrepl_ref(ctx), ctx);
	CU_ASSERT_PTR_NULL(dmrepl_unref(ctx));
	/* still alive: one reference left, so this must not be a use after free */
	CU_ASSERT_EQUAL(dmrepl_set_log_priority(ctx, LOG_INFO), 0);
	CU_ASSERT_PTR_NULL(dmrepl_unref(ctx));
	CU_ASSERT_PTR_NULL(dmrepl_unref(NULL));
	CU_ASSERT_PTR_NULL(dmrepl_ref(NULL));
}

static void test_default_priority(void)
{
	struct dmrepl_ctx *ctx = NULL;

	unsetenv("DMREPL_LOG");
	CU_ASSERT_EQUAL_FATAL(dmrepl_new(&ctx), 0);
	CU_ASSERT_EQUAL(dmrepl_get_log_priority(ctx), LOG_ERR);
	dmrepl_unref(ctx);
}

static void test_env_override(void)
{
	static const struct {
		const char *value;
		int priority;
	} cases[] = {
		{ "debug", LOG_DEBUG }, { "INFO", LOG_INFO }, { "6", LOG_INFO },
		{ "0", LOG_EMERG }, { "warning", LOG_WARNING },
		/* rejected values leave the default */
		{ "8", LOG_ERR }, { "loud", LOG_ERR }, { "", LOG_ERR }, { "3x", LOG_ERR },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct dmrepl_ctx *ctx = NULL;

		setenv("DMREPL_LOG", cases[i].value, 1);
		CU_ASSERT_EQUAL_FATAL(dmrepl_new(&ctx), 0);
		CU_ASSERT_EQUAL(dmrepl_get_log_priority(ctx), cases[i].priority);
		dmrepl_unref(ctx);
	}
	unsetenv("DMREPL_LOG");
}

static void test_set_priority_bounds(void)
{
	struct dmrepl_ctx *ctx = NULL;

	CU_ASSERT_EQUAL_FATAL(dmrepl_new(&ctx), 0);
	CU_ASSERT_EQUAL(dmrepl_set_log_priority(ctx, -1), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_set_log_priority(ctx, 8), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_get_log_priority(ctx), LOG_ERR);
	CU_ASSERT_EQUAL(dmrepl_set_log_priority(NULL, LOG_INFO), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_get_log_priority(NULL), -EINVAL);
	dmrepl_unref(ctx);
}

static void test_log_callback_filters(void)
{
	struct dmrepl_ctx *ctx = NULL;
	struct captured c = { 0 };

	unsetenv("DMREPL_LOG");
	CU_ASSERT_EQUAL_FATAL(dmrepl_new(&ctx), 0);
	CU_ASSERT_EQUAL(dmrepl_set_log_fn(ctx, capture_log, &c), 0);

	err(ctx, "device %s failed at block %d", "vda", 42);
	CU_ASSERT_EQUAL(c.calls, 1);
	CU_ASSERT_EQUAL(c.priority, LOG_ERR);
	CU_ASSERT_STRING_EQUAL(c.text, "device vda failed at block 42");

	dbg(ctx, "not shown at LOG_ERR");
	CU_ASSERT_EQUAL(c.calls, 1);

	dmrepl_set_log_priority(ctx, LOG_DEBUG);
	dbg(ctx, "shown %d", 7);
	CU_ASSERT_EQUAL(c.calls, 2);
	CU_ASSERT_EQUAL(c.priority, LOG_DEBUG);
	CU_ASSERT_STRING_EQUAL(c.text, "shown 7");

	/* a NULL function silences the library */
	CU_ASSERT_EQUAL(dmrepl_set_log_fn(ctx, NULL, NULL), 0);
	err(ctx, "dropped");
	CU_ASSERT_EQUAL(c.calls, 2);
	CU_ASSERT_EQUAL(dmrepl_set_log_fn(NULL, capture_log, &c), -EINVAL);
	dmrepl_unref(ctx);
}

static void test_version(void)
{
	CU_ASSERT_STRING_EQUAL(dmrepl_version(), PACKAGE_VERSION);
}

static CU_TestInfo context_tests[] = {
	{ "new rejects NULL", test_new_rejects_null },
	{ "reference counting", test_refcount },
	{ "default log priority", test_default_priority },
	{ "DMREPL_LOG override", test_env_override },
	{ "priority bounds", test_set_priority_bounds },
	{ "log callback and filtering", test_log_callback_filters },
	{ "version string", test_version },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "context", NULL, NULL, NULL, NULL, context_tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return unit_run(suites);
}
