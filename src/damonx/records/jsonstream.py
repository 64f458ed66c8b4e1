"""Streaming reader of damo's JSON records, plain or zlib-compressed.

The document is a list with one object per target (``target_id``,
``intervals``, ``snapshots``); each snapshot has ``start_time`` and
``end_time`` in ns and ``regions`` with ``start``, ``end``,
``nr_accesses.samples`` and ``age.aggr_intervals``.  damonx's metadata rides
under the key ``"damonx"`` of the first target object.  damo writes numbers
either raw or human-readable (``'4,096'``, ``'4.000 KiB'``, ``'100 ms'``);
both are read.

The text is decoded chunk by chunk and walked one snapshot at a time, so
that only one snapshot is ever held as Python objects, and a damaged file
yields everything before the damage.
"""

import codecs
import json
import re
import zlib

import numpy as np

from damonx import units
from damonx.attrs import Intervals
from damonx.dtypes import REGION_DTYPE
from damonx.errors import InvalidAttrs, InvalidRecord

from .model import U32_MAX, U64_MAX, Broken, Corrupted, RecordBuilder, TargetSnapshot, Truncated


def parse(data, compressed):
    """The Record in ``data``; InvalidRecord (with the readable prefix as
    ``partial``) if it is truncated or corrupted."""
    builder = RecordBuilder()
    src = _TextSource(data, compressed)
    walker = _JsonWalker(src, builder)
    try:
        walker.walk()
        # anything but whitespace after the list is damage
        while True:
            src.pos = _skip_ws(src.buf, src.pos)
            if src.pos < len(src.buf):
                raise Corrupted(
                    f"unexpected data after the end of the record (decoded byte {src.offset})"
                )
            if not src.more():
                break
        if not src.stream_complete:
            raise Truncated("the zlib stream ends early (the JSON is complete)")
    except Broken as b:
        kind = "json_compressed" if compressed else "json"
        raise InvalidRecord(
            f"{kind} record {b.what}: {b}",
            offset=(src.in_pos if compressed else src.offset),
            partial=builder.record(),
        ) from None
    return builder.record()


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
            text = self._decode_chunk()
            if text:
                self.buf = self.buf[self.pos :] + text
                self.base += self.pos
                self.pos = 0
                return True
        return False

    def _decode_chunk(self):
        chunk = self.data[self.in_pos : self.in_pos + self.CHUNK]
        start = self.in_pos
        self.in_pos += len(chunk)
        final = self.in_pos >= len(self.data)
        try:
            raw = chunk
            if self.zobj is not None:
                raw = self.zobj.decompress(chunk)
                if self.zobj.eof:
                    self.stream_complete = True
                    final = True
                    if self.zobj.unused_data.strip(b"\0"):
                        self.done = True
                        where = len(self.data) - len(self.zobj.unused_data)
                        raise Corrupted(
                            f"unexpected data after the zlib stream (compressed byte {where})"
                        )
            text = self.udec.decode(raw, final=final)
        except zlib.error as err:
            self.done = True
            raise Corrupted(f"zlib stream corrupted near compressed byte {start} ({err})") from None
        except UnicodeDecodeError as err:
            self.done = True
            raise Corrupted(f"invalid UTF-8 ({err.reason})") from None
        if final:
            self.done = True
        return text


_WS_RE = re.compile(r"[ \t\r\n]*")


