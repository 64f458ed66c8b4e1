"""Streaming reader of damo's JSON records, plain or zlib-compressed.

The document is a list with one object per target (``target_id``,
``intervals``, ``snapshots``); each snapshot has ``start_time`` and
``end_time`` in ns and ``regions`` with ``start``, ``end``,
``nr_accesses.samples`` and ``age.aggr_intervals``.  damonx's metadata rides
under the key ``"damonx"`` of the first target object.  The values may be
written in any of damo's forms (see :mod:`.jsonvalues`).

The input is decompressed and decoded a chunk at a time and walked in
order, so a damaged file yields everything before the damage.  The walker
handles the few values around the snapshots itself; the snapshots go to
the compiled parser (``damonx._recread``), which reads the usual form
straight into columns and hands anything else back: that snapshot is read
here, with :func:`json.JSONDecoder.raw_decode` and :mod:`.jsonvalues`.
With ``fast=False`` every snapshot is read here, which gives the same
record and the same errors, only slower (the tests compare the two).
"""

import codecs
import json
import queue
import re
import threading
import zlib

from damonx import _recread
from damonx.errors import InvalidRecord

from . import jsonvalues as jv
from .build import RecordBuilder
from .model import Broken, Corrupted, Truncated


def parse(data, compressed, builder=None, fast=True, prefetch=None):
    """The Record in ``data``, selected by ``builder`` (a RecordBuilder;
    default: everything); InvalidRecord (with the readable prefix as
    ``partial``) if it is truncated or corrupted.  ``prefetch``: decompress
    in a thread (default: for large inputs)."""
    builder = builder if builder is not None else RecordBuilder()
    src = _TextSource(data, compressed, prefetch)
    walker = _JsonWalker(src, builder, fast)
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
    finally:
        src.close()
    return builder.record()


def _decoded(data, compressed, chunk):
    """The text of ``data`` (bytes, or anything with a length that slices to
    bytes) a chunk of ``chunk`` input bytes at a time:
    (text, input bytes consumed, whether the zlib stream is complete), and
    Corrupted where the input is (its ``offset``: the input consumed)."""
    zobj = zlib.decompressobj() if compressed else None
    udec = codecs.getincrementaldecoder("utf-8")("strict")
    in_pos = 0
    complete = not compressed
    while True:
        piece = data[in_pos : in_pos + chunk]
        start = in_pos
        in_pos += len(piece)
        final = in_pos >= len(data) or not piece  # (a file cut while read)
        try:
            raw = piece
            if zobj is not None:
                raw = zobj.decompress(piece)
                if zobj.eof:
                    complete = final = True
                    if zobj.unused_data.strip(b"\0"):
                        where = len(data) - len(zobj.unused_data)
                        raise Corrupted(
                            f"unexpected data after the zlib stream (compressed byte {where})",
                            in_pos,
                        )
            text = udec.decode(raw, final=final)
        except zlib.error as err:
            raise Corrupted(
                f"zlib stream corrupted near compressed byte {start} ({err})", in_pos
            ) from None
        except UnicodeDecodeError as err:
            raise Corrupted(f"invalid UTF-8 ({err.reason})", in_pos) from None
        yield text, in_pos, complete
        if final:
            return


class _Prefetch:
    """The items of an iterator, made by a thread a few items ahead (zlib
    releases the GIL, so decompression runs beside the parsing); its
    exceptions are raised where the item they replace would come."""

    def __init__(self, items, depth=4):
        self.queue: queue.Queue = queue.Queue(depth)
        self.stopped = self.finished = False
        self.thread = threading.Thread(target=self._run, args=(items,), daemon=True)
        self.thread.start()

    def _run(self, items):
        try:
            for item in items:
                if not self._put((True, item)):
                    return
            self._put((False, None))
        except Exception as err:
            self._put((False, err))

    def _put(self, entry):
        while not self.stopped:
            try:
                self.queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def __iter__(self):
        return self

    def __next__(self):
        if self.finished:
            raise StopIteration
        is_item, value = self.queue.get()
        if is_item:
            return value
        self.finished = True
        if value is not None:
            raise value
        raise StopIteration

    def close(self):
        self.stopped = True
        self.thread.join()


