"""The plug point of backends: a Python object registered in
damonx.backend.BACKENDS drives Monitor like the compiled core does."""

import errno
import os
import subprocess
import sys

import numpy as np
import pytest

import damonx
from damonx import backend
from damonx.dtypes import REGION_DTYPE
from tests.processes import exited_pid, zombie

GIB = 1 << 30


class FakeBackend:
    """A backend in pure Python: each target is one region whose
    nr_accesses counts the aggregations; errno values can be injected."""

    def __init__(self, ops, attrs, seed, procfs, sysfs, real_time=False):
        self.opened = (ops, attrs, seed, procfs, sysfs)
        self.attrs = attrs
        self.aggr_ns = attrs.aggr_us * 1000
        self.regions = {}
        self.schemes = []
        self.nr_aggregations = 0
        self.stop_requested = False
        self.fail = {}  # method name -> errno value

    def _maybe_fail(self, name):
        if name in self.fail:
            raise OSError(self.fail[name], os.strerror(self.fail[name]))

    def add_sim_target(self, target_id, size, page_size, phases):
        self._maybe_fail("add_sim_target")
        self.regions[target_id] = (0, size)

    def add_pid_target(self, pid, ranges=None):
        self._maybe_fail("add_pid_target")
        self.regions[pid] = (ranges[0][0], ranges[-1][1]) if ranges else (0x1000, 0x9000)

    def add_range_target(self, target_id, ranges):
        self.regions[target_id] = (ranges[0][0], ranges[-1][1])

    def add_scheme(self, scheme):
        if scheme.action != "stat":
            raise ValueError(f"unknown action {scheme.action!r}; one of ['stat']")
        self.schemes.append(scheme)

    def scheme_stats(self):
        return [
            dict(
                nr_tried=self.nr_aggregations * len(self.regions),
                sz_tried=0,
                nr_applied=0,
                sz_applied=0,
            )
            for _ in self.schemes
        ]

    def run_aggregation(self):
        self._maybe_fail("run_aggregation")
        if self.stop_requested:
            self.stop_requested = False
            return False
        self.nr_aggregations += 1
        return True

    def snapshot(self):
        n = self.nr_aggregations
        return (
            (n - 1) * self.aggr_ns,
            n * self.aggr_ns,
            [
                (tid, np.array([(s, e, n, 0)], dtype=REGION_DTYPE))
                for tid, (s, e) in self.regions.items()
            ],
        )

    def snapshot_span(self):
        return self.snapshot()[:2]

    def snapshot_nr_checks(self):
        return None

    def snapshot_intervals(self):
        return (self.attrs.sample_us, self.attrs.aggr_us)

    def set_attrs(self, attrs):
        self._maybe_fail("set_attrs")
        self.attrs = attrs

    def attrs_in_effect(self):
        return dict(sample_us=self.attrs.sample_us * 2, aggr_us=self.attrs.aggr_us * 2)

    @property
    def cpu_ns(self):
        return 1000 * self.nr_aggregations

    def request_stop(self):
        self.stop_requested = True

    @property
    def nr_regions(self):
        return len(self.regions)

    @property
    def live_targets(self):
        return list(self.regions)

    def stats(self):
        # one check per region per aggregation (a sample per aggregation)
        return dict(
            nr_samples=self.nr_aggregations,
            nr_region_checks=self.nr_aggregations * len(self.regions),
            nr_aggregations=self.nr_aggregations,
            nr_updates=0,
            nr_targets_lost=0,
        )

    def access_check_stats(self):
        return dict(nr_fake_checks=self.nr_aggregations)


@pytest.fixture
def fake(monkeypatch):
    """Register FakeBackend as "fake"; the list of the backends it opened."""
    opened = []

    def open_fake(*args):
        opened.append(FakeBackend(*args))
        return opened[-1]

    spec = backend.BackendSpec(("sim", "vaddr", "fvaddr", "paddr"), open_fake)
    monkeypatch.setitem(backend.BACKENDS, "fake", spec)
    return opened


