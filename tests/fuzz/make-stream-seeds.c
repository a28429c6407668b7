/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Write the seed corpus of fuzz-stream into DIR with the stream writer:
 * small full, incremental, zstd and resumed streams, and one cut short.
 * The seeds are committed; tests/fuzz/make-seeds.sh stream rebuilds them.
 *
 *   make-stream-seeds DIR
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libdmrepl-private.h"
#include "stream.h"

static struct dmrepl_ctx *ctx;
static const char *dir;

static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		buf[i] = seed ? (uint8_t)x : (uint8_t)(i / 64);
	}
}

static struct dmrepl_stream_writer *start(const char *name, uint32_t flags,
					  int level)
{
	struct dmrepl_stream_header h = {
	    .required_flags = flags,
	    .data_block_size = 65536,
	    .volume_size = 16u << 20,
	    .time = 1790000000,
	    .src_pool = "vg-pool-tpool",
	    .snap = {.thin_id = 7, .creation_time = 3, .root = 4242, .mapped_blocks = 100},
	};
	struct dmrepl_stream_writer *w;
	char path[4096];
	int fd;

	memset(h.stream_id, 0x5a, sizeof(h.stream_id));
	if (flags & DMREPL_STREAM_FLAG_BASE)
		h.base = (struct dmrepl_thin_ident){5, 2, 99, 80};
	if (flags & DMREPL_STREAM_FLAG_RESUMED)
		h.resume_offset = 1u << 20;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0 || dmrepl_stream_writer_new(ctx, fd, name, &h, level, &w) < 0) {
		perror(path);
		exit(1);
	}
	return w;
}

static void finish(struct dmrepl_stream_writer *w, bool end)
{
	if (end && dmrepl_stream_write_end(w) < 0)
		exit(1);
	dmrepl_stream_writer_free(w);
}

int main(int argc, char **argv)
{
	struct dmrepl_stream_writer *w;
	static uint8_t a[4096], b[8192];
	int bad = 0;

	if (argc != 2 || dmrepl_new(&ctx) < 0)
		return 2;
	dir = argv[1];
	fill(a, sizeof(a), 1);
	fill(b, sizeof(b), 0);

	w = start("full", 0, 0);
	bad |= dmrepl_stream_write_data(w, 0, a, 512);
	bad |= dmrepl_stream_write_data(w, 65536, a, 4096);
	bad |= dmrepl_stream_write_checkpoint(w, 131072);
	bad |= dmrepl_stream_write_data(w, 1u << 20, a + 1024, 1024);
	finish(w, true);

	w = start("incremental", DMREPL_STREAM_FLAG_BASE, 0);
	bad |= dmrepl_stream_write_discard(w, 0, 65536);
	bad |= dmrepl_stream_write_data(w, 65536, a, 2048);
	bad |= dmrepl_stream_write_zero(w, 131072, 65536);
	bad |= dmrepl_stream_write_checkpoint(w, 262144);
	bad |= dmrepl_stream_write_discard(w, 262144, 512);
	finish(w, true);

	w = start("zstd", DMREPL_STREAM_FLAG_BASE, 3);
	bad |= dmrepl_stream_write_data(w, 0, b, sizeof(b));	/* compressed */
	bad |= dmrepl_stream_write_data(w, 65536, a, 1024);	/* raw */
	bad |= dmrepl_stream_write_zero(w, 131072, 4096);
	finish(w, true);

	w = start("resumed", DMREPL_STREAM_FLAG_BASE | DMREPL_STREAM_FLAG_RESUMED, 1);
	bad |= dmrepl_stream_write_data(w, 1u << 20, b, 4096);
	bad |= dmrepl_stream_write_checkpoint(w, 2u << 20);
	bad |= dmrepl_stream_write_zero(w, 3u << 20, 512);
	finish(w, true);

	w = start("cut", 0, 0);
	bad |= dmrepl_stream_write_data(w, 0, a, 1024);
	bad |= dmrepl_stream_write_checkpoint(w, 1024);	/* flushes */
	finish(w, false);

	dmrepl_unref(ctx);
	return bad ? 1 : 0;
}
