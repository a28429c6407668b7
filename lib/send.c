/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Send: a thin snapshot, or its delta from a base, as a stream.
 *
 *   identify  through the source pool's metadata snapshot: the
 *             snapshot's (and base's) identity, and the extents to
 *             ship (delta, or the mapped ones), spooled to a temporary
 *             file; the metadata snapshot is then released
 *   resume    with a token: the identity must match; skip what the
 *             receiver has below the token's offset
 *   stream    activate the snapshot read-only, read the extents in
 *             order through the I/O engine (up to queue-depth reads in
 *             flight, delivered in offset order), write DATA, ZERO and
 *             DISCARD records, a CHECKPOINT every checkpoint_bytes, END
 */
#include "metadata.h"
#include "dm.h"
#include "replication.h"
#include "io.h"
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "source.h"
#include "transfer.h"

#define DEFAULT_DEPTH 32u
#define MAX_DEPTH 256u
#define DEFAULT_IO_SIZE (1u << 20)
#define DEFAULT_CHECKPOINT (UINT64_C(256) << 20)
#define DIRECT_ALIGN 4096u
#define PIPE_BYTES (1 << 20)

/* One read in flight, or done and waiting for its turn. */
struct rslot {
	struct dmrepl_io_req req;
	uint64_t off;
	uint32_t len, done;
	bool ready;
};

struct sender {
	struct dmrepl_ctx *ctx;
	const struct dmrepl_send_opts *o;
	const char *path;		/* what is read */
	int fd, buf_fd;			/* O_DIRECT (or buffered), buffered */
	struct dmrepl_io io;
	bool io_open;
	uint8_t *mem, *zero;
	struct iovec *iov;
	struct rslot *slots;
	struct dmrepl_io_req **reaped;
	unsigned int depth, head, count;
	uint32_t io_size;
	struct dmrepl_stream_writer *w;
	uint64_t since_checkpoint;	/* DATA bytes */
	uint64_t checkpoint_bytes;
	uint64_t done, total;
	uint64_t discard_bytes, zero_bytes;
	int error;
};

static bool cancelled(const struct sender *s)
{
	return s->o->cancel && *s->o->cancel;
}

static void set_error(struct sender *s, int r)
{
	if (!s->error)
		s->error = r;
}

/* ---- the source's identity and extents ---- */

/* The snapshot (lib/source.c), and the header it makes. */
struct source {
	struct dmrepl_source s;
	struct dmrepl_stream_header h;
};

static int read_ident(struct dmrepl_metadata *md, const char *pool, uint64_t id,
		      const char *what, struct dmrepl_thin_ident *ret)
{
	int r = dmrepl_thin_ident_read(md, id, ret);

	if (r == -ENOENT)
		err(dmrepl_metadata_get_ctx(md), "%s: no thin %" PRIu64 " (%s)",
		    pool, id, what);
	return r;
}

/* Through the metadata snapshot: identities, block size, extents. */
static int identify(struct dmrepl_ctx *ctx, const struct dmrepl_send_opts *o,
		    struct source *src)
{
	struct dmrepl_metadata *md = NULL;
	bool incr = o->base_id != DMREPL_THIN_ID_ANY;
	int r;

	r = dmrepl_metadata_open_pool(ctx, o->pool, &md);
	if (r < 0)
		return r;
	r = dmrepl_source_identify(&src->s, md);
	if (r == 0 && incr)
		r = read_ident(md, o->pool, o->base_id, "the base", &src->h.base);
	if (r == 0)
		r = dmrepl_source_spool(&src->s, md, o->base_id);
	dmrepl_metadata_unref(md); /* releases the metadata snapshot */
	if (r < 0)
		return r;
	src->h.snap = src->s.snap;
	src->h.data_block_size = src->s.data_block_size;
	if (incr)
		src->h.required_flags |= DMREPL_STREAM_FLAG_BASE;
	return 0;
}

