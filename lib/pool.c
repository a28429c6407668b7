/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Live thin pools: find one by its device-mapper name, read its table
 * (which names the metadata device) and its status.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "base.h"
#include "dm.h"

struct dmrepl_pool {
	int refcount;
	struct dmrepl_ctx *ctx;
	char *name;
	struct dmrepl_pool_table table;
	uint32_t major, minor;		/* of the pool device itself */
	char *metadata_path;
	/* "VG/LV" when LVM manages the pool (its dm UUID is "LVM-..."), else "" */
	char lvm_name[256];
};

/* ---- parsers: pure functions of one line, unit-tested ---- */

#define TOKEN_MAX 32

/*
 * Copy the next space-separated token of *@p into @buf and advance.
 * Return: 1 with a token, 0 at the end, -EINVAL when it is too long.
 */
static int next_token(const char **p, char *buf)
{
	const char *s = *p;
	size_t n;

	s += strspn(s, " \t\n");
	n = strcspn(s, " \t\n");
	if (n == 0)
		return 0;
	if (n >= TOKEN_MAX)
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = '\0';
	*p = s + n;
	return 1;
}

/* A decimal number: digits only, no sign, no overflow. */
static int parse_u64(const char *s, uint64_t *ret)
{
	uint64_t v = 0;

	if (!*s)
		return -EINVAL;
	for (; *s; s++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*ret = v;
	return 0;
}

/* "USED/TOTAL" */
static int parse_fraction(char *s, uint64_t *ret_used, uint64_t *ret_total)
{
	char *slash = strchr(s, '/');
	uint64_t used, total;

	if (!slash)
		return -EINVAL;
	*slash = '\0';
	if (parse_u64(s, &used) < 0 || parse_u64(slash + 1, &total) < 0)
		return -EINVAL;
	*ret_used = used;
	*ret_total = total;
	return 0;
}

/* "MAJ:MIN" */
static int parse_devno(char *s, uint32_t *ret_major, uint32_t *ret_minor)
{
	char *colon = strchr(s, ':');
	uint64_t major, minor;

	if (!colon)
		return -EINVAL;
	*colon = '\0';
	if (parse_u64(s, &major) < 0 || parse_u64(colon + 1, &minor) < 0 ||
	    major > UINT32_MAX || minor > UINT32_MAX)
		return -EINVAL;
	*ret_major = (uint32_t)major;
	*ret_minor = (uint32_t)minor;
	return 0;
}

/* Read the next token and require it; -EINVAL when missing or too long. */
static int want_token(const char **p, char *buf)
{
	int r = next_token(p, buf);

	return r == 1 ? 0 : -EINVAL;
}

/*
 * META_MAJ:MIN DATA_MAJ:MIN DATA_BLOCK_SIZE_SECTORS LOW_WATER [N FEATURE...]
 * The features do not matter to us and are not checked.
 */
int dmrepl_pool_parse_table(const char *params,
			    struct dmrepl_pool_table *ret_table)
{
	struct dmrepl_pool_table t = {0};
	char tok[TOKEN_MAX];
	const char *p = params;

	if (!params || !ret_table)
		return -EINVAL;
	if (want_token(&p, tok) < 0 ||
	    parse_devno(tok, &t.metadata_major, &t.metadata_minor) < 0)
		return -EINVAL;
	if (want_token(&p, tok) < 0 ||
	    parse_devno(tok, &t.data_major, &t.data_minor) < 0)
		return -EINVAL;
	if (want_token(&p, tok) < 0 ||
	    parse_u64(tok, &t.data_block_size_sectors) < 0 ||
	    t.data_block_size_sectors == 0)
		return -EINVAL;
	if (want_token(&p, tok) < 0 || parse_u64(tok, &t.low_water_blocks) < 0)
		return -EINVAL;
	*ret_table = t;
	return 0;
}

/* The held metadata root: "-" for none, else a block number (never 0). */
static int parse_held_root(const char *tok, uint64_t *ret_root)
{
	uint64_t root;

	if (strcmp(tok, "-") == 0) {
		*ret_root = 0;
		return 0;
	}
	if (parse_u64(tok, &root) < 0 || root == 0)
		return -EINVAL;
	*ret_root = root;
	return 0;
}

static int parse_mode(const char *tok, struct dmrepl_pool_status *st)
{
	if (strcmp(tok, "rw") == 0)
		return 0;
	if (strcmp(tok, "ro") == 0) {
		st->read_only = 1;
		return 0;
	}
	if (strcmp(tok, "out_of_data_space") == 0) {
		st->out_of_data_space = 1;
		return 0;
	}
	return -EINVAL;
}

static int is_one_of(const char *tok, const char *const *words)
{
	for (; *words; words++)
		if (strcmp(tok, *words) == 0)
			return 1;
	return 0;
}

/*
 * The words after the mode. Older kernels stop early, newer ones may add
 * more: each known field that is present must be valid, and anything
 * after the last known one is ignored.
 */
static int parse_status_tail(const char *p, struct dmrepl_pool_status *st)
{
	static const char *const discard[] = {
	    "ignore_discard", "discard_passdown", "no_discard_passdown", NULL};
	static const char *const no_space[] = {"error_if_no_space",
					       "queue_if_no_space", NULL};
	char tok[TOKEN_MAX];
	uint64_t watermark;
	int r;

	if ((r = next_token(&p, tok)) <= 0)
		return r;
	if (!is_one_of(tok, discard))
		return -EINVAL;
	if ((r = next_token(&p, tok)) <= 0)
		return r;
	if (!is_one_of(tok, no_space))
		return -EINVAL;
	if ((r = next_token(&p, tok)) <= 0)
		return r;
	if (strcmp(tok, "needs_check") == 0)
		st->needs_check = 1;
	else if (strcmp(tok, "-") != 0)
		return -EINVAL;
	if ((r = next_token(&p, tok)) <= 0)
		return r;
	return parse_u64(tok, &watermark);
}

/*
 * TID USED_META/TOTAL_META USED_DATA/TOTAL_DATA HELD_ROOT MODE
 *   [DISCARD NO_SPACE NEEDS_CHECK [METADATA_LOW_WATERMARK]]
 * or "Fail" (the pool is in fail mode) or "Error" (the kernel could not
 * read its own metadata to report).
 */
int dmrepl_pool_parse_status(const char *params,
			     struct dmrepl_pool_status *ret_status)
{
	struct dmrepl_pool_status st = {0};
	char tok[TOKEN_MAX];
	const char *p = params;

	if (!params || !ret_status)
		return -EINVAL;
	if (want_token(&p, tok) < 0)
		return -EINVAL;
	if (strcmp(tok, "Fail") == 0 || strcmp(tok, "Error") == 0) {
		int error = tok[0] == 'E';

		if (next_token(&p, tok) != 0)
			return -EINVAL;
		if (error)
			return -EIO;
		st.fail = 1;
		*ret_status = st;
		return 0;
	}
	if (parse_u64(tok, &st.transaction_id) < 0)
		return -EINVAL;
	if (want_token(&p, tok) < 0 ||
	    parse_fraction(tok, &st.used_metadata_blocks,
			   &st.total_metadata_blocks) < 0)
		return -EINVAL;
	if (want_token(&p, tok) < 0 ||
	    parse_fraction(tok, &st.used_data_blocks, &st.total_data_blocks) <
		0)
		return -EINVAL;
	if (want_token(&p, tok) < 0 ||
	    parse_held_root(tok, &st.held_metadata_root) < 0)
		return -EINVAL;
	if (want_token(&p, tok) < 0 || parse_mode(tok, &st) < 0)
		return -EINVAL;
	if (parse_status_tail(p, &st) < 0)
		return -EINVAL;
	*ret_status = st;
	return 0;
}

/* ---- the metadata device's path ---- */

static int is_block_dev(const char *path, dev_t devt)
{
	struct stat s;

	return stat(path, &s) == 0 && S_ISBLK(s.st_mode) && s.st_rdev == devt;
}

/* DEVNAME from /sys/dev/block/MAJ:MIN/uevent, as "/dev/DEVNAME". */
static char *path_from_sysfs(dev_t devt)
{
	char sys[64], line[256], *path = NULL;
	FILE *f;

	snprintf(sys, sizeof(sys), "/sys/dev/block/%u:%u/uevent", major(devt),
		 minor(devt));
	f = fopen(sys, "re");
	if (!f)
		return NULL;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "DEVNAME=", 8) != 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		if (asprintf(&path, "/dev/%s", line + 8) < 0)
			path = NULL;
		break;
	}
	fclose(f);
	return path;
}

