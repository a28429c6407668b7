/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for the replication stream reader (lib/stream.c):
 * the header, then records until an error or END, from memory.
 *
 * Checksums would stop almost every mutation at the first record, so
 * each input is read three times: as it is (the checksums and their
 * errors), with every checksum and the END digest recomputed (the
 * fields behind them), and resealed with sequence numbers and END counts
 * renumbered as well. Whatever the reader accepts must keep its promises:
 * ranges in order, within the volume, DATA at most MAX_DATA bytes and
 * readable; an error and END exclude each other.
 *
 * Build and run: tests/fuzz/run.sh [SECONDS]
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "libdmrepl-private.h"
#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Format every message, so the sanitizers see the format arguments. */
__attribute__((format(printf, 6, 0))) static void
format_log(struct dmrepl_ctx *ctx, int priority, const char *file, int line,
	   const char *fn, const char *format, va_list args, void *userdata)
{
	char buf[512];

	(void)ctx, (void)priority, (void)file, (void)line, (void)fn, (void)userdata;
	vsnprintf(buf, sizeof(buf), format, args);
}

static void put64(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *b)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

static uint32_t get32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

/* Recompute what protects the input, as far as its framing goes. */
static XXH3_state_t *st;
static volatile uint64_t sink;

static void reseal(uint8_t *b, size_t size, bool renumber)
{
	uint64_t nr = 0, data_bytes = 0;
	size_t pos, hl;

	if (size < 12)
		return;
	hl = (size_t)(b[10] | b[11] << 8);
	if (hl < DMREPL_STREAM_HEADER_LEN || hl > DMREPL_STREAM_MAX_HEADER_LEN || hl > size)
		return;
	put64(b + hl - 8, XXH3_64bits(b, hl - 8));
	for (pos = hl; size - pos >= DMREPL_STREAM_RECORD_LEN; nr++) {
		uint32_t plen = get32(b + pos + 4);
		uint16_t type = (uint16_t)(b[pos] | b[pos + 1] << 8);

		if (plen > size - pos - DMREPL_STREAM_RECORD_LEN)
			break;
		if (renumber)
			put64(b + pos + 8, nr);
		if (type == DMREPL_REC_END && plen == DMREPL_STREAM_END_PAYLOAD) {
			XXH128_hash_t d = XXH3_128bits(b, pos);

			if (renumber) {
				put64(b + pos + 40, nr);
				put64(b + pos + 48, data_bytes);
			}
			put64(b + pos + 56, d.high64);
			put64(b + pos + 64, d.low64);
		}
		if (type == DMREPL_REC_DATA)
			data_bytes += get64(b + pos + 24);
		XXH3_64bits_reset(st);
		XXH3_64bits_update(st, b + pos, 32);
		XXH3_64bits_update(st, b + pos + 40, plen);
		put64(b + pos + 32, XXH3_64bits_digest(st));
		pos += DMREPL_STREAM_RECORD_LEN + plen;
	}
}

static void read_all(struct dmrepl_ctx *ctx, const uint8_t *data, size_t size)
{
	struct dmrepl_stream_reader *r = NULL;
	struct dmrepl_stream_header h;
	struct dmrepl_stream_record rec;
	struct dmrepl_stream_stats st;
	uint64_t next = 0, last_seq = 0;
	bool any = false;
	int e;

	if (dmrepl_stream_reader_new_mem(ctx, data, size, &r) < 0)
		return;
	e = dmrepl_stream_read_header(r, &h);
	if (e == 0)
		next = h.resume_offset;
	while (e == 0 && (e = dmrepl_stream_read_record(r, &rec)) == 0) {
		if ((any && rec.seq <= last_seq) || rec.type & DMREPL_REC_OPTIONAL)
			abort();
		any = true;
		last_seq = rec.seq;
		if (rec.type == DMREPL_REC_END) {
			if (dmrepl_stream_read_record(r, &rec) != -EINVAL)
				abort();
			break;
		}
		if (rec.type == DMREPL_REC_CHECKPOINT) {
			if (rec.offset < next || rec.offset > h.volume_size)
				abort();
			next = rec.offset;
			continue;
		}
		if (rec.offset < next || rec.length == 0 ||
		    rec.offset + rec.length > h.volume_size || rec.offset + rec.length < rec.offset)
			abort();
		next = rec.offset + rec.length;
		if (rec.type != DMREPL_REC_DATA)
			continue;
		if (rec.length > DMREPL_STREAM_MAX_DATA)
			abort();
		sink += XXH3_64bits(rec.data, rec.length);	/* readable */
	}
	dmrepl_stream_reader_get_stats(r, &st);
	if (st.wire_bytes > size)
		abort();
	dmrepl_stream_reader_free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dmrepl_ctx *ctx;
	uint8_t *copy;

	if (!ctx) {
		if (dmrepl_new(&ctx) < 0)
			abort();
		dmrepl_set_log_fn(ctx, format_log, NULL);
		dmrepl_set_log_priority(ctx, LOG_DEBUG);
		st = XXH3_createState();
	}
	read_all(ctx, data, size);
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	reseal(copy, size, false);
	read_all(ctx, copy, size);
	reseal(copy, size, true);
	read_all(ctx, copy, size);
	free(copy);
	return 0;
}
