/* SPDX-License-Identifier: MIT */
/*
 * The user-space floor of a page_idle access check: a bare loop that makes
 * only the calls every check needs (per region per sample: one pagemap read,
 * one kpageflags read, one bitmap write, one bitmap read) and nothing else:
 * no regions, no merging, no batching.  Benchmarks compare damonx with it.
 */
#ifndef DAMONX_BENCH_FLOOR_H
#define DAMONX_BENCH_FLOOR_H

#include <stddef.h>
#include <stdint.h>

struct dx_floor_result {
	uint64_t cpu_ns; /* thread CPU time of the loop, sleeps excluded */
	uint64_t nr_checks; /* region checks done */
	uint64_t nr_accessed; /* of which found accessed */
	uint64_t nr_absent; /* of which on pages without a PFN */
};

/*
 * The regions [starts[i], ends[i]) of process pid, each sampled at a random
 * page nr_samples times, sample_us apart.  Returns 0 or -errno.
 */
int dx_bench_floor(int pid, const char *procfs, const char *sysfs,
		   const uint64_t *starts, const uint64_t *ends,
		   size_t nr_regions, uint32_t nr_samples, uint64_t sample_us,
		   uint64_t seed, struct dx_floor_result *out);

#endif /* DAMONX_BENCH_FLOOR_H */
