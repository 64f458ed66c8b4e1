"""Monitoring attributes, seeds and scheme bounds: every value the compiled
core cannot hold is refused with InvalidAttrs before it gets there."""

import mmap

import pytest

import damonx
from damonx.attrs import MAX_INTERVAL_US

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
WL = {"size": 1 << 24, "phases": [{"duration_us": 10**6}]}


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(max_nr_regions=5_000_000_000), "max_nr_regions 5000000000 is too large"),
        (dict(max_nr_regions=U32_MAX + 1), f"at most {U32_MAX}"),
        (dict(min_nr_regions=2**40, max_nr_regions=2**41), "min_nr_regions .* too large"),
        (dict(sample_us=1, aggr_us=2**70, ops_update_us=2**70), "aggr_us .* too large"),
        (dict(ops_update_us=MAX_INTERVAL_US + 1), "ops_update_us .* too large"),
        (dict(sample_us=1, aggr_us=U32_MAX + 1), "nr_accesses would not fit 32 bits"),
        (dict(min_region_sz=2**64), "min_region_sz .* too large"),
        (dict(min_region_sz=mmap.PAGESIZE // 2), "smaller than a page"),
        (dict(min_region_sz=-4096), "must be positive"),
        (dict(sample_us=5.0), "must be an integer"),
    ],
)
def test_values_the_core_cannot_hold_are_refused(kwargs, words):
    with pytest.raises(damonx.InvalidAttrs, match=words):
        damonx.Attrs(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(sample_us=MAX_INTERVAL_US, aggr_us=MAX_INTERVAL_US, ops_update_us=MAX_INTERVAL_US),
        dict(min_nr_regions=3, max_nr_regions=U32_MAX),
        dict(sample_us=1, aggr_us=U32_MAX),
        dict(min_region_sz=2**63),
        dict(min_region_sz=mmap.PAGESIZE),
    ],
)
def test_the_largest_values_the_core_holds_are_taken(kwargs):
    attrs = damonx.Attrs(**kwargs)
    # and the compiled core takes them too
    with damonx.Monitor("sim", WL, attrs) as mon:
        assert mon.attrs == attrs


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, True, "1"])
def test_a_seed_outside_64_bits_is_refused(seed):
    with pytest.raises(damonx.InvalidAttrs, match="seed must be an integer from 0 to 2.64-1"):
        damonx.Monitor("sim", WL, seed=seed)


@pytest.mark.parametrize("seed", [0, 2**64 - 1])
def test_the_extreme_seeds_are_taken(seed):
    with damonx.Monitor("sim", WL, seed=seed) as mon:
        assert len(mon.take(1)) == 1


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(nr_accesses=(-1, 5)), "nr_accesses needs 0 <= min <= max"),
        (dict(nr_accesses=(0, U32_MAX + 1)), "nr_accesses needs"),
        (dict(age=(5, 1)), "age needs"),
        (dict(sz=(0, 2**64)), "sz needs"),
        (dict(sz=(0.5, 9)), "pair of integers"),
        (dict(age=3), "pair of integers"),
    ],
)
def test_scheme_bounds_outside_the_core_fields_are_refused(kwargs, words):
    with damonx.Monitor("sim", WL) as mon, pytest.raises(damonx.InvalidAttrs, match=words):
        mon.add_scheme("stat", **kwargs)
