/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LVM names (lib/lvm.c, lib/dm.c): LVM's dm names split into VG, LV and
 * layer, and lvs' JSON answer read into a struct dmrepl_lvm_lv, with
 * every malformed answer refused; lookups of one VG share one listing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Every LV of a VG, as `lvs -a` lists them, tags and origins included. */
static void test_parse_list(void)
{
	static const char json[] =
	    "{\"report\": [{\"lv\": ["
	    "{\"vg_name\":\"vg\", \"lv_name\":\"pool\", \"segtype\":\"thin-pool\", "
	    "\"thin_id\":\"\", \"lv_size\":\"134217728\", \"lv_tags\":\"\", "
	    "\"vg_extent_size\":\"4194304\"},"
	    "{\"vg_name\":\"vg\", \"lv_name\":\"r1\", \"segtype\":\"thin\", "
	    "\"pool_lv\":\"pool\", \"thin_id\":\"3\", \"lv_size\":\"12582912\", "
	    "\"lv_tags\":\"a,dmrepl.replica:x=1&y=#2c\", \"origin\":\"\"},"
	    "{\"vg_name\":\"vg\", \"lv_name\":\"r1_dmrepl_anchor\", "
	    "\"segtype\":\"thin\", \"pool_lv\":\"pool\", \"thin_id\":\"4\", "
	    "\"lv_size\":\"12582912\", \"lv_tags\":\"dmrepl.anchor\", "
	    "\"origin\":\"r1\"}]}]}";
	struct dmrepl_lvm_lv *lvs = NULL;
	char v[64];
	size_t n = 0;

	CU_ASSERT_EQUAL_FATAL(dmrepl_lvm_parse_lvs(json, &lvs, &n), 0);
	CU_ASSERT_EQUAL_FATAL(n, 3);
	CU_ASSERT_EQUAL(lvs[0].thin_id, DMREPL_THIN_ID_ANY);
	CU_ASSERT_EQUAL(lvs[0].extent_bytes, 4194304);
	CU_ASSERT_EQUAL(lvs[1].thin_id, 3);
	CU_ASSERT_STRING_EQUAL(lvs[2].origin, "r1");
	CU_ASSERT(dmrepl_lvm_has_tag(&lvs[1], "a"));
	CU_ASSERT(!dmrepl_lvm_has_tag(&lvs[1], "dmrepl.replica"));
	CU_ASSERT(dmrepl_lvm_has_tag(&lvs[2], "dmrepl.anchor"));
	CU_ASSERT_EQUAL(dmrepl_lvm_tag_value(&lvs[1], "dmrepl.replica:", v,
					     sizeof(v)), 0);
	CU_ASSERT_STRING_EQUAL(v, "x=1&y=#2c");
	CU_ASSERT_EQUAL(dmrepl_lvm_tag_value(&lvs[2], "dmrepl.replica:", v,
					     sizeof(v)), -ENOENT);
	CU_ASSERT_EQUAL(dmrepl_lvm_tag_value(&lvs[1], "dmrepl.replica:", v, 4),
			-ENAMETOOLONG);
	free(lvs);
	/* one bad LV spoils the answer */
	CU_ASSERT_EQUAL(dmrepl_lvm_parse_lvs(
			    "{\"report\": [{\"lv\": [{\"vg_name\":\"vg\"}]}]}",
			    &lvs, &n),
			-EBADMSG);
	CU_ASSERT_EQUAL(dmrepl_lvm_parse_lvs("{\"report\": [{\"lv\": []}]}",
					     &lvs, &n), 0);
	CU_ASSERT_EQUAL(n, 0);
	free(lvs);
}

