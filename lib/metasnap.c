/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A live pool's metadata snapshot: reserve it under the per-pool lock,
 * read the metadata through it, release it when the reader is done; and
 * release one that a killed dmrepl left, never one another tool holds.
 *
 * The record in the lock file (lib/lock.c) goes through four states:
 *
 *   NONE --> RESERVING --(message)--> RESERVED --> RELEASING --(message)--> NONE
 *
 * RESERVING is written (and fsynced: a held root survives a power cut)
 * before reserve_metadata_snap is sent, with the pool's transaction id;
 * RESERVED after it, with the held root and what the root's superblock
 * copy says; RELEASING before release_metadata_snap; NONE after it. So a
 * dmrepl killed at any point leaves a record that says what it may have
 * done. The next run, holding the lock (so that dmrepl is dead), finds
 * a held root and judges it (dmrepl_held_judge()):
 *
 *   - someone has the metadata device open: in use, never released;
 *   - the record is NONE: another tool's, never released;
 *   - RESERVED or RELEASING: ours if the held root is the recorded block
 *     and its copy says what the record says;
 *   - RESERVING: ours if the copy is not older than the record (its
 *     transaction id); the kernel cannot tell us more (doc/architecture.md
 *     gives the remaining window).
 *
 * Fatal signals are blocked across each message and its record, so
 * Ctrl-C cannot fall between the two; SIGKILL is what the above is for.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "metadata.h"
#include "dm.h"

struct dmrepl_pool_snap {
	struct dmrepl_pool *pool;
	struct dmrepl_lock *lock;
	uint64_t root;
	struct dmrepl_snap_copy copy;
};

