/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dmrepl receive: apply a stream from standard input to a pool, all or
 * nothing; list the resume tokens of interrupted receives; drop them.
 * With --negotiate (what dmrepl replicate --to runs on the far side) it
 * first prints one JSON line saying which replicas the pool holds.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dmrepl.h"
#include "json.h"
#include "migrate.h"
#include "progress.h"
#include "sync.h"
#include "transfer.h"

static const char *const subcmd = "receive";

static void usage(FILE *out)
{
	fprintf(out,
		"Usage:\n"
		"  %1$s receive --pool DST [--json] [options] < STREAM\n"
		"  %1$s receive --pool DST --resume-token\n"
		"  %1$s receive --pool DST --abort\n"
		"  %1$s receive --device PATH < STREAM\n"
		"  %1$s receive --dry-run [--pool DST | --device PATH] < STREAM\n"
		"  %1$s receive --pool VG/POOL --migrate HOST:VG/LV --check | --from-lv LV\n"
		"\n"
		"Apply a stream written by dmrepl send to pool DST. Every record is\n"
		"checked; the data goes into a new staging device, which becomes a\n"
		"replica only after the whole stream verified. A stream whose base DST\n"
		"holds no intact replica of is refused before anything is written. A\n"
		"stream that ends early keeps its staging device: --resume-token prints\n"
		"the token for dmrepl send --resume, --abort drops it.\n"
		"\n"
		"--dry-run reads and checks the whole stream (header, every record's\n"
		"checksum and length, the end's digest), and whether DST could take it\n"
		"(its base, a replay, the staging device a resumed stream continues) or\n"
		"PATH is big enough; it writes to no pool or device and records nothing.\n"
		"Without --pool or --device it checks the stream alone.\n"
		"\n"
		"Options:\n"
		"  -t, --to-pool DST       the destination pool (dm name or VG/POOL);\n"
		"      --pool DST          the same (-t means the destination pool in\n"
		"                          every subcommand)\n"
		"      --state-dir DIR     lineage records (default /var/lib/dmrepl)\n"
		"      --resume-token      print the token of each interrupted receive\n"
		"      --abort             delete every interrupted receive's device\n"
		"      --device PATH       write into a file or device instead (no\n"
		"                          lineage; not atomic)\n"
		"      --engine ENGINE     auto, uring, aio or sync (default auto)\n"
		"      --negotiate         first print the pool's replicas (JSON line)\n"
		"      --only-source PATTERN  take only streams whose source matches\n"
		"                          PATTERN (fnmatch; repeatable): dmrepl serve's\n"
		"      --tag TAG           the replica gets LVM tag TAG as well, in its\n"
		"                          commit (a sync job's: dmrepl.sync:JOB)\n"
		"      --keep N            with --tag, after the commit: of the intact\n"
		"                          replicas tagged TAG (of the --only-source\n"
		"                          sources), all but the N newest are removed\n"
		"                          (a far sync job's retention)\n"
		"      --migrate HOST:VG/LV  the far side of dmrepl migrate --to (it runs\n"
		"                          this): with --check, say whether VG/LV can be\n"
		"                          made in VG/POOL; with --from-lv LV, make it from\n"
		"                          replica LV and the last delta, step by step as\n"
		"                          the near side says (JSON lines on stdout)\n"
		"  -n, --dry-run           check the stream and say what it carries;\n"
		"                          write nothing (with --abort: say what it\n"
		"                          would drop)\n"
		"  -j, --json              progress lines and a result object on stdout\n"
		"  -q, --quiet             no progress\n"
		"  -h, --help              show this help\n"
		"\n"
		"Exit status: 0 received; 1 failed (nothing was committed); 2 usage;\n"
		"128+N interrupted by signal N.\n",
		program_name);
}

#define MAX_ONLY_SOURCES 16

struct receive_args {
	struct dmrepl_receive_opts o;
	const char *only[MAX_ONLY_SOURCES + 1];	/* --only-source, NULL-ended */
	unsigned int nr_only;
	const char *lvm_pool;		/* --pool as given (VG/POOL) */
	unsigned int keep;		/* --keep */
	bool token, abort, negotiate, json, quiet;
	struct dmrepl_migrate_receive_opts migrate;	/* --migrate */
	bool migrate_check;
	char **pruned;			/* what --keep removed */
	size_t nr_pruned;
};

