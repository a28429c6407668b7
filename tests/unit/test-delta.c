/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The snapshot delta: runs as thin_delta prints them, extents, and the
 * shared-subtree shortcut.
 *
 * The expected runs written out below are thin_delta 0.9.0's output for
 * the same fixtures (thin_delta --snap1 A --snap2 B X.bin). Every delta
 * is also checked against a reference that reads both devices in full
 * and classifies each block, and, where thin_delta is installed, against
 * thin_delta run on the (possibly patched) image.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "metadata-util.h"
#include "unit.h"

#define S DMREPL_RUN_SAME
#define D DMREPL_RUN_DIFFERENT
#define L DMREPL_RUN_LEFT_ONLY
#define R DMREPL_RUN_RIGHT_ONLY

static struct dmrepl_metadata *open_fixture(struct dmrepl_ctx **ret_ctx,
					    const char *name)
{
	struct dmrepl_metadata *md = NULL;

	CU_ASSERT_EQUAL(dmrepl_new(ret_ctx), 0);
	CU_ASSERT_EQUAL(
	    dmrepl_metadata_open(*ret_ctx, fixture_path(name), 0, &md), 0);
	return md;
}

static void close_fixture(struct dmrepl_ctx *ctx, struct dmrepl_metadata *md)
{
	dmrepl_metadata_unref(md);
	dmrepl_unref(ctx);
}

static void expect_runs(const char *fixture, uint64_t a, uint64_t b,
			const struct dmrepl_run *want, size_t n)
{
	struct dmrepl_ctx *ctx = NULL;
	struct dmrepl_metadata *md = open_fixture(&ctx, fixture);
	struct run_list got = {0}, expected = {0};

	for (size_t i = 0; i < n; i++)
		run_list_add(&expected, want[i].kind, want[i].begin_blocks,
			     want[i].length_blocks);
	CU_ASSERT_EQUAL(delta_collect(md, a, b, 0, &got), 0);
	CU_ASSERT(run_list_equal(&got, &expected));
	if (!run_list_equal(&got, &expected)) {
		fprintf(stderr, "\n  %s %" PRIu64 " -> %" PRIu64, fixture, a,
			b);
		run_list_print("got", &got);
		run_list_print("expected", &expected);
	}
	run_list_free(&got);
	run_list_free(&expected);
	close_fixture(ctx, md);
}

static void test_small(void)
{
	static const struct dmrepl_run r12[] = {
	    {S, 0, 2},	{D, 2, 1},  {L, 3, 1},	{S, 4, 1},  {R, 5, 1},
	    {S, 10, 1}, {L, 12, 1}, {D, 13, 2}, {R, 15, 1}, {R, 20, 1},
	};
	static const struct dmrepl_run r21[] = {
	    {S, 0, 2},	{D, 2, 1},  {R, 3, 1},	{S, 4, 1},  {L, 5, 1},
	    {S, 10, 1}, {R, 12, 1}, {D, 13, 2}, {L, 15, 1}, {L, 20, 1},
	};
	static const struct dmrepl_run r13[] = {
	    {S, 0, 3}, {D, 3, 1}, {S, 4, 1}, {L, 10, 1}, {S, 12, 3},
	};

	expect_runs("small", 1, 2, r12, ARRAY_SIZE(r12));
	expect_runs("small", 2, 1, r21, ARRAY_SIZE(r21));
	expect_runs("small", 1, 3, r13, ARRAY_SIZE(r13));
}

static void test_edge(void)
{
	static const struct dmrepl_run one[] = {{R, 0, 1}};
	static const struct dmrepl_run gone[] = {{L, 0, 1}};
	static const struct dmrepl_run diff[] = {{D, 0, 1}};
	static const struct dmrepl_run far[] = {
	    {S, 0, 1},
	    {R, 1099511627775, 1},
	};
	static const struct dmrepl_run last[] = {
	    {L, 0, 1},
	    {L, 1099511627775, 1},
	    {R, UINT64_MAX, 1},
	};
	static const struct dmrepl_run big_id[] = {{R, 1, 1}};

	expect_runs("edge", 1, 2, NULL, 0); /* both empty */
	expect_runs("edge", 1, 1, NULL, 0);
	expect_runs("edge", 1, 3, one, 1);
	expect_runs("edge", 3, 1, gone, 1);
	expect_runs("edge", 3, 4, diff, 1);
	expect_runs("edge", 3, 5, far, 2);
	expect_runs("edge", 5, 6, last, 3);
	expect_runs("edge", 2, 16777215, big_id, 1);
}

