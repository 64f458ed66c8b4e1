"""damonx and the kernel's own DAMON on the same workload, in the same VM."""

import time

import numpy as np
import pytest

import damonx
from damonx.kernel_damon import KernelDamon
from damonx.sim import overlap_bytes
from tests.vm.helpers import clip, hot_precision_recall, needs_page_idle, workload

pytestmark = [pytest.mark.vm, needs_page_idle]

needs_kernel_damon = pytest.mark.skipif(
    not KernelDamon().available, reason="needs the kernel's DAMON sysfs interface (the VM has it)")


def hot_set(regions, within):
    regs = clip(regions, *within)
    regs = regs[regs["nr_accesses"] > 0]
    return [(int(s), int(e)) for s, e in zip(regs["start"], regs["end"])]


def settle(snapshots, hot, within, seconds):
    """The first snapshot, from a callable, in which the hot set is found."""
    t0 = time.monotonic()
    best = None
    while time.monotonic() - t0 < seconds:
        regs = snapshots()
        pr = hot_precision_recall(regs, [hot], within=within)
        best = (pr, regs)
        if min(pr) >= 0.8:
            break
    return best


@needs_kernel_damon
def test_damonx_and_kernel_damon_find_the_same_hot_set():
    attrs = damonx.Attrs()
    with workload(512, 64) as w:
        with damonx.Monitor("vaddr", [w.pid], attrs) as mon:
            (pr_x, regs_x) = settle(lambda: mon.step().targets[w.pid], w.hot, w.range, 10)
        kd = KernelDamon()
        kd.start([w.pid], ops="vaddr", sample_us=attrs.sample_us, aggr_us=attrs.aggr_us,
                 update_us=attrs.ops_update_us, min_nr_regions=attrs.min_nr_regions,
                 max_nr_regions=attrs.max_nr_regions)
        try:
            (pr_k, regs_k) = settle(lambda: kd.snapshot()[0], w.hot, w.range, 10)
        finally:
            kd.stop()
    hx, hk = hot_set(regs_x, w.range), hot_set(regs_k, w.range)
    both = overlap_bytes(np.array([(s, e, 1, 0) for s, e in hx], dtype=damonx.REGION_DTYPE), hk)
    sz_x = sum(e - s for s, e in hx)
    sz_k = sum(e - s for s, e in hk)
    jaccard = both / (sz_x + sz_k - both)
    print(f"damonx: {sz_x >> 20} MiB hot, precision/recall {pr_x}; kernel DAMON: "
          f"{sz_k >> 20} MiB hot, {pr_k}; agreement (Jaccard) {jaccard:.2f}")
    assert min(pr_x) >= 0.8, pr_x
    assert min(pr_k) >= 0.8, pr_k
    assert jaccard >= 0.7
