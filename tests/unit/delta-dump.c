/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * delta-dump: print a delta straight from the library, for the tests
 * that compare it with thin_delta and for timing.
 *
 *   delta-dump [-m] [-d] [-s | -e] METADATA SNAP1 SNAP2
 *
 * Prints the runs in thin_delta's (non-verbose) XML; -s leaves out same
 * runs, -e prints extents ("OFFSET LENGTH copy|discard", in bytes)
 * instead, -m reads the held metadata snapshot, -d reads with O_DIRECT.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libdmrepl.h"

struct options {
	unsigned int open_flags;
	unsigned int delta_flags;
	int extents;
	const char *path;
	uint64_t snap1, snap2;
};

static int usage(void)
{
	fprintf(stderr,
		"usage: delta-dump [-m] [-d] [-s | -e] METADATA SNAP1 SNAP2\n");
	return 2;
}

static int parse_id(const char *s, uint64_t *ret)
{
	char *end;

	errno = 0;
	*ret = strtoull(s, &end, 10);
	return errno || end == s || *end ? -EINVAL : 0;
}

static int parse_options(int argc, char *argv[], struct options *o)
{
	int c;

	while ((c = getopt(argc, argv, "mdse")) != -1) {
		switch (c) {
		case 'm':
			o->open_flags |= DMREPL_METADATA_USE_HELD_ROOT;
			break;
		case 'd':
			o->open_flags |= DMREPL_METADATA_DIRECT;
			break;
		case 's':
			o->delta_flags |= DMREPL_DELTA_SKIP_SAME;
			break;
		case 'e':
			o->extents = 1;
			break;
		default:
			return -EINVAL;
		}
	}
	if (argc - optind != 3 || parse_id(argv[optind + 1], &o->snap1) < 0 ||
	    parse_id(argv[optind + 2], &o->snap2) < 0)
		return -EINVAL;
	o->path = argv[optind];
	return 0;
}

static int print_runs(struct dmrepl_metadata *md, struct dmrepl_delta *delta,
		      const struct options *o)
{
	struct dmrepl_pool_info pi;
	struct dmrepl_run run;
	int r;

	dmrepl_metadata_get_pool_info(md, &pi);
	printf("<superblock uuid=\"\" time=\"%" PRIu32
	       "\" transaction=\"%" PRIu64 "\" data_block_size=\"%" PRIu64
	       "\" nr_data_blocks=\"%" PRIu64 "\">\n",
	       pi.time, pi.transaction_id, pi.data_block_size_sectors,
	       pi.nr_data_blocks);
	printf("  <diff left=\"%" PRIu64 "\" right=\"%" PRIu64 "\">\n",
	       o->snap1, o->snap2);
	while ((r = dmrepl_delta_next_run(delta, &run)) == 0)
		printf("    <%s begin=\"%" PRIu64 "\" length=\"%" PRIu64
		       "\"/>\n",
		       dmrepl_run_kind_name(run.kind), run.begin_blocks,
		       run.length_blocks);
	if (r < 0)
		return r;
	printf("  </diff>\n</superblock>\n");
	return 0;
}

static int print_extents(struct dmrepl_delta *delta)
{
	struct dmrepl_extent e;
	int r;

	while ((r = dmrepl_delta_next_extent(delta, &e)) == 0)
		printf("%" PRIu64 " %" PRIu64 " %s\n", e.offset_bytes,
		       e.length_bytes,
		       e.op == DMREPL_EXTENT_COPY ? "copy" : "discard");
	return r < 0 ? r : 0;
}

int main(int argc, char *argv[])
{
	struct options o = {0};
	struct dmrepl_ctx *ctx = NULL;
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_delta *delta = NULL;
	int r;

	if (parse_options(argc, argv, &o) < 0)
		return usage();
	r = dmrepl_new(&ctx);
	if (r == 0)
		r = dmrepl_metadata_open(ctx, o.path, o.open_flags, &md);
	if (r == 0)
		r = dmrepl_delta_new(md, o.snap1, o.snap2,
						o.delta_flags, &delta);
	if (r == 0)
		r = o.extents ? print_extents(delta)
			      : print_runs(md, delta, &o);
	if (r < 0)
		fprintf(stderr, "delta-dump: %s: %s\n", o.path, strerror(-r));
	dmrepl_delta_unref(delta);
	dmrepl_metadata_unref(md);
	dmrepl_unref(ctx);
	return r < 0 || fflush(stdout) ? 1 : 0;
}