static void test_leaves(void)
{
	static const struct dmrepl_run r12[] = {
	    {S, 0, 240},     {D, 240, 1030},  {S, 1270, 1730},
	    {L, 3000, 1500}, {S, 4500, 5500}, {R, 10000, 2000},
	};
	static const struct dmrepl_run r23[] = {
	    {L, 0, 2000},    {S, 2000, 1000}, {R, 3000, 1500},
	    {S, 4500, 3500}, {L, 8000, 4000},
	};

	expect_runs("leaves", 1, 2, r12, ARRAY_SIZE(r12));
	expect_runs("leaves", 2, 3, r23, ARRAY_SIZE(r23));
}

static void test_deep(void)
{
	static const struct dmrepl_run r12[] = {
	    {S, 0, 1000},     {D, 1000, 10},	 {S, 1010, 49990},
	    {D, 51000, 2000}, {S, 53000, 46999}, {D, 99999, 1},
	};
	static const struct dmrepl_run r31[] = {
	    {S, 0, 40000},
	    {R, 40000, 60000},
	    {L, 400000, 100},
	};

	expect_runs("deep", 1, 2, r12, ARRAY_SIZE(r12));
	expect_runs("deep", 3, 1, r31, ARRAY_SIZE(r31));
}

static void collect_extents(struct dmrepl_metadata *md, uint64_t a, uint64_t b,
			    struct dmrepl_extent *out, size_t max,
			    size_t *ret_n)
{
	struct dmrepl_delta *delta = NULL;
	struct dmrepl_extent e;
	size_t n = 0;
	int r;

	CU_ASSERT_EQUAL_FATAL(dmrepl_delta_new(md, a, b, 0, &delta), 0);
	while ((r = dmrepl_delta_next_extent(delta, &e)) == 0)
		if (n < max)
			out[n++] = e;
	CU_ASSERT_EQUAL(r, 1);
	CU_ASSERT_EQUAL(dmrepl_delta_next_extent(delta, &e),
			1); /* stays ended */
	dmrepl_delta_unref(delta);
	*ret_n = n;
}

static void test_extents(void)
{
	/* small 1 -> 2, 64 KiB blocks: different 13+2 and right_only 15 merge
	 */
	static const struct dmrepl_extent want[] = {
	    {DMREPL_EXTENT_COPY, 2 * 65536, 65536},
	    {DMREPL_EXTENT_DISCARD, 3 * 65536, 65536},
	    {DMREPL_EXTENT_COPY, 5 * 65536, 65536},
	    {DMREPL_EXTENT_DISCARD, 12 * 65536, 65536},
	    {DMREPL_EXTENT_COPY, 13 * 65536, 3 * 65536},
	    {DMREPL_EXTENT_COPY, 20 * 65536, 65536},
	};
	struct dmrepl_ctx *ctx = NULL;
	struct dmrepl_metadata *md = open_fixture(&ctx, "small");
	struct dmrepl_extent got[16];
	size_t n;

	collect_extents(md, 1, 2, got, 16, &n);
	CU_ASSERT_EQUAL_FATAL(n, ARRAY_SIZE(want));
	for (size_t i = 0; i < n; i++) {
		CU_ASSERT_EQUAL(got[i].op, want[i].op);
		CU_ASSERT_EQUAL(got[i].offset_bytes, want[i].offset_bytes);
		CU_ASSERT_EQUAL(got[i].length_bytes, want[i].length_bytes);
	}
	collect_extents(md, 1, 1, got, 16, &n);
	CU_ASSERT_EQUAL(n, 0);
	close_fixture(ctx, md);
}

/* leaves.xml has 256-sector (128 KiB) data blocks. */
static void test_extents_leaves(void)
{
	struct dmrepl_ctx *ctx = NULL;
	struct dmrepl_metadata *md = open_fixture(&ctx, "leaves");
	struct dmrepl_extent got[16];
	const uint64_t bs = 256 * 512;
	size_t n;

	/* different 240+1030 | left_only 3000+1500 | right_only 10000+2000 */
	collect_extents(md, 1, 2, got, 16, &n);
	CU_ASSERT_EQUAL_FATAL(n, 3);
	CU_ASSERT(got[0].op == DMREPL_EXTENT_COPY &&
		  got[0].offset_bytes == 240 * bs &&
		  got[0].length_bytes == 1030 * bs);
	CU_ASSERT(got[1].op == DMREPL_EXTENT_DISCARD &&
		  got[1].offset_bytes == 3000 * bs &&
		  got[1].length_bytes == 1500 * bs);
	CU_ASSERT(got[2].op == DMREPL_EXTENT_COPY &&
		  got[2].offset_bytes == 10000 * bs &&
		  got[2].length_bytes == 2000 * bs);
	close_fixture(ctx, md);
}

