"""Writing records: a streaming writer, ``dumps`` and ``save``.

Each format is a sink (a :class:`_Sink` subclass in ``_SINKS``) that encodes
snapshots onto a file object, or, for parquet, into a directory of part
files; the sink says how its output is staged.  The writer, ``dumps`` and
``save`` never branch on the format, so a new format is a new sink.
"""

import io
import json
import os
import time
import zlib

from damonx import _fileio, errors
from damonx.attrs import Intervals
from damonx.errors import DamonxError, InvalidAttrs

from . import binary, parquet
from .detect import load
from .model import DIRECTORY_FORMATS, FORMATS, TargetSnapshot, as_regions


class _Sink:
    """Encodes snapshots of one record format onto a binary file object.

    ``add`` may buffer; ``flush`` hands what it holds to the file object
    (which the caller then flushes to the OS) so that a reader sees a
    readable prefix; ``finish`` writes the end of the format.
    """

    #: set when the streamed file is not laid out as the format wants it (e.g.
    #: targets interleaved in JSON): the writer then rewrites it on close
    needs_rewrite = False
    #: the format is a stream of bytes (``dumps`` can give it)
    is_bytes = True
    #: how often a streaming writer flushes by default (seconds)
    flush_interval_s = 1.0

    @staticmethod
    def stage(path, overwrite, exists_hint):
        """The staged output at ``path`` the sink writes to (its ``f`` is
        what the sink gets)."""
        return _fileio.StagedFile(path, overwrite, exists_hint)

    def __init__(self, f, intervals, meta, binary_version):
        self.f = f

    def begin_target(self, tid):
        """Make ``tid`` part of the record even if it gets no snapshot."""

    def add(self, tid, snap):
        """Encode ``snap``, a :class:`TargetSnapshot` of target ``tid``."""
        raise NotImplementedError

    def flush(self):
        pass

    def finish(self):
        self.flush()

    def add_record(self, record):
        """Add every snapshot of ``record``, target after target."""
        for t in record.targets:
            self.begin_target(t.target_id)
            for s in t.iter_snapshots():
                self.add(t.target_id, s)


class _BinarySink(_Sink):
    """The binary format: snapshots of consecutive ``add`` calls that end at
    the same time form one aggregation."""

    def __init__(self, f, intervals, meta, binary_version):
        super().__init__(f, intervals, meta, binary_version)
        self.version = binary_version
        self.pending_end = None
        self.pending = []
        f.write(binary.header(binary_version))

    def add(self, tid, snap):
        # the seed's format has no place for intervals or scheme statistics
        if self.version == 1 and not -(2**31) <= tid < 2**31:
            raise InvalidAttrs(f"target id {tid} does not fit binary version 1 (int32 pid)")
        if self.pending_end is not None and snap.end_ns != self.pending_end:
            self.flush()
        self.pending_end = snap.end_ns
        self.pending.append((tid, snap.regions))

    def flush(self):
        if self.pending:
            self.f.write(binary.encode_aggregation(self.pending_end, self.pending, self.version))
        self.pending = []
        self.pending_end = None

    def add_record(self, record):
        """Add every snapshot of ``record`` in the order of their end times."""
        events = sorted(
            (end_ns, ti, si)
            for ti, t in enumerate(record.targets)
            for si, end_ns in enumerate(t.columns().end_ns.tolist())
        )
        for _, ti, si in events:
            t = record.targets[ti]
            self.add(t.target_id, t.snapshot(si))


class _JsonSink(_Sink):
    """damo's JSON: one target object per run of snapshots of the same target."""

    compressed = False

    def __init__(self, f, intervals, meta, binary_version):
        super().__init__(f, intervals, meta, binary_version)
        self.z = zlib.compressobj(6) if self.compressed else None
        self.intervals = intervals
        self.meta = meta
        self.cur_tid = None
        self.nr_in_object = 0
        self.seen = set()
        self._write("[")

    def _write(self, text):
        data = text.encode()
        if self.z is not None:
            data = self.z.compress(data)
        if data:
            self.f.write(data)

    def begin_target(self, tid):
        if tid == self.cur_tid:
            return
        if tid in self.seen:
            self.needs_rewrite = True
        # damonx's meta rides in the first object, under a key damo ignores
        head = _object_head(tid, self.intervals, None if self.seen else self.meta)
        self._write(("]},\n" if self.cur_tid is not None else "") + head)
        self.seen.add(tid)
        self.cur_tid = tid
        self.nr_in_object = 0

    def add(self, tid, snap):
        self.begin_target(tid)
        sep = ",\n" if self.nr_in_object else ""
        self._write(sep + _snapshot_json(snap))
        self.nr_in_object += 1

    def flush(self):
        if self.z is not None:
            self.f.write(self.z.flush(zlib.Z_SYNC_FLUSH))

    def finish(self):
        self._write(("]}" if self.cur_tid is not None else "") + "]\n")
        if self.z is not None:
            self.f.write(self.z.flush(zlib.Z_FINISH))


