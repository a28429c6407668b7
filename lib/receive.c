/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Receive: apply a stream to a pool, all or nothing.
 *
 *   check     the header: a stream for a snapshot the pool already
 *             holds, or whose base the pool holds no intact replica of,
 *             is refused before anything is written
 *   stage     a new device (a snapshot of the base's replica, or a new
 *             thin), recorded as resumable from byte 0; a resumed
 *             stream takes over the staging device its token names
 *   apply     DATA through the copy engine, DISCARD and ZERO as
 *             discards; at each CHECKPOINT wait for the writes, flush
 *             the device and record the offset
 *   commit    after END and every checksum verified: the replica
 *             record (dest.c)
 *
 * A stream that ends early, is damaged or is interrupted keeps its
 * staging device, which holds the stream's changes below the last
 * checkpoint, so a sender can resume it; the base and every replica
 * are untouched either way. A failure of the destination (no space, an
 * I/O error) deletes it.
 */
#include "dm.h"
#include "replication.h"
#include "io.h"
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transfer.h"
#include "dest.h"

struct receiver {
	struct dmrepl_ctx *ctx;
	const struct dmrepl_receive_opts *o;
	struct dmrepl_stream_reader *rd;
	struct dmrepl_stream_header h;
	uint64_t hash;
	struct dmrepl_dest d;
	bool dest_open;
	struct dmrepl_copy *copy;
	bool dst_failed;		/* the destination, not the stream */
	uint64_t done;
	struct dmrepl_receive_result *res;
	/* a dry run: the stream before, which the next of a chain builds on */
	struct dmrepl_thin_ident prev;
	char prev_pool[128];
	bool have_prev;
};

static bool cancelled(const struct receiver *rv)
{
	return rv->o->cancel && *rv->o->cancel;
}

static void ident_str(const struct dmrepl_thin_ident *id, char *buf, size_t size)
{
	snprintf(buf, size,
		 "thin %" PRIu64 ", creation time %" PRIu32 ", root %" PRIu64
		 ", %" PRIu64 " mapped blocks",
		 id->thin_id, id->creation_time, id->root, id->mapped_blocks);
}

/* ---- checks before any write ---- */

static int check_new(struct receiver *rv)
{
	struct dmrepl_lineage_record rec;
	const struct dmrepl_stream_header *h = &rv->h;
	int r;

	if (!dmrepl_dest_find_replica(&rv->d, h->src_pool, h->snap.thin_id, &rec) ||
	    !dmrepl_thin_ident_equal(&rec.src, &h->snap))
		return 0;
	/* A replica deleted (or written to) since is not held: receive anew. */
	r = dmrepl_dest_replica_intact(&rv->d, &rec);
	if (r <= 0)
		return r;
	err(rv->ctx,
	    "%s already holds thin %" PRIu64 " of %s, as thin %" PRIu64
	    ": the stream was received before (a replay?); nothing written",
	    rv->o->pool, h->snap.thin_id, dmrepl_source_shown(h->src_pool), rec.dst.thin_id);
	return -EEXIST;
}

/*
 * The base's replica must not be open: mounted, it is likely written to
 * while the stream builds on it.
 */
static int check_unused(struct receiver *rv,
			const struct dmrepl_lineage_record *base)
{
	char name[128] = "";
	int r;

	r = dmrepl_pool_thin_in_use(rv->d.pool, base->dst.thin_id, name,
				    sizeof(name));
	if (r <= 0)
		return r;
	err(rv->ctx,
	    "%s: thin %" PRIu64 ", the replica the stream builds on, is open "
	    "(mounted, or in use) as /dev/mapper/%s; close it first; nothing "
	    "written",
	    rv->o->pool, base->dst.thin_id, name);
	return -EBUSY;
}

