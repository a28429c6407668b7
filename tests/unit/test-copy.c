/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The copy engine on regular files in a temporary directory, with each
 * of the three I/O engines: whole copies, extents lists, unaligned
 * extents, splitting, discards (holes), zero detection, errors, cancel,
 * stats, the bandwidth limit and the io_uring fallback. Also the
 * extents-line parser.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "libdmrepl-private.h"
#include "unit.h"

#define KiB 1024u
#define MiB (1024u * 1024u)

static char dir[] = "/tmp/dmrepl-test-copy.XXXXXX";
static char src_path[64], dst_path[64];
static char log_buf[4096];

static const enum dmrepl_engine engines[] = {
	DMREPL_ENGINE_URING, DMREPL_ENGINE_AIO, DMREPL_ENGINE_SYNC,
};
static bool engine_ok[4];

__attribute__((format(printf, 6, 0))) static void
capture_log(struct dmrepl_ctx *ctx, int priority, const char *file, int line,
	    const char *fn, const char *format, va_list args, void *userdata)
{
	size_t n = strlen(log_buf);

	if (priority > LOG_INFO || n + 2 >= sizeof(log_buf))
		return;
	vsnprintf(log_buf + n, sizeof(log_buf) - n - 1, format, args);
	strcat(log_buf, "\n");
}

static struct dmrepl_ctx *new_ctx(void)
{
	struct dmrepl_ctx *ctx = NULL;

	if (dmrepl_new(&ctx) < 0)
		return NULL;
	dmrepl_set_log_fn(ctx, capture_log, NULL);
	dmrepl_set_log_priority(ctx, LOG_INFO);
	log_buf[0] = '\0';
	return ctx;
}

/* Deterministic bytes that differ per seed and per position. */
static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (uint8_t)x;
	}
}

