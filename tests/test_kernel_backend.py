"""The kernel backend of Monitor against fake DAMON sysfs trees
(tests/fake_damon.py); tests/vm/test_backends_vm.py runs the real thing."""

import gc
import json
import os

import numpy as np
import pytest

import damonx
from damonx import kernel_backend, kernel_owner
from damonx.dtypes import MONITOR_REGION_DTYPE
from tests.fake_damon import KDAMOND_PID, FakeDamon, get, put

PID = 4242
U64_MAX, U32_MAX = 2**64 - 1, 2**32 - 1


@pytest.fixture
def fake(tmp_path, monkeypatch):
    def make(release="6.12", **kwargs):
        f = FakeDamon(tmp_path, release, **kwargs).install(monkeypatch)
        f.add_process(PID)
        f.add_process(PID + 1)
        return f

    return make


def monitor(f, targets=(PID,), ops="vaddr", **kwargs):
    return damonx.Monitor(
        ops, list(targets), procfs=f.procfs, sysfs=f.sysfs, backend="kernel", **kwargs
    )


def claim():
    return kernel_owner.load_claim()


def test_snapshots_come_from_the_tried_regions_of_a_stat_scheme(fake):
    f = fake()
    f.tried[0] = [(0x3000, 0x4000, 0, 7), (0x1000, 0x3000, 20, 1)]
    attrs = damonx.Attrs(sample_us=2000, aggr_us=40000, ops_update_us=500000, max_nr_regions=300)
    with monitor(f, attrs=attrs) as mon:
        assert mon.backend == "kernel"
        assert f.read("nr_kdamonds") == "0"  # nothing runs before the first step
        snap = mon.step()
        ctx = "0/contexts/0"
        assert f.read("0/state") == "on"
        assert f.read(f"{ctx}/operations") == "vaddr"
        assert f.read(f"{ctx}/monitoring_attrs/intervals/sample_us") == "2000"
        assert f.read(f"{ctx}/monitoring_attrs/intervals/aggr_us") == "40000"
        assert f.read(f"{ctx}/monitoring_attrs/intervals/update_us") == "500000"
        assert f.read(f"{ctx}/monitoring_attrs/nr_regions/max") == "300"
        assert f.read(f"{ctx}/targets/0/pid_target") == str(PID)
        assert f.read(f"{ctx}/schemes/nr_schemes") == "1"
        assert f.read(f"{ctx}/schemes/0/action") == "stat"
        assert f.read(f"{ctx}/schemes/0/access_pattern/sz/max") == str(U64_MAX)
        assert f.read(f"{ctx}/schemes/0/access_pattern/age/max") == str(U32_MAX)
        # the cookie that proves the kdamond is damonx's
        c = claim()
        assert f.read(f"{ctx}/schemes/0/quotas/reset_interval_ms") == str(c.cookie)
        assert (c.owner_pid, c.kdamond, c.kdamond_pid, c.pids) == (
            os.getpid(),
            0,
            KDAMOND_PID,
            [PID],
        )
        regions = snap.targets[PID]
        assert regions.dtype == MONITOR_REGION_DTYPE
        assert regions.tolist() == [(0x1000, 0x3000, 20, 1, 200000), (0x3000, 0x4000, 0, 7, 0)]
        assert snap.nr_checks is None  # the kernel counts no checks
        assert snap.end_ns - snap.start_ns == 40_000_000
        second = mon.step()
        assert second.start_ns >= snap.end_ns
        stats = mon.stats()
        assert stats["nr_aggregations"] == 2 and "nr_region_checks" not in stats
        assert stats["kdamond_cpu_us"] == 7 * 1_000_000 // os.sysconf("SC_CLK_TCK")
        assert stats["damonx_cpu_us"] > 0
        assert mon.access_check_stats() == {}
    # closing stops and removes the kdamond, and drops the claim
    assert f.read("nr_kdamonds") == "0"
    assert claim() is None
    assert ("0/state", "off") in f.writes


