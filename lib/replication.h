/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdmrepl's replication layer, internal: what to ship (mapped extents),
 * lineage records, the replicas a destination holds.
 */
#ifndef DMREPL_REPLICATION_H
#define DMREPL_REPLICATION_H

#include <stdio.h>
#include <sys/types.h>

#include "base.h"

/*
 * ---- The mapped extents of one device (mapped.c): a full copy ----
 * An iterator like dmrepl_delta_next_extent(): COPY extents of the
 * maximal runs of mapped blocks, in offset order.
 * Return of next: 0 and *@ret filled; 1 at the end; -errno (final).
 */
struct dmrepl_mapped;
int dmrepl_mapped_new(struct dmrepl_metadata *md, uint64_t thin_id,
		      struct dmrepl_mapped **ret);
int dmrepl_mapped_next_extent(struct dmrepl_mapped *m,
			      struct dmrepl_extent *ret);
struct dmrepl_mapped *dmrepl_mapped_unref(struct dmrepl_mapped *m);

/*
 * What a replication ships (mapped.c): the extents of the delta from
 * @from to @to, or every mapped extent of @thin_id. next returns as
 * dmrepl_delta_next_extent() does: 0, 1 at the end, or -errno.
 */
struct dmrepl_extent_iter;
int dmrepl_extent_iter_delta(struct dmrepl_metadata *md, uint64_t from,
			     uint64_t to, struct dmrepl_extent_iter **ret);
int dmrepl_extent_iter_mapped(struct dmrepl_metadata *md, uint64_t thin_id,
			      struct dmrepl_extent_iter **ret);
int dmrepl_extent_iter_next(struct dmrepl_extent_iter *it,
			    struct dmrepl_extent *ret);
void dmrepl_extent_iter_free(struct dmrepl_extent_iter *it);

/*
 * ---- Lineage records in the state directory (lineage.c) ----
 */

/* What identifies one thin device's contents over time. */
struct dmrepl_thin_ident {
	uint64_t thin_id;
	uint32_t creation_time;	/* the pool's snapshot counter at creation */
	uint64_t root;		/* its mapping tree's root block */
	uint64_t mapped_blocks;
};

/* Read @thin_id's identity. Return: 0, -ENOENT, or a read error. */
int dmrepl_thin_ident_read(struct dmrepl_metadata *md, uint64_t thin_id,
			   struct dmrepl_thin_ident *ret);
bool dmrepl_thin_ident_equal(const struct dmrepl_thin_ident *a,
			     const struct dmrepl_thin_ident *b);
/* One above the highest thin id in @md (0 when none). -ENOSPC when none is left. */
int dmrepl_metadata_next_free_id(struct dmrepl_metadata *md, uint64_t *ret_id);

struct dmrepl_lineage_record {
	char src_pool[128];		/* dm names are at most 127 bytes */
	char src_name[128];		/* "VG/LV" of an LVM source, or "" */
	struct dmrepl_thin_ident src;	/* the source snapshot */
	struct dmrepl_thin_ident dst;	/* its replica (staging: being written) */
	uint64_t size_bytes;
	uint64_t base_dst_id;		/* DMREPL_THIN_ID_ANY for a full copy */
	/*
	 * A hidden snapshot of the replica, taken when it was received. It
	 * shares every block, so any write to the replica must break the
	 * sharing and so changes the replica's mapping tree: without it an
	 * overwrite of an unshared block changes no metadata at all.
	 */
	uint64_t anchor_id;
	uint64_t time;			/* seconds since the epoch */
	pid_t pid;			/* staging: the replicating process */
	/*
	 * Staging of a stream being received (receive.c): it survives its
	 * process, holding every change below @checkpoint, flushed, of the
	 * stream whose identity hash is @stream_hash.
	 */
	bool resumable;
	uint64_t stream_hash;
	uint64_t checkpoint;
	/*
	 * An LVM destination (dest-lvm.c): the replica's (or staging's) LV
	 * and its anchor's. Not part of the record's text: the LVs carry
	 * the record, as a tag.
	 */
	char dst_lv[128];
	char anchor_lv[128];
};

/*
 * A source's identity in lineage records and streams is "HOST:POOL"
 * (dmrepl_source_name(), lib/send.c), whichever way the replica came.
 * dmrepl_source_matches(): @a and @b name the same source (records of
 * older versions named a local pool bare). dmrepl_source_local_pool():
 * the pool of this host that @name is, or NULL (another host's).
 * dmrepl_source_shown(): @name for messages: a local pool bare, another
 * host's as HOST:POOL.
 */
bool dmrepl_source_matches(const char *a, const char *b);
const char *dmrepl_source_local_pool(const char *name);
const char *dmrepl_source_shown(const char *name);

