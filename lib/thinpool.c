/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Thin devices of a live pool: the pool's messages (create_thin,
 * create_snap, delete), consistent snapshots of active origins, and
 * activating a thin device under a name of our own to read or write it.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "libdmrepl-private.h"

#define SECTOR_SIZE 512u

/* Send @msg; @id names the device an EEXIST is about, @src an ENODATA. */
static int pool_message(struct dmrepl_pool *pool, const char *what,
			const char *msg, uint64_t id, uint64_t src)
{
	struct dmrepl_ctx *ctx = dmrepl_pool_get_ctx(pool);
	int r;

	r = dmrepl_dm_message(ctx, dmrepl_pool_get_name(pool), msg);
	if (r == 0)
		return 0;
	if (r == -EEXIST)
		err(ctx, "%s: cannot %s: thin id %" PRIu64 " already exists",
		    dmrepl_pool_get_name(pool), what, id);
	else if (r == -ENODATA || r == -ENOENT)
		err(ctx, "%s: cannot %s: no thin device %" PRIu64,
		    dmrepl_pool_get_name(pool), what, src);
	else if (r == -EBUSY)
		err(ctx, "%s: cannot %s: thin %" PRIu64 " is in use (active)",
		    dmrepl_pool_get_name(pool), what, id);
	else
		err(ctx, "%s: cannot %s ('%s'): %s", dmrepl_pool_get_name(pool),
		    what, msg, strerror(-r));
	return r;
}

int dmrepl_pool_create_thin(struct dmrepl_pool *pool, uint64_t thin_id)
{
	char msg[48];

	snprintf(msg, sizeof(msg), "create_thin %" PRIu64, thin_id);
	return pool_message(pool, "create a thin device", msg, thin_id, thin_id);
}

int dmrepl_pool_delete_thin(struct dmrepl_pool *pool, uint64_t thin_id)
{
	char msg[48];

	snprintf(msg, sizeof(msg), "delete %" PRIu64, thin_id);
	return pool_message(pool, "delete a thin device", msg, thin_id, thin_id);
}

static int send_create_snap(struct dmrepl_pool *pool, uint64_t new_id,
			    uint64_t origin_id)
{
	char msg[64];

	snprintf(msg, sizeof(msg), "create_snap %" PRIu64 " %" PRIu64, new_id,
		 origin_id);
	return pool_message(pool, "create a snapshot", msg, new_id, origin_id);
}

/* ---- active devices of one thin id ---- */

struct find_ctx {
	struct dmrepl_pool *pool;
	char prefix[48];	/* "MAJ:MIN ID" of the table line */
	char **names;
	size_t nr;
	uint64_t length_sectors;
	int error;
};

static int is_thin_of(const struct dmrepl_dm_target *t, const char *prefix)
{
	size_t n = strlen(prefix);

	return t->nr_targets == 1 && t->type && strcmp(t->type, "thin") == 0 &&
	       strncmp(t->params, prefix, n) == 0 &&
	       (t->params[n] == '\0' || t->params[n] == ' ');
}

static int find_one(const char *name, void *userdata)
{
	struct find_ctx *f = userdata;
	struct dmrepl_ctx *ctx = dmrepl_pool_get_ctx(f->pool);
	struct dmrepl_dm_target t = {0};
	char **names;

	/* A device removed while we walk is simply not one of ours. */
	if (dmrepl_dm_get_table(ctx, name, &t) < 0)
		return 0;
	if (!is_thin_of(&t, f->prefix))
		goto out;
	names = realloc(f->names, (f->nr + 1) * sizeof(*names));
	if (!names || !(names[f->nr] = strdup(name))) {
		f->names = names ? names : f->names;
		f->error = -ENOMEM;
		dmrepl_dm_target_clear(&t);
		return 1;
	}
	f->names = names;
	f->nr++;
	f->length_sectors = t.length_sectors;
out:
	dmrepl_dm_target_clear(&t);
	return 0;
}

static void free_names(char **names, size_t nr)
{
	while (nr)
		free(names[--nr]);
	free(names);
}

