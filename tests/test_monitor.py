"""The monitoring engine on the simulated backend, where ground truth is exact."""

import numpy as np
import pytest

import damonx
from damonx.sim import Workload, precision_recall

GIB, MIB = 1 << 30, 1 << 20
HOT = (128 * MIB, 256 * MIB)


def hot_cold(p=0.9):
    return Workload.hot_cold(GIB, *HOT, probability=p)


def check_cover(regions, size):
    assert regions["start"][0] == 0
    assert regions["end"][-1] == size
    assert np.all(regions["start"][1:] == regions["end"][:-1])
    assert np.all(regions["end"] > regions["start"])


@pytest.mark.parametrize("seed", range(5))
def test_hot_range_found_within_20_aggregations(seed):
    with damonx.Monitor("sim", hot_cold(), seed=seed) as mon:
        snaps = mon.take(20)
    assert len(snaps) == 20
    p, r = precision_recall(snaps[-1].regions, [HOT])
    assert p >= 0.9 and r >= 0.9, (p, r)
    # and it stays found
    for snap in snaps[-3:]:
        assert min(precision_recall(snap.regions, [HOT])) >= 0.9


def test_moving_hot_range_is_followed():
    second = (640 * MIB, 768 * MIB)
    wl = Workload.from_dict(
        {
            "size": GIB,
            "phases": [
                {
                    "duration_us": 5_000_000,
                    "ranges": [{"start": HOT[0], "end": HOT[1], "probability": 0.9}],
                },
                {
                    "duration_us": 5_000_000,
                    "ranges": [{"start": second[0], "end": second[1], "probability": 0.9}],
                },
            ],
        }
    )
    for seed in range(3):
        with damonx.Monitor("sim", wl, seed=seed) as mon:
            snaps = mon.take(70)
        # first phase: 50 aggregations of 100 ms
        assert min(precision_recall(snaps[49].regions, [HOT])) >= 0.9
        # 20 aggregations into the second phase the new hot range is found
        p, r = precision_recall(snaps[69].regions, [second])
        assert p >= 0.9 and r >= 0.9, (seed, p, r)
        # and the old one is no longer reported hot
        assert precision_recall(snaps[69].regions, [HOT])[1] < 0.1


def test_regions_cover_the_space_and_respect_limits():
    attrs = damonx.Attrs(min_nr_regions=10, max_nr_regions=40)
    stripes = [
        {"start": i * 8 * MIB, "end": i * 8 * MIB + 4 * MIB, "probability": 0.5 + (i % 5) / 10}
        for i in range(0, 128, 2)
    ]
    wl = Workload.from_dict({"size": GIB, "phases": [{"duration_us": 10**7, "ranges": stripes}]})
    with damonx.Monitor("sim", wl, attrs, seed=1) as mon:
        for snap in mon.take(50):
            regs = snap.regions
            check_cover(regs, GIB)
            assert len(regs) <= 40
            assert np.all(regs["nr_accesses"] <= attrs.max_nr_accesses)
            assert np.all(regs["start"] % 4096 == 0)


def test_snapshot_times_follow_the_virtual_clock():
    attrs = damonx.Attrs(sample_us=1000, aggr_us=50_000)
    with damonx.Monitor("sim", hot_cold(), attrs) as mon:
        snaps = mon.take(10)
    for i, s in enumerate(snaps):
        assert s.start_ns == i * 50_000_000
        assert s.end_ns == (i + 1) * 50_000_000
    assert mon_stats_after(attrs)["nr_samples"] == 10 * 50


def mon_stats_after(attrs, n=10):
    with damonx.Monitor("sim", hot_cold(), attrs) as mon:
        mon.take(n)
        return mon.stats()


def test_real_time_sim_is_paced_by_the_clock_and_starts_at_its_first_phase():
    """With real_time, sim sleeps through its intervals; its phases count
    from the start of monitoring, not from the boot of the machine."""
    import time

    spec = {
        "size": 1 << 26,
        "phases": [
            {"duration_us": 10**12, "ranges": [{"start": 0, "end": 1 << 22, "probability": 1.0}]},
            {"duration_us": 1, "ranges": [{"start": 1 << 25, "end": 1 << 26, "probability": 1.0}]},
        ],
    }
    attrs = damonx.Attrs(sample_us=2000, aggr_us=40_000)
    t0 = time.monotonic()
    with damonx.Monitor("sim", Workload.from_dict(spec), attrs, real_time=True) as mon:
        snaps = mon.take(5)
    elapsed = time.monotonic() - t0
    assert elapsed >= 5 * 0.040
    for snap in snaps:
        assert snap.end_ns - snap.start_ns >= 40_000_000
    last = snaps[-1].regions
    accessed = last[last["nr_accesses"] > 0]
    # the first phase is hot in [0, 4 MiB), the second in [32 MiB, 64 MiB)
    assert len(accessed) and int(accessed["start"].max()) < 1 << 25


