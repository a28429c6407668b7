/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Read-ahead for metadata blocks: a fixed pool of block buffers, filled
 * by io_uring with many reads in flight, or by preadv where io_uring is
 * not allowed.
 *
 * A delta reads thousands of btree nodes scattered over the device. One
 * synchronous read at a time leaves the device idle between reads, so
 * the walk submits the nodes it will need next (dmrepl_readahead_submit)
 * and takes them from the pool when it gets there. Blocks of one batch
 * that are consecutive on disk, or nearly so, are read with one readv.
 *
 * A buffer's life: FREE -> INFLIGHT -> READY (read, not yet used) ->
 * CACHED (used once, kept for a re-read until its buffer is needed;
 * least recently used first) -> FREE. Only FREE and CACHED buffers are
 * room for new reads, so read-ahead never evicts a block it has read but
 * the walk has not used yet. The pool's size bounds the memory, whatever
 * the size of the metadata. Nothing here checks a block: the btree code
 * checks each one when it uses it.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "base.h"
#include "metadata.h"

#define BLOCK DMREPL_MD_BLOCK_SIZE
#define QUEUE_DEPTH 64u
/* One read covers at most this many blocks (128 KiB)... */
#define MAX_RUN 32u
/* ...and may read up to this many unneeded blocks to join two needed. */
#define MAX_GAP 2u
#define MIN_BLOCKS 8u
/* Used blocks kept for a re-read before their buffers are reused. */
#define KEEP_USED 8u
#define MAX_BLOCKS 4096u
#define NONE (-1)

enum slot_state {
	SLOT_FREE = 0,
	SLOT_INFLIGHT,
	SLOT_READY,
	SLOT_CACHED,
};

struct slot {
	uint64_t blocknr;
	uint8_t *buf;
	enum slot_state state;
	bool forgotten;	 /* INFLIGHT, but no longer wanted */
	bool marked;	 /* READY, and dmrepl_readahead_mark() was called */
	int32_t hash_next;
	int32_t prev, next; /* the free list or the CACHED list */
};

struct request {
	uint64_t offset;
	uint32_t nr;
	int32_t slot[MAX_RUN]; /* NONE where a gap is read into junk */
	struct iovec iov[MAX_RUN];
	int32_t next_free;
};

struct list {
	int32_t head, tail;
	unsigned int n;
};

struct dmrepl_readahead {
	struct dmrepl_ctx *ctx;
	char *name;
	int fd;
	enum dmrepl_readahead_mode mode;
	unsigned int nr_slots;
	uint8_t *pool;
	uint8_t *junk;
	struct slot *slots;
	int32_t *buckets;
	uint32_t bucket_mask;
	struct list free_list, cached_list;
	struct request reqs[QUEUE_DEPTH];
	int32_t free_req;
	unsigned int inflight;
	void (*refill)(void *data);
	void *refill_data;
	bool refilling;
	bool ring_tried;
	bool ring_ready;
	struct io_uring ring;
	struct dmrepl_readahead_stats stats;
};

static const char *const mode_names[] = {
    [DMREPL_READAHEAD_URING] = "uring",
    [DMREPL_READAHEAD_SYNC] = "sync",
    [DMREPL_READAHEAD_OFF] = "off",
};

int dmrepl_readahead_parse(const char *s, enum dmrepl_readahead_mode *ret_mode,
			   unsigned int *ret_nr_blocks)
{
	unsigned int nr = DMREPL_READAHEAD_BLOCKS;
	size_t len = strcspn(s, ":");
	char *end;

	for (size_t m = 0; m < ARRAY_SIZE(mode_names); m++) {
		if (strlen(mode_names[m]) != len || strncmp(s, mode_names[m], len))
			continue;
		if (s[len] == ':') {
			unsigned long v = strtoul(s + len + 1, &end, 10);

			if (*end || end == s + len + 1 || v < MIN_BLOCKS ||
			    v > MAX_BLOCKS)
				return -EINVAL;
			nr = (unsigned int)v;
		}
		*ret_mode = (enum dmrepl_readahead_mode)m;
		*ret_nr_blocks = nr;
		return 0;
	}
	return -EINVAL;
}

/* ---- lists of slots ---- */

static void list_push(struct dmrepl_readahead *ra, struct list *l, int32_t i)
{
	struct slot *s = &ra->slots[i];

	s->prev = l->tail;
	s->next = NONE;
	if (l->tail != NONE)
		ra->slots[l->tail].next = i;
	else
		l->head = i;
	l->tail = i;
	l->n++;
}

