"""Real access checks (vaddr, fvaddr, paddr) on real processes.

These run inside the project's VM, whose kernel has idle page tracking:
    tools/vmtest/run -- .venv/bin/python -m pytest -m vm tests/vm
"""

import contextlib
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import damonx
from benchmarks import bench_ext
from damonx.sim import overlap_bytes
from tests.vm.helpers import hot_precision_recall, kill, needs_page_idle, swap_on, workload

pytestmark = [pytest.mark.vm, needs_page_idle]


def found_within(mon, seconds, evaluate, threshold=0.8):
    """Run mon until evaluate(snapshot) gives precision and recall >= threshold.
    Returns (elapsed seconds, (p, r)) or fails with the best seen."""
    t0 = time.monotonic()
    best = (0.0, 0.0)
    for snap in mon:
        pr = evaluate(snap)
        best = max(best, pr, key=min)
        if min(pr) >= threshold:
            return time.monotonic() - t0, pr
        if time.monotonic() - t0 > seconds:
            break
    pytest.fail(f"hot set not found within {seconds} s: best precision/recall {best}")


@pytest.mark.smoke
def test_vaddr_finds_the_hot_set():
    with workload(512, 64) as w, damonx.Monitor("vaddr", [w.pid]) as mon:
        elapsed, pr = found_within(
            mon, 10, lambda s: hot_precision_recall(s.targets[w.pid], [w.hot], within=w.range)
        )
        stats = mon.access_check_stats()
    print(f"vaddr: found in {elapsed:.1f} s, precision/recall {pr}")
    assert stats["nr_pagemap_reads"] > 0 and stats["nr_bitmap_reads"] > 0


def test_vaddr_finds_a_small_hot_set_in_a_large_process():
    """8 MiB hot in a 2 GiB mapping (a 1/256 share), at the default
    attributes with damonx's own rules (Attrs.hit_guided_regions,
    Attrs.adaptive_checks): real access checks feed the seeds and probes."""
    with workload(2048, hot_kib=8 * 1024) as w, damonx.Monitor("vaddr", [w.pid]) as mon:
        elapsed, pr = found_within(
            mon, 30, lambda s: hot_precision_recall(s.targets[w.pid], [w.hot], within=w.range)
        )
        nr_regions = max(len(s.targets[w.pid]) for s in mon.take(10))
    print(f"vaddr, 8 MiB in 2 GiB: found in {elapsed:.1f} s, precision/recall {pr}")
    assert nr_regions <= damonx.Attrs().max_nr_regions


def test_vaddr_regions_follow_the_three_regions():
    with workload(256, 32) as w, damonx.Monitor("vaddr", [w.pid]) as mon:
        snap = mon.take(3)[-1]
        regs = snap.targets[w.pid]
        maps = damonx._core.read_maps(f"/proc/{w.pid}/maps")
    assert np.all(regs["start"][1:] >= regs["end"][:-1])
    assert regs["start"][0] <= maps[0][0] + 4096
    assert regs["end"][-1] >= maps[-1][1] - 4096
    # the workload's mapping is inside the monitored regions
    assert ((regs["start"] <= w.range[0]) & (regs["end"] > w.range[0])).any()


def test_fvaddr_monitors_only_the_given_range():
    with workload(512, 64) as w, damonx.Monitor("fvaddr", {w.pid: [w.range]}) as mon:
        elapsed, pr = found_within(
            mon, 10, lambda s: hot_precision_recall(s.targets[w.pid], [w.hot])
        )
        regs = mon.take(1)[0].targets[w.pid]
    assert regs["start"][0] == w.range[0] and regs["end"][-1] == w.range[1]
    print(f"fvaddr: found in {elapsed:.1f} s, precision/recall {pr}")


