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
#include "libdmrepl-private.h"

static const char *const subcmd = "snapshot";

struct snapshot_opts {
	const char *pool;
	const char *origin_lv;		/* "VG/LV": LVM makes the snapshot */
	const char *name;
	const char *state_dir;
	uint64_t origin, new_id;
	bool has_origin, json, dry_run;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage:\n"
		"  %1$s snapshot --pool DMNAME --origin ID [--id NEWID] [--json]\n"
		"  %1$s snapshot --origin VG/LV [--name NAME] [--json]\n"
		"\n"
		"Take a snapshot of thin ORIGIN in pool DMNAME. Every active device of\n"
		"the origin is suspended (its writes are flushed), the snapshot is\n"
		"created, and the devices are resumed, also when creating fails.\n"
		"Prints the new thin id. The origin's size is recorded with the snapshot,\n"
		"so that later commands on it need no --size.\n"
		"\n"
		"An LVM thin volume VG/LV is snapshotted by LVM (lvcreate -s), which\n"
		"picks the id; prints VG/NAME. dmrepl never creates a thin device in\n"
		"a pool that LVM manages by itself.\n"
		"\n"
		"Options:\n"
		"  -p, --pool DMNAME   the thin pool (dm name)\n"
		"      --origin ID     the thin device to snapshot (or VG/LV)\n"
		"  -i, --id NEWID      the snapshot's id (default: one above the highest)\n"
		"  -N, --name NAME     an LVM snapshot's name (default: LV-DATE-TIME, UTC)\n"
		"      --state-dir DIR where the snapshot's size is recorded (default:\n"
		"                      $DMREPL_STATE_DIR, else /var/lib/dmrepl)\n"
		"  -n, --dry-run       check the origin and say what would be created\n"
		"                      (the new id; for VG/LV the lvcreate command and\n"
		"                      the name); create and suspend nothing\n"
		"  -j, --json          print the result as JSON (see dmrepl(8))\n"
		"  -h, --help          show this help\n"
		"\n"
		"Exit status: 0 made; 1 no snapshot was made; 2 usage.\n",
		program_name);
}

