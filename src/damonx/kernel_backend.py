"""The kernel's own DAMON as a backend of ``Monitor`` (``backend="kernel"``).

One kdamond with one context, driven through the DAMON sysfs interface
(:class:`damonx.kernel_damon.KernelDamon`), behind the same protocol as
damonx's own checks (:class:`damonx.backend.Backend`): the same ``Attrs``,
numpy snapshots, schemes, statistics and errors.

**Opening** (:func:`open_kernel`) reads whether the kernel backend can run
here (:func:`damonx.kernel_sysfs.status`), takes damonx's lock, removes a
kdamond that a killed damonx left behind (the rules are in
:mod:`damonx.kernel_owner`), and reads the layout of the interface by
populating an idle kdamond directory and removing it again
(:func:`damonx.kernel_sysfs.probe_layout`).  A kernel without
``tried_regions`` (before Linux 6.2) is refused: snapshots are read from
them.  (Kernels 5.18 to 6.1 report regions only through the
``damon:damon_aggregated`` tracepoint; damonx does not read tracefs.)

**The kdamond** starts with the first aggregation, once the targets and the
schemes are known: one ``stat`` scheme per target that matches every region
(a ``target`` filter keeps each to its target when there are several) and,
after them, the ``damonx.Scheme`` objects added with ``add_scheme``, written
by :mod:`damonx.kernel_schemes` (quotas, goals, watermarks, filters in the
kernel's files; what the running kernel lacks is refused with the Linux
version that has it, when the kdamond starts).  It is stopped and its
directories removed when the monitor is closed, when this object is
collected, and when the interpreter exits; a damonx killed with SIGKILL
(or a library user's process killed by a signal it does not handle) leaves
it running until the next damonx opens the kernel backend.

**Snapshots.**  ``run_aggregation`` writes ``update_schemes_tried_regions``
to the kdamond's ``state``.  The kernel serves it at the end of the next
aggregation (the stat schemes' apply interval is the aggregation interval),
listing every region as that aggregation left it (merged, not yet split),
and the write returns; damonx then reads the regions.  So each snapshot is
one whole aggregation, but not necessarily the next one after the previous
snapshot: while damonx reads one, the kdamond goes on, and an aggregation
that ends before damonx asks again is not seen.  Kernels whose sysfs
interface polls for a command's completion (6.12 polls every 100 ms; 7.x
wakes the writer at once) return up to one polling period after the
aggregation ended, so there, with 100 ms aggregations, about every other
one is seen.  A snapshot's ``end_ns`` is when the regions were received
(``CLOCK_MONOTONIC``, as damonx's own snapshots), its ``start_ns`` one
aggregation interval earlier but never before the previous ``end_ns``.
Its ``nr_accesses`` counts samples of that aggregation; ``nr_accesses_bp``
is ``nr_accesses * 10000``.  A kdamond starved of CPU lets the update time
out (see ``KernelDamon.snapshot``), which is asked again.

Scheme statistics are updated (``update_schemes_stats``) after each
snapshot, so they count up to that aggregation, as are the tried regions
of every scheme (``tried_regions``).  The kernel does not count
failed actions: ``nr_failed`` and ``last_errno`` are not reported, and
``qt_exceeds`` is.  Stopping (``request_stop``) takes effect when the
pending update returns: within about one aggregation interval.

The kernel draws its own sampling addresses (no ``seed``), keeps regions of
at least one page (``min_region_sz`` is the page size) and counts no region
checks (``stats()`` has no ``nr_samples`` or ``nr_region_checks``); its CPU
time is the kdamond thread's (``stats()["kdamond_cpu_us"]``), damonx's own
is this process's (``stats()["damonx_cpu_us"]``).
"""

from __future__ import annotations

import dataclasses
import mmap
import os
import random
import resource
import time
import warnings
import weakref

import numpy as np

from damonx import errors, kernel_owner, kernel_schemes, kernel_sysfs
from damonx.dtypes import MONITOR_REGION_DTYPE, TRIED_REGION_DTYPE
from damonx.kernel_damon import KernelDamon

