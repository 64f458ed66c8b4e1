"""Record files: the in-memory model, readers and a streaming writer.

Three formats are read and written; ``load`` tells them apart by their first
bytes, never by the file name:

``json_compressed``
    damo's default: a zlib stream of a JSON list with one object per target
    (``target_id``, ``intervals``, ``snapshots``; each snapshot has
    ``start_time``/``end_time`` in ns and ``regions`` with ``start``, ``end``,
    ``nr_accesses.samples`` and ``age.aggr_intervals``).  damonx keeps its own
    metadata under the key ``"damonx"`` of the first target object; damo
    ignores keys it does not know.
``json``
    the same document, uncompressed.
``binary``
    the original DAMON patchset's format: the magic ``damon_recfmt_ver``, an
    int32 version (1: int32 pid per target, 2: uint64 target id), then per
    aggregation the end time, the number of targets and their regions.  It has
    no field for ages, intervals or metadata: those are lost when writing it
    and read back as zero / ``None``.

All sizes are bytes, times nanoseconds unless a name says otherwise.
"""

import codecs
import json
import os
import re
import struct
import tempfile
import time
import zlib
from dataclasses import dataclass, field

import numpy as np

from damonx.errors import DamonxError, InvalidRecord
from damonx.attrs import Intervals
from damonx.dtypes import REGION_DTYPE

FORMATS = ("json_compressed", "json", "binary")

BINARY_MAGIC = b"damon_recfmt_ver"

#: one row per region of every snapshot of a target, with the index of the
#: snapshot it belongs to
FLAT_REGION_DTYPE = np.dtype([("snapshot", "<u4")] + [
    (name, REGION_DTYPE.fields[name][0]) for name in REGION_DTYPE.names])

#: start and end time of each snapshot of a target, in ns
SNAPSHOT_TIME_DTYPE = np.dtype([("start_ns", "<u8"), ("end_ns", "<u8")])

# packed region of the binary format: u64 start, u64 end, u32 nr_accesses
_BIN_REGION_DTYPE = np.dtype([("start", "<u8"), ("end", "<u8"), ("nr_accesses", "<u4")])

_U64_MAX = 2**64 - 1
_U32_MAX = 2**32 - 1


# ---------------------------------------------------------------------------
# model


@dataclass
class Snapshot:
    """Regions of one target after one aggregation interval.

    ``regions`` is an array of :data:`damonx.dtypes.REGION_DTYPE`.
    """

    start_ns: int
    end_ns: int
    regions: np.ndarray

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
            dst = out[pos:pos + n]
            dst["snapshot"] = idx
            for name in REGION_DTYPE.names:
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

    intervals: Intervals = None
    targets: list = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    warning: str = None

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
            f"{', '.join(str(i) for i in self.target_ids) or 'none'})")

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
            raise DamonxError(
                "Record.to_dataframe() needs pandas: pip install pandas") from err
        frames = []
        for t in self.targets:
            flat = t.regions()
            times = t.times()
            idx = flat["snapshot"].astype(np.int64)
            frames.append(pd.DataFrame({
                "target_id": np.full(len(flat), t.target_id, dtype=np.uint64),
                "snapshot": idx,
                "start_ns": times["start_ns"][idx],
                "end_ns": times["end_ns"][idx],
                "start": flat["start"],
                "end": flat["end"],
                "size": flat["end"] - flat["start"],
                "nr_accesses": flat["nr_accesses"],
                "age": flat["age"],
            }))
        if not frames:
            return pd.DataFrame(columns=["target_id", "snapshot", "start_ns", "end_ns",
                                         "start", "end", "size", "nr_accesses", "age"])
        return pd.concat(frames, ignore_index=True)


def make_regions(rows):
    """REGION_DTYPE array from (start, end, nr_accesses[, age]) tuples."""
    out = np.zeros(len(rows), dtype=REGION_DTYPE)
    for i, row in enumerate(rows):
        out[i]["start"], out[i]["end"], out[i]["nr_accesses"] = row[0], row[1], row[2]
        out[i]["age"] = row[3] if len(row) > 3 else 0
    return out


# ---------------------------------------------------------------------------
# format detection