class _TextSource:
    """Text decoded incrementally from (maybe compressed) bytes.

    ``buf[pos:]`` is the not yet consumed text; ``base`` is the offset in
    bytes of ``buf[0]`` in the decoded input.  ``more()`` appends the next
    chunk (dropping the consumed prefix) and returns False at the end of the
    input.  Inputs larger than ``PREFETCH`` are decompressed by a thread,
    ahead of the reader (unless ``prefetch`` says otherwise); ``close()``
    stops it.
    """

    CHUNK = 1 << 18
    PREFETCH = 4 << 20

    def __init__(self, data, compressed, prefetch=None):
        chunks = _decoded(data, compressed, self.CHUNK)
        if prefetch if prefetch is not None else len(data) > self.PREFETCH:
            chunks = _Prefetch(chunks)
        self.chunks = chunks
        self.in_pos = 0
        self.buf = ""
        self.ascii = True
        self.pos = 0
        self.base = 0
        self.stream_complete = not compressed

    def close(self):
        if isinstance(self.chunks, _Prefetch):
            self.chunks.close()

    def offset_at(self, pos):
        """Offset in bytes in the decoded input of ``buf[pos]``."""
        return self.base + (pos if self.ascii else len(self.buf[:pos].encode()))

    @property
    def offset(self):
        """Offset in bytes in the decoded input of the next unconsumed character."""
        return self.offset_at(self.pos)

    def more(self):
        try:
            for text, in_pos, complete in self.chunks:
                self.in_pos, self.stream_complete = in_pos, complete
                if text:
                    self.base = self.offset
                    self.buf = self.buf[self.pos :] + text
                    self.ascii = self.buf.isascii()
                    self.pos = 0
                    return True
        except Broken as damage:
            self.in_pos = damage.offset
            raise
        return False


_WS_RE = re.compile(r"[ \t\r\n]*")


def _skip_ws(buf, pos):
    """Index of the first character at or after ``pos`` that is not JSON whitespace."""
    m = _WS_RE.match(buf, pos)
    return m.end() if m else pos


_decoder = json.JSONDecoder()


class _JsonWalker:
    """Walks the top-level list of per-target objects one snapshot at a
    time, so that at most one snapshot is ever held as Python objects."""

    def __init__(self, src, builder, fast):
        self.src = src
        self.b = builder
        self.fast = fast
        self.where = "at the start of the document"
        self.where_for = None  # the snapshot (target, index) ``where`` is in

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
                    tid = jv.as_target_id(val, self.where)
                    self.b.ensure(tid)
                elif key == "intervals" and val is not None and self.b.intervals is None:
                    self.b.intervals = jv.as_intervals(val, self.where)
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
        cols = self.b.columns(tid)
        while not (self.fast and self._fast_snapshots(tid, cols)):
            if self._snapshot(tid, cols) == "]":
                return

    def _in(self, tid, cols):
        """Say that the walk is in the next snapshot, which begins at
        ``src.pos`` (or after whitespace there): once per snapshot."""
        if self.where_for != (tid, cols.nr_seen):
            self.where_for = (tid, cols.nr_seen)
            self.where = (
                f"in snapshot {cols.nr_seen} of target {tid} (decoded byte {self.src.offset})"
            )

    def _after(self, tid, cols, pos):
        self.where = (
            f"after snapshot {cols.nr_seen - 1} of target {tid} "
            f"(decoded byte {self.src.offset_at(pos)})"
        )

    def _snapshot(self, tid, cols):
        """Read the next snapshot here, and the separator after it."""
        self._in(tid, cols)
        self.b.add(tid, jv.as_snapshot(self._value(), self.where, self.b.intervals))
        self._after(tid, cols, self.src.pos)
        return self._expect(",]")

    def _fast_snapshots(self, tid, cols):
        """Read snapshots with the compiled parser while it can: True when
        the list has ended, False when the next snapshot is to be read here."""
        src = self.src
        while True:
            status, pos, start, last_end, extras = cols.parse(src.buf, src.pos)
            if last_end:
                self._after(tid, cols, last_end)
            src.pos = pos
            if status == _recread.END:
                return True
            if status != _recread.NEXT:
                # at a snapshot: where it is, then past the whitespace, as
                # the reading here would be when it asks for more
                self._in(tid, cols)
                src.pos = start
                if status == _recread.MORE:
                    if src.more():
                        continue
                    return False
                if status == _recread.SLOW:
                    return False
                self._extras(tid, cols, *extras)
            if self._expect(",]") == "]":
                return True

    def _extras(self, tid, cols, end, spans):
        """Finish a snapshot the compiled parser read but for its optional
        values, ``spans`` (key: (start, end) in the buffer)."""
        src = self.src
        kv = {key: json.loads(src.buf[a:b]) for key, (a, b) in spans.items()}
        src.pos = end
        cols.commit_pending(*jv.snapshot_extras(kv, self.where))
        self._after(tid, cols, end)
