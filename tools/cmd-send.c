/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dmrepl send: write a thin snapshot, or its delta from a base, as a
 * stream on standard output (doc/stream-format.md), for dmrepl receive.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
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
#include "progress.h"
#include "transfer.h"

static const char *const subcmd = "send";

static void usage(FILE *out)
{
	fprintf(out,
		"Usage:\n"
		"  %1$s send --pool SRC --snap ID [--base ID [--chain]] [options] > STREAM\n"
		"  %1$s send --pool SRC --resume TOKEN [options] > STREAM\n"
		"  %1$s send --device PATH [--extents FILE|-] [options] > STREAM\n"
		"  %1$s send ... --output FILE [--json]\n"
		"  %1$s send ... --dry-run [--json]\n"
		"\n"
		"Write thin snapshot ID of pool SRC as a stream on standard output:\n"
		"its mapped blocks, or with --base only what differs from BASE, which\n"
		"the receiving pool must hold a replica of. dmrepl receive applies it.\n"
		"\n"
		"With --json, progress lines and a result object (also on failure) go\n"
		"to standard output when the stream does not (--output, --dry-run),\n"
		"else to standard error.\n"
		"\n"
		"Options:\n"
		"  -p, --pool SRC          the source pool (dm name)\n"
		"  -s, --snap ID           the thin snapshot to send\n"
		"  -b, --base ID           an older snapshot the receiver holds\n"
		"      --chain             also send every snapshot between BASE and ID\n"
		"                          that shares blocks with ID, oldest first,\n"
		"                          each its own stream, received as its own replica\n"
		"      --resume TOKEN      continue an interrupted receive (the token\n"
		"                          comes from dmrepl receive --resume-token)\n"
		"      --size SIZE         the snapshot's size (default: that of an\n"
		"                          active device of it)\n"
		"      --source-name NAME  the source's name in the stream\n"
		"                          (default HOSTNAME:SRC)\n"
		"  -z, --compress[=LEVEL]  zstd-compress the data (level 1-19, default 3)\n"
		"      --detect-zeroes     send blocks of zeroes as ZERO records\n"
		"      --checkpoint SIZE   data between resumable checkpoints (default 256M)\n"
		"      --engine ENGINE     auto, uring, aio or sync (default auto)\n"
		"      --queue-depth N     reads in flight (default 32)\n"
		"      --bwlimit RATE      at most RATE bytes of stream a second\n"
		"                          (K, M, G, T: powers of 1024)\n"
		"      --ionice CLASS[:LEVEL]  the reads' I/O priority: realtime,\n"
		"                          best-effort or idle, level 0-7\n"
		"      --device PATH       send a file or device instead (no pool)\n"
		"      --extents FILE      with --device: only these extents\n"
		"      --output FILE       write the stream to FILE, not standard output\n"
		"  -n, --dry-run           say what the stream would carry (snapshot,\n"
		"                          base, extents, bytes); write no stream\n"
		"  -j, --json              progress lines and a result object (see above)\n"
		"  -q, --quiet             no progress bar\n"
		"  -h, --help              show this help\n"
		"\n"
		"Exit status: 0 sent; 1 failed; 2 usage; 128+N interrupted by signal N.\n",
		program_name);
}

struct send_args {
	struct dmrepl_send_opts o;
	bool has_snap, chain, quiet, json;
	const char *extents;
	const char *output;
};

enum {
	OPT_CHAIN = 256, OPT_RESUME, OPT_SIZE, OPT_SOURCE_NAME, OPT_DETECT_ZEROES,
	OPT_CHECKPOINT, OPT_ENGINE, OPT_QD, OPT_DEVICE, OPT_EXTENTS, OPT_OUTPUT,
	OPT_BWLIMIT, OPT_IONICE,
};

