/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dmrepl recover: resolve, on one pool, everything a killed dmrepl can
 * leave: its dm devices, a metadata snapshot it held, and the devices of
 * unfinished replications. Every dmrepl run that reserves the pool's
 * metadata does the same first; this does it alone, and says what it did.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "dmrepl.h"
#include "json.h"
#include "libdmrepl-private.h"
#include "transfer.h"

static const char *const subcmd = "recover";

struct recover_opts {
	const char *pool, *state_dir;
	bool json, dry_run;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage:\n"
		"  %1$s recover --pool DMNAME [--state-dir DIR] [--dry-run] [--json]\n"
		"\n"
		"Resolve what a killed dmrepl left on pool DMNAME: remove the dm\n"
		"devices it had mapped, release the metadata snapshot it held (never\n"
		"one another tool holds or reads), and delete the devices of its\n"
		"unfinished replications into this pool. Resumable receives are kept\n"
		"and listed with their resume tokens. Every dmrepl command that reads\n"
		"the pool does this first; run it to see what is left, or before\n"
		"handing the pool to another tool.\n"
		"\n"
		"Exit status: 0 when nothing is left that needs an operator, 1 when\n"
		"something is (a metadata snapshot another tool holds, for example:\n"
		"the message says what to do).\n"
		"\n"
		"Options:\n"
		"  -p, --pool DMNAME   the pool\n"
		"      --state-dir DIR lineage records (default /var/lib/dmrepl)\n"
		"  -n, --dry-run       say what would be removed, released and deleted;\n"
		"                      change nothing (the same checks and refusals)\n"
		"  -j, --json          print the result as JSON\n"
		"  -h, --help          show this help\n",
		program_name);
}

static int parse_options(int argc, char *argv[], struct recover_opts *o)
{
	enum { OPT_STATE_DIR = 256 };
	static const struct option longopts[] = {
		{ "pool", required_argument, NULL, 'p' },
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "json", no_argument, NULL, 'j' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = tool_getopt(argc, argv, "p:njh", longopts)) != -1) {
		switch (c) {
		case 'n': o->dry_run = true; break;
		case 'p': o->pool = optarg; break;
		case OPT_STATE_DIR: o->state_dir = optarg; break;
		case 'j': o->json = true; break;
		case 'h': usage(stdout); return -1;
		default: return tool_usage_error(subcmd, "unrecognized option");
		}
	}
	if (optind < argc)
		return tool_usage_error(subcmd, "unexpected argument '%s'", argv[optind]);
	if (!o->pool)
		return tool_usage_error(subcmd, "--pool is required");
	return 0;
}

static int print_token(const char *token,
		       const struct dmrepl_lineage_record *rec, void *userdata)
{
	struct json *j = userdata;

	if (j)
		json_string(j, NULL, token);
	else
		printf("resumable receive: %s\n", token);
	return 0;
}

int cmd_recover(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	struct recover_opts o = {0};
	struct dmrepl_recover_result res = {0};
	unsigned int unfinished = 0;
	struct json j;
	int r;

	r = parse_options(argc, argv, &o);
	if (r)
		return r < 0 ? EXIT_OK : r;
	r = tool_resolve_lvm(ctx, subcmd, &o.pool, NULL);
	if (r)
		return r;
	tool_catch_signals();
	if (o.dry_run)
		r = dmrepl_pool_recover_dry_run(ctx, o.pool, o.state_dir, &res,
						&unfinished);
	else
		r = dmrepl_pool_recover(ctx, o.pool, o.state_dir, &res);
	if (r < 0 && r != -EBUSY) {
		tool_fail_r(subcmd, r, "%s: %s", o.pool, strerror(-r));
		return EXIT_FAILURE_OP;
	}
	if (o.json) {
		tool_json_result_begin(&j, stdout, r == 0);
		if (r < 0) {
			tool_json_error(&j, r);
			json_u64(&j, "exit_status", EXIT_FAILURE_OP);
		}
		if (o.dry_run)
			json_bool(&j, "dry_run", true);
		json_string(&j, "pool", o.pool);
		json_u64(&j, "devices_removed", res.devices_removed);
		json_bool(&j, "metadata_snapshot_released",
			  res.metadata_snapshot_released);
		json_bool(&j, "metadata_snapshot_ok", r == 0);
		if (res.destination && o.dry_run)
			json_u64(&j, "unfinished_deleted", unfinished);
		if (res.destination) {
			json_open_array(&j, "resumable");
			if (res.resumable)
				(o.dry_run ? dmrepl_receive_foreach_resumable_readonly
					   : dmrepl_receive_foreach_resumable)(
				    ctx, o.pool, o.state_dir, print_token, &j);
			json_close_array(&j);
		}
		json_close_object(&j);
		json_end(&j);
		tool_json_result_printed();	/* also when r < 0: it says why */
	} else if (r == 0 && o.dry_run) {
		printf("pool %s: %s; %u device%s would be removed", o.pool,
		       res.metadata_snapshot_released
			   ? "would release a metadata snapshot a killed dmrepl held"
			   : "no metadata snapshot left held",
		       res.devices_removed, res.devices_removed == 1 ? "" : "s");
		if (res.destination)
			printf("; %u unfinished replication%s would be deleted",
			       unfinished, unfinished == 1 ? "" : "s");
		printf("; nothing changed\n");
	} else if (r == 0) {
		printf("pool %s: %s; %u device%s removed%s\n", o.pool,
		       res.metadata_snapshot_released
			   ? "released a metadata snapshot a killed dmrepl held"
			   : "no metadata snapshot left held",
		       res.devices_removed, res.devices_removed == 1 ? "" : "s",
		       res.destination ? "; unfinished replications resolved"
				       : "");
		if (res.resumable)
			(o.dry_run ? dmrepl_receive_foreach_resumable_readonly
				   : dmrepl_receive_foreach_resumable)(
			    ctx, o.pool, o.state_dir, print_token, NULL);
	}
	if (r < 0)
		return EXIT_FAILURE_OP;
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILURE_OP;
}