static void list_push_front(struct dmrepl_readahead *ra, struct list *l,
			    int32_t i)
{
	struct slot *s = &ra->slots[i];

	s->prev = NONE;
	s->next = l->head;
	if (l->head != NONE)
		ra->slots[l->head].prev = i;
	else
		l->tail = i;
	l->head = i;
	l->n++;
}

static void list_del(struct dmrepl_readahead *ra, struct list *l, int32_t i)
{
	struct slot *s = &ra->slots[i];

	if (s->prev != NONE)
		ra->slots[s->prev].next = s->next;
	else
		l->head = s->next;
	if (s->next != NONE)
		ra->slots[s->next].prev = s->prev;
	else
		l->tail = s->prev;
	l->n--;
}

/* ---- the block number -> slot hash ---- */

static uint32_t bucket_of(const struct dmrepl_readahead *ra, uint64_t blocknr)
{
	return (uint32_t)((blocknr * UINT64_C(0x9e3779b97f4a7c15)) >> 40) &
	       ra->bucket_mask;
}

static int32_t lookup(const struct dmrepl_readahead *ra, uint64_t blocknr)
{
	int32_t i = ra->buckets[bucket_of(ra, blocknr)];

	while (i != NONE && ra->slots[i].blocknr != blocknr)
		i = ra->slots[i].hash_next;
	return i;
}

static void hash_add(struct dmrepl_readahead *ra, int32_t i)
{
	uint32_t b = bucket_of(ra, ra->slots[i].blocknr);

	ra->slots[i].hash_next = ra->buckets[b];
	ra->buckets[b] = i;
}

static void hash_del(struct dmrepl_readahead *ra, int32_t i)
{
	int32_t *p = &ra->buckets[bucket_of(ra, ra->slots[i].blocknr)];

	while (*p != i)
		p = &ra->slots[*p].hash_next;
	*p = ra->slots[i].hash_next;
}

/* ---- slot states ---- */

/*
 * A buffer for @blocknr: the least recently used block's, once more than
 * KEEP_USED are kept, else a free one, the last freed first. A buffer
 * never touched costs a page fault, which costs as much as a small walk
 * spends on a block: reuse warm buffers first.
 */
static int32_t slot_take(struct dmrepl_readahead *ra, uint64_t blocknr,
			 enum slot_state state)
{
	int32_t i = ra->cached_list.head;

	if (i != NONE &&
	    (ra->cached_list.n > KEEP_USED || ra->free_list.head == NONE)) {
		list_del(ra, &ra->cached_list, i);
		hash_del(ra, i);
	} else {
		i = ra->free_list.head;
		if (i == NONE)
			return NONE;
		list_del(ra, &ra->free_list, i);
	}
	ra->slots[i].blocknr = blocknr;
	ra->slots[i].state = state;
	ra->slots[i].forgotten = false;
	ra->slots[i].marked = false;
	hash_add(ra, i);
	return i;
}

static void slot_free(struct dmrepl_readahead *ra, int32_t i)
{
	if (ra->slots[i].state == SLOT_CACHED)
		list_del(ra, &ra->cached_list, i);
	hash_del(ra, i);
	ra->slots[i].state = SLOT_FREE;
	list_push_front(ra, &ra->free_list, i);
}

static void slot_used(struct dmrepl_readahead *ra, int32_t i)
{
	if (ra->slots[i].state == SLOT_CACHED)
		list_del(ra, &ra->cached_list, i);
	ra->slots[i].state = SLOT_CACHED;
	list_push(ra, &ra->cached_list, i);
}

/* ---- requests ---- */

static struct request *request_get(struct dmrepl_readahead *ra)
{
	struct request *rq;

	if (ra->free_req == NONE)
		return NULL;
	rq = &ra->reqs[ra->free_req];
	ra->free_req = rq->next_free;
	rq->nr = 0;
	return rq;
}

static void request_put(struct dmrepl_readahead *ra, struct request *rq)
{
	rq->next_free = ra->free_req;
	ra->free_req = (int32_t)(rq - ra->reqs);
}

/* @res bytes of @rq arrived (or -errno): the rest is dropped. */
static void request_done(struct dmrepl_readahead *ra, struct request *rq,
			 int64_t res)
{
	if (res < 0)
		dbg(ra->ctx,
		    "%s: read-ahead of %" PRIu32 " blocks at byte %" PRIu64
		    " failed: %s; they will be read again when needed",
		    ra->name, rq->nr, rq->offset, strerror((int)-res));
	for (uint32_t k = 0; k < rq->nr; k++) {
		int32_t i = rq->slot[k];
		bool whole = res >= (int64_t)((k + 1) * (uint64_t)BLOCK);

		if (i == NONE)
			continue;
		if (whole && !ra->slots[i].forgotten) {
			ra->slots[i].state = SLOT_READY;
			continue;
		}
		ra->stats.blocks_unused++;
		slot_free(ra, i);
	}
	request_put(ra, rq);
}

