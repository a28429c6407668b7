/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The replication stream codec (lib/stream.c) against
 * doc/stream-format.md: the writer's bytes match an encoder written here
 * from the specification alone; round trips through a memfd, a pipe and
 * memory, raw and zstd; optional records and header extensions; every
 * single-byte flip and every truncation of small streams is an error
 * and never a different record sequence; each fault has its -errno and
 * a message naming the record and its byte position; the writer refuses
 * what breaks the ordering rules; the identity hash follows its
 * documented serialization.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "libdmrepl-private.h"
#include "stream.h"
#include "transfer.h"
#include "unit.h"

#define KiB 1024u
#define MiB (1024u * 1024u)
#define VOLUME (64ull * MiB)
#define MAX_RECS 64

static struct dmrepl_ctx *ctx;
static char last_err[1024];
static unsigned int nr_errs;

__attribute__((format(printf, 6, 0))) static void
capture_log(struct dmrepl_ctx *c, int priority, const char *file, int line,
	    const char *fn, const char *format, va_list args, void *userdata)
{
	(void)c, (void)file, (void)line, (void)fn, (void)userdata;
	if (priority > LOG_ERR)
		return;
	vsnprintf(last_err, sizeof(last_err), format, args);
	nr_errs++;
}

static void log_reset(void)
{
	last_err[0] = '\0';
	nr_errs = 0;
}

static int suite_init(void)
{
	if (dmrepl_new(&ctx) < 0)
		return -1;
	dmrepl_set_log_fn(ctx, capture_log, NULL);
	dmrepl_set_log_priority(ctx, LOG_ERR);
	signal(SIGPIPE, SIG_IGN);
	return 0;
}

static int suite_clean(void)
{
	dmrepl_unref(ctx);
	return 0;
}

/* Deterministic bytes; @seed 0 gives compressible text-like bytes. */
static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		if (!seed) {
			buf[i] = (uint8_t)("stream of blocks "[i % 17]);
			continue;
		}
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = (uint8_t)x;
	}
}

static struct dmrepl_stream_header sample_header(uint32_t flags)
{
	struct dmrepl_stream_header h = {
	    .required_flags = flags,
	    .optional_flags = 0,
	    .data_block_size = 64 * KiB,
	    .volume_size = VOLUME,
	    .time = 1790000000,
	    .src_pool = "vg-pool-tpool",
	    .snap = {.thin_id = 7, .creation_time = 3, .root = 4242, .mapped_blocks = 100},
	};

	for (int i = 0; i < 16; i++)
		h.stream_id[i] = (uint8_t)(0xa0 + i);
	if (flags & DMREPL_STREAM_FLAG_BASE)
		h.base = (struct dmrepl_thin_ident){.thin_id = 5, .creation_time = 2,
						    .root = 99, .mapped_blocks = 80};
	if (flags & DMREPL_STREAM_FLAG_RESUMED)
		h.resume_offset = 8 * MiB;
	return h;
}

/* ---- an encoder written from doc/stream-format.md alone ---- */

struct enc {
	uint8_t *buf;
	size_t len;
};

static void p16(uint8_t *b, uint16_t v)
{
	b[0] = (uint8_t)v;
	b[1] = (uint8_t)(v >> 8);
}

