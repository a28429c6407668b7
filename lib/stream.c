/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The replication stream codec: doc/stream-format.md is the format,
 * lib/stream.h the API.
 *
 * The writer buffers records (WRITE_BUF_BYTES) and writes them with a
 * full-write loop; a DATA payload larger than the buffer goes straight to
 * the fd. The reader reads exactly the bytes of the stream, never past
 * END, so whatever follows a stream on the same fd stays there. Memory
 * is bounded on both sides: the writer holds its buffer and one
 * compression buffer, the reader one payload buffer (fd readers only; a
 * memory reader points into the caller's buffer) and one decompression
 * buffer, allocated at the first compressed record.
 *
 * Every record is checked against its checksum before any field of it
 * but payload_len (which says how much to read) is interpreted.
 */
#include "replication.h"
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "ratelimit.h"
#include "stream.h"

#define SECTOR_BYTES 512u
#define WRITE_BUF_BYTES (UINT32_C(1) << 20)
#define ZSTD_FRAME_MAGIC UINT32_C(0xFD2FB528)
#define WHY_SIZE 200

/* Header field offsets (doc/stream-format.md, "The header"). */
enum {
	H_MAGIC = 0,
	H_VERSION = 8,
	H_HEADER_LEN = 10,
	H_REQUIRED = 12,
	H_OPTIONAL = 16,
	H_BLOCK_SIZE = 20,
	H_VOLUME_SIZE = 24,
	H_RESUME = 32,
	H_TIME = 40,
	H_STREAM_ID = 48,
	H_SRC_POOL = 64,
	H_SNAP = 192,
	H_BASE = 224,
	H_SRC_NAME = 256,
	H_PREFIX = 12,		/* magic, version, header_len */
	IDENT_LEN = 32,
};

/* Record header field offsets. */
enum {
	R_TYPE = 0,
	R_FLAGS = 2,
	R_PAYLOAD_LEN = 4,
	R_SEQ = 8,
	R_OFFSET = 16,
	R_LENGTH = 24,
	R_CHECKSUM = 32,
};

/* ---- little-endian fields ---- */

static uint16_t rd16(const uint8_t *b, size_t off)
{
	return (uint16_t)(b[off] | b[off + 1] << 8);
}

static void wr16(uint8_t *b, size_t off, uint16_t v)
{
	b[off] = (uint8_t)v;
	b[off + 1] = (uint8_t)(v >> 8);
}

static void wr32(uint8_t *b, size_t off, uint32_t v)
{
	v = htole32(v);
	memcpy(b + off, &v, sizeof(v));
}

static void wr64(uint8_t *b, size_t off, uint64_t v)
{
	v = htole64(v);
	memcpy(b + off, &v, sizeof(v));
}

static void put_ident(uint8_t *b, const struct dmrepl_thin_ident *id)
{
	wr64(b, 0, id->thin_id);
	wr32(b, 8, id->creation_time);
	wr32(b, 12, 0);
	wr64(b, 16, id->root);
	wr64(b, 24, id->mapped_blocks);
}

static void get_ident(const uint8_t *b, struct dmrepl_thin_ident *id)
{
	id->thin_id = get_le64(b, 0);
	id->creation_time = get_le32(b, 8);
	id->root = get_le64(b, 16);
	id->mapped_blocks = get_le64(b, 24);
}

static bool all_zero(const uint8_t *b, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

/* The name NUL-padded to 128 bytes; false if it does not fit. */
static bool put_pool(uint8_t *b, const char *pool)
{
	size_t n = strnlen(pool, 128);

	if (n >= 128)
		return false;
	memset(b, 0, 128);
	memcpy(b, pool, n);
	return true;
}

const char *dmrepl_stream_type_name(uint16_t type)
{
	switch (type) {
	case DMREPL_REC_DATA:
		return "DATA";
	case DMREPL_REC_DISCARD:
		return "DISCARD";
	case DMREPL_REC_ZERO:
		return "ZERO";
	case DMREPL_REC_CHECKPOINT:
		return "CHECKPOINT";
	case DMREPL_REC_END:
		return "END";
	}
	return type & DMREPL_REC_OPTIONAL ? "optional" : "unknown";
}

/* ---- rules shared by the writer and the reader ---- */

struct stream_order {
	uint64_t volume_size;
	uint64_t next;		/* the lowest offset a range or CHECKPOINT may have */
};

/* Return: 0, -EPROTO or -ERANGE, with the fault in @why. */
static int check_range(const struct stream_order *o, uint16_t type,
		       uint64_t offset, uint64_t length, uint64_t max_length,
		       char *why)
{
	const char *name = dmrepl_stream_type_name(type);

	if (offset % SECTOR_BYTES || length % SECTOR_BYTES) {
		snprintf(why, WHY_SIZE, "%s %" PRIu64 "+%" PRIu64
			 " is not in whole 512-byte sectors", name, offset, length);
		return -EPROTO;
	}
	if (length == 0 || length > max_length) {
		snprintf(why, WHY_SIZE, "%s length %" PRIu64 " out of range "
			 "(1 to %" PRIu64 " bytes)", name, length, max_length);
		return -EPROTO;
	}
	if (offset > o->volume_size || length > o->volume_size - offset) {
		snprintf(why, WHY_SIZE, "%s %" PRIu64 "+%" PRIu64 " ends past "
			 "the volume size %" PRIu64, name, offset, length,
			 o->volume_size);
		return -ERANGE;
	}
	if (offset < o->next) {
		snprintf(why, WHY_SIZE, "%s %" PRIu64 "+%" PRIu64 " out of order: "
			 "it starts before byte %" PRIu64 ", where what came "
			 "before it ends", name, offset, length, o->next);
		return -EPROTO;
	}
	return 0;
}

static int check_checkpoint(const struct stream_order *o, uint64_t offset,
			    char *why)
{
	if (offset % SECTOR_BYTES) {
		snprintf(why, WHY_SIZE, "CHECKPOINT %" PRIu64 " is not on a "
			 "512-byte sector boundary", offset);
		return -EPROTO;
	}
	if (offset > o->volume_size) {
		snprintf(why, WHY_SIZE, "CHECKPOINT %" PRIu64 " past the volume "
			 "size %" PRIu64, offset, o->volume_size);
		return -ERANGE;
	}
	if (offset < o->next) {
		snprintf(why, WHY_SIZE, "CHECKPOINT %" PRIu64 " out of order: "
			 "below byte %" PRIu64 ", where what came before it ends",
			 offset, o->next);
		return -EPROTO;
	}
	return 0;
}

/* The header's fields, as the struct holds them. */
static int check_header(const struct dmrepl_stream_header *h, char *why)
{
	uint32_t unknown = h->required_flags & ~(uint32_t)DMREPL_STREAM_KNOWN_REQUIRED;

	if (unknown) {
		snprintf(why, WHY_SIZE, "unknown required flags 0x%" PRIx32, unknown);
		return -EPROTONOSUPPORT;
	}
	if (h->data_block_size == 0 || h->data_block_size % SECTOR_BYTES) {
		snprintf(why, WHY_SIZE, "data block size %" PRIu32 " is not a "
			 "positive multiple of 512 bytes", h->data_block_size);
		return -EPROTO;
	}
	if (h->volume_size == 0 || h->volume_size % SECTOR_BYTES) {
		snprintf(why, WHY_SIZE, "volume size %" PRIu64 " is not a "
			 "positive multiple of 512 bytes", h->volume_size);
		return -EPROTO;
	}
	if (!(h->required_flags & DMREPL_STREAM_FLAG_RESUMED) && h->resume_offset) {
		snprintf(why, WHY_SIZE, "resume offset %" PRIu64 " without the "
			 "resumed flag", h->resume_offset);
		return -EPROTO;
	}
	if (h->resume_offset % SECTOR_BYTES) {
		snprintf(why, WHY_SIZE, "resume offset %" PRIu64 " is not on a "
			 "512-byte sector boundary", h->resume_offset);
		return -EPROTO;
	}
	if (h->resume_offset > h->volume_size) {
		snprintf(why, WHY_SIZE, "resume offset %" PRIu64 " past the "
			 "volume size %" PRIu64, h->resume_offset, h->volume_size);
		return -ERANGE;
	}
	return 0;
}

/* The header's length: longer when it holds the source's name. */
static unsigned int header_len(const struct dmrepl_stream_header *h)
{
	return h->optional_flags & DMREPL_STREAM_OPT_NAME
		   ? DMREPL_STREAM_HEADER_LEN_NAME
		   : DMREPL_STREAM_HEADER_LEN;
}

static void encode_header(const struct dmrepl_stream_header *h,
			  uint8_t out[DMREPL_STREAM_HEADER_LEN_NAME])
{
	unsigned int len = header_len(h);

	memset(out, 0, len);
	memcpy(out + H_MAGIC, DMREPL_STREAM_MAGIC, 8);
	wr16(out, H_VERSION, DMREPL_STREAM_VERSION);
	wr16(out, H_HEADER_LEN, (uint16_t)len);
	wr32(out, H_REQUIRED, h->required_flags);
	wr32(out, H_OPTIONAL, h->optional_flags);
	wr32(out, H_BLOCK_SIZE, h->data_block_size);
	wr64(out, H_VOLUME_SIZE, h->volume_size);
	wr64(out, H_RESUME, h->resume_offset);
	wr64(out, H_TIME, h->time);
	memcpy(out + H_STREAM_ID, h->stream_id, 16);
	put_pool(out + H_SRC_POOL, h->src_pool);
	put_ident(out + H_SNAP, &h->snap);
	if (h->required_flags & DMREPL_STREAM_FLAG_BASE)
		put_ident(out + H_BASE, &h->base);
	if (h->optional_flags & DMREPL_STREAM_OPT_NAME)
		put_pool(out + H_SRC_NAME, h->src_name);
	wr64(out, len - 8, XXH3_64bits(out, len - 8));
}

/* Fill a record header, checksum included. */
static void encode_record(uint8_t rec[DMREPL_STREAM_RECORD_LEN],
			  XXH3_state_t *sum, uint16_t type, uint16_t flags,
			  uint64_t seq, uint64_t offset, uint64_t length,
			  const void *payload, uint32_t payload_len)
{
	wr16(rec, R_TYPE, type);
	wr16(rec, R_FLAGS, flags);
	wr32(rec, R_PAYLOAD_LEN, payload_len);
	wr64(rec, R_SEQ, seq);
	wr64(rec, R_OFFSET, offset);
	wr64(rec, R_LENGTH, length);
	XXH3_64bits_reset(sum);
	XXH3_64bits_update(sum, rec, R_CHECKSUM);
	if (payload_len)
		XXH3_64bits_update(sum, payload, payload_len);
	wr64(rec, R_CHECKSUM, XXH3_64bits_digest(sum));
}

uint64_t dmrepl_stream_identity_hash(const struct dmrepl_stream_header *h)
{
	uint8_t b[208] = {0};
	bool base = h->required_flags & DMREPL_STREAM_FLAG_BASE;

	put_pool(b, h->src_pool);
	put_ident(b + 128, &h->snap);
	if (base)
		put_ident(b + 160, &h->base);
	wr32(b, 192, base ? 1 : 0);
	wr64(b, 196, h->volume_size);
	wr32(b, 204, h->data_block_size);
	return XXH3_64bits(b, sizeof(b));
}

/* ---- writer ---- */

struct dmrepl_stream_writer {
	struct dmrepl_ctx *ctx;
	int fd;
	char *name;
	int zstd_level;
	ZSTD_CCtx *cctx;
	uint8_t *zbuf;			/* DMREPL_STREAM_MAX_DATA bytes */
	uint8_t *buf;			/* WRITE_BUF_BYTES */
	size_t len;			/* bytes in buf */
	XXH3_state_t *digest;		/* every byte before END */
	XXH3_state_t *sum;		/* one record's checksum */
	struct stream_order order;
	struct dmrepl_stream_stats stats;
	uint64_t seq;
	bool ended;
	int failed;			/* a write error: every call returns it */
	const volatile int *cancel;	/* set: a blocked write gives up */
	struct dmrepl_ratelimit limit;	/* bytes of the stream, --bwlimit */
};

static int full_write(int fd, const uint8_t *p, size_t n,
		      const volatile int *cancel)
{
	while (n) {
		ssize_t k = write(fd, p, n);

		if (k < 0 && errno == EINTR && cancel && *cancel)
			return -ECANCELED;
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static uint64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Wait until the bandwidth limit lets @n more bytes go. */
static int writer_throttle(struct dmrepl_stream_writer *w, size_t n)
{
	uint64_t wait;

	while ((wait = dmrepl_ratelimit_delay(&w->limit, monotonic_ns()))) {
		struct timespec ts = { 0, wait > 10000000 ? 10000000 : (long)wait };

		if (w->cancel && *w->cancel)
			return -ECANCELED;
		nanosleep(&ts, NULL);
	}
	dmrepl_ratelimit_spend(&w->limit, n);
	return 0;
}

static int writer_write(struct dmrepl_stream_writer *w, const uint8_t *p,
			size_t n)
{
	int r = writer_throttle(w, n);

	if (r == 0)
		r = full_write(w->fd, p, n, w->cancel);

	if (r == -ECANCELED) {
		w->failed = r;
		return r;
	}
	if (r < 0) {
		err(w->ctx, "%s: cannot write the stream (record %" PRIu64 "): %s",
		    w->name, w->seq, strerror(-r));
		w->failed = r;
	}
	return r;
}

static int writer_flush(struct dmrepl_stream_writer *w)
{
	int r;

	if (w->failed)
		return w->failed;
	r = writer_write(w, w->buf, w->len);
	w->len = 0;
	return r;
}

/* Append one record; the digest covers it unless it is END. */
static int writer_emit(struct dmrepl_stream_writer *w, uint16_t type,
		       uint16_t flags, uint64_t offset, uint64_t length,
		       const void *payload, uint32_t payload_len)
{
	size_t size = DMREPL_STREAM_RECORD_LEN + (size_t)payload_len;
	uint8_t *rec;
	int r;

	if (w->len + size > WRITE_BUF_BYTES && (r = writer_flush(w)) < 0)
		return r;
	rec = w->buf + w->len;
	encode_record(rec, w->sum, type, flags, w->seq, offset, length,
		      payload, payload_len);
	if (type != DMREPL_REC_END) {
		XXH3_128bits_update(w->digest, rec, DMREPL_STREAM_RECORD_LEN);
		if (payload_len)
			XXH3_128bits_update(w->digest, payload, payload_len);
	}
	w->len += DMREPL_STREAM_RECORD_LEN;
	w->seq++;
	w->stats.wire_bytes += size;
	if (!payload_len)
		return 0;
	if (w->len + payload_len <= WRITE_BUF_BYTES) {
		memcpy(w->buf + w->len, payload, payload_len);
		w->len += payload_len;
		return 0;
	}
	r = writer_flush(w);
	return r < 0 ? r : writer_write(w, payload, payload_len);
}

/* Nothing is written after END, nor after a write error. */
static int writer_usable(struct dmrepl_stream_writer *w)
{
	if (w->failed)
		return w->failed;
	if (w->ended) {
		err(w->ctx, "%s: record written after END", w->name);
		return -EINVAL;
	}
	return 0;
}

static int writer_refuse(struct dmrepl_stream_writer *w, const char *why)
{
	err(w->ctx, "%s: record %" PRIu64 " refused: %s", w->name, w->seq, why);
	return -EINVAL;
}

static void fill_stream_id(uint8_t id[16])
{
	struct timespec ts;
	XXH128_hash_t h;
	struct {
		struct timespec ts;
		pid_t pid;
		const void *where;
	} seed;

	if (getrandom(id, 16, GRND_NONBLOCK) == 16)
		return;
	/* Early boot without entropy: unique is enough, unpredictable is not needed. */
	clock_gettime(CLOCK_REALTIME, &ts);
	memset(&seed, 0, sizeof(seed));
	seed.ts = ts;
	seed.pid = getpid();
	seed.where = id;
	h = XXH3_128bits(&seed, sizeof(seed));
	wr64(id, 0, h.high64);
	wr64(id, 8, h.low64);
}

void dmrepl_stream_writer_free(struct dmrepl_stream_writer *w)
{
	if (!w)
		return;
	ZSTD_freeCCtx(w->cctx);
	XXH3_freeState(w->digest);
	XXH3_freeState(w->sum);
	free(w->zbuf);
	free(w->buf);
	free(w->name);
	dmrepl_unref(w->ctx);
	free(w);
}

static int writer_alloc(struct dmrepl_ctx *ctx, int fd, const char *name,
			int zstd_level, struct dmrepl_stream_writer **ret)
{
	struct dmrepl_stream_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->ctx = dmrepl_ref(ctx);
	w->fd = fd;
	w->zstd_level = zstd_level;
	w->name = strdup(name ? name : "stream");
	w->buf = malloc(WRITE_BUF_BYTES);
	w->digest = XXH3_createState();
	w->sum = XXH3_createState();
	if (zstd_level > 0) {
		w->cctx = ZSTD_createCCtx();
		w->zbuf = malloc(DMREPL_STREAM_MAX_DATA);
	}
	if (!w->name || !w->buf || !w->digest || !w->sum ||
	    (zstd_level > 0 && (!w->cctx || !w->zbuf))) {
		dmrepl_stream_writer_free(w);
		return -ENOMEM;
	}
	*ret = w;
	return 0;
}

int dmrepl_stream_writer_new(struct dmrepl_ctx *ctx, int fd, const char *name,
			     const struct dmrepl_stream_header *h,
			     int zstd_level,
			     struct dmrepl_stream_writer **ret)
{
	struct dmrepl_stream_header hdr;
	struct dmrepl_stream_writer *w;
	char why[WHY_SIZE];
	int r;

	if (!ctx || fd < 0 || !h || !ret)
		return -EINVAL;
	hdr = *h;
	hdr.required_flags &= ~(uint32_t)DMREPL_STREAM_FLAG_ZSTD;
	hdr.optional_flags &= ~(uint32_t)DMREPL_STREAM_OPT_NAME;
	if (strnlen(hdr.src_name, sizeof(hdr.src_name)) < sizeof(hdr.src_name) &&
	    hdr.src_name[0])
		hdr.optional_flags |= DMREPL_STREAM_OPT_NAME;
	if (zstd_level > 0)
		hdr.required_flags |= DMREPL_STREAM_FLAG_ZSTD;
	if (all_zero(hdr.stream_id, sizeof(hdr.stream_id)))
		fill_stream_id(hdr.stream_id);
	r = check_header(&hdr, why);
	if (r == 0 && strnlen(hdr.src_pool, sizeof(hdr.src_pool)) >= sizeof(hdr.src_pool)) {
		snprintf(why, WHY_SIZE, "source pool name not NUL-terminated");
		r = -EINVAL;
	}
	if (r == 0 && zstd_level > ZSTD_maxCLevel()) {
		snprintf(why, WHY_SIZE, "zstd level %d above the maximum %d",
			 zstd_level, ZSTD_maxCLevel());
		r = -EINVAL;
	}
	if (r < 0) {
		err(ctx, "%s: cannot start a stream: %s", name ? name : "stream", why);
		return -EINVAL;
	}
	r = writer_alloc(ctx, fd, name, zstd_level, &w);
	if (r < 0) {
		err(ctx, "%s: cannot start a stream: %s", name ? name : "stream",
		    strerror(-r));
		return r;
	}
	w->order.volume_size = hdr.volume_size;
	w->order.next = hdr.resume_offset;
	encode_header(&hdr, w->buf);
	w->len = header_len(&hdr);
	w->stats.wire_bytes = w->len;
	XXH3_128bits_reset(w->digest);
	XXH3_128bits_update(w->digest, w->buf, w->len);
	r = writer_flush(w);
	if (r < 0) {
		dmrepl_stream_writer_free(w);
		return r;
	}
	*ret = w;
	return 0;
}

/*
 * Compress @buf into w->zbuf. Return: the frame's size, 0 when it would
 * not be smaller than @len, or -errno.
 */
static ssize_t writer_compress(struct dmrepl_stream_writer *w,
			       const void *buf, uint32_t len)
{
	size_t n;

	if (!w->cctx || len < 2)
		return 0;
	n = ZSTD_compressCCtx(w->cctx, w->zbuf, len - 1, buf, len, w->zstd_level);
	if (!ZSTD_isError(n))
		return (ssize_t)n;
	if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall)
		return 0;
	err(w->ctx, "%s: record %" PRIu64 ": zstd compression failed: %s",
	    w->name, w->seq, ZSTD_getErrorName(n));
	return ZSTD_getErrorCode(n) == ZSTD_error_memory_allocation ? -ENOMEM : -EIO;
}

int dmrepl_stream_write_data(struct dmrepl_stream_writer *w, uint64_t offset,
			     const void *buf, uint32_t len)
{
	char why[WHY_SIZE];
	ssize_t z;
	int r;

	if (!w || !buf)
		return -EINVAL;
	if ((r = writer_usable(w)) < 0)
		return r;
	if (check_range(&w->order, DMREPL_REC_DATA, offset, len,
			DMREPL_STREAM_MAX_DATA, why) < 0)
		return writer_refuse(w, why);
	z = writer_compress(w, buf, len);
	if (z < 0)
		return (int)z;
	if (z > 0)
		r = writer_emit(w, DMREPL_REC_DATA, DMREPL_REC_FLAG_ZSTD, offset,
				len, w->zbuf, (uint32_t)z);
	else
		r = writer_emit(w, DMREPL_REC_DATA, 0, offset, len, buf, len);
	w->order.next = offset + len;
	w->stats.records++;
	w->stats.data_bytes += len;
	return r;
}

static int write_unmapped(struct dmrepl_stream_writer *w, uint16_t type,
			  uint64_t offset, uint64_t len)
{
	char why[WHY_SIZE];
	int r;

	if (!w)
		return -EINVAL;
	if ((r = writer_usable(w)) < 0)
		return r;
	if (check_range(&w->order, type, offset, len, UINT64_MAX, why) < 0)
		return writer_refuse(w, why);
	w->order.next = offset + len;
	w->stats.records++;
	return writer_emit(w, type, 0, offset, len, NULL, 0);
}

int dmrepl_stream_write_discard(struct dmrepl_stream_writer *w,
				uint64_t offset, uint64_t len)
{
	return write_unmapped(w, DMREPL_REC_DISCARD, offset, len);
}

int dmrepl_stream_write_zero(struct dmrepl_stream_writer *w, uint64_t offset,
			     uint64_t len)
{
	return write_unmapped(w, DMREPL_REC_ZERO, offset, len);
}

int dmrepl_stream_write_checkpoint(struct dmrepl_stream_writer *w,
				   uint64_t offset)
{
	char why[WHY_SIZE];
	int r;

	if (!w)
		return -EINVAL;
	if ((r = writer_usable(w)) < 0)
		return r;
	if (check_checkpoint(&w->order, offset, why) < 0)
		return writer_refuse(w, why);
	w->order.next = offset;
	w->stats.records++;
	r = writer_emit(w, DMREPL_REC_CHECKPOINT, 0, offset, 0, NULL, 0);
	return r < 0 ? r : writer_flush(w);
}

int dmrepl_stream_write_end(struct dmrepl_stream_writer *w)
{
	uint8_t payload[DMREPL_STREAM_END_PAYLOAD];
	XXH128_hash_t digest;
	int r;

	if (!w)
		return -EINVAL;
	if ((r = writer_usable(w)) < 0)
		return r;
	digest = XXH3_128bits_digest(w->digest);
	wr64(payload, 0, w->seq);
	wr64(payload, 8, w->stats.data_bytes);
	wr64(payload, 16, digest.high64);
	wr64(payload, 24, digest.low64);
	w->ended = true;
	r = writer_emit(w, DMREPL_REC_END, 0, 0, 0, payload, sizeof(payload));
	return r < 0 ? r : writer_flush(w);
}

void dmrepl_stream_writer_get_stats(const struct dmrepl_stream_writer *w,
				    struct dmrepl_stream_stats *ret)
{
	*ret = w->stats;
}

/* ---- reader ---- */

struct dmrepl_stream_reader {
	struct dmrepl_ctx *ctx;
	char *name;
	int fd;				/* -1: reads mem */
	const uint8_t *mem;
	size_t mem_len;
	uint8_t header[DMREPL_STREAM_MAX_HEADER_LEN];	/* fd readers */
	uint8_t rec[DMREPL_STREAM_RECORD_LEN];		/* fd readers */
	uint8_t *payload;		/* fd readers: MAX_PAYLOAD bytes */
	uint8_t *dbuf;			/* MAX_DATA bytes, at the first zstd DATA */
	ZSTD_DCtx *dctx;
	XXH3_state_t *digest;
	XXH3_state_t *sum;
	struct stream_order order;
	uint64_t pos;			/* bytes consumed */
	uint64_t rec_pos;		/* where the record being read starts */
	uint64_t seq;			/* records read, and the next seq */
	uint64_t data_bytes;
	bool zstd;
	bool header_done;
	bool ended;
	int failed;			/* returned again by every later call */
	const volatile int *cancel;	/* set: a blocked read gives up */
	bool quiet_empty;		/* no bytes at all: -ENODATA, not logged */
};

/* Log @e once, naming the reader and where it is. */
_printf_(3, 4) static int reader_fail(struct dmrepl_stream_reader *r, int e,
				      const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!r->header_done)
		err(r->ctx, "%s: header: %s", r->name, msg);
	else
		err(r->ctx, "%s: record %" PRIu64 " at byte %" PRIu64 ": %s",
		    r->name, r->seq, r->rec_pos, msg);
	r->failed = e;
	return e;
}

static int reader_fetch_fail(struct dmrepl_stream_reader *r, int e)
{
	if (e == -ECANCELED) {	/* the caller's doing: not a fault */
		r->failed = e;
		return e;
	}
	if (e != -ENODATA)
		return reader_fail(r, e, "read error at byte %" PRIu64 ": %s",
				   r->pos, strerror(-e));
	if (!r->header_done && r->pos == 0 && r->quiet_empty)
		;	/* the caller expects that it may be sent nothing */
	else if (!r->header_done && r->pos == 0)
		err(r->ctx, "%s: empty stream: no header", r->name);
	else if (!r->header_done)
		err(r->ctx, "%s: stream ended early in its header at byte %" PRIu64,
		    r->name, r->pos);
	else
		err(r->ctx, "%s: stream ended early after %" PRIu64
		    " records at byte %" PRIu64, r->name, r->seq, r->pos);
	r->failed = e;
	return e;
}

/*
 * The next @n bytes of the stream: in @scratch for an fd, in place for
 * memory. Return: 0; -ENODATA at the end; the read's -errno. Not logged.
 */
static int reader_fetch(struct dmrepl_stream_reader *r, size_t n,
			uint8_t *scratch, const uint8_t **ret)
{
	size_t got = 0;

	if (r->fd < 0) {
		if (r->mem_len - r->pos < n) {
			r->pos = r->mem_len;
			return -ENODATA;
		}
		*ret = r->mem + r->pos;
		r->pos += n;
		return 0;
	}
	while (got < n) {
		ssize_t k = read(r->fd, scratch + got, n - got);

		if (k < 0 && errno == EINTR && r->cancel && *r->cancel) {
			r->pos += got;
			return -ECANCELED;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			r->pos += got;
			return k < 0 ? -errno : -ENODATA;
		}
		got += (size_t)k;
	}
	r->pos += n;
	*ret = scratch;
	return 0;
}

static int reader_alloc(struct dmrepl_ctx *ctx, int fd, const char *name,
			struct dmrepl_stream_reader **ret)
{
	struct dmrepl_stream_reader *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->ctx = dmrepl_ref(ctx);
	r->fd = fd;
	r->name = strdup(name ? name : "stream");
	r->digest = XXH3_createState();
	r->sum = XXH3_createState();
	if (fd >= 0)
		r->payload = malloc(DMREPL_STREAM_MAX_PAYLOAD);
	if (!r->name || !r->digest || !r->sum || (fd >= 0 && !r->payload)) {
		dmrepl_stream_reader_free(r);
		return -ENOMEM;
	}
	*ret = r;
	return 0;
}

int dmrepl_stream_reader_new(struct dmrepl_ctx *ctx, int fd, const char *name,
			     struct dmrepl_stream_reader **ret)
{
	if (!ctx || fd < 0 || !ret)
		return -EINVAL;
	return reader_alloc(ctx, fd, name, ret);
}

int dmrepl_stream_reader_new_mem(struct dmrepl_ctx *ctx, const void *buf,
				 size_t len, struct dmrepl_stream_reader **ret)
{
	struct dmrepl_stream_reader *r;
	int e;

	if (!ctx || (!buf && len) || !ret)
		return -EINVAL;
	e = reader_alloc(ctx, -1, "stream in memory", &r);
	if (e < 0)
		return e;
	r->mem = buf ? buf : (const void *)"";
	r->mem_len = len;
	*ret = r;
	return 0;
}

void dmrepl_stream_reader_free(struct dmrepl_stream_reader *r)
{
	if (!r)
		return;
	ZSTD_freeDCtx(r->dctx);
	XXH3_freeState(r->digest);
	XXH3_freeState(r->sum);
	free(r->payload);
	free(r->dbuf);
	free(r->name);
	dmrepl_unref(r->ctx);
	free(r);
}

/* The fields of a header whose checksum and version were checked. */
static int decode_header(struct dmrepl_stream_reader *r, const uint8_t *p,
			 unsigned int len, struct dmrepl_stream_header *h)
{
	const uint8_t *pool = p + H_SRC_POOL;
	size_t n = strnlen((const char *)pool, 128);
	char why[WHY_SIZE];
	int e;

	memset(h, 0, sizeof(*h));
	h->required_flags = get_le32(p, H_REQUIRED);
	h->optional_flags = get_le32(p, H_OPTIONAL);
	h->data_block_size = get_le32(p, H_BLOCK_SIZE);
	h->volume_size = get_le64(p, H_VOLUME_SIZE);
	h->resume_offset = get_le64(p, H_RESUME);
	h->time = get_le64(p, H_TIME);
	memcpy(h->stream_id, p + H_STREAM_ID, 16);
	e = check_header(h, why);
	if (e < 0)
		return reader_fail(r, e, "%s", why);
	if (n == 128 || !all_zero(pool + n, 128 - n))
		return reader_fail(r, -EPROTO, "source pool name not NUL-terminated "
				   "and NUL-padded");
	memcpy(h->src_pool, pool, n);
	get_ident(p + H_SNAP, &h->snap);
	if (h->required_flags & DMREPL_STREAM_FLAG_BASE)
		get_ident(p + H_BASE, &h->base);
	else if (!all_zero(p + H_BASE, IDENT_LEN))
		return reader_fail(r, -EPROTO, "base identity set in a full "
				   "stream (no base flag)");
	if (!(h->optional_flags & DMREPL_STREAM_OPT_NAME))
		return 0;
	/* optional: a header too short for it has no name */
	if (len < DMREPL_STREAM_HEADER_LEN_NAME) {
		h->optional_flags &= ~(uint32_t)DMREPL_STREAM_OPT_NAME;
		return 0;
	}
	pool = p + H_SRC_NAME;
	n = strnlen((const char *)pool, 128);
	if (n == 128 || !all_zero(pool + n, 128 - n))
		return reader_fail(r, -EPROTO, "source name not NUL-terminated "
				   "and NUL-padded");
	memcpy(h->src_name, pool, n);
	return 0;
}

static int reader_usable(struct dmrepl_stream_reader *r, bool header)
{
	if (r->failed)
		return r->failed;
	if (header && r->header_done) {
		err(r->ctx, "%s: stream header read twice", r->name);
		return -EINVAL;
	}
	if (!header && !r->header_done) {
		err(r->ctx, "%s: stream record read before the header", r->name);
		return -EINVAL;
	}
	if (r->ended) {
		err(r->ctx, "%s: stream record read after END", r->name);
		return -EINVAL;
	}
	return 0;
}

int dmrepl_stream_read_header(struct dmrepl_stream_reader *r,
			      struct dmrepl_stream_header *ret)
{
	struct dmrepl_stream_header h;
	const uint8_t *p, *rest;
	uint16_t version, len;
	uint64_t sum;
	int e;

	if (!r || !ret)
		return -EINVAL;
	if ((e = reader_usable(r, true)) < 0)
		return e;
	if ((e = reader_fetch(r, H_PREFIX, r->header, &p)) < 0)
		return reader_fetch_fail(r, e);
	if (memcmp(p + H_MAGIC, DMREPL_STREAM_MAGIC, 8) != 0)
		return reader_fail(r, -EBADMSG, "not a dmrepl stream (bad magic)");
	version = rd16(p, H_VERSION);
	len = rd16(p, H_HEADER_LEN);
	if (len < DMREPL_STREAM_HEADER_LEN || len > DMREPL_STREAM_MAX_HEADER_LEN)
		return reader_fail(r, -EPROTO, "header length %u out of range "
				   "(%u to %u)", len, DMREPL_STREAM_HEADER_LEN,
				   DMREPL_STREAM_MAX_HEADER_LEN);
	if ((e = reader_fetch(r, len - H_PREFIX, r->header + H_PREFIX, &rest)) < 0)
		return reader_fetch_fail(r, e);
	sum = XXH3_64bits(p, len - 8u);
	if (sum != get_le64(p, len - 8u))
		return reader_fail(r, -EBADMSG, "header checksum mismatch");
	if (version != DMREPL_STREAM_VERSION)
		return reader_fail(r, -EPROTONOSUPPORT, "stream format version "
				   "%u; this reader knows version %u", version,
				   DMREPL_STREAM_VERSION);
	if ((e = decode_header(r, p, len, &h)) < 0)
		return e;
	XXH3_128bits_reset(r->digest);
	XXH3_128bits_update(r->digest, p, len);
	r->order.volume_size = h.volume_size;
	r->order.next = h.resume_offset;
	r->zstd = h.required_flags & DMREPL_STREAM_FLAG_ZSTD;
	r->header_done = true;
	*ret = h;
	return 0;
}

/* What one record header says, checksum-verified. */
struct raw_record {
	uint16_t type;
	uint16_t flags;
	uint32_t payload_len;
	uint64_t seq;
	uint64_t offset;
	uint64_t length;
	const uint8_t *payload;
};

static int decompress(struct dmrepl_stream_reader *r,
		      const struct raw_record *rr, const void **ret)
{
	unsigned long long content;
	size_t n;

	if (rr->payload_len < 4 || get_le32(rr->payload, 0) != ZSTD_FRAME_MAGIC)
		return reader_fail(r, -EPROTO, "DATA payload is not a zstd frame");
	n = ZSTD_findFrameCompressedSize(rr->payload, rr->payload_len);
	if (ZSTD_isError(n) || n != rr->payload_len)
		return reader_fail(r, -EPROTO, "DATA payload is not exactly one "
				   "zstd frame");
	content = ZSTD_getFrameContentSize(rr->payload, rr->payload_len);
	if (content == ZSTD_CONTENTSIZE_ERROR)
		return reader_fail(r, -EPROTO, "DATA payload: bad zstd frame header");
	if (content != ZSTD_CONTENTSIZE_UNKNOWN && content != rr->length)
		return reader_fail(r, -EPROTO, "DATA %" PRIu64 "+%" PRIu64
				   ": zstd frame holds %llu bytes", rr->offset,
				   rr->length, content);
	if (!r->dctx && !(r->dctx = ZSTD_createDCtx()))
		return reader_fail(r, -ENOMEM, "out of memory");
	if (!r->dbuf && !(r->dbuf = malloc(DMREPL_STREAM_MAX_DATA)))
		return reader_fail(r, -ENOMEM, "out of memory");
	n = ZSTD_decompressDCtx(r->dctx, r->dbuf, rr->length, rr->payload,
				rr->payload_len);
	if (ZSTD_isError(n))
		return reader_fail(r, -EPROTO, "DATA %" PRIu64 "+%" PRIu64
				   ": zstd: %s", rr->offset, rr->length,
				   ZSTD_getErrorName(n));
	if (n != rr->length)
		return reader_fail(r, -EPROTO, "DATA %" PRIu64 "+%" PRIu64
				   ": zstd frame decompressed to %zu bytes",
				   rr->offset, rr->length, n);
	*ret = r->dbuf;
	return 0;
}

/* Flags a known type does not define: unknown, so required. */
static int check_flags(struct dmrepl_stream_reader *r,
		       const struct raw_record *rr, uint16_t allowed)
{
	const char *name = dmrepl_stream_type_name(rr->type);

	if (rr->flags & ~(uint16_t)DMREPL_REC_FLAG_ZSTD)
		return reader_fail(r, -EPROTONOSUPPORT, "%s with unknown flags "
				   "0x%x", name, rr->flags);
	if (rr->flags & ~allowed)
		return reader_fail(r, -EPROTO, "%s with the zstd flag", name);
	return 0;
}

static int check_no_payload(struct dmrepl_stream_reader *r,
			    const struct raw_record *rr)
{
	if (rr->payload_len)
		return reader_fail(r, -EPROTO, "%s with a payload of %" PRIu32
				   " bytes", dmrepl_stream_type_name(rr->type),
				   rr->payload_len);
	return 0;
}

static int read_range(struct dmrepl_stream_reader *r,
		      const struct raw_record *rr,
		      struct dmrepl_stream_record *ret)
{
	bool data = rr->type == DMREPL_REC_DATA;
	char why[WHY_SIZE];
	int e;

	if ((e = check_flags(r, rr, data ? DMREPL_REC_FLAG_ZSTD : 0)) < 0)
		return e;
	e = check_range(&r->order, rr->type, rr->offset, rr->length,
			data ? DMREPL_STREAM_MAX_DATA : UINT64_MAX, why);
	if (e < 0)
		return reader_fail(r, e, "%s", why);
	ret->data = NULL;
	if (!data) {
		if ((e = check_no_payload(r, rr)) < 0)
			return e;
	} else if (!(rr->flags & DMREPL_REC_FLAG_ZSTD)) {
		if (rr->payload_len != rr->length)
			return reader_fail(r, -EPROTO, "DATA %" PRIu64 "+%" PRIu64
					   " with a payload of %" PRIu32 " bytes",
					   rr->offset, rr->length, rr->payload_len);
		ret->data = rr->payload;
	} else if (!r->zstd) {
		return reader_fail(r, -EPROTO, "zstd DATA in a stream without "
				   "the zstd flag");
	} else if ((e = decompress(r, rr, &ret->data)) < 0) {
		return e;
	}
	r->order.next = rr->offset + rr->length;
	if (data)
		r->data_bytes += rr->length;
	return 0;
}

static int read_checkpoint(struct dmrepl_stream_reader *r,
			   const struct raw_record *rr)
{
	char why[WHY_SIZE];
	int e;

	if ((e = check_flags(r, rr, 0)) < 0 || (e = check_no_payload(r, rr)) < 0)
		return e;
	if (rr->length)
		return reader_fail(r, -EPROTO, "CHECKPOINT with length %" PRIu64,
				   rr->length);
	e = check_checkpoint(&r->order, rr->offset, why);
	if (e < 0)
		return reader_fail(r, e, "%s", why);
	r->order.next = rr->offset;
	return 0;
}

static int read_end(struct dmrepl_stream_reader *r, const struct raw_record *rr)
{
	XXH128_hash_t d;
	uint64_t records, bytes;
	int e;

	if ((e = check_flags(r, rr, 0)) < 0)
		return e;
	if (rr->offset || rr->length || rr->payload_len != DMREPL_STREAM_END_PAYLOAD)
		return reader_fail(r, -EPROTO, "END with offset %" PRIu64
				   ", length %" PRIu64 ", payload %" PRIu32
				   " bytes", rr->offset, rr->length,
				   rr->payload_len);
	records = get_le64(rr->payload, 0);
	bytes = get_le64(rr->payload, 8);
	if (records != r->seq || bytes != r->data_bytes)
		return reader_fail(r, -EBADMSG, "END counts %" PRIu64 " records "
				   "and %" PRIu64 " DATA bytes, but %" PRIu64
				   " and %" PRIu64 " were read", records, bytes,
				   r->seq, r->data_bytes);
	d = XXH3_128bits_digest(r->digest);
	if (d.high64 != get_le64(rr->payload, 16) ||
	    d.low64 != get_le64(rr->payload, 24))
		return reader_fail(r, -EBADMSG, "stream digest mismatch");
	return 0;
}

/* Read one record and check its checksum; nothing else. */
static int read_raw(struct dmrepl_stream_reader *r, struct raw_record *rr)
{
	const uint8_t *h;
	int e;

	r->rec_pos = r->pos;
	if ((e = reader_fetch(r, DMREPL_STREAM_RECORD_LEN, r->rec, &h)) < 0)
		return reader_fetch_fail(r, e);
	rr->payload_len = get_le32(h, R_PAYLOAD_LEN);
	if (rr->payload_len > DMREPL_STREAM_MAX_PAYLOAD)
		return reader_fail(r, -EPROTO, "payload length %" PRIu32
				   " over the limit %u", rr->payload_len,
				   DMREPL_STREAM_MAX_PAYLOAD);
	e = reader_fetch(r, rr->payload_len, r->payload, &rr->payload);
	if (e < 0)
		return reader_fetch_fail(r, e);
	rr->type = rd16(h, R_TYPE);
	rr->flags = rd16(h, R_FLAGS);
	rr->seq = get_le64(h, R_SEQ);
	rr->offset = get_le64(h, R_OFFSET);
	rr->length = get_le64(h, R_LENGTH);
	XXH3_64bits_reset(r->sum);
	XXH3_64bits_update(r->sum, h, R_CHECKSUM);
	if (rr->payload_len)
		XXH3_64bits_update(r->sum, rr->payload, rr->payload_len);
	if (XXH3_64bits_digest(r->sum) != get_le64(h, R_CHECKSUM))
		return reader_fail(r, -EBADMSG, "checksum mismatch (%s %" PRIu64
				   "+%" PRIu64 ")", dmrepl_stream_type_name(rr->type),
				   rr->offset, rr->length);
	if (rr->seq != r->seq)
		return reader_fail(r, -EPROTO, "sequence number %" PRIu64
				   ", expected %" PRIu64, rr->seq, r->seq);
	if (rr->type != DMREPL_REC_END) {
		XXH3_128bits_update(r->digest, h, DMREPL_STREAM_RECORD_LEN);
		if (rr->payload_len)
			XXH3_128bits_update(r->digest, rr->payload, rr->payload_len);
	}
	return 0;
}

static int read_known(struct dmrepl_stream_reader *r,
		      const struct raw_record *rr,
		      struct dmrepl_stream_record *ret)
{
	switch (rr->type) {
	case DMREPL_REC_DATA:
	case DMREPL_REC_DISCARD:
	case DMREPL_REC_ZERO:
		return read_range(r, rr, ret);
	case DMREPL_REC_CHECKPOINT:
		return read_checkpoint(r, rr);
	case DMREPL_REC_END:
		return read_end(r, rr);
	}
	return reader_fail(r, -EPROTONOSUPPORT, "unknown required record "
			   "type %u", rr->type);
}

int dmrepl_stream_read_record(struct dmrepl_stream_reader *r,
			      struct dmrepl_stream_record *ret)
{
	struct dmrepl_stream_record rec = {0};
	struct raw_record rr;
	int e;

	if (!r || !ret)
		return -EINVAL;
	if ((e = reader_usable(r, false)) < 0)
		return e;
	for (;;) {
		if ((e = read_raw(r, &rr)) < 0)
			return e;
		if (!(rr.type & DMREPL_REC_OPTIONAL))
			break;
		/* An optional record: this version knows none. */
		dbg(r->ctx, "%s: record %" PRIu64 ": optional type 0x%x skipped",
		    r->name, r->seq, rr.type);
		r->seq++;
	}
	if ((e = read_known(r, &rr, &rec)) < 0)
		return e;
	rec.type = rr.type;
	rec.seq = rr.seq;
	rec.offset = rr.offset;
	rec.length = rr.length;
	if (rr.type == DMREPL_REC_END)
		r->ended = true;
	else
		r->seq++;
	*ret = rec;
	return 0;
}

void dmrepl_stream_reader_get_stats(const struct dmrepl_stream_reader *r,
				    struct dmrepl_stream_stats *ret)
{
	ret->records = r->seq;
	ret->data_bytes = r->data_bytes;
	ret->wire_bytes = r->pos;
}

void dmrepl_stream_writer_set_cancel(struct dmrepl_stream_writer *w,
				     const volatile int *cancel)
{
	w->cancel = cancel;
}

void dmrepl_stream_writer_set_bwlimit(struct dmrepl_stream_writer *w,
				      uint64_t bytes_per_sec)
{
	dmrepl_ratelimit_init(&w->limit, bytes_per_sec);
}

void dmrepl_stream_reader_set_cancel(struct dmrepl_stream_reader *r,
				     const volatile int *cancel)
{
	r->cancel = cancel;
}

void dmrepl_stream_reader_set_quiet_empty(struct dmrepl_stream_reader *r)
{
	r->quiet_empty = true;
}