static int find_base(struct receiver *rv, struct dmrepl_lineage_record *base)
{
	const struct dmrepl_stream_header *h = &rv->h;
	char want[128], have[128];

	ident_str(&h->base, want, sizeof(want));
	if (!dmrepl_dest_find_replica(&rv->d, h->src_pool, h->base.thin_id, base)) {
		err(rv->ctx,
		    "%s holds no replica of the stream's base (%s, of %s); "
		    "send that first, or send in full; nothing written",
		    rv->o->pool, want, dmrepl_source_shown(h->src_pool));
		return -ENOENT;
	}
	if (!dmrepl_thin_ident_equal(&base->src, &h->base)) {
		ident_str(&base->src, have, sizeof(have));
		err(rv->ctx,
		    "the stream's base (%s, of %s) is not what thin %" PRIu64
		    " of %s replicates (%s): the base diverged or its id was "
		    "reused; send in full; nothing written",
		    want, dmrepl_source_shown(h->src_pool), base->dst.thin_id, rv->o->pool, have);
		return -ESTALE;
	}
	return check_unused(rv, base);
}

/* ---- staging ---- */

struct find_staging {
	uint64_t hash;
	struct dmrepl_lineage_record rec;
	bool found;
};

static int match_staging(const struct dmrepl_lineage_record *rec, void *data)
{
	struct find_staging *f = data;

	if (rec->resumable && rec->stream_hash == f->hash) {
		f->rec = *rec;
		f->found = true;
	}
	return 0;
}

static bool find_staging(struct receiver *rv, struct dmrepl_lineage_record *ret)
{
	struct find_staging f = {.hash = rv->hash};

	dmrepl_dest_foreach(&rv->d, "staging", match_staging, &f);
	if (f.found)
		*ret = f.rec;
	return f.found;
}

/*
 * A receiver killed inside its commit: after the anchor snapshot (which
 * the commit takes again), or after the replica record (the staging
 * record is all that is left to drop; the device is a replica now).
 * Return: 0 to resume, -EEXIST when it was committed, or -errno.
 */
static int killed_in_commit(struct receiver *rv,
			    const struct dmrepl_lineage_record *st)
{
	if (dmrepl_dest_replica_of(&rv->d, st->dst.thin_id, NULL)) {
		dmrepl_dest_forget_staging(&rv->d, st);
		err(rv->ctx, "%s already holds thin %" PRIu64 " of %s, as thin %" PRIu64
			     ": its receive was killed as it finished; nothing written",
		    rv->o->pool, rv->h.snap.thin_id, dmrepl_source_shown(rv->h.src_pool), st->dst.thin_id);
		return -EEXIST;
	}
	return dmrepl_dest_drop_anchor(&rv->d, st);
}

/* The staging device a resumed stream continues, in *@st. */
static int find_resumable(struct receiver *rv, struct dmrepl_lineage_record *st)
{
	if (!find_staging(rv, st)) {
		err(rv->ctx,
		    "%s has no interrupted receive of this stream (thin %" PRIu64
		    " of %s) to resume; send it again without --resume",
		    rv->o->pool, rv->h.snap.thin_id, dmrepl_source_shown(rv->h.src_pool));
		return -ENOENT;
	}
	if (st->checkpoint != rv->h.resume_offset) {
		err(rv->ctx,
		    "the stream resumes at byte %" PRIu64 ", but thin %" PRIu64
		    " of %s holds the stream up to byte %" PRIu64 "; get a new "
		    "token (dmrepl receive --resume-token)",
		    rv->h.resume_offset, st->dst.thin_id, rv->o->pool, st->checkpoint);
		return -ESTALE;
	}
	return 0;
}

static int adopt(struct receiver *rv)
{
	struct dmrepl_lineage_record st;
	int r;

	r = find_resumable(rv, &st);
	if (r < 0)
		return r;
	r = killed_in_commit(rv, &st);
	if (r < 0)
		return r;
	rv->res->resumed = true;
	return dmrepl_dest_adopt(&rv->d, &st);
}