#: the actions each operations set of the kernel applies (vaddr.c and
#: paddr.c of 7.3; migrate_hot and migrate_cold on vaddr are newer than
#: 6.12 and not offered here); the kernel's sysfs takes any action name it
#: knows for any ops, and an ops that does not apply it does nothing
OPS_ACTIONS = {
    "vaddr": ("stat", "willneed", "cold", "pageout", "hugepage", "nohugepage", "collapse"),
    "paddr": ("stat", "pageout", "lru_prio", "lru_deprio", "migrate_hot", "migrate_cold"),
}
OPS_ACTIONS["fvaddr"] = OPS_ACTIONS["vaddr"]

_U32_MAX = 2**32 - 1
_STAT_KEYS = ("nr_tried", "sz_tried", "nr_applied", "sz_applied", "qt_exceeds")


class LeftOverKdamondWarning(UserWarning):
    """A kdamond that a killed damonx left running was stopped and removed."""


def unavailable(ops, procfs="/proc", sysfs="/sys"):
    """Why the kernel backend cannot run ops here (reads only), or None."""
    found = kernel_sysfs.status(sysfs, procfs)
    if not found.usable:
        cls = errors.AccessDenied if found.privilege else errors.NotSupported
        return cls(f"the kernel's DAMON: {found.detail}")
    if found.layout.ops is not None and ops not in found.layout.ops:
        return errors.NotSupported(f"the kernel's DAMON lacks the {ops} operations")
    return None


def _check_attrs(attrs):
    """What the kernel's DAMON cannot do of attrs, refused.  damonx's own
    rules (hit_guided_regions, adaptive_checks, on by default) are not
    refused: the kernel runs its own rules, as with Attrs.kernel()."""
    if attrs.min_region_sz != mmap.PAGESIZE:
        raise errors.InvalidAttrs(
            f"the kernel's DAMON keeps regions of at least one page: min_region_sz must be "
            f"the page size ({mmap.PAGESIZE}) with backend kernel, not {attrs.min_region_sz}"
        )
    if attrs.cpu_budget is not None:
        raise errors.NotSupported(
            "the kernel's DAMON has no CPU budget: use backend page_idle for cpu_budget, "
            "or an intervals goal (--monitoring_intervals_autotune) to let the kernel tune"
        )


def open_kernel(ops, attrs, seed, procfs, sysfs):
    """A kernel backend for ops, no targets yet (``BackendSpec.open``)."""
    if seed:
        raise errors.InvalidAttrs(
            "the kernel's DAMON draws its own sampling addresses: a seed applies only "
            "to backend page_idle"
        )
    _check_attrs(attrs)
    why = unavailable(ops, procfs, sysfs)  # before the lock: no root, no DAMON...
    if why is not None:
        raise why
    return KernelBackend(ops, attrs, procfs, sysfs)


def _release(kd, lock, directory):
    """Stop and remove the kdamond, then drop the claim and the lock."""
    try:
        kd.stop()
        kernel_owner.remove_claim(directory)
    finally:
        lock.release()