enum { OPT_STATE_DIR = 256, OPT_TOKEN, OPT_ABORT, OPT_DEVICE, OPT_ENGINE, OPT_NEGOTIATE,
       OPT_ONLY_SOURCE, OPT_TAG, OPT_KEEP, OPT_MIGRATE, OPT_FROM_LV, OPT_CHECK };

static int parse_options(int argc, char *argv[], struct receive_args *a)
{
	static const struct option longopts[] = {
		{ "pool", required_argument, NULL, 't' },
		{ "to-pool", required_argument, NULL, 't' },
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "resume-token", no_argument, NULL, OPT_TOKEN },
		{ "abort", no_argument, NULL, OPT_ABORT },
		{ "device", required_argument, NULL, OPT_DEVICE },
		{ "engine", required_argument, NULL, OPT_ENGINE },
		{ "negotiate", no_argument, NULL, OPT_NEGOTIATE },
		{ "only-source", required_argument, NULL, OPT_ONLY_SOURCE },
		{ "tag", required_argument, NULL, OPT_TAG },
		{ "keep", required_argument, NULL, OPT_KEEP },
		{ "migrate", required_argument, NULL, OPT_MIGRATE },
		{ "from-lv", required_argument, NULL, OPT_FROM_LV },
		{ "check", no_argument, NULL, OPT_CHECK },
		{ "json", no_argument, NULL, 'j' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = tool_getopt(argc, argv, "t:njqh", longopts)) != -1) {
		switch (c) {
		case 't': a->o.pool = optarg; break;
		case OPT_STATE_DIR: a->o.state_dir = optarg; break;
		case OPT_TOKEN: a->token = true; break;
		case OPT_ABORT: a->abort = true; break;
		case OPT_DEVICE: a->o.device = optarg; break;
		case OPT_NEGOTIATE: a->negotiate = a->json = a->o.allow_empty = true; break;
		case OPT_ONLY_SOURCE:
			if (a->nr_only == MAX_ONLY_SOURCES)
				return tool_usage_error(subcmd, "--only-source: at most %d",
							MAX_ONLY_SOURCES);
			a->only[a->nr_only++] = optarg;
			a->o.only_sources = a->only;
			break;
		case OPT_TAG: a->o.replica_tag = optarg; break;
		case OPT_MIGRATE: a->migrate.source = optarg; break;
		case OPT_FROM_LV: a->migrate.from_lv = optarg; break;
		case OPT_CHECK: a->migrate_check = true; break;
		case OPT_KEEP: {
			uint64_t v;

			if (tool_option_number(subcmd, "--keep", optarg, 1, CONFIG_KEEP_MAX, &v))
				return EXIT_USAGE;
			a->keep = (unsigned int)v;
			break;
		}
		case OPT_ENGINE:
			if (dmrepl_engine_from_name(optarg, &a->o.engine) < 0)
				return tool_usage_error(subcmd, "--engine: '%s' is not one of auto, uring, aio, sync", optarg);
			break;
		case 'j': a->json = true; break;
		case 'q': a->quiet = true; break;
		case 'n': a->o.dry_run = true; break;
		case 'h': usage(stdout); return -1;
		default: return tool_usage_error(subcmd, "unrecognized option");
		}
	}
	if (optind < argc)
		return tool_usage_error(subcmd, "unexpected argument '%s'", argv[optind]);
	if (a->migrate.source || a->migrate.from_lv || a->migrate_check) {
		if (!a->migrate.source || !a->o.pool || a->o.device || a->token || a->abort ||
		    a->negotiate || a->o.dry_run || a->o.replica_tag || a->nr_only ||
		    !!a->migrate.from_lv + a->migrate_check != 1)
			return tool_usage_error(subcmd, "--migrate goes with --pool VG/POOL and one "
						"of --check and --from-lv, alone");
		a->migrate.pool = a->o.pool;
		a->migrate.state_dir = a->o.state_dir;
		return 0;
	}
	if (a->o.pool && a->o.device)
		return tool_usage_error(subcmd, "give one of --pool and --device");
	if (!a->o.pool && !a->o.device && !a->o.dry_run)
		return tool_usage_error(subcmd, "give one of --pool and --device "
					"(or --dry-run to check a stream alone)");
	if ((a->token || a->abort || a->negotiate) && !a->o.pool)
		return tool_usage_error(subcmd, "--resume-token, --abort and --negotiate go with --pool");
	if (a->o.replica_tag && !a->o.pool)
		return tool_usage_error(subcmd, "--tag goes with --pool (an LVM pool)");
	if (a->keep && !a->o.replica_tag)
		return tool_usage_error(subcmd, "--keep goes with --tag: it keeps the replicas so tagged");
	if (a->o.replica_tag && !dmrepl_lvm_tag_valid(a->o.replica_tag))
		return tool_usage_error(subcmd, "--tag '%s': not an LVM tag", a->o.replica_tag);
	if (a->token && a->abort)
		return tool_usage_error(subcmd, "--resume-token and --abort exclude each other");
	if (!a->token && !a->abort && isatty(STDIN_FILENO))
		return tool_usage_error(subcmd, "standard input is a terminal, not a stream");
	return 0;
}