static int stage(struct receiver *rv)
{
	struct dmrepl_lineage_record base, old;
	bool incr = rv->h.required_flags & DMREPL_STREAM_FLAG_BASE;
	int r;

	if (rv->h.required_flags & DMREPL_STREAM_FLAG_RESUMED)
		return adopt(rv);
	r = check_new(rv);
	if (r == 0 && incr)
		r = find_base(rv, &base);
	if (r < 0)
		return r;
	if (find_staging(rv, &old)) {
		warn(rv->ctx, "%s: dropping thin %" PRIu64 ", an interrupted "
			      "receive of this stream, to start again",
		     rv->o->pool, old.dst.thin_id);
		r = dmrepl_dest_drop_staging(&rv->d, &old);
		if (r < 0)
			return r;
	}
	r = dmrepl_dest_begin(&rv->d,
			      &(struct dmrepl_dest_source){
				  .pool = rv->h.src_pool,
				  .name = rv->h.src_name[0] ? rv->h.src_name : NULL,
				  .ident = &rv->h.snap,
				  .size_bytes = rv->h.volume_size,
			      },
			      incr ? &base : NULL);
	if (r < 0)
		return r;
	/* Killed from here on, it resumes from the start. */
	return dmrepl_dest_checkpoint(&rv->d, rv->hash, 0);
}

/* ---- applying records ---- */

static int open_copy(struct receiver *rv, const char *path, bool zeroed)
{
	int r;

	r = dmrepl_copy_new_sink(rv->ctx, path, &rv->copy);
	if (r < 0)
		return r;
	r = dmrepl_copy_set_engine(rv->copy, rv->o->engine);
	if (r == 0 && rv->o->queue_depth)
		r = dmrepl_copy_set_queue_depth(rv->copy, rv->o->queue_depth);
	if (r == 0 && zeroed)
		r = dmrepl_copy_set_flags(rv->copy, DMREPL_COPY_DST_ZEROED);
	if (r == 0)
		r = dmrepl_copy_open(rv->copy);
	if (r == 0 && dmrepl_copy_get_dst_size(rv->copy) < rv->h.volume_size) {
		err(rv->ctx, "%s is smaller (%" PRIu64 " bytes) than the stream's "
			     "volume (%" PRIu64 " bytes)",
		    path, dmrepl_copy_get_dst_size(rv->copy), rv->h.volume_size);
		r = -ENOSPC;
	}
	return r;
}

static int checkpoint(struct receiver *rv, uint64_t offset)
{
	int r = dmrepl_copy_sync(rv->copy);

	if (r < 0) {
		rv->dst_failed = true;
		return r;
	}
	if (!rv->dest_open)
		return 0;
	r = dmrepl_dest_checkpoint(&rv->d, rv->hash, offset);
	rv->dst_failed = r < 0;
	return r;
}

static int apply(struct receiver *rv, const struct dmrepl_stream_record *rec)
{
	struct dmrepl_extent e = {DMREPL_EXTENT_DISCARD, rec->offset, rec->length};
	int r = 0;

	switch (rec->type) {
	case DMREPL_REC_DATA:
		r = dmrepl_copy_write(rv->copy, rec->offset, rec->data, rec->length);
		break;
	case DMREPL_REC_DISCARD:
	case DMREPL_REC_ZERO:
		r = dmrepl_copy_add(rv->copy, &e);
		if (rec->type == DMREPL_REC_ZERO)
			rv->res->zero_bytes += rec->length;
		else
			rv->res->discard_bytes += rec->length;
		break;
	case DMREPL_REC_CHECKPOINT:
		return checkpoint(rv, rec->offset);
	default:
		return 0;
	}
	rv->dst_failed = r < 0;
	rv->done += rec->length;
	if (rv->o->progress)
		rv->o->progress(rv->done, rv->h.volume_size, rv->o->progress_data);
	return r;
}

static int apply_all(struct receiver *rv)
{
	struct dmrepl_stream_record rec;
	int r;

	for (;;) {
		if (cancelled(rv))
			return -ECANCELED;
		r = dmrepl_stream_read_record(rv->rd, &rec);
		if (r < 0)
			return r;
		if (rec.type == DMREPL_REC_END)
			break;
		r = apply(rv, &rec);
		if (r < 0)
			return r;
	}
	r = dmrepl_copy_finish(rv->copy);	/* waits, flushes */
	rv->dst_failed = r < 0;
	return r;
}

/* ---- one stream ---- */

