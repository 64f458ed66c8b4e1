"""Backends: what a ``Monitor`` runs on, and the one place where one is made.

A backend is any object with the methods of :class:`Backend`: it takes the
targets, runs the monitoring loop one aggregation interval at a time and
hands out the regions as numpy arrays of ``MONITOR_REGION_DTYPE``.  ``Monitor``
drives every backend the same way and never asks which one it has.

The backends are registered in :data:`BACKENDS` by name, each with the
operations sets it runs, the function that opens it and the one that says,
reading only, why it cannot run here; :func:`open_backend` chooses one,
opens it and gives it the targets.  There are two:

``page_idle``
    damonx's compiled core (``damonx._core.Context``): the simulated
    operations (``sim``), and ``vaddr``, ``fvaddr`` and ``paddr`` with real
    access checks through ``/proc/PID/pagemap``, ``/proc/kpageflags`` and
    the idle page bitmap.
``kernel``
    the kernel's own DAMON, driven through its sysfs interface
    (:mod:`damonx.kernel_backend`): ``vaddr``, ``fvaddr`` and ``paddr``.

``"auto"`` takes the first of them, in this order, that runs the ops and
can run here, and opens the next one when opening fails for want of a
feature or a privilege.  page_idle comes first: it reports every
aggregation, takes a seed and counts its checks; the kernel backend covers
kernels without idle page tracking (Debian 13, openSUSE), and checks
accesses at a lower cost where a kernel has both.

A backend that is not a table of C operations is a Python class with the
methods of :class:`Backend` that raises ``OSError`` (with the errno value)
or a ``DamonxError`` where the system refuses, plus one entry in
:data:`BACKENDS`; neither :func:`open_backend` nor ``Monitor`` changes for
it.  One that holds something outside this process (a kdamond) also has a
``close()``, which ``Monitor.close`` calls.

The targets of each operations set are checked here too
(:func:`parse_targets`), so that every backend gets them in one form.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Callable, Protocol

import numpy as np

from damonx import errors
from damonx.attrs import Attrs
from damonx.schemes import Scheme
from damonx.sim import Workload

#: the operations sets, by the name DAMON gives them
OPS = ("sim", "vaddr", "fvaddr", "paddr")
#: run_aggregation(): monitoring paused by the schemes' watermarks
PAUSED = 2

Ranges = Sequence[tuple[int, int]]


class Backend(Protocol):
    """What ``Monitor`` drives.

    Units: addresses and sizes in bytes, times in nanoseconds of the
    backend's clock (a virtual one for ``sim``), ``nr_accesses`` in samples
    per aggregation interval, ages in aggregation intervals.

    Errors: ``OSError`` with the errno value where the system refuses
    (``damonx.errors.from_oserror`` turns it into a ``DamonxError``), and
    ``ValueError`` for an argument the backend does not take, such as a
    scheme action it cannot apply.
    """

    def add_sim_target(
        self,
        target_id: int,
        size: int,
        page_size: int,
        phases: Sequence[tuple[int, Sequence[tuple[int, int, float, float]]]],
    ) -> None:
        """Add a simulated address space [0, size) of page_size pages.

        phases: ``[(duration_us, [(start, end, probability, rate_hz), ...]),
        ...]`` (see :class:`damonx.sim.Range`); the last phase repeats.
        """

    def add_pid_target(self, pid: int, ranges: Ranges | None = None) -> None:
        """Add a process (its target id is its pid): every mapping
        (``vaddr``), or the fixed virtual ranges [start, end) (``fvaddr``)."""

    def add_range_target(self, target_id: int, ranges: Ranges) -> None:
        """Add physical address ranges [start, end) as one target (``paddr``)."""

    def add_scheme(self, scheme: Scheme) -> None:
        """Apply a ``damonx.Scheme`` (in damo's units; the backend converts
        them with its intervals) with the kernel's DAMOS semantics: quotas,
        goals, watermarks, filters, the apply interval; a region acted on
        starts ageing anew.  ValueError, naming what the backend has, for an
        action or a filter type it cannot apply."""

    def scheme_stats(self) -> list[dict[str, int]]:
        """Per scheme, in the order added: the kernel's ``nr_tried``,
        ``sz_tried``, ``nr_applied``, ``sz_applied`` (regions and bytes),
        ``sz_ops_filter_passed``, ``qt_exceeds``, ``nr_snapshots``;
        ``nr_failed`` (regions on which the action failed, in part or in
        whole) and ``last_errno`` (of the last failure, 0 before any); and
        the state: ``esz`` (the effective size quota, bytes) and
        ``activated`` (by the watermarks)."""

    def tried_regions(self, index: int) -> np.ndarray:
        """The regions scheme ``index`` was tried on in its last pass, an
        array of ``TRIED_REGION_DTYPE``."""

    def set_goal_value(self, scheme: int, goal: int, value: int) -> None:
        """Set the current value of a ``user_input`` quota goal."""

    def run_aggregation(self) -> int:
        """Run until the next aggregation interval ends: 1 when it did, 0
        when the backend stopped (on request, or no target left), or
        :data:`PAUSED` after a watermark interval in which the schemes'
        watermarks kept monitoring paused (no snapshot)."""

    def snapshot(self) -> tuple[int, int, list[tuple[int, np.ndarray]]]:
        """The last aggregation: ``(start_ns, end_ns, [(target_id, regions)])``
        for the live targets, each regions an array of
        ``MONITOR_REGION_DTYPE`` in address order."""

    def snapshot_nr_checks(self) -> dict[int, int] | None:
        """The access checks of each live target's regions in the last
        aggregation: ``{target_id: checks}``; None where the backend counts
        no checks (the kernel's DAMON)."""

    def snapshot_span(self) -> tuple[int, int]:
        """``(start_ns, end_ns)`` of the last snapshot, without its regions."""

    def snapshot_intervals(self) -> tuple[int, int]:
        """``(sample_us, aggr_us)`` in effect during the last snapshot's
        aggregation (an intervals goal or a CPU budget changes them)."""

    def set_attrs(self, attrs: Attrs) -> None:
        """Change the attributes between aggregations, with the kernel's
        semantics (``damon_set_attrs()``): regions keep their counts and
        ages, rescaled to the new intervals; the aggregation under way
        starts again."""

    def attrs_in_effect(self) -> dict[str, int]:
        """``sample_us``, ``aggr_us``, ``ops_update_us``, ``min_nr_regions``
        and ``max_nr_regions`` in effect now, as tuned."""

    @property
    def cpu_ns(self) -> int:
        """CPU time the monitoring has used since it started, in ns: of the
        process that runs it (for damonx's core, the whole process), or of
        the simulation's cost model."""

    def request_stop(self) -> None:
        """Make ``run_aggregation`` return False soon; safe from any thread
        and from a signal handler."""

    @property
    def nr_regions(self) -> int:
        """The number of regions of all live targets."""

    @property
    def live_targets(self) -> list[int]:
        """The ids of the targets still monitored."""

    @property
    def now_ns(self) -> int:
        """The backend's clock, ns (the times of its snapshots)."""

    def stats(self) -> dict[str, int]:
        """Counters of the loop: ``nr_samples``, ``nr_region_checks``,
        ``nr_aggregations``, ``nr_updates``, ``nr_targets_lost``,
        ``nr_tunings`` (changes of the attributes in effect), those a
        backend can count (the kernel backend counts no checks, and adds
        CPU times: ``damonx_cpu_us``, ``kdamond_cpu_us``)."""

    def access_check_stats(self) -> dict[str, int]:
        """Counters of the access checks (files read and written); empty
        where there is nothing to count."""


def _always(ops: str, procfs: str, sysfs: str) -> errors.DamonxError | None:
    return None


@dataclass(frozen=True)
class BackendSpec:
    """A registered backend."""

    #: the operations sets it runs
    ops: tuple[str, ...]
    #: ``open(ops, attrs, seed, procfs, sysfs, real_time)``: a new backend,
    #: no targets yet; ``real_time`` asks sim to run in real time (the other
    #: ops always do) instead of on a virtual clock
    open: Callable[[str, Attrs, int, str, str, bool], Backend]
    #: ``unavailable(ops, procfs, sysfs)``: why it cannot run ops here (an
    #: error to raise: NotSupported or AccessDenied), or None; reads only
    unavailable: Callable[[str, str, str], errors.DamonxError | None] = _always


def _compiled_unavailable(ops, procfs, sysfs):
    from damonx import features

    try:
        features.require(ops, procfs, sysfs)
    except (errors.NotSupported, errors.AccessDenied) as err:
        return err
    return None


def _kernel_unavailable(ops, procfs, sysfs):
    from damonx import kernel_backend

    return kernel_backend.unavailable(ops, procfs, sysfs)


def _open_kernel(ops, attrs, seed, procfs, sysfs, real_time=False):
    from damonx import kernel_backend  # no sim: always in real time

    return kernel_backend.open_kernel(ops, attrs, seed, procfs, sysfs)


def _open_core_context(ops, attrs, seed, procfs, sysfs, real_time=False):
    """A compiled context for ops: the one call of its constructor."""
    from damonx import _core

    virtual = ops == "sim" and not real_time
    return _core.Context(attrs, ops, seed, virtual_clock=virtual, procfs=procfs, sysfs=sysfs)


def _open_compiled(
    ops: str, attrs: Attrs, seed: int, procfs: str, sysfs: str, real_time: bool = False
) -> Backend:
    from damonx import features

    features.require(ops, procfs, sysfs)
    if ops != "sim":
        # from the caller of Monitor(): here, open_backend, Monitor.__init__
        features.warn_accessed_bit_users(procfs, sysfs, stacklevel=4)
    return _open_core_context(ops, attrs, seed, procfs, sysfs, real_time)


#: The backends by name, in the order ``"auto"`` tries them (see the
#: module's docstring).  A new backend is one more entry here.
BACKENDS: dict[str, BackendSpec] = {
    "page_idle": BackendSpec(OPS, _open_compiled, _compiled_unavailable),
    "kernel": BackendSpec(("vaddr", "fvaddr", "paddr"), _open_kernel, _kernel_unavailable),
}


def choose(name: str, ops: str) -> str:
    """The registered name of the backend ``name`` for ops; for ``"auto"``,
    the first that runs ops (whether it can run here is :func:`candidates`')."""
    return candidates(name, ops, check=False)[0]


def candidates(name, ops, procfs="/proc", sysfs="/sys", *, check=True):
    """The names of the backends to try for ``name`` and ops, in order.

    A named backend is the only one, whether it can run here or not (its
    open says why not).  For ``"auto"``: with check, those that can run here
    (reading only), else NotSupported (AccessDenied when every reason is a
    privilege) giving each one's reason.
    """
    if ops not in OPS:
        raise errors.InvalidAttrs(f"unknown ops {ops!r}; one of {', '.join(OPS)}")
    if name != "auto":
        if name not in BACKENDS:
            raise errors.InvalidAttrs(
                f"unknown backend {name!r}; one of auto, {', '.join(BACKENDS)}"
            )
        if ops not in BACKENDS[name].ops:
            raise errors.InvalidAttrs(
                f"backend {name!r} does not run ops {ops!r}; it runs "
                f"{', '.join(BACKENDS[name].ops)}"
            )
        return [name]
    runs = [found for found, spec in BACKENDS.items() if ops in spec.ops]
    if not runs:
        raise errors.NotSupported(f"no backend runs ops {ops!r}")
    if not check:
        return runs
    usable, reasons = [], {}
    for found in runs:
        why = BACKENDS[found].unavailable(ops, procfs, sysfs)
        if why is None:
            usable.append(found)
        else:
            reasons[found] = why
    if not usable:
        raise _none_usable(ops, reasons)
    return usable


def _none_usable(ops, reasons):
    """The error of an "auto" that found no backend for ops."""
    privilege = all(isinstance(e, errors.AccessDenied) for e in reasons.values())
    cls = errors.AccessDenied if privilege else errors.NotSupported
    told = "; ".join(f"backend {name}: {err}" for name, err in reasons.items())
    return cls(
        f"no backend can run ops {ops!r} here ({told}). "
        "Run `damonx features` for the full picture; `--ops sim` works anywhere."
    )


def require(name, ops, procfs="/proc", sysfs="/sys"):
    """Raise why backend ``name`` (or every one, for ``"auto"``) cannot run
    ops here; reads only."""
    candidates(name, ops, procfs, sysfs)  # "auto": raises when none can
    if name != "auto":
        why = BACKENDS[name].unavailable(ops, procfs, sysfs)
        if why is not None:
            raise why


def open_backend(
    name, ops, targets, attrs, *, seed=0, procfs="/proc", sysfs="/sys", real_time=False
):
    """Choose, open and fill the backend of a Monitor.

    Returns the backend, its name in :data:`BACKENDS` and its targets (a
    list of :class:`Target`).  An
    ``OSError`` leaves as the matching ``DamonxError``; one about a process
    says whether it exited or is a zombie.  For ``"auto"``, a backend whose
    opening fails for want of a feature or a privilege gives way to the
    next one.
    """
    candidates(name, ops, check=False)  # an unknown name or ops first
    seed = check_seed(seed)
    # bad targets are told before a missing capability
    parsed = parse_targets(ops, targets, procfs)
    for target in parsed:
        if target.pid is not None:
            check_not_thread(target.pid, procfs)
    names = candidates(name, ops, procfs, sysfs)
    reasons = {}
    for found in names:
        try:
            with errors.translated("cannot set up the monitor", procfs=procfs):
                backend = BACKENDS[found].open(ops, attrs, seed, procfs, sysfs, real_time)
        except (errors.NotSupported, errors.AccessDenied) as err:
            if name != "auto":
                raise
            reasons[found] = err
            continue
        break
    else:
        raise _none_usable(ops, reasons)
    try:
        for target in parsed:
            with errors.translated(target.what, pid=target.pid, procfs=procfs):
                target.add_to(backend)
    except BaseException:
        close = getattr(backend, "close", None)
        if close is not None:
            close()
        raise
    return backend, found, parsed


# -- targets -----------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """One monitoring target, in the form every backend takes."""

    #: the target id: the pid of a process, else 0, 1, ...
    id: int
    #: the process (vaddr, fvaddr)
    pid: int | None = None
    #: [start, end) address ranges in bytes, sorted (fvaddr, paddr)
    ranges: tuple[tuple[int, int], ...] | None = None
    #: the simulated workload (sim)
    workload: Workload | None = None

    @property
    def what(self) -> str:
        """What adding the target is, for error messages."""
        if self.pid is not None:
            return f"cannot monitor process {self.pid}"
        if self.workload is not None:
            return f"cannot simulate workload {self.id}"
        return "cannot monitor physical memory"

    def add_to(self, backend: Backend) -> None:
        if self.workload is not None:
            wl = self.workload
            phases = [
                (
                    ph.duration_us,
                    [(r.start, r.end, r.probability, r.rate_hz) for r in ph.ranges],
                )
                for ph in wl.phases
            ]
            backend.add_sim_target(self.id, wl.size, wl.page_size, phases)
        elif self.pid is not None:
            backend.add_pid_target(self.pid, self.ranges)
        else:
            assert self.ranges is not None
            backend.add_range_target(self.id, self.ranges)


def parse_targets(ops, targets, procfs="/proc"):
    """The targets of ops, checked, as a list of :class:`Target`.

    - ``"sim"``: a ``Workload`` (or its dict), or a list of them; ids 0, 1...
    - ``"vaddr"``: a pid or a list of pids.
    - ``"fvaddr"``: ``{pid: [(start, end), ...]}``.
    - ``"paddr"``: ``[(start, end), ...]`` physical ranges, or None for all
      System RAM in procfs/iomem.
    """
    if ops == "sim":
        return _sim_targets(targets)
    if ops == "vaddr":
        try:
            pids = [targets] if isinstance(targets, (int, np.integer)) else list(targets)
        except TypeError:
            raise errors.InvalidAttrs("vaddr targets are a pid or a list of pids") from None
        if not pids:
            raise errors.InvalidAttrs("vaddr needs at least one pid")
        return [Target(pid, pid=pid) for pid in (check_pid(p, ops) for p in pids)]
    if ops == "fvaddr":
        if not isinstance(targets, dict) or not targets:
            raise errors.InvalidAttrs("fvaddr targets are {pid: [(start, end), ...]}")
        return [
            Target(pid, pid=pid, ranges=check_ranges(ranges, f"ranges of process {pid}"))
            for pid, ranges in ((check_pid(p, ops), r) for p, r in targets.items())
        ]
    if ops == "paddr":
        if targets is None:
            from damonx.features import system_ram

            ranges = tuple(system_ram(procfs))
        else:
            ranges = check_ranges(targets, "paddr ranges")
        return [Target(0, ranges=ranges)]
    raise errors.InvalidAttrs(f"unknown ops {ops!r}; one of {', '.join(OPS)}")


def _sim_targets(targets):
    workloads = targets if isinstance(targets, (list, tuple)) else [targets]
    if not workloads:
        raise errors.InvalidAttrs("sim needs at least one workload")
    out = []
    for tid, wl in enumerate(workloads):
        if isinstance(wl, dict):
            wl = Workload.from_dict(wl)
        if not isinstance(wl, Workload):
            raise errors.InvalidAttrs(f"sim targets are Workloads, not {type(wl).__name__}")
        out.append(Target(tid, workload=wl))
    return out


def check_pid(pid, ops="vaddr"):
    """pid as an int, or InvalidAttrs unless it is a positive 32-bit integer."""
    if isinstance(pid, bool) or not isinstance(pid, (int, np.integer)) or not 0 < pid < 2**31:
        raise errors.InvalidAttrs(f"{ops} targets are positive PIDs (32-bit integers), not {pid!r}")
    return int(pid)


def check_not_thread(pid, procfs="/proc"):
    """InvalidAttrs when pid is the id of a thread that does not lead its
    process (procfs has a directory for every thread id, though it lists
    only processes); nothing when procfs/PID/status tells no ``Tgid``."""
    tgid = _status_field(pid, "Tgid", procfs)
    if tgid is not None and tgid != pid:
        raise errors.InvalidAttrs(
            f"cannot monitor process {pid}: {pid} is a thread of process {tgid}; "
            f"give the process id {tgid}"
        )


def _status_field(pid, name, procfs):
    """An integer field of procfs/PID/status, or None where it is missing."""
    try:
        with open(os.path.join(procfs, str(pid), "status"), "rb") as f:
            for line in f:
                key, _, value = line.partition(b":")
                if key == name.encode():
                    return int(value)
    except (OSError, ValueError):
        pass
    return None


def check_seed(seed):
    """seed as an int, or InvalidAttrs unless it is an integer 0..2^64-1."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**64:
        raise errors.InvalidAttrs(f"seed must be an integer from 0 to 2^64-1, not {seed!r}")
    return int(seed)


def check_ranges(ranges, what="ranges"):
    """ranges as a sorted tuple of (start, end) integer pairs, each a
    non-empty [start, end) below 2^64, none overlapping another; else
    InvalidAttrs naming ``what``."""
    try:
        out = sorted((int(start), int(end)) for start, end in ranges)
    except (TypeError, ValueError):
        raise errors.InvalidAttrs(f"{what} must be (start, end) pairs of integers") from None
    if not out:
        raise errors.InvalidAttrs(f"{what}: at least one range is needed")
    prev_end = 0
    for start, end in out:
        if not 0 <= start < end < 2**64:
            raise errors.InvalidAttrs(
                f"{what}: [{start:#x}, {end:#x}) is not a valid range "
                "(empty, negative or past 2^64)"
            )
        if start < prev_end:
            raise errors.InvalidAttrs(f"{what}: [{start:#x}, {end:#x}) overlaps another range")
        prev_end = end
    return tuple(out)
