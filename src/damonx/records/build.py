"""Building a Record from snapshots as they are read, and selecting a part
of a record: which targets, which time range, which address range.

Both go through :class:`RecordBuilder`, whose per-target columns are the
compiled ``damonx._recread.TargetColumns``: the JSON reader fills them
directly, the other readers and :func:`select` one snapshot at a time, and
the selection is applied in one place, as the snapshots arrive.
"""

from damonx import _recread
from damonx.errors import InvalidAttrs

from .model import U64_MAX, Columns, Record, Selection, TargetRecord


def check_selection(target_ids=None, time_range=None, address_range=None):
    """The selection as (target ids, time range, address range) of ints,
    or None for each part not given; InvalidAttrs if a part is invalid."""

    def pair(value, what):
        if value is None:
            return None
        try:
            lo, hi = (int(v) for v in value)
        except (TypeError, ValueError):
            raise InvalidAttrs(f"{what} must be two integers (start, end)") from None
        if not 0 <= lo < hi <= U64_MAX + 1:
            raise InvalidAttrs(f"{what} [{lo}, {hi}) is empty or outside [0, 2^64)")
        return lo, min(hi, U64_MAX)

    if target_ids is not None:
        target_ids = tuple(int(t) for t in target_ids)
    return target_ids, pair(time_range, "time range"), pair(address_range, "address range")


class RecordBuilder:
    """Collects snapshots per target, keeping what the selection selects.

    ``target_ids`` (None: all), ``time_range`` ((start, end) ns since the
    start of the record: the snapshots meeting it) and ``address_range``
    ((start, end) bytes: the part of each region inside it) select;
    ``base_ns`` gives the start of the record if known beforehand (else it
    is the earliest first snapshot start read; see :attr:`redo`).
    Snapshots of one target read in several chunks are joined.
    """

    def __init__(self, target_ids=None, time_range=None, address_range=None, base_ns=None):
        self.target_ids, time_range, address_range = check_selection(
            target_ids, time_range, address_range
        )
        self.selecting = (target_ids, time_range, address_range) != (None, None, None)
        self.time_range, self.address_range = time_range, address_range
        self.filter = _recread.Filter(time_range, address_range, base_ns)
        self.targets = {}
        self.intervals = None
        self.meta = {}

    @property
    def redo(self):
        """True if the time range was applied from a start of the record
        that a later target moved earlier: read again with ``base_ns``."""
        return self.filter.base_moved

    def columns(self, tid):
        """The columns of target ``tid`` (a TargetColumns), made if new."""
        cols = self.targets.get(tid)
        if cols is None:
            keep = self.target_ids is None or tid in self.target_ids
            cols = self.targets[tid] = _recread.TargetColumns(self.filter, keep)
        return cols

    def ensure(self, tid):
        self.columns(tid)

    def add(self, tid, snap):
        """Add a TargetSnapshot of target ``tid``; True if kept."""
        s = snap
        return self.columns(tid).add(
            s.start_ns, s.end_ns, s.regions, s.sample_us, s.nr_checks, s.damos_stats
        )

    def record(self):
        """The Record of what was kept (this hands the columns over: once)."""
        targets, unions, counts, index = [], {}, {}, {}
        for tid, cols in self.targets.items():
            if not cols.keep:
                continue
            d = cols.finish()
            columns = Columns(
                d["start_ns"],
                d["end_ns"],
                d["offsets"],
                d["regions"],
                d["sample_us"],
                d["nr_checks"],
                d["damos_stats"],
            )
            unions[tid], counts[tid], index[tid] = d["unions"], d["nr_seen"], d["seen_index"]
            # without an address or time filter, the coverage is that of the columns
            own = None if self.selecting else d["unions"]
            targets.append(TargetRecord.from_columns(tid, columns, own))
        selection = None
        if self.selecting:
            selection = Selection(
                self.target_ids,
                self.time_range,
                self.address_range,
                self.filter.base_ns,
                tuple(self.targets),
                counts,
                unions,
                index,
            )
        return Record(self.intervals, targets, dict(self.meta), selection=selection)


def select(record, target_ids=None, time_range=None, address_range=None):
    """The part of ``record`` of some targets, time and addresses.

    ``target_ids``: the targets to keep (None: all).  ``time_range``:
    (start, end) in ns since the start of the record: the snapshots that
    overlap [start, end) are kept whole (a snapshot of zero length, if it
    lies in it).  ``address_range``: (start, end) in bytes: each region is
    cut to it, and dropped if it lies outside.  The Record returned says in
    ``selection`` what it was selected from (reports keep times relative to
    the start of the whole record).
    """
    builder = RecordBuilder(target_ids, time_range, address_range, base_ns=record.start_ns)
    builder.intervals, builder.meta = record.intervals, dict(record.meta)
    for t in record.targets:
        if builder.columns(t.target_id).keep:
            for s in t.iter_snapshots():
                builder.add(t.target_id, s)
    out = builder.record()
    out.warning = record.warning
    return out