/* Who has the metadata device open, for the decision and the message. */
struct readers {
	pid_t pids[8];
	size_t n;	/* processes seen, may exceed ARRAY_SIZE(pids) */
	int unseen;	/* opens of a dm device no process here accounts for */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void record_set(struct dmrepl_lock_record *rec,
		       enum dmrepl_snap_state state, uint64_t root,
		       const struct dmrepl_snap_copy *copy)
{
	*rec = (struct dmrepl_lock_record){
	    .holder = getpid(),
	    .state = state,
	    .owner = state == DMREPL_SNAP_NONE ? 0 : getpid(),
	    .root = root,
	};
	if (copy)
		rec->copy = *copy;
}

static bool same_copy(const struct dmrepl_snap_copy *a,
		      const struct dmrepl_snap_copy *b)
{
	return a->trans_id == b->trans_id &&
	       a->mapping_root == b->mapping_root &&
	       a->details_root == b->details_root && a->time == b->time;
}

static bool copy_unknown(const struct dmrepl_snap_copy *c)
{
	return !c->trans_id && !c->mapping_root && !c->details_root && !c->time;
}

enum dmrepl_held_verdict dmrepl_held_judge(const struct dmrepl_lock_record *rec,
					   uint64_t held,
					   const struct dmrepl_snap_copy *copy,
					   bool in_use)
{
	if (in_use)
		return DMREPL_HELD_IN_USE;
	if (!held || !copy)
		return DMREPL_HELD_OTHER;
	switch (rec->state) {
	case DMREPL_SNAP_RESERVED:
	case DMREPL_SNAP_RELEASING:
		/* a record from before copies were recorded has only the root */
		if (held == rec->root &&
		    (copy_unknown(&rec->copy) || same_copy(copy, &rec->copy)))
			return DMREPL_HELD_OURS;
		return DMREPL_HELD_OTHER;
	case DMREPL_SNAP_RESERVING:
		/* made when or after the message was sent: not an older one */
		if (copy->trans_id >= rec->copy.trans_id)
			return DMREPL_HELD_OURS;
		return DMREPL_HELD_OTHER;
	case DMREPL_SNAP_NONE:
	default:
		return DMREPL_HELD_OTHER;
	}
}

static int message_error(struct dmrepl_pool *pool, const char *message, int r)
{
	const char *name = dmrepl_pool_get_name(pool);
	struct dmrepl_ctx *ctx = dmrepl_pool_get_ctx(pool);

	if (r == -EOPNOTSUPP) {
		err(ctx,
		    "pool %s: the kernel refuses %s: the pool is read-only "
		    "or failed (see the kernel log)",
		    name, message);
		return -EROFS;
	}
	err(ctx, "pool %s: %s failed: %s", name, message, strerror(-r));
	return r;
}

static int send_release(struct dmrepl_pool *pool, struct dmrepl_lock *lock,
			uint64_t root, const struct dmrepl_snap_copy *copy)
{
	struct dmrepl_ctx *ctx = dmrepl_pool_get_ctx(pool);
	const char *name = dmrepl_pool_get_name(pool);
	struct dmrepl_lock_record rec;
	uint64_t t0, t1;
	int r;

	/*
	 * Not fsynced: lost in a power cut, the record reads RESERVED for
	 * the same root and copy, which the next run judges the same way.
	 */
	record_set(&rec, DMREPL_SNAP_RELEASING, root, copy);
	r = dmrepl_lock_write(lock, &rec, false);
	if (r < 0)
		return r;
	dmrepl_test_point("release-recorded");
	t0 = now_ns();
	r = dmrepl_dm_message(ctx, name, "release_metadata_snap");
	t1 = now_ns();
	dmrepl_test_point("release-sent");
	if (r < 0 && r != -EINVAL) {
		/* still held: the record says so, so the next run releases it */
		record_set(&rec, DMREPL_SNAP_RESERVED, root, copy);
		dmrepl_lock_write(lock, &rec, false);
		return message_error(pool, "release_metadata_snap", r);
	}
	record_set(&rec, DMREPL_SNAP_NONE, 0, NULL);
	dmrepl_lock_write(lock, &rec, false);
	dbg(ctx,
	    "pool %s: release window: the message took %.2f ms, its record "
	    "was cleared %.1f us after it returned",
	    name, (double)(t1 - t0) / 1e6, (double)(now_ns() - t1) / 1e3);
	if (r == -EINVAL) {
		warn(ctx,
		     "pool %s: the metadata snapshot (root block %" PRIu64
		     ") was already released by someone else",
		     name, root);
		return 0;
	}
	dbg(ctx, "pool %s: released metadata snapshot %" PRIu64, name, root);
	return 0;
}

static void find_readers(struct dmrepl_pool *pool, struct readers *rd)
{
	dev_t devt = dmrepl_pool_get_metadata_devt(pool);
	struct dmrepl_ctx *ctx = dmrepl_pool_get_ctx(pool);
	int r;

	memset(rd, 0, sizeof(*rd));
	r = dmrepl_dev_openers(devt, rd->pids, ARRAY_SIZE(rd->pids), &rd->n);
	if (r < 0) {
		/* cannot look: assume the worst */
		warn(ctx, "pool %s: cannot list the processes using %s: %s",
		     dmrepl_pool_get_name(pool),
		     dmrepl_pool_get_metadata_path(pool), strerror(-r));
		rd->unseen = 1;
		return;
	}
	if (rd->n == 0 &&
	    dmrepl_dev_unseen_openers(ctx, devt, 0, &rd->unseen) < 0)
		rd->unseen = 1;
}

static void describe_readers(const struct readers *rd, char *buf, size_t size)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < rd->n && i < ARRAY_SIZE(rd->pids); i++) {
		char comm[32];

		dmrepl_pid_comm(rd->pids[i], comm, sizeof(comm));
		len += (size_t)snprintf(buf + len, len < size ? size - len : 0,
					"%spid %d (%s)", i ? ", " : "",
					(int)rd->pids[i], comm);
	}
	if (rd->n > ARRAY_SIZE(rd->pids))
		len += (size_t)snprintf(buf + len, len < size ? size - len : 0,
					" and %zu more",
					rd->n - ARRAY_SIZE(rd->pids));
	if (rd->unseen)
		snprintf(buf + len, len < size ? size - len : 0,
			 "%s%d opener%s not visible from here (another PID "
			 "namespace, or the kernel)",
			 rd->n ? ", and " : "", rd->unseen,
			 rd->unseen == 1 ? "" : "s");
}

static int held_by_other(struct dmrepl_pool *pool, uint64_t root)
{
	const char *name = dmrepl_pool_get_name(pool);

	err(dmrepl_pool_get_ctx(pool),
	    "pool %s: a metadata snapshot is already held (root block %" PRIu64
	    ") by another tool; release it with: dmsetup message %s 0 "
	    "release_metadata_snap",
	    name, root, name);
	return -EBUSY;
}

