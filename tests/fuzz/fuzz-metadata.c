/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target for the metadata reader: the input is a metadata
 * image, read from memory. It exercises the superblock (and the held
 * root when one is set), the device-details tree, and the delta between
 * the first two thin devices as runs (reading shared subtrees), runs
 * without same, and extents (skipping them).
 *
 * Each input is read twice: as it is, and with every block's checksum
 * made right, since a mutated block almost never keeps a valid checksum
 * and the fuzzer would otherwise never get past the checks. The second
 * copy is also read as a file (a memfd), through the read-ahead pool
 * with a small pool (DMREPL_READAHEAD=sync:8), so that read-ahead and
 * its look into nodes not yet checked see hostile input too.
 *
 * Build and run: tests/fuzz/run.sh [SECONDS]
 */
#include <endian.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "libdmrepl-private.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct first_two {
	uint64_t ids[2];
	int n;
};

static int take_id(const struct dmrepl_thin_info *info, void *userdata)
{
	struct first_two *f = userdata;

	f->ids[f->n++] = info->thin_id;
	return f->n == 2 ? 1 : 0;
}

static void walk(struct dmrepl_metadata *md, uint64_t a, uint64_t b,
		 unsigned int flags, int extents)
{
	struct dmrepl_delta *delta = NULL;
	struct dmrepl_extent e;
	struct dmrepl_run run;
	int r;

	if (dmrepl_delta_new(md, a, b, flags, &delta) < 0)
		return;
	do {
		r = extents ? dmrepl_delta_next_extent(delta, &e)
			    : dmrepl_delta_next_run(delta, &run);
	} while (r == 0);
	dmrepl_delta_unref(delta);
}

static void exercise(struct dmrepl_metadata *md)
{
	struct dmrepl_pool_info info;
	struct dmrepl_thin_info thin;
	struct first_two f = {.n = 0};

	dmrepl_metadata_get_pool_info(md, &info);
	if (dmrepl_metadata_foreach_thin(md, take_id, &f) < 0 || f.n == 0)
		return;
	dmrepl_metadata_get_thin(md, f.ids[0], &thin);
	if (f.n == 1)
		f.ids[1] = f.ids[0];
	walk(md, f.ids[0], f.ids[1], 0, 0);
	walk(md, f.ids[1], f.ids[0], DMREPL_DELTA_SKIP_SAME, 0);
	walk(md, f.ids[0], f.ids[1], 0, 1);
}

/* Format every message, so that the fuzzer checks them too, and drop it. */
__attribute__((format(printf, 6, 0))) static void
format_and_drop(struct dmrepl_ctx *ctx, int priority, const char *file,
		int line, const char *fn, const char *format, va_list args,
		void *userdata)
{
	char buf[512];

	vsnprintf(buf, sizeof(buf), format, args);
}

static void read_image(struct dmrepl_ctx *ctx, const uint8_t *data, size_t size)
{
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_pool_info info;

	if (dmrepl_metadata_open_memory(ctx, data, size, "fuzz", 0, &md) < 0)
		return;
	exercise(md);
	dmrepl_metadata_get_pool_info(md, &info);
	md = dmrepl_metadata_unref(md);
	if (info.held_root_block &&
	    dmrepl_metadata_open_memory(ctx, data, size, "fuzz",
					DMREPL_METADATA_USE_HELD_ROOT,
					&md) == 0) {
		exercise(md);
		dmrepl_metadata_unref(md);
	}
}

static void read_file(struct dmrepl_ctx *ctx, const uint8_t *data, size_t size)
{
	struct dmrepl_metadata *md = NULL;
	char path[64];
	int fd = memfd_create("fuzz", MFD_CLOEXEC);

	if (fd < 0)
		return;
	if (write(fd, data, size) == (ssize_t)size) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (dmrepl_metadata_open(ctx, path, 0, &md) == 0) {
			exercise(md);
			dmrepl_metadata_unref(md);
		}
	}
	close(fd);
}

static void reseal(uint8_t *block, uint32_t xor)
{
	uint32_t csum = htole32(
	    dmrepl_crc32c(0xffffffffu, block + 4, DMREPL_MD_BLOCK_SIZE - 4) ^
	    xor);

	memcpy(block, &csum, sizeof(csum));
}

/* Superblocks (block 0 and the held root) and btree nodes differ in XOR. */
static void reseal_all(uint8_t *img, size_t size)
{
	size_t nr = size / DMREPL_MD_BLOCK_SIZE;
	uint64_t held;

	if (nr == 0)
		return;
	memcpy(&held, img + 56, sizeof(held));
	held = le64toh(held);
	for (size_t b = 0; b < nr; b++)
		reseal(img + b * DMREPL_MD_BLOCK_SIZE,
		       b == 0 || b == held ? 160774u : 121107u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dmrepl_ctx *ctx;
	uint8_t *copy;

	if (!ctx) {
		if (dmrepl_new(&ctx) < 0)
			return 0;
		dmrepl_set_log_fn(ctx, format_and_drop, NULL);
		dmrepl_set_log_priority(ctx, LOG_DEBUG);
		setenv("DMREPL_READAHEAD", "sync:8", 1);
	}
	read_image(ctx, data, size);
	copy = malloc(size ? size : 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	reseal_all(copy, size);
	read_image(ctx, copy, size);
	read_file(ctx, copy, size);
	free(copy);
	return 0;
}