static int parse_one(int c, const char *arg, struct send_args *a)
{
	uint64_t v;

	switch (c) {
	case 'p': a->o.pool = arg; return 0;
	case 's':
		a->has_snap = true;
		a->o.snap_name = strchr(arg, '/') ? arg : NULL;
		return tool_parse_thin_id(subcmd, "--snap", arg, &a->o.snap_id);
	case 'b': return tool_parse_thin_id(subcmd, "--base", arg, &a->o.base_id);
	case 'z':
		v = 3;
		if (arg && tool_option_number(subcmd, "--compress", arg, 1, 19, &v))
			return EXIT_USAGE;
		a->o.zstd_level = (int)v;
		return 0;
	case 'q': a->quiet = true; return 0;
	case 'n': a->o.dry_run = true; return 0;
	case 'j': a->json = true; return 0;
	case OPT_OUTPUT:
		if (!*arg)
			return tool_usage_error(subcmd, "--output: give a file name");
		a->output = arg;
		return 0;
	case OPT_CHAIN: a->chain = true; return 0;
	case OPT_RESUME: a->o.resume_token = arg; return 0;
	case OPT_SIZE:
		return tool_option_size(subcmd, "--size", arg, 512, UINT64_MAX, 512,
					&a->o.size_bytes);
	case OPT_SOURCE_NAME:
		if (!*arg || strlen(arg) > 127)
			return tool_usage_error(subcmd, "--source-name: 1 to 127 characters");
		a->o.source_name = arg;
		return 0;
	case OPT_DETECT_ZEROES: a->o.detect_zeroes = true; return 0;
	case OPT_CHECKPOINT:
		return tool_option_size(subcmd, "--checkpoint", arg, 0, UINT64_MAX,
					1, &a->o.checkpoint_bytes);
	case OPT_ENGINE:
		if (dmrepl_engine_from_name(arg, &a->o.engine) < 0)
			return tool_usage_error(subcmd, "--engine: '%s' is not one of auto, uring, aio, sync", arg);
		return 0;
	case OPT_QD:
		if (tool_option_number(subcmd, "--queue-depth", arg, 1, 256, &v))
			return EXIT_USAGE;
		a->o.queue_depth = (unsigned int)v;
		return 0;
	case OPT_BWLIMIT:
		return tool_option_size(subcmd, "--bwlimit", arg, 1, UINT64_MAX, 1,
					&a->o.bwlimit);
	case OPT_IONICE: {
		int cls, level;

		if (tool_parse_ionice(arg, &cls, &level) < 0)
			return tool_usage_error(subcmd, "--ionice: '%s' is not CLASS[:LEVEL]", arg);
		a->o.ioprio = cls << 13 | level;	/* IOPRIO_PRIO_VALUE */
		return 0;
	}
	case OPT_DEVICE: a->o.device = arg; return 0;
	case OPT_EXTENTS: a->extents = arg; return 0;
	case 'h': usage(stdout); return -1;
	default: return tool_usage_error(subcmd, "unrecognized option");
	}
}

static int check_args(struct send_args *a)
{
	struct dmrepl_resume_token t;

	/* a snapshot named VG/LV gives its pool */
	if (!a->o.pool == !a->o.device && !(tool_has_lvm_names() && !a->o.device))
		return tool_usage_error(subcmd, "give one of --pool and --device");
	if (a->extents && !a->o.device)
		return tool_usage_error(subcmd, "--extents goes with --device");
	if (a->o.resume_token && a->o.pool) {
		if (dmrepl_resume_token_parse(a->o.resume_token, &t) < 0)
			return tool_usage_error(subcmd, "--resume: '%s' is not a "
					        "resume token (mistyped?)",
						a->o.resume_token);
		if ((a->has_snap && t.snap_id != a->o.snap_id) ||
		    (a->o.base_id != DMREPL_THIN_ID_ANY && t.base_id != a->o.base_id))
			return tool_usage_error(subcmd, "--resume: the token is for "
					        "thin %" PRIu64 ", not for the "
						"--snap/--base given", t.snap_id);
		a->o.snap_id = t.snap_id;
		a->o.base_id = t.base_id;
		a->has_snap = true;
	}
	if ((a->o.pool || tool_has_lvm_names()) && !a->has_snap)
		return tool_usage_error(subcmd, "--snap is required with --pool");
	if (a->o.base_id != DMREPL_THIN_ID_ANY && a->o.base_id == a->o.snap_id &&
	    !tool_has_lvm_names())
		return tool_usage_error(subcmd, "--base and --snap are the same thin id");
	if (a->chain && (a->o.base_id == DMREPL_THIN_ID_ANY || a->o.resume_token))
		return tool_usage_error(subcmd, "--chain needs --base, and no --resume");
	if (!a->o.dry_run && !a->output && isatty(STDOUT_FILENO))
		return tool_usage_error(subcmd, "refusing to write a stream to a "
				        "terminal: redirect standard output");
	return 0;
}

