"""Record data accesses into a file that damonx and damo report on.

Targets: process ids (`damonx record 1234`), a command to start
(`damonx record -- CMD ARGS`: only what follows a literal -- is a command;
recording stops when it exits), fixed virtual ranges of a process
(`--ops fvaddr -r START-END 1234`), physical memory (`--ops paddr`, all
System RAM unless -r), or a simulated workload (`--ops sim --workload W.json`,
simulated time).

The output (-o) is a new path, or with --overwrite an existing regular file;
symbolic links, devices and pipes are refused.  It is written under a hidden
temporary name (.damonx-XXXXXXXXXXXX.tmp) in its directory and takes the
output's name with the first snapshot: a recording that fails or is stopped
before then leaves an existing output as it was.  Ctrl-C or SIGTERM ends the
recording with a complete file; a killed recorder leaves what it wrote at the
output (read it with `damonx report ... --allow_partial`), or, killed before
the first snapshot, the old output and the temporary file.
"""

import argparse
import os
import re
import resource
import signal
import subprocess
import sys
import time

from damonx import errors, units
from damonx.cli import _args


def parse_regions(texts):
    """['0x1000-0x2000', '4096-8192'] (also comma separated) -> [(start, end)]."""
    out = []
    for text in texts:
        for part in re.split(r"[,\s]+", text.strip()):
            if not part:
                continue
            try:
                s, e = (int(x, 0) for x in part.split("-"))
            except ValueError:
                raise errors.InvalidAttrs(f"bad region {part!r}: use START-END") from None
            out.append((s, e))
    return out


def set_argparser(parser):
    parser.usage = "%(prog)s [OPTIONS] PID [PID ...]\n       %(prog)s [OPTIONS] -- CMD [ARGS ...]"
    parser.add_argument(
        "target",
        nargs="*",
        type=_args.pid,
        metavar="PID",
        help="process ids; or, after a literal --, a command to start: -- CMD ARGS",
    )
    parser.add_argument(
        "--ops",
        choices=["vaddr", "fvaddr", "paddr", "sim"],
        help="operations set (default: vaddr, or sim with --workload)",
    )
    parser.add_argument(
        "--workload", type=_args.path, metavar="FILE.json", help="simulated workload (ops sim)"
    )
    parser.add_argument(
        "--monitoring_intervals",
        nargs=3,
        metavar=("SAMPLE", "AGGR", "UPDATE"),
        default=["5ms", "100ms", "1s"],
        help="sampling, aggregation and regions update intervals "
        "(microseconds, or with a unit: 5ms 100ms 1s)",
    )
    parser.add_argument(
        "--monitoring_nr_regions_range",
        nargs=2,
        type=_args.nr_regions,
        metavar=("MIN", "MAX"),
        default=[10, 1000],
        help="minimum and maximum number of regions",
    )
    parser.add_argument(
        "-r",
        "--regions",
        action="append",
        default=[],
        metavar="START-END",
        help="monitoring ranges for fvaddr and paddr",
    )
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
    parser.add_argument(
        "--seed", type=_args.seed, default=0, help="random seed of the sampling (0 to 2^64-1)"
    )
    parser.add_argument("--procfs", type=_args.path, default="/proc", help=argparse.SUPPRESS)
    parser.add_argument("--sysfs", type=_args.path, default="/sys", help=argparse.SUPPRESS)
    parser.add_argument("--quiet", action="store_true", help="no progress line")


