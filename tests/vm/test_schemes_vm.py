"""Operation schemes acting on real processes, inside the VM: what each
action does to the target's memory, seen from outside (smaps, meminfo).

    tools/vmtest/run -- .venv/bin/python -m pytest -m vm tests/vm/test_schemes_vm.py
"""

import contextlib
import errno
import json
import signal
import subprocess
import time

import pytest

import damonx
from damonx.schemes import Scheme, Watermarks
from tests.cli_helpers import DAMONX
from tests.vm.helpers import (
    kill,
    meminfo_kb,
    needs_page_idle,
    resident_bytes,
    swap_on,
    thp_mode,
    until,
    workload,
)

pytestmark = [pytest.mark.vm, needs_page_idle]

MIB = 1 << 20
ANY_AGE = (0, 2**32 - 1)


def run_until(mon, seconds, done):
    """Step mon until done() or seconds pass; done()'s last value."""
    return until(seconds, lambda: mon.step() is not None and done())


def test_cold_clears_the_references_of_the_cold_part():
    """MADV_COLD deactivates pages and clears their referenced state (young
    bits, PG_referenced, PG_young): smaps' Referenced of the cold part falls,
    that of the hot part, touched again at once, stays."""
    with workload(256, 32) as w:
        cold_kb = (256 - 32) * 1024
        ref0 = w.smaps_field("Referenced")
        assert ref0 >= 0.9 * 256 * 1024, f"only {ref0} kB referenced after faulting"
        with damonx.Monitor("fvaddr", {w.pid: [w.range]}) as mon:
            mon.add_scheme("cold", sz=(1 * MIB, 2**64 - 1), nr_accesses=(0, 0), age=(5, 2**32 - 1))
            run_until(mon, 60, lambda: w.smaps_field("Referenced") <= ref0 - 0.8 * cold_kb)
            stats = mon.scheme_stats()[0]
        ref1 = w.smaps_field("Referenced")
    print(f"cold: Referenced {ref0 // 1024} -> {ref1 // 1024} MiB, {stats}")
    assert stats["sz_applied"] > 0 and stats["nr_failed"] == 0, stats
    assert ref1 <= ref0 - 0.8 * cold_kb, (ref0, ref1)
    assert ref1 >= 0.8 * 32 * 1024, (ref0, ref1)  # the hot part


def test_actions_on_special_mappings_fail_and_are_counted():
    """A whole process holds mappings that refuse advice (the vvar page, a
    VM_PFNMAP mapping: EINVAL for MADV_COLD): the failures are counted, the
    rest is advised."""
    with workload(64, 8) as w, damonx.Monitor("vaddr", [w.pid]) as mon:
        mon.add_scheme("cold", age=ANY_AGE)
        mon.take(3)
        stats = mon.scheme_stats()[0]
        with open(f"/proc/{w.pid}/maps") as f:
            special = [line for line in f if line.rstrip().endswith(("[vvar]", "[vvar_vclock]"))]
    print(f"cold on a whole process: {stats}")
    assert special, "no [vvar] mapping in the workload"
    assert stats["sz_applied"] >= 3 * 64 * MIB, stats
    assert stats["nr_failed"] > 0 and stats["last_errno"] == errno.EINVAL, stats


def test_willneed_reads_swapped_out_pages_back():
    """A range paged out to zram, then advised MADV_WILLNEED: its pages are
    read back into the swap cache (they stay swap entries of the process
    until it touches them)."""
    if not swap_on():
        pytest.skip("no swap (zram) in this VM")
    size_mib = 64
    with workload(size_mib, 0) as w:
        everything = {w.pid: [w.range]}
        with damonx.Monitor("fvaddr", everything) as mon:
            mon.add_scheme("pageout", age=ANY_AGE)
            swapped = run_until(mon, 30, lambda: w.smaps_field("Swap") >= 0.9 * size_mib * 1024)
        assert swapped, f"only {w.smaps_field('Swap')} kB of {size_mib} MiB swapped out"
        cached0 = meminfo_kb("SwapCached")
        with damonx.Monitor("fvaddr", everything) as mon:
            mon.add_scheme("willneed", age=ANY_AGE)
            mon.take(3)
            stats = mon.scheme_stats()[0]
        cached1 = meminfo_kb("SwapCached")
    print(f"willneed: SwapCached {cached0 // 1024} -> {cached1 // 1024} MiB, {stats}")
    assert stats["sz_applied"] >= size_mib * MIB and stats["nr_failed"] == 0, stats
    assert cached1 - cached0 >= 0.8 * size_mib * 1024, (cached0, cached1)