static void test_extent_overflow(void)
{
	struct log_capture log;
	struct dmrepl_ctx *ctx = capture_ctx(&log);
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_delta *delta = NULL;
	struct dmrepl_extent e;
	int r;

	CU_ASSERT_EQUAL_FATAL(
	    dmrepl_metadata_open(ctx, fixture_path("edge"), 0, &md), 0);
	CU_ASSERT_EQUAL_FATAL(dmrepl_delta_new(md, 1, 6, 0, &delta), 0);
	while ((r = dmrepl_delta_next_extent(delta, &e)) == 0)
		;
	CU_ASSERT_EQUAL(r, -EOVERFLOW);
	CU_ASSERT(
	    log_has(&log, "virtual blocks 18446744073709551615+1 lie beyond"));
	dmrepl_delta_unref(delta);
	close_fixture(ctx, md);
}

static void test_skip_same(void)
{
	static const struct dmrepl_run want[] = {
	    {D, 240, 1030},
	    {L, 3000, 1500},
	    {R, 10000, 2000},
	};
	struct dmrepl_ctx *ctx = NULL;
	struct dmrepl_metadata *md = open_fixture(&ctx, "leaves");
	struct run_list got = {0};

	CU_ASSERT_EQUAL(delta_collect(md, 1, 2, DMREPL_DELTA_SKIP_SAME, &got),
			0);
	CU_ASSERT_EQUAL_FATAL(got.n, ARRAY_SIZE(want));
	for (size_t i = 0; i < got.n; i++) {
		CU_ASSERT_EQUAL(got.runs[i].kind, want[i].kind);
		CU_ASSERT_EQUAL(got.runs[i].begin_blocks, want[i].begin_blocks);
		CU_ASSERT_EQUAL(got.runs[i].length_blocks,
				want[i].length_blocks);
	}
	run_list_free(&got);
	close_fixture(ctx, md);
}

static void test_api(void)
{
	struct log_capture log;
	struct dmrepl_ctx *ctx = capture_ctx(&log);
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_delta *delta = (void *)0x1;
	struct dmrepl_extent e;
	struct dmrepl_run run = {.begin_blocks = 77};

	CU_ASSERT_EQUAL_FATAL(
	    dmrepl_metadata_open(ctx, fixture_path("small"), 0, &md), 0);
	CU_ASSERT_EQUAL(dmrepl_delta_new(md, 1, 9, 0, &delta), -ENOENT);
	CU_ASSERT(log_has(&log, "thin device 9 is not in the metadata"));
	CU_ASSERT_EQUAL(dmrepl_delta_new(md, 8, 1, 0, &delta), -ENOENT);
	CU_ASSERT_PTR_EQUAL(delta, (void *)0x1);
	CU_ASSERT_EQUAL(dmrepl_delta_new(NULL, 1, 2, 0, &delta), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_delta_new(md, 1, 2, 0, NULL), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_delta_new(md, 1, 2, 1u << 5, &delta),
			-EINVAL);

	CU_ASSERT_EQUAL_FATAL(dmrepl_delta_new(md, 1, 2, 0, &delta), 0);
	/* the delta keeps its own reference on the metadata */
	md = dmrepl_metadata_unref(md);
	CU_ASSERT_EQUAL(dmrepl_delta_next_run(delta, &run), 0);
	CU_ASSERT_EQUAL(run.kind, DMREPL_RUN_SAME);
	CU_ASSERT_EQUAL(dmrepl_delta_next_extent(delta, &e), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_delta_next_run(delta, NULL), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_delta_next_run(NULL, &run), -EINVAL);
	dmrepl_delta_unref(delta);
	CU_ASSERT_PTR_NULL(dmrepl_delta_unref(NULL));

	CU_ASSERT_STRING_EQUAL(dmrepl_run_kind_name(DMREPL_RUN_SAME), "same");
	CU_ASSERT_STRING_EQUAL(dmrepl_run_kind_name(DMREPL_RUN_DIFFERENT),
			       "different");
	CU_ASSERT_STRING_EQUAL(dmrepl_run_kind_name(DMREPL_RUN_LEFT_ONLY),
			       "left_only");
	CU_ASSERT_STRING_EQUAL(dmrepl_run_kind_name(DMREPL_RUN_RIGHT_ONLY),
			       "right_only");
	CU_ASSERT_PTR_NULL(dmrepl_run_kind_name((enum dmrepl_run_kind)4));
	dmrepl_unref(ctx);
}