def detect_format(head):
    """Name of the format whose magic ``head`` (the first bytes) carries, or None."""
    head = bytes(head[:64])
    if head.startswith(BINARY_MAGIC):
        return "binary"
    if len(head) >= 2 and (head[0] & 0x0F) == 8 and (head[0] >> 4) <= 7 \
            and ((head[0] << 8) | head[1]) % 31 == 0:
        return "json_compressed"
    stripped = head.lstrip(b" \t\r\n")
    if stripped.startswith(codecs.BOM_UTF8):
        stripped = stripped[len(codecs.BOM_UTF8):].lstrip(b" \t\r\n")
    if stripped[:1] in (b"[", b"{"):
        return "json"
    return None


def _read_source(source):
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    path = os.fspath(source)
    try:
        with open(path, "rb") as f:
            return f.read(), path
    except FileNotFoundError as err:
        raise DamonxError(f"record file {path} does not exist") from err
    except IsADirectoryError as err:
        raise DamonxError(f"{path} is a directory, not a record file") from err
    except PermissionError as err:
        raise DamonxError(f"cannot read {path}: permission denied") from err


def load(source, partial_ok=False):
    """Read a record from a path or from bytes, whatever its format.

    A truncated or corrupted file raises InvalidRecord saying where it broke;
    its ``partial`` attribute holds what was readable before that point.  With
    ``partial_ok=True`` that prefix is returned instead, with the reason in
    ``Record.warning`` (e.g. for a file left by a killed recorder).
    """
    data, name = _read_source(source)
    if not data:
        raise InvalidRecord(f"{name}: empty file, not a record", offset=0,
                            partial=Record())
    fmt = detect_format(data)
    if fmt is None:
        raise InvalidRecord(
            f"{name}: unknown record format (first bytes {data[:16]!r}); expected "
            "damo json_compressed, json, or the damon_recfmt_ver binary format",
            offset=0, partial=Record())
    try:
        if fmt == "binary":
            return _parse_binary(data)
        return _parse_json_stream(data, compressed=(fmt == "json_compressed"))
    except InvalidRecord as err:
        msg = f"{name}: {err}"
        if partial_ok:
            rec = err.partial if err.partial is not None else Record()
            rec.warning = msg
            return rec
        raise InvalidRecord(msg, offset=err.offset, partial=err.partial) from None


# ---------------------------------------------------------------------------
# binary format


def _parse_binary(data):
    n = len(data)
    if n < 20:
        raise InvalidRecord(f"binary record truncated in its header ({n} of 20 bytes)",
                            offset=n, partial=Record())
    version = struct.unpack_from("<i", data, 16)[0]
    if version not in (1, 2):
        raise InvalidRecord(f"binary record version {version} is not supported "
                            "(known: 1, 2)", offset=16, partial=Record())
    id_fmt, id_size = ("<i", 4) if version == 1 else ("<Q", 8)
    builder = _Builder()
    last_end = {}
    pos = 20
    agg_idx = 0
    while pos < n:
        agg_start = pos
        pending = []
        try:
            if n - pos < 20:
                raise _Broken("in an aggregation header")
            sec, nsec, nr_tasks = struct.unpack_from("<qqI", data, pos)
            pos += 20
            end_ns = sec * 1_000_000_000 + nsec
            if sec < 0 or not 0 <= nsec < 1_000_000_000 or end_ns > _U64_MAX:
                raise _Broken(f"invalid time {sec}.{nsec:09d}", bad=True)
            for _ in range(nr_tasks):
                if n - pos < id_size + 4:
                    raise _Broken("in a target header")
                tid = struct.unpack_from(id_fmt, data, pos)[0]
                nr_regions = struct.unpack_from("<I", data, pos + id_size)[0]
                pos += id_size + 4
                if nr_regions * _BIN_REGION_DTYPE.itemsize > n - pos:
                    raise _Broken(f"in the regions of target {tid} "
                                  f"({nr_regions} regions announced)")
                raw = np.frombuffer(data, dtype=_BIN_REGION_DTYPE, count=nr_regions,
                                    offset=pos)
                pos += nr_regions * _BIN_REGION_DTYPE.itemsize
                regions = np.zeros(nr_regions, dtype=REGION_DTYPE)
                for name in _BIN_REGION_DTYPE.names:
                    regions[name] = raw[name]
                pending.append((tid, regions))
        except _Broken as b:
            what = "corrupted" if b.bad else "truncated"
            raise InvalidRecord(
                f"binary record {what} at byte {pos}, aggregation {agg_idx} "
                f"(starting at byte {agg_start}) {b.args[0]}",
                offset=pos, partial=_finish_binary(builder, last_end)) from None
        for tid, regions in pending:
            start = last_end.get(tid)
            builder.add(tid, Snapshot(start if start is not None else -1, end_ns, regions))
            last_end[tid] = end_ns
        agg_idx += 1
    return _finish_binary(builder, last_end)


