/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The metadata reader: superblock, held root, device details, btree
 * walks, and one test per kind of corruption, each checking the exact
 * errno and that the message names the block at fault.
 *
 * Fixtures are thin_restore images of tests/fixtures/NAME.xml; corrupt
 * variants are patched in memory (checksums recomputed, so that only the
 * intended fault remains) and opened with dmrepl_metadata_open_memory().
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metadata-util.h"
#include "unit.h"

static void test_crc32c(void)
{
	static const char check[] = "123456789";

	/* the standard CRC-32C check value is the inverted raw CRC */
	CU_ASSERT_EQUAL(~dmrepl_crc32c(0xffffffffu, check, 9), 0xe3069283u);
	CU_ASSERT_EQUAL(dmrepl_crc32c(0x1234u, check, 0), 0x1234u);
}

/* Published CRC-32C check values (RFC 3720, B.4), as final values. */
static void check_vectors(uint32_t (*crc)(uint32_t, const void *, size_t))
{
	uint8_t buf[32];

	CU_ASSERT_EQUAL(~crc(0xffffffffu, "123456789", 9), 0xe3069283u);
	CU_ASSERT_EQUAL(crc(0x1234u, "x", 0), 0x1234u);
	memset(buf, 0, sizeof(buf));
	CU_ASSERT_EQUAL(~crc(0xffffffffu, buf, 32), 0x8a9136aau);
	memset(buf, 0xff, sizeof(buf));
	CU_ASSERT_EQUAL(~crc(0xffffffffu, buf, 32), 0x62a8ab43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)i;
	CU_ASSERT_EQUAL(~crc(0xffffffffu, buf, 32), 0x46dd794eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (uint8_t)(31 - i);
	CU_ASSERT_EQUAL(~crc(0xffffffffu, buf, 32), 0x113fdb5cu);
}

static void test_crc32c_paths(void)
{
	check_vectors(dmrepl_crc32c_sw);
	check_vectors(dmrepl_crc32c_hw);
	if (!dmrepl_crc32c_hw_supported())
		fprintf(stderr, "(no SSE4.2: the hardware path is the "
				"table one here) ");
}

/* Both paths, and the one in use, agree at every length and alignment. */
static void test_crc32c_random(void)
{
	static uint8_t buf[DMREPL_MD_BLOCK_SIZE + 64];
	uint64_t x = 0x9e3779b97f4a7c15u;
	int bad = 0;

	for (size_t i = 0; i < sizeof(buf); i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		buf[i] = (uint8_t)x;
	}
	for (int t = 0; t < 2000; t++) {
		size_t off, len;
		uint32_t seed, sw;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		off = x % 64;
		len = t < 100 ? (size_t)t : (x >> 8) % (DMREPL_MD_BLOCK_SIZE + 1);
		seed = (uint32_t)(x >> 32);
		sw = dmrepl_crc32c_sw(seed, buf + off, len);
		bad += sw != dmrepl_crc32c_hw(seed, buf + off, len);
		bad += sw != dmrepl_crc32c(seed, buf + off, len);
	}
	CU_ASSERT_EQUAL(bad, 0);
	/* a whole block, as the reader checksums it */
	CU_ASSERT_EQUAL(dmrepl_crc32c_sw(0xffffffffu, buf + 4, 4092),
			dmrepl_crc32c_hw(0xffffffffu, buf + 4, 4092));
}

static void test_readahead_parse(void)
{
	enum dmrepl_readahead_mode m = DMREPL_READAHEAD_OFF;
	unsigned int n = 0;

	CU_ASSERT_EQUAL(dmrepl_readahead_parse("uring", &m, &n), 0);
	CU_ASSERT(m == DMREPL_READAHEAD_URING && n == DMREPL_READAHEAD_BLOCKS);
	CU_ASSERT_EQUAL(dmrepl_readahead_parse("sync:64", &m, &n), 0);
	CU_ASSERT(m == DMREPL_READAHEAD_SYNC && n == 64);
	CU_ASSERT_EQUAL(dmrepl_readahead_parse("off", &m, &n), 0);
	CU_ASSERT(m == DMREPL_READAHEAD_OFF);
	CU_ASSERT_EQUAL(dmrepl_readahead_parse("uring:8", &m, &n), 0);
	CU_ASSERT_EQUAL(dmrepl_readahead_parse("uring:4096", &m, &n), 0);
	m = DMREPL_READAHEAD_OFF, n = 1;
	CU_ASSERT_EQUAL(dmrepl_readahead_parse("uring:7", &m, &n), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_readahead_parse("uring:4097", &m, &n), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_readahead_parse("sync:", &m, &n), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_readahead_parse("sync:12x", &m, &n), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_readahead_parse("uringx", &m, &n), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_readahead_parse("", &m, &n), -EINVAL);
	CU_ASSERT(m == DMREPL_READAHEAD_OFF && n == 1); /* untouched */
}

/* Can this process use io_uring at all? Then read-ahead must use it. */
static bool uring_works(void)
{
	struct io_uring ring;

	if (io_uring_queue_init(2, &ring, 0) < 0)
		return false;
	io_uring_queue_exit(&ring);
	return true;
}

struct ra_case {
	struct dmrepl_ctx *ctx;
	int fd;
	uint8_t *want; /* the file */
	uint64_t nr_blocks;
	uint8_t buf[DMREPL_MD_BLOCK_SIZE];
};

/* Read @blocknr through @ra: it must be the file's block. */
static void expect_block(struct ra_case *rc, struct dmrepl_readahead *ra,
			 uint64_t blocknr)
{
	size_t got = 1;

	CU_ASSERT_EQUAL(dmrepl_readahead_read(ra, blocknr, rc->buf, &got), 0);
	if (blocknr >= rc->nr_blocks) {
		CU_ASSERT_EQUAL(got, 0);
		return;
	}
	CU_ASSERT_EQUAL(got, DMREPL_MD_BLOCK_SIZE);
	CU_ASSERT(memcmp(rc->buf, rc->want + blocknr * DMREPL_MD_BLOCK_SIZE,
			 DMREPL_MD_BLOCK_SIZE) == 0);
}

static const void *peek_ready(struct dmrepl_readahead *ra, uint64_t blocknr)
{
	const void *p = NULL;

	for (int tries = 0; tries < 2000 && !p; tries++) {
		dmrepl_readahead_room(ra); /* takes completions */
		p = dmrepl_readahead_peek(ra, blocknr);
		if (!p)
			usleep(1000);
	}
	return p;
}

static void readahead_engine(struct ra_case *rc,
			     enum dmrepl_readahead_mode mode)
{
	static const uint64_t batch[] = {5, 9, 7, 6, 3, 3};
	struct dmrepl_readahead_stats st;
	struct dmrepl_readahead *ra = NULL;
	uint64_t many[20];
	const void *p;

	CU_ASSERT_EQUAL_FATAL(
	    dmrepl_readahead_new(rc->ctx, rc->fd, "deep", mode, 8, &ra), 0);
	CU_ASSERT_EQUAL(dmrepl_readahead_room(ra), 8);
	/* 3 5 6 7 9: one read, blocks 4 and 8 read into the junk buffer */
	CU_ASSERT_EQUAL(dmrepl_readahead_submit(ra, batch, 6), 6);
	CU_ASSERT_EQUAL(dmrepl_readahead_room(ra), 3);
	for (size_t i = 0; i < 5; i++)
		expect_block(rc, ra, batch[i]);
	dmrepl_readahead_get_stats(ra, &st);
	CU_ASSERT(st.mode == (mode == DMREPL_READAHEAD_URING && !uring_works()
				  ? DMREPL_READAHEAD_SYNC
				  : mode));
	CU_ASSERT_EQUAL(st.requests, 1);
	CU_ASSERT_EQUAL(st.blocks_prefetched, 5);
	CU_ASSERT_EQUAL(st.hits, 5);
	CU_ASSERT_EQUAL(dmrepl_readahead_room(ra), 8); /* used: reusable */
	expect_block(rc, ra, 5); /* kept: a re-read costs no read */
	dmrepl_readahead_get_stats(ra, &st);
	CU_ASSERT_EQUAL(st.hits, 6);
	CU_ASSERT_EQUAL(st.requests, 1);

	/* forgotten, then read all the same */
	CU_ASSERT_EQUAL(dmrepl_readahead_submit(ra, (uint64_t[]){20}, 1), 1);
	dmrepl_readahead_forget(ra, 20);
	expect_block(rc, ra, 20);
	/* peeked and marked: shown once, still used from the pool */
	CU_ASSERT_EQUAL(dmrepl_readahead_submit(ra, (uint64_t[]){21}, 1), 1);
	p = peek_ready(ra, 21);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT(memcmp(p, rc->want + 21 * DMREPL_MD_BLOCK_SIZE, 64) == 0);
	dmrepl_readahead_mark(ra, 21);
	CU_ASSERT_PTR_NULL(dmrepl_readahead_peek(ra, 21));
	dmrepl_readahead_get_stats(ra, &st);
	expect_block(rc, ra, 21);
	{
		struct dmrepl_readahead_stats st2;

		dmrepl_readahead_get_stats(ra, &st2);
		CU_ASSERT_EQUAL(st2.hits, st.hits + 1);
		CU_ASSERT_PTR_NULL(dmrepl_readahead_peek(ra, 21)); /* used */
	}
	/* past the end of the file: a short read, never kept */
	CU_ASSERT_EQUAL(dmrepl_readahead_submit(
			    ra, (uint64_t[]){rc->nr_blocks}, 1), 1);
	expect_block(rc, ra, rc->nr_blocks);
	expect_block(rc, ra, rc->nr_blocks);

	/* more than the pool holds: it takes what fits, reads the rest */
	for (uint64_t i = 0; i < 20; i++)
		many[i] = 100 + 2 * i;
	CU_ASSERT(dmrepl_readahead_submit(ra, many, 20) <= 8);
	for (uint64_t i = 0; i < 20; i++)
		expect_block(rc, ra, many[i]);
	dmrepl_readahead_get_stats(ra, &st);
	CU_ASSERT(st.blocks_unused >= 2); /* block 20, the block past the end */
	dmrepl_readahead_free(ra);
}

static void test_readahead_engine(void)
{
	struct image img;
	struct ra_case rc = {0};

	CU_ASSERT_EQUAL_FATAL(image_load("deep", &img), 0);
	CU_ASSERT_FATAL(img.nr_blocks > 200);
	rc.want = img.data;
	rc.nr_blocks = img.nr_blocks;
	CU_ASSERT_EQUAL(dmrepl_new(&rc.ctx), 0);
	rc.fd = open(fixture_path("deep"), O_RDONLY | O_CLOEXEC);
	CU_ASSERT_FATAL(rc.fd >= 0);
	readahead_engine(&rc, DMREPL_READAHEAD_URING);
	readahead_engine(&rc, DMREPL_READAHEAD_SYNC);
	if (!uring_works())
		fprintf(stderr, "(io_uring not allowed here: uring mode "
				"checked as its sync fallback) ");
	close(rc.fd);
	dmrepl_unref(rc.ctx);
	image_free(&img);
}

static void test_pool_info(void)
{
	struct dmrepl_ctx *ctx = NULL;
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_pool_info info;

	CU_ASSERT_EQUAL_FATAL(dmrepl_new(&ctx), 0);
	CU_ASSERT_EQUAL_FATAL(
	    dmrepl_metadata_open(ctx, fixture_path("edge"), 0, &md), 0);
	CU_ASSERT_EQUAL(dmrepl_metadata_get_pool_info(md, &info), 0);
	CU_ASSERT_EQUAL(info.transaction_id, 7);
	CU_ASSERT_EQUAL(info.time, 3);
	CU_ASSERT_EQUAL(info.data_block_size_sectors, 128);
	CU_ASSERT_EQUAL(info.nr_data_blocks, 4096);
	CU_ASSERT_EQUAL(info.nr_metadata_blocks, 16 * 1024 * 1024 / 4096);
	CU_ASSERT_EQUAL(info.held_root_block, 0);
	CU_ASSERT_EQUAL(info.using_held_root, 0);
	CU_ASSERT_EQUAL(dmrepl_metadata_get_pool_info(md, NULL), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_metadata_get_pool_info(NULL, &info), -EINVAL);
	CU_ASSERT_PTR_EQUAL(dmrepl_metadata_ref(md), md);
	CU_ASSERT_PTR_NULL(dmrepl_metadata_unref(md));
	CU_ASSERT_PTR_NULL(dmrepl_metadata_unref(md));
	CU_ASSERT_PTR_NULL(dmrepl_metadata_unref(NULL));
	CU_ASSERT_PTR_NULL(dmrepl_metadata_ref(NULL));
	dmrepl_unref(ctx);
}

struct collected {
	struct dmrepl_thin_info info[16];
	int n;
	int stop_at;
};

static int collect_thin(const struct dmrepl_thin_info *info, void *userdata)
{
	struct collected *c = userdata;

	if (c->n < 16)
		c->info[c->n] = *info;
	c->n++;
	return c->n == c->stop_at ? 42 : 0;
}

static void test_foreach_thin(void)
{
	static const uint64_t ids[] = {1, 2, 3, 4, 5, 6, 16777215};
	struct dmrepl_ctx *ctx = NULL;
	struct dmrepl_metadata *md = NULL;
	struct collected c = {0};

	CU_ASSERT_EQUAL_FATAL(dmrepl_new(&ctx), 0);
	CU_ASSERT_EQUAL_FATAL(
	    dmrepl_metadata_open(ctx, fixture_path("edge"), 0, &md), 0);
	CU_ASSERT_EQUAL(dmrepl_metadata_foreach_thin(md, collect_thin, &c), 0);
	CU_ASSERT_EQUAL_FATAL(c.n, (int)ARRAY_SIZE(ids));
	for (size_t i = 0; i < ARRAY_SIZE(ids); i++)
		CU_ASSERT_EQUAL(c.info[i].thin_id, ids[i]);
	/* <device dev_id="5" mapped_blocks="2" transaction="4"
	 * creation_time="2" snap_time="3"> */
	CU_ASSERT_EQUAL(c.info[4].mapped_blocks, 2);
	CU_ASSERT_EQUAL(c.info[4].transaction_id, 4);
	CU_ASSERT_EQUAL(c.info[4].creation_time, 2);
	CU_ASSERT_EQUAL(c.info[4].snapshot_time, 3);

	memset(&c, 0, sizeof(c));
	c.stop_at = 3;
	CU_ASSERT_EQUAL(dmrepl_metadata_foreach_thin(md, collect_thin, &c), 42);
	CU_ASSERT_EQUAL(c.n, 3);
	CU_ASSERT_EQUAL(dmrepl_metadata_foreach_thin(md, NULL, &c), -EINVAL);
	dmrepl_metadata_unref(md);
	dmrepl_unref(ctx);
}

static void test_get_thin(void)
{
	struct dmrepl_ctx *ctx = NULL;
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_thin_info info = {.thin_id = 99};

	CU_ASSERT_EQUAL_FATAL(dmrepl_new(&ctx), 0);
	CU_ASSERT_EQUAL_FATAL(
	    dmrepl_metadata_open(ctx, fixture_path("edge"), 0, &md), 0);
	CU_ASSERT_EQUAL(dmrepl_metadata_get_thin(md, 7, &info), -ENOENT);
	CU_ASSERT_EQUAL(info.thin_id, 99); /* untouched on failure */
	CU_ASSERT_EQUAL(dmrepl_metadata_get_thin(md, 0, &info), -ENOENT);
	CU_ASSERT_EQUAL(dmrepl_metadata_get_thin(md, 16777215, &info), 0);
	CU_ASSERT_EQUAL(info.thin_id, 16777215);
	CU_ASSERT_EQUAL(info.transaction_id, 6);
	CU_ASSERT_EQUAL(dmrepl_metadata_get_thin(md, 3, &info), 0);
	CU_ASSERT_EQUAL(info.mapped_blocks, 1);
	CU_ASSERT_EQUAL(info.creation_time, 1);
	dmrepl_metadata_unref(md);
	dmrepl_unref(ctx);
}

static void test_open_errors(void)
{
	struct dmrepl_ctx *ctx = NULL;
	struct dmrepl_metadata *md = (void *)0x1;
	struct log_capture log;

	ctx = capture_ctx(&log);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ctx);
	CU_ASSERT_EQUAL(dmrepl_metadata_open(ctx, "/nonexistent/meta", 0, &md),
			-ENOENT);
	CU_ASSERT(log_has(&log, "/nonexistent/meta"));
	CU_ASSERT_EQUAL(
	    dmrepl_metadata_open(ctx, fixture_path("edge"), 1u << 7, &md),
	    -EINVAL);
	CU_ASSERT_EQUAL(
	    dmrepl_metadata_open(NULL, fixture_path("edge"), 0, &md), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_metadata_open(ctx, NULL, 0, &md), -EINVAL);
	CU_ASSERT_EQUAL(
	    dmrepl_metadata_open(ctx, fixture_path("edge"), 0, NULL), -EINVAL);
	CU_ASSERT_EQUAL(
	    dmrepl_metadata_open_memory(ctx, "", 0, "empty", 0, &md), -EIO);
	CU_ASSERT(
	    log_has(&log, "empty: metadata block 0: short read (0 of 4096"));
	CU_ASSERT_PTR_EQUAL(md, (void *)0x1); /* untouched on failure */
	dmrepl_unref(ctx);
}

