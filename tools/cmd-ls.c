/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * dmrepl ls: the thin devices in a pool's metadata.
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

static const char *const subcmd = "ls";

struct ls_opts {
	bool json;
	bool no_headers;
	struct tool_source src;
};

static void usage(FILE *out)
{
	fprintf(out,
		"Usage:\n"
		"  %1$s ls [-m] [--json] METADATA\n"
		"  %1$s ls --pool DMNAME [--json]\n"
		"\n"
		"List the thin devices of a pool: id, mapped blocks, transaction,\n"
		"creation time and snapshot time. METADATA is a metadata image file\n"
		"or block device; --pool reads a live pool through a metadata snapshot\n"
		"that dmrepl reserves and always releases.\n"
		"\n"
		"Options:\n"
		"  -m, --metadata-snap   read METADATA's held metadata snapshot\n"
		"  -p, --pool DMNAME     read the live pool DMNAME\n"
		"  -j, --json            print JSON (see dmrepl(8))\n"
		"      --no-headers      omit the header line\n"
		"  -h, --help            show this help\n",
		program_name);
}

static int parse_options(int argc, char *argv[], struct ls_opts *o)
{
	enum { OPT_NO_HEADERS = 256 };
	static const struct option longopts[] = {
		{ "metadata-snap", no_argument, NULL, 'm' },
		{ "pool", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "no-headers", no_argument, NULL, OPT_NO_HEADERS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = tool_getopt(argc, argv, "mp:jh", longopts)) != -1) {
		switch (c) {
		case 'm': o->src.use_held_root = true; break;
		case 'p': o->src.pool = optarg; break;
		case 'j': o->json = true; break;
		case OPT_NO_HEADERS: o->no_headers = true; break;
		case 'h': usage(stdout); return -1;
		default: return tool_usage_error(subcmd, "unrecognized option");
		}
	}
	return tool_source_finish(subcmd, &o->src, argc, argv);
}

static int print_text(const struct dmrepl_thin_info *t, void *userdata)
{
	printf("%8" PRIu64 " %14" PRIu64 " %12" PRIu64 " %14" PRIu32 " %14" PRIu32 "\n",
	       t->thin_id, t->mapped_blocks, t->transaction_id,
	       t->creation_time, t->snapshot_time);
	return tool_interrupted ? -EINTR : 0;
}

static int print_json(const struct dmrepl_thin_info *t, void *userdata)
{
	struct json *j = userdata;

	json_open_object(j, NULL);
	json_u64(j, "id", t->thin_id);
	json_u64(j, "mapped_blocks", t->mapped_blocks);
	json_u64(j, "transaction_id", t->transaction_id);
	json_u64(j, "creation_time", t->creation_time);
	json_u64(j, "snapshot_time", t->snapshot_time);
	json_close_object(j);
	return tool_interrupted ? -EINTR : 0;
}

static int list_json(struct dmrepl_metadata *md, const struct dmrepl_pool_info *pi)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	struct json j;
	int r;

	/* built apart, printed whole: a failure prints no half object */
	if (!mem)
		return -ENOMEM;
	tool_json_result_begin(&j, mem, true);
	json_open_object(&j, "pool");
	json_u64(&j, "transaction_id", pi->transaction_id);
	json_u64(&j, "data_block_size_sectors", pi->data_block_size_sectors);
	json_u64(&j, "nr_data_blocks", pi->nr_data_blocks);
	json_u64(&j, "time", pi->time);
	json_bool(&j, "metadata_snap", pi->using_held_root);
	json_close_object(&j);
	json_open_array(&j, "devices");
	r = dmrepl_metadata_foreach_thin(md, print_json, &j);
	json_close_array(&j);
	json_close_object(&j);
	json_end(&j);
	fclose(mem);
	if (r == 0)
		fwrite(buf, 1, len, stdout);
	free(buf);
	return r;
}

static int list_text(struct dmrepl_metadata *md, bool headers)
{
	if (headers)
		printf("%8s %14s %12s %14s %14s\n", "ID", "MAPPED_BLOCKS",
		       "TRANSACTION", "CREATION_TIME", "SNAPSHOT_TIME");
	return dmrepl_metadata_foreach_thin(md, print_text, NULL);
}

int cmd_ls(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	struct ls_opts o = { 0 };
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_pool_info pi;
	int r, rc = EXIT_FAILURE_OP;

	r = parse_options(argc, argv, &o);
	if (r)
		return r < 0 ? EXIT_OK : r;
	r = tool_resolve_lvm(ctx, subcmd, &o.src.pool, NULL);
	if (r)
		return r;

	tool_catch_signals();
	if (tool_open_metadata(ctx, subcmd, &o.src, &md) < 0)
		goto out;

	r = dmrepl_metadata_get_pool_info(md, &pi);
	if (r == 0)
		r = o.json ? list_json(md, &pi) : list_text(md, !o.no_headers);
	if (r == -EINTR) {
		rc = tool_interrupted_exit(subcmd);
		goto out;
	}
	if (r < 0) {
		tool_fail_r(subcmd, r, "%s: cannot list thin devices: %s",
			  o.src.pool ? o.src.pool : o.src.path, strerror(-r));
		goto out;
	}
	rc = fflush(stdout) == 0 ? EXIT_OK : EXIT_FAILURE_OP;
out:
	dmrepl_metadata_unref(md);
	return rc;
}