def _finish_binary(builder, last_end):
    """Fill in the start time of first snapshots, which the format lacks.

    A target's first snapshot is given the mean length of its other
    snapshots, or zero length when it has only one.
    """
    rec = builder.record()
    for t in rec.targets:
        snaps = t.snapshots
        if not snaps or snaps[0].start_ns != -1:
            continue
        if len(snaps) > 1:
            mean = (snaps[-1].end_ns - snaps[0].end_ns) // (len(snaps) - 1)
            snaps[0].start_ns = max(0, snaps[0].end_ns - mean)
        else:
            snaps[0].start_ns = snaps[0].end_ns
    return rec


# ---------------------------------------------------------------------------
# JSON (plain or zlib-compressed) reading


class _Broken(Exception):
    def __init__(self, msg, bad=False):
        super().__init__(msg)
        self.bad = bad


class _Builder:
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


class _TextSource:
    """Text decoded incrementally from (maybe compressed) bytes.

    ``buf[pos:]`` is the not yet consumed text; ``base`` is the decoded offset
    of ``buf[0]``.  ``more()`` appends the next chunk (dropping the consumed
    prefix) and returns False at the end of the input.
    """

    CHUNK = 1 << 18

    def __init__(self, data, compressed):
        self.data = data
        self.in_pos = 0
        self.zobj = zlib.decompressobj() if compressed else None
        self.udec = codecs.getincrementaldecoder("utf-8")("strict")
        self.buf = ""
        self.pos = 0
        self.base = 0
        self.done = False
        self.stream_complete = not compressed

    @property
    def offset(self):
        """Decoded offset of the next unconsumed character."""
        return self.base + self.pos

    def more(self):
        while not self.done:
            chunk = self.data[self.in_pos:self.in_pos + self.CHUNK]
            start = self.in_pos
            self.in_pos += len(chunk)
            final = self.in_pos >= len(self.data)
            try:
                if self.zobj is not None:
                    raw = self.zobj.decompress(chunk)
                    if self.zobj.eof:
                        self.stream_complete = True
                        if self.zobj.unused_data.strip(b"\0"):
                            self.done = True
                            raise _Broken(f"unexpected data after the zlib stream "
                                          f"(compressed byte {len(self.data) - len(self.zobj.unused_data)})",
                                          bad=True)
                        final = True
                else:
                    raw = chunk
                text = self.udec.decode(raw, final=final)
            except zlib.error as err:
                self.done = True
                raise _Broken(f"zlib stream corrupted near compressed byte {start} ({err})",
                              bad=True) from None
            except UnicodeDecodeError as err:
                self.done = True
                raise _Broken(f"invalid UTF-8 ({err.reason})", bad=True) from None
            if final:
                self.done = True
            if text:
                self.buf = self.buf[self.pos:] + text
                self.base += self.pos
                self.pos = 0
                return True
        return False


_WS_RE = re.compile(r"[ \t\r\n]*")

_decoder = json.JSONDecoder()


