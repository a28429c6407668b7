/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Local replication of a thin snapshot into another pool, as a job.
 *
 *   prepare  lock the destination's lineage folder; delete the
 *            unfinished device of a replication that was killed
 *   delta    through the source pool's metadata snapshot: identify the
 *            snapshot (and base), and spool the extents to a temporary
 *            file, so the metadata snapshot is held for milliseconds,
 *            not for the whole copy
 *   copy     check the base's replica is unchanged, create the new
 *            device (create_thin, or create_snap of the base's replica)
 *            with a "staging" record, activate both, copy, flush
 *   commit   identify the new device and write its replica record,
 *            then drop the staging record
 *
 * Any failure after the staging record deletes the new device; a
 * killed process leaves the record, and the next run cleans up.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "dm.h"
#include "replication.h"
#include "dest.h"
#include "lvm.h"
#include "source.h"
#include "transfer.h"

struct dmrepl_replicate {
	int refcount;
	struct dmrepl_ctx *ctx;
	char *src_name, *dst_name, *state_dir;
	uint64_t snap_id, base_id, size_bytes;
	bool full;
	bool dry_run;
	enum dmrepl_engine engine;
	unsigned int queue_depth, copy_flags;
	uint32_t io_size;
	uint64_t bwlimit;
	int ioprio_class, ioprio_level;
	/* an ssh:// destination (lib/remote.c) */
	bool remote, chain;
	char *transport, *remote_cmd, *remote_state_dir, *source_name;
	char *snap_lv;			/* "VG/LV", when the caller knows it */
	char *replica_tag;		/* the replica's LVM tag, or NULL */
	unsigned int remote_keep;	/* the far side's retention (0: none) */
	char **pruned;			/* what the far side's removed */
	size_t nr_pruned;
	int zstd_level;
	pid_t peer;			/* the transport, while it runs */
	uint64_t remote_done, remote_total;

	/* the job */
	pthread_mutex_t lock;		/* phase, copy, finished */
	pthread_t thread;
	bool started, threaded, joined;
	int cancelled;			/* atomic */
	enum dmrepl_replicate_phase phase;
	struct timespec phase_start;	/* when @phase began (debug log) */
	struct dmrepl_copy *copy;	/* while copying */
	bool finished;
	int status;
	struct dmrepl_replicate_result result;
};

/* Everything one run of the job holds; released in one place. */
struct job {
	struct dmrepl_replicate *rep;
	struct dmrepl_ctx *ctx;
	struct dmrepl_dest dst;		/* the destination side, and the new
					   replica's record (dst.rec) */
	struct dmrepl_source src;	/* the source side */
	struct dmrepl_lineage_record base_rec;	/* incremental only */
	bool incremental;
	const char *src_path, *dst_path;
};

static const char *const phase_names[] = {
    [DMREPL_PHASE_PENDING] = "pending", [DMREPL_PHASE_PREPARE] = "prepare",
    [DMREPL_PHASE_DELTA] = "delta",     [DMREPL_PHASE_COPY] = "copy",
    [DMREPL_PHASE_COMMIT] = "commit",   [DMREPL_PHASE_DONE] = "done",
};

DMREPL_EXPORT const char *
dmrepl_replicate_phase_name(enum dmrepl_replicate_phase phase)
{
	if ((unsigned int)phase >= ARRAY_SIZE(phase_names))
		return NULL;
	return phase_names[phase];
}

/*
 * The debug log says how long each phase took. Only the job's thread
 * writes @rep->phase and @rep->phase_start, so it reads them unlocked.
 */
static void log_phase_time(struct dmrepl_replicate *rep,
			   const struct timespec *now)
{
	if (rep->phase == DMREPL_PHASE_PENDING || rep->phase == DMREPL_PHASE_DONE)
		return;
	dbg(rep->ctx, "replicate: phase %s took %.1f ms",
	    dmrepl_replicate_phase_name(rep->phase),
	    (double)(now->tv_sec - rep->phase_start.tv_sec) * 1e3 +
		(double)(now->tv_nsec - rep->phase_start.tv_nsec) / 1e6);
}

static void set_phase(struct dmrepl_replicate *rep,
		      enum dmrepl_replicate_phase phase)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	log_phase_time(rep, &now);
	rep->phase_start = now;
	pthread_mutex_lock(&rep->lock);
	rep->phase = phase;
	pthread_mutex_unlock(&rep->lock);
}

static bool cancelled(struct dmrepl_replicate *rep)
{
	return __atomic_load_n(&rep->cancelled, __ATOMIC_ACQUIRE);
}

