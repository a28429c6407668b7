/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The copy pipeline: extents in, I/O requests out.
 *
 * A copy extent is cut into pieces of at most io_size bytes, at
 * io_size boundaries. Each piece takes one slot (a buffer of io_size
 * bytes): it is read from the source, then written at the same offset of
 * the destination. Up to queue-depth slots are in flight, so memory is
 * depth x io_size whatever the volume size.
 *
 * O_DIRECT wants offsets and lengths aligned to the device's logical
 * block size. The aligned middle of an extent goes through the engine
 * on O_DIRECT descriptors; an unaligned head or tail (at most one
 * alignment unit each) is copied synchronously through a second,
 * buffered descriptor, after waiting for any I/O in flight on the same
 * pages, so the page cache never holds stale data that a later write
 * back would put over a direct write.
 *
 * A discard is sent over the part aligned to the destination's discard
 * granularity; the rest is written as zeroes through the same pieces.
 * A thin pool ignores a discard of part of one of its blocks, which
 * would leave old data behind.
 *
 * Where extents overlap (a hand-written list), a piece waits for the
 * I/O in flight on its range, so extents take effect in order.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "base.h"
#include "io.h"
#include "ratelimit.h"

#define DEFAULT_QUEUE_DEPTH 32u
#define MAX_QUEUE_DEPTH 1024u
#define DEFAULT_IO_SIZE (1u << 20)
#define MIN_IO_SIZE 4096u
#define MAX_IO_SIZE (64u << 20)
#define PAGE_BYTES 4096u
#define FILE_DIO_ALIGN 4096u		/* safe for any file system */
#define MAX_DISCARD_CHUNK (UINT64_C(1) << 30)	/* keeps cancel responsive */
#define PROGRESS_INTERVAL_NS 100000000ull
#define NSEC_PER_SEC 1000000000ull

/* Read and write; write zeroes; write the caller's bytes (no source). */
enum piece_kind { PIECE_COPY, PIECE_ZERO, PIECE_DATA };
enum slot_state { SLOT_FREE = 0, SLOT_READ, SLOT_WRITE };

/* One side of the copy. */
struct end {
	char *path;
	int fd;			/* O_DIRECT when direct */
	int buf_fd;		/* buffered; the same as fd when !direct */
	bool direct;
	bool blockdev;
	bool chardev;
	dev_t dev, rdev;
	ino_t ino;
	uint64_t size;
	uint32_t align;		/* of offsets and lengths on fd */
};

struct slot {
	struct dmrepl_io_req req;
	enum slot_state state;
	bool zero;		/* writing zeroes: counted as zeroed */
	uint8_t *buf;
	uint64_t piece_off;	/* the whole piece, for overlap checks */
	uint32_t piece_len;
	uint64_t off;		/* the current read or write */
	uint32_t len;
	uint32_t done;		/* bytes of it done (short transfers) */
	uint64_t next_off;	/* a second write of buf, or next_len 0 */
	uint32_t next_len;
};

struct dmrepl_copy {
	struct dmrepl_ctx *ctx;
	struct end src, dst;

	enum dmrepl_engine engine;
	unsigned int depth;
	uint32_t io_size;
	int ioprio;
	unsigned int flags;
	void (*progress_fn)(const struct dmrepl_copy_stats *stats, void *userdata);
	void *progress_data;

	bool opened, added, finished;
	uint32_t align;			/* max of both ends' */
	uint64_t discard_granularity;	/* 0: cannot discard */
	uint64_t discard_max;

	struct dmrepl_io io;
	struct iovec *iov;
	uint8_t *mem;			/* depth slot buffers, then zeroes */
	uint8_t *zero;
	struct slot *slots;
	struct dmrepl_io_req **reaped;

	int error;			/* the first one */
	int cancelled;			/* atomic */
	struct dmrepl_copy_stats stats;	/* atomic fields */

	struct dmrepl_ratelimit limit;	/* bwlimit */
	uint64_t progress_ns;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

static uint64_t round_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static uint64_t round_down(uint64_t v, uint64_t a)
{
	return v / a * a;
}

static void end_init(struct end *e)
{
	e->fd = -1;
	e->buf_fd = -1;
}

static void end_close(struct end *e)
{
	if (e->buf_fd >= 0 && e->buf_fd != e->fd)
		close(e->buf_fd);
	if (e->fd >= 0)
		close(e->fd);
	end_init(e);
}

DMREPL_EXPORT int dmrepl_copy_new(struct dmrepl_ctx *ctx, const char *src_path,
				  const char *dst_path,
				  struct dmrepl_copy **ret_copy)
{
	struct dmrepl_copy *copy = NULL;
	int r;

	if (!ctx || !src_path || !*src_path || !ret_copy)
		return -EINVAL;
	r = dmrepl_copy_new_sink(ctx, dst_path, &copy);
	if (r < 0)
		return r;
	copy->src.path = strdup(src_path);
	if (!copy->src.path) {
		dmrepl_copy_unref(copy);
		return -ENOMEM;
	}
	*ret_copy = copy;
	return 0;
}

/* No source: the data comes from dmrepl_copy_write() (a stream). */
int dmrepl_copy_new_sink(struct dmrepl_ctx *ctx, const char *dst_path,
			 struct dmrepl_copy **ret_copy)
{
	struct dmrepl_copy *copy;

