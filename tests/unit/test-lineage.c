/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Lineage records: the text form round-trips, every malformed or
 * incomplete record is refused, files are written atomically and listed
 * by kind, and the destination's lock excludes a second holder.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libdmrepl-private.h"
#include "unit.h"

static char state_dir[] = "/tmp/dmrepl-test-lineage.XXXXXX";
static struct dmrepl_ctx *ctx;

static const struct dmrepl_lineage_record sample = {
    .src_pool = "vg-pool-tpool",
    .src = {.thin_id = 7, .creation_time = 3, .root = 4242, .mapped_blocks = 100},
    .dst = {.thin_id = 12, .creation_time = 9, .root = 77, .mapped_blocks = 99},
    .size_bytes = 1ull << 30,
    .base_dst_id = 10,
    .anchor_id = 13,
    .time = 1790000000,
    .pid = 0,
};

static int suite_init(void)
{
	if (!mkdtemp(state_dir) || dmrepl_new(&ctx) < 0)
		return -1;
	dmrepl_set_log_priority(ctx, 0);
	return 0;
}

static int suite_clean(void)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", state_dir);
	dmrepl_unref(ctx);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_round_trip(void)
{
	struct dmrepl_lineage_record back;
	char text[4096];
	int len;

	len = dmrepl_lineage_format(&sample, text, sizeof(text));
	CU_ASSERT_FATAL(len > 0);
	CU_ASSERT_EQUAL(dmrepl_lineage_parse(text, (size_t)len, &back), 0);
	CU_ASSERT_STRING_EQUAL(back.src_pool, sample.src_pool);
	CU_ASSERT_EQUAL(memcmp(&back.src, &sample.src, sizeof(back.src)), 0);
	CU_ASSERT_EQUAL(memcmp(&back.dst, &sample.dst, sizeof(back.dst)), 0);
	CU_ASSERT_EQUAL(back.size_bytes, sample.size_bytes);
	CU_ASSERT_EQUAL(back.base_dst_id, sample.base_dst_id);
	CU_ASSERT_EQUAL(back.anchor_id, sample.anchor_id);
	CU_ASSERT_EQUAL(back.time, sample.time);
	/* A key of a later version is ignored. */
	memcpy(text + len, "future_key=1\n", 13);
	CU_ASSERT_EQUAL(dmrepl_lineage_parse(text, (size_t)len + 13, &back), 0);
	/* Too small a buffer is an error, not a cut record. */
	CU_ASSERT(dmrepl_lineage_format(&sample, text, 40) < 0);
}

/* As one LVM tag: LVM's characters only, and back to the same record. */
static void test_tag_round_trip(void)
{
	struct dmrepl_lineage_record rec = sample, back;
	const char *prefix = "dmrepl.replica:";
	char tag[1024];
	int len;

	snprintf(rec.src_pool, sizeof(rec.src_pool), "host a:vg--p-tpool&=#");
	snprintf(rec.src_name, sizeof(rec.src_name), "vg/snap 1");
	rec.resumable = true;
	rec.stream_hash = 0x1234567890abcdefull;
	rec.checkpoint = 4096;
	len = dmrepl_lineage_tag_format(prefix, &rec, tag, sizeof(tag));
	CU_ASSERT_FATAL(len > 0);
	CU_ASSERT_EQUAL((size_t)len, strlen(tag));
	CU_ASSERT_EQUAL(strncmp(tag, prefix, strlen(prefix)), 0);
	for (const char *p = tag; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
			    "0123456789_+.-/=!:&#", *p))
			CU_FAIL("a character LVM refuses in a tag");
	CU_ASSERT_EQUAL_FATAL(dmrepl_lineage_tag_parse(tag + strlen(prefix),
						       strlen(tag + strlen(prefix)),
						       &back),
			      0);
	CU_ASSERT_STRING_EQUAL(back.src_pool, rec.src_pool);
	CU_ASSERT_STRING_EQUAL(back.src_name, rec.src_name);
	CU_ASSERT_EQUAL(memcmp(&back.src, &rec.src, sizeof(back.src)), 0);
	CU_ASSERT_EQUAL(memcmp(&back.dst, &rec.dst, sizeof(back.dst)), 0);
	CU_ASSERT(back.resumable);
	CU_ASSERT_EQUAL(back.stream_hash, rec.stream_hash);
	CU_ASSERT_EQUAL(back.checkpoint, rec.checkpoint);
	/* without a source name, none comes back */
	rec.src_name[0] = '\0';
	len = dmrepl_lineage_tag_format(prefix, &rec, tag, sizeof(tag));
	CU_ASSERT_FATAL(len > 0);
	CU_ASSERT_EQUAL(dmrepl_lineage_tag_parse(tag + strlen(prefix),
						 strlen(tag + strlen(prefix)), &back),
			0);
	CU_ASSERT_STRING_EQUAL(back.src_name, "");
	/* too small, truncated, malformed */
	CU_ASSERT(dmrepl_lineage_tag_format(prefix, &rec, tag, 64) < 0);
	CU_ASSERT_EQUAL(dmrepl_lineage_tag_parse("version=1&src_pool=x", 20, &back),
			-EINVAL);
	CU_ASSERT_EQUAL(dmrepl_lineage_tag_parse("version=1&=x", 12, &back),
			-EINVAL);
	CU_ASSERT_EQUAL(dmrepl_lineage_tag_parse("version", 7, &back), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_lineage_tag_parse("src_pool=a#0ab", 14, &back),
			-EINVAL);
}