/* A file or device: the whole of it, or the extents given. */
static int identify_device(struct dmrepl_ctx *ctx,
			   const struct dmrepl_send_opts *o, struct source *src)
{
	struct dmrepl_extent e;
	struct stat st;
	char line[256];
	const char *why;
	uint64_t size = 0;
	int fd, r = 0;

	fd = open(o->device, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		err(ctx, "cannot open %s: %s", o->device, strerror(-r));
		goto out;
	}
	if (S_ISBLK(st.st_mode) && ioctl(fd, BLKGETSIZE64, &size) < 0)
		r = -errno;
	else if (S_ISREG(st.st_mode))
		size = (uint64_t)st.st_size;
	if (o->size_bytes)
		size = o->size_bytes;
	if (r == 0 && (size == 0 || size % 512)) {
		err(ctx, "%s: its size %" PRIu64 " is not a positive multiple of "
			 "512 bytes; give one (--size)", o->device, size);
		r = -EINVAL;
	}
	if (r < 0)
		goto out;
	src->h.volume_size = size;
	src->h.data_block_size = 64 << 10;
	if (!o->extents) {
		e = (struct dmrepl_extent){DMREPL_EXTENT_COPY, 0, size};
		r = dmrepl_source_spool_extent(&src->s, &e);
		goto out;
	}
	for (unsigned int n = 1; r == 0 && fgets(line, sizeof(line), o->extents); n++) {
		r = dmrepl_extent_parse_line(line, strlen(line), &e, &why);
		if (r == 1) {
			r = 0;
			continue;
		}
		if (r < 0)
			err(ctx, "extents line %u: %s", n, why);
		else if (e.offset_bytes + e.length_bytes > size ||
			 e.offset_bytes < src->s.extent_end) {
			err(ctx, "extents line %u: out of order or past the end "
				 "(%" PRIu64 " bytes)", n, size);
			r = -EINVAL;
		} else {
			r = dmrepl_source_spool_extent(&src->s, &e);
		}
	}
out:
	if (fd >= 0)
		close(fd);
	return r ?: dmrepl_source_spool_done(&src->s);
}

static int check_token(struct dmrepl_ctx *ctx, const struct dmrepl_send_opts *o,
		       struct source *src)
{
	struct dmrepl_resume_token t;
	uint64_t hash = dmrepl_stream_identity_hash(&src->h);

	if (dmrepl_resume_token_parse(o->resume_token, &t) < 0) {
		err(ctx, "the resume token '%s' is malformed or mistyped",
		    o->resume_token);
		return -EINVAL;
	}
	if (t.snap_id != o->snap_id || t.base_id != o->base_id ||
	    t.identity_hash != hash) {
		err(ctx, "the resume token is for another stream (thin %" PRIu64
			 " from %s, identity %016" PRIx64 "), not for this one "
			 "(thin %" PRIu64 ", identity %016" PRIx64 ")",
		    t.snap_id, t.base_id == DMREPL_THIN_ID_ANY ? "nothing" : "a base",
		    t.identity_hash, o->snap_id, hash);
		return -ESTALE;
	}
	if (t.offset > src->h.volume_size) {
		err(ctx, "the resume token's offset %" PRIu64 " is past the end "
			 "of the volume (%" PRIu64 " bytes)",
		    t.offset, src->h.volume_size);
		return -EINVAL;
	}
	src->h.required_flags |= DMREPL_STREAM_FLAG_RESUMED;
	src->h.resume_offset = t.offset;
	return 0;
}

/* ---- the ordered reader ---- */

