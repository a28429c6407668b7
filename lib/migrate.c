/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Live migration of an LVM thin volume into another VG's thin pool by
 * converging incrementals (the blueprint's migrate). One job, on a
 * thread of its own like a replication (replicate.c), pollable:
 *
 *   rounds   each takes an LVM snapshot of the volume (tagged
 *            dmrepl.migrate:LV) and replicates it, the first in full, the
 *            others from the round before, while the volume stays in use.
 *            After each, the delta from that snapshot to the live volume
 *            (through a held metadata snapshot) says what a final round
 *            would ship: at most the converge size, and the final round
 *            comes; not smaller than the last round's, or the rounds run
 *            out, and the job stops with the volume untouched.
 *   prepare  the volume-to-be at the destination: an LVM snapshot of the
 *            last round's replica under the volume's own name, tagged
 *            dmrepl.migrating (no LVM command runs while the volume is
 *            suspended but the commit), and a device to write it through.
 *   final    a record that the volume is about to be suspended (so that
 *            a killed job's volume is resumed: dmrepl_migrate_recover());
 *            the volume suspended (its I/O queued, none failed); the delta
 *            from the last round's snapshot to the volume itself, read
 *            through a read-only device of the volume's thin id, written
 *            into the volume-to-be and flushed; the commit (one lvchange:
 *            dmrepl.migrating becomes dmrepl.migrated:SOURCE); the
 *            caller's switch (it moves the volume's user); the volume
 *            resumed. Any failure before the switch succeeded resumes the
 *            volume as it was and removes, or demotes, the volume-to-be.
 *
 * What the final round does at the destination is a target's
 * (migrate.h): a pool on this host (migrate-local.c), or on another,
 * through one connection to dmrepl there (migrate-remote.c). Over ssh
 * the rounds are replications to that host, whose replicas are tagged
 * dmrepl.migrate:LV and pruned there as the rounds go (receive --keep 1).
 *
 * No thin device is created or deleted but through LVM: the rounds'
 * snapshots and replicas are lvcreate's, the devices this job maps are
 * dm devices of existing thin ids. The source volume is never deleted.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "dm.h"
#include "lvm.h"
#include "metadata.h"
#include "migrate.h"
#include "replication.h"
#include "transfer.h"

#define DEFAULT_MAX_ROUNDS 10
#define CONVERGE_SECONDS 0.5
#define CONVERGE_MIN (4ull << 20)

struct dmrepl_migrate {
	int refcount;
	struct dmrepl_ctx *ctx;
	char *src, *dst;		/* "VG/LV", "VG/POOL" or ssh://[USER@]HOST/VG/POOL */
	bool remote;
	char *state_dir;
	char *transport, *remote_cmd, *remote_state_dir;	/* remote */
	uint64_t converge;
	unsigned int max_rounds;
	int (*switch_fn)(const char *dst_vg_lv, void *data);
	void *switch_data;

	pthread_mutex_t lock;
	pthread_t thread;
	bool started, threaded, joined, finished;
	int cancelled;			/* atomic */
	struct dmrepl_replicate *rep;	/* the round's, while it runs */
	struct dmrepl_migrate_progress progress;
	int status;
	struct dmrepl_migrate_result result;
};


static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool cancelled(struct dmrepl_migrate *m)
{
	return __atomic_load_n(&m->cancelled, __ATOMIC_ACQUIRE);
}

static void set_phase(struct dmrepl_migrate *m, enum dmrepl_migrate_phase phase,
		      unsigned int round)
{
	pthread_mutex_lock(&m->lock);
	m->progress.phase = phase;
	m->progress.round = round;
	m->progress.done_bytes = m->progress.total_bytes = 0;
	pthread_mutex_unlock(&m->lock);
}

int dmrepl_migrate_split(const char *vg_lv, char *vg, size_t vs, char *lv, size_t ls)
{
	const char *slash = strchr(vg_lv, '/');

	if (!slash || slash == vg_lv || !slash[1] || strchr(slash + 1, '/') ||
	    (size_t)(slash - vg_lv) >= vs || strlen(slash + 1) >= ls)
		return -EINVAL;
	snprintf(vg, vs, "%.*s", (int)(slash - vg_lv), vg_lv);
	snprintf(lv, ls, "%s", slash + 1);
	return 0;
}

int dmrepl_migrate_lvm(struct migrate_run *r, const char *what, const char *const *args)
{
	char why[512] = "";
	int e = dmrepl_lvm_run(r->ctx, args, NULL, why, sizeof(why));

	if (e == -EIO)
		err(r->ctx, "migrate %s: %s failed: %s", r->src, what, why);
	return e;
}

int dmrepl_migrate_pool_dm(struct migrate_run *r, const char *vg, const char *pool,
			   char *buf, size_t size)
{
	char vg_pool[300];
	int e;

	snprintf(vg_pool, sizeof(vg_pool), "%s/%s", vg, pool);
	e = dmrepl_lvm_active_pool(r->ctx, vg_pool, buf, size);
	if (e == -ENODEV)
		err(r->ctx, "migrate: %s is not an active thin pool", vg_pool);
	return e;
}

/* ---- the suspend record: a killed job's volume is resumed ---- */

static int record_dir(const char *state_dir, char *buf, size_t size)
{
	int n = snprintf(buf, size, "%s/migrate", state_dir ? state_dir : dmrepl_state_dir_default());

	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int dmrepl_migrate_state_dir(struct dmrepl_ctx *ctx, const char *state_dir, char *buf,
			     size_t size)
{
	int e = record_dir(state_dir, buf, size);

	if (e < 0)
		return e;
	e = dmrepl_mkdirs(buf);
	if (e < 0)
		err(ctx, "%s: %s", buf, strerror(-e));
	return e;
}

/*
 * PHASE: suspending (the volume may be suspended; the volume-to-be is not
 * committed), committed (it is; the switch had not returned). The
 * destination: "VG/LV", or "ssh://HOST/VG/LV" (whose far side undoes
 * itself when the connection ends without a switch).
 */
static int write_record(struct migrate_run *r, const char *phase)
{
	char dir[4000], tmp[4100], text[1024];
	int fd, n, e = 0;

	e = dmrepl_migrate_state_dir(r->ctx, r->state_dir, dir, sizeof(dir));
	if (e < 0)
		return e;
	if (snprintf(r->record, sizeof(r->record), "%s/%s", dir, r->origin_dm) >=
	    (int)sizeof(r->record))
		return -ENAMETOOLONG;
	snprintf(tmp, sizeof(tmp), "%s.tmp", r->record);
	/* the pools: what the job maps on them, a recover sweeps */
	n = snprintf(text, sizeof(text), "pid %d\norigin %s\ndestination %s%s%s%s\nphase %s\n"
		     "pools %s %s\n",
		     (int)getpid(), r->origin_dm, r->host[0] ? "ssh://" : "", r->host,
		     r->host[0] ? "/" : "", r->final_lv, phase, r->src_pool_dm,
		     r->dst_pool_dm[0] ? r->dst_pool_dm : "-");
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, text, (size_t)n) != n || fsync(fd) < 0 ||
	    rename(tmp, r->record) < 0)
		e = -errno;
	if (fd >= 0)
		close(fd);
	if (e < 0)
		err(r->ctx, "%s: %s", r->record, strerror(-e));
	return e;
}

