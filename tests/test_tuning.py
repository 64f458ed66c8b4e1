"""The kernel's monitoring intervals auto-tuning (intervals_goal), in
simulation, where every page's rate of accesses is known exactly: damonx
takes the kernel's steps (direction and size), and settles where the
kernel's rule says it must; online attribute changes keep the meaning of
counts and ages."""

import math

import numpy as np
import pytest

import damonx
from damonx import IntervalsGoal, records
from tests.cli_helpers import one_error_line, run, sim_argv

GIB = 1 << 30
MIB = 1 << 20


def rate_workload(hot_fraction, rate_hz, size=GIB, duration_s=1000):
    """One hot range of size * hot_fraction, each page accessed rate_hz times a
    second (a Poisson process); the rest never accessed."""
    return damonx.Workload.from_dict(
        {
            "size": size,
            "phases": [
                {
                    "duration_us": int(duration_s * 1e6),
                    "ranges": [{"start": 0, "end": int(size * hot_fraction), "rate_hz": rate_hz}],
                }
            ],
        }
    )


def kernel_next_sample_us(regions, sample_us, aggr_samples, goal):
    """The sampling interval the kernel's kdamond_tune_intervals() sets after
    an aggregation that found ``regions``, from mm/damon/core.c (7.3):
    damon_get_intervals_score(), damon_feed_loop_next_input() (for a last
    input of 1e8 and a goal of 10,000) and
    damon_get_intervals_adaptation_bp()."""
    sizes = [int(r["end"]) - int(r["start"]) for r in regions]
    events = sum(sz * int(r["nr_accesses"]) for sz, r in zip(sizes, regions))
    target = sum(sizes) * aggr_samples * goal.access_bp // 10000 or 1
    score = events * 10000 // target
    last, goal_score = 100_000_000, 10_000
    if score == goal_score:
        nxt = last
    elif score >= 2 * goal_score:
        nxt = 10_000
    elif score > goal_score:
        nxt = max(last - last * (score - goal_score) // goal_score, 10_000)
    else:
        nxt = last + last * (goal_score - score) // goal_score
    adaptation = nxt // 10_000
    if adaptation <= 10_000:
        adaptation = 5000 + adaptation // 2
    if adaptation == 10_000:
        return sample_us
    return max(goal.min_sample_us, min(goal.max_sample_us, sample_us * adaptation // 10_000))


def settled_sample_us(hot_fraction, rate_hz, goal):
    """Where the rule settles for one hot range in a space that is otherwise
    idle: hot_fraction * (1 - exp(-rate * s)) = access_bp / 10000."""
    ratio = goal.access_bp / 10000 / hot_fraction
    return -math.log(1 - ratio) / rate_hz * 1e6


@pytest.mark.parametrize(
    "hot_fraction, rate_hz, start_us",
    [(1 / 8, 20, 5000), (1 / 8, 2, 5000), (1 / 2, 50, 400_000), (1 / 16, 1, 1_000_000)],
)
def test_each_step_is_the_kernels(hot_fraction, rate_hz, start_us):
    """After every third aggregation, the intervals take the step the kernel
    takes for what that aggregation found, keeping 20 samples an
    aggregation; between tunings they stay."""
    goal = IntervalsGoal(access_bp=400, aggrs=3, min_sample_us=1000, max_sample_us=10_000_000)
    attrs = damonx.Attrs(sample_us=start_us, aggr_us=start_us * 20, intervals_goal=goal)
    wl = rate_workload(hot_fraction, rate_hz)
    directions = set()
    with damonx.Monitor("sim", wl, attrs, seed=4) as mon:
        snaps = mon.take(61)
    for i, (snap, nxt) in enumerate(zip(snaps, snaps[1:]), 1):
        want = snap.sample_us
        if i % 3 == 0:
            want = kernel_next_sample_us(snap.regions, snap.sample_us, 20, goal)
            directions.add(np.sign(want - snap.sample_us))
        assert nxt.sample_us == want, i
        assert nxt.aggr_us == 20 * want
        assert nxt.end_ns - nxt.start_ns == nxt.aggr_us * 1000
    # starting far from where it settles, it moves there
    settle = settled_sample_us(hot_fraction, rate_hz, goal)
    assert (1 if settle > start_us else -1) in directions


@pytest.mark.parametrize("hot_fraction, rate_hz", [(1 / 8, 20), (1 / 8, 2), (1 / 4, 5)])
def test_it_settles_where_the_rule_says(hot_fraction, rate_hz):
    """With exact access rates, the sampling interval the tuning settles at
    is the one where 4% of the access events are found."""
    goal = IntervalsGoal(min_sample_us=1000)
    wl = rate_workload(hot_fraction, rate_hz)
    attrs = damonx.Attrs(intervals_goal=goal)
    with damonx.Monitor("sim", wl, attrs, seed=2) as mon:
        samples = [s.sample_us for s in mon.take(600)][300:]
    want = settled_sample_us(hot_fraction, rate_hz, goal)
    assert 0.7 * want < np.median(samples) < 1.4 * want


def test_the_interval_follows_the_access_rate():
    """A workload twice as busy settles at about half the interval; a
    phase change moves it."""
    goal = IntervalsGoal(min_sample_us=1000)
    fast, slow = 40, 4
    wl = damonx.Workload.from_dict(
        {
            "size": GIB,
            "phases": [
                {
                    "duration_us": 100_000_000,
                    "ranges": [{"start": 0, "end": GIB // 8, "rate_hz": r}],
                }
                for r in (fast, slow)
            ],
        }
    )
    with damonx.Monitor("sim", wl, damonx.Attrs(intervals_goal=goal), seed=3) as mon:
        snaps = []
        for snap in mon:
            snaps.append(snap)
            if snap.end_ns > 250e9:
                break
    at_fast = np.median([s.sample_us for s in snaps if 50e9 < s.end_ns < 100e9])
    at_slow = np.median([s.sample_us for s in snaps if s.end_ns > 200e9])
    assert 6 < at_slow / at_fast < 14


def test_no_goal_no_tuning():
    wl = rate_workload(1 / 8, 20)
    with damonx.Monitor("sim", wl, damonx.Attrs(), seed=2) as mon:
        snaps = mon.take(50)
        assert mon.stats()["nr_tunings"] == 0
    assert {(s.sample_us, s.aggr_us) for s in snaps} == {(5000, 100_000)}


def test_online_changes_rescale_counts_and_ages():
    """As the kernel's damon_set_attrs(): twice the intervals halve the ages;
    twice the samples per aggregation double the counts, so a region
    accessed at every sample still shows the most there can be."""
    wl = damonx.Workload.hot_cold(GIB, 0, GIB // 8, probability=1.0)
    with damonx.Monitor("sim", wl, damonx.Attrs(), seed=1) as mon:
        before = mon.take(40)[-1].regions
        old_age = before[before["nr_accesses"] == 20]["age"].max()
        mon.set_attrs(damonx.Attrs(sample_us=10_000, aggr_us=400_000))
        snap = mon.step()
    assert (snap.sample_us, snap.aggr_us) == (10_000, 400_000)
    hot = snap.regions[snap.regions["end"] <= GIB // 8]
    assert (hot["nr_accesses"] == 40).all()
    # halved by the change (ages count aggregations of four times the length,
    # rounded down), then one aggregation older
    assert hot["age"].max() == old_age // 4 + 1


def test_a_goal_set_while_monitoring_tunes():
    wl = rate_workload(1 / 8, 2)
    with damonx.Monitor("sim", wl, damonx.Attrs(), seed=1) as mon:
        mon.take(10)
        mon.set_attrs(damonx.Attrs(intervals_goal=IntervalsGoal()))
        snaps = mon.take(30)
        assert mon.attrs_in_effect().sample_us > 5000
    # the first tuning comes three aggregations after the change
    assert [s.sample_us for s in snaps[:3]] == [5000] * 3
    assert snaps[3].sample_us > 5000


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(access_bp=0), "access_bp must be positive"),
        (dict(access_bp=10001), "access_bp 10001 is too large"),
        (dict(aggrs=0), "aggrs must be positive"),
        (dict(min_sample_us=10, max_sample_us=5), "must not exceed max_sample_us"),
        (dict(min_sample_us=1.5), "must be an integer"),
    ],
)
def test_bad_goals_are_refused(kwargs, words):
    with pytest.raises(damonx.InvalidAttrs, match=words):
        IntervalsGoal(**kwargs)


def test_the_sampling_interval_must_start_inside_the_goal():
    with pytest.raises(damonx.InvalidAttrs, match=r"within the intervals goal's \[10000"):
        damonx.Attrs(intervals_goal=IntervalsGoal(min_sample_us=10_000))
    with pytest.raises(damonx.InvalidAttrs, match="intervals_goal must be a damonx.IntervalsGoal"):
        damonx.Attrs(intervals_goal=(400, 3, 5000, 10**7))


def test_cli_goal_and_record(capsys, tmp_path):
    """damo's options; every snapshot of the record carries its interval."""
    wl = tmp_path / "wl.json"
    wl.write_text(
        '{"size": 1073741824, "phases": [{"duration_us": 100000000, "ranges": '
        '[{"start": 0, "end": 134217728, "rate_hz": 2}]}]}'
    )
    out = tmp_path / "goal.data"
    goal = ["--monitoring_intervals_goal", "4%", "3", "5ms", "10s"]
    status, _, err = run(capsys, *sim_argv(out, *goal, workload=wl, timeout="60"))
    assert status == 0, err
    snaps = records.load(out).targets[0].snapshots
    samples = [s.sample_us for s in snaps]
    assert samples[0] == 5000 and max(samples) > 50_000
    for s in snaps:
        assert s.end_ns - s.start_ns == 20 * s.sample_us * 1000
    out2 = tmp_path / "auto.data"
    status, _, err = run(capsys, *sim_argv(out2, "--monitoring_intervals_autotune", workload=wl))
    assert status == 0, err
    assert [s.sample_us for s in records.load(out2).targets[0].snapshots][-1] > 5000


@pytest.mark.parametrize(
    "args, words",
    [
        (["--monitoring_intervals_goal", "4%", "3", "5ms"], "expected 4 arguments"),
        (["--monitoring_intervals_goal", "40000", "3", "5ms", "10s"], "ACCESS_BP '40000'"),
        (["--monitoring_intervals_goal", "4.5bp", "3", "5ms", "10s"], "ACCESS_BP '4.5bp'"),
        (["--monitoring_intervals_goal", "4%", "0", "5ms", "10s"], "AGGRS '0'"),
        (["--monitoring_intervals_goal", "4%", "3", "5ms", "soon"], "MAX_SAMPLE 'soon'"),
        (["--monitoring_intervals_goal", "4%", "3", "10ms", "10s"], "within the intervals goal"),
        (
            [
                "--monitoring_intervals_autotune",
                "--monitoring_intervals_goal",
                "4%",
                "3",
                "5ms",
                "1s",
            ],
            "not allowed with argument",
        ),
    ],
)
def test_cli_bad_goals(capsys, tmp_path, args, words):
    status, _, err = run(capsys, *sim_argv(tmp_path / "x.data", *args))
    assert status != 0
    assert words in one_error_line(err, "record")


def test_rate_workloads_round_trip_and_are_checked():
    wl = rate_workload(1 / 8, 20)
    assert wl.to_dict()["phases"][0]["ranges"][0]["rate_hz"] == 20
    assert damonx.Workload.from_dict(wl.to_dict()) == wl
    assert wl.hot_ranges(0, sample_us=5000) == [(0, GIB // 8)]
    assert wl.phases[0].ranges[0].access_probability(5000) == pytest.approx(1 - math.exp(-0.1))
    both = {"start": 0, "end": 4096, "rate_hz": 1, "probability": 0.5}
    for bad in (both, dict(both, probability=None) | {"rate_hz": -1}, {"start": 0, "end": 4096}):
        bad = {k: v for k, v in bad.items() if v is not None}
        with pytest.raises(damonx.InvalidAttrs, match="rate"):
            damonx.Workload.from_dict(
                {"size": 4096, "phases": [{"duration_us": 1, "ranges": [bad]}]}
            )
