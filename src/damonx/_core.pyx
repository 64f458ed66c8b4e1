# cython: language_level=3, boundscheck=False, wraparound=False
"""The compiled monitoring context: a thin owner of a ``struct dx_ctx``.

All the work (sampling, access checks, merge and split) runs in C with the
GIL released; this module only moves arguments in and numpy arrays out.
Errors come back from C as negative errno values and leave here as
``OSError``; ``damonx.errors`` turns them into damonx's own exceptions.

``Context`` is the interface ``damonx.Monitor`` drives a backend through:

- ``ops``, ``procfs``: what it monitors with, and where it found /proc;
- ``add_sim_target()``, ``add_pid_target()``, ``add_range_target()``:
  targets, each kind for the operations that take it (sim; vaddr and
  fvaddr; paddr), before the first aggregation;
- ``add_scheme()``, ``scheme_stats()``, ``tried_regions()``,
  ``set_goal_value()``, ``actions``, ``filters``: operation schemes, and the
  actions and filter types the operations apply;
- ``run_aggregation()``: monitor until the next aggregation ends (1), until
  stopped (0), or through one watermark interval of paused monitoring
  (``PAUSED``); then ``snapshot()`` gives its regions, as arrays of
  ``MONITOR_REGION_DTYPE``, and ``snapshot_intervals()`` the intervals that
  were in effect;
- ``set_attrs()``, ``attrs_in_effect()``: change the attributes while
  monitoring, and read those in effect (tuned by the intervals goal and the
  CPU budget);
- ``request_stop()``: callable from any thread or a signal handler;
- ``nr_regions``, ``live_targets``, ``now_ns``, ``cpu_ns``, ``stats()``,
  ``access_check_stats()``: state and counters; ``set_cpu_model()``: the
  CPU cost of the work on the virtual clock (sim).

Every operations set in ``OPS`` is a C operations table registered by its
backend.  A backend that is not one (the kernel's DAMON, driven through
sysfs) plugs in under the same ``Monitor`` by providing these methods in
Python.
"""

from cpython.exc cimport PyErr_CheckSignals
from libc.errno cimport EINTR, EINVAL
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset, strncpy

import os

import numpy as np

cimport numpy as cnp

from damonx cimport _cdamonx as cdx
from damonx._cdamonx cimport (
    DX_ACTION_BIT, DX_ACTION_NR, DX_CLOCK_REAL, DX_CLOCK_VIRTUAL, DX_FILTER_BIT, DX_FILTER_NR,
    DX_GOAL_NR, DX_PAUSED, dx_action_name, dx_action_note, dx_attrs, dx_counter, dx_cpu_model,
    dx_ctx, dx_ctx_actions, dx_ctx_add_scheme, dx_ctx_attrs, dx_ctx_cpu_ns, dx_ctx_filters,
    dx_ctx_free, dx_ctx_goal_value, dx_ctx_new, dx_ctx_now_ns, dx_ctx_nr_regions, dx_ctx_nr_schemes,
    dx_ctx_nr_targets, dx_ctx_nr_tried_regions, dx_ctx_ops_counters, dx_ctx_request_stop,
    dx_ctx_run_aggregation, dx_ctx_scheme, dx_ctx_scheme_stats, dx_ctx_select_ops, dx_ctx_set_attrs,
    dx_ctx_set_clock, dx_ctx_set_cpu_model, dx_ctx_set_goal_value, dx_ctx_set_metric_roots,
    dx_ctx_snapshot_fill, dx_ctx_snapshot_intervals, dx_ctx_snapshot_nr_checks,
    dx_ctx_snapshot_nr_regions,
    dx_ctx_snapshot_span, dx_ctx_stats, dx_ctx_target_id, dx_ctx_target_live,
    dx_ctx_tried_regions_fill, dx_filter, dx_filter_type_name, dx_goal_metric_name, dx_nr_ops,
    dx_ops_env, dx_ops_name, dx_paddr_add_target, dx_paddr_register, dx_quota_goal, dx_range,
    dx_read_maps, dx_region_out, dx_scheme, dx_scheme_stats, dx_sim_add_target, dx_sim_phase,
    dx_sim_range, dx_sim_register, dx_stats, dx_tried_region, dx_vaddr_add_target,
    dx_vaddr_register)