static void p32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static void p64(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static void enc_ident(uint8_t *b, const struct dmrepl_thin_ident *id)
{
	p64(b, id->thin_id);
	p32(b + 8, id->creation_time);
	p32(b + 12, 0);
	p64(b + 16, id->root);
	p64(b + 24, id->mapped_blocks);
}

static void enc_init(struct enc *e)
{
	e->buf = calloc(1, 10 * MiB);
	e->len = 0;
}

static void enc_header(struct enc *e, const struct dmrepl_stream_header *h,
		       uint16_t version, uint16_t header_len)
{
	uint8_t *b = e->buf;

	memset(b, 0, header_len);
	memcpy(b, "DMREPLST", 8);
	p16(b + 8, version);
	p16(b + 10, header_len);
	p32(b + 12, h->required_flags);
	p32(b + 16, h->optional_flags);
	p32(b + 20, h->data_block_size);
	p64(b + 24, h->volume_size);
	p64(b + 32, h->resume_offset);
	p64(b + 40, h->time);
	memcpy(b + 48, h->stream_id, 16);
	memcpy(b + 64, h->src_pool, strlen(h->src_pool));
	enc_ident(b + 192, &h->snap);
	if (h->required_flags & DMREPL_STREAM_FLAG_BASE)
		enc_ident(b + 224, &h->base);
	for (unsigned int i = 256; i < header_len - 8u; i++)
		b[i] = (uint8_t)i;	/* fields of a later minor version */
	p64(b + header_len - 8, XXH3_64bits(b, header_len - 8u));
	e->len = header_len;
}

static void enc_record(struct enc *e, uint16_t type, uint16_t flags,
		       uint64_t seq, uint64_t offset, uint64_t length,
		       const void *payload, uint32_t payload_len)
{
	uint8_t *b = e->buf + e->len;
	uint8_t *tmp = malloc(32 + (size_t)payload_len);

	p16(b, type);
	p16(b + 2, flags);
	p32(b + 4, payload_len);
	p64(b + 8, seq);
	p64(b + 16, offset);
	p64(b + 24, length);
	memcpy(tmp, b, 32);
	if (payload_len)
		memcpy(tmp + 32, payload, payload_len);
	p64(b + 32, XXH3_64bits(tmp, 32 + (size_t)payload_len));
	if (payload_len)
		memcpy(b + 40, payload, payload_len);
	free(tmp);
	e->len += 40 + (size_t)payload_len;
}

static void enc_end(struct enc *e, uint64_t seq, uint64_t records,
		    uint64_t data_bytes)
{
	XXH128_hash_t d = XXH3_128bits(e->buf, e->len);
	uint8_t p[32];

	p64(p, records);
	p64(p + 8, data_bytes);
	p64(p + 16, d.high64);
	p64(p + 24, d.low64);
	enc_record(e, DMREPL_REC_END, 0, seq, 0, 0, p, sizeof(p));
}

/* ---- decoding ---- */

struct rec {
	uint16_t type;
	uint64_t seq, offset, length, data_hash;
};

struct decoded {
	struct dmrepl_stream_header h;
	struct rec rec[MAX_RECS];
	size_t n;		/* records returned before the error or END */
	bool ended;
	int err;
	struct dmrepl_stream_stats stats;
};

static int decode_with(struct dmrepl_stream_reader *r, struct decoded *d)
{
	struct dmrepl_stream_record rec;
	int e;

	memset(d, 0, sizeof(*d));
	e = dmrepl_stream_read_header(r, &d->h);
	while (e == 0 && d->n < MAX_RECS) {
		e = dmrepl_stream_read_record(r, &rec);
		if (e < 0)
			break;
		if (rec.type == DMREPL_REC_END) {
			d->ended = true;
			break;
		}
		d->rec[d->n++] = (struct rec){
		    .type = rec.type, .seq = rec.seq, .offset = rec.offset,
		    .length = rec.length,
		    .data_hash = rec.type == DMREPL_REC_DATA ?
				 XXH3_64bits(rec.data, rec.length) : 0,
		};
	}
	d->err = e;
	dmrepl_stream_reader_get_stats(r, &d->stats);
	return e;
}

static int decode_mem(const void *buf, size_t len, struct decoded *d)
{
	struct dmrepl_stream_reader *r = NULL;
	int e;

	log_reset();
	CU_ASSERT_EQUAL_FATAL(dmrepl_stream_reader_new_mem(ctx, buf, len, &r), 0);
	e = decode_with(r, d);
	dmrepl_stream_reader_free(r);
	return e;
}

static int memfd_with(const void *buf, size_t len)
{
	int fd = memfd_create("stream", 0);

	CU_ASSERT_FATAL(fd >= 0);
	CU_ASSERT_FATAL(len == 0 || write(fd, buf, len) == (ssize_t)len);
	CU_ASSERT_FATAL(lseek(fd, 0, SEEK_SET) == 0);
	return fd;
}

static int decode_fd(const void *buf, size_t len, struct decoded *d)
{
	struct dmrepl_stream_reader *r = NULL;
	int fd = memfd_with(buf, len), e;

	log_reset();
	CU_ASSERT_EQUAL_FATAL(dmrepl_stream_reader_new(ctx, fd, "standard input", &r), 0);
	e = decode_with(r, d);
	dmrepl_stream_reader_free(r);
	close(fd);
	return e;
}

/* The whole content of memfd @fd. */
static uint8_t *slurp(int fd, size_t *ret_len)
{
	off_t end = lseek(fd, 0, SEEK_END);
	uint8_t *buf = malloc(end > 0 ? (size_t)end : 1);

	CU_ASSERT_FATAL(buf && pread(fd, buf, (size_t)end, 0) == end);
	*ret_len = (size_t)end;
	return buf;
}

static bool same_rec(const struct rec *a, const struct rec *b)
{
	return a->type == b->type && a->seq == b->seq && a->offset == b->offset &&
	       a->length == b->length && a->data_hash == b->data_hash;
}

/* ---- writer output against the specification ---- */

/* The same stream from the writer and from enc; level 0 (raw). */
static void test_wire_bytes(void)
{
	struct dmrepl_stream_header h = sample_header(DMREPL_STREAM_FLAG_BASE);
	struct dmrepl_stream_writer *w = NULL;
	static uint8_t data[8192];
	struct enc e;
	uint8_t *got;
	size_t len;
	int fd = memfd_with(NULL, 0);

	fill(data, sizeof(data), 3);
	CU_ASSERT_EQUAL_FATAL(dmrepl_stream_writer_new(ctx, fd, "out", &h, 0, &w), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_data(w, 4096, data, 8192), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_discard(w, 16384, 1 * MiB), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_zero(w, 2 * MiB, 512), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_checkpoint(w, 3 * MiB), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_end(w), 0);
	dmrepl_stream_writer_free(w);
	got = slurp(fd, &len);
	close(fd);

	enc_init(&e);
	enc_header(&e, &h, 1, 264);
	enc_record(&e, DMREPL_REC_DATA, 0, 0, 4096, 8192, data, 8192);
	enc_record(&e, DMREPL_REC_DISCARD, 0, 1, 16384, 1 * MiB, NULL, 0);
	enc_record(&e, DMREPL_REC_ZERO, 0, 2, 2 * MiB, 512, NULL, 0);
	enc_record(&e, DMREPL_REC_CHECKPOINT, 0, 3, 3 * MiB, 0, NULL, 0);
	enc_end(&e, 4, 4, 8192);
	CU_ASSERT_EQUAL(len, e.len);
	CU_ASSERT(len == e.len && memcmp(got, e.buf, len) == 0);
	free(got);
	free(e.buf);
}

/* The example of doc/stream-format.md, section 14. */
static void test_known_answer(void)
{
	struct dmrepl_stream_header h = {
	    .data_block_size = 65536, .volume_size = 1u << 20, .time = 1790000000,
	    .src_pool = "vg-pool-tpool",
	    .snap = {.thin_id = 1, .creation_time = 0, .root = 20, .mapped_blocks = 1},
	};
	struct dmrepl_stream_writer *w = NULL;
	uint8_t data[512], *got;
	int fd = memfd_with(NULL, 0);
	size_t len;

	memset(data, 0xab, sizeof(data));
	for (int i = 0; i < 16; i++)
		h.stream_id[i] = (uint8_t)i;
	CU_ASSERT_EQUAL_FATAL(dmrepl_stream_writer_new(ctx, fd, "ex", &h, 0, &w), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_data(w, 0, data, 512), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_discard(w, 65536, 65536), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_checkpoint(w, 131072), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_end(w), 0);
	dmrepl_stream_writer_free(w);
	got = slurp(fd, &len);
	close(fd);
	CU_ASSERT_EQUAL_FATAL(len, 968);
	CU_ASSERT(memcmp(got + 0x100, "\xf1\x71\x24\x46\x7e\xe0\xec\xbe", 8) == 0);
	CU_ASSERT(memcmp(got + 0x3b8, "\x33\x64\x6b\x2f\x86\x5a\x5e\xd4"
			 "\x7a\x12\x22\xa5\x80\x05\x2e\xf4", 16) == 0);
	CU_ASSERT_EQUAL(XXH3_64bits(got, len), 0x8d2b9f26c7f9dbeaull);
	CU_ASSERT_EQUAL(dmrepl_stream_identity_hash(&h), 0x6265894daf192311ull);
	free(got);
}

/* ---- round trips ---- */

static const uint32_t sizes[] = {512, 4096, 65536 + 512, 1 * MiB, DMREPL_STREAM_MAX_DATA};

/* A stream of every record type; DATA of every size, half compressible. */
static uint8_t *write_stream(uint32_t flags, int level, size_t *ret_len,
			     struct dmrepl_stream_stats *ret_stats)
{
	struct dmrepl_stream_header h = sample_header(flags);
	struct dmrepl_stream_writer *w = NULL;
	uint8_t *data = malloc(DMREPL_STREAM_MAX_DATA), *out;
	uint64_t off = h.resume_offset;
	int fd = memfd_with(NULL, 0);

	memset(h.stream_id, 0, sizeof(h.stream_id));	/* random */
	CU_ASSERT_EQUAL_FATAL(dmrepl_stream_writer_new(ctx, fd, "out", &h, level, &w), 0);
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		fill(data, sizes[i], i % 2 ? 0 : (uint32_t)i + 1);
		CU_ASSERT_EQUAL(dmrepl_stream_write_data(w, off, data, sizes[i]), 0);
		off += sizes[i];
		CU_ASSERT_EQUAL(dmrepl_stream_write_discard(w, off, 4096), 0);
		CU_ASSERT_EQUAL(dmrepl_stream_write_zero(w, off + 4096, 512), 0);
		off += 1 * MiB;
		CU_ASSERT_EQUAL(dmrepl_stream_write_checkpoint(w, off), 0);
	}
	CU_ASSERT_EQUAL(dmrepl_stream_write_end(w), 0);
	dmrepl_stream_writer_get_stats(w, ret_stats);
	dmrepl_stream_writer_free(w);
	out = slurp(fd, ret_len);
	close(fd);
	free(data);
	return out;
}

static void check_stream(const struct decoded *d, uint32_t flags, bool zstd)
{
	struct dmrepl_stream_header h = sample_header(flags);
	uint8_t *data = malloc(DMREPL_STREAM_MAX_DATA);
	uint64_t off = h.resume_offset;
	size_t k = 0;

	CU_ASSERT_EQUAL(d->err, 0);
	CU_ASSERT(d->ended);
	CU_ASSERT_EQUAL(d->h.required_flags,
			flags | (zstd ? DMREPL_STREAM_FLAG_ZSTD : 0));
	CU_ASSERT_EQUAL(d->h.volume_size, h.volume_size);
	CU_ASSERT_EQUAL(d->h.data_block_size, h.data_block_size);
	CU_ASSERT_EQUAL(d->h.resume_offset, h.resume_offset);
	CU_ASSERT_EQUAL(d->h.time, h.time);
	CU_ASSERT_STRING_EQUAL(d->h.src_pool, h.src_pool);
	CU_ASSERT(dmrepl_thin_ident_equal(&d->h.snap, &h.snap));
	CU_ASSERT(dmrepl_thin_ident_equal(&d->h.base, &h.base));
	CU_ASSERT_NOT_EQUAL(memcmp(d->h.stream_id, (uint8_t[16]){0}, 16), 0);
	CU_ASSERT_EQUAL_FATAL(d->n, 4 * ARRAY_SIZE(sizes));
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++, k += 4) {
		fill(data, sizes[i], i % 2 ? 0 : (uint32_t)i + 1);
		CU_ASSERT(same_rec(&d->rec[k], &(struct rec){DMREPL_REC_DATA, k, off,
				   sizes[i], XXH3_64bits(data, sizes[i])}));
		off += sizes[i];
		CU_ASSERT(same_rec(&d->rec[k + 1], &(struct rec){DMREPL_REC_DISCARD,
				   k + 1, off, 4096, 0}));
		CU_ASSERT(same_rec(&d->rec[k + 2], &(struct rec){DMREPL_REC_ZERO,
				   k + 2, off + 4096, 512, 0}));
		off += 1 * MiB;
		CU_ASSERT(same_rec(&d->rec[k + 3], &(struct rec){DMREPL_REC_CHECKPOINT,
				   k + 3, off, 0, 0}));
	}
	free(data);
}

