"""numpy dtypes shared by the monitor, the record files and the reports."""

import numpy as np

#: One monitoring region: [start, end) in bytes, nr_accesses in samples per
#: aggregation, age in aggregation intervals.  Mirrors ``struct
#: dx_region_out`` in csrc/damonx.h, so that C fills arrays of it in place.
REGION_DTYPE = np.dtype([
    ("start", "<u8"),
    ("end", "<u8"),
    ("nr_accesses", "<u4"),
    ("age", "<u4"),
])
