/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LVM names (lib/lvm.c, lib/dm.c): LVM's dm names split into VG, LV and
 * layer, and lvs' JSON answer read into a struct dmrepl_lvm_lv, with
 * every malformed answer refused.
 */
#include <errno.h>
#include <string.h>

#include "libdmrepl-private.h"
#include "unit.h"

static void test_split(void)
{
	static const struct {
		const char *name, *vg, *lv, *layer;
	} ok[] = {
	    {"vg-lv", "vg", "lv", ""},
	    {"vg-pool-tpool", "vg", "pool", "tpool"},
	    {"my--vg-thin--pool-tpool", "my-vg", "thin-pool", "tpool"},
	    {"vg-pool_tmeta", "vg", "pool_tmeta", ""},
	    {"a--b--c-d", "a-b-c", "d", ""},
	};
	static const char *const bad[] = {"vg", "", "-lv", "vg-", "vg-lv-l-x",
					  "vg--"};
	char vg[16], lv[16], layer[16];

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		CU_ASSERT_EQUAL_FATAL(
		    dmrepl_dm_split_lvm_name(ok[i].name, vg, sizeof(vg), lv,
					     sizeof(lv), layer, sizeof(layer)),
		    0);
		CU_ASSERT_STRING_EQUAL(vg, ok[i].vg);
		CU_ASSERT_STRING_EQUAL(lv, ok[i].lv);
		CU_ASSERT_STRING_EQUAL(layer, ok[i].layer);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (dmrepl_dm_split_lvm_name(bad[i], vg, sizeof(vg), lv,
					     sizeof(lv), layer,
					     sizeof(layer)) != -EINVAL)
			CU_FAIL(bad[i]);
	CU_ASSERT_EQUAL(dmrepl_dm_split_lvm_name("averylongvolumegroupname-lv",
						 vg, sizeof(vg), lv, sizeof(lv),
						 layer, sizeof(layer)),
			-ENAMETOOLONG);
}

#define LV_JSON(fields) "{\"report\": [{\"lv\": [{" fields "}]}]}"
#define THIN                                                                   \
	"\"vg_name\":\"vg0\", \"lv_name\":\"snap1\", \"vg_uuid\":\"Ab-cD\", "  \
	"\"lv_uuid\":\"eF-gh\", \"segtype\":\"thin\", \"pool_lv\":\"pool\", "

static void test_parse(void)
{
	struct dmrepl_lvm_lv lv;

	CU_ASSERT_EQUAL_FATAL(
	    dmrepl_lvm_parse_lv(
		LV_JSON(THIN "\"thin_id\":\"7\", \"lv_size\":\"67108864\""),
		&lv),
	    0);
	CU_ASSERT_STRING_EQUAL(lv.vg, "vg0");
	CU_ASSERT_STRING_EQUAL(lv.lv, "snap1");
	CU_ASSERT_STRING_EQUAL(lv.vg_uuid, "Ab-cD");
	CU_ASSERT_STRING_EQUAL(lv.segtype, "thin");
	CU_ASSERT_STRING_EQUAL(lv.pool_lv, "pool");
	CU_ASSERT_EQUAL(lv.thin_id, 7);
	CU_ASSERT_EQUAL(lv.size_bytes, 67108864);

	/* a pool: no thin id */
	CU_ASSERT_EQUAL_FATAL(
	    dmrepl_lvm_parse_lv(
		LV_JSON("\"vg_name\":\"vg0\", \"lv_name\":\"pool\", "
			"\"vg_uuid\":\"a\", \"lv_uuid\":\"b\", "
			"\"segtype\":\"thin-pool\", \"pool_lv\":\"\", "
			"\"thin_id\":\"\", \"lv_size\":\"134217728\""),
		&lv),
	    0);
	CU_ASSERT_EQUAL(lv.thin_id, DMREPL_THIN_ID_ANY);
	CU_ASSERT_STRING_EQUAL(lv.pool_lv, "");
}

static void test_parse_bad(void)
{
	static const char *const bad[] = {
	    "",
	    "not json",
	    "{}",
	    "{\"report\": []}",
	    "{\"report\": [{\"lv\": []}]}",
	    "{\"report\": [{\"lv\": {}}]}",
	    /* two LVs for one name */
	    "{\"report\": [{\"lv\": [{" THIN "\"thin_id\":\"1\", "
	    "\"lv_size\":\"1\"}, {" THIN "\"thin_id\":\"2\", "
	    "\"lv_size\":\"1\"}]}]}",
	    LV_JSON(THIN "\"thin_id\":\"x\", \"lv_size\":\"1\""),
	    LV_JSON(THIN "\"thin_id\":\"16777216\", \"lv_size\":\"1\""),
	    LV_JSON(THIN "\"thin_id\":\"1\", \"lv_size\":\"\""),
	    LV_JSON(THIN "\"thin_id\":\"1\", \"lv_size\":\"12B\""),
	    LV_JSON(THIN "\"thin_id\":\"1\""),
	    LV_JSON("\"lv_name\":\"x\", \"segtype\":\"thin\", \"lv_size\":\"1\""),
	};
	struct dmrepl_lvm_lv lv;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (dmrepl_lvm_parse_lv(bad[i], &lv) != -EBADMSG)
			CU_FAIL(bad[i]);
	/* a name too long for the struct */
	CU_ASSERT_EQUAL(
	    dmrepl_lvm_parse_lv(
		LV_JSON("\"vg_name\":\"" "0123456789012345678901234567890123456789"
			"0123456789012345678901234567890123456789"
			"0123456789012345678901234567890123456789"
			"0123456789\", \"lv_name\":\"x\", \"segtype\":\"thin\", "
			"\"thin_id\":\"1\", \"lv_size\":\"1\""),
		&lv),
	    -ENAMETOOLONG);
}

static CU_TestInfo lvm_tests[] = {
    {"dm names of LVM devices", test_split},
    {"lvs answers", test_parse},
    {"malformed lvs answers", test_parse_bad},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"lvm", NULL, NULL, NULL, NULL, lvm_tests},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
	return unit_run(suites);
}
