/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dmrepl replicate: replicate a thin snapshot into another pool on this
 * host, in full or as the delta from a base both pools hold. A thin user
 * of the library's job API: it starts the job, shows its progress, and
 * cancels it on SIGINT/SIGTERM.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "dmrepl.h"
#include "json.h"
#include "progress.h"
#include "transfer.h"

static const char *const subcmd = "replicate";

struct replicate_opts {
	const char *src_pool, *dst_pool, *state_dir;
	const char *snap_lv;		/* --snap VG/LV, as given */
	/* --to: another host, through a stream (lib/remote.c) */
	struct {
		const char *url, *transport, *remote_dmrepl, *remote_state_dir;
		bool chain;
	} remote;
	const char *source_name;
	int zstd_level;
	uint64_t snap_id, base_id, size_bytes;
	bool has_snap, full, json, quiet, detect_zeroes, dry_run;
	enum dmrepl_engine engine;
	uint64_t queue_depth, io_size, bwlimit;
	int ioprio_class, ioprio_level;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage:\n"
		"  %1$s replicate --pool SRC --snap ID [--base ID] --to-pool DST\n"
		"                 [--full] [--size SIZE] [options]\n"
		"  %1$s replicate --pool SRC --snap ID [--base ID] [--chain]\n"
		"                 --to ssh://[USER@]HOST/POOL [--transport CMD] [options]\n"
		"\n"
		"Replicate thin snapshot ID of pool SRC into pool DST, both active\n"
		"device-mapper thin pools on this host. With --base, only the blocks\n"
		"that differ from BASE are copied, into a snapshot of DST's replica\n"
		"of BASE; without it, or with --full, the snapshot's mapped blocks\n"
		"are copied into a new thin device. The new device becomes a replica\n"
		"only when every byte is on disk. The lineage is kept in the state\n"
		"directory.\n"
		"\n"
		"Options:\n"
		"  -p, --pool SRC          the source pool (dm name)\n"
		"  -s, --snap ID           the thin snapshot to replicate\n"
		"  -b, --base ID           an older snapshot DST holds a replica of\n"
		"  -t, --to-pool DST       the destination pool (dm name)\n"
		"      --to URL            ssh://[USER@]HOST/POOL: a pool on another host,\n"
		"                          through dmrepl receive there; the base is the\n"
		"                          newest snapshot it holds a replica of\n"
		"      --transport CMD     instead of ssh: CMD gets the far side's command\n"
		"                          line as one argument (e.g. 'sh -c')\n"
		"      --remote-dmrepl PATH  dmrepl on the far side (default dmrepl)\n"
		"      --remote-state-dir DIR  the far side's state directory\n"
		"      --chain             with --to: also the snapshots in between\n"
		"  -z, --compress[=LEVEL]  with --to: zstd-compress the stream\n"
		"      --source-name NAME  with --to: this pool's name (HOSTNAME:SRC)\n"
		"  -f, --full              copy in full even with --base (force_full_copy)\n"
		"  -n, --dry-run           say what would be copied (base, extents,\n"
		"                          bytes), and write nothing (--to-pool only)\n"
		"      --size SIZE         the snapshot's size (default: that of an\n"
		"                          active device of it, else of the base)\n"
		"      --state-dir DIR     lineage records (default /var/lib/dmrepl)\n"
		"      --engine ENGINE     auto, uring, aio or sync (default auto)\n"
		"      --queue-depth N     I/Os in flight (default 32)\n"
		"      --io-size SIZE      largest I/O (default 1M)\n"
		"      --bwlimit RATE      bytes per second, e.g. 100M\n"
		"      --ionice CLASS[:LEVEL]  I/O priority: realtime, best-effort, idle\n"
		"      --detect-zeroes     write blocks of zeroes as discards\n"
		"  -j, --json              progress lines and a result object on stdout\n"
		"  -q, --quiet             no progress\n"
		"  -h, --help              show this help\n"
		"\n"
		"Exit status: 0 replicated; 1 failed (nothing was recorded, and the\n"
		"unfinished device was deleted); 2 usage; 128+N interrupted by signal N.\n",
		program_name);
}