/* ---- prepare: both pools; the destination's folder, lock, stale work ---- */

static int prepare(struct job *job)
{
	struct dmrepl_replicate *rep = job->rep;
	int r;

	/* its identity, HOST:POOL: one source whichever way its replicas came */
	r = dmrepl_source_open(&job->src, job->ctx, rep->src_name, rep->snap_id,
			       NULL, &rep->cancelled);
	job->src.state_dir = rep->state_dir;
	if (r < 0)
		return r;
	if (rep->dry_run)
		r = dmrepl_dest_open_readonly(&job->dst, job->ctx, rep->dst_name,
					      rep->state_dir);
	else
		r = dmrepl_dest_open(&job->dst, job->ctx, rep->dst_name,
				     rep->state_dir);
	job->dst.replica_tag = rep->replica_tag;
	return r;
}

/* ---- delta: identify the snapshots, spool the extents ---- */

static int check_base_source(struct job *job, struct dmrepl_metadata *md)
{
	struct dmrepl_replicate *rep = job->rep;
	struct dmrepl_thin_ident now;
	int r;

	if (!dmrepl_dest_find_replica(&job->dst, job->src.identity, rep->base_id,
				      &job->base_rec)) {
		err(job->ctx,
		    "%s holds no replica of thin %" PRIu64 " of %s, so it "
		    "cannot be the base: replicate it first, or copy in full "
		    "(--full)",
		    rep->dst_name, rep->base_id, rep->src_name);
		return -ENOENT;
	}
	r = dmrepl_thin_ident_read(md, rep->base_id, &now);
	if (r == -ENOENT) {
		err(job->ctx, "%s: no thin %" PRIu64 " (the base) in the source "
			      "pool",
		    rep->src_name, rep->base_id);
		return r;
	}
	if (r < 0)
		return r;
	if (!dmrepl_thin_ident_equal(&now, &job->base_rec.src)) {
		err(job->ctx,
		    "thin %" PRIu64 " of %s is not the snapshot that thin %" PRIu64
		    " of %s replicates: it was deleted and its id reused, or "
		    "written to since (creation time %u, %" PRIu64
		    " mapped blocks, was %u, %" PRIu64 "); use --full",
		    rep->base_id, rep->src_name, job->base_rec.dst.thin_id,
		    rep->dst_name, now.creation_time, now.mapped_blocks,
		    job->base_rec.src.creation_time,
		    job->base_rec.src.mapped_blocks);
		return -ESTALE;
	}
	return 0;
}

/*
 * No --base and no --full: the newest snapshot older than the one to
 * replicate, still the same in the source, whose replica the destination
 * holds intact. The candidates come from the lineage records, newest
 * first; each is checked against the destination only until one holds.
 */
#define MAX_CANDIDATES 32

struct candidates {
	struct job *job;
	struct dmrepl_metadata *md;
	struct dmrepl_lineage_record rec[MAX_CANDIDATES];
	uint32_t ctime[MAX_CANDIDATES];
	size_t n;
};

static int note_candidate(const struct dmrepl_lineage_record *rec, void *data)
{
	struct candidates *c = data;
	struct dmrepl_replicate *rep = c->job->rep;
	const struct dmrepl_thin_ident *snap = &c->job->src.snap;
	struct dmrepl_thin_ident now;
	size_t i;

	if (!dmrepl_source_matches(rec->src_pool, c->job->src.identity) ||
	    rec->src.thin_id == rep->snap_id ||
	    dmrepl_thin_ident_read(c->md, rec->src.thin_id, &now) < 0 ||
	    !dmrepl_thin_ident_equal(&now, &rec->src) ||
	    now.creation_time >= snap->creation_time)
		return 0;
	/* keep the newest MAX_CANDIDATES, newest first */
	for (i = c->n; i > 0 && c->ctime[i - 1] < now.creation_time; i--)
		if (i < MAX_CANDIDATES) {
			c->rec[i] = c->rec[i - 1];
			c->ctime[i] = c->ctime[i - 1];
		}
	if (i < MAX_CANDIDATES) {
		c->rec[i] = *rec;
		c->ctime[i] = now.creation_time;
		if (c->n < MAX_CANDIDATES)
			c->n++;
	}
	return 0;
}

