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

from damonx.types import REGION_DTYPE

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
    cdef list _target_ids

    def __cinit__(self, attrs, str ops_name, uint64_t seed=0, bint virtual_clock=False, **kw):
        cdef dx_attrs a = make_attrs(attrs)
        cdef dx_operations ops
        self.ctx = NULL
        self._target_ids = []
        check(dx_ctx_new(&self.ctx, &a, seed), "invalid monitoring attributes")
        if ops_name == "sim":
            dx_sim_ops(&ops)
        else:
            raise ValueError(f"unknown operations set {ops_name!r}")
        dx_ctx_set_ops(self.ctx, &ops, NULL)
        self.ctx.clock = DX_CLOCK_VIRTUAL if virtual_clock else DX_CLOCK_REAL
        self.ops_name = ops_name

    def __dealloc__(self):
        if self.ctx is not NULL:
            dx_ctx_free(self.ctx)
            self.ctx = NULL

    def set_attrs(self, attrs):
        cdef dx_attrs a = make_attrs(attrs)
        check(dx_ctx_set_attrs(self.ctx, &a), "invalid monitoring attributes")

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
        self._target_ids.append(target_id)

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