def _skip_ws(buf, pos):
    """Index of the first character at or after ``pos`` that is not JSON whitespace."""
    m = _WS_RE.match(buf, pos)
    return m.end() if m else pos


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
            src.pos = _skip_ws(src.buf, src.pos)
            if src.pos < len(src.buf):
                return src.buf[src.pos]
            if not src.more():
                raise Truncated(f"ends early {self.where}")

    def _expect(self, chars):
        c = self._peek()
        if c not in chars:
            raise Corrupted(
                f"expected {' or '.join(repr(x) for x in chars)} but found {c!r} {self.where}"
            )
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
                    raise Truncated(f"ends early {self.where}") from None
                raise Corrupted(f"invalid JSON ({err.msg}) {self.where}") from None
            except RecursionError:
                raise Corrupted(f"JSON nested too deeply {self.where}") from None
            # a number at the end of the buffer may continue in the next chunk
            if end == len(src.buf) and not isinstance(val, (dict, list, str)) and src.more():
                continue
            src.pos = end
            return val

    def walk(self):
        top = self._expect("[{")
        if top == "{":
            raise Corrupted(
                "the document is a JSON object; a record is a list of per-target objects"
            )
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
            raise Corrupted(f"target object {ridx} has no target_id")
        while True:
            key = self._value()
            if not isinstance(key, str):
                raise Corrupted(f"object key expected {self.where}")
            self._expect(":")
            if key == "snapshots":
                if tid is None:
                    # damo writes target_id first; without it the id is unknown
                    raise Corrupted(f"snapshots before target_id {self.where}")
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
            raise Corrupted(f"target object {ridx} has no target_id")

    def _walk_snapshots(self, tid):
        self._expect("[")
        if self._peek() == "]":
            self.src.pos += 1
            return
        nprev = len(self.b.targets[tid].snapshots)
        idx = 0
        while True:
            self.where = (
                f"in snapshot {nprev + idx} of target {tid} (decoded byte {self.src.offset})"
            )
            kv = self._value()
            self.b.add(tid, _as_snapshot(kv, self.where, self.b.intervals))
            idx += 1
            self.where = (
                f"after snapshot {nprev + idx - 1} of target {tid} (decoded byte {self.src.offset})"
            )
            if self._expect(",]") == "]":
                return


# ---------------------------------------------------------------------------
# values


def _num(val, where, what, lo=0, hi=U64_MAX):
    if isinstance(val, bool):
        raise Corrupted(f"{what} is a boolean {where}")
    if isinstance(val, str):
        val = _text_to_number(val, where, what)
    if isinstance(val, float):
        if val != val or val in (float("inf"), float("-inf")):
            raise Corrupted(f"{what} is not a finite number {where}")
        val = int(val)
    if not isinstance(val, int):
        raise Corrupted(f"{what} is not a number ({type(val).__name__}) {where}")
    if not lo <= val <= hi:
        raise Corrupted(f"{what} {val} out of range [{lo}, {hi}] {where}")
    return val


_UNIT_RE = re.compile(r"([A-Za-z]*)\s*$")


def _unit_of(txt):
    """The unit name a human-readable number ends with ('' if none)."""
    m = _UNIT_RE.search(txt)
    return m.group(1) if m else ""


def _text_to_number(txt, where, what):
    """Numbers as damo writes them: '4,096', '4.000 KiB', '1 m 3.500 s', '100 ms'.

    Times come out in nanoseconds, sizes in bytes.
    """
    t = txt.replace(",", "").strip()
    for conv in (int, float):
        try:
            return conv(t)
        except ValueError:
            pass
    unit = _unit_of(t)
    if unit in units.NS_PER_UNIT:
        parse = units.parse_duration_ns
    elif unit in units.BYTES_PER_UNIT:
        parse = units.parse_size
    else:
        raise Corrupted(f"{what} {txt!r} is not a number {where}")
    try:
        return parse(t, what)
    except InvalidAttrs as err:
        raise Corrupted(f"{err} {where}") from None


def _text_to_us(txt, where, what):
    """A microsecond field damo may have written as text: '5,000' (us) or '5 ms'."""
    val = _text_to_number(txt, where, what)
    return val // 1000 if _unit_of(txt.strip()) in units.NS_PER_UNIT else val


def _as_target_id(val, where):
    if val is None:
        return 0
    return _num(val, where, "target_id", lo=-(2**63))


def _as_intervals(val, where):
    if not isinstance(val, dict):
        raise Corrupted(f"intervals is not an object {where}")
    vals = []
    for k in ("sample_us", "aggr_us", "ops_update_us"):
        v = val.get(k)
        if isinstance(v, str):
            v = _text_to_us(v, where, k)
        vals.append(_num(v, where, f"intervals.{k}") if v is not None else 0)
    return Intervals(*vals)