static int pick_base(struct job *job, struct dmrepl_metadata *md)
{
	struct dmrepl_replicate *rep = job->rep;
	struct candidates *c;
	int r;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->job = job;
	c->md = md;
	r = dmrepl_dest_foreach(&job->dst, "replica", note_candidate, c);
	for (size_t i = 0; r == 0 && i < c->n; i++) {
		r = dmrepl_dest_replica_intact(&job->dst, &c->rec[i]);
		if (r <= 0)
			continue;
		r = 0;
		rep->base_id = c->rec[i].src.thin_id;
		job->incremental = true;
		info(job->ctx,
		     "thin %" PRIu64 " of %s: incremental from thin %" PRIu64
		     ", whose replica %s holds as thin %" PRIu64,
		     rep->snap_id, rep->src_name, rep->base_id, rep->dst_name,
		     c->rec[i].dst.thin_id);
		break;
	}
	if (r == 0 && !job->incremental)
		info(job->ctx, "thin %" PRIu64 " of %s: full (%s holds no "
			       "replica of an older snapshot of it)",
		     rep->snap_id, rep->src_name, rep->dst_name);
	free(c);
	return r;
}

static int read_source(struct job *job)
{
	struct dmrepl_replicate *rep = job->rep;
	struct dmrepl_metadata *md = NULL;
	int r;

	r = dmrepl_metadata_open_pool(job->ctx, rep->src_name, &md);
	if (r < 0)
		return r;
	r = dmrepl_source_identify(&job->src, md);
	if (r < 0)
		goto out;
	if (!rep->full && rep->base_id == DMREPL_THIN_ID_ANY) {
		r = pick_base(job, md);
		if (r < 0)
			goto out;
	}
	if (job->incremental) {
		r = check_base_source(job, md);
		if (r < 0)
			goto out;
	}
	r = dmrepl_source_spool(&job->src, md, job->incremental
						   ? rep->base_id
						   : DMREPL_THIN_ID_ANY);
out:
	dmrepl_metadata_unref(md); /* releases the metadata snapshot */
	return r;
}

/* ---- the snapshot's size, and a device to read it through ---- */

/*
 * The size (given, an active device's, or the base's replica's) and the
 * device to read through; the snapshot's LVM name, for an LVM replica.
 */
static int resolve_source(struct job *job)
{
	struct dmrepl_replicate *rep = job->rep;
	uint64_t fallback = 0;
	int r;

	if (rep->base_id != DMREPL_THIN_ID_ANY &&
	    (job->base_rec.size_bytes ||
	     dmrepl_dest_find_replica(&job->dst, job->src.identity, rep->base_id,
				      &job->base_rec)))
		fallback = job->base_rec.size_bytes;
	r = dmrepl_source_resolve(&job->src, rep->size_bytes, fallback);
	if (r == 0 && (rep->snap_lv || dmrepl_dest_lvm_name(&job->dst)))
		dmrepl_source_name_lv(&job->src, rep->snap_lv);
	return r;
}

/* ---- copy ---- */

static int activate(struct job *job)
{
	return dmrepl_source_activate(&job->src, &job->src_path) ?:
	       dmrepl_dest_activate(&job->dst, &job->dst_path);
}

static int setup_copy(struct job *job, struct dmrepl_copy *copy)
{
	struct dmrepl_replicate *rep = job->rep;
	unsigned int flags = rep->copy_flags;
	int r = 0;

	/* A new thin device reads as zeroes: nothing to discard. */
	if (!job->incremental)
		flags |= DMREPL_COPY_DST_ZEROED;
	r = r ?: dmrepl_copy_set_engine(copy, rep->engine);
	r = r ?: dmrepl_copy_set_queue_depth(copy, rep->queue_depth);
	r = r ?: dmrepl_copy_set_io_size(copy, rep->io_size);
	r = r ?: dmrepl_copy_set_bwlimit(copy, rep->bwlimit);
	if (rep->ioprio_class)
		r = r ?: dmrepl_copy_set_ioprio(copy, rep->ioprio_class,
						rep->ioprio_level);
	r = r ?: dmrepl_copy_set_flags(copy, flags);
	r = r ?: dmrepl_copy_set_total(copy, job->src.total_bytes);
	return r ?: dmrepl_copy_open(copy);
}

static int feed(struct job *job, struct dmrepl_copy *copy)
{
	struct dmrepl_extent e;
	uint64_t i;
	int r = 0;

	for (i = 0; i < job->src.nr_extents && r == 0; i++) {
		if (fread(&e, sizeof(e), 1, job->src.spool) != 1) {
			err(job->ctx, "cannot read back the extent list");
			return -EIO;
		}
		r = dmrepl_copy_add(copy, &e);
	}
	return r;
}

