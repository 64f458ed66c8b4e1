"""KernelDamon against a fake sysfs/procfs tree.

The fake tree holds the files the kernel's DAMON sysfs interface would have
after the ``nr_*`` writes (a plain directory cannot create them on write), so
these tests check what is written where, what is read back, and the refusals;
tests/vm/test_kernel_damon_vm.py runs the real thing.
"""

import errno
import os

import numpy as np
import pytest

from damonx import kernel_damon
from damonx.dtypes import REGION_DTYPE
from damonx.errors import (
    AccessDenied,
    DamonxError,
    InvalidAttrs,
    NoSuchProcess,
    NotSupported,
    ZombieProcess,
)
from damonx.kernel_damon import KernelDamon
from tests.fake_damon import get, put

U64_MAX = str(2**64 - 1)
U32_MAX = str(2**32 - 1)
TARGET_PID = 4242
KDAMOND_PID = 777


def make_tree(
    tmp_path,
    nr_targets=1,
    nr_regions=0,
    tried=None,
    nr_kdamonds=0,
    states=(),
    avail="vaddr fvaddr paddr",
):
    """A fake /sys and /proc; returns (sysfs_root, procfs_root)."""
    sysfs = tmp_path / "sys"
    procfs = tmp_path / "proc"
    kd = sysfs / "kernel/mm/damon/admin/kdamonds"
    put(kd / "nr_kdamonds", nr_kdamonds)
    for i, state in enumerate(states):
        put(kd / str(i) / "state", state)
        put(kd / str(i) / "pid", KDAMOND_PID + 1 + i if state == "on" else -1)
    put(kd / "0/state", states[0] if states else "off")
    put(kd / "0/pid", -1)
    ctx = kd / "0/contexts/0"
    put(kd / "0/contexts/nr_contexts", 0)
    put(ctx / "avail_operations", avail)
    put(ctx / "operations", "vaddr")
    for name, value in (("sample_us", 5000), ("aggr_us", 100000), ("update_us", 1000000)):
        put(ctx / "monitoring_attrs/intervals" / name, value)
    put(ctx / "monitoring_attrs/nr_regions/min", 10)
    put(ctx / "monitoring_attrs/nr_regions/max", 1000)
    put(ctx / "targets/nr_targets", 0)
    put(ctx / "schemes/nr_schemes", 0)
    for t in range(nr_targets):
        put(ctx / f"targets/{t}/pid_target", 0)
        put(ctx / f"targets/{t}/regions/nr_regions", 0)
        for r in range(nr_regions):
            put(ctx / f"targets/{t}/regions/{r}/start", 0)
            put(ctx / f"targets/{t}/regions/{r}/end", 0)
        s = ctx / f"schemes/{t}"
        put(s / "action", "pageout")
        for sub in ("sz", "nr_accesses", "age"):
            put(s / "access_pattern" / sub / "min", 0)
            put(s / "access_pattern" / sub / "max", 0)
        put(s / "filters/nr_filters", 0)
        for name, value in (("type", "anon"), ("matching", "N"), ("damon_target_idx", 0)):
            put(s / "filters/0" / name, value)
        put(s / "tried_regions/total_bytes", 0)
        for k, region in enumerate((tried or {}).get(t, [])):
            for name, value in zip(("start", "end", "nr_accesses", "age"), region):
                put(s / f"tried_regions/{k}/{name}", value)
        put(procfs / str(TARGET_PID + t) / "stat", f"{TARGET_PID + t} (workload) S 1")
    return str(sysfs), str(procfs)


def ctx_dir(sysfs):
    return os.path.join(sysfs, "kernel/mm/damon/admin/kdamonds/0/contexts/0")


def tree_contents(root):
    out = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = os.path.join(dirpath, name)
            out[path] = get(path)
    return out


