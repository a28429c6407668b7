/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * dmrepl_verify on files: equal files, flipped bytes in the middle and
 * at the very end, merged ranges, the cap on kept ranges, sizes that
 * differ, errors naming the path, cancellation, ranges past the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "libdmrepl.h"
#include "unit.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)
/* Not a multiple of the chunk size: the last chunk is short. */
#define FILE_BYTES (5 * MiB + 100)

static struct dmrepl_ctx *ctx;
static char dir[256];
static char path_a[300], path_b[300];
static uint8_t *data;
static char logged[4096];

__attribute__((format(printf, 6, 0)))
static void capture_log(struct dmrepl_ctx *c, int priority, const char *file,
			int line, const char *fn, const char *format, va_list args,
			void *userdata)
{
	size_t len = strlen(logged);

	if (len + 2 >= sizeof(logged))
		return;
	vsnprintf(logged + len, sizeof(logged) - len - 1, format, args);
	strcat(logged, "\n");
}

static void fill(uint8_t *buf, size_t size, uint32_t seed)
{
	for (size_t i = 0; i < size; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
}

static void write_file(const char *path, const uint8_t *buf, size_t size)
{
	FILE *f = fopen(path, "we");

	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	CU_ASSERT_EQUAL(fwrite(buf, 1, size, f), size);
	CU_ASSERT_EQUAL(fclose(f), 0);
}

/* Both files hold @data; then B gets each listed byte inverted. */
static void make_pair(size_t size, const uint64_t *flips, size_t nr_flips)
{
	uint8_t *b = malloc(size);

	CU_ASSERT_PTR_NOT_NULL_FATAL(b);
	memcpy(b, data, size);
	for (size_t i = 0; i < nr_flips; i++)
		b[flips[i]] ^= 0xff;
	write_file(path_a, data, size);
	write_file(path_b, b, size);
	free(b);
}

static struct dmrepl_verify *new_verify(void)
{
	struct dmrepl_verify *v = NULL;

	CU_ASSERT_EQUAL_FATAL(dmrepl_verify_new(ctx, path_a, path_b, &v), 0);
	return v;
}

static void expect_mismatch(struct dmrepl_verify *v, unsigned int i, uint64_t offset,
			    uint64_t length)
{
	uint64_t o = 0, l = 0;

	CU_ASSERT_EQUAL(dmrepl_verify_get_mismatch(v, i, &o, &l), 0);
	CU_ASSERT_EQUAL(o, offset);
	CU_ASSERT_EQUAL(l, length);
	if (o != offset || l != length)
		fprintf(stderr, "\n  mismatch %u: got %llu+%llu, want %llu+%llu", i,
			(unsigned long long)o, (unsigned long long)l,
			(unsigned long long)offset, (unsigned long long)length);
}

static void canonical(const void *buf, size_t size, uint8_t out[16])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits(buf, size));
	memcpy(out, c.digest, 16);
}

static void test_equal(void)
{
	struct dmrepl_verify_result res;
	struct dmrepl_verify *v;
	uint8_t want[16];

	make_pair(FILE_BYTES, NULL, 0);
	v = new_verify();
	CU_ASSERT_EQUAL(dmrepl_verify_get_size(v, 0), 0);	/* not open yet */
	CU_ASSERT_EQUAL(dmrepl_verify_open(v), 0);
	CU_ASSERT_EQUAL(dmrepl_verify_get_size(v, 0), FILE_BYTES);
	CU_ASSERT_EQUAL(dmrepl_verify_get_size(v, 1), FILE_BYTES);
	CU_ASSERT_EQUAL(dmrepl_verify_get_size(v, 2), 0);
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 0, FILE_BYTES), 0);
	CU_ASSERT_EQUAL(dmrepl_verify_get_result(v, &res), 0);
	CU_ASSERT_EQUAL(res.compared_bytes, FILE_BYTES);
	CU_ASSERT_EQUAL(res.mismatched_bytes, 0);
	CU_ASSERT_EQUAL(res.nr_mismatches, 0);
	canonical(data, FILE_BYTES, want);
	CU_ASSERT(memcmp(res.digest[0], want, 16) == 0);
	CU_ASSERT(memcmp(res.digest[1], want, 16) == 0);
	CU_ASSERT_EQUAL(dmrepl_verify_get_mismatch(v, 0, NULL, NULL), -ENOENT);
	CU_ASSERT_PTR_NULL(dmrepl_verify_unref(v));
	CU_ASSERT_PTR_NULL(dmrepl_verify_unref(NULL));
}

