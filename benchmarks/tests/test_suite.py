"""The pure pieces of the benchmark suite (benchmarks/suite): ground truth,
metrics, summaries and the tables, without the VM."""

import os
import sys

import numpy as np
import pytest

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, BENCH)

from suite import metrics, report, simacc  # noqa: E402

MIB = 1 << 20


def test_probes_tile_the_buffer():
    p = metrics.probes("hotcold", 0x1000_0000, 0x1000_0000 + 256 * MIB, 32 * MIB)
    assert len(p) == 8
    assert p[0][0] == 0x1000_0000 and p[-1][1] == 0x1000_0000 + 256 * MIB
    assert all(a[1] == b[0] for a, b in zip(p, p[1:]))
    assert metrics.probes("seq", 0, 4096) == [(0, 4096)]
    with pytest.raises(ValueError):
        metrics.probes("hotcold", 0, 100 * MIB, 30 * MIB)


def test_hot_probe_mirrors_hotcold_c():
    # slot = floor(t / period) mod nr_slots
    assert metrics.hot_probe("hotcold", 0.0, 8, 3.0) == 0
    assert metrics.hot_probe("hotcold", 2.99, 8, 3.0) == 0
    assert metrics.hot_probe("hotcold", 3.0, 8, 3.0) == 1
    assert metrics.hot_probe("hotcold", 25.0, 8, 3.0) == 0
    assert metrics.hot_probe("seq", 5.0, 1) is None
    assert metrics.since_change("hotcold", 7.5, 3.0) == pytest.approx(1.5)
    assert metrics.since_change("rand", 7.5) == 7.5


def test_score():
    probes = [(0, 100), (100, 200), (200, 300), (300, 400)]
    # exact
    assert metrics.score([0, 100, 0, 0], probes, 1) == (1.0, 1.0, 0.0)
    # half of the hot probe and as much elsewhere
    p, r, w = metrics.score([50, 50, 0, 0], probes, 1)
    assert (p, r, w) == (0.5, 0.5, 0.0)
    # nothing found
    assert metrics.score([0, 0, 0, 0], probes, 1) == (0.0, 0.0, -1.0)
    # whole buffer hot
    assert metrics.score([300], [(0, 400)], None) == (1.0, 0.75, -0.25)


def test_found_per_probe_numpy_and_tuples():
    dtype = [("start", "<u8"), ("end", "<u8"), ("nr_accesses", "<u4"), ("age", "<u4")]
    regions = np.array([(0, 150, 3, 0), (150, 250, 0, 0), (250, 400, 1, 0)], dtype=dtype)
    probes = [(0, 100), (100, 200), (200, 300), (300, 400)]
    assert metrics.found_per_probe(regions, probes) == [100, 50, 50, 100]
    assert metrics.found_per_probe(regions, probes, min_nr_accesses=2) == [100, 50, 0, 0]
    tuples = [(0, 150, 3), (150, 250, 0), (250, 400, 1)]
    assert metrics.found_per_probe(tuples, probes) == [100, 50, 50, 100]


