"""Plain data types shared by the monitor, the record files and the reports."""

from dataclasses import dataclass

import numpy as np

#: One monitoring region as the core reports it after an aggregation:
#: [start, end) in bytes, nr_accesses in samples per aggregation, age in
#: aggregation intervals.  Mirrors ``struct dx_region_out`` in csrc/damonx.h.
REGION_DTYPE = np.dtype([
    ("start", "<u8"),
    ("end", "<u8"),
    ("nr_accesses", "<u4"),
    ("age", "<u4"),
])


@dataclass(frozen=True)
class Intervals:
    """Monitoring intervals in microseconds."""

    sample_us: int
    aggr_us: int
    ops_update_us: int