static int copy_extents(struct job *job)
{
	struct dmrepl_replicate *rep = job->rep;
	struct dmrepl_copy *copy = NULL;
	struct dmrepl_copy_stats st;
	int r;

	r = dmrepl_copy_new(job->ctx, job->src_path, job->dst_path, &copy);
	if (r < 0)
		return r;
	pthread_mutex_lock(&rep->lock);
	rep->copy = copy;
	pthread_mutex_unlock(&rep->lock);
	if (cancelled(rep))
		dmrepl_copy_cancel(copy);
	r = setup_copy(job, copy);
	if (r == 0)
		r = feed(job, copy);
	if (r == 0)
		r = dmrepl_copy_finish(copy);
	if (r == -ENOSPC) {
		/* the copy names its device; the operator wants the pool */
		const char *lvm = dmrepl_dest_lvm_name(&job->dst);

		err(job->ctx, "%s: the destination pool is full: no space for the "
		    "replica's data (nothing was committed; grow the pool, or free "
		    "space, and replicate again)", lvm ? lvm : rep->dst_name);
	}
	dmrepl_copy_get_stats(copy, &st);
	rep->result.copied_bytes = st.copied_bytes;
	rep->result.discarded_bytes = st.discarded_bytes;
	rep->result.zeroed_bytes = st.zeroed_bytes;
	pthread_mutex_lock(&rep->lock);
	rep->copy = NULL;
	rep->result.extents = job->src.nr_extents;
	pthread_mutex_unlock(&rep->lock);
	dmrepl_copy_unref(copy);
	return r;
}

static int deactivate(struct job *job)
{
	int r = dmrepl_dest_deactivate(&job->dst);
	int q = dmrepl_source_deactivate(&job->src);

	return r ?: q;
}

/* ---- release ---- */

static void job_release(struct job *job)
{
	dmrepl_dest_close(&job->dst);
	dmrepl_source_close(&job->src);
}

/* ---- the job ---- */

/*
 * 1 when the snapshot's replica is in the pool as it was received; a
 * replica deleted or written to since is made anew. Return -errno when
 * the pool cannot be read.
 */
static int already_done(struct job *job)
{
	struct dmrepl_lineage_record rec;
	struct dmrepl_replicate *rep = job->rep;
	int r;

	if (rep->full ||
	    !dmrepl_dest_find_replica(&job->dst, job->src.identity, rep->snap_id, &rec) ||
	    !dmrepl_thin_ident_equal(&rec.src, &job->src.snap))
		return 0;
	r = dmrepl_dest_replica_intact(&job->dst, &rec);
	if (r <= 0) {
		if (r == 0)
			notice(job->ctx,
			       "thin %" PRIu64 " of %s was replicated as thin "
			       "%" PRIu64 ", which was deleted or written to "
			       "since: replicating it again",
			       rep->snap_id, rep->src_name, rec.dst.thin_id);
		return r;
	}
	notice(job->ctx, "thin %" PRIu64 " of %s is already replicated as thin %" PRIu64
			 " of %s",
	       rep->snap_id, rep->src_name, rec.dst.thin_id, rep->dst_name);
	rep->result.dst_thin_id = rec.dst.thin_id;
	if (rec.dst_lv[0])
		snprintf(rep->result.dst_lv, sizeof(rep->result.dst_lv), "%s/%s",
			 job->dst.vg, rec.dst_lv);
	rep->result.base_dst_thin_id = rec.base_dst_id;
	rep->result.size_bytes = rec.size_bytes;
	rep->result.already_replicated = 1;
	return 1;
}

static int copy_steps(struct job *job)
{
	struct dmrepl_replicate *rep = job->rep;
	int r;

	struct dmrepl_dest_source src = {
	    .pool = job->src.identity,
	    .name = job->src.lv[0] ? job->src.lv : NULL,
	    .ident = &job->src.snap,
	    .size_bytes = job->src.size_bytes,
	};

	r = dmrepl_dest_begin(&job->dst, &src,
			      job->incremental ? &job->base_rec : NULL);
	if (r == 0 && !cancelled(rep))
		r = activate(job);
	if (r == 0 && !cancelled(rep))
		r = copy_extents(job);
	if (r == 0)
		r = deactivate(job);
	if (r == 0 && cancelled(rep))
		r = -ECANCELED;
	return r;
}