def test_collapse_makes_huge_pages():
    """MADV_COLLAPSE (damo's collapse) turns a range of small pages into huge
    pages now, whatever the THP mode; in madvise mode the workload, which
    does not ask for huge pages, faults small ones.  Regions of whole huge
    pages (min_region_sz 2 MiB) leave no huge page cut by a region's edge."""
    size_mib = 64
    attrs = damonx.Attrs(min_region_sz=2 * MIB)
    with thp_mode("madvise"), workload(size_mib, 0) as w:
        thp0 = w.smaps_field("AnonHugePages")
        assert thp0 <= 4 * 1024, f"{thp0} kB in huge pages before any collapse"
        with damonx.Monitor("fvaddr", {w.pid: [w.range]}, attrs) as mon:
            mon.add_scheme("collapse", age=ANY_AGE)
            run_until(mon, 60, lambda: w.smaps_field("AnonHugePages") >= 0.9 * size_mib * 1024)
            stats = mon.scheme_stats()[0]
        thp1 = w.smaps_field("AnonHugePages")
    print(f"collapse: AnonHugePages {thp0 // 1024} -> {thp1 // 1024} MiB, {stats}")
    assert stats["sz_applied"] > 0, stats
    assert thp1 >= 0.9 * size_mib * 1024, (thp0, thp1)


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_start_pages_out_within_its_quota_and_stops_at_ctrl_c():
    """damonx start on a process's mapping, damo's options: page out what
    was idle for a second, at most 16 MiB a second.  What left memory is
    within the quota, the hot part stays resident, and SIGINT stops it at
    once with a last report.  (The mapping only, as fvaddr: a quota is
    charged the size of the regions tried, and a whole process's regions
    span the holes between its mappings.)"""
    if not swap_on():
        pytest.skip("no swap (zram) in this VM")
    quota = 16 * MIB
    with workload(256, 32) as w:
        lo, hi = w.range
        rss0 = resident_bytes(w.pid, lo, hi)
        proc = subprocess.Popen(
            [DAMONX, "start", "--json", "--stats_interval", "1", "--ops", "fvaddr",
             "-r", f"{lo}-{hi}", str(w.pid),
             "--damos_action", "pageout", "--damos_access_rate", "0", "0",
             "--damos_age", "1s", "max", "--damos_quotas", "0", "16M", "1s"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        lines = []
        try:
            while len(lines) < 6:
                line = proc.stdout.readline()
                assert line, f"damonx start ended early: {proc.stderr.read()}"
                lines.append(json.loads(line))
            proc.send_signal(signal.SIGINT)
            t0 = time.monotonic()
            out, err = proc.communicate(timeout=60)
            stop_s = time.monotonic() - t0
        finally:
            kill(proc)
        dropped = rss0 - resident_bytes(w.pid, lo, hi)
        hot_resident = resident_bytes(w.pid, *w.hot)
    # the report at exit; not printed again when nothing changed since the last one
    reports = lines + json_lines(out)
    last = reports[-1]
    assert "stopped by SIGINT" in err, err
    [st] = last["schemes"]
    print(f"start: {dropped >> 20} MiB left memory, stopped in {stop_s:.1f} s: {last}; {err}")
    assert st["action"] == "pageout" and st["stats"]["qt_exceeds"] > 0, last
    assert 6 <= last["elapsed_s"] < 60, last
    windows = int(last["elapsed_s"]) + 1
    assert quota <= dropped <= st["stats"]["sz_applied"] <= windows * quota, (dropped, last)
    assert hot_resident >= 0.9 * (w.hot[1] - w.hot[0])
    assert stop_s < 10


def free_mem_rate():
    return meminfo_kb("MemFree") * 1000 // meminfo_kb("MemTotal")


def test_watermarks_pause_monitoring_on_free_memory():
    """Free memory above the high watermark: monitoring pauses (no sample
    is taken, only the watermarks are read); once another process takes
    memory enough for the free rate to fall under mid, it goes on."""
    rate = free_mem_rate()
    assert rate > 150, f"free memory rate {rate} per mille: too low for this test"
    wmarks = Watermarks("free_mem_rate", 100_000, high=rate - 40, mid=rate - 60, low=10)
    idle = []
    with contextlib.ExitStack() as stack:
        w = stack.enter_context(workload(16, 4))

        def while_paused():
            idle.append((mon.stats()["nr_samples"], mon.scheme_stats()[0]["activated"]))
            if len(idle) == 5:  # take about 10% of the memory: free falls under mid
                stack.enter_context(workload(max(64, meminfo_kb("MemTotal") // 10240), 0))
            return len(idle) > 300

        mon = stack.enter_context(damonx.Monitor("vaddr", [w.pid]))
        mon.add_scheme(Scheme("stat", watermarks=wmarks))
        mon.add_idle_callback(while_paused)
        snap = mon.step()
        resumed_rate = free_mem_rate()
        stats, [st] = mon.stats(), mon.scheme_stats()
    print(f"free rate {rate} -> {resumed_rate}, paused {len(idle)} intervals: {stats}, {st}")
    assert idle[:5] == [(0, False)] * 5
    assert snap is not None and st["activated"] and stats["nr_samples"] > 0
    assert resumed_rate <= wmarks.mid
