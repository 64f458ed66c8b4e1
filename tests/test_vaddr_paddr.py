"""The real access-check backend against small fake /proc and /sys trees.

A regular file stands for the idle page bitmap: what is marked idle reads
back idle, so no page is ever seen accessed.  /dev/zero stands for a bitmap
whose pages are always found accessed (writes vanish, reads give zero bits).
Together they pin down which PFNs are marked and checked, on any machine.
"""

import errno
import os
import struct
import subprocess
import threading

import numpy as np
import pytest

import damonx
from damonx import _core, features
from tests.processes import exited_pid, zombie

PAGE = 4096
PRESENT = 1 << 63
KPF_LRU, KPF_HEAD, KPF_TAIL, KPF_THP, KPF_NOPAGE = 1 << 5, 1 << 15, 1 << 16, 1 << 22, 1 << 20

# mappings: not present, 1 MiB of 4 KiB pages, 256 KiB of 64 KiB folios
# (order 4), a 2 MiB huge page
MAP_ABSENT = (0x10000, 0x20000)
MAP_SMALL = (0x100000, 0x200000)
MAP_MTHP = (0x900000, 0x940000)
MAP_HUGE = (0x7F0000000, 0x7F0200000)
PFN_SMALL, PFN_HUGE, PFN_MTHP = 0x1000, 0x2000, 0x4000
MTHP_HEADS = {PFN_MTHP + i for i in range(0, 64, 16)}


def put_u64(path, index, value):
    with open(path, "r+b") as f:
        f.seek(index * 8)
        f.write(struct.pack("<Q", value))


@pytest.fixture
def child():
    proc = subprocess.Popen(["sleep", "600"])
    yield proc
    proc.kill()
    proc.wait()