static int reader_open(struct sender *s)
{
	const struct dmrepl_send_opts *o = s->o;
	int r;

	s->depth = o->queue_depth ? o->queue_depth : DEFAULT_DEPTH;
	s->io_size = o->io_size ? o->io_size : DEFAULT_IO_SIZE;
	if (s->depth > MAX_DEPTH || s->io_size % DIRECT_ALIGN ||
	    s->io_size > DMREPL_STREAM_MAX_DATA)
		return -EINVAL;
	s->buf_fd = open(s->path, O_RDONLY | O_CLOEXEC);
	if (s->buf_fd < 0) {
		r = -errno;
		err(s->ctx, "cannot open %s: %s", s->path, strerror(-r));
		return r;
	}
	s->fd = open(s->path, O_RDONLY | O_CLOEXEC | O_DIRECT);
	if (s->fd < 0)
		s->fd = s->buf_fd;
	if (posix_memalign((void **)&s->mem, DIRECT_ALIGN,
			   (size_t)(s->depth + 1) * s->io_size))
		return -ENOMEM;
	s->zero = s->mem + (size_t)s->depth * s->io_size;
	memset(s->zero, 0, s->io_size);
	s->iov = calloc(s->depth, sizeof(*s->iov));
	s->slots = calloc(s->depth, sizeof(*s->slots));
	s->reaped = calloc(s->depth, sizeof(*s->reaped));
	if (!s->iov || !s->slots || !s->reaped)
		return -ENOMEM;
	for (unsigned int i = 0; i < s->depth; i++) {
		s->iov[i].iov_base = s->mem + (size_t)i * s->io_size;
		s->iov[i].iov_len = s->io_size;
	}
	s->io.ctx = s->ctx;
	s->io.depth = s->depth;
	s->io.bufs = s->iov;
	s->io.nr_bufs = s->depth;
	s->io.saved_ioprio = -1;
	s->io.ioprio = o->ioprio;
	r = dmrepl_io_open(&s->io, o->engine);
	if (r < 0)
		return r;
	s->io_open = true;
	return 0;
}

static void reader_close(struct sender *s)
{
	while (s->io_open && s->io.inflight)
		if (s->io.ops->reap(&s->io, 1, s->reaped, s->depth) < 0)
			break;
	if (s->io_open)
		dmrepl_io_close(&s->io);
	if (s->fd >= 0 && s->fd != s->buf_fd)
		close(s->fd);
	if (s->buf_fd >= 0)
		close(s->buf_fd);
	free(s->mem);
	free(s->iov);
	free(s->slots);
	free(s->reaped);
}

static void submit(struct sender *s, struct rslot *sl)
{
	struct dmrepl_io_req *req = &sl->req;
	int r;

	req->fd = s->fd;
	req->dir = DMREPL_IO_READ;
	req->tag = (unsigned int)(sl - s->slots);
	req->buf_index = (int)req->tag;
	req->buf = (uint8_t *)s->iov[req->tag].iov_base + sl->done;
	req->offset_bytes = sl->off + sl->done;
	req->length_bytes = sl->len - sl->done;
	r = s->io.ops->submit(&s->io, req);
	if (r < 0) {
		err(s->ctx, "read %s at offset %" PRIu64 ": %s", s->path,
		    req->offset_bytes, strerror(-r));
		set_error(s, r);
	}
}

static void complete(struct sender *s, struct rslot *sl)
{
	int64_t res = sl->req.result;

	if (res == -EAGAIN || res == -EINTR) {
		submit(s, sl);
		return;
	}
	if (res <= 0) {
		res = res ? res : -EIO;	/* the end inside an extent */
		err(s->ctx, "read %s at offset %" PRIu64 " (%" PRIu32 " bytes): %s",
		    s->path, sl->req.offset_bytes, sl->req.length_bytes,
		    strerror((int)-res));
		set_error(s, (int)res);
		sl->ready = true;
		return;
	}
	sl->done += (uint32_t)res;
	if (sl->done < sl->len)
		submit(s, sl);
	else
		sl->ready = true;
}

/* Send what is queued, and take what is done, without waiting. */
static void kick(struct sender *s)
{
	int n = s->io.ops->reap(&s->io, 0, s->reaped, s->depth);

	if (n < 0) {
		set_error(s, n);
		return;
	}
	for (int i = 0; i < n; i++)
		complete(s, &s->slots[s->reaped[i]->tag]);
}

static void checkpoint_due(struct sender *s, uint64_t end)
{
	if (s->since_checkpoint < s->checkpoint_bytes || s->error)
		return;
	set_error(s, dmrepl_stream_write_checkpoint(s->w, end));
	s->since_checkpoint = 0;
}

