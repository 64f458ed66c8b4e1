"""One answer from two backends: damonx's own checks (page_idle) and the
kernel's DAMON (kernel) on the same workload, with the same code and the
same command, inside the VM; and the kernel backend's life cycle there
(its layout, signals, a kill -9 and the next run).

    tools/vmtest/run -- .venv/bin/python -m pytest -q -m vm tests/vm/test_backends_vm.py
    DAMONX_VM_KERNEL=7 tools/vmtest/run -- ...     # the same on 7.x
"""

import contextlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import damonx
from damonx import kernel_owner, kernel_sysfs, records
from damonx.kernel_damon import KernelDamon
from tests.test_kernel_sysfs import ACTIONS, FILTER_TYPES, present_in
from tests.vm.helpers import (
    hot_precision_recall,
    needs_kernel_damon,
    needs_page_idle,
    swap_on,
    until,
    workload,
)

pytestmark = [
    pytest.mark.vm,
    pytest.mark.smoke,
    needs_page_idle,
    needs_kernel_damon,
]

BACKENDS = ("page_idle", "kernel")
DAMONX = [sys.executable, "-m", "damonx"]
PAGE = 4096
MIB = 1 << 20
ADMIN = "/sys/kernel/mm/damon/admin/kdamonds"


@pytest.fixture(autouse=True)
def no_kdamond_before_or_after():
    """Every test starts and ends with no kdamond and no claim."""
    assert KernelDamon().running_kdamonds() == []
    yield
    assert KernelDamon().running_kdamonds() == []
    assert kernel_owner.load_claim() is None


def release():
    major, minor = os.uname().release.split(".")[:2]
    return f"{major}.{minor}"