/*
 * The delta of @a and @b in @md equals the per-block reference, with and
 * without same runs, and (if @path is given and thin_delta installed)
 * thin_delta's output.
 */
static void check_against_reference(struct dmrepl_metadata *md,
				    const char *path, uint64_t a, uint64_t b)
{
	struct run_list got = {0}, ref = {0}, td = {0};

	CU_ASSERT_EQUAL(delta_collect(md, a, b, 0, &got), 0);
	CU_ASSERT_EQUAL(reference_runs(md, a, b, true, &ref), 0);
	CU_ASSERT(run_list_equal(&got, &ref));
	if (path && thin_delta_runs(path, a, b, &td) != -ENOENT)
		CU_ASSERT(run_list_equal(&got, &td));
	if (!run_list_equal(&got, &ref) ||
	    (path && td.n && !run_list_equal(&got, &td))) {
		fprintf(stderr, "\n  %s %" PRIu64 " -> %" PRIu64, path, a, b);
		run_list_print("delta", &got);
		run_list_print("reference", &ref);
		run_list_print("thin_delta", &td);
	}
	run_list_free(&got);
	run_list_free(&ref);

	CU_ASSERT_EQUAL(delta_collect(md, a, b, DMREPL_DELTA_SKIP_SAME, &got),
			0);
	CU_ASSERT_EQUAL(reference_runs(md, a, b, false, &ref), 0);
	CU_ASSERT(run_list_equal(&got, &ref));
	run_list_free(&got);
	run_list_free(&ref);
	run_list_free(&td);
}

static void check_fixture_pairs(const char *name, const uint64_t *ids, size_t n)
{
	struct dmrepl_ctx *ctx = NULL;
	struct dmrepl_metadata *md = open_fixture(&ctx, name);

	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++)
			check_against_reference(md, NULL, ids[i], ids[j]);
	close_fixture(ctx, md);
}

static void test_reference_fixtures(void)
{
	static const uint64_t edge[] = {1, 2, 3, 4, 5, 6, 16777215};
	static const uint64_t three[] = {1, 2, 3};

	check_fixture_pairs("edge", edge, ARRAY_SIZE(edge));
	check_fixture_pairs("small", three, 3);
	check_fixture_pairs("leaves", three, 3);
	check_fixture_pairs("deep", three, 3);
}

static void test_reference_random(void)
{
	static const uint64_t ids[] = {1, 2, 3, 4};
	char name[32];

	for (int seed = 1; seed <= 3; seed++) {
		snprintf(name, sizeof(name), "random-%d", seed);
		CU_ASSERT_FATAL(fixture_exists(name));
		check_fixture_pairs(name, ids, ARRAY_SIZE(ids));
	}
}

/* ---- shared subtrees, made by patching deep.bin ---- */

/*
 * thin_restore never shares nodes between devices; the kernel does after
 * a snapshot. These tests make device 2 share nodes with device 1 (both
 * have the same keys, so the same tree shape) and check the walk: runs
 * equal to the reference and to thin_delta, and, for extents, that the
 * shared nodes are not read.
 */
struct shared_case {
	struct image img;
	char *path; /* the image, for thin_delta */
	struct dmrepl_ctx *ctx;
	struct dmrepl_metadata *md;
};

static void open_case(struct shared_case *sc)
{
	sc->path = image_write_temp(&sc->img, sc->img.size);
	CU_ASSERT_EQUAL(dmrepl_new(&sc->ctx), 0);
	CU_ASSERT_EQUAL(dmrepl_metadata_open_memory(sc->ctx, sc->img.data,
						    sc->img.size, "shared", 0,
						    &sc->md),
			0);
}

static void close_case(struct shared_case *sc)
{
	dmrepl_metadata_unref(sc->md);
	dmrepl_unref(sc->ctx);
	if (sc->path)
		unlink(sc->path);
	free(sc->path);
	image_free(&sc->img);
}

/* Blocks an extent walk reads (beyond the top-level lookups). */
static uint64_t extent_walk_reads(struct dmrepl_metadata *md, uint64_t a,
				  uint64_t b, size_t *ret_extents)
{
	struct dmrepl_delta *delta = NULL;
	struct dmrepl_extent e;
	uint64_t before;
	size_t n = 0;
	int r;

	CU_ASSERT_EQUAL_FATAL(dmrepl_delta_new(md, a, b, 0, &delta), 0);
	before = dmrepl_metadata_get_blocks_read(md);
	while ((r = dmrepl_delta_next_extent(delta, &e)) == 0)
		n++;
	CU_ASSERT_EQUAL(r, 1);
	dmrepl_delta_unref(delta);
	*ret_extents = n;
	return dmrepl_metadata_get_blocks_read(md) - before;
}

