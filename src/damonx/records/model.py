"""The in-memory model of a record, and what the readers share to build it."""

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from damonx.attrs import Intervals
from damonx.dtypes import REGION_DTYPE
from damonx.errors import DamonxError, InvalidAttrs

#: the file formats, damo's default first
FORMATS = ("json_compressed", "json", "binary")
#: the formats written as a directory of files (see damonx.records.parquet)
DIRECTORY_FORMATS = ("parquet",)

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


@dataclass(frozen=True)
class Columns:
    """The snapshots of a target as columns: ``start_ns``, ``end_ns``
    (uint64, one row per snapshot), ``offsets`` (int64, one more: snapshot
    ``i`` holds ``regions[offsets[i]:offsets[i + 1]]``) and ``regions`` (one
    REGION_DTYPE array for all).  The optional per-snapshot values are lists
    (None where a snapshot has none; the list is None when none has), and
    ``damos_stats`` maps a snapshot index to its statistics."""

    start_ns: np.ndarray
    end_ns: np.ndarray
    offsets: np.ndarray
    regions: np.ndarray
    sample_us: Optional[list] = None
    nr_checks: Optional[list] = None
    damos_stats: dict = field(default_factory=dict)

    @property
    def nr_snapshots(self):
        return len(self.start_ns)

    def nr_regions(self):
        """Number of regions of each snapshot (int64 array)."""
        return np.diff(self.offsets)

    def snapshot_index(self):
        """Index of the snapshot of each region (int64 array)."""
        return np.repeat(np.arange(self.nr_snapshots, dtype=np.int64), self.nr_regions())

    def rows(self):
        """One row per region of every snapshot, as a dict of arrays:
        ``snapshot`` (its index), ``start_ns``, ``end_ns`` (of the snapshot),
        ``start``, ``end``, ``size``, ``nr_accesses`` and ``age``."""
        regions, idx = self.regions, self.snapshot_index()
        return {
            "snapshot": idx,
            "start_ns": self.start_ns[idx],
            "end_ns": self.end_ns[idx],
            "start": regions["start"],
            "end": regions["end"],
            "size": regions["end"] - regions["start"],
            "nr_accesses": regions["nr_accesses"],
            "age": regions["age"],
        }

    def snapshot(self, i):
        """Snapshot ``i`` (from 0) as a TargetSnapshot whose regions are a view."""
        lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
        return TargetSnapshot(
            int(self.start_ns[i]),
            int(self.end_ns[i]),
            self.regions[lo:hi],
            self.sample_us[i] if self.sample_us is not None else None,
            self.nr_checks[i] if self.nr_checks is not None else None,
            self.damos_stats.get(i),
        )

    def take(self, index):
        """The columns of some snapshots: ``index`` is a slice (views) or an
        array of snapshot indices."""
        if isinstance(index, slice):
            lo, hi, step = index.indices(self.nr_snapshots)
            if step == 1:
                hi = max(lo, hi)
                off = self.offsets[lo : hi + 1]
                return Columns(
                    self.start_ns[lo:hi],
                    self.end_ns[lo:hi],
                    off - off[0],
                    self.regions[off[0] : off[-1]],
                    *self._extras(range(lo, hi)),
                )
            index = np.arange(lo, hi, step)
        index = np.asarray(index, dtype=np.int64)
        lens = self.nr_regions()[index]
        offsets = np.zeros(len(index) + 1, dtype=np.int64)
        np.cumsum(lens, out=offsets[1:])
        # region i of the result is region offsets[snapshot] + its rank there
        rows = np.repeat(self.offsets[index] - offsets[:-1], lens) + np.arange(offsets[-1])
        return Columns(
            self.start_ns[index],
            self.end_ns[index],
            offsets,
            self.regions[rows],
            *self._extras(index.tolist()),
        )

    def _extras(self, indices):
        sample = [self.sample_us[i] for i in indices] if self.sample_us is not None else None
        checks = [self.nr_checks[i] for i in indices] if self.nr_checks is not None else None
        stats = {}
        if self.damos_stats:
            stats = {n: self.damos_stats[i] for n, i in enumerate(indices) if i in self.damos_stats}
        return _none_if_empty(sample), _none_if_empty(checks), stats

    @classmethod
    def from_snapshots(cls, snapshots):
        """The columns of a list of TargetSnapshot."""
        n = len(snapshots)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum([len(s.regions) for s in snapshots], out=offsets[1:])
        regions = np.zeros(int(offsets[-1]), dtype=REGION_DTYPE)
        if n:
            for name in REGION_FIELDS:
                regions[name] = np.concatenate([s.regions[name] for s in snapshots])
        return cls(
            np.array([s.start_ns for s in snapshots], dtype=np.uint64),
            np.array([s.end_ns for s in snapshots], dtype=np.uint64),
            offsets,
            regions,
            _none_if_empty([s.sample_us for s in snapshots]),
            _none_if_empty([s.nr_checks for s in snapshots]),
            {i: s.damos_stats for i, s in enumerate(snapshots) if s.damos_stats},
        )


