"""Monitor and apply operation schemes in the foreground, as damo's
`start` does with the kernel's DAMON: `damonx start --damos_action pageout
--damos_access_rate 0 0 --damos_age 30s max 1234`.

Targets and monitoring options are those of `record`; the schemes are
damo's --damos_* options (one scheme per --damos_action), or damo's JSON or
YAML specification (--kdamonds FILE, as `damo args damon` prints it).  It
runs until Ctrl-C or SIGTERM (which stop the actions at once), --timeout,
or the exit of the targets.  The schemes' statistics are printed every
--stats_interval and at exit: one line per scheme, or with --json one JSON
line per report, `{"schemes": [{"action": ..., "stats": {...}}], ...}`.
"""

import json
import sys

from damonx import errors, units
from damonx.cli import _args, _damos, _monitoring


def set_argparser(parser):
    _monitoring.add_target_options(parser, "start")
    _monitoring.add_monitoring_options(parser)
    _damos.add_scheme_options(parser)
    parser.add_argument(
        "--timeout",
        type=_args.seconds,
        metavar="SECONDS",
        help="stop after this long (simulated time for sim; default 10 s there)",
    )
    parser.add_argument(
        "--stats_interval",
        type=_args.seconds,
        default=1.0,
        metavar="SECONDS",
        help="print the schemes' statistics this often (default 1 s), and at exit",
    )
    parser.add_argument(
        "--json", action="store_true", help="statistics as one JSON line per report"
    )


def format_stats(stats, elapsed_s, as_json):
    """One report of the schemes' statistics (a line of JSON, or a line per
    scheme)."""
    if as_json:
        return json.dumps(
            {
                "elapsed_s": round(elapsed_s, 6),
                "schemes": [
                    {
                        "action": st["action"],
                        "stats": {k: v for k, v in st.items() if k != "action"},
                    }
                    for st in stats
                ],
            }
        )
    lines = []
    for i, st in enumerate(stats):
        fails = f", failed {st['nr_failed']} (errno {st['last_errno']})" if st["nr_failed"] else ""
        quota = f", quota exceeded {st['qt_exceeds']} times" if st["qt_exceeds"] else ""
        idle = "" if st["activated"] else " [inactive: watermarks]"
        lines.append(
            f"{elapsed_s:8.1f} s scheme {i} {st['action']}: tried {st['nr_tried']} regions "
            f"({units.format_size(st['sz_tried'])}), applied {st['nr_applied']} "
            f"({units.format_size(st['sz_applied'])}){fails}{quota}{idle}"
        )
    return "\n".join(lines)


class Reporter:
    """Prints the statistics every interval of monitoring time, and at the
    end; tells when the timeout is reached."""

    def __init__(self, mon, args):
        self.mon = mon
        self.args = args
        self.t0 = None
        self.next_report = 0
        self.timed_out = False
        self.last_report = None

    def elapsed_s(self, now_ns):
        if self.t0 is None:
            self.t0 = now_ns
            self.next_report = now_ns + int(self.args.stats_interval * 1e9)
        return (now_ns - self.t0) / 1e9

    def tick(self, now_ns):
        """Report if due; True once the timeout is reached."""
        elapsed = self.elapsed_s(now_ns)
        if now_ns >= self.next_report:
            self.report(elapsed)
            while self.next_report <= now_ns:
                self.next_report += int(self.args.stats_interval * 1e9)
        self.timed_out = self.args.timeout is not None and elapsed >= self.args.timeout
        return self.timed_out

    def report(self, elapsed, stats=None):
        """Print one report (not twice the same at the end)."""
        stats = self.mon.scheme_stats() if stats is None else stats
        if (elapsed, stats) != self.last_report:
            print(format_stats(stats, elapsed, self.args.json), flush=True)
        self.last_report = (elapsed, stats)


def main(args):
    _damos.apply_kdamonds_context(args)
    schemes = _damos.schemes_from_args(args)
    if not schemes:
        raise errors.InvalidAttrs(
            "no scheme to apply: give --damos_action ACTION (and its --damos_* options) "
            "or --kdamonds FILE"
        )
    attrs = _monitoring.attrs_from_args(args)
    if args.timeout is None and args.workload:
        args.timeout = 10.0
    mon, meta, cmd = _monitoring.open_monitor(args, attrs, schemes)
    reporter = Reporter(mon, args)
    with _monitoring.stopping_on_signals(mon, cmd) as stopped:
        reporter.elapsed_s(mon.now_ns)
        # while watermarks pause monitoring, time goes on all the same
        mon.add_idle_callback(lambda: reporter.tick(mon.now_ns))
        for snap in mon:
            if reporter.tick(snap.end_ns):
                break
        final = mon.scheme_stats()
        elapsed = reporter.elapsed_s(mon.now_ns)
    reason = "timeout" if reporter.timed_out else "no target left"
    if stopped:
        reason = f"stopped by {stopped[0]}"
    reporter.report(elapsed, final)
    print(f"damonx start: {reason} after {elapsed:.1f} s", file=sys.stderr)
    return 0