def started(sysfs, procfs, kdamond_pid=KDAMOND_PID, **kwargs):
    """Start a KernelDamon on the fake tree, making the kernel's pid file say
    ``kdamond_pid`` (the real kernel fills it in when the state turns on)."""
    put(os.path.join(sysfs, "kernel/mm/damon/admin/kdamonds/0/pid"), kdamond_pid)
    kwargs.setdefault("targets", [TARGET_PID])
    return KernelDamon(sysfs, procfs).start(**kwargs)


def test_constructor_touches_nothing(tmp_path):
    sysfs, procfs = make_tree(tmp_path)
    before = tree_contents(tmp_path)
    kd = KernelDamon(sysfs, procfs)
    assert kd.available
    assert tree_contents(tmp_path) == before
    KernelDamon(str(tmp_path / "nowhere"))  # no tree at all: still fine


def test_start_writes_one_kdamond_context_and_stat_scheme(tmp_path):
    sysfs, procfs = make_tree(tmp_path)
    kd = started(
        sysfs,
        procfs,
        sample_us=2000,
        aggr_us=40000,
        update_us=500000,
        min_nr_regions=20,
        max_nr_regions=300,
    )
    ctx = ctx_dir(sysfs)
    kdamonds = os.path.join(sysfs, "kernel/mm/damon/admin/kdamonds")
    assert get(os.path.join(kdamonds, "nr_kdamonds")) == "1"
    assert get(os.path.join(kdamonds, "0/contexts/nr_contexts")) == "1"
    assert get(os.path.join(kdamonds, "0/state")) == "on"
    assert get(os.path.join(ctx, "operations")) == "vaddr"
    intervals = os.path.join(ctx, "monitoring_attrs/intervals")
    assert get(os.path.join(intervals, "sample_us")) == "2000"
    assert get(os.path.join(intervals, "aggr_us")) == "40000"
    assert get(os.path.join(intervals, "update_us")) == "500000"
    assert get(os.path.join(ctx, "monitoring_attrs/nr_regions/min")) == "20"
    assert get(os.path.join(ctx, "monitoring_attrs/nr_regions/max")) == "300"
    assert get(os.path.join(ctx, "targets/nr_targets")) == "1"
    assert get(os.path.join(ctx, "targets/0/pid_target")) == str(TARGET_PID)
    assert get(os.path.join(ctx, "targets/0/regions/nr_regions")) == "0"
    assert get(os.path.join(ctx, "schemes/nr_schemes")) == "1"
    scheme = os.path.join(ctx, "schemes/0")
    assert get(os.path.join(scheme, "action")) == "stat"
    pattern = os.path.join(scheme, "access_pattern")
    assert get(os.path.join(pattern, "sz/max")) == U64_MAX
    assert get(os.path.join(pattern, "nr_accesses/max")) == U32_MAX
    assert get(os.path.join(pattern, "age/max")) == U32_MAX
    for sub in ("sz", "nr_accesses", "age"):
        assert get(os.path.join(pattern, sub, "min")) == "0"
    assert get(os.path.join(scheme, "filters/nr_filters")) == "0"  # one target: no filter
    assert kd.kdamond_pid == KDAMOND_PID
    assert kd.is_running()


def test_several_targets_get_one_filtered_scheme_each(tmp_path):
    sysfs, procfs = make_tree(tmp_path, nr_targets=2)
    started(sysfs, procfs, targets=[TARGET_PID, TARGET_PID + 1])
    ctx = ctx_dir(sysfs)
    assert get(os.path.join(ctx, "targets/nr_targets")) == "2"
    assert get(os.path.join(ctx, "targets/1/pid_target")) == str(TARGET_PID + 1)
    assert get(os.path.join(ctx, "schemes/nr_schemes")) == "2"
    for i in range(2):
        filters = os.path.join(ctx, f"schemes/{i}/filters")
        assert get(os.path.join(filters, "nr_filters")) == "1"
        assert get(os.path.join(filters, "0/type")) == "target"
        assert get(os.path.join(filters, "0/damon_target_idx")) == str(i)
        assert get(os.path.join(filters, "0/matching")) == "N"