static void set_thin_root(struct image *img, uint64_t thin_id, uint64_t root)
{
	uint64_t top = get64(image_block(img, 0) + SB_MAPPING_ROOT_OFF);

	for (uint32_t i = 0; i < node_nr_entries(img, top); i++)
		if (node_key(img, top, i) == thin_id)
			put64(node_value(img, top, i), root);
	reseal_node(img, top);
}

static void test_shared_whole_tree(void)
{
	static const struct dmrepl_run all_same[] = {{S, 0, 100000}};
	struct shared_case sc = {0};
	size_t n;

	CU_ASSERT_EQUAL_FATAL(image_load("deep", &sc.img), 0);
	/* an unchanged snapshot: device 2's root is device 1's */
	set_thin_root(&sc.img, 2, image_thin_root(&sc.img, 1));
	open_case(&sc);
	check_against_reference(sc.md, sc.path, 1, 2);
	CU_ASSERT_EQUAL(extent_walk_reads(sc.md, 1, 2, &n), 0);
	CU_ASSERT_EQUAL(n, 0);
	{
		struct run_list got = {0};

		CU_ASSERT_EQUAL(delta_collect(sc.md, 2, 1, 0, &got), 0);
		CU_ASSERT_EQUAL_FATAL(got.n, 1);
		CU_ASSERT_EQUAL(got.runs[0].kind, all_same[0].kind);
		CU_ASSERT_EQUAL(got.runs[0].begin_blocks,
				all_same[0].begin_blocks);
		CU_ASSERT_EQUAL(got.runs[0].length_blocks,
				all_same[0].length_blocks);
		run_list_free(&got);
	}
	close_case(&sc);
}

static void test_shared_children(void)
{
	struct shared_case sc = {0};
	uint64_t r1, r2, full;
	uint32_t nr;
	size_t n, n_full;

	CU_ASSERT_EQUAL_FATAL(image_load("deep", &sc.img), 0);
	r1 = image_thin_root(&sc.img, 1);
	r2 = image_thin_root(&sc.img, 2);
	nr = node_nr_entries(&sc.img, r2);
	CU_ASSERT_FATAL(nr == node_nr_entries(&sc.img, r1) && nr >= 4);
	{
		struct dmrepl_ctx *ctx = NULL;
		struct dmrepl_metadata *md = NULL;

		dmrepl_new(&ctx);
		dmrepl_metadata_open_memory(ctx, sc.img.data, sc.img.size, "x",
					    0, &md);
		full = extent_walk_reads(md, 1, 2, &n_full);
		dmrepl_metadata_unref(md);
		dmrepl_unref(ctx);
	}
	/* device 2 takes device 1's subtrees for every other child of the root
	 */
	for (uint32_t i = 0; i < nr; i += 2)
		put64(node_value(&sc.img, r2, i),
		      get64(node_value(&sc.img, r1, i)));
	reseal_node(&sc.img, r2);
	open_case(&sc);
	check_against_reference(sc.md, sc.path, 1, 2);
	check_against_reference(sc.md, sc.path, 2, 1);
	check_against_reference(sc.md, sc.path, 3, 2);
	CU_ASSERT(extent_walk_reads(sc.md, 1, 2, &n) < full * 2 / 3);
	CU_ASSERT(n > 0 && n <= n_full);
	close_case(&sc);
}

/*
 * Device 2's tree grew a level (as after a root split): a new root above
 * device 1's whole tree. The walk must still find the sharing one level
 * down. thin_delta refuses this image (device 1's root, now an inner
 * node, holds fewer than max_entries / 3 entries), so only the
 * reference checks it.
 */
static void test_shared_taller(void)
{
	struct shared_case sc = {0};
	uint64_t key = 0, r1, top;
	size_t n;

	CU_ASSERT_EQUAL_FATAL(image_load("deep", &sc.img), 0);
	r1 = image_thin_root(&sc.img, 1);
	top = sc.img.nr_blocks - 1;
	CU_ASSERT_EQUAL_FATAL(get64(image_block(&sc.img, top) + 8), 0);
	write_internal_node(&sc.img, top, 1, &key, &r1);
	set_thin_root(&sc.img, 2, top);
	open_case(&sc);
	check_against_reference(sc.md, NULL, 1, 2);
	check_against_reference(sc.md, NULL, 2, 1);
	/* device 1's root, twice, and the new root */
	CU_ASSERT(extent_walk_reads(sc.md, 1, 2, &n) <= 3);
	CU_ASSERT_EQUAL(n, 0);
	CU_ASSERT(extent_walk_reads(sc.md, 2, 1, &n) <= 3);
	close_case(&sc);
}

