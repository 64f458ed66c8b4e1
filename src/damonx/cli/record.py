"""Record data accesses into a file that damonx and damo report on.

Targets: process ids (`damonx record 1234`), a command to start
(`damonx record -- CMD ARGS`: only what follows a literal -- is a command;
recording stops when it exits), fixed virtual ranges of a process
(`--ops fvaddr -r START-END 1234`), physical memory (`--ops paddr`, all
System RAM unless -r), or a simulated workload (`--ops sim --workload W.json`,
simulated time).

With damo's --damos_* options (or --kdamonds FILE), schemes act while
recording, as with `damonx start`, and each snapshot carries their
statistics (damo's damos_stats).

The output (-o) is a new path, or with --overwrite an existing regular file;
symbolic links, devices and pipes are refused.  It is written under a hidden
temporary name (.damonx-XXXXXXXXXXXX.tmp) in its directory and takes the
output's name with the first snapshot: a recording that fails or is stopped
before then leaves an existing output as it was.  Ctrl-C or SIGTERM ends the
recording with a complete file; a killed recorder leaves what it wrote at the
output (read it with `damonx report ... --allow_partial`), or, killed before
the first snapshot, the old output and the temporary file.

--format parquet (needs pyarrow: pip install 'damonx[arrow]') writes the
output as a directory of Parquet part files (part-00000.parquet, ...), one
every 10 s or 1000 snapshots, for long recordings and data engines (DuckDB:
SELECT ... FROM read_parquet('OUT/*.parquet')).  Each part appears whole, so
a killed recorder loses only the snapshots of the part it was filling, and
what it leaves reads without --allow_partial.  --overwrite replaces a regular
file, or a directory that holds only *.parquet files.

Progress: on a terminal, a status line on stderr refreshed once a second, with
the intervals in effect (an intervals goal or a CPU budget tunes them) and the
monitor's CPU time.  With --json, the same as JSON lines on stdout instead,
one a second ({"event": "progress", ...}), and a last one when the recording
ends ({"event": "done", ...}: snapshots, reason, CPU time and share, the
intervals at the end and their range).
"""

import json
import os
import sys
import time

from damonx import errors
from damonx.cli import _args, _damos, _monitoring


def set_argparser(parser):
    _monitoring.add_target_options(parser, "record")
    _monitoring.add_monitoring_options(parser)
    _damos.add_scheme_options(parser)
    parser.add_argument(
        "-o",
        "--out",
        type=_args.path,
        default="damon.data",
        help="output file (default damon.data)",
    )
    parser.add_argument(
        "--format",
        "--output_type",
        dest="format",
        default="json_compressed",
        choices=_args.RECORD_FORMATS,
        help="file format (default json_compressed, which damo reads; parquet: a "
        "directory of Parquet files)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing regular file (with the first snapshot)",
    )
    parser.add_argument(
        "--timeout",
        type=_args.seconds,
        metavar="SECONDS",
        help="stop after this long (simulated time for sim; default 10 s there)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line")
    parser.add_argument(
        "--json",
        action="store_true",
        help="progress as JSON lines on stdout, once a second, and a last line "
        "with the result (instead of the status line)",
    )


def _bytes_at(path):
    """The size of a file, or of the files of a directory; 0 if neither."""
    if os.path.isdir(path):
        return sum(e.stat().st_size for e in os.scandir(path) if e.is_file())
    return os.path.getsize(path) if os.path.isfile(path) else 0


def _ms(us):
    return f"{us / 1000:g} ms" if us < 1_000_000 else f"{us / 1e6:g} s"


def _share(cpu_ns, span_ns):
    """CPU time as % of one CPU over a span, rounded; 0 for an empty span."""
    return round(100.0 * cpu_ns / span_ns, 3) if span_ns > 0 else 0.0