/* O_DIRECT needs file system support: tmpfs refuses it with EINVAL. */
static void test_direct(void)
{
	struct dmrepl_ctx *ctx = NULL;
	struct dmrepl_metadata *md = NULL;
	struct collected c = {0};
	struct log_capture log;
	int r;

	ctx = capture_ctx(&log);
	r = dmrepl_metadata_open(ctx, fixture_path("small"),
				 DMREPL_METADATA_DIRECT, &md);
	if (r == -EINVAL) {
		CU_ASSERT(log_has(&log, "does not support O_DIRECT"));
		fprintf(stderr, "(no O_DIRECT here) ");
	} else {
		CU_ASSERT_EQUAL_FATAL(r, 0);
		CU_ASSERT_EQUAL(
		    dmrepl_metadata_foreach_thin(md, collect_thin, &c), 0);
		CU_ASSERT_EQUAL(c.n, 3);
	}
	dmrepl_metadata_unref(md);
	dmrepl_unref(ctx);
}

static void test_deep_walk(void)
{
	struct dmrepl_ctx *ctx = NULL;
	struct dmrepl_metadata *md = NULL;
	struct btree_cursor c;
	const void *value;
	uint64_t root, key, expect = 0;
	unsigned int max_depth = 0;
	int r;

	CU_ASSERT_EQUAL_FATAL(dmrepl_new(&ctx), 0);
	CU_ASSERT_EQUAL_FATAL(
	    dmrepl_metadata_open(ctx, fixture_path("deep"), 0, &md), 0);
	CU_ASSERT_EQUAL_FATAL(dmrepl_thin_get_mapping_root(md, 1, &root), 0);
	btree_cursor_init(&c, md, "test", root, 8);
	while ((r = btree_cursor_next(&c, &key, &value)) == 0) {
		if (key != expect++)
			break;
		if (c.depth > max_depth)
			max_depth = c.depth;
	}
	CU_ASSERT_EQUAL(r, 1);
	CU_ASSERT_EQUAL(expect, 100000);
	CU_ASSERT(max_depth >= 3);
	btree_cursor_release(&c);
	dmrepl_metadata_unref(md);
	dmrepl_unref(ctx);
}