	if (!ctx || !dst_path || !*dst_path || !ret_copy)
		return -EINVAL;
	copy = calloc(1, sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	copy->dst.path = strdup(dst_path);
	if (!copy->dst.path) {
		free(copy);
		return -ENOMEM;
	}
	end_init(&copy->src);
	end_init(&copy->dst);
	copy->ctx = dmrepl_ref(ctx);
	copy->depth = DEFAULT_QUEUE_DEPTH;
	copy->io_size = DEFAULT_IO_SIZE;
	copy->io.saved_ioprio = -1;
	*ret_copy = copy;
	return 0;
}

/* ---- settings ---- */

static int check_settable(const struct dmrepl_copy *copy, bool before_open)
{
	if (!copy)
		return -EINVAL;
	if (copy->added || (before_open && copy->opened))
		return -EBUSY;
	return 0;
}

DMREPL_EXPORT int dmrepl_copy_set_engine(struct dmrepl_copy *copy,
					 enum dmrepl_engine engine)
{
	int r = check_settable(copy, true);

	if (r < 0)
		return r;
	if (!dmrepl_engine_name(engine))
		return -EINVAL;
	copy->engine = engine;
	return 0;
}

DMREPL_EXPORT int dmrepl_copy_set_queue_depth(struct dmrepl_copy *copy,
					      unsigned int depth)
{
	int r = check_settable(copy, true);

	if (r < 0)
		return r;
	if (depth > MAX_QUEUE_DEPTH)
		return -EINVAL;
	copy->depth = depth ? depth : DEFAULT_QUEUE_DEPTH;
	return 0;
}

DMREPL_EXPORT int dmrepl_copy_set_io_size(struct dmrepl_copy *copy, uint32_t bytes)
{
	int r = check_settable(copy, true);

	if (r < 0)
		return r;
	if (bytes == 0)
		bytes = DEFAULT_IO_SIZE;
	if (bytes < MIN_IO_SIZE || bytes > MAX_IO_SIZE || bytes % MIN_IO_SIZE)
		return -EINVAL;
	copy->io_size = bytes;
	return 0;
}

DMREPL_EXPORT int dmrepl_copy_set_bwlimit(struct dmrepl_copy *copy,
					  uint64_t bytes_per_sec)
{
	int r = check_settable(copy, false);

	if (r < 0)
		return r;
	dmrepl_ratelimit_init(&copy->limit, bytes_per_sec);
	return 0;
}

DMREPL_EXPORT int dmrepl_copy_set_ioprio(struct dmrepl_copy *copy,
					 int ioprio_class, int level)
{
	int r = check_settable(copy, true);

	if (r < 0)
		return r;
	if (ioprio_class == 0 && level == 0) {
		copy->ioprio = 0;
		return 0;
	}
	if (ioprio_class < 1 || ioprio_class > 3 || level < 0 || level > 7)
		return -EINVAL;
	copy->ioprio = ioprio_class << 13 | level;	/* IOPRIO_PRIO_VALUE */
	return 0;
}

DMREPL_EXPORT int dmrepl_copy_set_flags(struct dmrepl_copy *copy, unsigned int flags)
{
	int r = check_settable(copy, false);

	if (r < 0)
		return r;
	if (flags & ~(unsigned int)(DMREPL_COPY_DETECT_ZEROES | DMREPL_COPY_DST_ZEROED))
		return -EINVAL;
	copy->flags = flags;
	return 0;
}

DMREPL_EXPORT int dmrepl_copy_set_total(struct dmrepl_copy *copy, uint64_t total_bytes)
{
	if (!copy)
		return -EINVAL;
	__atomic_store_n(&copy->stats.total_bytes, total_bytes, __ATOMIC_RELAXED);
	return 0;
}

DMREPL_EXPORT int dmrepl_copy_set_progress_fn(struct dmrepl_copy *copy,
	void (*fn)(const struct dmrepl_copy_stats *stats, void *userdata),
	void *userdata)
{
	if (!copy)
		return -EINVAL;
	copy->progress_fn = fn;
	copy->progress_data = userdata;
	return 0;
}

/* ---- stats, progress, cancel ---- */

DMREPL_EXPORT void dmrepl_copy_get_stats(const struct dmrepl_copy *copy,
					 struct dmrepl_copy_stats *ret_stats)
{
	const struct dmrepl_copy_stats *s;