enum {
	OPT_SIZE = 256, OPT_STATE_DIR, OPT_ENGINE, OPT_QD, OPT_IO_SIZE,
	OPT_BWLIMIT, OPT_IONICE, OPT_DETECT_ZEROES,
	OPT_TO, OPT_TRANSPORT, OPT_REMOTE_DMREPL, OPT_REMOTE_STATE_DIR, OPT_CHAIN,
	OPT_SOURCE_NAME,
};

static int parse_level(const char *arg, int *ret)
{
	uint64_t v = 3;
	int r = arg ? tool_option_number(subcmd, "--compress", arg, 1, 19, &v) : 0;

	*ret = (int)v;
	return r;
}

static int parse_one(int c, const char *arg, struct replicate_opts *o)
{
	switch (c) {
	case 'p': o->src_pool = arg; return 0;
	case 't': o->dst_pool = arg; return 0;
	case 's':
		o->has_snap = true;
		o->snap_lv = strchr(arg, '/') ? arg : NULL;
		return tool_parse_thin_id(subcmd, "--snap", arg, &o->snap_id);
	case 'b': return tool_parse_thin_id(subcmd, "--base", arg, &o->base_id);
	case 'f': o->full = true; return 0;
	case 'n': o->dry_run = true; return 0;
	case 'j': o->json = true; return 0;
	case 'q': o->quiet = true; return 0;
	case OPT_SIZE:
		return tool_option_size(subcmd, "--size", arg, 512, UINT64_MAX, 512,
					&o->size_bytes);
	case OPT_STATE_DIR: o->state_dir = arg; return 0;
	case OPT_QD:
		return tool_option_number(subcmd, "--queue-depth", arg, 1, 1024,
					  &o->queue_depth);
	case OPT_IO_SIZE:
		return tool_option_size(subcmd, "--io-size", arg, 4096, 64u << 20,
					4096, &o->io_size);
	case OPT_BWLIMIT:
		return tool_option_size(subcmd, "--bwlimit", arg, 0, UINT64_MAX, 1,
					&o->bwlimit);
	case OPT_DETECT_ZEROES: o->detect_zeroes = true; return 0;
	case OPT_TO: o->remote.url = arg; return 0;
	case OPT_TRANSPORT: o->remote.transport = arg; return 0;
	case OPT_REMOTE_DMREPL: o->remote.remote_dmrepl = arg; return 0;
	case OPT_REMOTE_STATE_DIR: o->remote.remote_state_dir = arg; return 0;
	case OPT_CHAIN: o->remote.chain = true; return 0;
	case OPT_SOURCE_NAME: o->source_name = arg; return 0;
	case 'z': return parse_level(arg, &o->zstd_level);
	case OPT_ENGINE:
		if (dmrepl_engine_from_name(arg, &o->engine) < 0)
			return tool_usage_error(subcmd, "--engine: '%s' is not one of auto, uring, aio, sync", arg);
		return 0;
	case OPT_IONICE:
		if (tool_parse_ionice(arg, &o->ioprio_class, &o->ioprio_level) < 0)
			return tool_usage_error(subcmd, "--ionice: '%s' is not CLASS[:LEVEL]", arg);
		return 0;
	case 'h': usage(stdout); return -1;
	default: return tool_usage_error(subcmd, "unrecognized option");
	}
}

