/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The io_uring engine (liburing). The copy's buffers are registered
 * once, so reads and writes use READ_FIXED/WRITE_FIXED and the kernel
 * does not map the pages on every request. Submission is batched: the
 * queued SQEs go to the kernel in the same system call that waits for
 * completions.
 */
#include "config.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "io.h"

struct uring_engine {
	struct io_uring ring;
	bool fixed;		/* buffers registered */
};

static int uring_setup(struct dmrepl_io *io)
{
	struct uring_engine *e;
	int r;

	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	r = io_uring_queue_init(io->depth, &e->ring, 0);
	if (r < 0) {
		free(e);
		return r;
	}
	if (io->nr_bufs > 0) {
		r = io_uring_register_buffers(&e->ring, io->bufs, io->nr_bufs);
		if (r == 0)
			e->fixed = true;
		else
			info(io->ctx, "io_uring: cannot register buffers (%s); "
			     "using unregistered ones", strerror(-r));
	}
	io->priv = e;
	return 0;
}

static struct io_uring_sqe *get_sqe(struct uring_engine *e)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&e->ring);

	if (sqe)
		return sqe;
	/* The ring is sized to the queue depth, so this is rare. */
	io_uring_submit(&e->ring);
	return io_uring_get_sqe(&e->ring);
}

static void prep(struct uring_engine *e, struct io_uring_sqe *sqe,
		 const struct dmrepl_io_req *req)
{
	bool fixed = e->fixed && req->buf_index >= 0;

	if (req->dir == DMREPL_IO_READ && fixed)
		io_uring_prep_read_fixed(sqe, req->fd, req->buf, req->length_bytes,
					 req->offset_bytes, req->buf_index);
	else if (req->dir == DMREPL_IO_READ)
		io_uring_prep_read(sqe, req->fd, req->buf, req->length_bytes,
				   req->offset_bytes);
	else if (fixed)
		io_uring_prep_write_fixed(sqe, req->fd, req->buf, req->length_bytes,
					  req->offset_bytes, req->buf_index);
	else
		io_uring_prep_write(sqe, req->fd, req->buf, req->length_bytes,
				    req->offset_bytes);
}

static int uring_submit(struct dmrepl_io *io, struct dmrepl_io_req *req)
{
	struct uring_engine *e = io->priv;
	struct io_uring_sqe *sqe = get_sqe(e);

	if (!sqe)
		return -EBUSY;
	prep(e, sqe, req);
	sqe->ioprio = (__u16)io->ioprio;
	io_uring_sqe_set_data(sqe, req);
	io->inflight++;
	return 0;
}

static int uring_reap(struct dmrepl_io *io, unsigned int min_nr,
		      struct dmrepl_io_req **reqs, unsigned int max_nr)
{
	struct uring_engine *e = io->priv;
	struct io_uring_cqe *cqe;
	unsigned int n = 0;
	int r;

	if (min_nr > io->inflight)
		min_nr = io->inflight;
	r = io_uring_submit_and_wait(&e->ring, min_nr);
	if (r < 0 && r != -EINTR && r != -EAGAIN && r != -EBUSY)
		return r;
	while (n < max_nr && io_uring_peek_cqe(&e->ring, &cqe) == 0) {
		struct dmrepl_io_req *req = io_uring_cqe_get_data(cqe);

		req->result = cqe->res;
		reqs[n++] = req;
		io_uring_cqe_seen(&e->ring, cqe);
	}
	io->inflight -= n;
	return (int)n;
}

static void uring_teardown(struct dmrepl_io *io)
{
	struct uring_engine *e = io->priv;

	if (!e)
		return;
	io_uring_queue_exit(&e->ring);
	free(e);
	io->priv = NULL;
}

const struct dmrepl_io_ops dmrepl_io_uring_ops = {
	.name = "uring",
	.setup = uring_setup,
	.submit = uring_submit,
	.reap = uring_reap,
	.teardown = uring_teardown,
};