	if (!copy || !ret_stats)
		return;
	s = &copy->stats;
	ret_stats->total_bytes = __atomic_load_n(&s->total_bytes, __ATOMIC_RELAXED);
	ret_stats->done_bytes = __atomic_load_n(&s->done_bytes, __ATOMIC_RELAXED);
	ret_stats->copied_bytes = __atomic_load_n(&s->copied_bytes, __ATOMIC_RELAXED);
	ret_stats->discarded_bytes = __atomic_load_n(&s->discarded_bytes, __ATOMIC_RELAXED);
	ret_stats->zeroed_bytes = __atomic_load_n(&s->zeroed_bytes, __ATOMIC_RELAXED);
	ret_stats->zero_detected_bytes =
		__atomic_load_n(&s->zero_detected_bytes, __ATOMIC_RELAXED);
}

/* Count @n bytes into @field and into done_bytes. */
static void account(struct dmrepl_copy *copy, uint64_t *field, uint64_t n)
{
	__atomic_add_fetch(field, n, __ATOMIC_RELAXED);
	__atomic_add_fetch(&copy->stats.done_bytes, n, __ATOMIC_RELAXED);
}

static void progress(struct dmrepl_copy *copy, bool force)
{
	struct dmrepl_copy_stats stats;
	uint64_t now;

	if (!copy->progress_fn)
		return;
	now = now_ns();
	if (!force && now - copy->progress_ns < PROGRESS_INTERVAL_NS)
		return;
	copy->progress_ns = now;
	dmrepl_copy_get_stats(copy, &stats);
	copy->progress_fn(&stats, copy->progress_data);
}

DMREPL_EXPORT void dmrepl_copy_cancel(struct dmrepl_copy *copy)
{
	if (copy)
		__atomic_store_n(&copy->cancelled, 1, __ATOMIC_RELAXED);
}

static bool cancelled(const struct dmrepl_copy *copy)
{
	return __atomic_load_n(&copy->cancelled, __ATOMIC_RELAXED);
}

static bool stopping(const struct dmrepl_copy *copy)
{
	return copy->error || cancelled(copy);
}

/* Only the first error is logged as one: the rest follow from it. */
static void io_error(struct dmrepl_copy *copy, const struct end *e, const char *op,
		     uint64_t offset, uint64_t length, int r)
{
	if (copy->error) {
		dbg(copy->ctx, "%s %s at offset %" PRIu64 " (%" PRIu64 " bytes): %s",
		    op, e->path, offset, length, strerror(-r));
		return;
	}
	err(copy->ctx, "%s %s at offset %" PRIu64 " (%" PRIu64 " bytes): %s",
	    op, e->path, offset, length, strerror(-r));
	copy->error = r;
}

/* ---- opening ---- */

static int read_sysfs_u64(const struct end *e, const char *attr, uint64_t *ret)
{
	/* The second is a partition's: its queue is its disk's. */
	static const char *const dirs[] = { "", "/.." };
	unsigned long long v;
	char path[128];
	FILE *f;

	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		snprintf(path, sizeof(path), "/sys/dev/block/%u:%u%s/queue/%s",
			 major(e->rdev), minor(e->rdev), dirs[i], attr);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fscanf(f, "%llu", &v) != 1)
			v = 0;
		fclose(f);
		*ret = v;
		return 0;
	}
	return -ENOENT;
}

static int stat_end(struct dmrepl_copy *copy, struct end *e)
{
	struct stat st;
	int sector;

	if (fstat(e->buf_fd, &st) < 0)
		return -errno;
	e->dev = st.st_dev;
	e->ino = st.st_ino;
	e->rdev = st.st_rdev;
	e->align = FILE_DIO_ALIGN;
	if (S_ISREG(st.st_mode)) {
		e->size = (uint64_t)st.st_size;
		return 0;
	}
	if (S_ISCHR(st.st_mode)) {
		e->chardev = true;
		e->size = UINT64_MAX;
		return 0;
	}
	if (!S_ISBLK(st.st_mode)) {
		err(copy->ctx, "%s is not a file or a block device", e->path);
		return -EINVAL;
	}
	e->blockdev = true;
	if (ioctl(e->buf_fd, BLKGETSIZE64, &e->size) < 0 ||
	    ioctl(e->buf_fd, BLKSSZGET, &sector) < 0)
		return -errno;
	e->align = sector > 0 ? (uint32_t)sector : 512;
	return 0;
}

/* O_DIRECT on files and block devices, where the file system allows it. */
static int open_direct(struct dmrepl_copy *copy, struct end *e, int flags)
{
	if (!e->chardev) {
		e->fd = open(e->path, flags | O_DIRECT);
		if (e->fd < 0 && errno != EINVAL)
			return -errno;
	}
	e->direct = e->fd >= 0;
	if (!e->direct) {
		if (!e->chardev)
			info(copy->ctx, "%s does not take O_DIRECT; using buffered I/O",
			     e->path);
		e->fd = e->buf_fd;
		e->align = 1;
	}
	return 0;
}

static int open_end(struct dmrepl_copy *copy, struct end *e, int flags)
{
	int r;

	e->buf_fd = open(e->path, flags | O_CLOEXEC);
	if (e->buf_fd < 0) {
		r = -errno;
		err(copy->ctx, "cannot open %s: %s", e->path, strerror(-r));
		return r;
	}
	r = stat_end(copy, e);
	if (r == 0)
		r = open_direct(copy, e, flags | O_CLOEXEC);
	if (r < 0 && r != -EINVAL)
		err(copy->ctx, "cannot open %s: %s", e->path, strerror(-r));
	return r;
}

