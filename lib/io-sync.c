/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pread/pwrite engine: each request is done when it is submitted,
 * and waits in a list until it is reaped. The fallback when neither
 * io_uring nor libaio is available; one request at a time.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "base.h"
#include "io.h"

struct sync_engine {
	unsigned int nr_done;
	struct dmrepl_io_req *done[];
};

static int sync_setup(struct dmrepl_io *io)
{
	struct sync_engine *e;

	e = calloc(1, sizeof(*e) + io->depth * sizeof(e->done[0]));
	if (!e)
		return -ENOMEM;
	io->priv = e;
	return 0;
}

static int64_t sync_transfer(const struct dmrepl_io_req *req)
{
	ssize_t n;

	do {
		if (req->dir == DMREPL_IO_READ)
			n = pread(req->fd, req->buf, req->length_bytes,
				  (off_t)req->offset_bytes);
		else
			n = pwrite(req->fd, req->buf, req->length_bytes,
				   (off_t)req->offset_bytes);
	} while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

static int sync_submit(struct dmrepl_io *io, struct dmrepl_io_req *req)
{
	struct sync_engine *e = io->priv;

	if (e->nr_done >= io->depth)
		return -EBUSY;
	req->result = sync_transfer(req);
	e->done[e->nr_done++] = req;
	io->inflight++;
	return 0;
}

static int sync_reap(struct dmrepl_io *io, unsigned int min_nr,
		     struct dmrepl_io_req **reqs, unsigned int max_nr)
{
	struct sync_engine *e = io->priv;
	unsigned int n = 0;

	while (n < max_nr && e->nr_done > 0)
		reqs[n++] = e->done[--e->nr_done];
	io->inflight -= n;
	return (int)n;
}

static void sync_teardown(struct dmrepl_io *io)
{
	free(io->priv);
	io->priv = NULL;
}

const struct dmrepl_io_ops dmrepl_io_sync_ops = {
	.name = "sync",
	.setup = sync_setup,
	.submit = sync_submit,
	.reap = sync_reap,
	.teardown = sync_teardown,
};
