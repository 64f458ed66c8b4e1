"""Recordings as Parquet datasets: a directory of part files, written while
recording and read back as a record (needs pyarrow: ``pip install
'damonx[arrow]'``).

Layout: ``OUT/part-00000.parquet``, ``OUT/part-00001.parquet``, ... each a
complete Parquet file in the schema of :mod:`damonx.records.arrow` (one row
per region per snapshot, the same key-value metadata), holding the snapshots
that arrived since the previous part.  ``snapshot`` counts a target's
snapshots across the parts, so the directory reads as one table:
``read_parquet('OUT/*.parquet')`` in DuckDB (``union_by_name = true`` if
some parts have scheme statistics and others none; in Spark, the
``mergeSchema`` option), ``spark.read.parquet``,
``pyarrow.dataset.dataset(OUT)``.

Why a directory and not one file: a Parquet file is read through its footer,
written last; a recorder killed before its end leaves a file that no reader
opens, whatever row groups it holds.  Each part here is a whole file with its
own footer, written under a hidden name (``.part-NNNNN.parquet.tmp``; the
engines skip names starting with ``.`` or ``_``), fsynced, and then renamed:
a part is in the directory complete or not at all, and a killed recorder loses
only the snapshots it had not written yet.

When a part is written: with the first snapshot (the output appears at
once, as with the other formats), then every :data:`PART_INTERVAL_S` seconds
or :data:`PART_SNAPSHOTS` snapshots, whichever comes first, and at the end
(Ctrl-C, SIGTERM, the timeout).  Each part is one row group.

Reading: the part files are the directory's entries whose names do not
start with ``.`` or ``_`` (the engines' rule), in name order.  A part that is
not a damonx Parquet file (another file, a truncated or corrupted one, a
subdirectory) makes :func:`damonx.records.load` raise InvalidRecord naming
it, with the record of the other parts in ``partial``; ``partial_ok=True``
(``--allow_partial``) skips it with a warning.  An empty directory is not a
record.  A single Parquet file (``damonx export -o``) reads the same way.

What the schema cannot say: a snapshot without regions has no row (it is
not read back), and a snapshot that did not record its sampling interval
reads back with the record's.
"""

import json
import os

import numpy as np

from damonx import errors
from damonx.attrs import Intervals
from damonx.dtypes import REGION_DTYPE
from damonx.errors import InvalidRecord

from . import arrow
from .build import select
from .model import Broken, Corrupted, Record, TargetRecord, Truncated, _none_if_empty
from .model import Columns as _Columns

#: a part is written at least this often while recording (seconds)
PART_INTERVAL_S = 10.0
#: ... and once this many snapshots wait to be written
PART_SNAPSHOTS = 1000
#: the end of a part file's name
SUFFIX = ".parquet"
_MAGIC = b"PAR1"


class PartWriter:
    """Writes snapshots to part files in ``out`` (a ``_fileio.StagedDir``).

    ``add`` keeps a snapshot and writes a part once :data:`PART_SNAPSHOTS`
    wait; ``write`` writes a part of what waits; ``finish`` writes the last
    one (an empty part if no part was written, so that the record's
    metadata and targets are there).  ``meta`` is read at each part.
    """

    def __init__(self, out, intervals, meta):
        arrow.require_pyarrow()
        self.out = out
        self.intervals = intervals
        self.meta = meta
        self.waiting: dict = {}  # target id -> its TargetSnapshots not written
        self.nr_waiting = 0
        self.nr_written: dict = {}  # target id -> its snapshots written
        self.nr_parts = 0

    def begin_target(self, tid):
        self.waiting.setdefault(tid, [])

    def add(self, tid, snap):
        self.waiting.setdefault(tid, []).append(snap)
        self.nr_waiting += 1
        if self.nr_waiting >= PART_SNAPSHOTS:
            self.write()

    def write(self, final=False):
        """Write what waits as the next part: nothing if nothing waits (no
        snapshot, no new target), unless ``final`` and no part was written."""
        new = self.nr_waiting or any(t not in self.nr_written for t in self.waiting)
        if not new and not (final and not self.nr_parts):
            return
        targets = [TargetRecord(tid, snaps) for tid, snaps in self.waiting.items()]
        table = arrow.to_arrow(Record(self.intervals, targets, self.meta), None, self.nr_written)
        name = f"part-{self.nr_parts:05d}{SUFFIX}"
        path = os.path.join(self.out.dir, name)
        tmp = os.path.join(self.out.dir, f".{name}.tmp")
        with open(tmp, "wb") as f:
            arrow.write_table(table, path, f)
            f.flush()
            os.fsync(f.fileno())
        os.rename(tmp, path)
        for t in targets:
            self.nr_written[t.target_id] = self.nr_written.get(t.target_id, 0) + t.nr_snapshots
        self.waiting, self.nr_waiting = {}, 0
        self.nr_parts += 1

    def finish(self):
        self.write(final=True)


