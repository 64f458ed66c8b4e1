"""Shared pieces of the tests that run inside the project's VM."""

import contextlib
import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from damonx.kernel_damon import KernelDamon

HERE = pathlib.Path(__file__).resolve().parent
WORKLOAD = HERE / "workload.py"

needs_page_idle = pytest.mark.skipif(
    not os.path.exists("/sys/kernel/mm/page_idle/bitmap") or os.geteuid() != 0,
    reason="needs idle page tracking and root: run inside the project's VM (tools/vmtest/run)",
)
needs_kernel_damon = pytest.mark.skipif(
    not KernelDamon().available,
    reason="needs the kernel's DAMON sysfs interface (the VM has it)",
)


class Workload:
    """A running tests/vm/workload.py process and its address ranges."""

    def __init__(self, proc, start, end, hot_start, hot_end, *shm):
        self.proc = proc
        self.pid = proc.pid
        self.range = (start, end)
        self.hot = (hot_start, hot_end)
        #: the /dev/shm mapping (--shm-mib), or None
        self.shm = tuple(shm) if shm else None

    def smaps_field(self, field):
        """Sum of a /proc/PID/smaps field (kB) over the workload mapping."""
        total, inside = 0, False
        with open(f"/proc/{self.pid}/smaps") as f:
            for line in f:
                head = line.split()[0]
                if "-" in head and not head.endswith(":"):
                    s, e = (int(x, 16) for x in head.split("-"))
                    inside = s < self.range[1] and e > self.range[0]
                elif inside and head == field + ":":
                    total += int(line.split()[1])
        return total


@contextlib.contextmanager
def workload(size_mib=512, hot_mib=64, thp=False, hot_kib=None, shm_mib=0, cpu=None):
    """tests/vm/workload.py running; on CPU cpu only (its memory then
    comes from that CPU's node) when given."""
    hot = ["--hot-kib", str(hot_kib)] if hot_kib is not None else ["--hot-mib", str(hot_mib)]
    cmd = [sys.executable, str(WORKLOAD), "--size-mib", str(size_mib), *hot]
    if thp:
        cmd.append("--thp")
    if shm_mib:
        cmd += ["--shm-mib", str(shm_mib)]
    pin = None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu}))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, preexec_fn=pin)
    try:
        line = proc.stdout.readline().split()
        assert line and line[0] == "READY", f"workload did not start: {line}"
        yield Workload(proc, *(int(x, 16) for x in line[1:]))
    finally:
        proc.kill()
        proc.wait()


def clip(regions, lo, hi):
    """Regions restricted to [lo, hi)."""
    r = regions[(regions["end"] > lo) & (regions["start"] < hi)].copy()
    r["start"] = np.maximum(r["start"], lo)
    r["end"] = np.minimum(r["end"], hi)
    return r


def hot_precision_recall(regions, hot_ranges, within=None, min_nr_accesses=1):
    from damonx.sim import precision_recall

    if within is not None:
        regions = clip(regions, *within)
    return precision_recall(regions, hot_ranges, min_nr_accesses)


def until(deadline_s, step):
    """Call step() until it returns a true value or deadline_s passes."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        res = step()
        if res:
            return res
    return None


def swap_on():
    """True once the VM swaps to zram (set up here if it does not yet)."""
    with open("/proc/swaps") as f:
        swaps = f.read()
    if not swaps.count("\n") > 1:
        subprocess.run(
            "echo 512M > /sys/block/zram0/disksize && mkswap /dev/zram0 && swapon /dev/zram0",
            shell=True,
            check=False,
            capture_output=True,
        )
    return open("/proc/swaps").read().count("\n") > 1


def meminfo_kb(field):
    """A field of /proc/meminfo, kB."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def kill(proc):
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGKILL)
    proc.wait()


PAGE = 4096
_SYS_MOVE_PAGES = 279  # x86_64


def page_nodes(pid, start, end):
    """The NUMA node of each page of [start, end) of process pid (negative
    errno for a page that is not present), through move_pages(2) without
    nodes, which only asks."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    n = (end - start) // PAGE
    pages = (ctypes.c_void_p * n)(*range(start, end, PAGE))
    status = (ctypes.c_int * n)()
    rc = libc.syscall(_SYS_MOVE_PAGES, pid, ctypes.c_ulong(n), pages, None, status, 0)
    if rc < 0:
        raise OSError(ctypes.get_errno(), "move_pages")
    return np.array(status[:], dtype=np.int64)


def resident_bytes(pid, start, end):
    """Bytes of [start, end) of process pid present in memory (pagemap)."""
    with open(f"/proc/{pid}/pagemap", "rb") as f:
        f.seek(start // PAGE * 8)
        entries = np.frombuffer(f.read((end - start) // PAGE * 8), dtype="<u8")
    return int(np.count_nonzero(entries >> np.uint64(63))) * PAGE


def nr_nodes():
    """The NUMA nodes of the machine."""
    try:
        return len([d for d in os.listdir("/sys/devices/system/node") if d[4:].isdigit()])
    except OSError:
        return 1


@contextlib.contextmanager
def thp_mode(mode):
    """THP's mode (always, madvise, never) set for the block."""
    path = "/sys/kernel/mm/transparent_hugepage/enabled"
    with open(path) as f:
        old = f.read().split("[")[1].split("]")[0]
    with open(path, "w") as f:
        f.write(mode)
    try:
        yield
    finally:
        with open(path, "w") as f:
            f.write(old)