def hot_pages(regions, lo, hi):
    """A boolean per page of [lo, hi): inside a region with nr_accesses > 0."""
    hot = np.zeros((hi - lo) // PAGE, dtype=bool)
    for r in regions[regions["nr_accesses"] > 0]:
        s, e = max(int(r["start"]), lo), min(int(r["end"]), hi)
        if s < e:
            hot[(s - lo) // PAGE : (e - lo) // PAGE] = True
    return hot


def settled_hot_pages(next_regions, w, seconds=20, nr_votes=9):
    """Once a snapshot finds the hot set (precision and recall >= 0.8), the
    pages that the next nr_votes snapshots mostly call hot: one snapshot's
    region edges wander, a majority's settle."""
    found = until(
        seconds, lambda: min(hot_precision_recall(next_regions(), [w.hot], within=w.range)) >= 0.8
    )
    assert found, f"the hot set was not found within {seconds} s"
    votes = sum(hot_pages(next_regions(), *w.range).astype(int) for _ in range(nr_votes))
    return votes > nr_votes // 2


def truth_of(w):
    truth = np.zeros((w.range[1] - w.range[0]) // PAGE, dtype=bool)
    truth[(w.hot[0] - w.range[0]) // PAGE : (w.hot[1] - w.range[0]) // PAGE] = True
    return truth


def precision_recall(hot, truth):
    both = int((hot & truth).sum())
    return round(both / max(int(hot.sum()), 1), 3), round(both / int(truth.sum()), 3)


def agree(hot, w, label):
    """Each backend's hot pages against the truth, and against each other."""
    truth = truth_of(w)
    pr = {name: precision_recall(hot[name], truth) for name in BACKENDS}
    a, b = (hot[name] for name in BACKENDS)
    jaccard = (a & b).sum() / max((a | b).sum(), 1)
    print(f"{label} on {release()}: precision/recall {pr}; agreement (Jaccard) {jaccard:.2f}")
    for name in BACKENDS:
        assert min(pr[name]) >= 0.8, (name, pr)
    assert jaccard >= 0.7


def test_the_same_monitor_code_finds_the_same_hot_set_under_each_backend():
    attrs = damonx.Attrs()
    hot = {}
    with workload(512, 64) as w:
        for name in BACKENDS:
            with damonx.Monitor("vaddr", [w.pid], attrs, backend=name) as mon:
                assert mon.backend == name
                hot[name] = settled_hot_pages(lambda: mon.step().targets[w.pid], w)
    agree(hot, w, "Monitor")


def test_the_same_record_command_gives_the_same_hot_set_under_each_backend(tmp_path):
    hot = {}
    with workload(512, 64) as w:
        for name in BACKENDS:
            out = tmp_path / f"{name}.data"
            res = subprocess.run(
                DAMONX
                + ["record", "--backend", name, "--timeout", "8", "-o", str(out), str(w.pid)],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert res.returncode == 0, res.stderr
            rec = records.load(out)
            assert rec.meta["backend"] == name
            snaps = rec.targets[0].snapshots
            # one snapshot's region edges wander: a majority of the last nine
            votes = sum(hot_pages(s.regions, *w.range).astype(int) for s in snaps[-9:])
            hot[name] = votes > 4
            gaps = np.diff([s.end_ns for s in snaps]) / 1e6
            print(
                f"record --backend {name}: {len(snaps)} snapshots, median gap {np.median(gaps):.0f}"
                f" ms (aggregation 100 ms)"
            )
            assert np.all(gaps > 0)
    agree(hot, w, "record")


def test_a_pageout_scheme_does_the_same_under_each_backend():
    """Page out what stays cold: under each backend the cold part leaves
    memory and the hot part stays resident."""
    if not swap_on():
        pytest.skip("no swap (zram) in this VM")
    cold_kb, hot_kb = (128 - 16) * 1024, 16 * 1024
    for name in BACKENDS:
        with workload(128, 16) as w:
            rss0 = w.smaps_field("Rss")
            with damonx.Monitor("vaddr", [w.pid], backend=name) as mon:
                mon.add_scheme(
                    "pageout", sz=(MIB, 2**64 - 1), nr_accesses=(0, 0), age=(10, 2**32 - 1)
                )

                def paged_out(mon=mon, w=w, goal=rss0 - 0.8 * cold_kb):
                    return mon.step() is not None and w.smaps_field("Rss") <= goal

                until(90, paged_out)
                stats = mon.scheme_stats()[0]
            rss1 = w.smaps_field("Rss")
            print(f"pageout under {name}: Rss {rss0 // 1024} -> {rss1 // 1024} MiB, {stats}")
            # the kernel counts a region whose madvise failed on a part (a
            # hole between mappings) as not applied, though the rest was
            # paged out: the memory, not sz_applied, is the judge
            assert stats["sz_tried"] >= cold_kb * 1024, stats
            assert rss1 <= rss0 - 0.8 * cold_kb, (name, rss0, rss1)
            assert rss1 >= 0.9 * hot_kb, (name, rss0, rss1)  # the hot part stays


def test_kernel_snapshots_come_one_per_aggregation_at_most():
    attrs = damonx.Attrs(sample_us=5000, aggr_us=200_000)
    with workload(64, 8) as w, damonx.Monitor("vaddr", [w.pid], attrs, backend="kernel") as mon:
        snaps = mon.take(10)
        stats = mon.stats()
    ends = np.array([s.end_ns for s in snaps])
    gaps = np.diff(ends) / 1e6
    print(f"kernel backend on {release()}: gaps {np.round(gaps)} ms, {stats}")
    # each snapshot is a later aggregation than the previous one
    assert np.all(gaps >= 0.5 * 200), gaps
    assert all(s.end_ns - s.start_ns <= 200_000_000 for s in snaps)
    assert stats["kdamond_cpu_us"] >= 0 and stats["damonx_cpu_us"] > 0


def test_new_attributes_reach_the_running_kdamond():
    """set_attrs() on a running kdamond commits them: its aggregations
    lengthen, its regions and what they found stay."""
    attrs = damonx.Attrs(sample_us=5000, aggr_us=100_000)
    with workload(512, 64) as w, damonx.Monitor("vaddr", [w.pid], attrs, backend="kernel") as mon:
        assert until(
            20,
            lambda: (
                min(hot_precision_recall(mon.step().targets[w.pid], [w.hot], within=w.range)) >= 0.8
            ),
        )
        mon.set_attrs(damonx.Attrs(sample_us=25_000, aggr_us=500_000))
        snaps = mon.take(6)[1:]  # the first may have begun before the commit
        with open(f"{ADMIN}/0/contexts/0/monitoring_attrs/intervals/aggr_us") as f:
            assert f.read().strip() == "500000"
    gaps = np.diff([s.end_ns for s in snaps]) / 1e6
    print(f"after the commit on {release()}: gaps {np.round(gaps)} ms")
    assert np.all(gaps >= 0.8 * 500), gaps
    assert all(s.sample_us == 25_000 for s in snaps)
    # nothing was lost: the hot set is where it was
    assert min(hot_precision_recall(snaps[-1].targets[w.pid], [w.hot], within=w.range)) >= 0.8


def test_two_processes_under_the_kernel_backend():
    with contextlib.ExitStack() as stack:
        a, b = (stack.enter_context(workload(128, 16)) for _ in range(2))
        mon = stack.enter_context(damonx.Monitor("vaddr", [a.pid, b.pid], backend="kernel"))
        assert set(mon.step().targets) == {a.pid, b.pid}

        def both_found():
            t = mon.step().targets
            return all(
                min(hot_precision_recall(t[w.pid], [w.hot], within=w.range)) >= 0.8 for w in (a, b)
            )

        assert until(20, both_found)


def test_the_running_kernels_layout_is_its_releases():
    """The files the kernel of this VM has are those the fake trees of its
    release have (tests/fake_damon.py), so that those trees stay true."""
    rel = release()
    shaped = {"6.12": "6.12"}.get(rel, "7.3" if rel.startswith("7.") else None)
    if shaped is None:
        pytest.skip(f"no fake tree is shaped like {rel}")
    layout = kernel_sysfs.probe_layout(ADMIN)
    assert sorted(layout.present) == sorted(present_in(shaped))
    assert layout.actions == ACTIONS[shaped]
    assert layout.filter_types == FILTER_TYPES[shaped]
    assert layout.ops == ("vaddr", "fvaddr", "paddr")


def wait_for_kdamond(proc, seconds=60):
    def on():
        assert proc.poll() is None, proc.communicate()
        claim = kernel_owner.load_claim()
        return claim is not None and claim.kdamond_pid and KernelDamon().running_kdamonds()

    assert until(seconds, on), "damonx did not start its kdamond"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_removes_damonxs_kdamond(tmp_path, sig):
    with workload(64, 8) as w:
        rec = subprocess.Popen(
            DAMONX + ["record", "--backend", "kernel", "-o", str(tmp_path / "s.data"), str(w.pid)],
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for_kdamond(rec)
        time.sleep(1)
        rec.send_signal(sig)
        _, err = rec.communicate(timeout=60)
    assert rec.returncode == 0, err
    assert f"stopped by {sig.name}" in err
    assert records.load(tmp_path / "s.data").complete


def test_the_next_run_removes_the_kdamond_of_a_killed_damonx(tmp_path):
    with workload(64, 8) as w:
        argv = DAMONX + ["record", "--backend", "kernel", str(w.pid)]
        first = subprocess.Popen(argv + ["-o", str(tmp_path / "1.data")], stderr=subprocess.PIPE)
        wait_for_kdamond(first)
        first.kill()
        first.wait()
        left = kernel_owner.load_claim()
        assert KernelDamon().running_kdamonds() == [0], "the killed damonx's kdamond runs on"
        # features sees it as left by damonx, and the kernel backend as usable
        st = kernel_sysfs.status()
        assert st.usable and st.left_over == 0, st.detail
        second = subprocess.run(
            argv + ["--timeout", "2", "-o", str(tmp_path / "2.data")],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert second.returncode == 0, second.stderr
    assert (
        f"warning: stopped and removed kdamond 0, left running by damonx (pid {left.owner_pid}), "
        "which was killed"
    ) in second.stderr
    assert records.load(tmp_path / "2.data").nr_snapshots > 0


def test_a_kdamond_damonx_did_not_start_is_never_touched():
    with workload(64, 8) as w, KernelDamon() as other:
        other.start([w.pid])  # as damo or an administrator would
        with pytest.raises(damonx.NotSupported, match=r"kdamond 0 runs \(not started by damonx\)"):
            damonx.Monitor("vaddr", [w.pid], backend="kernel")
        assert other.is_running()
        # auto falls back to damonx's own checks, with a warning about sharing
        with pytest.warns(damonx.features.SharedAccessBitsWarning):
            mon = damonx.Monitor("vaddr", [w.pid])
        with mon:
            assert mon.backend == "page_idle"
        assert other.is_running()