/*
 * The dm devices that map thin @thin_id of @pool. Their number may be 0.
 * Return: 0 or -errno.
 */
static int find_active(struct dmrepl_pool *pool, uint64_t thin_id,
		       struct find_ctx *f)
{
	uint32_t maj, min;
	int r;

	memset(f, 0, sizeof(*f));
	f->pool = pool;
	dmrepl_pool_get_devt(pool, &maj, &min);
	snprintf(f->prefix, sizeof(f->prefix), "%u:%u %" PRIu64, maj, min,
		 thin_id);
	r = dmrepl_dm_foreach(dmrepl_pool_get_ctx(pool), find_one, f);
	if (r < 0)
		return r;
	return f->error;
}

int dmrepl_pool_get_active_size(struct dmrepl_pool *pool, uint64_t thin_id,
				uint64_t *ret_size_bytes)
{
	struct find_ctx f;
	int r;

	r = find_active(pool, thin_id, &f);
	if (r == 0 && f.nr == 0)
		r = -ENOENT;
	if (r == 0)
		*ret_size_bytes = f.length_sectors * SECTOR_SIZE;
	free_names(f.names, f.nr);
	return r;
}

int dmrepl_pool_thin_in_use(struct dmrepl_pool *pool, uint64_t thin_id,
			    char *ret_name, size_t size)
{
	struct find_ctx f;
	int r, count = 0;

	r = find_active(pool, thin_id, &f);
	for (size_t i = 0; r == 0 && i < f.nr && count == 0; i++) {
		if (dmrepl_dm_get_open_count(dmrepl_pool_get_ctx(pool), f.names[i],
					     &count) < 0)
			count = 0;	/* gone meanwhile */
		if (count)
			snprintf(ret_name, size, "%s", f.names[i]);
	}
	free_names(f.names, f.nr);
	return r < 0 ? r : count > 0;
}

/* ---- snapshots ---- */

/* Resume what was suspended, in reverse order; the first error wins. */
static int resume_all(struct dmrepl_ctx *ctx, char **names, size_t nr)
{
	int r = 0, q;

	while (nr--) {
		q = dmrepl_dm_resume(ctx, names[nr]);
		if (q < 0 && r == 0)
			r = q;
	}
	return r;
}

/*
 * Suspend every active device of the origin (which flushes its
 * in-flight writes), send create_snap, and resume them whatever
 * happened. Signals that would kill us are held off meanwhile, so an
 * origin is never left suspended by Ctrl-C.
 */
static int snap_suspended(struct dmrepl_pool *pool, struct find_ctx *f,
			  uint64_t origin_id, uint64_t new_id)
{
	struct dmrepl_ctx *ctx = dmrepl_pool_get_ctx(pool);
	size_t suspended = 0;
	sigset_t old;
	int r = 0, q;

	dmrepl_signals_block(&old);
	for (; suspended < f->nr; suspended++) {
		r = dmrepl_dm_suspend(ctx, f->names[suspended]);
		if (r < 0)
			break;
	}
	if (r == 0)
		r = send_create_snap(pool, new_id, origin_id);
	q = resume_all(ctx, f->names, suspended);
	dmrepl_signals_restore(&old);
	if (q < 0)
		err(ctx, "%s: thin %" PRIu64 " could not be resumed after the "
			 "snapshot: resume it with dmsetup resume",
		    dmrepl_pool_get_name(pool), origin_id);
	return r < 0 ? r : q;
}

int dmrepl_pool_next_free_id(struct dmrepl_pool *pool, uint64_t *ret_id)
{
	struct dmrepl_metadata *md = NULL;
	int r;

	r = dmrepl_metadata_open_pool(dmrepl_pool_get_ctx(pool),
				      dmrepl_pool_get_name(pool), &md);
	if (r < 0)
		return r;
	r = dmrepl_metadata_next_free_id(md, ret_id);
	dmrepl_metadata_unref(md);
	return r;
}

