"""The original DAMON patchset's binary record format.

Layout (little endian): the magic ``damon_recfmt_ver``, an int32 version,
then per aggregation: the end time as int64 seconds and int64 nanoseconds,
a uint32 number of targets, and per target its id (int32 pid in version 1,
uint64 in version 2), a uint32 number of regions and the regions (uint64
start, uint64 end, uint32 nr_accesses).  It has no field for ages,
intervals, metadata or the start of the first aggregation.
"""

import struct

import numpy as np

from damonx.dtypes import REGION_DTYPE
from damonx.errors import InvalidRecord

from .build import RecordBuilder
from .model import U64_MAX, Broken, Corrupted, Record, TargetSnapshot, Truncated

MAGIC = b"damon_recfmt_ver"
VERSIONS = (1, 2)

_HEADER_SIZE = len(MAGIC) + 4
_AGGR_HEAD = struct.Struct("<qqI")  # end time (s, ns), number of targets
# a packed region: u64 start, u64 end, u32 nr_accesses
_REGION_FIELDS = ("start", "end", "nr_accesses")
_REGION_DTYPE = np.dtype(list(zip(_REGION_FIELDS, ("<u8", "<u8", "<u4"))))


def _id_format(version):
    return ("<i", 4) if version == 1 else ("<Q", 8)


def header(version):
    """The bytes a file of ``version`` starts with."""
    return MAGIC + struct.pack("<i", version)


def encode_aggregation(end_ns, entries, version):
    """One aggregation: ``entries`` are (target id, REGION_DTYPE regions)."""
    sec, nsec = divmod(end_ns, 1_000_000_000)
    out = [_AGGR_HEAD.pack(sec, nsec, len(entries))]
    idf = _id_format(version)[0]
    for tid, regions in entries:
        out.append(struct.pack(idf, tid if version == 1 else tid % 2**64))
        out.append(struct.pack("<I", len(regions)))
        packed = np.zeros(len(regions), dtype=_REGION_DTYPE)
        for name in _REGION_FIELDS:
            packed[name] = regions[name]
        out.append(packed.tobytes())
    return b"".join(out)


def parse(data):
    """The Record in ``data``; InvalidRecord (with the readable prefix as
    ``partial``) if it is truncated or corrupted."""
    n = len(data)
    if n < _HEADER_SIZE:
        raise InvalidRecord(
            f"binary record truncated in its header ({n} of {_HEADER_SIZE} bytes)",
            offset=n,
            partial=Record(),
        )
    version = struct.unpack_from("<i", data, len(MAGIC))[0]
    if version not in VERSIONS:
        raise InvalidRecord(
            f"binary record version {version} is not supported "
            f"(known: {', '.join(map(str, VERSIONS))})",
            offset=len(MAGIC),
            partial=Record(),
        )
    builder = RecordBuilder()
    last_end: dict = {}
    pos = _HEADER_SIZE
    agg_idx = 0
    while pos < n:
        agg_start = pos
        try:
            end_ns, pending, pos = _parse_aggregation(data, pos, version)
        except Broken as b:
            raise InvalidRecord(
                f"binary record {b.what} at byte {b.offset}, aggregation {agg_idx} "
                f"(starting at byte {agg_start}) {b}",
                offset=b.offset,
                partial=_finish(builder),
            ) from None
        for tid, regions in pending:
            # a first snapshot starts when it ends, until _finish() knows better
            builder.add(tid, TargetSnapshot(last_end.get(tid, end_ns), end_ns, regions))
            last_end[tid] = end_ns
        agg_idx += 1
    return _finish(builder)


def _parse_aggregation(data, pos, version):
    """(end_ns, [(tid, regions)], next pos) of the aggregation at ``pos``;
    Broken, with the offset where it broke, if it is not all there."""
    n = len(data)
    id_fmt, id_size = _id_format(version)
    if n - pos < _AGGR_HEAD.size:
        raise Truncated("in an aggregation header", pos)
    sec, nsec, nr_tasks = _AGGR_HEAD.unpack_from(data, pos)
    pos += _AGGR_HEAD.size
    end_ns = sec * 1_000_000_000 + nsec
    if sec < 0 or not 0 <= nsec < 1_000_000_000 or end_ns > U64_MAX:
        raise Corrupted(f"invalid time {sec}.{nsec:09d}", pos)
    pending = []
    for _ in range(nr_tasks):
        if n - pos < id_size + 4:
            raise Truncated("in a target header", pos)
        tid = struct.unpack_from(id_fmt, data, pos)[0]
        nr_regions = struct.unpack_from("<I", data, pos + id_size)[0]
        pos += id_size + 4
        if nr_regions * _REGION_DTYPE.itemsize > n - pos:
            raise Truncated(f"in the regions of target {tid} ({nr_regions} regions announced)", pos)
        raw = np.frombuffer(data, dtype=_REGION_DTYPE, count=nr_regions, offset=pos)
        pos += nr_regions * _REGION_DTYPE.itemsize
        regions = np.zeros(nr_regions, dtype=REGION_DTYPE)
        for name in _REGION_FIELDS:
            regions[name] = raw[name]
        pending.append((tid, regions))
    return end_ns, pending, pos


def _finish(builder):
    """The Record, with the start time of first snapshots filled in.

    The format lacks them: a target's first snapshot is given the mean
    length of its other snapshots, or zero length when it has only one or
    when its times do not increase (a damaged file).
    """
    rec = builder.record()
    for t in rec.targets:
        cols = t.columns()
        n = cols.nr_snapshots
        if n > 1:
            first, last = int(cols.end_ns[0]), int(cols.end_ns[-1])
            cols.start_ns[0] = max(0, first - max(0, last - first) // (n - 1))
    return rec