/* ---- --resume-token, --abort ---- */

static int print_token(const char *token, const struct dmrepl_lineage_record *rec,
		       void *data)
{
	struct json *j = data;

	if (!j) {
		printf("%s\n", token);
		return 0;
	}
	json_open_object(j, NULL);
	json_string(j, "token", token);
	json_string(j, "src_pool", rec->src_pool);
	json_u64(j, "snap", rec->src.thin_id);
	json_u64(j, "staging", rec->dst.thin_id);
	json_u64(j, "offset", rec->checkpoint);
	json_close_object(j);
	return 0;
}

static int list_tokens(struct dmrepl_ctx *ctx, const struct receive_args *a,
		       struct json *j)
{
	return (a->o.dry_run ? dmrepl_receive_foreach_resumable_readonly
			     : dmrepl_receive_foreach_resumable)(
		ctx, a->o.pool, a->o.state_dir, print_token, j);
}

static int do_tokens(struct dmrepl_ctx *ctx, const struct receive_args *a)
{
	struct json j;
	int r;

	char *buf = NULL;
	size_t len = 0;
	FILE *mem = NULL;

	if (a->json) {
		/* built apart, printed whole: a failure prints no half object */
		mem = open_memstream(&buf, &len);
		if (!mem)
			return EXIT_FAILURE_OP;
		tool_json_result_begin(&j, mem, true);
		json_open_array(&j, "resumable");
	}
	r = list_tokens(ctx, a, a->json ? &j : NULL);
	if (a->json) {
		json_close_array(&j);
		json_close_object(&j);
		json_end(&j);
		fclose(mem);
		if (r == 0)
			fwrite(buf, 1, len, stdout);
		free(buf);
	}
	if (r < 0) {
		tool_fail_r(subcmd, r, "%s: %s", a->o.pool, strerror(-r));
		return EXIT_FAILURE_OP;
	}
	return EXIT_OK;
}

static int do_abort(struct dmrepl_ctx *ctx, const struct receive_args *a)
{
	unsigned int n = 0;
	int r = a->o.dry_run
		? dmrepl_receive_count_left(ctx, a->o.pool, a->o.state_dir, &n, NULL)
		: dmrepl_receive_abort(ctx, a->o.pool, a->o.state_dir, &n);

	if (r < 0) {
		tool_fail_r(subcmd, r, "%s: %s", a->o.pool, strerror(-r));
		return EXIT_FAILURE_OP;
	}
	if (a->json) {
		struct json j;

		tool_json_result_begin(&j, stdout, true);
		if (a->o.dry_run)
			json_bool(&j, "dry_run", true);
		json_string(&j, "dst_pool", a->o.pool);
		json_u64(&j, "dropped", n);
		json_close_object(&j);
		json_end(&j);
		tool_json_result_printed();
	} else if (!a->quiet) {
		printf("%u interrupted receive(s) %s from %s\n", n,
		       a->o.dry_run ? "would be dropped" : "dropped", a->o.pool);
	}
	return EXIT_OK;
}

