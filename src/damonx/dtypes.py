"""numpy dtypes shared by the monitor, the record files and the reports."""

import numpy as np

#: One monitoring region: [start, end) in bytes, nr_accesses in samples per
#: aggregation, age in aggregation intervals: the regions of records and
#: reports, as damo's record formats hold them.
REGION_DTYPE = np.dtype(
    [
        ("start", "<u8"),
        ("end", "<u8"),
        ("nr_accesses", "<u4"),
        ("age", "<u4"),
    ]
)

#: One region as a monitor reports it: the fields of ``REGION_DTYPE``, then
#: ``nr_accesses_bp``, the moving sum of the access checks in basis points
#: (10000 per sample found accessed; at the end of an aggregation it is
#: about ``nr_accesses * 10000``).  Aligned as ``struct dx_region_out`` in
#: csrc/damonx.h (32 bytes), so that C fills arrays of it in place.  Records
#: and reports keep ``REGION_DTYPE`` (damo's formats have no such field):
#: their writers take these arrays and keep the fields they know.
MONITOR_REGION_DTYPE = np.dtype(
    [
        ("start", "<u8"),
        ("end", "<u8"),
        ("nr_accesses", "<u4"),
        ("age", "<u4"),
        ("nr_accesses_bp", "<u4"),
    ],
    align=True,
)

#: A region a scheme was tried on in its last pass over the regions: the
#: fields of ``REGION_DTYPE`` (``nr_accesses`` the moving sum the scheme
#: matched, in samples), then ``sz_filter_passed``, the bytes that passed the
#: scheme's page filters (0 without any).  As ``struct dx_tried_region`` in
#: csrc/damonx.h (32 bytes).
TRIED_REGION_DTYPE = np.dtype(
    [
        ("start", "<u8"),
        ("end", "<u8"),
        ("nr_accesses", "<u4"),
        ("age", "<u4"),
        ("sz_filter_passed", "<u8"),
    ]
)