static int make_private_node(struct dmrepl_ctx *ctx, dev_t devt,
			     char **ret_path)
{
	char *path;
	int r;

	r = dmrepl_run_dir_create(ctx);
	if (r < 0)
		return r;
	if (asprintf(&path, "%s/blk-%u:%u", dmrepl_run_dir(), major(devt),
		     minor(devt)) < 0)
		return -ENOMEM;
	if (is_block_dev(path, devt))
		goto out;
	unlink(path);
	if (mknod(path, S_IFBLK | 0600, devt) < 0) {
		r = -errno;
		err(ctx,
		    "no device node for block device %u:%u, and cannot create "
		    "%s: %s",
		    major(devt), minor(devt), path, strerror(-r));
		free(path);
		return r;
	}
	dbg(ctx, "created device node %s for %u:%u", path, major(devt),
	    minor(devt));
out:
	*ret_path = path;
	return 0;
}

/*
 * Without udev, /dev/block/ may be missing but devtmpfs still has the
 * kernel's name; a private node in the run directory is the last resort.
 */
int dmrepl_resolve_devt(struct dmrepl_ctx *ctx, dev_t devt, char **ret_path)
{
	char *path = path_from_sysfs(devt);

	if (path && is_block_dev(path, devt))
		goto found;
	free(path);
	if (asprintf(&path, "/dev/block/%u:%u", major(devt), minor(devt)) < 0)
		return -ENOMEM;
	if (is_block_dev(path, devt))
		goto found;
	free(path);
	return make_private_node(ctx, devt, ret_path);
found:
	*ret_path = path;
	return 0;
}

