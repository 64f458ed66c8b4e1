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