static void drop_record(struct migrate_run *r)
{
	if (r->record[0])
		unlink(r->record);
	r->record[0] = '\0';
}

/* ---- rounds ---- */

/* What the delta from thin @from to the volume holds, in bytes. */
static int delta_bytes(struct migrate_run *r, uint64_t from, uint64_t *ret)
{
	struct dmrepl_metadata *md = NULL;
	struct dmrepl_delta *delta = NULL;
	struct dmrepl_extent e;
	uint64_t total = 0;
	int rc;

	rc = dmrepl_metadata_open_pool(r->ctx, r->src_pool_dm, &md);
	if (rc == 0)
		rc = dmrepl_delta_new(md, from, r->origin.thin_id, DMREPL_DELTA_SKIP_SAME, &delta);
	while (rc == 0 && (rc = dmrepl_delta_next_extent(delta, &e)) == 0)
		if (e.op == DMREPL_EXTENT_COPY)
			total += e.length_bytes;
	dmrepl_delta_unref(delta);
	dmrepl_metadata_unref(md);
	if (rc == 1) {
		*ret = total;
		rc = 0;
	}
	return rc;
}

static int round_once(struct migrate_run *r, unsigned int k, struct dmrepl_migrate_round *out)
{
	struct dmrepl_migrate *m = r->m;
	struct dmrepl_lvm_lv snap;
	struct dmrepl_replicate_result res;
	struct dmrepl_replicate_progress p;
	char name[128], tag[300], vg_lv[300], dst_pool_dm[128];
	/*
	 * The data's own rate: from the last look at no byte moved to the
	 * first at all moved (a round's copy phase also holds LVM's calls,
	 * which the final round does not pay for the delta).
	 */
	double t0 = now_s(), copy_start = 0, copy_end = 0, copy_s = 0;
	int e;

	/* the job's start in the name: a later migration's never collide */
	snprintf(name, sizeof(name), "%.90s-migrate-%lx-%u", r->src_lv, (long)r->started, k);
	snprintf(tag, sizeof(tag), TAG_MIGRATE "%s", r->src_lv);
	set_phase(m, DMREPL_MIGRATE_ROUND, k);
	e = dmrepl_lvm_snapshot(r->ctx, m->src, name, tag, &snap);
	if (e < 0)
		return e;
	snprintf(r->snaps[r->nr], sizeof(r->snaps[0]), "%s", snap.lv);
	r->snap_ids[r->nr] = snap.thin_id;
	r->nr++;
	if (!m->remote) {
		e = dmrepl_migrate_pool_dm(r, r->dst_vg, r->dst_pool, dst_pool_dm,
					   sizeof(dst_pool_dm));
		if (e < 0)
			return e;
	}
	snprintf(vg_lv, sizeof(vg_lv), "%s/%s", snap.vg, snap.lv);
	e = dmrepl_replicate_new(r->ctx, r->src_pool_dm, snap.thin_id,
				 m->remote ? m->dst : dst_pool_dm, &m->rep);
	if (e == 0)
		e = dmrepl_replicate_set_snap_lv(m->rep, vg_lv);
	/* over ssh: the far side keeps only the newest round's replica */
	if (e == 0 && m->remote)
		e = dmrepl_replicate_set_replica_tag(m->rep, tag);
	if (e == 0 && m->remote)
		e = dmrepl_replicate_set_remote_keep(m->rep, 1);
	if (e == 0 && m->transport)
		e = dmrepl_replicate_set_transport(m->rep, m->transport);
	if (e == 0 && m->remote_cmd)
		e = dmrepl_replicate_set_remote_command(m->rep, m->remote_cmd);
	if (e == 0 && m->remote_state_dir)
		e = dmrepl_replicate_set_remote_state_dir(m->rep, m->remote_state_dir);
	if (e == 0)
		e = dmrepl_replicate_set_size(m->rep, r->origin.size_bytes);
	if (e == 0 && m->state_dir)
		e = dmrepl_replicate_set_state_dir(m->rep, m->state_dir);
	/* round 1 in full (no other volume's replica as a base), then each from the last */
	if (e == 0 && k == 1)
		e = dmrepl_replicate_set_full(m->rep, 1);
	if (e == 0 && k > 1)
		e = dmrepl_replicate_set_base(m->rep, r->snap_ids[r->nr - 2]);
	if (e == 0)
		e = dmrepl_snapshot_replicate(m->rep);
	while (e == 0) {
		if (dmrepl_replicate_get_progress(m->rep, &p) < 0 || p.finished)
			break;
		if (p.phase == DMREPL_PHASE_COPY && !p.done_bytes)
			copy_start = now_s();
		if (p.phase >= DMREPL_PHASE_COPY && p.total_bytes && p.done_bytes >= p.total_bytes &&
		    !copy_end)
			copy_end = now_s();
		pthread_mutex_lock(&m->lock);
		m->progress.done_bytes = p.done_bytes;
		m->progress.total_bytes = p.total_bytes;
		pthread_mutex_unlock(&m->lock);
		if (cancelled(m))
			dmrepl_replicate_cancel(m->rep);
		usleep(20000);
	}
	if (e == 0) {
		e = dmrepl_replicate_wait(m->rep, &res);
		if (!copy_end)
			copy_end = now_s();
		copy_s = copy_start ? copy_end - copy_start : copy_end - t0;
	}
	pthread_mutex_lock(&m->lock);
	m->rep = dmrepl_replicate_unref(m->rep);
	pthread_mutex_unlock(&m->lock);
	if (e < 0)
		return e;
	snprintf(r->replicas[r->nr - 1], sizeof(r->replicas[0]), "%s", res.dst_lv);
	out->bytes = res.copied_bytes;
	out->seconds = now_s() - t0;
	out->full = res.full;
	if (res.copied_bytes && copy_s > 0)
		r->rate = (double)res.copied_bytes / copy_s;
	info(r->ctx, "migrate %s: round %u: %s, %" PRIu64 " bytes in %.2f s", m->src, k,
	     res.full ? "full" : "incremental", res.copied_bytes, out->seconds);
	return 0;
}