/*
 * A block device says how it discards in sysfs; a file punches holes
 * of whole file-system blocks (a partial block would be zeroed through
 * the page cache); a character device cannot.
 */
static void probe_discard(struct dmrepl_copy *copy)
{
	struct end *d = &copy->dst;
	uint64_t gran = 0, max = 0;

	if (d->blockdev) {
		if (read_sysfs_u64(d, "discard_granularity", &gran) < 0 ||
		    read_sysfs_u64(d, "discard_max_bytes", &max) < 0 || max == 0)
			gran = 0;
		if (gran && gran < d->align)
			gran = d->align;
	} else if (!d->chardev) {
		struct stat st;

		if (fstat(d->buf_fd, &st) == 0 && st.st_blksize > 0)
			gran = (uint64_t)st.st_blksize;
		max = UINT64_MAX;
	}
	copy->discard_granularity = gran;
	copy->discard_max = max;
	dbg(copy->ctx, "%s: discard granularity %" PRIu64 ", max %" PRIu64,
	    d->path, gran, max);
}

static int check_ends(struct dmrepl_copy *copy)
{
	const struct end *s = &copy->src, *d = &copy->dst;

	if (!s->path) {
		copy->align = d->align;
		return 0;
	}
	if ((s->blockdev && d->blockdev && s->rdev == d->rdev) ||
	    (!s->blockdev && !s->chardev && s->dev == d->dev && s->ino == d->ino)) {
		err(copy->ctx, "%s and %s are the same device", s->path, d->path);
		return -EINVAL;
	}
	copy->align = s->align > d->align ? s->align : d->align;
	if (copy->io_size % copy->align) {
		err(copy->ctx, "I/O size %" PRIu32 " is not a multiple of the "
		    "block size %" PRIu32 " of %s or %s", copy->io_size,
		    copy->align, s->path, d->path);
		return -EINVAL;
	}
	return 0;
}

static int alloc_buffers(struct dmrepl_copy *copy)
{
	unsigned int n = copy->depth;
	void *mem;

	if (posix_memalign(&mem, PAGE_BYTES, (size_t)(n + 1) * copy->io_size))
		return -ENOMEM;
	copy->mem = mem;
	copy->zero = copy->mem + (size_t)n * copy->io_size;
	memset(copy->zero, 0, copy->io_size);
	copy->iov = calloc(n + 1, sizeof(*copy->iov));
	copy->slots = calloc(n, sizeof(*copy->slots));
	copy->reaped = calloc(n, sizeof(*copy->reaped));
	if (!copy->iov || !copy->slots || !copy->reaped)
		return -ENOMEM;
	for (unsigned int i = 0; i <= n; i++) {
		copy->iov[i].iov_base = copy->mem + (size_t)i * copy->io_size;
		copy->iov[i].iov_len = copy->io_size;
	}
	for (unsigned int i = 0; i < n; i++)
		copy->slots[i].buf = copy->iov[i].iov_base;
	return 0;
}

static void format_size(uint32_t bytes, char *buf, size_t size)
{
	if (bytes % (1u << 20) == 0)
		snprintf(buf, size, "%" PRIu32 " MiB", bytes >> 20);
	else
		snprintf(buf, size, "%" PRIu32 " KiB", bytes >> 10);
}

/*
 * A copy known to be small gets smaller buffers. Registering them with
 * io_uring pins every page up front (depth x I/O size: 33 MiB by
 * default, about 0.1 s in the test VM), and an incremental of a few MiB
 * in scattered blocks would use a sliver of each. Unregistered buffers
 * are no way out: their first use faults in pages, which sends each I/O
 * to io_uring's workers, one after the other. So the I/O size becomes
 * the smallest power of two from 64 KiB up whose depth buffers hold the
 * whole copy, when that is below the one set.
 */
#define SMALL_IO_SIZE (64u << 10)

static void fit_io_size(struct dmrepl_copy *copy)
{
	uint64_t total = __atomic_load_n(&copy->stats.total_bytes, __ATOMIC_RELAXED);
	uint32_t size = SMALL_IO_SIZE;

	if (total == 0)
		return;		/* not known */
	while (size < copy->io_size && (uint64_t)size * copy->depth < total)
		size *= 2;
	if (size < copy->io_size && size % copy->align == 0)
		copy->io_size = size;
}

static int open_engine(struct dmrepl_copy *copy)
{
	char size[32];
	int r;

	copy->io.ctx = copy->ctx;
	copy->io.depth = copy->depth;
	copy->io.bufs = copy->iov;
	copy->io.nr_bufs = copy->depth + 1;
	copy->io.ioprio = copy->ioprio;
	r = dmrepl_io_open(&copy->io, copy->engine);
	if (r < 0)
		return r;
	format_size(copy->io_size, size, sizeof(size));
	info(copy->ctx, "engine %s, queue depth %u, %s I/Os; %s to %s",
	     copy->io.ops->name, copy->depth, size,
	     copy->src.path ? copy->src.path : "a stream", copy->dst.path);
	return 0;
}

