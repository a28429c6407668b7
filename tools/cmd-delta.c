/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dmrepl delta: the blocks that differ between two thin devices.
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

static const char *const subcmd = "delta";

enum format { FORMAT_XML, FORMAT_JSON, FORMAT_EXTENTS };

struct delta_opts {
	uint64_t snap1, snap2;
	bool have_snap1, have_snap2;
	enum format format;
	struct tool_source src;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage:\n"
		"  %1$s delta [-m] --base ID --snap ID [--format FMT] METADATA\n"
		"  %1$s delta --pool DMNAME --base ID --snap ID [--format FMT]\n"
		"\n"
		"Show how thin device --snap differs from --base, read from the\n"
		"pool's metadata. METADATA is a metadata image file or block device;\n"
		"--pool reads a live pool through a metadata snapshot that dmrepl\n"
		"reserves and always releases.\n"
		"\n"
		"Options:\n"
		"  -b, --base ID         the older device (also --snap1, --thin1)\n"
		"  -s, --snap ID         the newer device (also --snap2, --thin2)\n"
		"  -m, --metadata-snap   read METADATA's held metadata snapshot\n"
		"  -p, --pool DMNAME     read the live pool DMNAME\n"
		"      --format FMT      xml (as thin_delta prints it), json, or\n"
		"                        extents: lines OFFSET_BYTES LENGTH_BYTES copy|discard\n"
		"  -j, --json            the same as --format json\n"
		"  -h, --help            show this help\n"
		"\n"
		"Exit status: 0 shown; 1 the metadata could not be read, or an id is\n"
		"not in it; 2 usage; 128+N interrupted by signal N.\n",
		program_name);
}

static int parse_format(const char *s, enum format *ret)
{
	static const struct { const char *name; enum format f; } formats[] = {
		{ "xml", FORMAT_XML }, { "json", FORMAT_JSON },
		{ "extents", FORMAT_EXTENTS },
	};

	for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
		if (strcmp(s, formats[i].name) == 0) {
			*ret = formats[i].f;
			return 0;
		}
	}
	return tool_usage_error(subcmd, "unknown format '%s' (xml, json, extents)", s);
}