def test_initial_regions_are_written(tmp_path):
    sysfs, procfs = make_tree(tmp_path, nr_regions=2)
    started(sysfs, procfs, regions=[[(0x1000, 0x5000), (0x9000, 0x20000)]])
    regions = os.path.join(ctx_dir(sysfs), "targets/0/regions")
    assert get(os.path.join(regions, "nr_regions")) == "2"
    assert get(os.path.join(regions, "0/start")) == str(0x1000)
    assert get(os.path.join(regions, "0/end")) == str(0x5000)
    assert get(os.path.join(regions, "1/start")) == str(0x9000)
    assert get(os.path.join(regions, "1/end")) == str(0x20000)


def test_paddr_targets_are_ranges_without_pid(tmp_path):
    sysfs, procfs = make_tree(tmp_path, nr_regions=1)
    started(sysfs, procfs, ops="paddr", targets=[(1 << 20, 1 << 30)])
    ctx = ctx_dir(sysfs)
    assert get(os.path.join(ctx, "operations")) == "paddr"
    assert get(os.path.join(ctx, "targets/0/pid_target")) == "0"
    assert get(os.path.join(ctx, "targets/0/regions/0/start")) == str(1 << 20)
    assert get(os.path.join(ctx, "targets/0/regions/0/end")) == str(1 << 30)


@pytest.mark.parametrize("states", [("on",), ("off", "on")])
def test_refuses_when_a_kdamond_is_already_running(tmp_path, states):
    sysfs, procfs = make_tree(tmp_path, nr_kdamonds=len(states), states=states)
    before = tree_contents(tmp_path)
    with pytest.raises(DamonxError, match="already running"):
        KernelDamon(sysfs, procfs).start([TARGET_PID])
    assert tree_contents(tmp_path) == before


def test_missing_sysfs_interface_names_the_config(tmp_path):
    kd = KernelDamon(str(tmp_path / "sys"), str(tmp_path / "proc"))
    assert not kd.available
    with pytest.raises(NotSupported, match="CONFIG_DAMON_SYSFS"):
        kd.start([os.getpid()])
    with pytest.raises(NotSupported, match="CONFIG_DAMON_SYSFS"):
        kd.running_kdamonds()


def test_missing_operations_set_names_the_config_and_cleans_up(tmp_path):
    sysfs, procfs = make_tree(tmp_path, nr_regions=1, avail="vaddr fvaddr")
    with pytest.raises(NotSupported, match="CONFIG_DAMON_PADDR"):
        KernelDamon(sysfs, procfs).start([(0, 1 << 30)], ops="paddr")
    kdamonds = os.path.join(sysfs, "kernel/mm/damon/admin/kdamonds")
    assert get(os.path.join(kdamonds, "nr_kdamonds")) == "0"
    assert get(os.path.join(kdamonds, "0/state")) == "off"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(targets=[]), "no monitoring target"),
        (dict(targets=[0]), "positive PIDs"),
        (dict(targets=[2**31]), "positive PIDs"),
        (dict(targets=["12"]), "positive PIDs"),
        (dict(targets=[TARGET_PID], ops="pvaddr"), "ops must be one of"),
        (dict(targets=[TARGET_PID], sample_us=0), "sample_us"),
        (dict(targets=[TARGET_PID], sample_us=5000, aggr_us=1000), "aggr_us"),
        (dict(targets=[TARGET_PID], min_nr_regions=2), "min_nr_regions"),
        (dict(targets=[TARGET_PID], min_nr_regions=50, max_nr_regions=40), "min_nr_regions"),
        (dict(targets=[TARGET_PID], ops="fvaddr"), "fvaddr needs regions"),
        (dict(targets=[TARGET_PID], regions=[[(0x2000, 0x1000)]]), "not a valid range"),
        (dict(targets=[TARGET_PID], regions=[[(0, 0x3000), (0x2000, 0x4000)]]), "overlap"),
        (dict(targets=[TARGET_PID], regions=[[]]), "at least one range"),
        (dict(targets=[TARGET_PID], regions=[[(0, "x")]]), "pairs of integers"),
        (dict(targets=[TARGET_PID], regions=[]), "one list of ranges per target"),
        (dict(targets=[(0, 1 << 20)], ops="paddr", regions=[[(0, 1)]]), "not regions"),
        (dict(targets=[TARGET_PID], intervals_goal=(400, 3, 10_000, 10**7)), "within the inter"),
        (dict(targets=[TARGET_PID], intervals_goal=(400, 3)), "intervals_goal is an"),
        (dict(targets=[TARGET_PID], intervals_goal=(0, 3, 5000, 10**7)), "access_bp"),
    ],
)
def test_invalid_arguments_are_refused_before_writing(tmp_path, kwargs, match):
    sysfs, procfs = make_tree(tmp_path)
    before = tree_contents(tmp_path)
    with pytest.raises(InvalidAttrs, match=match):
        KernelDamon(sysfs, procfs).start(**kwargs)
    assert tree_contents(tmp_path) == before


