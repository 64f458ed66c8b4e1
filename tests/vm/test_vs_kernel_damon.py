"""damonx and the kernel's own DAMON on the same workload, in the same VM."""

import time

import numpy as np
import pytest

import damonx
from damonx.kernel_damon import KernelDamon
from tests.vm.helpers import hot_precision_recall, needs_page_idle, workload

pytestmark = [pytest.mark.vm, needs_page_idle]

needs_kernel_damon = pytest.mark.skipif(
    not KernelDamon().available, reason="needs the kernel's DAMON sysfs interface (the VM has it)"
)

PAGE = 4096


def hot_pages(regions, lo, hi):
    """A boolean per page of [lo, hi): inside a region with nr_accesses > 0."""
    hot = np.zeros((hi - lo) // PAGE, dtype=bool)
    for r in regions[regions["nr_accesses"] > 0]:
        s, e = max(int(r["start"]), lo), min(int(r["end"]), hi)
        if s < e:
            hot[(s - lo) // PAGE : (e - lo) // PAGE] = True
    return hot


def settled_hot_pages(snapshots, w, seconds=10, nr_votes=5):
    """Once a snapshot finds the hot set (precision and recall >= 0.8), the
    pages that the next nr_votes snapshots mostly call hot: one snapshot's
    region edges wander, a majority's settle."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if min(hot_precision_recall(snapshots(), [w.hot], within=w.range)) >= 0.8:
            break
    else:
        pytest.fail("the hot set was not found within 10 s")
    votes = sum(hot_pages(snapshots(), *w.range).astype(int) for _ in range(nr_votes))
    return votes > nr_votes // 2


def precision_recall(hot, truth):
    both = int((hot & truth).sum())
    return round(both / max(int(hot.sum()), 1), 3), round(both / int(truth.sum()), 3)


@needs_kernel_damon
def test_damonx_and_kernel_damon_find_the_same_hot_set():
    attrs = damonx.Attrs()
    with workload(512, 64) as w:
        truth = np.zeros((w.range[1] - w.range[0]) // PAGE, dtype=bool)
        truth[(w.hot[0] - w.range[0]) // PAGE : (w.hot[1] - w.range[0]) // PAGE] = True
        with damonx.Monitor("vaddr", [w.pid], attrs) as mon:
            hot_x = settled_hot_pages(lambda: mon.step().targets[w.pid], w)
        kd = KernelDamon()
        kd.start(
            [w.pid],
            ops="vaddr",
            sample_us=attrs.sample_us,
            aggr_us=attrs.aggr_us,
            update_us=attrs.ops_update_us,
            min_nr_regions=attrs.min_nr_regions,
            max_nr_regions=attrs.max_nr_regions,
        )
        try:
            hot_k = settled_hot_pages(lambda: kd.snapshot()[0], w)
        finally:
            kd.stop()
    pr_x, pr_k = precision_recall(hot_x, truth), precision_recall(hot_k, truth)
    jaccard = (hot_x & hot_k).sum() / (hot_x | hot_k).sum()
    print(
        f"damonx: {hot_x.sum() * PAGE >> 20} MiB hot, precision/recall {pr_x}; kernel DAMON: "
        f"{hot_k.sum() * PAGE >> 20} MiB hot, {pr_k}; agreement (Jaccard) {jaccard:.2f}"
    )
    assert min(pr_x) >= 0.8, pr_x
    assert min(pr_k) >= 0.8, pr_k
    assert jaccard >= 0.7
