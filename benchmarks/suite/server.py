"""The monitoring process of the VM benchmarks (runs inside the guest).

One long-lived process, so that its start-up (Python, numpy, damonx) is paid
once and never measured: the orchestrator reads this process's CPU time
(utime + stime in /proc/PID/stat) around each workload run.  Commands come
on stdin, one JSON object per line; each gets one JSON line on stdout:

    {"cmd": "damonx", "pid": P, "attrs": {...}, "within": [s, e],
     "probes": [[s, e], ...],
     "backend": "page_idle"}           -> {"ok": "running"}
        (attrs: damonx.Attrs keyword arguments; intervals_goal as a dict of
        damonx.IntervalsGoal's)
    {"cmd": "fullscan", "pid": P, "interval_us": 100000,
     "probes": [[s, e], ...]}          -> {"ok": "running"}
    {"cmd": "stop"}                    -> the samples and counters
    {"cmd": "ping"}                    -> {"ok": "pong"} (after importing damonx)
    {"cmd": "quit"}

While monitoring, the process checks stdin between aggregations (damonx) or
between scans (full scan, through the stop_fd of the C loop): the next line
ends the monitoring and is then read as a command.
"""

import json
import os
import select
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from suite import metrics

_buf = b""


def read_cmd():
    global _buf
    while b"\n" not in _buf:
        chunk = os.read(0, 65536)
        if not chunk:
            return None
        _buf += chunk
    line, _buf = _buf.split(b"\n", 1)
    return json.loads(line)


_running = False


def reply(obj):
    global _running
    _running = obj.get("ok") == "running"
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def stdin_ready():
    return bool(_buf) or bool(select.select([0], [], [], 0)[0])


def make_attrs(kwargs):
    """damonx.Attrs from its keyword arguments (intervals_goal as a dict)."""
    import damonx

    kwargs = dict(kwargs)
    if kwargs.get("intervals_goal") is not None:
        kwargs["intervals_goal"] = damonx.IntervalsGoal(**kwargs["intervals_goal"])
    return damonx.Attrs(**kwargs)


def run_damonx(cmd):
    import damonx

    attrs = make_attrs(cmd["attrs"])
    probes = [tuple(p) for p in cmd["probes"]]
    snaps, intervals = [], []
    cpu0 = time.process_time()
    backend = cmd.get("backend", "page_idle")
    with damonx.Monitor("vaddr", [cmd["pid"]], attrs, backend=backend) as mon:
        if backend == "kernel":
            mon.step()  # the kdamond starts with the first aggregation
        reply({"ok": "running"})
        while not stdin_ready():
            snap = mon.step()
            if snap is None:
                break
            regions = snap.targets.get(cmd["pid"])
            if regions is not None:
                snaps.append((snap.end_ns, regions))
                intervals.append((snap.end_ns, snap.sample_us))
        cpu = time.process_time() - cpu0
        stats = mon.stats()
        checks = mon.access_check_stats()
    # scoring after the monitoring, so that its cost is not measured
    samples = [(t, metrics.found_per_probe(r, probes)) for t, r in snaps]
    nr_regions = [len(r) for _, r in snaps]
    return {
        "samples": samples,
        "nr_regions": nr_regions,
        "cpu_s": cpu,
        "intervals": intervals,
        "stats": {k: int(v) for k, v in dict(stats).items()},
        "access_checks": {k: int(v) for k, v in dict(checks).items()},
    }


def run_fullscan(cmd):
    import bench_ext

    probes = [tuple(p) for p in cmd["probes"]]
    reply({"ok": "running"})
    res = bench_ext.load().bench_fullscan(
        cmd["pid"], cmd.get("interval_us", 100000), 1_000_000, 0, probes
    )
    samples = [
        (int(t), [int(x) * 4096 for x in row]) for t, row in zip(res["t_ns"], res["probe_accessed"])
    ]
    if samples:
        samples = samples[1:]  # the first scan finds every page "accessed"
    return {
        "samples": samples,
        "cpu_s": res["cpu_ns"] / 1e9,
        "nr_intervals": res["nr_intervals"],
        "interval_s": res["wall_ns"] / 1e9 / max(res["nr_intervals"], 1),
        "nr_present_pages": [int(x) for x in res["nr_present"][-1:]],
        "io": {k: res[k] for k in ("nr_pagemap_reads", "nr_bitmap_reads", "nr_bitmap_writes")},
    }


def main():
    while True:
        cmd = read_cmd()
        if cmd is None or cmd["cmd"] == "quit":
            return
        if cmd["cmd"] == "ping":
            # imported once, before any measurement
            import bench_ext
            import numpy  # noqa: F401

            import damonx  # noqa: F401
            from damonx import _core  # noqa: F401

            bench_ext.load()
            reply({"ok": "pong"})
            continue
        if cmd["cmd"] == "stop":
            reply({"error": "nothing is running"})
            continue
        try:
            res = run_damonx(cmd) if cmd["cmd"] == "damonx" else run_fullscan(cmd)
        except Exception as err:  # reported to the orchestrator, which fails the run
            res = {"error": f"{type(err).__name__}: {err}"}
            if not _running:
                reply(res)
                continue
        stop = read_cmd()
        if stop is None:
            return
        reply(res)


if __name__ == "__main__":
    main()