static void progress(struct sender *s)
{
	if (s->o->progress)
		s->o->progress(s->done, s->total, s->o->progress_data);
}

/* A piece read: DATA, or ZERO when it is all zeroes and asked to. */
static void emit(struct sender *s, const uint8_t *buf, uint64_t off, uint32_t len)
{
	int r;

	if (s->o->detect_zeroes && memcmp(buf, s->zero, len) == 0) {
		r = dmrepl_stream_write_zero(s->w, off, len);
		s->zero_bytes += len;
	} else
		r = dmrepl_stream_write_data(s->w, off, buf, len);
	set_error(s, r);
	s->since_checkpoint += len;
	s->done += len;
	checkpoint_due(s, off + len);
	progress(s);
}

/* Wait for the oldest read, and write it out. */
static void deliver_head(struct sender *s)
{
	struct rslot *sl = &s->slots[s->head];

	while (!sl->ready && !s->error) {
		int n = s->io.ops->reap(&s->io, 1, s->reaped, s->depth);

		if (n < 0) {
			set_error(s, n);
			break;
		}
		for (int i = 0; i < n; i++)
			complete(s, &s->slots[s->reaped[i]->tag]);
	}
	if (!s->error)
		emit(s, s->iov[s->head].iov_base, sl->off, sl->len);
	sl->ready = false;
	s->head = (s->head + 1) % s->depth;
	s->count--;
}

static void deliver_all(struct sender *s)
{
	while (s->count && !s->error)
		deliver_head(s);
}

static bool aligned(uint64_t off, uint64_t len)
{
	return off % DIRECT_ALIGN == 0 && len % DIRECT_ALIGN == 0;
}

/* An unaligned piece: after everything before it, synchronously. */
static void read_sync(struct sender *s, uint64_t off, uint32_t len)
{
	uint8_t *buf = s->iov[0].iov_base;	/* every slot is free then */
	size_t done = 0;

	deliver_all(s);
	while (done < len && !s->error) {
		ssize_t n = pread(s->buf_fd, buf + done, len - done,
				  (off_t)(off + done));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err(s->ctx, "read %s at offset %" PRIu64 ": %s", s->path,
			    off + done, n < 0 ? strerror(errno) : "end of file");
			set_error(s, n < 0 ? -errno : -EIO);
			return;
		}
		done += (size_t)n;
	}
	if (!s->error)
		emit(s, buf, off, len);
}

static void read_piece(struct sender *s, uint64_t off, uint32_t len)
{
	struct rslot *sl;

	if (s->fd != s->buf_fd && !aligned(off, len)) {
		read_sync(s, off, len);
		return;
	}
	if (s->count == s->depth)
		deliver_head(s);
	if (s->error)
		return;
	sl = &s->slots[(s->head + s->count) % s->depth];
	sl->off = off;
	sl->len = len;
	sl->done = 0;
	sl->ready = false;
	s->count++;
	submit(s, sl);
	kick(s);
}

static void send_extent(struct sender *s, const struct dmrepl_extent *e,
			uint64_t from)
{
	uint64_t off = e->offset_bytes, end = off + e->length_bytes, n;

	if (off < from)
		off = from;
	if (off >= end)
		return;
	if (e->op == DMREPL_EXTENT_DISCARD) {
		deliver_all(s);
		if (!s->error)
			set_error(s, dmrepl_stream_write_discard(s->w, off, end - off));
		s->discard_bytes += end - off;
		return;
	}
	for (; off < end && !s->error && !cancelled(s); off += n) {
		n = s->io_size - off % s->io_size;
		if (n > end - off)
			n = end - off;
		read_piece(s, off, (uint32_t)n);
	}
}