def _none_if_empty(values):
    return values if values is not None and any(v is not None for v in values) else None


class TargetRecord:
    """All snapshots of one monitoring target, in recording order.

    A target read from a file holds its snapshots as :class:`Columns`; one
    made from a list of :class:`TargetSnapshot` holds that list.  The
    reports work on :meth:`columns`; ``snapshots`` gives the list, made on
    first use from the columns (its regions are views of them) and held from
    then on, so that it can be changed like any list.
    """

    def __init__(self, target_id, snapshots=None):
        self.target_id = target_id
        self._data: list | Columns = list(snapshots) if snapshots is not None else []
        self._unions: Optional[list] = None

    @classmethod
    def from_columns(cls, target_id, columns, address_unions=None):
        """A target holding ``columns``; ``address_unions``, if given, are
        those of its regions (see :meth:`address_unions`)."""
        t = cls(target_id)
        t._data, t._unions = columns, address_unions
        return t

    @property
    def snapshots(self):
        """The snapshots, a list of TargetSnapshot."""
        if isinstance(self._data, Columns):
            self._data, self._unions = list(self.iter_snapshots()), None
        return self._data

    @snapshots.setter
    def snapshots(self, value):
        self._data, self._unions = list(value), None

    @property
    def nr_snapshots(self):
        return self._data.nr_snapshots if isinstance(self._data, Columns) else len(self._data)

    def snapshot(self, index):
        """One snapshot (negative indices count from the end)."""
        cols = self._data
        if not isinstance(cols, Columns):
            return cols[index]
        if not -cols.nr_snapshots <= index < cols.nr_snapshots:
            raise IndexError(f"snapshot index {index} out of range ({cols.nr_snapshots} snapshots)")
        return cols.snapshot(index % cols.nr_snapshots)

    def iter_snapshots(self):
        """The snapshots one by one, leaving columns as they are."""
        cols = self._data
        if not isinstance(cols, Columns):
            return iter(cols)
        return (cols.snapshot(i) for i in range(cols.nr_snapshots))

    def columns(self):
        """The snapshots as :class:`Columns` (made from the list, if the
        target holds one)."""
        if isinstance(self._data, Columns):
            return self._data
        return Columns.from_snapshots(self._data)

    def times(self):
        """Array of SNAPSHOT_TIME_DTYPE (start_ns, end_ns), one row per snapshot."""
        cols = self.columns()
        out = np.zeros(cols.nr_snapshots, dtype=SNAPSHOT_TIME_DTYPE)
        out["start_ns"] = cols.start_ns
        out["end_ns"] = cols.end_ns
        return out

    def regions(self):
        """Every region of every snapshot as one FLAT_REGION_DTYPE array."""
        cols = self.columns()
        out = np.zeros(len(cols.regions), dtype=FLAT_REGION_DTYPE)
        out["snapshot"] = cols.snapshot_index()
        for name in REGION_FIELDS:
            out[name] = cols.regions[name]
        return out

    def address_unions(self):
        """Address ranges covered by the regions of all snapshots, as a
        sorted list of [start, end) without overlaps or adjacency (empty
        regions left out)."""
        if isinstance(self._data, Columns) and self._unions is not None:
            return [list(u) for u in self._unions]
        return _unions_of(self.columns())

    def take(self, index):
        """A TargetRecord of some snapshots (see :meth:`Columns.take`)."""
        return TargetRecord.from_columns(self.target_id, self.columns().take(index))

    def __repr__(self):
        return f"TargetRecord(target_id={self.target_id!r}, {self.nr_snapshots} snapshots)"


