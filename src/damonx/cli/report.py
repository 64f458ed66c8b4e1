"""Show a record file (damo json_compressed, json, or the seed binary format).

Report types: raw (every snapshot as text), access (the regions of one
snapshot), heatmap (access rate over time and address), wss (working set
size), nr_regions (number of regions) and footprint (total size of the
monitored regions).  Every type takes --json.
"""

import argparse
import json
import math
import os
import sys

import numpy as np

from damonx import errors
from damonx.cli import _args
from damonx.errors import DamonxError

TYPES = ("raw", "access", "heatmap", "wss", "nr_regions", "footprint")


def _percentiles(args):
    if args.range is not None:
        start, stop, step = args.range
        if step <= 0:
            raise DamonxError("--range step must be positive")
        base = list(range(start, stop, step))
        if not base:
            raise DamonxError(f"--range {start} {stop} {step} gives no percentile")
    else:
        base = [0, 25, 50, 75, 100]
    extra = args.percentiles or []
    return sorted(set(base) | set(extra))


def add_input(p):
    """-i/--input: the record file."""
    p.add_argument(
        "-i",
        "--input",
        type=_args.path,
        default="damon.data",
        metavar="FILE",
        help="record file (default: damon.data)",
    )


def add_allow_partial(p, what="report on"):
    """--allow_partial: ``what`` to do with the readable prefix of a damaged file."""
    p.add_argument(
        "--allow_partial",
        action="store_true",
        help=f"{what} the readable prefix of a truncated or damaged file "
        "(e.g. left by a killed recorder) instead of failing",
    )