static int stream_extents(struct sender *s, struct source *src)
{
	struct dmrepl_extent e;
	uint64_t from = src->h.resume_offset;

	rewind(src->s.spool);
	for (uint64_t i = 0; i < src->s.nr_extents && !s->error; i++) {
		if (cancelled(s))
			set_error(s, -ECANCELED);
		else if (fread(&e, sizeof(e), 1, src->s.spool) != 1) {
			err(s->ctx, "cannot read back the extent list");
			set_error(s, -EIO);
		} else {
			if (e.op == DMREPL_EXTENT_COPY && e.offset_bytes < from)
				s->total -= (e.offset_bytes + e.length_bytes <= from
						     ? e.length_bytes
						     : from - e.offset_bytes);
			send_extent(s, &e, from);
		}
	}
	deliver_all(s);
	if (!s->error)
		set_error(s, dmrepl_stream_write_end(s->w));
	return s->error;
}

/* ---- the whole ---- */

static int prepare(struct dmrepl_ctx *ctx, const struct dmrepl_send_opts *o,
		   struct source *src, const char **ret_path)
{
	int r;

	src->h.time = (uint64_t)time(NULL);
	if (o->more)
		src->h.optional_flags |= DMREPL_STREAM_OPT_MORE;
	/* the source's identity: HOST:POOL, or as given (a device: its path) */
	r = dmrepl_source_open(&src->s, ctx, o->pool, o->snap_id,
			       o->source_name ? o->source_name
			       : o->pool      ? NULL
					      : o->device,
			       o->cancel);
	if (r < 0)
		return r;
	src->s.own_device = o->own_device;
	snprintf(src->h.src_pool, sizeof(src->h.src_pool), "%s", src->s.identity);
	if (!o->pool) {
		*ret_path = o->device;
		return identify_device(ctx, o, src);
	}
	/* a receiver into an LVM pool names its replica after the LV */
	dmrepl_source_name_lv(&src->s, o->snap_name);
	snprintf(src->h.src_name, sizeof(src->h.src_name), "%s", src->s.lv);
	r = identify(ctx, o, src);
	if (r == 0)
		r = dmrepl_source_resolve(&src->s, o->size_bytes, 0);
	src->h.volume_size = src->s.size_bytes;
	if (r == 0 && o->resume_token)
		r = check_token(ctx, o, src);
	if (r == 0 && !o->dry_run)
		r = dmrepl_source_activate(&src->s, ret_path);
	return r;
}

/* A dry run: what the spooled extents would put in the stream. */
static int count_extents(struct dmrepl_ctx *ctx, struct source *src,
			 struct dmrepl_send_result *ret)
{
	uint64_t from = src->h.resume_offset;
	struct dmrepl_extent e;

	rewind(src->s.spool);
	for (uint64_t i = 0; i < src->s.nr_extents; i++) {
		uint64_t off, end;

		if (fread(&e, sizeof(e), 1, src->s.spool) != 1) {
			err(ctx, "cannot read back the extent list");
			return -EIO;
		}
		off = e.offset_bytes > from ? e.offset_bytes : from;
		end = e.offset_bytes + e.length_bytes;
		if (off >= end)
			continue;
		ret->extents++;
		if (e.op == DMREPL_EXTENT_DISCARD)
			ret->discard_bytes += end - off;
		else
			ret->copy_bytes += end - off;
	}
	return 0;
}

/* A larger pipe buffer: fewer switches between sender and receiver. */
void dmrepl_pipe_grow(int fd)
{
	struct stat st;

	if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
		(void)fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES);
}