/* ---- the pool ---- */

/* An LVM pool's VG/LV, from its dm name ("vg-pool-tpool"). */
static void lvm_name(struct dmrepl_ctx *ctx, const char *name,
		     struct dmrepl_pool *pool)
{
	char vg[128], lv[128], layer[32];

	if (dmrepl_dm_split_lvm_name(name, vg, sizeof(vg), lv, sizeof(lv),
				     layer, sizeof(layer)) < 0) {
		/* LVM's UUID, another name: still LVM's, named as it is */
		snprintf(pool->lvm_name, sizeof(pool->lvm_name), "%s", name);
		return;
	}
	snprintf(pool->lvm_name, sizeof(pool->lvm_name), "%s/%s", vg, lv);
	dbg(ctx, "%s: an LVM pool, %s", name, pool->lvm_name);
}

static int read_table(struct dmrepl_ctx *ctx, const char *name,
		      struct dmrepl_pool *pool)
{
	struct dmrepl_pool_table *ret_table = &pool->table;
	struct dmrepl_dm_target t = {0};
	int r;

	r = dmrepl_dm_get_table(ctx, name, &t);
	if (r < 0)
		return r;
	if (t.nr_targets != 1 || strcmp(t.type, "thin-pool") != 0) {
		err(ctx, "%s: not a thin pool (%u targets, %s)", name,
		    t.nr_targets, t.type ? t.type : "no table loaded");
		r = -ENODEV;
	} else if (dmrepl_pool_parse_table(t.params, ret_table) < 0) {
		err(ctx, "%s: cannot parse the thin-pool table '%s'", name,
		    t.params);
		r = -EBADMSG;
	}
	pool->major = t.major;
	pool->minor = t.minor;
	if (r == 0 && t.uuid && strncmp(t.uuid, "LVM-", 4) == 0)
		lvm_name(ctx, name, pool);
	dmrepl_dm_target_clear(&t);
	return r;
}