/* ---- the final round ---- */

static int final_round(struct migrate_run *r, struct dmrepl_migrate_round *out)
{
	struct dmrepl_migrate *m = r->m;
	struct dmrepl_migrate_result *res = &m->result;
	const struct migrate_target *t = r->target;
	double t0 = now_s(), ts = 0, tr, t_ship = 0, t_commit = 0, t_switch = 0;
	bool suspended = false, committed = false, switched = false;
	char dst[600];
	int e, e2;

	set_phase(m, DMREPL_MIGRATE_FINAL, r->nr + 1);
	snprintf(r->final_lv, sizeof(r->final_lv), "%s/%s", r->dst_vg, r->src_lv);
	snprintf(dst, sizeof(dst), "%s%s%s%s", r->host[0] ? "ssh://" : "", r->host,
		 r->host[0] ? "/" : "", r->final_lv);
	/* the volume-to-be, made while the volume still runs */
	e = t->prepare(r);
	if (e == 0)
		e = write_record(r, "suspending");
	if (e == 0 && cancelled(m))
		e = -ECANCELED;
	if (e < 0)
		goto undo;

	/* the volume suspended: its I/O waits, none fails */
	ts = now_s();
	e = dmrepl_dm_suspend(r->ctx, r->origin_dm);
	if (e < 0)
		goto undo;
	suspended = true;
	e = t->ship(r, &out->bytes);
	t_ship = now_s();
	if (e == 0 && cancelled(m))
		e = -ECANCELED;
	/* the commit: one LVM transaction makes it the volume */
	if (e == 0)
		e = write_record(r, "committed");
	if (e == 0)
		e = t->commit(r);
	t_commit = now_s();
	if (e < 0)
		goto undo;
	committed = true;
	snprintf(res->dst_lv, sizeof(res->dst_lv), "%.255s", dst);
	set_phase(m, DMREPL_MIGRATE_SWITCH, r->nr + 1);
	if (m->switch_fn) {
		e = m->switch_fn(dst, m->switch_data);
		if (e < 0) {
			err(r->ctx, "migrate %s: the switch failed: %s stays the volume; %s is "
				    "left as a copy, not the volume",
			    m->src, m->src, dst);
			goto undo;
		}
	}
	res->switched = switched = true;
	t_switch = now_s();
	e2 = dmrepl_dm_resume(r->ctx, r->origin_dm);
	tr = now_s();
	res->suspended_ms = (uint64_t)((tr - ts) * 1000.0 + 0.5);
	info(r->ctx, "migrate %s: suspended %" PRIu64 " ms: the last changes %.0f ms, the "
		     "commit %.0f ms, the switch %.0f ms, resume %.0f ms",
	     m->src, res->suspended_ms, (t_ship - ts) * 1000,
	     (t_commit - t_ship) * 1000, (t_switch - t_commit) * 1000, (tr - t_switch) * 1000);
	if (e2 < 0)
		err(r->ctx, "migrate %s: the switch is done, but %s could not be resumed: "
			    "dmsetup resume %s", m->src, m->src, r->origin_dm);
	else
		drop_record(r);
	/* (a far side that does not hear "switched" undoes: a killed job is not switched) */
	e = t->finish(r, true, true);
	out->seconds = now_s() - t0;
	return e2 ?: e;

undo:
	if (suspended) {
		e2 = dmrepl_dm_resume(r->ctx, r->origin_dm);
		tr = now_s();
		res->suspended_ms = (uint64_t)((tr - ts) * 1000.0 + 0.5);
		if (e2 < 0) {
			err(r->ctx, "migrate %s: cannot resume %s: run dmrepl migrate --recover",
			    m->src, r->origin_dm);
			t->finish(r, committed, false);
			return e;
		}
	}
	/* the volume runs as it was; the volume-to-be must not look like it */
	t->finish(r, committed, switched);
	res->dst_lv[0] = '\0';
	drop_record(r);
	out->seconds = now_s() - t0;
	return e;
}

