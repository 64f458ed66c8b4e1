"""Page filters of schemes on real processes, inside the VM: which pages
each filter type lets through (the bytes that passed, per tried region),
and an action that touches only what its filters let through.

    tools/vmtest/run -- .venv/bin/python -m pytest -m vm tests/vm/test_scheme_filters_vm.py
"""

import contextlib
import os
import subprocess

import pytest

import damonx
from damonx.schemes import AccessPattern, Filter, Scheme
from tests.vm.helpers import needs_page_idle, swap_on, thp_mode, until, workload

pytestmark = [pytest.mark.vm, needs_page_idle]

MIB = 1 << 20
ANY = AccessPattern(nr_accesses=(0, 2**32 - 1), age=(0, 2**32 - 1))


def passed(mon, index):
    """Bytes that passed the filters of scheme index in its last pass."""
    return int(mon.tried_regions(index)["sz_filter_passed"].sum())


def smaps_of(pid, rng, field):
    """A /proc/PID/smaps field (kB) summed over the mappings inside rng."""
    total, inside = 0, False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                s, e = (int(x, 16) for x in head.split("-"))
                inside = s < rng[1] and e > rng[0]
            elif inside and head == field + ":":
                total += int(line.split()[1])
    return total


def test_anon_and_unmapped_filters_on_anonymous_and_shmem_pages():
    """32 MiB of anonymous memory and 16 MiB of a /dev/shm file, both
    faulted in: anon lets through the first only; every page a process maps
    is mapped, so unmapped lets none through."""
    filters = {
        "reject anon": (Filter("anon"),),
        "allow anon": (Filter("anon", allow=True),),
        "reject unmapped": (Filter("unmapped"),),
        "allow unmapped": (Filter("unmapped", allow=True),),
    }
    with workload(32, 0, shm_mib=16) as w:
        ranges = sorted([w.range, w.shm])
        with damonx.Monitor("fvaddr", {w.pid: ranges}) as mon:
            for fs in filters.values():
                mon.add_scheme(Scheme("stat", ANY, filters=fs))
            mon.take(2)
            got = {name: passed(mon, i) for i, name in enumerate(filters)}
    print(got)
    assert got == {
        "reject anon": 16 * MIB,
        "allow anon": 32 * MIB,
        "reject unmapped": 48 * MIB,
        "allow unmapped": 0,
    }


def test_an_action_touches_only_what_its_filters_let_through():
    """pageout with 'allow anon' over both mappings: the anonymous memory
    goes to swap, the shmem file stays resident."""
    if not swap_on():
        pytest.skip("no swap (zram) in this VM")
    with workload(32, 0, shm_mib=16) as w:
        ranges = sorted([w.range, w.shm])
        scheme = Scheme("pageout", ANY, filters=(Filter("anon", allow=True),))
        with damonx.Monitor("fvaddr", {w.pid: ranges}) as mon:
            mon.add_scheme(scheme)
            until(30, lambda: mon.step() and smaps_of(w.pid, w.range, "Swap") >= 0.9 * 32 * 1024)
            stats = mon.scheme_stats()[0]
        anon_swap = smaps_of(w.pid, w.range, "Swap")
        shm_rss = smaps_of(w.pid, w.shm, "Rss")
        shm_swap = smaps_of(w.pid, w.shm, "Swap")
    print(f"anon swapped {anon_swap} kB, shm resident {shm_rss} kB, swapped {shm_swap} kB: {stats}")
    assert anon_swap >= 0.9 * 32 * 1024
    assert shm_rss >= 0.99 * 16 * 1024 and shm_swap == 0
    assert stats["sz_ops_filter_passed"] >= 32 * MIB


def test_the_young_filter_lets_through_what_was_accessed():
    """A page is young when accessed since the filter last looked at it
    (which marks it old again): after the first pass, the hot part only."""
    with workload(128, 16) as w:
        hot = w.hot[1] - w.hot[0]
        with damonx.Monitor("fvaddr", {w.pid: [w.range]}) as mon:
            mon.add_scheme(Scheme("stat", ANY, filters=(Filter("young", allow=True),)))
            mon.take(1)
            first = passed(mon, 0)
            seen = []
            for _ in range(5):
                mon.take(1)
                seen.append(passed(mon, 0))
    print(f"young: first pass {first >> 20} MiB, then {[s >> 20 for s in seen]} MiB")
    assert first >= 0.95 * 128 * MIB  # never looked at: young
    cold = 128 * MIB - hot
    assert all(0.5 * hot <= s <= hot + 0.05 * cold for s in seen[1:]), seen


def test_the_hugepage_size_filter_tells_huge_pages_from_small_ones():
    with thp_mode("madvise"), workload(64, 0, thp=True) as w:
        thp = smaps_of(w.pid, w.range, "AnonHugePages") * 1024
        assert thp >= 16 * MIB, f"only {thp >> 20} MiB of huge pages"
        with damonx.Monitor("fvaddr", {w.pid: [w.range]}) as mon:
            mon.add_scheme(
                Scheme(
                    "stat",
                    ANY,
                    filters=(Filter("hugepage_size", True, True, hugepage_size=("2M", "2M")),),
                )
            )
            mon.add_scheme(
                Scheme(
                    "stat",
                    ANY,
                    filters=(Filter("hugepage_size", True, True, hugepage_size=("4K", "4K")),),
                )
            )
            mon.take(2)
            huge, small = passed(mon, 0), passed(mon, 1)
    print(f"hugepage_size: {huge >> 20} MiB in 2 MiB folios, {small >> 20} MiB in 4 KiB ones")
    assert huge == thp and small == 64 * MIB - thp


def cgroup2(tmp_path):
    """The cgroup v2 root (mounted here if it is not yet), with the memory
    controller on for its children; None when the kernel lacks memcg."""
    root = "/sys/fs/cgroup"
    if not os.path.exists(os.path.join(root, "cgroup.controllers")):
        os.makedirs(root, exist_ok=True)
        if subprocess.run(["mount", "-t", "cgroup2", "none", root]).returncode:
            return None
    with open(os.path.join(root, "cgroup.controllers")) as f:
        if "memory" not in f.read().split():
            return None
    with open(os.path.join(root, "cgroup.subtree_control"), "w") as f:
        f.write("+memory")
    return root


def test_the_memcg_filter_tells_the_pages_of_a_cgroup(tmp_path):
    """Two processes, one started in a cgroup of its own (its pages are
    charged there): a memcg filter of that cgroup lets through the pages of
    that process only."""
    root = cgroup2(tmp_path)
    if root is None or not os.path.exists("/proc/kpagecgroup"):
        pytest.skip("the kernel lacks memory cgroups (CONFIG_MEMCG)")
    group = os.path.join(root, "damonx-test")
    os.makedirs(group, exist_ok=True)

    def move_self(to):
        with open(os.path.join(to, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))

    try:
        with contextlib.ExitStack() as stack:
            move_self(group)  # the child is born there, and faults there
            try:
                inside = stack.enter_context(workload(16, 0))
            finally:
                move_self(root)
            outside = stack.enter_context(workload(24, 0))
            targets = {inside.pid: [inside.range], outside.pid: [outside.range]}
            memcg = Filter("memcg", allow=True, memcg_path="damonx-test")
            with damonx.Monitor("fvaddr", targets) as mon:
                mon.add_scheme(Scheme("stat", ANY, filters=(memcg,)))
                mon.take(2)
                got = passed(mon, 0)
    finally:
        os.rmdir(group)
    print(f"memcg: {got >> 20} MiB passed")
    assert got == 16 * MIB