/* The sizes `dmrepl snapshot` records (lib/sizes.c). */
static void test_snap_sizes(void)
{
	static const char *const bad[] = {
	    "", "size_bytes=512\n", "size_bytes=512\ncreation_time=1",
	    "size_bytes=0\ncreation_time=1\n", "size_bytes=513\ncreation_time=1\n",
	    "size_bytes=512\ncreation_time=4294967296\n",
	    "size_bytes=18446744073709551616\ncreation_time=1\n",
	    "size_bytes=-512\ncreation_time=1\n", "size_bytes=512\ncreation_time=1\nx",
	    "creation_time=1\nsize_bytes=512\n", "size_bytes= 512\ncreation_time=1\n"};
	uint64_t size = 0;
	uint32_t ctime = 0;

	CU_ASSERT_EQUAL(dmrepl_snap_size_parse("size_bytes=67108864\ncreation_time=7\n",
					       &size, &ctime), 0);
	CU_ASSERT_EQUAL(size, 67108864);
	CU_ASSERT_EQUAL(ctime, 7);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		if (dmrepl_snap_size_parse(bad[i], &size, &ctime) != -EINVAL)
			CU_FAIL(bad[i]);
	/* recorded, found; another creation time (the id reused): not found */
	CU_ASSERT_EQUAL(dmrepl_snap_size_record(ctx, state_dir, "vg-p/x", 12, 3,
						1048576), 0);
	size = 0;
	CU_ASSERT_EQUAL(dmrepl_snap_size_lookup(ctx, state_dir, "vg-p/x", 12, 3,
						&size), 0);
	CU_ASSERT_EQUAL(size, 1048576);
	CU_ASSERT_EQUAL(dmrepl_snap_size_lookup(ctx, state_dir, "vg-p/x", 12, 4,
						&size), -ENOENT);
	CU_ASSERT_EQUAL(dmrepl_snap_size_lookup(ctx, state_dir, "vg-p/x", 13, 3,
						&size), -ENOENT);
	CU_ASSERT_EQUAL(dmrepl_snap_size_lookup(ctx, state_dir, "other", 12, 3,
						&size), -ENOENT);
}

/* Replace the line starting with @key in a good record by @line. */
static int parse_with(const char *key, const char *line)
{
	struct dmrepl_lineage_record back;
	char text[4096], out[4096] = "";
	char *save = NULL, *l;
	int len = dmrepl_lineage_format(&sample, text, sizeof(text));

	if (len < 0)
		return len;
	for (l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		const char *use = strncmp(l, key, strlen(key)) == 0 ? line : l;

		if (*use) {
			strcat(out, use);
			strcat(out, "\n");
		}
	}
	return dmrepl_lineage_parse(out, strlen(out), &back);
}

static void test_malformed(void)
{
	CU_ASSERT_EQUAL(parse_with("version=", "version=2"), -EINVAL);
	CU_ASSERT_EQUAL(parse_with("version=", ""), -EINVAL);
	CU_ASSERT_EQUAL(parse_with("src_root=", ""), -EINVAL);	/* missing */
	CU_ASSERT_EQUAL(parse_with("anchor_id=", ""), -EINVAL);
	CU_ASSERT_EQUAL(parse_with("src_pool=", ""), -EINVAL);
	CU_ASSERT_EQUAL(parse_with("src_pool=", "src_pool="), -EINVAL);
	CU_ASSERT_EQUAL(parse_with("dst_id=", "dst_id=-1"), -EINVAL);
	CU_ASSERT_EQUAL(parse_with("dst_id=", "dst_id=12x"), -EINVAL);
	CU_ASSERT_EQUAL(parse_with("dst_id=", "dst_id=99999999999999999999"), -EINVAL);
	CU_ASSERT_EQUAL(parse_with("src_creation_time=", "src_creation_time=4294967296"), -EINVAL);
	CU_ASSERT_EQUAL(parse_with("time=", "time"), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_lineage_parse("", 0, &(struct dmrepl_lineage_record){0}), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_lineage_parse("version=1\0x", 11,
					     &(struct dmrepl_lineage_record){0}), -EINVAL);
}

