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
"""

import os
import resource
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
        choices=["json_compressed", "json", "binary"],
        help="file format (default json_compressed, which damo reads)",
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


class Progress:
    """One status line on a terminal, refreshed once a second."""

    def __init__(self, enabled, writer):
        self.enabled = enabled
        self.writer = writer
        self.t0 = time.monotonic()
        self.last = 0.0

    def update(self, nr_snapshots, nr_regions, sim_s=None, force=False):
        now = time.monotonic()
        if not self.enabled or (now - self.last < 1.0 and not force):
            return
        self.last = now
        ru = resource.getrusage(resource.RUSAGE_SELF)
        size = self.writer.size
        sim = f" simulated {sim_s:.1f} s," if sim_s is not None else ""
        sys.stderr.write(
            f"\rrecording {now - self.t0:6.1f} s,{sim} {nr_snapshots} snapshots, "
            f"{nr_regions} regions, {size / 1024:.0f} KiB written, "
            f"monitor CPU {ru.ru_utime + ru.ru_stime:.2f} s   "
        )
        sys.stderr.flush()

    def done(self):
        if self.enabled:
            sys.stderr.write("\n")


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
    progress = Progress(sys.stderr.isatty() and not args.quiet, writer)
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
                        nr_checks=snap.nr_checks,
                        damos_stats=snap.scheme_stats,
                    )
                n += 1
                progress.update(
                    n, snap.nr_regions, (snap.end_ns - t0) / 1e9 if meta["ops"] == "sim" else None
                )
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
    progress.update(n, 0, force=True)
    progress.done()
    if not n:
        left = "left as it was" if os.path.lexists(args.out) else "not written"
        raise errors.DamonxError(f"no snapshot recorded ({reason}); {args.out} {left}")
    if not args.quiet:
        print(f"damonx record: {n} snapshots to {args.out} ({reason})", file=sys.stderr)
    return 0
