"""damonx's own rules of where the access checks go (csrc/sampling.c), seen
from Python: the attributes that choose them, the checks that snapshots,
records and counters report, and nr_accesses keeping its meaning when
stable regions are checked in fewer samples."""

import numpy as np
import pytest

import damonx
from damonx import _core, records
from tests.cli_helpers import sim_record

GIB, MIB = 1 << 30, 1 << 20


def test_both_rules_are_on_by_default_and_kernel_turns_them_off():
    attrs = damonx.Attrs()
    assert attrs.hit_guided_regions and attrs.adaptive_checks
    kernel = damonx.Attrs.kernel(max_nr_regions=200)
    assert not kernel.hit_guided_regions and not kernel.adaptive_checks
    assert kernel.max_nr_regions == 200
    assert damonx.Attrs.kernel(adaptive_checks=True).adaptive_checks


@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_rules_take_booleans_only(value):
    with pytest.raises(damonx.InvalidAttrs, match="hit_guided_regions must be True or False"):
        damonx.Attrs(hit_guided_regions=value)


def test_single_rules_are_named():
    assert set(_core.RULES) == {"seeds", "probes", "search", "keep", "periods", "noise"}
    with pytest.raises(ValueError, match="unknown rules bogus"):
        _core.Context(damonx.Attrs(), "sim", rules=["seeds", "bogus"])


def two_targets():
    return [
        damonx.Workload.hot_cold(GIB, 100 * MIB, 200 * MIB, probability=0.9),
        damonx.Workload.hot_cold(64 * MIB, 0, 8 * MIB, probability=0.5),
    ]


@pytest.mark.parametrize("attrs", [damonx.Attrs(), damonx.Attrs.kernel()], ids=["damonx", "kernel"])
def test_snapshots_count_the_checks_of_each_target(attrs):
    with damonx.Monitor("sim", two_targets(), attrs, seed=4) as mon:
        snaps = mon.take(40)
        total = mon.stats()["nr_region_checks"]
    assert sum(s.nr_checks for s in snaps) == total
    for s in snaps:
        assert set(s.target_nr_checks) == {0, 1}
        assert sum(s.target_nr_checks.values()) == s.nr_checks
        assert s.nr_checks_of(1) == s.target_nr_checks[1] > 0
    if attrs == damonx.Attrs.kernel():
        # the kernel's rules: every region in each of the 20 samples
        assert all(s.nr_checks >= 20 * s.nr_regions for s in snaps)


def test_records_carry_the_checks_of_each_target(tmp_path):
    out = tmp_path / "two.json"
    with damonx.Monitor("sim", two_targets(), seed=1) as mon:
        snaps = mon.take(10)
    w = records.RecordWriter(out, "json", intervals=damonx.Attrs().intervals)
    for s in snaps:
        for tid, regions in s.targets.items():
            w.add_snapshot(tid, s.start_ns, s.end_ns, regions, nr_checks=s.nr_checks_of(tid))
    w.close()
    rec = records.load(out)
    for t in rec.targets:
        assert [x.nr_checks for x in t.snapshots] == [
            s.target_nr_checks[t.target_id] for s in snaps
        ]


def test_recorded_checks_are_those_of_each_aggregation(tmp_path, capsys):
    from tests.cli_helpers import HOT_COLD

    out = tmp_path / "r.data"
    status, _ = sim_record(capsys, out, "--seed", "7", timeout="3")
    assert status == 0
    recorded = [s.nr_checks for s in records.load(out).targets[0].snapshots]
    with damonx.Monitor("sim", damonx.Workload.load(HOT_COLD), seed=7) as mon:
        expected = [s.nr_checks_of(0) for s in mon.take(len(recorded))]
    assert recorded == expected


def moving_hot_set(size, probability):
    """One eighth of [0, size) hot, moving every 5 s."""
    eighth = size // 8
    phases = [
        {
            "duration_us": 5_000_000,
            "ranges": [{"start": k * eighth, "end": (k + 1) * eighth, "probability": probability}],
        }
        for k in range(8)
    ]
    return damonx.Workload.from_dict({"size": size, "phases": phases})


def test_counts_keep_their_range_and_moving_sum():
    attrs = damonx.Attrs()
    with damonx.Monitor("sim", moving_hot_set(GIB, 0.7), attrs, seed=3) as mon:
        snaps = mon.take(200)
    for s in snaps:
        r = s.regions
        assert np.all(r["nr_accesses"] <= attrs.max_nr_accesses)
        # at the end of an aggregation the moving sum is the count
        assert np.array_equal(r["nr_accesses_bp"], r["nr_accesses"] * 10000)


def hot_counts(attrs, seeds, nr_aggrs=150):
    """nr_accesses of the regions inside a static hot range (p 0.7), by bytes."""
    wl = damonx.Workload.hot_cold(GIB, 256 * MIB, 512 * MIB, probability=0.7)
    counts, weights = [], []
    for seed in seeds:
        with damonx.Monitor("sim", wl, attrs, seed=seed) as mon:
            for s in mon.take(nr_aggrs)[50:]:
                r = s.regions
                inside = (r["start"] >= 256 * MIB) & (r["end"] <= 512 * MIB)
                counts += r["nr_accesses"][inside].tolist()
                weights += (r["end"] - r["start"])[inside].tolist()
    return np.average(counts, weights=weights)


def test_scaled_counts_estimate_the_kernels_count():
    # 0.7 of 20 samples: 14 on average, with every region checked in every
    # sample or with stable ones checked in fewer and their counts scaled
    kernel = hot_counts(damonx.Attrs.kernel(), range(3))
    adaptive = hot_counts(damonx.Attrs(), range(3))
    assert abs(kernel - 14) < 0.5
    assert abs(adaptive - 14) < 0.5


def test_stable_regions_are_checked_less():
    wl = damonx.Workload.hot_cold(GIB, 256 * MIB, 512 * MIB, probability=1.0)
    checks = {}
    adaptive = damonx.Attrs(hit_guided_regions=False)
    for name, attrs in (("kernel", damonx.Attrs.kernel()), ("adaptive", adaptive)):
        with damonx.Monitor("sim", wl, attrs, seed=8) as mon:
            mon.run(30)
            late = mon.take(100)
        checks[name] = sum(s.nr_checks for s in late)
    # once stable, a third of the kernel's checks at most
    assert checks["adaptive"] < checks["kernel"] / 3, checks