static void add_block(struct request *rq, int32_t slot, uint8_t *buf)
{
	rq->slot[rq->nr] = slot;
	rq->iov[rq->nr] = (struct iovec){.iov_base = buf, .iov_len = BLOCK};
	rq->nr++;
}

static ssize_t preadv_full(int fd, const struct iovec *iov, int n, off_t off)
{
	ssize_t r;

	do
		r = preadv(fd, iov, n, off);
	while (r < 0 && errno == EINTR);
	return r < 0 ? -errno : r;
}

/* ---- io_uring ---- */

static void ring_setup(struct dmrepl_readahead *ra)
{
	int r;

	ra->ring_tried = true;
	r = io_uring_queue_init(QUEUE_DEPTH, &ra->ring, 0);
	if (r == 0) {
		ra->ring_ready = true;
		return;
	}
	dbg(ra->ctx, "%s: io_uring is not available (%s): reading ahead with "
	    "preadv", ra->name, strerror(-r));
	ra->mode = DMREPL_READAHEAD_SYNC;
	ra->stats.mode = DMREPL_READAHEAD_SYNC;
}

static void reap_one(struct dmrepl_readahead *ra, struct io_uring_cqe *cqe)
{
	struct request *rq = io_uring_cqe_get_data(cqe);

	ra->inflight--;
	request_done(ra, rq, cqe->res);
}

/* Take every completion already posted, without a system call. */
static void reap(struct dmrepl_readahead *ra)
{
	struct io_uring_cqe *cqes[QUEUE_DEPTH];
	unsigned int n;

	if (!ra->inflight)
		return;
	n = io_uring_peek_batch_cqe(&ra->ring, cqes, QUEUE_DEPTH);
	for (unsigned int k = 0; k < n; k++)
		reap_one(ra, cqes[k]);
	io_uring_cq_advance(&ra->ring, n);
}

static int wait_one(struct dmrepl_readahead *ra)
{
	struct io_uring_cqe *cqe;
	int r;

	do
		r = io_uring_wait_cqe(&ra->ring, &cqe);
	while (r == -EINTR);
	if (r < 0)
		return r;
	reap_one(ra, cqe);
	io_uring_cqe_seen(&ra->ring, cqe);
	reap(ra);
	return 0;
}

/* Every read the kernel may still write into the pool has finished. */
static void drain(struct dmrepl_readahead *ra)
{
	while (ra->inflight > 0) {
		struct io_uring_cqe *cqe;
		int r = io_uring_wait_cqe(&ra->ring, &cqe);

		if (r < 0 && r != -EINTR)
			break;
		reap(ra);
	}
}

static void request_send(struct dmrepl_readahead *ra, struct request *rq)
{
	struct io_uring_sqe *sqe;
	ssize_t r;

	ra->stats.requests++;
	if (ra->ring_ready) {
		sqe = io_uring_get_sqe(&ra->ring);
		if (!sqe) {
			io_uring_submit(&ra->ring);
			sqe = io_uring_get_sqe(&ra->ring);
		}
		if (sqe) {
			io_uring_prep_readv(sqe, ra->fd, rq->iov, rq->nr,
					    rq->offset);
			io_uring_sqe_set_data(sqe, rq);
			ra->inflight++;
			return;
		}
	}
	r = preadv_full(ra->fd, rq->iov, (int)rq->nr, (off_t)rq->offset);
	request_done(ra, rq, r);
}

/* ---- the interface ---- */