def test_a_registered_backend_drives_the_monitor(fake):
    attrs = damonx.Attrs(sample_us=1000, aggr_us=20_000)
    seen = []
    with damonx.Monitor(
        "fvaddr",
        {7: [(0x2000, 0x3000)], 9: [(0x10000, 0x20000)]},
        attrs,
        seed=5,
        procfs="/p",
        sysfs="/s",
        backend="fake",
    ) as mon:
        (be,) = fake
        assert be.opened == ("fvaddr", attrs, 5, "/p", "/s")
        assert be.regions == {7: (0x2000, 0x3000), 9: (0x10000, 0x20000)}
        snaps = mon.take(3)
        assert [(s.start_ns, s.end_ns) for s in snaps] == [(0, 20e6), (20e6, 40e6), (40e6, 60e6)]
        assert snaps[-1].targets[9].tolist() == [(0x10000, 0x20000, 3, 0)]
        assert snaps[-1].nr_regions == 2
        # each snapshot carries its intervals and the checks of its aggregation
        assert [(s.sample_us, s.aggr_us, s.nr_checks) for s in snaps] == [(1000, 20_000, 2)] * 3
        assert [s.cpu_ns for s in snaps] == [1000, 2000, 3000]
        assert snaps[-1].scheme_stats is None
        # attributes changed while monitoring, and those in effect
        mon.set_attrs(damonx.Attrs(sample_us=2000, aggr_us=40_000))
        assert be.attrs.sample_us == 2000 and mon.attrs.sample_us == 2000
        assert mon.step().sample_us == 2000
        assert (mon.attrs_in_effect().sample_us, mon.attrs_in_effect().aggr_us) == (4000, 80_000)
        assert mon.cpu_seconds() == 4e-6
        be.fail["set_attrs"] = errno.EINVAL
        with pytest.raises(damonx.InvalidAttrs, match="cannot change the monitoring attributes"):
            mon.set_attrs(attrs)
        assert mon.attrs.sample_us == 2000
        del be.fail["set_attrs"]
        mon.set_attrs(attrs)
        mon.add_scheme("stat", nr_accesses=(1, 5))
        assert [(s.action, s.pattern.nr_accesses, s.pattern.age) for s in be.schemes] == [
            ("stat", (1, 5), (0, 2**32 - 1))
        ]
        mon.add_callback(lambda snap: seen.append(snap.end_ns) or len(seen) == 2)
        assert mon.run() == 2 and be.nr_aggregations == 6
        assert mon.scheme_stats() == [
            dict(action="stat", nr_tried=12, sz_tried=0, nr_applied=0, sz_applied=0)
        ]
        assert mon.stats()["nr_aggregations"] == 6 and mon.stats()["nr_region_checks"] == 12
        # snapshots carry the counters (no action name)
        assert seen and mon.step().scheme_stats == [
            {k: v for k, v in st.items() if k != "action"} for st in mon.scheme_stats()
        ]
        assert mon.access_check_stats() == dict(nr_fake_checks=7)
        assert mon.nr_regions == 2 and mon.live_targets == [7, 9]
        mon.stop()
        assert mon.step() is None
    with pytest.raises(damonx.DamonxError, match="the monitor is closed"):
        mon.step()


