/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The source side of a replication: see lib/source.h. Also the source's
 * identity in lineage records and streams, "HOST:POOL".
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base.h"
#include "metadata.h"
#include "dm.h"
#include "lvm.h"
#include "replication.h"
#include "source.h"
#include "transfer.h"

/* ---- the source's identity ---- */

static void host_name(char *buf, size_t size)
{
	if (gethostname(buf, size) < 0)
		snprintf(buf, size, "localhost");
	buf[size - 1] = '\0';
}

int dmrepl_source_name(const char *pool, char *buf, size_t size)
{
	char host[64];
	int n;

	host_name(host, sizeof(host));
	n = snprintf(buf, size, "%s:%s", host, pool);
	return n < 0 || (size_t)n >= size || n > 127 ? -ENAMETOOLONG : 0;
}

/* @name is "THISHOST:POOL": the part after the colon, else NULL. */
static const char *local_part(const char *name)
{
	char host[64];
	size_t n;

	host_name(host, sizeof(host));
	n = strlen(host);
	return strncmp(name, host, n) == 0 && name[n] == ':' ? name + n + 1 : NULL;
}

bool dmrepl_source_matches(const char *a, const char *b)
{
	const char *la, *lb;

	if (strcmp(a, b) == 0)
		return true;
	/* a record of an older dmrepl names a local pool bare */
	la = local_part(a);
	lb = local_part(b);
	return (la && !strchr(b, ':') && strcmp(la, b) == 0) ||
	       (lb && !strchr(a, ':') && strcmp(lb, a) == 0);
}

const char *dmrepl_source_local_pool(const char *name)
{
	const char *l = local_part(name);

	return l ? l : strchr(name, ':') ? NULL : name;
}

const char *dmrepl_source_shown(const char *name)
{
	const char *l = dmrepl_source_local_pool(name);

	return l ? l : name;
}

/* ---- open, identify ---- */

int dmrepl_source_open(struct dmrepl_source *s, struct dmrepl_ctx *ctx,
		       const char *pool, uint64_t snap_id, const char *identity,
		       const volatile int *cancel)
{
	int r;

	memset(s, 0, sizeof(*s));
	s->ctx = ctx;
	s->pool_name = pool;
	s->snap_id = snap_id;
	s->cancel = cancel;
	s->spool = tmpfile();
	if (!s->spool) {
		r = -errno;
		err(ctx, "cannot create a temporary file: %s", strerror(-r));
		return r;
	}
	if (identity) {
		/* (a device's path may be longer: cut, as the stream's field) */
		snprintf(s->identity, sizeof(s->identity), "%s", identity);
	} else if (pool) {
		r = dmrepl_source_name(pool, s->identity, sizeof(s->identity));
		if (r < 0)
			return r;
	}
	return pool ? dmrepl_pool_open(ctx, pool, &s->pool) : 0;
}

int dmrepl_source_identify(struct dmrepl_source *s, struct dmrepl_metadata *md)
{
	struct dmrepl_pool_info pi;
	int r;

	r = dmrepl_thin_ident_read(md, s->snap_id, &s->snap);
	if (r == -ENOENT)
		err(s->ctx, "%s: no thin %" PRIu64 " (the snapshot to replicate)",
		    s->pool_name, s->snap_id);
	if (r == 0)
		r = dmrepl_metadata_get_pool_info(md, &pi);
	if (r == 0)
		s->data_block_size = pi.data_block_size_sectors * 512;
	s->identified = r == 0;
	return r;
}

void dmrepl_source_name_lv(struct dmrepl_source *s, const char *vg_lv)
{
	const char *vg_pool = s->pool ? dmrepl_pool_get_lvm_name(s->pool) : NULL;

	if (vg_lv)
		snprintf(s->lv, sizeof(s->lv), "%s", vg_lv);
	else if (!vg_pool || dmrepl_lvm_name_of_thin(s->ctx, vg_pool, s->snap_id,
						      s->lv, sizeof(s->lv)) < 0)
		s->lv[0] = '\0';
}

/* ---- the extents ---- */