# ---------------------------------------------------------------------------
# reading

#: the columns a part must have, and their numpy types here
_ROW_COLUMNS = {
    "target_id": np.uint64,
    "snapshot": np.int64,
    "snapshot_start_ns": np.uint64,
    "snapshot_end_ns": np.uint64,
    "start": np.uint64,
    "end": np.uint64,
    "nr_accesses": np.uint32,
    "age": np.uint32,
}


class _Part:
    """One part file's table, its rows as numpy columns and its metadata."""

    def __init__(self, pa, name, source):
        self.name = name
        self.table = _read_table(pa, source)
        self.rows = {}
        for column, dtype in _ROW_COLUMNS.items():
            if column not in self.table.column_names:
                raise Corrupted(f"no column {column!r}: not a damonx record's Parquet")
            values = self.table.column(column)
            if values.null_count:
                raise Corrupted(f"null values in column {column!r}")
            values = values.to_numpy()
            if values.dtype.kind not in "iu" or (
                values.dtype.kind == "i" and len(values) and values.min() < 0
            ):
                raise Corrupted(f"column {column!r} does not hold non-negative integers")
            self.rows[column] = values.astype(dtype)
        meta = {k.decode(): v.decode() for k, v in (self.table.schema.metadata or {}).items()}
        try:
            self.meta = json.loads(meta["damonx.meta"]) if "damonx.meta" in meta else None
            iv = json.loads(meta["damonx.intervals"]) if "damonx.intervals" in meta else None
            self.intervals = (
                Intervals(int(iv["sample_us"]), int(iv["aggr_us"]), int(iv["ops_update_us"]))
                if iv is not None
                else None
            )
            targets = json.loads(meta.get("damonx.targets", "[]"))
            self.target_ids = [int(t["target_id"]) for t in targets]
        except (ValueError, TypeError, KeyError) as err:
            raise Corrupted(f"bad damonx metadata ({err!r})") from None

    def column(self, name, rows):
        """Values of an optional column at ``rows`` (None where it is absent)."""
        if name not in self.table.column_names:
            return [None] * len(rows)
        return self.table.column(name).take(rows).to_pylist()


def _read_table(pa, source):
    """The table of a Parquet file (a path or a buffer); Broken if it is not one."""
    if isinstance(source, str):
        if os.path.isdir(source):
            raise Corrupted("a directory, not a part file")
        with open(source, "rb") as f:
            head = f.read(4)
            f.seek(max(0, os.fstat(f.fileno()).st_size - 4))
            tail = f.read(4)
    else:
        head, tail = bytes(source[:4]), bytes(source[-4:])
    if head != _MAGIC:
        raise Corrupted(f"not a Parquet file (first bytes {head!r})", 0)
    if tail != _MAGIC:
        raise Truncated("no Parquet footer at the end")
    if not isinstance(source, str):
        source = pa.BufferReader(source)
    try:
        return pa.parquet.read_table(source)
    except (pa.ArrowException, OSError) as err:
        raise Corrupted(f"unreadable Parquet ({str(err).splitlines()[0]})") from None


def _part_names(path):
    """The names of the part files of the directory ``path``."""
    try:
        names = sorted(os.listdir(path))
    except OSError as err:
        raise errors.from_oserror(
            err, "cannot read the record", missing=errors.FileNotFound, privilege_hint=None
        ) from err
    return [n for n in names if not n.startswith((".", "_"))]


def read_dir(path, selection):
    """The record in the directory ``path`` (see the module's docstring)."""
    path = os.fspath(path)
    names = _part_names(path)
    if not names:
        raise InvalidRecord(
            "an empty directory, not a record (a Parquet recording holds part files)",
            offset=0,
            partial=Record(),
        )
    return _read_parts([(n, os.path.join(path, n)) for n in names], selection)


