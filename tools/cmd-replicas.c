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
#include "table.h"

static const char *const subcmd = "replicas";

struct replicas_opts {
	const char *pool, *state_dir;
	bool json;
	struct table_opts table;
};

enum { F_ID, F_LV, F_SRC_POOL, F_SRC_NAME, F_SRC_ID, F_BASE, F_SIZE, F_RECEIVED,
       F_STATE };

static const struct table_field fields[] = {
	[F_ID] = { "id", "ID", false, "the replica's thin id in this pool" },
	[F_LV] = { "lv", "LV", true, "its LVM name, VG/LV (on an LVM pool)" },
	[F_SRC_POOL] = { "src_pool", "SRC_POOL", true, "the source pool, HOST:POOL" },
	[F_SRC_NAME] = { "src_name", "SRC_NAME", true, "the source snapshot's LVM name" },
	[F_SRC_ID] = { "src_id", "SRC_ID", false, "the source snapshot's thin id" },
	[F_BASE] = { "base", "BASE", false,
		     "the replica it was built on, or \"full\"" },
	[F_SIZE] = { "size", "SIZE", false, "the volume's size" },
	[F_RECEIVED] = { "received", "RECEIVED", true,
			 "when it was received (ISO 8601, local time)" },
	[F_STATE] = { "state", "STATE", true, "ok, modified or missing" },
};
#define DEFAULT_FIELDS "id,src_pool,src_id,base,size,received,state"
#define DEFAULT_FIELDS_LVM "id,lv,src_pool,src_id,base,size,received,state"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage:\n"
		"  %1$s replicas --to-pool DST [--state-dir DIR] [--json] [-o FIELDS]\n"
		"\n"
		"List the replicas pool DST holds: the replica's thin id (and LV on an\n"
		"LVM pool), the source pool and snapshot it replicates, the replica it\n"
		"was built on (or \"full\"), its size, when it was received, and its\n"
		"state: ok; modified (written to since it was received: no longer\n"
		"usable as a base); missing (deleted from the pool).\n"
		"\n"
		"Options:\n"
		"  -t, --to-pool DST     the destination pool (dm name or VG/POOL)\n"
		"      --state-dir DIR   lineage records (default /var/lib/dmrepl)\n"
		"  -j, --json            print JSON (see dmrepl(8))\n"
		TABLE_HELP
		"  -h, --help            show this help\n"
		"\n"
		"Exit status: 0 listed (whatever the replicas' states); 1 the pool or\n"
		"the records could not be read; 2 usage.\n",
		program_name);
}

static int parse_options(int argc, char *argv[], struct replicas_opts *o)
{
	enum { OPT_STATE_DIR = 256 };
	static const struct option longopts[] = {
		{ "to-pool", required_argument, NULL, 't' },
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		TABLE_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	int c, r;

	while ((c = tool_getopt(argc, argv, "t:jh" TABLE_SHORTOPTS, longopts)) != -1) {
		r = table_option(subcmd, c, optarg, &o->table);
		if (r == 1)
			continue;
		if (r)
			return r;
		switch (c) {
		case 't': o->pool = optarg; break;
		case OPT_STATE_DIR: o->state_dir = optarg; break;
		case 'j': o->json = true; break;
		case 'h': usage(stdout); return -1;
		default: return tool_usage_error(subcmd, "unrecognized option");
		}
	}
	r = table_check(subcmd, fields, sizeof(fields) / sizeof(fields[0]),
			DEFAULT_FIELDS, &o->table);
	if (r)
		return r;
	if (optind < argc)
		return tool_usage_error(subcmd, "unexpected argument '%s'", argv[optind]);
	if (!o->pool)
		return tool_usage_error(subcmd, "--to-pool is required");
	return 0;
}

static int print_text(const struct dmrepl_replica_info *r, void *userdata)
{
	struct table *t = userdata;

	if (table_row(t) < 0)
		return -ENOMEM;
	table_set_u64(t, F_ID, r->dst_thin_id);
	table_set(t, F_LV, r->dst_lv);
	table_set(t, F_SRC_POOL, r->src_pool);
	table_set(t, F_SRC_NAME, r->src_name);
	table_set_u64(t, F_SRC_ID, r->src_thin_id);
	if (r->base_dst_thin_id != DMREPL_THIN_ID_ANY)
		table_set_u64(t, F_BASE, r->base_dst_thin_id);
	else
		table_set(t, F_BASE, "full");
	table_set_size(t, F_SIZE, r->size_bytes);
	table_set_time(t, F_RECEIVED, (time_t)r->received_time);
	table_set(t, F_STATE, dmrepl_replica_state_name(r->state));
	return 0;
}

static int print_json(const struct dmrepl_replica_info *r, void *userdata)
{
	struct json *j = userdata;
	char when[40];

	json_open_object(j, NULL);
	json_u64(j, "id", r->dst_thin_id);
	json_string(j, "src_pool", r->src_pool);
	json_u64(j, "src_id", r->src_thin_id);
	if (r->base_dst_thin_id != DMREPL_THIN_ID_ANY)
		json_u64(j, "base_id", r->base_dst_thin_id);
	json_u64(j, "size_bytes", r->size_bytes);
	json_u64(j, "received_time", r->received_time);
	table_iso8601_utc((time_t)r->received_time, when, sizeof(when));
	json_string(j, "received_at", when);
	json_string(j, "state", dmrepl_replica_state_name(r->state));
	if (r->dst_lv)
		json_string(j, "lv", r->dst_lv);
	if (r->src_name)
		json_string(j, "src_name", r->src_name);
	json_close_object(j);
	return 0;
}

static int list_json(struct dmrepl_ctx *ctx, const struct replicas_opts *o)
{
	/* built apart, printed whole: a failure prints no half object */
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	struct json j;
	int r;

	if (!mem)
		return -ENOMEM;
	tool_json_result_begin(&j, mem, true);
	json_string(&j, "pool", o->pool);
	json_open_array(&j, "replicas");
	r = dmrepl_replicas_foreach(ctx, o->state_dir, o->pool, print_json, &j);
	json_close_array(&j);
	json_close_object(&j);
	json_end(&j);
	fclose(mem);
	if (r == 0)
		fwrite(buf, 1, len, stdout);
	free(buf);
	return r;
}

int cmd_replicas(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	struct replicas_opts o = { 0 };
	struct table *t = NULL;
	int r, rc;

	r = parse_options(argc, argv, &o);
	if (r)
		return r < 0 ? EXIT_OK : r;
	r = tool_resolve_lvm(ctx, subcmd, &o.pool, NULL);
	if (r)
		return r;
	tool_catch_signals();
	if (o.json) {
		r = list_json(ctx, &o);
	} else {
		struct dmrepl_pool *pool = NULL;
		bool lvm = dmrepl_pool_open(ctx, o.pool, &pool) == 0 &&
			   dmrepl_pool_get_lvm_name(pool);

		dmrepl_pool_unref(pool);
		t = table_new(subcmd, fields, sizeof(fields) / sizeof(fields[0]),
			      lvm ? DEFAULT_FIELDS_LVM : DEFAULT_FIELDS, &o.table, &rc);
		if (!t)
			return rc;
		r = dmrepl_replicas_foreach(ctx, o.state_dir, o.pool, print_text, t);
		if (r == 0)
			r = table_print(t, stdout);
		table_free(t);
	}
	if (r < 0) {
		tool_fail_r(subcmd, r, "%s: cannot list replicas: %s", o.pool, strerror(-r));
		return EXIT_FAILURE_OP;
	}
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILURE_OP;
}