/* ---- patched images ---- */

static struct image deep_img; /* pristine deep.bin; tests patch a copy */
static uint64_t root1, root2, leaf2;

static int suite_init(void)
{
	if (image_load("deep", &deep_img) < 0)
		return -1;
	root1 = image_thin_root(&deep_img, 1);
	root2 = image_thin_root(&deep_img, 2);
	leaf2 = leftmost_leaf(&deep_img, root2);
	return root1 && root2 ? 0 : -1;
}

static int suite_clean(void)
{
	image_free(&deep_img);
	return 0;
}

static struct image copy_deep(void)
{
	struct image img = deep_img;

	img.data = malloc(img.size);
	if (!img.data)
		abort();
	memcpy(img.data, deep_img.data, img.size);
	return img;
}

/* Open @img from memory and walk the delta 1 -> 2 to its end. */
static int open_and_walk(struct image *img, struct log_capture *log,
			 unsigned int flags)
{
	struct dmrepl_ctx *ctx = capture_ctx(log);
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_delta *delta = NULL;
	struct dmrepl_run run;
	int r;

	r = dmrepl_metadata_open_memory(ctx, img->data, img->size, "patched",
					flags, &md);
	if (r == 0)
		r = dmrepl_delta_new(md, 1, 2, 0, &delta);
	while (r == 0)
		r = dmrepl_delta_next_run(delta, &run);
	if (r < 0 && delta) /* an error is final */
		CU_ASSERT_EQUAL(dmrepl_delta_next_run(delta, &run), r);
	dmrepl_delta_unref(delta);
	dmrepl_metadata_unref(md);
	dmrepl_unref(ctx);
	return r == 1 ? 0 : r;
}