/* Tag text: what LVM refuses in a tag, and our separators, are escaped. */
static void test_tag_escape(void)
{
	static const char *const texts[] = {
	    "host:vg--pool-tpool", "a b", "x=y&z#w", "caf\xc3\xa9", "p,q", "",
	    "a/b!c:d+e.f-g_h"};
	char esc[256], back[256];

	for (size_t i = 0; i < ARRAY_SIZE(texts); i++) {
		CU_ASSERT_EQUAL_FATAL(dmrepl_lvm_tag_escape(texts[i], esc,
							    sizeof(esc)), 0);
		CU_ASSERT(strcspn(esc, " =&,\x80\xc3") == strlen(esc));
		CU_ASSERT_EQUAL_FATAL(dmrepl_lvm_tag_unescape(esc, strlen(esc),
							      back, sizeof(back)),
				      0);
		CU_ASSERT_STRING_EQUAL(back, texts[i]);
	}
	CU_ASSERT_EQUAL(dmrepl_lvm_tag_escape("a b", esc, sizeof(esc)), 0);
	CU_ASSERT_STRING_EQUAL(esc, "a#20b");
	CU_ASSERT_EQUAL(dmrepl_lvm_tag_escape("ab", esc, 2), -ENAMETOOLONG);
	/* one spelling per byte: no escaped plain bytes, no NUL, no junk */
	static const char *const bad[] = {"#", "#2", "#zz", "#41", "#00", "a=b",
					  "#2C", "a&b", "a b"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (dmrepl_lvm_tag_unescape(bad[i], strlen(bad[i]), back,
					    sizeof(back)) != -EINVAL)
			CU_FAIL(bad[i]);
}

static void test_name_valid(void)
{
	static const char *const ok[] = {"snap1", "_snapshot-1234", "a.2",
					 "vol+x", "r_dmrepl_anchor"};
	static const char *const bad[] = {"", "-a", ".", "..", "snapshot",
					  "pvmove0", "a b", "a/b", "x_tmeta",
					  "y_rimage_1", "z_pmspare"};

	for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
		CU_ASSERT(dmrepl_lvm_name_valid(ok[i]));
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (dmrepl_lvm_name_valid(bad[i]))
			CU_FAIL(bad[i]);
}

/*
 * Lookups of names in one VG share one `lvs` of it, until this context
 * runs an lvm command that may change something. The stand-in for the
 * lvm binary (DMREPL_LVM) counts its calls and answers a fixed listing:
 * this tests dmrepl's caching, not LVM (the VM tests run the real one).
 */
static void test_lookup_cache(void)
{
	char dir[] = "/tmp/dmrepl-test-lvm.XXXXXX", script[256], calls[256];
	struct dmrepl_ctx *ctx = NULL;
	struct dmrepl_lvm_lv lv;
	FILE *f;
	long n;

	CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
	snprintf(script, sizeof(script), "%s/lvm", dir);
	snprintf(calls, sizeof(calls), "%s/calls", dir);
	f = fopen(script, "w");
	CU_ASSERT_FATAL(f != NULL);
	fprintf(f, "#!/bin/sh\necho \"$1\" >> %s\n"
		   "[ \"$1\" = lvs ] || exit 0\n"
		   "echo '{\"report\": [{\"lv\": ["
		   "{\"vg_name\":\"vg\", \"lv_name\":\"pool\", "
		   "\"segtype\":\"thin-pool\", \"lv_size\":\"134217728\"},"
		   "{\"vg_name\":\"vg\", \"lv_name\":\"snap\", "
		   "\"segtype\":\"thin\", \"pool_lv\":\"pool\", "
		   "\"thin_id\":\"3\", \"lv_size\":\"4194304\"}]}]}'\n",
		calls);
	fclose(f);
	CU_ASSERT_EQUAL_FATAL(chmod(script, 0755), 0);
	setenv("DMREPL_LVM", script, 1);
	CU_ASSERT_EQUAL_FATAL(dmrepl_new(&ctx), 0);
	dmrepl_set_log_priority(ctx, 0);

	CU_ASSERT_EQUAL(dmrepl_lvm_lookup(ctx, "vg/snap", &lv), 0);
	CU_ASSERT_EQUAL(lv.thin_id, 3);
	CU_ASSERT_EQUAL(dmrepl_lvm_lookup(ctx, "vg/pool", &lv), 0);
	CU_ASSERT_STRING_EQUAL(lv.segtype, "thin-pool");
	CU_ASSERT_EQUAL(dmrepl_lvm_lookup(ctx, "vg/missing", &lv), -ENOENT);
	CU_ASSERT_EQUAL(dmrepl_lvm_lookup(ctx, "notanlv", &lv), -EINVAL);
	/* a change through this context: the next lookup asks again */
	CU_ASSERT_EQUAL(dmrepl_lvm_run(ctx, (const char *const[]){"lvchange",
				       "--addtag", "t", "vg/snap", NULL},
				       NULL, NULL, 0), 0);
	CU_ASSERT_EQUAL(dmrepl_lvm_lookup(ctx, "vg/snap", &lv), 0);
	dmrepl_unref(ctx);
	unsetenv("DMREPL_LVM");

	f = fopen(calls, "r");
	CU_ASSERT_FATAL(f != NULL);
	n = 0;
	for (int c; (c = fgetc(f)) != EOF;)
		n += c == '\n';
	fclose(f);
	/*
	 * lvs (answers snap and pool), lvs (a name not in the kept listing
	 * is asked for again: it may have been made since), lvchange, lvs
	 */
	CU_ASSERT_EQUAL(n, 4);
	unlink(calls);
	unlink(script);
	rmdir(dir);
}

static CU_TestInfo lvm_tests[] = {
    {"dm names of LVM devices", test_split},
    {"lvs answers", test_parse},
    {"malformed lvs answers", test_parse_bad},
    {"lvs answers: every LV", test_parse_list},
    {"tag text", test_tag_escape},
    {"LV names", test_name_valid},
    {"lookups share a listing", test_lookup_cache},
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