def test_the_plug_point_needs_no_compiled_code():
    """In a fresh interpreter, a Python backend runs a Monitor without the
    compiled core ever being imported."""
    code = f"""
import sys
sys.path.insert(0, {os.path.dirname(os.path.dirname(os.path.abspath(__file__)))!r})
import damonx
from damonx import backend
from tests.test_backend import FakeBackend
backend.BACKENDS["fake"] = backend.BackendSpec(("sim",), FakeBackend)
wl = damonx.Workload.hot_cold(1 << 30, 0, 1 << 20)
with damonx.Monitor("sim", [wl, wl], backend="fake") as mon:
    snaps = mon.take(4)
assert [sorted(s.targets) for s in snaps] == [[0, 1]] * 4, snaps
assert "damonx._core" not in sys.modules, "the compiled core was imported"
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ok\n"


def test_auto_takes_the_first_backend_that_runs_the_ops(monkeypatch):
    assert backend.choose("auto", "sim") == "page_idle"
    assert backend.choose("auto", "paddr") == "page_idle"
    spec = backend.BackendSpec(("vaddr",), FakeBackend)
    monkeypatch.setattr(backend, "BACKENDS", {"fake": spec})
    with damonx.Monitor("vaddr", 42) as mon:
        assert mon.take(1)[0].targets[42].tolist() == [(0x1000, 0x9000, 1, 0)]
    with pytest.raises(damonx.NotSupported, match="no backend runs ops 'sim'"):
        damonx.Monitor("sim", damonx.Workload.hot_cold(GIB, 0, 4096))
    with pytest.raises(
        damonx.InvalidAttrs, match="backend 'fake' does not run ops 'paddr'; it runs vaddr"
    ):
        damonx.Monitor("paddr", [(0, GIB)], backend="fake")
    with pytest.raises(damonx.InvalidAttrs, match="unknown ops 'xaddr'"):
        damonx.Monitor("xaddr", 42)


@pytest.mark.parametrize(
    "method, code, cls, words",
    [
        ("run_aggregation", errno.EIO, damonx.DamonxError, "monitoring failed: Input/output error"),
        (
            "run_aggregation",
            errno.EACCES,
            damonx.AccessDenied,
            "monitoring failed: Permission denied; run as root",
        ),
        (
            "run_aggregation",
            errno.ENOENT,
            damonx.NotSupported,
            "monitoring failed: No such file or directory; run `damonx features`",
        ),
    ],
)
def test_backend_errors_take_the_one_error_path(fake, method, code, cls, words):
    with damonx.Monitor("vaddr", [os.getpid()], backend="fake") as mon:
        fake[0].fail[method] = code
        with pytest.raises(cls, match=f"^{words}") as err:
            mon.step()
        assert type(err.value) is cls and err.value.__cause__.errno == code
        with pytest.raises(damonx.InvalidAttrs, match="invalid scheme: unknown action 'cold'"):
            mon.add_scheme("cold")


def test_set_up_errors_name_the_target(fake, monkeypatch):
    def failing(code):
        def open_failing(*args):
            be = FakeBackend(*args)
            be.fail["add_pid_target"] = code
            return be

        return backend.BackendSpec(("vaddr",), open_failing)

    monkeypatch.setitem(backend.BACKENDS, "esrch", failing(errno.ESRCH))
    with zombie() as pid:
        words = f"cannot monitor process {pid}: process {pid} is a zombie"
        with pytest.raises(damonx.ZombieProcess, match=words):
            damonx.Monitor("vaddr", [pid], backend="esrch")
    pid = exited_pid()
    with pytest.raises(damonx.NoSuchProcess, match=f"cannot monitor process {pid}: ") as err:
        damonx.Monitor("vaddr", [pid], backend="esrch")
    assert type(err.value) is damonx.NoSuchProcess
    monkeypatch.setitem(backend.BACKENDS, "eperm", failing(errno.EPERM))
    with pytest.raises(
        damonx.AccessDenied,
        match=f"cannot monitor process {os.getpid()}: Operation not permitted; run as root",
    ):
        damonx.Monitor("vaddr", [os.getpid()], backend="eperm")

    def open_missing(*args):
        raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/s/bitmap")

    monkeypatch.setitem(backend.BACKENDS, "missing", backend.BackendSpec(("sim",), open_missing))
    with pytest.raises(
        damonx.NotSupported,
        match=r"^cannot set up the monitor: No such file or "
        r"directory \(/s/bitmap\); run `damonx features`",
    ):
        damonx.Monitor("sim", damonx.Workload.hot_cold(GIB, 0, 4096), backend="missing")


def test_the_compiled_context_has_every_method_of_the_protocol(tmp_path):
    members = [name for name in vars(backend.Backend) if not name.startswith("_")]
    assert {"run_aggregation", "snapshot", "access_check_stats", "nr_regions"} <= set(members)
    # the files the real access checks open, as empty files
    (tmp_path / "kernel/mm/page_idle").mkdir(parents=True)
    (tmp_path / "kernel/mm/page_idle/bitmap").write_bytes(b"")
    (tmp_path / "kpageflags").write_bytes(b"")
    for ops in ("sim", "paddr"):
        ctx = backend._open_core_context(ops, damonx.Attrs(), 0, str(tmp_path), str(tmp_path))
        missing = [name for name in members if not hasattr(ctx, name)]
        assert not missing, (ops, missing)


def test_targets_are_parsed_the_same_for_every_backend(tmp_path):
    parse = backend.parse_targets
    assert parse("vaddr", 42) == [backend.Target(42, pid=42)]
    assert parse("vaddr", (np.int64(7), 8)) == [backend.Target(7, pid=7), backend.Target(8, pid=8)]
    assert parse("fvaddr", {5: [(0x3000, 0x4000), (0x1000, 0x2000)]}) == [
        backend.Target(5, pid=5, ranges=((0x1000, 0x2000), (0x3000, 0x4000)))
    ]
    assert parse("paddr", [(0, GIB)]) == [backend.Target(0, ranges=((0, GIB),))]
    (tmp_path / "iomem").write_text("00001000-00001fff : System RAM\n")
    assert parse("paddr", None, str(tmp_path)) == [backend.Target(0, ranges=((0x1000, 0x2000),))]
    spec = {"size": GIB, "phases": [{"duration_us": 1}]}
    (sim,) = parse("sim", [spec])
    assert sim.id == 0 and sim.workload == damonx.Workload.from_dict(spec)
    assert [t.what for t in (sim, *parse("vaddr", 3), *parse("paddr", [(0, 4096)]))] == [
        "cannot simulate workload 0",
        "cannot monitor process 3",
        "cannot monitor physical memory",
    ]


@pytest.mark.parametrize(
    "ops, targets, words",
    [
        ("vaddr", [], "vaddr needs at least one pid"),
        ("vaddr", None, "a pid or a list of pids"),
        ("vaddr", [True], "positive PIDs"),
        ("vaddr", [0], "positive PIDs"),
        ("vaddr", [2**31], "positive PIDs"),
        ("vaddr", ["12"], "positive PIDs"),
        ("fvaddr", [12], r"fvaddr targets are \{pid"),
        ("fvaddr", {-1: [(0, 4096)]}, "positive PIDs"),
        ("fvaddr", {12: []}, "ranges of process 12: at least one range"),
        ("fvaddr", {12: [(1, 2, 3)]}, "ranges of process 12 must be .start, end. pairs"),
        ("paddr", [(0x2000, 0x1000)], r"\[0x2000, 0x1000\) is not a valid range"),
        ("paddr", [(0, 2**64)], "past 2.64"),
        ("paddr", [(0, 0x3000), (0x2000, 0x4000)], r"\[0x2000, 0x4000\) overlaps another range"),
        ("sim", [], "sim needs at least one workload"),
        ("sim", 3, "sim targets are Workloads, not int"),
    ],
)
def test_bad_targets_are_refused_clearly(ops, targets, words):
    with pytest.raises(damonx.InvalidAttrs, match=words):
        backend.parse_targets(ops, targets)