static void expect_fault(struct image *img, int err, const char *needle1,
			 const char *needle2)
{
	struct log_capture log;

	CU_ASSERT_EQUAL(open_and_walk(img, &log, 0), err);
	CU_ASSERT(log_has(&log, needle1));
	if (needle2)
		CU_ASSERT(log_has(&log, needle2));
}

static void test_pristine(void)
{
	struct log_capture log;

	CU_ASSERT_EQUAL(open_and_walk(&deep_img, &log, 0), 0);
	CU_ASSERT_EQUAL(log.errors, 0);
}

static void superblock_fault(void (*patch)(uint8_t *sb), bool reseal,
			     const char *needle)
{
	struct image img = copy_deep();

	patch(image_block(&img, 0));
	if (reseal)
		reseal_superblock(&img, 0);
	expect_fault(&img, -EBADMSG, "superblock (block 0)", needle);
	image_free(&img);
}

static void patch_magic(uint8_t *sb)
{
	put64(sb + SB_MAGIC_OFF, 27022011);
}
static void patch_version0(uint8_t *sb)
{
	put32(sb + SB_VERSION_OFF, 0);
}
static void patch_version3(uint8_t *sb)
{
	put32(sb + SB_VERSION_OFF, 3);
}
static void patch_sb_byte(uint8_t *sb)
{
	sb[1000] ^= 0x40;
}
static void patch_sb_blocknr(uint8_t *sb)
{
	put64(sb + 8, 1);
}
static void patch_md_block_size(uint8_t *sb)
{
	put32(sb + SB_METADATA_BLOCK_SIZE_OFF, 16);
}

