/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Verify: compare two files or block devices by hashing. Each side is
 * read in large sequential spans (O_DIRECT on block devices, so what is
 * compared is what the device holds, not the page cache), both sides at
 * once: side 1 on a helper thread while side 0 is read on the caller's.
 * Every chunk of a span is hashed with XXH3-128 on each side, and the
 * chunk hashes compared; a whole-side XXH3-128 digest is kept as well.
 * Memory: two span buffers, whatever the size of the devices.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "base.h"

#define DEFAULT_CHUNK_BYTES (UINT32_C(1) << 20)
#define MIN_CHUNK_BYTES 512u
#define MAX_CHUNK_BYTES (UINT32_C(64) << 20)
/* Bytes read from each side per step: large enough for full device speed. */
#define SPAN_BYTES (UINT64_C(8) << 20)
#define BUF_ALIGN 4096u
/* Below this, a second thread costs more than the read it overlaps. */
#define THREAD_MIN_BYTES (UINT64_C(1) << 20)
#define MAX_KEPT_MISMATCHES 16
#define PROGRESS_INTERVAL_NS 100000000ull

struct verify_side {
	char *path;
	int fd;
	uint64_t size_bytes;
	uint32_t align;		/* of read offsets and lengths: 1, or the logical block size */
	uint8_t *buf;
	XXH3_state_t *digest;
	XXH128_hash_t *hashes;	/* one per chunk of the current span */
	/* The span to read, and how it went: the helper thread does not log. */
	uint64_t span_offset, span_length, chunk_bytes;
	int error;
	uint64_t error_offset;
	bool error_eof;		/* the file ended early */
};

struct mismatch {
	uint64_t offset_bytes;
	uint64_t length_bytes;
};

struct dmrepl_verify {
	struct dmrepl_ctx *ctx;
	struct verify_side side[2];
	uint32_t chunk_bytes;
	uint64_t span_bytes;
	bool opened;
	int error;		/* the first I/O error: every later range returns it */
	atomic_int cancelled;
	uint64_t total_bytes;
	void (*progress_fn)(uint64_t done_bytes, uint64_t total_bytes, void *userdata);
	void *progress_data;
	uint64_t progress_ns;
	uint64_t compared_bytes;
	uint64_t mismatched_bytes;
	uint64_t nr_mismatches;
	uint64_t last_mismatch_end;
	struct mismatch kept[MAX_KEPT_MISMATCHES];
};

DMREPL_EXPORT int dmrepl_verify_new(struct dmrepl_ctx *ctx, const char *path1,
				    const char *path2,
				    struct dmrepl_verify **ret_verify)
{
	const char *paths[2] = { path1, path2 };
	struct dmrepl_verify *v;

	if (!ctx || !path1 || !path2 || !ret_verify)
		return -EINVAL;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->ctx = dmrepl_ref(ctx);
	v->chunk_bytes = DEFAULT_CHUNK_BYTES;
	atomic_init(&v->cancelled, 0);
	for (int i = 0; i < 2; i++) {
		struct verify_side *s = &v->side[i];

		s->fd = -1;
		s->path = strdup(paths[i]);
		s->digest = XXH3_createState();
		if (!s->path || !s->digest) {
			dmrepl_verify_unref(v);
			return -ENOMEM;
		}
		XXH3_128bits_reset(s->digest);
	}
	*ret_verify = v;
	return 0;
}

DMREPL_EXPORT struct dmrepl_verify *dmrepl_verify_unref(struct dmrepl_verify *verify)
{
	if (!verify)
		return NULL;
	for (int i = 0; i < 2; i++) {
		struct verify_side *s = &verify->side[i];

		if (s->fd >= 0)
			close(s->fd);
		free(s->path);
		free(s->buf);
		free(s->hashes);
		XXH3_freeState(s->digest);
	}
	dmrepl_unref(verify->ctx);
	free(verify);
	return NULL;
}

DMREPL_EXPORT int dmrepl_verify_set_chunk_size(struct dmrepl_verify *verify,
					       uint32_t bytes)
{
	if (!verify)
		return -EINVAL;
	if (verify->opened)
		return -EBUSY;
	if (bytes == 0)
		bytes = DEFAULT_CHUNK_BYTES;
	if (bytes < MIN_CHUNK_BYTES || bytes > MAX_CHUNK_BYTES ||
	    bytes % MIN_CHUNK_BYTES) {
		err(verify->ctx, "verify chunk size %" PRIu32 " bytes: use a multiple "
		    "of 512 from 512 bytes to 64 MiB", bytes);
		return -EINVAL;
	}
	verify->chunk_bytes = bytes;
	return 0;
}