DMREPL_EXPORT int dmrepl_copy_open(struct dmrepl_copy *copy)
{
	int r;

	if (!copy)
		return -EINVAL;
	if (copy->opened)
		return 0;
	r = copy->src.path ? open_end(copy, &copy->src, O_RDONLY) : 0;
	if (r == 0)
		r = open_end(copy, &copy->dst, O_WRONLY);
	if (r == 0)
		r = check_ends(copy);
	if (r == 0) {
		fit_io_size(copy);
		r = alloc_buffers(copy);
	}
	if (r == 0)
		r = open_engine(copy);
	if (r < 0) {
		end_close(&copy->src);
		end_close(&copy->dst);
		return r;
	}
	probe_discard(copy);
	copy->opened = true;
	return 0;
}

DMREPL_EXPORT const char *dmrepl_copy_get_engine_name(const struct dmrepl_copy *copy)
{
	if (!copy || !copy->opened)
		return NULL;
	return copy->io.ops->name;
}

DMREPL_EXPORT uint64_t dmrepl_copy_get_src_size(const struct dmrepl_copy *copy)
{
	return copy && copy->opened ? copy->src.size : 0;
}

DMREPL_EXPORT uint64_t dmrepl_copy_get_dst_size(const struct dmrepl_copy *copy)
{
	return copy && copy->opened ? copy->dst.size : 0;
}

/* ---- completions ---- */

static void slot_submit(struct dmrepl_copy *copy, struct slot *s)
{
	bool rd = s->state == SLOT_READ;
	const struct end *e = rd ? &copy->src : &copy->dst;
	struct dmrepl_io_req *req = &s->req;
	uint8_t *data = s->zero && !rd ? copy->zero : s->buf;
	int r;

	req->fd = e->fd;
	req->dir = rd ? DMREPL_IO_READ : DMREPL_IO_WRITE;
	req->tag = (unsigned int)(s - copy->slots);
	req->buf_index = data == copy->zero ? (int)copy->depth : (int)req->tag;
	req->buf = data + s->done;
	req->offset_bytes = s->off + s->done;
	req->length_bytes = s->len - s->done;
	r = copy->io.ops->submit(&copy->io, req);
	if (r < 0) {
		io_error(copy, e, rd ? "read" : "write", req->offset_bytes,
			 req->length_bytes, r);
		s->state = SLOT_FREE;
	}
}

static void slot_start(struct dmrepl_copy *copy, struct slot *s,
		       enum slot_state state, uint64_t off, uint32_t len)
{
	s->state = state;
	s->off = off;
	s->len = len;
	s->done = 0;
	slot_submit(copy, s);
}

static int discard_range(struct dmrepl_copy *copy, uint64_t off, uint64_t len);

/*
 * A piece read as zeroes: discard its granularity-aligned middle and
 * write zeroes (the buffer holds them) over the edges.
 */
static void zero_piece(struct dmrepl_copy *copy, struct slot *s)
{
	uint64_t g = copy->discard_granularity, end = s->off + s->len;
	uint64_t m0 = 0, m1 = 0;
	uint32_t tail;
	int r = 0;

	__atomic_add_fetch(&copy->stats.zero_detected_bytes, s->len, __ATOMIC_RELAXED);
	s->zero = true;
	if (copy->flags & DMREPL_COPY_DST_ZEROED) {
		account(copy, &copy->stats.discarded_bytes, s->len);
		s->state = SLOT_FREE;
		return;
	}
	if (g && g % copy->align == 0) {
		m0 = round_up(s->off, g);
		m1 = round_down(end, g);
	}
	if (m0 >= m1 || (r = discard_range(copy, m0, m1 - m0)) == -EOPNOTSUPP) {
		slot_start(copy, s, SLOT_WRITE, s->off, s->len);
		return;
	}
	if (r < 0) {
		s->state = SLOT_FREE;
		return;
	}
	account(copy, &copy->stats.discarded_bytes, m1 - m0);
	tail = (uint32_t)(end - m1);
	s->next_off = m1;
	s->next_len = 0;
	if (m0 > s->off) {
		s->next_len = tail;
		slot_start(copy, s, SLOT_WRITE, s->off, (uint32_t)(m0 - s->off));
	} else if (tail) {
		slot_start(copy, s, SLOT_WRITE, m1, tail);
	} else {
		s->state = SLOT_FREE;
	}
}

static void read_done(struct dmrepl_copy *copy, struct slot *s)
{
	if (stopping(copy)) {
		s->state = SLOT_FREE;
		return;
	}
	if ((copy->flags & DMREPL_COPY_DETECT_ZEROES) &&
	    memcmp(s->buf, copy->zero, s->len) == 0) {
		zero_piece(copy, s);
		return;
	}
	slot_start(copy, s, SLOT_WRITE, s->off, s->len);
}

static void write_done(struct dmrepl_copy *copy, struct slot *s)
{
	account(copy, s->zero ? &copy->stats.zeroed_bytes : &copy->stats.copied_bytes,
		s->len);
	if (s->next_len && !stopping(copy)) {
		uint32_t n = s->next_len;

		s->next_len = 0;
		slot_start(copy, s, SLOT_WRITE, s->next_off, n);
		return;
	}
	s->state = SLOT_FREE;
}