static int receive_device(struct receiver *rv)
{
	int fd, r;

	/* O_EXCL: refused while mounted or held open exclusively. */
	fd = open(rv->o->device, O_WRONLY | O_EXCL | O_CLOEXEC);
	if (fd < 0 && errno == EBUSY) {
		err(rv->ctx, "%s is in use (mounted, or open by another "
			     "program); refusing to write to it",
		    rv->o->device);
		return -EBUSY;
	}
	if (fd >= 0)
		close(fd);
	r = open_copy(rv, rv->o->device, false);
	return r ?: apply_all(rv);
}

static int receive_pool(struct receiver *rv)
{
	bool resumed = rv->h.required_flags & DMREPL_STREAM_FLAG_RESUMED;
	bool full = !(rv->h.required_flags & DMREPL_STREAM_FLAG_BASE);
	const char *path;
	int r;

	r = stage(rv);
	if (r < 0)
		return r;
	r = dmrepl_dest_activate(&rv->d, &path);
	if (r < 0) {
		rv->dst_failed = true;
		return r;
	}
	/* A new thin reads as zeroes, unless an earlier run wrote to it. */
	r = open_copy(rv, path, full && !resumed);
	if (r < 0) {
		rv->dst_failed = true;
		return r;
	}
	r = apply_all(rv);
	dmrepl_copy_unref(rv->copy);
	rv->copy = NULL;
	if (r < 0)
		return r;
	r = dmrepl_dest_commit(&rv->d);
	rv->dst_failed = r < 0;
	return r;
}

/* ---- a dry run: every check, no write ---- */

/* What the pool would do with the stream: the checks stage() makes. */
static int dry_check_pool(struct receiver *rv)
{
	const struct dmrepl_stream_header *h = &rv->h;
	struct dmrepl_lineage_record rec;
	int r;

	if (h->required_flags & DMREPL_STREAM_FLAG_RESUMED) {
		r = find_resumable(rv, &rec);
		if (r == 0) {
			rv->res->resumed = true;
			rv->res->dst_thin_id = rec.dst.thin_id;
		}
		return r;
	}
	r = check_new(rv);
	if (r < 0 || !(h->required_flags & DMREPL_STREAM_FLAG_BASE))
		return r;
	/* a chain's next link builds on the one before, not received here */
	if (rv->have_prev && strcmp(rv->prev_pool, h->src_pool) == 0 &&
	    dmrepl_thin_ident_equal(&rv->prev, &h->base))
		return 0;
	r = find_base(rv, &rec);
	if (r == 0)
		rv->res->base_dst_thin_id = rec.dst.thin_id;
	return r;
}

/* A device must hold the stream's volume. */
static int dry_check_device(struct receiver *rv)
{
	uint64_t size = 0;
	struct stat st;
	int fd, r = 0;

	fd = open(rv->o->device, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		r = -errno;
	else if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &size) < 0)
		r = -errno;
	else if (S_ISREG(st.st_mode))
		size = (uint64_t)st.st_size;
	if (fd >= 0)
		close(fd);
	if (r < 0) {
		err(rv->ctx, "cannot open %s: %s", rv->o->device, strerror(-r));
		return r;
	}
	if (size < rv->h.volume_size) {
		err(rv->ctx, "%s is smaller (%" PRIu64 " bytes) than the stream's "
			     "volume (%" PRIu64 " bytes)",
		    rv->o->device, size, rv->h.volume_size);
		return -ENOSPC;
	}
	return 0;
}

static int dry_run(struct receiver *rv)
{
	struct dmrepl_stream_record rec;
	int r = 0;

	rv->res->base_dst_thin_id = DMREPL_THIN_ID_ANY;
	rv->res->dst_thin_id = DMREPL_THIN_ID_ANY;
	rv->res->resumed = false;
	if (rv->o->pool)
		r = dry_check_pool(rv);
	else if (rv->o->device)
		r = dry_check_device(rv);
	while (r == 0) {
		if (cancelled(rv))
			return -ECANCELED;
		r = dmrepl_stream_read_record(rv->rd, &rec);
		if (r < 0 || rec.type == DMREPL_REC_END)
			break;
		if (rec.type == DMREPL_REC_ZERO)
			rv->res->zero_bytes += rec.length;
		else if (rec.type == DMREPL_REC_DISCARD)
			rv->res->discard_bytes += rec.length;
		if (rec.type != DMREPL_REC_CHECKPOINT)
			rv->done += rec.length;
		if (rv->o->progress)
			rv->o->progress(rv->done, rv->h.volume_size,
					rv->o->progress_data);
	}
	if (r == 0) {
		rv->prev = rv->h.snap;
		snprintf(rv->prev_pool, sizeof(rv->prev_pool), "%s", rv->h.src_pool);
		rv->have_prev = true;
	}
	return r;
}