DMREPL_EXPORT int dmrepl_pool_create_snapshot(struct dmrepl_pool *pool,
					      uint64_t origin_id,
					      uint64_t new_id,
					      uint64_t *ret_id)
{
	struct find_ctx f;
	int r;

	if (!pool || origin_id > DMREPL_THIN_ID_MAX ||
	    (new_id > DMREPL_THIN_ID_MAX && new_id != DMREPL_THIN_ID_ANY))
		return -EINVAL;
	if (new_id == DMREPL_THIN_ID_ANY) {
		r = dmrepl_pool_next_free_id(pool, &new_id);
		if (r < 0)
			return r;
	}
	r = find_active(pool, origin_id, &f);
	if (r == 0)
		r = snap_suspended(pool, &f, origin_id, new_id);
	free_names(f.names, f.nr);
	if (r < 0)
		return r;
	info(dmrepl_pool_get_ctx(pool), "%s: thin %" PRIu64
	     " is a snapshot of thin %" PRIu64 " (%zu active device(s) suspended)",
	     dmrepl_pool_get_name(pool), new_id, origin_id, f.nr);
	if (ret_id)
		*ret_id = new_id;
	return 0;
}

/* ---- activating a thin device under our own name ---- */

struct dmrepl_thin_dev {
	struct dmrepl_ctx *ctx;
	char *name;
	char *path;
};

/* /dev/mapper/NAME when it is the device: its name says what it is. */
static int mapper_path(const char *name, dev_t devt, char **ret_path)
{
	struct stat st;
	char *path;

	if (asprintf(&path, "/dev/mapper/%s", name) < 0)
		return -ENOMEM;
	if (stat(path, &st) == 0 && S_ISBLK(st.st_mode) && st.st_rdev == devt) {
		*ret_path = path;
		return 0;
	}
	free(path);
	return -ENOENT;
}

int dmrepl_thin_activate(struct dmrepl_pool *pool, uint64_t thin_id,
			 uint64_t size_bytes, bool read_only, const char *name,
			 struct dmrepl_thin_dev **ret_dev)
{
	struct dmrepl_ctx *ctx = dmrepl_pool_get_ctx(pool);
	struct dmrepl_thin_dev *dev;
	uint32_t pmaj, pmin, maj, min;
	char params[64];
	int r;

	if (size_bytes == 0 || size_bytes % SECTOR_SIZE) {
		err(ctx, "%s: thin %" PRIu64 ": size %" PRIu64
			 " is not a positive multiple of 512 bytes",
		    dmrepl_pool_get_name(pool), thin_id, size_bytes);
		return -EINVAL;
	}
	dev = calloc(1, sizeof(*dev));
	if (!dev || !(dev->name = strdup(name))) {
		free(dev);
		return -ENOMEM;
	}
	dev->ctx = dmrepl_ref(ctx);
	dmrepl_pool_get_devt(pool, &pmaj, &pmin);
	snprintf(params, sizeof(params), "%u:%u %" PRIu64, pmaj, pmin, thin_id);
	r = dmrepl_dm_create(ctx, name, "thin", params, size_bytes / SECTOR_SIZE,
			     read_only, &maj, &min);
	if (r < 0) {
		dev->name[0] = '\0'; /* nothing to remove */
		goto fail;
	}
	r = mapper_path(name, makedev(maj, min), &dev->path);
	if (r == -ENOENT)
		r = dmrepl_resolve_devt(ctx, makedev(maj, min), &dev->path);
	if (r < 0)
		goto fail;
	*ret_dev = dev;
	return 0;
fail:
	dmrepl_thin_deactivate(dev);
	return r;
}

const char *dmrepl_thin_dev_get_path(const struct dmrepl_thin_dev *dev)
{
	return dev->path;
}

int dmrepl_thin_deactivate(struct dmrepl_thin_dev *dev)
{
	int r = 0;

	if (!dev)
		return 0;
	if (dev->name && dev->name[0]) {
		r = dmrepl_dm_remove(dev->ctx, dev->name);
		if (r == -ENODEV)
			r = 0;
	}
	dmrepl_unref(dev->ctx);
	free(dev->path);
	free(dev->name);
	free(dev);
	return r;
}
