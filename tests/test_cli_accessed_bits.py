"""Other users of the accessed bits (the kernel's DAMON, another process
with the idle page bitmap open) are found on fake trees, and a monitor of
real memory warns about them; the command line shows it on one line."""

import os
import subprocess
import warnings

import pytest

import damonx
from damonx import features
from tests.cli_helpers import run
from tests.test_vaddr_paddr import make_tree, needs_root_pfns


def add_users(procfs, sysfs, *, kdamond_on=True, holder=True):
    """Put a kdamond (on or off) in sysfs, a kdamond thread, a process holding
    the idle bitmap, one holding other files and this process (which holds
    the bitmap too, and is never counted) in procfs."""
    admin = os.path.join(sysfs, "kernel/mm/damon/admin/kdamonds")
    for n, state in (("0", "on" if kdamond_on else "off"), ("1", "off")):
        os.makedirs(os.path.join(admin, n))
        with open(os.path.join(admin, n, "state"), "w") as f:
            f.write(state + "\n")
    with open(os.path.join(admin, "nr_kdamonds"), "w") as f:
        f.write("2\n")
    procs = {
        "76": ("kdamond.0", {}),
        "4242": ("damo", {"3": "/sys/kernel/mm/page_idle/bitmap"} if holder else {}),
        "4343": ("bash", {"0": "/dev/pts/0", "1": "pipe:[123]"}),
        str(os.getpid()): ("python3", {"5": "/sys/kernel/mm/page_idle/bitmap"}),
    }
    for pid, (comm, fds) in procs.items():
        d = os.path.join(procfs, pid)
        os.makedirs(os.path.join(d, "fd"), exist_ok=True)
        with open(os.path.join(d, "comm"), "w") as f:
            f.write(comm + "\n")
        for fd, target in fds.items():
            os.symlink(target, os.path.join(d, "fd", fd))
    # a process that exited while being read: no comm, no fd
    os.makedirs(os.path.join(procfs, "9999"))


def test_other_users_are_found_on_a_fake_tree(tmp_path):
    procfs, sysfs = str(tmp_path / "proc"), str(tmp_path / "sys")
    add_users(procfs, sysfs)
    users = features.accessed_bit_users(procfs, sysfs)
    assert users == [
        f"the kernel's DAMON runs (kdamond 0 is on in {sysfs}/kernel/mm/damon/admin/kdamonds)",
        "kdamond threads of the kernel's DAMON run: kdamond.0 (pid 76)",
        "the idle page bitmap is open in damo (pid 4242)",
    ]


def test_nobody_else_is_nothing_to_report(tmp_path):
    procfs, sysfs = str(tmp_path / "proc"), str(tmp_path / "sys")
    assert features.accessed_bit_users(procfs, sysfs) == []  # no trees at all
    add_users(procfs, sysfs, kdamond_on=False, holder=False)
    os.unlink(os.path.join(procfs, "76", "comm"))
    assert features.accessed_bit_users(procfs, sysfs) == []


def test_the_host_is_read_not_written():
    """On this machine: a kdamond whose sysfs state is on is reported, and
    reading changes nothing there."""
    admin = "/sys/kernel/mm/damon/admin/kdamonds"

    def states():
        if not os.path.isdir(admin):
            return {}
        return {
            n: features._read_text(os.path.join(admin, n, "state"))
            for n in os.listdir(admin)
            if n.isdigit()
        }

    before = states()
    users = features.accessed_bit_users()
    if "on" in before.values():
        assert any("the kernel's DAMON runs" in u for u in users)
    assert states() == before


@needs_root_pfns
def test_a_monitor_of_real_memory_warns_and_the_cli_shows_one_line(tmp_path, capsys):
    child = subprocess.Popen(["sleep", "600"])
    try:
        procfs, sysfs = make_tree(tmp_path, child.pid)
        add_users(procfs, sysfs)
        with pytest.warns(features.SharedAccessBitsWarning) as caught:
            damonx.Monitor("vaddr", [child.pid], procfs=procfs, sysfs=sysfs).close()
        [w] = caught
        assert w.filename == __file__  # told at the caller's Monitor()
        assert "kdamond.0 (pid 76)" in str(w.message) and "damo (pid 4242)" in str(w.message)
        # simulated monitoring shares nothing: no warning
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            damonx.Monitor("sim", damonx.Workload.hot_cold(1 << 24, 1 << 20, 1 << 22)).close()

        out = tmp_path / "rec.data"
        status, _, err = run(
            capsys, "record", "--procfs", procfs, "--sysfs", sysfs, "--timeout", "0.3",
            "--quiet", "-o", out, child.pid,
        )  # fmt: skip
        assert status == 0, err
        [line] = err.splitlines()
        assert line.startswith("damonx record: warning: other users of the accessed bits")
        assert "damo (pid 4242)" in line
    finally:
        child.kill()
        child.wait()
