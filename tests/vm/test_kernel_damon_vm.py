"""The kernel's own DAMON, driven by damonx.kernel_damon, on a known workload.

Runs only inside the project's test VM (tools/vmtest/run), whose kernel has
the DAMON sysfs interface and idle page tracking:

    tools/vmtest/run -- /path/to/python -m pytest -q tests/vm/test_kernel_damon_vm.py
"""

import time

import numpy as np
import pytest

from damonx.errors import DamonxError
from damonx.kernel_damon import KernelDamon
from tests.vm.helpers import hot_precision_recall, needs_kernel_damon, needs_page_idle, until
from tests.vm.helpers import workload as run_workload

pytestmark = [
    pytest.mark.vm,
    pytest.mark.smoke,
    needs_page_idle,
    needs_kernel_damon,
]


@pytest.fixture
def workload():
    """A child with 256 MiB mapped, the middle 32 MiB touched continuously."""
    with run_workload(256, 32) as w:
        yield w


def test_kernel_damon_finds_the_hot_part(workload):
    w = workload
    with KernelDamon() as kd:
        kd.start([w.pid], ops="vaddr", sample_us=5000, aggr_us=100000)
        assert kd.kdamond_pid is not None and kd.kdamond_pid > 0
        seen = []

        def found():
            # One snapshot's region edges wander; the hot set must be found
            # by some snapshot within the deadline, as for damonx.
            regions = kd.snapshot()[0]
            assert len(regions) > 0
            assert np.all(regions["start"] < regions["end"])
            assert np.all(regions["end"][:-1] <= regions["start"][1:])
            seen.append(hot_precision_recall(regions, [w.hot], within=w.range))
            time.sleep(0.1)
            return min(seen[-1]) >= 0.8

        t0 = time.monotonic()
        ok = until(10, found)
        print(f"found after {time.monotonic() - t0:.1f} s, {len(seen)} snapshots: {seen[-1]}")
    assert ok, f"(precision, recall) of the last snapshots: {seen[-5:]}"
    assert not kd.is_running()


def test_refuses_while_another_kdamond_runs(workload):
    pid = workload.pid
    with KernelDamon() as first:
        first.start([pid])
        assert first.is_running()
        with pytest.raises(DamonxError, match="already running"):
            KernelDamon().start([pid])
        assert first.is_running()
    assert KernelDamon().running_kdamonds() == []


def test_kdamond_stops_when_the_target_exits(workload):
    proc = workload.proc
    kd = KernelDamon().start([proc.pid])
    try:
        proc.kill()
        proc.wait()  # a zombie still counts as a valid target
        deadline = time.monotonic() + 10
        while kd.is_running() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not kd.is_running()
        with pytest.raises(DamonxError, match="not running"):
            kd.snapshot()
    finally:
        kd.stop()