/*
 * lib/sizes.c: the size a snapshot had when `dmrepl snapshot` took it,
 * under STATE/sizes (@state_dir NULL: the default), keyed by pool, id and
 * the snapshot's creation time. lookup: 0, or -ENOENT (none, or of
 * another device that had the id). parse: the record's text (pure).
 */
int dmrepl_snap_size_record(struct dmrepl_ctx *ctx, const char *state_dir,
			    const char *pool, uint64_t thin_id,
			    uint32_t creation_time, uint64_t size_bytes);
int dmrepl_snap_size_lookup(struct dmrepl_ctx *ctx, const char *state_dir,
			    const char *pool, uint64_t thin_id,
			    uint32_t creation_time, uint64_t *ret_size);
int dmrepl_snap_size_parse(const char *text, uint64_t *ret_size,
			   uint32_t *ret_ctime);

/* $DMREPL_STATE_DIR, else /var/lib/dmrepl. */
const char *dmrepl_state_dir_default(void);
/* mkdir -p @path (mode 0700 for what it makes): 0 or -errno. */
int dmrepl_mkdirs(const char *path);
/* Return: the length, or -ENAMETOOLONG. */
int dmrepl_lineage_format(const struct dmrepl_lineage_record *rec, char *buf,
			  size_t size);
/* Return: 0, or -EINVAL for anything malformed or missing. */
int dmrepl_lineage_parse(const char *text, size_t len,
			 struct dmrepl_lineage_record *ret);
/*
 * A record as the text of one LVM tag (dest-lvm.c): @prefix, then
 * "key=value" pairs joined by '&', each value escaped for a tag
 * (dmrepl_lvm_tag_escape()). dmrepl_lineage_tag_parse() reads the text
 * after the prefix. Return: the length, -ENAMETOOLONG; 0, -EINVAL.
 */
int dmrepl_lineage_tag_format(const char *prefix,
			      const struct dmrepl_lineage_record *rec,
			      char *buf, size_t size);
int dmrepl_lineage_tag_parse(const char *text, size_t len,
			     struct dmrepl_lineage_record *ret);
/* The destination pool's folder: STATE/NAME (NAME escaped as lock files). */
int dmrepl_lineage_dir(const char *state_dir, const char *dst_pool, char *buf,
		       size_t size);
int dmrepl_lineage_dir_create(struct dmrepl_ctx *ctx, const char *state_dir,
			      const char *dir);
/* @kind: "replica" or "staging". Writes atomically (rename). */
int dmrepl_lineage_write(struct dmrepl_ctx *ctx, const char *dir,
			 const char *kind,
			 const struct dmrepl_lineage_record *rec);
int dmrepl_lineage_remove(struct dmrepl_ctx *ctx, const char *dir,
			  const char *kind, uint64_t dst_id);
/* Malformed records are skipped with a warning. */
int dmrepl_lineage_foreach(struct dmrepl_ctx *ctx, const char *dir,
			   const char *kind,
			   int (*fn)(const struct dmrepl_lineage_record *rec,
				     void *userdata),
			   void *userdata);
/* An exclusive flock on DIR/lock, without waiting: -EBUSY (logged). */
int dmrepl_lineage_lock(struct dmrepl_ctx *ctx, const char *dir, int *ret_fd);

/*
 * lib/replicas.c, for verify. dmrepl_replica_lookup(): the replica of
 * thin @src_id of @src_pool that @dst_pool holds (its newest lineage
 * record under @state_dir, NULL for the default) and its state, ok or
 * modified (written to since it was received: not an error, a
 * comparison shows how). Return: 0; -ENOENT when there is no record or
 * the replica was deleted (logged).
 * dmrepl_replica_check_source(): check, through the source pool's
 * metadata snapshot (released before it returns), that thin @rec->src is
 * still the snapshot that was replicated; with @spool, write its mapped
 * extents there (struct dmrepl_extent, binary) and count them. Return:
 * 0; -ESTALE when it was deleted, its id reused or written to (logged).
 */
int dmrepl_replica_lookup(struct dmrepl_ctx *ctx, const char *state_dir,
			  const char *src_pool, uint64_t src_id,
			  const char *dst_pool,
			  struct dmrepl_lineage_record *ret_rec,
			  enum dmrepl_replica_state *ret_state);
int dmrepl_replica_check_source(struct dmrepl_ctx *ctx, const char *dst_pool,
				const struct dmrepl_lineage_record *rec,
				FILE *spool, uint64_t *ret_nr_extents,
				uint64_t *ret_total_bytes);

#endif /* DMREPL_REPLICATION_H */