static int run_steps(struct job *job)
{
	struct dmrepl_replicate *rep = job->rep;
	int r;

	set_phase(rep, DMREPL_PHASE_PREPARE);
	r = prepare(job);
	if (r < 0)
		return r;
	set_phase(rep, DMREPL_PHASE_DELTA);
	job->incremental = !rep->full && rep->base_id != DMREPL_THIN_ID_ANY;
	r = read_source(job);
	if (r < 0)
		return r;
	r = already_done(job);
	if (r != 0)
		return r < 0 ? r : 0;
	/* the base is settled (given, picked, or none) */
	rep->result.full = !job->incremental;
	rep->result.base_thin_id = job->incremental ? rep->base_id
						    : DMREPL_THIN_ID_ANY;
	if (rep->dry_run) {
		/* what would be copied: nothing is written */
		rep->result.dry_run = 1;
		rep->result.extents = job->src.nr_extents;
		rep->result.copied_bytes = job->src.total_bytes;
		if (job->incremental)
			rep->result.base_dst_thin_id = job->base_rec.dst.thin_id;
		return 0;
	}
	r = resolve_source(job);
	if (r < 0 || cancelled(rep))
		return r < 0 ? r : -ECANCELED;
	set_phase(rep, DMREPL_PHASE_COPY);
	r = copy_steps(job);
	if (r < 0)
		return r;
	set_phase(rep, DMREPL_PHASE_COMMIT);
	r = dmrepl_dest_commit(&job->dst);
	if (r < 0)
		return r;
	rep->result.dst_thin_id = job->dst.rec.dst.thin_id;
	rep->result.base_dst_thin_id = job->dst.rec.base_dst_id;
	rep->result.size_bytes = job->dst.rec.size_bytes;
	if (job->dst.rec.dst_lv[0])
		snprintf(rep->result.dst_lv, sizeof(rep->result.dst_lv), "%s/%s",
			 job->dst.vg, job->dst.rec.dst_lv);
	return 0;
}

/* ---- to another host ---- */

static void remote_progress(uint64_t done, uint64_t total, void *data)
{
	struct dmrepl_replicate *rep = data;

	/* called in the job's thread, by the sender */
	if (rep->phase != DMREPL_PHASE_COPY)
		set_phase(rep, DMREPL_PHASE_COPY);
	pthread_mutex_lock(&rep->lock);
	rep->remote_done = done;
	rep->remote_total = total;
	pthread_mutex_unlock(&rep->lock);
}

static int run_remote(struct dmrepl_replicate *rep)
{
	struct dmrepl_remote_opts o = {
	    .url = rep->dst_name,
	    .transport = rep->transport,
	    .remote_dmrepl = rep->remote_cmd,
	    .remote_state_dir = rep->remote_state_dir,
	    .replica_tag = rep->replica_tag,
	    .keep = rep->remote_keep,
	    .base_id = rep->full ? DMREPL_THIN_ID_ANY : rep->base_id,
	    .full = rep->full,
	    .chain = rep->chain,
	    .send = {
		.pool = rep->src_name,
		.snap_id = rep->snap_id,
		.snap_name = rep->snap_lv,
		.source_name = rep->source_name,
		.size_bytes = rep->size_bytes,
		.zstd_level = rep->zstd_level,
		.bwlimit = rep->bwlimit,
		.ioprio = rep->ioprio_class ? rep->ioprio_class << 13 | rep->ioprio_level : 0,
		.detect_zeroes = rep->copy_flags & DMREPL_COPY_DETECT_ZEROES,
		.engine = rep->engine,
		.queue_depth = rep->queue_depth,
		.io_size = rep->io_size,
		.progress = remote_progress,
		.progress_data = rep,
		.cancel = &rep->cancelled,
	    },
	    .ret_peer_pid = &rep->peer,
	};
	struct dmrepl_remote_result res = {0};
	int r;

	set_phase(rep, DMREPL_PHASE_PREPARE);
	r = dmrepl_remote_replicate(rep->ctx, &o, &res);
	pthread_mutex_lock(&rep->lock);
	rep->pruned = res.pruned;
	rep->nr_pruned = res.nr_pruned;
	pthread_mutex_unlock(&rep->lock);
	/* Cancelling stops the transport: what failed then is the cancel. */
	if (r < 0 && cancelled(rep))
		r = -ECANCELED;
	if (r < 0)
		return r;
	rep->result.dst_thin_id = res.dst_thin_id;
	snprintf(rep->result.dst_lv, sizeof(rep->result.dst_lv), "%s", res.dst_lv);
	rep->result.base_dst_thin_id = res.base_dst_thin_id;
	rep->result.base_thin_id = res.base_src_id;
	rep->result.full = res.base_src_id == DMREPL_THIN_ID_ANY;
	rep->result.already_replicated = res.already_replicated;
	rep->result.resumed = res.resumed;
	rep->result.streams = res.streams;
	rep->result.copied_bytes = res.data_bytes;
	return 0;
}