/* A leaf shared between two otherwise different trees. */
static void test_shared_leaf(void)
{
	struct shared_case sc = {0};
	uint64_t mid1, mid2;

	CU_ASSERT_EQUAL_FATAL(image_load("deep", &sc.img), 0);
	mid1 = get64(node_value(&sc.img, image_thin_root(&sc.img, 1), 0));
	mid2 = get64(node_value(&sc.img, image_thin_root(&sc.img, 2), 0));
	/* the 8th leaf under the first internal node: it holds part of the
	 * run 1000..1009 that device 2 remapped */
	put64(node_value(&sc.img, mid2, 7),
	      get64(node_value(&sc.img, mid1, 7)));
	reseal_node(&sc.img, mid2);
	open_case(&sc);
	check_against_reference(sc.md, sc.path, 1, 2);
	check_against_reference(sc.md, sc.path, 2, 1);
	close_case(&sc);
}

/* ---- read-ahead: the same runs and block counts in every mode ---- */

static const char *const ra_modes[] = {"off", "sync", "uring", "sync:8",
				       "uring:8", "uring:4096"};

/* Open @path with DMREPL_READAHEAD=@mode. */
static struct dmrepl_metadata *open_mode(struct dmrepl_ctx *ctx,
					 const char *path, const char *mode,
					 unsigned int flags, int *ret_r)
{
	struct dmrepl_metadata *md = NULL;

	setenv("DMREPL_READAHEAD", mode, 1);
	*ret_r = dmrepl_metadata_open(ctx, path, flags, &md);
	unsetenv("DMREPL_READAHEAD");
	return md;
}

struct walk_result {
	struct run_list runs;
	uint64_t blocks_read;
	struct dmrepl_readahead_stats st;
	int have_stats;
};

/* Runs of @a -> @b, and the blocks the walk read (beyond the lookups). */
static int walk(struct dmrepl_metadata *md, uint64_t a, uint64_t b,
		unsigned int flags, struct walk_result *w)
{
	struct dmrepl_delta *delta = NULL;
	struct dmrepl_run run;
	uint64_t before;
	int r;

	r = dmrepl_delta_new(md, a, b, flags, &delta);
	before = dmrepl_metadata_get_blocks_read(md);
	while (r == 0 && (r = dmrepl_delta_next_run(delta, &run)) == 0)
		run_list_add(&w->runs, run.kind, run.begin_blocks,
			     run.length_blocks);
	dmrepl_delta_unref(delta);
	w->blocks_read = dmrepl_metadata_get_blocks_read(md) - before;
	w->have_stats = dmrepl_metadata_get_readahead_stats(md, &w->st) == 0;
	return r == 1 ? 0 : r;
}

/* @path's delta in every mode equals the delta read from memory. */
static void check_modes(const char *path, const struct image *img,
			uint64_t a, uint64_t b, unsigned int flags,
			bool expect_prefetch)
{
	struct dmrepl_ctx *ctx = NULL;
	struct dmrepl_metadata *md = NULL;
	struct walk_result ref = {0};
	int r;

	CU_ASSERT_EQUAL(dmrepl_new(&ctx), 0);
	CU_ASSERT_EQUAL(dmrepl_metadata_open_memory(ctx, img->data, img->size,
						    "memory", 0, &md),
			0);
	CU_ASSERT_EQUAL(walk(md, a, b, flags, &ref), 0);
	dmrepl_metadata_unref(md);
	for (size_t m = 0; m < ARRAY_SIZE(ra_modes); m++) {
		struct walk_result w = {0};

		md = open_mode(ctx, path, ra_modes[m], 0, &r);
		CU_ASSERT_EQUAL_FATAL(r, 0);
		CU_ASSERT_EQUAL(walk(md, a, b, flags, &w), 0);
		CU_ASSERT(run_list_equal(&w.runs, &ref.runs));
		/* read-ahead never changes what the walk reads */
		CU_ASSERT_EQUAL(w.blocks_read, ref.blocks_read);
		if (m == 0) {
			CU_ASSERT_FALSE(w.have_stats);
		} else {
			CU_ASSERT_TRUE(w.have_stats);
			/* in extents mode, nothing read ahead goes unused */
			if (flags & DMREPL_DELTA_SKIP_SAME)
				CU_ASSERT_EQUAL(w.st.blocks_unused, 0);
			if (expect_prefetch)
				CU_ASSERT(w.st.blocks_prefetched > 0 &&
					  w.st.hits > 0);
		}
		if (!run_list_equal(&w.runs, &ref.runs) ||
		    w.blocks_read != ref.blocks_read)
			fprintf(stderr, "\n  %s %" PRIu64 " -> %" PRIu64
				" mode %s: %" PRIu64 " blocks, memory %" PRIu64,
				path, a, b, ra_modes[m], w.blocks_read,
				ref.blocks_read);
		run_list_free(&w.runs);
		dmrepl_metadata_unref(md);
	}
	run_list_free(&ref.runs);
	dmrepl_unref(ctx);
}

