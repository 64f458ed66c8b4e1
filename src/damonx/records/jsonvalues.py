"""The values of damo's JSON records: numbers raw or human-readable, and
the objects of a snapshot, checked and converted.

damo writes numbers either raw or human-readable (``'4,096'``,
``'4.000 KiB'``, ``'1 m 3.500 s'``, ``'100 ms'``), ``nr_accesses`` in samples
or in percent, and ages in aggregation intervals or in microseconds; all are
read.  Each function raises :class:`Corrupted` naming the value and ``where``
(the place in the record) when the value cannot be one.
"""

import re

import numpy as np

from damonx import units
from damonx.attrs import Intervals
from damonx.dtypes import REGION_DTYPE
from damonx.errors import InvalidAttrs

from .model import U32_MAX, U64_MAX, Corrupted, TargetSnapshot


def num(val, where, what, lo=0, hi=U64_MAX):
    """An integer in [lo, hi] from a JSON number or damo's text (floats are
    truncated)."""
    if isinstance(val, bool):
        raise Corrupted(f"{what} is a boolean {where}")
    if isinstance(val, str):
        val = text_to_number(val, where, what)
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


def text_to_number(txt, where, what):
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


def text_to_us(txt, where, what):
    """A microsecond field damo may have written as text: '5,000' (us) or '5 ms'."""
    val = text_to_number(txt, where, what)
    return val // 1000 if _unit_of(txt.strip()) in units.NS_PER_UNIT else val


def as_target_id(val, where):
    if val is None:
        return 0
    return num(val, where, "target_id", lo=-(2**63))


def as_intervals(val, where):
    if not isinstance(val, dict):
        raise Corrupted(f"intervals is not an object {where}")
    vals = []
    for k in ("sample_us", "aggr_us", "ops_update_us"):
        v = val.get(k)
        if isinstance(v, str):
            v = text_to_us(v, where, k)
        vals.append(num(v, where, f"intervals.{k}") if v is not None else 0)
    return Intervals(*vals)


def as_snapshot(kv, where, intervals):
    """The TargetSnapshot of a snapshot object; ``intervals`` (or None)
    convert percentages and microseconds."""
    if not isinstance(kv, dict):
        raise Corrupted(f"snapshot is not an object {where}")
    for k in ("start_time", "end_time", "regions"):
        if k not in kv:
            raise Corrupted(f"snapshot lacks {k!r} {where}")
    start = num(kv["start_time"], where, "start_time")
    end = num(kv["end_time"], where, "end_time")
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
        s = num(r["start"], rw, "start")
        e = num(r["end"], rw, "end")
        if e < s:
            raise Corrupted(f"region end {e} is before its start {s} {rw}")
        out[i] = (
            s,
            e,
            _nr_accesses(r.get("nr_accesses"), rw, max_acc),
            _age(r.get("age"), rw, intervals),
        )
    return TargetSnapshot(start, end, out, *snapshot_extras(kv, where))


def snapshot_extras(kv, where):
    """The optional keys of a snapshot: the sampling interval in effect
    (damo's ``sample_interval_us``), damonx's count of access checks, and the
    scheme statistics (damonx's list of all schemes, else damo's one)."""
    sample_us = kv.get("sample_interval_us")
    if isinstance(sample_us, str):
        sample_us = text_to_us(sample_us, where, "sample_interval_us")
    if sample_us is not None:
        sample_us = num(sample_us, where, "sample_interval_us")
    nr_checks = kv.get("damonx_nr_checks")
    if nr_checks is not None:
        nr_checks = num(nr_checks, where, "damonx_nr_checks")
    stats = kv.get("damonx_damos_stats")
    if stats is None and kv.get("damos_stats") is not None:
        stats = [kv["damos_stats"]]
    if stats is not None:
        if not isinstance(stats, list) or not all(isinstance(x, dict) for x in stats):
            raise Corrupted(f"damos_stats is not a list of objects {where}")
        stats = [
            {k: num(v, where, f"damos_stats.{k}") for k, v in x.items() if v is not None}
            for x in stats
        ]
    return sample_us, nr_checks, stats or None


def _nr_accesses(na, where, max_acc):
    """nr_accesses from samples, or from a percentage when the intervals are known."""
    if isinstance(na, dict):
        if na.get("samples") is not None:
            return num(na["samples"], where, "nr_accesses.samples", hi=U32_MAX)
        if na.get("percent") is not None and max_acc is not None:
            pct = na["percent"]
            if isinstance(pct, str):
                pct = text_to_number(pct.rstrip("% "), where, "nr_accesses.percent")
            pct = num(pct, where, "nr_accesses.percent", hi=U32_MAX)
            return round(pct * max_acc / 100)
        return 0
    if na is not None:
        return num(na, where, "nr_accesses", hi=U32_MAX)
    return 0


def _age(ag, where, intervals):
    """age in aggregation intervals, or from microseconds when the intervals are known."""
    if isinstance(ag, dict):
        if ag.get("aggr_intervals") is not None:
            return num(ag["aggr_intervals"], where, "age.aggr_intervals", hi=U32_MAX)
        if ag.get("usec") is not None and intervals is not None and intervals.aggr_us:
            usec = ag["usec"]
            if isinstance(usec, str):
                usec = text_to_us(usec, where, "age.usec")
            return num(
                int(num(usec, where, "age.usec") // intervals.aggr_us), where, "age", hi=U32_MAX
            )
        return 0
    if ag is not None:
        return num(ag, where, "age", hi=U32_MAX)
    return 0