static void test_flip_middle(void)
{
	uint64_t flip = 2 * MiB + MiB / 2;
	struct dmrepl_verify_result res;
	struct dmrepl_verify *v;

	make_pair(FILE_BYTES, &flip, 1);
	v = new_verify();
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 0, FILE_BYTES), 0);
	dmrepl_verify_get_result(v, &res);
	CU_ASSERT_EQUAL(res.compared_bytes, FILE_BYTES);
	CU_ASSERT_EQUAL(res.nr_mismatches, 1);
	CU_ASSERT_EQUAL(res.mismatched_bytes, MiB);
	expect_mismatch(v, 0, 2 * MiB, MiB);
	CU_ASSERT_EQUAL(dmrepl_verify_get_mismatch(v, 1, NULL, NULL), -ENOENT);
	CU_ASSERT(memcmp(res.digest[0], res.digest[1], 16) != 0);
	dmrepl_verify_unref(v);
}

static void test_flip_last_byte(void)
{
	uint64_t flip = FILE_BYTES - 1;
	struct dmrepl_verify_result res;
	struct dmrepl_verify *v;

	make_pair(FILE_BYTES, &flip, 1);
	v = new_verify();
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 0, FILE_BYTES), 0);
	dmrepl_verify_get_result(v, &res);
	CU_ASSERT_EQUAL(res.nr_mismatches, 1);
	CU_ASSERT_EQUAL(res.mismatched_bytes, 100);
	expect_mismatch(v, 0, 5 * MiB, 100);
	dmrepl_verify_unref(v);

	/* The first byte, with 4 KiB chunks. */
	flip = 0;
	make_pair(FILE_BYTES, &flip, 1);
	v = new_verify();
	CU_ASSERT_EQUAL(dmrepl_verify_set_chunk_size(v, 4096), 0);
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 0, FILE_BYTES), 0);
	dmrepl_verify_get_result(v, &res);
	CU_ASSERT_EQUAL(res.nr_mismatches, 1);
	expect_mismatch(v, 0, 0, 4096);
	dmrepl_verify_unref(v);
}

static void test_merged(void)
{
	uint64_t flips[] = { MiB + 200 * KiB, 2 * MiB + 700 * KiB, 4 * MiB + MiB / 2 };
	uint64_t across[] = { MiB + 200 * KiB, MiB + 700 * KiB };
	struct dmrepl_verify_result res;
	struct dmrepl_verify *v;

	/* Chunks 1 and 2 make one range; chunk 4 another. */
	make_pair(FILE_BYTES, flips, 3);
	v = new_verify();
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 0, FILE_BYTES), 0);
	dmrepl_verify_get_result(v, &res);
	CU_ASSERT_EQUAL(res.nr_mismatches, 2);
	CU_ASSERT_EQUAL(res.mismatched_bytes, 3 * MiB);
	expect_mismatch(v, 0, MiB, 2 * MiB);
	expect_mismatch(v, 1, 4 * MiB, MiB);
	dmrepl_verify_unref(v);

	/* A chunk split between two calls, different on both sides of the cut. */
	make_pair(FILE_BYTES, across, 2);
	v = new_verify();
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 0, MiB + MiB / 2), 0);
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, MiB + MiB / 2, FILE_BYTES - MiB - MiB / 2), 0);
	dmrepl_verify_get_result(v, &res);
	CU_ASSERT_EQUAL(res.compared_bytes, FILE_BYTES);
	CU_ASSERT_EQUAL(res.nr_mismatches, 1);
	expect_mismatch(v, 0, MiB, MiB);
	dmrepl_verify_unref(v);
}

/* Only the first 16 ranges are kept; the count and bytes include all. */
static void test_cap(void)
{
	uint64_t flips[22];
	struct dmrepl_verify_result res;
	struct dmrepl_verify *v;

	for (int i = 0; i < 20; i++)
		flips[i] = (uint64_t)i * 2 * 4096 + 7;
	flips[20] = 40 * 4096;		/* chunks 40 and 41: one range */
	flips[21] = 41 * 4096 + 4095;
	make_pair(256 * KiB, flips, 22);
	v = new_verify();
	CU_ASSERT_EQUAL(dmrepl_verify_set_chunk_size(v, 4096), 0);
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 0, 256 * KiB), 0);
	dmrepl_verify_get_result(v, &res);
	CU_ASSERT_EQUAL(res.nr_mismatches, 21);
	CU_ASSERT_EQUAL(res.mismatched_bytes, 22 * 4096);
	expect_mismatch(v, 0, 0, 4096);
	expect_mismatch(v, 15, 30 * 4096, 4096);
	CU_ASSERT_EQUAL(dmrepl_verify_get_mismatch(v, 16, NULL, NULL), -ENOENT);
	dmrepl_verify_unref(v);
}