class _JsonCompressedSink(_JsonSink):
    """damo's JSON in a zlib stream.  ``flush`` ends the deflate block on a
    byte boundary (Z_SYNC_FLUSH), so that the file so far decompresses."""

    compressed = True


class _ParquetSink(_Sink):
    """A directory of Parquet part files (see :mod:`damonx.records.parquet`):
    ``flush`` writes the snapshots that wait as a part, so it is called
    seldom; the parts writer also writes one when many snapshots wait."""

    is_bytes = False
    flush_interval_s = parquet.PART_INTERVAL_S

    @staticmethod
    def stage(path, overwrite, exists_hint):
        parquet.arrow.require_pyarrow()
        return _fileio.StagedDir(path, overwrite, exists_hint, parquet.SUFFIX)

    def __init__(self, out, intervals, meta, binary_version):
        super().__init__(None, intervals, meta, binary_version)
        self.parts = parquet.PartWriter(out, intervals, meta)

    def begin_target(self, tid):
        self.parts.begin_target(tid)

    def add(self, tid, snap):
        self.parts.add(tid, snap)

    def flush(self):
        self.parts.write()

    def finish(self):
        self.parts.finish()


_SINKS: "dict[str, type[_Sink]]" = {
    "json_compressed": _JsonCompressedSink,
    "json": _JsonSink,
    "binary": _BinarySink,
    "parquet": _ParquetSink,
}
assert tuple(_SINKS) == FORMATS + DIRECTORY_FORMATS


def _check_format(format, binary_version):
    if format not in _SINKS:
        raise InvalidAttrs(f"unknown record format {format!r}; choose one of {', '.join(_SINKS)}")
    if binary_version not in binary.VERSIONS:
        raise InvalidAttrs(f"binary_version must be 1 or 2, not {binary_version}")


def _intervals_kv(iv):
    if iv is None:
        return None
    return {
        "sample_us": int(iv.sample_us),
        "aggr_us": int(iv.aggr_us),
        "ops_update_us": int(iv.ops_update_us),
    }


def _check_meta(meta):
    try:
        json.dumps(meta)
    except (TypeError, ValueError) as err:
        raise InvalidAttrs(f"meta must be JSON-serialisable: {err}") from None


def _object_head(tid, intervals, meta=None):
    """The opening of one target's object, up to its snapshot list."""
    head = {"target_id": tid, "intervals": _intervals_kv(intervals)}
    if meta is not None:
        _check_meta(meta)
        head["damonx"] = {"version": 1, "meta": meta}
    return json.dumps(head)[:-1] + ', "snapshots": [\n'


#: the scheme statistics damo reads from a snapshot's ``damos_stats``
DAMO_STATS_KEYS = (
    "nr_tried",
    "sz_tried",
    "nr_applied",
    "sz_applied",
    "sz_ops_filter_passed",
    "qt_exceeds",
)


