/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dmrepl verify: compare two files or block devices by hashing, over the
 * extents of a list or whole; or a source snapshot and its replica in
 * another pool (the pool form), over the snapshot's mapped extents or
 * whole.
 *
 * The comparison itself, verify_compare(), takes the two paths and an
 * extent source; the pool form finds the replica in the destination's
 * lineage, spools the snapshot's mapped extents through the source's
 * metadata snapshot (released before any data is read), activates both
 * read-only under temporary names, and always deactivates them.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dmrepl.h"
#include "json.h"
#include "libdmrepl-private.h"
#include "progress.h"

static const char *const subcmd = "verify";

#define MAX_SHOWN_MISMATCHES 16
/* The pool form's exit status when it could not compare. */
#define EXIT_NOT_COMPARED 3

/*
 * The ranges to compare. next() returns 0 with *@ret_extent filled, 1 at
 * the end, or -errno after reporting what is wrong. With @whole, next is
 * not used: the whole devices are compared, and their sizes must match.
 */
struct extent_source {
	int (*next)(void *data, struct dmrepl_extent *ret_extent);
	void *data;
	uint64_t total_bytes;	/* for progress; 0 when unknown */
	bool whole;
};

struct verify_output {
	enum progress_mode progress;
	bool json;
	int error_rc;		/* exit status when the comparison failed */
	const char *label[2];	/* how the two sides are named in the output */
	const struct dmrepl_lineage_record *replica;	/* pool form */
};

struct verify_opts {
	bool whole;
	const char *extents;	/* FILE, or "-" */
	uint32_t chunk_bytes;
	struct verify_output out;
	const char *path[2];
	/* the pool form */
	const char *src_pool, *dst_pool, *state_dir;
	uint64_t snap_id, size_bytes;
	bool has_snap;
};

/* An extents list read line by line from a file or stdin. */
struct extents_file {
	const char *name;
	FILE *f;
	char *line;
	size_t cap;
	unsigned long line_no;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage:\n"
		"  %1$s verify [--whole | --extents FILE|-] [--json] [-q] A B\n"
		"  %1$s verify --pool SRC --snap ID --to-pool DST [--whole]\n"
		"                [--size BYTES] [--state-dir DIR] [--json] [-q]\n"
		"\n"
		"Compare files or block devices A and B by hashing (XXH3-128, per\n"
		"chunk): the ranges listed in --extents, or the whole devices, whose\n"
		"sizes must then be equal. Lists the first mismatching ranges.\n"
		"\n"
		"The pool form compares thin snapshot ID of pool SRC with its replica\n"
		"in pool DST (from DST's lineage records): the snapshot's mapped\n"
		"extents, or with --whole the whole devices, both activated read-only\n"
		"for the comparison.\n"
		"\n"
		"Options:\n"
		"      --whole            compare A and B whole (the default for A B)\n"
		"  -e, --extents FILE     compare the ranges listed, one per line:\n"
		"                         OFFSET_BYTES LENGTH_BYTES copy|discard, as\n"
		"                         'dmrepl delta --format=extents' prints them;\n"
		"                         '-' reads standard input\n"
		"      --chunk-size BYTES unit of comparison, a multiple of 512\n"
		"                         (default 1 MiB, at most 64 MiB)\n"
		"  -p, --pool SRC         the source pool (dm name)\n"
		"  -s, --snap ID          the source snapshot\n"
		"  -t, --to-pool DST      the pool holding its replica (dm name)\n"
		"      --size BYTES       the size to compare (default: the replica's\n"
		"                         size in its lineage record)\n"
		"      --state-dir DIR    lineage records (default /var/lib/dmrepl)\n"
		"  -j, --json             progress lines and a result object on stdout\n"
		"  -q, --quiet            no progress display\n"
		"  -h, --help             show this help\n"
		"\n"
		"Exit status: 0 equal, 1 different (A B: or the comparison failed),\n"
		"2 usage, 3 (pool form) not compared: no replica, the snapshot changed,\n"
		"or an error.\n",
		program_name);
}

