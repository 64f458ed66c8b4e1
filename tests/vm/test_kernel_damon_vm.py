"""The kernel's own DAMON, driven by damonx.kernel_damon, on a known workload.

Runs only inside the project's test VM (tools/vmtest/run), whose kernel has
the DAMON sysfs interface and idle page tracking:

    tools/vmtest/run -- /path/to/python -m pytest -q tests/vm/test_kernel_damon_vm.py
"""

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from damonx.errors import DamonxError
from damonx.kernel_damon import KernelDamon

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(
        not (os.path.isdir("/sys/kernel/mm/damon/admin")
             and os.path.isdir("/sys/kernel/mm/page_idle")),
        reason="needs the test VM (DAMON sysfs and idle page tracking): tools/vmtest/run",
    ),
]

WORKLOAD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "workload.py")
MONITOR_S = 5.0


@pytest.fixture
def workload():
    """A child with 256 MiB mapped, the middle 32 MiB touched continuously."""
    proc = subprocess.Popen(
        [sys.executable, WORKLOAD, "--size-mib", "256", "--hot-mib", "32"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline().split()
        assert line and line[0] == "READY", f"workload did not start: {line!r}"
        start, end, hot_start, hot_end = (int(x, 16) for x in line[1:5])
        yield proc, (start, end), (hot_start, hot_end)
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()


def overlap(regions, lo, hi):
    """Bytes of each region inside [lo, hi)."""
    starts = np.maximum(regions["start"], lo)
    ends = np.minimum(regions["end"], hi)
    return np.where(ends > starts, ends - starts, 0).astype(np.int64)


def test_kernel_damon_finds_the_hot_part(workload):
    proc, (start, end), (hot_start, hot_end) = workload
    pid = proc.pid
    with KernelDamon() as kd:
        kd.start([pid], ops="vaddr", sample_us=5000, aggr_us=100000)
        assert kd.kdamond_pid is not None and kd.kdamond_pid > 0
        time.sleep(MONITOR_S)
        snap = kd.snapshot()
        cpu_s = kd.cpu_seconds()
    assert len(snap) == 1
    regions = snap[0]
    assert len(regions) > 0
    assert np.all(regions["start"] < regions["end"])
    assert np.all(regions["end"][:-1] <= regions["start"][1:])
    accessed = regions[regions["nr_accesses"] > 0]
    hot = int(hot_end - hot_start)
    found_hot = int(overlap(accessed, hot_start, hot_end).sum())
    found_in_mapping = int(overlap(accessed, start, end).sum())
    recall = found_hot / hot
    precision = found_hot / found_in_mapping if found_in_mapping else 0.0
    detail = (f"recall {recall:.3f} precision {precision:.3f}; accessed regions in "
              f"the mapping: {found_in_mapping >> 20} MiB, {len(regions)} regions")
    print(detail)
    assert recall >= 0.8, detail
    assert precision >= 0.8, detail
    assert cpu_s >= 0.0
    assert not kd.is_running()


def test_refuses_while_another_kdamond_runs(workload):
    pid = workload[0].pid
    with KernelDamon() as first:
        first.start([pid])
        assert first.is_running()
        with pytest.raises(DamonxError, match="already running"):
            KernelDamon().start([pid])
        assert first.is_running()
    assert KernelDamon().running_kdamonds() == []


def test_kdamond_stops_when_the_target_exits(workload):
    proc = workload[0]
    kd = KernelDamon().start([proc.pid])
    try:
        proc.kill()
        proc.wait()         # a zombie still counts as a valid target
        deadline = time.monotonic() + 10
        while kd.is_running() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not kd.is_running()
        with pytest.raises(DamonxError, match="not running"):
            kd.snapshot()
    finally:
        kd.stop()