def read_file(data, selection):
    """The record in the bytes of one Parquet file."""
    return _read_parts([("", memoryview(data))], selection)


def _read_parts(sources, selection):
    pa = arrow.require_pyarrow()
    parts, broken = [], []
    for name, source in sources:
        try:
            parts.append(_Part(pa, name, source))
        except Broken as err:
            broken.append(f"{name + ': ' if name else ''}{err.what}: {err}")
        except OSError as err:
            broken.append(f"{name}: cannot read it ({err.strerror or err})")
    rec = _record(parts)
    if selection != (None, None, None):
        rec = select(rec, *selection)
    if broken:
        what = "; ".join(broken[:3]) + (f"; and {len(broken) - 3} more" if len(broken) > 3 else "")
        skip = f" ({len(parts)} readable part(s) kept)" if parts else ""
        raise InvalidRecord(what + skip, offset=None if parts else 0, partial=rec)
    return rec


def _record(parts):
    """One Record of the rows of all ``parts``, snapshot by snapshot."""
    intervals = next((p.intervals for p in parts if p.intervals is not None), None)
    meta: dict = next((p.meta for p in parts if p.meta is not None), {})
    order_ids: list = []
    for p in parts:
        order_ids += [t for t in p.target_ids if t not in order_ids]
    if not any(len(p.rows["start"]) for p in parts):
        return Record(intervals, [TargetRecord(t) for t in order_ids], meta)
    cols = {c: np.concatenate([p.rows[c] for p in parts]) for c in _ROW_COLUMNS}
    part = np.concatenate([np.full(len(p.rows["start"]), i, np.int64) for i, p in enumerate(parts)])
    row = np.concatenate([np.arange(len(p.rows["start"]), dtype=np.int64) for p in parts])
    order = np.lexsort((row, part, cols["snapshot"], cols["target_id"]))
    cols = {c: v[order] for c, v in cols.items()}
    part, row = part[order], row[order]
    tid, snap = cols["target_id"], cols["snapshot"]
    # a snapshot is a run of rows of one target, snapshot index and part
    new = np.ones(len(tid), dtype=bool)
    new[1:] = (tid[1:] != tid[:-1]) | (snap[1:] != snap[:-1]) | (part[1:] != part[:-1])
    first = np.flatnonzero(new)
    again = (tid[first][1:] == tid[first][:-1]) & (snap[first][1:] == snap[first][:-1])
    if again.any():
        i = first[1:][again][0]
        raise InvalidRecord(
            f"snapshot {snap[i]} of target {tid[i]} is in two parts "
            f"({parts[part[i - 1]].name} and {parts[part[i]].name})",
            partial=Record(intervals, [], meta),
        )
    extras: dict[str, list] = {
        name: [None] * len(first) for name in ("sample_us", "nr_checks", "damos_stats")
    }
    for i, p in enumerate(parts):
        at = np.flatnonzero(part[first] == i)
        for name, values in extras.items():
            for k, v in zip(at.tolist(), p.column(name, row[first][at])):
                values[k] = v
    bounds = np.append(first, len(tid))
    regions = np.zeros(len(tid), dtype=REGION_DTYPE)
    for name in ("start", "end", "nr_accesses", "age"):
        regions[name] = cols[name]
    targets = {}
    starts = np.flatnonzero(np.append(True, tid[first][1:] != tid[first][:-1]))
    for lo, hi in zip(starts.tolist(), np.append(starts[1:], len(first)).tolist()):
        offsets = (bounds[lo : hi + 1] - bounds[lo]).astype(np.int64)
        stats = {
            k - lo: [
                {n: v for n, v in s.items() if v is not None} for s in extras["damos_stats"][k]
            ]
            for k in range(lo, hi)
            if extras["damos_stats"][k]
        }
        columns = _Columns(
            cols["snapshot_start_ns"][first[lo:hi]],
            cols["snapshot_end_ns"][first[lo:hi]],
            offsets,
            regions[bounds[lo] : bounds[hi]],
            _none_if_empty(extras["sample_us"][lo:hi]),
            _none_if_empty(extras["nr_checks"][lo:hi]),
            stats,
        )
        targets[int(tid[first[lo]])] = TargetRecord.from_columns(int(tid[first[lo]]), columns)
    order_ids += [t for t in targets if t not in order_ids]
    return Record(
        intervals,
        [targets[t] if t in targets else TargetRecord(t) for t in order_ids],
        meta,
    )
