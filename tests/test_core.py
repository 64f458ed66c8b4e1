"""The compiled context's interface (damonx._core.Context), which Monitor
drives: operations by name, errors as OSError, and the guard that keeps other
threads and signal handlers off a context whose loop is running."""

import errno
import os
import signal
import threading
import time

import numpy as np
import pytest

import damonx
from damonx import _core
from damonx.dtypes import MONITOR_REGION_DTYPE, REGION_DTYPE
from damonx.errors import DamonxError, InvalidAttrs

GIB = 1 << 30


def sim_context(attrs=None, virtual_clock=True, seed=1):
    ctx = _core.Context(attrs or damonx.Attrs(), "sim", seed, virtual_clock=virtual_clock)
    ctx.add_sim_target(0, GIB, 4096, [(10**9, [(0, GIB // 8, 0.5)])])
    return ctx


def test_operations_and_constants():
    assert _core.OPS == ("sim", "vaddr", "fvaddr", "paddr")
    # Documentation/admin-guide/mm/pagemap.rst
    assert _core.PM_PRESENT == 1 << 63 and _core.PM_SWAP == 1 << 62
    assert _core.PM_PFN_MASK == (1 << 55) - 1
    assert _core.KPF_LRU == 1 << 5 and _core.KPF_THP == 1 << 22
    assert not [name for name in dir(_core) if "bench" in name.lower()]


def test_unknown_operations_are_refused():
    with pytest.raises(ValueError, match="sim, vaddr, fvaddr, paddr"):
        _core.Context(damonx.Attrs(), "proc")


def test_sim_context_runs_and_snapshots():
    ctx = sim_context()
    assert ctx.ops == "sim" and ctx.procfs == "/proc"
    assert ctx.snapshot() == (0, 0, [])
    assert ctx.run_aggregation() == 1
    start_ns, end_ns, targets = ctx.snapshot()
    assert end_ns - start_ns == damonx.Attrs().aggr_us * 1000 == ctx.now_ns
    [(tid, regions)] = targets
    assert tid == 0 and regions.dtype == MONITOR_REGION_DTYPE and len(regions) > 0
    assert regions["start"][0] == 0 and regions["end"][-1] == GIB
    assert np.all(regions["start"][1:] == regions["end"][:-1])
    assert ctx.live_targets == [0]
    assert ctx.stats()["nr_aggregations"] == 1
    assert ctx.access_check_stats() == {}


def test_snapshots_carry_the_moving_sum():
    ctx = sim_context(seed=3)
    for _ in range(10):
        assert ctx.run_aggregation()
        regions = ctx.snapshot()[2][0][1]
        # at the end of an aggregation of 20 samples, the moving sum is the count
        assert np.array_equal(regions["nr_accesses_bp"], regions["nr_accesses"] * 10000)
    assert regions["nr_accesses"].max() > 0
    # the fields of records, at the offsets of REGION_DTYPE
    assert MONITOR_REGION_DTYPE.names[:4] == REGION_DTYPE.names
    assert all(
        MONITOR_REGION_DTYPE.fields[n][1] == REGION_DTYPE.fields[n][1] for n in REGION_DTYPE.names
    )


def test_actions_come_from_the_core():
    # damo's names, in the core's order
    assert list(_core.ACTIONS) == [
        "stat", "willneed", "cold", "pageout", "hugepage", "nohugepage", "collapse",
        "lru_prio", "lru_deprio", "migrate_hot", "migrate_cold",
    ]  # fmt: skip
    assert sorted(_core.ACTIONS.values()) == list(range(11))
    # the Python layer knows the same names (in the kernel's order)
    assert sorted(_core.ACTIONS) == sorted(damonx.schemes.ACTIONS)
    assert list(_core.GOAL_METRICS) == list(damonx.schemes.GOAL_METRICS)
    assert list(_core.FILTER_TYPES) == list(damonx.schemes.FILTER_TYPES)
    assert sim_context().actions == ("stat",)
    assert sim_context().filters == ("addr", "target")


def scheme_of(action):
    """A scheme of action on regions of 0 to 100 accesses and ages."""
    return damonx.Scheme(action, damonx.AccessPattern(nr_accesses=(0, 100), age=(0, 100)))


@pytest.mark.parametrize("action", ["willneed", "cold", "pageout", "collapse"])
def test_sim_refuses_actions_it_cannot_apply(action):
    ctx = sim_context()
    with pytest.raises(
        ValueError,
        match=rf"^ops 'sim' cannot apply action '{action}' "
        r"\(its actions: stat\)$",
    ):
        ctx.add_scheme(scheme_of(action))
    assert ctx.scheme_stats() == []


@pytest.mark.parametrize("action", ["hugepage", "nohugepage"])
def test_huge_page_advice_is_refused_with_the_reason(action):
    with pytest.raises(ValueError, match="process_madvise.*EINVAL.*'collapse'"):
        sim_context().add_scheme(scheme_of(action))


def test_scheme_stats_count_failures():
    ctx = sim_context()
    ctx.add_scheme(scheme_of("stat"))
    assert ctx.run_aggregation()
    [stats] = ctx.scheme_stats()
    assert stats["nr_tried"] > 0 and stats["nr_failed"] == 0 and stats["last_errno"] == 0
    assert set(stats) == {
        "nr_tried", "sz_tried", "nr_applied", "sz_applied", "sz_ops_filter_passed",
        "qt_exceeds", "nr_snapshots", "nr_failed", "last_errno", "esz", "activated",
    }  # fmt: skip


def test_page_size_is_the_systems_by_default(tmp_path):
    assert sim_context().page_size == os.sysconf("SC_PAGESIZE")
    assert damonx.Attrs().min_region_sz == os.sysconf("SC_PAGESIZE")
    # the real access checks refuse regions smaller than a page, and say why
    with pytest.raises(InvalidAttrs, match="^min_region_sz 4096 is below the page size 16384"):
        _core.Context(
            damonx.Attrs(), "paddr", page_size=16384, procfs=str(tmp_path), sysfs=str(tmp_path)
        )


def test_targets_of_other_operations_are_refused():
    ctx = sim_context()
    with pytest.raises(OSError) as err:
        ctx.add_pid_target(1)
    assert err.value.errno == errno.EINVAL
    with pytest.raises(OSError) as err:
        ctx.add_range_target(1, [(0, 1 << 20)])
    assert err.value.errno == errno.EINVAL


def test_missing_access_check_files_raise_oserror(tmp_path):
    with pytest.raises(OSError) as err:
        _core.Context(damonx.Attrs(), "paddr", procfs=str(tmp_path), sysfs=str(tmp_path))
    assert err.value.errno == errno.ENOENT


def test_calls_from_another_thread_are_refused_while_the_loop_runs():
    # real clock, one aggregation of 10 s: the loop sleeps in C meanwhile
    ctx = sim_context(damonx.Attrs(sample_us=100_000, aggr_us=10_000_000), virtual_clock=False)
    result = []
    loop = threading.Thread(target=lambda: result.append(ctx.run_aggregation()))
    loop.start()
    refused = None
    deadline = time.monotonic() + 5
    while refused is None and time.monotonic() < deadline:
        try:
            ctx.add_scheme(scheme_of("stat"))
        except DamonxError as err:
            refused = err
        time.sleep(0.001)
    try:
        assert refused is not None, "add_scheme was never refused"
        assert "running in another thread" in str(refused)
        for call in (
            ctx.run_aggregation,
            ctx.snapshot,
            lambda: ctx.add_sim_target(1, GIB, 4096, [(1, [])]),
        ):
            with pytest.raises(DamonxError, match="running in another thread"):
                call()
        # reading counters is fine meanwhile
        assert ctx.nr_regions > 0 and ctx.live_targets == [0]
    finally:
        t0 = time.monotonic()
        ctx.request_stop()
        loop.join(5)
    assert not loop.is_alive() and time.monotonic() - t0 < 1
    assert result == [0]
    # the loop is over: the context takes calls again
    ctx.add_scheme(scheme_of("stat"))
    assert ctx.snapshot() == (0, 0, [])


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_a_signal_handler_may_stop_the_loop_but_not_reenter_it():
    ctx = sim_context(damonx.Attrs(sample_us=100_000, aggr_us=10_000_000), virtual_clock=False)
    seen = []

    def handler(signum, frame):
        try:
            ctx.snapshot()
        except DamonxError as err:
            seen.append(err)
        ctx.request_stop()

    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        t0 = time.monotonic()
        assert ctx.run_aggregation() == 0
        # stopped by the handler, well before the 10 s aggregation would end
        assert time.monotonic() - t0 < 8
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert len(seen) == 1 and "running" in str(seen[0])
