"""The pure pieces of the CPU-against-accuracy sweep (suite.overhead_sweep):
configurations, detection latency, the summary, the two goals and the
report, on made-up runs."""

import os
import sys

import pytest

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, BENCH)

from suite import overhead_sweep as ow  # noqa: E402

PLAN = dict(ow.PLANS["quick"], sample_ms=[5, 100], budgets=[2])


def test_configs_are_attrs_keyword_dicts():
    cfgs = ow.configs(
        dict(
            PLAN,
            extra_configs=[
                {"name": "x", "kind": "damonx", "family": "x", "attrs": {"max_nr_regions": 100}}
            ],
        )
    )
    names = [c["name"] for c in cfgs]
    assert names == [
        "baseline",
        "damonx 5 ms",
        "damonx 100 ms",
        "damonx budget 2%",
        "damonx goal",
        "kernel 5 ms",
        "kernel 100 ms",
        "kernel goal",
        "x",
    ]
    by = {c["name"]: c for c in cfgs}
    assert by["damonx 100 ms"]["attrs"] == {"sample_us": 100_000, "aggr_us": 2_000_000}
    assert by["kernel goal"]["attrs"]["intervals_goal"] == ow.GOAL
    assert by["damonx budget 2%"]["attrs"] == {"cpu_budget": 2}


def scored(points, period_s):
    """Scored samples from (t, precision, recall)."""
    return [{"t": t, "since": t % period_s, "precision": p, "recall": r} for t, p, r in points]


def test_detection_latency_per_move():
    s = scored([(0.5, 0, 0), (1.5, 0.95, 0.92), (10.4, 0.5, 0.99), (13.0, 0.97, 0.96)], 10)
    assert ow.detection_latency(s, 10, 3) == [1.5, pytest.approx(3.0), 10]


def run(wl, cfg, rt, cpu=None, p=None, r=None, lat=(), sample_us=None, rep=0):
    out = {"workload": wl, "config": cfg, "rep": rep, "runtime_s": rt}
    if cpu is not None:
        out.update(cpu_pct=cpu, sample_us=sample_us, nr_regions=20)
    if p is not None:
        out.update(precision=p, recall=r, latency_s=list(lat))
    return out


RES = {
    "plan": PLAN,
    "machine": {"kernel": "7.3.4-damonvm", "nr_cpus": 2, "mem_gib": 3.8},
    "complete": True,
    "runs": [
        run("hotcold", "baseline", 10.0),
        run("hotcold", "damonx 5 ms", 11.0, 30.0, 0.99, 0.97, [0.5, 0.7], 5000),
        run("hotcold", "damonx 100 ms", 10.1, 4.0, 0.96, 0.95, [3.0, 4.0], 100_000),
        run("hotcold", "damonx budget 2%", 10.0, 2.1, 0.97, 0.9, [5.0, 6.0], 90_000),
        run("hotcold", "kernel 5 ms", 10.5, 8.0, 0.99, 0.98, [0.4, 0.5], 5000),
        run("hotcold", "kernel 100 ms", 10.0, 2.0, 0.98, 0.96, [3.0, 3.5], 100_000),
        run("redis", "baseline", 5.0),
        run("redis", "baseline", 6.0, rep=1),
        run("redis", "damonx budget 2%", 6.0, 2.0),
        run("redis", "kernel 5 ms", 7.0, 8.0),
    ],
}


def test_summary_and_goals():
    rows = ow.summarize(RES)
    idx = {(r["workload"], r["config"]): r for r in rows}
    assert idx[("hotcold", "damonx 100 ms")]["latency_s"] == 3.5
    assert idx[("redis", "kernel 5 ms")]["slowdown"] == pytest.approx(7 / 5.5 - 1)
    x, k, ratio = ow.equal_accuracy(rows)
    # the budget run misses 0.95 recall: the cheapest that reach it
    assert (x["config"], k["config"], ratio) == ("damonx 100 ms", "kernel 100 ms", 2.0)
    sx, sk = ow.redis_goal(rows)
    assert sx == pytest.approx(6 / 5.5 - 1) and sk == pytest.approx(7 / 5.5 - 1)


def test_markdown_states_the_ratios(tmp_path):
    text = ow.markdown(RES)
    assert "damonx's CPU is **2.00x** the kernel's (goal: at most 1.0; missed)" in text
    assert "redis slowdown with `--cpu_budget 2`: +9%, against +27%" in text and "met" in text
    assert "| damonx budget 2% | 2.1% | 90.0 ms | 20 | 0.97/0.90 | 5.5 s |" in text
    no_kernel = dict(RES, runs=[r for r in RES["runs"] if not r["config"].startswith("kernel")])
    assert "No configuration of the kernel reached" in ow.markdown(no_kernel)
    assert ow.plots(RES, str(tmp_path)) == ["cpu_vs_accuracy.png", "cpu_vs_latency.png"]
    assert (tmp_path / "cpu_vs_accuracy.png").stat().st_size > 1000
