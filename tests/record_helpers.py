"""Records the record tests share: a multi-target record, and a summary of
a Record to compare two by."""

import numpy as np

from damonx.attrs import Intervals
from damonx.records import Record, TargetRecord, TargetSnapshot, make_regions

IV = Intervals(5000, 100000, 1000000)
MS = 1_000_000


def three_targets(seed=4, nr=40):
    """Three targets; the second starts 30 ms before the first, so that a
    reader of the first sees a later start of the record than the true one;
    regions in two ranges, the snapshots not always sorted."""
    rng = np.random.default_rng(seed)
    targets = []
    for tid, offset in ((5, 30 * MS), (6, 0), (7, 55 * MS)):
        snaps = []
        for i in range(nr):
            rows = []
            for base in (0x10000, 0x7F0000000000):
                bounds = np.sort(rng.choice(np.arange(1, 200), 5, replace=False)) * 4096 + base
                rows += [
                    (int(a), int(b), int(rng.integers(0, 21)), int(rng.integers(0, 9)))
                    for a, b in zip(bounds[:-1], bounds[1:])
                ]
            if i % 5 == 0:
                rows.reverse()
            start = 10**9 + offset + i * 100 * MS
            end = start if i % 13 == 7 else start + 100 * MS  # a few instants
            extras = {"sample_us": 5000, "nr_checks": i} if i % 3 == 0 else {}
            if i % 4 == 0:
                extras["damos_stats"] = [{"nr_tried": i, "sz_tried": 4096 * i}]
            snaps.append(TargetSnapshot(start, end, make_regions(rows), **extras))
        targets.append(TargetRecord(tid, snaps))
    return Record(IV, targets, {"ops": "sim"})


def summary(rec):
    """The intervals, meta and every column of each target of ``rec``."""
    out = []
    for t in rec.targets:
        c = t.columns()
        out.append(
            (
                t.target_id,
                c.start_ns.tolist(),
                c.end_ns.tolist(),
                c.offsets.tolist(),
                c.regions.tolist(),
                c.sample_us,
                c.nr_checks,
                c.damos_stats,
            )
        )
    return repr(rec.intervals), rec.meta, out