/* One request came back: resubmit what is left of it, or move on. */
static void complete(struct dmrepl_copy *copy, struct slot *s)
{
	bool rd = s->state == SLOT_READ;
	int64_t res = s->req.result;

	if ((res == -EAGAIN || res == -EINTR) && !stopping(copy)) {
		slot_submit(copy, s);
		return;
	}
	if (res == 0)
		res = -EIO;	/* end of file or device inside an extent */
	if (res < 0) {
		io_error(copy, rd ? &copy->src : &copy->dst, rd ? "read" : "write",
			 s->req.offset_bytes, s->req.length_bytes, (int)res);
		s->state = SLOT_FREE;
		return;
	}
	s->done += (uint32_t)res;
	if (s->done < s->len) {
		if (stopping(copy))
			s->state = SLOT_FREE;
		else
			slot_submit(copy, s);
		return;
	}
	if (rd)
		read_done(copy, s);
	else
		write_done(copy, s);
}

/* Wait for at least @min_nr requests (0: only those already done). */
static void reap(struct dmrepl_copy *copy, unsigned int min_nr)
{
	int n;

	if (copy->io.inflight == 0)
		return;
	n = copy->io.ops->reap(&copy->io, min_nr, copy->reaped, copy->depth);
	if (n < 0) {
		if (!copy->error)
			err(copy->ctx, "waiting for I/O on %s: %s", copy->dst.path,
			    strerror(-n));
		copy->error = copy->error ? copy->error : n;
		return;
	}
	for (int i = 0; i < n; i++)
		complete(copy, &copy->slots[copy->reaped[i]->tag]);
	progress(copy, false);
}

static void drain(struct dmrepl_copy *copy)
{
	unsigned int stuck = 0;

	while (copy->io.inflight > 0 && stuck < 3) {
		unsigned int before = copy->io.inflight;

		reap(copy, 1);
		stuck = copy->io.inflight == before && copy->error ? stuck + 1 : 0;
	}
}

static bool overlaps(const struct slot *s, uint64_t off, uint64_t len)
{
	return s->state != SLOT_FREE && s->piece_off < off + len &&
	       off < s->piece_off + s->piece_len;
}

static void wait_overlap(struct dmrepl_copy *copy, uint64_t off, uint64_t len)
{
	for (unsigned int i = 0; i < copy->depth && !copy->error; i++) {
		while (overlaps(&copy->slots[i], off, len) && !copy->error)
			reap(copy, 1);
	}
}

static struct slot *get_slot(struct dmrepl_copy *copy)
{
	while (!stopping(copy)) {
		for (unsigned int i = 0; i < copy->depth; i++)
			if (copy->slots[i].state == SLOT_FREE)
				return &copy->slots[i];
		reap(copy, 1);
	}
	return NULL;
}

/* ---- bandwidth limit: a token bucket over bytes written ---- */

static void throttle(struct dmrepl_copy *copy, uint64_t bytes)
{
	uint64_t wait;

	while ((wait = dmrepl_ratelimit_delay(&copy->limit, now_ns())) && !stopping(copy)) {
		struct timespec ts = { 0, wait > 10000000 ? 10000000 : (long)wait };

		reap(copy, 0);
		nanosleep(&ts, NULL);
		progress(copy, false);
	}
	dmrepl_ratelimit_spend(&copy->limit, bytes);
}

/* ---- pieces ---- */

static int async_piece(struct dmrepl_copy *copy, enum piece_kind kind,
		       uint64_t off, uint32_t len, const uint8_t *data)
{
	struct slot *s;

	wait_overlap(copy, off, len);
	throttle(copy, len);
	s = get_slot(copy);
	if (!s)
		return 0;
	s->piece_off = off;
	s->piece_len = len;
	s->zero = kind == PIECE_ZERO;
	s->next_len = 0;
	if (kind == PIECE_DATA)
		memcpy(s->buf, data, len);
	slot_start(copy, s, kind == PIECE_COPY ? SLOT_READ : SLOT_WRITE, off, len);
	return 0;
}

static int full_pread(struct dmrepl_copy *copy, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pread(copy->src.buf_fd, (uint8_t *)buf + done, len - done,
				  (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			io_error(copy, &copy->src, "read", off + done, len - done,
				 n < 0 ? -errno : -EIO);
			return copy->error;
		}
		done += (size_t)n;
	}
	return 0;
}

static int full_pwrite(struct dmrepl_copy *copy, const void *buf, size_t len,
		       uint64_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = pwrite(copy->dst.buf_fd, (const uint8_t *)buf + done,
				   len - done, (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			io_error(copy, &copy->dst, "write", off + done, len - done,
				 n < 0 ? -errno : -EIO);
			return copy->error;
		}
		done += (size_t)n;
	}
	return 0;
}

/*
 * An unaligned piece, through the buffered descriptors, once no I/O is
 * in flight on its pages. The I/O is synchronous, so it borrows the
 * buffer of a free slot.
 */