DMREPL_EXPORT int dmrepl_verify_set_total(struct dmrepl_verify *verify,
					  uint64_t total_bytes)
{
	if (!verify)
		return -EINVAL;
	verify->total_bytes = total_bytes;
	return 0;
}

DMREPL_EXPORT int dmrepl_verify_set_progress_fn(struct dmrepl_verify *verify,
		void (*fn)(uint64_t done_bytes, uint64_t total_bytes, void *userdata),
		void *userdata)
{
	if (!verify)
		return -EINVAL;
	verify->progress_fn = fn;
	verify->progress_data = userdata;
	return 0;
}

/*
 * Block devices are read with O_DIRECT: set after open, so one open
 * serves both cases, and a device that refuses it is still read
 * (buffered). Regular files are read through the page cache.
 */
static int side_probe(struct dmrepl_verify *v, struct verify_side *s)
{
	struct stat st;
	int lbs, flags;

	if (fstat(s->fd, &st) < 0)
		return -errno;
	s->align = 1;
	if (S_ISREG(st.st_mode)) {
		s->size_bytes = (uint64_t)st.st_size;
		posix_fadvise(s->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
		return 0;
	}
	if (!S_ISBLK(st.st_mode)) {
		err(v->ctx, "%s: neither a regular file nor a block device", s->path);
		return -EINVAL;
	}
	if (ioctl(s->fd, BLKGETSIZE64, &s->size_bytes) < 0 ||
	    ioctl(s->fd, BLKSSZGET, &lbs) < 0)
		return -errno;
	flags = fcntl(s->fd, F_GETFL);
	if (flags >= 0 && fcntl(s->fd, F_SETFL, flags | O_DIRECT) == 0)
		s->align = lbs > 0 ? (uint32_t)lbs : 512;
	else
		info(v->ctx, "%s: no O_DIRECT, reading through the page cache", s->path);
	return 0;
}

static int side_open(struct dmrepl_verify *v, struct verify_side *s)
{
	size_t buf_bytes;
	int r;

	s->fd = open(s->path, O_RDONLY | O_CLOEXEC);
	if (s->fd < 0) {
		r = -errno;
		err(v->ctx, "cannot open %s: %s", s->path, strerror(-r));
		return r;
	}
	r = side_probe(v, s);
	if (r < 0) {
		if (r != -EINVAL)
			err(v->ctx, "%s: cannot get its size: %s", s->path, strerror(-r));
		return r;
	}
	/* Room to widen a span to the alignment at both ends. */
	buf_bytes = v->span_bytes + 2 * (size_t)(s->align > BUF_ALIGN ? s->align : BUF_ALIGN);
	if (posix_memalign((void **)&s->buf, s->align > BUF_ALIGN ? s->align : BUF_ALIGN,
			   buf_bytes))
		return -ENOMEM;
	s->hashes = calloc(v->span_bytes / v->chunk_bytes + 1, sizeof(*s->hashes));
	return s->hashes ? 0 : -ENOMEM;
}

static void side_close(struct verify_side *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	free(s->buf);
	s->buf = NULL;
	free(s->hashes);
	s->hashes = NULL;
}

DMREPL_EXPORT int dmrepl_verify_open(struct dmrepl_verify *verify)
{
	int r;

	if (!verify)
		return -EINVAL;
	if (verify->opened)
		return 0;
	/* A whole number of chunks, about SPAN_BYTES. */
	verify->span_bytes = SPAN_BYTES / verify->chunk_bytes * verify->chunk_bytes;
	if (verify->span_bytes == 0)
		verify->span_bytes = verify->chunk_bytes;
	for (int i = 0; i < 2; i++) {
		r = side_open(verify, &verify->side[i]);
		if (r < 0) {
			side_close(&verify->side[0]);
			side_close(&verify->side[1]);
			return r;
		}
	}
	verify->opened = true;
	dbg(verify->ctx, "verify %s (%" PRIu64 " bytes) against %s (%" PRIu64
	    " bytes), %" PRIu32 "-byte chunks", verify->side[0].path,
	    verify->side[0].size_bytes, verify->side[1].path,
	    verify->side[1].size_bytes, verify->chunk_bytes);
	return 0;
}

DMREPL_EXPORT uint64_t dmrepl_verify_get_size(const struct dmrepl_verify *verify,
					      int side)
{
	if (!verify || !verify->opened || side < 0 || side > 1)
		return 0;
	return verify->side[side].size_bytes;
}

/* Read [offset, offset + length) of @s into its buffer, whole. */
static int side_read(struct verify_side *s, uint64_t offset, uint64_t length)
{
	uint64_t done = 0;
	ssize_t n;

	while (done < length) {
		n = pread(s->fd, s->buf + done, length - done, (off_t)(offset + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			s->error = n < 0 ? -errno : -EIO;
			s->error_eof = n == 0;
			s->error_offset = offset + done;
			return s->error;
		}
		done += (uint64_t)n;
	}
	return 0;
}

/*
 * Read the span, widened to the side's alignment (and clipped to its
 * end, which is aligned on a block device), and hash each chunk (whose
 * boundaries are multiples of the chunk size, clipped to the span) on
 * its own and into the side's digest.
 */
static void side_hash_span(struct verify_side *s)
{
	uint64_t end = s->span_offset + s->span_length;
	uint64_t start = s->span_offset - s->span_offset % s->align;
	uint64_t read_end = end % s->align ? end + (s->align - end % s->align) : end;
	const uint8_t *data = s->buf + (s->span_offset - start);
	uint64_t pos = s->span_offset;
	unsigned int i = 0;

	s->error = 0;
	if (read_end > s->size_bytes)
		read_end = s->size_bytes;
	if (side_read(s, start, read_end - start) < 0)
		return;
	while (pos < end) {
		uint64_t next = pos + (s->chunk_bytes - pos % s->chunk_bytes);

		if (next > end || next < pos)
			next = end;
		/* Both hashes while the chunk is in the CPU's cache. */
		s->hashes[i++] = XXH3_128bits(data + (pos - s->span_offset), next - pos);
		XXH3_128bits_update(s->digest, data + (pos - s->span_offset), next - pos);
		pos = next;
	}
}

static void *side_thread(void *arg)
{
	side_hash_span(arg);
	return NULL;
}

/*
 * Side 1 on a helper thread, with every signal blocked, side 0 here; a
 * short span (many small extents) one side after the other.
 */
static void hash_both_sides(struct dmrepl_verify *v)
{
	sigset_t all, old;
	pthread_t thread;
	int r;

	if (v->side[0].span_length < THREAD_MIN_BYTES) {
		side_hash_span(&v->side[0]);
		side_hash_span(&v->side[1]);
		return;
	}
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	r = pthread_create(&thread, NULL, side_thread, &v->side[1]);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	side_hash_span(&v->side[0]);
	if (r == 0)
		pthread_join(thread, NULL);
	else
		side_hash_span(&v->side[1]);
}

static void report_read_error(struct dmrepl_verify *v, const struct verify_side *s)
{
	if (s->error_eof)
		err(v->ctx, "%s: unexpected end at byte offset %" PRIu64
		    " (was it truncated?)", s->path, s->error_offset);
	else
		err(v->ctx, "%s: read error at byte offset %" PRIu64 ": %s",
		    s->path, s->error_offset, strerror(-s->error));
}

/* Adjacent mismatching chunks make one range; only the first few are kept. */
static void record_mismatch(struct dmrepl_verify *v, uint64_t offset, uint64_t length)
{
	v->mismatched_bytes += length;
	if (v->nr_mismatches && v->last_mismatch_end == offset) {
		if (v->nr_mismatches <= MAX_KEPT_MISMATCHES)
			v->kept[v->nr_mismatches - 1].length_bytes += length;
	} else {
		if (v->nr_mismatches < MAX_KEPT_MISMATCHES)
			v->kept[v->nr_mismatches] = (struct mismatch){ offset, length };
		v->nr_mismatches++;
	}
	v->last_mismatch_end = offset + length;
}

static void compare_span(struct dmrepl_verify *v, uint64_t offset, uint64_t length)
{
	uint64_t pos = offset, end = offset + length;
	unsigned int i = 0;

	while (pos < end) {
		uint64_t next = pos + (v->chunk_bytes - pos % v->chunk_bytes);

		if (next > end || next < pos)
			next = end;
		if (!XXH128_isEqual(v->side[0].hashes[i], v->side[1].hashes[i]))
			record_mismatch(v, pos, next - pos);
		i++;
		pos = next;
	}
	v->compared_bytes += length;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void report_progress(struct dmrepl_verify *v)
{
	uint64_t now;

	if (!v->progress_fn)
		return;
	now = now_ns();
	if (now - v->progress_ns < PROGRESS_INTERVAL_NS &&
	    v->compared_bytes != v->total_bytes)
		return;
	v->progress_ns = now;
	v->progress_fn(v->compared_bytes, v->total_bytes, v->progress_data);
}

static int check_range(struct dmrepl_verify *v, uint64_t offset, uint64_t length)
{
	for (int i = 0; i < 2; i++) {
		const struct verify_side *s = &v->side[i];

		if (offset > s->size_bytes || length > s->size_bytes - offset) {
			err(v->ctx, "verify range at byte offset %" PRIu64 ", %" PRIu64
			    " bytes long, ends past the end of %s (%" PRIu64 " bytes)",
			    offset, length, s->path, s->size_bytes);
			return -EINVAL;
		}
	}
	return 0;
}

/* One span: at most span_bytes, ending on a chunk boundary or at @end. */
static uint64_t span_length(const struct dmrepl_verify *v, uint64_t pos, uint64_t end)
{
	uint64_t span_end = pos - pos % v->chunk_bytes + v->span_bytes;

	return span_end > end || span_end < pos ? end - pos : span_end - pos;
}

DMREPL_EXPORT int dmrepl_verify_range(struct dmrepl_verify *verify,
				      uint64_t offset_bytes, uint64_t length_bytes)
{
	uint64_t pos = offset_bytes, end = offset_bytes + length_bytes;
	int r;

	if (!verify)
		return -EINVAL;
	r = dmrepl_verify_open(verify);
	if (r < 0)
		return r;
	if (verify->error)
		return verify->error;
	r = check_range(verify, offset_bytes, length_bytes);
	if (r < 0)
		return r;
	while (pos < end) {
		uint64_t len = span_length(verify, pos, end);

		if (atomic_load(&verify->cancelled))
			return -ECANCELED;
		for (int i = 0; i < 2; i++) {
			verify->side[i].span_offset = pos;
			verify->side[i].span_length = len;
			verify->side[i].chunk_bytes = verify->chunk_bytes;
		}
		hash_both_sides(verify);
		for (int i = 0; i < 2 && !verify->error; i++) {
			if (verify->side[i].error) {
				report_read_error(verify, &verify->side[i]);
				verify->error = verify->side[i].error;
			}
		}
		if (verify->error)
			return verify->error;
		compare_span(verify, pos, len);
		report_progress(verify);
		pos += len;
	}
	return atomic_load(&verify->cancelled) ? -ECANCELED : 0;
}

DMREPL_EXPORT int dmrepl_verify_get_result(const struct dmrepl_verify *verify,
					   struct dmrepl_verify_result *ret)
{
	if (!verify || !ret)
		return -EINVAL;
	memset(ret, 0, sizeof(*ret));
	ret->compared_bytes = verify->compared_bytes;
	ret->mismatched_bytes = verify->mismatched_bytes;
	ret->nr_mismatches = verify->nr_mismatches;
	for (int i = 0; i < 2; i++) {
		XXH128_canonical_t canon;

		XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(verify->side[i].digest));
		memcpy(ret->digest[i], canon.digest, sizeof(ret->digest[i]));
	}
	return 0;
}

DMREPL_EXPORT int dmrepl_verify_get_mismatch(const struct dmrepl_verify *verify,
					     unsigned int index,
					     uint64_t *ret_offset_bytes,
					     uint64_t *ret_length_bytes)
{
	if (!verify)
		return -EINVAL;
	if (index >= verify->nr_mismatches || index >= MAX_KEPT_MISMATCHES)
		return -ENOENT;
	if (ret_offset_bytes)
		*ret_offset_bytes = verify->kept[index].offset_bytes;
	if (ret_length_bytes)
		*ret_length_bytes = verify->kept[index].length_bytes;
	return 0;
}

DMREPL_EXPORT void dmrepl_verify_cancel(struct dmrepl_verify *verify)
{
	if (verify)
		atomic_store(&verify->cancelled, 1);
}