/*
 * The rounds' snapshots and replicas but the last pair (a common base).
 * Another host's replicas were pruned there as the rounds went.
 */
static void cleanup_rounds(struct migrate_run *r)
{
	char vg_lv[300];

	for (unsigned int i = 0; i + 1 < r->nr; i++) {
		snprintf(vg_lv, sizeof(vg_lv), "%s/%s", r->src_vg, r->snaps[i]);
		dmrepl_migrate_lvm(r, "lvremove of a round's snapshot",
		    (const char *const[]){"lvremove", "-qq", "-y", "--", vg_lv, NULL});
		if (r->replicas[i][0] && !r->host[0])
			dmrepl_migrate_lvm(r, "lvremove of a round's replica",
			    (const char *const[]){"lvremove", "-qq", "-y", "--", r->replicas[i],
						  NULL});
	}
}

static int run_job(struct dmrepl_migrate *m)
{
	struct migrate_run *r = calloc(1, sizeof(*r));
	struct dmrepl_migrate_result *res = &m->result;
	uint64_t est = 0, prev = UINT64_MAX, converge;
	double t0 = now_s();
	int e;

	if (!r)
		return -ENOMEM;
	r->m = m;
	r->ctx = m->ctx;
	r->started = time(NULL);
	r->src = m->src;
	r->state_dir = m->state_dir;
	r->target = m->remote ? &dmrepl_migrate_remote : &dmrepl_migrate_local;
	e = dmrepl_migrate_split(m->src, r->src_vg, sizeof(r->src_vg), r->src_lv, sizeof(r->src_lv));
	if (e == 0 && m->remote) {
		const char *vg_pool;

		e = dmrepl_remote_parse_url(m->dst, r->host, sizeof(r->host), &vg_pool);
		if (e == 0)
			e = dmrepl_migrate_split(vg_pool, r->dst_vg, sizeof(r->dst_vg),
						 r->dst_pool, sizeof(r->dst_pool));
	} else if (e == 0) {
		e = dmrepl_migrate_split(m->dst, r->dst_vg, sizeof(r->dst_vg), r->dst_pool,
					 sizeof(r->dst_pool));
	}
	if (e < 0) {
		err(m->ctx, "migrate: '%s' to '%s': give VG/LV and VG/POOL (or "
			    "ssh://[USER@]HOST/VG/POOL)", m->src, m->dst);
		goto out;
	}
	if (!m->remote && strcmp(r->src_vg, r->dst_vg) == 0) {
		err(m->ctx, "migrate %s: the destination %s is in the same VG", m->src, m->dst);
		e = -EINVAL;
		goto out;
	}
	e = dmrepl_lvm_dm_name(r->src_vg, r->src_lv, r->origin_dm, sizeof(r->origin_dm));
	if (e == 0)
		e = dmrepl_migrate_recover(m->ctx, m->state_dir, NULL);
	if (e == 0)
		e = dmrepl_lvm_lookup(m->ctx, m->src, &r->origin);
	if (e == 0 && (strcmp(r->origin.segtype, "thin") != 0 ||
		       r->origin.thin_id == DMREPL_THIN_ID_ANY)) {
		err(m->ctx, "migrate %s: not a thin LV", m->src);
		e = -EINVAL;
	}
	if (e == 0)
		e = dmrepl_migrate_pool_dm(r, r->src_vg, r->origin.pool_lv, r->src_pool_dm,
					   sizeof(r->src_pool_dm));
	/* the volume's name must be free there before any round runs */
	if (e == 0)
		e = r->target->check(r);
	if (e < 0)
		goto out;
	res->size_bytes = r->origin.size_bytes;
	for (;;) {
		struct dmrepl_migrate_round *rd = &res->rounds[res->nr_rounds];

		e = round_once(r, res->nr_rounds + 1, rd);
		if (e < 0)
			goto out;
		res->total_bytes += rd->bytes;
		res->nr_rounds++;
		e = delta_bytes(r, r->snap_ids[r->nr - 1], &est);
		if (e < 0)
			goto out;
		/*
		 * By default what the last round's rate ships in 0.5 s; but a
		 * full round's rate (one sequential stream) says nothing of how
		 * fast scattered changes ship: after it, only the floor.
		 */
		converge = m->converge ? m->converge
				       : rd->full ? 0 : (uint64_t)(r->rate * CONVERGE_SECONDS);
		if (converge < CONVERGE_MIN && !m->converge)
			converge = CONVERGE_MIN;
		res->converge_bytes = converge;
		info(m->ctx, "migrate %s: %" PRIu64 " bytes changed since round %u (converge at %"
			     PRIu64 ")", m->src, est, res->nr_rounds, converge);
		if (est <= converge)
			break;
		if (res->nr_rounds > 1 && est >= prev) {
			snprintf(res->reason, sizeof(res->reason),
				 "the deltas stopped shrinking (%" PRIu64 " bytes after round %u, "
				 "%" PRIu64 " before): the volume is written faster than it ships",
				 est, res->nr_rounds, prev);
			e = -EAGAIN;
			goto out;
		}
		if (res->nr_rounds >= m->max_rounds || res->nr_rounds + 1 >= DMREPL_MIGRATE_MAX_ROUNDS) {
			snprintf(res->reason, sizeof(res->reason),
				 "%u rounds and the delta is still %" PRIu64 " bytes (converge at %"
				 PRIu64 ")", res->nr_rounds, est, converge);
			e = -EAGAIN;
			goto out;
		}
		prev = est;
		if (cancelled(m)) {
			e = -ECANCELED;
			goto out;
		}
	}
	res->converged = true;
	e = final_round(r, &res->rounds[res->nr_rounds]);
	if (res->switched || res->rounds[res->nr_rounds].bytes) {
		res->total_bytes += res->rounds[res->nr_rounds].bytes;
		res->nr_rounds++;
	}
out:
	if (e == -EAGAIN)
		err(m->ctx, "migrate %s: stopped: %s; %s runs on, untouched", m->src, res->reason,
		    m->src);
	cleanup_rounds(r);
	res->seconds = now_s() - t0;
	free(r);
	return e;
}

