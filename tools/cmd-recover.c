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
	bool json;
};

struct recovered {
	bool released;
	unsigned int removed;
	bool has_lineage;
	unsigned int resumable;
	struct json *j;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage:\n"
		"  %1$s recover --pool DMNAME [--state-dir DIR] [--json]\n"
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
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "p:jh", longopts, NULL)) != -1) {
		switch (c) {
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

static int list_token(const char *token, const struct dmrepl_lineage_record *rec,
		      void *userdata)
{
	struct recovered *res = userdata;

	res->resumable++;
	if (res->j)
		json_string(res->j, NULL, token);
	else
		printf("resumable receive: %s\n", token);
	return 0;
}

/* The pool's lineage folder, if it is a destination of dmrepl's. */
static bool has_lineage(const struct recover_opts *o)
{
	char dir[PATH_MAX];

	if (dmrepl_lineage_dir(o->state_dir ? o->state_dir
					    : dmrepl_state_dir_default(),
			       o->pool, dir, sizeof(dir)) < 0)
		return false;
	return access(dir, F_OK) == 0;
}

int cmd_recover(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	struct recover_opts o = {0};
	struct recovered res = {0};
	struct dmrepl_pool *pool = NULL;
	struct json j;
	int r, rc = EXIT_FAILURE_OP;

	r = parse_options(argc, argv, &o);
	if (r)
		return r < 0 ? EXIT_OK : r;
	tool_catch_signals();
	r = dmrepl_pool_open(ctx, o.pool, &pool);
	if (r < 0) {
		tool_fail(subcmd, "%s: cannot open the pool: %s", o.pool,
			  strerror(-r));
		return EXIT_FAILURE_OP;
	}
	r = dmrepl_pool_snap_recover(pool, &res.released, &res.removed);
	if (o.json) {
		json_init(&j, stdout);
		json_open_object(&j, NULL);
		json_string(&j, "pool", o.pool);
		json_u64(&j, "devices_removed", res.removed);
		json_bool(&j, "metadata_snapshot_released", res.released);
		json_bool(&j, "metadata_snapshot_ok", r == 0);
		res.j = &j;
	}
	res.has_lineage = has_lineage(&o);
	if (res.has_lineage) {
		int r2;

		if (res.j)
			json_open_array(&j, "resumable");
		/* opening the destination deletes unfinished replications */
		r2 = dmrepl_receive_foreach_resumable(ctx, o.pool, o.state_dir,
						      list_token, &res);
		if (res.j)
			json_close_array(&j);
		if (r == 0)
			r = r2;
	}
	if (o.json) {
		json_close_object(&j);
		json_end(&j);
	} else if (r == 0) {
		printf("pool %s: %s; %u device%s removed%s\n", o.pool,
		       res.released ? "released a metadata snapshot a killed "
				      "dmrepl held"
				    : "no metadata snapshot left held",
		       res.removed, res.removed == 1 ? "" : "s",
		       res.has_lineage ? "; unfinished replications resolved"
				       : "");
	}
	if (r == 0)
		rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILURE_OP;
	else if (r != -EBUSY)
		tool_fail(subcmd, "%s: %s", o.pool, strerror(-r));
	dmrepl_pool_unref(pool);
	return rc;
}