def test_same_seed_same_result_other_seed_other_result():
    def run(seed):
        with damonx.Monitor("sim", hot_cold(0.5), seed=seed) as mon:
            return [s.regions.copy() for s in mon.take(15)]

    a, b, c = run(3), run(3), run(4)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_nr_accesses_estimates_the_probability():
    wl = Workload.hot_cold(GIB, 0, GIB, probability=0.3)
    with damonx.Monitor("sim", wl, seed=5) as mon:
        snaps = mon.take(40)
    rates = np.concatenate([s.regions["nr_accesses"] for s in snaps[10:]]) / 20
    assert abs(rates.mean() - 0.3) < 0.05


def test_age_grows_while_the_pattern_holds():
    with damonx.Monitor("sim", hot_cold(1.0), seed=2) as mon:
        snaps = mon.take(60)
    assert snaps[-1].regions["age"].max() >= 20


def test_callbacks_run_after_each_aggregation_and_can_stop():
    seen = []
    with damonx.Monitor("sim", hot_cold()) as mon:
        mon.add_callback(lambda snap: seen.append(snap.end_ns) or len(seen) >= 7)
        n = mon.run()
    assert n == 7 and len(seen) == 7
    assert seen == sorted(seen)


def test_run_for_simulated_duration():
    with damonx.Monitor("sim", hot_cold()) as mon:
        assert mon.run(duration_s=60) == 600  # a minute of monitoring


def test_run_without_callbacks_makes_no_snapshot_and_does_the_same():
    """Nobody consumes the snapshots of run() without callbacks: none is
    made, and the monitoring, its schemes and its counters are the same."""
    out = {}
    for consume in (False, True):
        with damonx.Monitor("sim", hot_cold(), seed=3) as mon:
            mon.add_scheme("stat", nr_accesses=(5, 20))
            if consume:
                mon.add_callback(lambda snap: None)
            assert mon.run(duration_s=10) == 100
            assert mon.run(nr_aggregations=7) == 7
            out[consume] = (mon.scheme_stats(), mon.stats(), mon.step().nr_checks)
    assert out[False] == out[True]


def test_several_sim_targets():
    wl2 = Workload.hot_cold(256 * MIB, 0, 16 * MIB)
    with damonx.Monitor("sim", [hot_cold(), wl2]) as mon:
        snap = mon.take(20)[-1]
    assert set(snap.targets) == {0, 1}
    check_cover(snap.targets[0], GIB)
    check_cover(snap.targets[1], 256 * MIB)
    assert min(precision_recall(snap.targets[1], [(0, 16 * MIB)])) >= 0.8
    with pytest.raises(ValueError, match="snapshot has 2 targets; use .targets"):
        _ = snap.regions


def test_stat_scheme_counts_matching_regions():
    with damonx.Monitor("sim", hot_cold(1.0), seed=1) as mon:
        mon.add_scheme("stat", nr_accesses=(15, 20))
        mon.take(30)
        stats = mon.scheme_stats()[0]
    assert stats["nr_tried"] > 0
    # the hot range (128 MiB) is tried about once per aggregation once found
    assert 20 * 128 * MIB <= stats["sz_tried"] <= 31 * 140 * MIB
    with damonx.Monitor("sim", hot_cold()) as mon:
        with pytest.raises(damonx.InvalidAttrs):
            mon.add_scheme("explode")
        with pytest.raises(damonx.InvalidAttrs):
            mon.add_scheme("stat", sz=(10, 5))


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(min_nr_regions=2), "at least 3"),
        (dict(min_nr_regions=50, max_nr_regions=20), "must not exceed max_nr_regions"),
        (dict(sample_us=200_000), "must not exceed aggr_us"),
        (dict(aggr_us=0), "must be positive"),
        (dict(ops_update_us=-1), "must be positive"),
        (dict(sample_us=1.5), "must be an integer"),
        (dict(min_region_sz=3000), "power of two"),
    ],
)
def test_bad_attrs_are_refused_clearly(kwargs, words):
    with pytest.raises(damonx.InvalidAttrs, match=words):
        damonx.Attrs(**kwargs)


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"page_size": 4096, "phases": []}, "lacks 'size'"),
        ({"size": GIB, "phases": []}, "non-empty list"),
        ({"size": GIB, "phases": [{"ranges": []}]}, "duration_us"),
        (
            {
                "size": GIB,
                "phases": [
                    {"duration_us": 1, "ranges": [{"start": 0, "end": 2 * GIB, "probability": 0.5}]}
                ],
            },
            "not inside",
        ),
        (
            {
                "size": GIB,
                "phases": [
                    {"duration_us": 1, "ranges": [{"start": 0, "end": 10, "probability": 1.5}]}
                ],
            },
            r"not in \[0, 1\]",
        ),
        (
            {
                "size": GIB,
                "phases": [
                    {
                        "duration_us": 1,
                        "ranges": [
                            {"start": 0, "end": 100, "probability": 0.5},
                            {"start": 50, "end": 200, "probability": 0.5},
                        ],
                    }
                ],
            },
            "overlaps",
        ),
        ({"size": 1000, "phases": [{"duration_us": 1}]}, "multiple of page_size"),
        ({"size": GIB, "phase": []}, "unknown workload keys"),
    ],
)
def test_bad_workloads_are_refused_clearly(spec, words):
    with pytest.raises(damonx.InvalidAttrs, match=words):
        Workload.from_dict(spec)