static void report_kept(struct receiver *rv)
{
	struct dmrepl_resume_token t = {
	    .snap_id = rv->h.snap.thin_id,
	    .base_id = rv->h.required_flags & DMREPL_STREAM_FLAG_BASE
			   ? rv->h.base.thin_id
			   : DMREPL_THIN_ID_ANY,
	    .identity_hash = rv->hash,
	    .offset = rv->d.rec.checkpoint,
	};
	char token[DMREPL_RESUME_TOKEN_MAX];

	if (dmrepl_resume_token_format(&t, token, sizeof(token)) < 0)
		return;
	warn(rv->ctx,
	     "%s: nothing was committed; thin %" PRIu64 " keeps the stream up "
	     "to byte %" PRIu64 ": resume with dmrepl send --resume %s",
	     rv->o->pool, rv->d.rec.dst.thin_id, rv->d.rec.checkpoint, token);
}

static int receive_one(struct receiver *rv)
{
	int r;

	if (!dmrepl_source_allowed(rv->o->only_sources, rv->h.src_pool)) {
		err(rv->ctx, "%s: refused a stream from %s: this key may send only "
			     "the sources its configuration names (%s%s)",
		    rv->o->pool ? rv->o->pool : "the stream", rv->h.src_pool,
		    rv->o->only_sources[0], rv->o->only_sources[1] ? ", ..." : "");
		return -EPERM;
	}
	rv->hash = dmrepl_stream_identity_hash(&rv->h);
	rv->done = 0;
	rv->dst_failed = false;
	rv->res->full = !(rv->h.required_flags & DMREPL_STREAM_FLAG_BASE);
	if (rv->o->dry_run) {
		r = dry_run(rv);
		if (r == 0) {
			rv->res->streams++;
			rv->res->src_thin_id = rv->h.snap.thin_id;
			snprintf(rv->res->src_pool, sizeof(rv->res->src_pool), "%s",
				 rv->h.src_pool);
		}
		return r;
	}
	if (!rv->o->pool)
		r = receive_device(rv);
	else
		r = receive_pool(rv);
	dmrepl_copy_unref(rv->copy);
	rv->copy = NULL;
	if (r < 0 && rv->dest_open) {
		bool keep = !rv->dst_failed && rv->d.rec.resumable;

		dmrepl_dest_undo(&rv->d, keep);
		if (keep && rv->d.created)
			report_kept(rv);
	}
	if (r == 0) {
		rv->res->streams++;
		rv->res->dst_thin_id = rv->d.rec.dst.thin_id;
		rv->res->base_dst_thin_id = rv->d.rec.base_dst_id;
		rv->res->src_thin_id = rv->h.snap.thin_id;
		snprintf(rv->res->src_pool, sizeof(rv->res->src_pool), "%s",
			 rv->h.src_pool);
		rv->res->dst_lv[0] = '\0';
		if (rv->d.rec.dst_lv[0])
			snprintf(rv->res->dst_lv, sizeof(rv->res->dst_lv), "%s/%s",
				 rv->d.vg, rv->d.rec.dst_lv);
		if (rv->o->pool)
			info(rv->ctx, "%s: thin %" PRIu64 " is now the replica of "
				      "thin %" PRIu64 " of %s",
			     rv->o->pool, rv->d.rec.dst.thin_id, rv->h.snap.thin_id,
			     rv->h.src_pool);
	}
	return r;
}

