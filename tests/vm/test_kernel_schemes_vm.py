"""A damonx.Scheme run by the kernel's own DAMON (damonx.kernel_schemes
writes it to the DAMON sysfs interface): what it does to a real process,
and the statistics read back.  On the 6.12 and the 7.x test kernels.

    tools/vmtest/run -- .venv/bin/python -m pytest -m vm tests/vm/test_kernel_schemes_vm.py
"""

import time

import pytest

from damonx.kernel_damon import KernelDamon
from damonx.schemes import MAX, AccessPattern, Quotas, Scheme
from tests.vm.helpers import (
    needs_kernel_damon,
    needs_page_idle,
    resident_bytes,
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

MIB = 1 << 20


def test_the_kernel_pages_out_within_the_quota_of_a_damonx_scheme():
    """pageout of what was idle for a second, at most 16 MiB a second: the
    kernel pages out cold memory of the mapping, no more than its quota
    allows, and leaves the hot part resident; the statistics say so."""
    if not swap_on():
        pytest.skip("no swap (zram) in this VM")
    quota = 16 * MIB
    scheme = Scheme(
        "pageout",
        AccessPattern(access_rate=(0, 0), age_us=(1_000_000, MAX)),
        Quotas(sz_bytes=quota, reset_interval_ms=1000),
    )
    with workload(256, 32) as w:
        lo, hi = w.range
        rss0 = resident_bytes(w.pid, lo, hi)
        with KernelDamon() as kd:
            t0 = time.monotonic()
            kd.start([w.pid], ops="fvaddr", regions=[[w.range]], schemes=[scheme])
            until(30, lambda: time.sleep(0.5) or rss0 - resident_bytes(w.pid, lo, hi) >= 48 * MIB)
            [st] = kd.scheme_stats()
            elapsed = time.monotonic() - t0
            dropped = rss0 - resident_bytes(w.pid, lo, hi)
        hot_resident = resident_bytes(w.pid, *w.hot)
    print(f"kernel pageout: {dropped >> 20} MiB left memory in {elapsed:.1f} s: {st}")
    assert dropped >= 48 * MIB, (dropped, st)
    assert st["qt_exceeds"] > 0, st
    # a quota charges what it tried, whether or not all of it left memory
    assert dropped <= st["sz_applied"] <= (int(elapsed) + 1) * quota, (dropped, elapsed, st)
    assert hot_resident >= 0.9 * (w.hot[1] - w.hot[0])
