/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The streaming JSON writer behind --json: separators, nesting, escaping.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tools/json.h"
#include "unit.h"

/* Run @emit against a memory stream and compare what it wrote. */
static void expect_json(void (*emit)(struct json *j), const char *want)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	struct json j;

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	json_init(&j, f);
	emit(&j);
	fclose(f);
	CU_ASSERT_STRING_EQUAL(buf, want);
	if (strcmp(buf, want) != 0)
		fprintf(stderr, "\n  got:  %s  want: %s", buf, want);
	free(buf);
}

static void emit_empty(struct json *j)
{
	json_open_object(j, NULL);
	json_open_array(j, "runs");
	json_close_array(j);
	json_close_object(j);
	json_end(j);
}

static void emit_nested(struct json *j)
{
	json_open_object(j, NULL);
	json_u64(j, "left", 1);
	json_u64(j, "big", UINT64_MAX);
	json_bool(j, "held", true);
	json_open_array(j, "runs");
	for (int i = 0; i < 2; i++) {
		json_open_object(j, NULL);
		json_string(j, "kind", i ? "same" : "different");
		json_u64(j, "begin_blocks", (uint64_t)i * 10);
		json_close_object(j);
	}
	json_close_array(j);
	json_bool(j, "done", false);
	json_close_object(j);
	json_end(j);
}

static void emit_escapes(struct json *j)
{
	json_open_object(j, NULL);
	json_string(j, "name", "pool \"a\"\\b\n\t\x01");
	json_close_object(j);
	json_end(j);
}

static void test_empty(void)
{
	expect_json(emit_empty, "{\"runs\":[]}\n");
}

static void test_nested(void)
{
	expect_json(emit_nested,
		    "{\"left\":1,\"big\":18446744073709551615,\"held\":true,"
		    "\"runs\":[{\"kind\":\"different\",\"begin_blocks\":0},"
		    "{\"kind\":\"same\",\"begin_blocks\":10}],\"done\":false}\n");
}

static void test_escapes(void)
{
	expect_json(emit_escapes,
		    "{\"name\":\"pool \\\"a\\\"\\\\b\\n\\t\\u0001\"}\n");
}

static CU_TestInfo json_tests[] = {
	{ "empty containers", test_empty },
	{ "nesting and separators", test_nested },
	{ "string escapes", test_escapes },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "json writer", NULL, NULL, NULL, NULL, json_tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return unit_run(suites);
}