class _JsonWalker:
    """Walks the top-level list of per-target objects one snapshot at a time,
    so that only one snapshot is ever held as Python objects."""

    def __init__(self, src, builder):
        self.src = src
        self.b = builder
        self.where = "at the start of the document"

    def _peek(self):
        src = self.src
        while True:
            src.pos = _WS_RE.match(src.buf, src.pos).end()
            if src.pos < len(src.buf):
                return src.buf[src.pos]
            if not src.more():
                raise _Broken(f"ends early {self.where}")

    def _expect(self, chars):
        c = self._peek()
        if c not in chars:
            raise _Broken(f"expected {' or '.join(repr(x) for x in chars)} but found "
                          f"{c!r} {self.where}", bad=True)
        self.src.pos += 1
        return c

    def _value(self):
        src = self.src
        self._peek()
        while True:
            try:
                val, end = _decoder.raw_decode(src.buf, src.pos)
            except json.JSONDecodeError as err:
                # a value cut by the end of the buffer: read more and retry
                if src.more():
                    continue
                if err.pos >= len(src.buf) - 1 or err.msg.startswith("Unterminated"):
                    raise _Broken(f"ends early {self.where}") from None
                raise _Broken(f"invalid JSON ({err.msg}) {self.where}", bad=True) from None
            except RecursionError:
                raise _Broken(f"JSON nested too deeply {self.where}", bad=True) from None
            # a number at the end of the buffer may continue in the next chunk
            if end == len(src.buf) and not isinstance(val, (dict, list, str)) \
                    and src.more():
                continue
            src.pos = end
            return val

    def walk(self):
        top = self._expect("[{")
        if top == "{":
            raise _Broken("the document is a JSON object; a record is a list of "
                          "per-target objects", bad=True)
        if self._peek() == "]":
            self.src.pos += 1
            return
        ridx = 0
        while True:
            self._walk_target(ridx)
            ridx += 1
            self.where = f"after target object {ridx - 1}"
            if self._expect(",]") == "]":
                return

    def _walk_target(self, ridx):
        self.where = f"in target object {ridx}"
        self._expect("{")
        tid = None
        if self._peek() == "}":
            raise _Broken(f"target object {ridx} has no target_id", bad=True)
        while True:
            key = self._value()
            if not isinstance(key, str):
                raise _Broken(f"object key expected {self.where}", bad=True)
            self._expect(":")
            if key == "snapshots":
                if tid is None:
                    # damo writes target_id first; without it the id is unknown
                    raise _Broken(f"snapshots before target_id {self.where}", bad=True)
                self._walk_snapshots(tid)
            else:
                val = self._value()
                if key == "target_id":
                    tid = _as_target_id(val, self.where)
                    self.b.ensure(tid)
                elif key == "intervals" and val is not None and self.b.intervals is None:
                    self.b.intervals = _as_intervals(val, self.where)
                elif key == "damonx" and isinstance(val, dict):
                    meta = val.get("meta")
                    if isinstance(meta, dict):
                        self.b.meta.update(meta)
            if self._expect(",}") == "}":
                break
        if tid is None:
            raise _Broken(f"target object {ridx} has no target_id", bad=True)

    def _walk_snapshots(self, tid):
        self._expect("[")
        if self._peek() == "]":
            self.src.pos += 1
            return
        nprev = len(self.b.targets[tid].snapshots)
        idx = 0
        while True:
            self.where = (f"in snapshot {nprev + idx} of target {tid} "
                          f"(decoded byte {self.src.offset})")
            kv = self._value()
            self.b.add(tid, _as_snapshot(kv, self.where, self.b.intervals))
            idx += 1
            self.where = (f"after snapshot {nprev + idx - 1} of target {tid} "
                          f"(decoded byte {self.src.offset})")
            if self._expect(",]") == "]":
                return


def _parse_json_stream(data, compressed):
    builder = _Builder()
    src = _TextSource(data, compressed)
    walker = _JsonWalker(src, builder)
    try:
        walker.walk()
        # anything but whitespace after the list is damage
        while True:
            src.pos = _WS_RE.match(src.buf, src.pos).end()
            if src.pos < len(src.buf):
                raise _Broken(f"unexpected data after the end of the record "
                              f"(decoded byte {src.offset})", bad=True)
            if not src.more():
                break
        if not src.stream_complete:
            raise _Broken("the zlib stream ends early (the JSON is complete)")
    except _Broken as b:
        what = "corrupted" if b.bad else "truncated"
        kind = "json_compressed" if compressed else "json"
        raise InvalidRecord(f"{kind} record {what}: {b.args[0]}",
                            offset=(src.in_pos if compressed else src.offset),
                            partial=builder.record()) from None
    return builder.record()


