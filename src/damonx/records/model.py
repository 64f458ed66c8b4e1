"""The in-memory model of a record, and what the readers share to build it."""

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from damonx.attrs import Intervals
from damonx.dtypes import REGION_DTYPE
from damonx.errors import DamonxError, InvalidAttrs

#: the file formats, damo's default first
FORMATS = ("json_compressed", "json", "binary")

#: the fields of REGION_DTYPE, in order
REGION_FIELDS: "tuple[str, ...]" = tuple(REGION_DTYPE.names or ())

#: one row per region of every snapshot of a target, with the index of the
#: snapshot it belongs to
FLAT_REGION_DTYPE = np.dtype(
    [("snapshot", np.dtype("<u4"))] + [(name, REGION_DTYPE[name]) for name in REGION_FIELDS]
)

#: start and end time of each snapshot of a target, in ns
SNAPSHOT_TIME_DTYPE = np.dtype([("start_ns", "<u8"), ("end_ns", "<u8")])

U64_MAX = 2**64 - 1
U32_MAX = 2**32 - 1


@dataclass
class TargetSnapshot:
    """Regions of one target after one aggregation interval.

    ``regions`` is an array of :data:`damonx.dtypes.REGION_DTYPE`.  (A
    :class:`damonx.monitor.Snapshot` holds the regions of every target.)
    """

    start_ns: int
    end_ns: int
    regions: np.ndarray
    #: the sampling interval in effect for this snapshot (us), when recorded
    #: (intervals may change during a recording); damo's ``sample_interval_us``
    sample_us: Optional[int] = None
    #: access checks made in this snapshot's aggregation, when recorded
    nr_checks: Optional[int] = None
    #: statistics of each scheme at the end of this snapshot, when schemes
    #: ran: one dict per scheme (nr_tried, sz_tried, nr_applied, sz_applied,
    #: qt_exceeds, ...)
    damos_stats: Optional[list] = None

    @property
    def duration_ns(self):
        return self.end_ns - self.start_ns

    @property
    def total_bytes(self):
        """Sum of the sizes of the regions (the monitored footprint)."""
        r = self.regions
        return int((r["end"] - r["start"]).sum()) if len(r) else 0


@dataclass
class TargetRecord:
    """All snapshots of one monitoring target, in recording order."""

    target_id: int
    snapshots: list = field(default_factory=list)

    def times(self):
        """Array of SNAPSHOT_TIME_DTYPE (start_ns, end_ns), one row per snapshot."""
        out = np.zeros(len(self.snapshots), dtype=SNAPSHOT_TIME_DTYPE)
        if self.snapshots:
            out["start_ns"] = [s.start_ns for s in self.snapshots]
            out["end_ns"] = [s.end_ns for s in self.snapshots]
        return out

    def regions(self):
        """Every region of every snapshot as one FLAT_REGION_DTYPE array."""
        total = sum(len(s.regions) for s in self.snapshots)
        out = np.zeros(total, dtype=FLAT_REGION_DTYPE)
        pos = 0
        for idx, snap in enumerate(self.snapshots):
            n = len(snap.regions)
            dst = out[pos : pos + n]
            dst["snapshot"] = idx
            for name in REGION_FIELDS:
                dst[name] = snap.regions[name]
            pos += n
        return out