static const char *left_how(enum dmrepl_snap_state state)
{
	switch (state) {
	case DMREPL_SNAP_RESERVING:
		return "killed while reserving it";
	case DMREPL_SNAP_RELEASING:
		return "killed while releasing it";
	default:
		return "killed while holding it";
	}
}

/*
 * A root @held is held and the lock is ours (so no dmrepl is running on
 * the pool): release it if a dmrepl that died left it, else refuse.
 */
static int resolve_held(struct dmrepl_pool *pool, struct dmrepl_lock *lock,
			const struct dmrepl_lock_record *old, uint64_t held,
			bool dry_run)
{
	struct dmrepl_ctx *ctx = dmrepl_pool_get_ctx(pool);
	const char *name = dmrepl_pool_get_name(pool);
	struct dmrepl_snap_copy copy;
	bool have_copy = false;
	struct readers rd;
	char who[400];
	int r;

	find_readers(pool, &rd);
	if (old->state != DMREPL_SNAP_NONE && !rd.n && !rd.unseen) {
		r = dmrepl_metadata_read_copy(
		    ctx, dmrepl_pool_get_metadata_path(pool), held, &copy);
		have_copy = r == 0;
	}
	switch (dmrepl_held_judge(old, held, have_copy ? &copy : NULL,
				  rd.n || rd.unseen)) {
	case DMREPL_HELD_OURS:
		if (dry_run) {
			notice(ctx,
			       "pool %s: would release the metadata snapshot "
			       "(root block %" PRIu64 ") that dmrepl pid %d left "
			       "when it was %s",
			       name, held, (int)old->owner, left_how(old->state));
			return 0;
		}
		warn(ctx,
		     "pool %s: releasing the metadata snapshot (root block "
		     "%" PRIu64 ") that dmrepl pid %d left when it was %s",
		     name, held, (int)old->owner, left_how(old->state));
		return send_release(pool, lock, held, &copy);
	case DMREPL_HELD_IN_USE:
		describe_readers(&rd, who, sizeof(who));
		err(ctx,
		    "pool %s: a metadata snapshot is held (root block %" PRIu64
		    ") and the metadata device %s is open: %s; dmrepl never "
		    "releases a snapshot that is being read: wait for that "
		    "program to finish%s",
		    name, held, dmrepl_pool_get_metadata_path(pool), who,
		    old->state != DMREPL_SNAP_NONE
			? " (dmrepl left this snapshot: the next run after it "
			  "releases it)"
			: "");
		return -EBUSY;
	case DMREPL_HELD_OTHER:
	default:
		break;
	}
	return held_by_other(pool, held);
}

static int pool_status(struct dmrepl_pool *pool,
		       struct dmrepl_pool_status *ret_status)
{
	int r = dmrepl_pool_get_status(pool, ret_status);

	if (r < 0)
		return r;
	if (ret_status->fail || ret_status->read_only) {
		err(dmrepl_pool_get_ctx(pool),
		    "pool %s is %s: the kernel accepts no messages, so no "
		    "metadata snapshot can be reserved; unless it was made "
		    "read-only on purpose, see the kernel log (the metadata "
		    "may need thin_check)",
		    dmrepl_pool_get_name(pool),
		    ret_status->fail ? "in fail mode" : "read-only");
		return -EROFS;
	}
	return 0;
}