int dmrepl_source_spool_extent(struct dmrepl_source *s,
			       const struct dmrepl_extent *e)
{
	if (fwrite(e, sizeof(*e), 1, s->spool) != 1) {
		err(s->ctx, "cannot write the extent list to a temporary file: %s",
		    strerror(errno));
		return -errno ? -errno : -EIO;
	}
	s->nr_extents++;
	if (e->op == DMREPL_EXTENT_COPY)
		s->total_bytes += e->length_bytes;
	if (e->offset_bytes + e->length_bytes > s->extent_end)
		s->extent_end = e->offset_bytes + e->length_bytes;
	return 0;
}

int dmrepl_source_spool(struct dmrepl_source *s, struct dmrepl_metadata *md,
			uint64_t base_id)
{
	struct dmrepl_extent_iter *it = NULL;
	struct dmrepl_extent e;
	int r;

	if (base_id != DMREPL_THIN_ID_ANY)
		r = dmrepl_extent_iter_delta(md, base_id, s->snap_id, &it);
	else
		r = dmrepl_extent_iter_mapped(md, s->snap_id, &it);
	while (r == 0) {
		if (s->cancel && *s->cancel) {
			r = -ECANCELED;
			break;
		}
		r = dmrepl_extent_iter_next(it, &e);
		if (r == 0)
			r = dmrepl_source_spool_extent(s, &e);
	}
	dmrepl_extent_iter_free(it);
	return r == 1 ? dmrepl_source_spool_done(s) : r;
}

int dmrepl_source_spool_done(struct dmrepl_source *s)
{
	if (fflush(s->spool) != 0)
		return -EIO;
	rewind(s->spool);
	return 0;
}

/* ---- the size, the device ---- */

int dmrepl_source_resolve(struct dmrepl_source *s, uint64_t size_bytes,
			  uint64_t fallback)
{
	struct dmrepl_thin_active *active = NULL;
	uint64_t size = size_bytes;
	int r;

	/* one listing of its active devices: the size and a device to borrow */
	r = dmrepl_thin_active_find(s->pool, s->snap_id, &active);
	if (r < 0)
		return r;
	if (!size)
		size = dmrepl_thin_active_get_size(active);
	if (!size && s->identified &&
	    dmrepl_snap_size_lookup(s->ctx, s->state_dir, s->pool_name, s->snap_id,
				    s->snap.creation_time, &size) < 0)
		size = 0;
	if (!size)
		size = fallback;
	if (!size) {
		err(s->ctx, "%s: the size of thin %" PRIu64 " is not known: no "
			    "active device maps it; give it (--size)",
		    s->pool_name, s->snap_id);
		r = -EINVAL;
	} else if (size % 512 || s->extent_end > size) {
		err(s->ctx, "%s: thin %" PRIu64 " maps data up to byte %" PRIu64
			    ", beyond its size %" PRIu64 "; give the right size "
			    "(--size)",
		    s->pool_name, s->snap_id, s->extent_end, size);
		r = -EINVAL;
	}
	if (r == 0) {
		s->size_bytes = size;
		r = s->own_device ? -ENOENT : dmrepl_thin_active_borrow(active, size, &s->dev);
		r = r == -ENOENT ? 0 : r;
	}
	dmrepl_thin_active_free(active);
	return r;
}

int dmrepl_source_activate(struct dmrepl_source *s, const char **ret_path)
{
	char name[128];
	int r;

	if (!s->dev) {
		snprintf(name, sizeof(name), "dmrepl-%d-src-%" PRIu64,
			 (int)getpid(), s->snap_id);
		r = dmrepl_thin_activate(s->pool, s->snap_id, s->size_bytes, true,
					 name, &s->dev);
		if (r < 0)
			return r;
	}
	*ret_path = dmrepl_thin_dev_get_path(s->dev);
	return 0;
}

int dmrepl_source_deactivate(struct dmrepl_source *s)
{
	int r = dmrepl_thin_deactivate(s->dev);

	s->dev = NULL;
	return r;
}

void dmrepl_source_close(struct dmrepl_source *s)
{
	dmrepl_source_deactivate(s);
	if (s->spool)
		fclose(s->spool);
	s->spool = NULL;
	s->pool = dmrepl_pool_unref(s->pool);
}