def _num(val, where, what, lo=0, hi=_U64_MAX):
    if isinstance(val, bool):
        raise _Broken(f"{what} is a boolean {where}", bad=True)
    if isinstance(val, str):
        val = _text_to_number(val, where, what)
    if isinstance(val, float):
        if val != val or val in (float("inf"), float("-inf")):
            raise _Broken(f"{what} is not a finite number {where}", bad=True)
        val = int(val)
    if not isinstance(val, int):
        raise _Broken(f"{what} is not a number ({type(val).__name__}) {where}", bad=True)
    if not lo <= val <= hi:
        raise _Broken(f"{what} {val} out of range [{lo}, {hi}] {where}", bad=True)
    return val


_TIME_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
               "m": 60_000_000_000, "h": 3_600_000_000_000, "d": 86_400_000_000_000}
_SIZE_UNITS = {"B": 1}
for _i, _p in enumerate("KMGTPE", 1):
    for _s in (_p, _p + "B", _p + "iB"):
        _SIZE_UNITS[_s] = 1 << (10 * _i)


def _text_to_number(txt, where, what):
    """Numbers as damo writes them: '4,096', '4.000 KiB', '1 m 3.500 s', '100 ms'.

    Times come out in the unit of the bare number (ns for ns fields).
    """
    t = txt.replace(",", "").strip()
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        pass
    fields = t.split()
    try:
        if len(fields) >= 2 and len(fields) % 2 == 0 and fields[1] in _TIME_UNITS:
            return int(sum(float(fields[i]) * _TIME_UNITS[fields[i + 1]]
                           for i in range(0, len(fields), 2)))
        if len(fields) == 2 and fields[1] in _SIZE_UNITS:
            return int(float(fields[0]) * _SIZE_UNITS[fields[1]])
    except (KeyError, ValueError, OverflowError):
        pass
    raise _Broken(f"{what} {txt!r} is not a number {where}", bad=True)


def _as_target_id(val, where):
    if val is None:
        return 0
    return _num(val, where, "target_id", lo=-(2**63))


def _as_intervals(val, where):
    if not isinstance(val, dict):
        raise _Broken(f"intervals is not an object {where}", bad=True)
    try:
        keys = ("sample_us", "aggr_us", "ops_update_us")
        vals = []
        for k in keys:
            v = val.get(k)
            if isinstance(v, str) and not v.replace(",", "").strip().isdigit():
                # damo writes e.g. '5 ms' when not asked for raw numbers
                v = _text_to_number(v, where, k)
                v = v // 1000 if isinstance(v, int) and any(
                    u in val[k] for u in _TIME_UNITS) else v
            vals.append(_num(v, where, f"intervals.{k}") if v is not None else 0)
    except AttributeError:
        raise _Broken(f"bad intervals {where}", bad=True) from None
    return Intervals(*vals)


