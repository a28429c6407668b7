/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A token bucket over bytes: what --bwlimit means for a copy's writes
 * and for a stream's, in one place. The bucket holds at most 50 ms of
 * the rate (at least 4 KiB), so a limit is kept over any second.
 */
#ifndef DMREPL_RATELIMIT_H
#define DMREPL_RATELIMIT_H

#include <stdint.h>

struct dmrepl_ratelimit {
	uint64_t rate;			/* bytes per second; 0: no limit */
	double tokens;			/* may go below 0: owed */
	uint64_t last_ns;		/* CLOCK_MONOTONIC of the last refill */
	int started;			/* last_ns is set */
};

void dmrepl_ratelimit_init(struct dmrepl_ratelimit *rl, uint64_t bytes_per_sec);
/*
 * Nanoseconds to wait, at @now_ns, before more bytes may go: 0 when they
 * may go now. Sleep at most that, then ask again (or do other work).
 */
uint64_t dmrepl_ratelimit_delay(struct dmrepl_ratelimit *rl, uint64_t now_ns);
/* @bytes went. */
void dmrepl_ratelimit_spend(struct dmrepl_ratelimit *rl, uint64_t bytes);

#endif
