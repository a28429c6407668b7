/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The destination side of a replication (lib/dest.c). */
#ifndef DMREPL_DEST_H
#define DMREPL_DEST_H

#include <limits.h>
#include <stdbool.h>

#include "base.h"
#include "replication.h"

struct dmrepl_dest {
	struct dmrepl_ctx *ctx;
	const char *name;			/* the pool's dm name */
	struct dmrepl_pool *pool;
	char dir[PATH_MAX];			/* its lineage folder */
	int lock_fd;
	/*
	 * The replica being made. The caller fills src_pool, src and
	 * size_bytes before dmrepl_dest_begin(); begin fills the rest.
	 */
	struct dmrepl_lineage_record rec;
	struct dmrepl_thin_dev *dev;
	bool staged;				/* staging record written */
	bool created;				/* the new thin exists */
	bool anchored;				/* and its anchor */
};

/*
 * Open @pool, create and lock its lineage folder under @state_dir, and
 * delete what a killed replication left (a resumable receive's staging
 * stays). @pool must outlive @d. Return: 0 or -errno (logged); call
 * dmrepl_dest_close() either way.
 */
int dmrepl_dest_open(struct dmrepl_dest *d, struct dmrepl_ctx *ctx,
		     const char *pool, const char *state_dir);
/*
 * Open @pool and find its lineage folder, for reading only: nothing is
 * created, locked or cleaned (a dry run). dmrepl_dest_close() after.
 */
int dmrepl_dest_open_readonly(struct dmrepl_dest *d, struct dmrepl_ctx *ctx,
			      const char *pool, const char *state_dir);
/* Deactivate, unlock, release (not undo). */
void dmrepl_dest_close(struct dmrepl_dest *d);

/* The newest replica of thin @src_id of @src_pool. */
bool dmrepl_dest_find_replica(struct dmrepl_dest *d, const char *src_pool,
			      uint64_t src_id, struct dmrepl_lineage_record *ret);
/*
 * A replica record names thin @dst_id (it was committed); its record in
 * *@ret when @ret is not NULL.
 */
bool dmrepl_dest_replica_of(struct dmrepl_dest *d, uint64_t dst_id,
			    struct dmrepl_lineage_record *ret);
/* 1: @rec's replica is in the pool as received; 0: deleted or written to. */
int dmrepl_dest_replica_intact(struct dmrepl_dest *d,
			       const struct dmrepl_lineage_record *rec);
/* -ENOENT or -ESTALE (logged) unless @base's replica is as received. */
int dmrepl_dest_check_replica(struct dmrepl_dest *d, struct dmrepl_metadata *md,
			      const struct dmrepl_lineage_record *base);

/*
 * Check @base's replica (NULL: a full copy), pick an id, write the
 * staging record and create the device: a new thin, or a snapshot of
 * the base's replica.
 */
int dmrepl_dest_begin(struct dmrepl_dest *d,
		      const struct dmrepl_lineage_record *base);
/* Take over a resumable staging device. */
int dmrepl_dest_adopt(struct dmrepl_dest *d,
		      const struct dmrepl_lineage_record *staging);
/* Mark the staging resumable: everything below @offset is on disk. */
int dmrepl_dest_checkpoint(struct dmrepl_dest *d, uint64_t stream_hash,
			   uint64_t offset);
/* Delete a staging device and its record (receive --abort, stale ones). */
int dmrepl_dest_drop_staging(struct dmrepl_dest *d,
			     const struct dmrepl_lineage_record *rec);

/* Map the new device read-write; *@ret_path is valid until deactivate. */
int dmrepl_dest_activate(struct dmrepl_dest *d, const char **ret_path);
int dmrepl_dest_deactivate(struct dmrepl_dest *d);

/* Deactivate, anchor, identify, record the replica, drop the staging. */
int dmrepl_dest_commit(struct dmrepl_dest *d);
/*
 * After a failure: delete the new device and its staging record, unless
 * @keep and it is resumable (a stream that ended early).
 */
void dmrepl_dest_undo(struct dmrepl_dest *d, bool keep);

#endif