enum { OPT_WHOLE = 256, OPT_JSON, OPT_CHUNK, OPT_SIZE, OPT_STATE_DIR };

static int parse_chunk(const char *arg, struct verify_opts *o)
{
	uint64_t v;
	int r = tool_option_size(subcmd, "--chunk-size", arg, 512, 64u << 20,
				 512, &v);

	o->chunk_bytes = (uint32_t)v;
	return r;
}

static int parse_size(const char *arg, struct verify_opts *o)
{
	return tool_option_size(subcmd, "--size", arg, 512, UINT64_MAX, 512,
				&o->size_bytes);
}

/* One option: 0, -1 after printing help, or EXIT_USAGE. */
static int parse_one(int c, const char *arg, struct verify_opts *o, bool *quiet)
{
	switch (c) {
	case OPT_WHOLE: o->whole = true; return 0;
	case 'e': o->extents = arg; return 0;
	case OPT_CHUNK: return parse_chunk(arg, o);
	case 'j':
	case OPT_JSON: o->out.json = true; return 0;
	case 'q': *quiet = true; return 0;
	case 'p': o->src_pool = arg; return 0;
	case 't': o->dst_pool = arg; return 0;
	case 's':
		o->has_snap = true;
		return tool_parse_thin_id(subcmd, "--snap", arg, &o->snap_id);
	case OPT_SIZE: return parse_size(arg, o);
	case OPT_STATE_DIR: o->state_dir = arg; return 0;
	case 'h': usage(stdout); return -1;
	default: return tool_usage_error(subcmd, "unrecognized option");
	}
}

static bool pool_form(const struct verify_opts *o)
{
	return o->src_pool || o->dst_pool || o->has_snap;
}

static int check_pool_form(int argc, const struct verify_opts *o)
{
	if ((!o->src_pool && !tool_has_lvm_names()) || !o->dst_pool || !o->has_snap)
		return tool_usage_error(subcmd, "--pool, --snap and --to-pool go together");
	if (o->extents)
		return tool_usage_error(subcmd, "--extents does not go with --pool: "
					"the snapshot's mapped extents are compared");
	if (argc != optind)
		return tool_usage_error(subcmd, "--pool takes no A and B");
	if (o->src_pool && strcmp(o->src_pool, o->dst_pool) == 0)
		return tool_usage_error(subcmd, "--pool and --to-pool are the same pool");
	return 0;
}

/* Returns 0 when the options are usable, -1 after printing help, or EXIT_USAGE. */
static int parse_options(int argc, char *argv[], struct verify_opts *o)
{
	static const struct option longopts[] = {
		{ "whole", no_argument, NULL, OPT_WHOLE },
		{ "extents", required_argument, NULL, 'e' },
		{ "chunk-size", required_argument, NULL, OPT_CHUNK },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "quiet", no_argument, NULL, 'q' },
		{ "pool", required_argument, NULL, 'p' },
		{ "snap", required_argument, NULL, 's' },
		{ "to-pool", required_argument, NULL, 't' },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "state-dir", required_argument, NULL, OPT_STATE_DIR },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool quiet = false;
	int c, r;

	while ((c = tool_getopt(argc, argv, "e:qp:s:t:jh", longopts)) != -1) {
		r = parse_one(c, optarg, o, &quiet);
		if (r)
			return r;
	}
	if (o->whole && o->extents)
		return tool_usage_error(subcmd, "--whole and --extents exclude each other");
	o->out.progress = quiet ? PROGRESS_QUIET : o->out.json ? PROGRESS_JSON : PROGRESS_AUTO;
	if (pool_form(o))
		return check_pool_form(argc, o);
	if (o->size_bytes || o->state_dir)
		return tool_usage_error(subcmd, "--size and --state-dir go with --pool");
	if (argc - optind != 2)
		return tool_usage_error(subcmd, "expected two files or devices, A and B");
	o->path[0] = argv[optind];
	o->path[1] = argv[optind + 1];
	return 0;
}

/* ---- The extents list ---- */

