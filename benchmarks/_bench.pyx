# cython: language_level=3, boundscheck=False, wraparound=False
"""The benchmarks' C loops (benchmarks/csrc): the regions adjustment of the
core timed alone, the bare page_idle check loop, and the full page_idle scan
of a process.  Built in place by benchmarks/bench_ext.py; no part of damonx.
"""

from libc.stdint cimport uint64_t

import os

import numpy as np

cimport numpy as cnp

from _cbench cimport (
    dx_bench_adjust, dx_bench_adjust_result, dx_bench_floor, dx_bench_fullscan, dx_floor_result,
    dx_fullscan_interval, dx_fullscan_result)
from damonx._cdamonx cimport dx_range

cnp.import_array()

# struct dx_fullscan_interval, so that C fills an array of them in place
INTERVAL_DTYPE = np.dtype([("t_ns", "<u8"), ("cpu_ns", "<u8"), ("nr_present", "<u8"),
                           ("nr_accessed", "<u8")])
assert INTERVAL_DTYPE.itemsize == sizeof(dx_fullscan_interval)


cdef int check(int err, str what) except -1:
    if err < 0:
        raise OSError(-err, f"{what}: {os.strerror(-err)}")
    return err


def bench_adjust(unsigned int nr_regions, unsigned int nr_rounds, uint64_t seed=0):
    """Time the end-of-aggregation regions adjustment (merge, then split) of
    a target of nr_regions regions with random access counts, nr_rounds
    times (see csrc/bench_adjust.h).  Totals in thread CPU nanoseconds and
    region counts summed over the rounds."""
    cdef dx_bench_adjust_result res
    cdef int err
    with nogil:
        err = dx_bench_adjust(nr_regions, nr_rounds, seed, &res)
    check(err, "bench_adjust failed")
    return dict(nr_rounds=res.nr_rounds, merge_ns=res.merge_ns, split_ns=res.split_ns,
                nr_after_merge=res.nr_after_merge, nr_after_split=res.nr_after_split,
                clock_overhead_ns=res.clock_overhead_ns)


def bench_floor(int pid, regions, unsigned int nr_samples, uint64_t sample_us=5000,
                uint64_t seed=1, str procfs="/proc", str sysfs="/sys"):
    """Run the bare page_idle check loop (see csrc/bench_floor.h) on the
    regions [(start, end), ...] of a process; a dict of its CPU time and counts."""
    cdef dx_floor_result res
    cdef int err
    cdef bytes p = procfs.encode(), s = sysfs.encode()
    cdef const char *cp = p
    cdef const char *cs = s
    cdef cnp.ndarray[cnp.uint64_t] starts = np.ascontiguousarray([r[0] for r in regions],
                                                                  dtype=np.uint64)
    cdef cnp.ndarray[cnp.uint64_t] ends = np.ascontiguousarray([r[1] for r in regions],
                                                                dtype=np.uint64)
    cdef size_t n = len(starts)
    if n == 0:
        raise ValueError("no regions")
    with nogil:
        err = dx_bench_floor(pid, cp, cs, &starts[0], &ends[0], n, nr_samples,
                             sample_us, seed, &res)
    check(err, "floor benchmark failed")
    return dict(cpu_ns=res.cpu_ns, nr_checks=res.nr_checks,
                nr_accessed=res.nr_accessed, nr_absent=res.nr_absent)


def bench_fullscan(int pid, uint64_t interval_us=100000, unsigned int max_intervals=100000,
                   int stop_fd=-1, probes=(), str procfs="/proc", str sysfs="/sys"):
    """Scan every present page of a process through page_idle every
    interval_us (see csrc/bench_fullscan.h) until max_intervals scans, the
    process exits, or stop_fd becomes readable.  probes: sorted,
    non-overlapping (start, end) virtual ranges whose accessed pages are
    counted per interval.  A dict of totals, with per-interval numpy arrays
    t_ns, interval_cpu_ns, nr_present, nr_accessed and probe_accessed
    (nr_intervals x nr_probes)."""
    cdef dx_fullscan_result res
    cdef int err
    cdef bytes p = procfs.encode(), s = sysfs.encode()
    cdef const char *cp = p
    cdef const char *cs = s
    cdef size_t nr_probes = len(probes)
    cdef cnp.ndarray pr, iv, pa
    cdef const dx_range *pr_data
    cdef dx_fullscan_interval *iv_data
    cdef uint64_t *pa_data
    if max_intervals == 0:
        raise ValueError("max_intervals must be positive")
    # (start, end) pairs laid out as struct dx_range; C fills iv and pa in place
    pr = np.ascontiguousarray(np.array(probes, dtype=np.uint64).reshape(nr_probes, 2))
    iv = np.zeros(max_intervals, dtype=INTERVAL_DTYPE)
    pa = np.zeros((max_intervals, nr_probes), dtype=np.uint64)
    pr_data = <const dx_range *>cnp.PyArray_DATA(pr)
    iv_data = <dx_fullscan_interval *>cnp.PyArray_DATA(iv)
    pa_data = <uint64_t *>cnp.PyArray_DATA(pa)
    with nogil:
        err = dx_bench_fullscan(pid, cp, cs, interval_us, max_intervals, stop_fd,
                                pr_data, nr_probes, iv_data, pa_data, &res)
    check(err, "full scan benchmark failed")
    n = res.nr_intervals
    return dict(cpu_ns=res.cpu_ns, wall_ns=res.wall_ns, nr_intervals=n,
                nr_pagemap_reads=res.nr_pagemap_reads,
                nr_bitmap_reads=res.nr_bitmap_reads,
                nr_bitmap_writes=res.nr_bitmap_writes,
                t_ns=iv["t_ns"][:n].copy(), interval_cpu_ns=iv["cpu_ns"][:n].copy(),
                nr_present=iv["nr_present"][:n].copy(),
                nr_accessed=iv["nr_accessed"][:n].copy(),
                probe_accessed=pa[:n].copy())
