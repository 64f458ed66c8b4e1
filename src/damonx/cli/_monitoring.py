"""What every monitoring command shares: the targets, the monitoring
attributes, opening the monitor, and stopping it cleanly.

A command that monitors (``record``, and every later one) calls
``add_target_options`` and ``add_monitoring_options`` in its
``set_argparser``, then ``open_monitor(args)`` and runs the loop inside
``stopping_on_signals(mon, cmd)``.  A new monitoring option goes here, once,
and reaches every such command.
"""

import argparse
import contextlib
import re
import signal
import subprocess

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


def add_target_options(parser, command):
    """The targets: pids, a command after --, --ops, --workload and -r."""
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
        "--backend",
        choices=["auto", "page_idle", "kernel"],
        default="auto",
        help="page_idle: damonx's own access checks; kernel: the kernel's DAMON through "
        "its sysfs interface; auto (default): the first of them that can run here",
    )
    parser.add_argument(
        "--workload", type=_args.path, metavar="FILE.json", help="simulated workload (ops sim)"
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
        "--seed", type=_args.seed, default=0, help="random seed of the sampling (0 to 2^64-1)"
    )
    parser.add_argument("--procfs", type=_args.path, default="/proc", help=argparse.SUPPRESS)
    parser.add_argument("--sysfs", type=_args.path, default="/sys", help=argparse.SUPPRESS)
    parser.set_defaults(_monitoring_command=command)


def add_monitoring_options(parser):
    """The monitoring attributes, with damo's option names, and the CPU
    budget."""
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
    tuning = parser.add_mutually_exclusive_group()
    tuning.add_argument(
        "--monitoring_intervals_goal",
        nargs=4,
        metavar=("ACCESS_BP", "AGGRS", "MIN_SAMPLE", "MAX_SAMPLE"),
        help="auto-tune the sampling and aggregation intervals together, as the "
        "kernel does (6.15+): aim for ACCESS_BP basis points (or a percentage: 4%%) "
        "of the access events an aggregation could find, retuning every AGGRS "
        "aggregations, the sampling interval within MIN_SAMPLE and MAX_SAMPLE "
        "(microseconds, or 5ms 10s)",
    )
    tuning.add_argument(
        "--monitoring_intervals_autotune",
        action="store_true",
        help="--monitoring_intervals_goal 4%% 3 5ms 10s (damo's and DAMON_STAT's goal)",
    )
    parser.add_argument(
        "--cpu_budget",
        type=_args.cpu_budget,
        metavar="PERCENT",
        help="keep the monitor's CPU time (all of the process: the loop, the "
        "snapshots, the output) near or under PERCENT of one CPU, by stretching "
        "both intervals together and, past a sampling interval of 1 s (or the "
        "goal's MAX_SAMPLE), lowering the region limit; with an intervals goal, "
        "a ceiling the goal steers below",
    )


def parse_access_bp(text, what):
    """An access ratio in basis points: ``400``, ``400bp`` or ``4%``."""
    t = text.strip()
    try:
        if t.endswith("%"):
            value = float(t[:-1]) * 100
        else:
            value = float(t[:-2] if t.endswith("bp") else t)
    except ValueError:
        value = float("nan")
    if not (value == value and 1 <= value <= 10000 and value == round(value)):
        raise errors.InvalidAttrs(
            f"{what} {text!r} is not an access ratio: give basis points from 1 to 10000 "
            "(400) or a percentage (4%)"
        )
    return int(value)


def intervals_goal_from_args(args):
    """The ``damonx.IntervalsGoal`` of the options, or None."""
    from damonx.attrs import IntervalsGoal

    if args.monitoring_intervals_autotune:
        return IntervalsGoal()
    if not args.monitoring_intervals_goal:
        return None
    access, aggrs, lo, hi = args.monitoring_intervals_goal
    what = "--monitoring_intervals_goal"
    if not aggrs.isdigit() or int(aggrs) < 1:
        raise errors.InvalidAttrs(
            f"{what} AGGRS {aggrs!r} is not a number of aggregations (1 or more)"
        )
    return IntervalsGoal(
        access_bp=parse_access_bp(access, f"{what} ACCESS_BP"),
        aggrs=int(aggrs),
        min_sample_us=units.parse_duration_us(lo, f"{what} MIN_SAMPLE"),
        max_sample_us=units.parse_duration_us(hi, f"{what} MAX_SAMPLE"),
    )


def attrs_from_args(args):
    """The ``damonx.Attrs`` the monitoring options ask for."""
    import damonx

    sample, aggr, update = (
        units.parse_duration_us(x, f"--monitoring_intervals {name}")
        for x, name in zip(args.monitoring_intervals, ("SAMPLE", "AGGR", "UPDATE"))
    )
    lo, hi = args.monitoring_nr_regions_range
    return damonx.Attrs(
        sample_us=sample,
        aggr_us=aggr,
        ops_update_us=update,
        min_nr_regions=lo,
        max_nr_regions=hi,
        intervals_goal=intervals_goal_from_args(args),
        cpu_budget=args.cpu_budget,
    )