static int finish(struct dmrepl_migrate *m)
{
	int e = run_job(m);

	pthread_mutex_lock(&m->lock);
	m->status = e;
	m->finished = true;
	m->progress.phase = DMREPL_MIGRATE_DONE;
	m->progress.finished = 1;
	pthread_mutex_unlock(&m->lock);
	return e;
}

static void *job_thread(void *data)
{
	finish(data);
	return NULL;
}

/* ---- the API ---- */

DMREPL_EXPORT int dmrepl_migrate_new(struct dmrepl_ctx *ctx, const char *src_vg_lv,
				     const char *dst_vg_pool, struct dmrepl_migrate **ret)
{
	struct dmrepl_migrate *m;

	if (!ctx || !src_vg_lv || !dst_vg_pool || !ret)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->refcount = 1;
	m->ctx = dmrepl_ref(ctx);
	m->max_rounds = DEFAULT_MAX_ROUNDS;
	pthread_mutex_init(&m->lock, NULL);
	m->src = strdup(src_vg_lv);
	m->dst = strdup(dst_vg_pool);
	m->remote = strncmp(dst_vg_pool, "ssh://", 6) == 0;
	if (!m->src || !m->dst) {
		dmrepl_migrate_unref(m);
		return -ENOMEM;
	}
	*ret = m;
	return 0;
}

