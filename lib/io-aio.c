/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The libaio engine: Linux native AIO. Requests are queued and sent in
 * one io_submit() at the next reap. Native AIO is only asynchronous on
 * O_DIRECT files; on a buffered file io_submit() does the I/O itself.
 */
#include "config.h"

#include <errno.h>
#include <libaio.h>
#include <stdlib.h>
#include <string.h>

#include "base.h"
#include "io.h"

struct aio_engine {
	io_context_t ioctx;
	unsigned int nr_pending;
	struct iocb **pending;
	struct io_event *events;
	struct iocb iocbs[];	/* one per tag */
};

static void aio_free(struct aio_engine *e)
{
	if (!e)
		return;
	free(e->pending);
	free(e->events);
	free(e);
}

static int aio_setup(struct dmrepl_io *io)
{
	struct aio_engine *e;
	int r;

	e = calloc(1, sizeof(*e) + io->depth * sizeof(e->iocbs[0]));
	if (!e)
		return -ENOMEM;
	e->pending = calloc(io->depth, sizeof(e->pending[0]));
	e->events = calloc(io->depth, sizeof(e->events[0]));
	if (!e->pending || !e->events) {
		aio_free(e);
		return -ENOMEM;
	}
	r = io_setup((int)io->depth, &e->ioctx);	/* returns -errno */
	if (r < 0) {
		aio_free(e);
		return r;
	}
	io->priv = e;
	return 0;
}

static int aio_submit(struct dmrepl_io *io, struct dmrepl_io_req *req)
{
	struct aio_engine *e = io->priv;
	struct iocb *cb;

	if (req->tag >= io->depth || e->nr_pending >= io->depth)
		return -EBUSY;
	cb = &e->iocbs[req->tag];
	if (req->dir == DMREPL_IO_READ)
		io_prep_pread(cb, req->fd, req->buf, req->length_bytes,
			      (long long)req->offset_bytes);
	else
		io_prep_pwrite(cb, req->fd, req->buf, req->length_bytes,
			       (long long)req->offset_bytes);
	cb->data = req;
	e->pending[e->nr_pending++] = cb;
	io->inflight++;
	return 0;
}

/*
 * Send the queued iocbs. One the kernel rejects outright (io_submit
 * fails on the first of the batch) completes with that error, so the
 * caller sees it through the normal path.
 */
static int aio_flush(struct aio_engine *e, struct dmrepl_io_req **reqs,
		     unsigned int max_nr, unsigned int *nr_failed)
{
	unsigned int sent = 0;
	int r;

	while (sent < e->nr_pending) {
		r = io_submit(e->ioctx, (long)(e->nr_pending - sent), e->pending + sent);
		if (r == -EINTR)
			continue;
		if (r == -EAGAIN)
			break;	/* the ring is full: reap first, send the rest later */
		if (r < 0) {
			struct dmrepl_io_req *req = e->pending[sent]->data;

			if (*nr_failed >= max_nr)
				break;
			req->result = r;
			reqs[(*nr_failed)++] = req;
			r = 1;
		}
		sent += (unsigned int)r;
	}
	memmove(e->pending, e->pending + sent,
		(e->nr_pending - sent) * sizeof(e->pending[0]));
	e->nr_pending -= sent;
	return 0;
}

static int aio_reap(struct dmrepl_io *io, unsigned int min_nr,
		    struct dmrepl_io_req **reqs, unsigned int max_nr)
{
	struct aio_engine *e = io->priv;
	unsigned int n = 0, submitted;
	int r;

	if (max_nr > io->depth)
		max_nr = io->depth;
	aio_flush(e, reqs, max_nr, &n);
	submitted = io->inflight - e->nr_pending - n;
	if (min_nr > submitted)
		min_nr = submitted;
	if (n > 0 || max_nr - n == 0)
		min_nr = 0;
	if (submitted > 0 && n < max_nr) {
		r = io_getevents(e->ioctx, min_nr, (long)(max_nr - n), e->events, NULL);
		if (r < 0 && r != -EINTR)
			return r;
		for (int i = 0; i < r; i++) {
			struct dmrepl_io_req *req = e->events[i].data;

			req->result = (int64_t)(long)e->events[i].res;
			reqs[n++] = req;
		}
	}
	io->inflight -= n;
	return (int)n;
}

static void aio_teardown(struct dmrepl_io *io)
{
	struct aio_engine *e = io->priv;

	if (!e)
		return;
	io_destroy(e->ioctx);
	aio_free(e);
	io->priv = NULL;
}

const struct dmrepl_io_ops dmrepl_io_aio_ops = {
	.name = "aio",
	.setup = aio_setup,
	.submit = aio_submit,
	.reap = aio_reap,
	.teardown = aio_teardown,
};
