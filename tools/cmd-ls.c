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
#include "libdmrepl-private.h"
#include "table.h"

static const char *const subcmd = "ls";

struct ls_opts {
	bool json;
	struct table_opts table;
	struct tool_source src;
};

enum { F_ID, F_LV, F_MAPPED, F_BLOCKS, F_TRANSACTION, F_CREATE_GEN, F_SNAP_GEN };

static const struct table_field fields[] = {
	[F_ID] = { "id", "ID", false, "the thin device id" },
	[F_LV] = { "lv", "LV", true, "its LVM name, VG/LV (on an LVM pool)" },
	[F_MAPPED] = { "mapped", "MAPPED", false, "bytes mapped (blocks times the block size)" },
	[F_BLOCKS] = { "blocks", "BLOCKS", false, "data blocks mapped" },
	[F_TRANSACTION] = { "transaction", "TRANSACTION", false,
			    "the pool transaction recorded with it" },
	[F_CREATE_GEN] = { "create_gen", "CREATE_GEN", false,
			   "pool time when it was created (a counter, not a clock)" },
	[F_SNAP_GEN] = { "snap_gen", "SNAP_GEN", false,
			 "pool time of its last snapshot (a counter, not a clock)" },
};
#define DEFAULT_FIELDS "id,mapped,blocks,transaction,create_gen,snap_gen"
#define DEFAULT_FIELDS_LVM "id,lv,mapped,blocks,transaction,create_gen,snap_gen"

static void usage(FILE *out)
{
	fprintf(out,
		"Usage:\n"
		"  %1$s ls [-m] [--json] [-o FIELDS] METADATA\n"
		"  %1$s ls --pool DMNAME|VG/POOL [--json] [-o FIELDS]\n"
		"\n"
		"List the thin devices of a pool: id, LVM name, bytes and blocks\n"
		"mapped, the transaction that created each, and the pool time (a\n"
		"counter the kernel advances with each snapshot) of its creation and\n"
		"of its last snapshot. METADATA is a metadata image file or block\n"
		"device; --pool reads a live pool through a metadata snapshot that\n"
		"dmrepl reserves and always releases.\n"
		"\n"
		"Options:\n"
		"  -m, --metadata-snap   read METADATA's held metadata snapshot\n"
		"  -p, --pool POOL       read the live pool (dm name or VG/POOL)\n"
		"  -j, --json            print JSON (see dmrepl(8))\n"
		TABLE_HELP
		"  -h, --help            show this help\n"
		"\n"
		"Exit status: 0 listed; 1 the metadata could not be read (damaged,\n"
		"missing, no pool); 2 usage; 128+N interrupted by signal N.\n",
		program_name);
}

