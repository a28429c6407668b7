/* SPDX-License-Identifier: GPL-2.0-or-later */
/* dmrepl replicate --to ssh://[USER@]HOST/POOL (tools/remote.c). */
#ifndef DMREPL_REMOTE_H
#define DMREPL_REMOTE_H

#include <stdbool.h>
#include <stdint.h>

#include "transfer.h"

struct remote_opts {
	const char *url;		/* ssh://[USER@]HOST/POOL */
	const char *transport;		/* NULL: ssh to HOST */
	const char *remote_dmrepl;	/* NULL: "dmrepl" */
	const char *remote_state_dir;	/* NULL: the far side's default */
	const char *pool;		/* the source pool */
	uint64_t snap_id;
	uint64_t base_id;		/* DMREPL_THIN_ID_ANY: pick one */
	bool full, chain, json, quiet;
};

/*
 * Replicate through the transport; @so carries the send settings (size,
 * compression, engine, progress, cancel) and is filled in further.
 * Return: an exit status.
 */
int remote_replicate(struct dmrepl_ctx *ctx, const struct remote_opts *ro,
		     struct dmrepl_send_opts *so);

#endif
