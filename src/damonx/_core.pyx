# cython: language_level=3, boundscheck=False, wraparound=False
"""The compiled monitoring context: a thin owner of a ``struct dx_ctx``.

All the work (sampling, access checks, merge and split) runs in C with the
GIL released; this module only moves arguments in and numpy arrays out.
Errors come back from C as negative errno values and leave here as
``OSError``; ``damonx.monitor`` turns them into ``damonx.errors``.
"""

from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EINTR
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy
from libc.math cimport isnan

import os

import numpy as np

cimport numpy as cnp

from damonx._cdamonx cimport *

cnp.import_array()

from damonx.dtypes import REGION_DTYPE

PROC_MODES = {"vaddr": DX_PROC_VADDR, "fvaddr": DX_PROC_FVADDR, "paddr": DX_PROC_PADDR}

ACTIONS = {
    "stat": DX_ACTION_STAT,
    "willneed": DX_ACTION_WILLNEED,
    "cold": DX_ACTION_COLD,
    "pageout": DX_ACTION_PAGEOUT,
    "hugepage": DX_ACTION_HUGEPAGE,
}


cdef int check(int err, str what) except -1:
    if err < 0:
        raise OSError(-err, f"{what}: {os.strerror(-err)}")
    return err


cdef dx_range *to_ranges(object ranges, size_t *n) except NULL:
    cdef size_t i, count = len(ranges)
    cdef dx_range *rg = <dx_range *>malloc((count + 1) * sizeof(dx_range))
    if rg is NULL:
        raise MemoryError()
    try:
        for i, (start, end) in enumerate(ranges):
            rg[i].start = start
            rg[i].end = end
    except BaseException:
        free(rg)
        raise
    n[0] = count
    return rg


def read_maps(str path):
    """The mappings of a process as [(start, end)], as the vaddr ops see them."""
    cdef dx_range *rg = NULL
    cdef size_t n = 0, i
    check(dx_proc_read_maps(path.encode(), &rg, &n), f"cannot read {path}")
    try:
        return [(rg[i].start, rg[i].end) for i in range(n)]
    finally:
        free(rg)


cdef dx_attrs make_attrs(object attrs) except *:
    cdef dx_attrs a
    a.sample_us = attrs.sample_us
    a.aggr_us = attrs.aggr_us
    a.ops_update_us = attrs.ops_update_us
    a.min_nr_regions = attrs.min_nr_regions
    a.max_nr_regions = attrs.max_nr_regions
    a.min_region_sz = attrs.min_region_sz
    return a