def test_target_that_does_not_exist_or_is_a_zombie(tmp_path):
    sysfs, procfs = make_tree(tmp_path)
    before = tree_contents(tmp_path)
    with pytest.raises(NoSuchProcess, match=f"process {TARGET_PID + 100} does not exist") as err:
        KernelDamon(sysfs, procfs).start([TARGET_PID + 100])
    assert err.type is NoSuchProcess and err.value.pid == TARGET_PID + 100
    put(os.path.join(procfs, str(TARGET_PID), "stat"), f"{TARGET_PID} (a) b) Z 1")
    with pytest.raises(ZombieProcess, match=f"process {TARGET_PID} is a zombie"):
        KernelDamon(sysfs, procfs).start([TARGET_PID])
    assert tree_contents(tmp_path) == {
        **before,
        os.path.join(procfs, str(TARGET_PID), "stat"): f"{TARGET_PID} (a) b) Z 1",
    }


def test_unsorted_ranges_are_sorted(tmp_path):
    sysfs, procfs = make_tree(tmp_path, nr_regions=2)
    started(sysfs, procfs, regions=[[(0x9000, 0x20000), (0x1000, 0x5000)]])
    regions = os.path.join(ctx_dir(sysfs), "targets/0/regions")
    assert [get(os.path.join(regions, f"{i}/start")) for i in range(2)] == ["4096", "36864"]


def test_a_missing_sysfs_file_names_the_config_and_cleans_up(tmp_path):
    sysfs, procfs = make_tree(tmp_path)
    intervals = os.path.join(ctx_dir(sysfs), "monitoring_attrs/intervals")
    os.remove(os.path.join(intervals, "update_us"))
    with pytest.raises(
        NotSupported,
        match=f"cannot write 1000000 to {intervals}/update_us: "
        "No such file or directory; the kernel's DAMON sysfs interface "
        r"\(CONFIG_DAMON_SYSFS\) lacks it$",
    ):
        KernelDamon(sysfs, procfs).start([TARGET_PID])
    assert get(os.path.join(sysfs, "kernel/mm/damon/admin/kdamonds/nr_kdamonds")) == "0"


class FailingOs:
    """The os module, but os.open and os.write of chosen paths fail."""

    def __init__(self, errno_of_path, nr_busy=0):
        self.errno_of_path = errno_of_path
        self.nr_busy = nr_busy

    def __getattr__(self, name):
        return getattr(os, name)

    def open(self, path, flags, *args):
        code = self.errno_of_path.get(os.path.basename(path))
        if code:
            raise OSError(code, os.strerror(code), path)
        return os.open(path, flags, *args)

    def write(self, fd, data):
        if self.nr_busy:
            self.nr_busy -= 1
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        return os.write(fd, data)