cnp.import_array()

from damonx.dtypes import MONITOR_REGION_DTYPE, TRIED_REGION_DTYPE
from damonx.errors import DamonxError, InvalidAttrs

if MONITOR_REGION_DTYPE.itemsize != sizeof(dx_region_out):
    raise ImportError(f"MONITOR_REGION_DTYPE has {MONITOR_REGION_DTYPE.itemsize} bytes, "
                      f"struct dx_region_out {sizeof(dx_region_out)}: rebuild damonx")

#: damonx's single rules beyond the kernel's, by name (csrc/damonx.h):
#: ``Attrs.hit_guided_regions`` turns on the first four,
#: ``Attrs.adaptive_checks`` the last two.
RULES = {"seeds": cdx.DX_RULE_SEEDS, "probes": cdx.DX_RULE_PROBES,
         "search": cdx.DX_RULE_SEARCH, "keep": cdx.DX_RULE_KEEP,
         "periods": cdx.DX_RULE_PERIODS, "noise": cdx.DX_RULE_NOISE}

if TRIED_REGION_DTYPE.itemsize != sizeof(dx_tried_region):
    raise ImportError("TRIED_REGION_DTYPE and struct dx_tried_region differ: rebuild damonx")

#: The scheme actions by name (damo's), from the core's one table of them.
ACTIONS = {dx_action_name(i).decode(): i for i in range(DX_ACTION_NR)}
#: The quota goal metrics and the filter types, by name (damo's).
GOAL_METRICS = {dx_goal_metric_name(i).decode(): i for i in range(DX_GOAL_NR)}
FILTER_TYPES = {dx_filter_type_name(i).decode(): i for i in range(DX_FILTER_NR)}
#: run_aggregation(): monitoring paused by the schemes' watermarks
PAUSED = DX_PAUSED
# why no operations apply an action, where that is so
_ACTION_NOTES = {name: dx_action_note(i).decode() for name, i in ACTIONS.items()
                 if dx_action_note(i) != NULL}

# /proc/PID/pagemap entries and /proc/kpageflags bits (masks), as the access
# checks read them (csrc/ops-common.h).
PM_PFN_MASK = cdx.PM_PFN_MASK
PM_SOFT_DIRTY = cdx.PM_SOFT_DIRTY
PM_MMAP_EXCLUSIVE = cdx.PM_MMAP_EXCLUSIVE
PM_FILE = cdx.PM_FILE
PM_SWAP = cdx.PM_SWAP
PM_PRESENT = cdx.PM_PRESENT
KPF_LRU = cdx.KPF_LRU
KPF_COMPOUND_HEAD = cdx.KPF_COMPOUND_HEAD
KPF_COMPOUND_TAIL = cdx.KPF_COMPOUND_TAIL
KPF_HUGE = cdx.KPF_HUGE
KPF_NOPAGE = cdx.KPF_NOPAGE
KPF_THP = cdx.KPF_THP
KPF_ZERO_PAGE = cdx.KPF_ZERO_PAGE

cdef enum:
    MAX_COUNTERS = 32   # per backend, at most


cdef int check(int err, str what) except -1:
    if err < 0:
        raise OSError(-err, f"{what}: {os.strerror(-err)}")
    return err


# The backends built into this module register their operations tables;
# OPS lists them in this order.
check(dx_sim_register(), "cannot register sim")
check(dx_vaddr_register(), "cannot register vaddr and fvaddr")
check(dx_paddr_register(), "cannot register paddr")
#: The operations sets.
OPS = tuple(dx_ops_name(i).decode() for i in range(dx_nr_ops()))


