"""Monitoring attributes: the sampling, aggregation and update intervals and
the bounds of the number of regions, with DAMON's names and defaults."""

import mmap
from dataclasses import asdict, dataclass

from damonx import errors


@dataclass(frozen=True)
class Intervals:
    """Monitoring intervals in microseconds."""

    sample_us: int
    aggr_us: int
    ops_update_us: int


@dataclass(frozen=True)
class Attrs:
    """Monitoring attributes (DAMON's names; defaults of the original DAMON)."""

    sample_us: int = 5000
    aggr_us: int = 100_000
    ops_update_us: int = 1_000_000
    min_nr_regions: int = 10
    max_nr_regions: int = 1000
    min_region_sz: int = mmap.PAGESIZE

    def __post_init__(self):
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise errors.InvalidAttrs(f"{name} must be an integer, not {value!r}")
            if value <= 0:
                raise errors.InvalidAttrs(f"{name} must be positive, not {value}")
        if self.sample_us > self.aggr_us:
            raise errors.InvalidAttrs(
                f"sample_us ({self.sample_us}) must not exceed aggr_us ({self.aggr_us})"
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

    @property
    def intervals(self):
        return Intervals(self.sample_us, self.aggr_us, self.ops_update_us)

    @property
    def max_nr_accesses(self):
        """The largest nr_accesses a region can reach in one aggregation."""
        return self.aggr_us // self.sample_us
