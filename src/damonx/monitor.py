"""The Python face of the monitoring engine: ``Monitor`` and ``Snapshot``.

A ``Monitor`` drives one backend (see :mod:`damonx.backend`), by default
damonx's compiled core.  Iterating over it runs the monitoring loop (in C
with the GIL released, for the compiled core) one aggregation interval per
step, and yields a ``Snapshot`` per aggregation whose regions are numpy
arrays of ``MONITOR_REGION_DTYPE`` (start, end, nr_accesses, age,
nr_accesses_bp)::

    import damonx
    wl = damonx.Workload.hot_cold(1 << 30, 128 << 20, 256 << 20)
    with damonx.Monitor("sim", wl) as mon:
        for snap in mon.take(20):
            print(snap.end_ns, len(snap.regions))
"""

import contextlib
import dataclasses
import time
from dataclasses import dataclass
from typing import Optional

import numpy as np

from damonx import backend as _backend
from damonx import errors
from damonx.attrs import Attrs, Intervals, IntervalsGoal  # noqa: F401 (re-exported)
from damonx.backend import OPS  # noqa: F401 (re-exported)
from damonx.dtypes import MONITOR_REGION_DTYPE, REGION_DTYPE  # noqa: F401 (re-exported)
from damonx.schemes import AccessPattern, Scheme

_U32_MAX = 2**32 - 1
#: Monitor._step(): still paused by the watermarks at the deadline
_PAUSED_PAST = object()
_U64_MAX = 2**64 - 1


@dataclass
class Snapshot:
    """The regions of every live target at the end of one aggregation, with
    the intervals that were in effect (an intervals goal or a CPU budget
    tunes them), the access checks that aggregation made (over all
    targets, and per target), the monitoring's CPU time so far and, when
    schemes run, their
    statistics."""

    start_ns: int
    end_ns: int
    targets: dict  # target id -> ndarray of MONITOR_REGION_DTYPE
    sample_us: Optional[int] = None
    aggr_us: Optional[int] = None
    nr_checks: Optional[int] = None
    #: one dict of integers per scheme, in the order added: the counters of
    #: Monitor.scheme_stats (activated as 0 or 1, no action name)
    scheme_stats: Optional[list] = None
    #: CPU time the monitoring used from its start to this snapshot, ns
    cpu_ns: Optional[int] = None
    #: target id -> the access checks of its regions in this aggregation
    target_nr_checks: Optional[dict] = None

    def nr_checks_of(self, target_id):
        """The access checks of one target in this aggregation (of all
        targets when the backend does not count them per target)."""
        if self.target_nr_checks is None:
            return self.nr_checks
        return self.target_nr_checks.get(target_id, 0)

    @property
    def regions(self):
        """The regions of the only target (ValueError when there are several)."""
        if len(self.targets) != 1:
            raise ValueError(f"snapshot has {len(self.targets)} targets; use .targets")
        return next(iter(self.targets.values()))

    @property
    def nr_regions(self):
        return sum(len(r) for r in self.targets.values())