static int parse_options(int argc, char *argv[], struct send_args *a)
{
	static const struct option longopts[] = {
		{ "pool", required_argument, NULL, 'p' },
		{ "snap", required_argument, NULL, 's' },
		{ "base", required_argument, NULL, 'b' },
		{ "chain", no_argument, NULL, OPT_CHAIN },
		{ "resume", required_argument, NULL, OPT_RESUME },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "source-name", required_argument, NULL, OPT_SOURCE_NAME },
		{ "compress", optional_argument, NULL, 'z' },
		{ "detect-zeroes", no_argument, NULL, OPT_DETECT_ZEROES },
		{ "checkpoint", required_argument, NULL, OPT_CHECKPOINT },
		{ "engine", required_argument, NULL, OPT_ENGINE },
		{ "queue-depth", required_argument, NULL, OPT_QD },
		{ "bwlimit", required_argument, NULL, OPT_BWLIMIT },
		{ "ionice", required_argument, NULL, OPT_IONICE },
		{ "device", required_argument, NULL, OPT_DEVICE },
		{ "extents", required_argument, NULL, OPT_EXTENTS },
		{ "output", required_argument, NULL, OPT_OUTPUT },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, r;

	a->o.base_id = DMREPL_THIN_ID_ANY;
	while ((c = tool_getopt(argc, argv, "p:s:b:z::nqjh", longopts)) != -1) {
		r = parse_one(c, optarg, a);
		if (r)
			return r;
	}
	if (optind < argc)
		return tool_usage_error(subcmd, "unexpected argument '%s'", argv[optind]);
	return check_args(a);
}

