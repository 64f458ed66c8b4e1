"""Which backend "auto" takes, what `damonx features` says, and the kernel
backend from the command line: on fake trees shaped like the kernels of
common distributions (tests/fake_damon.py)."""

import os
import signal

import pytest

import damonx
from damonx import backend, features, records
from tests.cli_helpers import one_error_line, run
from tests.fake_damon import FakeDamon

PID = 4242


@pytest.fixture
def pfns(monkeypatch):
    """Pagemap PFNs readable (the check reads this process's own pagemap,
    which a fake procfs does not have)."""
    visible = features.Feature("pagemap_pfn", True, "PFNs visible (fake tree)")
    checks = tuple(
        (lambda p, s: visible) if c is features._pagemap_pfn else c for c in features.CHECKS
    )
    monkeypatch.setattr(features, "CHECKS", checks)


#: the rows of the table of README.md (kernels of early 2026): DAMON
#: release shaped after, idle page tracking
ROWS = {
    "ubuntu-24.04": (None, True),
    "debian-13": ("6.12", False),
    "opensuse-tumbleweed": ("6.18", False),
    "fedora-43": ("6.18", True),
    "debian-12": (None, False),
}


@pytest.fixture
def row(tmp_path, monkeypatch, pfns):
    def make(name):
        release, page_idle = ROWS[name]
        f = FakeDamon(tmp_path, release).install(monkeypatch).table_row(page_idle)
        f.add_process(PID)
        return f

    return make


@pytest.mark.parametrize(
    "name, chosen",
    [
        ("ubuntu-24.04", "page_idle"),
        ("debian-13", "kernel"),
        ("opensuse-tumbleweed", "kernel"),
        ("fedora-43", "page_idle"),
    ],
)
def test_auto_takes_what_works_on_each_row(row, name, chosen):
    f = row(name)
    assert backend.candidates("auto", "vaddr", f.procfs, f.sysfs)[0] == chosen
    if chosen == "kernel":
        f.tried[0] = [(0x1000, 0x2000, 3, 1)]
        with damonx.Monitor("vaddr", [PID], procfs=f.procfs, sysfs=f.sysfs) as mon:
            assert mon.backend == "kernel"
            assert mon.step().targets[PID]["nr_accesses"].tolist() == [3]
        assert f.read("nr_kdamonds") == "0"
    # sim runs anywhere, on page_idle's compiled core
    assert backend.candidates("auto", "sim", f.procfs, f.sysfs) == ["page_idle"]


def test_auto_explains_why_neither_works(row):
    f = row("debian-12")
    with pytest.raises(damonx.NotSupported) as err:
        damonx.Monitor("vaddr", [PID], procfs=f.procfs, sysfs=f.sysfs)
    msg = str(err.value)
    assert msg.startswith("no backend can run ops 'vaddr' here (backend page_idle: ")
    assert "CONFIG_IDLE_PAGE_TRACKING" in msg
    assert "backend kernel: the kernel's DAMON: " in msg and "CONFIG_DAMON_SYSFS" in msg
    assert msg.endswith("`--ops sim` works anywhere.")


def test_auto_on_a_machine_whose_own_kdamond_runs(row):
    # this development machine: DAMON with a kdamond of its own, no page_idle
    f = row("opensuse-tumbleweed")
    f.start_foreign()
    with pytest.raises(damonx.NotSupported, match=r"kdamond 0 runs \(not started by damonx\)"):
        damonx.Monitor("vaddr", [PID], procfs=f.procfs, sysfs=f.sysfs)
    assert f.read("0/state") == "on"


def test_auto_opens_the_next_backend_when_one_fails_to_open(row, monkeypatch):
    # the kernel looks usable reading only, but its probe finds no
    # tried_regions (6.1): auto then says why, naming both
    f = row("debian-13")
    f.v = (6, 1)
    with pytest.raises(damonx.NotSupported, match="no backend can run ops 'vaddr' here") as err:
        damonx.Monitor("vaddr", [PID], procfs=f.procfs, sysfs=f.sysfs)
    assert "tried_regions, added in Linux 6.2" in str(err.value)


# -- damonx features -----------------------------------------------------------
def backend_lines(out):
    lines = out.splitlines()
    return {
        ln.split()[1]: (ln, lines[i + 1]) for i, ln in enumerate(lines) if ln.startswith("backend ")
    }