def make_tree(tmp_path, pid, bitmap="file"):
    proc = tmp_path / "proc"
    (proc / str(pid)).mkdir(parents=True)
    os.symlink("/proc/self", proc / "self")
    (proc / str(pid) / "maps").write_text(
        "".join(
            f"{s:x}-{e:x} rw-p 00000000 00:00 0\n"
            for s, e in (MAP_ABSENT, MAP_SMALL, MAP_MTHP, MAP_HUGE)
        )
        + "ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0  [vsyscall]\n"
    )
    pagemap = proc / str(pid) / "pagemap"
    pagemap.write_bytes(b"")
    os.truncate(pagemap, (MAP_HUGE[1] // PAGE + 1) * 8)
    for i in range((MAP_SMALL[1] - MAP_SMALL[0]) // PAGE):
        put_u64(pagemap, MAP_SMALL[0] // PAGE + i, PRESENT | (PFN_SMALL + i))
    for i in range(512):
        put_u64(pagemap, MAP_HUGE[0] // PAGE + i, PRESENT | (PFN_HUGE + i))
    for i in range(64):
        put_u64(pagemap, MAP_MTHP[0] // PAGE + i, PRESENT | (PFN_MTHP + i))
    kpf = proc / "kpageflags"
    kpf.write_bytes(b"")
    os.truncate(kpf, (PFN_MTHP + 1024) * 8)
    for i in range(256):
        put_u64(kpf, PFN_SMALL + i, KPF_LRU)
    put_u64(kpf, PFN_HUGE, KPF_LRU | KPF_HEAD | KPF_THP)
    for i in range(1, 512):
        put_u64(kpf, PFN_HUGE + i, KPF_TAIL | KPF_THP)
    for i in range(64):
        put_u64(
            kpf, PFN_MTHP + i, KPF_LRU | KPF_HEAD | KPF_THP if i % 16 == 0 else KPF_TAIL | KPF_THP
        )
    (proc / "iomem").write_text(
        "00001000-0009fbff : System RAM\n"
        "00100000-bffdffff : System RAM\n  01000000-01ffffff : Kernel code\n"
    )
    idle = tmp_path / "sys/kernel/mm/page_idle"
    idle.mkdir(parents=True)
    if bitmap == "file":
        (idle / "bitmap").write_bytes(b"\0" * ((PFN_MTHP + 1024) // 8))
    else:
        os.symlink("/dev/zero", idle / "bitmap")
    return str(proc), str(tmp_path / "sys")


needs_root_pfns = pytest.mark.skipif(
    not features.probe()["pagemap_pfn"].available,
    reason="the feature probe reads this process's own pagemap, which needs root",
)


def set_bits(path):
    with open(path, "rb") as f:
        words = np.frombuffer(f.read(), dtype="<u8")
    return {
        int(w) * 64 + b for w in np.nonzero(words)[0] for b in range(64) if int(words[w]) >> b & 1
    }


@needs_root_pfns
def test_marks_heads_of_present_pages_and_reads_them_idle(tmp_path, child):
    procfs, sysfs = make_tree(tmp_path, child.pid)
    with damonx.Monitor("vaddr", [child.pid], procfs=procfs, sysfs=sysfs, seed=3) as mon:
        snaps = mon.take(5)
        stats = mon.access_check_stats()
    regs = snaps[-1].targets[child.pid]
    # the three mappings, page aligned, nothing ever accessed
    assert regs["start"][0] == MAP_ABSENT[0] and regs["end"][-1] == MAP_HUGE[1]
    assert (regs["nr_accesses"] == 0).all()
    marked = set_bits(os.path.join(sysfs, "kernel/mm/page_idle/bitmap"))
    small = set(range(PFN_SMALL, PFN_SMALL + 256))
    # only pages of the 4 KiB mapping and heads of the large folios are marked
    assert marked <= small | {PFN_HUGE} | MTHP_HEADS
    assert PFN_HUGE in marked and marked & small and marked & MTHP_HEADS
    assert stats["nr_absent"] > 0  # samples in the absent mapping
    # samples between mappings are known absent without reading pagemap
    assert 0 < stats["nr_unmapped"] < stats["nr_absent"]
    assert stats["nr_kpageflags_reads"] > stats["nr_pagemap_reads"]  # tails -> head


@needs_root_pfns
@pytest.mark.parametrize("min_region_sz", [PAGE, 2 * PAGE, 16 * PAGE])
def test_present_pages_read_accessed_absent_ones_never(tmp_path, child, min_region_sz):
    """Regions may be larger than pages: pages are still the system's."""
    procfs, sysfs = make_tree(tmp_path, child.pid, bitmap="zero")
    attrs = damonx.Attrs(min_nr_regions=3, min_region_sz=min_region_sz)
    with damonx.Monitor("vaddr", [child.pid], attrs, procfs=procfs, sysfs=sysfs) as mon:
        regs = mon.take(10)[-1].targets[child.pid]
    mx = attrs.max_nr_accesses
    for lo, hi in (MAP_SMALL, MAP_MTHP, MAP_HUGE):
        inside = regs[(regs["start"] >= lo) & (regs["end"] <= hi)]
        assert len(inside) and (inside["nr_accesses"] == mx).all(), (hex(lo), inside)
    # the absent mapping and the unmapped gap after it
    never = regs[regs["end"] <= MAP_SMALL[0]]
    assert (never["nr_accesses"] == 0).all(), never
    assert (regs["nr_accesses"] < mx).any()


@needs_root_pfns
@pytest.mark.parametrize("folio", range(4))
def test_small_large_folios_are_tracked_by_their_own_head(tmp_path, child, folio):
    """Inside a 64 KiB folio the 2 MiB-aligned PFN is another folio's head:
    only the sampled folio's own head may be marked."""
    procfs, sysfs = make_tree(tmp_path, child.pid)
    lo = MAP_MTHP[0] + folio * 16 * PAGE
    with damonx.Monitor(
        "fvaddr",
        {child.pid: [(lo, lo + 16 * PAGE)]},
        damonx.Attrs(min_nr_regions=3),
        procfs=procfs,
        sysfs=sysfs,
    ) as mon:
        mon.take(3)
    assert set_bits(os.path.join(sysfs, "kernel/mm/page_idle/bitmap")) == {PFN_MTHP + folio * 16}


@needs_root_pfns
def test_huge_page_tails_cost_two_lookups(tmp_path, child):
    procfs, sysfs = make_tree(tmp_path, child.pid)
    with damonx.Monitor("fvaddr", {child.pid: [MAP_HUGE]}, procfs=procfs, sysfs=sysfs) as mon:
        mon.take(5)
        stats = mon.access_check_stats()
    assert set_bits(os.path.join(sysfs, "kernel/mm/page_idle/bitmap")) == {PFN_HUGE}
    # the page's own flags, then at most two candidates (a sample may hit the head)
    assert stats["nr_kpageflags_reads"] <= 3 * stats["nr_pagemap_reads"]


@needs_root_pfns
def test_fvaddr_keeps_to_its_ranges(tmp_path, child):
    procfs, sysfs = make_tree(tmp_path, child.pid, bitmap="zero")
    with damonx.Monitor("fvaddr", {child.pid: [MAP_SMALL]}, procfs=procfs, sysfs=sysfs) as mon:
        for snap in mon.take(5):
            regs = snap.targets[child.pid]
            assert regs["start"][0] == MAP_SMALL[0] and regs["end"][-1] == MAP_SMALL[1]
        assert mon.access_check_stats()["nr_maps_reads"] == 0


def test_paddr_uses_system_ram_and_pfns_directly(tmp_path, child):
    procfs, sysfs = make_tree(tmp_path, child.pid, bitmap="zero")
    assert features.system_ram(procfs) == [(0x1000, 0x9FC00), (0x100000, 0xBFFE0000)]
    with damonx.Monitor(
        "paddr", [(PFN_SMALL * PAGE, (PFN_SMALL + 256) * PAGE)], procfs=procfs, sysfs=sysfs
    ) as mon:
        regs = mon.take(3)[-1].targets[0]
        stats = mon.access_check_stats()
    assert stats["nr_pagemap_reads"] == 0
    assert (regs["nr_accesses"] == 20).all()


def test_missing_page_idle_is_named(tmp_path, child):
    procfs, sysfs = make_tree(tmp_path, child.pid)
    os.remove(os.path.join(sysfs, "kernel/mm/page_idle/bitmap"))
    with pytest.raises(damonx.NotSupported, match="CONFIG_IDLE_PAGE_TRACKING"):
        damonx.Monitor("vaddr", [child.pid], procfs=procfs, sysfs=sysfs)
    with pytest.raises(damonx.NotSupported, match="CONFIG_IDLE_PAGE_TRACKING"):
        damonx.Monitor("paddr", None, procfs=procfs, sysfs=sysfs)


@needs_root_pfns
def test_exited_process_is_dropped_even_if_its_pid_lives_on(tmp_path, child):
    """The fake /proc keeps the pid's files after the process exits, as a
    reused pid would: the pidfd still tells that the process is gone."""
    procfs, sysfs = make_tree(tmp_path, child.pid)
    with damonx.Monitor("vaddr", [child.pid], procfs=procfs, sysfs=sysfs) as mon:
        assert len(mon.take(2)) == 2
        child.kill()
        child.wait()
        assert mon.run() <= 1
        assert mon.live_targets == []
    with pytest.raises(damonx.NoSuchProcess):
        damonx.Monitor("vaddr", [child.pid], procfs=procfs, sysfs=sysfs)


@needs_root_pfns
@pytest.mark.parametrize("ops", ["vaddr", "fvaddr"])
def test_zombie_and_exited_targets_are_named(tmp_path, ops):
    """The fake /sys has an idle page bitmap; /proc is the real one, so the
    compiled core opens the real pagemap of the target."""
    _, sysfs = make_tree(tmp_path, os.getpid())

    def targets(pid):
        return [pid] if ops == "vaddr" else {pid: [MAP_SMALL]}

    with zombie() as pid:
        with pytest.raises(
            damonx.ZombieProcess, match=f"^cannot monitor process {pid}: process {pid} is a zombie"
        ) as err:
            damonx.Monitor(ops, targets(pid), sysfs=sysfs)
        assert err.value.pid == pid and isinstance(err.value.__cause__, OSError)
    pid = exited_pid()
    with pytest.raises(damonx.NoSuchProcess, match=f"process {pid} does not exist") as err:
        damonx.Monitor(ops, targets(pid), sysfs=sysfs)
    assert type(err.value) is damonx.NoSuchProcess and err.value.pid == pid


def test_iomem_hidden_addresses_need_root(tmp_path):
    (tmp_path / "iomem").write_text("00000000-00000000 : System RAM\n")
    with pytest.raises(damonx.AccessDenied, match="root"):
        features.system_ram(str(tmp_path))


def test_features_report_on_a_fake_tree(tmp_path, child):
    procfs, sysfs = make_tree(tmp_path, child.pid)
    found = features.probe(procfs, sysfs)
    assert found["page_idle"].available
    assert found["kpageflags"].available
    assert not found["kernel_damon_sysfs"].available
    assert "CONFIG_DAMON_SYSFS" in found["kernel_damon_sysfs"].detail


# -- page sizes ----------------------------------------------------------------
def test_regions_smaller_than_a_page_are_refused(tmp_path, child):
    """On 16 KiB pages, regions of 8 KiB cannot be checked: the real access
    checks refuse them and say why; sim has no pages of the system's."""
    procfs, sysfs = make_tree(tmp_path, child.pid)
    attrs = damonx.Attrs(min_region_sz=8192)
    for ops in ("vaddr", "fvaddr", "paddr"):
        with pytest.raises(
            damonx.InvalidAttrs, match="^min_region_sz 8192 is below the page size 16384"
        ):
            _core.Context(attrs, ops, procfs=procfs, sysfs=sysfs, page_size=16384)
    sim = _core.Context(attrs, "sim", virtual_clock=True, page_size=16384)
    sim.add_sim_target(0, 1 << 20, 4096, [(10**6, [(0, 1 << 16, 1.0)])])
    assert sim.run_aggregation()


VA_SMALL, VA_PMD = 0x10000000, 0x40000000


def make_paged_tree(tmp_path, pid, page):
    """A tree of pages of page bytes: 16 small pages, and a PMD-sized folio
    (page / 8 pages) at VA_PMD; every bit of the idle bitmap reads accessed."""
    procfs, sysfs = make_tree(tmp_path, pid, bitmap="zero")
    nr_pmd = page // 8
    pagemap = os.path.join(procfs, str(pid), "pagemap")
    present = np.uint64(PRESENT)
    entries = np.zeros(VA_PMD // page + nr_pmd, dtype="<u8")
    entries[VA_SMALL // page : VA_SMALL // page + 16] = present | np.arange(
        PFN_SMALL, PFN_SMALL + 16, dtype=np.uint64
    )
    entries[VA_PMD // page :] = present | np.arange(PFN_HUGE, PFN_HUGE + nr_pmd, dtype=np.uint64)
    entries.tofile(pagemap)
    flags = np.zeros(PFN_HUGE + nr_pmd, dtype="<u8")
    flags[PFN_SMALL : PFN_SMALL + 16] = KPF_LRU
    flags[PFN_HUGE] = KPF_LRU | KPF_HEAD | KPF_THP
    flags[PFN_HUGE + 1 :] = KPF_TAIL | KPF_THP
    flags.tofile(os.path.join(procfs, "kpageflags"))
    return procfs, sysfs


@needs_root_pfns
@pytest.mark.parametrize("page", [4096, 16384, 65536])
def test_pages_of_16k_and_64k(tmp_path, child, page):
    """arm64 and ppc64 kernels have 16 or 64 KiB pages: pagemap entries count
    those, and a PMD-sized folio has page / 8 of them, whose head every
    sample of the folio finds."""
    procfs, sysfs = make_paged_tree(tmp_path, child.pid, page)
    attrs = damonx.Attrs(min_nr_regions=3, max_nr_regions=30, min_region_sz=page)
    ctx = _core.Context(attrs, "fvaddr", 5, procfs=procfs, sysfs=sysfs, page_size=page)
    assert ctx.page_size == page
    ctx.add_pid_target(
        child.pid, [(VA_SMALL, VA_SMALL + 16 * page), (VA_PMD, VA_PMD + page // 8 * page)]
    )
    for _ in range(5):
        assert ctx.run_aggregation()
        regions = ctx.snapshot()[2][0][1]
        assert (regions["nr_accesses"] == attrs.max_nr_accesses).all(), regions
    stats = ctx.access_check_stats()
    assert stats["nr_absent"] == 0 and stats["nr_changed"] == 0


# -- pages that change between mark and check -----------------------------------
def during_next_sample(mon, change, delay_s=0.25):
    """The next snapshot, with change() made while its one sample runs."""
    timer = threading.Timer(delay_s, change)
    timer.start()
    try:
        return mon.step()
    finally:
        timer.join()


@needs_root_pfns
def test_pages_that_change_or_vanish_mid_sample_are_not_accessed(tmp_path, child):
    """A page migrated, reclaimed or freed leaves the LRU lists and its idle
    bit then reads accessed: a zeroed bitmap stands for that here."""
    procfs, sysfs = make_tree(tmp_path, child.pid)
    bitmap = os.path.join(sysfs, "kernel/mm/page_idle/bitmap")
    pagemap = os.path.join(procfs, str(child.pid), "pagemap")
    size = os.path.getsize(bitmap)

    def zero_bitmap():
        with open(bitmap, "r+b") as f:
            f.write(b"\0" * size)

    def remap_small():
        # every page of MAP_SMALL now backed by another (LRU) page
        n = (MAP_SMALL[1] - MAP_SMALL[0]) // PAGE
        shifted = (np.arange(n, dtype=np.uint64) + np.uint64(1)) % np.uint64(n)
        entries = np.uint64(PRESENT) | (np.uint64(PFN_SMALL) + shifted)
        with open(pagemap, "r+b") as f:
            f.seek(MAP_SMALL[0] // PAGE * 8)
            f.write(entries.astype("<u8").tobytes())
        zero_bitmap()

    def exit_child():
        child.kill()
        child.wait()
        zero_bitmap()

    # one sample per aggregation, long enough to change things in its middle
    attrs = damonx.Attrs(sample_us=600_000, aggr_us=600_000, min_nr_regions=3)
    with damonx.Monitor(
        "fvaddr", {child.pid: [MAP_SMALL, MAP_HUGE]}, attrs, procfs=procfs, sysfs=sysfs
    ) as mon:
        regs = during_next_sample(mon, zero_bitmap).targets[child.pid]
        assert (regs["nr_accesses"] == 1).all(), regs  # unchanged pages: accessed
        regs = during_next_sample(mon, remap_small).targets[child.pid]
        small = regs["end"] <= MAP_SMALL[1]
        assert (regs["nr_accesses"][small] == 0).all(), regs
        assert (regs["nr_accesses"][~small] == 1).all(), regs
        changed = mon.access_check_stats()["nr_changed"]
        assert changed >= small.sum()
        # the target is dropped at the next sample; its last one saw nothing
        regs = during_next_sample(mon, exit_child).targets[child.pid]
        assert (regs["nr_accesses"] == 0).all(), regs
        assert mon.access_check_stats()["nr_changed"] > changed


# -- schemes --------------------------------------------------------------------
def first_private_mapping(pid):
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            span, perms = line.split()[:2]
            if perms.endswith("p"):
                start, end = (int(x, 16) for x in span.split("-"))
                return start, end
    raise AssertionError(f"process {pid} has no private mapping")


def max_age_seen(mon, nr_aggregations, pid):
    return max(int(s.targets[pid]["age"].max()) for s in mon.take(nr_aggregations))


@needs_root_pfns
def test_an_action_restarts_the_age_of_the_regions_it_hits(tmp_path, child):
    """As in the kernel: a region acted on starts ageing anew, so a scheme on
    regions older than 3 aggregations acts on each once per 4 aggregations,
    not at every one (0 to 3 takes 3 aggregations).  Here cold (MADV_COLD)
    acts on a real mapping of the child; the fake tree makes every page read
    not accessed."""
    procfs, sysfs = make_tree(tmp_path, child.pid)
    mapping = first_private_mapping(child.pid)
    attrs = damonx.Attrs(sample_us=1000, aggr_us=10_000, min_nr_regions=3)
    with damonx.Monitor("fvaddr", {child.pid: [mapping]}, attrs, procfs=procfs, sysfs=sysfs) as mon:
        mon.add_scheme("cold", age=(3, 2**32 - 1))
        assert max_age_seen(mon, 16, child.pid) == 3
        [stats] = mon.scheme_stats()
    assert stats["nr_applied"] > 0 and stats["nr_failed"] == 0 and stats["last_errno"] == 0
    # at aggregations 3, 6, 9, 12 and 15: five passes over the mapping
    assert stats["sz_applied"] == 5 * (mapping[1] - mapping[0]), stats
    # stat counts and leaves the ages alone
    with damonx.Monitor("fvaddr", {child.pid: [mapping]}, attrs, procfs=procfs, sysfs=sysfs) as mon:
        mon.add_scheme("stat", age=(3, 2**32 - 1))
        assert max_age_seen(mon, 16, child.pid) >= 15


@needs_root_pfns
def test_failed_actions_are_counted(tmp_path, child):
    """The fake maps list ranges where the child maps nothing: every advice
    fails with ENOMEM, and the statistics say so."""
    procfs, sysfs = make_tree(tmp_path, child.pid)
    with damonx.Monitor("vaddr", [child.pid], procfs=procfs, sysfs=sysfs) as mon:
        mon.add_scheme("pageout")
        mon.take(3)
        [stats] = mon.scheme_stats()
    # regions in the gaps between mappings advise nothing, and fail nothing
    assert 0 < stats["nr_failed"] <= stats["nr_tried"]
    assert stats["nr_applied"] == 0 and stats["sz_applied"] == 0
    assert stats["last_errno"] == errno.ENOMEM


def test_processes_take_process_madvise_actions_only(tmp_path, child):
    procfs, sysfs = make_tree(tmp_path, child.pid)
    with damonx.Monitor("vaddr", [child.pid], procfs=procfs, sysfs=sysfs) as mon:
        for action in ("stat", "willneed", "cold", "pageout", "collapse"):
            mon.add_scheme(action)
        with pytest.raises(
            damonx.InvalidAttrs,
            match=r"^invalid scheme: ops 'vaddr' cannot apply action 'hugepage' \(its actions: "
            r"stat, willneed, cold, pageout, collapse, migrate_hot, migrate_cold\); the kernel "
            r"refuses MADV_HUGEPAGE",
        ):
            mon.add_scheme("hugepage")
    refused = pytest.raises(damonx.InvalidAttrs, match="ops 'paddr' cannot apply action 'pageout'")
    with damonx.Monitor("paddr", None, procfs=procfs, sysfs=sysfs) as mon, refused:
        mon.add_scheme("pageout")