static int extents_file_next(void *data, struct dmrepl_extent *ret_extent)
{
	struct extents_file *ef = data;
	const char *reason;
	ssize_t n;
	int r;

	while ((n = getline(&ef->line, &ef->cap, ef->f)) >= 0) {
		ef->line_no++;
		r = dmrepl_extent_parse_line(ef->line, (size_t)n, ret_extent, &reason);
		if (r == 0)
			return 0;
		if (r < 0) {
			tool_error(subcmd, "%s:%lu: %s", ef->name, ef->line_no, reason);
			return -EINVAL;
		}
	}
	if (ferror(ef->f)) {
		tool_error(subcmd, "cannot read %s: %s", ef->name, strerror(errno));
		return -EIO;
	}
	return 1;
}

/*
 * A list in a regular file is read twice: first to check every line and
 * add up the total for progress, before any device is read.
 */
static int extents_file_total(struct extents_file *ef, uint64_t *ret_total)
{
	struct dmrepl_extent e;
	uint64_t total = 0;
	int r;

	while ((r = extents_file_next(ef, &e)) == 0)
		total += e.length_bytes;
	if (r < 0)
		return r;
	if (fseek(ef->f, 0, SEEK_SET) < 0) {
		r = -errno;
		tool_error(subcmd, "cannot rewind %s: %s", ef->name, strerror(-r));
		return r;
	}
	ef->line_no = 0;
	*ret_total = total;
	return 0;
}

static int extents_file_open(struct extents_file *ef, const char *path,
			     struct extent_source *src)
{
	struct stat st;

	ef->name = strcmp(path, "-") == 0 ? "standard input" : path;
	ef->f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
	if (!ef->f) {
		int r = -errno;

		tool_error(subcmd, "cannot open %s: %s", path, strerror(-r));
		return r;
	}
	src->next = extents_file_next;
	src->data = ef;
	if (fstat(fileno(ef->f), &st) == 0 && S_ISREG(st.st_mode))
		return extents_file_total(ef, &src->total_bytes);
	return 0;
}

static void extents_file_close(struct extents_file *ef)
{
	if (ef->f && ef->f != stdin)
		fclose(ef->f);
	free(ef->line);
}

/* ---- The comparison ---- */

struct verify_run {
	struct dmrepl_verify *verify;
	struct progress *progress;
	bool reported;		/* the failure was explained already */
};

static void on_progress(uint64_t done_bytes, uint64_t total_bytes, void *userdata)
{
	struct verify_run *run = userdata;

	if (tool_interrupted)
		dmrepl_verify_cancel(run->verify);
	progress_update(run->progress, "compare", done_bytes, total_bytes);
}

static int compare_whole(struct verify_run *run, const char *label1,
			 const char *label2)
{
	uint64_t size1 = dmrepl_verify_get_size(run->verify, 0);
	uint64_t size2 = dmrepl_verify_get_size(run->verify, 1);

	if (size1 != size2) {
		tool_error(subcmd, "sizes differ: %s is %" PRIu64 " bytes, %s is %"
			   PRIu64 " bytes", label1, size1, label2, size2);
		run->reported = true;
		return -EINVAL;
	}
	dmrepl_verify_set_total(run->verify, size1);
	return dmrepl_verify_range(run->verify, 0, size1);
}

static int compare_extents(struct verify_run *run, struct extent_source *src)
{
	struct dmrepl_extent e;
	int r;

	dmrepl_verify_set_total(run->verify, src->total_bytes);
	while ((r = src->next(src->data, &e)) == 0) {
		if (tool_interrupted)
			return -ECANCELED;
		r = dmrepl_verify_range(run->verify, e.offset_bytes, e.length_bytes);
		if (r < 0)
			return r;
	}
	run->reported = r < 0;
	return r < 0 ? r : 0;
}

static void hex(const uint8_t *digest, char *buf)
{
	for (int i = 0; i < 16; i++)
		sprintf(buf + 2 * i, "%02x", digest[i]);
}