def test_several_targets_get_one_filtered_stat_scheme_each(fake):
    f = fake("6.6")
    f.tried = {0: [(0x1000, 0x2000, 1, 1)], 1: [(0x9000, 0xA000, 2, 2)]}
    with monitor(f, [PID, PID + 1]) as mon:
        snap = mon.step()
        schemes = "0/contexts/0/schemes"
        assert f.read(f"{schemes}/nr_schemes") == "2"
        for i in range(2):
            assert f.read(f"{schemes}/{i}/filters/0/type") == "target"
            assert f.read(f"{schemes}/{i}/filters/0/damon_target_idx") == str(i)
            assert f.read(f"{schemes}/{i}/filters/0/matching") == "N"
        assert snap.targets[PID]["start"].tolist() == [0x1000]
        assert snap.targets[PID + 1]["start"].tolist() == [0x9000]
        # a target that exits leaves the snapshots
        f.add_process(PID + 1, "Z")
        assert list(mon.step().targets) == [PID]
        assert mon.live_targets == [PID] and mon.stats()["nr_targets_lost"] == 1
        f.add_process(PID, "Z")
        assert mon.step() is None  # no target left


def test_several_targets_need_target_filters(fake):
    with pytest.raises(
        damonx.NotSupported,
        match=r"no address and target filters \(damon_target_idx, added in Linux 6.6\): with "
        "several targets",
    ):
        monitor(fake("6.3"), [PID, PID + 1])


@pytest.mark.parametrize(
    "release, words",
    [
        ("6.1", r"no tried regions \(snapshots\) \(tried_regions, added in Linux 6.2\)"),
        ("5.15", r"only its debugfs interface \(Linux 5.15 to 5.17\)"),
    ],
)
def test_kernels_without_tried_regions_are_refused(fake, release, words):
    f = fake(release)
    with pytest.raises(damonx.NotSupported, match=words):
        monitor(f)
    if release != "5.15":
        assert f.read("nr_kdamonds") == "0"
    assert claim() is None


def test_a_kdamond_damonx_did_not_start_is_left_alone(fake):
    f = fake("6.18")
    f.start_foreign()
    before = len(f.writes)
    with pytest.raises(
        damonx.NotSupported, match=r"kdamond 0 runs \(not started by damonx\): nr_kdamonds"
    ):
        monitor(f)
    assert len(f.writes) == before
    assert f.read("0/state") == "on"


def test_a_missing_operations_set_is_named(fake):
    with pytest.raises(damonx.NotSupported, match="lacks the vaddr operations; it has paddr"):
        monitor(fake(ops=("paddr",)))


def test_attrs_the_kernel_cannot_take(fake):
    f = fake()
    with pytest.raises(damonx.InvalidAttrs, match="draws its own sampling addresses"):
        monitor(f, seed=3)
    with pytest.raises(damonx.InvalidAttrs, match="keeps regions of at least one page"):
        monitor(f, attrs=damonx.Attrs(min_region_sz=2 << 20))
    with pytest.raises(damonx.NotSupported, match="no CPU budget"):
        monitor(f, attrs=damonx.Attrs(cpu_budget=2))
    assert f.writes == []


def test_the_kernels_intervals_tuning_runs_the_monitor_and_fills_its_snapshots(fake):
    f = fake("6.15")
    goal = damonx.IntervalsGoal(access_bp=300, aggrs=4)
    with monitor(f, attrs=damonx.Attrs(intervals_goal=goal)) as mon:
        first = mon.step()
        ctx = "0/contexts/0/monitoring_attrs/intervals"
        assert (first.sample_us, first.aggr_us) == (5000, 100000)
        assert f.read(f"{ctx}/intervals_goal/access_bp") == "300"
        assert f.read(f"{ctx}/intervals_goal/aggrs") == "4"
        # as the kernel writes them on update_tuned_intervals
        put(os.path.join(f.kdamond(), "contexts/0/monitoring_attrs/intervals/sample_us"), 20000)
        put(os.path.join(f.kdamond(), "contexts/0/monitoring_attrs/intervals/aggr_us"), 400000)
        second = mon.step()
        assert (second.sample_us, second.aggr_us) == (20000, 400000)
        assert second.end_ns - second.start_ns <= 400_000_000
        tuned = mon.attrs_in_effect()
        assert (tuned.sample_us, tuned.aggr_us) == (20000, 400000)
        assert mon.cpu_seconds() > 0  # this process's and the kdamond's
        # new attributes without a goal: the kernel's tuning is turned off
        mon.set_attrs(damonx.Attrs(sample_us=10000, aggr_us=200000))
        assert f.read(f"{ctx}/intervals_goal/aggrs") == "0"
        assert f.writes[-1] == ("0/state", "commit")