static void round_trip(uint32_t flags, int level)
{
	struct dmrepl_stream_stats ws;
	struct decoded *d = malloc(sizeof(*d));
	uint64_t data_bytes = 0;
	size_t len;
	uint8_t *s = write_stream(flags, level, &len, &ws);

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++)
		data_bytes += sizes[i];
	CU_ASSERT_EQUAL(ws.records, 4 * ARRAY_SIZE(sizes));
	CU_ASSERT_EQUAL(ws.data_bytes, data_bytes);
	CU_ASSERT_EQUAL(ws.wire_bytes, len);
	if (level > 0) {	/* the compressible half shrank */
		CU_ASSERT(len < data_bytes - 1 * MiB + 64 * KiB);
	} else {
		CU_ASSERT(len > data_bytes);
	}

	CU_ASSERT_EQUAL(decode_mem(s, len, d), 0);
	check_stream(d, flags, level > 0);
	CU_ASSERT(memcmp(&d->stats, &ws, sizeof(ws)) == 0);
	CU_ASSERT_EQUAL(nr_errs, 0);
	CU_ASSERT_EQUAL(decode_fd(s, len, d), 0);
	check_stream(d, flags, level > 0);
	CU_ASSERT(memcmp(&d->stats, &ws, sizeof(ws)) == 0);
	free(s);
	free(d);
}

static void test_round_trip_raw(void)
{
	round_trip(0, 0);
}

static void test_round_trip_zstd(void)
{
	round_trip(0, 3);
}

/* An incremental, resumed stream; its records start at resume_offset. */
static void test_round_trip_resumed(void)
{
	uint32_t f = DMREPL_STREAM_FLAG_BASE | DMREPL_STREAM_FLAG_RESUMED;
	struct dmrepl_stream_header h = sample_header(f);
	struct dmrepl_stream_writer *w = NULL;
	struct decoded d;
	struct enc e;
	int fd = memfd_with(NULL, 0);
	uint8_t data[512] = {1};

	round_trip(f, 1);

	/* The writer refuses a range or checkpoint below resume_offset. */
	CU_ASSERT_EQUAL_FATAL(dmrepl_stream_writer_new(ctx, fd, "out", &h, 0, &w), 0);
	log_reset();
	CU_ASSERT_EQUAL(dmrepl_stream_write_data(w, h.resume_offset - 512, data, 512), -EINVAL);
	CU_ASSERT(strstr(last_err, "out of order") != NULL);
	CU_ASSERT_EQUAL(dmrepl_stream_write_checkpoint(w, 0), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_stream_write_data(w, h.resume_offset, data, 512), 0);
	dmrepl_stream_writer_free(w);
	close(fd);

	/* So does the reader. */
	enc_init(&e);
	enc_header(&e, &h, 1, 264);
	enc_record(&e, DMREPL_REC_ZERO, 0, 0, h.resume_offset - 4096, 4096, NULL, 0);
	CU_ASSERT_EQUAL(decode_mem(e.buf, e.len, &d), -EPROTO);
	CU_ASSERT(strstr(last_err, "out of order") != NULL);
	/* resume_offset without the flag, or past the volume. */
	h = sample_header(0);
	h.resume_offset = 4096;
	enc_header(&e, &h, 1, 264);
	CU_ASSERT_EQUAL(decode_mem(e.buf, e.len, &d), -EPROTO);
	h = sample_header(DMREPL_STREAM_FLAG_RESUMED);
	h.resume_offset = VOLUME + 512;
	enc_header(&e, &h, 1, 264);
	CU_ASSERT_EQUAL(decode_mem(e.buf, e.len, &d), -ERANGE);
	h.resume_offset = VOLUME;	/* nothing left: a valid, empty stream */
	enc_header(&e, &h, 1, 264);
	enc_end(&e, 0, 0, 0);
	CU_ASSERT_EQUAL(decode_mem(e.buf, e.len, &d), 0);
	CU_ASSERT(d.ended);
	free(e.buf);
}

/* A writer in a child process, a pipe, the fd reader in this one. */
static void test_pipe(void)
{
	struct dmrepl_stream_header h = sample_header(0);
	struct dmrepl_stream_reader *r = NULL;
	struct dmrepl_stream_record rec;
	struct dmrepl_stream_header got;
	uint8_t *data = malloc(DMREPL_STREAM_MAX_DATA), *want = malloc(DMREPL_STREAM_MAX_DATA);
	char trailer[8] = {0};
	int p[2], status, e = 0;
	uint64_t n = 0;
	pid_t pid;

	CU_ASSERT_FATAL(pipe(p) == 0);
	pid = fork();
	CU_ASSERT_FATAL(pid >= 0);
	if (pid == 0) {
		struct dmrepl_stream_writer *w = NULL;

		close(p[0]);
		if (dmrepl_stream_writer_new(ctx, p[1], "pipe", &h, 1, &w) < 0)
			_exit(1);
		for (uint32_t i = 0; i < 12; i++) {
			fill(data, DMREPL_STREAM_MAX_DATA, i % 3 ? i : 0);
			if (dmrepl_stream_write_data(w, (uint64_t)i * DMREPL_STREAM_MAX_DATA,
						     data, DMREPL_STREAM_MAX_DATA) < 0)
				_exit(2);
		}
		if (dmrepl_stream_write_end(w) < 0 || write(p[1], "TRAILER", 8) != 8)
			_exit(3);
		dmrepl_stream_writer_free(w);
		_exit(0);
	}
	close(p[1]);
	CU_ASSERT_EQUAL_FATAL(dmrepl_stream_reader_new(ctx, p[0], "pipe", &r), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_read_header(r, &got), 0);
	CU_ASSERT_EQUAL(got.required_flags, DMREPL_STREAM_FLAG_ZSTD);
	while ((e = dmrepl_stream_read_record(r, &rec)) == 0 && rec.type == DMREPL_REC_DATA) {
		fill(want, DMREPL_STREAM_MAX_DATA, n % 3 ? (uint32_t)n : 0);
		CU_ASSERT_EQUAL(rec.offset, n * DMREPL_STREAM_MAX_DATA);
		CU_ASSERT(memcmp(rec.data, want, DMREPL_STREAM_MAX_DATA) == 0);
		n++;
	}
	CU_ASSERT_EQUAL(e, 0);
	CU_ASSERT_EQUAL(rec.type, DMREPL_REC_END);
	CU_ASSERT_EQUAL(n, 12);
	/* The reader stopped at END: what follows is still in the pipe. */
	CU_ASSERT_EQUAL(read(p[0], trailer, 8), 8);
	CU_ASSERT_STRING_EQUAL(trailer, "TRAILER");
	/* After END: -EINVAL. */
	CU_ASSERT_EQUAL(dmrepl_stream_read_record(r, &rec), -EINVAL);
	dmrepl_stream_reader_free(r);
	close(p[0]);
	CU_ASSERT(waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
		  WEXITSTATUS(status) == 0);
	free(data);
	free(want);
}

/* A chain: two streams back to back on one fd, one reader each. */
static void test_chain(void)
{
	struct dmrepl_stream_header h = sample_header(0);
	struct dmrepl_stream_writer *w = NULL;
	struct decoded d;
	uint8_t data[4096];
	int fd = memfd_with(NULL, 0);

	fill(data, sizeof(data), 0);
	for (int i = 0; i < 2; i++) {
		h.optional_flags = i == 0 ? DMREPL_STREAM_OPT_MORE : 0;
		h.snap.thin_id = 10 + (uint64_t)i;
		CU_ASSERT_EQUAL_FATAL(dmrepl_stream_writer_new(ctx, fd, "out", &h, 1, &w), 0);
		CU_ASSERT_EQUAL(dmrepl_stream_write_data(w, 0, data, sizeof(data)), 0);
		CU_ASSERT_EQUAL(dmrepl_stream_write_end(w), 0);
		dmrepl_stream_writer_free(w);
	}
	CU_ASSERT_FATAL(lseek(fd, 0, SEEK_SET) == 0);
	for (int i = 0; i < 2; i++) {
		struct dmrepl_stream_reader *r = NULL;

		CU_ASSERT_EQUAL_FATAL(dmrepl_stream_reader_new(ctx, fd, "chain", &r), 0);
		CU_ASSERT_EQUAL(decode_with(r, &d), 0);
		CU_ASSERT(d.ended);
		CU_ASSERT_EQUAL(d.h.snap.thin_id, 10 + (uint64_t)i);
		CU_ASSERT_EQUAL(d.h.optional_flags, i == 0 ? DMREPL_STREAM_OPT_MORE : 0u);
		CU_ASSERT_EQUAL(d.n, 1);
		dmrepl_stream_reader_free(r);
	}
	close(fd);
}