struct seen {
	int n;
	uint64_t ids[8];
};

static int note(const struct dmrepl_lineage_record *rec, void *data)
{
	struct seen *s = data;

	if (s->n < 8)
		s->ids[s->n] = rec->dst.thin_id;
	s->n++;
	return 0;
}

static void test_files(void)
{
	struct dmrepl_lineage_record rec = sample;
	char dir[PATH_MAX], path[PATH_MAX + 32];
	struct seen s = {0};
	int fd;

	CU_ASSERT_EQUAL_FATAL(dmrepl_lineage_dir(state_dir, "vg/odd name", dir, sizeof(dir)), 0);
	CU_ASSERT(strstr(dir, "/vg%2Fodd%20name") != NULL);
	CU_ASSERT_EQUAL_FATAL(dmrepl_lineage_dir_create(ctx, state_dir, dir), 0);
	CU_ASSERT_EQUAL(dmrepl_lineage_write(ctx, dir, "replica", &rec), 0);
	rec.dst.thin_id = 20;
	CU_ASSERT_EQUAL(dmrepl_lineage_write(ctx, dir, "staging", &rec), 0);
	/* Garbage and leftovers of an interrupted write are skipped. */
	snprintf(path, sizeof(path), "%s/replica-30", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	CU_ASSERT(fd >= 0 && write(fd, "junk\n", 5) == 5);
	close(fd);
	snprintf(path, sizeof(path), "%s/replica-12.tmp", dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	close(fd);
	/* A record whose name and content disagree is skipped. */
	snprintf(path, sizeof(path), "%s/replica-31", dir);
	rec.dst.thin_id = 31;
	CU_ASSERT_EQUAL(dmrepl_lineage_write(ctx, dir, "replica", &rec), 0);
	CU_ASSERT_EQUAL(rename(path, strcat(strcpy((char[PATH_MAX + 32]){0}, dir), "/replica-32")), 0);

	CU_ASSERT_EQUAL(dmrepl_lineage_foreach(ctx, dir, "replica", note, &s), 0);
	CU_ASSERT_EQUAL(s.n, 1);
	CU_ASSERT_EQUAL(s.ids[0], 12);
	s.n = 0;
	CU_ASSERT_EQUAL(dmrepl_lineage_foreach(ctx, dir, "staging", note, &s), 0);
	CU_ASSERT_EQUAL(s.n, 1);
	CU_ASSERT_EQUAL(s.ids[0], 20);
	CU_ASSERT_EQUAL(dmrepl_lineage_remove(ctx, dir, "staging", 20), 0);
	CU_ASSERT_EQUAL(dmrepl_lineage_remove(ctx, dir, "staging", 20), 0);
	s.n = 0;
	CU_ASSERT_EQUAL(dmrepl_lineage_foreach(ctx, dir, "staging", note, &s), 0);
	CU_ASSERT_EQUAL(s.n, 0);
}

static void test_lock(void)
{
	char dir[PATH_MAX];
	int fd1 = -1, fd2 = -1;

	CU_ASSERT_EQUAL_FATAL(dmrepl_lineage_dir(state_dir, "locked", dir, sizeof(dir)), 0);
	CU_ASSERT_EQUAL_FATAL(dmrepl_lineage_dir_create(ctx, state_dir, dir), 0);
	CU_ASSERT_EQUAL(dmrepl_lineage_lock(ctx, dir, &fd1), 0);
	CU_ASSERT_EQUAL(dmrepl_lineage_lock(ctx, dir, &fd2), -EBUSY);
	close(fd1);
	CU_ASSERT_EQUAL(dmrepl_lineage_lock(ctx, dir, &fd2), 0);
	close(fd2);
}

static CU_TestInfo lineage_tests[] = {
    {"record round trip", test_round_trip},
    {"record as an LVM tag", test_tag_round_trip},
    {"snapshot sizes", test_snap_sizes},
    {"malformed records", test_malformed},
    {"files by kind", test_files},
    {"destination lock", test_lock},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"lineage", suite_init, suite_clean, NULL, NULL, lineage_tests},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
	return unit_run(suites);
}