static void test_readahead_fixtures(void)
{
	static const char *const names[] = {"deep", "leaves", "random-1",
					    "random-2", "random-3"};

	for (size_t f = 0; f < ARRAY_SIZE(names); f++) {
		struct image img;
		bool deep = strcmp(names[f], "deep") == 0;

		CU_ASSERT_EQUAL_FATAL(image_load(names[f], &img), 0);
		for (uint64_t a = 1; a <= 3; a++)
			for (uint64_t b = 1; b <= 3; b++) {
				check_modes(fixture_path(names[f]), &img, a, b,
					    0, deep && a != b);
				check_modes(fixture_path(names[f]), &img, a, b,
					    DMREPL_DELTA_SKIP_SAME, false);
			}
		image_free(&img);
	}
}

/* Shared subtrees, read from a file: none of them is read ahead. */
static void test_readahead_shared(void)
{
	struct image img;
	uint64_t r1, r2;
	char *path;

	CU_ASSERT_EQUAL_FATAL(image_load("deep", &img), 0);
	r1 = image_thin_root(&img, 1);
	r2 = image_thin_root(&img, 2);
	for (uint32_t i = 0; i < node_nr_entries(&img, r2); i += 2)
		put64(node_value(&img, r2, i), get64(node_value(&img, r1, i)));
	reseal_node(&img, r2);
	path = image_write_temp(&img, img.size);
	CU_ASSERT_PTR_NOT_NULL_FATAL(path);
	check_modes(path, &img, 1, 2, DMREPL_DELTA_SKIP_SAME, true);
	check_modes(path, &img, 1, 2, 0, true);
	check_modes(path, &img, 2, 1, 0, true);
	check_modes(path, &img, 3, 2, DMREPL_DELTA_SKIP_SAME, true);
	unlink(path);
	free(path);
	image_free(&img);
}

/* The last leaf of thin 1: read ahead long before the walk reaches it. */
static uint64_t last_leaf(struct image *img, uint64_t blocknr)
{
	while (!node_is_leaf(img, blocknr))
		blocknr = get64(
		    node_value(img, blocknr, node_nr_entries(img, blocknr) - 1));
	return blocknr;
}

/* A corrupt block read ahead is reported, by number, when it is used. */
static void test_readahead_corrupt(void)
{
	struct image img;
	uint64_t leaf;
	char *path, needle[64];

	CU_ASSERT_EQUAL_FATAL(image_load("deep", &img), 0);
	leaf = last_leaf(&img, image_thin_root(&img, 1));
	image_block(&img, leaf)[100] ^= 1;
	path = image_write_temp(&img, img.size);
	CU_ASSERT_PTR_NOT_NULL_FATAL(path);
	snprintf(needle, sizeof(needle), "block %" PRIu64 ": bad checksum",
		 leaf);
	for (size_t m = 0; m < ARRAY_SIZE(ra_modes); m++) {
		struct log_capture log;
		struct dmrepl_ctx *ctx = capture_ctx(&log);
		struct walk_result w = {0};
		struct dmrepl_metadata *md;
		int r;

		md = open_mode(ctx, path, ra_modes[m], 0, &r);
		CU_ASSERT_EQUAL_FATAL(r, 0);
		CU_ASSERT_EQUAL(walk(md, 1, 2, DMREPL_DELTA_SKIP_SAME, &w),
				-EBADMSG);
		CU_ASSERT(log_has(&log, needle));
		if (m > 0)
			CU_ASSERT(w.st.blocks_prefetched > 0);
		run_list_free(&w.runs);
		dmrepl_metadata_unref(md);
		dmrepl_unref(ctx);
	}
	unlink(path);
	free(path);
	image_free(&img);
}

