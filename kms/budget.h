/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Bulk steps bounded in time. kmsd runs one event loop: a caching round or a QKD intake
 * batch that takes 200 ms delays every PPETP message and kernel event that arrives meanwhile
 * by as much, whatever their priority (libevent does not preempt a running callback). So
 * each bulk step sizes itself from how long the last one took per unit of work (blocks,
 * bytes): shrink at once to what fits the budget, grow by at most doubling.
 */
#ifndef KMS_BUDGET_H
#define KMS_BUDGET_H

#include <stdint.h>
#include <time.h>

static inline uint64_t budget_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * The size of the next step, in [lo, hi], after a step of cap units did done units of work
 * in us microseconds. budget_us 0: no bound, always hi.
 */
static inline uint64_t budget_next(uint64_t cap, uint64_t done, uint64_t us,
				   uint64_t budget_us, uint64_t lo, uint64_t hi)
{
	uint64_t fit, next;

	if (!budget_us)
		return hi;
	if (!done)
		return cap < lo ? lo : cap > hi ? hi : cap;
	fit = budget_us * done / (us ? us : 1);
	next = fit < cap ? fit : cap * 2 < fit ? cap * 2 : fit;
	return next < lo ? lo : next > hi ? hi : next;
}

#endif