def _add_common(p):
    add_input(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_allow_partial(p)
    p.add_argument(
        "--target_id", type=_args.target_id, metavar="ID", help="only this target (default: all)"
    )
    p.add_argument(
        "--raw_number",
        action="store_true",
        help="print plain numbers instead of human-readable units",
    )


def _add_dist(p, what):
    p.add_argument(
        "--percentiles",
        type=_args.percentile,
        nargs="+",
        metavar="P",
        help=f"percentiles of the {what} to show, added to 0 25 50 75 100",
    )
    p.add_argument(
        "-r",
        "--range",
        type=_args.int_in(0, 101, "a percentile bound from 0 to 101"),
        nargs=3,
        metavar=("START", "STOP", "STEP"),
        help="percentiles to show as range(START, STOP, STEP), like damo",
    )
    p.add_argument(
        "-s",
        "--sortby",
        choices=["size", "time"],
        default="size",
        help="size: percentiles of the sorted values; time: the values at "
        "those positions in time order (default: size)",
    )
    p.add_argument("--all", action="store_true", help="print every snapshot's value")
    p.add_argument(
        "--exclude_samples",
        type=_args.int_in(0, _args.U64_MAX),
        default=0,
        metavar="N",
        help="leave out the first N snapshots of each target, e.g. while the "
        "regions settle (default 0: all; damo's default is 20)",
    )
    p.add_argument(
        "--nr_cols_bar",
        type=_args.int_in(0, 1000),
        default=59,
        metavar="N",
        help="width of the bars (0: none)",
    )
    p.add_argument(
        "--output",
        "-o",
        type=_args.path,
        metavar="FILE.svg|FILE.png",
        help="also plot the time series to an image",
    )


def set_argparser(parser):
    sub = parser.add_subparsers(dest="report_type", metavar="TYPE", required=True)
    p = sub.add_parser("raw", help="every snapshot, as damo's report raw prints it")
    _add_common(p)

    p = sub.add_parser("access", help="regions of one snapshot with access rate and age")
    _add_common(p)
    p.add_argument(
        "--snapshot",
        type=_args.int_in(-(2**63), 2**63 - 1),
        default=-1,
        metavar="INDEX",
        help="snapshot index, negative counts from the end (default: -1, the last)",
    )
    p.add_argument(
        "--sortby",
        choices=["address", "access_rate", "age", "size"],
        default="address",
        help="region order (default: address)",
    )

    p = sub.add_parser("heatmap", help="access rate over time and address")
    _add_common(p)
    p.add_argument(
        "--resol",
        type=_args.int_in(1, 100_000),
        nargs=2,
        metavar=("TIME", "ADDR"),
        help="number of time rows and address columns (default: 20 80 on "
        "the terminal, 200 300 for images)",
    )
    p.add_argument(
        "--address_range",
        nargs="+",
        metavar="ADDR",
        help="START END in bytes (decimal or 0x hex), or 'all' for the whole "
        "span; default: the largest contiguous range the regions cover",
    )
    p.add_argument(
        "--time_range",
        type=_args.float_in(0, _args.U64_MAX / 1e9, "a finite number of seconds, at least 0"),
        nargs=2,
        metavar=("START", "END"),
        help="seconds since the start of the record",
    )
    p.add_argument(
        "--output",
        "-o",
        type=_args.path,
        metavar="FILE.svg|FILE.png",
        help="write an image instead of printing",
    )
    p.add_argument(
        "--color",
        choices=["auto", "none", "gray"],
        default="auto",
        help="terminal colours (auto: gray when stdout is a terminal)",
    )

    p = sub.add_parser("wss", help="working set size: size of the regions accessed")
    _add_common(p)
    _add_dist(p, "working set size")
    p.add_argument(
        "-t",
        "--acc_thres",
        type=_args.int_in(0, _args.U32_MAX),
        default=1,
        metavar="N",
        help="minimum nr_accesses of a region in the working set (default: 1)",
    )
    p.add_argument(
        "--sz_thres",
        type=_args.int_in(0, _args.U64_MAX),
        default=1,
        metavar="BYTES",
        help="minimum region size in the working set (default: 1)",
    )

    p = sub.add_parser("nr_regions", help="number of regions per snapshot")
    _add_common(p)
    _add_dist(p, "number of regions")

    p = sub.add_parser(
        "footprint",
        help="monitored footprint: total size of the regions of each "
        "snapshot (the address space covered, not resident memory)",
    )
    _add_common(p)
    _add_dist(p, "footprint")
    for p in sub.choices.values():
        p.set_defaults(_subparser=p)  # the parser that reports a stray argument


def _load(args, **selection):
    """The record of --input; ``selection`` (see records.load) keeps only a
    part of it, while reading."""
    from damonx import records

    if not os.path.exists(args.input):
        raise errors.FileNotFound(f"record file {args.input} does not exist (give one with -i)")
    rec = records.load(args.input, partial_ok=args.allow_partial, **selection)
    if rec.warning:
        print(
            f"damonx report: warning: {rec.warning}; reporting what was readable", file=sys.stderr
        )
    return rec


def _print_json(obj):
    from damonx.reports import to_jsonable

    print(json.dumps(to_jsonable(obj), indent=1))


def main(args):
    from damonx import reports

    kind = args.report_type
    if kind == "heatmap":
        return _heatmap(args)
    # --exclude_samples counts times from the first snapshot left of any target
    every_target = args.target_id is None or bool(getattr(args, "exclude_samples", 0))
    rec = _load(args, target_ids=None if every_target else [args.target_id])
    if kind == "raw":
        if args.target_id is not None:
            rec.target(args.target_id)  # says which targets there are, if not this one
        if args.json:
            from damonx.records import dumps

            _print_json(json.loads(dumps(rec, "json")))
        else:
            text = reports.raw(rec, args.raw_number)
            sys.stdout.write(text)
        return 0
    if kind == "access":
        res = reports.access(rec, args.snapshot, args.target_id, args.sortby)
        if args.json:
            _print_json(res)
        else:
            _print_access(res, rec, args.raw_number)
        return 0
    rec = _exclude_first(rec, args.exclude_samples)
    fn = {
        "wss": lambda: reports.wss(
            rec, args.acc_thres, args.target_id, _percentiles(args), args.sortby, args.sz_thres
        ),
        "nr_regions": lambda: reports.nr_regions(
            rec, args.target_id, _percentiles(args), args.sortby
        ),
        "footprint": lambda: reports.footprint(
            rec, args.target_id, _percentiles(args), args.sortby
        ),
    }[kind]
    res = fn()
    if args.json:
        _print_json(res)
    else:
        _print_dist(res, kind, args)
    if args.output:
        from damonx import render

        for n, r in enumerate(res):
            path = _nth_path(args.output, n)
            label = {
                "wss": "working set size",
                "footprint": "monitored footprint",
                "nr_regions": "number of regions",
            }[kind]
            render.save_series(
                r["time_ns"],
                r[kind],
                path,
                label,
                f"{label}, target {r['target_id']}",
                unit="count" if kind == "nr_regions" else "bytes",
            )
            print(f"wrote {path}", file=sys.stderr)
    return 0


def _exclude_first(rec, n):
    from damonx.records import Record

    if n < 0:
        raise DamonxError("--exclude_samples must not be negative")
    if not n:
        return rec
    short = [t.target_id for t in rec.targets if t.nr_snapshots <= n]
    if short:
        raise DamonxError(
            f"target {short[0]} has no more than {n} snapshots; lower --exclude_samples"
        )
    rest = [t.take(slice(n, None)) for t in rec.targets]
    return Record(rec.intervals, rest, rec.meta, rec.warning)


def _nth_path(path, n):
    if n == 0:
        return path
    root, ext = os.path.splitext(path)
    return f"{root}.{n}{ext}"


def _print_access(res, rec, raw):
    from damonx.units import format_duration_ns, format_size

    if rec.intervals is None:
        print("# the record has no monitoring intervals: access rates are unknown")
    for r in res:
        start_s = format_duration_ns(r["start_ns"], raw)
        end_s = format_duration_ns(r["end_ns"], raw)
        print(
            f"# target {r['target_id']}, snapshot {r['snapshot']} of {r['nr_snapshots']}, "
            f"time [{start_s}, {end_s})"
        )
        print(f"# {'address range':<27} {'size':>12} {'nr_accesses':>11} {'access':>8} {'age':>12}")
        for g in r["regions"]:
            rate = f"{g['access_rate']:7.2f}%" if g["access_rate"] is not None else "     n/a"
            age = (
                format_duration_ns(g["age_us"] * 1000, raw)
                if g["age_us"] is not None
                else f"{g['age']} aggr"
            )
            size = format_size(g["size"], raw)
            print(
                f"{g['start']:012x}-{g['end']:012x}   {size:>12} {g['nr_accesses']:11d} "
                f"{rate:>8} {age:>12}"
            )
        mean = f"{r['mean_access_rate']:.2f}%" if r["mean_access_rate"] is not None else "n/a"
        print(
            f"# nr_regions: {r['nr_regions']}  total size: {format_size(r['total_size'], raw)}"
            f"  accessed: {format_size(r['accessed_size'], raw)}  mean access rate: {mean}"
        )
        print()


def _print_dist(res, kind, args):
    from damonx.units import format_size

    fmt = (lambda v, raw: str(int(v))) if kind == "nr_regions" else format_size
    for r in res:
        vals = r[kind]
        d = r["distribution"]
        print(f"# target_id\t{r['target_id']}")
        print(f"# <percentile> <{kind}>")
        print(f"# avr:\t{fmt(d['avg'], args.raw_number)}")
        if args.all:
            for t, v in zip(r["time_ns"], vals):
                print(f"{t} {fmt(v, args.raw_number)}")
            continue
        vmax = max((v for _, v in d["percentiles"]), default=0)
        for p, v in d["percentiles"]:
            line = f"{p:>3g} {fmt(v, args.raw_number):>15}"
            if args.nr_cols_bar > 0:
                cols = int(v / vmax * args.nr_cols_bar) if vmax else 0
                line += " |" + "*" * cols + " " * (args.nr_cols_bar - cols) + "|"
            print(line)


def parse_address_range(vals):
    if vals is None:
        return None
    if len(vals) == 1 and vals[0] == "all":
        return "all"
    if len(vals) != 2:
        raise DamonxError("--address_range takes START END or 'all'")
    try:
        start, end = (int(v, 0) for v in vals)
    except ValueError:
        raise DamonxError(f"--address_range: not addresses: {' '.join(vals)}") from None
    if not 0 <= start < end <= 2**64:
        raise DamonxError(f"--address_range: [{start:#x}, {end:#x}) is empty or outside 64 bits")
    return start, end


#: how much more than --time_range a heatmap reads, in ns: the snapshots
#: the map gives weight to, whatever the rounding of float times
_TIME_MARGIN_NS = 1_000_000


def _heatmap(args):
    from damonx import reports

    image = args.output is not None
    tbins, abins = args.resol if args.resol else ((200, 300) if image else (20, 80))
    trange = read_trange = None
    if args.time_range:
        trange = (args.time_range[0] * 1e9, args.time_range[1] * 1e9)
        read_trange = (
            max(0, math.floor(trange[0]) - _TIME_MARGIN_NS),
            min(2**64, math.ceil(trange[1]) + _TIME_MARGIN_NS),
        )
    arange = parse_address_range(args.address_range)
    rec = _load(
        args,
        target_ids=None if args.target_id is None else [args.target_id],
        time_range=read_trange,
        address_range=arange if isinstance(arange, tuple) else None,
    )
    res = reports.heatmap(rec, args.target_id, tbins, abins, arange, trange)
    if args.json:
        _print_json(res)
        return 0
    if image:
        from damonx import render

        for n, hm in enumerate(res):
            path = _nth_path(args.output, n)
            render.save_heatmap(hm, path)
            print(f"wrote {path}", file=sys.stderr)
        return 0
    color = args.color
    if color == "auto":
        color = "gray" if sys.stdout.isatty() else "none"
    for hm in res:
        print(text_heatmap(hm, color, args.raw_number))
    return 0


def text_heatmap(hm, color="none", raw=False):
    """Terminal heatmap: one row per time bin, characters 0-9 (blank: no region)."""
    from damonx.units import format_duration_ns, format_size

    vals = np.asarray(hm["values"], dtype=float)
    finite = vals[np.isfinite(vals)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 0.0
    lines = []
    for row in vals:
        chars = []
        for v in row:
            if not np.isfinite(v):
                chars.append(" ")
                continue
            level = int((v - lo) / (hi - lo) * 9) if hi > lo else 0
            ch = str(min(max(level, 0), 9))
            if color == "gray":
                ch = f"\x1b[48;5;{232 + level * 2}m\x1b[38;5;{237 + level * 2}m{ch}"
            chars.append(ch)
        lines.append("".join(chars) + ("\x1b[0m" if color == "gray" else ""))
    a0, a1 = hm["address_range"]
    t0, t1 = hm["time_range_ns"]
    nt, na = vals.shape
    unit = "%" if hm["unit"] == "percent" else " nr_accesses"
    lines.append(
        f"# target {hm['target_id']}; access rate 0-9: {lo:.3g}-{hi:.3g}{unit}, "
        "blank: not monitored"
    )
    lines.append(f"# x-axis: space [{a0:#x}, {a1:#x}) ({format_size(a1 - a0, raw)})")
    lines.append(
        f"# y-axis: time [{format_duration_ns(t0, raw)}, {format_duration_ns(t1, raw)}) "
        f"({format_duration_ns(t1 - t0, raw)})"
    )
    lines.append(
        f"# resolution: {na}x{nt} ({format_size((a1 - a0) / na, raw)} and "
        f"{format_duration_ns((t1 - t0) / nt, raw)} for each character)"
    )
    others = [u for u in hm["address_unions"] if u != [a0, a1]]
    if others:
        lines.append(
            "# other monitored address ranges (see --address_range): "
            + ", ".join(f"[{s:#x}, {e:#x})" for s, e in others[:8])
            + (" ..." if len(others) > 8 else "")
        )
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover
    ap = argparse.ArgumentParser()
    set_argparser(ap)
    sys.exit(main(ap.parse_args()))
