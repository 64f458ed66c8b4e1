"""The Python face of the monitoring engine: ``Attrs`` and ``Monitor``.

A ``Monitor`` owns one compiled context.  Iterating over it runs the
monitoring loop in C with the GIL released, one aggregation interval per
step, and yields a ``Snapshot`` per aggregation whose regions are numpy
arrays of ``REGION_DTYPE`` (start, end, nr_accesses, age)::

    import damonx
    wl = damonx.Workload.hot_cold(1 << 30, 128 << 20, 256 << 20)
    with damonx.Monitor("sim", wl) as mon:
        for snap in mon.take(20):
            print(snap.end_ns, len(snap.regions))
"""

from dataclasses import dataclass

from damonx import errors
from damonx.attrs import Attrs, Intervals  # noqa: F401 (re-exported)
from damonx.dtypes import REGION_DTYPE  # noqa: F401 (re-exported)

OPS = ("sim", "vaddr", "fvaddr", "paddr")


@dataclass
class Snapshot:
    """The regions of every live target at the end of one aggregation."""

    start_ns: int
    end_ns: int
    targets: dict  # target id -> ndarray of REGION_DTYPE

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
        Runs on a virtual clock, as fast as the CPU allows.
      - ``"vaddr"``: process ids; the regions follow their mappings.
      - ``"fvaddr"``: ``{pid: [(start, end), ...]}``: fixed virtual ranges.
      - ``"paddr"``: ``[(start, end), ...]`` physical ranges, or None for all
        System RAM in /proc/iomem.
    procfs and sysfs are the roots of /proc and /sys (tests point them at
    fake trees).  seed makes the sampling reproducible.
    """

    def __init__(self, ops, targets, attrs=None, *, seed=0, procfs="/proc", sysfs="/sys"):
        from damonx import _core

        if ops not in OPS:
            raise errors.InvalidAttrs(f"unknown ops {ops!r}; one of {', '.join(OPS)}")
        self.attrs = attrs if attrs is not None else Attrs()
        if not isinstance(self.attrs, Attrs):
            raise errors.InvalidAttrs("attrs must be a damonx.Attrs")
        self.ops = ops
        self._callbacks = []
        if ops != "sim":
            from damonx import features

            features.require(ops, procfs, sysfs)
        try:
            self._ctx = _core.Context(self.attrs, ops, seed, virtual_clock=ops == "sim",
                                      procfs=procfs, sysfs=sysfs)
        except OSError as err:
            raise errors.from_oserror(err, "cannot set up the monitor") from err
        try:
            getattr(self, f"_add_{ops}_targets")(targets)
        except OSError as err:
            raise errors.from_oserror(err, "cannot set up the monitor") from err

    # -- targets -----------------------------------------------------------
    def _add_sim_targets(self, targets):
        from damonx.sim import Workload

        workloads = targets if isinstance(targets, (list, tuple)) else [targets]
        if not workloads:
            raise errors.InvalidAttrs("sim needs at least one workload")
        self.workloads = {}
        for tid, wl in enumerate(workloads):
            if isinstance(wl, dict):
                wl = Workload.from_dict(wl)
            if not isinstance(wl, Workload):
                raise errors.InvalidAttrs(f"sim targets are Workloads, not {type(wl).__name__}")
            self.workloads[tid] = wl
            self._ctx.add_sim_target(tid, wl.size, wl.page_size, [
                (ph.duration_us, [(r.start, r.end, r.probability) for r in ph.ranges])
                for ph in wl.phases])

    def _add_vaddr_targets(self, targets):
        pids = [targets] if isinstance(targets, int) else list(targets)
        if not pids:
            raise errors.InvalidAttrs("vaddr needs at least one pid")
        for pid in pids:
            self._add_pid(pid, None)

    def _add_fvaddr_targets(self, targets):
        if not isinstance(targets, dict) or not targets:
            raise errors.InvalidAttrs("fvaddr targets are {pid: [(start, end), ...]}")
        for pid, ranges in targets.items():
            self._add_pid(pid, _check_ranges(ranges))

    def _add_pid(self, pid, ranges):
        if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < 2**31:
            raise errors.InvalidAttrs(f"a pid is a positive 32-bit integer, not {pid!r}")
        try:
            self._ctx.add_pid_target(pid, ranges)
        except OSError as err:
            raise errors.from_oserror(err, f"cannot monitor process {pid}", pid=pid,
                                      procfs=self._ctx.procfs) from err

    def _add_paddr_targets(self, targets):
        from damonx.features import system_ram

        ranges = system_ram(self._ctx.procfs) if targets is None else _check_ranges(targets)
        try:
            self._ctx.add_range_target(0, ranges)
        except OSError as err:
            raise errors.from_oserror(err, "cannot monitor physical memory") from err

    # -- running -----------------------------------------------------------
    def add_callback(self, fn):
        """Call fn(snapshot) after each aggregation; a true return stops."""
        self._callbacks.append(fn)

    def add_scheme(self, action, *, sz=(0, 2**64 - 1), nr_accesses=(0, 2**32 - 1),
                   age=(0, 2**32 - 1)):
        """Apply action to the regions whose size (bytes), nr_accesses
        (samples per aggregation) and age (aggregations) fall in the given
        inclusive ranges, after every aggregation."""
        try:
            self._ctx.add_scheme(action, sz[0], sz[1], nr_accesses[0], nr_accesses[1],
                                 age[0], age[1])
        except (OSError, ValueError) as err:
            raise errors.InvalidAttrs(f"invalid scheme: {err}") from None

    def step(self):
        """Run one aggregation interval; the Snapshot, or None once stopped."""
        try:
            if not self._ctx.run_aggregation():
                return None
        except OSError as err:
            raise errors.from_oserror(err, "monitoring failed") from err
        start_ns, end_ns, targets = self._ctx.snapshot()
        snap = Snapshot(start_ns, end_ns, dict(targets))
        for fn in self._callbacks:
            if fn(snap):
                self._ctx.request_stop()
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
        nr_aggregations, or until stopped; return the number of snapshots."""
        limit_ns = None if duration_s is None else int(duration_s * 1e9)
        start_ns = None
        n = 0
        for snap in self:
            n += 1
            start_ns = snap.start_ns if start_ns is None else start_ns
            if nr_aggregations is not None and n >= nr_aggregations:
                break
            if limit_ns is not None and snap.end_ns - start_ns >= limit_ns:
                break
        return n

    def stop(self):
        """Make the loop end at the next sample (safe from callbacks)."""
        self._ctx.request_stop()

    @property
    def nr_regions(self):
        return self._ctx.nr_regions

    @property
    def live_targets(self):
        return self._ctx.live_targets

    def stats(self):
        return self._ctx.stats()

    def scheme_stats(self):
        return self._ctx.scheme_stats()

    def access_check_stats(self):
        """Files read and written by the real access checks (empty for sim)."""
        return self._ctx.access_check_stats()

    def close(self):
        self._ctx = _Closed()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _Closed:
    def __getattr__(self, name):
        raise errors.DamonxError("the monitor is closed")


def _check_ranges(ranges):
    try:
        out = sorted((int(s), int(e)) for s, e in ranges)
    except (TypeError, ValueError):
        raise errors.InvalidAttrs("ranges are a list of (start, end) integer pairs") from None
    if not out:
        raise errors.InvalidAttrs("at least one range is needed")
    prev = -1
    for s, e in out:
        if not 0 <= s < e < 2**64:
            raise errors.InvalidAttrs(f"range [{s:#x}, {e:#x}) is empty, negative or past 2^64")
        if s < prev:
            raise errors.InvalidAttrs(f"range [{s:#x}, {e:#x}) overlaps another")
        prev = e
    return out
