/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The destination side of a replication (lib/dest.c), and the two kinds
 * of destination pool behind it: raw device-mapper (dest.c: dmrepl picks
 * thin ids, records live in files under the state directory) and LVM
 * (dest-lvm.c: LVM creates and deletes every thin device, and the
 * records are tags on the LVs).
 */
#ifndef DMREPL_DEST_H
#define DMREPL_DEST_H

#include <limits.h>
#include <stdbool.h>

#include "base.h"
#include "lvm.h"
#include "replication.h"

struct dmrepl_dest;
typedef int (*dmrepl_record_fn)(const struct dmrepl_lineage_record *rec,
				void *userdata);

/*
 * What differs between kinds of destination. A "record" is a replica's
 * or a staging's lineage record (replication.h).
 */
struct dest_kind {
	const char *name;
	/* after the lock, when @rw: clean what a killed run left */
	int (*open)(struct dmrepl_dest *d, bool rw);
	void (*close)(struct dmrepl_dest *d);
	/* every record of @what ("replica", "staging") */
	int (*foreach)(struct dmrepl_dest *d, const char *what,
		       dmrepl_record_fn fn, void *userdata);
	/* before create, with the pool's metadata at hand (may be NULL) */
	int (*prepare)(struct dmrepl_dest *d, struct dmrepl_metadata *md);
	/* the staging record and the new device: empty, or of @base's replica */
	int (*create)(struct dmrepl_dest *d,
		      const struct dmrepl_lineage_record *base);
	int (*update_staging)(struct dmrepl_dest *d);
	int (*anchor)(struct dmrepl_dest *d);
	/* the replica record replaces the staging record */
	int (*record_replica)(struct dmrepl_dest *d);
	/* delete @rec's anchor, or its device (staging only) */
	int (*delete)(struct dmrepl_dest *d,
		      const struct dmrepl_lineage_record *rec, bool anchor);
	/* forget a staging record whose device is gone or a replica */
	int (*forget_staging)(struct dmrepl_dest *d,
			      const struct dmrepl_lineage_record *rec);
};

extern const struct dest_kind dmrepl_dest_raw;
extern const struct dest_kind dmrepl_dest_lvm;

/* The source a replica is made of: given to dmrepl_dest_begin(). */
struct dmrepl_dest_source {
	const char *pool;			/* "HOST:POOL" as in the stream */
	const char *name;			/* "VG/LV" of an LVM snapshot, or NULL */
	const struct dmrepl_thin_ident *ident;
	uint64_t size_bytes;
};

struct dmrepl_dest {
	struct dmrepl_ctx *ctx;
	const struct dest_kind *kind;
	const char *name;			/* the pool's dm name (pool_name) */
	char pool_name[128];
	struct dmrepl_pool *pool;
	char dir[PATH_MAX];			/* its lineage folder (raw: the
						   records; both: the lock) */
	int lock_fd;
	/* LVM: the pool, and its VG as lvs last listed it */
	char vg[128], pool_lv[128];
	struct dmrepl_lvm_lv *lvs;
	size_t nr_lvs;
	bool lvs_stale;				/* changed since: list again */
	char tag[1024];				/* the staging's tag, as set */
	/*
	 * An LVM tag the replica gets in its commit as well (a sync job's,
	 * which finds its replicas by it), or NULL; set after open. Only an
	 * LVM pool has tags: dmrepl_dest_begin() refuses it on another.
	 */
	const char *replica_tag;
	char final_lv[128];			/* the replica's name to be */
	uint64_t next_id;			/* raw: the id prepare picked */
	/* The replica being made: dmrepl_dest_begin() fills it. */
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
 * Open @pool and find its records, for reading only: nothing is
 * created, locked or cleaned (a dry run, a listing). Close after.
 */
int dmrepl_dest_open_readonly(struct dmrepl_dest *d, struct dmrepl_ctx *ctx,
			      const char *pool, const char *state_dir);
/* Deactivate, unlock, release (not undo). */
void dmrepl_dest_close(struct dmrepl_dest *d);
/* "VG/POOL" of an LVM destination, else NULL. */
const char *dmrepl_dest_lvm_name(struct dmrepl_dest *d);

/* Every record of @what: "replica" or "staging". */
int dmrepl_dest_foreach(struct dmrepl_dest *d, const char *what,
			dmrepl_record_fn fn, void *userdata);
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
 * Check @base's replica (NULL: a full copy), write the staging record and
 * create the device for a replica of @src: a new thin, or a snapshot of
 * the base's replica.
 */
int dmrepl_dest_begin(struct dmrepl_dest *d, const struct dmrepl_dest_source *src,
		      const struct dmrepl_lineage_record *base);
/* Take over a resumable staging device. */
int dmrepl_dest_adopt(struct dmrepl_dest *d,
		      const struct dmrepl_lineage_record *staging);
/* Mark the staging resumable: everything below @offset is on disk. */
int dmrepl_dest_checkpoint(struct dmrepl_dest *d, uint64_t stream_hash,
			   uint64_t offset);
/* Delete a staging device, its anchor and its record (abort, stale ones). */
int dmrepl_dest_drop_staging(struct dmrepl_dest *d,
			     const struct dmrepl_lineage_record *rec);
/* Delete a staging's anchor (a receive killed in its commit), if any. */
int dmrepl_dest_drop_anchor(struct dmrepl_dest *d,
			    const struct dmrepl_lineage_record *rec);
/* Forget the staging record of a device that is a replica now. */
int dmrepl_dest_forget_staging(struct dmrepl_dest *d,
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