static int run_job(struct dmrepl_replicate *rep)
{
	struct job job = {.rep = rep, .ctx = rep->ctx, .dst.lock_fd = -1};
	struct timespec now;
	int r;

	r = rep->remote ? run_remote(rep) : run_steps(&job);
	if (r < 0 && !rep->remote) {
		dmrepl_source_deactivate(&job.src);
		dmrepl_dest_undo(&job.dst, false);
	}
	job_release(&job);
	clock_gettime(CLOCK_MONOTONIC, &now);
	log_phase_time(rep, &now);
	pthread_mutex_lock(&rep->lock);
	rep->status = r;
	rep->phase = DMREPL_PHASE_DONE;
	rep->finished = true;
	pthread_mutex_unlock(&rep->lock);
	return r;
}

static void *job_thread(void *data)
{
	run_job(data);
	return NULL;
}

/* ---- the API ---- */

DMREPL_EXPORT int dmrepl_replicate_new(struct dmrepl_ctx *ctx,
				       const char *src_pool, uint64_t snap_id,
				       const char *dst_pool,
				       struct dmrepl_replicate **ret_rep)
{
	struct dmrepl_replicate *rep;

	if (!ctx || !src_pool || !*src_pool || !dst_pool || !*dst_pool ||
	    snap_id > DMREPL_THIN_ID_MAX || !ret_rep)
		return -EINVAL;
	if (strcmp(src_pool, dst_pool) == 0) {
		err(ctx, "%s: the source and destination pools are the same",
		    src_pool);
		return -EINVAL;
	}
	rep = calloc(1, sizeof(*rep));
	if (!rep)
		return -ENOMEM;
	rep->refcount = 1;
	rep->ctx = dmrepl_ref(ctx);
	rep->snap_id = snap_id;
	rep->base_id = DMREPL_THIN_ID_ANY;
	pthread_mutex_init(&rep->lock, NULL);
	rep->remote = strncmp(dst_pool, "ssh://", 6) == 0;
	rep->src_name = strdup(src_pool);
	rep->dst_name = strdup(dst_pool);
	rep->state_dir = strdup(dmrepl_state_dir_default());
	if (!rep->src_name || !rep->dst_name || !rep->state_dir) {
		dmrepl_replicate_unref(rep);
		return -ENOMEM;
	}
	*ret_rep = rep;
	return 0;
}

DMREPL_EXPORT struct dmrepl_replicate *
dmrepl_replicate_unref(struct dmrepl_replicate *rep)
{
	if (!rep || --rep->refcount > 0)
		return NULL;
	if (rep->threaded && !rep->joined) {
		dmrepl_replicate_cancel(rep);
		pthread_join(rep->thread, NULL);
	}
	pthread_mutex_destroy(&rep->lock);
	free(rep->src_name);
	free(rep->dst_name);
	free(rep->state_dir);
	free(rep->transport);
	free(rep->remote_cmd);
	free(rep->remote_state_dir);
	free(rep->source_name);
	free(rep->snap_lv);
	free(rep->replica_tag);
	for (size_t i = 0; i < rep->nr_pruned; i++)
		free(rep->pruned[i]);
	free(rep->pruned);
	dmrepl_unref(rep->ctx);
	free(rep);
	return NULL;
}

#define SETTER_CHECK(rep)                                                     \
	do {                                                                  \
		if (!(rep))                                                   \
			return -EINVAL;                                       \
		if ((rep)->started)                                           \
			return -EBUSY;                                        \
	} while (0)

DMREPL_EXPORT int dmrepl_replicate_set_base(struct dmrepl_replicate *rep,
					    uint64_t base_id)
{
	SETTER_CHECK(rep);
	if (base_id > DMREPL_THIN_ID_MAX && base_id != DMREPL_THIN_ID_ANY)
		return -EINVAL;
	if (base_id == rep->snap_id) {
		err(rep->ctx, "the base and the snapshot are both thin %" PRIu64,
		    base_id);
		return -EINVAL;
	}
	rep->base_id = base_id;
	return 0;
}

DMREPL_EXPORT int dmrepl_replicate_set_full(struct dmrepl_replicate *rep,
					    int full)
{
	SETTER_CHECK(rep);
	rep->full = full != 0;
	return 0;
}

DMREPL_EXPORT int dmrepl_replicate_set_dry_run(struct dmrepl_replicate *rep,
					       int dry_run)
{
	SETTER_CHECK(rep);
	if (rep->remote && dry_run)
		return -EOPNOTSUPP;
	rep->dry_run = dry_run != 0;
	return 0;
}

