"""damonx serve: a live scrape over HTTP on loopback, parsed with
prometheus-client's parser, its stopping and its errors; the metrics'
arithmetic against the kernel's DAMON_STAT."""

import select
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

import damonx
from damonx.dtypes import MONITOR_REGION_DTYPE
from tests.cli_helpers import DAMONX, HOT_COLD, one_error_line, run

pc = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from damonx import exporter  # noqa: E402

MIB = 1 << 20
FAST = ["--monitoring_intervals", "1ms", "20ms", "200ms"]


def scrape(url):
    """{(name, labels as a sorted tuple): value} of one scrape."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def by_name(samples, name):
    return {labels: v for (n, labels), v in samples.items() if n == name}


class Served:
    """``damonx serve ARGV`` in a child; ``url`` once it listens."""

    def __init__(self, *argv):
        self.proc = subprocess.Popen(
            [DAMONX, "serve", "--port", "0", *map(str, argv)],
            stderr=subprocess.PIPE,
            text=True,
        )
        ready, _, _ = select.select([self.proc.stderr], [], [], 30)
        line = self.proc.stderr.readline() if ready else ""
        assert "metrics at http://" in line, line
        self.url = line.split("metrics at ", 1)[1].strip()

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, err

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def test_a_live_scrape_of_a_simulated_workload_in_real_time():
    """hot-cold.json: 1 GiB of which 128 MiB are hot (each page accessed
    with probability 0.9 per sample)."""
    with Served("--ops", "sim", "--workload", HOT_COLD, *FAST) as served:
        assert served.url.startswith("http://127.0.0.1:") and served.url.endswith("/metrics")
        deadline = time.monotonic() + 20
        while True:
            samples = scrape(served.url)
            wss = by_name(samples, "damonx_wss_bytes")
            if wss and 0.8 * 128 * MIB <= list(wss.values())[0] <= 1.25 * 128 * MIB:
                break
            assert time.monotonic() < deadline, f"wss never near 128 MiB: {wss}"
            time.sleep(0.2)
        labels = (("comm", ""), ("pid", ""), ("target", "0"))
        assert list(wss) == [labels]
        assert by_name(samples, "damonx_monitored_bytes") == {labels: 1024 * MIB}
        assert 10 <= by_name(samples, "damonx_regions")[labels] <= 1000
        # 128 MiB x (0.9 x 20 samples) per 20 ms aggregation, within the
        # sampling's noise
        bw = by_name(samples, "damonx_estimated_memory_bandwidth_bytes")[labels]
        assert 0.5 * 128 * MIB * 18 / 0.02 < bw < 1.5 * 128 * MIB * 18 / 0.02
        idle = by_name(samples, "damonx_memory_idle_seconds")
        quantiles = sorted((float(dict(k)["quantile"]), v) for k, v in idle.items())
        assert [q for q, _ in quantiles] == list(exporter.QUANTILES)
        values = [v for _, v in quantiles]
        assert values == sorted(values)
        # the hot eighth was accessed (negative idle time), the rest was not
        assert values[0] < 0 < values[-1]
        cpu = samples["damonx_monitor_cpu_seconds_total", ()]
        n0 = samples["damonx_snapshots_total", ()]
        assert cpu > 0
        # paced by the clock: about one snapshot per 20 ms
        time.sleep(1.0)
        later = scrape(served.url)
        n1 = later["damonx_snapshots_total", ()]
        assert 20 <= n1 - n0 <= 80
        assert later["damonx_monitor_cpu_seconds_total", ()] >= cpu
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(served.url.replace("/metrics", "/nothing"), timeout=10)
        assert err.value.code == 404
        status, err = served.stop()
    assert status == 0, err
    assert "stopped by SIGTERM" in err and "Traceback" not in err


def test_a_port_in_use_and_bad_addresses_are_clear_errors(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [DAMONX, "serve", "--ops", "sim", "--workload", HOT_COLD, "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert proc.returncode == 1
    line = one_error_line(proc.stderr, "serve")
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in line
    for argv, want in (
        (["--listen", "no-such-host.invalid"], 1),
        (["--listen", "192.0.2.1"], 1),  # an address no interface has
        (["--port", "70000"], 2),
        (["--port", "x"], 2),
    ):
        status, _, err = run(capsys, "serve", "--ops", "sim", "--workload", HOT_COLD, *argv)
        assert status == want, (argv, err)
        one_error_line(err, "serve")


def test_bad_targets_are_told_before_serving(capsys):
    status, _, err = run(capsys, "serve", "--ops", "sim")
    assert status == 1 and "--workload" in one_error_line(err, "serve")
    status, _, err = run(capsys, "serve", "--")
    assert status == 1 and "a command after it" in one_error_line(err, "serve")


def test_without_prometheus_client_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    status, _, err = run(capsys, "serve", "--ops", "sim", "--workload", HOT_COLD)
    assert status == 1 and "pip install 'damonx[serve]'" in one_error_line(err, "serve")


def regions_of(rows):
    out = np.zeros(len(rows), dtype=MONITOR_REGION_DTYPE)
    for i, (start, end, nr, age) in enumerate(rows):
        out[i]["start"], out[i]["end"], out[i]["nr_accesses"], out[i]["age"] = start, end, nr, age
    return out


def kernel_percentiles(regions, aggr_us):
    """mm/damon/stat.c's damon_stat_set_idletime_percentiles, step by step
    (in ms, as the kernel keeps them)."""

    def idletime(r):
        return -(int(r["age"]) + 1) if r["nr_accesses"] else int(r["age"]) + 1

    ordered = sorted(regions, key=idletime)
    total = sum(int(r["end"] - r["start"]) for r in regions)
    out, accounted, nxt = [0] * 101, 0, 0
    for r in ordered:
        accounted += int(r["end"] - r["start"])
        while nxt <= 100 and nxt <= accounted * 100 // total:
            out[nxt] = idletime(r) * aggr_us // 1000
            nxt += 1
    return out


def test_idle_percentiles_and_bandwidth_as_damon_stat_computes_them():
    rng = np.random.default_rng(3)
    for _ in range(50):
        n = int(rng.integers(1, 30))
        bounds = np.sort(rng.choice(np.arange(1, 10_000), n + 1, replace=False)) * 4096
        rows = [
            (
                int(a),
                int(b),
                int(rng.integers(0, 3)) * int(rng.integers(0, 20)),
                int(rng.integers(0, 50)),
            )
            for a, b in zip(bounds[:-1], bounds[1:])
        ]
        regions = regions_of(rows)
        want = kernel_percentiles(regions, 100_000)
        got = exporter.idle_quantiles(regions, 100_000, [p / 100 for p in range(101)])
        assert [round(v * 1000) for v in got] == want
        size = regions["end"] - regions["start"]
        assert exporter.estimated_bandwidth(regions, 100_000) == pytest.approx(
            int((size * regions["nr_accesses"]).sum()) * 10
        )
    assert exporter.idle_quantiles(regions_of([]), 100_000) is None


def test_scheme_statistics_are_counters_and_gone_targets_leave():
    wl = damonx.Workload.hot_cold(64 * MIB, 0, 8 * MIB)
    attrs = damonx.Attrs(sample_us=1000, aggr_us=20_000)
    metrics = exporter.Metrics(lambda tid: (tid + 100, f"t{tid}"))
    with damonx.Monitor("sim", [wl, wl], attrs) as mon:
        mon.add_scheme("stat", nr_accesses=(1, 1000))
        for snap in mon.take(10):
            metrics.update(snap)
        stats = mon.scheme_stats()[0]
    samples = {}
    for family in text_string_to_metric_families(metrics.exposition().decode()):
        for s in family.samples:
            samples[s.name, tuple(sorted(s.labels.items()))] = s.value
    assert stats["nr_tried"] > 0
    assert samples["damonx_scheme_nr_tried_total", (("scheme", "0"),)] == stats["nr_tried"]
    assert samples["damonx_scheme_sz_tried_total", (("scheme", "0"),)] == stats["sz_tried"]
    labels = (("comm", "t1"), ("pid", "101"), ("target", "1"))
    assert ("damonx_wss_bytes", labels) in samples
    # a target that is gone: its series go with it
    snap.targets.pop(1)
    metrics.update(snap)
    text = metrics.exposition().decode()
    assert 'target="1"' not in text and 'target="0"' in text