static void test_sizes_differ(void)
{
	struct dmrepl_verify_result res;
	struct dmrepl_verify *v;

	write_file(path_a, data, MiB);
	write_file(path_b, data, 2 * MiB);
	v = new_verify();
	CU_ASSERT_EQUAL(dmrepl_verify_open(v), 0);
	CU_ASSERT_EQUAL(dmrepl_verify_get_size(v, 0), MiB);
	CU_ASSERT_EQUAL(dmrepl_verify_get_size(v, 1), 2 * MiB);
	/* Where both sides have data, they compare. */
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 0, MiB), 0);
	logged[0] = '\0';
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 0, 2 * MiB), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(logged, path_a));
	dmrepl_verify_get_result(v, &res);
	CU_ASSERT_EQUAL(res.compared_bytes, MiB);
	CU_ASSERT_EQUAL(res.nr_mismatches, 0);
	dmrepl_verify_unref(v);
}

static void test_past_end(void)
{
	struct dmrepl_verify *v;

	make_pair(MiB, NULL, 0);
	v = new_verify();
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, MiB, 0), 0);
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, MiB - 1, 1), 0);
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, MiB - 1, 2), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, MiB + 1, 0), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, UINT64_MAX - 10, 100), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 10, UINT64_MAX), -EINVAL);
	/* Not an I/O error: the handle still works. */
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 0, MiB), 0);
	dmrepl_verify_unref(v);
}

static void test_unaligned_range(void)
{
	uint64_t flips[] = { 500, 2000 };
	struct dmrepl_verify_result res;
	struct dmrepl_verify *v;
	uint8_t want[16];

	make_pair(MiB, &flips[0], 1);
	v = new_verify();
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 1000, 3000), 0);
	dmrepl_verify_get_result(v, &res);
	CU_ASSERT_EQUAL(res.compared_bytes, 3000);
	CU_ASSERT_EQUAL(res.nr_mismatches, 0);	/* byte 500 is outside */
	canonical(data + 1000, 3000, want);
	CU_ASSERT(memcmp(res.digest[0], want, 16) == 0);
	dmrepl_verify_unref(v);

	make_pair(MiB, flips, 2);
	v = new_verify();
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 1000, 3000), 0);
	dmrepl_verify_get_result(v, &res);
	CU_ASSERT_EQUAL(res.nr_mismatches, 1);
	expect_mismatch(v, 0, 1000, 3000);
	dmrepl_verify_unref(v);
}

static void test_open_errors(void)
{
	struct dmrepl_verify *v = NULL;
	char missing[320];

	snprintf(missing, sizeof(missing), "%s/no-such-file", dir);
	make_pair(MiB, NULL, 0);
	CU_ASSERT_EQUAL(dmrepl_verify_new(ctx, path_a, missing, &v), 0);
	logged[0] = '\0';
	CU_ASSERT_EQUAL(dmrepl_verify_open(v), -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(logged, missing));
	/* The first range opens, and fails the same way. */
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 0, 1), -ENOENT);
	dmrepl_verify_unref(v);

	/* A directory is neither a file nor a block device. */
	CU_ASSERT_EQUAL(dmrepl_verify_new(ctx, dir, path_a, &v), 0);
	logged[0] = '\0';
	CU_ASSERT_EQUAL(dmrepl_verify_open(v), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(logged, dir));
	dmrepl_verify_unref(v);

	CU_ASSERT_EQUAL(dmrepl_verify_new(ctx, NULL, path_a, &v), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_verify_new(NULL, path_a, path_a, &v), -EINVAL);
}

/* B shrinks after it was opened: the read fails, naming B and the offset. */
static void test_read_error(void)
{
	struct dmrepl_verify *v;
	char want[400];

	make_pair(FILE_BYTES, NULL, 0);
	v = new_verify();
	CU_ASSERT_EQUAL(dmrepl_verify_open(v), 0);
	CU_ASSERT_EQUAL(truncate(path_b, 3 * MiB), 0);
	logged[0] = '\0';
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 0, FILE_BYTES), -EIO);
	snprintf(want, sizeof(want), "%s: unexpected end at byte offset %llu", path_b,
		 3 * MiB);
	CU_ASSERT_PTR_NOT_NULL(strstr(logged, want));
	if (!strstr(logged, want))
		fprintf(stderr, "\n  logged: %s", logged);
	/* An I/O error is final. */
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 0, MiB), -EIO);
	dmrepl_verify_unref(v);
}

static void cancel_on_progress(uint64_t done, uint64_t total, void *userdata)
{
	dmrepl_verify_cancel(userdata);
}

