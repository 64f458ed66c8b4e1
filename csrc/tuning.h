/* SPDX-License-Identifier: MIT */
/*
 * The core's tuning of a running context (tuning.c), as core.c's loop calls
 * it: CPU time, the monitoring intervals goal and the CPU budget.  Internal
 * to the core; the public part is in damonx.h.
 */
#ifndef DAMONX_TUNING_H
#define DAMONX_TUNING_H

#include "damonx.h"

/* How many sampling intervals an interval of us spans (at least one). */
static inline uint64_t dx_samples_of(uint64_t us, const struct dx_attrs *attrs)
{
	uint64_t nr = us / attrs->sample_us;

	return nr ? nr : 1;
}

/* A new context's tuning state (from dx_ctx_new()). */
void dx_tuning_init(struct dx_ctx *ctx);
/* The context starts: CPU time and the first tuning are counted from now. */
void dx_tuning_start(struct dx_ctx *ctx);
/* One sample's work is done (its CPU cost, on the virtual clock). */
void dx_tuning_sampled(struct dx_ctx *ctx, size_t nr_checks);
/*
 * At the end of an aggregation, after the schemes and before the counts
 * are reset: the intervals goal's step, when one is due (where the kernel
 * tunes its intervals).
 */
void dx_tuning_aggregated(struct dx_ctx *ctx);
/*
 * When the next aggregation begins (counts reset, regions split): the CPU
 * budget, and the intervals in effect for the aggregation.
 */
void dx_tuning_next_aggregation(struct dx_ctx *ctx);

/* The kernel's rules of the intervals goal, for the tests. */
uint64_t dx_feed_loop_next_input(uint64_t last_input, uint64_t score);
uint64_t dx_intervals_score(const struct dx_ctx *ctx);
uint64_t dx_intervals_adaptation_bp(const struct dx_ctx *ctx);
uint64_t dx_tuned_sample_us(const struct dx_ctx *ctx);

#endif /* DAMONX_TUNING_H */