DMREPL_EXPORT struct dmrepl_migrate *dmrepl_migrate_unref(struct dmrepl_migrate *m)
{
	if (!m || --m->refcount > 0)
		return NULL;
	if (m->threaded && !m->joined) {
		dmrepl_migrate_cancel(m);
		pthread_join(m->thread, NULL);
	}
	pthread_mutex_destroy(&m->lock);
	free(m->src);
	free(m->dst);
	free(m->state_dir);
	free(m->transport);
	free(m->remote_cmd);
	free(m->remote_state_dir);
	dmrepl_unref(m->ctx);
	free(m);
	return NULL;
}

DMREPL_EXPORT int dmrepl_migrate_set_converge(struct dmrepl_migrate *m, uint64_t bytes)
{
	if (!m || m->started)
		return m ? -EBUSY : -EINVAL;
	m->converge = bytes;
	return 0;
}

DMREPL_EXPORT int dmrepl_migrate_set_max_rounds(struct dmrepl_migrate *m, unsigned int n)
{
	if (!m || !n || n >= DMREPL_MIGRATE_MAX_ROUNDS)
		return -EINVAL;
	if (m->started)
		return -EBUSY;
	m->max_rounds = n;
	return 0;
}

DMREPL_EXPORT int dmrepl_migrate_set_switch_fn(struct dmrepl_migrate *m,
					       int (*fn)(const char *dst_vg_lv, void *data),
					       void *data)
{
	if (!m || m->started)
		return m ? -EBUSY : -EINVAL;
	m->switch_fn = fn;
	m->switch_data = data;
	return 0;
}

