"""Drive the kernel's own DAMON through its sysfs interface.

This is the reference damonx is compared with: one kdamond with one
monitoring context, whose regions are read back through a DAMOS ``stat``
scheme that matches every region (the kernel lists the regions a scheme tried
under ``schemes/<N>/tried_regions`` on request).  See the kernel's
Documentation/admin-guide/mm/damon/usage.rst for the files used here.

All paths are built under ``sysfs_root`` and ``procfs_root`` so that tests can
point the class at a fake tree.  Only kdamonds this object started are ever
stopped: if any kdamond under the root is already running, :meth:`start`
refuses instead of touching it.
"""

import errno
import os
import time

import numpy as np

from damonx import errors, kernel_schemes
from damonx.backend import check_pid, check_ranges
from damonx.dtypes import REGION_DTYPE
from damonx.errors import DamonxError, InvalidAttrs, NotSupported

OPS_CONFIG = {
    "vaddr": "CONFIG_DAMON_VADDR",
    "fvaddr": "CONFIG_DAMON_VADDR",
    "paddr": "CONFIG_DAMON_PADDR",
}

_U64_MAX = 2**64 - 1
_U32_MAX = 2**32 - 1
_SYSFS_HINT = "the kernel's DAMON sysfs interface (CONFIG_DAMON_SYSFS) lacks it"
# state_store() and state_show() only try-lock the DAMON sysfs mutex and
# answer EBUSY while another holds it (kdamond does, between the steps of a
# tried-regions update; so does any writer of state, until it returns)
_EBUSY_RETRY_S = 5.0
# tried_regions updates that the kernel may let time out before one is served
_SNAPSHOT_ATTEMPTS = 5


def _again_while_busy(io):
    """io(), called again while it fails with EBUSY, for _EBUSY_RETRY_S."""
    deadline = time.monotonic() + _EBUSY_RETRY_S
    while True:
        try:
            return io()
        except OSError as err:
            if err.errno != errno.EBUSY or time.monotonic() >= deadline:
                raise
        time.sleep(0.05)