def _as_snapshot(kv, where, intervals):
    if not isinstance(kv, dict):
        raise Corrupted(f"snapshot is not an object {where}")
    for k in ("start_time", "end_time", "regions"):
        if k not in kv:
            raise Corrupted(f"snapshot lacks {k!r} {where}")
    start = _num(kv["start_time"], where, "start_time")
    end = _num(kv["end_time"], where, "end_time")
    regs = kv["regions"]
    if not isinstance(regs, list):
        raise Corrupted(f"regions is not a list {where}")
    out = np.zeros(len(regs), dtype=REGION_DTYPE)
    max_acc = None
    if intervals is not None and intervals.sample_us > 0:
        max_acc = intervals.aggr_us / intervals.sample_us
    for i, r in enumerate(regs):
        rw = f"(region {i}) {where}"
        if not isinstance(r, dict) or "start" not in r or "end" not in r:
            raise Corrupted(f"region is not an object with start and end {rw}")
        s = _num(r["start"], rw, "start")
        e = _num(r["end"], rw, "end")
        if e < s:
            raise Corrupted(f"region end {e} is before its start {s} {rw}")
        out[i] = (
            s,
            e,
            _nr_accesses(r.get("nr_accesses"), rw, max_acc),
            _age(r.get("age"), rw, intervals),
        )
    return TargetSnapshot(start, end, out, *_snapshot_extras(kv, where))


def _snapshot_extras(kv, where):
    """The optional keys of a snapshot: the sampling interval in effect
    (damo's ``sample_interval_us``), damonx's count of access checks, and the
    scheme statistics (damonx's list of all schemes, else damo's one)."""
    sample_us = kv.get("sample_interval_us")
    if isinstance(sample_us, str):
        sample_us = _text_to_us(sample_us, where, "sample_interval_us")
    if sample_us is not None:
        sample_us = _num(sample_us, where, "sample_interval_us")
    nr_checks = kv.get("damonx_nr_checks")
    if nr_checks is not None:
        nr_checks = _num(nr_checks, where, "damonx_nr_checks")
    stats = kv.get("damonx_damos_stats")
    if stats is None and kv.get("damos_stats") is not None:
        stats = [kv["damos_stats"]]
    if stats is not None:
        if not isinstance(stats, list) or not all(isinstance(x, dict) for x in stats):
            raise Corrupted(f"damos_stats is not a list of objects {where}")
        stats = [
            {k: _num(v, where, f"damos_stats.{k}") for k, v in x.items() if v is not None}
            for x in stats
        ]
    return sample_us, nr_checks, stats or None


def _nr_accesses(na, where, max_acc):
    """nr_accesses from samples, or from a percentage when the intervals are known."""
    if isinstance(na, dict):
        if na.get("samples") is not None:
            return _num(na["samples"], where, "nr_accesses.samples", hi=U32_MAX)
        if na.get("percent") is not None and max_acc is not None:
            pct = na["percent"]
            if isinstance(pct, str):
                pct = _text_to_number(pct.rstrip("% "), where, "nr_accesses.percent")
            pct = _num(
                float(pct) if not isinstance(pct, bool) else pct,
                where,
                "nr_accesses.percent",
                hi=U32_MAX,
            )
            return round(pct * max_acc / 100)
        return 0
    if na is not None:
        return _num(na, where, "nr_accesses", hi=U32_MAX)
    return 0


def _age(ag, where, intervals):
    """age in aggregation intervals, or from microseconds when the intervals are known."""
    if isinstance(ag, dict):
        if ag.get("aggr_intervals") is not None:
            return _num(ag["aggr_intervals"], where, "age.aggr_intervals", hi=U32_MAX)
        if ag.get("usec") is not None and intervals is not None and intervals.aggr_us:
            usec = ag["usec"]
            if isinstance(usec, str):
                usec = _text_to_us(usec, where, "age.usec")
            return _num(
                int(_num(usec, where, "age.usec") // intervals.aggr_us), where, "age", hi=U32_MAX
            )
        return 0
    if ag is not None:
        return _num(ag, where, "age", hi=U32_MAX)
    return 0
