/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Thin devices of a live pool: the pool's messages (create_thin,
 * create_snap, delete), consistent snapshots of active origins, and
 * activating a thin device under a name of our own to read or write it.
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
#include "replication.h"

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

/* ---- the pool's kinds: who may create, snapshot and delete ---- */

/*
 * What changes a pool's set of thin devices depends on who manages the
 * pool. A raw device-mapper pool takes the kernel's messages. On a pool
 * that LVM manages, LVM's metadata must list exactly the thin ids the
 * kernel has, so only LVM may create or delete one: each change is
 * refused there, with the LVM command that does it, until dmrepl drives
 * lvm itself. Every caller goes through these three functions.
 */
struct pool_kind {
	int (*create_thin)(struct dmrepl_pool *pool, uint64_t thin_id);
	int (*delete_thin)(struct dmrepl_pool *pool, uint64_t thin_id);
	/* the active devices of the origin are suspended around it */
	int (*create_snap)(struct dmrepl_pool *pool, uint64_t new_id,
			   uint64_t origin_id);
};

static int raw_create_thin(struct dmrepl_pool *pool, uint64_t thin_id)
{
	char msg[48];

	snprintf(msg, sizeof(msg), "create_thin %" PRIu64, thin_id);
	return pool_message(pool, "create a thin device", msg, thin_id, thin_id);
}

static int raw_delete_thin(struct dmrepl_pool *pool, uint64_t thin_id)
{
	char msg[48];

	snprintf(msg, sizeof(msg), "delete %" PRIu64, thin_id);
	return pool_message(pool, "delete a thin device", msg, thin_id, thin_id);
}

static int raw_create_snap(struct dmrepl_pool *pool, uint64_t new_id,
			   uint64_t origin_id)
{
	char msg[64];

	snprintf(msg, sizeof(msg), "create_snap %" PRIu64 " %" PRIu64, new_id,
		 origin_id);
	return pool_message(pool, "create a snapshot", msg, new_id, origin_id);
}

static int lvm_refuse(struct dmrepl_pool *pool, const char *what,
		      uint64_t thin_id, const char *instead)
{
	const char *lvm = dmrepl_pool_get_lvm_name(pool);

	err(dmrepl_pool_get_ctx(pool),
	    "pool %s is LVM's (%s): dmrepl does not %s thin %" PRIu64
	    " behind LVM's back, which would leave LVM's metadata and the "
	    "kernel's disagreeing; %s",
	    dmrepl_pool_get_name(pool), lvm, what, thin_id, instead);
	return -EPERM;
}

static int lvm_create_thin(struct dmrepl_pool *pool, uint64_t thin_id)
{
	return lvm_refuse(pool, "create", thin_id,
			  "LVM creates its thin volumes (lvcreate -V SIZE -T "
			  "VG/POOL), and dmrepl its replicas through LVM: name "
			  "the pool as VG/POOL");
}

static int lvm_delete_thin(struct dmrepl_pool *pool, uint64_t thin_id)
{
	return lvm_refuse(pool, "delete", thin_id,
			  "remove the volume with lvremove VG/LV");
}

static int lvm_create_snap(struct dmrepl_pool *pool, uint64_t new_id,
			   uint64_t origin_id)
{
	char instead[320];

	snprintf(instead, sizeof(instead),
		 "snapshot it by name, dmrepl snapshot --origin %.*s/LV (or "
		 "lvcreate -s), LV being the volume whose thin_id (lvs "
		 "-o+thin_id) is %" PRIu64,
		 (int)strcspn(dmrepl_pool_get_lvm_name(pool), "/"),
		 dmrepl_pool_get_lvm_name(pool), origin_id);
	return lvm_refuse(pool, "snapshot", origin_id, instead);
}

static const struct pool_kind raw_pool = {
    .create_thin = raw_create_thin,
    .delete_thin = raw_delete_thin,
    .create_snap = raw_create_snap,
};

static const struct pool_kind lvm_pool = {
    .create_thin = lvm_create_thin,
    .delete_thin = lvm_delete_thin,
    .create_snap = lvm_create_snap,
};

static const struct pool_kind *kind(struct dmrepl_pool *pool)
{
	return dmrepl_pool_get_lvm_name(pool) ? &lvm_pool : &raw_pool;
}

int dmrepl_pool_create_thin(struct dmrepl_pool *pool, uint64_t thin_id)
{
	return kind(pool)->create_thin(pool, thin_id);
}