def test_new_attributes_are_committed_to_the_running_kdamond(fake):
    f = fake("6.12")
    with monitor(f) as mon:
        pattern = damonx.AccessPattern(access_rate=(0, 0), age_us=(1_000_000, 2_000_000))
        mon.add_scheme(damonx.Scheme("pageout", pattern))
        mon.step()
        sdir = "0/contexts/0/schemes/1/access_pattern/age"
        assert (f.read(f"{sdir}/min"), f.read(f"{sdir}/max")) == ("10", "20")  # 100 ms aggregations
        del f.writes[:]
        mon.set_attrs(damonx.Attrs(sample_us=10000, aggr_us=200000, max_nr_regions=500))
        ctx = "0/contexts/0/monitoring_attrs"
        assert f.read(f"{ctx}/intervals/sample_us") == "10000"
        assert f.read(f"{ctx}/intervals/aggr_us") == "200000"
        assert f.read(f"{ctx}/nr_regions/max") == "500"
        # the scheme's ages, in aggregations, follow the new aggregation interval
        assert (f.read(f"{sdir}/min"), f.read(f"{sdir}/max")) == ("5", "10")
        assert f.writes[-1] == ("0/state", "commit")
        assert mon.step().sample_us == 10000
        assert mon.attrs_in_effect().max_nr_regions == 500
        # what the kernel cannot take is refused before anything is written
        del f.writes[:]
        with pytest.raises(damonx.NotSupported, match="CPU budget"):
            mon.set_attrs(damonx.Attrs(cpu_budget=2))
        with pytest.raises(damonx.NotSupported, match="Linux 6.15"):
            mon.set_attrs(damonx.Attrs(intervals_goal=damonx.IntervalsGoal()))
        assert ("0/state", "commit") not in f.writes


def test_a_kernel_without_intervals_tuning_is_refused(fake):
    f = fake("6.12")
    mon = monitor(f, attrs=damonx.Attrs(intervals_goal=damonx.IntervalsGoal()))
    with mon, pytest.raises(damonx.NotSupported, match="Linux 6.15"):
        mon.step()
    assert f.read("nr_kdamonds") == "0"


# -- schemes -------------------------------------------------------------------
def test_plain_schemes_follow_the_stat_schemes_and_report_the_kernels_stats(fake):
    f = fake()
    f.tried[0] = [(0x1000, 0x2000, 0, 9)]
    f.stats[1] = dict(nr_tried=3, sz_tried=12288, nr_applied=2, sz_applied=8192, qt_exceeds=1)
    with monitor(f) as mon:
        mon.add_scheme("pageout", sz=(4096, 1 << 30), nr_accesses=(0, 0), age=(5, 100))
        snap = mon.step()
        sdir = "0/contexts/0/schemes/1"
        assert f.read("0/contexts/0/schemes/nr_schemes") == "2"
        assert f.read(f"{sdir}/action") == "pageout"
        pattern = [
            f.read(f"{sdir}/access_pattern/{sub}/{end}")
            for sub in ("sz", "nr_accesses", "age")
            for end in ("min", "max")
        ]
        assert pattern == ["4096", str(1 << 30), "0", "0", "5", "100"]
        # with the effective size quota the kernel was asked to update
        stats = dict(f.stats[1], esz=int(f.read(f"{sdir}/quotas/effective_bytes")))
        assert snap.scheme_stats == [stats]
        assert mon.scheme_stats() == [dict(action="pageout", **stats)]
        with pytest.raises(damonx.InvalidAttrs, match="once the kernel's DAMON runs"):
            mon.add_scheme("stat")