/* Optional records are skipped, header extensions and optional flags ignored. */
static void test_optional(void)
{
	struct dmrepl_stream_header h = sample_header(0);
	uint8_t data[1024], extra[100];
	struct decoded d;
	struct enc e;

	fill(data, sizeof(data), 9);
	fill(extra, sizeof(extra), 10);
	h.optional_flags = 0x80000001u;
	enc_init(&e);
	enc_header(&e, &h, 1, 300);
	enc_record(&e, DMREPL_REC_DATA, 0, 0, 0, 1024, data, 1024);
	enc_record(&e, DMREPL_REC_OPTIONAL | 7, 0xffff, 1, 123, 456, extra, sizeof(extra));
	enc_record(&e, DMREPL_REC_OPTIONAL | DMREPL_REC_DATA, 0, 2, 0, 0, NULL, 0);
	enc_record(&e, DMREPL_REC_ZERO, 0, 3, 1024, 512, NULL, 0);
	enc_end(&e, 4, 4, 1024);
	CU_ASSERT_EQUAL(decode_mem(e.buf, e.len, &d), 0);
	CU_ASSERT(d.ended);
	CU_ASSERT_EQUAL(d.h.optional_flags, 0x80000001u);
	CU_ASSERT_EQUAL_FATAL(d.n, 2);
	CU_ASSERT(same_rec(&d.rec[0], &(struct rec){DMREPL_REC_DATA, 0, 0, 1024,
			   XXH3_64bits(data, 1024)}));
	CU_ASSERT(same_rec(&d.rec[1], &(struct rec){DMREPL_REC_ZERO, 3, 1024, 512, 0}));
	CU_ASSERT_EQUAL(d.stats.records, 4);
	CU_ASSERT_EQUAL(d.stats.wire_bytes, e.len);
	CU_ASSERT_EQUAL(decode_fd(e.buf, e.len, &d), 0);
	CU_ASSERT_EQUAL(d.n, 2);

	/* END must count the skipped records too. */
	e.len -= 72;
	enc_end(&e, 4, 2, 1024);
	CU_ASSERT_EQUAL(decode_mem(e.buf, e.len, &d), -EBADMSG);
	CU_ASSERT(strstr(last_err, "END counts 2 records") != NULL);
	/* A damaged optional record is still an error. */
	e.len -= 72;
	enc_end(&e, 4, 4, 1024);
	e.buf[300 + 40 + 1024 + 40 + 5] ^= 1;
	CU_ASSERT_EQUAL(decode_mem(e.buf, e.len, &d), -EBADMSG);
	CU_ASSERT(strstr(last_err, "record 1 at byte 1364: checksum mismatch") != NULL);
	free(e.buf);
}

/* ---- damage ---- */

/* A small stream of every record type, raw or with one zstd DATA. */
static void small_stream(struct enc *e, bool zstd)
{
	struct dmrepl_stream_header h = sample_header(DMREPL_STREAM_FLAG_BASE |
						      (zstd ? DMREPL_STREAM_FLAG_ZSTD : 0));
	uint8_t data[2048], frame[256];
	size_t n;

	fill(data, sizeof(data), 0);
	enc_init(e);
	enc_header(e, &h, 1, 264);
	enc_record(e, DMREPL_REC_DATA, 0, 0, 0, 512, data, 512);
	enc_record(e, DMREPL_REC_DISCARD, 0, 1, 4096, 8192, NULL, 0);
	enc_record(e, DMREPL_REC_ZERO, 0, 2, 12288, 1024, NULL, 0);
	enc_record(e, DMREPL_REC_CHECKPOINT, 0, 3, 16384, 0, NULL, 0);
	if (zstd) {
		n = ZSTD_compress(frame, sizeof(frame), data, sizeof(data), 3);
		CU_ASSERT_FATAL(!ZSTD_isError(n));
		enc_record(e, DMREPL_REC_DATA, DMREPL_REC_FLAG_ZSTD, 4, 16384,
			   2048, frame, (uint32_t)n);
	} else {
		enc_record(e, DMREPL_REC_DATA, 0, 4, 16384, 2048, data, 2048);
	}
	enc_end(e, 5, 5, 2560);
}

static bool known_error(int e)
{
	return e == -ENODATA || e == -EBADMSG || e == -EPROTO ||
	       e == -EPROTONOSUPPORT || e == -ERANGE;
}