cdef class Context:
    """One monitoring context.  Owns its ``dx_ctx`` and frees it."""

    cdef dx_ctx *ctx
    cdef readonly str ops_name
    cdef readonly str procfs

    def __cinit__(self, attrs, str ops_name, uint64_t seed=0, bint virtual_clock=False,
                  str mode="vaddr", str procfs="/proc", str sysfs="/sys"):
        cdef dx_attrs a = make_attrs(attrs)
        cdef dx_operations ops
        self.ctx = NULL
        self.procfs = procfs
        check(dx_ctx_new(&self.ctx, &a, seed), "invalid monitoring attributes")
        self.ctx.clock = DX_CLOCK_VIRTUAL if virtual_clock else DX_CLOCK_REAL
        if ops_name == "sim":
            dx_sim_ops(&ops)
            dx_ctx_set_ops(self.ctx, &ops, NULL)
        elif ops_name == "proc":
            check(dx_proc_attach(self.ctx, PROC_MODES[mode], procfs.encode(), sysfs.encode()),
                  f"cannot open the access check files under {procfs} and {sysfs}")
        else:
            raise ValueError(f"unknown operations set {ops_name!r}")
        self.ops_name = ops_name

    def __dealloc__(self):
        if self.ctx is not NULL:
            dx_ctx_free(self.ctx)
            self.ctx = NULL

    def add_sim_target(self, int64_t target_id, uint64_t size, uint64_t page_size, phases):
        """phases: [(duration_us, [(start, end, probability), ...]), ...]"""
        cdef size_t nr_phases = len(phases), nr_ranges = 0, i, j, k = 0
        for _, ranges in phases:
            nr_ranges += len(ranges)
        cdef dx_sim_phase *ph = <dx_sim_phase *>malloc((nr_phases + 1) * sizeof(dx_sim_phase))
        cdef dx_sim_range *rg = <dx_sim_range *>malloc((nr_ranges + 1) * sizeof(dx_sim_range))
        cdef int err
        if ph is NULL or rg is NULL:
            free(ph)
            free(rg)
            raise MemoryError()
        try:
            for i, (duration_us, ranges) in enumerate(phases):
                ph[i].duration_us = duration_us
                ph[i].nr_ranges = len(ranges)
                ph[i].ranges = &rg[k]
                for j, (start, end, prob) in enumerate(ranges):
                    rg[k].start = start
                    rg[k].end = end
                    rg[k].prob = prob
                    k += 1
            err = dx_sim_add_target(self.ctx, target_id, size, page_size, ph, nr_phases)
        finally:
            free(ph)
            free(rg)
        check(err, "invalid simulated workload")

    def add_pid_target(self, int pid, ranges=None):
        cdef dx_range *rg = NULL
        cdef size_t n = 0
        cdef int err
        if ranges:
            rg = to_ranges(ranges, &n)
        try:
            err = dx_proc_add_pid(self.ctx, pid, rg, n)
        finally:
            free(rg)
        check(err, f"cannot monitor process {pid}")

    def add_range_target(self, int64_t target_id, ranges):
        cdef size_t n = 0
        cdef dx_range *rg = to_ranges(ranges, &n)
        cdef int err
        try:
            err = dx_proc_add_ranges(self.ctx, target_id, rg, n)
        finally:
            free(rg)
        check(err, "cannot monitor the ranges")

    def proc_stats(self):
        """Counters of the real access checks (files read and written)."""
        cdef const dx_proc_stats *s
        if self.ops_name != "proc":
            return {}
        s = dx_proc_get_stats(self.ctx)
        return dict(nr_pagemap_reads=s.nr_pagemap_reads, nr_kpageflags_reads=s.nr_kpageflags_reads,
                    nr_bitmap_writes=s.nr_bitmap_writes, nr_bitmap_reads=s.nr_bitmap_reads,
                    nr_absent=s.nr_absent, nr_unmapped=s.nr_unmapped, nr_shared=s.nr_shared,
                    nr_maps_reads=s.nr_maps_reads)

    def add_scheme(self, str action, uint64_t min_sz, uint64_t max_sz,
                   unsigned int min_nr_accesses, unsigned int max_nr_accesses,
                   unsigned int min_age, unsigned int max_age):
        cdef dx_scheme s
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; one of {sorted(ACTIONS)}")
        s.action = ACTIONS[action]
        s.min_sz, s.max_sz = min_sz, max_sz
        s.min_nr_accesses, s.max_nr_accesses = min_nr_accesses, max_nr_accesses
        s.min_age, s.max_age = min_age, max_age
        check(dx_ctx_add_scheme(self.ctx, &s), "invalid scheme")

    def scheme_stats(self):
        cdef size_t i
        return [dict(nr_tried=self.ctx.schemes[i].nr_tried,
                     sz_tried=self.ctx.schemes[i].sz_tried,
                     nr_applied=self.ctx.schemes[i].nr_applied,
                     sz_applied=self.ctx.schemes[i].sz_applied)
                for i in range(self.ctx.nr_schemes)]

    def run_aggregation(self):
        """Run until the next aggregation ends; True when it did, False when
        the context stopped (stop requested or no target left)."""
        cdef int err
        while True:
            with nogil:
                err = dx_ctx_run_aggregation(self.ctx)
            if err == -EINTR:
                PyErr_CheckSignals()    # raises KeyboardInterrupt & co
                continue
            check(err, "monitoring failed")
            return err == 1

    def snapshot(self):
        """The last aggregation: (start_ns, end_ns, [(target_id, regions)])
        where regions is a numpy array of REGION_DTYPE filled from C."""
        cdef size_t i, off = 0, n
        cdef cnp.ndarray arr
        out = []
        if self.ctx.snap_nr is NULL:
            return (0, 0, out)
        for i in range(self.ctx.nr_targets):
            n = self.ctx.snap_nr[i]
            arr = np.empty(n, dtype=REGION_DTYPE)
            if n:
                memcpy(cnp.PyArray_DATA(arr), &self.ctx.snap[off], n * sizeof(dx_region_out))
            off += n
            if not self.ctx.targets[i].dead:
                out.append((self.ctx.targets[i].id, arr))
        return (self.ctx.snap_start_ns, self.ctx.snap_end_ns, out)

    def request_stop(self):
        dx_ctx_request_stop(self.ctx)

    @property
    def nr_regions(self):
        return dx_ctx_nr_regions(self.ctx)

    @property
    def live_targets(self):
        cdef size_t i
        return [self.ctx.targets[i].id for i in range(self.ctx.nr_targets)
                if not self.ctx.targets[i].dead]

    @property
    def now_ns(self):
        return self.ctx.now_ns

    def stats(self):
        s = self.ctx.stats
        return dict(nr_samples=s.nr_samples, nr_region_checks=s.nr_region_checks,
                    nr_aggregations=s.nr_aggregations, nr_updates=s.nr_updates,
                    nr_targets_lost=s.nr_targets_lost)


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
    cdef cnp.ndarray[cnp.uint64_t] starts = np.ascontiguousarray([r[0] for r in regions], dtype=np.uint64)
    cdef cnp.ndarray[cnp.uint64_t] ends = np.ascontiguousarray([r[1] for r in regions], dtype=np.uint64)
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
    cdef size_t nr_probes = 0, i
    cdef dx_range *pr = NULL
    cdef dx_fullscan_interval *iv = NULL
    cdef dx_fullscan_result res
    cdef cnp.ndarray pa
    cdef uint64_t *pa_data
    cdef int err
    cdef bytes p = procfs.encode(), s = sysfs.encode()
    cdef const char *cp = p
    cdef const char *cs = s
    if max_intervals == 0:
        raise ValueError("max_intervals must be positive")
    # per interval and probe, the accessed pages: C fills the array in place
    pa = np.zeros((max_intervals, len(probes)), dtype=np.uint64)
    pa_data = <uint64_t *>cnp.PyArray_DATA(pa)
    pr = to_ranges(probes, &nr_probes)
    try:
        iv = <dx_fullscan_interval *>malloc(max_intervals * sizeof(dx_fullscan_interval))
        if iv == NULL:
            raise MemoryError()
        with nogil:
            err = dx_bench_fullscan(pid, cp, cs, interval_us, max_intervals, stop_fd,
                                    pr, nr_probes, iv, pa_data, &res)
        check(err, "full scan benchmark failed")
        n = res.nr_intervals
        out = dict(cpu_ns=res.cpu_ns, wall_ns=res.wall_ns, nr_intervals=n,
                   nr_pagemap_reads=res.nr_pagemap_reads,
                   nr_bitmap_reads=res.nr_bitmap_reads,
                   nr_bitmap_writes=res.nr_bitmap_writes,
                   probe_accessed=pa[:n].copy())
        for name in ("t_ns", "interval_cpu_ns", "nr_present", "nr_accessed"):
            out[name] = np.empty(n, dtype=np.uint64)
        for i in range(n):
            out["t_ns"][i] = iv[i].t_ns
            out["interval_cpu_ns"][i] = iv[i].cpu_ns
            out["nr_present"][i] = iv[i].nr_present
            out["nr_accessed"][i] = iv[i].nr_accessed
        return out
    finally:
        free(pr)
        free(iv)