def test_series_and_checkpoints():
    probes = [(0, 100), (100, 200)]
    samples = []
    for i in range(40):  # 0.1 s apart; the hot probe moves every 2 s
        t = i * 0.1
        hot = int(t // 2) % 2
        since = t % 2
        found = [0, 0]
        found[hot] = 100 if since >= 0.5 else 50  # converges after 0.5 s
        samples.append((t, found))
    samples.insert(0, (-0.1, [100, 100]))  # before the start: dropped
    scored = metrics.score_series("hotcold", samples, probes, 2.0)
    assert len(scored) == 40
    s = metrics.summarize_scores(scored, 2.0)
    assert s["precision"] == 1.0 and s["recall"] == 1.0 and s["wss_err"] == 0.0
    assert s["checkpoints"]["0.5"]["recall"] == 1.0
    assert "2" not in s["checkpoints"]  # not shorter than the period
    early = metrics.summarize_scores([x for x in scored if x["since"] < 0.5], 2.0)
    assert early["precision"] is None


def canned_runs():
    runs = []
    for wl in ("hotcold", "stress-ng"):
        for size in (256, 1024):
            for rep, scale in enumerate((1.0, 1.1)):
                runs.append(
                    {
                        "workload": wl,
                        "size_mib": size,
                        "config": "baseline",
                        "rep": rep,
                        "runtime_s": 10.0 * scale,
                    }
                )
                for cfg, slow, cpu in (
                    ("damonx", 1.02, 3.0),
                    ("kernel", 1.01, 1.0),
                    ("damonx-kernel", 1.01, 1.5),
                    ("fullscan", 1.5, 20.0 * size / 256),
                ):
                    run = {
                        "workload": wl,
                        "size_mib": size,
                        "config": cfg,
                        "rep": rep,
                        "runtime_s": 10.0 * scale * slow,
                        "cpu_pct": cpu,
                        "nr_regions": 50,
                    }
                    if wl == "hotcold":
                        run["accuracy"] = {
                            "precision": 0.9,
                            "recall": 0.8,
                            "wss_err": -0.1,
                            "checkpoints": {"1": {"precision": 0.5, "recall": 0.4, "wss_err": 0.0}},
                        }
                    if cfg == "fullscan":
                        run["interval_s"] = 0.1
                    runs.append(run)
    return runs


def test_summarize_runs():
    summary = metrics.summarize_runs(canned_runs())
    idx = {(r["workload"], r["size_mib"], r["config"]): r for r in summary}
    assert idx[("hotcold", 256, "baseline")]["slowdown"] is None
    assert idx[("hotcold", 256, "damonx")]["slowdown"] == pytest.approx(0.02)
    assert idx[("hotcold", 1024, "fullscan")]["cpu_pct"] == pytest.approx(80.0)
    assert idx[("hotcold", 256, "kernel")]["precision"] == 0.9
    assert idx[("stress-ng", 256, "kernel")]["precision"] is None
    assert idx[("hotcold", 256, "damonx")]["checkpoints"]["1"]["recall"] == 0.4


def test_markdown_tables_and_readme(tmp_path):
    runs = canned_runs()
    plan = {
        "workloads": ["hotcold", "stress-ng"],
        "sizes_mib": [256, 1024],
        "repeats": 2,
        "run_seconds": 5,
        "scale_workload": "hotcold",
        "scale_sizes_mib": [256, 1024],
        "hot_fraction": 8,
        "period_s": 3,
    }
    res = {
        "meta": {
            "mode": "quick",
            "date": "2000-01-01",
            "vm_accel": "tcg",
            "host": {"cpu": "CPU", "nr_cpus": 2, "kernel": "6.1"},
        },
        "vm": {
            "machine": {"kernel": "6.12", "nr_cpus": 2, "mem_gib": 3.9},
            "plan": plan,
            "runs": runs,
            "complete": True,
        },
        "summary": metrics.summarize_runs(runs),
        "sim": [simacc.run_one("hotcold", 256, 2, 4)],
    }
    text = report.markdown(res)
    assert (
        "| hotcold | 256 MiB | 3.0% | 1.0% | 1.5% | 20.0% | +2.0% | +1.0% | +1.0% | +50.0% | "
        "0.90/0.80 | 0.90/0.80 | 0.90/0.80 | 0.90/0.80 |" in text
    )
    assert "| stress-ng | 1 GiB | 3.0% | 1.0% | 1.5% | 80.0% |" in text
    assert "n/a | n/a | n/a | n/a |" in text  # stress-ng accuracy
    assert "Linux 6.12" in text and "TCG" in text
    assert "| 1 GiB | 3.0% | 1.0% | 80.0% | 0.10 s | 80.0% |" in text
    assert "noise" in text  # baseline spread reported
    readme = tmp_path / "README.md"
    readme.write_text("# B\n\nintro\n")
    report.update_readme(str(readme), "first\n")
    report.update_readme(str(readme), text)
    body = readme.read_text()
    assert body.startswith("# B\n\nintro\n")
    assert body.count(report.MARK_BEGIN) == 1 and "first" not in body
    assert text in body


def test_sim_accuracy_finds_the_moving_hot_set():
    r = simacc.run_one("hotcold", 256, 2, 6)
    assert r["accuracy"]["precision"] > 0.8 and r["accuracy"]["recall"] > 0.8
    assert r["series"] and r["series"][0][0] >= 0


def test_needed_cpu_of_a_late_full_scan():
    assert report.needed_cpu({"cpu_pct": 99.0, "interval_s": 1.0}) == pytest.approx(990.0)
    assert report.needed_cpu({"cpu_pct": 40.0, "interval_s": 0.1}) == pytest.approx(40.0)
    assert report.needed_cpu(None) is None
