"""Monitoring attributes: the sampling, aggregation and update intervals and
the bounds of the number of regions, with DAMON's names and defaults."""

import mmap
from dataclasses import asdict, dataclass

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


#: damonx's own rules, on by default; both off give the kernel's rules
_RULES = ("hit_guided_regions", "adaptive_checks")


@dataclass(frozen=True)
class Attrs:
    """Monitoring attributes (DAMON's names; defaults of the original DAMON),
    and damonx's own rules beyond the kernel's (docs/kernel-differences.md):

    hit_guided_regions
        a sampled page found accessed in a sparse region gets a region of its
        own, which grows to the edges of what is accessed around it; regions
        with accesses are not merged into regions without.  Finds small hot
        sets in large memory that the kernel's rules merge away.
    adaptive_checks
        a region whose access count has stayed the same for a while is
        checked in fewer samples, its ``nr_accesses`` scaled to all of them
        (an unbiased estimate of the kernel's count).

    ``Attrs.kernel()`` turns both off: the kernel's rules, for comparisons.
    """

    sample_us: int = 5000
    aggr_us: int = 100_000
    ops_update_us: int = 1_000_000
    min_nr_regions: int = 10
    max_nr_regions: int = 1000
    min_region_sz: int = mmap.PAGESIZE
    hit_guided_regions: bool = True
    adaptive_checks: bool = True

    @classmethod
    def kernel(cls, **kwargs):
        """Attributes with the kernel's rules only (damonx's own rules off)."""
        return cls(**{**dict.fromkeys(_RULES, False), **kwargs})

    def __post_init__(self):
        for name, value in asdict(self).items():
            if name in _RULES:
                if not isinstance(value, bool):
                    raise errors.InvalidAttrs(f"{name} must be True or False, not {value!r}")
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                raise errors.InvalidAttrs(f"{name} must be an integer, not {value!r}")
            if value <= 0:
                raise errors.InvalidAttrs(f"{name} must be positive, not {value}")
            if value > _LIMITS[name]:
                raise errors.InvalidAttrs(f"{name} {value} is too large: at most {_LIMITS[name]}")
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

    @property
    def intervals(self):
        return Intervals(self.sample_us, self.aggr_us, self.ops_update_us)

    @property
    def max_nr_accesses(self):
        """The largest nr_accesses a region can reach in one aggregation."""
        return self.aggr_us // self.sample_us