class Progress:
    """What the recording does, once a second: a status line on a terminal
    (line), or JSON lines on stdout (json_lines).  Times are the monitor's
    (simulated for sim); the CPU share is the monitor's CPU time over them."""

    def __init__(self, line, json_lines, writer, simulated):
        self.line, self.json_lines = line, json_lines
        self.writer, self.simulated = writer, simulated
        self.t0 = time.monotonic()
        self.last = 0.0
        self.nr_snapshots = 0
        self.snap = None
        self.start_ns = 0  # of the first snapshot
        self.sample_range = (0, 0)
        self.mark = None  # (end_ns, cpu_ns) at the last report

    def update(self, snap, nr_snapshots):
        if self.snap is None:
            self.start_ns = snap.start_ns
            self.sample_range = (snap.sample_us, snap.sample_us)
        self.nr_snapshots, self.snap = nr_snapshots, snap
        lo, hi = self.sample_range
        self.sample_range = (min(lo, snap.sample_us), max(hi, snap.sample_us))
        now = time.monotonic()
        if not (self.line or self.json_lines) or now - self.last < 1.0:
            return
        self.last = now
        mark = self.mark or (self.start_ns, 0)
        self.mark = (snap.end_ns, snap.cpu_ns)
        info = {
            "event": "progress",
            "elapsed_s": round(now - self.t0, 3),
            "monitored_s": round((snap.end_ns - self.start_ns) / 1e9, 3),
            "snapshots": nr_snapshots,
            "nr_regions": snap.nr_regions,
            "sample_us": snap.sample_us,
            "aggr_us": snap.aggr_us,
            "cpu_pct": _share(snap.cpu_ns - mark[1], snap.end_ns - mark[0]),
            "cpu_s": round(snap.cpu_ns / 1e9, 6),
            "bytes_written": self.writer.size,
        }
        if self.json_lines:
            print(json.dumps(info), flush=True)
            return
        sim = f" simulated {info['monitored_s']:.1f} s," if self.simulated else ""
        sys.stderr.write(
            f"\rrecording {info['elapsed_s']:6.1f} s,{sim} {nr_snapshots} snapshots, "
            f"{info['nr_regions']} regions, sample {_ms(snap.sample_us)} aggr "
            f"{_ms(snap.aggr_us)}, {info['bytes_written'] / 1024:.0f} KiB written, "
            f"monitor CPU {info['cpu_pct']:.1f}%   "
        )
        sys.stderr.flush()

    def done(self, out, reason):
        """The end: a new line after the status line, or the last JSON line."""
        if self.line and self.mark is not None:
            sys.stderr.write("\n")
        if not self.json_lines or self.snap is None:
            return
        snap = self.snap
        monitored_ns = snap.end_ns - self.start_ns
        result = {
            "event": "done",
            "out": out,
            "reason": reason,
            "elapsed_s": round(time.monotonic() - self.t0, 3),
            "monitored_s": round(monitored_ns / 1e9, 3),
            "snapshots": self.nr_snapshots,
            "cpu_s": round(snap.cpu_ns / 1e9, 6),
            "cpu_pct": _share(snap.cpu_ns, monitored_ns),
            "sample_us": snap.sample_us,
            "aggr_us": snap.aggr_us,
            "sample_us_min": self.sample_range[0],
            "sample_us_max": self.sample_range[1],
            "bytes_written": _bytes_at(out),
        }
        print(json.dumps(result), flush=True)


def main(args):
    from damonx.records import RecordWriter

    _damos.apply_kdamonds_context(args)
    schemes = _damos.schemes_from_args(args)
    attrs = _monitoring.attrs_from_args(args)
    timeout = args.timeout
    if timeout is None and args.workload:
        timeout = 10.0

    # the output is checked (and its temporary file created) first, so that
    # a bad -o starts no command; it replaces an existing file only with the
    # first snapshot
    writer = RecordWriter(
        args.out, args.format, intervals=attrs.intervals, overwrite=args.overwrite
    )
    try:
        mon, meta, cmd = _monitoring.open_monitor(args, attrs, schemes)
    except BaseException:
        writer.abort()
        raise
    writer.meta.update(meta)
    writer.meta.update(_monitoring.provenance(meta, args.procfs))
    progress = Progress(
        sys.stderr.isatty() and not args.quiet and not args.json,
        args.json,
        writer,
        meta["ops"] == "sim",
    )
    n = 0
    reason = "no target left"
    ok = False
    with _monitoring.stopping_on_signals(mon, cmd) as stopped:
        try:
            t0 = None
            for snap in mon:
                t0 = snap.start_ns if t0 is None else t0
                for tid, regions in snap.targets.items():
                    writer.add_snapshot(
                        tid,
                        snap.start_ns,
                        snap.end_ns,
                        regions,
                        sample_us=snap.sample_us,
                        nr_checks=snap.nr_checks_of(tid),
                        damos_stats=snap.scheme_stats,
                    )
                n += 1
                progress.update(snap, n)
                if timeout is not None and snap.end_ns - t0 >= timeout * 1e9:
                    reason = "timeout"
                    break
            ok = True
        finally:
            if ok and n:
                writer.close()
            else:
                # keeps what was recorded, or the old output if nothing was
                writer.abort()
    if stopped:
        reason = f"stopped by {stopped[0]}"
    progress.done(args.out, reason)
    if not n:
        left = "left as it was" if os.path.lexists(args.out) else "not written"
        raise errors.DamonxError(f"no snapshot recorded ({reason}); {args.out} {left}")
    if not args.quiet:
        print(f"damonx record: {n} snapshots to {args.out} ({reason})", file=sys.stderr)
    return 0