@pytest.mark.parametrize(
    "name, page_idle, kernel",
    [
        ("ubuntu-24.04", "usable", "unusable: /"),
        ("debian-13", "unusable: page_idle:", "usable"),
        ("fedora-43", "usable", "usable"),
        ("debian-12", "unusable: page_idle:", "unusable: /"),
    ],
)
def test_features_reports_each_backend(row, capsys, name, page_idle, kernel):
    f = row(name)
    status, out, _ = run(capsys, "features", "--procfs", f.procfs, "--sysfs", f.sysfs)
    assert status == 0
    lines = backend_lines(out)
    assert sorted(lines) == ["kernel", "page_idle", "sim"]
    assert lines["page_idle"][0].split(None, 2)[2].startswith(page_idle)
    assert lines["kernel"][0].split(None, 2)[2].startswith(kernel)
    assert lines["sim"][0].split(None, 2)[2] == "usable"
    assert f.writes == []  # reading only


def test_features_probe_reads_the_kernels_layout_and_removes_it(row, capsys):
    f = row("debian-13")
    status, out, _ = run(capsys, "features", "--procfs", f.procfs, "--sysfs", f.sysfs)
    assert "no kdamond directory to read the layout from" in backend_lines(out)["kernel"][1]
    status, out, _ = run(capsys, "features", "--probe", "--procfs", f.procfs, "--sysfs", f.sysfs)
    offers = backend_lines(out)["kernel"][1]
    assert "ops vaddr fvaddr paddr; actions willneed" in offers
    assert "has schemes (5.18)" in offers and "lacks allow_filters (6.14)" in offers
    assert f.read("nr_kdamonds") == "0"
    assert f.writes  # it wrote, then removed everything


def test_features_json_has_the_backends(row, capsys):
    import json

    f = row("opensuse-tumbleweed")
    _, out, _ = run(capsys, "features", "--json", "--procfs", f.procfs, "--sysfs", f.sysfs)
    got = json.loads(out)["backends"]
    assert got["kernel"]["usable"] is True and got["page_idle"]["usable"] is False
    assert "CONFIG_IDLE_PAGE_TRACKING" in got["page_idle"]["why_not"]


# -- the command line -------------------------------------------------------------
def record_argv(f, out, *extra):
    return [
        "record",
        "--backend",
        "kernel",
        "--procfs",
        f.procfs,
        "--sysfs",
        f.sysfs,
        "-o",
        out,
        "--quiet",
        *extra,
    ]


def test_record_with_the_kernel_backend(row, capsys, tmp_path):
    f = row("debian-13")
    f.tried[0] = [(0x1000, 0x3000, 4, 2)]
    f.serve_s = 0.02
    out = tmp_path / "k.data"
    status, _, err = run(capsys, *record_argv(f, out, "--timeout", "0.3", PID))
    assert status == 0, err
    rec = records.load(out)
    assert rec.meta["backend"] == "kernel" and rec.meta["pids"] == [PID]
    assert 5 <= rec.nr_snapshots <= 20
    assert rec.targets[0].snapshots[-1].regions.tolist() == [(0x1000, 0x3000, 4, 2)]
    assert f.read("nr_kdamonds") == "0"


def test_sigterm_while_recording_removes_the_kdamond(row, capsys, tmp_path, monkeypatch):
    f = row("debian-13")
    f.tried[0] = [(0x1000, 0x3000, 4, 2)]
    store = f.store
    nr = []

    def term_on_the_third(path, value):
        store(path, value)
        if value.strip() == "update_schemes_tried_regions":
            nr.append(1)
            if len(nr) == 3:
                os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(f, "store", term_on_the_third)
    out = tmp_path / "t.data"
    status, _, err = run(capsys, *record_argv(f, out, PID)[:-1], PID)
    assert status == 0, err
    assert records.load(out).nr_snapshots == 3
    assert f.read("nr_kdamonds") == "0"


def test_a_kernel_backend_that_cannot_run_starts_no_command(row, capsys, tmp_path):
    f = row("debian-12")
    started = tmp_path / "started"
    status, _, err = run(
        capsys, *record_argv(f, tmp_path / "c.data"), "--", "sh", "-c", f"touch {started}"
    )
    assert status == 1
    assert "lacks the DAMON sysfs interface" in one_error_line(err, "record")
    assert not started.exists()


def test_backend_is_an_option_of_every_monitoring_command(capsys):
    status, _, err = run(capsys, "record", "--backend", "kdamond", "1")
    assert status == 2 and "invalid choice: 'kdamond'" in err
