"""Reports on a Record: pure functions returning data (the CLI formats it).

Every report works on records of any length; a record without snapshots
raises DamonxError saying so.  Percentiles follow damo: the p-th percentile
of n sorted values is the value at index ``min(int(p / 100 * n), n - 1)``.

The reports work on the columns of each target (:class:`damonx.records.Columns`)
with numpy, never a Python object per region, except where the output has
one per region (``raw``, ``access``).  Times are relative to the start of
the record; for a record read selectively, the start of the whole record
(``Record.start_ns``).
"""

import math

import numpy as np

from damonx import _recread
from damonx.errors import DamonxError
from damonx.units import format_duration_ns, format_size

DEFAULT_PERCENTILES = (0, 25, 50, 75, 100)


# ---------------------------------------------------------------------------
# helpers


def _nr_read(record, t):
    """Snapshots of a target before a selective read's time filter."""
    sel = record.selection
    if sel is not None and t.target_id in sel.nr_snapshots:
        return sel.nr_snapshots[t.target_id]
    return t.nr_snapshots


def _require_snapshots(record, targets=None, count=None):
    targets = record.targets if targets is None else targets
    count = count or (lambda t: t.nr_snapshots)
    if not any(count(t) for t in targets):
        raise DamonxError(
            "the record has no snapshots (the recording may have ended "
            "before the first aggregation interval)"
        )


def _targets(record, target_id=None):
    if target_id is None:
        return list(record.targets)
    return [record.target(target_id)]


def percentile_index(p, n):
    """Index of the p-th percentile in n sorted values (damo's definition)."""
    if not 0 <= p <= 100:
        raise DamonxError(f"percentile {p} is outside [0, 100]")
    return min(int(p / 100.0 * n), n - 1)


def distribution(values, percentiles=DEFAULT_PERCENTILES, sortby="size"):
    """Percentiles of ``values``: sorted by size, or picked in time order.

    Returns a dict with ``avg``, ``min``, ``max`` and ``percentiles`` (a list
    of ``[percentile, value]``).
    """
    if sortby not in ("size", "time"):
        raise DamonxError(f"sortby must be 'size' or 'time', not {sortby!r}")
    vals = [int(v) for v in values]
    if not vals:
        return {"avg": None, "min": None, "max": None, "percentiles": []}
    ordered = sorted(vals) if sortby == "size" else vals
    return {
        "avg": sum(vals) / len(vals),
        "min": min(vals),
        "max": max(vals),
        "percentiles": [[p, ordered[percentile_index(p, len(vals))]] for p in percentiles],
    }


def _series_report(record, name, fn, target_id, percentiles, sortby):
    """``fn(columns)``: an array of one value per snapshot."""
    targets = _targets(record, target_id)
    _require_snapshots(record, targets)
    base = _base_time(record)
    out = []
    for t in targets:
        cols = t.columns()
        values = [v for chunk in _chunks(cols) for v in fn(cols.take(chunk)).tolist()]
        out.append(
            {
                "target_id": t.target_id,
                "nr_snapshots": len(values),
                "time_ns": [end - base for end in cols.end_ns.tolist()],
                name: values,
                "distribution": distribution(values, percentiles, sortby),
            }
        )
    return out


def _base_time(record):
    start = record.start_ns
    return start if start is not None else 0


def _sizes(regions):
    return regions["end"] - regions["start"]


def per_snapshot_sums(columns, values):
    """The sum of ``values`` (uint64, one per region) over each snapshot,
    wrapping at 2^64 as numpy's sums do."""
    sums = np.zeros(len(values) + 1, dtype=np.uint64)
    np.cumsum(values, dtype=np.uint64, out=sums[1:])
    return sums[columns.offsets[1:]] - sums[columns.offsets[:-1]]


# ---------------------------------------------------------------------------
# reports


def raw(record, raw_number=False):
    """Text of every snapshot in damo's ``report raw`` layout."""
    _require_snapshots(record)
    lines = []
    for t in record.targets:
        if not t.nr_snapshots:
            continue
        base = t.snapshot(0).start_ns
        lines.append(f"base_time_absolute: {format_duration_ns(base, raw_number)}\n")
        for s in t.iter_snapshots():
            start_s = format_duration_ns(s.start_ns - base, raw_number)
            end_s = format_duration_ns(s.end_ns - base, raw_number)
            duration_s = format_duration_ns(s.end_ns - s.start_ns, raw_number)
            lines.append(f"monitoring_start:    {start_s:>16}")
            lines.append(f"monitoring_end:      {end_s:>16}")
            lines.append(f"monitoring_duration: {duration_s:>16}")
            lines.append(f"target_id: {t.target_id}")
            lines.append(f"nr_regions: {len(s.regions)}")
            for start, end, nr_acc in zip(
                s.regions["start"].tolist(),
                s.regions["end"].tolist(),
                s.regions["nr_accesses"].tolist(),
            ):
                size = format_size(end - start, raw_number)
                lines.append(f"{start:012x}-{end:012x}({size:>12}):\t{nr_acc}")
            lines.append("")
    return "\n".join(lines) + "\n"