/* Every single-byte change is an error, after a prefix of the records. */
static void flip_every_byte(bool zstd)
{
	struct decoded *good = malloc(sizeof(*good)), *d = malloc(sizeof(*d));
	static const uint8_t masks[] = {0x01, 0x80, 0xff};
	unsigned int bad = 0, wrong_prefix = 0, logged = 0;
	struct enc e;

	small_stream(&e, zstd);
	CU_ASSERT_EQUAL_FATAL(decode_mem(e.buf, e.len, good), 0);
	CU_ASSERT_EQUAL_FATAL(good->n, 5);
	for (size_t i = 0; i < e.len; i++) {
		for (size_t m = 0; m < ARRAY_SIZE(masks); m++) {
			e.buf[i] ^= masks[m];
			decode_mem(e.buf, e.len, d);
			e.buf[i] ^= masks[m];
			if (!known_error(d->err) || d->ended)
				bad++;
			for (size_t k = 0; k < d->n; k++)
				if (!same_rec(&d->rec[k], &good->rec[k]))
					wrong_prefix++;
			if (nr_errs == 1)
				logged++;
		}
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(wrong_prefix, 0);
	CU_ASSERT_EQUAL(logged, e.len * ARRAY_SIZE(masks));
	free(e.buf);
	free(good);
	free(d);
}

static void test_flip_every_byte(void)
{
	flip_every_byte(false);
	flip_every_byte(true);
}

/* Every truncation is -ENODATA, after a prefix of the records. */
static void truncate_everywhere(bool zstd)
{
	struct decoded *good = malloc(sizeof(*good)), *d = malloc(sizeof(*d));
	unsigned int bad = 0, wrong_prefix = 0, bad_fd = 0;
	char want[128];
	struct enc e;

	small_stream(&e, zstd);
	CU_ASSERT_EQUAL_FATAL(decode_mem(e.buf, e.len, good), 0);
	for (size_t len = 0; len < e.len; len++) {
		if (decode_mem(e.buf, len, d) != -ENODATA || nr_errs != 1)
			bad++;
		for (size_t k = 0; k < d->n; k++)
			if (!same_rec(&d->rec[k], &good->rec[k]))
				wrong_prefix++;
		if (decode_fd(e.buf, len, d) != -ENODATA)
			bad_fd++;
		if (len > 264) {
			snprintf(want, sizeof(want), "standard input: stream ended "
				 "early after %zu records at byte %zu", d->n, len);
			if (strcmp(last_err, want) != 0)
				bad_fd++;
		}
	}
	CU_ASSERT_EQUAL(bad, 0);
	CU_ASSERT_EQUAL(bad_fd, 0);
	CU_ASSERT_EQUAL(wrong_prefix, 0);
	decode_mem(e.buf, 0, d);
	CU_ASSERT(strstr(last_err, "empty stream") != NULL);
	decode_mem(e.buf, 100, d);
	CU_ASSERT(strstr(last_err, "ended early in its header at byte 100") != NULL);
	free(e.buf);
	free(good);
	free(d);
}

static void test_truncate_everywhere(void)
{
	truncate_everywhere(false);
	truncate_everywhere(true);
}

static void test_damaged_header(void)
{
	struct dmrepl_stream_header h = sample_header(0);
	struct decoded d;
	struct enc e;

	enc_init(&e);
	enc_header(&e, &h, 1, 264);
	enc_end(&e, 0, 0, 0);
	CU_ASSERT_EQUAL(decode_mem(e.buf, e.len, &d), 0);

	e.buf[30] ^= 4;	/* volume_size */
	CU_ASSERT_EQUAL(decode_fd(e.buf, e.len, &d), -EBADMSG);
	CU_ASSERT_STRING_EQUAL(last_err, "standard input: header: header checksum mismatch");
	e.buf[30] ^= 4;
	e.buf[0] = 'X';
	CU_ASSERT_EQUAL(decode_mem(e.buf, e.len, &d), -EBADMSG);
	CU_ASSERT(strstr(last_err, "bad magic") != NULL);

	/* Another version, header intact. */
	enc_header(&e, &h, 2, 264);
	CU_ASSERT_EQUAL(decode_mem(e.buf, e.len, &d), -EPROTONOSUPPORT);
	CU_ASSERT(strstr(last_err, "version 2") != NULL);
	/* Header lengths out of bounds: refused before reading on. */
	enc_header(&e, &h, 1, 264);
	p16(e.buf + 10, 263);
	CU_ASSERT_EQUAL(decode_mem(e.buf, e.len, &d), -EPROTO);
	p16(e.buf + 10, 4097);
	CU_ASSERT_EQUAL(decode_mem(e.buf, e.len, &d), -EPROTO);
	CU_ASSERT(strstr(last_err, "header length 4097 out of range") != NULL);
	CU_ASSERT_EQUAL(d.stats.wire_bytes, 12);
	/* The largest header. */
	enc_header(&e, &h, 1, 4096);
	enc_end(&e, 0, 0, 0);
	CU_ASSERT_EQUAL(decode_fd(e.buf, e.len, &d), 0);

	/* Unknown required flag. */
	h.required_flags = 1u << 3;
	enc_header(&e, &h, 1, 264);
	CU_ASSERT_EQUAL(decode_mem(e.buf, e.len, &d), -EPROTONOSUPPORT);
	CU_ASSERT(strstr(last_err, "unknown required flags 0x8") != NULL);
	/* Fields out of range, checksummed. */
	h = sample_header(0);
	h.volume_size = 0;
	enc_header(&e, &h, 1, 264);
	CU_ASSERT_EQUAL(decode_mem(e.buf, e.len, &d), -EPROTO);
	h = sample_header(0);
	h.data_block_size = 1000;
	enc_header(&e, &h, 1, 264);
	CU_ASSERT_EQUAL(decode_mem(e.buf, e.len, &d), -EPROTO);
	/* Base identity without FLAG_BASE. */
	h = sample_header(0);
	enc_header(&e, &h, 1, 264);
	e.buf[224] = 1;
	p64(e.buf + 256, XXH3_64bits(e.buf, 256));
	CU_ASSERT_EQUAL(decode_mem(e.buf, e.len, &d), -EPROTO);
	/* A pool name not NUL-padded, or not NUL-terminated. */
	enc_header(&e, &h, 1, 264);
	e.buf[64 + 100] = 'x';
	p64(e.buf + 256, XXH3_64bits(e.buf, 256));
	CU_ASSERT_EQUAL(decode_mem(e.buf, e.len, &d), -EPROTO);
	memset(e.buf + 64, 'x', 128);
	p64(e.buf + 256, XXH3_64bits(e.buf, 256));
	CU_ASSERT_EQUAL(decode_mem(e.buf, e.len, &d), -EPROTO);
	free(e.buf);
}

/* A stream with a good header, then what @fn encodes; its read error. */
static int craft(void (*fn)(struct enc *e), uint32_t flags, struct decoded *d)
{
	struct dmrepl_stream_header h = sample_header(flags);
	struct enc e;
	int r;

	enc_init(&e);
	enc_header(&e, &h, 1, 264);
	fn(&e);
	r = decode_mem(e.buf, e.len, d);
	free(e.buf);
	return r;
}

static uint8_t blk[8192];

static void c_out_of_order(struct enc *e)
{
	enc_record(e, DMREPL_REC_DATA, 0, 0, 8192, 512, blk, 512);
	enc_record(e, DMREPL_REC_DATA, 0, 1, 0, 512, blk, 512);
}

static void c_overlap(struct enc *e)
{
	enc_record(e, DMREPL_REC_DATA, 0, 0, 0, 4096, blk, 4096);
	enc_record(e, DMREPL_REC_ZERO, 0, 1, 2048, 4096, NULL, 0);
}

static void c_past_end(struct enc *e)
{
	enc_record(e, DMREPL_REC_DISCARD, 0, 0, VOLUME - 4096, 8192, NULL, 0);
}

static void c_wrapping(struct enc *e)
{
	enc_record(e, DMREPL_REC_ZERO, 0, 0, UINT64_MAX - 511, 1024, NULL, 0);
}

static void c_checkpoint_back(struct enc *e)
{
	enc_record(e, DMREPL_REC_CHECKPOINT, 0, 0, 8192, 0, NULL, 0);
	enc_record(e, DMREPL_REC_CHECKPOINT, 0, 1, 4096, 0, NULL, 0);
}

static void c_checkpoint_inside(struct enc *e)
{
	enc_record(e, DMREPL_REC_DATA, 0, 0, 0, 8192, blk, 8192);
	enc_record(e, DMREPL_REC_CHECKPOINT, 0, 1, 4096, 0, NULL, 0);
}

static void c_below_checkpoint(struct enc *e)
{
	enc_record(e, DMREPL_REC_CHECKPOINT, 0, 0, 8192, 0, NULL, 0);
	enc_record(e, DMREPL_REC_DATA, 0, 1, 4096, 512, blk, 512);
}

static void c_checkpoint_past_end(struct enc *e)
{
	enc_record(e, DMREPL_REC_CHECKPOINT, 0, 0, VOLUME + 512, 0, NULL, 0);
}

static void c_wrong_seq(struct enc *e)
{
	enc_record(e, DMREPL_REC_ZERO, 0, 0, 0, 512, NULL, 0);
	enc_record(e, DMREPL_REC_ZERO, 0, 2, 512, 512, NULL, 0);
}

static void c_unknown_type(struct enc *e)
{
	enc_record(e, 6, 0, 0, 0, 512, NULL, 0);
}

static void c_unknown_flag(struct enc *e)
{
	enc_record(e, DMREPL_REC_DATA, 2, 0, 0, 512, blk, 512);
}

static void c_zstd_on_zero(struct enc *e)
{
	enc_record(e, DMREPL_REC_ZERO, DMREPL_REC_FLAG_ZSTD, 0, 0, 512, NULL, 0);
}

static void c_discard_payload(struct enc *e)
{
	enc_record(e, DMREPL_REC_DISCARD, 0, 0, 0, 512, blk, 16);
}

static void c_raw_short(struct enc *e)
{
	enc_record(e, DMREPL_REC_DATA, 0, 0, 0, 1024, blk, 512);
}

static void c_data_unaligned(struct enc *e)
{
	enc_record(e, DMREPL_REC_DATA, 0, 0, 100, 512, blk, 512);
}

static void c_data_empty(struct enc *e)
{
	enc_record(e, DMREPL_REC_DATA, 0, 0, 0, 0, NULL, 0);
}

static void c_data_too_long(struct enc *e)
{
	enc_record(e, DMREPL_REC_DATA, DMREPL_REC_FLAG_ZSTD, 0, 0,
		   DMREPL_STREAM_MAX_DATA + 512, blk, 512);
}

static void zstd_record(struct enc *e, uint64_t length, const void *frame, size_t n)
{
	enc_record(e, DMREPL_REC_DATA, DMREPL_REC_FLAG_ZSTD, 0, 0, length, frame,
		   (uint32_t)n);
}

/* A frame of 1024 bytes in a record of 2048. */
static void c_zstd_short(struct enc *e)
{
	uint8_t frame[512];
	size_t n = ZSTD_compress(frame, sizeof(frame), blk, 1024, 1);

	zstd_record(e, 2048, frame, n);
}

/* A frame of 2048 bytes in a record of 1024. */
static void c_zstd_long(struct enc *e)
{
	uint8_t frame[512];
	size_t n = ZSTD_compress(frame, sizeof(frame), blk, 2048, 1);

	zstd_record(e, 1024, frame, n);
}

/* The same, without the content size in the frame header. */
static size_t frame_no_size(uint8_t *frame, size_t cap, size_t len)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	ZSTD_outBuffer out = {frame, cap, 0};
	ZSTD_inBuffer in = {blk, len, 0};

	ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0);
	ZSTD_compressStream2(c, &out, &in, ZSTD_e_end);
	ZSTD_freeCCtx(c);
	return out.pos;
}

static void c_zstd_long_unsized(struct enc *e)
{
	uint8_t frame[512];

	zstd_record(e, 1024, frame, frame_no_size(frame, sizeof(frame), 2048));
}

static void c_zstd_short_unsized(struct enc *e)
{
	uint8_t frame[512];

	zstd_record(e, 2048, frame, frame_no_size(frame, sizeof(frame), 1024));
}

static void c_zstd_two_frames(struct enc *e)
{
	uint8_t frame[1024];
	size_t n = ZSTD_compress(frame, 512, blk, 512, 1);

	n += ZSTD_compress(frame + n, 512, blk, 512, 1);
	zstd_record(e, 1024, frame, n);
}

static void c_zstd_garbage(struct enc *e)
{
	uint8_t frame[64];

	memset(frame, 0x5a, sizeof(frame));
	p32(frame, 0xFD2FB528u);
	zstd_record(e, 512, frame, sizeof(frame));
}

static void c_end_offset(struct enc *e)
{
	uint8_t p[32] = {0};

	enc_record(e, DMREPL_REC_END, 0, 0, 512, 0, p, 32);
}

