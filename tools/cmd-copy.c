/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dmrepl copy: apply an extents list, or the whole source, from one
 * file or block device to another.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dmrepl.h"
#include "json.h"
#include "libdmrepl-private.h"
#include "progress.h"

static const char *const subcmd = "copy";

struct copy_opts {
	enum dmrepl_engine engine;
	unsigned int queue_depth;
	uint32_t io_size;
	const char *extents;	/* FILE, "-", or NULL: the whole source */
	unsigned int flags;
	uint64_t bwlimit;
	int ioprio_class, ioprio_level;
	bool json;
	bool quiet;
	bool dry_run;
	const char *src, *dst;
};

/* The copy that SIGINT and SIGTERM cancel. */
static struct dmrepl_copy *volatile running_copy;
/* An error was already reported in full (a bad extents line). */
static bool reported;

static void usage(FILE *out)
{
	fprintf(out,
		"Usage:\n"
		"  %1$s copy [options] SRC DST\n"
		"\n"
		"Copy the extents listed in --extents, or the whole of SRC, from SRC\n"
		"to the same offsets of DST (files or block devices). A discard\n"
		"extent unmaps the range on DST (BLKDISCARD, or a hole in a file);\n"
		"what DST cannot discard is written as zeroes. A DST that does not\n"
		"exist is created; a regular file DST shorter than SRC is extended.\n"
		"\n"
		"Options:\n"
		"  -e, --extents FILE|-    lines OFFSET_BYTES LENGTH_BYTES copy|discard,\n"
		"                          as 'dmrepl delta --format=extents' prints them\n"
		"      --engine ENGINE     auto (default: uring, else aio, else sync),\n"
		"                          uring, aio or sync\n"
		"      --queue-depth N     I/Os in flight (default 32)\n"
		"      --io-size SIZE      bytes per I/O, e.g. 64K, 1M (default 1M)\n"
		"      --detect-zeroes     discard blocks that read as zeroes\n"
		"      --bwlimit RATE      at most RATE bytes per second, e.g. 100M\n"
		"      --ionice CLASS[:LEVEL]  I/O priority: 1|realtime, 2|best-effort,\n"
		"                          3|idle; LEVEL 0-7 (default 4)\n"
		"  -n, --dry-run           read SRC and the extents, and say what would be\n"
		"                          copied and discarded; write nothing, create no\n"
		"                          DST\n"
		"  -j, --json              progress lines and a result object on stdout\n"
		"  -q, --quiet             no progress display\n"
		"  -h, --help              show this help\n"
		"\n"
		"SIZE and RATE take the suffixes K, M, G (powers of 1024).\n"
		"Exit status: 0 copied and flushed, 1 failed, 2 bad usage,\n"
		"128+N interrupted by signal N.\n",
		program_name);
}

static int parse_engine(const char *s, struct copy_opts *o)
{
	if (dmrepl_engine_from_name(s, &o->engine) < 0)
		return tool_usage_error(subcmd, "unknown engine '%s' (auto, uring, aio, sync)", s);
	return 0;
}

static int parse_one(int c, struct copy_opts *o)
{
	uint64_t v;
	int r = 0;

	switch (c) {
	case 'e': o->extents = optarg; break;
	case 'q': o->quiet = true; break;
	case 'n': o->dry_run = true; break;
	case 'E': r = parse_engine(optarg, o); break;
	case 'Q':
		r = tool_option_number(subcmd, "--queue-depth", optarg, 1, 1024, &v);
		o->queue_depth = (unsigned int)v;
		break;
	case 'S':
		r = tool_option_size(subcmd, "--io-size", optarg, 4096, 64u << 20,
				     4096, &v);
		o->io_size = (uint32_t)v;
		break;
	case 'Z': o->flags |= DMREPL_COPY_DETECT_ZEROES; break;
	case 'B':
		r = tool_option_size(subcmd, "--bwlimit", optarg, 0, UINT64_MAX, 1,
				     &o->bwlimit);
		break;
	case 'I':
		if (tool_parse_ionice(optarg, &o->ioprio_class, &o->ioprio_level) < 0)
			r = tool_usage_error(subcmd, "--ionice: '%s' is not CLASS[:LEVEL]",
					     optarg);
		break;
	case 'j':
	case 'J': o->json = true; break;
	case 'h': usage(stdout); return -1;
	default: return tool_usage_error(subcmd, "unrecognized option");
	}
	return r;
}