static void patch_data_block_size(uint8_t *sb)
{
	put32(sb + 336, 0);
}
static void patch_sm_blocks(uint8_t *sb)
{
	put64(sb + SB_METADATA_SM_ROOT_OFF, UINT64_C(1) << 40);
}

static void test_sb_geometry(void)
{
	superblock_fault(patch_data_block_size, true, "data block size is 0");
	superblock_fault(patch_sm_blocks, true, "has 1099511627776 blocks");
}

static void test_sb_magic(void)
{
	superblock_fault(patch_magic, true, "bad magic 27022011");
}
static void test_sb_version(void)
{
	superblock_fault(patch_version0, true,
			 "unsupported metadata version 0");
	superblock_fault(patch_version3, true,
			 "unsupported metadata version 3");
}
static void test_sb_checksum(void)
{
	superblock_fault(patch_sb_byte, false, "bad checksum");
}
static void test_sb_blocknr(void)
{
	superblock_fault(patch_sb_blocknr, true, "records block number 1");
}
static void test_sb_block_size(void)
{
	superblock_fault(patch_md_block_size, true, "metadata block size 16");
}

/* Patch node @blocknr of a copy of deep.bin, reseal it, expect @err. */
static void node_fault(uint64_t blocknr, void (*patch)(uint8_t *node), int err,
		       const char *needle2)
{
	struct image img = copy_deep();
	char needle[64];

	patch(image_block(&img, blocknr));
	reseal_node(&img, blocknr);
	snprintf(needle, sizeof(needle),
		 "mapping tree of thin 2: block %" PRIu64 ": ", blocknr);
	expect_fault(&img, err, needle, needle2);
	image_free(&img);
}

static void patch_node_blocknr(uint8_t *n)
{
	put64(n + NODE_BLOCKNR_OFF, get64(n + NODE_BLOCKNR_OFF) + 1);
}
static void patch_nr_entries(uint8_t *n)
{
	put32(n + NODE_NR_ENTRIES_OFF, get32(n + NODE_MAX_ENTRIES_OFF) + 1);
}
static void patch_max_entries(uint8_t *n)
{
	put32(n + NODE_MAX_ENTRIES_OFF, 300);
}
static void patch_flags3(uint8_t *n)
{
	put32(n + NODE_FLAGS_OFF, 3);
}
static void patch_flags0(uint8_t *n)
{
	put32(n + NODE_FLAGS_OFF, 0);
}
static void patch_value_size(uint8_t *n)
{
	put32(n + NODE_VALUE_SIZE_OFF, 16);
}

static void patch_swap_keys(uint8_t *n)
{
	uint64_t k3 = get64(n + NODE_HEADER + 24),
		 k4 = get64(n + NODE_HEADER + 32);

	put64(n + NODE_HEADER + 24, k4);
	put64(n + NODE_HEADER + 32, k3);
}