def physical_ranges(pid, lo, hi):
    """The physical address ranges backing [lo, hi) of a process."""
    page = 4096
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        f.seek(lo // page * 8)
        entries = np.frombuffer(f.read((hi - lo) // page * 8), dtype="<u8")
    present = (entries >> np.uint64(63)) & np.uint64(1) == 1
    pfns = np.sort((entries[present] & np.uint64((1 << 55) - 1)).astype(np.int64))
    breaks = np.nonzero(np.diff(pfns) != 1)[0]
    starts = np.concatenate([[pfns[0]], pfns[breaks + 1]])
    ends = np.concatenate([pfns[breaks], [pfns[-1]]]) + 1
    return [(int(s) * page, int(e) * page) for s, e in zip(starts, ends)]


@contextlib.contextmanager
def physically_contiguous_workload(size_mib, hot_mib, max_pieces=4):
    """A workload whose hot set lies in at most max_pieces physical ranges,
    and those ranges.  Region sampling over all of RAM resolves a hot set
    scattered in many small pieces only slowly, and tests that ran earlier in
    the same boot leave free memory scattered: such tests are marked
    fresh_memory to run first, and memory is compacted if that was not enough."""
    for _attempt in range(2):
        with workload(size_mib, hot_mib) as w:
            hot_phys = physical_ranges(w.pid, *w.hot)
            if len(hot_phys) <= max_pieces:
                yield w, hot_phys
                return
        t0 = time.monotonic()
        with open("/proc/sys/vm/compact_memory", "w") as f:
            f.write("1\n")
        print(
            f"hot set in {len(hot_phys)} physical pieces: memory compacted in "
            f"{time.monotonic() - t0:.0f} s"
        )
    pytest.fail(
        f"the hot set stays in {len(hot_phys)} physical pieces after compaction: "
        "run this test in a fresh boot of the VM"
    )


#: the least precision over all RAM of settled paddr snapshots (hot bytes in
#: the workload's hot pages / all hot bytes reported, the median of five) in
#: this VM: measured 0.93 to 0.97 in five fresh boots (single snapshots
#: 0.70 to 1.0); the rest is what the kernel, this test and the VM's other
#: processes touch meanwhile
PADDR_ALL_RAM_PRECISION = 0.8


@pytest.mark.fresh_memory
def test_paddr_finds_the_hot_set_in_physical_memory():
    with (
        physically_contiguous_workload(512, 64) as (w, hot_phys),
        damonx.Monitor("paddr", None) as mon,
    ):
        cold_phys = physical_ranges(w.pid, *w.range)
        true = sum(e - s for s, e in hot_phys)

        def evaluate(snap):
            # within the workload's own pages: found at all?
            regs = snap.targets[0]
            hot = regs[regs["nr_accesses"] > 0]
            inside = overlap_bytes(hot, cold_phys)
            tp = overlap_bytes(hot, hot_phys)
            return (tp / inside if inside else 0.0, tp / true)

        def all_ram(snap):
            # every byte reported hot, anywhere in RAM, that is not a
            # hot page of the workload counts against precision
            regs = snap.targets[0]
            hot = regs[regs["nr_accesses"] > 0]
            reported = int((hot["end"] - hot["start"]).sum())
            tp = overlap_bytes(hot, hot_phys)
            return tp / reported if reported else 0.0, tp / true

        elapsed, pr = found_within(mon, 10, evaluate)
        # one snapshot's edges wander: the median of the next five
        settled = sorted(all_ram(snap) for snap in mon.take(5))
    precision, recall = np.median([p for p, _ in settled]), np.median([r for _, r in settled])
    print(
        f"paddr: {len(hot_phys)} physical hot ranges, found in {elapsed:.1f} s, "
        f"precision/recall within the workload's pages {pr}; over all RAM, five "
        f"snapshots: {[(round(p, 3), round(r, 3)) for p, r in settled]}"
    )
    assert precision >= PADDR_ALL_RAM_PRECISION, settled
    assert recall >= 0.8, settled


def test_thp_backed_memory():
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
        thp_mode = f.read().split("[")[1][:5]
    if thp_mode == "never":
        pytest.skip("THP disabled")
    with workload(512, 64, thp=True) as w:
        thp_kb = w.smaps_field("AnonHugePages")
        assert thp_kb >= 256 * 1024, f"only {thp_kb} kB of the workload in huge pages"
        with damonx.Monitor("vaddr", [w.pid]) as mon:
            elapsed, pr = found_within(
                mon, 10, lambda s: hot_precision_recall(s.targets[w.pid], [w.hot], within=w.range)
            )
        # inside the huge pages every sample but a head's needs its head looked up
        with damonx.Monitor("fvaddr", {w.pid: [w.range]}) as mon:
            mon.take(5)
            stats = mon.access_check_stats()
    assert stats["nr_kpageflags_reads"] > 1.5 * stats["nr_pagemap_reads"]
    print(f"THP: {thp_kb // 1024} MiB in huge pages, found in {elapsed:.1f} s, {pr}")


def test_a_target_that_exits_is_dropped_and_the_others_go_on():
    with workload(64, 8) as a, workload(64, 8) as b, damonx.Monitor("vaddr", [a.pid, b.pid]) as mon:
        snaps = mon.take(3)
        assert set(snaps[-1].targets) == {a.pid, b.pid}
        kill(a.proc)
        snaps = mon.take(3)
        assert set(snaps[-1].targets) == {b.pid}
        assert mon.live_targets == [b.pid]
        kill(b.proc)
        t0 = time.monotonic()
        assert mon.run() <= 1  # ends by itself once no target is left
        assert time.monotonic() - t0 < 5
        assert mon.stats()["nr_targets_lost"] == 2


def test_a_target_that_exits_mid_sample_reads_not_accessed():
    """The pages of a process that exits are freed, and the idle bits of
    freed pages read accessed: the sample in which it exits must not count
    them (the pagemap and the pidfd say it is gone)."""
    attrs = damonx.Attrs(sample_us=1_000_000, aggr_us=1_000_000, min_nr_regions=10)
    with workload(64, 0) as w, damonx.Monitor("fvaddr", {w.pid: [w.range]}, attrs) as mon:
        before = mon.take(2)[-1].targets[w.pid]
        assert (before["nr_accesses"] == 0).all(), before  # the workload sleeps
        timer = threading.Timer(0.4, kill, (w.proc,))
        timer.start()
        try:
            snap = mon.step()
        finally:
            timer.join()
        stats = mon.access_check_stats()
    regs = snap.targets[w.pid]
    assert (regs["nr_accesses"] == 0).all(), regs
    assert stats["nr_changed"] >= len(regs) // 2, stats


def test_a_vanished_pid_is_refused_clearly():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    with pytest.raises(damonx.NoSuchProcess, match=str(proc.pid)):
        damonx.Monitor("vaddr", [proc.pid])


CHURN = r"""
import mmap, random, sys
random.seed(1)
maps = []
print("READY", flush=True)
while True:
    if len(maps) < 64 and random.random() < 0.6:
        m = mmap.mmap(-1, random.choice([1, 4, 64, 512]) * 4096)
        m[0:1] = b"x"
        maps.append(m)
    elif maps:
        maps.pop(random.randrange(len(maps))).close()
"""


def test_mapping_churn_never_crashes_the_monitor():
    proc = subprocess.Popen([sys.executable, "-c", CHURN], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().startswith("READY")
        attrs = damonx.Attrs(sample_us=1000, aggr_us=20_000, ops_update_us=20_000)
        with damonx.Monitor("vaddr", [proc.pid], attrs) as mon:
            snaps = mon.take(100)
            assert mon.stats()["nr_updates"] >= 90
        assert len(snaps) == 100
        for s in snaps:
            regs = s.targets[proc.pid]
            assert len(regs) <= attrs.max_nr_regions
            assert np.all(regs["end"] > regs["start"])
            assert np.all(regs["start"][1:] >= regs["end"][:-1])
    finally:
        kill(proc)


def test_pageout_scheme_reduces_rss():
    if not swap_on():
        pytest.skip("no swap (zram) in this VM")
    with workload(256, 32) as w:
        rss0 = w.smaps_field("Rss")
        mapped = sum(e - s for s, e in damonx._core.read_maps(f"/proc/{w.pid}/maps"))
        attrs = damonx.Attrs(sample_us=5000, aggr_us=100_000)
        with damonx.Monitor("vaddr", [w.pid], attrs) as mon:
            # page out regions of 4 MiB or more not accessed for 1 s
            mon.add_scheme(
                "pageout", sz=(4 << 20, 2**64 - 1), nr_accesses=(0, 0), age=(10, 2**32 - 1)
            )
            mon.run(nr_aggregations=40)
            st = mon.scheme_stats()[0]
        rss1 = w.smaps_field("Rss")
    print(
        f"pageout: RSS {rss0 // 1024} -> {rss1 // 1024} MiB, "
        f"applied {st['sz_applied'] >> 20} MiB, {st}"
    )
    assert st["sz_applied"] > 0
    assert rss1 < rss0 - 100 * 1024  # most of the 224 MiB cold part is gone
    assert rss1 >= 32 * 1024 * 0.9  # the hot part stayed
    # a region paged out starts ageing anew: at most one pass per 10
    # aggregations over what the process maps, not one at every aggregation
    assert st["sz_applied"] <= 4 * mapped, (st, mapped)


@pytest.mark.smoke
def test_fullscan_baseline_sees_the_hot_pages():
    """The benchmarks' full page_idle scan (benchmarks/csrc/bench_fullscan.c),
    from the extension `make bench-ext` builds on the host."""
    try:
        _bench = bench_ext.load()
    except ImportError as err:
        pytest.fail(str(err))
    page = 4096
    with workload(64, 8) as w:
        (lo, hi), (hot_lo, hot_hi) = w.range, w.hot
        probes = [(lo, hot_lo), (hot_lo, hot_hi), (hot_hi, hi)]
        res = _bench.bench_fullscan(w.pid, 100_000, 5, -1, probes)
    acc = res["probe_accessed"]
    assert res["nr_intervals"] == 5 and acc.shape == (5, 3)
    # the first scan finds every page accessed: nothing was marked idle before
    assert acc[0].tolist() == [(e - s) // page for s, e in probes]
    hot_pages = (hot_hi - hot_lo) // page
    assert np.all(acc[1:, 1] >= 0.8 * hot_pages), acc
    assert np.all(acc[1:, [0, 2]] == 0), acc
    assert np.all(res["nr_accessed"][1:] < res["nr_present"][1:])
