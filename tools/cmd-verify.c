/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dmrepl verify: compare two files or block devices by hashing, over the
 * extents of a list or whole.
 *
 * The comparison itself, verify_compare(), takes the two paths and an
 * extent source, so a form that finds the paths and extents elsewhere
 * (a snapshot's mapped extents and its replica) reuses it as it is.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "dmrepl.h"
#include "json.h"
#include "libdmrepl-private.h"
#include "progress.h"

static const char *const subcmd = "verify";

#define MAX_SHOWN_MISMATCHES 16

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
};

struct verify_opts {
	bool whole;
	const char *extents;	/* FILE, or "-" */
	uint32_t chunk_bytes;
	struct verify_output out;
	const char *path[2];
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
		"\n"
		"Compare files or block devices A and B by hashing (XXH3-128, per\n"
		"chunk): the ranges listed in --extents, or the whole devices, whose\n"
		"sizes must then be equal. Lists the first mismatching ranges.\n"
		"\n"
		"Options:\n"
		"      --whole            compare A and B whole (the default)\n"
		"  -e, --extents FILE     compare the ranges listed, one per line:\n"
		"                         OFFSET_BYTES LENGTH_BYTES copy|discard, as\n"
		"                         'dmrepl delta --format=extents' prints them;\n"
		"                         '-' reads standard input\n"
		"      --chunk-size BYTES unit of comparison, a multiple of 512\n"
		"                         (default 1 MiB, at most 64 MiB)\n"
		"      --json             progress lines and a result object on stdout\n"
		"  -q, --quiet            no progress display\n"
		"  -h, --help             show this help\n"
		"\n"
		"Exit status: 0 equal, 1 different (or the comparison failed), 2 usage.\n",
		program_name);
}

/* Returns 0 when the options are usable, -1 after printing help, or EXIT_USAGE. */
static int parse_options(int argc, char *argv[], struct verify_opts *o)
{
	enum { OPT_WHOLE = 256, OPT_JSON, OPT_CHUNK };
	static const struct option longopts[] = {
		{ "whole", no_argument, NULL, OPT_WHOLE },
		{ "extents", required_argument, NULL, 'e' },
		{ "chunk-size", required_argument, NULL, OPT_CHUNK },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool quiet = false;
	uint64_t v;
	int c;

	while ((c = getopt_long(argc, argv, "e:qh", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_WHOLE: o->whole = true; break;
		case 'e': o->extents = optarg; break;
		case OPT_CHUNK:
			if (tool_parse_u64(optarg, UINT32_MAX, &v) < 0 || v % 512 ||
			    v < 512 || v > (64u << 20))
				return tool_usage_error(subcmd, "--chunk-size: '%s' is not a "
							"multiple of 512 from 512 to 67108864 "
							"(64 MiB)", optarg);
			o->chunk_bytes = (uint32_t)v;
			break;
		case OPT_JSON: o->out.json = true; break;
		case 'q': quiet = true; break;
		case 'h': usage(stdout); return -1;
		default: return tool_usage_error(subcmd, "unrecognized option");
		}
	}
	if (o->whole && o->extents)
		return tool_usage_error(subcmd, "--whole and --extents exclude each other");
	if (argc - optind != 2)
		return tool_usage_error(subcmd, "expected two files or devices, A and B");
	o->path[0] = argv[optind];
	o->path[1] = argv[optind + 1];
	o->out.progress = quiet ? PROGRESS_QUIET : o->out.json ? PROGRESS_JSON : PROGRESS_AUTO;
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

static int compare_whole(struct verify_run *run, const char *path1,
			 const char *path2)
{
	uint64_t size1 = dmrepl_verify_get_size(run->verify, 0);
	uint64_t size2 = dmrepl_verify_get_size(run->verify, 1);

	if (size1 != size2) {
		tool_error(subcmd, "sizes differ: %s is %" PRIu64 " bytes, %s is %"
			   PRIu64 " bytes", path1, size1, path2, size2);
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
			      const struct dmrepl_verify_result *res)
{
	uint64_t offset, length;
	char digest[33];
	struct json j;

	json_init(&j, stdout);
	json_open_object(&j, NULL);
	json_string(&j, "type", "result");
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
	json_close_object(&j);
	json_end(&j);
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

/*
 * Compare @path1 and @path2 over the ranges of @src, print the result as
 * @out says, and return the exit status: EXIT_OK when equal,
 * EXIT_FAILURE_OP when different or when the comparison failed (with the
 * reason on stderr), 128 + the signal when interrupted.
 */
static int verify_compare(struct dmrepl_ctx *ctx, const char *path1, const char *path2,
			  uint32_t chunk_bytes, struct extent_source *src,
			  const struct verify_output *out)
{
	struct verify_run run = { NULL, NULL, false };
	struct dmrepl_verify_result res;
	int r, rc = EXIT_FAILURE_OP;

	r = dmrepl_verify_new(ctx, path1, path2, &run.verify);
	if (r == 0)
		r = dmrepl_verify_set_chunk_size(run.verify, chunk_bytes);
	if (r == 0)
		r = dmrepl_verify_open(run.verify);
	if (r < 0) {
		tool_fail(subcmd, "cannot compare %s with %s: %s", path1, path2, strerror(-r));
		goto out;
	}
	run.progress = progress_new(out->progress, "verify");
	dmrepl_verify_set_progress_fn(run.verify, on_progress, &run);
	r = src->whole ? compare_whole(&run, path1, path2) : compare_extents(&run, src);
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
			tool_fail(subcmd, "comparing %s with %s failed: %s", path1, path2,
				  strerror(-r));
		goto out;
	}
	if (out->json)
		print_json_result(run.verify, &res);
	else
		print_text_result(run.verify, &res, path1, path2);
	rc = fflush(stdout) == 0 && res.nr_mismatches == 0 ? EXIT_OK : EXIT_FAILURE_OP;
out:
	dmrepl_verify_unref(run.verify);
	return rc;
}

int cmd_verify(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	struct verify_opts o = { .whole = false };
	struct extents_file ef = { NULL, NULL, NULL, 0, 0 };
	struct extent_source src = { .whole = true };
	int r, rc = EXIT_FAILURE_OP;

	r = parse_options(argc, argv, &o);
	if (r)
		return r < 0 ? EXIT_OK : r;

	tool_catch_signals();
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