DMREPL_EXPORT int dmrepl_replicate_set_state_dir(struct dmrepl_replicate *rep,
						 const char *dir)
{
	char *s;

	SETTER_CHECK(rep);
	if (!dir || !*dir)
		return -EINVAL;
	s = strdup(dir);
	if (!s)
		return -ENOMEM;
	free(rep->state_dir);
	rep->state_dir = s;
	return 0;
}

DMREPL_EXPORT int dmrepl_replicate_set_size(struct dmrepl_replicate *rep,
					    uint64_t size_bytes)
{
	SETTER_CHECK(rep);
	if (size_bytes % 512)
		return -EINVAL;
	rep->size_bytes = size_bytes;
	return 0;
}

DMREPL_EXPORT int dmrepl_replicate_set_engine(struct dmrepl_replicate *rep,
					      enum dmrepl_engine engine)
{
	SETTER_CHECK(rep);
	if (!dmrepl_engine_name(engine))
		return -EINVAL;
	rep->engine = engine;
	return 0;
}

DMREPL_EXPORT int
dmrepl_replicate_set_queue_depth(struct dmrepl_replicate *rep,
				 unsigned int depth)
{
	SETTER_CHECK(rep);
	rep->queue_depth = depth;
	return 0;
}

DMREPL_EXPORT int dmrepl_replicate_set_io_size(struct dmrepl_replicate *rep,
					       uint32_t bytes)
{
	SETTER_CHECK(rep);
	rep->io_size = bytes;
	return 0;
}

DMREPL_EXPORT int dmrepl_replicate_set_bwlimit(struct dmrepl_replicate *rep,
					       uint64_t bytes_per_sec)
{
	SETTER_CHECK(rep);
	rep->bwlimit = bytes_per_sec;
	return 0;
}

DMREPL_EXPORT int dmrepl_replicate_set_ioprio(struct dmrepl_replicate *rep,
					      int ioprio_class, int level)
{
	SETTER_CHECK(rep);
	if (ioprio_class < 1 || ioprio_class > 3 || level < 0 || level > 7)
		return -EINVAL;
	rep->ioprio_class = ioprio_class;
	rep->ioprio_level = level;
	return 0;
}

DMREPL_EXPORT int
dmrepl_replicate_set_copy_flags(struct dmrepl_replicate *rep,
				unsigned int flags)
{
	SETTER_CHECK(rep);
	if (flags & ~(unsigned int)DMREPL_COPY_DETECT_ZEROES)
		return -EINVAL;
	rep->copy_flags = flags;
	return 0;
}

static int set_string(struct dmrepl_replicate *rep, char **field,
		      const char *value)
{
	char *v;

	SETTER_CHECK(rep);
	if (!rep->remote || !value || !*value)
		return -EINVAL;
	v = strdup(value);
	if (!v)
		return -ENOMEM;
	free(*field);
	*field = v;
	return 0;
}

DMREPL_EXPORT int dmrepl_replicate_set_transport(struct dmrepl_replicate *rep,
						 const char *command)
{
	return set_string(rep, rep ? &rep->transport : NULL, command);
}

DMREPL_EXPORT int
dmrepl_replicate_set_remote_command(struct dmrepl_replicate *rep,
				    const char *dmrepl_path)
{
	return set_string(rep, rep ? &rep->remote_cmd : NULL, dmrepl_path);
}

DMREPL_EXPORT int dmrepl_replicate_set_replica_tag(struct dmrepl_replicate *rep,
						  const char *tag)
{
	char *v;

	if (tag && (!*tag || !dmrepl_lvm_tag_valid(tag)))
		return -EINVAL;	/* not a tag that LVM takes */
	SETTER_CHECK(rep);
	v = tag ? strdup(tag) : NULL;
	if (tag && !v)
		return -ENOMEM;
	free(rep->replica_tag);
	rep->replica_tag = v;
	return 0;
}

DMREPL_EXPORT int dmrepl_replicate_set_remote_keep(struct dmrepl_replicate *rep,
						   unsigned int keep)
{
	SETTER_CHECK(rep);
	rep->remote_keep = keep;
	return 0;
}

DMREPL_EXPORT const char *dmrepl_replicate_get_pruned(struct dmrepl_replicate *rep,
						      size_t i)
{
	const char *name = NULL;

	if (!rep)
		return NULL;
	pthread_mutex_lock(&rep->lock);
	if (rep->finished && i < rep->nr_pruned)
		name = rep->pruned[i];
	pthread_mutex_unlock(&rep->lock);
	return name;
}