def _as_snapshot(kv, where, intervals):
    if not isinstance(kv, dict):
        raise _Broken(f"snapshot is not an object {where}", bad=True)
    for k in ("start_time", "end_time", "regions"):
        if k not in kv:
            raise _Broken(f"snapshot lacks {k!r} {where}", bad=True)
    start = _num(kv["start_time"], where, "start_time")
    end = _num(kv["end_time"], where, "end_time")
    regs = kv["regions"]
    if not isinstance(regs, list):
        raise _Broken(f"regions is not a list {where}", bad=True)
    out = np.zeros(len(regs), dtype=REGION_DTYPE)
    max_acc = None
    if intervals is not None and intervals.sample_us > 0:
        max_acc = intervals.aggr_us / intervals.sample_us
    for i, r in enumerate(regs):
        rw = f"(region {i}) {where}"
        if not isinstance(r, dict) or "start" not in r or "end" not in r:
            raise _Broken(f"region is not an object with start and end {rw}", bad=True)
        s = _num(r["start"], rw, "start")
        e = _num(r["end"], rw, "end")
        if e < s:
            raise _Broken(f"region end {e} is before its start {s} {rw}", bad=True)
        acc = 0
        na = r.get("nr_accesses")
        if isinstance(na, dict):
            if na.get("samples") is not None:
                acc = _num(na["samples"], rw, "nr_accesses.samples", hi=_U32_MAX)
            elif na.get("percent") is not None and max_acc is not None:
                pct = na["percent"]
                if isinstance(pct, str):
                    pct = _text_to_number(pct.rstrip("% "), rw, "nr_accesses.percent")
                pct = _num(float(pct) if not isinstance(pct, bool) else pct, rw,
                           "nr_accesses.percent", hi=_U32_MAX)
                acc = round(pct * max_acc / 100)
        elif na is not None:
            acc = _num(na, rw, "nr_accesses", hi=_U32_MAX)
        age = 0
        ag = r.get("age")
        if isinstance(ag, dict):
            if ag.get("aggr_intervals") is not None:
                age = _num(ag["aggr_intervals"], rw, "age.aggr_intervals", hi=_U32_MAX)
            elif ag.get("usec") is not None and intervals is not None and intervals.aggr_us:
                usec = ag["usec"]
                if isinstance(usec, str):
                    usec = _text_to_number(usec, rw, "age.usec")
                    usec = usec / 1000 if any(u in ag["usec"] for u in _TIME_UNITS) else usec
                age = _num(int(_num(usec, rw, "age.usec") // intervals.aggr_us), rw,
                           "age", hi=_U32_MAX)
        elif ag is not None:
            age = _num(ag, rw, "age", hi=_U32_MAX)
        out[i] = (s, e, acc, age)
    return Snapshot(start, end, out)


# ---------------------------------------------------------------------------
# writing


def _intervals_kv(iv):
    if iv is None:
        return None
    return {"sample_us": int(iv.sample_us), "aggr_us": int(iv.aggr_us),
            "ops_update_us": int(iv.ops_update_us)}


def _snapshot_json(start_ns, end_ns, regions):
    parts = [
        '{"start":%d,"end":%d,"nr_accesses":{"samples":%d,"percent":null},'
        '"age":{"usec":null,"aggr_intervals":%d}}' % row
        for row in zip(regions["start"].tolist(), regions["end"].tolist(),
                       regions["nr_accesses"].tolist(), regions["age"].tolist())]
    return '{"start_time":%d,"end_time":%d,"regions":[%s]}' % (
        start_ns, end_ns, ",\n".join(parts))


def _as_regions(regions):
    """Accept a REGION_DTYPE-compatible array or a list of tuples."""
    if isinstance(regions, np.ndarray) and regions.dtype.names:
        missing = [n for n in ("start", "end", "nr_accesses") if n not in regions.dtype.names]
        if missing:
            raise DamonxError(f"regions array lacks field(s) {', '.join(missing)}")
        out = np.zeros(len(regions), dtype=REGION_DTYPE)
        for name in REGION_DTYPE.names:
            if name in regions.dtype.names:
                out[name] = regions[name]
        return out
    return make_regions(list(regions))


class _JsonSink:
    """Writes text to a file, zlib-compressed or not; flush() makes it visible
    to a reader (Z_SYNC_FLUSH ends the deflate block on a byte boundary)."""

    def __init__(self, f, compressed):
        self.f = f
        self.z = zlib.compressobj(6) if compressed else None

    def write(self, text):
        data = text.encode()
        if self.z is not None:
            data = self.z.compress(data)
        if data:
            self.f.write(data)

    def flush(self):
        if self.z is not None:
            self.f.write(self.z.flush(zlib.Z_SYNC_FLUSH))
        self.f.flush()

    def finish(self):
        if self.z is not None:
            self.f.write(self.z.flush(zlib.Z_FINISH))
        self.f.flush()
        os.fsync(self.f.fileno())


class RecordWriter:
    """Writes a record snapshot by snapshot, so long recordings need no memory.

    ``format`` is ``"json_compressed"`` (damo's default), ``"json"`` or
    ``"binary"`` (seed format; ``binary_version`` 2 stores 64-bit target ids,
    1 stores int32 pids; ages, intervals and ``meta`` are not stored).

    Crash behaviour: data reaches the file (the OS page cache) at every
    ``flush()`` and, at the latest, in the first ``add_snapshot()`` more than
    ``flush_interval_s`` after the previous flush, so a killed recorder loses
    at most that much.  The file it leaves is a valid prefix that
    ``load(path, partial_ok=True)`` reads.  The JSON formats write snapshots
    in the order they arrive, one target object per run of snapshots of the
    same target; if targets were interleaved, ``close()`` regroups them into
    one object per target (what damo needs) in a temporary file that is
    renamed over ``path``, so a reader sees either the streamed or the
    regrouped file, both complete.  ``close()`` fsyncs.

    An existing ``path`` is refused unless ``overwrite=True``.
    """

    def __init__(self, path, format="json_compressed", intervals=None, meta=None,
                 overwrite=False, flush_interval_s=1.0, binary_version=2):
        if format not in FORMATS:
            raise DamonxError(f"unknown record format {format!r}; "
                              f"choose one of {', '.join(FORMATS)}")
        if binary_version not in (1, 2):
            raise DamonxError(f"binary_version must be 1 or 2, not {binary_version}")
        if intervals is not None and not isinstance(intervals, Intervals):
            intervals = Intervals(*intervals)
        self.path = os.fspath(path)
        self.format = format
        self.intervals = intervals
        self.meta = dict(meta or {})
        try:
            json.dumps(self.meta)
        except (TypeError, ValueError) as err:
            raise DamonxError(f"meta must be JSON-serialisable: {err}") from None
        self.flush_interval_s = flush_interval_s
        self.binary_version = binary_version
        self.nr_snapshots = 0
        mode = "wb" if overwrite else "xb"
        try:
            self._f = open(self.path, mode)
        except FileExistsError:
            raise DamonxError(f"{self.path} exists; remove it or pass overwrite=True "
                              "(damonx record --overwrite)") from None
        except OSError as err:
            raise DamonxError(f"cannot create {self.path}: {err.strerror}") from None
        self._closed = False
        self._last_flush = time.monotonic()
        if format == "binary":
            self._f.write(BINARY_MAGIC + struct.pack("<i", binary_version))
            self._pending_end = None
            self._pending = []
        else:
            self._sink = _JsonSink(self._f, format == "json_compressed")
            self._sink.write("[")
            self._cur_tid = None
            self._nr_objects = 0
            self._seen = set()
            self._interleaved = False
        self.flush()

    # -- public

    def add_snapshot(self, target_id, start_ns, end_ns, regions):
        """Append one snapshot of ``target_id`` (regions: REGION_DTYPE array)."""
        if self._closed:
            raise DamonxError("the record writer is closed")
        regions = _as_regions(regions)
        start_ns, end_ns, target_id = int(start_ns), int(end_ns), int(target_id)
        if end_ns < start_ns or start_ns < 0:
            raise DamonxError(f"bad snapshot times [{start_ns}, {end_ns}]")
        if self.format == "binary":
            self._add_binary(target_id, end_ns, regions)
        else:
            self._add_json(target_id, start_ns, end_ns, regions)
        self.nr_snapshots += 1
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def flush(self):
        """Hand everything added so far to the OS (survives SIGKILL)."""
        if self._closed:
            return
        if self.format == "binary":
            self._write_pending()
            self._f.flush()
        else:
            self._sink.flush()
        self._last_flush = time.monotonic()

    def close(self):
        """Finish the file, fsync it, and regroup targets if needed."""
        if self._closed:
            return
        try:
            if self.format == "binary":
                self._write_pending()
                self._f.flush()
                os.fsync(self._f.fileno())
            else:
                if self._cur_tid is not None:
                    self._sink.write("]}")
                self._sink.write("]\n")
                self._sink.finish()
        finally:
            self._closed = True
            self._f.close()
        if self.format != "binary" and self._interleaved:
            self._regroup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- binary

    def _add_binary(self, tid, end_ns, regions):
        if self.binary_version == 1 and not -(2**31) <= tid < 2**31:
            raise DamonxError(f"target id {tid} does not fit binary version 1 (int32 pid)")
        if self._pending_end is not None and end_ns != self._pending_end:
            self._write_pending()
        self._pending_end = end_ns
        self._pending.append((tid, regions))

    def _write_pending(self):
        if not self._pending:
            return
        self._f.write(_binary_aggregation(self._pending_end, self._pending,
                                          self.binary_version))
        self._pending = []
        self._pending_end = None

    # -- json

    def _object_head(self, tid):
        return _json_object_head(tid, self.intervals,
                                 self.meta if self._nr_objects == 0 else None)

    def _add_json(self, tid, start_ns, end_ns, regions):
        text = []
        if tid != self._cur_tid:
            if self._cur_tid is not None:
                text.append("]},\n")
            if tid in self._seen:
                self._interleaved = True
            self._seen.add(tid)
            text.append(self._object_head(tid))
            self._cur_tid = tid
            self._nr_objects += 1
        else:
            text.append(",\n")
        text.append(_snapshot_json(start_ns, end_ns, regions))
        self._sink.write("".join(text))

    def _regroup(self):
        """Rewrite the streamed file with one object per target, atomically."""
        rec = load(self.path)
        d = os.path.dirname(os.path.abspath(self.path))
        fd, tmp = tempfile.mkstemp(prefix=".damonx-", suffix=".tmp", dir=d)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(dumps(rec, self.format))
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise


def _binary_aggregation(end_ns, entries, binary_version):
    """One aggregation of the binary format: entries are (target id, regions)."""
    sec, nsec = divmod(end_ns, 1_000_000_000)
    out = [struct.pack("<qqI", sec, nsec, len(entries))]
    idf = "<i" if binary_version == 1 else "<Q"
    for tid, regions in entries:
        out.append(struct.pack(idf, tid if binary_version == 1 else tid % 2**64))
        out.append(struct.pack("<I", len(regions)))
        packed = np.zeros(len(regions), dtype=_BIN_REGION_DTYPE)
        for name in _BIN_REGION_DTYPE.names:
            packed[name] = regions[name]
        out.append(packed.tobytes())
    return b"".join(out)


def _json_object_head(tid, intervals, meta=None):
    """The opening of one target's object, up to its snapshot list; damonx's
    meta rides in the first object, under a key damo ignores."""
    head = {"target_id": tid, "intervals": _intervals_kv(intervals)}
    if meta is not None:
        head["damonx"] = {"version": 1, "meta": meta}
    return json.dumps(head)[:-1] + ', "snapshots": [\n'


def dumps(record, format="json_compressed", binary_version=2):
    """The bytes of ``record`` in ``format``."""
    if format not in FORMATS:
        raise DamonxError(f"unknown record format {format!r}; "
                          f"choose one of {', '.join(FORMATS)}")
    if format == "binary":
        out = [BINARY_MAGIC, struct.pack("<i", binary_version)]
        # aggregations ordered by end time; targets sharing an end time share one
        events = sorted(((s.end_ns, ti, si) for ti, t in enumerate(record.targets)
                         for si, s in enumerate(t.snapshots)))
        i = 0
        while i < len(events):
            j = i
            while j < len(events) and events[j][0] == events[i][0]:
                j += 1
            out.append(_binary_aggregation(events[i][0], [
                (record.targets[ti].target_id, record.targets[ti].snapshots[si].regions)
                for _, ti, si in events[i:j]], binary_version))
            i = j
        return b"".join(out)
    objs = []
    for n, t in enumerate(record.targets):
        text = _json_object_head(t.target_id, record.intervals, record.meta if n == 0 else None)
        objs.append(text + ",\n".join(_snapshot_json(s.start_ns, s.end_ns, s.regions)
                                      for s in t.snapshots) + "]}")
    doc = ("[" + ",\n".join(objs) + "]\n").encode()
    return zlib.compress(doc, 6) if format == "json_compressed" else doc


def save(record, path, format="json_compressed", overwrite=False):
    """Write ``record`` to ``path`` atomically (temporary file + rename)."""
    path = os.fspath(path)
    if os.path.exists(path) and not overwrite:
        raise DamonxError(f"{path} exists; remove it or pass overwrite=True")
    data = dumps(record, format)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".damonx-", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