_SORT_KEYS = ("address", "access_rate", "age", "size")


def access(record, snapshot=-1, target_id=None, sortby="address"):
    """Regions of one snapshot (default the last) of each target.

    Per region: address range, size, nr_accesses, access rate in percent of
    the samples of an aggregation (None when the record lacks intervals), and
    age in aggregation intervals and microseconds.
    """
    if sortby not in _SORT_KEYS:
        raise DamonxError(f"sortby must be one of {', '.join(_SORT_KEYS)}, not {sortby!r}")
    targets = _targets(record, target_id)
    _require_snapshots(record, targets)
    max_acc = record.max_nr_accesses()
    aggr_us = record.intervals.aggr_us if record.intervals else None
    base = _base_time(record)
    out = []
    for t in targets:
        n = t.nr_snapshots
        if n == 0:
            continue
        if not -n <= snapshot < n:
            raise DamonxError(
                f"snapshot index {snapshot} out of range: target "
                f"{t.target_id} has {n} snapshot(s) (0..{n - 1}, or -1 for the last)"
            )
        idx = snapshot % n
        s = t.snapshot(idx)
        regions = []
        for start, end, nr_acc, age in zip(
            s.regions["start"].tolist(),
            s.regions["end"].tolist(),
            s.regions["nr_accesses"].tolist(),
            s.regions["age"].tolist(),
        ):
            regions.append(
                {
                    "start": start,
                    "end": end,
                    "size": end - start,
                    "nr_accesses": nr_acc,
                    "access_rate": (nr_acc * 100.0 / max_acc) if max_acc else None,
                    "age": age,
                    "age_us": age * aggr_us if aggr_us is not None else None,
                }
            )
        key = {
            "address": lambda r: r["start"],
            "size": lambda r: -r["size"],
            "access_rate": lambda r: -r["nr_accesses"],
            "age": lambda r: -r["age"],
        }[sortby]
        regions.sort(key=key)
        total = sum(r["size"] for r in regions)
        accessed = sum(r["size"] for r in regions if r["nr_accesses"] > 0)
        weighted = (
            sum(r["access_rate"] * r["size"] for r in regions) / total
            if total and max_acc
            else None
        )
        out.append(
            {
                "target_id": t.target_id,
                "snapshot": idx,
                "nr_snapshots": n,
                "start_ns": s.start_ns - base,
                "end_ns": s.end_ns - base,
                "nr_regions": len(regions),
                "total_size": total,
                "accessed_size": accessed,
                "mean_access_rate": weighted,
                "regions": regions,
            }
        )
    return out


def wss(
    record, threshold=1, target_id=None, percentiles=DEFAULT_PERCENTILES, sortby="size", min_size=1
):
    """Working set size of each snapshot: the total size of regions with
    ``nr_accesses >= threshold`` (default 1, i.e. accessed at all) and
    ``size >= min_size``; its distribution and time series per target."""
    if threshold < 0:
        raise DamonxError(f"threshold must be >= 0, not {threshold}")

    def fn(cols):
        size = _sizes(cols.regions)
        keep = (cols.regions["nr_accesses"] >= threshold) & (size >= min_size)
        return per_snapshot_sums(cols, np.where(keep, size, 0))

    return _series_report(record, "wss", fn, target_id, percentiles, sortby)


def nr_regions(record, target_id=None, percentiles=DEFAULT_PERCENTILES, sortby="size"):
    """Number of regions of each snapshot: distribution and time series."""
    return _series_report(
        record, "nr_regions", lambda cols: cols.nr_regions(), target_id, percentiles, sortby
    )


def footprint(record, target_id=None, percentiles=DEFAULT_PERCENTILES, sortby="size"):
    """Monitored footprint of each snapshot: the total size of its regions,
    i.e. how much address space the monitor covered (for a virtual address
    target: the mapped areas it tracks, not the resident memory)."""
    return _series_report(
        record,
        "footprint",
        lambda cols: per_snapshot_sums(cols, _sizes(cols.regions)),
        target_id,
        percentiles,
        sortby,
    )


def address_unions(target):
    """Address ranges covered by the target's regions over the whole record,
    as a sorted list of [start, end) without overlaps or adjacency (see
    :meth:`damonx.records.TargetRecord.address_unions`)."""
    return target.address_unions()


#: the largest heatmap (time bins x address bins) computed, about 80 MB of cells
MAX_HEATMAP_CELLS = 10_000_000