/* ---- --negotiate: the replicas, then the stream ---- */

static int hello(struct dmrepl_ctx *ctx, const struct receive_args *a)
{
	return dmrepl_remote_hello(ctx, a->o.pool, a->o.state_dir, a->o.only_sources, stdout);
}

/* ---- receive ---- */

static void show(uint64_t done, uint64_t total, void *data)
{
	progress_update(data, "receive", done, total);
}

static void print_result(const struct receive_args *a,
			 const struct dmrepl_receive_result *res, int status)
{
	struct json j;

	tool_json_result_begin(&j, stdout, status == 0);
	if (status < 0) {
		tool_json_error(&j, status);
		json_u64(&j, "exit_status", tool_interrupted ? 128 + (uint64_t)tool_interrupted
							     : EXIT_FAILURE_OP);
	}
	if (a->o.dry_run)
		json_bool(&j, "dry_run", true);
	if (a->o.pool || a->o.device)
		json_string(&j, a->o.pool ? "dst_pool" : "device",
			    a->o.pool ? a->o.pool : a->o.device);
	json_u64(&j, "streams", res->streams);
	if (status == 0 && res->streams && a->o.dry_run) {
		json_string(&j, "src_pool", res->src_pool);
		json_u64(&j, "snap", res->src_thin_id);
		json_bool(&j, "full", res->full);
		if (res->base_dst_thin_id != DMREPL_THIN_ID_ANY)
			json_u64(&j, "base_replica", res->base_dst_thin_id);
		if (res->resumed)
			json_u64(&j, "staging", res->dst_thin_id);
		json_bool(&j, "resumed", res->resumed);
	} else if (status == 0 && res->streams && a->o.pool) {
		json_string(&j, "src_pool", res->src_pool);
		json_u64(&j, "snap", res->src_thin_id);
		json_u64(&j, "replica", res->dst_thin_id);
		if (res->dst_lv[0])
			json_string(&j, "replica_lv", res->dst_lv);
		if (res->base_dst_thin_id != DMREPL_THIN_ID_ANY)
			json_u64(&j, "base_replica", res->base_dst_thin_id);
		json_bool(&j, "resumed", res->resumed);
	}
	if (a->keep && status == 0 && !a->o.dry_run) {
		json_open_array(&j, "pruned");
		for (size_t i = 0; i < a->nr_pruned; i++)
			json_string(&j, NULL, a->pruned[i]);
		json_close_array(&j);
	}
	json_u64(&j, "records", res->stats.records);
	json_u64(&j, "data_bytes", res->stats.data_bytes);
	json_u64(&j, "discarded_bytes", res->discard_bytes);
	json_u64(&j, "zeroed_bytes", res->zero_bytes);
	json_u64(&j, "stream_bytes", res->stats.wire_bytes);
	json_close_object(&j);
	json_end(&j);
	tool_json_result_printed();
}