DMREPL_EXPORT int dmrepl_pool_open(struct dmrepl_ctx *ctx, const char *dm_name,
				   struct dmrepl_pool **ret_pool)
{
	struct dmrepl_pool *pool;
	dev_t meta;
	int r;

	if (!ctx || !dm_name || !*dm_name || !ret_pool)
		return -EINVAL;
	pool = calloc(1, sizeof(*pool));
	if (!pool)
		return -ENOMEM;
	pool->refcount = 1;
	pool->ctx = dmrepl_ref(ctx);
	pool->name = strdup(dm_name);
	r = -ENOMEM;
	if (!pool->name)
		goto fail;
	r = read_table(ctx, dm_name, pool);
	if (r < 0)
		goto fail;
	meta = makedev(pool->table.metadata_major, pool->table.metadata_minor);
	r = dmrepl_resolve_devt(ctx, meta, &pool->metadata_path);
	if (r < 0)
		goto fail;
	dbg(ctx, "%s: thin pool, metadata %s, data block %" PRIu64 " sectors",
	    dm_name, pool->metadata_path, pool->table.data_block_size_sectors);
	*ret_pool = pool;
	return 0;
fail:
	dmrepl_pool_unref(pool);
	return r;
}

struct dmrepl_pool *dmrepl_pool_ref(struct dmrepl_pool *pool)
{
	if (pool)
		pool->refcount++;
	return pool;
}

DMREPL_EXPORT struct dmrepl_pool *dmrepl_pool_unref(struct dmrepl_pool *pool)
{
	if (!pool || --pool->refcount > 0)
		return NULL;
	free(pool->metadata_path);
	free(pool->name);
	dmrepl_unref(pool->ctx);
	free(pool);
	return NULL;
}

static int status_error(struct dmrepl_pool *pool, const char *params, int r)
{
	if (r == -EIO)
		err(pool->ctx,
		    "%s: the kernel cannot report the pool's status "
		    "(Error): its metadata may be damaged; check the kernel "
		    "log",
		    pool->name);
	else
		err(pool->ctx, "%s: cannot parse the thin-pool status '%s'",
		    pool->name, params);
	return r == -EIO ? -EIO : -EBADMSG;
}

DMREPL_EXPORT int dmrepl_pool_get_status(struct dmrepl_pool *pool,
					 struct dmrepl_pool_status *ret_status)
{
	struct dmrepl_dm_target t = {0};
	int r;

	if (!pool || !ret_status)
		return -EINVAL;
	r = dmrepl_dm_get_status(pool->ctx, pool->name, &t);
	if (r < 0)
		return r;
	if (t.nr_targets != 1 || strcmp(t.type, "thin-pool") != 0) {
		err(pool->ctx, "%s: no longer a thin pool (%s)", pool->name,
		    t.type ? t.type : "no table loaded");
		r = -ENODEV;
	} else {
		r = dmrepl_pool_parse_status(t.params, ret_status);
		if (r < 0)
			r = status_error(pool, t.params, r);
	}
	dmrepl_dm_target_clear(&t);
	return r;
}

const char *dmrepl_pool_get_lvm_name(struct dmrepl_pool *pool)
{
	return pool->lvm_name[0] ? pool->lvm_name : NULL;
}

dev_t dmrepl_pool_get_metadata_devt(struct dmrepl_pool *pool)
{
	return makedev(pool->table.metadata_major, pool->table.metadata_minor);
}

DMREPL_EXPORT const char *
dmrepl_pool_get_metadata_path(struct dmrepl_pool *pool)
{
	return pool ? pool->metadata_path : NULL;
}

const char *dmrepl_pool_get_name(struct dmrepl_pool *pool)
{
	return pool->name;
}

struct dmrepl_ctx *dmrepl_pool_get_ctx(struct dmrepl_pool *pool)
{
	return pool->ctx;
}

void dmrepl_pool_get_devt(struct dmrepl_pool *pool, uint32_t *ret_major,
			  uint32_t *ret_minor)
{
	*ret_major = pool->major;
	*ret_minor = pool->minor;
}

uint64_t dmrepl_pool_get_block_sectors(struct dmrepl_pool *pool)
{
	return pool->table.data_block_size_sectors;
}