/* Send reserve_metadata_snap; the root and its copy are returned. */
static int reserve(struct dmrepl_pool *pool, struct dmrepl_lock *lock,
		   uint64_t trans_id, struct dmrepl_pool_snap *snap)
{
	struct dmrepl_ctx *ctx = dmrepl_pool_get_ctx(pool);
	const char *name = dmrepl_pool_get_name(pool);
	struct dmrepl_snap_copy before = {.trans_id = trans_id};
	struct dmrepl_pool_status st = {0};
	struct dmrepl_lock_record rec;
	uint64_t t0, t1, t2;
	int r;

	record_set(&rec, DMREPL_SNAP_RESERVING, 0, &before);
	t0 = now_ns();
	r = dmrepl_lock_write(lock, &rec, true);
	if (r < 0)
		return r;
	dmrepl_test_point("reserve-recorded");
	t1 = now_ns();
	r = dmrepl_dm_message(ctx, name, "reserve_metadata_snap");
	t2 = now_ns();
	dmrepl_test_point("reserve-sent");
	dbg(ctx,
	    "pool %s: reserve window: the record was written (and synced) "
	    "%.1f us before the message, which took %.2f ms",
	    name, (double)(t1 - t0) / 1e3, (double)(t2 - t1) / 1e6);
	if (r < 0) {
		record_set(&rec, DMREPL_SNAP_NONE, 0, NULL);
		dmrepl_lock_write(lock, &rec, false);
		/* another tool reserved one since we looked */
		if (r == -EBUSY && dmrepl_pool_get_status(pool, &st) == 0)
			return held_by_other(pool, st.held_metadata_root);
		return message_error(pool, "reserve_metadata_snap", r);
	}
	r = dmrepl_pool_get_status(pool, &st);
	if (r == 0 && st.held_metadata_root == 0) {
		err(ctx,
		    "pool %s: reserve_metadata_snap succeeded but the "
		    "status shows no held root",
		    name);
		r = -EIO;
	}
	if (r == 0)
		r = dmrepl_metadata_read_copy(
		    ctx, dmrepl_pool_get_metadata_path(pool),
		    st.held_metadata_root, &snap->copy);
	if (r == 0) {
		/* not synced: lost, it reads RESERVING, judged as ours too */
		record_set(&rec, DMREPL_SNAP_RESERVED, st.held_metadata_root,
			   &snap->copy);
		r = dmrepl_lock_write(lock, &rec, false);
	}
	if (r < 0) {
		/* the kernel accepted the message: the snapshot is ours */
		if (st.held_metadata_root)
			send_release(pool, lock, st.held_metadata_root,
				     &snap->copy);
		return r;
	}
	snap->root = st.held_metadata_root;
	return 0;
}

/*
 * Under the lock: resolve what a dead dmrepl left. With @snap, reserve;
 * without, only report (recover). *@ret_released says whether a left
 * snapshot was released.
 */
static int resolve_locked(struct dmrepl_pool *pool, struct dmrepl_lock *lock,
			  struct dmrepl_pool_snap *snap, bool dry_run,
			  bool *ret_released)
{
	struct dmrepl_lock_record old = {0}, rec;
	struct dmrepl_pool_status st;
	int r;

	/* an unreadable record proves nothing: treated as empty */
	dmrepl_lock_read(lock, &old);
	r = pool_status(pool, &st);
	if (r < 0)
		return r;
	if (st.held_metadata_root) {
		r = resolve_held(pool, lock, &old, st.held_metadata_root,
				 dry_run);
		if (r < 0)
			return r;
		*ret_released = true;
	} else if (old.state != DMREPL_SNAP_NONE) {
		/* it died before the kernel acted, or after it released */
		info(dmrepl_pool_get_ctx(pool),
		     "pool %s: dmrepl pid %d was killed while %s a metadata "
		     "snapshot; the kernel holds none",
		     dmrepl_pool_get_name(pool), (int)old.owner,
		     old.state == DMREPL_SNAP_RELEASING ? "releasing"
		     : old.state == DMREPL_SNAP_RESERVING ? "reserving"
							   : "holding");
	}
	if (!snap && dry_run)
		return 0;
	if (!snap) {
		record_set(&rec, DMREPL_SNAP_NONE, 0, NULL);
		return dmrepl_lock_write(lock, &rec, false);
	}
	return reserve(pool, lock, st.transaction_id, snap);
}

int dmrepl_pool_snap_reserve(struct dmrepl_pool *pool,
			     struct dmrepl_pool_snap **ret_snap)
{
	struct dmrepl_pool_snap *snap;
	struct dmrepl_lock *lock = NULL;
	bool released = false;
	sigset_t old;
	int r;