static int buffered_piece(struct dmrepl_copy *copy, enum piece_kind kind,
			  uint64_t off, uint64_t len, const uint8_t *data)
{
	uint64_t p0 = round_down(off, PAGE_BYTES);
	struct slot *s;
	int r = 0;

	wait_overlap(copy, p0, round_up(off + len, PAGE_BYTES) - p0);
	throttle(copy, len);
	if (kind == PIECE_DATA) {
		r = full_pwrite(copy, data, len, off);
		goto out;
	}
	s = get_slot(copy);
	if (!s)
		return 0;
	for (uint64_t done = 0, n; done < len && r == 0; done += n) {
		n = len - done < copy->io_size ? len - done : copy->io_size;
		if (kind == PIECE_ZERO) {
			r = full_pwrite(copy, copy->zero, n, off + done);
			continue;
		}
		r = full_pread(copy, s->buf, n, off + done);
		if (r == 0)
			r = full_pwrite(copy, s->buf, n, off + done);
	}
out:
	if (r == 0)
		account(copy, kind == PIECE_ZERO ? &copy->stats.zeroed_bytes
						 : &copy->stats.copied_bytes, len);
	return r;
}

/*
 * Cut [off, off+len) into aligned pieces for the engine and unaligned
 * edges. @data: the bytes, for PIECE_DATA.
 */
static int apply_range(struct dmrepl_copy *copy, enum piece_kind kind,
		       uint64_t off, uint64_t len, const uint8_t *data)
{
	uint64_t end = off + len, a0, a1, n;

	if (len == 0)
		return 0;
	a0 = round_up(off, copy->align);
	a1 = round_down(end, copy->align);
	if (a0 >= a1)
		return buffered_piece(copy, kind, off, len, data);
	if (a0 > off)
		buffered_piece(copy, kind, off, a0 - off, data);
	for (uint64_t o = a0; o < a1 && !stopping(copy); o += n) {
		n = copy->io_size - o % copy->io_size;
		if (n > a1 - o)
			n = a1 - o;
		async_piece(copy, kind, o, (uint32_t)n, data ? data + (o - off) : NULL);
	}
	if (end > a1 && !stopping(copy))
		buffered_piece(copy, kind, a1, end - a1, data ? data + (a1 - off) : NULL);
	return copy->error;
}

/* ---- discards ---- */

static int discard_chunk(struct dmrepl_copy *copy, uint64_t off, uint64_t len)
{
	const struct end *d = &copy->dst;
	int r;

	if (d->blockdev) {
		uint64_t range[2] = { off, len };

		r = ioctl(d->buf_fd, BLKDISCARD, range);
	} else {
		r = fallocate(d->buf_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)off, (off_t)len);
	}
	if (r == 0)
		return 0;
	r = -errno;
	if (r == -EOPNOTSUPP || r == -ENOTTY || r == -ENOSYS)
		return -EOPNOTSUPP;
	io_error(copy, d, "discard", off, len, r);
	return r;
}

/*
 * Discard [off, off+len), aligned to the granularity, in chunks. On
 * -EOPNOTSUPP the destination is marked as unable to discard and the
 * caller writes zeroes instead.
 */
static int discard_range(struct dmrepl_copy *copy, uint64_t off, uint64_t len)
{
	uint64_t g = copy->discard_granularity;
	uint64_t chunk = copy->discard_max < MAX_DISCARD_CHUNK ? copy->discard_max
							      : MAX_DISCARD_CHUNK;
	int r = 0;

	chunk = round_down(chunk, g);
	if (chunk == 0)
		chunk = g;
	for (uint64_t done = 0, n; done < len && r == 0 && !stopping(copy); done += n) {
		n = len - done < chunk ? len - done : chunk;
		r = discard_chunk(copy, off + done, n);
		progress(copy, false);
	}
	if (r == -EOPNOTSUPP) {
		info(copy->ctx, "%s cannot discard; writing zeroes instead",
		     copy->dst.path);
		copy->discard_granularity = 0;
	}
	return r;
}

static int discard_extent(struct dmrepl_copy *copy, uint64_t off, uint64_t len)
{
	uint64_t g = copy->discard_granularity, end = off + len, m0 = 0, m1 = 0;
	int r;

	if (copy->flags & DMREPL_COPY_DST_ZEROED) {
		account(copy, &copy->stats.discarded_bytes, len);
		return 0;
	}
	if (g) {
		m0 = round_up(off, g);
		m1 = round_down(end, g);
	}
	if (m0 >= m1)
		return apply_range(copy, PIECE_ZERO, off, len, NULL);
	r = apply_range(copy, PIECE_ZERO, off, m0 - off, NULL);
	if (r < 0 || stopping(copy))
		return r;
	wait_overlap(copy, m0, m1 - m0);
	r = discard_range(copy, m0, m1 - m0);
	if (r == -EOPNOTSUPP)
		return apply_range(copy, PIECE_ZERO, m0, end - m0, NULL);
	if (r < 0)
		return r;
	account(copy, &copy->stats.discarded_bytes, m1 - m0);
	return apply_range(copy, PIECE_ZERO, m1, end - m1, NULL);
}