/* The leaf's last key moves past the range its parent gives it. */
static void patch_key_range(uint8_t *n)
{
	uint32_t nr = get32(n + NODE_NR_ENTRIES_OFF);

	put64(n + NODE_HEADER + 8 * (nr - 1), 1u << 30);
}

static void test_node_checksum(void)
{
	struct image img = copy_deep();
	char needle[64];

	image_block(&img, leaf2)[2000] ^= 1; /* no reseal */
	snprintf(needle, sizeof(needle), "block %" PRIu64 ": bad checksum",
		 leaf2);
	expect_fault(&img, -EBADMSG, needle, NULL);
	image_free(&img);
}

static void test_node_blocknr(void)
{
	node_fault(leaf2, patch_node_blocknr, -EBADMSG,
		   "node records block number");
}
static void test_node_nr_entries(void)
{
	node_fault(leaf2, patch_nr_entries, -EBADMSG, "> max_entries");
}
static void test_node_max_entries(void)
{
	node_fault(leaf2, patch_max_entries, -EBADMSG,
		   "max_entries 300 does not fit");
}
static void test_node_unsorted(void)
{
	node_fault(leaf2, patch_swap_keys, -EBADMSG, "keys out of order");
}
static void test_node_key_range(void)
{
	node_fault(leaf2, patch_key_range, -EBADMSG, "outside the range");
}
static void test_node_flags(void)
{
	node_fault(leaf2, patch_flags3, -EBADMSG, "bad node flags 0x3");
	node_fault(root2, patch_flags0, -EBADMSG, "bad node flags 0x0");
}
static void test_node_value_size(void)
{
	node_fault(leaf2, patch_value_size, -EBADMSG,
		   "leaf node has 16-byte values");
	node_fault(root2, patch_value_size, -EBADMSG,
		   "internal node has 16-byte values");
}

/* Point child @i of @parent at @target. */
static void set_child(struct image *img, uint64_t parent, uint32_t i,
		      uint64_t target)
{
	put64(node_value(img, parent, i), target);
	reseal_node(img, parent);
}

static void test_cycle(void)
{
	struct image img = copy_deep();
	uint64_t mid = get64(node_value(&img, root2, 1));
	char needle[64];

	/* a node at level 2 points back at the root */
	set_child(&img, mid, 0, root2);
	snprintf(needle, sizeof(needle), "block %" PRIu64 ": cycle", root2);
	expect_fault(&img, -ELOOP, needle, NULL);
	image_free(&img);
}

static void test_self_cycle(void)
{
	struct image img = copy_deep();
	uint64_t mid = get64(node_value(&img, root2, 0));
	char needle[64];

	set_child(&img, mid, 1, mid);
	snprintf(needle, sizeof(needle), "block %" PRIu64 ": cycle", mid);
	expect_fault(&img, -ELOOP, needle, NULL);
	image_free(&img);
}

/*
 * Put a chain of @extra one-entry internal nodes above device 2's tree
 * (3 levels), in the free blocks at the end of the image.
 */
static uint64_t add_chain(struct image *img, unsigned int extra)
{
	uint64_t child = root2, key = 0;
	uint64_t toplevel = get64(image_block(img, 0) + SB_MAPPING_ROOT_OFF);

	for (unsigned int i = 0; i < extra; i++) {
		uint64_t b = img->nr_blocks - 1 - i;

		CU_ASSERT_EQUAL(get64(image_block(img, b) + 8), 0); /* free */
		write_internal_node(img, b, 1, &key, &child);
		child = b;
	}
	for (uint32_t i = 0; i < node_nr_entries(img, toplevel); i++)
		if (node_key(img, toplevel, i) == 2)
			set_child(img, toplevel, i, child);
	return child;
}

static void test_depth_limit(void)
{
	struct image img = copy_deep();
	struct log_capture log;
	char needle[80];

	/* 13 + 3 = 16 levels: the limit itself is fine */
	add_chain(&img, 13);
	CU_ASSERT_EQUAL(open_and_walk(&img, &log, 0), 0);
	image_free(&img);

	/* 14 + 3 = 17 levels: refused at the 17th, the first leaf */
	img = copy_deep();
	add_chain(&img, 14);
	snprintf(needle, sizeof(needle),
		 "block %" PRIu64 ": the tree is deeper "
		 "than 16 levels",
		 leaf2);
	expect_fault(&img, -ELOOP, needle, NULL);
	image_free(&img);
}

static void test_past_end(void)
{
	struct image img = copy_deep();
	char needle[80];

	set_child(&img, root2, 2, img.nr_blocks + 5);
	snprintf(needle, sizeof(needle),
		 "metadata block %" PRIu64 " is past the end",
		 img.nr_blocks + 5);
	expect_fault(&img, -EBADMSG, needle, NULL);
	image_free(&img);
}

static void test_data_block_past_end(void)
{
	struct image img = copy_deep();
	char needle[80];

	/* 1000000 data blocks in the pool; map block 0 to 2000000 */
	put64(node_value(&img, leaf2, 0), (uint64_t)2000000 << 24);
	reseal_node(&img, leaf2);
	snprintf(needle, sizeof(needle),
		 "block %" PRIu64 ": virtual block 0 maps "
		 "to data block 2000000",
		 leaf2);
	expect_fault(&img, -EBADMSG, needle, NULL);
	image_free(&img);
}