def test_workload_from_json_file(tmp_path):
    p = tmp_path / "w.json"
    p.write_text(
        '{"size": 1073741824, "page_size": 4096, "phases": [{"duration_us": 10000000,'
        ' "ranges": [{"start": 134217728, "end": 268435456, "probability": 0.9}]}]}'
    )
    wl = Workload.load(p)
    assert wl == hot_cold()
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(damonx.InvalidAttrs, match="not valid JSON"):
        Workload.load(tmp_path / "bad.json")
    with pytest.raises(damonx.FileNotFound, match="cannot read workload .*missing.json"):
        Workload.load(tmp_path / "missing.json")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\0")
    with pytest.raises(damonx.InvalidAttrs, match="not a text file"):
        Workload.load(tmp_path / "binary.json")


def test_bad_monitor_arguments():
    with pytest.raises(damonx.InvalidAttrs, match="unknown ops"):
        damonx.Monitor("xaddr", hot_cold())
    with pytest.raises(damonx.InvalidAttrs, match="Workloads"):
        damonx.Monitor("sim", "not a workload")
    with pytest.raises(damonx.InvalidAttrs, match="damonx.Attrs"):
        damonx.Monitor("sim", hot_cold(), {"sample_us": 5000})
    with pytest.raises(
        damonx.InvalidAttrs, match="unknown backend 'kdamond'; one of auto, page_idle, kernel"
    ):
        damonx.Monitor("sim", hot_cold(), backend="kdamond")
    with pytest.raises(damonx.InvalidAttrs, match="backend 'kernel' does not run ops 'sim'"):
        damonx.Monitor("sim", hot_cold(), backend="kernel")


@pytest.mark.parametrize("action", ["pageout", "cold", "willneed", "collapse"])
def test_actions_sim_cannot_apply_are_refused(action):
    """sim has no pages to act on: an action would be counted as tried and
    never applied, so it is refused when added."""
    with damonx.Monitor("sim", hot_cold()) as mon:
        with pytest.raises(
            damonx.InvalidAttrs,
            match=rf"^invalid scheme: ops 'sim' cannot apply action '{action}' "
            r"\(its actions: stat\)$",
        ):
            mon.add_scheme(action, age=(10, 2**32 - 1))
        assert mon.scheme_stats() == []


def test_huge_page_advice_is_refused_with_what_to_use():
    with damonx.Monitor("sim", hot_cold()) as mon:
        for action in ("hugepage", "nohugepage"):
            with pytest.raises(damonx.InvalidAttrs, match="process_madvise.*use|'collapse'"):
                mon.add_scheme(action)


def test_scheme_stats_say_what_failed():
    with damonx.Monitor("sim", hot_cold(1.0), seed=1) as mon:
        mon.add_scheme("stat")
        mon.take(3)
        [stats] = mon.scheme_stats()
    assert stats["nr_failed"] == 0 and stats["last_errno"] == 0
    assert stats["nr_tried"] > 0 and stats["nr_applied"] == 0