@pytest.mark.parametrize(
    "code, cls, words",
    [
        (errno.EACCES, AccessDenied, "Permission denied; the kernel's DAMON needs root"),
        (errno.EPERM, AccessDenied, "Operation not permitted; the kernel's DAMON needs root"),
        (errno.EINVAL, InvalidAttrs, "Invalid argument"),
        (errno.EBUSY, DamonxError, "Device or resource busy"),
    ],
)
def test_sysfs_errors_take_the_one_error_path(tmp_path, monkeypatch, code, cls, words):
    sysfs, procfs = make_tree(tmp_path)
    monkeypatch.setattr(kernel_damon, "_EBUSY_RETRY_S", 0.2)
    monkeypatch.setattr(kernel_damon, "os", FailingOs({"operations": code}))
    path = os.path.join(ctx_dir(sysfs), "operations")
    with pytest.raises(cls, match=f"^cannot write 'vaddr' to {path}: {words}$") as err:
        KernelDamon(sysfs, procfs).start([TARGET_PID])
    assert type(err.value) is cls and isinstance(err.value.__cause__, OSError)


def test_busy_sysfs_files_are_written_again(tmp_path, monkeypatch):
    sysfs, procfs = make_tree(tmp_path)
    monkeypatch.setattr(kernel_damon, "os", FailingOs({}, nr_busy=3))
    started(sysfs, procfs)
    assert get(os.path.join(sysfs, "kernel/mm/damon/admin/kdamonds/nr_kdamonds")) == "1"


def test_snapshot_reads_tried_regions_per_target(tmp_path):
    tried = {
        0: [(0x3000, 0x4000, 0, 7), (0x1000, 0x3000, 20, 1)],
        1: [(0x10000, 0x20000, 3, 2)],
    }
    sysfs, procfs = make_tree(tmp_path, nr_targets=2, tried=tried)
    kd = started(sysfs, procfs, targets=[TARGET_PID, TARGET_PID + 1])
    snap = kd.snapshot()
    assert (
        get(os.path.join(sysfs, "kernel/mm/damon/admin/kdamonds/0/state"))
        == "update_schemes_tried_regions"
    )
    assert len(snap) == 2
    assert all(a.dtype == REGION_DTYPE for a in snap)
    assert snap[0].tolist() == [(0x1000, 0x3000, 20, 1), (0x3000, 0x4000, 0, 7)]
    assert snap[1].tolist() == [(0x10000, 0x20000, 3, 2)]
    assert (
        np.dtype([("start", "<u8"), ("end", "<u8"), ("nr_accesses", "<u4"), ("age", "<u4")])
        == REGION_DTYPE
    )


def test_snapshot_asks_again_when_the_kernel_update_timed_out(tmp_path, monkeypatch):
    # a starved kdamond lets the update time out and lists no region: the
    # first request finds none, the second finds the regions
    sysfs, procfs = make_tree(tmp_path)
    kd = started(sysfs, procfs)
    tried = os.path.join(ctx_dir(sysfs), "schemes/0/tried_regions")
    requests = []
    write = kd._write

    def serve_on_second_request(path, value):
        write(path, value)
        if value == "update_schemes_tried_regions":
            put(path, "on")  # as the kernel's state file reads after a command
            requests.append(value)
            if len(requests) == 2:
                for name, v in zip(("start", "end", "nr_accesses", "age"), (0x1000, 0x2000, 4, 1)):
                    put(os.path.join(tried, "0", name), v)

    monkeypatch.setattr(kd, "_write", serve_on_second_request)
    assert kd.snapshot()[0].tolist() == [(0x1000, 0x2000, 4, 1)]
    assert len(requests) == 2


def test_snapshot_gives_up_on_a_target_without_regions(tmp_path, monkeypatch):
    sysfs, procfs = make_tree(tmp_path)
    kd = started(sysfs, procfs)
    requests = []
    write = kd._write

    def count(path, value):
        write(path, value)
        if value == "update_schemes_tried_regions":
            put(path, "on")  # as the kernel's state file reads after a command
        requests.append(value)

    monkeypatch.setattr(kd, "_write", count)
    assert len(kd.snapshot()[0]) == 0
    assert requests.count("update_schemes_tried_regions") == kernel_damon._SNAPSHOT_ATTEMPTS


def test_snapshot_before_start(tmp_path):
    sysfs, procfs = make_tree(tmp_path)
    with pytest.raises(DamonxError, match="start"):
        KernelDamon(sysfs, procfs).snapshot()