static int parse_options(int argc, char *argv[], struct snapshot_opts *o)
{
	static const struct option longopts[] = {
		{ "pool", required_argument, NULL, 'p' },
		{ "origin", required_argument, NULL, 257 },	/* -o is --output */
		{ "id", required_argument, NULL, 'i' },
		{ "name", required_argument, NULL, 'N' },
		{ "state-dir", required_argument, NULL, 256 },
		{ "json", no_argument, NULL, 'j' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, r = 0;

	o->new_id = DMREPL_THIN_ID_ANY;
	while (r == 0 && (c = tool_getopt(argc, argv, "p:i:N:njh", longopts)) != -1) {
		switch (c) {
		case 'n': o->dry_run = true; break;
		case 'p': o->pool = optarg; break;
		case 257:
			o->has_origin = true;
			if (strchr(optarg, '/'))
				o->origin_lv = optarg;
			else
				r = tool_parse_thin_id(subcmd, "--origin", optarg,
						       &o->origin);
			break;
		case 'N': o->name = optarg; break;
		case 256: o->state_dir = optarg; break;
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
	if (o->origin_lv) {
		if (o->pool || o->new_id != DMREPL_THIN_ID_ANY)
			return tool_usage_error(subcmd, "--origin VG/LV takes neither "
						"--pool nor --id: LVM picks the id");
		return 0;
	}
	if (o->name)
		return tool_usage_error(subcmd, "--name is for --origin VG/LV");
	if ((!o->pool && !tool_has_lvm_names()) || !o->has_origin)
		return tool_usage_error(subcmd, "--pool and --origin are required");
	if (o->new_id == o->origin)
		return tool_usage_error(subcmd, "--id and --origin are the same thin id");
	return 0;
}

/*
 * A thin device has no size of its own: record the origin's (its active
 * device's) with the snapshot, for later commands. Best effort: without
 * it they ask for --size.
 */
static void record_size(struct dmrepl_ctx *ctx, struct dmrepl_pool *pool,
			const struct snapshot_opts *o, uint64_t id)
{
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_thin_ident ident;
	uint64_t size = 0;
	int r;

	if (dmrepl_pool_get_active_size(pool, o->origin, &size) < 0 || !size)
		return;	/* the origin is not active: no size to record */
	r = dmrepl_metadata_open_pool(ctx, o->pool, &md);
	if (r == 0)
		r = dmrepl_thin_ident_read(md, id, &ident);
	dmrepl_metadata_unref(md);
	if (r == 0)
		dmrepl_snap_size_record(ctx, o->state_dir, o->pool, id,
					ident.creation_time, size);
}

static int lvm_snapshot_dry_run(struct dmrepl_ctx *ctx,
				const struct snapshot_opts *o)
{
	char name[300], command[600];
	struct json j;
	int r;

	r = dmrepl_lvm_snapshot_dry_run(ctx, o->origin_lv, o->name, name,
					sizeof(name));
	if (r < 0) {
		tool_fail_r(subcmd, r, "%s: no snapshot would be made: %s",
			    o->origin_lv, strerror(-r));
		return EXIT_FAILURE_OP;
	}
	snprintf(command, sizeof(command), "lvcreate -qq -y -s -n %s -- %s",
		 strchr(name, '/') + 1, o->origin_lv);
	if (o->json) {
		tool_json_result_begin(&j, stdout, true);
		json_bool(&j, "dry_run", true);
		json_string(&j, "origin_lv", o->origin_lv);
		json_string(&j, "lv", name);
		json_string(&j, "command", command);
		json_close_object(&j);
		json_end(&j);
	} else {
		printf("would run: %s\nwould create %s; nothing created\n",
		       command, name);
	}
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILURE_OP;
}

static int raw_snapshot_dry_run(struct dmrepl_ctx *ctx,
				const struct snapshot_opts *o)
{
	struct dmrepl_pool *pool = NULL;
	size_t nr_active = 0;
	uint64_t id = 0;
	struct json j;
	int r, rc = EXIT_FAILURE_OP;

	r = dmrepl_pool_open(ctx, o->pool, &pool);
	if (r == 0)
		r = dmrepl_pool_create_snapshot_dry_run(pool, o->origin, o->new_id,
							&id, &nr_active);
	if (r < 0) {
		tool_fail_r(subcmd, r, "%s: cannot snapshot thin %" PRIu64 ": %s",
			    o->pool, o->origin, strerror(-r));
		goto out;
	}
	if (o->json) {
		tool_json_result_begin(&j, stdout, true);
		json_bool(&j, "dry_run", true);
		json_string(&j, "pool", o->pool);
		json_u64(&j, "origin", o->origin);
		json_u64(&j, "id", id);
		json_u64(&j, "active_devices", nr_active);
		json_close_object(&j);
		json_end(&j);
	} else {
		printf("would create thin %" PRIu64 " in %s, a snapshot of thin %"
		       PRIu64 " (%zu active device%s of it suspended meanwhile); "
		       "nothing created\n", id, o->pool, o->origin, nr_active,
		       nr_active == 1 ? "" : "s");
	}
	rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILURE_OP;
out:
	dmrepl_pool_unref(pool);
	return rc;
}

static int lvm_snapshot(struct dmrepl_ctx *ctx, const struct snapshot_opts *o)
{
	struct dmrepl_lvm_lv lv;
	char name[300];
	struct json j;
	int r;

	r = dmrepl_lvm_snapshot(ctx, o->origin_lv, o->name, NULL, &lv);
	if (r < 0) {
		tool_fail_r(subcmd, r, "%s: no snapshot made: %s", o->origin_lv,
			  strerror(-r));
		return EXIT_FAILURE_OP;
	}
	if (o->json) {
		tool_json_result_begin(&j, stdout, true);
		json_string(&j, "origin_lv", o->origin_lv);
		snprintf(name, sizeof(name), "%s/%s", lv.vg, lv.lv);
		json_string(&j, "lv", name);
		json_u64(&j, "id", lv.thin_id);
		json_u64(&j, "size_bytes", lv.size_bytes);
		json_close_object(&j);
		json_end(&j);
	} else {
		printf("%s/%s\n", lv.vg, lv.lv);
	}
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILURE_OP;
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
	if (o.origin_lv)
		return o.dry_run ? lvm_snapshot_dry_run(ctx, &o) : lvm_snapshot(ctx, &o);
	r = tool_resolve_lvm(ctx, subcmd, &o.pool, NULL);
	if (r)
		return r;
	if (o.dry_run)
		return raw_snapshot_dry_run(ctx, &o);
	r = dmrepl_pool_open(ctx, o.pool, &pool);
	if (r == 0)
		r = dmrepl_pool_create_snapshot(pool, o.origin, o.new_id, &id);
	if (r < 0) {
		tool_fail_r(subcmd, r, "%s: cannot snapshot thin %" PRIu64 ": %s", o.pool,
			  o.origin, strerror(-r));
		goto out;
	}
	record_size(ctx, pool, &o, id);
	if (o.json) {
		tool_json_result_begin(&j, stdout, true);
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