int dmrepl_pool_delete_thin(struct dmrepl_pool *pool, uint64_t thin_id)
{
	return kind(pool)->delete_thin(pool, thin_id);
}


/* ---- active devices of one thin id ---- */

struct active_dev {
	char *name;
	dev_t devt;		/* of the dm device itself */
	uint64_t length_sectors;
	bool plain;		/* "MAJ:MIN ID": no external origin */
};

/* The dm devices that map one thin id, as one listing found them. */
struct dmrepl_thin_active {
	struct dmrepl_pool *pool;
	uint64_t thin_id;
	char prefix[48];	/* "MAJ:MIN ID" of the table line */
	struct active_dev *devs;
	size_t nr;
	int error;
};

/* 0: not a thin of ours; 1: one of ours; 2: and without an external origin. */
static int is_thin_of(const struct dmrepl_dm_target *t, const char *prefix)
{
	size_t n = strlen(prefix);

	if (t->nr_targets != 1 || !t->type || strcmp(t->type, "thin") != 0 ||
	    strncmp(t->params, prefix, n) != 0)
		return 0;
	if (t->params[n] == '\0')
		return 2;
	return t->params[n] == ' ';
}

static int add_active(struct dmrepl_thin_active *a, const char *name,
		      const struct dmrepl_dm_target *t, bool plain)
{
	struct active_dev *devs;

	devs = realloc(a->devs, (a->nr + 1) * sizeof(*devs));
	if (!devs)
		return -ENOMEM;
	a->devs = devs;
	devs[a->nr].name = strdup(name);
	if (!devs[a->nr].name)
		return -ENOMEM;
	devs[a->nr].devt = makedev(t->major, t->minor);
	devs[a->nr].length_sectors = t->length_sectors;
	devs[a->nr].plain = plain;
	a->nr++;
	return 0;
}

static int find_one(const char *name, void *userdata)
{
	struct dmrepl_thin_active *a = userdata;
	struct dmrepl_ctx *ctx = dmrepl_pool_get_ctx(a->pool);
	struct dmrepl_dm_target t = {0};
	int kind;

	/* A device removed while we walk is simply not one of ours. */
	if (dmrepl_dm_get_table(ctx, name, &t) < 0)
		return 0;
	kind = is_thin_of(&t, a->prefix);
	if (kind)
		a->error = add_active(a, name, &t, kind == 2);
	dmrepl_dm_target_clear(&t);
	return a->error ? 1 : 0;
}

void dmrepl_thin_active_free(struct dmrepl_thin_active *a)
{
	if (!a)
		return;
	while (a->nr)
		free(a->devs[--a->nr].name);
	free(a->devs);
	dmrepl_pool_unref(a->pool);
	free(a);
}

/*
 * The dm devices that map thin @thin_id of @pool. Their number may be 0.
 * Return: 0 or -errno.
 */
int dmrepl_thin_active_find(struct dmrepl_pool *pool, uint64_t thin_id,
			    struct dmrepl_thin_active **ret)
{
	struct dmrepl_thin_active *a;
	uint32_t maj, min;
	int r;

	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->pool = dmrepl_pool_ref(pool);
	a->thin_id = thin_id;
	dmrepl_pool_get_devt(pool, &maj, &min);
	snprintf(a->prefix, sizeof(a->prefix), "%u:%u %" PRIu64, maj, min,
		 thin_id);
	r = dmrepl_dm_foreach(dmrepl_pool_get_ctx(pool), find_one, a);
	if (r == 0)
		r = a->error;
	if (r < 0) {
		dmrepl_thin_active_free(a);
		return r;
	}
	*ret = a;
	return 0;
}

uint64_t dmrepl_thin_active_get_size(const struct dmrepl_thin_active *a)
{
	uint64_t max = 0;

	for (size_t i = 0; i < a->nr; i++)
		if (a->devs[i].length_sectors > max)
			max = a->devs[i].length_sectors;
	return max * SECTOR_SIZE;
}

size_t dmrepl_thin_active_count(const struct dmrepl_thin_active *a)
{
	return a ? a->nr : 0;
}

const char *dmrepl_thin_active_get_name(const struct dmrepl_thin_active *a, size_t i)
{
	return i < a->nr ? a->devs[i].name : NULL;
}

