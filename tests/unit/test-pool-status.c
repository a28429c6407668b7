/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Parsers of a thin pool's status and table lines, on lines as the
 * kernel prints them (trailing space included) and on malformed ones.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "libdmrepl-private.h"
#include "unit.h"

/* A status struct full of a pattern, to see that failures leave it alone. */
static void poison(void *p, size_t size)
{
	memset(p, 0xa5, size);
}

static int is_poisoned(const void *p, size_t size)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < size; i++)
		if (b[i] != 0xa5)
			return 0;
	return 1;
}

static void test_rw_no_held_root(void)
{
	struct dmrepl_pool_status st;

	poison(&st, sizeof(st));
	/* kernel 6.1, fresh pool */
	CU_ASSERT_EQUAL_FATAL(
	    dmrepl_pool_parse_status("0 10/4096 0/1600 - rw discard_passdown "
				     "queue_if_no_space - 1024 ",
				     &st),
	    0);
	CU_ASSERT_EQUAL(st.transaction_id, 0);
	CU_ASSERT_EQUAL(st.used_metadata_blocks, 10);
	CU_ASSERT_EQUAL(st.total_metadata_blocks, 4096);
	CU_ASSERT_EQUAL(st.used_data_blocks, 0);
	CU_ASSERT_EQUAL(st.total_data_blocks, 1600);
	CU_ASSERT_EQUAL(st.held_metadata_root, 0);
	CU_ASSERT_EQUAL(st.read_only, 0);
	CU_ASSERT_EQUAL(st.out_of_data_space, 0);
	CU_ASSERT_EQUAL(st.needs_check, 0);
	CU_ASSERT_EQUAL(st.fail, 0);
}

static void test_held_root(void)
{
	struct dmrepl_pool_status st;

	CU_ASSERT_EQUAL_FATAL(dmrepl_pool_parse_status(
				  "3 15/4096 20/1600 17 rw no_discard_passdown "
				  "error_if_no_space - 1024",
				  &st),
			      0);
	CU_ASSERT_EQUAL(st.transaction_id, 3);
	CU_ASSERT_EQUAL(st.held_metadata_root, 17);
	CU_ASSERT_EQUAL(st.used_data_blocks, 20);
}

static void test_read_only_needs_check(void)
{
	struct dmrepl_pool_status st;

	CU_ASSERT_EQUAL_FATAL(
	    dmrepl_pool_parse_status("5 30/4096 100/1600 - ro ignore_discard "
				     "queue_if_no_space needs_check 1024 ",
				     &st),
	    0);
	CU_ASSERT_EQUAL(st.read_only, 1);
	CU_ASSERT_EQUAL(st.needs_check, 1);
	CU_ASSERT_EQUAL(st.out_of_data_space, 0);
	CU_ASSERT_EQUAL(st.fail, 0);
}

static void test_out_of_data_space(void)
{
	struct dmrepl_pool_status st;

	CU_ASSERT_EQUAL_FATAL(dmrepl_pool_parse_status(
				  "7 40/4096 1600/1600 21 out_of_data_space "
				  "discard_passdown queue_if_no_space - 1024",
				  &st),
			      0);
	CU_ASSERT_EQUAL(st.out_of_data_space, 1);
	CU_ASSERT_EQUAL(st.read_only, 0);
	CU_ASSERT_EQUAL(st.held_metadata_root, 21);
}

static void test_fail(void)
{
	struct dmrepl_pool_status st;

	poison(&st, sizeof(st));
	CU_ASSERT_EQUAL_FATAL(dmrepl_pool_parse_status("Fail", &st), 0);
	CU_ASSERT_EQUAL(st.fail, 1);
	CU_ASSERT_EQUAL(st.transaction_id, 0);
	CU_ASSERT_EQUAL(st.held_metadata_root, 0);
	CU_ASSERT_EQUAL(dmrepl_pool_parse_status("Fail ", &st), 0);
	CU_ASSERT_EQUAL(st.fail, 1);
}

static void test_error(void)
{
	struct dmrepl_pool_status st;

	poison(&st, sizeof(st));
	CU_ASSERT_EQUAL(dmrepl_pool_parse_status("Error", &st), -EIO);
	CU_ASSERT_EQUAL(dmrepl_pool_parse_status("Error ", &st), -EIO);
	CU_ASSERT(is_poisoned(&st, sizeof(st)));
}

/* Older kernels stop after the mode or the no-space policy; newer may add. */
static void test_short_and_long_lines(void)
{
	static const char *const lines[] = {
	    "1 8/1024 0/100 - rw",
	    "1 8/1024 0/100 - rw discard_passdown",
	    "1 8/1024 0/100 - rw discard_passdown queue_if_no_space",
	    "1 8/1024 0/100 - rw discard_passdown queue_if_no_space -",
	    "1 8/1024 0/100 - rw discard_passdown queue_if_no_space - 1024 "
	    "future_field",
	    "\t1  8/1024\t0/100 -   rw\n",
	};
	struct dmrepl_pool_status st;

	for (size_t i = 0; i < ARRAY_SIZE(lines); i++) {
		CU_ASSERT_EQUAL(dmrepl_pool_parse_status(lines[i], &st), 0);
		CU_ASSERT_EQUAL(st.transaction_id, 1);
		CU_ASSERT_EQUAL(st.total_data_blocks, 100);
	}
}

