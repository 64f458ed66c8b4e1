"""Export live access metrics to Prometheus (needs prometheus-client:
pip install 'damonx[serve]').

Monitors the same targets as `damonx record`: process ids, a command after
-- (serving ends when it exits), --ops paddr, or --ops sim --workload W.json,
run in real time here.  The metrics are at http://LISTEN:PORT/metrics,
127.0.0.1 unless --listen says otherwise (--listen 0.0.0.0 or :: for every
address; the metrics show the processes' command names).  They are updated
once per aggregation interval, so a scrape costs only their formatting.

Per target (labels target, pid, comm): damonx_wss_bytes,
damonx_monitored_bytes, damonx_regions,
damonx_estimated_memory_bandwidth_bytes (bytes per second) and
damonx_memory_idle_seconds{quantile=...}, computed from each snapshot as
the kernel's DAMON_STAT computes its estimated_memory_bandwidth and
memory_idle_ms_percentiles; scheme statistics as damonx_scheme_*_total.
For the monitor: damonx_monitor_cpu_seconds_total, damonx_snapshots_total.

SIGTERM or Ctrl-C stops serving (exit status 0).  A port in use or an
address that cannot be listened on is an error (exit status 1).
"""

import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from damonx import errors
from damonx.cli import _args, _monitoring

DEFAULT_PORT = 9640


def set_argparser(parser):
    _monitoring.add_target_options(parser, "serve")
    _monitoring.add_monitoring_options(parser)
    parser.add_argument(
        "--port",
        type=_args.int_in(0, 65535, "a TCP port from 0 to 65535"),
        default=DEFAULT_PORT,
        help=f"TCP port of the metrics (default {DEFAULT_PORT}; 0: any free port)",
    )
    parser.add_argument(
        "--listen",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 or :: for every address)",
    )
    parser.add_argument("--quiet", action="store_true", help="no line saying where it serves")


def _handler(metrics):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.split("?")[0].rstrip("/") not in ("/metrics", ""):
                self.send_error(404, "the metrics are at /metrics")
                return
            from prometheus_client.exposition import CONTENT_TYPE_LATEST

            body = metrics.exposition()
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):
            pass  # a scrape every few seconds is no news

    return Handler


def listen(address, port, handler):
    """A threading HTTP server bound to address:port; DamonxError if it cannot be."""
    try:
        infos = socket.getaddrinfo(address or None, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise errors.InvalidAttrs(f"--listen {address!r} is no address: {err}") from None
    family, _, _, _, sockaddr = infos[0]

    class Server(ThreadingHTTPServer):
        address_family = family
        daemon_threads = True

    try:
        return Server((str(sockaddr[0]), port), handler)
    except OSError as err:
        where = f"[{sockaddr[0]}]:{port}" if family == socket.AF_INET6 else f"{sockaddr[0]}:{port}"
        raise errors.DamonxError(f"cannot listen on {where}: {err.strerror or err}") from None


def _describer(meta, procfs):
    """(pid, comm) of a target id: a process's, or empty."""
    if meta.get("ops") not in ("vaddr", "fvaddr"):
        return lambda tid: ("", "")

    def describe(tid):
        return tid, _monitoring.read_process(tid, procfs).get("comm", "")

    return describe


def main(args):
    from damonx.exporter import Metrics, require_prometheus_client

    require_prometheus_client()
    attrs = _monitoring.attrs_from_args(args)
    metrics = Metrics()
    # a port in use is told before a command starts
    server = listen(args.listen, args.port, _handler(metrics))
    try:
        mon, meta, cmd = _monitoring.open_monitor(args, attrs, real_time=True)
    except BaseException:
        server.server_close()
        raise
    metrics.describe = _describer(meta, args.procfs)
    thread = threading.Thread(target=server.serve_forever, name="damonx-metrics", daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    if not args.quiet:
        where = f"[{host}]" if server.address_family == socket.AF_INET6 else host
        print(
            f"damonx serve: metrics at http://{where}:{port}/metrics", file=sys.stderr, flush=True
        )
    reason = "no target left"
    try:
        with _monitoring.stopping_on_signals(mon, cmd) as stopped:
            for snap in mon:
                metrics.update(snap)
    finally:
        server.shutdown()
        server.server_close()
    if stopped:
        reason = f"stopped by {stopped[0]}"
    if not args.quiet:
        print(f"damonx serve: stopped ({reason})", file=sys.stderr)
    return 0