def _snapshot_json(snap):
    # damo's layout, written by hand: json.dumps per region is several times slower
    regions = snap.regions
    parts = [
        f'{{"start":{s},"end":{e},"nr_accesses":{{"samples":{n},"percent":null}},'
        f'"age":{{"usec":null,"aggr_intervals":{a}}}}}'
        for s, e, n, a in zip(
            regions["start"].tolist(),
            regions["end"].tolist(),
            regions["nr_accesses"].tolist(),
            regions["age"].tolist(),
        )
    ]
    regions_text = ",\n".join(parts)
    extra = ""
    if snap.sample_us is not None:
        extra += f',"sample_interval_us":{int(snap.sample_us)}'
    if snap.nr_checks is not None:
        # damo ignores keys it does not know
        extra += f',"damonx_nr_checks":{int(snap.nr_checks)}'
    if snap.damos_stats:
        # damo's snapshot holds the statistics of one scheme; all of them
        # ride under a key of damonx's
        first = {k: int(snap.damos_stats[0].get(k, 0)) for k in DAMO_STATS_KEYS}
        extra += f',"damos_stats":{json.dumps(first)}'
        extra += f',"damonx_damos_stats":{json.dumps(snap.damos_stats)}'
    return (
        f'{{"start_time":{int(snap.start_ns)},"end_time":{int(snap.end_ns)},'
        f'"regions":[{regions_text}]{extra}}}'
    )


def dumps(record, format="json_compressed", binary_version=2):
    """The bytes of ``record`` in ``format`` (a file format: parquet is a
    directory, written by :func:`save`)."""
    _check_format(format, binary_version)
    if not _SINKS[format].is_bytes:
        raise InvalidAttrs(f"{format} is written as a directory, not bytes: use save()")
    buf = io.BytesIO()
    sink = _SINKS[format](buf, record.intervals, record.meta, binary_version)
    sink.add_record(record)
    sink.finish()
    return buf.getvalue()


def save(record, path, format="json_compressed", overwrite=False, binary_version=2):
    """Write ``record`` to ``path`` atomically: streamed into a temporary
    file (or directory, for parquet), fsynced and renamed; FileExists if
    ``path`` exists and not ``overwrite``."""
    _check_format(format, binary_version)
    sink_type = _SINKS[format]
    staged = sink_type.stage(path, overwrite, _fileio.EXISTS_HINT)
    try:
        with errors.translated(
            f"cannot write {os.fspath(path)}", missing=errors.FileNotFound, privilege_hint=None
        ):
            sink = sink_type(staged.f, record.intervals, record.meta, binary_version)
            sink.add_record(record)
            sink.finish()
            staged.sync()
        staged.commit()
    finally:
        staged.discard()


