// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * The bandwidth limit's token bucket; see ratelimit.h.
 */
#include "ratelimit.h"

#define NSEC_PER_SEC 1000000000.0

void dmrepl_ratelimit_init(struct dmrepl_ratelimit *rl, uint64_t bytes_per_sec)
{
	rl->rate = bytes_per_sec;
	rl->tokens = 0;
	rl->last_ns = 0;
	rl->started = 0;
}

static void refill(struct dmrepl_ratelimit *rl, uint64_t now_ns)
{
	double burst = (double)rl->rate / 20.0;	/* 50 ms worth */

	if (burst < 4096)
		burst = 4096;
	if (!rl->started || now_ns < rl->last_ns)
		rl->last_ns = now_ns;
	rl->started = 1;
	rl->tokens += (double)(now_ns - rl->last_ns) * (double)rl->rate / NSEC_PER_SEC;
	rl->last_ns = now_ns;
	if (rl->tokens > burst)
		rl->tokens = burst;
}

uint64_t dmrepl_ratelimit_delay(struct dmrepl_ratelimit *rl, uint64_t now_ns)
{
	if (!rl->rate)
		return 0;
	refill(rl, now_ns);
	if (rl->tokens >= 0)
		return 0;
	return (uint64_t)(-rl->tokens / (double)rl->rate * NSEC_PER_SEC) + 1;
}

void dmrepl_ratelimit_spend(struct dmrepl_ratelimit *rl, uint64_t bytes)
{
	if (rl->rate)
		rl->tokens -= (double)bytes;
}