static void test_large_numbers(void)
{
	struct dmrepl_pool_status st;

	CU_ASSERT_EQUAL_FATAL(
	    dmrepl_pool_parse_status(
		"18446744073709551615 1/2 3/4 18446744073709551615 rw", &st),
	    0);
	CU_ASSERT_EQUAL(st.transaction_id, UINT64_MAX);
	CU_ASSERT_EQUAL(st.held_metadata_root, UINT64_MAX);
}

static void test_malformed_status(void)
{
	static const char *const lines[] = {
	    "",
	    "   ",
	    "Fail now",
	    "Error 1",
	    "fail",
	    "x 10/20 0/1 - rw",
	    "-1 10/20 0/1 - rw",
	    "+1 10/20 0/1 - rw",
	    "1",
	    "1 10/20",
	    "1 10/20 0/1",
	    "1 10/20 0/1 -",
	    "1 10 0/1 - rw",
	    "1 10/ 0/1 - rw",
	    "1 /20 0/1 - rw",
	    "1 10/20/30 0/1 - rw",
	    "1 10/20 0/1x - rw",
	    "1 10/20 0/1 0 rw",
	    "1 10/20 0/1 12a rw",
	    "1 10/20 0/1 - rx",
	    "1 10/20 0/1 - RW",
	    "1 10/20 0/1 - rw bogus",
	    "1 10/20 0/1 - rw discard_passdown maybe_if_no_space",
	    "1 10/20 0/1 - rw discard_passdown queue_if_no_space check",
	    "1 10/20 0/1 - rw discard_passdown queue_if_no_space - lots",
	    "18446744073709551616 10/20 0/1 - rw",
	    "1 10/20 0/99999999999999999999 - rw",
	    "1 10/20 0/1 - rw "
	    "discard_passdown_and_a_token_longer_than_the_buffer",
	    "1 10/20 0/1 1234567890123456789012345678901234567890 rw",
	};
	struct dmrepl_pool_status st;

	poison(&st, sizeof(st));
	for (size_t i = 0; i < ARRAY_SIZE(lines); i++) {
		int r = dmrepl_pool_parse_status(lines[i], &st);

		if (r != -EINVAL)
			CU_FAIL(lines[i]);
	}
	CU_ASSERT(is_poisoned(&st, sizeof(st)));
	CU_ASSERT_EQUAL(dmrepl_pool_parse_status(NULL, &st), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_pool_parse_status("1 1/2 3/4 - rw", NULL),
			-EINVAL);
}

static void test_table(void)
{
	struct dmrepl_pool_table t;

	CU_ASSERT_EQUAL_FATAL(dmrepl_pool_parse_table(
				  "253:0 253:1 128 0 1 skip_block_zeroing", &t),
			      0);
	CU_ASSERT_EQUAL(t.metadata_major, 253);
	CU_ASSERT_EQUAL(t.metadata_minor, 0);
	CU_ASSERT_EQUAL(t.data_major, 253);
	CU_ASSERT_EQUAL(t.data_minor, 1);
	CU_ASSERT_EQUAL(t.data_block_size_sectors, 128);
	CU_ASSERT_EQUAL(t.low_water_blocks, 0);

	CU_ASSERT_EQUAL_FATAL(
	    dmrepl_pool_parse_table("7:0 7:1 2048 32768 ", &t), 0);
	CU_ASSERT_EQUAL(t.metadata_major, 7);
	CU_ASSERT_EQUAL(t.data_minor, 1);
	CU_ASSERT_EQUAL(t.data_block_size_sectors, 2048);
	CU_ASSERT_EQUAL(t.low_water_blocks, 32768);
}

static void test_malformed_table(void)
{
	static const char *const lines[] = {
	    "",
	    "253:0",
	    "253:0 253:1",
	    "253:0 253:1 128",
	    "253:0 253:1 0 0",
	    "253 253:1 128 0",
	    "253:0 :1 128 0",
	    "253:0 253: 128 0",
	    "253:0 253:1:2 128 0",
	    "4294967296:0 253:1 128 0",
	    "/dev/loop0 /dev/loop1 128 0",
	    "253:0 253:1 128k 0",
	    "253:0 253:1 128 -1",
	};
	struct dmrepl_pool_table t;

	poison(&t, sizeof(t));
	for (size_t i = 0; i < ARRAY_SIZE(lines); i++)
		if (dmrepl_pool_parse_table(lines[i], &t) != -EINVAL)
			CU_FAIL(lines[i]);
	CU_ASSERT(is_poisoned(&t, sizeof(t)));
	CU_ASSERT_EQUAL(dmrepl_pool_parse_table(NULL, &t), -EINVAL);
}

static CU_TestInfo status_tests[] = {
    {"rw, no held root", test_rw_no_held_root},
    {"held metadata root", test_held_root},
    {"read-only, needs_check", test_read_only_needs_check},
    {"out_of_data_space", test_out_of_data_space},
    {"Fail", test_fail},
    {"Error", test_error},
    {"older and newer kernels", test_short_and_long_lines},
    {"64-bit numbers", test_large_numbers},
    {"malformed lines", test_malformed_status},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo table_tests[] = {
    {"table lines", test_table},
    {"malformed table lines", test_malformed_table},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"pool status", NULL, NULL, NULL, NULL, status_tests},
    {"pool table", NULL, NULL, NULL, NULL, table_tests},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
	return unit_run(suites);
}