	if (!pool || !ret_snap)
		return -EINVAL;
	snap = calloc(1, sizeof(*snap));
	if (!snap)
		return -ENOMEM;
	r = dmrepl_lock_take(dmrepl_pool_get_ctx(pool),
			     dmrepl_pool_get_name(pool), &lock);
	if (r < 0)
		goto fail;
	/* what a killed dmrepl left mapped; a failure here blocks nothing */
	(void)dmrepl_pool_sweep(pool, NULL);
	dmrepl_signals_block(&old);
	r = resolve_locked(pool, lock, snap, false, &released);
	dmrepl_signals_restore(&old);
	if (r < 0)
		goto fail;
	snap->pool = dmrepl_pool_ref(pool);
	snap->lock = lock;
	info(dmrepl_pool_get_ctx(pool),
	     "pool %s: reserved metadata snapshot, root block %" PRIu64,
	     dmrepl_pool_get_name(pool), snap->root);
	*ret_snap = snap;
	return 0;
fail:
	dmrepl_lock_drop(lock);
	free(snap);
	return r;
}

static int snap_recover(struct dmrepl_pool *pool, bool dry_run,
			bool *ret_released, unsigned int *ret_removed)
{
	struct dmrepl_lock *lock = NULL;
	bool released = false;
	sigset_t old;
	int r;

	if (!pool)
		return -EINVAL;
	r = dmrepl_lock_take(dmrepl_pool_get_ctx(pool),
			     dmrepl_pool_get_name(pool), &lock);
	if (r < 0)
		return r;
	r = dry_run ? dmrepl_pool_sweep_count(pool, ret_removed)
		    : dmrepl_pool_sweep(pool, ret_removed);
	if (r < 0) {
		dmrepl_lock_drop(lock);
		return r;
	}
	dmrepl_signals_block(&old);
	r = resolve_locked(pool, lock, NULL, dry_run, &released);
	dmrepl_signals_restore(&old);
	dmrepl_lock_drop(lock);
	if (ret_released)
		*ret_released = released;
	return r;
}

int dmrepl_pool_snap_recover(struct dmrepl_pool *pool, bool *ret_released,
			     unsigned int *ret_removed)
{
	return snap_recover(pool, false, ret_released, ret_removed);
}

int dmrepl_pool_snap_recover_dry_run(struct dmrepl_pool *pool,
				     bool *ret_released,
				     unsigned int *ret_removed)
{
	return snap_recover(pool, true, ret_released, ret_removed);
}

uint64_t dmrepl_pool_snap_get_root(const struct dmrepl_pool_snap *snap)
{
	return snap ? snap->root : 0;
}

int dmrepl_pool_snap_release(struct dmrepl_pool_snap *snap)
{
	sigset_t old;
	int r;

	if (!snap)
		return 0;
	dmrepl_signals_block(&old);
	r = send_release(snap->pool, snap->lock, snap->root, &snap->copy);
	dmrepl_lock_drop(snap->lock);
	dmrepl_signals_restore(&old);
	dmrepl_pool_unref(snap->pool);
	free(snap);
	return r;
}

static void release_hook(void *data)
{
	dmrepl_pool_snap_release(data);
}

DMREPL_EXPORT int dmrepl_metadata_open_pool(struct dmrepl_ctx *ctx,
					    const char *pool_dm_name,
					    struct dmrepl_metadata **ret_md)
{
	struct dmrepl_pool *pool = NULL;
	struct dmrepl_pool_snap *snap = NULL;
	struct dmrepl_metadata *md = NULL;
	int r;

	if (!ctx || !pool_dm_name || !ret_md)
		return -EINVAL;
	r = dmrepl_pool_open(ctx, pool_dm_name, &pool);
	if (r < 0)
		return r;
	r = dmrepl_pool_snap_reserve(pool, &snap);
	if (r < 0)
		goto out;
	r = dmrepl_metadata_open(
	    ctx, dmrepl_pool_get_metadata_path(pool),
	    DMREPL_METADATA_USE_HELD_ROOT | DMREPL_METADATA_DIRECT, &md);
	if (r < 0)
		goto out;
	dmrepl_metadata_set_release_fn(md, release_hook, snap);
	snap = NULL; /* the metadata handle owns it now */
	*ret_md = md;
	md = NULL;
out:
	dmrepl_metadata_unref(md);
	dmrepl_pool_snap_release(snap);
	dmrepl_pool_unref(pool);
	return r;
}