def test_snapshots_carry_nr_accesses_bp_and_records_keep_damos_fields(tmp_path):
    from damonx import records
    from damonx.dtypes import MONITOR_REGION_DTYPE, REGION_DTYPE

    out = tmp_path / "rec.json"
    with damonx.Monitor("sim", hot_cold(1.0), seed=2) as mon:
        snaps = mon.take(5)
    with records.RecordWriter(str(out), "json", mon.attrs.intervals) as w:
        for snap in snaps:
            w.add_snapshot(0, snap.start_ns, snap.end_ns, snap.regions)
    for snap in snaps:
        regs = snap.regions
        assert regs.dtype == MONITOR_REGION_DTYPE
        assert np.array_equal(regs["nr_accesses_bp"], regs["nr_accesses"] * 10000)
    loaded = records.load(str(out)).targets[0].snapshots
    assert [s.regions.dtype for s in loaded] == [REGION_DTYPE] * 5
    for snap, got in zip(snaps, loaded):
        for name in REGION_DTYPE.names:
            assert np.array_equal(snap.regions[name], got.regions[name])


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(sz=(10, 5)), r"sz needs 0 <= min <= max"),
        (dict(nr_accesses=(0, 2**32)), r"nr_accesses needs 0 <= min <= max <= 4294967295"),
        (dict(age=(-1, 3)), "age needs"),
        (dict(age=(1.5, 3)), "age must be a .min, max. pair of integers"),
        (dict(sz=5), "sz must be a .min, max. pair"),
    ],
)
def test_bad_schemes_are_refused_clearly(kwargs, words):
    with damonx.Monitor("sim", hot_cold()) as mon:
        with pytest.raises(damonx.InvalidAttrs, match="invalid scheme: " + words):
            mon.add_scheme("stat", **kwargs)
        with pytest.raises(damonx.InvalidAttrs, match="invalid scheme: unknown action 'explode'"):
            mon.add_scheme("explode")
        assert mon.scheme_stats() == []


def test_a_closed_monitor_says_so():
    mon = damonx.Monitor("sim", hot_cold())
    assert len(mon.take(2)) == 2
    mon.close()
    mon.close()  # closing twice is fine
    uses = [
        mon.step,
        mon.stop,
        mon.stats,
        mon.scheme_stats,
        mon.access_check_stats,
        lambda: mon.take(1),
        lambda: mon.run(nr_aggregations=1),
        lambda: next(iter(mon)),
        lambda: mon.add_scheme("stat"),
        lambda: mon.nr_regions,
        lambda: mon.live_targets,
    ]
    for use in uses:
        with pytest.raises(damonx.DamonxError, match="^the monitor is closed$"):
            use()
    with damonx.Monitor("sim", hot_cold()) as mon:
        assert mon.live_targets == [0]
    with pytest.raises(damonx.DamonxError, match="closed"):
        mon.step()


def test_public_names_import_from_their_modules():
    import importlib

    from damonx import attrs, dtypes, errors, kernel_damon, monitor, sim

    for name in damonx._LAZY:
        assert getattr(damonx, name) is not None and name in dir(damonx)
    assert damonx.Attrs is attrs.Attrs and monitor.Intervals is attrs.Intervals
    assert damonx.Monitor is monitor.Monitor and damonx.Snapshot is monitor.Snapshot
    assert damonx.Workload is sim.Workload
    assert damonx.REGION_DTYPE is dtypes.REGION_DTYPE is monitor.REGION_DTYPE
    assert kernel_damon.REGION_DTYPE is dtypes.REGION_DTYPE
    for name in (
        "DamonxError",
        "NoSuchProcess",
        "ZombieProcess",
        "AccessDenied",
        "NotSupported",
        "InvalidAttrs",
        "InvalidRecord",
        "FileNotFound",
        "FileExists",
    ):
        assert getattr(damonx, name) is getattr(errors, name)
        assert issubclass(getattr(damonx, name), damonx.DamonxError)
    with pytest.raises(AttributeError, match="no attribute 'types'"):
        _ = damonx.types
    with pytest.raises(ImportError):
        importlib.import_module("damonx.types")


def test_snapshots_carry_their_intervals_checks_and_scheme_stats():
    wl = damonx.Workload.hot_cold(1 << 30, 128 << 20, 256 << 20, probability=0.9)
    attrs = damonx.Attrs(sample_us=5000, aggr_us=100_000)
    with damonx.Monitor("sim", wl, attrs, seed=2) as mon:
        first = mon.take(5)
        assert all(s.scheme_stats is None for s in first)
        mon.add_scheme("stat", nr_accesses=(10, 20))
        later = mon.take(5)
        checks = mon.stats()["nr_region_checks"]
    snaps = first + later
    assert all((s.sample_us, s.aggr_us) == (5000, 100_000) for s in snaps)
    # every check of the run belongs to exactly one snapshot; each
    # aggregation of 20 samples checks every region once per sample
    assert sum(s.nr_checks for s in snaps) == checks
    assert all(s.nr_checks >= 20 * attrs.min_nr_regions for s in snaps)
    assert [len(s.scheme_stats) for s in later] == [1] * 5
    tried = [s.scheme_stats[0]["nr_tried"] for s in later]
    assert tried == sorted(tried) and tried[-1] > 0