def _unions_of(cols):
    regions = cols.regions
    keep = regions["end"] > regions["start"]
    starts, ends = regions["start"][keep], regions["end"][keep]
    if not len(starts):
        return []
    # a snapshot's regions usually come sorted and disjoint: then each run of
    # touching regions of a snapshot counts as one range before sorting
    same = cols.snapshot_index()[keep]
    same = same[1:] == same[:-1]
    if (starts[1:][same] >= ends[:-1][same]).all():
        first = np.flatnonzero(np.concatenate(([True], ~same | (starts[1:] > ends[:-1]))))
        starts, ends = starts[first], ends[np.concatenate((first[1:], [len(ends)])) - 1]
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    # a union starts where a range begins after everything before it ended
    reach = np.maximum.accumulate(ends)
    first = np.flatnonzero(np.concatenate(([True], starts[1:] > reach[:-1])))
    last = np.concatenate((first[1:], [len(starts)])) - 1
    return [[s, e] for s, e in zip(starts[first].tolist(), reach[last].tolist())]


@dataclass(frozen=True)
class Selection:
    """What a selective read kept of a record (see :func:`damonx.records.select`)
    and what it chose from: the reports keep the times relative to the start
    of the whole record and show where the kept part lies.

    ``target_ids`` (None: all), ``time_range`` ((start, end) in ns since the
    record start) and ``address_range`` ((start, end) in bytes) are the
    filter; ``start_ns`` is the start of the whole record (None: it had no
    snapshot), ``target_ids_read`` every target of the record, and, per kept
    target, ``nr_snapshots`` and ``address_unions`` (see
    :meth:`TargetRecord.address_unions`) before the time and address
    filters, and ``snapshot_index``: the index of each kept snapshot among
    them (an int64 array).
    """

    target_ids: Optional[tuple] = None
    time_range: Optional[tuple] = None
    address_range: Optional[tuple] = None
    start_ns: Optional[int] = None
    target_ids_read: tuple = ()
    nr_snapshots: dict = field(default_factory=dict)
    address_unions: dict = field(default_factory=dict)
    snapshot_index: dict = field(default_factory=dict)


@dataclass
class Record:
    """A whole recording.

    ``intervals`` is ``None`` when the file does not say (binary format);
    access rates cannot be computed then.  ``meta`` holds damonx's extra
    information, e.g. ``{"ops": "sim", "workload": {...}}``.  ``warning`` is
    set when the record is only the readable prefix of a damaged file.
    ``selection`` says what a selective read kept (see
    :func:`damonx.records.load`).
    """

    intervals: Optional[Intervals] = None
    targets: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    warning: Optional[str] = None
    #: set when the record was read selectively (a :class:`Selection`)
    selection: Optional[Selection] = None

    @property
    def complete(self):
        return self.warning is None

    @property
    def nr_snapshots(self):
        return sum(t.nr_snapshots for t in self.targets)

    @property
    def start_ns(self):
        """The start of the recording: the earliest start of a target's first
        snapshot (of the whole record, for a selective read); None if there
        is no snapshot."""
        if self.selection is not None:
            return self.selection.start_ns
        starts = [int(t.columns().start_ns[0]) for t in self.targets if t.nr_snapshots]
        return min(starts) if starts else None

    @property
    def target_ids(self):
        return [t.target_id for t in self.targets]

    def target(self, target_id):
        """The TargetRecord with ``target_id``; DamonxError if there is none."""
        for t in self.targets:
            if t.target_id == target_id:
                return t
        ids = self.target_ids if self.selection is None else self.selection.target_ids_read
        raise DamonxError(
            f"no target {target_id} in the record (targets: "
            f"{', '.join(str(i) for i in ids) or 'none'})"
        )

    def max_nr_accesses(self):
        """nr_accesses of a region accessed at every sample, or None if unknown."""
        if self.intervals is None or self.intervals.sample_us <= 0:
            return None
        return self.intervals.aggr_us / self.intervals.sample_us

    def to_arrow(self, host=None):
        """One row per region of every snapshot as a ``pyarrow.Table``, with
        where it comes from in the schema's metadata (needs pyarrow: ``pip
        install 'damonx[arrow]'``; see :mod:`damonx.records.arrow`).  ``host``
        names the machine when the record does not."""
        from damonx.records.arrow import to_arrow

        return to_arrow(self, host)

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
            rows = t.columns().rows()
            ids = np.full(len(rows["start"]), t.target_id, dtype=np.uint64)
            frames.append(pd.DataFrame({"target_id": ids, **rows}))
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
