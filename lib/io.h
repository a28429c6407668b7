/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libdmrepl's I/O engines and copy engine, internal; extents lists.
 */
#ifndef DMREPL_IO_H
#define DMREPL_IO_H

#include "base.h"

/*
 * ---------------------------------------------------------------------
 * I/O engines (lib/io.c, lib/io-uring.c, lib/io-aio.c, lib/io-sync.c)
 *
 * lib/copy.c drives one of three engines through this ops table. A
 * request is a single read or write of one buffer; the engine may hold
 * submitted requests back until the next reap (batching). Short
 * transfers and -EAGAIN are returned as they are: the caller resubmits.
 * ---------------------------------------------------------------------
 */
struct iovec;

enum dmrepl_io_dir { DMREPL_IO_READ = 0, DMREPL_IO_WRITE };

struct dmrepl_io_req {
	int fd;
	enum dmrepl_io_dir dir;
	unsigned int tag;	/* < depth: the engine's per-request slot */
	int buf_index;		/* registered buffer holding @buf, or -1 */
	void *buf;
	uint64_t offset_bytes;
	uint32_t length_bytes;
	int64_t result;		/* on completion: bytes moved or -errno */
};

struct dmrepl_io {
	const struct dmrepl_io_ops *ops;
	struct dmrepl_ctx *ctx;
	unsigned int depth;		/* at most this many requests in flight */
	const struct iovec *bufs;	/* to register (io_uring), nr_bufs of them */
	unsigned int nr_bufs;
	int ioprio;			/* IOPRIO_PRIO_VALUE(), 0 for none */
	int saved_ioprio;		/* the thread's, restored by close; -1 */
	unsigned int inflight;		/* submitted and not yet reaped */
	void *priv;			/* the engine's */
};

struct dmrepl_io_ops {
	const char *name;		/* "uring", "aio", "sync" */
	/*
	 * Return: 0; -ENOSYS, -EPERM, -EAGAIN, -ENOTSUP when the kernel
	 * refuses the engine (the caller falls back); -ENOMEM.
	 */
	int (*setup)(struct dmrepl_io *io);
	/* Queue @req; it stays owned by the engine until reaped. */
	int (*submit)(struct dmrepl_io *io, struct dmrepl_io_req *req);
	/*
	 * Send what is queued, wait for at least @min_nr completions (fewer
	 * on a signal), and store up to @max_nr completed requests in @reqs.
	 * Return: the number stored, or -errno.
	 */
	int (*reap)(struct dmrepl_io *io, unsigned int min_nr,
		    struct dmrepl_io_req **reqs, unsigned int max_nr);
	void (*teardown)(struct dmrepl_io *io);
};

extern const struct dmrepl_io_ops dmrepl_io_uring_ops;
extern const struct dmrepl_io_ops dmrepl_io_aio_ops;
extern const struct dmrepl_io_ops dmrepl_io_sync_ops;

/*
 * Set up @io (ctx, depth, bufs, nr_bufs and ioprio filled in) with
 * @engine, or for DMREPL_ENGINE_AUTO the first of io_uring, libaio and
 * sync that the kernel accepts; the choice and the reason for a fallback
 * are logged at LOG_INFO. io_uring counts as unavailable when
 * /proc/sys/kernel/io_uring_disabled says so, or (a test hook) when the
 * environment has DMREPL_IO_URING_DISABLE=1. Sync and libaio carry
 * @io->ioprio through ioprio_set() on the calling thread.
 * Return: 0; -ENOTSUP when a forced engine is unavailable (logged).
 */
int dmrepl_io_open(struct dmrepl_io *io, enum dmrepl_engine engine);
/* Tear down (every request must have been reaped) and restore the ioprio. */
void dmrepl_io_close(struct dmrepl_io *io);

/*
 * lib/copy.c for streams (receive.c): a copy with no source, whose data
 * comes from dmrepl_copy_write(); discards go through dmrepl_copy_add()
 * as usual. The data is copied into the engine's buffers, so the caller
 * may reuse @data on return.
 */
int dmrepl_copy_new_sink(struct dmrepl_ctx *ctx, const char *dst_path,
			 struct dmrepl_copy **ret_copy);
int dmrepl_copy_write(struct dmrepl_copy *copy, uint64_t offset,
		      const void *data, uint64_t len);
/* Wait for every write in flight, then flush the destination (fsync). */
int dmrepl_copy_sync(struct dmrepl_copy *copy);

/*
 * lib/extents.c: one line of an extents list, as `dmrepl delta
 * --format=extents` prints it: "OFFSET_BYTES LENGTH_BYTES copy|discard",
 * decimal, separated by blanks, with an optional line end. @len bytes of
 * @line are read (no NUL needed).
 * Return: 0 and *@ret_extent filled; 1 for a blank line; -EINVAL with
 * *@ret_reason (a static string) naming the fault.
 */
int dmrepl_extent_parse_line(const char *line, size_t len,
			     struct dmrepl_extent *ret_extent,
			     const char **ret_reason);

#endif /* DMREPL_IO_H */