static int parse_options(int argc, char *argv[], struct ls_opts *o)
{
	static const struct option longopts[] = {
		{ "metadata-snap", no_argument, NULL, 'm' },
		{ "pool", required_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		TABLE_LONGOPTS,
		{ NULL, 0, NULL, 0 },
	};
	int c, r;

	while ((c = tool_getopt(argc, argv, "mp:jh" TABLE_SHORTOPTS, longopts)) != -1) {
		r = table_option(subcmd, c, optarg, &o->table);
		if (r == 1)
			continue;
		if (r)
			return r;
		switch (c) {
		case 'm': o->src.use_held_root = true; break;
		case 'p': o->src.pool = optarg; break;
		case 'j': o->json = true; break;
		case 'h': usage(stdout); return -1;
		default: return tool_usage_error(subcmd, "unrecognized option");
		}
	}
	r = table_check(subcmd, fields, sizeof(fields) / sizeof(fields[0]),
			DEFAULT_FIELDS, &o->table);
	if (r)
		return r;
	return tool_source_finish(subcmd, &o->src, argc, argv);
}

/* The LVM names of a live pool's thin devices, when LVM manages it. */
struct lv_names {
	struct dmrepl_lvm_lv *lvs;
	size_t n;
	char vg[128], pool[128];
};

static void lv_names_load(struct dmrepl_ctx *ctx, const char *dm_name,
			  struct lv_names *names)
{
	struct dmrepl_pool *pool = NULL;
	const char *vg_pool, *slash;

	if (!dm_name || dmrepl_pool_open(ctx, dm_name, &pool) < 0)
		return;
	vg_pool = dmrepl_pool_get_lvm_name(pool);
	slash = vg_pool ? strchr(vg_pool, '/') : NULL;
	if (slash && (size_t)(slash - vg_pool) < sizeof(names->vg) &&
	    strlen(slash + 1) < sizeof(names->pool)) {
		snprintf(names->vg, sizeof(names->vg), "%.*s", (int)(slash - vg_pool),
			 vg_pool);
		snprintf(names->pool, sizeof(names->pool), "%s", slash + 1);
		/* without lvm the names are missing, and the ids still right */
		if (dmrepl_lvm_list(ctx, names->vg, &names->lvs, &names->n) < 0)
			names->n = 0;
	}
	dmrepl_pool_unref(pool);
}

/* "VG/LV" of thin @id into @buf, or NULL. */
static const char *lv_name(const struct lv_names *names, uint64_t id, char *buf,
			   size_t size)
{
	for (size_t i = 0; i < names->n; i++) {
		const struct dmrepl_lvm_lv *lv = &names->lvs[i];

		if (lv->thin_id == id && strcmp(lv->segtype, "thin") == 0 &&
		    strcmp(lv->pool_lv, names->pool) == 0) {
			snprintf(buf, size, "%s/%s", lv->vg, lv->lv);
			return buf;
		}
	}
	return NULL;
}

struct listing {
	const struct dmrepl_pool_info *pi;
	const struct lv_names *names;
	struct table *table;
	struct json *json;
};

static int print_text(const struct dmrepl_thin_info *t, void *userdata)
{
	struct listing *l = userdata;
	char name[260];

	if (table_row(l->table) < 0)
		return -ENOMEM;
	table_set_u64(l->table, F_ID, t->thin_id);
	table_set(l->table, F_LV, lv_name(l->names, t->thin_id, name, sizeof(name)));
	table_set_size(l->table, F_MAPPED,
		       t->mapped_blocks * l->pi->data_block_size_sectors * 512);
	table_set_u64(l->table, F_BLOCKS, t->mapped_blocks);
	table_set_u64(l->table, F_TRANSACTION, t->transaction_id);
	table_set_u64(l->table, F_CREATE_GEN, t->creation_time);
	table_set_u64(l->table, F_SNAP_GEN, t->snapshot_time);
	return tool_interrupted ? -EINTR : 0;
}

static int print_json(const struct dmrepl_thin_info *t, void *userdata)
{
	struct listing *l = userdata;
	struct json *j = l->json;
	char name[260];

	json_open_object(j, NULL);
	json_u64(j, "id", t->thin_id);
	json_u64(j, "mapped_blocks", t->mapped_blocks);
	json_u64(j, "transaction_id", t->transaction_id);
	json_u64(j, "creation_time", t->creation_time);
	json_u64(j, "snapshot_time", t->snapshot_time);
	json_u64(j, "mapped_bytes", t->mapped_blocks * l->pi->data_block_size_sectors * 512);
	if (lv_name(l->names, t->thin_id, name, sizeof(name)))
		json_string(j, "lv", name);
	json_close_object(j);
	return tool_interrupted ? -EINTR : 0;
}

static int list_json(struct dmrepl_metadata *md, struct listing *l)
{
	const struct dmrepl_pool_info *pi = l->pi;
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	struct json j;
	int r;

	/* built apart, printed whole: a failure prints no half object */
	if (!mem)
		return -ENOMEM;
	l->json = &j;
	tool_json_result_begin(&j, mem, true);
	json_open_object(&j, "pool");
	json_u64(&j, "transaction_id", pi->transaction_id);
	json_u64(&j, "data_block_size_sectors", pi->data_block_size_sectors);
	json_u64(&j, "nr_data_blocks", pi->nr_data_blocks);
	json_u64(&j, "time", pi->time);
	json_bool(&j, "metadata_snap", pi->using_held_root);
	if (l->names->vg[0]) {
		char name[260];

		snprintf(name, sizeof(name), "%s/%s", l->names->vg, l->names->pool);
		json_string(&j, "lv", name);
	}
	json_close_object(&j);
	json_open_array(&j, "devices");
	r = dmrepl_metadata_foreach_thin(md, print_json, l);
	json_close_array(&j);
	json_close_object(&j);
	json_end(&j);
	fclose(mem);
	if (r == 0)
		fwrite(buf, 1, len, stdout);
	free(buf);
	return r;
}

static int list_text(struct dmrepl_metadata *md, struct listing *l)
{
	int r = dmrepl_metadata_foreach_thin(md, print_text, l);

	return r < 0 ? r : table_print(l->table, stdout);
}

int cmd_ls(struct dmrepl_ctx *ctx, int argc, char *argv[])
{
	struct ls_opts o = { 0 };
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_pool_info pi;
	struct lv_names names = { 0 };
	struct listing l = { .pi = &pi, .names = &names };
	int r, rc = EXIT_FAILURE_OP;

	r = parse_options(argc, argv, &o);
	if (r)
		return r < 0 ? EXIT_OK : r;
	r = tool_resolve_lvm(ctx, subcmd, &o.src.pool, NULL);
	if (r)
		return r;
	lv_names_load(ctx, o.src.pool, &names);
	if (!o.json) {
		l.table = table_new(subcmd, fields, sizeof(fields) / sizeof(fields[0]),
				    names.vg[0] ? DEFAULT_FIELDS_LVM : DEFAULT_FIELDS,
				    &o.table, &rc);
		if (!l.table)
			goto out;
		rc = EXIT_FAILURE_OP;
	}

	tool_catch_signals();
	if (tool_open_metadata(ctx, subcmd, &o.src, &md) < 0)
		goto out;

	r = dmrepl_metadata_get_pool_info(md, &pi);
	if (r == 0)
		r = o.json ? list_json(md, &l) : list_text(md, &l);
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
	table_free(l.table);
	free(names.lvs);
	dmrepl_metadata_unref(md);
	return rc;
}