static int next_stream(struct receiver *rv, int fd)
{
	int r;

	dmrepl_stream_reader_free(rv->rd);
	rv->rd = NULL;
	r = dmrepl_stream_reader_new(rv->ctx, fd, "the stream", &rv->rd);
	if (r < 0)
		return r;
	dmrepl_stream_reader_set_cancel(rv->rd, rv->o->cancel);
	if (rv->o->allow_empty && rv->res->streams == 0)
		dmrepl_stream_reader_set_quiet_empty(rv->rd);
	return dmrepl_stream_read_header(rv->rd, &rv->h);
}

/* Not one byte came: an empty input, not a damaged stream. */
static bool sent_nothing(struct receiver *rv)
{
	struct dmrepl_stream_stats st;

	dmrepl_stream_reader_get_stats(rv->rd, &st);
	return rv->res->streams == 0 && st.wire_bytes == 0;
}

int dmrepl_receive(struct dmrepl_ctx *ctx, const struct dmrepl_receive_opts *o,
		   int fd, struct dmrepl_receive_result *ret)
{
	struct dmrepl_receive_result res = {0};
	struct receiver rv = {.ctx = ctx, .o = o, .res = &res};
	struct dmrepl_stream_stats st;
	int r;

	if (!ctx || !o || (o->pool && o->device) || fd < 0 ||
	    (!o->pool && !o->device && !o->dry_run))
		return -EINVAL;
	rv.d.lock_fd = -1;
	dmrepl_pipe_grow(fd);
	if (o->pool && o->dry_run) {
		/* the records, read as they are: nothing cleaned or locked */
		r = dmrepl_dest_open_readonly(&rv.d, ctx, o->pool,
					      o->state_dir ? o->state_dir
							   : dmrepl_state_dir_default());
		rv.dest_open = true;
		if (r == 0 && !rv.d.pool)	/* it names what is wrong */
			r = dmrepl_pool_open(ctx, o->pool, &rv.d.pool);
		if (r < 0)
			goto out;
	} else if (o->pool) {
		r = dmrepl_dest_open(&rv.d, ctx, o->pool,
				     o->state_dir ? o->state_dir
						  : dmrepl_state_dir_default());
		rv.dest_open = true;
		rv.d.replica_tag = o->replica_tag;
		if (r < 0)
			goto out;
	}
	do {
		r = next_stream(&rv, fd);
		if (r == -ENODATA && o->allow_empty && sent_nothing(&rv)) {
			r = 0;	/* the sender had nothing to send */
			goto out;
		}
		if (r == 0)
			r = receive_one(&rv);
		if (rv.rd) {
			dmrepl_stream_reader_get_stats(rv.rd, &st);
			res.stats.records += st.records;
			res.stats.data_bytes += st.data_bytes;
			res.stats.wire_bytes += st.wire_bytes;
		}
		if (r == 0 && o->pool)	/* the next one starts afresh */
			memset(&rv.d.rec, 0, sizeof(rv.d.rec));
	} while (r == 0 && (rv.h.optional_flags & DMREPL_STREAM_OPT_MORE));
out:
	dmrepl_stream_reader_free(rv.rd);
	if (rv.dest_open)
		dmrepl_dest_close(&rv.d);
	if (ret)
		*ret = res;
	return r;
}

/* ---- resumable receives: tokens, abort ---- */

struct each_resumable {
	struct dmrepl_dest *d;
	dmrepl_resumable_fn fn;
	void *userdata;
	unsigned int n;
	bool drop;
	bool readonly;		/* clean nothing first (dry runs) */
};