DMREPL_EXPORT int
dmrepl_replicate_set_remote_state_dir(struct dmrepl_replicate *rep,
				      const char *dir)
{
	return set_string(rep, rep ? &rep->remote_state_dir : NULL, dir);
}

DMREPL_EXPORT int
dmrepl_replicate_set_source_name(struct dmrepl_replicate *rep,
				 const char *name)
{
	if (name && strlen(name) > 127)
		return -EINVAL;
	return set_string(rep, rep ? &rep->source_name : NULL, name);
}

DMREPL_EXPORT int dmrepl_replicate_set_snap_lv(struct dmrepl_replicate *rep,
					       const char *vg_lv)
{
	char *v;

	SETTER_CHECK(rep);
	if (!vg_lv || strlen(vg_lv) > 127 || !strchr(vg_lv, '/'))
		return -EINVAL;
	v = strdup(vg_lv);
	if (!v)
		return -ENOMEM;
	free(rep->snap_lv);
	rep->snap_lv = v;
	return 0;
}

DMREPL_EXPORT int dmrepl_replicate_set_compression(struct dmrepl_replicate *rep,
						   int level)
{
	SETTER_CHECK(rep);
	if (!rep->remote || level < 0 || level > 19)
		return -EINVAL;
	rep->zstd_level = level;
	return 0;
}

DMREPL_EXPORT int dmrepl_replicate_set_chain(struct dmrepl_replicate *rep,
					     int chain)
{
	SETTER_CHECK(rep);
	if (!rep->remote)
		return -EINVAL;
	rep->chain = chain != 0;
	return 0;
}

/* The job's thread takes no signals: they stay with the application. */
DMREPL_EXPORT int dmrepl_snapshot_replicate(struct dmrepl_replicate *rep)
{
	sigset_t all, old;
	int r;

	if (!rep)
		return -EINVAL;
	if (rep->started)
		return -EBUSY;
	rep->started = true;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = pthread_create(&rep->thread, NULL, job_thread, rep);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		rep->started = false;
		err(rep->ctx, "cannot start the replication thread: %s",
		    strerror(r));
		return -r;
	}
	rep->threaded = true;
	return 0;
}

DMREPL_EXPORT int dmrepl_replicate_get_progress(
    struct dmrepl_replicate *rep, struct dmrepl_replicate_progress *ret)
{
	struct dmrepl_copy_stats st = {0};

	if (!rep || !ret)
		return -EINVAL;
	pthread_mutex_lock(&rep->lock);
	if (rep->copy) {
		dmrepl_copy_get_stats(rep->copy, &st);
	} else if (rep->remote && rep->phase < DMREPL_PHASE_DONE) {
		st.done_bytes = rep->remote_done;
		st.total_bytes = rep->remote_total;
	} else if (rep->phase >= DMREPL_PHASE_COMMIT)
		st.done_bytes = st.total_bytes = rep->result.copied_bytes;
	ret->phase = rep->phase;
	ret->done_bytes = st.done_bytes;
	ret->total_bytes = st.total_bytes;
	ret->finished = rep->finished;
	pthread_mutex_unlock(&rep->lock);
	return 0;
}

DMREPL_EXPORT void dmrepl_replicate_cancel(struct dmrepl_replicate *rep)
{
	pid_t peer;

	if (!rep)
		return;
	__atomic_store_n(&rep->cancelled, 1, __ATOMIC_RELEASE);
	/* A stream blocked on its transport: stopping the transport ends it. */
	peer = __atomic_load_n(&rep->peer, __ATOMIC_ACQUIRE);
	if (peer > 0)
		kill(peer, SIGTERM);
	pthread_mutex_lock(&rep->lock);
	if (rep->copy)
		dmrepl_copy_cancel(rep->copy);
	pthread_mutex_unlock(&rep->lock);
}

DMREPL_EXPORT int dmrepl_replicate_wait(struct dmrepl_replicate *rep,
					struct dmrepl_replicate_result *ret)
{
	if (!rep || !rep->started)
		return -EINVAL;
	if (rep->threaded && !rep->joined) {
		pthread_join(rep->thread, NULL);
		rep->joined = true;
	}
	if (rep->status == 0 && ret)
		*ret = rep->result;
	return rep->status;
}

DMREPL_EXPORT int dmrepl_replicate_run(struct dmrepl_replicate *rep,
				       struct dmrepl_replicate_result *ret)
{
	if (!rep)
		return -EINVAL;
	if (rep->started)
		return -EBUSY;
	rep->started = true;
	run_job(rep);
	return dmrepl_replicate_wait(rep, ret);
}
