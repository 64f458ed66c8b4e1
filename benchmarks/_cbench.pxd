# A one-to-one mirror of benchmarks/csrc/bench_*.h: keep in step.
from libc.stdint cimport uint32_t, uint64_t

from damonx._cdamonx cimport dx_range


cdef extern from "bench_adjust.h" nogil:
    struct dx_bench_adjust_result:
        uint64_t nr_rounds
        uint64_t merge_ns
        uint64_t split_ns
        uint64_t nr_after_merge
        uint64_t nr_after_split
        uint64_t clock_overhead_ns

    int dx_bench_adjust(uint32_t nr_regions, uint32_t nr_rounds, uint64_t seed,
                        dx_bench_adjust_result *out)


cdef extern from "bench_floor.h" nogil:
    struct dx_floor_result:
        uint64_t cpu_ns
        uint64_t nr_checks
        uint64_t nr_accessed
        uint64_t nr_absent

    int dx_bench_floor(int pid, const char *procfs, const char *sysfs,
                       const uint64_t *starts, const uint64_t *ends,
                       size_t nr_regions, uint32_t nr_samples, uint64_t sample_us,
                       uint64_t seed, dx_floor_result *out)


cdef extern from "bench_fullscan.h" nogil:
    struct dx_fullscan_interval:
        uint64_t t_ns
        uint64_t cpu_ns
        uint64_t nr_present
        uint64_t nr_accessed

    struct dx_fullscan_result:
        uint64_t cpu_ns
        uint64_t wall_ns
        uint32_t nr_intervals
        uint64_t nr_pagemap_reads
        uint64_t nr_bitmap_reads
        uint64_t nr_bitmap_writes

    int dx_bench_fullscan(int pid, const char *procfs, const char *sysfs,
                          uint64_t interval_us, uint32_t max_intervals, int stop_fd,
                          const dx_range *probes, size_t nr_probes,
                          dx_fullscan_interval *iv, uint64_t *probe_accessed,
                          dx_fullscan_result *out)