def _with_schemes(mon, schemes):
    """mon, with the schemes added (closed if one is refused)."""
    try:
        for scheme in schemes:
            mon.add_scheme(scheme)
    except BaseException:
        mon.close()
        raise
    return mon


def open_monitor(args, attrs, schemes=(), real_time=False):
    """The monitor, the record's metadata and the started command (or None)
    the target options ask for, with schemes added; ``real_time`` runs sim
    in real time."""
    import damonx

    cmd = None
    command_line = args.command_line or []
    if args.command_line == []:
        raise errors.InvalidAttrs(
            f"-- needs a command after it: damonx {args._monitoring_command} -- CMD ARGS"
        )
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
        mon = damonx.Monitor(
            "sim", wl, attrs, seed=args.seed, backend=args.backend, real_time=real_time
        )
        meta = {"ops": "sim", "backend": mon.backend, "workload": wl.to_dict()}
        return _with_schemes(mon, schemes), meta, None
    ops = args.ops or "vaddr"
    if ops == "sim":
        raise errors.InvalidAttrs("--ops sim needs --workload FILE.json")
    regions = parse_regions(args.regions)
    if ops == "paddr":
        if args.target or command_line:
            raise errors.InvalidAttrs(
                "paddr takes no process; give ranges with -r or none for all RAM"
            )
        mon = damonx.Monitor(
            "paddr",
            regions or None,
            attrs,
            seed=args.seed,
            procfs=args.procfs,
            sysfs=args.sysfs,
            backend=args.backend,
        )
        return _with_schemes(mon, schemes), {"ops": "paddr", "backend": mon.backend}, None
    if not args.target and not command_line:
        raise errors.InvalidAttrs("give process ids, or a command after --")
    if args.target:
        pids = list(args.target)
    else:
        # checked before the command starts, so a missing capability
        # does not leave a started command behind
        from damonx import backend

        backend.require(args.backend, ops, args.procfs, args.sysfs)
        try:
            cmd = subprocess.Popen(command_line)
        except OSError as err:
            raise errors.DamonxError(f"cannot start {command_line[0]}: {err.strerror}") from None
        pids = [cmd.pid]
    meta = {"ops": ops, "pids": pids}
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
                backend=args.backend,
            )
        else:
            if regions:
                raise errors.InvalidAttrs("-r goes with --ops fvaddr or paddr")
            mon = damonx.Monitor(
                "vaddr",
                pids,
                attrs,
                seed=args.seed,
                procfs=args.procfs,
                sysfs=args.sysfs,
                backend=args.backend,
            )
        _with_schemes(mon, schemes)
    except BaseException:
        if cmd is not None:
            cmd.kill()
            cmd.wait()
        raise
    meta["backend"] = mon.backend
    if cmd is not None:
        meta["command"] = command_line
    return mon, meta, cmd


@contextlib.contextmanager
def stopping_on_signals(mon, cmd=None):
    """Run a monitoring loop in the block: Ctrl-C and SIGTERM stop it at its
    next sample (the block then ends by its normal path, never in the middle
    of a write).  Yields a list that holds the name of the signal that
    stopped it, if any.  On the way out the monitor is closed and a command
    damonx started is terminated (killed if it does not end within 5 s)."""
    stopped = []

    def stop(signum, frame):
        stopped.append(signal.Signals(signum).name)
        mon.stop()

    old_handlers = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stopped
    finally:
        for sig, handler in old_handlers.items():
            signal.signal(sig, handler)
        mon.close()
        if cmd is not None and cmd.poll() is None:
            cmd.terminate()
            try:
                cmd.wait(5)
            except subprocess.TimeoutExpired:
                cmd.kill()
                cmd.wait()


def read_process(pid, procfs="/proc"):
    """comm and cmdline (a list) of a process, each left out when unreadable."""
    import os

    out: dict[str, object] = {}
    try:
        with open(os.path.join(procfs, str(pid), "comm"), "rb") as f:
            out["comm"] = f.read().decode(errors="replace").rstrip("\n")
        with open(os.path.join(procfs, str(pid), "cmdline"), "rb") as f:
            out["cmdline"] = [a.decode(errors="replace") for a in f.read().split(b"\0")[:-1]]
    except OSError:
        pass
    return out


def provenance(meta, procfs="/proc"):
    """What a record or an exporter says of where its data comes from: the
    host, the damonx version, the backend and, per process, comm and cmdline."""
    import socket

    import damonx

    out: dict[str, object] = {
        "host": socket.gethostname(),
        "damonx_version": damonx.__version__,
        "backend": meta["backend"],
    }
    if meta.get("pids"):
        out["processes"] = {str(p): read_process(p, procfs) for p in meta["pids"]}
    return out
