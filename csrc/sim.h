/* SPDX-License-Identifier: MIT */
/*
 * The simulated backend, the "sim" table: a synthetic address space
 * [0, size) whose pages are accessed with known probabilities, so that the
 * ground truth is exact.  With the context's virtual clock, monitoring runs
 * as fast as the CPU allows; with the real one, in real time (phases count
 * from the start of monitoring either way).
 */
#ifndef DAMONX_SIM_H
#define DAMONX_SIM_H

#include "damonx.h"

/*
 * In each sampling interval each page of [start, end) is accessed with
 * probability prob; or, when rate_hz is positive, rate_hz times a second at
 * random moments (a Poisson process), so that a sampling interval of s
 * seconds finds it accessed with probability 1 - exp(-rate_hz * s) and
 * longer intervals find more.  Pages outside every range are never
 * accessed.
 */
struct dx_sim_range {
	uint64_t start;
	uint64_t end;
	double prob;
	double rate_hz;
};

/* A phase lasts duration_us of simulated time; the last one repeats. */
struct dx_sim_phase {
	uint64_t duration_us;
	size_t nr_ranges;
	const struct dx_sim_range *ranges; /* sorted, not overlapping */
};

/* Register the "sim" table. */
int dx_sim_register(void);

/*
 * Add a simulated target to a context running sim; its regions start as
 * [0, size) split evenly.  The phases are copied.  -EINVAL for an invalid
 * workload or a context running other operations.
 */
int dx_sim_add_target(struct dx_ctx *ctx, int64_t id, uint64_t size,
		      uint64_t page_size, const struct dx_sim_phase *phases,
		      size_t nr_phases);

#endif /* DAMONX_SIM_H */