def test_cpu_seconds_and_stop(tmp_path):
    sysfs, procfs = make_tree(tmp_path)
    tck = os.sysconf("SC_CLK_TCK")
    # comm may hold spaces and ')': fields are counted after the last ')'
    fields = ["S"] + ["0"] * 10 + [str(3 * tck), str(2 * tck)] + ["0"] * 30
    put(
        os.path.join(procfs, str(KDAMOND_PID), "stat"),
        f"{KDAMOND_PID} (kdamond.0 (x) y) " + " ".join(fields),
    )
    with started(sysfs, procfs) as kd:
        assert kd.cpu_seconds() == pytest.approx(5.0)
    kdamonds = os.path.join(sysfs, "kernel/mm/damon/admin/kdamonds")
    assert get(os.path.join(kdamonds, "0/state")) == "off"
    assert get(os.path.join(kdamonds, "nr_kdamonds")) == "0"
    assert kd.kdamond_pid is None
    assert not kd.is_running()
    assert kd.cpu_seconds() == pytest.approx(5.0)  # read just before turning off
    kd.stop()  # idempotent


def test_cpu_seconds_of_a_vanished_kdamond(tmp_path):
    sysfs, procfs = make_tree(tmp_path)
    kd = started(sysfs, procfs)
    with pytest.raises(
        NoSuchProcess, match=f"kdamond thread {KDAMOND_PID}: process {KDAMOND_PID} does not exist"
    ):
        kd.cpu_seconds()


def goal_files(sysfs):
    return os.path.join(ctx_dir(sysfs), "monitoring_attrs/intervals/intervals_goal")


def test_intervals_goal_is_written_and_tuned_intervals_read(tmp_path):
    from damonx import IntervalsGoal

    sysfs, procfs = make_tree(tmp_path)
    for name in ("access_bp", "aggrs", "min_sample_us", "max_sample_us"):
        put(os.path.join(goal_files(sysfs), name), 0)
    kd = started(sysfs, procfs, intervals_goal=IntervalsGoal(aggrs=5))
    written = {n: get(os.path.join(goal_files(sysfs), n)) for n in os.listdir(goal_files(sysfs))}
    assert written == dict(
        access_bp="400", aggrs="5", min_sample_us="5000", max_sample_us="10000000"
    )
    # the kernel updates sample_us and aggr_us on update_tuned_intervals
    intervals = os.path.join(ctx_dir(sysfs), "monitoring_attrs/intervals")
    put(os.path.join(intervals, "sample_us"), 20000)
    put(os.path.join(intervals, "aggr_us"), 400000)
    assert kd.tuned_intervals() == (20000, 400000)
    assert get(os.path.join(sysfs, "kernel/mm/damon/admin/kdamonds/0/state")) == (
        "update_tuned_intervals"
    )


def test_a_kernel_without_intervals_goal_is_refused_and_cleaned_up(tmp_path):
    sysfs, procfs = make_tree(tmp_path)
    with pytest.raises(NotSupported, match=r"intervals_goal, Linux 6.15"):
        started(sysfs, procfs, intervals_goal=(400, 3, 5000, 10**7))
    kdamonds = os.path.join(sysfs, "kernel/mm/damon/admin/kdamonds")
    assert get(os.path.join(kdamonds, "nr_kdamonds")) == "0"
    assert get(os.path.join(kdamonds, "0/state")) == "off"


def test_busy_sysfs_files_are_read_again(tmp_path, monkeypatch):
    # state_show() answers EBUSY while another holds the DAMON sysfs mutex
    sysfs, procfs = make_tree(tmp_path, states=("on",), nr_kdamonds=1)
    nr_busy = [2]
    real_open = open

    def busy_open(path, *args, **kwargs):
        if str(path).endswith("/state") and nr_busy[0]:
            nr_busy[0] -= 1
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(kernel_damon, "open", busy_open, raising=False)
    assert KernelDamon(sysfs, procfs).running_kdamonds() == [0]
    assert nr_busy == [0]