static int write_file(const char *path, const uint8_t *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, data, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

static uint8_t *read_file(const char *path, size_t len)
{
	uint8_t *buf = malloc(len ? len : 1);
	int fd = open(path, O_RDONLY);

	if (!buf || fd < 0 || pread(fd, buf, len, 0) != (ssize_t)len) {
		free(buf);
		buf = NULL;
	}
	if (fd >= 0)
		close(fd);
	return buf;
}

static uint8_t *random_file(const char *path, size_t len, uint32_t seed)
{
	uint8_t *buf = malloc(len);

	if (!buf)
		return NULL;
	fill(buf, len, seed);
	if (write_file(path, buf, len) < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

struct run {
	enum dmrepl_engine engine;
	unsigned int depth;
	uint32_t io_size;
	unsigned int flags;
	uint64_t bwlimit;
	struct dmrepl_copy_stats stats;
	char engine_name[8];
};

static int run_copy(struct run *run, const struct dmrepl_extent *x, size_t n)
{
	struct dmrepl_ctx *ctx = new_ctx();
	struct dmrepl_copy *copy = NULL;
	uint64_t total = 0;
	int r;

	r = dmrepl_copy_new(ctx, src_path, dst_path, &copy);
	if (r == 0)
		r = dmrepl_copy_set_engine(copy, run->engine);
	if (r == 0)
		r = dmrepl_copy_set_queue_depth(copy, run->depth);
	if (r == 0)
		r = dmrepl_copy_set_io_size(copy, run->io_size);
	if (r == 0)
		r = dmrepl_copy_set_flags(copy, run->flags);
	if (r == 0)
		r = dmrepl_copy_set_bwlimit(copy, run->bwlimit);
	for (size_t i = 0; i < n; i++)
		total += x[i].length_bytes;
	if (r == 0)
		r = dmrepl_copy_set_total(copy, total);
	for (size_t i = 0; i < n && r == 0; i++)
		r = dmrepl_copy_add(copy, &x[i]);
	if (r == 0)
		r = dmrepl_copy_finish(copy);
	if (copy) {
		const char *name = dmrepl_copy_get_engine_name(copy);

		snprintf(run->engine_name, sizeof(run->engine_name), "%s", name ? name : "");
		dmrepl_copy_get_stats(copy, &run->stats);
	}
	dmrepl_copy_unref(copy);
	dmrepl_unref(ctx);
	return r;
}

/* Apply @x to @img (the expected destination) as the copy should. */
static void apply(uint8_t *img, const uint8_t *src, const struct dmrepl_extent *x,
		  size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (x[i].op == DMREPL_EXTENT_COPY)
			memcpy(img + x[i].offset_bytes, src + x[i].offset_bytes,
			       x[i].length_bytes);
		else
			memset(img + x[i].offset_bytes, 0, x[i].length_bytes);
	}
}

static int suite_init(void)
{
	struct dmrepl_ctx *ctx;

	if (!mkdtemp(dir))
		return -1;
	snprintf(src_path, sizeof(src_path), "%s/src", dir);
	snprintf(dst_path, sizeof(dst_path), "%s/dst", dir);
	unsetenv("DMREPL_IO_URING_DISABLE");
	ctx = new_ctx();
	/* An engine is skipped only when the kernel refuses it. */
	for (size_t i = 0; i < ARRAY_SIZE(engines); i++) {
		struct dmrepl_copy *copy = NULL;
		uint8_t b[4096] = { 0 };
		int r;

		write_file(src_path, b, sizeof(b));
		write_file(dst_path, b, sizeof(b));
		dmrepl_copy_new(ctx, src_path, dst_path, &copy);
		dmrepl_copy_set_engine(copy, engines[i]);
		r = dmrepl_copy_open(copy);
		engine_ok[engines[i]] = r == 0;
		if (r == -ENOTSUP)
			printf("\n  SKIP engine %s: the kernel refuses it: %s",
			       dmrepl_engine_name(engines[i]), log_buf);
		else if (r < 0)
			return -1;
		dmrepl_copy_unref(copy);
	}
	dmrepl_unref(ctx);
	return 0;
}

static int suite_clean(void)
{
	char cmd[sizeof(dir) + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

#define FOR_EACH_ENGINE(e)                                              \
	for (size_t i_ = 0; i_ < ARRAY_SIZE(engines); i_++)             \
		if ((e = engines[i_]), engine_ok[e])

static void test_engine_names(void)
{
	enum dmrepl_engine e;

	for (int i = 0; i < 4; i++) {
		CU_ASSERT_EQUAL(dmrepl_engine_from_name(dmrepl_engine_name(i), &e), 0);
		CU_ASSERT_EQUAL((int)e, i);
	}
	CU_ASSERT_STRING_EQUAL(dmrepl_engine_name(DMREPL_ENGINE_URING), "uring");
	CU_ASSERT_PTR_NULL(dmrepl_engine_name((enum dmrepl_engine)7));
	CU_ASSERT_EQUAL(dmrepl_engine_from_name("io_uring", &e), -EINVAL);
}

static void test_full_copy(void)
{
	size_t len = 5 * MiB + 12345;	/* not a multiple of anything */
	enum dmrepl_engine e;

	FOR_EACH_ENGINE(e) {
		struct run run = { .engine = e, .depth = 8, .io_size = 256 * KiB };
		struct dmrepl_extent x = { DMREPL_EXTENT_COPY, 0, len };
		uint8_t *src = random_file(src_path, len, 1 + e);
		uint8_t *old = random_file(dst_path, len, 100 + e), *got;

		CU_ASSERT_EQUAL_FATAL(run_copy(&run, &x, 1), 0);
		CU_ASSERT_STRING_EQUAL(run.engine_name, dmrepl_engine_name(e));
		got = read_file(dst_path, len);
		CU_ASSERT_FATAL(got != NULL);
		CU_ASSERT(memcmp(got, src, len) == 0);
		CU_ASSERT_EQUAL(run.stats.copied_bytes, len);
		CU_ASSERT_EQUAL(run.stats.done_bytes, len);
		CU_ASSERT_EQUAL(run.stats.total_bytes, len);
		free(src), free(old), free(got);
	}
}

/* Copies and discards, aligned and not, overlapping page edges. */
static const struct dmrepl_extent mixed[] = {
	{ DMREPL_EXTENT_COPY, 0, 4096 },
	{ DMREPL_EXTENT_COPY, 5000, 3 },		/* inside one block */
	{ DMREPL_EXTENT_COPY, 8191, 2 },		/* across a block edge */
	{ DMREPL_EXTENT_DISCARD, 12288, 100 },
	{ DMREPL_EXTENT_COPY, 16384 + 100, 3 * 1048576 + 17 },	/* split, unaligned ends */
	{ DMREPL_EXTENT_DISCARD, 4 * 1048576 + 1000, 1048576 + 5000 },
	{ DMREPL_EXTENT_COPY, 6 * 1048576, 65536 },
	{ DMREPL_EXTENT_DISCARD, 6 * 1048576 + 65536, 3 * 65536 },
	{ DMREPL_EXTENT_COPY, 7 * 1048576 + 1, 1048576 - 1 },	/* to the end */
};

static void test_extents(void)
{
	size_t len = 8 * MiB, n = ARRAY_SIZE(mixed);
	enum dmrepl_engine e;

	FOR_EACH_ENGINE(e) {
		struct run run = { .engine = e, .depth = 4, .io_size = 64 * KiB };
		uint8_t *src = random_file(src_path, len, 7 + e);
		uint8_t *want = random_file(dst_path, len, 70 + e), *got;
		uint64_t sum = 0;

		CU_ASSERT_EQUAL_FATAL(run_copy(&run, mixed, n), 0);
		apply(want, src, mixed, n);
		got = read_file(dst_path, len);
		CU_ASSERT_FATAL(got != NULL);
		CU_ASSERT(memcmp(got, want, len) == 0);
		for (size_t i = 0; i < n; i++)
			sum += mixed[i].length_bytes;
		CU_ASSERT_EQUAL(run.stats.done_bytes, sum);
		CU_ASSERT_EQUAL(run.stats.copied_bytes + run.stats.discarded_bytes +
				run.stats.zeroed_bytes, sum);
		CU_ASSERT(run.stats.discarded_bytes > 0);
		CU_ASSERT(run.stats.zeroed_bytes > 0);	/* the unaligned edges */
		free(src), free(want), free(got);
	}
}

/* Many tiny, unaligned extents, also touching each other. */
static void test_unaligned(void)
{
	size_t len = 1 * MiB;
	struct dmrepl_extent x[200];
	enum dmrepl_engine e;
	uint64_t off = 1;

	for (size_t i = 0; i < ARRAY_SIZE(x); i++) {
		x[i].op = i % 3 == 2 ? DMREPL_EXTENT_DISCARD : DMREPL_EXTENT_COPY;
		x[i].offset_bytes = off;
		x[i].length_bytes = 1 + (i * 397) % 2500;
		off += x[i].length_bytes + (i % 4 == 0 ? 0 : (i * 131) % 700);
	}
	CU_ASSERT_FATAL(off < len);
	FOR_EACH_ENGINE(e) {
		struct run run = { .engine = e, .depth = 16, .io_size = 4096 };
		uint8_t *src = random_file(src_path, len, 11 + e);
		uint8_t *want = random_file(dst_path, len, 110 + e), *got;

		CU_ASSERT_EQUAL_FATAL(run_copy(&run, x, ARRAY_SIZE(x)), 0);
		apply(want, src, x, ARRAY_SIZE(x));
		got = read_file(dst_path, len);
		CU_ASSERT_FATAL(got != NULL);
		CU_ASSERT(memcmp(got, want, len) == 0);
		free(src), free(want), free(got);
	}
}

static off_t seek(const char *path, off_t off, int whence)
{
	int fd = open(path, O_RDONLY);
	off_t r = lseek(fd, off, whence);

	close(fd);
	return r;
}

static uint64_t allocated_bytes(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (uint64_t)st.st_blocks * 512 : UINT64_MAX;
}

/* A discard punches a hole over the whole blocks, zeroes the edges. */
static void test_discard_holes(void)
{
	size_t len = 8 * MiB;
	enum dmrepl_engine e;

	FOR_EACH_ENGINE(e) {
		struct run run = { .engine = e };
		struct dmrepl_extent x[] = {
			{ DMREPL_EXTENT_DISCARD, 1 * MiB, 2 * MiB },
			{ DMREPL_EXTENT_DISCARD, 5 * MiB + 100, 1 * MiB },
		};
		uint8_t *want = random_file(dst_path, len, 5 + e), *got;

		free(random_file(src_path, len, 6));
		CU_ASSERT_EQUAL_FATAL(run_copy(&run, x, 2), 0);
		apply(want, NULL, x, 2);
		got = read_file(dst_path, len);
		CU_ASSERT_FATAL(got != NULL);
		CU_ASSERT(memcmp(got, want, len) == 0);
		CU_ASSERT_EQUAL(seek(dst_path, 1 * MiB, SEEK_HOLE), (off_t)(1 * MiB));
		CU_ASSERT_EQUAL(seek(dst_path, 1 * MiB, SEEK_DATA), (off_t)(3 * MiB));
		CU_ASSERT_EQUAL(seek(dst_path, 5 * MiB, SEEK_HOLE), (off_t)(5 * MiB + 4096));
		CU_ASSERT_EQUAL(seek(dst_path, 5 * MiB + 4096, SEEK_DATA),
				(off_t)(6 * MiB));
		CU_ASSERT_EQUAL(run.stats.discarded_bytes, 3 * MiB - 4096);
		CU_ASSERT_EQUAL(run.stats.zeroed_bytes, 4096);
		CU_ASSERT(allocated_bytes(dst_path) <= len - 3 * MiB + 4096 + 64 * KiB);
		free(want), free(got);
	}
}

/* Blocks of zeroes become holes, also where the destination had data. */
static void test_detect_zeroes(void)
{
	size_t len = 8 * MiB;
	enum dmrepl_engine e;

	FOR_EACH_ENGINE(e) {
		struct run run = { .engine = e, .io_size = 64 * KiB,
				   .flags = DMREPL_COPY_DETECT_ZEROES };
		struct dmrepl_extent x = { DMREPL_EXTENT_COPY, 0, len };
		uint8_t *src = calloc(1, len), *got;

		fill(src + 1 * MiB, 64 * KiB, 3);
		fill(src + 5 * MiB + 4096, 100, 4);
		write_file(src_path, src, len);
		free(random_file(dst_path, len, 9));
		CU_ASSERT_EQUAL_FATAL(run_copy(&run, &x, 1), 0);
		got = read_file(dst_path, len);
		CU_ASSERT_FATAL(got != NULL);
		CU_ASSERT(memcmp(got, src, len) == 0);
		CU_ASSERT_EQUAL(run.stats.zero_detected_bytes, len - 128 * KiB);
		CU_ASSERT_EQUAL(run.stats.copied_bytes, 128 * KiB);
		CU_ASSERT(allocated_bytes(dst_path) <= 256 * KiB);
		free(src), free(got);

		/* DST_ZEROED: nothing is sent for the zeroes. */
		unlink(dst_path);
		CU_ASSERT_EQUAL(truncate(src_path, (off_t)len), 0);
		close(open(dst_path, O_WRONLY | O_CREAT, 0600));
		CU_ASSERT_EQUAL(truncate(dst_path, (off_t)len), 0);
		run.flags |= DMREPL_COPY_DST_ZEROED;
		CU_ASSERT_EQUAL(run_copy(&run, &x, 1), 0);
		CU_ASSERT_EQUAL(run.stats.zeroed_bytes, 0);
		CU_ASSERT_EQUAL(run.stats.discarded_bytes, len - 128 * KiB);
		CU_ASSERT(allocated_bytes(dst_path) <= 256 * KiB);
	}
}

static void test_errors(void)
{
	struct dmrepl_extent x = { DMREPL_EXTENT_COPY, 0, 1 * MiB };
	enum dmrepl_engine e;
	char saved[64];

	free(random_file(src_path, 2 * MiB, 1));
	free(random_file(dst_path, 1 * MiB, 2));
	FOR_EACH_ENGINE(e) {
		struct run run = { .engine = e };
		struct dmrepl_extent past = { DMREPL_EXTENT_COPY, 1 * MiB - 10, 20 };
		int r;

		/* An extent past the end of the destination. */
		CU_ASSERT_EQUAL(run_copy(&run, &past, 1), -EINVAL);
		CU_ASSERT_PTR_NOT_NULL(strstr(log_buf, dst_path));
		CU_ASSERT_PTR_NOT_NULL(strstr(log_buf, "past the end"));

		/* A destination that fails every write. */
		strcpy(saved, dst_path);
		strcpy(dst_path, "/dev/full");
		r = run_copy(&run, &x, 1);
		/* Native AIO refuses character devices at io_submit: EINVAL. */
		CU_ASSERT(r == -ENOSPC || (e == DMREPL_ENGINE_AIO && r == -EINVAL));
		/*
		 * Which of the writes in flight fails first is the kernel's
		 * choice (under load, not always the one at offset 0).
		 */
		CU_ASSERT_PTR_NOT_NULL(strstr(log_buf, "write /dev/full at offset "));
		strcpy(dst_path, saved);

		/* A source that is missing. */
		strcpy(saved, src_path);
		strcat(src_path, ".missing");
		CU_ASSERT_EQUAL(run_copy(&run, &x, 1), -ENOENT);
		CU_ASSERT_PTR_NOT_NULL(strstr(log_buf, src_path));
		strcpy(src_path, saved);
	}
	/* /dev/full: the first failing offset, exactly. */
	{
		struct run run = { .engine = DMREPL_ENGINE_SYNC };
		struct dmrepl_extent off = { DMREPL_EXTENT_COPY, 65536, 4096 };

		strcpy(saved, dst_path);
		strcpy(dst_path, "/dev/full");
		CU_ASSERT_EQUAL(run_copy(&run, &off, 1), -ENOSPC);
		CU_ASSERT_PTR_NOT_NULL(strstr(log_buf, "write /dev/full at offset 65536 "));
		strcpy(dst_path, saved);
	}
}

static void cancel_on_progress(const struct dmrepl_copy_stats *stats, void *userdata)
{
	dmrepl_copy_cancel(userdata);
}

static void test_cancel(void)
{
	struct dmrepl_extent x = { DMREPL_EXTENT_COPY, 0, 16 * MiB };
	enum dmrepl_engine e;

	free(random_file(src_path, 16 * MiB, 1));
	free(random_file(dst_path, 16 * MiB, 2));
	FOR_EACH_ENGINE(e) {
		struct dmrepl_ctx *ctx = new_ctx();
		struct dmrepl_copy *copy = NULL;
		struct dmrepl_copy_stats s;

		CU_ASSERT_EQUAL_FATAL(dmrepl_copy_new(ctx, src_path, dst_path, &copy), 0);
		dmrepl_copy_set_engine(copy, e);
		dmrepl_copy_set_io_size(copy, 64 * KiB);
		dmrepl_copy_set_progress_fn(copy, cancel_on_progress, copy);
		CU_ASSERT_EQUAL(dmrepl_copy_add(copy, &x), -ECANCELED);
		CU_ASSERT_EQUAL(dmrepl_copy_add(copy, &x), -ECANCELED);
		CU_ASSERT_EQUAL(dmrepl_copy_finish(copy), -ECANCELED);
		dmrepl_copy_get_stats(copy, &s);
		CU_ASSERT(s.done_bytes < 16 * MiB);
		dmrepl_copy_unref(copy);
		dmrepl_unref(ctx);
	}
}

static void test_setters(void)
{
	struct dmrepl_ctx *ctx = new_ctx();
	struct dmrepl_copy *copy = NULL;
	struct dmrepl_extent x = { DMREPL_EXTENT_COPY, 0, 4096 };

	free(random_file(src_path, 64 * KiB, 1));
	free(random_file(dst_path, 64 * KiB, 2));
	CU_ASSERT_EQUAL(dmrepl_copy_new(ctx, src_path, "", &copy), -EINVAL);
	CU_ASSERT_EQUAL_FATAL(dmrepl_copy_new(ctx, src_path, dst_path, &copy), 0);
	CU_ASSERT_PTR_NULL(dmrepl_copy_get_engine_name(copy));
	CU_ASSERT_EQUAL(dmrepl_copy_set_io_size(copy, 1000), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_copy_set_io_size(copy, 128 * MiB), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_copy_set_queue_depth(copy, 5000), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_copy_set_ioprio(copy, 4, 0), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_copy_set_ioprio(copy, 2, 8), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_copy_set_ioprio(copy, 3, 0), 0);
	CU_ASSERT_EQUAL(dmrepl_copy_set_flags(copy, 1u << 7), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_copy_set_engine(copy, (enum dmrepl_engine)9), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_copy_set_engine(copy, DMREPL_ENGINE_SYNC), 0);
	CU_ASSERT_EQUAL(dmrepl_copy_open(copy), 0);
	CU_ASSERT_STRING_EQUAL(dmrepl_copy_get_engine_name(copy), "sync");
	CU_ASSERT_EQUAL(dmrepl_copy_get_src_size(copy), 64 * KiB);
	CU_ASSERT_EQUAL(dmrepl_copy_set_queue_depth(copy, 4), -EBUSY);
	CU_ASSERT_EQUAL(dmrepl_copy_set_bwlimit(copy, 1 * MiB), 0);
	CU_ASSERT_EQUAL(dmrepl_copy_add(copy, &x), 0);
	CU_ASSERT_EQUAL(dmrepl_copy_set_flags(copy, 0), -EBUSY);
	CU_ASSERT_EQUAL(dmrepl_copy_set_total(copy, 10), 0);
	CU_ASSERT_EQUAL(dmrepl_copy_finish(copy), 0);
	CU_ASSERT_EQUAL(dmrepl_copy_add(copy, &x), -EINVAL);	/* after finish */
	dmrepl_copy_unref(copy);

	/* Source and destination the same file. */
	CU_ASSERT_EQUAL_FATAL(dmrepl_copy_new(ctx, src_path, src_path, &copy), 0);
	CU_ASSERT_EQUAL(dmrepl_copy_open(copy), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(log_buf, "the same"));
	dmrepl_copy_unref(copy);
	dmrepl_unref(ctx);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 3 MiB at 1 MiB/s take nearly 3 s; no upper bound (loaded machines). */
static void test_bwlimit(void)
{
	struct run run = { .io_size = 64 * KiB, .bwlimit = 1 * MiB };
	struct dmrepl_extent x = { DMREPL_EXTENT_COPY, 0, 3 * MiB };
	double t0;

	free(random_file(src_path, 3 * MiB, 1));
	free(random_file(dst_path, 3 * MiB, 2));
	t0 = now();
	CU_ASSERT_EQUAL(run_copy(&run, &x, 1), 0);
	CU_ASSERT(now() - t0 >= 2.5);
	CU_ASSERT_EQUAL(run.stats.copied_bytes, 3 * MiB);

	run.bwlimit = 0;
	t0 = now();
	CU_ASSERT_EQUAL(run_copy(&run, &x, 1), 0);
	CU_ASSERT(now() - t0 < 2.5);
}

/* A copy known to be small gets the smallest buffers that hold it. */
static void test_fit_io_size(void)
{
	struct dmrepl_extent x = { DMREPL_EXTENT_COPY, 0, 3 * MiB };
	struct run run = { .depth = 4, .io_size = 4 * MiB };
	uint8_t *src, *got;

	src = random_file(src_path, 3 * MiB, 1);
	free(random_file(dst_path, 3 * MiB, 2));
	CU_ASSERT_EQUAL(run_copy(&run, &x, 1), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(log_buf, "queue depth 4, 1 MiB I/Os"));
	got = read_file(dst_path, 3 * MiB);
	CU_ASSERT(src && got && memcmp(got, src, 3 * MiB) == 0);
	free(got);
	free(src);
	run.io_size = 512 * KiB;	/* already small enough: kept */
	CU_ASSERT_EQUAL(run_copy(&run, &x, 1), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(log_buf, "queue depth 4, 512 KiB I/Os"));
}

static void test_uring_fallback(void)
{
	struct dmrepl_extent x = { DMREPL_EXTENT_COPY, 0, 1 * MiB };
	struct run run = { .engine = DMREPL_ENGINE_AUTO };

	free(random_file(src_path, 1 * MiB, 1));
	free(random_file(dst_path, 1 * MiB, 2));
	CU_ASSERT_EQUAL(run_copy(&run, &x, 1), 0);
	if (engine_ok[DMREPL_ENGINE_URING])
		CU_ASSERT_STRING_EQUAL(run.engine_name, "uring");
	/* 1 MiB in all: 64 KiB buffers hold it, not 32 of 1 MiB. */
	CU_ASSERT_PTR_NOT_NULL(strstr(log_buf, "queue depth 32, 64 KiB I/Os"));

	setenv("DMREPL_IO_URING_DISABLE", "1", 1);
	CU_ASSERT_EQUAL(run_copy(&run, &x, 1), 0);
	CU_ASSERT_STRING_EQUAL(run.engine_name, engine_ok[DMREPL_ENGINE_AIO] ? "aio" : "sync");
	CU_ASSERT_PTR_NOT_NULL(strstr(log_buf, "io_uring disabled by DMREPL_IO_URING_DISABLE=1"));
	run.engine = DMREPL_ENGINE_URING;
	CU_ASSERT_EQUAL(run_copy(&run, &x, 1), -ENOTSUP);
	CU_ASSERT_PTR_NOT_NULL(strstr(log_buf, "engine uring is not available"));
	unsetenv("DMREPL_IO_URING_DISABLE");
}

/* An I/O priority: idle for sync (the thread's), best effort for uring. */
static void test_ioprio(void)
{
	struct dmrepl_extent x = { DMREPL_EXTENT_COPY, 0, 1 * MiB };
	enum dmrepl_engine e;

	free(random_file(src_path, 1 * MiB, 1));
	free(random_file(dst_path, 1 * MiB, 2));
	FOR_EACH_ENGINE(e) {
		struct dmrepl_ctx *ctx = new_ctx();
		struct dmrepl_copy *copy = NULL;

		CU_ASSERT_EQUAL_FATAL(dmrepl_copy_new(ctx, src_path, dst_path, &copy), 0);
		dmrepl_copy_set_engine(copy, e);
		CU_ASSERT_EQUAL(dmrepl_copy_set_ioprio(copy, e == DMREPL_ENGINE_URING ? 2 : 3, 7), 0);
		CU_ASSERT_EQUAL(dmrepl_copy_add(copy, &x), 0);
		CU_ASSERT_EQUAL(dmrepl_copy_finish(copy), 0);
		dmrepl_copy_unref(copy);
		dmrepl_unref(ctx);
	}
}

static void test_parse_line(void)
{
	static const struct {
		const char *line;
		int r;
		enum dmrepl_extent_op op;
		uint64_t off, len;
		const char *reason;
	} cases[] = {
		{ "0 4096 copy\n", 0, DMREPL_EXTENT_COPY, 0, 4096, NULL },
		{ "65536 131072 discard", 0, DMREPL_EXTENT_DISCARD, 65536, 131072, NULL },
		{ " \t7  9\tcopy \r\n", 0, DMREPL_EXTENT_COPY, 7, 9, NULL },
		{ "18446744073709551614 1 copy", 0, DMREPL_EXTENT_COPY,
		  18446744073709551614ull, 1, NULL },
		{ "\n", 1, 0, 0, 0, NULL },
		{ "   ", 1, 0, 0, 0, NULL },
		{ "x 1 copy", -EINVAL, 0, 0, 0, "expected OFFSET_BYTES" },
		{ "1 copy", -EINVAL, 0, 0, 0, "expected a length" },
		{ "1 2", -EINVAL, 0, 0, 0, "'copy' or 'discard'" },
		{ "1 2 copyx", -EINVAL, 0, 0, 0, "'copy' or 'discard'" },
		{ "1 2 copy extra", -EINVAL, 0, 0, 0, "unexpected text" },
		{ "1 0 copy", -EINVAL, 0, 0, 0, "length is 0" },
		{ "-1 2 copy", -EINVAL, 0, 0, 0, "expected OFFSET_BYTES" },
		{ "0x10 2 copy", -EINVAL, 0, 0, 0, "expected OFFSET_BYTES" },
		{ "18446744073709551616 1 copy", -EINVAL, 0, 0, 0, "too large" },
		{ "18446744073709551615 1 copy", -EINVAL, 0, 0, 0, "overflows" },
	};

	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct dmrepl_extent x = { 0, 0, 0 };
		const char *reason = NULL;
		int r = dmrepl_extent_parse_line(cases[i].line, strlen(cases[i].line),
						 &x, &reason);

		CU_ASSERT_EQUAL(r, cases[i].r);
		if (r == 0) {
			CU_ASSERT_EQUAL(x.op, cases[i].op);
			CU_ASSERT_EQUAL(x.offset_bytes, cases[i].off);
			CU_ASSERT_EQUAL(x.length_bytes, cases[i].len);
		}
		if (cases[i].reason) {
			CU_ASSERT_PTR_NOT_NULL_FATAL(reason);
			CU_ASSERT_PTR_NOT_NULL(strstr(reason, cases[i].reason));
		}
	}
	/* Only @len bytes are read. */
	{
		struct dmrepl_extent x;

		CU_ASSERT_EQUAL(dmrepl_extent_parse_line("12 34 copy garbage", 10, &x, NULL), 0);
		CU_ASSERT_EQUAL(x.length_bytes, 34);
	}
}

static CU_TestInfo copy_tests[] = {
	{ "engine names", test_engine_names },
	{ "extents line parser", test_parse_line },
	{ "full copy", test_full_copy },
	{ "extents list", test_extents },
	{ "unaligned extents", test_unaligned },
	{ "discards make holes", test_discard_holes },
	{ "detect zeroes", test_detect_zeroes },
	{ "errors name path and offset", test_errors },
	{ "cancel", test_cancel },
	{ "setters and state", test_setters },
	{ "bandwidth limit", test_bwlimit },
	{ "small copies get small buffers", test_fit_io_size },
	{ "io_uring fallback", test_uring_fallback },
	{ "I/O priority", test_ioprio },
	CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
	{ "copy", suite_init, suite_clean, NULL, NULL, copy_tests },
	CU_SUITE_INFO_NULL,
};

int main(void)
{
	return unit_run(suites);
}