def test_a_damonx_scheme_is_written_whole_and_its_goal_value_committed(fake, monkeypatch):
    """Quotas, a user_input goal and a filter reach the kernel's files
    (damonx.kernel_schemes); set_goal_value writes the goal's current value
    and commits it; the tried regions are the scheme's."""
    from damonx.schemes import AccessPattern, Filter, QuotaGoal, Quotas, Scheme

    f = fake("6.15")
    f.tried[1] = [(0x1000, 0x5000, 0, 3)]
    commands, store = [], f._store_state
    monkeypatch.setattr(f, "_store_state", lambda kd, cmd: commands.append(cmd) or store(kd, cmd))
    scheme = Scheme(
        "pageout",
        AccessPattern(access_rate=(0, 0)),
        Quotas(
            time_ms=10,
            sz_bytes=1 << 20,
            reset_interval_ms=500,
            goals=(QuotaGoal(target_value=100),),
        ),
        filters=(Filter("addr", addr=(0x1000, 0x3000)),),
    )
    with monitor(f) as mon:
        mon.add_scheme(scheme)
        mon.step()
        sdir = "0/contexts/0/schemes/1"
        assert f.read(f"{sdir}/quotas/ms") == "10"
        assert f.read(f"{sdir}/quotas/bytes") == str(1 << 20)
        assert f.read(f"{sdir}/quotas/reset_interval_ms") == "500"
        assert f.read(f"{sdir}/quotas/goals/0/target_value") == "100"
        assert f.read(f"{sdir}/core_filters/0/type") == "addr"
        mon.set_goal_value(0, 0, 42)
        assert f.read(f"{sdir}/quotas/goals/0/current_value") == "42"
        assert commands[-1] == "commit_schemes_quota_goals"
        tried = mon.tried_regions(0)
        assert [(r["start"], r["end"]) for r in tried] == [(0x1000, 0x5000)]


@pytest.mark.parametrize(
    "release, ops, action, ok",
    [
        ("6.12", "vaddr", "collapse", False),  # 7.x's
        ("7.3", "vaddr", "collapse", True),
        ("6.12", "paddr", "willneed", False),  # paddr does not apply it
        ("6.12", "paddr", "migrate_cold", True),
        ("6.6", "paddr", "migrate_cold", False),  # 6.11's
        ("6.12", "vaddr", "migrate_hot", False),  # vaddr applies it only since 6.17
    ],
)
def test_actions_the_kernel_or_the_ops_cannot_apply_are_refused(fake, release, ops, action, ok):
    f = fake(release)
    targets = [(0x100000, 0x200000)] if ops == "paddr" else [PID]
    # the migrate actions need their target node
    scheme = damonx.Scheme(action, target_nid=0) if action.startswith("migrate") else action
    with monitor(f, targets, ops=ops) as mon:
        if ok:
            mon.add_scheme(scheme)
        else:
            with pytest.raises(damonx.InvalidAttrs, match=f"cannot apply action '{action}'"):
                mon.add_scheme(scheme)


def test_paddr_and_fvaddr_targets(fake):
    f = fake()
    ranges = [(0x100000, 0x200000), (0x400000, 0x800000)]
    with monitor(f, ranges, ops="paddr") as mon:
        mon.step()
        t = "0/contexts/0/targets/0"
        assert f.read(f"{t}/regions/nr_regions") == "2"
        assert f.read(f"{t}/regions/1/start") == str(0x400000)
        assert f.read("0/contexts/0/operations") == "paddr"
    with damonx.Monitor(
        "fvaddr",
        {PID: [(0x1000, 0x9000)]},
        procfs=f.procfs,
        sysfs=f.sysfs,
        backend="kernel",
    ) as mon:
        mon.step()
        assert f.read("0/contexts/0/targets/0/regions/0/end") == str(0x9000)


# -- every way out removes the kdamond ------------------------------------------
def test_a_stop_request_ends_the_loop(fake):
    f = fake()
    with monitor(f) as mon:
        mon.add_callback(lambda snap: True)
        assert len(mon.take(5)) == 1
        assert f.read("0/state") == "on"  # until closed
    assert f.read("nr_kdamonds") == "0"


def test_an_exception_in_the_loop_removes_the_kdamond(fake):
    f = fake()
    with pytest.raises(ZeroDivisionError), monitor(f) as mon:
        mon.add_callback(lambda snap: 1 / 0)
        mon.step()
    assert f.read("nr_kdamonds") == "0" and claim() is None


def test_a_forgotten_monitor_removes_its_kdamond_when_collected(fake):
    f = fake()
    mon = monitor(f)
    mon.step()
    assert f.read("0/state") == "on"
    del mon
    gc.collect()
    assert f.read("nr_kdamonds") == "0" and claim() is None


