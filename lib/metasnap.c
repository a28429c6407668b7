/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A live pool's metadata snapshot: reserve it under the per-pool lock,
 * read the metadata through it, release it when the reader is done.
 *
 * The lock file's record is written before and after each message, and
 * cleared before the release is sent, so that a run finding a held
 * snapshot can tell whether a dmrepl that died left it: only then is it
 * released without asking. Fatal signals are blocked across each
 * message and its record, so Ctrl-C cannot fall between the two.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "libdmrepl-private.h"

struct dmrepl_pool_snap {
	struct dmrepl_pool *pool;
	struct dmrepl_lock *lock;
	uint64_t root;
};

static void record_set(struct dmrepl_lock_record *rec,
		       enum dmrepl_snap_state state, uint64_t root)
{
	rec->holder = getpid();
	rec->state = state;
	rec->owner = state == DMREPL_SNAP_NONE ? 0 : getpid();
	rec->root = root;
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
			uint64_t root)
{
	struct dmrepl_lock_record rec;
	int r;

	record_set(&rec, DMREPL_SNAP_NONE, 0);
	r = dmrepl_lock_write(lock, &rec);
	if (r < 0)
		return r;
	r = dmrepl_dm_message(dmrepl_pool_get_ctx(pool),
			      dmrepl_pool_get_name(pool),
			      "release_metadata_snap");
	if (r == -EINVAL) {
		warn(dmrepl_pool_get_ctx(pool),
		     "pool %s: the metadata snapshot (root block %" PRIu64
		     ") was already released by someone else",
		     dmrepl_pool_get_name(pool), root);
		return 0;
	}
	if (r < 0) {
		/* leave the proof, so that the next run releases it */
		record_set(&rec, DMREPL_SNAP_RESERVED, root);
		dmrepl_lock_write(lock, &rec);
		return message_error(pool, "release_metadata_snap", r);
	}
	dbg(dmrepl_pool_get_ctx(pool),
	    "pool %s: released metadata snapshot %" PRIu64,
	    dmrepl_pool_get_name(pool), root);
	return 0;
}

/*
 * A snapshot is held before we reserve: release it if a dead dmrepl left
 * it (the record names exactly this root), else refuse.
 */
static int check_held(struct dmrepl_pool *pool, struct dmrepl_lock *lock,
		      const struct dmrepl_lock_record *old, uint64_t held)
{
	const char *name = dmrepl_pool_get_name(pool);

	if (old->state == DMREPL_SNAP_RESERVED && old->root == held) {
		warn(dmrepl_pool_get_ctx(pool),
		     "pool %s: releasing metadata snapshot (root block %" PRIu64
		     ") left by dmrepl pid %d",
		     name, held, (int)old->owner);
		return send_release(pool, lock, held);
	}
	if (old->state == DMREPL_SNAP_RESERVING) {
		err(dmrepl_pool_get_ctx(pool),
		    "pool %s: a metadata snapshot is already held (root "
		    "block %" PRIu64 "); dmrepl pid %d died while reserving "
		    "one, so it "
		    "may be that one or another tool's; if no other tool uses "
		    "it, release it with: dmsetup message %s 0 "
		    "release_metadata_snap",
		    name, held, (int)old->owner, name);
		return -EBUSY;
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

/* Send reserve_metadata_snap; *ret_root is the root the kernel reports. */
static int reserve(struct dmrepl_pool *pool, struct dmrepl_lock *lock,
		   uint64_t *ret_root)
{
	struct dmrepl_ctx *ctx = dmrepl_pool_get_ctx(pool);
	const char *name = dmrepl_pool_get_name(pool);
	struct dmrepl_pool_status st = {0};
	struct dmrepl_lock_record rec;
	int r;

	record_set(&rec, DMREPL_SNAP_RESERVING, 0);
	r = dmrepl_lock_write(lock, &rec);
	if (r < 0)
		return r;
	r = dmrepl_dm_message(ctx, name, "reserve_metadata_snap");
	if (r < 0) {
		record_set(&rec, DMREPL_SNAP_NONE, 0);
		dmrepl_lock_write(lock, &rec);
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
	if (r == 0) {
		record_set(&rec, DMREPL_SNAP_RESERVED, st.held_metadata_root);
		r = dmrepl_lock_write(lock, &rec);
	}
	if (r < 0) {
		/* the kernel accepted the message: the snapshot is ours */
		send_release(pool, lock, st.held_metadata_root);
		return r;
	}
	*ret_root = st.held_metadata_root;
	return 0;
}

/* Under the lock: clear what a dead dmrepl left, then reserve. */
static int reserve_locked(struct dmrepl_pool *pool, struct dmrepl_lock *lock,
			  uint64_t *ret_root)
{
	struct dmrepl_lock_record old = {0}, rec;
	struct dmrepl_pool_status st;
	int r;

	/* an unreadable record proves nothing: treated as empty */
	dmrepl_lock_read(lock, &old);
	/* keep the old reservation facts, but name us as the holder */
	rec = old;
	rec.holder = getpid();
	r = dmrepl_lock_write(lock, &rec);
	if (r < 0)
		return r;
	r = pool_status(pool, &st);
	if (r < 0)
		return r;
	if (st.held_metadata_root) {
		r = check_held(pool, lock, &old, st.held_metadata_root);
		if (r < 0)
			return r;
	}
	return reserve(pool, lock, ret_root);
}

int dmrepl_pool_snap_reserve(struct dmrepl_pool *pool,
			     struct dmrepl_pool_snap **ret_snap)
{
	struct dmrepl_pool_snap *snap;
	struct dmrepl_lock *lock = NULL;
	uint64_t root = 0;
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
	dmrepl_signals_block(&old);
	r = reserve_locked(pool, lock, &root);
	dmrepl_signals_restore(&old);
	if (r < 0)
		goto fail;
	snap->pool = dmrepl_pool_ref(pool);
	snap->lock = lock;
	snap->root = root;
	info(dmrepl_pool_get_ctx(pool),
	     "pool %s: reserved metadata snapshot, root block %" PRIu64,
	     dmrepl_pool_get_name(pool), root);
	*ret_snap = snap;
	return 0;
fail:
	dmrepl_lock_drop(lock);
	free(snap);
	return r;
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
	r = send_release(snap->pool, snap->lock, snap->root);
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