@dataclass
class Record:
    """A whole recording.

    ``intervals`` is ``None`` when the file does not say (binary format);
    access rates cannot be computed then.  ``meta`` holds damonx's extra
    information, e.g. ``{"ops": "sim", "workload": {...}}``.  ``warning`` is
    set when the record is only the readable prefix of a damaged file.
    """

    intervals: Optional[Intervals] = None
    targets: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    warning: Optional[str] = None

    @property
    def complete(self):
        return self.warning is None

    @property
    def nr_snapshots(self):
        return sum(len(t.snapshots) for t in self.targets)

    @property
    def target_ids(self):
        return [t.target_id for t in self.targets]

    def target(self, target_id):
        """The TargetRecord with ``target_id``; DamonxError if there is none."""
        for t in self.targets:
            if t.target_id == target_id:
                return t
        raise DamonxError(
            f"no target {target_id} in the record (targets: "
            f"{', '.join(str(i) for i in self.target_ids) or 'none'})"
        )

    def max_nr_accesses(self):
        """nr_accesses of a region accessed at every sample, or None if unknown."""
        if self.intervals is None or self.intervals.sample_us <= 0:
            return None
        return self.intervals.aggr_us / self.intervals.sample_us

    def to_dataframe(self):
        """One row per region of every snapshot (needs pandas)."""
        try:
            import pandas as pd
        except ImportError as err:
            raise DamonxError("Record.to_dataframe() needs pandas: pip install pandas") from err
        columns = ["target_id", "snapshot", "start_ns", "end_ns", "start", "end", "size"]
        columns += ["nr_accesses", "age"]
        frames = []
        for t in self.targets:
            flat = t.regions()
            times = t.times()
            idx = flat["snapshot"].astype(np.int64)
            frames.append(
                pd.DataFrame(
                    {
                        "target_id": np.full(len(flat), t.target_id, dtype=np.uint64),
                        "snapshot": idx,
                        "start_ns": times["start_ns"][idx],
                        "end_ns": times["end_ns"][idx],
                        "start": flat["start"],
                        "end": flat["end"],
                        "size": flat["end"] - flat["start"],
                        "nr_accesses": flat["nr_accesses"],
                        "age": flat["age"],
                    }
                )
            )
        if not frames:
            return pd.DataFrame(columns=columns)
        return pd.concat(frames, ignore_index=True)


def make_regions(rows):
    """REGION_DTYPE array from (start, end, nr_accesses[, age]) tuples."""
    out = np.zeros(len(rows), dtype=REGION_DTYPE)
    for i, row in enumerate(rows):
        out[i]["start"], out[i]["end"], out[i]["nr_accesses"] = row[0], row[1], row[2]
        out[i]["age"] = row[3] if len(row) > 3 else 0
    return out


def as_regions(regions):
    """A REGION_DTYPE array from a structured array with (at least) start,
    end and nr_accesses fields, or from (start, end, nr_accesses[, age]) tuples."""
    if isinstance(regions, np.ndarray) and regions.dtype.names:
        missing = [n for n in ("start", "end", "nr_accesses") if n not in regions.dtype.names]
        if missing:
            raise InvalidAttrs(f"regions array lacks field(s) {', '.join(missing)}")
        out = np.zeros(len(regions), dtype=REGION_DTYPE)
        for name in REGION_FIELDS:
            if name in regions.dtype.names:
                out[name] = regions[name]
        return out
    return make_regions(list(regions))


# ---------------------------------------------------------------------------
# what the readers share


class Broken(Exception):
    """The input stops being a readable record here; the subclass says how.
    Readers raise it internally and turn it into InvalidRecord.  ``offset``:
    where in the input, if the raiser knows."""

    what = "broken"

    def __init__(self, msg, offset=None):
        super().__init__(msg)
        self.offset = offset


class Truncated(Broken):
    """The input ends before the record does."""

    what = "truncated"


class Corrupted(Broken):
    """The input holds something a record cannot."""

    what = "corrupted"


class RecordBuilder:
    """Collects snapshots per target; chunks of the same target are joined."""

    def __init__(self):
        self.targets = {}
        self.intervals = None
        self.meta = {}

    def add(self, tid, snap):
        t = self.targets.get(tid)
        if t is None:
            t = self.targets[tid] = TargetRecord(tid)
        t.snapshots.append(snap)

    def ensure(self, tid):
        if tid not in self.targets:
            self.targets[tid] = TargetRecord(tid)

    def record(self):
        return Record(self.intervals, list(self.targets.values()), dict(self.meta))