static void test_cancel(void)
{
	struct dmrepl_verify_result res;
	struct dmrepl_verify *v;
	uint8_t *big = calloc(1, 32 * MiB);

	CU_ASSERT_PTR_NOT_NULL_FATAL(big);
	write_file(path_a, big, 32 * MiB);
	write_file(path_b, big, 32 * MiB);
	free(big);

	v = new_verify();
	dmrepl_verify_cancel(v);
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 0, MiB), -ECANCELED);
	dmrepl_verify_get_result(v, &res);
	CU_ASSERT_EQUAL(res.compared_bytes, 0);
	dmrepl_verify_unref(v);
	dmrepl_verify_cancel(NULL);

	/* Cancelled from the first progress call, after the first span. */
	v = new_verify();
	dmrepl_verify_set_progress_fn(v, cancel_on_progress, v);
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 0, 32 * MiB), -ECANCELED);
	dmrepl_verify_get_result(v, &res);
	CU_ASSERT(res.compared_bytes > 0 && res.compared_bytes < 32 * MiB);
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 0, MiB), -ECANCELED);
	dmrepl_verify_unref(v);
}

struct progress_log {
	unsigned int calls;
	uint64_t last_done, last_total;
	int backwards;
};

static void record_progress(uint64_t done, uint64_t total, void *userdata)
{
	struct progress_log *log = userdata;

	if (done < log->last_done)
		log->backwards++;
	log->calls++;
	log->last_done = done;
	log->last_total = total;
}

static void test_progress_and_chunk_size(void)
{
	struct progress_log log = { 0, 0, 0, 0 };
	struct dmrepl_verify *v;

	make_pair(FILE_BYTES, NULL, 0);
	v = new_verify();
	CU_ASSERT_EQUAL(dmrepl_verify_set_chunk_size(v, 100), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_verify_set_chunk_size(v, 128 * MiB), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_verify_set_chunk_size(v, 1000), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_verify_set_chunk_size(v, 0), 0);
	CU_ASSERT_EQUAL(dmrepl_verify_set_chunk_size(v, 512), 0);
	CU_ASSERT_EQUAL(dmrepl_verify_set_total(v, FILE_BYTES), 0);
	CU_ASSERT_EQUAL(dmrepl_verify_set_progress_fn(v, record_progress, &log), 0);
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 0, 3 * MiB), 0);
	CU_ASSERT_EQUAL(dmrepl_verify_range(v, 3 * MiB, FILE_BYTES - 3 * MiB), 0);
	CU_ASSERT(log.calls >= 1);
	CU_ASSERT_EQUAL(log.last_done, FILE_BYTES);
	CU_ASSERT_EQUAL(log.last_total, FILE_BYTES);
	CU_ASSERT_EQUAL(log.backwards, 0);
	CU_ASSERT_EQUAL(dmrepl_verify_set_chunk_size(v, 4096), -EBUSY);
	dmrepl_verify_unref(v);
}

static int suite_init(void)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, sizeof(dir), "%s/verify-unit.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		return -1;
	snprintf(path_a, sizeof(path_a), "%s/a", dir);
	snprintf(path_b, sizeof(path_b), "%s/b", dir);
	data = malloc(FILE_BYTES);
	if (!data || dmrepl_new(&ctx) < 0)
		return -1;
	fill(data, FILE_BYTES, 42);
	dmrepl_set_log_fn(ctx, capture_log, NULL);
	return 0;
}

static int suite_cleanup(void)
{
	unlink(path_a);
	unlink(path_b);
	rmdir(dir);
	free(data);
	dmrepl_unref(ctx);
	return 0;
}

int main(void)
{
	static CU_TestInfo tests[] = {
		{ "equal files", test_equal },
		{ "one flipped byte in the middle", test_flip_middle },
		{ "flipped last byte (short chunk) and first byte", test_flip_last_byte },
		{ "adjacent mismatching chunks merged", test_merged },
		{ "at most 16 ranges kept", test_cap },
		{ "sizes differ", test_sizes_differ },
		{ "ranges past the end", test_past_end },
		{ "unaligned range", test_unaligned_range },
		{ "open errors name the path", test_open_errors },
		{ "read error names the path and offset", test_read_error },
		{ "cancel", test_cancel },
		{ "progress and chunk size", test_progress_and_chunk_size },
		CU_TEST_INFO_NULL,
	};
	static CU_SuiteInfo suites[] = {
		{ "verify", suite_init, suite_cleanup, NULL, NULL, tests },
		CU_SUITE_INFO_NULL,
	};

	return unit_run(suites);
}