cdef dx_range *to_ranges(object ranges, size_t *n) except NULL:
    """A malloc'ed copy of [(start, end), ...]; the caller frees it."""
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
    check(dx_read_maps(path.encode(), &rg, &n), f"cannot read {path}")
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
    a.rules = ((cdx.DX_RULE_HIT_GUIDED if getattr(attrs, "hit_guided_regions", True) else 0)
               | (cdx.DX_RULE_ADAPTIVE_CHECKS if getattr(attrs, "adaptive_checks", True) else 0))
    goal = getattr(attrs, "intervals_goal", None)
    a.intervals_goal.aggrs = 0 if goal is None else goal.aggrs
    a.intervals_goal.access_bp = 0 if goal is None else goal.access_bp
    a.intervals_goal.min_sample_us = 0 if goal is None else goal.min_sample_us
    a.intervals_goal.max_sample_us = 0 if goal is None else goal.max_sample_us
    # percent of one CPU to basis points
    budget = getattr(attrs, "cpu_budget", None)
    a.cpu_budget_bp = 0 if budget is None else max(1, round(budget * 100))
    return a


cdef class Context:
    """One monitoring context with one operations set.  Owns its ``dx_ctx``.

    attrs is any object with sample_us, aggr_us, ops_update_us,
    min_nr_regions, max_nr_regions, min_region_sz, hit_guided_regions and
    adaptive_checks; ops one of ``OPS``; seed makes the sampling
    reproducible.  virtual_clock advances time without sleeping (for sim);
    procfs and sysfs are the roots of /proc and /sys, and page_size the size
    of their pages in bytes (None: this system's); tests point them at fake
    trees.  rules, names of ``RULES``, replaces the rules the two attributes
    choose, one by one (for measuring what each does).
    """

    cdef dx_ctx *ctx
    # True while run_aggregation() runs the C loop without the GIL; read and
    # written with the GIL held only
    cdef bint running
    cdef readonly str ops
    cdef readonly str procfs
    cdef readonly str sysfs
    #: the monitoring attributes it was made with
    cdef readonly object attrs
    #: the size of a page, bytes (what the real access checks count in)
    cdef readonly uint64_t page_size

    def __cinit__(self, attrs, str ops, uint64_t seed=0, *, bint virtual_clock=False,
                  str procfs="/proc", str sysfs="/sys", page_size=None, rules=None):
        cdef dx_attrs a = make_attrs(attrs)
        if rules is not None:
            unknown = set(rules) - set(RULES)
            if unknown:
                raise ValueError(f"unknown rules {', '.join(sorted(unknown))}; "
                                 f"of {', '.join(RULES)}")
            a.rules = sum(RULES[name] for name in set(rules))
        cdef bytes p = procfs.encode(), s = sysfs.encode()
        cdef dx_ops_env env
        cdef int err
        self.ctx = NULL
        self.running = False
        if ops not in OPS:
            raise ValueError(f"unknown operations {ops!r}; one of {', '.join(OPS)}")
        self.ops = ops
        self.procfs = procfs
        self.sysfs = sysfs
        self.attrs = attrs
        self.page_size = os.sysconf("SC_PAGESIZE") if page_size is None else page_size
        check(dx_ctx_new(&self.ctx, &a, seed), "invalid monitoring attributes")
        check(dx_ctx_set_metric_roots(self.ctx, p, s), "the /proc or /sys root is too long")
        dx_ctx_set_clock(self.ctx, DX_CLOCK_VIRTUAL if virtual_clock else DX_CLOCK_REAL)
        env.procfs = p
        env.sysfs = s
        env.page_size = self.page_size
        err = dx_ctx_select_ops(self.ctx, ops.encode(), &env)
        if err == -EINVAL and a.min_region_sz < self.page_size:
            raise InvalidAttrs(
                f"min_region_sz {a.min_region_sz} is below the page size {self.page_size}: "
                f"{ops} checks accesses page by page; use a min_region_sz of at least "
                f"{self.page_size}")
        check(err, f"cannot set up {ops} (with {procfs} and {sysfs})")

    def __dealloc__(self):
        if self.ctx is not NULL:
            dx_ctx_free(self.ctx)
            self.ctx = NULL

    cdef int _not_running(self, str what) except -1:
        if self.running:
            raise DamonxError(
                f"cannot {what}: the monitoring loop of this context is running in another "
                "thread (or below this signal handler); only request_stop() may be called "
                "meanwhile")
        return 0

    # -- targets and schemes ---------------------------------------------
    def add_sim_target(self, int64_t target_id, uint64_t size, uint64_t page_size, phases):
        """phases: [(duration_us, [(start, end, probability), ...]), ...]; a
        range may have a fourth item, its rate of accesses per second per
        page (a Poisson process, used instead of the probability when > 0)."""
        cdef size_t nr_phases = len(phases), nr_ranges = 0, i, j, k = 0
        cdef dx_sim_phase *ph
        cdef dx_sim_range *rg
        cdef int err
        self._not_running("add a target")
        for _, ranges in phases:
            nr_ranges += len(ranges)
        ph = <dx_sim_phase *>malloc((nr_phases + 1) * sizeof(dx_sim_phase))
        rg = <dx_sim_range *>malloc((nr_ranges + 1) * sizeof(dx_sim_range))
        if ph is NULL or rg is NULL:
            free(ph)
            free(rg)
            raise MemoryError()
        try:
            for i, (duration_us, ranges) in enumerate(phases):
                ph[i].duration_us = duration_us
                ph[i].nr_ranges = len(ranges)
                ph[i].ranges = &rg[k]
                for j, rng in enumerate(ranges):
                    rg[k].start = rng[0]
                    rg[k].end = rng[1]
                    rg[k].prob = rng[2]
                    rg[k].rate_hz = rng[3] if len(rng) > 3 else 0.0
                    k += 1
            err = dx_sim_add_target(self.ctx, target_id, size, page_size, ph, nr_phases)
        finally:
            free(ph)
            free(rg)
        check(err, "invalid simulated workload")

    def add_pid_target(self, int pid, ranges=None):
        """A process: with ranges None for vaddr, or its [(start, end)] for fvaddr."""
        cdef dx_range *rg = NULL
        cdef size_t n = 0
        cdef int err
        self._not_running("add a target")
        if ranges:
            rg = to_ranges(ranges, &n)
        try:
            err = dx_vaddr_add_target(self.ctx, pid, rg, n)
        finally:
            free(rg)
        check(err, f"cannot monitor process {pid}")

    def add_range_target(self, int64_t target_id, ranges):
        """Physical address ranges [(start, end)] as one target (paddr)."""
        cdef size_t n = 0
        cdef dx_range *rg
        cdef int err
        self._not_running("add a target")
        rg = to_ranges(ranges, &n)
        try:
            err = dx_paddr_add_target(self.ctx, target_id, rg, n)
        finally:
            free(rg)
        check(err, "cannot monitor the ranges")

    @property
    def actions(self):
        """The names of the actions these operations apply, in ACTIONS order."""
        cdef uint32_t bits = dx_ctx_actions(self.ctx)
        return tuple(name for name, i in ACTIONS.items() if bits & DX_ACTION_BIT(i))

    @property
    def filters(self):
        """The names of the filter types these operations handle."""
        cdef uint32_t bits = dx_ctx_filters(self.ctx)
        return tuple(name for name, i in FILTER_TYPES.items() if bits & DX_FILTER_BIT(i))

    def add_scheme(self, scheme):
        """Add a damonx.Scheme, or a dict as its to_core() gives it: the
        core's units (bytes, samples, aggregations, per mille, basis
        points).  ValueError for an action or a filter type unknown, or one
        these operations do not handle."""
        cdef dx_scheme s
        cdef dx_filter *fs = NULL
        cdef dx_quota_goal *gs = NULL
        cdef size_t i
        cdef bytes path
        cdef int err
        self._not_running("add a scheme")
        spec = scheme if isinstance(scheme, dict) else scheme.to_core(
            self.attrs.sample_us, self.attrs.aggr_us, self.sysfs)
        action = spec["action"]
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
        if action not in self.actions:
            note = _ACTION_NOTES.get(action)
            raise ValueError(
                f"ops {self.ops!r} cannot apply action {action!r} (its actions: "
                f"{', '.join(self.actions)})" + (f"; {note}" if note else ""))
        for f in spec["filters"]:
            if f["type"] not in self.filters:
                raise ValueError(
                    f"ops {self.ops!r} has no {f['type']!r} filter (its filters: "
                    f"{', '.join(self.filters)})")
        memset(&s, 0, sizeof(s))
        s.action = ACTIONS[action]
        s.min_sz, s.max_sz = spec["sz"]
        s.min_nr_accesses, s.max_nr_accesses = spec["nr_accesses"]
        s.min_age, s.max_age = spec["age"]
        s.target_nid = spec["target_nid"]
        s.apply_interval_us = spec["apply_interval_us"]
        q = spec["quota"]
        s.quota.ms, s.quota.sz, s.quota.reset_interval_ms = q["ms"], q["sz"], q["reset_interval_ms"]
        s.quota.weight_sz, s.quota.weight_nr_accesses, s.quota.weight_age = q["weights"]
        s.quota.goal_tuner = q["goal_tuner"]
        s.quota.fail_charge_num, s.quota.fail_charge_denom = q["fail_charge"]
        w = spec["wmarks"]
        s.wmarks.metric = w["metric"]
        s.wmarks.interval_us, s.wmarks.high, s.wmarks.mid, s.wmarks.low = (
            w["interval_us"], w["high"], w["mid"], w["low"])
        fs = <dx_filter *>malloc((len(spec["filters"]) + 1) * sizeof(dx_filter))
        gs = <dx_quota_goal *>malloc((len(q["goals"]) + 1) * sizeof(dx_quota_goal))
        if fs is NULL or gs is NULL:
            free(fs)
            free(gs)
            raise MemoryError()
        try:
            for i, f in enumerate(spec["filters"]):
                memset(&fs[i], 0, sizeof(dx_filter))
                fs[i].type = FILTER_TYPES[f["type"]]
                fs[i].matching = f["matching"]
                fs[i].allow = f["allow"]
                fs[i].memcg_ino = f.get("memcg_ino", 0)
                fs[i].addr.start, fs[i].addr.end = f.get("addr", (0, 0))
                fs[i].target_idx = f.get("target_idx", 0)
                fs[i].sz_min, fs[i].sz_max = f.get("sz", (0, 0))
            for i, g in enumerate(q["goals"]):
                memset(&gs[i], 0, sizeof(dx_quota_goal))
                gs[i].metric = GOAL_METRICS[g["metric"]]
                gs[i].target_value = g["target_value"]
                gs[i].current_value = g["current_value"]
                gs[i].nid = g["nid"]
                path = g["memcg_path"].encode()
                if len(path) >= sizeof(gs[i].memcg_path):
                    raise ValueError(f"memcg path {g['memcg_path']!r} is too long")
                strncpy(gs[i].memcg_path, path, sizeof(gs[i].memcg_path) - 1)
            s.filters = fs
            s.nr_filters = len(spec["filters"])
            s.goals = gs
            s.nr_goals = len(q["goals"])
            err = dx_ctx_add_scheme(self.ctx, &s)
        finally:
            free(fs)
            free(gs)
        check(err, "invalid scheme")

    def scheme_stats(self):
        """Per scheme, in the order added: the kernel's statistics
        (nr_tried, sz_tried, nr_applied, sz_applied, sz_ops_filter_passed,
        qt_exceeds, nr_snapshots), damonx's (nr_failed, last_errno: 0 before
        any failure) and state (esz, the effective size quota in bytes;
        activated, by the watermarks)."""
        cdef size_t i
        cdef dx_scheme_stats st
        out = []
        for i in range(dx_ctx_nr_schemes(self.ctx)):
            dx_ctx_scheme_stats(self.ctx, i, &st)
            out.append(dict(nr_tried=st.nr_tried, sz_tried=st.sz_tried,
                            nr_applied=st.nr_applied, sz_applied=st.sz_applied,
                            sz_ops_filter_passed=st.sz_ops_filter_passed,
                            qt_exceeds=st.qt_exceeds, nr_snapshots=st.nr_snapshots,
                            nr_failed=st.nr_failed, last_errno=st.last_errno,
                            esz=st.esz, activated=bool(st.activated)))
        return out

    def tried_regions(self, size_t index):
        """The regions scheme index was tried on in its last pass, as an array
        of TRIED_REGION_DTYPE that C fills in place."""
        cdef size_t n
        cdef cnp.ndarray arr
        self._not_running("read tried regions")
        if index >= dx_ctx_nr_schemes(self.ctx):
            raise IndexError(f"no scheme {index}")
        n = dx_ctx_nr_tried_regions(self.ctx, index)
        arr = np.empty(n, dtype=TRIED_REGION_DTYPE)
        dx_ctx_tried_regions_fill(self.ctx, index, <dx_tried_region *>cnp.PyArray_DATA(arr), n)
        return arr

    def set_goal_value(self, size_t scheme, size_t goal, uint64_t value):
        """Set the current value of a user_input goal."""
        check(dx_ctx_set_goal_value(self.ctx, scheme, goal, value), "no such goal")

    def goal_values(self, size_t scheme):
        """The current values of a scheme's goals (as of its last reset)."""
        cdef uint64_t v
        cdef size_t i = 0
        out = []
        while dx_ctx_goal_value(self.ctx, scheme, i, &v) == 0:
            out.append(v)
            i += 1
        return out

    # -- running -----------------------------------------------------------
    def run_aggregation(self):
        """Run until the next aggregation ends: 1 when it did, 0 when the
        context stopped (stop requested or no target left), PAUSED when the
        schemes' watermarks paused monitoring for a watermark interval."""
        cdef int err
        self._not_running("run an aggregation")
        self.running = True
        try:
            while True:
                with nogil:
                    err = dx_ctx_run_aggregation(self.ctx)
                if err == -EINTR:
                    PyErr_CheckSignals()    # raises KeyboardInterrupt & co
                    continue
                return check(err, "monitoring failed")
        finally:
            self.running = False

    def snapshot(self):
        """The last aggregation: (start_ns, end_ns, [(target_id, regions)]) for
        the live targets, where regions is a numpy array of
        MONITOR_REGION_DTYPE that C fills in place."""
        cdef uint64_t start_ns, end_ns
        cdef size_t i, n
        cdef cnp.ndarray arr
        self._not_running("take a snapshot")
        out = []
        if not dx_ctx_snapshot_span(self.ctx, &start_ns, &end_ns):
            return (0, 0, out)
        for i in range(dx_ctx_nr_targets(self.ctx)):
            if not dx_ctx_target_live(self.ctx, i):
                continue
            n = dx_ctx_snapshot_nr_regions(self.ctx, i)
            arr = np.empty(n, dtype=MONITOR_REGION_DTYPE)
            dx_ctx_snapshot_fill(self.ctx, i, <dx_region_out *>cnp.PyArray_DATA(arr), n)
            out.append((dx_ctx_target_id(self.ctx, i), arr))
        return (start_ns, end_ns, out)

    def snapshot_nr_checks(self):
        """The access checks of each live target in the last aggregation,
        {target_id: checks}."""
        cdef size_t i
        self._not_running("take a snapshot")
        return {dx_ctx_target_id(self.ctx, i): dx_ctx_snapshot_nr_checks(self.ctx, i)
                for i in range(dx_ctx_nr_targets(self.ctx)) if dx_ctx_target_live(self.ctx, i)}

    def snapshot_span(self):
        """(start_ns, end_ns) of the last snapshot; (0, 0) before the first."""
        cdef uint64_t start_ns = 0, end_ns = 0
        dx_ctx_snapshot_span(self.ctx, &start_ns, &end_ns)
        return (start_ns, end_ns)

    def snapshot_intervals(self):
        """(sample_us, aggr_us) in effect during the last snapshot's aggregation."""
        cdef uint64_t sample_us = 0, aggr_us = 0
        dx_ctx_snapshot_intervals(self.ctx, &sample_us, &aggr_us)
        return (sample_us, aggr_us)

    def set_attrs(self, attrs):
        """Change the attributes, also while monitoring, with the kernel's
        semantics: counts and ages are rescaled to the new intervals."""
        cdef dx_attrs a = make_attrs(attrs)
        self._not_running("change the attributes")
        check(dx_ctx_set_attrs(self.ctx, &a), "cannot change the monitoring attributes")

    def attrs_in_effect(self):
        """The intervals and region limits in effect, as tuned."""
        cdef dx_attrs a
        dx_ctx_attrs(self.ctx, &a)
        return dict(sample_us=a.sample_us, aggr_us=a.aggr_us, ops_update_us=a.ops_update_us,
                    min_nr_regions=a.min_nr_regions, max_nr_regions=a.max_nr_regions)

    def set_cpu_model(self, uint64_t per_sample_ns=0, uint64_t per_check_ns=0,
                      uint64_t per_aggr_ns=0, uint64_t per_aggr_region_ns=0):
        """The CPU cost of the work on the virtual clock (see struct
        dx_cpu_model): what ``cpu_ns`` and a CPU budget count in simulation."""
        cdef dx_cpu_model m
        self._not_running("set a CPU model")
        m.per_sample_ns = per_sample_ns
        m.per_check_ns = per_check_ns
        m.per_aggr_ns = per_aggr_ns
        m.per_aggr_region_ns = per_aggr_region_ns
        dx_ctx_set_cpu_model(self.ctx, &m)

    def request_stop(self):
        """Make the loop return at the next sample (any thread, signal handlers)."""
        dx_ctx_request_stop(self.ctx)

    # -- state and counters --------------------------------------------------
    @property
    def nr_regions(self):
        return dx_ctx_nr_regions(self.ctx)

    @property
    def live_targets(self):
        cdef size_t i
        return [dx_ctx_target_id(self.ctx, i) for i in range(dx_ctx_nr_targets(self.ctx))
                if dx_ctx_target_live(self.ctx, i)]

    @property
    def now_ns(self):
        return dx_ctx_now_ns(self.ctx)

    @property
    def cpu_ns(self):
        """CPU time since monitoring started: the process's (real clock), or
        the cost model's (virtual clock)."""
        return dx_ctx_cpu_ns(self.ctx)

    def stats(self):
        cdef const dx_stats *s = dx_ctx_stats(self.ctx)
        return dict(nr_samples=s.nr_samples, nr_region_checks=s.nr_region_checks,
                    nr_aggregations=s.nr_aggregations, nr_updates=s.nr_updates,
                    nr_targets_lost=s.nr_targets_lost, nr_tunings=s.nr_tunings)

    def access_check_stats(self):
        """Counters of the real access checks (files read and written); {} for sim."""
        cdef dx_counter c[MAX_COUNTERS]
        cdef size_t i, n = dx_ctx_ops_counters(self.ctx, c, MAX_COUNTERS)
        if n > MAX_COUNTERS:
            n = MAX_COUNTERS
        return {c[i].name.decode(): c[i].value for i in range(n)}
