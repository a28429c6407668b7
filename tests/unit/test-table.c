/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The listings' table (tools/table.c): field selection with -o and
 * "+FIELD", aligned and separated output, human and exact units, ISO 8601
 * times with the zone's offset, and the options' errors.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tools/dmrepl.h"
#include "../tools/table.h"
#include "unit.h"

/* What table.c takes from tools/common.c. */
const char *program_name = "dmrepl";
static char usage_msg[256];

int tool_usage_error(const char *subcmd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(usage_msg, sizeof(usage_msg), fmt, ap);
	va_end(ap);
	return EXIT_USAGE;
}

enum { F_ID, F_NAME, F_SIZE, F_WHEN };
static const struct table_field fields[] = {
	[F_ID] = { "id", "ID", false, "id" },
	[F_NAME] = { "name", "NAME", true, "name" },
	[F_SIZE] = { "size", "SIZE", false, "size" },
	[F_WHEN] = { "when", "WHEN", true, "when" },
};
#define N (sizeof(fields) / sizeof(fields[0]))

/* Print @t into a string (static buffer). */
static const char *render(struct table *t)
{
	static char buf[1024];
	FILE *f = fmemopen(buf, sizeof(buf), "w");

	CU_ASSERT_FATAL(f != NULL);
	CU_ASSERT_EQUAL(table_print(t, f), 0);
	fclose(f);
	return buf;
}

static void rows(struct table *t)
{
	CU_ASSERT_EQUAL(table_row(t), 0);
	table_set_u64(t, F_ID, 7);
	table_set(t, F_NAME, "vg/a");
	table_set_size(t, F_SIZE, 1536);
	CU_ASSERT_EQUAL(table_row(t), 0);
	table_set_u64(t, F_ID, 12);
	table_set(t, F_NAME, NULL);
	table_set_size(t, F_SIZE, 10ull << 30);
}

static void test_default_aligned(void)
{
	struct table_opts o = { 0 };
	int rc = -1;
	struct table *t = table_new("ls", fields, N, "id,name,size", &o, &rc);

	CU_ASSERT_FATAL(t != NULL);
	rows(t);
	/* numbers to the right, text to the left, the last column unpadded */
	CU_ASSERT_STRING_EQUAL(render(t),
			       "ID  NAME   SIZE\n"
			       " 7  vg/a  1.50K\n"
			       "12  -     10.0G\n");
	table_free(t);
}

static void test_select_and_add(void)
{
	struct table_opts o = { .fields = "size,id", .no_headings = true };
	int rc = -1;
	struct table *t = table_new("ls", fields, N, "id,name", &o, &rc);

	CU_ASSERT_FATAL(t != NULL);
	CU_ASSERT_TRUE(table_shows(t, F_SIZE));
	CU_ASSERT_FALSE(table_shows(t, F_NAME));
	rows(t);
	CU_ASSERT_STRING_EQUAL(render(t), "1.50K   7\n10.0G  12\n");
	table_free(t);

	o = (struct table_opts){ .fields = "+size", .separator = ",", .units = 'b' };
	t = table_new("ls", fields, N, "id,name", &o, &rc);
	CU_ASSERT_FATAL(t != NULL);
	rows(t);
	CU_ASSERT_STRING_EQUAL(render(t), "ID,NAME,SIZE\n7,vg/a,1536\n12,-,10737418240\n");
	table_free(t);
}

