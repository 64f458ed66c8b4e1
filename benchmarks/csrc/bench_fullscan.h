/* SPDX-License-Identifier: MIT */
/*
 * A full page_idle scanner of one process, the baseline that region-based
 * sampling is compared with: every interval it finds every present page of
 * the process (/proc/PID/maps, then /proc/PID/pagemap in reads of 512
 * entries), reads the idle bits of all of them (the pages that were not
 * found idle were accessed since the previous interval, or are new) and
 * marks them all idle again.  The bitmap is read and written one u64 word
 * per 64 PFNs, in PFN order, with one pread/pwrite per run of words inside a
 * 4 KiB block of the bitmap (sysfs moves at most 4 KiB per call): the least
 * I/O a user-space scanner can do.  Benchmarks report its CPU cost.
 */
#ifndef DAMONX_BENCH_FULLSCAN_H
#define DAMONX_BENCH_FULLSCAN_H

#include <stddef.h>
#include <stdint.h>

#include "damonx.h"

struct dx_fullscan_interval {
	uint64_t t_ns; /* CLOCK_MONOTONIC at the end of the scan */
	uint64_t cpu_ns; /* thread CPU time of the scan */
	uint64_t nr_present; /* present pages with a PFN */
	uint64_t nr_accessed; /* of which not found idle */
};

struct dx_fullscan_result {
	uint64_t cpu_ns; /* thread CPU time of all scans */
	uint64_t wall_ns; /* from the first scan to the return */
	uint32_t nr_intervals; /* scans done */
	uint64_t nr_pagemap_reads;
	uint64_t nr_bitmap_reads;
	uint64_t nr_bitmap_writes;
};

/*
 * Scan process pid every interval_us (back to back when a scan takes
 * longer) until max_intervals scans are done, the process is gone, or
 * stop_fd (if >= 0) becomes readable or hung up.  Interval i is described
 * in iv[i]; probe_accessed[i * nr_probes + k] counts the accessed pages
 * of interval i inside probes[k] (sorted, non-overlapping virtual ranges).
 * The first interval finds every page "accessed": nothing was marked idle
 * before it.  Returns 0 or -errno.
 */
int dx_bench_fullscan(int pid, const char *procfs, const char *sysfs,
		      uint64_t interval_us, uint32_t max_intervals, int stop_fd,
		      const struct dx_range *probes, size_t nr_probes,
		      struct dx_fullscan_interval *iv, uint64_t *probe_accessed,
		      struct dx_fullscan_result *out);

#endif /* DAMONX_BENCH_FULLSCAN_H */
