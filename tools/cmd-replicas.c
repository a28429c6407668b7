/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dmrepl replicas: what a destination pool holds, from the lineage
 * records, each checked against the pool.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dmrepl.h"
#include "json.h"
#include "libdmrepl-private.h"

static const char *const subcmd = "replicas";

struct replicas_opts {
	const char *pool, *state_dir;
	bool json, no_headers;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage:\n"
		"  %1$s replicas --to-pool DST [--state-dir DIR] [--json]\n"
		"\n"
		"List the replicas pool DST holds: the replica's thin id, the source\n"
		"pool and snapshot it replicates, the replica it was built on (or\n"
		"\"full\"), its size, when it was received, and its state: ok;\n"
		"modified (written to since it was received: no longer usable as a\n"
		"base); missing (deleted from the pool).\n"
		"\n"
		"Options:\n"
		"  -t, --to-pool DST   the destination pool (dm name)\n"
		"      --state-dir DIR lineage records (default /var/lib/dmrepl)\n"
		"  -j, --json          print JSON (see dmrepl(8))\n"
		"      --no-headers    omit the header line\n"
		"  -h, --help          show this help\n",
		program_name);
}

static int parse_options(int argc, char *argv[], struct replicas_opts *o)
{
	enum { OPT_STATE_DIR = 256, OPT_NO_HEADERS };
	static const struct option longopts[] = {
		{ "to-pool", required_argument, NULL, 't' },
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "json", no_argument, NULL, 'j' },
		{ "no-headers", no_argument, NULL, OPT_NO_HEADERS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = tool_getopt(argc, argv, "t:jh", longopts)) != -1) {
		switch (c) {
		case 't': o->pool = optarg; break;
		case OPT_STATE_DIR: o->state_dir = optarg; break;
		case 'j': o->json = true; break;
		case OPT_NO_HEADERS: o->no_headers = true; break;
		case 'h': usage(stdout); return -1;
		default: return tool_usage_error(subcmd, "unrecognized option");
		}
	}
	if (optind < argc)
		return tool_usage_error(subcmd, "unexpected argument '%s'", argv[optind]);
	if (!o->pool)
		return tool_usage_error(subcmd, "--to-pool is required");
	return 0;
}

static int print_text(const struct dmrepl_replica_info *r, void *userdata)
{
	char base[24] = "full";

	if (r->base_dst_thin_id != DMREPL_THIN_ID_ANY)
		snprintf(base, sizeof(base), "%" PRIu64, r->base_dst_thin_id);
	printf("%8" PRIu64 " %-24s %8" PRIu64 " %8s %16" PRIu64 " %12" PRIu64 " %s",
	       r->dst_thin_id, r->src_pool, r->src_thin_id, base, r->size_bytes,
	       r->received_time, dmrepl_replica_state_name(r->state));
	/* the LV column is there on an LVM pool only */
	if (userdata)
		printf("%*s%s", 9 - (int)strlen(dmrepl_replica_state_name(r->state)),
		       "", r->dst_lv ? r->dst_lv : "-");
	putchar('\n');
	return 0;
}

static int print_json(const struct dmrepl_replica_info *r, void *userdata)
{
	struct json *j = userdata;

	json_open_object(j, NULL);
	json_u64(j, "id", r->dst_thin_id);
	json_string(j, "src_pool", r->src_pool);
	json_u64(j, "src_id", r->src_thin_id);
	if (r->base_dst_thin_id != DMREPL_THIN_ID_ANY)
		json_u64(j, "base_id", r->base_dst_thin_id);
	json_u64(j, "size_bytes", r->size_bytes);
	json_u64(j, "received_time", r->received_time);
	json_string(j, "state", dmrepl_replica_state_name(r->state));
	if (r->dst_lv)
		json_string(j, "lv", r->dst_lv);
	if (r->src_name)
		json_string(j, "src_name", r->src_name);
	json_close_object(j);
	return 0;
}

int cmd_replicas(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	struct replicas_opts o = { 0 };
	struct json j;
	int r;

	r = parse_options(argc, argv, &o);
	if (r)
		return r < 0 ? EXIT_OK : r;
	r = tool_resolve_lvm(ctx, subcmd, &o.pool, NULL);
	if (r)
		return r;
	tool_catch_signals();
	if (o.json) {
		/* built apart, printed whole: a failure prints no half object */
		char *buf = NULL;
		size_t len = 0;
		FILE *mem = open_memstream(&buf, &len);

		if (!mem)
			return EXIT_FAILURE_OP;
		tool_json_result_begin(&j, mem, true);
		json_string(&j, "pool", o.pool);
		json_open_array(&j, "replicas");
		r = dmrepl_replicas_foreach(ctx, o.state_dir, o.pool, print_json, &j);
		json_close_array(&j);
		json_close_object(&j);
		json_end(&j);
		fclose(mem);
		if (r == 0)
			fwrite(buf, 1, len, stdout);
		free(buf);
	} else {
		struct dmrepl_pool *pool = NULL;
		bool lvm = dmrepl_pool_open(ctx, o.pool, &pool) == 0 &&
			   dmrepl_pool_get_lvm_name(pool);

		dmrepl_pool_unref(pool);
		if (!o.no_headers)
			printf("%8s %-24s %8s %8s %16s %12s %s%s\n", "ID", "SRC_POOL",
			       "SRC_ID", "BASE", "SIZE_BYTES", "RECEIVED",
			       lvm ? "STATE    " : "STATE", lvm ? "LV" : "");
		r = dmrepl_replicas_foreach(ctx, o.state_dir, o.pool, print_text,
					    lvm ? &lvm : NULL);
	}
	if (r < 0) {
		tool_fail_r(subcmd, r, "%s: cannot list replicas: %s", o.pool, strerror(-r));
		return EXIT_FAILURE_OP;
	}
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILURE_OP;
}