static void print_json_result(const struct dmrepl_verify *verify,
			      const struct dmrepl_verify_result *res,
			      const struct verify_output *out)
{
	uint64_t offset, length;
	char digest[33];
	struct json j;

	tool_json_result_begin(&j, stdout, res->nr_mismatches == 0);
	if (res->nr_mismatches) {
		char why[64];

		snprintf(why, sizeof(why), "not equal: %" PRIu64 " mismatch%s",
			 res->nr_mismatches, res->nr_mismatches == 1 ? "" : "es");
		json_string(&j, "error", why);
		json_u64(&j, "exit_status", EXIT_FAILURE_OP);
	}
	json_bool(&j, "equal", res->nr_mismatches == 0);
	json_u64(&j, "compared_bytes", res->compared_bytes);
	json_u64(&j, "mismatched_bytes", res->mismatched_bytes);
	json_u64(&j, "nr_mismatches", res->nr_mismatches);
	json_open_array(&j, "mismatches");
	for (unsigned int i = 0; dmrepl_verify_get_mismatch(verify, i, &offset, &length) == 0; i++) {
		json_open_object(&j, NULL);
		json_u64(&j, "offset_bytes", offset);
		json_u64(&j, "length_bytes", length);
		json_close_object(&j);
	}
	json_close_array(&j);
	json_open_array(&j, "digest");
	for (int i = 0; i < 2; i++) {
		hex(res->digest[i], digest);
		json_string(&j, NULL, digest);
	}
	json_close_array(&j);
	if (out->replica) {
		json_string(&j, "src_pool", out->replica->src_pool);
		json_u64(&j, "snap", out->replica->src.thin_id);
		json_u64(&j, "replica", out->replica->dst.thin_id);
		json_u64(&j, "size_bytes", out->replica->size_bytes);
	}
	json_close_object(&j);
	json_end(&j);
	tool_json_result_printed();
}