static void c_end_digest(struct enc *e)
{
	size_t at;

	enc_record(e, DMREPL_REC_ZERO, 0, 0, 0, 512, NULL, 0);
	at = e->len;
	enc_end(e, 1, 1, 0);
	/* Change a digest byte and reseal the record's own checksum. */
	e->buf[at + 40 + 20] ^= 1;
	e->len = at;
	{
		uint8_t p[32];

		memcpy(p, e->buf + at + 40, 32);
		enc_record(e, DMREPL_REC_END, 0, 1, 0, 0, p, 32);
	}
}

static void c_end_counts(struct enc *e)
{
	enc_record(e, DMREPL_REC_DATA, 0, 0, 0, 512, blk, 512);
	enc_end(e, 1, 1, 1024);
}

static void c_oversized(struct enc *e)
{
	enc_record(e, DMREPL_REC_DATA, 0, 0, 0, 512, blk, 512);
	p32(e->buf + 264 + 4, 0xffffffffu);
}

static void c_just_oversized(struct enc *e)
{
	enc_record(e, 0x8001, 0, 0, 0, 0, NULL, 0);
	p32(e->buf + 264 + 4, DMREPL_STREAM_MAX_PAYLOAD + 1);
	memset(e->buf + e->len, 0, DMREPL_STREAM_MAX_PAYLOAD + 1);
	e->len += DMREPL_STREAM_MAX_PAYLOAD + 1;
}

static void c_zstd_data(struct enc *e)
{
	c_zstd_short(e);
}

static const struct {
	const char *name;
	void (*fn)(struct enc *e);
	uint32_t flags;
	int err;
	const char *msg;
} crafted[] = {
    {"out of order", c_out_of_order, 0, -EPROTO,
     "stream in memory: record 1 at byte 816: DATA 0+512 out of order"},
    {"overlap", c_overlap, 0, -EPROTO, "record 1 at byte 4400: ZERO 2048+4096 out of order"},
    {"past the end", c_past_end, 0, -ERANGE, "ends past the volume size 67108864"},
    {"wrapping", c_wrapping, 0, -ERANGE, "ends past the volume size"},
    {"checkpoint back", c_checkpoint_back, 0, -EPROTO, "CHECKPOINT 4096 out of order"},
    {"checkpoint inside", c_checkpoint_inside, 0, -EPROTO, "CHECKPOINT 4096 out of order"},
    {"below checkpoint", c_below_checkpoint, 0, -EPROTO, "DATA 4096+512 out of order"},
    {"checkpoint past end", c_checkpoint_past_end, 0, -ERANGE, "past the volume size"},
    {"wrong seq", c_wrong_seq, 0, -EPROTO, "record 1 at byte 304: sequence number 2, expected 1"},
    {"unknown type", c_unknown_type, 0, -EPROTONOSUPPORT, "unknown required record type 6"},
    {"unknown flag", c_unknown_flag, 0, -EPROTONOSUPPORT, "DATA with unknown flags 0x2"},
    {"zstd on ZERO", c_zstd_on_zero, DMREPL_STREAM_FLAG_ZSTD, -EPROTO, "ZERO with the zstd flag"},
    {"discard payload", c_discard_payload, 0, -EPROTO, "DISCARD with a payload of 16 bytes"},
    {"raw short", c_raw_short, 0, -EPROTO, "DATA 0+1024 with a payload of 512 bytes"},
    {"unaligned", c_data_unaligned, 0, -EPROTO, "not in whole 512-byte sectors"},
    {"empty DATA", c_data_empty, 0, -EPROTO, "DATA length 0 out of range"},
    {"DATA too long", c_data_too_long, DMREPL_STREAM_FLAG_ZSTD, -EPROTO, "DATA length 4194816 out of range"},
    {"zstd without flag", c_zstd_data, 0, -EPROTO, "zstd DATA in a stream without the zstd flag"},
    {"zstd short", c_zstd_short, DMREPL_STREAM_FLAG_ZSTD, -EPROTO, "zstd frame holds 1024 bytes"},
    {"zstd long", c_zstd_long, DMREPL_STREAM_FLAG_ZSTD, -EPROTO, "zstd frame holds 2048 bytes"},
    {"zstd long unsized", c_zstd_long_unsized, DMREPL_STREAM_FLAG_ZSTD, -EPROTO, "DATA 0+1024: zstd: "},
    {"zstd short unsized", c_zstd_short_unsized, DMREPL_STREAM_FLAG_ZSTD, -EPROTO, "decompressed to 1024 bytes"},
    {"zstd two frames", c_zstd_two_frames, DMREPL_STREAM_FLAG_ZSTD, -EPROTO, "not exactly one zstd frame"},
    {"zstd garbage", c_zstd_garbage, DMREPL_STREAM_FLAG_ZSTD, -EPROTO, "zstd"},
    {"END offset", c_end_offset, 0, -EPROTO, "END with offset 512"},
    {"END digest", c_end_digest, 0, -EBADMSG, "record 1 at byte 304: stream digest mismatch"},
    {"END counts", c_end_counts, 0, -EBADMSG, "END counts 1 records and 1024 DATA bytes, but 1 and 512"},
    {"oversized payload", c_oversized, 0, -EPROTO, "record 0 at byte 264: payload length 4294967295 over the limit"},
    {"just oversized", c_just_oversized, 0, -EPROTO, "payload length 4259841 over the limit 4259840"},
};

static void test_crafted(void)
{
	struct decoded d;

	fill(blk, sizeof(blk), 0);
	for (size_t i = 0; i < ARRAY_SIZE(crafted); i++) {
		int r = craft(crafted[i].fn, crafted[i].flags, &d);

		if (r != crafted[i].err || !strstr(last_err, crafted[i].msg) || nr_errs != 1)
			fprintf(stderr, "\n  %s: got %d (%s), want %d (%s)\n",
				crafted[i].name, r, last_err, crafted[i].err,
				crafted[i].msg);
		CU_ASSERT_EQUAL(r, crafted[i].err);
		CU_ASSERT_PTR_NOT_NULL(strstr(last_err, crafted[i].msg));
		CU_ASSERT_EQUAL(nr_errs, 1);
	}
}

/* A payload_len past the limit is refused before anything is read. */
static void test_oversized_fd(void)
{
	struct dmrepl_stream_header h = sample_header(0);
	struct decoded d;
	struct enc e;

	enc_init(&e);
	enc_header(&e, &h, 1, 264);
	c_oversized(&e);
	CU_ASSERT_EQUAL(decode_fd(e.buf, e.len, &d), -EPROTO);
	CU_ASSERT_EQUAL(d.stats.wire_bytes, 264 + 40);
	free(e.buf);
}

/* Errors stick; misuse is -EINVAL; a read error is not an early end. */
static void test_reader_misuse(void)
{
	struct dmrepl_stream_header h = sample_header(0), got;
	struct dmrepl_stream_reader *r = NULL;
	struct dmrepl_stream_record rec;
	struct enc e;
	int p[2];

	enc_init(&e);
	enc_header(&e, &h, 1, 264);
	c_wrong_seq(&e);
	CU_ASSERT_EQUAL_FATAL(dmrepl_stream_reader_new_mem(ctx, e.buf, e.len, &r), 0);
	log_reset();
	CU_ASSERT_EQUAL(dmrepl_stream_read_record(r, &rec), -EINVAL);
	CU_ASSERT(strstr(last_err, "before the header") != NULL);
	CU_ASSERT_EQUAL(dmrepl_stream_read_header(r, &got), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_read_header(r, &got), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_stream_read_record(r, &rec), 0);
	log_reset();
	CU_ASSERT_EQUAL(dmrepl_stream_read_record(r, &rec), -EPROTO);
	CU_ASSERT_EQUAL(dmrepl_stream_read_record(r, &rec), -EPROTO);
	CU_ASSERT_EQUAL(nr_errs, 1);
	dmrepl_stream_reader_free(r);
	free(e.buf);

	/* Reading the write end of a pipe fails with EBADF. */
	CU_ASSERT_FATAL(pipe(p) == 0);
	CU_ASSERT_EQUAL_FATAL(dmrepl_stream_reader_new(ctx, p[1], "pipe", &r), 0);
	log_reset();
	CU_ASSERT_EQUAL(dmrepl_stream_read_header(r, &got), -EBADF);
	CU_ASSERT(strstr(last_err, "pipe: header: read error at byte 0") != NULL);
	dmrepl_stream_reader_free(r);
	close(p[0]);
	close(p[1]);
	CU_ASSERT_EQUAL(dmrepl_stream_reader_new(ctx, -1, "x", &r), -EINVAL);
	dmrepl_stream_reader_free(NULL);
}

/* ---- writer refusals ---- */