/* Returns 0 when the options are usable, -1 after printing help, or EXIT_USAGE. */
static int parse_options(int argc, char *argv[], struct copy_opts *o)
{
	static const struct option longopts[] = {
		{ "extents", required_argument, NULL, 'e' },
		{ "engine", required_argument, NULL, 'E' },
		{ "queue-depth", required_argument, NULL, 'Q' },
		{ "io-size", required_argument, NULL, 'S' },
		{ "detect-zeroes", no_argument, NULL, 'Z' },
		{ "bwlimit", required_argument, NULL, 'B' },
		{ "ionice", required_argument, NULL, 'I' },
		{ "json", no_argument, NULL, 'J' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, r;

	while ((c = tool_getopt(argc, argv, "e:qnjh", longopts)) != -1) {
		r = parse_one(c, o);
		if (r)
			return r;
	}
	if (argc - optind != 2)
		return tool_usage_error(subcmd, "expected SRC and DST");
	o->src = argv[optind];
	o->dst = argv[optind + 1];
	return 0;
}

/* ---- the destination file ---- */

static int path_size(const char *path, uint64_t *ret)
{
	struct stat st;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		r = -errno;
	else if (S_ISBLK(st.st_mode))
		r = ioctl(fd, BLKGETSIZE64, ret) < 0 ? -errno : 0;
	else if (S_ISREG(st.st_mode))
		*ret = (uint64_t)st.st_size;
	else
		r = -ENOTSUP;
	if (fd >= 0)
		close(fd);
	return r;
}

/*
 * Create a missing DST, and extend a regular file DST to SRC's size, so
 * that a file copy needs no preparation. Block devices are left alone.
 */
static int prepare_dst(const struct copy_opts *o)
{
	uint64_t size;
	struct stat st;
	int fd, r = 0;

	if (stat(o->dst, &st) == 0 && !S_ISREG(st.st_mode))
		return 0;
	if (path_size(o->src, &size) < 0)
		return 0;	/* the library reports the source */
	fd = open(o->dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
	} else if ((uint64_t)st.st_size < size && ftruncate(fd, (off_t)size) < 0) {
		r = -errno;
	}
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		tool_error(subcmd, "cannot create or extend %s: %s", o->dst, strerror(-r));
		reported = true;
	}
	return r;
}

/* ---- the extents ---- */

struct extents_in {
	FILE *f;
	const char *name;
	char *line;
	size_t cap;
	unsigned long lineno;
};

static int extents_open(struct extents_in *in, const char *name)
{
	in->name = strcmp(name, "-") == 0 ? "standard input" : name;
	in->f = strcmp(name, "-") == 0 ? stdin : fopen(name, "re");
	if (!in->f) {
		int r = -errno;

		tool_error(subcmd, "cannot open %s: %s", name, strerror(-r));
		reported = true;
		return r;
	}
	return 0;
}

static void extents_close(struct extents_in *in)
{
	if (in->f && in->f != stdin)
		fclose(in->f);
	free(in->line);
}

/* Return: 0 and an extent; 1 at the end; -EINVAL (reported) for a bad line. */
static int extents_next(struct extents_in *in, struct dmrepl_extent *ret)
{
	const char *reason = NULL;
	ssize_t n;
	int r;

	while ((n = getline(&in->line, &in->cap, in->f)) >= 0) {
		in->lineno++;
		r = dmrepl_extent_parse_line(in->line, (size_t)n, ret, &reason);
		if (r == 0)
			return 0;
		if (r < 0) {
			tool_error(subcmd, "%s, line %lu: %s", in->name, in->lineno,
				   reason ? reason : "malformed extent");
			reported = true;
			return -EINVAL;
		}
	}
	if (ferror(in->f) && !tool_interrupted) {
		tool_error(subcmd, "reading %s: %s", in->name, strerror(errno));
		reported = true;
		return -EIO;
	}
	if (ferror(in->f))
		return -EINTR;
	return 1;
}

/*
 * A list that can be read twice is checked whole before anything is
 * copied, and its lengths summed for progress.
 */
static int extents_total(struct extents_in *in, struct dmrepl_copy *copy)
{
	struct dmrepl_extent x;
	uint64_t total = 0;
	int r;

	if (in->f == stdin || fseeko(in->f, 0, SEEK_SET) < 0)
		return 0;
	while ((r = extents_next(in, &x)) == 0)
		total += x.length_bytes;
	if (r < 0)
		return r;
	if (fseeko(in->f, 0, SEEK_SET) < 0)
		return -errno;
	in->lineno = 0;
	clearerr(in->f);
	dmrepl_copy_set_total(copy, total);
	return 0;
}

/* ---- -n: what would be done ---- */

struct dry_totals {
	uint64_t extents, copy_bytes, discard_bytes;
	bool dst_exists;
};

static int dry_extent(const struct copy_opts *o, const struct dmrepl_extent *x,
		      uint64_t src_size, uint64_t dst_size, struct dry_totals *t)
{
	uint64_t end = x->offset_bytes + x->length_bytes;
	const char *path = NULL;
	uint64_t size = 0;

	if (end < x->offset_bytes || end > dst_size)
		path = o->dst, size = dst_size;
	else if (x->op == DMREPL_EXTENT_COPY && end > src_size)
		path = o->src, size = src_size;
	if (path) {
		tool_error(subcmd, "extent %" PRIu64 "+%" PRIu64 " is past the end of "
			   "%s (%" PRIu64 " bytes)", x->offset_bytes,
			   x->length_bytes, path, size);
		reported = true;
		return -EINVAL;
	}
	t->extents++;
	if (x->op == DMREPL_EXTENT_COPY)
		t->copy_bytes += x->length_bytes;
	else
		t->discard_bytes += x->length_bytes;
	return 0;
}

/*
 * SRC's size, and the extents checked as the copy would check them; DST
 * is looked at (its size, whether it can be written), never created.
 */
static int dry_run(const struct copy_opts *o, struct dry_totals *t)
{
	struct extents_in in = { 0 };
	struct dmrepl_extent x = { DMREPL_EXTENT_COPY, 0, 0 };
	uint64_t src_size, dst_size = 0;
	struct stat st;
	int r;

	r = path_size(o->src, &src_size);
	if (r < 0) {
		tool_note_errno(r);
		tool_error(subcmd, "cannot open %s: %s", o->src, strerror(-r));
		reported = true;
		return r;
	}
	t->dst_exists = stat(o->dst, &st) == 0;
	if (t->dst_exists && (access(o->dst, W_OK) < 0 ||
			      path_size(o->dst, &dst_size) < 0)) {
		r = -errno;
		tool_note_errno(r);
		tool_error(subcmd, "cannot write to %s: %s", o->dst, strerror(-r));
		reported = true;
		return r;
	}
	/* a file DST is extended to SRC's size */
	if (!t->dst_exists || (S_ISREG(st.st_mode) && dst_size < src_size))
		dst_size = src_size;
	if (!o->extents) {
		x.length_bytes = src_size;
		return dry_extent(o, &x, src_size, dst_size, t);
	}
	r = extents_open(&in, o->extents);
	while (r == 0 && (r = extents_next(&in, &x)) == 0)
		r = dry_extent(o, &x, src_size, dst_size, t);
	extents_close(&in);
	return r < 0 ? r : 0;
}

static int print_dry_run(const struct copy_opts *o, const struct dry_totals *t)
{
	struct json j;

	if (o->json) {
		tool_json_result_begin(&j, stdout, true);
		json_bool(&j, "dry_run", true);
		json_u64(&j, "extents", t->extents);
		json_u64(&j, "total_bytes", t->copy_bytes + t->discard_bytes);
		json_u64(&j, "copied_bytes", t->copy_bytes);
		json_u64(&j, "discarded_bytes", t->discard_bytes);
		json_bool(&j, "dst_exists", t->dst_exists);
		json_close_object(&j);
		json_end(&j);
		tool_json_result_printed();
	} else {
		printf("%s to %s: would copy %" PRIu64 " bytes and discard %" PRIu64
		       " bytes in %" PRIu64 " extent%s%s%s\n", o->src, o->dst,
		       t->copy_bytes, t->discard_bytes, t->extents,
		       t->extents == 1 ? "" : "s",
		       t->dst_exists ? "" : "; would create ",
		       t->dst_exists ? "" : o->dst);
	}
	return fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILURE_OP;
}

static int cmd_copy_dry_run(const struct copy_opts *o)
{
	struct dry_totals t = { 0 };
	int r = dry_run(o, &t);

	if (r < 0 && tool_interrupted)
		return tool_interrupted_exit(subcmd);
	if (r < 0)
		return EXIT_FAILURE_OP;
	return print_dry_run(o, &t);
}

/* ---- running ---- */

static void cancel_running_copy(void)
{
	if (running_copy)
		dmrepl_copy_cancel(running_copy);
}

static void on_progress(const struct dmrepl_copy_stats *stats, void *userdata)
{
	progress_set_discarded(userdata, stats->discarded_bytes);
	progress_update(userdata, "copy", stats->done_bytes, stats->total_bytes);
}

static int configure(struct dmrepl_copy *copy, const struct copy_opts *o)
{
	int r;

	r = dmrepl_copy_set_engine(copy, o->engine);
	if (r == 0)
		r = dmrepl_copy_set_queue_depth(copy, o->queue_depth);
	if (r == 0)
		r = dmrepl_copy_set_io_size(copy, o->io_size);
	if (r == 0)
		r = dmrepl_copy_set_bwlimit(copy, o->bwlimit);
	if (r == 0 && o->ioprio_class)
		r = dmrepl_copy_set_ioprio(copy, o->ioprio_class, o->ioprio_level);
	if (r == 0)
		r = dmrepl_copy_set_flags(copy, o->flags);
	return r;
}

static int add_all(struct dmrepl_copy *copy, const struct copy_opts *o)
{
	struct extents_in in = { 0 };
	struct dmrepl_extent x = { DMREPL_EXTENT_COPY, 0, 0 };
	int r;

	if (!o->extents) {
		x.length_bytes = dmrepl_copy_get_src_size(copy);
		if (x.length_bytes == UINT64_MAX) {
			tool_error(subcmd, "%s has no size: give --extents", o->src);
			reported = true;
			return -EINVAL;
		}
		dmrepl_copy_set_total(copy, x.length_bytes);
		return dmrepl_copy_add(copy, &x);
	}
	r = extents_open(&in, o->extents);
	if (r < 0)
		return r;
	r = extents_total(&in, copy);
	while (r == 0 && (r = extents_next(&in, &x)) == 0) {
		r = dmrepl_copy_add(copy, &x);
		if (r < 0)
			break;
	}
	extents_close(&in);
	return r < 0 ? r : 0;
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_result(struct dmrepl_copy *copy, int rc, int status, double seconds)
{
	struct dmrepl_copy_stats s;
	const char *engine = dmrepl_copy_get_engine_name(copy);
	struct json j;

	dmrepl_copy_get_stats(copy, &s);
	tool_json_result_begin(&j, stdout, rc == EXIT_OK);
	if (status < 0)
		tool_json_error(&j, status);
	json_u64(&j, "exit_status", (uint64_t)rc);
	json_string(&j, "engine", engine ? engine : "none");
	json_u64(&j, "total_bytes", s.total_bytes);
	json_u64(&j, "done_bytes", s.done_bytes);
	json_u64(&j, "copied_bytes", s.copied_bytes);
	json_u64(&j, "discarded_bytes", s.discarded_bytes);
	json_u64(&j, "zeroed_bytes", s.zeroed_bytes);
	json_u64(&j, "zero_detected_bytes", s.zero_detected_bytes);
	json_u64(&j, "milliseconds", (uint64_t)(seconds * 1000 + 0.5));
	json_close_object(&j);
	json_end(&j);
	tool_json_result_printed();
}

static int run_copy(struct dmrepl_copy *copy, const struct copy_opts *o)
{
	int r = dmrepl_copy_open(copy);

	if (r == 0)
		r = add_all(copy, o);
	if (r == 0)
		r = dmrepl_copy_finish(copy);
	return r;
}

static int exit_code(const struct copy_opts *o, int r)
{
	if (r == 0)
		return EXIT_OK;
	if (tool_interrupted)
		return tool_interrupted_exit(subcmd);
	if (!reported)
		tool_fail_r(subcmd, r, "copy from %s to %s failed: %s", o->src, o->dst,
			  strerror(-r));
	return EXIT_FAILURE_OP;
}

int cmd_copy(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	struct copy_opts o = { .engine = DMREPL_ENGINE_AUTO };
	struct dmrepl_copy *copy = NULL;
	struct progress *progress = NULL;
	double start = now_seconds();
	int r, rc;

	r = parse_options(argc, argv, &o);
	if (r)
		return r < 0 ? EXIT_OK : r;
	if (o.dry_run)
		return cmd_copy_dry_run(&o);

	r = dmrepl_copy_new(ctx, o.src, o.dst, &copy);
	if (r == 0)
		r = configure(copy, &o);
	if (r < 0) {
		tool_error(subcmd, "cannot set up the copy: %s", strerror(-r));
		dmrepl_copy_unref(copy);
		return EXIT_FAILURE_OP;
	}
	progress = progress_new(o.quiet ? PROGRESS_QUIET : o.json ? PROGRESS_JSON
								: PROGRESS_AUTO, "copy");
	dmrepl_copy_set_progress_fn(copy, on_progress, progress);
	running_copy = copy;
	tool_set_interrupt_hook(cancel_running_copy);
	tool_catch_signals();

	r = prepare_dst(&o);
	if (r == 0)
		r = run_copy(copy, &o);
	progress_free(progress);
	rc = exit_code(&o, r);
	if (o.json) {
		print_result(copy, rc, r, now_seconds() - start);
	} else if (rc == EXIT_OK && !o.quiet) {
		struct dmrepl_copy_stats st;

		dmrepl_copy_get_stats(copy, &st);
		progress_summary(stderr, st.copied_bytes, st.discarded_bytes,
				 st.zeroed_bytes, now_seconds() - start);
	}
	tool_set_interrupt_hook(NULL);
	running_copy = NULL;
	dmrepl_copy_unref(copy);
	return rc;
}
