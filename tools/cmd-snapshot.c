/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dmrepl snapshot: a consistent snapshot of an active thin device.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "dmrepl.h"
#include "json.h"

static const char *const subcmd = "snapshot";

struct snapshot_opts {
	const char *pool;
	uint64_t origin, new_id;
	bool has_origin, json;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage:\n"
		"  %1$s snapshot --pool DMNAME --origin ID [--id NEWID] [--json]\n"
		"\n"
		"Take a snapshot of thin ORIGIN in pool DMNAME. Every active device of\n"
		"the origin is suspended (its writes are flushed), the snapshot is\n"
		"created, and the devices are resumed, also when creating fails.\n"
		"Prints the new thin id.\n"
		"\n"
		"Options:\n"
		"  -p, --pool DMNAME   the thin pool (dm name)\n"
		"  -o, --origin ID     the thin device to snapshot\n"
		"  -i, --id NEWID      the snapshot's id (default: one above the highest)\n"
		"  -j, --json          print {\"pool\":...,\"origin\":N,\"id\":N}\n"
		"  -h, --help          show this help\n",
		program_name);
}

static int parse_options(int argc, char *argv[], struct snapshot_opts *o)
{
	static const struct option longopts[] = {
		{ "pool", required_argument, NULL, 'p' },
		{ "origin", required_argument, NULL, 'o' },
		{ "id", required_argument, NULL, 'i' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, r = 0;

	o->new_id = DMREPL_THIN_ID_ANY;
	while (r == 0 && (c = getopt_long(argc, argv, "p:o:i:jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'p': o->pool = optarg; break;
		case 'o':
			o->has_origin = true;
			r = tool_parse_thin_id(subcmd, "--origin", optarg, &o->origin);
			break;
		case 'i': r = tool_parse_thin_id(subcmd, "--id", optarg, &o->new_id); break;
		case 'j': o->json = true; break;
		case 'h': usage(stdout); return -1;
		default: return tool_usage_error(subcmd, "unrecognized option");
		}
	}
	if (r)
		return r;
	if (optind < argc)
		return tool_usage_error(subcmd, "unexpected argument '%s'", argv[optind]);
	if ((!o->pool && !tool_has_lvm_names()) || !o->has_origin)
		return tool_usage_error(subcmd, "--pool and --origin are required");
	if (o->new_id == o->origin)
		return tool_usage_error(subcmd, "--id and --origin are the same thin id");
	return 0;
}

int cmd_snapshot(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	struct snapshot_opts o = { 0 };
	struct dmrepl_pool *pool = NULL;
	uint64_t id = 0;
	struct json j;
	int r, rc = EXIT_FAILURE_OP;

	r = parse_options(argc, argv, &o);
	if (r)
		return r < 0 ? EXIT_OK : r;
	r = tool_resolve_lvm(ctx, subcmd, &o.pool, NULL);
	if (r)
		return r;
	r = dmrepl_pool_open(ctx, o.pool, &pool);
	if (r == 0)
		r = dmrepl_pool_create_snapshot(pool, o.origin, o.new_id, &id);
	if (r < 0) {
		tool_fail(subcmd, "%s: cannot snapshot thin %" PRIu64 ": %s", o.pool,
			  o.origin, strerror(-r));
		goto out;
	}
	if (o.json) {
		json_init(&j, stdout);
		json_open_object(&j, NULL);
		json_string(&j, "pool", o.pool);
		json_u64(&j, "origin", o.origin);
		json_u64(&j, "id", id);
		json_close_object(&j);
		json_end(&j);
	} else {
		printf("%" PRIu64 "\n", id);
	}
	rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILURE_OP;
out:
	dmrepl_pool_unref(pool);
	return rc;
}