static int set_string(struct dmrepl_migrate *m, char **field, const char *value,
		      bool remote_only)
{
	char *v;

	if (!m || !value || !*value || (remote_only && !m->remote))
		return -EINVAL;
	if (m->started)
		return -EBUSY;
	v = strdup(value);
	if (!v)
		return -ENOMEM;
	free(*field);
	*field = v;
	return 0;
}

DMREPL_EXPORT int dmrepl_migrate_set_state_dir(struct dmrepl_migrate *m, const char *dir)
{
	return set_string(m, m ? &m->state_dir : NULL, dir, false);
}

DMREPL_EXPORT int dmrepl_migrate_set_transport(struct dmrepl_migrate *m, const char *command)
{
	return set_string(m, m ? &m->transport : NULL, command, true);
}

DMREPL_EXPORT int dmrepl_migrate_set_remote_command(struct dmrepl_migrate *m,
						    const char *dmrepl_path)
{
	return set_string(m, m ? &m->remote_cmd : NULL, dmrepl_path, true);
}

DMREPL_EXPORT int dmrepl_migrate_set_remote_state_dir(struct dmrepl_migrate *m,
						      const char *dir)
{
	return set_string(m, m ? &m->remote_state_dir : NULL, dir, true);
}

const char *dmrepl_migrate_get_dst(const struct dmrepl_migrate *m)
{
	return m->dst;
}

const char *dmrepl_migrate_get_transport(const struct dmrepl_migrate *m)
{
	return m->transport;
}

const char *dmrepl_migrate_get_remote_cmd(const struct dmrepl_migrate *m)
{
	return m->remote_cmd;
}

const char *dmrepl_migrate_get_remote_state_dir(const struct dmrepl_migrate *m)
{
	return m->remote_state_dir;
}

DMREPL_EXPORT int dmrepl_migrate_start(struct dmrepl_migrate *m)
{
	sigset_t all, old;
	int e;

	if (!m)
		return -EINVAL;
	if (m->started)
		return -EBUSY;
	m->started = true;
	/* signals go to the caller's threads, not the job's */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	e = -pthread_create(&m->thread, NULL, job_thread, m);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e == 0)
		m->threaded = true;
	return e;
}