static int parse_options(int argc, char *argv[], struct replicate_opts *o)
{
	static const struct option longopts[] = {
		{ "pool", required_argument, NULL, 'p' },
		{ "snap", required_argument, NULL, 's' },
		{ "base", required_argument, NULL, 'b' },
		{ "to-pool", required_argument, NULL, 't' },
		{ "full", no_argument, NULL, 'f' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "engine", required_argument, NULL, OPT_ENGINE },
		{ "queue-depth", required_argument, NULL, OPT_QD },
		{ "io-size", required_argument, NULL, OPT_IO_SIZE },
		{ "bwlimit", required_argument, NULL, OPT_BWLIMIT },
		{ "ionice", required_argument, NULL, OPT_IONICE },
		{ "detect-zeroes", no_argument, NULL, OPT_DETECT_ZEROES },
		{ "to", required_argument, NULL, OPT_TO },
		{ "transport", required_argument, NULL, OPT_TRANSPORT },
		{ "remote-dmrepl", required_argument, NULL, OPT_REMOTE_DMREPL },
		{ "remote-state-dir", required_argument, NULL, OPT_REMOTE_STATE_DIR },
		{ "chain", no_argument, NULL, OPT_CHAIN },
		{ "source-name", required_argument, NULL, OPT_SOURCE_NAME },
		{ "compress", optional_argument, NULL, 'z' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, r;

	o->base_id = DMREPL_THIN_ID_ANY;
	while ((c = tool_getopt(argc, argv, "p:s:b:t:fnz::jqh", longopts)) != -1) {
		r = parse_one(c, optarg, o);
		if (r)
			return r;
	}
	if (optind < argc)
		return tool_usage_error(subcmd, "unexpected argument '%s'", argv[optind]);
	if ((!o->src_pool && !tool_has_lvm_names()) || !o->has_snap ||
	    !o->dst_pool == !o->remote.url)
		return tool_usage_error(subcmd, "--pool, --snap and one of --to-pool and --to are required");
	if (!o->remote.url && (o->remote.transport || o->remote.chain || o->zstd_level ||
			       o->source_name || o->remote.remote_dmrepl))
		return tool_usage_error(subcmd, "--transport, --chain, --compress, "
					"--source-name and --remote-dmrepl go with --to");
	if (o->dry_run && o->remote.url)
		return tool_usage_error(subcmd, "--dry-run goes with --to-pool");
	if (o->base_id == o->snap_id && !tool_has_lvm_names())
		return tool_usage_error(subcmd, "--base and --snap are the same thin id");
	return 0;
}

/* The option a library setter refused, for the message (exit 2). */
#define SET(opt, call) \
	do { \
		if (r == 0 && (r = (call)) < 0) \
			*ret_opt = (opt); \
	} while (0)

static int configure(struct dmrepl_replicate *rep, const struct replicate_opts *o,
		     const char **ret_opt)
{
	int r = 0;

	if (o->base_id != DMREPL_THIN_ID_ANY)
		SET("--base", dmrepl_replicate_set_base(rep, o->base_id));
	SET("--full", dmrepl_replicate_set_full(rep, o->full));
	SET("--dry-run", dmrepl_replicate_set_dry_run(rep, o->dry_run));
	if (o->state_dir)
		SET("--state-dir", dmrepl_replicate_set_state_dir(rep, o->state_dir));
	SET("--size", dmrepl_replicate_set_size(rep, o->size_bytes));
	if (o->snap_lv)
		SET("--snap", dmrepl_replicate_set_snap_lv(rep, o->snap_lv));
	SET("--engine", dmrepl_replicate_set_engine(rep, o->engine));
	SET("--queue-depth", dmrepl_replicate_set_queue_depth(rep, (unsigned int)o->queue_depth));
	SET("--io-size", dmrepl_replicate_set_io_size(rep, (uint32_t)o->io_size));
	SET("--bwlimit", dmrepl_replicate_set_bwlimit(rep, o->bwlimit));
	if (o->ioprio_class)
		SET("--ionice", dmrepl_replicate_set_ioprio(rep, o->ioprio_class, o->ioprio_level));
	if (o->detect_zeroes)
		SET("--detect-zeroes", dmrepl_replicate_set_copy_flags(rep, DMREPL_COPY_DETECT_ZEROES));
	if (!o->remote.url)
		return r;
	if (o->remote.transport)
		SET("--transport", dmrepl_replicate_set_transport(rep, o->remote.transport));
	if (o->remote.remote_dmrepl)
		SET("--remote-dmrepl", dmrepl_replicate_set_remote_command(rep, o->remote.remote_dmrepl));
	if (o->remote.remote_state_dir)
		SET("--remote-state-dir", dmrepl_replicate_set_remote_state_dir(rep, o->remote.remote_state_dir));
	if (o->source_name)
		SET("--source-name", dmrepl_replicate_set_source_name(rep, o->source_name));
	SET("--compress", dmrepl_replicate_set_compression(rep, o->zstd_level));
	SET("--chain", dmrepl_replicate_set_chain(rep, o->remote.chain));
	return r;
}

/*
 * Poll the job until it ends; a signal cancels it. The progress is shown
 * ten times a second, but the end is looked for every 10 ms: a small
 * incremental takes a few tenths of a second, and waiting out a whole
 * tenth after it would add a quarter to it.
 */
void tool_replicate_watch(struct dmrepl_replicate *rep, struct progress *p)
{
	const struct timespec tick = { 0, 10 * 1000 * 1000 };
	struct dmrepl_replicate_progress pr;
	bool cancelled = false;

	for (unsigned int n = 0;; n++) {
		dmrepl_replicate_get_progress(rep, &pr);
		if (pr.finished || n % 10 == 0)
			progress_update(p, dmrepl_replicate_phase_name(pr.phase),
					pr.done_bytes, pr.total_bytes);
		if (pr.finished)
			return;
		if (tool_interrupted && !cancelled) {
			dmrepl_replicate_cancel(rep);
			cancelled = true;
		}
		nanosleep(&tick, NULL);
	}
}

static const char *dst_of(const struct replicate_opts *o)
{
	return o->remote.url ? o->remote.url : o->dst_pool;
}

static void print_result(const struct replicate_opts *o,
			 const struct dmrepl_replicate_result *res, int status,
			 double seconds)
{
	struct json j;

	tool_json_result_begin(&j, stdout, status == 0);
	if (status < 0) {
		tool_json_error(&j, status);
		json_u64(&j, "exit_status", status == -ECANCELED && tool_interrupted
					    ? 128 + (uint64_t)tool_interrupted : EXIT_FAILURE_OP);
	}
	json_string(&j, "src_pool", o->src_pool);
	json_u64(&j, "snap", o->snap_id);
	json_string(&j, o->remote.url ? "to" : "dst_pool", dst_of(o));
	if (status == 0) {
		json_u64(&j, "replica", res->dst_thin_id);
		if (res->dst_lv[0])
			json_string(&j, "replica_lv", res->dst_lv);
		if (res->base_dst_thin_id != DMREPL_THIN_ID_ANY)
			json_u64(&j, "base_replica", res->base_dst_thin_id);
		if (res->base_thin_id != DMREPL_THIN_ID_ANY && !res->already_replicated)
			json_u64(&j, "base", res->base_thin_id);
		if (o->remote.url) {
			json_bool(&j, "resumed", res->resumed);
			json_u64(&j, "streams", res->streams);
		}
		json_bool(&j, "full", res->full);
		if (res->dry_run)
			json_bool(&j, "dry_run", true);
		json_bool(&j, "already_replicated", res->already_replicated);
		json_u64(&j, "size_bytes", res->size_bytes);
		json_u64(&j, "extents", res->extents);
		json_u64(&j, "copied_bytes", res->copied_bytes);
		json_u64(&j, "discarded_bytes", res->discarded_bytes);
		json_u64(&j, "zeroed_bytes", res->zeroed_bytes);
	}
	json_u64(&j, "milliseconds", (uint64_t)(seconds * 1000));
	json_close_object(&j);
	json_end(&j);
	tool_json_result_printed();
}


static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run(struct dmrepl_replicate *rep, const struct replicate_opts *o,
	       struct dmrepl_replicate_result *res)
{
	struct progress *p;
	int r;

	p = progress_new(o->json ? PROGRESS_JSON : o->quiet ? PROGRESS_QUIET : PROGRESS_AUTO,
			 subcmd);
	r = dmrepl_snapshot_replicate(rep);
	if (r == 0) {
		tool_replicate_watch(rep, p);
		r = dmrepl_replicate_wait(rep, res);
	}
	progress_free(p);
	return r;
}

static void print_line(const struct replicate_opts *o,
		       const struct dmrepl_replicate_result *res)
{
	if (res->dry_run) {
		printf("thin %" PRIu64 " of %s to %s: would copy %" PRIu64
		       " bytes in %" PRIu64 " extents, ",
		       o->snap_id, o->src_pool, dst_of(o), res->copied_bytes,
		       res->extents);
		if (res->full)
			printf("in full\n");
		else
			printf("from thin %" PRIu64 " (its replica: thin %" PRIu64
			       ")\n", res->base_thin_id, res->base_dst_thin_id);
		return;
	}
	if (res->dst_lv[0])
		printf("thin %" PRIu64 " of %s %s %s (thin %" PRIu64 " of %s)",
		       o->snap_id, o->src_pool,
		       res->already_replicated ? "was already replicated as"
					       : "replicated as",
		       res->dst_lv, res->dst_thin_id, dst_of(o));
	else
		printf("thin %" PRIu64 " of %s %s thin %" PRIu64 " of %s",
		       o->snap_id, o->src_pool,
		       res->already_replicated ? "was already replicated as"
					       : "replicated as",
		       res->dst_thin_id, dst_of(o));
	if (!res->already_replicated && res->full)
		printf(" (full%s)", res->resumed ? ", resumed" : "");
	else if (!res->already_replicated)
		printf(" (from thin %" PRIu64 "%s%s)", res->base_thin_id,
		       res->streams > 1 ? " through the snapshots between" : "",
		       res->resumed ? ", resumed" : "");
	printf("\n");
}

int cmd_replicate(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	struct replicate_opts o = { 0 };
	struct dmrepl_replicate *rep = NULL;
	struct dmrepl_replicate_result res = { 0 };
	double start = now_seconds();
	const char *refused = "";
	int r, rc = EXIT_FAILURE_OP;

	r = parse_options(argc, argv, &o);
	if (r)
		return r < 0 ? EXIT_OK : r;
	r = tool_resolve_lvm(ctx, subcmd, &o.src_pool, &o.size_bytes);
	if (r)
		return r;
	if (o.dst_pool && strchr(o.dst_pool, '/'))
		r = tool_resolve_lvm_pool(ctx, subcmd, &o.dst_pool);
	if (r)
		return r;
	if (o.base_id == o.snap_id)
		return tool_usage_error(subcmd, "--base and --snap are the same thin volume");
	tool_catch_signals();
	r = dmrepl_replicate_new(ctx, o.src_pool, o.snap_id, dst_of(&o), &rep);
	if (r < 0) {
		tool_fail_r(subcmd, r, "cannot set up the replication: %s", strerror(-r));
		goto out;
	}
	r = configure(rep, &o, &refused);
	if (r < 0) {
		rc = tool_usage_error(subcmd, "%s: refused by the library: %s",
				      refused, strerror(-r));
		goto out;
	}
	r = run(rep, &o, &res);
	if (o.json)
		print_result(&o, &res, r, now_seconds() - start);
	if (r == -ECANCELED && tool_interrupted) {
		rc = tool_interrupted_exit(subcmd);
		goto out;
	}
	if (r < 0) {
		tool_fail_r(subcmd, r, "thin %" PRIu64 " of %s was not replicated: %s",
			  o.snap_id, o.src_pool, strerror(-r));
		goto out;
	}
	if (!o.json && !o.quiet) {
		print_line(&o, &res);
		if (!res.dry_run && !res.already_replicated)
			progress_summary(stderr, res.copied_bytes, res.discarded_bytes,
					 res.zeroed_bytes, now_seconds() - start);
	}
	rc = EXIT_OK;
out:
	dmrepl_replicate_unref(rep);
	return rc;
}