static int visit(const struct dmrepl_lineage_record *rec, void *data)
{
	struct each_resumable *e = data;
	struct dmrepl_resume_token t = {
	    .snap_id = rec->src.thin_id,
	    .base_id = DMREPL_THIN_ID_ANY,
	    .identity_hash = rec->stream_hash,
	    .offset = rec->checkpoint,
	};
	struct dmrepl_lineage_record base;
	char token[DMREPL_RESUME_TOKEN_MAX];
	int r;

	if (!rec->resumable)
		return 0;
	if (dmrepl_dest_replica_of(e->d, rec->dst.thin_id, NULL)) {
		/* Killed as it finished: its device is a replica, keep it. */
		if (e->drop)
			dmrepl_dest_forget_staging(e->d, rec);
		return 0;
	}
	e->n++;
	if (e->drop) {
		r = dmrepl_dest_drop_staging(e->d, rec);
		if (r == 0)
			notice(e->d->ctx, "%s: dropped thin %" PRIu64 ", an "
					  "interrupted receive of thin %" PRIu64
					  " of %s",
			       e->d->name, rec->dst.thin_id, rec->src.thin_id,
			       rec->src_pool);
		return r;
	}
	if (rec->base_dst_id != DMREPL_THIN_ID_ANY) {
		if (!dmrepl_dest_replica_of(e->d, rec->base_dst_id, &base))
			return 0;	/* its base's record is gone: not resumable */
		t.base_id = base.src.thin_id;
	}
	r = dmrepl_resume_token_format(&t, token, sizeof(token));
	return r ?: e->fn(token, rec, e->userdata);
}

static int each(struct dmrepl_ctx *ctx, const char *pool, const char *state_dir,
		struct each_resumable *e)
{
	struct dmrepl_dest d;
	int r;

	e->d = &d;
	if (!state_dir)
		state_dir = dmrepl_state_dir_default();
	r = e->readonly ? dmrepl_dest_open_readonly(&d, ctx, pool, state_dir)
			: dmrepl_dest_open(&d, ctx, pool, state_dir);
	if (r == 0)
		r = dmrepl_dest_foreach(&d, "staging", visit, e);
	dmrepl_dest_close(&d);
	return r;
}

int dmrepl_receive_foreach_resumable(struct dmrepl_ctx *ctx, const char *pool,
				     const char *state_dir,
				     dmrepl_resumable_fn fn, void *userdata)
{
	struct each_resumable e = {.fn = fn, .userdata = userdata};

	if (!ctx || !pool || !fn)
		return -EINVAL;
	return each(ctx, pool, state_dir, &e);
}

int dmrepl_receive_foreach_resumable_readonly(struct dmrepl_ctx *ctx,
					      const char *pool,
					      const char *state_dir,
					      dmrepl_resumable_fn fn,
					      void *userdata)
{
	struct each_resumable e = {.fn = fn, .userdata = userdata, .readonly = true};

	if (!ctx || !pool || !fn)
		return -EINVAL;
	return each(ctx, pool, state_dir, &e);
}

int dmrepl_receive_abort(struct dmrepl_ctx *ctx, const char *pool,
			 const char *state_dir, unsigned int *ret_n)
{
	struct each_resumable e = {.drop = true};
	int r;

	if (!ctx || !pool)
		return -EINVAL;
	r = each(ctx, pool, state_dir, &e);
	if (ret_n)
		*ret_n = e.n;
	return r;
}

struct left {
	struct dmrepl_dest *d;
	unsigned int resumable, unfinished;
};

static int count_left(const struct dmrepl_lineage_record *rec, void *data)
{
	struct left *l = data;

	/* a receive killed as it finished: a replica, only its record goes */
	if (dmrepl_dest_replica_of(l->d, rec->dst.thin_id, NULL))
		return 0;
	if (rec->resumable)
		l->resumable++;
	else
		l->unfinished++;
	return 0;
}

int dmrepl_receive_count_left(struct dmrepl_ctx *ctx, const char *pool,
			      const char *state_dir,
			      unsigned int *ret_resumable,
			      unsigned int *ret_unfinished)
{
	struct dmrepl_dest d;
	struct left l = {.d = &d};
	int r;

	if (!ctx || !pool)
		return -EINVAL;
	r = dmrepl_dest_open_readonly(&d, ctx, pool,
				      state_dir ? state_dir
						: dmrepl_state_dir_default());
	if (r == 0)
		r = dmrepl_dest_foreach(&d, "staging", count_left, &l);
	dmrepl_dest_close(&d);
	if (ret_resumable)
		*ret_resumable = l.resumable;
	if (ret_unfinished)
		*ret_unfinished = l.unfinished;
	return r;
}