/* ---- the API ---- */

/* After an error or a cancel: reap what is in flight, say which. */
static int stop_status(struct dmrepl_copy *copy)
{
	if (!stopping(copy))
		return 0;
	drain(copy);
	return copy->error ? copy->error : -ECANCELED;
}

static int check_extent(struct dmrepl_copy *copy, const struct dmrepl_extent *x)
{
	uint64_t end = x->offset_bytes + x->length_bytes;
	const struct end *e = NULL;

	if (x->op != DMREPL_EXTENT_COPY && x->op != DMREPL_EXTENT_DISCARD) {
		err(copy->ctx, "extent at %" PRIu64 ": unknown operation %d",
		    x->offset_bytes, (int)x->op);
		return -EINVAL;
	}
	if (x->op == DMREPL_EXTENT_COPY && !copy->src.path) {
		err(copy->ctx, "extent at %" PRIu64 ": a copy without a source",
		    x->offset_bytes);
		return -EINVAL;
	}
	if (end < x->offset_bytes || end > copy->dst.size)
		e = &copy->dst;
	else if (x->op == DMREPL_EXTENT_COPY && end > copy->src.size)
		e = &copy->src;
	if (e) {
		err(copy->ctx, "extent %" PRIu64 "+%" PRIu64 " is past the end of %s "
		    "(%" PRIu64 " bytes)", x->offset_bytes, x->length_bytes,
		    e->path, e->size);
		return -EINVAL;
	}
	return 0;
}

DMREPL_EXPORT int dmrepl_copy_add(struct dmrepl_copy *copy,
				  const struct dmrepl_extent *extent)
{
	int r;

	if (!copy || !extent || copy->finished)
		return -EINVAL;
	r = dmrepl_copy_open(copy);
	if (r < 0)
		return r;
	copy->added = true;
	r = stop_status(copy);
	if (r < 0)
		return r;
	r = check_extent(copy, extent);
	if (r < 0 || extent->length_bytes == 0)
		return r;
	if (extent->op == DMREPL_EXTENT_COPY)
		apply_range(copy, PIECE_COPY, extent->offset_bytes, extent->length_bytes,
			    NULL);
	else
		discard_extent(copy, extent->offset_bytes, extent->length_bytes);
	progress(copy, false);
	return stop_status(copy);
}

int dmrepl_copy_write(struct dmrepl_copy *copy, uint64_t offset,
		      const void *data, uint64_t len)
{
	int r;

	if (!copy || (!data && len) || copy->finished)
		return -EINVAL;
	r = dmrepl_copy_open(copy);
	if (r < 0)
		return r;
	copy->added = true;
	r = stop_status(copy);
	if (r < 0)
		return r;
	if (offset + len < offset || offset + len > copy->dst.size) {
		err(copy->ctx, "write %" PRIu64 "+%" PRIu64 " is past the end of %s "
		    "(%" PRIu64 " bytes)", offset, len, copy->dst.path,
		    copy->dst.size);
		return -EINVAL;
	}
	apply_range(copy, PIECE_DATA, offset, len, data);
	/* Send the write now: the next record may be a while coming. */
	reap(copy, 0);
	progress(copy, false);
	return stop_status(copy);
}

static int flush_dst(struct dmrepl_copy *copy)
{
	int r;

	if (copy->dst.chardev)
		return 0;	/* nothing to flush, and fsync says EINVAL */
	if (fsync(copy->dst.fd) == 0)
		return 0;
	r = -errno;
	err(copy->ctx, "flush (fsync) %s: %s", copy->dst.path, strerror(-r));
	copy->error = r;
	return r;
}

DMREPL_EXPORT int dmrepl_copy_finish(struct dmrepl_copy *copy)
{
	int r;

	if (!copy)
		return -EINVAL;
	if (copy->finished)
		return copy->error;
	r = dmrepl_copy_open(copy);
	if (r < 0)
		return r;
	copy->added = true;
	drain(copy);
	r = stop_status(copy);
	if (r == 0)
		r = flush_dst(copy);
	progress(copy, true);
	if (r != -ECANCELED)
		copy->finished = true;
	return r;
}

int dmrepl_copy_sync(struct dmrepl_copy *copy)
{
	int r;

	if (!copy || copy->finished)
		return -EINVAL;
	r = dmrepl_copy_open(copy);
	if (r < 0)
		return r;
	drain(copy);
	r = stop_status(copy);
	return r ?: flush_dst(copy);
}

DMREPL_EXPORT struct dmrepl_copy *dmrepl_copy_unref(struct dmrepl_copy *copy)
{
	if (!copy)
		return NULL;
	copy->progress_fn = NULL;	/* its data may be gone already */
	if (copy->opened) {
		drain(copy);
		dmrepl_io_close(&copy->io);
	}
	end_close(&copy->src);
	end_close(&copy->dst);
	free(copy->mem);
	free(copy->iov);
	free(copy->slots);
	free(copy->reaped);
	free(copy->src.path);
	free(copy->dst.path);
	dmrepl_unref(copy->ctx);
	free(copy);
	return NULL;
}