int dmrepl_pool_get_active_size(struct dmrepl_pool *pool, uint64_t thin_id,
				uint64_t *ret_size_bytes)
{
	struct dmrepl_thin_active *a = NULL;
	int r;

	r = dmrepl_thin_active_find(pool, thin_id, &a);
	if (r < 0)
		return r;
	if (a->nr == 0)
		r = -ENOENT;
	else
		*ret_size_bytes = dmrepl_thin_active_get_size(a);
	dmrepl_thin_active_free(a);
	return r;
}

int dmrepl_pool_thin_in_use(struct dmrepl_pool *pool, uint64_t thin_id,
			    char *ret_name, size_t size)
{
	struct dmrepl_thin_active *a = NULL;
	int r, count = 0;

	r = dmrepl_thin_active_find(pool, thin_id, &a);
	if (r < 0)
		return r;
	for (size_t i = 0; i < a->nr && count == 0; i++) {
		if (dmrepl_dm_get_open_count(dmrepl_pool_get_ctx(pool),
					     a->devs[i].name, &count) < 0)
			count = 0;	/* gone meanwhile */
		if (count)
			snprintf(ret_name, size, "%s", a->devs[i].name);
	}
	dmrepl_thin_active_free(a);
	return count > 0;
}

/* ---- snapshots ---- */