class Monitor:
    """Monitor targets with one set of operations.

    ops and targets:
      - ``"sim"``: a ``Workload`` (or a list of them; target ids 0, 1, ...).
        Runs on a virtual clock, as fast as the CPU allows; with
        ``real_time=True``, in real time (as a live exporter shows it).
      - ``"vaddr"``: process ids; the regions follow their mappings.
      - ``"fvaddr"``: ``{pid: [(start, end), ...]}``: fixed virtual ranges.
      - ``"paddr"``: ``[(start, end), ...]`` physical ranges, or None for all
        System RAM in /proc/iomem.
    procfs and sysfs are the roots of /proc and /sys (tests point them at
    fake trees).  seed makes the sampling reproducible (page_idle).
    backend: ``"page_idle"`` (damonx's own access checks), ``"kernel"``
    (the kernel's DAMON, through its sysfs interface), or ``"auto"``: the
    first of them that can run ops here (see ``damonx.backend``).
    """

    def __init__(
        self,
        ops,
        targets,
        attrs=None,
        *,
        seed=0,
        procfs="/proc",
        sysfs="/sys",
        backend="auto",
        real_time=False,
    ):
        self.attrs = attrs if attrs is not None else Attrs()
        if not isinstance(self.attrs, Attrs):
            raise errors.InvalidAttrs("attrs must be a damonx.Attrs")
        self.ops = ops
        self.procfs = procfs
        self._callbacks = []
        self._backend, name, parsed = _backend.open_backend(
            backend,
            ops,
            targets,
            self.attrs,
            seed=seed,
            procfs=procfs,
            sysfs=sysfs,
            real_time=real_time,
        )
        #: the backend it runs on: "page_idle" or "kernel"
        self.backend = name
        #: sim: the workload of each target id
        self.workloads = {t.id: t.workload for t in parsed if t.workload is not None}
        self._nr_checks_seen = 0
        self._idle_callbacks = []
        #: the schemes added, in order
        self.schemes = []

    @contextlib.contextmanager
    def _using(self, what="monitoring failed"):
        """The backend, for calls that may fail while doing ``what``: every
        call goes through here, so a closed monitor says so and an
        ``OSError`` leaves as the matching DamonxError."""
        if self._backend is None:
            raise errors.DamonxError("the monitor is closed")
        with errors.translated(what, procfs=self.procfs):
            yield self._backend

    # -- running -----------------------------------------------------------
    def add_callback(self, fn):
        """Call fn(snapshot) after each aggregation; a true return stops."""
        self._callbacks.append(fn)

    def add_idle_callback(self, fn):
        """Call fn() while the schemes' watermarks pause monitoring, once
        per watermark interval (no snapshot comes then); a true return
        stops."""
        self._idle_callbacks.append(fn)

    def add_scheme(self, scheme, *, sz=None, nr_accesses=None, age=None):
        """Apply an operation scheme (a ``damonx.Scheme``) from the next
        aggregation on, with the kernel's DAMOS semantics: see
        :mod:`damonx.schemes`.

        A shortcut takes an action name and the inclusive bounds of size
        (bytes), nr_accesses (samples per aggregation) and age
        (aggregations): ``mon.add_scheme("pageout", age=(50, 2**32 - 1))``.

        Actions have damo's names: ``stat`` (count only) everywhere;
        ``willneed``, ``cold``, ``pageout``, ``collapse`` (through
        process_madvise(2)) and ``migrate_hot``, ``migrate_cold``
        (move_pages(2)) on processes (vaddr, fvaddr).  An action or a filter
        the ops cannot apply raises InvalidAttrs saying which they can, and
        why where no ops can.  ``scheme_stats()`` counts what was tried,
        applied and failed."""
        if isinstance(scheme, str):
            bounds = {
                name: _scheme_bounds(name, value, top)
                for name, value, top in (
                    ("sz", sz, _U64_MAX),
                    ("nr_accesses", nr_accesses, _U32_MAX),
                    ("age", age, _U32_MAX),
                )
                if value is not None
            }
            pattern = AccessPattern(
                sz=bounds.get("sz", (0, _U64_MAX)),
                nr_accesses=bounds.get("nr_accesses", (0, _U32_MAX)),
                age=bounds.get("age", (0, _U32_MAX)),
            )
            try:
                scheme = Scheme(scheme, pattern)
            except errors.InvalidAttrs as err:
                raise errors.InvalidAttrs(f"invalid scheme: {err}") from None
        elif not isinstance(scheme, Scheme) or (sz, nr_accesses, age) != (None, None, None):
            raise errors.InvalidAttrs(
                "add_scheme takes a damonx.Scheme, or an action name with sz, nr_accesses "
                "and age bounds"
            )
        with self._using("invalid scheme") as backend:
            try:
                backend.add_scheme(scheme)
            except ValueError as err:  # an action or a filter the backend lacks
                if isinstance(err, errors.DamonxError):
                    raise
                raise errors.InvalidAttrs(f"invalid scheme: {err}") from None
        self.schemes.append(scheme)

    def set_goal_value(self, scheme, goal, value):
        """Set the current value of the user_input goal ``goal`` (an index)
        of scheme ``scheme`` (an index, in the order added)."""
        with self._using("cannot set the goal value") as backend:
            backend.set_goal_value(scheme, goal, value)

    def tried_regions(self, scheme=0):
        """The regions scheme ``scheme`` (an index) was tried on in its last
        pass: a numpy array of ``TRIED_REGION_DTYPE``."""
        with self._using() as backend:
            return backend.tried_regions(scheme)

    def step(self):
        """Run one aggregation interval; the Snapshot, or None once stopped."""
        return self._step()

    def _run_aggregation(self, backend, deadline_ns=None):
        """Run backend until the next aggregation ends (true) or it is
        stopped (false); _PAUSED_PAST when the watermarks still pause
        monitoring at deadline_ns (the backend's time)."""
        while True:
            done = backend.run_aggregation()
            if done != _backend.PAUSED:
                return done
            # monitoring paused: only the watermarks are checked
            for fn in self._idle_callbacks:
                if fn():
                    self.stop()
            if deadline_ns is not None and backend.now_ns >= deadline_ns:
                return _PAUSED_PAST

    def _step(self, deadline_ns=None):
        """step(), or _PAUSED_PAST when the watermarks still pause
        monitoring at deadline_ns (the backend's time)."""
        with self._using() as backend:
            done = self._run_aggregation(backend, deadline_ns)
            if done is _PAUSED_PAST:
                return _PAUSED_PAST
            if not done:
                return None
            start_ns, end_ns, targets = backend.snapshot()
            sample_us, aggr_us = backend.snapshot_intervals()
            # None where the backend counts no checks (the kernel's DAMON)
            nr_checks = backend.stats().get("nr_region_checks")
            target_nr_checks = backend.snapshot_nr_checks()
            scheme_stats = (
                [{k: int(v) for k, v in st.items()} for st in backend.scheme_stats()]
                if self.schemes
                else None
            )
            cpu_ns = backend.cpu_ns
        snap = Snapshot(
            start_ns,
            end_ns,
            dict(targets),
            sample_us=sample_us,
            aggr_us=aggr_us,
            nr_checks=None if nr_checks is None else nr_checks - self._nr_checks_seen,
            scheme_stats=scheme_stats,
            target_nr_checks=target_nr_checks,
            cpu_ns=cpu_ns,
        )
        self._nr_checks_seen = nr_checks or 0
        for fn in self._callbacks:
            if fn(snap):
                self.stop()
        return snap

    def __iter__(self):
        while True:
            snap = self.step()
            if snap is None:
                return
            yield snap

    def take(self, nr_aggregations):
        """Run nr_aggregations aggregations (fewer if stopped); their snapshots."""
        out = []
        for snap in self:
            out.append(snap)
            if len(out) >= nr_aggregations:
                break
        return out

    def run(self, duration_s=None, nr_aggregations=None):
        """Run for duration_s of monitoring time (simulated time for sim) or
        nr_aggregations, or until stopped; return the number of snapshots.
        Time paused by the schemes' watermarks counts.  Without callbacks
        nobody sees the snapshots, so none is made: the aggregations run, and
        their schemes, but their regions stay in C."""
        limit_ns = None if duration_s is None else int(duration_s * 1e9)
        deadline_ns = None if limit_ns is None else self.now_ns + limit_ns
        if not self._callbacks:
            with self._using() as backend:
                n = self._run_unseen(backend, nr_aggregations, limit_ns, deadline_ns)
                self._nr_checks_seen = backend.stats().get("nr_region_checks", 0)
            return n
        start_ns = None
        n = 0
        while nr_aggregations is None or n < nr_aggregations:
            snap = self._step(deadline_ns)
            if snap is None or snap is _PAUSED_PAST:
                break
            n += 1
            start_ns = snap.start_ns if start_ns is None else start_ns
            if limit_ns is not None and snap.end_ns - start_ns >= limit_ns:
                break
        return n

    def _run_unseen(self, backend, nr_aggregations, limit_ns, deadline_ns):
        """run() without callbacks: aggregations back to back, no snapshot
        made, the backend taken once."""
        start_ns = None
        n = 0
        while nr_aggregations is None or n < nr_aggregations:
            done = self._run_aggregation(backend, deadline_ns)
            if not done or done is _PAUSED_PAST:
                break
            n += 1
            if limit_ns is not None:
                span = backend.snapshot_span()
                start_ns = span[0] if start_ns is None else start_ns
                if span[1] - start_ns >= limit_ns:
                    break
        return n

    def set_attrs(self, attrs):
        """Change the monitoring attributes between aggregations, as the
        kernel's ``damon_set_attrs()`` does: regions keep their access counts
        and ages, rescaled to the new intervals, and the aggregation under
        way starts again.  An intervals goal or a CPU budget tunes from the
        new attributes."""
        if not isinstance(attrs, Attrs):
            raise errors.InvalidAttrs("attrs must be a damonx.Attrs")
        with self._using("cannot change the monitoring attributes") as backend:
            backend.set_attrs(attrs)
        self.attrs = attrs

    def attrs_in_effect(self):
        """The attributes in effect now: ``attrs`` with the intervals and
        ``max_nr_regions`` as an intervals goal or a CPU budget tuned them."""
        with self._using() as backend:
            tuned = backend.attrs_in_effect()
        return dataclasses.replace(self.attrs, **tuned)

    def cpu_seconds(self):
        """CPU time the monitoring has used since it started: the process's
        (the loop, and what the process does with the snapshots), or, for
        sim, that of the cost model of :meth:`set_cpu_model` (else 0)."""
        with self._using() as backend:
            return backend.cpu_ns / 1e9

    def set_cpu_model(self, per_sample_ns=0, per_check_ns=0, per_aggr_ns=0, per_aggr_region_ns=0):
        """sim only: the CPU cost of the simulated monitoring work (per
        sample, per region check, per aggregation and per region of an
        aggregation), so that a CPU budget can be tried in simulated time;
        the work also takes that much simulated time."""
        if self.ops != "sim":
            raise errors.NotSupported("a CPU cost model is for simulated monitoring (ops sim)")
        values = (per_sample_ns, per_check_ns, per_aggr_ns, per_aggr_region_ns)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
            raise errors.InvalidAttrs("CPU model costs are integers of ns, 0 or more")
        with self._using() as backend:
            backend.set_cpu_model(*values)

    def stop(self):
        """Make the loop end at the next sample (safe from callbacks, other
        threads and signal handlers)."""
        with self._using() as backend:
            backend.request_stop()

    @property
    def now_ns(self):
        """The backend's time, ns (virtual for sim, from 0; CLOCK_MONOTONIC
        else, the current time before monitoring starts)."""
        with self._using() as backend:
            now = backend.now_ns
        if not now and self.ops != "sim":
            now = time.monotonic_ns()  # CLOCK_MONOTONIC, the C clock
        return now

    @property
    def nr_regions(self):
        with self._using() as backend:
            return backend.nr_regions

    @property
    def live_targets(self):
        with self._using() as backend:
            return backend.live_targets

    def stats(self):
        """Counters of the monitoring loop: ``nr_samples``,
        ``nr_region_checks`` (access checks made, all targets),
        ``nr_aggregations``, ``nr_updates``, ``nr_targets_lost``."""
        with self._using() as backend:
            return backend.stats()

    def scheme_stats(self):
        """The statistics of each scheme, in the order added: one dict each,
        with its ``action`` and the counters of ``Backend.scheme_stats``."""
        with self._using() as backend:
            stats = backend.scheme_stats()
        return [{"action": s.action, **st} for s, st in zip(self.schemes, stats)]

    def access_check_stats(self):
        """Files read and written by the real access checks (empty for sim)."""
        with self._using() as backend:
            return backend.access_check_stats()

    def close(self):
        """Release the backend (the kernel backend stops and removes its
        kdamond); using the monitor afterwards raises DamonxError.  Closing
        twice is fine."""
        backend, self._backend = self._backend, None
        close = getattr(backend, "close", None)
        if close is not None:
            with errors.translated("cannot close the monitor", procfs=self.procfs):
                close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _scheme_bounds(name, value, top):
    """A scheme's (min, max) bounds of name, checked."""
    try:
        lo, hi = value
    except (TypeError, ValueError):
        lo = hi = None
    if not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in (lo, hi)):
        raise errors.InvalidAttrs(f"invalid scheme: {name} must be a (min, max) pair of integers")
    if not 0 <= lo <= hi <= top:
        raise errors.InvalidAttrs(
            f"invalid scheme: {name} needs 0 <= min <= max <= {top}, not ({lo}, {hi})"
        )
    return int(lo), int(hi)
