/* SPDX-License-Identifier: MIT */
/*
 * A micro-benchmark of the regions adjustment (merge then split) that the
 * core runs at the end of every aggregation.  Used by
 * benchmarks/bench_core.py; not part of the monitoring API.
 */
#ifndef DAMONX_BENCH_ADJUST_H
#define DAMONX_BENCH_ADJUST_H

#include <stdint.h>

/* Totals over all rounds; divide by nr_rounds for per-aggregation figures. */
struct dx_bench_adjust_result {
	uint64_t nr_rounds;
	uint64_t merge_ns; /* thread CPU time in dx_merge_regions() */
	uint64_t split_ns; /* thread CPU time in dx_split_regions() */
	uint64_t nr_after_merge; /* sum over rounds of the regions left */
	uint64_t nr_after_split;
	uint64_t clock_overhead_ns; /* subtracted: cost of reading the clock */
};

/*
 * Time nr_rounds aggregation-end adjustments of a target holding nr_regions
 * regions of 1 MiB each, under the default attributes except
 * max_nr_regions = 2 * nr_regions (so that the merge never needs a second
 * pass and the split always runs).  Before each round, untimed, the target
 * is reset to nr_regions regions whose nr_accesses and last_nr_accesses are
 * drawn uniformly in [0, aggr/sample]; the round then runs, timed,
 * dx_merge_regions(ctx, max nr_accesses / 10, total size / min_nr_regions)
 * and dx_split_regions(ctx) (two-way splits: the count is never unchanged
 * since the last split).  Rounds are prepared and timed in batches of
 * separate contexts so that reading the clock costs little next to small
 * targets; the measured cost of reading the clock is subtracted.
 * Returns 0 or -errno.
 */
int dx_bench_adjust(uint32_t nr_regions, uint32_t nr_rounds, uint64_t seed,
		    struct dx_bench_adjust_result *out);

#endif /* DAMONX_BENCH_ADJUST_H */