static void test_writer_refuses(void)
{
	struct dmrepl_stream_header h = sample_header(0);
	struct dmrepl_stream_writer *w = NULL;
	struct dmrepl_stream_stats st;
	uint8_t *s, data[8192] = {0};
	struct decoded d;
	size_t len;
	int fd = memfd_with(NULL, 0);

	log_reset();
	CU_ASSERT_EQUAL_FATAL(dmrepl_stream_writer_new(ctx, fd, "out", &h, 0, &w), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_data(w, 8192, data, 4096), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_data(w, 0, data, 512), -EINVAL);
	CU_ASSERT_STRING_EQUAL(last_err, "out: record 1 refused: DATA 0+512 out of "
			       "order: it starts before byte 12288, where what "
			       "came before it ends");
	CU_ASSERT_EQUAL(dmrepl_stream_write_zero(w, 8192 + 2048, 4096), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_stream_write_discard(w, VOLUME - 512, 1024), -EINVAL);
	CU_ASSERT(strstr(last_err, "past the volume size") != NULL);
	CU_ASSERT_EQUAL(dmrepl_stream_write_data(w, 16384, data, 100), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_stream_write_data(w, 16384, data, 0), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_stream_write_data(w, 16384, data,
						 DMREPL_STREAM_MAX_DATA + 512), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_stream_write_data(w, 16384, NULL, 512), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_stream_write_checkpoint(w, 4096), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_stream_write_checkpoint(w, VOLUME + 512), -EINVAL);
	CU_ASSERT_EQUAL(dmrepl_stream_write_checkpoint(w, 65536), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_checkpoint(w, 65536), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_zero(w, 32768, 512), -EINVAL);
	/* Refusals wrote nothing: the stream goes on. */
	CU_ASSERT_EQUAL(dmrepl_stream_write_zero(w, 65536, 512), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_end(w), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_zero(w, VOLUME - 512, 512), -EINVAL);
	CU_ASSERT(strstr(last_err, "after END") != NULL);
	CU_ASSERT_EQUAL(dmrepl_stream_write_end(w), -EINVAL);
	dmrepl_stream_writer_get_stats(w, &st);
	CU_ASSERT_EQUAL(st.records, 4);
	CU_ASSERT_EQUAL(st.data_bytes, 4096);
	dmrepl_stream_writer_free(w);
	s = slurp(fd, &len);
	CU_ASSERT_EQUAL(len, st.wire_bytes);
	CU_ASSERT_EQUAL(decode_mem(s, len, &d), 0);
	CU_ASSERT_EQUAL(d.n, 4);
	free(s);
	close(fd);
}

static void test_writer_new(void)
{
	struct dmrepl_stream_header h;
	struct dmrepl_stream_writer *w = NULL;
	int fd = memfd_with(NULL, 0);

	h = sample_header(0);
	h.volume_size = 1000;
	CU_ASSERT_EQUAL(dmrepl_stream_writer_new(ctx, fd, "out", &h, 0, &w), -EINVAL);
	h = sample_header(0);
	h.data_block_size = 0;
	CU_ASSERT_EQUAL(dmrepl_stream_writer_new(ctx, fd, "out", &h, 0, &w), -EINVAL);
	h = sample_header(1u << 7);
	CU_ASSERT_EQUAL(dmrepl_stream_writer_new(ctx, fd, "out", &h, 0, &w), -EINVAL);
	h = sample_header(0);
	h.resume_offset = 512;
	CU_ASSERT_EQUAL(dmrepl_stream_writer_new(ctx, fd, "out", &h, 0, &w), -EINVAL);
	h = sample_header(0);
	memset(h.src_pool, 'p', sizeof(h.src_pool));
	CU_ASSERT_EQUAL(dmrepl_stream_writer_new(ctx, fd, "out", &h, 0, &w), -EINVAL);
	h = sample_header(0);
	log_reset();
	CU_ASSERT_EQUAL(dmrepl_stream_writer_new(ctx, fd, "out", &h, 100, &w), -EINVAL);
	CU_ASSERT(strstr(last_err, "zstd level 100") != NULL);
	CU_ASSERT_PTR_NULL(w);
	CU_ASSERT_EQUAL(lseek(fd, 0, SEEK_END), 0);	/* nothing written */
	close(fd);
}

/* A reader that went away: -EPIPE, and it sticks. */
static void test_writer_epipe(void)
{
	struct dmrepl_stream_header h = sample_header(0);
	struct dmrepl_stream_writer *w = NULL;
	uint8_t *data = calloc(1, DMREPL_STREAM_MAX_DATA);
	int p[2];

	CU_ASSERT_FATAL(pipe(p) == 0);
	close(p[0]);
	log_reset();
	CU_ASSERT_EQUAL(dmrepl_stream_writer_new(ctx, p[1], "ssh", &h, 0, &w), -EPIPE);
	CU_ASSERT(strstr(last_err, "ssh: cannot write the stream") != NULL);
	close(p[1]);

	CU_ASSERT_FATAL(pipe(p) == 0);
	CU_ASSERT_EQUAL_FATAL(dmrepl_stream_writer_new(ctx, p[1], "ssh", &h, 0, &w), 0);
	close(p[0]);
	log_reset();
	CU_ASSERT_EQUAL(dmrepl_stream_write_data(w, 0, data, DMREPL_STREAM_MAX_DATA), -EPIPE);
	CU_ASSERT_EQUAL(dmrepl_stream_write_zero(w, DMREPL_STREAM_MAX_DATA, 512), -EPIPE);
	CU_ASSERT_EQUAL(dmrepl_stream_write_end(w), -EPIPE);
	CU_ASSERT_EQUAL(nr_errs, 1);
	dmrepl_stream_writer_free(w);
	close(p[1]);
	free(data);
}

/* ---- a signal stops a blocked read when the cancel flag is set ---- */

static volatile int cancel_flag;

static void on_alarm(int sig)
{
	(void)sig;
	cancel_flag = 1;
}

static void test_cancel_blocked_read(void)
{
	struct sigaction sa = {0}, old;
	struct dmrepl_stream_header h;
	struct dmrepl_stream_reader *r = NULL;
	int p[2];

	CU_ASSERT_FATAL(pipe(p) == 0);
	sa.sa_handler = on_alarm;	/* no SA_RESTART: read returns EINTR */
	sigaction(SIGALRM, &sa, &old);
	cancel_flag = 0;
	CU_ASSERT_EQUAL_FATAL(dmrepl_stream_reader_new(ctx, p[0], "stdin", &r), 0);
	dmrepl_stream_reader_set_cancel(r, &cancel_flag);
	log_reset();
	alarm(1);	/* the writer end stays open and silent */
	CU_ASSERT_EQUAL(dmrepl_stream_read_header(r, &h), -ECANCELED);
	CU_ASSERT_EQUAL(cancel_flag, 1);
	CU_ASSERT_EQUAL(nr_errs, 0);	/* the caller's doing, not a fault */
	dmrepl_stream_reader_free(r);
	sigaction(SIGALRM, &old, NULL);
	close(p[0]);
	close(p[1]);
}

/* ---- identity hash ---- */

static uint64_t spec_identity(const struct dmrepl_stream_header *h)
{
	uint8_t b[208] = {0};
	bool base = h->required_flags & DMREPL_STREAM_FLAG_BASE;

	memcpy(b, h->src_pool, strnlen(h->src_pool, 127));
	enc_ident(b + 128, &h->snap);
	if (base)
		enc_ident(b + 160, &h->base);
	p32(b + 192, base);
	p64(b + 196, h->volume_size);
	p32(b + 204, h->data_block_size);
	return XXH3_64bits(b, sizeof(b));
}