static void print_text_result(const struct dmrepl_verify *verify,
			      const struct dmrepl_verify_result *res,
			      const char *path1, const char *path2)
{
	uint64_t offset, length;
	unsigned int i;

	if (res->nr_mismatches == 0) {
		printf("%s and %s are equal: %" PRIu64 " bytes compared\n", path1,
		       path2, res->compared_bytes);
		return;
	}
	printf("%s and %s differ: %" PRIu64 " of %" PRIu64 " bytes compared, in %"
	       PRIu64 " range%s\n", path1, path2, res->mismatched_bytes,
	       res->compared_bytes, res->nr_mismatches, res->nr_mismatches == 1 ? "" : "s");
	for (i = 0; dmrepl_verify_get_mismatch(verify, i, &offset, &length) == 0; i++)
		printf("  offset %" PRIu64 " length %" PRIu64 "\n", offset, length);
	if (res->nr_mismatches > i)
		printf("  ... and %" PRIu64 " more\n", res->nr_mismatches - i);
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Compare @path1 and @path2 over the ranges of @src, print the result as
 * @out says, and return the exit status: EXIT_OK when equal,
 * EXIT_FAILURE_OP when different, @out->error_rc when the comparison
 * failed (with the reason on stderr), 128 + the signal when interrupted.
 */
static int verify_compare(struct dmrepl_ctx *ctx, const char *path1, const char *path2,
			  uint32_t chunk_bytes, struct extent_source *src,
			  const struct verify_output *out)
{
	struct verify_run run = { NULL, NULL, false };
	struct dmrepl_verify_result res;
	const char *label1 = out->label[0] ? out->label[0] : path1;
	const char *label2 = out->label[1] ? out->label[1] : path2;
	double start = now_seconds();
	int r, rc = out->error_rc;

	r = dmrepl_verify_new(ctx, path1, path2, &run.verify);
	if (r == 0)
		r = dmrepl_verify_set_chunk_size(run.verify, chunk_bytes);
	if (r == 0)
		r = dmrepl_verify_open(run.verify);
	if (r < 0) {
		tool_fail_r(subcmd, r, "cannot compare %s with %s: %s", label1, label2,
			  strerror(-r));
		goto out;
	}
	run.progress = progress_new(out->progress, "verify");
	dmrepl_verify_set_progress_fn(run.verify, on_progress, &run);
	r = src->whole ? compare_whole(&run, label1, label2) : compare_extents(&run, src);
	dmrepl_verify_get_result(run.verify, &res);
	if (r == 0)
		progress_update(run.progress, "compare", res.compared_bytes,
				src->whole ? res.compared_bytes : src->total_bytes);
	progress_free(run.progress);
	if (r == -ECANCELED && tool_interrupted) {
		rc = tool_interrupted_exit(subcmd);
		goto out;
	}
	if (r < 0) {
		if (!run.reported)
			tool_fail_r(subcmd, r, "comparing %s with %s failed: %s", label1,
				  label2, strerror(-r));
		goto out;
	}
	if (out->json)
		print_json_result(run.verify, &res, out);
	else
		print_text_result(run.verify, &res, label1, label2);
	/* after a comparison, on a terminal (not with -q): how much, how fast */
	if (out->progress == PROGRESS_AUTO)
		progress_summary_compared(stderr, res.compared_bytes,
					  res.mismatched_bytes, now_seconds() - start);
	rc = fflush(stdout) != 0 ? out->error_rc :
	     res.nr_mismatches == 0 ? EXIT_OK : EXIT_FAILURE_OP;
out:
	dmrepl_verify_unref(run.verify);
	return rc;
}

/* ---- The pool form: a snapshot and its replica ---- */

/* The snapshot's mapped extents, spooled to a temporary file. */
struct extents_spool {
	FILE *f;
	uint64_t left;
};

static int extents_spool_next(void *data, struct dmrepl_extent *ret_extent)
{
	struct extents_spool *sp = data;

	if (sp->left == 0)
		return 1;
	if (fread(ret_extent, sizeof(*ret_extent), 1, sp->f) != 1) {
		tool_error(subcmd, "cannot read back the extent list");
		return -EIO;
	}
	sp->left--;
	return 0;
}

struct pool_verify {
	struct dmrepl_lineage_record rec;
	struct extents_spool spool;
	struct dmrepl_source src;	/* the snapshot (lib/source.c) */
	struct dmrepl_pool *dst;
	struct dmrepl_thin_dev *dev;	/* the replica */
	const char *path[2];
	char label[2][160];
};

/* Find the replica, check the snapshot, and spool its mapped extents. */
static int pool_lookup(struct dmrepl_ctx *ctx, const struct verify_opts *o,
		       struct pool_verify *pv, struct extent_source *src)
{
	enum dmrepl_replica_state state;
	int r;

	r = dmrepl_replica_lookup(ctx, o->state_dir, o->src_pool, o->snap_id,
				  o->dst_pool, &pv->rec, &state);
	if (r < 0)
		return r;
	if (state == DMREPL_REPLICA_MODIFIED)
		tool_error(subcmd, "warning: thin %" PRIu64 " of %s was written to "
			   "since it was received", pv->rec.dst.thin_id, o->dst_pool);
	if (!o->whole) {
		pv->spool.f = tmpfile();
		if (!pv->spool.f) {
			r = -errno;
			tool_error(subcmd, "cannot create a temporary file: %s",
				   strerror(-r));
			return r;
		}
		src->next = extents_spool_next;
		src->data = &pv->spool;
	}
	return dmrepl_replica_check_source(ctx, o->dst_pool, &pv->rec, pv->spool.f,
					   &pv->spool.left, &src->total_bytes);
}

/*
 * The snapshot through the source side (an active device of it is
 * borrowed), the replica read-only under a name of its own; both at the
 * size the replica was made with, unless --size.
 */
static int pool_activate(struct dmrepl_ctx *ctx, const struct verify_opts *o,
			 struct pool_verify *pv)
{
	uint64_t size = o->size_bytes ? o->size_bytes : pv->rec.size_bytes;
	char name[128];
	int r;

	snprintf(pv->label[0], sizeof(pv->label[0]), "thin %" PRIu64 " of %s",
		 pv->rec.src.thin_id, o->src_pool);
	snprintf(pv->label[1], sizeof(pv->label[1]), "thin %" PRIu64 " of %s",
		 pv->rec.dst.thin_id, o->dst_pool);
	r = dmrepl_source_open(&pv->src, ctx, o->src_pool, pv->rec.src.thin_id,
			       NULL, (const volatile int *)&tool_interrupted);
	if (r == 0)
		r = dmrepl_source_resolve(&pv->src, size, 0);
	if (r == 0)
		r = dmrepl_source_activate(&pv->src, &pv->path[0]);
	if (r < 0 || tool_interrupted)
		return r;
	snprintf(name, sizeof(name), "dmrepl-%d-verify-dst-%" PRIu64,
		 (int)getpid(), pv->rec.dst.thin_id);
	r = dmrepl_pool_open(ctx, o->dst_pool, &pv->dst);
	if (r == 0)
		r = dmrepl_thin_activate(pv->dst, pv->rec.dst.thin_id, size, true,
					 name, &pv->dev);
	if (r == 0)
		pv->path[1] = dmrepl_thin_dev_get_path(pv->dev);
	return r;
}

/* Deactivate what was activated; 0, or the first error (reported). */
static int pool_release(struct pool_verify *pv)
{
	int r = 0, q;

	for (int i = 1; i >= 0; i--) {
		q = i ? dmrepl_thin_deactivate(pv->dev) : dmrepl_source_deactivate(&pv->src);
		if (q < 0) {
			tool_error(subcmd, "cannot deactivate %s: %s", pv->label[i],
				   strerror(-q));
			r = r ?: q;
		}
	}
	pv->dev = NULL;
	pv->dst = dmrepl_pool_unref(pv->dst);
	dmrepl_source_close(&pv->src);
	if (pv->spool.f)
		fclose(pv->spool.f);
	pv->spool.f = NULL;
	return r;
}

static int verify_pool(struct dmrepl_ctx *ctx, struct verify_opts *o)
{
	struct pool_verify pv;
	struct extent_source src = { .whole = o->whole };
	int r, rc = EXIT_NOT_COMPARED;

	memset(&pv, 0, sizeof(pv));
	r = pool_lookup(ctx, o, &pv, &src);
	if (r == 0 && !tool_interrupted)
		r = pool_activate(ctx, o, &pv);
	if (r < 0) {
		tool_fail_r(subcmd, r, "thin %" PRIu64 " of %s was not compared with its "
			  "replica in %s: %s", o->snap_id, o->src_pool, o->dst_pool,
			  strerror(-r));
		goto out;
	}
	if (!tool_interrupted) {
		o->out.error_rc = EXIT_NOT_COMPARED;
		o->out.label[0] = pv.label[0];
		o->out.label[1] = pv.label[1];
		o->out.replica = &pv.rec;
		rc = verify_compare(ctx, pv.path[0], pv.path[1], o->chunk_bytes,
				    &src, &o->out);
	}
out:
	if (pool_release(&pv) < 0 && rc < 128)
		rc = EXIT_NOT_COMPARED;
	/* Interrupted before the comparison ended (which reports it itself). */
	if (tool_interrupted && rc == EXIT_NOT_COMPARED)
		rc = tool_interrupted_exit(subcmd);
	return rc;
}

int cmd_verify(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	struct verify_opts o = { .whole = false, .out.error_rc = EXIT_FAILURE_OP };
	struct extents_file ef = { NULL, NULL, NULL, 0, 0 };
	struct extent_source src = { .whole = true };
	int r, rc = EXIT_FAILURE_OP;

	r = parse_options(argc, argv, &o);
	if (r)
		return r < 0 ? EXIT_OK : r;
	if (pool_form(&o)) {
		r = tool_resolve_lvm(ctx, subcmd, &o.src_pool, &o.size_bytes);
		if (r == 0 && strchr(o.dst_pool, '/'))
			r = tool_resolve_lvm_pool(ctx, subcmd, &o.dst_pool);
		if (r)
			return r;
	}

	tool_catch_signals();
	if (pool_form(&o))
		return verify_pool(ctx, &o);
	if (o.extents) {
		src.whole = false;
		if (extents_file_open(&ef, o.extents, &src) < 0)
			goto out;
	}
	rc = verify_compare(ctx, o.path[0], o.path[1], o.chunk_bytes, &src, &o.out);
out:
	extents_file_close(&ef);
	return rc;
}