static void print_dry_run(const struct receive_args *a,
			  const struct dmrepl_receive_result *res)
{
	if (!res->streams) {
		printf("no stream; nothing written\n");
		return;
	}
	printf("thin %" PRIu64 " of %s, %s: %" PRIu64 " records, %" PRIu64
	       " bytes of data, %" PRIu64 " discarded, %" PRIu64 " zeroed",
	       res->src_thin_id, res->src_pool,
	       res->full ? "in full" : "incremental", res->stats.records,
	       res->stats.data_bytes, res->discard_bytes, res->zero_bytes);
	if (res->streams > 1)
		printf(" (%u streams, the last named)", res->streams);
	if (a->o.pool && res->resumed)
		printf("; would resume thin %" PRIu64 " of %s", res->dst_thin_id,
		       a->o.pool);
	else if (a->o.pool && res->base_dst_thin_id != DMREPL_THIN_ID_ANY)
		printf("; %s holds its base, as thin %" PRIu64, a->o.pool,
		       res->base_dst_thin_id);
	else if (a->o.pool)
		printf("; %s could take it", a->o.pool);
	else if (a->o.device)
		printf("; %s could take it", a->o.device);
	printf("; checked whole, nothing written\n");
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cmd_receive(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	struct receive_args a = { 0 };
	struct dmrepl_receive_result res = { 0 };
	struct progress *p;
	double start = now_seconds();
	bool drew;
	int r;

	r = parse_options(argc, argv, &a);
	if (r)
		return r < 0 ? EXIT_OK : r;
	if (a.migrate.source) {
		/* the near side's volume may be suspended: undo, never die, on a signal */
		tool_catch_signals();
		signal(SIGPIPE, SIG_IGN);
		r = dmrepl_migrate_receive(ctx, &a.migrate, STDIN_FILENO, stdout);
		return r == 0 ? EXIT_OK : r == -EINVAL ? EXIT_USAGE : EXIT_FAILURE_OP;
	}
	a.lvm_pool = a.o.pool;
	r = tool_resolve_lvm(ctx, subcmd, &a.o.pool, NULL);
	if (r)
		return r;
	if (a.token)
		return do_tokens(ctx, &a);
	if (a.abort)
		return do_abort(ctx, &a);
	tool_catch_signals();
	signal(SIGPIPE, SIG_IGN);
	if (a.negotiate && hello(ctx, &a) < 0)
		return EXIT_FAILURE_OP;
	p = progress_new(a.negotiate || a.quiet ? PROGRESS_QUIET
				 : a.json ? PROGRESS_JSON : PROGRESS_AUTO, subcmd);
	a.o.progress = show;
	a.o.progress_data = p;
	a.o.cancel = (const volatile int *)&tool_interrupted;
	r = dmrepl_receive(ctx, &a.o, STDIN_FILENO, &res);
	drew = progress_draws(p);
	progress_free(p);
	/* a far sync job's retention: only after its replica is committed */
	if (r == 0 && a.keep && !a.o.dry_run && res.streams && res.dst_lv[0]) {
		/* its dm name again: a pool's first thin LV moves it to "-tpool" */
		const char *pool = a.lvm_pool;

		r = tool_resolve_lvm_pool(ctx, subcmd, &pool) ? -EINVAL : 0;
		if (r == 0)
			r = sync_prune_received(ctx, subcmd, pool, a.o.state_dir,
						a.o.replica_tag, a.keep, a.o.only_sources,
						res.dst_lv, &a.pruned, &a.nr_pruned);
	}
	if (a.json)
		print_result(&a, &res, r);
	if (r == -ECANCELED && tool_interrupted)
		return tool_interrupted_exit(subcmd);
	if (r < 0 && res.dst_lv[0] && a.keep) {
		/* received and committed; its retention failed (said why) */
		return EXIT_FAILURE_OP;
	}
	if (r < 0) {
		tool_fail_r(subcmd, r, "the stream was not received: %s", strerror(-r));
		return EXIT_FAILURE_OP;
	}
	for (size_t i = 0; !a.json && !a.quiet && i < a.nr_pruned; i++)
		printf("removed %s (of the replicas tagged %s, the %u newest stay)\n",
		       a.pruned[i], a.o.replica_tag, a.keep);
	if (!a.json && !a.quiet && a.o.dry_run)
		print_dry_run(&a, &res);
	else if (!a.json && !a.quiet && a.o.pool && res.dst_lv[0])
		printf("thin %" PRIu64 " of %s received as %s (thin %" PRIu64 ")%s\n",
		       res.src_thin_id, res.src_pool, res.dst_lv, res.dst_thin_id,
		       res.streams > 1 ? " (the last of a chain)" : "");
	else if (!a.json && !a.quiet && a.o.pool)
		printf("thin %" PRIu64 " of %s received as thin %" PRIu64 " of %s%s\n",
		       res.src_thin_id, res.src_pool, res.dst_thin_id, a.o.pool,
		       res.streams > 1 ? " (the last of a chain)" : "");
	/* one summary a terminal: in send | receive, the end that drew */
	if (!a.json && !a.quiet && !a.o.dry_run && drew)
		progress_summary(stderr, res.stats.data_bytes, res.discard_bytes,
				 res.zero_bytes, now_seconds() - start);
	return EXIT_OK;
}
