/* SPDX-License-Identifier: MIT */
/*
 * Clocks in nanoseconds: the core's time (CLOCK_MONOTONIC), and the thread
 * CPU time that the benchmarks measure (CLOCK_THREAD_CPUTIME_ID).
 */
#ifndef DAMONX_CLOCK_H
#define DAMONX_CLOCK_H

#include <stdint.h>
#include <time.h>

#define DX_NSEC_PER_SEC 1000000000ULL

/* The time of a clock, in ns. */
static inline uint64_t dx_clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * DX_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

/* A time in ns as a struct timespec (for sleeps and deadlines). */
static inline struct timespec dx_ns_to_timespec(uint64_t ns)
{
	struct timespec ts = {
		.tv_sec = (time_t)(ns / DX_NSEC_PER_SEC),
		.tv_nsec = (long)(ns % DX_NSEC_PER_SEC),
	};

	return ts;
}

#endif /* DAMONX_CLOCK_H */