/* Through O_DIRECT, as a live pool's metadata device is read. */
static void test_readahead_direct(void)
{
	struct run_list ref = {0};
	struct dmrepl_ctx *ctx = NULL;
	struct dmrepl_metadata *md;
	int r;

	CU_ASSERT_EQUAL(dmrepl_new(&ctx), 0);
	md = open_mode(ctx, fixture_path("deep"), "off", 0, &r);
	CU_ASSERT_EQUAL(delta_collect(md, 1, 2, 0, &ref), 0);
	dmrepl_metadata_unref(md);
	for (size_t m = 1; m < ARRAY_SIZE(ra_modes); m++) {
		struct walk_result w = {0};

		md = open_mode(ctx, fixture_path("deep"), ra_modes[m],
			       DMREPL_METADATA_DIRECT, &r);
		if (r == -EINVAL) {
			fprintf(stderr, "(no O_DIRECT here) ");
			break;
		}
		CU_ASSERT_EQUAL_FATAL(r, 0);
		CU_ASSERT_EQUAL(walk(md, 1, 2, 0, &w), 0);
		CU_ASSERT(run_list_equal(&w.runs, &ref));
		CU_ASSERT(w.st.blocks_prefetched > 0);
		run_list_free(&w.runs);
		dmrepl_metadata_unref(md);
	}
	run_list_free(&ref);
	dmrepl_unref(ctx);
}

/* Make io_uring_setup fail with ENOSYS, as seccomp may. */
static int deny_io_uring(void)
{
	struct sock_filter filter[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
		     offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {ARRAY_SIZE(filter), filter};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
}

/* In a child without io_uring: exit 0 when the fallback did its job. */
static int child_without_uring(void)
{
	struct dmrepl_ctx *ctx = NULL;
	struct dmrepl_metadata *md;
	struct walk_result w = {0}, off = {0};
	int r;

	if (deny_io_uring() < 0)
		return 77;
	if (dmrepl_new(&ctx) < 0)
		return 2;
	md = open_mode(ctx, fixture_path("deep"), "off", 0, &r);
	if (r < 0 || walk(md, 1, 2, 0, &off) < 0)
		return 3;
	dmrepl_metadata_unref(md);
	md = open_mode(ctx, fixture_path("deep"), "uring", 0, &r);
	if (r < 0 || walk(md, 1, 2, 0, &w) < 0)
		return 4;
	if (w.st.mode != DMREPL_READAHEAD_SYNC || !w.st.blocks_prefetched)
		return 5;
	if (!run_list_equal(&w.runs, &off.runs) ||
	    w.blocks_read != off.blocks_read)
		return 6;
	return 0;
}

static void test_readahead_no_uring(void)
{
	pid_t pid = fork();
	int status = 0;

	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0)
		_exit(child_without_uring());
	CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
	CU_ASSERT(WIFEXITED(status));
	if (WEXITSTATUS(status) == 77)
		fprintf(stderr, "(seccomp not available: not checked) ");
	else
		CU_ASSERT_EQUAL(WEXITSTATUS(status), 0);
}

static CU_TestInfo run_tests[] = {
    {"small: every kind", test_small},
    {"edge cases", test_edge},
    {"runs across leaves", test_leaves},
    {"three-level trees", test_deep},
    {"skip same", test_skip_same},
    {"extents", test_extents},
    {"extents in 128 KiB blocks", test_extents_leaves},
    {"extent past 2^64 bytes", test_extent_overflow},
    {"API misuse", test_api},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo reference_tests[] = {
    {"fixtures, every pair", test_reference_fixtures},
    {"random fixtures, every pair", test_reference_random},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo shared_tests[] = {
    {"whole tree shared", test_shared_whole_tree},
    {"root children shared", test_shared_children},
    {"shared below a taller root", test_shared_taller},
    {"one leaf shared", test_shared_leaf},
    CU_TEST_INFO_NULL,
};

static CU_TestInfo readahead_tests[] = {
    {"every mode: same runs, same blocks read", test_readahead_fixtures},
    {"shared subtrees are not read ahead", test_readahead_shared},
    {"corrupt block read ahead", test_readahead_corrupt},
    {"O_DIRECT", test_readahead_direct},
    {"io_uring denied: preadv fallback", test_readahead_no_uring},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"runs and extents", NULL, NULL, NULL, NULL, run_tests},
    {"reference", NULL, NULL, NULL, NULL, reference_tests},
    {"shared subtrees", NULL, NULL, NULL, NULL, shared_tests},
    {"read-ahead", NULL, NULL, NULL, NULL, readahead_tests},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
	static const char *const needed[] = {
	    "edge",	"small",    "leaves",	"deep",
	    "random-1", "random-2", "random-3",
	};

	int r = require_fixtures(needed, ARRAY_SIZE(needed));

	return r ? r : unit_run(suites);
}
