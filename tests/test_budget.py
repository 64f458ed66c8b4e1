"""The CPU budget, in simulation: a CPU cost model stands for the process's
CPU time, so the budget is held (and tested) on simulated time; the
intervals keep their ratio, detection goes on, an intervals goal steers
below the budget.  The command line's --cpu_budget and --json.  (The budget
on real workloads: tests/vm/test_budget_vm.py.)"""

import json

import numpy as np
import pytest

import damonx
from damonx import IntervalsGoal, records
from tests.cli_helpers import one_error_line, run, sim_argv

GIB = 1 << 30

#: a check costs about what one costs in the project's VM, a sample's
#: wake-up and an aggregation's hand-over to Python too
MODEL = dict(
    per_sample_ns=60_000, per_check_ns=25_000, per_aggr_ns=400_000, per_aggr_region_ns=3000
)


def moving_hot(period_s=20, nr_slots=8, duration_s=400, probability=0.5):
    hot = GIB // nr_slots
    return damonx.Workload.from_dict(
        {
            "size": GIB,
            "phases": [
                {
                    "duration_us": period_s * 1_000_000,
                    "ranges": [
                        {
                            "start": (i % nr_slots) * hot,
                            "end": (i % nr_slots + 1) * hot,
                            "probability": probability,
                        }
                    ],
                }
                for i in range(duration_s // period_s)
            ],
        }
    )


def cpu_share(a, b):
    return (b.cpu_ns - a.cpu_ns) / (b.end_ns - a.end_ns)


def run_for(mon, seconds):
    out = []
    for snap in mon:
        out.append(snap)
        if snap.end_ns >= seconds * 1e9:
            return out
    raise AssertionError("the monitor stopped")


@pytest.mark.parametrize("budget", [1, 2, 5, 10])
def test_the_budget_is_held(budget):
    """After a few seconds, within 30% of the budget over every 10 s."""
    attrs = damonx.Attrs(cpu_budget=budget)
    with damonx.Monitor("sim", moving_hot(), attrs, seed=3) as mon:
        mon.set_cpu_model(**MODEL)
        snaps = run_for(mon, 200)
    assert max(s.sample_us for s in snaps) > 5000
    marks = [next(s for s in snaps if s.end_ns >= t * 1e9) for t in range(10, 201, 10)]
    shares = [cpu_share(a, b) * 100 for a, b in zip(marks, marks[1:])]
    assert all(0.7 * budget < x < 1.3 * budget for x in shares), shares
    # the intervals keep their ratio: nr_accesses keeps its meaning
    assert {s.aggr_us / s.sample_us for s in snaps} == {20.0}
    assert max(s.regions["nr_accesses"].max() for s in snaps) <= 20


def test_without_a_budget_the_cpu_is_what_it_is():
    with damonx.Monitor("sim", moving_hot(), damonx.Attrs(), seed=3) as mon:
        mon.set_cpu_model(**MODEL)
        snaps = run_for(mon, 20)
    assert {s.sample_us for s in snaps} == {5000}
    assert cpu_share(snaps[0], snaps[-1]) > 0.1


def recall_after_moves(snaps, period_s, delays_s, nr_slots=8):
    """Mean recall of the hot slot, delays_s after each move."""
    hot = GIB // nr_slots
    out = {d: [] for d in delays_s}
    for move in range(1, int(snaps[-1].end_ns / 1e9 // period_s)):
        lo = (move % nr_slots) * hot
        for d in delays_s:
            t = (move * period_s + d) * 1e9
            snap = next((s for s in snaps if s.end_ns >= t), None)
            if snap is None or snap.end_ns >= (move + 1) * period_s * 1e9:
                continue
            r = snap.regions
            found = r[r["nr_accesses"] >= 1]
            inside = np.clip(
                np.minimum(found["end"], lo + hot) - np.maximum(found["start"], lo), 0, None
            )
            out[d].append(inside.sum() / hot)
    return {d: float(np.mean(v)) for d, v in out.items() if v}


def test_detection_goes_on_within_the_budget():
    """At 1%, a hot set that moves is still found, later than without."""
    attrs = damonx.Attrs(cpu_budget=1)
    with damonx.Monitor("sim", moving_hot(), attrs, seed=5) as mon:
        mon.set_cpu_model(**MODEL)
        snaps = run_for(mon, 300)
    recall = recall_after_moves(snaps, 20, [10, 18])
    assert recall[10] > 0.8 and recall[18] > 0.9, recall


def test_past_the_longest_interval_the_region_limit_comes_down():
    costly = dict(MODEL, per_check_ns=3_000_000)
    attrs = damonx.Attrs(cpu_budget=2, min_nr_regions=10, max_nr_regions=1000)
    with damonx.Monitor("sim", moving_hot(), attrs, seed=5) as mon:
        mon.set_cpu_model(**costly)
        snaps = run_for(mon, 400)
        tuned = mon.attrs_in_effect()
    assert tuned.sample_us == 1_000_000 and tuned.aggr_us == 20_000_000
    assert 10 <= tuned.max_nr_regions < 50
    # merges stop at the size limit (a tenth of the space each for 10
    # min_nr_regions): a few more regions than the limit may stay
    assert snaps[-1].nr_regions <= 2 * tuned.max_nr_regions


def test_the_goal_steers_below_the_budget():
    """A generous budget leaves the goal's intervals alone; a tight one is a
    ceiling on the CPU the goal's intervals would take."""
    goal = IntervalsGoal(min_sample_us=1000)
    wl = damonx.Workload.from_dict(
        {
            "size": GIB,
            "phases": [
                {"duration_us": 10**9, "ranges": [{"start": 0, "end": GIB // 8, "rate_hz": 20}]}
            ],
        }
    )
    runs = {}
    for budget in (None, 100, 1):
        with damonx.Monitor(
            "sim", wl, damonx.Attrs(intervals_goal=goal, cpu_budget=budget), seed=7
        ) as mon:
            mon.set_cpu_model(**MODEL)
            runs[budget] = run_for(mon, 120)
    assert [s.sample_us for s in runs[None]] == [s.sample_us for s in runs[100]]
    free_share = cpu_share(runs[None][100], runs[None][-1])
    assert free_share > 0.02
    capped = runs[1]
    mid = next(s for s in capped if s.end_ns >= 40e9)
    assert 0.7 < cpu_share(mid, capped[-1]) * 100 < 1.3
    assert np.median([s.sample_us for s in capped[-20:]]) > np.median(
        [s.sample_us for s in runs[None][-20:]]
    )


@pytest.mark.parametrize("budget", [0, -1, 101, float("nan"), float("inf"), "2", True])
def test_bad_budgets_are_refused(budget):
    with pytest.raises(damonx.InvalidAttrs, match="cpu_budget"):
        damonx.Attrs(cpu_budget=budget)


def test_a_cpu_model_takes_costs_in_ns():
    with (
        damonx.Monitor("sim", moving_hot()) as mon,
        pytest.raises(damonx.InvalidAttrs, match="integers of ns"),
    ):
        mon.set_cpu_model(per_check_ns=-1)


def test_cli_json_progress_and_result(capsys, tmp_path):
    out = tmp_path / "b.data"
    status, text, err = run(capsys, *sim_argv(out, "--json", "--cpu_budget", "2%"))
    assert status == 0, err
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["event"] == "progress" and lines[-1]["event"] == "done"
    done = lines[-1]
    assert done["snapshots"] == 20 and done["reason"] == "timeout"
    assert done["out"] == str(out) and done["bytes_written"] == out.stat().st_size
    for key in ("sample_us", "aggr_us", "sample_us_min", "sample_us_max", "cpu_pct", "cpu_s"):
        assert key in done
    assert (done["sample_us"], done["aggr_us"]) == (5000, 100_000)
    snaps = records.load(out).targets[0].snapshots
    assert {s.sample_us for s in snaps} == {5000}


@pytest.mark.parametrize("value", ["0", "101", "-2", "2%%", "two", "nan"])
def test_cli_bad_budgets(capsys, tmp_path, value):
    status, _, err = run(capsys, *sim_argv(tmp_path / "x.data", "--cpu_budget", value))
    assert status == 2
    assert "--cpu_budget" in one_error_line(err, "record")
