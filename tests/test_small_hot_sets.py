"""Small hot sets in large memory, in simulation (exact ground truth):
damonx's default rules find hot sets of a 1/16,384 share of the target
within 10 s at the default attributes, with at most 4x the access checks of
the kernel's rules and never more regions than max_nr_regions; the kernel's
rules do not find them; and on the patterns the other tests and benchmarks
use, damonx's rules keep the kernel's precision, recall and convergence.

The runs are those of the benchmark (benchmarks/suite/smallhot.py), over
fixed seeds: each hot set lies at a random place of its seed.
"""

import statistics

import pytest

from benchmarks.suite import smallhot

SEEDS = range(10)


@pytest.mark.parametrize(
    "name, size, hot_sizes", smallhot.GOALS, ids=[g[0] for g in smallhot.GOALS]
)
def test_small_hot_sets_are_found_within_10_s(name, size, hot_sizes):
    runs = {
        cfg: [
            smallhot.hot_set_run(size, smallhot.place(size, hot_sizes, s), 0.5, rules, s, 20.0)
            for s in SEEDS
        ]
        for cfg, rules in smallhot.CONFIGS.items()
    }
    damonx_runs, kernel_runs = runs["damonx"], runs["kernel rules"]
    detected = [r["detect_s"] for r in damonx_runs]
    print(name, "detected at", detected)
    # precision and recall >= 0.8 within 10 s, and kept from then on
    assert sum(d is not None and d <= 10 for d in detected) >= 9, detected
    assert statistics.median(d or 99 for d in detected) <= 5, detected
    assert all(r["kept"] >= 0.9 for r in damonx_runs if r["kept"] is not None)
    # the kernel's rules never find them
    assert all(r["detect_s"] is None for r in kernel_runs)
    # at most 4x the checks per second of the kernel's rules, on each seed
    for mine, kernel in zip(damonx_runs, kernel_runs):
        assert mine["checks_per_s"] <= 4 * kernel["checks_per_s"]
        assert mine["max_nr_regions"] <= 1000


def test_the_issue_case_over_300_s():
    """4 MiB accessed with p 0.5 in 64 GiB: the kernel's rules mostly settle
    at 11-13 regions and never give the hot set its own; damonx's find it at
    once and keep it, with fewer checks than the kernel's."""
    size, seeds = 64 << 30, range(6)
    kernel, mine = [], []
    for seed in seeds:
        hot = smallhot.place(size, (4 << 20,), seed)
        kernel.append(smallhot.hot_set_run(size, hot, 0.5, [], seed, 300.0))
        mine.append(smallhot.hot_set_run(size, hot, 0.5, None, seed, 300.0))
    print([k["detect_s"] for k in kernel], [m["detect_s"] for m in mine])
    assert not any(k["detect_s"] is not None and k["detect_s"] <= 10 for k in kernel)
    assert sum(k["detect_s"] is None for k in kernel) >= len(seeds) // 2
    for k, m in zip(kernel, mine):
        assert m["detect_s"] <= 10 and m["kept"] >= 0.95
        assert m["checks_per_s"] < k["checks_per_s"]
        assert m["max_nr_regions"] <= 30


@pytest.fixture(scope="module")
def patterns():
    rows = smallhot.patterns(range(3), 30.0, log=lambda _: None)
    return {(r["pattern"], r["config"]): r for r in rows}


@pytest.mark.parametrize("pattern", list(smallhot.PATTERNS))
def test_known_patterns_keep_their_accuracy(patterns, pattern):
    mine, kernel = patterns[(pattern, "damonx")], patterns[(pattern, "kernel rules")]
    print(pattern, {k: (mine[k], kernel[k]) for k in mine if k not in ("pattern", "config")})
    assert mine["precision"] >= kernel["precision"] - 0.015
    assert mine["recall"] >= kernel["recall"] - 0.015
    if kernel.get("precision_0.5s") is not None:
        # half a second after the hot set moved
        assert mine["precision_0.5s"] >= kernel["precision_0.5s"] - 0.03
        assert mine["recall_0.5s"] >= kernel["recall_0.5s"] - 0.03
    if kernel.get("detect_s") is not None:
        assert mine["detect_s"] <= kernel["detect_s"] + 0.5
    assert mine["max_nr_regions"] <= 1000


@pytest.mark.parametrize("pattern", list(smallhot.PATTERNS))
def test_known_patterns_cost_fewer_checks(patterns, pattern):
    mine, kernel = patterns[(pattern, "damonx")], patterns[(pattern, "kernel rules")]
    # over the first 30 s, the search of the cold space included
    assert mine["checks_per_s"] <= 1.5 * kernel["checks_per_s"]