static void show(uint64_t done, uint64_t total, void *data)
{
	progress_update(data, "send", done, total);
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Where the JSON goes: stdout, unless the stream does. */
static FILE *json_out(const struct send_args *a)
{
	return a->output || a->o.dry_run ? stdout : stderr;
}

static void print_result(const struct send_args *a,
			 const struct dmrepl_send_result *res, int status,
			 double seconds)
{
	bool dry = a->o.dry_run;
	struct json j;

	tool_json_result_begin(&j, json_out(a), status == 0);
	if (status < 0) {
		tool_json_error(&j, status);
		json_u64(&j, "exit_status", EXIT_FAILURE_OP);
	}
	if (dry)
		json_bool(&j, "dry_run", true);
	json_string(&j, a->o.pool ? "pool" : "device",
		    a->o.pool ? a->o.pool : a->o.device);
	if (a->o.pool)
		json_u64(&j, "snap", a->o.snap_id);
	if (a->o.pool && a->o.base_id != DMREPL_THIN_ID_ANY)
		json_u64(&j, "base", a->o.base_id);
	if (a->output && !dry)
		json_string(&j, "output", a->output);
	json_u64(&j, "streams", res->streams);
	json_u64(&j, "size_bytes", res->volume_size);
	if (res->resume_offset)
		json_u64(&j, "resume_offset", res->resume_offset);
	json_u64(&j, "extents", res->extents);
	json_u64(&j, "copied_bytes", res->copy_bytes - res->zero_bytes);
	json_u64(&j, "discarded_bytes", res->discard_bytes);
	json_u64(&j, "zeroed_bytes", res->zero_bytes);
	if (!dry) {
		json_u64(&j, "records", res->stats.records);
		json_u64(&j, "stream_bytes", res->stats.wire_bytes);
	}
	json_u64(&j, "milliseconds", (uint64_t)(seconds * 1000 + 0.5));
	json_close_object(&j);
	json_end(&j);
	tool_json_result_printed();
}

static void print_dry_run(const struct send_args *a,
			  const struct dmrepl_send_result *res)
{
	if (a->o.pool)
		printf("thin %" PRIu64 " of %s: ", a->o.snap_id, a->o.pool);
	else
		printf("%s: ", a->o.device);
	printf("the stream would carry %" PRIu64 " bytes of data and %" PRIu64
	       " bytes of discards in %" PRIu64 " extent%s",
	       res->copy_bytes, res->discard_bytes, res->extents,
	       res->extents == 1 ? "" : "s");
	if (a->o.pool && a->o.base_id == DMREPL_THIN_ID_ANY)
		printf(", in full");
	else if (a->o.pool)
		printf(", from thin %" PRIu64, a->o.base_id);
	if (res->streams > 1)
		printf(", as %u streams (the snapshots between too)", res->streams);
	if (res->resume_offset)
		printf(", resumed at byte %" PRIu64, res->resume_offset);
	printf("; nothing sent\n");
}

/*
 * --output FILE: the stream's file descriptor; *@created when the file
 * is new (removed again if the send fails: no half stream is left).
 */
static int open_output(const struct send_args *a, bool *created)
{
	int fd;

	if (!a->output || a->o.dry_run)
		return STDOUT_FILENO;
	fd = open(a->output, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
	*created = fd >= 0;
	if (fd < 0 && errno == EEXIST)
		fd = open(a->output, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0) {
		tool_note_errno(-errno);
		tool_error(subcmd, "cannot create %s: %s", a->output, strerror(errno));
	}
	return fd;
}

int cmd_send(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	struct send_args a = { 0 };
	struct dmrepl_send_result res = { 0 };
	struct progress *p = NULL;
	FILE *extents = NULL;
	double start = now_seconds();
	bool drew, created = false;
	int fd, r, rc = EXIT_FAILURE_OP;

	r = parse_options(argc, argv, &a);
	tool_json_set_stream(json_out(&a));
	if (r)
		return r < 0 ? EXIT_OK : r;
	r = tool_resolve_lvm(ctx, subcmd, &a.o.pool, &a.o.size_bytes);
	if (r)
		return r;
	if (a.o.base_id != DMREPL_THIN_ID_ANY && a.o.base_id == a.o.snap_id)
		return tool_usage_error(subcmd, "--base and --snap are the same thin volume");
	if (a.extents) {
		extents = strcmp(a.extents, "-") ? fopen(a.extents, "re") : stdin;
		if (!extents) {
			tool_fail(subcmd, "cannot open %s: %s", a.extents, strerror(errno));
			return EXIT_FAILURE_OP;
		}
		a.o.extents = extents;
	}
	fd = open_output(&a, &created);
	if (fd < 0) {
		if (extents && extents != stdin)
			fclose(extents);
		return EXIT_FAILURE_OP;
	}
	tool_catch_signals();
	signal(SIGPIPE, SIG_IGN);	/* a receiver that goes away: EPIPE */
	/* the stream on stdout: a bar, or JSON lines on stderr */
	p = progress_new(a.quiet ? PROGRESS_QUIET : a.json ? PROGRESS_JSON
							  : PROGRESS_AUTO, subcmd);
	progress_set_json_output(p, json_out(&a));
	a.o.progress = show;
	a.o.progress_data = p;
	a.o.cancel = (const volatile int *)&tool_interrupted;
	if (a.chain)
		r = dmrepl_send_chain(ctx, &a.o, fd, &res);
	else
		r = dmrepl_send(ctx, &a.o, fd, &res);
	if (r == 0 && fd != STDOUT_FILENO && close(fd) < 0) {
		r = -errno;
		tool_error(subcmd, "writing %s: %s", a.output, strerror(-r));
	} else if (fd != STDOUT_FILENO) {
		close(fd);
	}
	if (r < 0 && created)
		unlink(a.output);
	drew = progress_draws(p);
	progress_free(p);
	if (extents && extents != stdin)
		fclose(extents);
	if (r == -ECANCELED && tool_interrupted)
		return tool_interrupted_exit(subcmd);	/* main() prints the JSON */
	if (r == -EPIPE)	/* said even after the library's write error */
		tool_error(subcmd, "the receiver closed the stream (it failed, or "
				   "was stopped): see its messages");
	else if (r < 0)
		tool_fail_r(subcmd, r, "the stream was not sent: %s", strerror(-r));
	else
		rc = EXIT_OK;
	if (a.json)
		print_result(&a, &res, r, now_seconds() - start);
	else if (rc == EXIT_OK && a.o.dry_run && !a.quiet)
		print_dry_run(&a, &res);
	else if (rc == EXIT_OK && !a.quiet && drew)
		progress_summary(stderr, res.copy_bytes - res.zero_bytes,
				 res.discard_bytes, res.zero_bytes,
				 now_seconds() - start);
	return rc;
}