class RecordWriter:
    """Writes a record snapshot by snapshot, so long recordings need no memory.

    ``format`` is ``"json_compressed"`` (damo's default), ``"json"``,
    ``"binary"`` (seed format; ``binary_version`` 2 stores 64-bit target ids,
    1 stores int32 pids; ages, intervals and ``meta`` are not stored) or
    ``"parquet"`` (a directory of part files, see
    :mod:`damonx.records.parquet`: there ``path`` is that directory, staged
    and put in place as a file is, and a flush writes a part).
    ``meta`` (a JSON-serialisable dict) is written with the first snapshot:
    update ``writer.meta`` until then to add to it.

    The file is written under a hidden temporary name in the directory of
    ``path`` (``.damonx-XXXXXXXXXXXX.tmp``) and renamed to ``path`` with the
    first snapshot; writing then goes on in place.  Until then an existing
    ``path`` is untouched, and :meth:`abort` (or leaving a ``with`` block by
    an exception) removes the temporary file.  An existing ``path`` is
    refused (FileExists) unless ``overwrite=True``; a symbolic link or
    anything but a regular file always is: nothing is written through a link.

    Crash behaviour: data reaches the file (the OS page cache) with the first
    snapshot, at every ``flush()`` and, at the latest, in the first
    ``add_snapshot()`` more than ``flush_interval_s`` after the previous
    flush (default: 1 s; for parquet 10 s, or 1000 snapshots), so a killed
    recorder loses at most that much.  The file it leaves
    at ``path`` is a valid prefix that ``load(path, partial_ok=True)`` reads;
    one killed before the first snapshot leaves ``path`` as it was, and the
    temporary file.  The JSON formats write snapshots in the order they
    arrive, one target object per run of snapshots of the same target; if
    targets were interleaved, ``close()`` regroups them into one object per
    target (what damo needs) in a temporary file that is renamed over
    ``path``, so a reader sees either the streamed or the regrouped file,
    both complete.  ``close()`` fsyncs, and puts even a record without
    snapshots in place.
    """

    def __init__(
        self,
        path,
        format="json_compressed",
        intervals=None,
        meta=None,
        overwrite=False,
        flush_interval_s=None,
        binary_version=2,
    ):
        _check_format(format, binary_version)
        sink_type = _SINKS[format]
        if intervals is not None and not isinstance(intervals, Intervals):
            intervals = Intervals(*intervals)
        self.path = os.fspath(path)
        self.format = format
        self.intervals = intervals
        self._meta = dict(meta or {})
        _check_meta(self._meta)
        if flush_interval_s is None:
            flush_interval_s = sink_type.flush_interval_s
        self.flush_interval_s = flush_interval_s
        self.binary_version = binary_version
        self.nr_snapshots = 0
        self._file = sink_type.stage(
            self.path, overwrite, "remove it or pass overwrite=True (damonx record --overwrite)"
        )
        self._closed = False
        try:
            with self._writing():
                self._sink = sink_type(self._file.f, intervals, self._meta, binary_version)
            self._last_flush = time.monotonic()
            self.flush()
        except BaseException:
            self._closed = True
            self._file.discard()
            raise

    @property
    def meta(self):
        """damonx's metadata (a dict), stored with the first snapshot."""
        return self._meta

    @meta.setter
    def meta(self, value):
        self._meta.clear()
        self._meta.update(value)

    @property
    def size(self):
        """The bytes written so far (0 once a file is closed)."""
        return self._file.size

    def _writing(self):
        return errors.translated(
            f"cannot write {self.path}", missing=errors.FileNotFound, privilege_hint=None
        )

    def add_snapshot(
        self,
        target_id,
        start_ns,
        end_ns,
        regions,
        *,
        sample_us=None,
        nr_checks=None,
        damos_stats=None,
    ):
        """Append one snapshot of ``target_id`` (regions: REGION_DTYPE array).

        sample_us: the sampling interval in effect (us); nr_checks: the access
        checks of its aggregation; damos_stats: one dict of statistics per
        scheme.  The JSON formats keep them, the binary format cannot.
        """
        if self._closed:
            raise DamonxError("the record writer is closed")
        regions = as_regions(regions)
        start_ns, end_ns, target_id = int(start_ns), int(end_ns), int(target_id)
        if end_ns < start_ns or start_ns < 0:
            raise InvalidAttrs(f"bad snapshot times [{start_ns}, {end_ns}]")
        snap = TargetSnapshot(
            start_ns,
            end_ns,
            regions,
            _opt_count(sample_us, "sample_us"),
            _opt_count(nr_checks, "nr_checks"),
            _check_damos_stats(damos_stats),
        )
        with self._writing():
            self._sink.add(target_id, snap)
        self.nr_snapshots += 1
        if not self._file.committed:
            self.flush()
            self._file.commit()
        elif time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def flush(self):
        """Hand everything added so far to the OS (survives SIGKILL)."""
        if self._closed:
            return
        with self._writing():
            self._sink.flush()
            self._file.flush()
        self._last_flush = time.monotonic()

    def close(self):
        """Finish the file, fsync it, put it in place if no snapshot did,
        and regroup targets if needed."""
        if self._closed:
            return
        try:
            with self._writing():
                self._sink.finish()
                self._file.sync()
            self._file.commit()
        finally:
            self._closed = True
            self._file.discard()
        if self._sink.needs_rewrite:
            # one object per target, atomically
            _fileio.atomic_write(self.path, dumps(load(self.path), self.format))

    def abort(self):
        """Give up after a failure: before the first snapshot, remove the
        temporary file and leave ``path`` as it was; after it, finish the
        file as :meth:`close` does, so that what was recorded stays."""
        if self._closed:
            return
        if self._file.committed:
            self.close()
            return
        self._closed = True
        self._file.discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def _opt_count(value, what):
    if value is None:
        return None
    if isinstance(value, bool) or not 0 <= int(value) < 2**64:
        raise InvalidAttrs(f"{what} must be an integer from 0 to 2^64-1, not {value!r}")
    return int(value)


def _check_damos_stats(stats):
    if stats is None:
        return None
    try:
        out = [{str(k): int(v) for k, v in s.items()} for s in stats]
    except (AttributeError, TypeError, ValueError):
        raise InvalidAttrs("damos_stats must be a list of {name: integer} dicts") from None
    return out or None