int dmrepl_send(struct dmrepl_ctx *ctx, const struct dmrepl_send_opts *o,
		int fd, struct dmrepl_send_result *ret)
{
	struct source src = {0};
	struct sender s = {.ctx = ctx, .o = o, .fd = -1, .buf_fd = -1};
	int r;

	if (!ctx || !o || (!o->pool == !o->device) || (fd < 0 && !o->dry_run))
		return -EINVAL;
	if (ret)
		memset(ret, 0, sizeof(*ret));
	if (o->dry_run) {
		r = prepare(ctx, o, &src, &s.path);
		if (r == 0 && ret) {
			r = count_extents(ctx, &src, ret);
			ret->streams = r == 0;
			ret->volume_size = src.h.volume_size;
			ret->resume_offset = src.h.resume_offset;
			ret->incremental = src.h.required_flags & DMREPL_STREAM_FLAG_BASE;
		}
		dmrepl_source_close(&src.s);
		return r;
	}
	dmrepl_pipe_grow(fd);
	r = prepare(ctx, o, &src, &s.path);
	if (r == 0)
		r = reader_open(&s);
	if (r == 0)
		r = dmrepl_stream_writer_new(ctx, fd, "the stream", &src.h,
					     o->zstd_level, &s.w);
	if (r == 0) {
		dmrepl_stream_writer_set_cancel(s.w, o->cancel);
		dmrepl_stream_writer_set_bwlimit(s.w, o->bwlimit);
		s.checkpoint_bytes = o->checkpoint_bytes ? o->checkpoint_bytes
							 : DEFAULT_CHECKPOINT;
		s.total = src.s.total_bytes;
		r = stream_extents(&s, &src);
	}
	if (ret) {
		if (s.w)
			dmrepl_stream_writer_get_stats(s.w, &ret->stats);
		ret->streams = r == 0;
		ret->volume_size = src.h.volume_size;
		ret->resume_offset = src.h.resume_offset;
		ret->incremental = src.h.required_flags & DMREPL_STREAM_FLAG_BASE;
		ret->copy_bytes = s.done;
		ret->discard_bytes = s.discard_bytes;
		ret->zero_bytes = s.zero_bytes;
		ret->extents = src.s.nr_extents;
	}
	dmrepl_stream_writer_free(s.w);
	reader_close(&s);
	dmrepl_source_close(&src.s);
	return r;
}

/* ---- a chain: base -> link 1 -> ... -> snap, one stream each ---- */

/* The links are seldom active: they take the target's size. */
static int chain_size(struct dmrepl_ctx *ctx, const struct dmrepl_send_opts *o,
		      uint64_t *ret)
{
	struct dmrepl_pool *pool = NULL;
	int r;

	r = dmrepl_pool_open(ctx, o->pool, &pool);
	if (r == 0)
		r = dmrepl_pool_get_active_size(pool, o->snap_id, ret);
	dmrepl_pool_unref(pool);
	if (r == -ENOENT)
		err(ctx, "%s: the size of thin %" PRIu64 " is not known: no active "
			 "device maps it; give it (--size)",
		    o->pool, o->snap_id);
	return r;
}

static void add_up(struct dmrepl_send_result *sum,
		   const struct dmrepl_send_result *one)
{
	sum->stats.records += one->stats.records;
	sum->stats.data_bytes += one->stats.data_bytes;
	sum->stats.wire_bytes += one->stats.wire_bytes;
	sum->incremental = one->incremental;
	sum->streams += one->streams;
	sum->volume_size = one->volume_size;
	sum->extents += one->extents;
	sum->copy_bytes += one->copy_bytes;
	sum->discard_bytes += one->discard_bytes;
	sum->zero_bytes += one->zero_bytes;
}

int dmrepl_send_chain(struct dmrepl_ctx *ctx, const struct dmrepl_send_opts *o,
		      int fd, struct dmrepl_send_result *ret)
{
	struct dmrepl_send_result one;
	struct dmrepl_send_opts link = *o;
	uint64_t *ids = NULL;
	size_t n = 0;
	int r;

	if (!ctx || !o || !o->pool || o->base_id == DMREPL_THIN_ID_ANY)
		return -EINVAL;
	if (ret)
		memset(ret, 0, sizeof(*ret));
	r = dmrepl_chain_list(ctx, o->pool, o->base_id, o->snap_id, &ids, &n);
	if (r == 0 && !link.size_bytes && n)
		r = chain_size(ctx, o, &link.size_bytes);
	for (size_t i = 0; i <= n && r == 0; i++) {
		link.snap_id = i < n ? ids[i] : o->snap_id;
		link.snap_name = i < n ? NULL : o->snap_name; /* links: asked */
		link.more = i < n;
		r = dmrepl_send(ctx, &link, fd, &one);
		if (ret)
			add_up(ret, &one);
		link.base_id = link.snap_id;
	}
	free(ids);
	return r;
}