static void test_details_fault(void)
{
	struct image img = copy_deep();
	uint64_t details = get64(image_block(&img, 0) + SB_DETAILS_ROOT_OFF);
	struct dmrepl_ctx *ctx;
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_thin_info info;
	struct collected c = {0};
	struct log_capture log;
	char needle[80];

	image_block(&img, details)[100] ^= 1;
	ctx = capture_ctx(&log);
	CU_ASSERT_EQUAL_FATAL(dmrepl_metadata_open_memory(
				  ctx, img.data, img.size, "patched", 0, &md),
			      0);
	CU_ASSERT_EQUAL(dmrepl_metadata_foreach_thin(md, collect_thin, &c),
			-EBADMSG);
	CU_ASSERT_EQUAL(dmrepl_metadata_get_thin(md, 1, &info), -EBADMSG);
	snprintf(needle, sizeof(needle),
		 "device-details tree: block %" PRIu64 ": bad checksum",
		 details);
	CU_ASSERT(log_has(&log, needle));
	dmrepl_metadata_unref(md);
	dmrepl_unref(ctx);
	image_free(&img);
}

static void test_top_level_fault(void)
{
	struct image img = copy_deep();
	uint64_t top = get64(image_block(&img, 0) + SB_MAPPING_ROOT_OFF);
	char needle[80];

	put32(image_block(&img, top) + NODE_VALUE_SIZE_OFF, 24);
	reseal_node(&img, top);
	snprintf(needle, sizeof(needle),
		 "top-level mapping tree: block %" PRIu64
		 ": leaf node has 24-byte values",
		 top);
	expect_fault(&img, -EBADMSG, needle, NULL);
	image_free(&img);
}

static void test_truncated(void)
{
	struct image img = copy_deep();
	uint64_t top = get64(image_block(&img, 0) + SB_MAPPING_ROOT_OFF);
	struct dmrepl_ctx *ctx;
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_delta *delta = NULL;
	struct dmrepl_run run;
	struct log_capture log;
	char needle[80], *path;
	int r;

	/* the delta reads the top level, root 1, then root 2: cut before it */
	CU_ASSERT_FATAL(top < root2 && root1 < root2);
	path = image_write_temp(&img, root2 * DMREPL_MD_BLOCK_SIZE);
	CU_ASSERT_PTR_NOT_NULL_FATAL(path);
	ctx = capture_ctx(&log);
	CU_ASSERT_EQUAL_FATAL(dmrepl_metadata_open(ctx, path, 0, &md), 0);
	CU_ASSERT_EQUAL_FATAL(dmrepl_delta_new(md, 1, 2, 0, &delta), 0);
	while ((r = dmrepl_delta_next_run(delta, &run)) == 0)
		;
	CU_ASSERT_EQUAL(r, -EIO);
	snprintf(needle, sizeof(needle),
		 "metadata block %" PRIu64 ": short read "
		 "(0 of 4096 bytes)",
		 root2);
	CU_ASSERT(log_has(&log, needle));
	dmrepl_delta_unref(delta);
	dmrepl_metadata_unref(md);
	dmrepl_unref(ctx);
	unlink(path);
	free(path);
	image_free(&img);
}

/* ---- the held metadata snapshot ---- */

/*
 * Make a held snapshot as the kernel does: a copy of the superblock in
 * a free block, its space map roots zeroed, and the live superblock
 * pointing at it. Then spoil the live roots, so that only a reader that
 * follows the held root still works.
 */
static uint64_t make_held_root(struct image *img)
{
	uint64_t held = img->nr_blocks - 1;
	uint8_t *copy = image_block(img, held), *sb = image_block(img, 0);
	uint64_t details = get64(sb + SB_DETAILS_ROOT_OFF);

	memcpy(copy, sb, DMREPL_MD_BLOCK_SIZE);
	put64(copy + 8, held);
	memset(copy + SB_DATA_SM_ROOT_OFF, 0, 256);
	put64(copy + SB_TRANS_ID_OFF, 5);
	reseal_superblock(img, held);
	put64(sb + SB_HELD_ROOT_OFF, held);
	put64(sb + SB_DETAILS_ROOT_OFF, get64(sb + SB_MAPPING_ROOT_OFF));
	put64(sb + SB_MAPPING_ROOT_OFF, details);
	reseal_superblock(img, 0);
	return held;
}

static void test_held_root_missing(void)
{
	struct log_capture log;
	struct dmrepl_ctx *ctx = capture_ctx(&log);
	struct dmrepl_metadata *md = NULL;

	CU_ASSERT_EQUAL(dmrepl_metadata_open_memory(
			    ctx, deep_img.data, deep_img.size, "deep",
			    DMREPL_METADATA_USE_HELD_ROOT, &md),
			-ENODATA);
	CU_ASSERT(log_has(&log, "no metadata snapshot is held"));
	CU_ASSERT_PTR_NULL(md);
	dmrepl_unref(ctx);
}