def build_monitor(args, attrs):
    import damonx

    cmd = None
    command_line = args.command_line or []
    if args.command_line == []:
        raise errors.InvalidAttrs("-- needs a command after it: damonx record -- CMD ARGS")
    if args.target and command_line:
        raise errors.InvalidAttrs("give process ids or a command after --, not both")
    if args.workload:
        if args.ops not in (None, "sim"):
            raise errors.InvalidAttrs("--workload goes with --ops sim")
        if args.target or command_line:
            raise errors.InvalidAttrs("--ops sim takes a workload, no process")
        if args.regions:
            raise errors.InvalidAttrs("-r goes with --ops fvaddr or paddr")
        wl = damonx.Workload.load(args.workload)
        return (
            damonx.Monitor("sim", wl, attrs, seed=args.seed),
            {"ops": "sim", "workload": wl.to_dict()},
            None,
        )
    ops = args.ops or "vaddr"
    if ops == "sim":
        raise errors.InvalidAttrs("--ops sim needs --workload FILE.json")
    regions = parse_regions(args.regions)
    if ops == "paddr":
        if args.target or command_line:
            raise errors.InvalidAttrs(
                "paddr takes no process; give ranges with -r or none for all RAM"
            )
        return (
            damonx.Monitor(
                "paddr",
                regions or None,
                attrs,
                seed=args.seed,
                procfs=args.procfs,
                sysfs=args.sysfs,
            ),
            {"ops": "paddr"},
            None,
        )
    if not args.target and not command_line:
        raise errors.InvalidAttrs("give process ids, or a command after --")
    if args.target:
        pids = list(args.target)
    else:
        # checked before the command starts, so a missing capability
        # does not leave a started command behind
        from damonx import features

        features.require(ops, args.procfs, args.sysfs)
        try:
            cmd = subprocess.Popen(command_line)
        except OSError as err:
            raise errors.DamonxError(f"cannot start {command_line[0]}: {err.strerror}") from None
        pids = [cmd.pid]
    meta = {"ops": ops, "pids": pids}
    if cmd is not None:
        meta["command"] = command_line
    try:
        if ops == "fvaddr":
            if not regions:
                raise errors.InvalidAttrs("fvaddr needs ranges: -r START-END")
            mon = damonx.Monitor(
                "fvaddr",
                {p: regions for p in pids},
                attrs,
                seed=args.seed,
                procfs=args.procfs,
                sysfs=args.sysfs,
            )
        else:
            if regions:
                raise errors.InvalidAttrs("-r goes with --ops fvaddr or paddr")
            mon = damonx.Monitor(
                "vaddr", pids, attrs, seed=args.seed, procfs=args.procfs, sysfs=args.sysfs
            )
    except BaseException:
        if cmd is not None:
            cmd.kill()
            cmd.wait()
        raise
    return mon, meta, cmd


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
    import damonx
    from damonx.records import RecordWriter

    sample, aggr, update = (
        units.parse_duration_us(x, f"--monitoring_intervals {name}")
        for x, name in zip(args.monitoring_intervals, ("SAMPLE", "AGGR", "UPDATE"))
    )
    lo, hi = args.monitoring_nr_regions_range
    attrs = damonx.Attrs(
        sample_us=sample, aggr_us=aggr, ops_update_us=update, min_nr_regions=lo, max_nr_regions=hi
    )
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
        mon, meta, cmd = build_monitor(args, attrs)
    except BaseException:
        writer.abort()
        raise
    writer.meta.update(meta)
    # Ctrl-C and SIGTERM stop the loop at its next sample; the file is then
    # finished by the normal path, never cut in the middle of a write
    stopped = []

    def stop(signum, frame):
        stopped.append(signal.Signals(signum).name)
        mon.stop()

    old_handlers = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    progress = Progress(sys.stderr.isatty() and not args.quiet, writer)
    n = 0
    reason = "no target left"
    ok = False
    try:
        t0 = None
        for snap in mon:
            t0 = snap.start_ns if t0 is None else t0
            for tid, regions in snap.targets.items():
                writer.add_snapshot(tid, snap.start_ns, snap.end_ns, regions)
            n += 1
            progress.update(
                n, snap.nr_regions, (snap.end_ns - t0) / 1e9 if meta["ops"] == "sim" else None
            )
            if timeout is not None and snap.end_ns - t0 >= timeout * 1e9:
                reason = "timeout"
                break
        ok = True
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        if ok and n:
            writer.close()
        else:
            # keeps what was recorded, or the old output if nothing was
            writer.abort()
        mon.close()
        if stopped:
            reason = f"stopped by {stopped[0]}"
        if cmd is not None and cmd.poll() is None:
            cmd.terminate()
            try:
                cmd.wait(5)
            except subprocess.TimeoutExpired:
                cmd.kill()
                cmd.wait()
    progress.update(n, 0, force=True)
    progress.done()
    if not n:
        left = "left as it was" if os.path.lexists(args.out) else "not written"
        raise errors.DamonxError(f"no snapshot recorded ({reason}); {args.out} {left}")
    if not args.quiet:
        print(f"damonx record: {n} snapshots to {args.out} ({reason})", file=sys.stderr)
    return 0