class KernelBackend:
    """The kernel's DAMON behind the ``Backend`` protocol (see the module)."""

    def __init__(self, ops, attrs, procfs="/proc", sysfs="/sys"):
        self.ops = ops
        self.attrs = attrs
        self.procfs = procfs
        self.sysfs = sysfs
        self.kd = KernelDamon(sysfs, procfs)
        self.directory = kernel_owner.rundir()
        #: (target id, pid or None, ranges or None), in the kdamond's order
        self._targets: list = []
        self._schemes: list = []
        self._lost: set = set()
        self._started = False
        self._stopping = False
        self._last: tuple = (0, 0, [])
        self._intervals = (attrs.sample_us, attrs.aggr_us)
        self._cpu0_ns = time.process_time_ns()
        self._nr_snapshots = 0
        self._scheme_stats: list = []
        self._lock = kernel_owner.Lock(self.directory)
        if not self._lock.acquire():
            claim = kernel_owner.load_claim(self.directory)
            who = f" (pid {claim.owner_pid})" if claim else ""
            raise errors.NotSupported(
                f"the kernel's DAMON: another damonx{who} drives it (it holds "
                f"{self._lock.path}); one damonx at a time can"
            )
        self._finalizer = weakref.finalize(self, _release, self.kd, self._lock, self.directory)
        try:
            self.layout = self._open()
        except BaseException:
            self._finalizer()
            raise

    def _open(self):
        found = kernel_sysfs.status(self.sysfs, self.procfs, self.directory, locked=True)
        if not found.usable:
            cls = errors.AccessDenied if found.privilege else errors.NotSupported
            raise cls(f"the kernel's DAMON: {found.detail}")
        if found.left_over is not None:
            self._remove_left_over(found.left_over)
        layout = kernel_sysfs.probe_layout(self.kd.kdamonds)
        layout.require("tried_regions", "damonx reads its snapshots from them")
        if layout.ops is not None and self.ops not in layout.ops:
            raise errors.NotSupported(
                f"the kernel's DAMON lacks the {self.ops} operations; it has "
                f"{' '.join(layout.ops) or 'none'}"
            )
        return layout

    def _remove_left_over(self, index):
        claim = kernel_owner.load_claim(self.directory)
        kdamond = os.path.join(self.kd.kdamonds, str(index))
        if self.kd.read(os.path.join(kdamond, "state")) == "on":
            self.kd.write(os.path.join(kdamond, "state"), "off")
        self.kd.write(os.path.join(self.kd.kdamonds, "nr_kdamonds"), 0)
        kernel_owner.remove_claim(self.directory)
        warnings.warn(
            LeftOverKdamondWarning(
                f"stopped and removed kdamond {index}, left running by damonx "
                f"(pid {claim.owner_pid if claim else '?'}), which was killed"
            ),
            stacklevel=2,
        )

    # -- targets and schemes -------------------------------------------------
    def add_sim_target(self, target_id, size, page_size, phases):
        raise ValueError("the kernel's DAMON does not simulate: use backend page_idle")

    def add_pid_target(self, pid, ranges=None):
        self._not_started("add a target")
        gone = errors.process_error(pid, f"cannot monitor process {pid}", self.procfs)
        if gone is not None:
            raise gone
        if self._targets:
            self.layout.require(
                "target_filters",
                "with several targets, damonx reads each target's regions through a "
                "target filter; monitor one process per monitor",
            )
        self._targets.append((pid, pid, ranges))

    def add_range_target(self, target_id, ranges):
        self._not_started("add a target")
        self._targets.append((target_id, None, ranges))

    def add_scheme(self, scheme):
        self._not_started("add a scheme")
        action = scheme.action
        known = self.layout.actions if self.layout.actions is not None else OPS_ACTIONS[self.ops]
        applies = [a for a in OPS_ACTIONS[self.ops] if a in known]
        if action not in applies:
            raise ValueError(
                f"the kernel's DAMON cannot apply action {action!r} with ops {self.ops!r} "
                f"(its actions here: {', '.join(applies)})"
            )
        self._schemes.append(scheme)

    def _not_started(self, what):
        if self._started:
            raise ValueError(
                f"cannot {what} once the kernel's DAMON runs: the kernel backend takes "
                "targets and schemes before its first aggregation"
            )

    # -- the kdamond -----------------------------------------------------------
    def _start(self):
        a = self.attrs
        pids = [pid for _, pid, _ in self._targets]
        if self.ops == "paddr":
            targets, regions = list(self._targets[0][2]), None
        else:
            targets = pids
            regions = None if self.ops == "vaddr" else [r for _, _, r in self._targets]
        self.kd.start(
            targets,
            ops=self.ops,
            sample_us=a.sample_us,
            aggr_us=a.aggr_us,
            update_us=a.ops_update_us,
            min_nr_regions=a.min_nr_regions,
            max_nr_regions=a.max_nr_regions,
            regions=regions,
            intervals_goal=a.intervals_goal,
            nr_extra_schemes=len(self._schemes),
            turn_on=False,
        )
        self._write_user_schemes(a)
        cookie = random.randrange(1 << 20, 1 << 31)
        self.kd.write(os.path.join(self.kd.scheme_dir(0), "quotas", "reset_interval_ms"), cookie)
        claim = kernel_owner.Claim(
            owner_pid=os.getpid(),
            boot_id=kernel_owner.boot_id(self.procfs),
            sysfs=self.sysfs,
            kdamond=0,
            cookie=cookie,
            ops=self.ops,
            pids=[p for p in pids if p is not None],
        )
        kernel_owner.save_claim(claim, self.directory)
        try:
            self.kd.turn_on()
        except errors.DamonxError as err:
            kernel_owner.remove_claim(self.directory)
            raise self._explained(err) from err
        claim.kdamond_pid = self.kd.kdamond_pid
        kernel_owner.save_claim(claim, self.directory)
        self._started = True

    def _user_scheme_dir(self, index):
        """The directory of scheme index of add_scheme's (after the stat
        schemes, one per target)."""
        return self.kd.scheme_dir(len(self._targets) + index)

    def _explained(self, err):
        """err, with the kdamond threads that may hold DAMON exclusively."""
        if "busy" not in str(err).lower():
            return err
        from damonx.features import accessed_bit_users

        users = [u for u in accessed_bit_users(self.procfs, self.sysfs) if "threads" in u]
        hint = (
            f"; {users[0]} (DAMON_RECLAIM, DAMON_LRU_SORT or DAMON_STAT run DAMON exclusively)"
            if users
            else ""
        )
        return errors.DamonxError(f"{err}{hint}")

    def close(self):
        """Stop the kdamond and remove its directories; idempotent."""
        self._stopping = True
        self._finalizer()

    # -- running ---------------------------------------------------------------
    def run_aggregation(self):
        if self._stopping or not self._finalizer.alive:
            return False
        if not self._started:
            if not self._targets:
                raise errors.InvalidAttrs("no monitoring target given")
            self._start()
        if not self.live_targets:
            return False
        try:
            regions = self.kd.snapshot()
        except errors.DamonxError:
            if not self.kd.is_running():
                return False  # every target exited: the kdamond stopped
            raise
        end_ns = time.monotonic_ns()
        if self.attrs.intervals_goal is not None:
            self._intervals = self.kd.tuned_intervals()
        prev_end = self._last[1]
        start_ns = max(end_ns - self._intervals[1] * 1000, prev_end)
        live = set(self.live_targets)
        out = [
            (tid, _monitor_regions(arr))
            for (tid, _, _), arr in zip(self._targets, regions)
            if tid in live
        ]
        self._last = (start_ns, end_ns, out)
        self._nr_snapshots += 1
        if self._schemes:
            self._read_scheme_stats()
        return True

    def _read_scheme_stats(self):
        self.kd.write(os.path.join(self.kd.kdamond, "state"), "update_schemes_stats")
        if os.path.exists(os.path.join(self._user_scheme_dir(0), "quotas", "effective_bytes")):
            self.kd.write(os.path.join(self.kd.kdamond, "state"), "update_schemes_effective_quotas")
        self._scheme_stats = [
            kernel_schemes.read_stats(self._user_scheme_dir(i), self.kd.read)
            for i in range(len(self._schemes))
        ]

    def snapshot(self):
        return self._last

    def snapshot_span(self):
        return self._last[:2]

    def snapshot_nr_checks(self):
        return None  # the kernel does not count its access checks

    def snapshot_intervals(self):
        return self._intervals

    def _write_user_schemes(self, attrs):
        """The user's schemes into their directories, in the units of the
        intervals of attrs (ages in aggregations, counts in samples)."""
        for i, scheme in enumerate(self._schemes):
            kernel_schemes.write_scheme(
                self._user_scheme_dir(i),
                scheme,
                attrs.sample_us,
                attrs.aggr_us,
                write=self.kd.write,
                ops=self.ops,
            )

    def set_attrs(self, attrs):
        """Before the first aggregation, the attributes to start with; then
        committed to the running kdamond (Linux 5.19 and later), the user's
        schemes written again in the new intervals' units first."""
        _check_attrs(attrs)
        if self._started:
            self.kd.write_attrs(
                attrs.sample_us,
                attrs.aggr_us,
                attrs.ops_update_us,
                attrs.min_nr_regions,
                attrs.max_nr_regions,
                attrs.intervals_goal,
            )
            self._write_user_schemes(attrs)
            self.kd.commit()
        self.attrs = attrs
        self._intervals = (attrs.sample_us, attrs.aggr_us)

    def attrs_in_effect(self):
        a = self.attrs
        return {
            "sample_us": self._intervals[0],
            "aggr_us": self._intervals[1],
            "ops_update_us": a.ops_update_us,
            "min_nr_regions": a.min_nr_regions,
            "max_nr_regions": a.max_nr_regions,
        }

    @property
    def now_ns(self):
        """The clock of the snapshots: CLOCK_MONOTONIC."""
        return time.monotonic_ns()

    @property
    def cpu_ns(self):
        """This process's CPU time since the backend opened, and the kdamond
        thread's."""
        kdamond_us = self.stats().get("kdamond_cpu_us", 0)
        return time.process_time_ns() - self._cpu0_ns + kdamond_us * 1000

    def request_stop(self):
        self._stopping = True

    def scheme_stats(self):
        if len(self._scheme_stats) == len(self._schemes):
            return [dict(s) for s in self._scheme_stats]
        return [dict.fromkeys(_STAT_KEYS, 0) for _ in self._schemes]

    def tried_regions(self, index):
        """As of the last aggregation (whose update_schemes_tried_regions
        covered every scheme)."""
        if not 0 <= index < len(self._schemes):
            raise ValueError(f"no scheme {index}: {len(self._schemes)} were added")
        if not self._started:
            return np.zeros(0, dtype=TRIED_REGION_DTYPE)
        return kernel_schemes.read_tried_regions(self._user_scheme_dir(index), self.kd.read)

    def set_goal_value(self, scheme, goal, value):
        if not 0 <= scheme < len(self._schemes):
            raise ValueError(f"no scheme {scheme}: {len(self._schemes)} were added")
        goals = self._schemes[scheme].quotas.goals
        if not 0 <= goal < len(goals) or goals[goal].metric != "user_input":
            raise ValueError(f"scheme {scheme} has no user_input goal {goal}")
        if not self._started:  # written with the scheme when the kdamond starts
            goals = list(goals)
            goals[goal] = dataclasses.replace(goals[goal], current_value=value)
            old = self._schemes[scheme]
            self._schemes[scheme] = dataclasses.replace(
                old, quotas=dataclasses.replace(old.quotas, goals=tuple(goals))
            )
            return
        kernel_schemes.write_goal_value(self._user_scheme_dir(scheme), goal, value, self.kd.write)
        self.kd.write(os.path.join(self.kd.kdamond, "state"), "commit_schemes_quota_goals")

    @property
    def nr_regions(self):
        return sum(len(arr) for _, arr in self._last[2])

    @property
    def live_targets(self):
        out = []
        for tid, pid, _ in self._targets:
            gone = pid is not None and tid not in self._lost
            if gone and errors.process_state(pid, self.procfs) in (None, "Z"):
                self._lost.add(tid)
            if tid not in self._lost:
                out.append(tid)
        return out

    def stats(self):
        ru = resource.getrusage(resource.RUSAGE_SELF)
        out = {
            "nr_aggregations": self._nr_snapshots,
            "nr_targets_lost": len(self._lost),
            "damonx_cpu_us": int((ru.ru_utime + ru.ru_stime) * 1e6),
        }
        try:
            out["kdamond_cpu_us"] = int(self.kd.cpu_seconds() * 1e6)
        except errors.DamonxError:
            pass  # not started yet, or the thread is gone
        return out

    def access_check_stats(self):
        """Nothing to count: the kernel checks the accesses itself."""
        return {}


def _monitor_regions(arr):
    """REGION_DTYPE regions as MONITOR_REGION_DTYPE, nr_accesses_bp filled."""
    out = np.zeros(len(arr), dtype=MONITOR_REGION_DTYPE)
    for name in ("start", "end", "nr_accesses", "age"):
        out[name] = arr[name]
    out["nr_accesses_bp"] = np.minimum(arr["nr_accesses"].astype(np.uint64) * 10000, _U32_MAX)
    return out
