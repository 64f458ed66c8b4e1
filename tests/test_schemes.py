"""damonx.schemes: the dataclasses, damo's units and conversions, damo's
specification, and the kernel's DAMOS semantics through a simulated
monitor (quotas, filters, watermarks, goals, the apply interval)."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import damonx
from damonx import InvalidAttrs, _damo_spec, schemes
from damonx.schemes import MAX, AccessPattern, Filter, QuotaGoal, Quotas, Scheme, Watermarks

GIB = 1 << 30
DAMO = str(Path(sys.executable).with_name("damo"))
damo = pytest.importorskip("damo", reason="damo is not installed (pip install damo==3.4.3)")


def in_damo(code):
    """What code, run with damo's modules (which import each other by their
    own names), prints as JSON: damo is the reference of the conversions."""
    env = dict(os.environ, PYTHONPATH=os.path.dirname(damo.__file__))
    out = subprocess.run(
        [sys.executable, "-c", "import json, _damon\n" + code],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(out.stdout)


# -- units and conversions ---------------------------------------------------
@pytest.mark.parametrize("sample_us, aggr_us", [(5000, 100_000), (1000, 30_000), (7, 100)])
@pytest.mark.parametrize(
    "rate, age",
    [
        (("0", "0"), ("5s", "max")),
        (("5", "33.3"), ("0", "123456")),
        (("min", "max"), ("1 ms", "2 s")),
    ],
)
def test_access_pattern_converts_as_damo_does(sample_us, aggr_us, rate, age):
    ours = AccessPattern(access_rate=rate, age_us=age).to_core(sample_us, aggr_us)
    theirs = in_damo(
        f"p = _damon.DamosAccessPattern(['min', 'max'], {list(rate)!r}, _damon.unit_percent, "
        f"{list(age)!r}, _damon.unit_usec).converted_for_units(_damon.unit_samples, "
        f"_damon.unit_aggr_intervals, _damon.DamonIntervals({sample_us}, {aggr_us}, 1000000))\n"
        "print(json.dumps([[int(v.samples) for v in p.nr_acc_min_max], "
        "[int(v.aggr_intervals) for v in p.age_min_max]]))"
    )
    clamp = [[min(v, 2**32 - 1) for v in pair] for pair in theirs]
    assert [list(ours[1]), list(ours[2])] == clamp


def test_parts_take_damos_texts():
    q = Quotas(time_ms="10ms", sz_bytes="100M", reset_interval_ms="1s", weights=("0 %", 3, "0.7 %"))
    assert (q.time_ms, q.sz_bytes, q.reset_interval_ms, q.weights) == (
        10,
        100 << 20,
        1000,
        (0, 3, 7),
    )
    assert Quotas().reset_interval_ms == MAX
    w = Watermarks("free_mem_rate", "5 s", "50 %", 400, "20 %")
    assert (w.interval_us, w.high, w.mid, w.low) == (5_000_000, 500, 400, 200)
    assert QuotaGoal("some_mem_psi_us", "1 ms").target_value == 1000
    assert QuotaGoal("node_mem_free_bp", "50%", nid=0).target_value == 5000
    assert Filter("addr", addr=("4K", "8K")).addr == (4096, 8192)
    assert Filter("hugepage_size", hugepage_size=("2M", "2M")).handled_by_ops
    assert not Filter("target", target_idx=1).handled_by_ops


@pytest.mark.parametrize(
    "make, words",
    [
        (lambda: Scheme("explode"), "unknown action 'explode'"),
        (lambda: AccessPattern(access_rate=(50, 10)), "access rate: min 50 is above max 10"),
        (lambda: AccessPattern(sz=("4K", "x")), "size max"),
        (lambda: Quotas(weights=(1, 2)), "quota weights are three"),
        (lambda: QuotaGoal("node_mem_used_bp", 5000), "needs a node id"),
        (lambda: QuotaGoal("nosuch", 1), "unknown quota goal metric"),
        (lambda: QuotaGoal("user_input", 0), "target value must be above 0"),
        (lambda: Watermarks("free_mem_rate", 1000, 100, 200, 300), "high >= mid >= low"),
        (lambda: Watermarks("free_mem_rate", 0, 300, 200, 100), "interval above 0"),
        (lambda: Filter("memcg"), "needs a memcg path"),
        (lambda: Filter("addr", addr=(8, 8)), "non-empty"),
        (lambda: Filter("youth"), "unknown filter type"),
        (lambda: Scheme("migrate_hot"), "needs a target node"),
        (lambda: Scheme("stat", filters=("anon",)), "must be damonx.Filter"),
        (lambda: Quotas(time_ms=-1), "at least 0"),
    ],
)
def test_invalid_parts_are_refused_clearly(make, words):
    with pytest.raises(InvalidAttrs, match=words):
        make()


# -- damo's specification ----------------------------------------------------
DAMO_OPTIONS = [
    "--damos_action", "pageout", "--damos_access_rate", "0", "0", "--damos_age", "5s", "max",
    "--damos_quotas", "10ms", "100M", "1s", "0", "3", "7",
    "--damos_quota_goal", "some_mem_psi_us", "1ms",
    "--damos_wmarks", "free_mem_rate", "5s", "500", "400", "200",
    "--damos_filter", "reject", "anon", "--damos_apply_interval", "1s",
]  # fmt: skip


def damo_spec(*options):
    out = subprocess.run(
        [DAMO, "args", "damon", "--format", "json", *options, "--", "1234"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_damos_specification_is_read():
    ctx = _damo_spec.context_of(damo_spec(*DAMO_OPTIONS))
    assert ctx["ops"] == "vaddr" and ctx["targets"] == [(1234, [])]
    assert ctx["intervals"] == (5000, 100_000, 1_000_000) and ctx["nr_regions"] == (10, 1000)
    [s] = ctx["schemes"]
    assert s.action == "pageout" and s.apply_interval_us == 1_000_000
    assert s.pattern.access_rate == (0, 0) and s.pattern.age_us == (5_000_000, MAX)
    q = s.quotas
    assert (q.time_ms, q.sz_bytes, q.reset_interval_ms, q.weights) == (
        10,
        100 << 20,
        1000,
        (0, 3, 7),
    )
    assert q.goals == (QuotaGoal("some_mem_psi_us", 1000),)
    assert s.watermarks == Watermarks("free_mem_rate", 5_000_000, 500, 400, 200)
    assert s.filters == (Filter("anon", matching=True, allow=False),)


def test_damo_reads_what_damonx_writes():
    [s] = _damo_spec.context_of(damo_spec(*DAMO_OPTIONS))["schemes"]
    theirs = in_damo(
        f"d = _damon.Damos.from_kvpairs(json.loads({json.dumps(s.to_kvpairs())!r}))\n"
        "print(json.dumps([d.action, d.quotas.sz_bytes, d.quotas.goals[0].metric, "
        "d.watermarks.high_permil, d.filters[0].filter_type, d.to_kvpairs()]))"
    )
    assert theirs[:5] == ["pageout", 100 << 20, "some_mem_psi_us", 500, "anon"]
    # and back again, unchanged
    assert Scheme.from_kvpairs(theirs[5]) == s


# -- semantics, on a simulated workload ---------------------------------------
def hot_cold():
    return damonx.Workload.hot_cold(GIB, 0, 128 << 20, probability=0.9)


def test_a_size_quota_bounds_what_is_tried_per_interval():
    scheme = Scheme("stat", quotas=Quotas(sz_bytes=64 << 20, reset_interval_ms=1000))
    with damonx.Monitor("sim", hot_cold()) as mon:
        mon.add_scheme(scheme)
        mon.run(nr_aggregations=30)  # three reset intervals
        [st] = mon.scheme_stats()
    assert st["action"] == "stat" and st["esz"] == 64 << 20
    assert st["sz_tried"] == 3 * (64 << 20) and st["qt_exceeds"] == 2


def test_addr_and_target_filters_and_tried_regions():
    lo, hi = 256 << 20, 512 << 20
    scheme = Scheme("stat", filters=(Filter("addr", allow=True, addr=(lo, hi)),))
    with damonx.Monitor("sim", [hot_cold(), hot_cold()]) as mon:
        mon.add_scheme(scheme)
        mon.add_scheme(Scheme("stat", filters=(Filter("target", target_idx=0),)))
        mon.take(3)
        tried = mon.tried_regions(0)
        assert tried.dtype == damonx.TRIED_REGION_DTYPE and len(tried)
        # both targets' [lo, hi): regions split at its edges
        assert int((tried["end"] - tried["start"]).sum()) == 2 * (hi - lo)
        assert tried["start"].min() == lo and tried["end"].max() == hi
        [a, b] = mon.scheme_stats()
        assert b["sz_tried"] == 3 * GIB  # target 1 only, each pass


def test_access_pattern_in_percent_and_microseconds():
    # hot: 90% of samples; cold: never; damo's units
    hot = Scheme("stat", AccessPattern(access_rate=(50, 100)))
    cold = Scheme("stat", AccessPattern(access_rate=(0, 0), age_us=(1_000_000, MAX)))
    with damonx.Monitor("sim", hot_cold(), seed=3) as mon:
        mon.add_scheme(hot)
        mon.add_scheme(cold)
        mon.take(30)
        hot_regions, cold_regions = mon.tried_regions(0), mon.tried_regions(1)
    assert hot_regions["end"].max() <= 128 << 20 and hot_regions["nr_accesses"].min() >= 10
    assert cold_regions["start"].min() >= 120 << 20 and cold_regions["age"].min() >= 10


def test_watermarks_pause_monitoring(tmp_path):
    (tmp_path / "meminfo").write_text("MemTotal: 1000 kB\nMemFree: 900 kB\n")
    idle = []
    scheme = Scheme("stat", watermarks=Watermarks("free_mem_rate", 500_000, 800, 600, 200))
    with damonx.Monitor("sim", hot_cold(), procfs=str(tmp_path)) as mon:
        mon.add_scheme(scheme)
        mon.add_idle_callback(lambda: idle.append(mon.now_ns) or len(idle) == 3)
        assert mon.step() is None  # stopped by the idle callback
        assert idle == [500_000_000, 1_000_000_000, 1_500_000_000]
        assert mon.stats()["nr_samples"] == 0
        assert not mon.scheme_stats()[0]["activated"]


def test_time_paused_by_watermarks_counts_for_run(tmp_path):
    (tmp_path / "meminfo").write_text("MemTotal: 1000 kB\nMemFree: 900 kB\n")
    scheme = Scheme("stat", watermarks=Watermarks("free_mem_rate", 500_000, 800, 600, 200))
    with damonx.Monitor("sim", hot_cold(), procfs=str(tmp_path)) as mon:
        mon.add_scheme(scheme)
        assert mon.now_ns == 0
        assert mon.run(duration_s=2) == 0 and mon.now_ns == 2_000_000_000
        # the monitor goes on: activated once the free rate falls under mid
        (tmp_path / "meminfo").write_text("MemTotal: 1000 kB\nMemFree: 500 kB\n")
        assert mon.run(nr_aggregations=3) == 3 and mon.scheme_stats()[0]["activated"]


def test_user_input_goal_tunes_the_quota():
    goal = QuotaGoal("user_input", target_value=100, current_value=50)
    scheme = Scheme("stat", quotas=Quotas(reset_interval_ms=100, goals=(goal,)))
    with damonx.Monitor("sim", hot_cold()) as mon:
        mon.add_scheme(scheme)
        mon.take(3)
        grown = mon.scheme_stats()[0]["esz"]
        mon.set_goal_value(0, 0, 300)  # overachieved: the quota falls to its minimum
        mon.take(2)
        assert mon.scheme_stats()[0]["esz"] == 1 < grown
        with pytest.raises(InvalidAttrs):
            mon.set_goal_value(0, 1, 5)


def test_the_apply_interval():
    with damonx.Monitor("sim", hot_cold()) as mon:
        mon.add_scheme(Scheme("stat", apply_interval_us=300_000))
        mon.add_scheme(Scheme("stat"))
        mon.take(9)
        a, b = mon.scheme_stats()
    assert (a["nr_snapshots"], b["nr_snapshots"]) == (3, 9)


def test_unsupported_actions_and_filters_are_refused_with_the_reason():
    with damonx.Monitor("sim", hot_cold()) as mon:
        with pytest.raises(InvalidAttrs, match="ops 'sim' has no 'anon' filter"):
            mon.add_scheme(Scheme("stat", filters=(Filter("anon"),)))
        with pytest.raises(InvalidAttrs, match="LRU lists"):
            mon.add_scheme(Scheme("lru_prio"))
        assert mon.scheme_stats() == []


def test_schemes_are_data():
    s = Scheme("pageout", AccessPattern(access_rate=(0, 0)))
    assert s == Scheme("pageout", AccessPattern(access_rate=(0, 0)))
    assert isinstance(hash(s), int)
    assert schemes.ACTIONS[-1] == "stat" and np.dtype(damonx.TRIED_REGION_DTYPE).itemsize == 32


def test_damos_scheme_markers_split_goals_and_filters_as_damo_does():
    from damonx.cli import _damos, build_parser

    options = [
        "--damos_scheme", "--damos_action", "pageout", "--damos_quotas", "0", "1G", "1s",
        "--damos_quota_goal", "some_mem_psi_us", "1ms", "--damos_filter", "reject", "anon",
        "--damos_scheme", "--damos_action", "stat", "--damos_filter", "allow", "young",
    ]  # fmt: skip
    theirs = _damo_spec.context_of(damo_spec(*options))["schemes"]
    args = build_parser("start").parse_args(["start", "1234", *options])
    ours = _damos.schemes_from_args(args)

    def same(a, b):  # damo's "max" percent reads back as a float
        core = a.pattern.to_core(5000, 100_000) == b.pattern.to_core(5000, 100_000)
        return core and dataclasses.replace(a, pattern=b.pattern) == b

    assert len(ours) == len(theirs) == 2 and all(map(same, ours, theirs))
    assert [len(s.filters) for s in ours] == [1, 1] and len(ours[0].quotas.goals) == 1
    bad = [
        ["--damos_filter", "allow", "young", "--damos_scheme", "--damos_action", "stat"],
        ["--damos_scheme", "--damos_action", "stat", "--damos_action", "stat"],
        ["--damos_scheme", "--damos_action", "stat", "--damos_nr_filters", "0"],
    ]
    for argv in bad:
        args = build_parser("start").parse_args(["start", "1234", *argv])
        with pytest.raises(InvalidAttrs, match="damos_scheme|damos_nr"):
            _damos.schemes_from_args(args)