/* Returns 0 when the options are usable, -1 after printing help, or EXIT_USAGE. */
static int parse_options(int argc, char *argv[], struct delta_opts *o)
{
	enum { OPT_SNAP1 = 256, OPT_SNAP2 };
	static const struct option longopts[] = {
		{ "snap1", required_argument, NULL, OPT_SNAP1 },
		{ "thin1", required_argument, NULL, OPT_SNAP1 },
		{ "snap2", required_argument, NULL, OPT_SNAP2 },
		{ "thin2", required_argument, NULL, OPT_SNAP2 },
		{ "base", required_argument, NULL, OPT_SNAP1 },
		{ "snap", required_argument, NULL, OPT_SNAP2 },
		{ "json", no_argument, NULL, 'j' },
		{ "metadata-snap", no_argument, NULL, 'm' },
		{ "pool", required_argument, NULL, 'p' },
		{ "format", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c, r;

	while ((c = tool_getopt(argc, argv, "mp:b:s:jh", longopts)) != -1) {
		switch (c) {
		case 'b':
		case OPT_SNAP1:
			if ((r = tool_parse_thin_id(subcmd, c == 'b' ? "--base" : "--snap1",
						    optarg, &o->snap1)))
				return r;
			o->have_snap1 = true;
			break;
		case 's':
		case OPT_SNAP2:
			if ((r = tool_parse_thin_id(subcmd, c == 's' ? "--snap" : "--snap2",
						    optarg, &o->snap2)))
				return r;
			o->have_snap2 = true;
			break;
		case 'm': o->src.use_held_root = true; break;
		case 'p': o->src.pool = optarg; break;
		case 'f':
			if ((r = parse_format(optarg, &o->format)))
				return r;
			break;
		case 'j': o->format = FORMAT_JSON; break;
		case 'h': usage(stdout); return -1;
		default: return tool_usage_error(subcmd, "unrecognized option");
		}
	}

	if (!o->have_snap1 || !o->have_snap2)
		return tool_usage_error(subcmd, "both --base (--snap1) and --snap "
					"(--snap2) are required");
	return tool_source_finish(subcmd, &o->src, argc, argv);
}

static void xml_begin(const struct delta_opts *o, const struct dmrepl_pool_info *pi)
{
	/*
	 * thin_delta takes nr_data_blocks from the superblock it read; in a
	 * held metadata snapshot that is the kernel's copy, whose space-map
	 * roots are zeroed, so it reports 0. Print the same, so the two
	 * outputs compare line by line.
	 */
	uint64_t nr_data_blocks = pi->using_held_root ? 0 : pi->nr_data_blocks;

	printf("<superblock uuid=\"\" time=\"%" PRIu32 "\" transaction=\"%" PRIu64
	       "\" data_block_size=\"%" PRIu64 "\" nr_data_blocks=\"%" PRIu64 "\">\n",
	       pi->time, pi->transaction_id, pi->data_block_size_sectors,
	       nr_data_blocks);
	printf("  <diff left=\"%" PRIu64 "\" right=\"%" PRIu64 "\">\n", o->snap1, o->snap2);
}

static void json_begin(struct json *j, FILE *out, const struct delta_opts *o,
		       const struct dmrepl_pool_info *pi)
{
	tool_json_result_begin(j, out, true);
	json_u64(j, "left", o->snap1);
	json_u64(j, "right", o->snap2);
	json_u64(j, "transaction_id", pi->transaction_id);
	json_u64(j, "data_block_size_sectors", pi->data_block_size_sectors);
	json_bool(j, "metadata_snap", pi->using_held_root);
	json_open_array(j, "runs");
}

static int print_runs(struct dmrepl_delta *delta, const struct delta_opts *o,
		      const struct dmrepl_pool_info *pi)
{
	struct dmrepl_run run;
	struct json j;
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = NULL;
	int r;

	if (o->format == FORMAT_XML) {
		xml_begin(o, pi);
	} else {
		/*
		 * Built apart, printed whole: damaged metadata found halfway
		 * prints no half object before the failed result.
		 */
		mem = open_memstream(&buf, &len);
		if (!mem)
			return -ENOMEM;
		json_begin(&j, mem, o, pi);
	}

	while (!tool_interrupted && (r = dmrepl_delta_next_run(delta, &run)) == 0) {
		if (o->format == FORMAT_XML) {
			printf("    <%s begin=\"%" PRIu64 "\" length=\"%" PRIu64 "\"/>\n",
			       dmrepl_run_kind_name(run.kind), run.begin_blocks,
			       run.length_blocks);
			continue;
		}
		json_open_object(&j, NULL);
		json_string(&j, "kind", dmrepl_run_kind_name(run.kind));
		json_u64(&j, "begin_blocks", run.begin_blocks);
		json_u64(&j, "length_blocks", run.length_blocks);
		json_close_object(&j);
	}
	if (tool_interrupted || r < 0) {
		if (mem) {
			fclose(mem);
			free(buf);
		}
		return tool_interrupted ? -EINTR : r;
	}

	if (o->format == FORMAT_XML) {
		printf("  </diff>\n</superblock>\n");
	} else {
		json_close_array(&j);
		json_close_object(&j);
		json_end(&j);
		r = fclose(mem) == 0 ? 0 : -ENOMEM;
		if (r == 0)
			fwrite(buf, 1, len, stdout);	/* checked by fflush() */
		free(buf);
		return r;
	}
	return 0;
}

static int print_extents(struct dmrepl_delta *delta)
{
	struct dmrepl_extent e;
	int r;

	while (!tool_interrupted && (r = dmrepl_delta_next_extent(delta, &e)) == 0)
		printf("%" PRIu64 " %" PRIu64 " %s\n", e.offset_bytes, e.length_bytes,
		       e.op == DMREPL_EXTENT_COPY ? "copy" : "discard");
	if (tool_interrupted)
		return -EINTR;
	return r < 0 ? r : 0;
}

static int report_delta_error(const struct delta_opts *o, int r)
{
	if (r == -EINTR)
		return tool_interrupted_exit(subcmd);
	tool_fail_r(subcmd, r, "%s: cannot compute the delta from %" PRIu64 " to %"
		  PRIu64 ": %s", o->src.pool ? o->src.pool : o->src.path, o->snap1, o->snap2,
		  strerror(-r));
	return EXIT_FAILURE_OP;
}

/*
 * main() prints the failed result of a run given --json or -j; --format
 * json is the same and must end the same way.
 */
static int json_failure(const struct delta_opts *o, int rc)
{
	if (o->format == FORMAT_JSON)
		tool_json_failure(rc);
	return rc;
}

int cmd_delta(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	struct delta_opts o = { .format = FORMAT_XML };
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_delta *delta = NULL;
	struct dmrepl_pool_info pi;
	int r, rc = EXIT_FAILURE_OP;

	r = parse_options(argc, argv, &o);
	if (r)
		return r < 0 ? EXIT_OK : json_failure(&o, r);
	r = tool_resolve_lvm(ctx, subcmd, &o.src.pool, NULL);
	if (r)
		return json_failure(&o, r);

	tool_catch_signals();
	if (tool_open_metadata(ctx, subcmd, &o.src, &md) < 0)
		goto out;

	r = dmrepl_metadata_get_pool_info(md, &pi);
	if (r == 0)
		r = dmrepl_delta_new(md, o.snap1, o.snap2, 0, &delta);
	if (r == 0)
		r = o.format == FORMAT_EXTENTS ? print_extents(delta)
					       : print_runs(delta, &o, &pi);
	if (r < 0) {
		rc = report_delta_error(&o, r);
		goto out;
	}
	rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILURE_OP;
out:
	dmrepl_delta_unref(delta);
	dmrepl_metadata_unref(md);	/* releases a pool's metadata snapshot */
	return json_failure(&o, rc);
}
