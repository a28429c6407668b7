/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * tool_split_words() (tools/parse.c): an ssh forced command's
 * SSH_ORIGINAL_COMMAND cut into words the way a shell would for the
 * quoting lib/remote.c writes, and anything else a shell gives meaning
 * to refused.
 */
#include <errno.h>
#include <string.h>

#include "../tools/dmrepl.h"
#include "unit.h"

/* What tools/common.c would give the parser's users; unused here. */
const char *program_name = "dmrepl";

static int split(const char *line, char **argv)
{
	static char buf[512];

	return tool_split_words(line, argv, 8, buf, sizeof(buf));
}

static void test_plain_and_quoted(void)
{
	char *argv[9];

	CU_ASSERT_EQUAL(split("dmrepl receive --pool vg1/pool", argv), 4);
	CU_ASSERT_STRING_EQUAL(argv[3], "vg1/pool");
	CU_ASSERT_PTR_NULL(argv[4]);
	/* as lib/remote.c quotes every word */
	CU_ASSERT_EQUAL(split(" 'dmrepl' 'receive' '--pool' 'vg 1/po;ol' '--negotiate'", argv), 5);
	CU_ASSERT_STRING_EQUAL(argv[3], "vg 1/po;ol");
	CU_ASSERT_STRING_EQUAL(argv[4], "--negotiate");
	/* a quote inside a word: 'it'\''s' */
	CU_ASSERT_EQUAL(split("'it'\\''s' x", argv), 2);
	CU_ASSERT_STRING_EQUAL(argv[0], "it's");
	CU_ASSERT_EQUAL(split("a''b", argv), 1);
	CU_ASSERT_STRING_EQUAL(argv[0], "ab");
	CU_ASSERT_EQUAL(split("   \t ", argv), 0);
	CU_ASSERT_PTR_NULL(argv[0]);
	CU_ASSERT_EQUAL(split("''", argv), 1);
	CU_ASSERT_STRING_EQUAL(argv[0], "");
}

static void test_refused(void)
{
	static const char *const bad[] = {
		"dmrepl receive; id", "a|b", "a&b", "$(id)", "`id`", "a>b", "a<b",
		"\"x\"", "a*", "a?", "a\\b", "a\nb", "'unterminated", "x=$HOME",
		"a(b)", "~root", "#c", "!x",
	};
	char *argv[9];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = split(bad[i], argv);

		if (r != -EINVAL)
			fprintf(stderr, "\n  '%s' gave %d\n", bad[i], r);
		CU_ASSERT_EQUAL(r, -EINVAL);
	}
}

static void test_limits(void)
{
	char *argv[9], small[8];

	CU_ASSERT_EQUAL(split("1 2 3 4 5 6 7 8", argv), 8);
	CU_ASSERT_EQUAL(split("1 2 3 4 5 6 7 8 9", argv), -E2BIG);
	CU_ASSERT_EQUAL(tool_split_words("abcdefgh", argv, 8, small, sizeof(small)), -E2BIG);
	CU_ASSERT_EQUAL(tool_split_words("abcdef", argv, 8, small, sizeof(small)), 1);
}

int main(void)
{
	static CU_TestInfo tests[] = {
		{ "plain and single-quoted words", test_plain_and_quoted },
		{ "what a shell would interpret is refused", test_refused },
		{ "word and buffer limits", test_limits },
		CU_TEST_INFO_NULL,
	};
	static CU_SuiteInfo suites[] = {
		{ "words", NULL, NULL, NULL, NULL, tests },
		CU_SUITE_INFO_NULL,
	};

	return unit_run(suites);
}