DMREPL_EXPORT int dmrepl_migrate_get_progress(struct dmrepl_migrate *m,
					      struct dmrepl_migrate_progress *ret)
{
	if (!m || !ret)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	*ret = m->progress;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

DMREPL_EXPORT void dmrepl_migrate_cancel(struct dmrepl_migrate *m)
{
	if (!m)
		return;
	__atomic_store_n(&m->cancelled, 1, __ATOMIC_RELEASE);
	pthread_mutex_lock(&m->lock);
	/* a round stops; the final round finishes or undoes itself */
	if (m->rep && m->progress.phase == DMREPL_MIGRATE_ROUND)
		dmrepl_replicate_cancel(m->rep);
	pthread_mutex_unlock(&m->lock);
}

DMREPL_EXPORT int dmrepl_migrate_wait(struct dmrepl_migrate *m,
				      struct dmrepl_migrate_result *ret)
{
	if (!m || !m->started)
		return -EINVAL;
	if (m->threaded && !m->joined) {
		pthread_join(m->thread, NULL);
		m->joined = true;
	}
	if (ret)
		*ret = m->result;
	return m->status;
}

DMREPL_EXPORT int dmrepl_migrate_run(struct dmrepl_migrate *m,
				     struct dmrepl_migrate_result *ret)
{
	if (!m)
		return -EINVAL;
	if (m->started)
		return -EBUSY;
	m->started = true;
	finish(m);
	if (ret)
		*ret = m->result;
	return m->status;
}

/* ---- recovery ---- */

static bool alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

DMREPL_EXPORT int dmrepl_migrate_recover(struct dmrepl_ctx *ctx, const char *state_dir,
					 unsigned int *ret_resumed)
{
	char dir[4000], path[4300], line[1024], origin[520] = "", dst[300] = "";
	char pools[2][128];
	unsigned int n = 0;
	int pid = 0, e = 0;
	FILE *f;
	DIR *d;
	struct dirent *de;

	if (ret_resumed)
		*ret_resumed = 0;
	if (record_dir(state_dir, dir, sizeof(dir)) < 0)
		return -ENAMETOOLONG;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		pid = 0;
		origin[0] = dst[0] = pools[0][0] = pools[1][0] = '\0';
		while (fgets(line, sizeof(line), f)) {
			sscanf(line, "pid %d", &pid);
			sscanf(line, "origin %519s", origin);
			sscanf(line, "destination %299s", dst);
			sscanf(line, "pools %127s %127s", pools[0], pools[1]);
		}
		fclose(f);
		if (alive(pid) || !origin[0])
			continue;
		notice(ctx, "a migrate (pid %d) of %s was killed: resuming it", pid, origin);
		if (dmrepl_dm_resume(ctx, origin) < 0 && e == 0)
			e = -EIO;
		/* the devices it mapped (the volume's thin, the volume-to-be) */
		for (int i = 0; i < 2; i++) {
			struct dmrepl_pool *pool = NULL;

			if (pools[i][0] && strcmp(pools[i], "-") != 0 &&
			    dmrepl_pool_open(ctx, pools[i], &pool) == 0)
				dmrepl_pool_sweep(pool, NULL);
			dmrepl_pool_unref(pool);
		}
		/*
		 * What the volume-to-be's tags say, whatever the phase (a job
		 * killed between the record's "committed" and the lvchange):
		 * uncommitted, it goes; committed, it is not the volume.
		 */
		if (!strncmp(dst, "ssh://", 6)) {
			/* its far side undid itself when the connection ended */
		} else if (dst[0]) {
			char tagbuf[320], tag[340];
			struct dmrepl_lvm_lv lv;

			if (dmrepl_lvm_lookup(ctx, dst, &lv) < 0)
				;
			else if (dmrepl_lvm_has_tag(&lv, TAG_MIGRATING)) {
				/* lvremove of a thin another device maps would leave the thin */
				if (dmrepl_lvm_thin_removable(ctx, &lv) == 0)
					dmrepl_lvm_run(ctx, (const char *const[]){"lvremove", "-qq",
						"-y", "--", dst, NULL}, NULL, NULL, 0);
			} else if (dmrepl_lvm_tag_value(&lv, TAG_MIGRATED, tagbuf,
							sizeof(tagbuf)) == 0) {
				snprintf(tag, sizeof(tag), TAG_MIGRATED "%s", tagbuf);
				dmrepl_lvm_run(ctx, (const char *const[]){"lvchange", "-qq", "--deltag",
					tag, "--addtag", TAG_NOT_SWITCHED, "--", dst, NULL}, NULL, NULL, 0);
			}
		}
		unlink(path);
		n++;
	}
	closedir(d);
	if (ret_resumed)
		*ret_resumed = n;
	return e;
}