static void test_held_root(void)
{
	struct image img = copy_deep();
	struct dmrepl_ctx *ctx;
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_pool_info info;
	struct collected c = {0};
	struct log_capture log;
	uint64_t held = make_held_root(&img);

	ctx = capture_ctx(&log);
	/* the live roots are swapped: the details tree has the wrong values */
	CU_ASSERT_EQUAL_FATAL(dmrepl_metadata_open_memory(
				  ctx, img.data, img.size, "held", 0, &md),
			      0);
	CU_ASSERT_EQUAL(dmrepl_metadata_foreach_thin(md, collect_thin, &c),
			-EBADMSG);
	md = dmrepl_metadata_unref(md);

	c.n = 0;
	CU_ASSERT_EQUAL_FATAL(
	    dmrepl_metadata_open_memory(ctx, img.data, img.size, "held",
					DMREPL_METADATA_USE_HELD_ROOT, &md),
	    0);
	CU_ASSERT_EQUAL(dmrepl_metadata_foreach_thin(md, collect_thin, &c), 0);
	CU_ASSERT_EQUAL(c.n, 3);
	CU_ASSERT_EQUAL(dmrepl_metadata_get_pool_info(md, &info), 0);
	CU_ASSERT_EQUAL(info.using_held_root, 1);
	CU_ASSERT_EQUAL(info.held_root_block, held);
	CU_ASSERT_EQUAL(info.transaction_id, 5); /* the snapshot's */
	CU_ASSERT_EQUAL(info.nr_data_blocks,
			1000000); /* the live superblock's */
	dmrepl_metadata_unref(md);
	CU_ASSERT_EQUAL(
	    open_and_walk(&img, &log, DMREPL_METADATA_USE_HELD_ROOT), 0);
	dmrepl_unref(ctx);
	image_free(&img);
}

static void test_held_root_corrupt(void)
{
	struct image img = copy_deep();
	uint64_t held = make_held_root(&img);
	char needle[80];

	image_block(&img, held)[500] ^= 1;
	snprintf(needle, sizeof(needle),
		 "held metadata snapshot (block %" PRIu64 "): bad checksum",
		 held);
	{
		struct log_capture log;

		CU_ASSERT_EQUAL(
		    open_and_walk(&img, &log, DMREPL_METADATA_USE_HELD_ROOT),
		    -EBADMSG);
		CU_ASSERT(log_has(&log, needle));
	}
	put64(image_block(&img, 0) + SB_HELD_ROOT_OFF, img.nr_blocks);
	reseal_superblock(&img, 0);
	snprintf(needle, sizeof(needle),
		 "held root %" PRIu64 " is past the end", img.nr_blocks);
	{
		struct log_capture log;

		CU_ASSERT_EQUAL(
		    open_and_walk(&img, &log, DMREPL_METADATA_USE_HELD_ROOT),
		    -EBADMSG);
		CU_ASSERT(log_has(&log, needle));
	}
	image_free(&img);
}

static CU_TestInfo reader_tests[] = {
    {"crc32c", test_crc32c},
    {"crc32c: both paths, known values", test_crc32c_paths},
    {"crc32c: both paths, random data", test_crc32c_random},
    {"read-ahead: DMREPL_READAHEAD", test_readahead_parse},
    {"read-ahead: pool, merging, fallback", test_readahead_engine},
    {"pool info", test_pool_info},
    {"foreach thin", test_foreach_thin},
    {"get thin", test_get_thin},
    {"open errors", test_open_errors},
    {"O_DIRECT", test_direct},
    {"three-level walk", test_deep_walk},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo corruption_tests[] = {
    {"pristine image", test_pristine},
    {"superblock magic", test_sb_magic},
    {"superblock version", test_sb_version},
    {"superblock checksum", test_sb_checksum},
    {"superblock block number", test_sb_blocknr},
    {"superblock metadata block size", test_sb_block_size},
    {"superblock geometry", test_sb_geometry},
    {"node checksum", test_node_checksum},
    {"node block number", test_node_blocknr},
    {"nr_entries > max_entries", test_node_nr_entries},
    {"max_entries too large", test_node_max_entries},
    {"unsorted keys", test_node_unsorted},
    {"key outside the parent's range", test_node_key_range},
    {"bad flags", test_node_flags},
    {"wrong value size", test_node_value_size},
    {"cycle to the root", test_cycle},
    {"node is its own child", test_self_cycle},
    {"depth limit", test_depth_limit},
    {"block past the end", test_past_end},
    {"data block past the end", test_data_block_past_end},
    {"device-details tree", test_details_fault},
    {"top-level mapping tree", test_top_level_fault},
    {"truncated file", test_truncated},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo held_root_tests[] = {
    {"no held root", test_held_root_missing},
    {"held root", test_held_root},
    {"corrupt held root", test_held_root_corrupt},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"metadata reader", NULL, NULL, NULL, NULL, reader_tests},
    {"corruption", suite_init, suite_clean, NULL, NULL, corruption_tests},
    {"held root", suite_init, suite_clean, NULL, NULL, held_root_tests},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
	static const char *const needed[] = {"edge", "small", "deep"};

	int r = require_fixtures(needed, ARRAY_SIZE(needed));

	return r ? r : unit_run(suites);
}
