"""Monitoring attributes: the sampling, aggregation and update intervals and
the bounds of the number of regions, with DAMON's names and defaults; the
kernel's monitoring intervals auto-tuning goal, and damonx's CPU budget."""

import math
import mmap
from dataclasses import dataclass, fields
from typing import Optional

from damonx import errors

_U32_MAX = 2**32 - 1
_U64_MAX = 2**64 - 1
#: the longest interval: its nanoseconds still fit the core's 64-bit clock
MAX_INTERVAL_US = _U64_MAX // 1000

#: the largest value of each field, as the core's ``struct dx_attrs`` holds it
_LIMITS = {
    "sample_us": MAX_INTERVAL_US,
    "aggr_us": MAX_INTERVAL_US,
    "ops_update_us": MAX_INTERVAL_US,
    "min_nr_regions": _U32_MAX,
    "max_nr_regions": _U32_MAX,
    "min_region_sz": 2**63,
}


@dataclass(frozen=True)
class Intervals:
    """Monitoring intervals in microseconds."""

    sample_us: int
    aggr_us: int
    ops_update_us: int


def _check_int(name, value, limit):
    if isinstance(value, bool) or not isinstance(value, int):
        raise errors.InvalidAttrs(f"{name} must be an integer, not {value!r}")
    if value <= 0:
        raise errors.InvalidAttrs(f"{name} must be positive, not {value}")
    if value > limit:
        raise errors.InvalidAttrs(f"{name} {value} is too large: at most {limit}")


@dataclass(frozen=True)
class IntervalsGoal:
    """The kernel's monitoring intervals auto-tuning goal (``intervals_goal``,
    Linux 6.15): every ``aggrs`` aggregations both intervals are scaled
    together, aiming for ``access_bp`` (basis points) of the access events
    an aggregation could find to be found, with the sampling interval kept
    within [``min_sample_us``, ``max_sample_us``].  The defaults are damo's
    ``--monitoring_intervals_autotune`` (and DAMON_STAT's): 4%, 3
    aggregations, 5 ms to 10 s."""

    access_bp: int = 400
    aggrs: int = 3
    min_sample_us: int = 5000
    max_sample_us: int = 10_000_000

    def __post_init__(self):
        _check_int("intervals goal access_bp", self.access_bp, 10000)
        _check_int("intervals goal aggrs", self.aggrs, _U64_MAX)
        _check_int("intervals goal min_sample_us", self.min_sample_us, MAX_INTERVAL_US)
        _check_int("intervals goal max_sample_us", self.max_sample_us, MAX_INTERVAL_US)
        if self.min_sample_us > self.max_sample_us:
            raise errors.InvalidAttrs(
                f"intervals goal min_sample_us ({self.min_sample_us}) must not exceed "
                f"max_sample_us ({self.max_sample_us})"
            )


@dataclass(frozen=True)
class Attrs:
    """Monitoring attributes (DAMON's names; defaults of the original DAMON).

    ``intervals_goal``: an :class:`IntervalsGoal` to auto-tune the sampling
    and aggregation intervals as the kernel does, starting from
    ``sample_us`` and ``aggr_us`` (which must lie within its range), or
    None.

    ``cpu_budget``: the CPU time, in percent of one CPU, that the monitoring
    process may use (all of it: the C loop, the Python handling of the
    snapshots, the writing of files), or None.  The intervals stretch
    together (keeping their ratio, so that nr_accesses keeps its meaning)
    until the budget holds; past a sampling interval of 1 s (or the goal's
    ``max_sample_us``), ``max_nr_regions`` comes down.  With a goal, the
    budget is a ceiling the goal steers below.
    """

    sample_us: int = 5000
    aggr_us: int = 100_000
    ops_update_us: int = 1_000_000
    min_nr_regions: int = 10
    max_nr_regions: int = 1000
    min_region_sz: int = mmap.PAGESIZE
    intervals_goal: Optional[IntervalsGoal] = None
    cpu_budget: Optional[float] = None

    def __post_init__(self):
        for f in fields(self):
            if f.name in _LIMITS:
                _check_int(f.name, getattr(self, f.name), _LIMITS[f.name])
        if self.sample_us > self.aggr_us:
            raise errors.InvalidAttrs(
                f"sample_us ({self.sample_us}) must not exceed aggr_us ({self.aggr_us})"
            )
        if self.aggr_us // self.sample_us > _U32_MAX:
            raise errors.InvalidAttrs(
                f"aggr_us ({self.aggr_us}) is more than {_U32_MAX} sampling intervals "
                f"({self.sample_us} us): nr_accesses would not fit 32 bits"
            )
        if self.min_nr_regions < 3:
            raise errors.InvalidAttrs(
                "min_nr_regions must be at least 3 (three regions of a process), "
                f"not {self.min_nr_regions}"
            )
        if self.min_nr_regions > self.max_nr_regions:
            raise errors.InvalidAttrs(
                f"min_nr_regions ({self.min_nr_regions}) must not exceed "
                f"max_nr_regions ({self.max_nr_regions})"
            )
        if self.min_region_sz & (self.min_region_sz - 1):
            raise errors.InvalidAttrs(f"min_region_sz {self.min_region_sz} is not a power of two")
        if self.min_region_sz < mmap.PAGESIZE:
            raise errors.InvalidAttrs(
                f"min_region_sz {self.min_region_sz} is smaller than a page ({mmap.PAGESIZE} bytes)"
            )
        self._check_goal()
        self._check_budget()

    def _check_goal(self):
        goal = self.intervals_goal
        if goal is None:
            return
        if not isinstance(goal, IntervalsGoal):
            raise errors.InvalidAttrs(
                f"intervals_goal must be a damonx.IntervalsGoal or None, not {goal!r}"
            )
        if not goal.min_sample_us <= self.sample_us <= goal.max_sample_us:
            raise errors.InvalidAttrs(
                f"sample_us ({self.sample_us}) must lie within the intervals goal's "
                f"[{goal.min_sample_us}, {goal.max_sample_us}] us, where the tuning starts "
                "(the kernel refuses it otherwise)"
            )

    def _check_budget(self):
        budget = self.cpu_budget
        if budget is None:
            return
        if isinstance(budget, bool) or not isinstance(budget, (int, float)):
            raise errors.InvalidAttrs(f"cpu_budget must be a number (percent), not {budget!r}")
        if not (math.isfinite(budget) and 0.01 <= budget <= 100):
            raise errors.InvalidAttrs(
                f"cpu_budget must be from 0.01 to 100 (percent of one CPU), not {budget}"
            )

    @property
    def intervals(self):
        return Intervals(self.sample_us, self.aggr_us, self.ops_update_us)

    @property
    def max_nr_accesses(self):
        """The largest nr_accesses a region can reach in one aggregation."""
        return self.aggr_us // self.sample_us