static void test_identity_hash(void)
{
	struct dmrepl_stream_header full = sample_header(0);
	struct dmrepl_stream_header inc = sample_header(DMREPL_STREAM_FLAG_BASE);
	struct dmrepl_stream_header h;
	uint64_t id = dmrepl_stream_identity_hash(&full);
	uint64_t id_inc = dmrepl_stream_identity_hash(&inc);

	CU_ASSERT_EQUAL(id, spec_identity(&full));
	CU_ASSERT_EQUAL(id_inc, spec_identity(&inc));
	CU_ASSERT_NOT_EQUAL(id, id_inc);

	/* What a resumed stream changes does not count. */
	h = full;
	h.required_flags |= DMREPL_STREAM_FLAG_RESUMED | DMREPL_STREAM_FLAG_ZSTD;
	h.resume_offset = 4096;
	h.time++;
	h.stream_id[3] ^= 1;
	h.optional_flags = 5;
	h.base.thin_id = 99;	/* ignored without FLAG_BASE */
	h.src_pool[100] = 'x';	/* after the NUL */
	CU_ASSERT_EQUAL(dmrepl_stream_identity_hash(&h), id);

	/* Every identity field does. */
#define CHANGES(hdr, field, value)                                             \
	do {                                                                   \
		h = hdr;                                                       \
		h.field = value;                                               \
		CU_ASSERT_NOT_EQUAL(dmrepl_stream_identity_hash(&h),           \
				    dmrepl_stream_identity_hash(&hdr));        \
		CU_ASSERT_EQUAL(dmrepl_stream_identity_hash(&h), spec_identity(&h)); \
	} while (0)
	CHANGES(full, src_pool[0], 'w');
	CHANGES(full, snap.thin_id, 8);
	CHANGES(full, snap.creation_time, 4);
	CHANGES(full, snap.root, 1);
	CHANGES(full, snap.mapped_blocks, 1);
	CHANGES(full, volume_size, VOLUME * 2);
	CHANGES(full, data_block_size, 128 * KiB);
	CHANGES(inc, base.thin_id, 6);
	CHANGES(inc, base.creation_time, 9);
	CHANGES(inc, base.root, 9);
	CHANGES(inc, base.mapped_blocks, 9);
#undef CHANGES
}

static void test_type_names(void)
{
	CU_ASSERT_STRING_EQUAL(dmrepl_stream_type_name(DMREPL_REC_DATA), "DATA");
	CU_ASSERT_STRING_EQUAL(dmrepl_stream_type_name(DMREPL_REC_DISCARD), "DISCARD");
	CU_ASSERT_STRING_EQUAL(dmrepl_stream_type_name(DMREPL_REC_ZERO), "ZERO");
	CU_ASSERT_STRING_EQUAL(dmrepl_stream_type_name(DMREPL_REC_CHECKPOINT), "CHECKPOINT");
	CU_ASSERT_STRING_EQUAL(dmrepl_stream_type_name(DMREPL_REC_END), "END");
	CU_ASSERT_STRING_EQUAL(dmrepl_stream_type_name(9), "unknown");
	CU_ASSERT_STRING_EQUAL(dmrepl_stream_type_name(0x8009), "optional");
}

/*
 * receive's dry run (lib/receive.c): a chain of two streams is read and
 * checked whole, its counts reported, nothing written; a device too small
 * or a damaged stream fails as a receive would.
 */
static int dry_chain(uint8_t *data, size_t len)
{
	struct dmrepl_stream_header h = sample_header(0);
	struct dmrepl_stream_writer *w = NULL;
	int fd = memfd_with(NULL, 0);

	fill(data, len, 3);
	h.optional_flags = DMREPL_STREAM_OPT_MORE;
	h.snap.thin_id = 10;
	CU_ASSERT_EQUAL_FATAL(dmrepl_stream_writer_new(ctx, fd, "out", &h, 0, &w), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_data(w, 0, data, (uint32_t)len), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_discard(w, 64 * KiB, 8 * KiB), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_zero(w, 128 * KiB, 4 * KiB), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_end(w), 0);
	dmrepl_stream_writer_free(w);
	/* the second builds on the first */
	h.required_flags = DMREPL_STREAM_FLAG_BASE;
	h.optional_flags = 0;
	h.base = h.snap;
	h.snap.thin_id = 11;
	CU_ASSERT_EQUAL_FATAL(dmrepl_stream_writer_new(ctx, fd, "out", &h, 0, &w), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_data(w, 4 * KiB, data, (uint32_t)len), 0);
	CU_ASSERT_EQUAL(dmrepl_stream_write_end(w), 0);
	dmrepl_stream_writer_free(w);
	CU_ASSERT_FATAL(lseek(fd, 0, SEEK_SET) == 0);
	return fd;
}

static void test_receive_dry_run(void)
{
	struct dmrepl_receive_opts o = {.dry_run = true};
	struct dmrepl_receive_result res;
	char path[] = "/tmp/dmrepl-test-dry-XXXXXX";
	uint8_t data[4096], back[4096];
	int fd, dev;

	/* the stream alone */
	fd = dry_chain(data, sizeof(data));
	CU_ASSERT_EQUAL(dmrepl_receive(ctx, &o, fd, &res), 0);
	CU_ASSERT_EQUAL(res.streams, 2);
	CU_ASSERT_EQUAL(res.src_thin_id, 11);
	CU_ASSERT_STRING_EQUAL(res.src_pool, "vg-pool-tpool");
	CU_ASSERT(!res.full);
	CU_ASSERT_EQUAL(res.stats.records, 4);
	CU_ASSERT_EQUAL(res.stats.data_bytes, 2 * sizeof(data));
	CU_ASSERT_EQUAL(res.discard_bytes, 8 * KiB);
	CU_ASSERT_EQUAL(res.zero_bytes, 4 * KiB);
	CU_ASSERT_EQUAL(res.dst_thin_id, DMREPL_THIN_ID_ANY);
	CU_ASSERT_EQUAL(res.stats.wire_bytes, (uint64_t)lseek(fd, 0, SEEK_CUR));
	close(fd);

	/* into a file: checked against its size, and left as it was */
	dev = mkstemp(path);
	CU_ASSERT_FATAL(dev >= 0);
	CU_ASSERT_FATAL(ftruncate(dev, 4 * KiB) == 0);
	o.device = path;
	fd = dry_chain(data, sizeof(data));
	log_reset();
	CU_ASSERT_EQUAL(dmrepl_receive(ctx, &o, fd, &res), -ENOSPC);
	CU_ASSERT(strstr(last_err, "than the stream's volume") != NULL);
	close(fd);
	CU_ASSERT_FATAL(ftruncate(dev, VOLUME) == 0);
	fd = dry_chain(data, sizeof(data));
	CU_ASSERT_EQUAL(dmrepl_receive(ctx, &o, fd, &res), 0);
	CU_ASSERT_EQUAL(res.streams, 2);
	close(fd);
	memset(data, 0, sizeof(data));
	CU_ASSERT_FATAL(pread(dev, back, sizeof(back), 4 * KiB) == (ssize_t)sizeof(back));
	CU_ASSERT(memcmp(back, data, sizeof(back)) == 0);	/* still zeroes */

	/* a damaged payload: refused as a receive refuses it */
	fd = dry_chain(data, sizeof(data));
	{
		off_t at = DMREPL_STREAM_HEADER_LEN + DMREPL_STREAM_RECORD_LEN + 100;
		uint8_t byte;

		/* whatever it was, another value */
		CU_ASSERT_FATAL(pread(fd, &byte, 1, at) == 1);
		byte++;
		CU_ASSERT_FATAL(pwrite(fd, &byte, 1, at) == 1);
	}
	log_reset();
	CU_ASSERT_EQUAL(dmrepl_receive(ctx, &o, fd, &res), -EBADMSG);
	CU_ASSERT(strstr(last_err, "checksum mismatch") != NULL);
	close(fd);
	unlink(path);
	close(dev);

	/* without a target, only a dry run is allowed */
	o.device = NULL;
	o.dry_run = false;
	fd = dry_chain(data, sizeof(data));
	CU_ASSERT_EQUAL(dmrepl_receive(ctx, &o, fd, &res), -EINVAL);
	close(fd);
}

static CU_TestInfo stream_tests[] = {
    {"writer bytes match the specification", test_wire_bytes},
    {"known answer (the specification's example)", test_known_answer},
    {"round trip, raw", test_round_trip_raw},
    {"round trip, zstd", test_round_trip_zstd},
    {"round trip, incremental and resumed", test_round_trip_resumed},
    {"pipe between processes", test_pipe},
    {"chain of two streams on one fd", test_chain},
    {"optional records and header extensions", test_optional},
    {"every byte flipped", test_flip_every_byte},
    {"truncated everywhere", test_truncate_everywhere},
    {"damaged header", test_damaged_header},
    {"crafted faults", test_crafted},
    {"oversized payload on an fd", test_oversized_fd},
    {"reader misuse and read errors", test_reader_misuse},
    {"writer refuses out-of-order input", test_writer_refuses},
    {"writer header checks", test_writer_new},
    {"writer EPIPE", test_writer_epipe},
    {"cancel stops a blocked read", test_cancel_blocked_read},
    {"identity hash", test_identity_hash},
    {"type names", test_type_names},
    {"receive's dry run", test_receive_dry_run},
    CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
    {"stream", suite_init, suite_clean, NULL, NULL, stream_tests},
    CU_SUITE_INFO_NULL,
};

int main(void)
{
	return unit_run(suites);
}