static void test_units(void)
{
	struct table_opts o = { .fields = "size", .no_headings = true, .units = 'm' };
	int rc = -1;
	struct table *t = table_new("ls", fields, N, "id", &o, &rc);

	CU_ASSERT_FATAL(t != NULL);
	rows(t);
	CU_ASSERT_STRING_EQUAL(render(t), "    0.00M\n10240.00M\n");
	table_free(t);

	/* human: three significant digits, never "1024K" */
	o = (struct table_opts){ .fields = "size", .no_headings = true };
	t = table_new("ls", fields, N, "id", &o, &rc);
	CU_ASSERT_FATAL(t != NULL);
	table_row(t);
	table_set_size(t, F_SIZE, 1023);
	table_row(t);
	table_set_size(t, F_SIZE, 1048575);
	table_row(t);
	table_set_size(t, F_SIZE, 150ull << 20);
	CU_ASSERT_STRING_EQUAL(render(t), " 1023\n1.00M\n 150M\n");
	table_free(t);
}

static void test_times(void)
{
	struct table_opts o = { .fields = "when", .no_headings = true };
	int rc = -1;
	struct table *t;
	char buf[40];

	setenv("TZ", "CET-1", 1);
	tzset();
	t = table_new("replicas", fields, N, "id", &o, &rc);
	CU_ASSERT_FATAL(t != NULL);
	table_row(t);
	table_set_time(t, F_WHEN, 1765119249);	/* 2025-12-07 14:54:09 UTC */
	CU_ASSERT_STRING_EQUAL(render(t), "2025-12-07T15:54:09+01:00\n");
	table_free(t);

	o.exact = true;
	t = table_new("replicas", fields, N, "id", &o, &rc);
	CU_ASSERT_FATAL(t != NULL);
	table_row(t);
	table_set_time(t, F_WHEN, 1765119249);
	CU_ASSERT_STRING_EQUAL(render(t), "1765119249\n");
	table_free(t);

	table_iso8601_utc(1765119249, buf, sizeof(buf));
	CU_ASSERT_STRING_EQUAL(buf, "2025-12-07T14:54:09Z");
	unsetenv("TZ");
	tzset();
}

static void test_errors(void)
{
	struct table_opts o = { .fields = "id,bogus" };
	int rc = -1;

	CU_ASSERT_PTR_NULL(table_new("ls", fields, N, "id", &o, &rc));
	CU_ASSERT_EQUAL(rc, EXIT_USAGE);
	CU_ASSERT_STRING_EQUAL(usage_msg, "-o: unknown field 'bogus' (fields: id, name, size, when)");
	CU_ASSERT_EQUAL(table_check("ls", fields, N, "id", &o), EXIT_USAGE);

	o.fields = "id,,name";
	CU_ASSERT_EQUAL(table_check("ls", fields, N, "id", &o), EXIT_USAGE);
	CU_ASSERT_STRING_EQUAL(usage_msg, "-o: unknown field '' (fields: id, name, size, when)");

	o = (struct table_opts){ 0 };
	CU_ASSERT_EQUAL(table_option("ls", TABLE_OPT_UNITS, "x", &o), EXIT_USAGE);
	CU_ASSERT_STRING_EQUAL(usage_msg, "--units: 'x' is not one of h, b, k, m, g, t");
	CU_ASSERT_EQUAL(table_option("ls", TABLE_OPT_UNITS, "G", &o), 1);
	CU_ASSERT_EQUAL(o.units, 'g');
	CU_ASSERT_EQUAL(table_option("ls", 'P', NULL, &o), 1);
	CU_ASSERT_TRUE(o.exact);
	CU_ASSERT_EQUAL(o.units, 'b');
	CU_ASSERT_EQUAL(table_option("ls", 'x', NULL, &o), 0);
}

int main(void)
{
	static CU_TestInfo tests[] = {
		{ "default fields, aligned", test_default_aligned },
		{ "-o FIELDS, -o +FIELD, --separator", test_select_and_add },
		{ "--units and human sizes", test_units },
		{ "ISO 8601 times, -P epoch seconds", test_times },
		{ "bad fields and units", test_errors },
		CU_TEST_INFO_NULL,
	};
	static CU_SuiteInfo suites[] = {
		{ "table", NULL, NULL, NULL, NULL, tests },
		CU_SUITE_INFO_NULL,
	};

	return unit_run(suites);
}
