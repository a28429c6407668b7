/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The bandwidth limit's token bucket (lib/ratelimit.c), shared by copy
 * and the stream writer: the waits it asks for over a clock the test
 * moves, so the rate is checked exactly, without timing anything.
 */
#include <stdint.h>

#include "ratelimit.h"
#include "unit.h"

#define SEC 1000000000ull
#define MIB (1024ull * 1024)

static void test_no_limit(void)
{
	struct dmrepl_ratelimit rl;

	dmrepl_ratelimit_init(&rl, 0);
	dmrepl_ratelimit_spend(&rl, 100 * MIB);
	CU_ASSERT_EQUAL(dmrepl_ratelimit_delay(&rl, 1), 0);
}

static void test_rate(void)
{
	struct dmrepl_ratelimit rl;
	uint64_t t = 5 * SEC, sent = 0;

	dmrepl_ratelimit_init(&rl, MIB);
	CU_ASSERT_EQUAL(dmrepl_ratelimit_delay(&rl, t), 0);
	dmrepl_ratelimit_spend(&rl, MIB);
	/* a mebibyte owed at one a second: a second's wait, then half */
	CU_ASSERT(dmrepl_ratelimit_delay(&rl, t) > SEC - 1000 &&
		  dmrepl_ratelimit_delay(&rl, t) <= SEC + 1);
	CU_ASSERT(dmrepl_ratelimit_delay(&rl, t + SEC / 2) > SEC / 2 - 1000 &&
		  dmrepl_ratelimit_delay(&rl, t + SEC / 2) <= SEC / 2 + 1);
	CU_ASSERT_EQUAL(dmrepl_ratelimit_delay(&rl, t + SEC), 0);

	/* a writer that waits as told sends 10 MiB in 10 s, not less */
	dmrepl_ratelimit_init(&rl, MIB);
	t = 0;
	while (sent < 10 * MIB) {
		uint64_t wait = dmrepl_ratelimit_delay(&rl, t);

		if (wait) {
			t += wait;
			continue;
		}
		dmrepl_ratelimit_spend(&rl, 256 * 1024);
		sent += 256 * 1024;
	}
	/* the last 256 KiB went without a wait: 9.75 s, to the bucket's 50 ms */
	CU_ASSERT(t >= 975 * SEC / 100 - SEC / 20 && t <= 975 * SEC / 100 + SEC / 100);
}

static void test_burst_capped(void)
{
	struct dmrepl_ratelimit rl;

	dmrepl_ratelimit_init(&rl, 20 * MIB);
	CU_ASSERT_EQUAL(dmrepl_ratelimit_delay(&rl, SEC), 0);
	/* ten idle seconds save at most 50 ms of the rate: 1 MiB */
	CU_ASSERT_EQUAL(dmrepl_ratelimit_delay(&rl, 11 * SEC), 0);
	dmrepl_ratelimit_spend(&rl, 21 * MIB);
	/* 20 MiB owed at 20 MiB/s: one second, not none */
	CU_ASSERT(dmrepl_ratelimit_delay(&rl, 11 * SEC) > SEC - SEC / 1000);
}

static void test_small_rate_burst(void)
{
	struct dmrepl_ratelimit rl;

	/* at 1 KiB/s the bucket still holds 4 KiB: a page goes at once */
	dmrepl_ratelimit_init(&rl, 1024);
	dmrepl_ratelimit_delay(&rl, SEC);
	CU_ASSERT_EQUAL(dmrepl_ratelimit_delay(&rl, 100 * SEC), 0);
	dmrepl_ratelimit_spend(&rl, 4096);
	CU_ASSERT_EQUAL(dmrepl_ratelimit_delay(&rl, 100 * SEC), 0);
	dmrepl_ratelimit_spend(&rl, 1024);
	CU_ASSERT(dmrepl_ratelimit_delay(&rl, 100 * SEC) >= SEC);
}

int main(void)
{
	static CU_TestInfo tests[] = {
		{ "no limit", test_no_limit },
		{ "the rate over a moved clock", test_rate },
		{ "an idle bucket holds 50 ms", test_burst_capped },
		{ "a small rate keeps 4 KiB", test_small_rate_burst },
		CU_TEST_INFO_NULL,
	};
	static CU_SuiteInfo suites[] = {
		{ "ratelimit", NULL, NULL, NULL, NULL, tests },
		CU_SUITE_INFO_NULL,
	};

	return unit_run(suites);
}
