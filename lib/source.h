/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The source side of a replication (lib/source.c), the counterpart of
 * lib/dest.c, shared by the local job (replicate.c) and the sender
 * (send.c): which snapshot it is (its identity, its name in LVM, the
 * source's identity in records and streams), how big it is, what to
 * ship (its extents, spooled), and the device to read it through.
 *
 *   open       the pool; the source's identity, HOST:POOL
 *   identify   through the pool's held metadata: the snapshot's identity
 *              and the pool's block size
 *   spool      the delta from a base, or every mapped extent, to a
 *              temporary file (the metadata snapshot can then go)
 *   resolve    the size: given, else an active device's (borrowed to read
 *              through), else a fallback (a base replica's)
 *   activate   the borrowed device, or a read-only dmrepl-PID-src-ID
 */
#ifndef DMREPL_SOURCE_H
#define DMREPL_SOURCE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base.h"
#include "metadata.h"
#include "dm.h"

struct dmrepl_source {
	struct dmrepl_ctx *ctx;
	const char *pool_name;		/* the pool's dm name */
	struct dmrepl_pool *pool;
	uint64_t snap_id;
	struct dmrepl_thin_ident snap;
	bool identified;		/* snap was read */
	char identity[128];		/* "HOST:POOL", or as given */
	char lv[128];			/* "VG/LV" in an LVM pool, or "" */
	uint32_t data_block_size;	/* bytes */
	uint64_t size_bytes;
	FILE *spool;			/* struct dmrepl_extent, binary */
	uint64_t nr_extents, total_bytes, extent_end;
	struct dmrepl_thin_dev *dev;
	const volatile int *cancel;
	const char *state_dir;		/* recorded sizes (NULL: the default) */
	bool own_device;		/* never borrow an active device */
};

/*
 * Open @pool (NULL: a file or device, for send --device) for thin
 * @snap_id. @identity NULL: HOST:POOL. Close with dmrepl_source_close()
 * whatever it returns.
 */
int dmrepl_source_open(struct dmrepl_source *s, struct dmrepl_ctx *ctx,
		       const char *pool, uint64_t snap_id, const char *identity,
		       const volatile int *cancel);
/* Through @md (held): the snapshot's identity, the pool's block size. */
int dmrepl_source_identify(struct dmrepl_source *s, struct dmrepl_metadata *md);
/* The delta from @base_id (DMREPL_THIN_ID_ANY: every mapped extent). */
int dmrepl_source_spool(struct dmrepl_source *s, struct dmrepl_metadata *md,
			uint64_t base_id);
/* One extent into the spool (send --device). */
int dmrepl_source_spool_extent(struct dmrepl_source *s,
			       const struct dmrepl_extent *e);
/* The spool, written: flushed and rewound for reading. */
int dmrepl_source_spool_done(struct dmrepl_source *s);
/*
 * The snapshot's size: @size_bytes when given, else an active device's
 * (kept to read through when it maps at least that much), else the size
 * `dmrepl snapshot` recorded (lib/sizes.c), else @fallback (0: none, an
 * error that asks for --size). Checked against the extents.
 */
int dmrepl_source_resolve(struct dmrepl_source *s, uint64_t size_bytes,
			  uint64_t fallback);
/* The snapshot's "VG/LV": @vg_lv when given, else asked of LVM (best effort). */
void dmrepl_source_name_lv(struct dmrepl_source *s, const char *vg_lv);
/* The device to read: the borrowed one, else a read-only one of its own. */
int dmrepl_source_activate(struct dmrepl_source *s, const char **ret_path);
int dmrepl_source_deactivate(struct dmrepl_source *s);
void dmrepl_source_close(struct dmrepl_source *s);

#endif