unsigned int dmrepl_readahead_room(struct dmrepl_readahead *ra)
{
	unsigned int room, reqs;

	if (ra->mode == DMREPL_READAHEAD_OFF)
		return 0;
	if (ra->ring_ready)
		reap(ra);
	room = ra->free_list.n + ra->cached_list.n;
	reqs = QUEUE_DEPTH - ra->inflight;
	/* an unmerged read per block: as many as there are requests */
	return room < reqs ? room : reqs;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Drop repeats from sorted @v: a batch may name a block twice. */
static size_t unique(uint64_t *v, size_t n)
{
	size_t out = 0;

	for (size_t k = 0; k < n; k++)
		if (out == 0 || v[out - 1] != v[k])
			v[out++] = v[k];
	return out;
}

/* Does @next join the read @rq, filling the gap with junk? */
static bool joins(const struct request *rq, uint64_t next)
{
	uint64_t end = rq->offset / BLOCK + rq->nr;

	return rq->nr > 0 && next >= end && next - end <= MAX_GAP &&
	       next - end + 1 + rq->nr <= MAX_RUN;
}

/* Send the reads for sorted @blocks, none of them in the pool yet. */
static void send_sorted(struct dmrepl_readahead *ra, const uint64_t *blocks,
			size_t n)
{
	struct request *rq = NULL;

	for (size_t k = 0; k < n; k++) {
		int32_t i;

		if (rq && !joins(rq, blocks[k])) {
			request_send(ra, rq);
			rq = NULL;
		}
		if (!rq && !(rq = request_get(ra)))
			return;
		i = slot_take(ra, blocks[k], SLOT_INFLIGHT);
		if (i == NONE)
			break;
		if (rq->nr == 0)
			rq->offset = blocks[k] * BLOCK;
		while (rq->offset / BLOCK + rq->nr < blocks[k])
			add_block(rq, NONE, ra->junk);
		add_block(rq, i, ra->slots[i].buf);
		ra->stats.blocks_prefetched++;
	}
	if (rq && rq->nr)
		request_send(ra, rq);
	else if (rq)
		request_put(ra, rq);
}

size_t dmrepl_readahead_submit(struct dmrepl_readahead *ra,
			       const uint64_t *blocks, size_t n)
{
	uint64_t todo[MAX_BLOCKS];
	size_t room, nr = 0, taken = 0;

	if (ra->mode == DMREPL_READAHEAD_URING && !ra->ring_tried)
		ring_setup(ra);
	room = dmrepl_readahead_room(ra);
	for (; taken < n && nr < room; taken++)
		if (lookup(ra, blocks[taken]) == NONE)
			todo[nr++] = blocks[taken];
	qsort(todo, nr, sizeof(todo[0]), cmp_u64);
	nr = unique(todo, nr);
	send_sorted(ra, todo, nr);
	if (ra->ring_ready && nr)
		io_uring_submit(&ra->ring);
	return taken;
}

static int read_direct(struct dmrepl_readahead *ra, uint64_t blocknr,
		       void *buf, size_t *ret_got)
{
	struct iovec iov = {.iov_base = buf, .iov_len = BLOCK};
	size_t got = 0;

	while (got < BLOCK) {
		ssize_t r;

		iov.iov_base = (uint8_t *)buf + got;
		iov.iov_len = BLOCK - got;
		r = preadv_full(ra->fd, &iov, 1, (off_t)(blocknr * BLOCK + got));
		if (r < 0)
			return (int)r;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	*ret_got = got;
	return 0;
}

/* Not in the pool: read it, into a pool buffer if one is free. */
static int read_miss(struct dmrepl_readahead *ra, uint64_t blocknr, void *buf,
		     size_t *ret_got)
{
	int32_t i = slot_take(ra, blocknr, SLOT_INFLIGHT);
	int r;

	if (i == NONE)
		return read_direct(ra, blocknr, buf, ret_got);
	r = read_direct(ra, blocknr, ra->slots[i].buf, ret_got);
	if (r < 0 || *ret_got < BLOCK) {
		if (r == 0)
			memcpy(buf, ra->slots[i].buf, *ret_got);
		slot_free(ra, i);
		return r;
	}
	memcpy(buf, ra->slots[i].buf, BLOCK);
	slot_used(ra, i);
	return 0;
}

int dmrepl_readahead_read(struct dmrepl_readahead *ra, uint64_t blocknr,
			  void *buf, size_t *ret_got)
{
	int32_t i = lookup(ra, blocknr);

	while (i != NONE && ra->slots[i].state == SLOT_INFLIGHT) {
		int r = wait_one(ra);

		if (r < 0)
			return r;
		if (ra->refill && !ra->refilling) {
			ra->refilling = true;
			ra->refill(ra->refill_data);
			ra->refilling = false;
		}
		i = lookup(ra, blocknr);
	}
	if (i == NONE)
		return read_miss(ra, blocknr, buf, ret_got);
	memcpy(buf, ra->slots[i].buf, BLOCK);
	ra->stats.hits++;
	slot_used(ra, i);
	*ret_got = BLOCK;
	return 0;
}

void dmrepl_readahead_forget(struct dmrepl_readahead *ra, uint64_t blocknr)
{
	int32_t i = lookup(ra, blocknr);

	if (i == NONE)
		return;
	if (ra->slots[i].state == SLOT_INFLIGHT) {
		ra->slots[i].forgotten = true;
	} else if (ra->slots[i].state == SLOT_READY) {
		ra->stats.blocks_unused++;
		slot_free(ra, i);
	}
}

const void *dmrepl_readahead_peek(struct dmrepl_readahead *ra,
				  uint64_t blocknr)
{
	int32_t i = lookup(ra, blocknr);

	if (i == NONE || ra->slots[i].state != SLOT_READY ||
	    ra->slots[i].marked)
		return NULL;
	return ra->slots[i].buf;
}

void dmrepl_readahead_mark(struct dmrepl_readahead *ra, uint64_t blocknr)
{
	int32_t i = lookup(ra, blocknr);

	if (i != NONE && ra->slots[i].state == SLOT_READY)
		ra->slots[i].marked = true;
}

void dmrepl_readahead_set_refill(struct dmrepl_readahead *ra,
				 void (*fn)(void *data), void *data)
{
	if (fn || ra->refill_data == data) {
		ra->refill = fn;
		ra->refill_data = data;
	}
}

void dmrepl_readahead_get_stats(const struct dmrepl_readahead *ra,
				struct dmrepl_readahead_stats *ret_stats)
{
	*ret_stats = ra->stats;
}

static int alloc_pool(struct dmrepl_readahead *ra)
{
	size_t nr_buckets = 16;
	void *p;

	while (nr_buckets < 2 * (size_t)ra->nr_slots)
		nr_buckets *= 2;
	ra->bucket_mask = (uint32_t)nr_buckets - 1;
	ra->slots = calloc(ra->nr_slots, sizeof(*ra->slots));
	ra->buckets = malloc(nr_buckets * sizeof(*ra->buckets));
	if (!ra->slots || !ra->buckets ||
	    posix_memalign(&p, BLOCK, ((size_t)ra->nr_slots + 1) * BLOCK))
		return -ENOMEM;
	ra->pool = p;
	ra->junk = ra->pool + (size_t)ra->nr_slots * BLOCK;
	for (size_t b = 0; b < nr_buckets; b++)
		ra->buckets[b] = NONE;
	return 0;
}

static void init_lists(struct dmrepl_readahead *ra)
{
	ra->free_list = (struct list){NONE, NONE, 0};
	ra->cached_list = (struct list){NONE, NONE, 0};
	for (unsigned int i = 0; i < ra->nr_slots; i++) {
		ra->slots[i].buf = ra->pool + (size_t)i * BLOCK;
		list_push(ra, &ra->free_list, (int32_t)i);
	}
	ra->free_req = NONE;
	for (unsigned int k = QUEUE_DEPTH; k-- > 0;)
		request_put(ra, &ra->reqs[k]);
}

int dmrepl_readahead_new(struct dmrepl_ctx *ctx, int fd, const char *name,
			 enum dmrepl_readahead_mode mode, unsigned int nr_blocks,
			 struct dmrepl_readahead **ret_ra)
{
	struct dmrepl_readahead *ra;

	ra = calloc(1, sizeof(*ra));
	if (!ra)
		return -ENOMEM;
	ra->ctx = dmrepl_ref(ctx);
	ra->fd = fd;
	ra->mode = mode;
	ra->stats.mode = mode;
	ra->nr_slots = nr_blocks < MIN_BLOCKS	? MIN_BLOCKS
		       : nr_blocks > MAX_BLOCKS ? MAX_BLOCKS
						: nr_blocks;
	ra->name = strdup(name);
	if (!ra->name || alloc_pool(ra) < 0) {
		dmrepl_readahead_free(ra);
		return -ENOMEM;
	}
	init_lists(ra);
	*ret_ra = ra;
	return 0;
}

void dmrepl_readahead_free(struct dmrepl_readahead *ra)
{
	if (!ra)
		return;
	if (ra->ring_ready) {
		drain(ra);
		io_uring_queue_exit(&ra->ring);
	}
	if (ra->slots)
		for (unsigned int i = 0; i < ra->nr_slots; i++)
			if (ra->slots[i].state == SLOT_READY)
				ra->stats.blocks_unused++;
	dbg(ra->ctx,
	    "%s: read-ahead (%s, %u blocks): %" PRIu64 " blocks prefetched in %"
	    PRIu64 " reads, %" PRIu64 " used from the pool, %" PRIu64 " unused",
	    ra->name, mode_names[ra->stats.mode], ra->nr_slots,
	    ra->stats.blocks_prefetched, ra->stats.requests, ra->stats.hits,
	    ra->stats.blocks_unused);
	dmrepl_unref(ra->ctx);
	free(ra->pool);
	free(ra->buckets);
	free(ra->slots);
	free(ra->name);
	free(ra);
}