class KernelDamon:
    """One kdamond of the kernel's DAMON, configured and read through sysfs.

    Creating the object reads and writes nothing; :meth:`start` does the
    set-up and :meth:`stop` (or leaving a ``with`` block) turns it off.
    """

    def __init__(self, sysfs_root="/sys", procfs_root="/proc"):
        self.sysfs_root = sysfs_root
        self.procfs_root = procfs_root
        self.admin = os.path.join(sysfs_root, "kernel", "mm", "damon", "admin")
        self.kdamonds = os.path.join(self.admin, "kdamonds")
        self.kdamond = os.path.join(self.kdamonds, "0")
        self.ctx = os.path.join(self.kdamond, "contexts", "0")
        #: pid of the kdamond kernel thread while it runs, else None
        self.kdamond_pid = None
        self.ops = None
        self.nr_targets = 0
        #: user schemes (start()'s schemes) of the running kdamond
        self.nr_schemes = 0
        self._started = False
        self._prepared = False
        self._final_cpu_s = None

    # ------------------------------------------------------------ file I/O
    _path = staticmethod(os.path.join)

    def _translated(self, what):
        """errors.translated for the files of the kernel's DAMON."""
        return errors.translated(
            what,
            procfs=self.procfs_root,
            privilege_hint="the kernel's DAMON needs root",
            support_hint=_SYSFS_HINT,
        )

    def _read(self, path):
        def read():
            with open(path) as f:
                return f.read().strip()

        with self._translated(f"cannot read {path}"):
            return _again_while_busy(read)

    def _write(self, path, value):
        """Write one value to an existing sysfs file (never create one)."""
        data = str(value).encode()

        def write():
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)

        with self._translated(f"cannot write {value!r} to {path}"):
            _again_while_busy(write)

    # ------------------------------------------------------------- queries
    @property
    def available(self):
        """True if the DAMON sysfs interface exists under ``sysfs_root``."""
        return os.path.isdir(self.kdamonds)

    def _check_available(self):
        if not self.available:
            raise NotSupported(
                f"{self.admin} does not exist: the kernel lacks the DAMON sysfs "
                "interface (CONFIG_DAMON_SYSFS), or sysfs is not mounted there"
            )

    def running_kdamonds(self):
        """Indexes of the kdamonds under ``sysfs_root`` whose state is ``on``."""
        self._check_available()
        nr = int(self._read(self._path(self.kdamonds, "nr_kdamonds")))
        return [
            i for i in range(nr) if self._read(self._path(self.kdamonds, str(i), "state")) == "on"
        ]

    def is_running(self):
        """True while the kdamond this object started is on."""
        if not self._started:
            return False
        return self._read(self._path(self.kdamond, "state")) == "on"

    # --------------------------------------------------------------- start
    def start(
        self,
        targets,
        ops="vaddr",
        sample_us=5000,
        aggr_us=100000,
        update_us=1000000,
        min_nr_regions=10,
        max_nr_regions=1000,
        regions=None,
        intervals_goal=None,
        nr_extra_schemes=0,
        turn_on=True,
        schemes=(),
    ):
        """Set up one kdamond with one context and turn it on.

        ``targets``: for ``vaddr`` and ``fvaddr``, a list of PIDs; for
        ``paddr``, a list of ``(start, end)`` physical address ranges that form
        the single target.  ``regions``: for ``vaddr`` (optional) and
        ``fvaddr`` (required), one list of ``(start, end)`` ranges per PID,
        the initial monitoring regions.  Intervals are in microseconds.

        ``intervals_goal``: a ``damonx.IntervalsGoal`` (or its four values,
        access_bp, aggrs, min_sample_us, max_sample_us) to let the kernel
        auto-tune the intervals (Linux 6.15 and later; :meth:`tuned_intervals`
        reads them); NotSupported on a kernel without it.

        Every region of a target is read back by :meth:`snapshot`, through a
        ``stat`` scheme per target that matches any size, access count and age.

        ``schemes``: ``damonx.Scheme`` objects the kdamond applies too, after
        those stat schemes, written by :mod:`damonx.kernel_schemes`
        (``NotSupported`` for what the running kernel lacks); their
        statistics come from :meth:`scheme_stats`.

        ``nr_extra_schemes`` more scheme directories follow all those (:meth:`scheme_dir`),
        as the kernel creates them, for the caller to fill.  With
        ``turn_on=False`` the kdamond is configured but stays off until
        :meth:`turn_on`.
        """
        if self._started or self._prepared:
            raise DamonxError("this KernelDamon was already started; stop() it first")
        target_pids, target_regions = self._check_targets(ops, targets, regions)
        limits = (sample_us, aggr_us, update_us, min_nr_regions, max_nr_regions)
        self._check_attrs(*limits)
        goal = self._check_goal(intervals_goal, sample_us)
        self._check_available()
        running = self.running_kdamonds()
        if running:
            raise DamonxError(
                f"kdamond {running[0]} under {self.kdamonds} is already running and "
                "was not started by this object; refusing to touch it (stop it with "
                f"'echo off > {self._path(self.kdamonds, str(running[0]), 'state')}' "
                "if it is yours)"
            )
        for pid in target_pids:
            gone = (
                None
                if pid is None
                else errors.process_error(pid, f"cannot monitor process {pid}", self.procfs_root)
            )
            if gone is not None:
                raise gone

        try:
            self._configure(
                ops, target_pids, target_regions, *limits, nr_extra_schemes, schemes=schemes
            )
            if goal is not None:
                self._configure_goal(goal)
        except DamonxError:
            self._reset()
            raise
        self.ops = ops
        self.nr_targets = len(target_pids)
        self.nr_schemes = len(schemes)
        self._prepared = True
        return self.turn_on() if turn_on else self

    def turn_on(self):
        """Turn on the kdamond that :meth:`start` configured."""
        if not self._prepared:
            raise DamonxError("no kdamond is configured: call start(..., turn_on=False) first")
        self._prepared = False
        try:
            self._write(self._path(self.kdamond, "state"), "on")
        except DamonxError:
            self._reset()
            raise
        self._started = True
        self._final_cpu_s = None
        pid = self._read(self._path(self.kdamond, "pid"))
        self.kdamond_pid = int(pid) if pid.lstrip("-").isdigit() and int(pid) > 0 else None
        return self

    def scheme_dir(self, idx):
        """The directory of scheme idx (the stat schemes come first)."""
        return self._path(self.ctx, "schemes", str(idx))

    def read(self, path):
        """The stripped text of one sysfs file."""
        return self._read(path)

    def write(self, path, value):
        """Write one value to an existing sysfs file (EBUSY is retried)."""
        self._write(path, value)

    def _check_targets(self, ops, targets, regions):
        if ops not in OPS_CONFIG:
            raise InvalidAttrs(f"ops must be one of {sorted(OPS_CONFIG)}, got {ops!r}")
        targets = list(targets) if targets is not None else []
        if not targets:
            raise InvalidAttrs("no monitoring target given")
        if ops == "paddr":
            if regions is not None:
                raise InvalidAttrs("for paddr, give the address ranges as targets, not regions")
            return [None], [check_ranges(targets, "paddr targets")]
        pids = [check_pid(pid, ops) for pid in targets]
        if regions is None:
            if ops == "fvaddr":
                raise InvalidAttrs("fvaddr needs regions: one list of (start, end) per PID")
            return pids, [None] * len(pids)
        regions = list(regions)
        if len(regions) != len(pids):
            raise InvalidAttrs(
                f"regions must hold one list of ranges per target: {len(pids)} targets, "
                f"{len(regions)} lists"
            )
        return pids, [check_ranges(r, f"regions of target {i}") for i, r in enumerate(regions)]

    @staticmethod
    def _check_attrs(sample_us, aggr_us, update_us, min_nr_regions, max_nr_regions):
        for name, value in (
            ("sample_us", sample_us),
            ("aggr_us", aggr_us),
            ("update_us", update_us),
            ("min_nr_regions", min_nr_regions),
            ("max_nr_regions", max_nr_regions),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, np.integer))
                or not 0 < value <= _U64_MAX
            ):
                raise InvalidAttrs(f"{name} must be a positive integer, got {value!r}")
        if aggr_us < sample_us:
            raise InvalidAttrs(f"aggr_us ({aggr_us}) must not be less than sample_us ({sample_us})")
        if not 3 <= min_nr_regions <= max_nr_regions:
            raise InvalidAttrs(
                "need 3 <= min_nr_regions <= max_nr_regions, got "
                f"{min_nr_regions} and {max_nr_regions}"
            )

    @staticmethod
    def _check_goal(goal, sample_us):
        """The goal's four values, checked as the kernel would, or None."""
        if goal is None:
            return None
        from damonx.attrs import IntervalsGoal

        if not isinstance(goal, IntervalsGoal):
            try:
                if len(goal) != 4:
                    raise TypeError
                goal = IntervalsGoal(*goal)
            except TypeError:
                raise InvalidAttrs(
                    "intervals_goal is an IntervalsGoal or (access_bp, aggrs, "
                    f"min_sample_us, max_sample_us), not {goal!r}"
                ) from None
        if not goal.min_sample_us <= sample_us <= goal.max_sample_us:
            raise InvalidAttrs(
                f"sample_us ({sample_us}) must lie within the intervals goal's "
                f"[{goal.min_sample_us}, {goal.max_sample_us}] us (the kernel refuses it otherwise)"
            )
        return (goal.access_bp, goal.aggrs, goal.min_sample_us, goal.max_sample_us)

    def _goal_dir(self):
        return self._path(self.ctx, "monitoring_attrs", "intervals", "intervals_goal")

    def _configure_goal(self, goal):
        gdir = self._goal_dir()
        if not os.path.isdir(gdir):
            raise NotSupported(
                f"{gdir} does not exist: the kernel's DAMON has no monitoring intervals "
                "auto-tuning (intervals_goal, Linux 6.15 and later); use a newer kernel, "
                "or damonx's own (damonx.Attrs(intervals_goal=...))"
            )
        for name, value in zip(("access_bp", "aggrs", "min_sample_us", "max_sample_us"), goal):
            self._write(self._path(gdir, name), int(value))

    def tuned_intervals(self):
        """``(sample_us, aggr_us)`` as the kernel's intervals auto-tuning has
        set them (asks the kernel to update its files first)."""
        self._require_started()
        self._write(self._path(self.kdamond, "state"), "update_tuned_intervals")
        intervals = self._path(self.ctx, "monitoring_attrs", "intervals")
        return tuple(int(self._read(self._path(intervals, n))) for n in ("sample_us", "aggr_us"))

    def _configure(
        self,
        ops,
        pids,
        target_regions,
        sample_us,
        aggr_us,
        update_us,
        min_nr_regions,
        max_nr_regions,
        nr_extra_schemes=0,
        schemes=(),
    ):
        w = self._write
        p = self._path
        # writing nr_* (re)creates fresh child directories with default values
        w(p(self.kdamonds, "nr_kdamonds"), 1)
        w(p(self.kdamond, "contexts", "nr_contexts"), 1)
        avail = self._read(p(self.ctx, "avail_operations")).split()
        if ops not in avail:
            raise NotSupported(
                f"the kernel's DAMON lacks the {ops} operations ({OPS_CONFIG[ops]}); "
                f"available: {' '.join(avail) or 'none'}"
            )
        w(p(self.ctx, "operations"), ops)
        self._write_limits(sample_us, aggr_us, update_us, min_nr_regions, max_nr_regions)

        targets_dir = p(self.ctx, "targets")
        w(p(targets_dir, "nr_targets"), len(pids))
        for i, (pid, ranges) in enumerate(zip(pids, target_regions)):
            tdir = p(targets_dir, str(i))
            if pid is not None:
                w(p(tdir, "pid_target"), pid)
            if ranges is not None:
                w(p(tdir, "regions", "nr_regions"), len(ranges))
                for j, (start, end) in enumerate(ranges):
                    w(p(tdir, "regions", str(j), "start"), start)
                    w(p(tdir, "regions", str(j), "end"), end)

        # tried_regions carry no target index, so with several targets each
        # target gets its own scheme that filters out all other targets
        schemes_dir = p(self.ctx, "schemes")
        w(p(schemes_dir, "nr_schemes"), len(pids) + len(schemes) + nr_extra_schemes)
        for i in range(len(pids)):
            sdir = p(schemes_dir, str(i))
            w(p(sdir, "action"), "stat")
            pattern = p(sdir, "access_pattern")
            for sub, top in (("sz", _U64_MAX), ("nr_accesses", _U32_MAX), ("age", _U32_MAX)):
                w(p(pattern, sub, "min"), 0)
                w(p(pattern, sub, "max"), top)
            if len(pids) > 1:
                fdir = p(sdir, "filters")
                w(p(fdir, "nr_filters"), 1)
                w(p(fdir, "0", "type"), "target")
                w(p(fdir, "0", "damon_target_idx"), i)
                # matching=N: filter out the regions of every other target
                w(p(fdir, "0", "matching"), "N")
        for i, scheme in enumerate(schemes):
            kernel_schemes.write_scheme(
                p(schemes_dir, str(len(pids) + i)), scheme, sample_us, aggr_us, write=w, ops=ops
            )

    def _write_limits(self, sample_us, aggr_us, update_us, min_nr_regions, max_nr_regions):
        p = self._path
        intervals = p(self.ctx, "monitoring_attrs", "intervals")
        nr_regions = p(self.ctx, "monitoring_attrs", "nr_regions")
        for path, value in (
            (p(intervals, "sample_us"), sample_us),
            (p(intervals, "aggr_us"), aggr_us),
            (p(intervals, "update_us"), update_us),
            (p(nr_regions, "min"), min_nr_regions),
            (p(nr_regions, "max"), max_nr_regions),
        ):
            self._write(path, int(value))

    def write_attrs(
        self, sample_us, aggr_us, update_us, min_nr_regions, max_nr_regions, intervals_goal=None
    ):
        """Write new attributes into the running kdamond's files, checked as
        :meth:`start` checks them; :meth:`commit` puts them in effect.  An
        intervals goal of None turns the kernel's tuning off where it has one."""
        self._require_started()
        limits = (sample_us, aggr_us, update_us, min_nr_regions, max_nr_regions)
        self._check_attrs(*limits)
        goal = self._check_goal(intervals_goal, sample_us)
        self._write_limits(*limits)
        if goal is not None:
            self._configure_goal(goal)
        elif os.path.isdir(self._goal_dir()):
            self._write(self._path(self._goal_dir(), "aggrs"), 0)

    def commit(self):
        """Have the running kdamond take what its files say now (the kernel's
        ``commit``, Linux 5.19 and later): attributes, targets and schemes,
        its regions kept, as damon_set_attrs() and damon_commit_ctx() do."""
        self._require_started()
        try:
            self._write(self._path(self.kdamond, "state"), "commit")
        except InvalidAttrs as err:
            raise InvalidAttrs(
                f"the running kdamond refused its new parameters ({err}); Linux before "
                "5.19 has no commit at all"
            ) from None

    def _reset(self):
        """Remove this object's kdamond directories (best effort)."""
        try:
            if self._read(self._path(self.kdamond, "state")) == "on":
                return
            self._write(self._path(self.kdamonds, "nr_kdamonds"), 0)
        except DamonxError:
            pass

    # ------------------------------------------------------------ snapshot
    def snapshot(self):
        """The current regions, one ``REGION_DTYPE`` array per target.

        Asks the kernel to refresh ``tried_regions`` (this returns after the
        next scheme application, one aggregation interval or so later) and
        reads them back, sorted by address.

        The kernel gives up an update after two aggregation intervals without
        a scheme application (``upd_timeout_jiffies`` in 6.12's
        ``mm/damon/sysfs-schemes.c``) and then lists no region at all, which
        happens when the kdamond is starved of CPU.  A stat scheme that
        matches every region lists at least one while a target has any, so
        an update that lists none for every target is asked for again, up to
        ``_SNAPSHOT_ATTEMPTS`` times.
        """
        self._require_started()
        for _ in range(_SNAPSHOT_ATTEMPTS):
            self._request_tried_regions()
            out = [self._read_tried_regions(i) for i in range(max(self.nr_targets, 1))]
            if any(len(arr) for arr in out) or not self.is_running():
                break
        return out

    def _request_tried_regions(self):
        state = self._path(self.kdamond, "state")
        try:
            self._write(state, "update_schemes_tried_regions")
        except DamonxError as err:
            if not self.is_running():
                raise DamonxError(
                    "the kdamond is not running any more (for vaddr it stops by "
                    "itself when every target process has exited)"
                ) from err
            raise

    def _read_tried_regions(self, scheme_idx):
        tdir = self._path(self.ctx, "schemes", str(scheme_idx), "tried_regions")
        with self._translated(f"cannot list {tdir}"):
            names = os.listdir(tdir)
        idxs = sorted(int(n) for n in names if n.isdigit())
        arr = np.empty(len(idxs), dtype=REGION_DTYPE)
        for k, idx in enumerate(idxs):
            rdir = self._path(tdir, str(idx))
            arr[k] = (
                int(self._read(self._path(rdir, "start"))),
                int(self._read(self._path(rdir, "end"))),
                int(self._read(self._path(rdir, "nr_accesses"))),
                int(self._read(self._path(rdir, "age"))),
            )
        arr.sort(order="start")
        return arr

    # ------------------------------------------------------------- schemes
    def _user_scheme_dir(self, index):
        if not 0 <= index < self.nr_schemes:
            raise InvalidAttrs(f"no scheme {index}: {self.nr_schemes} were started")
        return self._path(self.ctx, "schemes", str(self.nr_targets + index))

    def scheme_stats(self):
        """Per scheme given to :meth:`start`, in order: its statistics as the
        kernel counts them (:func:`damonx.kernel_schemes.read_stats`), updated
        now."""
        self._require_started()
        self._write(self._path(self.kdamond, "state"), "update_schemes_stats")
        if self.nr_schemes and os.path.exists(
            self._path(self._user_scheme_dir(0), "quotas", "effective_bytes")
        ):
            self._write(self._path(self.kdamond, "state"), "update_schemes_effective_quotas")
        return [
            kernel_schemes.read_stats(self._user_scheme_dir(i), self._read)
            for i in range(self.nr_schemes)
        ]

    def tried_regions(self, index):
        """The regions scheme ``index`` (of :meth:`start`'s) was tried on at
        its last application, updated now: ``TRIED_REGION_DTYPE``."""
        self._require_started()
        sdir = self._user_scheme_dir(index)
        self._request_tried_regions()
        with self._translated(f"cannot read the tried regions of {sdir}"):
            return kernel_schemes.read_tried_regions(sdir, self._read)

    def set_goal_value(self, scheme, goal, value):
        """Set the current value of a ``user_input`` quota goal of a running
        scheme (``commit_schemes_quota_goals``)."""
        self._require_started()
        kernel_schemes.write_goal_value(self._user_scheme_dir(scheme), goal, value, self._write)
        self._write(self._path(self.kdamond, "state"), "commit_schemes_quota_goals")

    # ----------------------------------------------------------------- cpu
    def cpu_seconds(self):
        """CPU time (user + system, seconds) the kdamond thread has used.

        After :meth:`stop`, the value read just before the kdamond was turned
        off.
        """
        if self.kdamond_pid is None:
            if self._final_cpu_s is not None:
                return self._final_cpu_s
            raise DamonxError("no kdamond pid known: start() the kdamond first")
        pid = self.kdamond_pid
        what = f"cannot read the CPU time of kdamond thread {pid}"
        path = self._path(self.procfs_root, str(pid), "stat")
        with errors.translated(what, pid=pid, procfs=self.procfs_root), open(path) as f:
            stat = f.read()
        # the command name may contain spaces and parentheses: split after it
        fields = stat[stat.rindex(")") + 2 :].split()
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / os.sysconf("SC_CLK_TCK")

    # ---------------------------------------------------------------- stop
    def stop(self):
        """Turn the kdamond off and remove its directories; idempotent."""
        if not self._started:
            if self._prepared:
                self._prepared = False
                self._reset()
            return
        if self.kdamond_pid is not None:
            try:
                self._final_cpu_s = self.cpu_seconds()
            except DamonxError:
                pass
        if self.is_running():
            self._write(self._path(self.kdamond, "state"), "off")
        self._started = False
        self.kdamond_pid = None
        self._reset()

    def _require_started(self):
        if not self._started:
            raise DamonxError("the kdamond is not started: call start() first")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