def killed(f):
    """A monitor whose process 'dies': its kdamond keeps running, its lock
    is released as the kernel releases a dead process's locks."""
    mon = monitor(f)
    mon.step()
    be = mon._backend
    be._finalizer.detach()
    be._lock.release()
    return mon


def test_a_kdamond_left_by_a_killed_damonx_is_recognised_and_removed(fake):
    f = fake()
    killed(f)
    first = claim()
    assert f.read("0/state") == "on"
    with pytest.warns(kernel_backend.LeftOverKdamondWarning, match="kdamond 0, left running"):
        mon = monitor(f)
    with mon:
        assert f.read("nr_kdamonds") == "0"  # removed, not one more added
        mon.step()
        assert claim().cookie != first.cookie
    assert f.read("nr_kdamonds") == "0"


def test_a_kdamond_that_does_not_match_its_claim_is_not_touched(fake):
    f = fake()
    killed(f)
    # someone reconfigured it since (or it is not the one the claim meant)
    put(os.path.join(f.kdamond(), "contexts/0/schemes/0/quotas/reset_interval_ms"), 1000)
    with pytest.raises(damonx.NotSupported, match="not provably damonx's") as err:
        monitor(f)
    assert "reset_interval_ms reads '1000'" in str(err.value)
    assert f.read("0/state") == "on"


def test_a_claim_of_an_earlier_boot_proves_nothing(fake):
    f = fake()
    killed(f)
    put(os.path.join(f.procfs, "sys/kernel/random/boot_id"), "another boot")
    with pytest.raises(damonx.NotSupported, match="claim is of an earlier boot"):
        monitor(f)


def test_a_live_damonx_keeps_its_kdamond(fake):
    f = fake()
    with monitor(f) as first:
        first.step()
        with pytest.raises(
            damonx.NotSupported,
            match=f"kdamond 0 runs \\(started by damonx \\(pid {os.getpid()}\\), which still runs",
        ):
            monitor(f)
        assert f.read("0/state") == "on"
        # features, reading only, says who runs it
        st = kernel_backend.kernel_sysfs.status(f.sysfs, f.procfs)
        assert f"started by damonx (pid {os.getpid()}), which still runs" in st.detail


def test_a_busy_kernel_names_the_kdamond_threads_outside_sysfs(fake, monkeypatch):
    f = fake()
    put(os.path.join(f.procfs, "555/comm"), "kdamond.0")  # DAMON_RECLAIM's, say
    store = f.store

    def busy_on(path, value):
        if path.endswith("state") and value.strip() == "on":
            raise OSError(16, os.strerror(16))
        store(path, value)

    monkeypatch.setattr(f, "store", busy_on)
    monkeypatch.setattr("damonx.kernel_damon._EBUSY_RETRY_S", 0.1)
    with monitor(f) as mon, pytest.raises(damonx.DamonxError, match="kdamond.0 \\(pid 555\\)"):
        mon.step()
    assert f.read("nr_kdamonds") == "0" and claim() is None


def test_the_claim_file_is_json_in_the_run_directory(fake):
    f = fake()
    with monitor(f) as mon:
        mon.step()
        path = os.path.join(os.environ["DAMONX_RUNDIR"], "kernel-kdamond.json")
        with open(path) as fp:
            data = json.load(fp)
        assert data["sysfs"] == f.sysfs and data["ops"] == "vaddr"
        assert data["boot_id"] == get(os.path.join(f.procfs, "sys/kernel/random/boot_id"))


def test_nr_accesses_bp_saturates():
    arr = np.array([(0, 4096, 10**6, 0)], dtype=damonx.REGION_DTYPE)
    assert kernel_backend._monitor_regions(arr)["nr_accesses_bp"].tolist() == [U32_MAX]


def test_the_kernel_backend_has_every_method_of_the_protocol():
    from damonx import backend

    members = [name for name in vars(backend.Backend) if not name.startswith("_")]
    missing = [name for name in members if not hasattr(kernel_backend.KernelBackend, name)]
    assert not missing


def test_one_damonx_at_a_time_drives_the_kernels_damon(fake):
    f = fake()
    # the first is open, its kdamond not started yet
    with monitor(f), pytest.raises(damonx.NotSupported, match="another damonx drives it"):
        monitor(f)
    with monitor(f) as mon:  # the lock went with the first one
        mon.step()