def heatmap(
    record, target_id=None, time_bins=20, addr_bins=80, address_range=None, time_range=None
):
    """Access rate over time x address, one map per target.

    ``address_range``: None picks, of the address ranges the regions cover
    (so that the unmapped gaps of a process do not flatten the map; the
    others are listed under ``address_unions``), the one with the most
    accesses (bytes times nr_accesses, over the snapshots in the time
    range), or the largest
    where nothing was accessed; ``"all"`` spans from the
    lowest to the highest address, or ``(start, end)`` in bytes.
    ``time_range``: ``(start_ns, end_ns)`` relative to the record's first
    snapshot start; default the whole record.  A record read with a time or
    address range (``records.load``) gives the same map for those ranges.

    Each cell holds the time- and size-weighted mean access rate (percent of
    samples, or nr_accesses when the record lacks intervals; ``unit`` says
    which) over the part of the cell regions covered, or NaN where no region
    covered it.
    """
    if time_bins < 1 or addr_bins < 1:
        raise DamonxError(f"resolution must be at least 1x1, not {time_bins}x{addr_bins}")
    if time_bins * addr_bins > MAX_HEATMAP_CELLS:
        raise DamonxError(
            f"resolution {time_bins}x{addr_bins} is more than "
            f"{MAX_HEATMAP_CELLS} cells; ask for fewer"
        )
    targets = _targets(record, target_id)
    _require_snapshots(record, targets, count=lambda t: _nr_read(record, t))
    max_acc = record.max_nr_accesses()
    scale = 100.0 / max_acc if max_acc else 1.0
    base = _base_time(record)
    sel = record.selection
    out = []
    for t in targets:
        if not _nr_read(record, t):
            continue
        if sel is not None and t.target_id in sel.address_unions:
            unions = sel.address_unions[t.target_id]
        else:
            unions = t.address_unions()
        cols = t.columns()
        start_ns = cols.start_ns.astype(np.float64) - base
        end_ns = cols.end_ns.astype(np.float64) - base
        t0, t1 = heatmap_time_range(start_ns, end_ns, time_range)
        tedges = np.linspace(t0, t1, time_bins + 1)
        snap, tbin, weight = time_weights(start_ns, end_ns, tedges)
        weights = None
        if address_range is None and len(unions) > 1:
            # the accesses of the snapshots the map shows: a part read for
            # its time range picks the same range as the whole record
            weights = accessed_bytes(_snapshots_of(cols, snap), unions)
        a0, a1 = heatmap_address_range(unions, address_range, t.target_id, weights)
        aedges = np.linspace(a0, a1, addr_bins + 1)
        num = np.zeros((time_bins, addr_bins))
        den = np.zeros_like(num)
        # in C: each snapshot that weighs binned once, no array per region
        _recread.heatmap_add(
            cols.regions, cols.offsets, aedges, scale, snap, tbin, weight, num, den
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
        out.append(
            {
                "target_id": t.target_id,
                "unit": "percent" if max_acc else "nr_accesses",
                "values": values,
                "address_range": [a0, a1],
                "time_range_ns": [t0, t1],
                "addr_edges": aedges,
                "time_edges_ns": tedges,
                "address_unions": unions,
            }
        )
    return out


#: the regions a report handles at a time: its work arrays then take some
#: tens of MB, whatever the record's length
_CHUNK = 1 << 20


def _chunks(cols):
    """Slices of consecutive snapshots of about _CHUNK regions."""
    work = np.cumsum(cols.nr_regions())
    start = 0
    while start < cols.nr_snapshots:
        done = work[start - 1] if start else 0
        end = max(start + 1, int(np.searchsorted(work, done + _CHUNK, side="right")))
        yield slice(start, end)
        start = end


def _snapshots_of(cols, index):
    """The columns of the snapshots in ``index`` (sorted, repeats allowed):
    views when they are consecutive, as those of a time range are."""
    if not len(index):
        return cols.take(slice(0, 0))
    lo, hi = int(index[0]), int(index[-1]) + 1
    if len(np.unique(index)) == hi - lo:
        return cols.take(slice(lo, hi))
    return cols.take(np.unique(index))


def accessed_bytes(cols, unions):
    """For each of ``unions``, the sum over the snapshots of ``cols`` of
    the bytes of its regions inside it times their nr_accesses."""
    out = np.zeros(len(unions))
    for chunk in _chunks(cols):
        regions = cols.take(chunk).regions
        start = regions["start"].astype(np.float64)
        end = regions["end"].astype(np.float64)
        acc = regions["nr_accesses"].astype(np.float64)
        for i, (u0, u1) in enumerate(unions):
            inside = np.clip(np.minimum(end, u1) - np.maximum(start, u0), 0, None)
            out[i] += float(inside @ acc)
    return out


def heatmap_address_range(unions, address_range=None, target_id=None, weights=None):
    """[start, end) of a heatmap's address axis (see :func:`heatmap`): for
    None, the one of ``unions`` (from :func:`address_unions`) with the
    largest of ``weights`` (:func:`accessed_bytes`) or, without weights or
    where all are 0, the largest; their whole span for ``"all"``, else
    ``address_range`` itself."""
    if address_range is None or address_range == "all":
        if not unions:
            raise DamonxError(f"target {target_id} has no non-empty region")
        if address_range is None and weights is not None and max(weights) > 0:
            a0, a1 = unions[int(np.argmax(weights))]
        elif address_range is None:
            a0, a1 = max(unions, key=lambda u: u[1] - u[0])
        else:
            a0, a1 = unions[0][0], unions[-1][1]
    else:
        a0, a1 = (int(x) for x in address_range)
    if a1 <= a0:
        raise DamonxError(f"empty address range [{a0}, {a1})")
    return a0, a1


def heatmap_time_range(start_ns, end_ns, time_range=None):
    """[t0, t1) of a heatmap's time axis: ``time_range`` or, by default,
    from the first snapshot start to the last snapshot end (times relative to
    the record start, as floats).  Snapshots of zero length span one ns."""
    if time_range is None:
        if not len(start_ns):
            raise DamonxError("no snapshot to span: give a time range")
        t0, t1 = float(np.min(start_ns)), float(np.max(end_ns))
        return t0, (t1 if t1 > t0 else t0 + 1)
    t0, t1 = (float(x) for x in time_range)
    if t1 <= t0:
        raise DamonxError(
            f"empty time range [{format_duration_ns(t0)}, "
            f"{format_duration_ns(t1)}) after the record start"
        )
    return t0, t1


def _overlap_pairs(starts, ends, edges):
    """The (item, bin) pairs where [starts, ends) overlaps a bin of
    ``edges`` (floats): item and bin indices, in item order, and the
    overlap in each."""
    nbins = len(edges) - 1
    lo = np.clip(np.searchsorted(edges, starts, side="right") - 1, 0, nbins)
    hi = np.clip(np.searchsorted(edges, ends, side="left"), 0, nbins)
    count = np.maximum(hi - lo, 0)
    item = np.repeat(np.arange(len(starts)), count)
    first = np.repeat(np.cumsum(count) - count, count)
    bins = lo[item] + np.arange(len(item)) - first
    overlap = np.minimum(ends[item], edges[bins + 1]) - np.maximum(starts[item], edges[bins])
    return item, bins, np.clip(overlap, 0, None)


def address_bin_integrals(columns, edges, scale=1.0):
    """Per snapshot of ``columns`` and address bin: the integral over the
    bin of the access rate (nr_accesses x ``scale``) and of the coverage (1
    where a region is), in rate x bytes and bytes.  Two arrays of shape
    (snapshots, bins); each sums the regions of a snapshot in address order."""
    edges = np.asarray(edges, dtype=np.float64)
    each = np.arange(columns.nr_snapshots, dtype=np.int64)
    rate = np.zeros((columns.nr_snapshots, len(edges) - 1))
    cover = np.zeros_like(rate)
    ones = np.ones(len(each))
    _recread.heatmap_add(
        columns.regions, columns.offsets, edges, scale, each, each, ones, rate, cover
    )
    return rate, cover


def time_weights(start_ns, end_ns, edges):
    """Weight of each snapshot in each time bin: the overlap of [start, end)
    with the bin in ns; a zero-length snapshot counts as an instant (weight
    1) in the bin holding it, if inside.  Three arrays (snapshot, bin,
    weight) of the pairs that weigh, in snapshot order."""
    start_ns = np.asarray(start_ns, dtype=np.float64)
    end_ns = np.asarray(end_ns, dtype=np.float64)
    nbins = len(edges) - 1
    instant = end_ns <= start_ns
    snap, bins, w = _overlap_pairs(start_ns, np.where(instant, start_ns, end_ns), edges)
    keep = w > 0
    at = np.flatnonzero(instant & (start_ns >= edges[0]) & (start_ns <= edges[-1]))
    at_bin = np.clip(np.searchsorted(edges, start_ns[at], side="right") - 1, 0, nbins - 1)
    snap = np.concatenate((snap[keep], at))
    order = np.argsort(snap, kind="stable")
    bins = np.concatenate((bins[keep], at_bin))[order]
    return snap[order], bins, np.concatenate((w[keep], np.ones(len(at))))[order]


def to_jsonable(obj):
    """Turn report output (numpy arrays, NaN) into plain JSON values."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    return obj