/* Resume what was suspended, in reverse order; the first error wins. */
static int resume_all(struct dmrepl_ctx *ctx, const struct active_dev *devs,
		      size_t nr)
{
	int r = 0, q;

	while (nr--) {
		q = dmrepl_dm_resume(ctx, devs[nr].name);
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
static int snap_suspended(struct dmrepl_pool *pool,
			  const struct dmrepl_thin_active *a,
			  uint64_t origin_id, uint64_t new_id)
{
	struct dmrepl_ctx *ctx = dmrepl_pool_get_ctx(pool);
	size_t suspended = 0;
	sigset_t old;
	int r = 0, q;

	dmrepl_signals_block(&old);
	for (; suspended < a->nr; suspended++) {
		r = dmrepl_dm_suspend(ctx, a->devs[suspended].name);
		if (r < 0)
			break;
	}
	if (r == 0)
		r = kind(pool)->create_snap(pool, new_id, origin_id);
	q = resume_all(ctx, a->devs, suspended);
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
	struct dmrepl_thin_active *a = NULL;
	size_t nr;
	int r;

	if (!pool || origin_id > DMREPL_THIN_ID_MAX ||
	    (new_id > DMREPL_THIN_ID_MAX && new_id != DMREPL_THIN_ID_ANY))
		return -EINVAL;
	/* refused before any device is suspended */
	if (kind(pool) != &raw_pool)
		return kind(pool)->create_snap(pool, new_id, origin_id);
	if (new_id == DMREPL_THIN_ID_ANY) {
		r = dmrepl_pool_next_free_id(pool, &new_id);
		if (r < 0)
			return r;
	}
	r = dmrepl_thin_active_find(pool, origin_id, &a);
	if (r < 0)
		return r;
	r = snap_suspended(pool, a, origin_id, new_id);
	nr = a->nr;
	dmrepl_thin_active_free(a);
	if (r < 0)
		return r;
	info(dmrepl_pool_get_ctx(pool), "%s: thin %" PRIu64
	     " is a snapshot of thin %" PRIu64 " (%zu active device(s) suspended)",
	     dmrepl_pool_get_name(pool), new_id, origin_id, nr);
	if (ret_id)
		*ret_id = new_id;
	return 0;
}

int dmrepl_pool_create_snapshot_dry_run(struct dmrepl_pool *pool,
					uint64_t origin_id, uint64_t new_id,
					uint64_t *ret_id, size_t *ret_nr_active)
{
	struct dmrepl_ctx *ctx = dmrepl_pool_get_ctx(pool);
	struct dmrepl_thin_active *a = NULL;
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_thin_ident ident;
	int r;

	if (!pool || origin_id > DMREPL_THIN_ID_MAX ||
	    (new_id > DMREPL_THIN_ID_MAX && new_id != DMREPL_THIN_ID_ANY))
		return -EINVAL;
	if (kind(pool) != &raw_pool)	/* a refusal: changes nothing */
		return kind(pool)->create_snap(pool, new_id, origin_id);
	r = dmrepl_metadata_open_pool(ctx, dmrepl_pool_get_name(pool), &md);
	if (r < 0)
		return r;
	r = dmrepl_thin_ident_read(md, origin_id, &ident);
	if (r == -ENOENT)
		err(ctx, "%s: no thin %" PRIu64 " to snapshot",
		    dmrepl_pool_get_name(pool), origin_id);
	if (r == 0 && new_id == DMREPL_THIN_ID_ANY) {
		r = dmrepl_metadata_next_free_id(md, &new_id);
	} else if (r == 0) {
		r = dmrepl_thin_ident_read(md, new_id, &ident);
		if (r == 0) {
			err(ctx, "%s: thin %" PRIu64 " exists already",
			    dmrepl_pool_get_name(pool), new_id);
			r = -EEXIST;
		} else if (r == -ENOENT) {
			r = 0;
		}
	}
	dmrepl_metadata_unref(md);
	if (r == 0)
		r = dmrepl_thin_active_find(pool, origin_id, &a);
	if (r < 0)
		return r;
	if (ret_nr_active)
		*ret_nr_active = a->nr;
	dmrepl_thin_active_free(a);
	if (ret_id)
		*ret_id = new_id;
	return 0;
}

/* ---- activating a thin device under our own name ---- */

struct dmrepl_thin_dev {
	struct dmrepl_ctx *ctx;
	char *name;		/* ours to remove; "" when borrowed */
	char *path;
	int hold_fd;		/* a borrowed device, held open */
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
	dev->hold_fd = -1;
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
	if (dev->hold_fd >= 0)
		close(dev->hold_fd);
	dmrepl_unref(dev->ctx);
	free(dev->path);
	free(dev->name);
	free(dev);
	return r;
}

/* ---- reading through a device someone else keeps active ---- */

/* @d still maps the thin, under its name, as the device @fd holds open. */
static int still_maps(struct dmrepl_thin_active *a, const struct active_dev *d,
		      int fd, uint64_t min_bytes)
{
	struct dmrepl_dm_target t = {0};
	struct stat st;
	int r;

	if (fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode) || st.st_rdev != d->devt)
		return -ESTALE;
	r = dmrepl_dm_get_table(dmrepl_pool_get_ctx(a->pool), d->name, &t);
	if (r < 0)
		return r;
	if (makedev(t.major, t.minor) != d->devt ||
	    is_thin_of(&t, a->prefix) != 2 ||
	    t.length_sectors * SECTOR_SIZE < min_bytes)
		r = -ESTALE;
	dmrepl_dm_target_clear(&t);
	return r;
}

/*
 * Open @d and check, once it is open (so it cannot be removed, nor its
 * number given to another device), that it is still what the listing
 * saw. The path names the device number, not the dm name, so whoever
 * opens it later opens this very device.
 */
static int borrow_one(struct dmrepl_thin_active *a, const struct active_dev *d,
		      uint64_t min_bytes, struct dmrepl_thin_dev *dev)
{
	struct dmrepl_ctx *ctx = dmrepl_pool_get_ctx(a->pool);
	int r;

	r = dmrepl_resolve_devt(ctx, d->devt, &dev->path);
	if (r < 0)
		return r;
	dev->hold_fd = open(dev->path, O_RDONLY | O_CLOEXEC);
	if (dev->hold_fd < 0)
		return -errno;
	return still_maps(a, d, dev->hold_fd, min_bytes);
}

int dmrepl_thin_active_borrow(struct dmrepl_thin_active *a, uint64_t min_bytes,
			      struct dmrepl_thin_dev **ret_dev)
{
	struct dmrepl_ctx *ctx = dmrepl_pool_get_ctx(a->pool);
	struct dmrepl_thin_dev *dev = NULL;
	int r;

	for (size_t i = 0; i < a->nr; i++) {
		const struct active_dev *d = &a->devs[i];

		if (!d->plain || d->length_sectors * SECTOR_SIZE < min_bytes)
			continue;
		dev = calloc(1, sizeof(*dev));
		if (!dev || !(dev->name = strdup(""))) {
			free(dev);
			return -ENOMEM;
		}
		dev->ctx = dmrepl_ref(ctx);
		dev->hold_fd = -1;
		r = borrow_one(a, d, min_bytes, dev);
		if (r == 0) {
			dbg(ctx, "%s: reading thin %" PRIu64 " through %s (%s), "
				 "already active",
			    dmrepl_pool_get_name(a->pool), a->thin_id, d->name,
			    dev->path);
			*ret_dev = dev;
			return 0;
		}
		dbg(ctx, "%s: %s cannot be read from: %s", d->name,
		    dev->path ? dev->path : "-", strerror(-r));
		dmrepl_thin_deactivate(dev);
		if (r == -ENOMEM)
			return r;
	}
	return -ENOENT;
}
