"""tools/vmtest/run, tested from the host: it boots the test VM.

Skipped unless DAMONX_VMTEST=1, since the first run builds a kernel and each
later one boots a VM (a few seconds under TCG).
"""

import os
import subprocess

import pytest

RUN = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                   "tools", "vmtest", "run")

pytestmark = [
    pytest.mark.vmtool,
    pytest.mark.skipif(os.environ.get("DAMONX_VMTEST") != "1",
                       reason="boots a VM; set DAMONX_VMTEST=1 to run"),
]


def vmrun(*cmd, env=None):
    return subprocess.run([RUN, "--", *cmd], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def test_exit_status_and_output_come_back():
    res = vmrun("sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 7")
    assert res.returncode == 7, res.stderr
    assert res.stdout.splitlines() == ["to-stdout", "to-stderr"]


def test_guest_kernel_environment_and_cwd(tmp_path):
    script = ("uname -r; pwd; echo \"$DAMONX_TEST_VALUE\"; "
              "test -e /sys/kernel/mm/page_idle/bitmap && echo page_idle; "
              "test -d /sys/kernel/mm/damon/admin && echo damon; "
              "test -e /sys/block/zram0 && echo zram; "
              "echo written > \"$PWD/from-guest\"; cat \"$PWD/from-guest\"")
    res = subprocess.run(
        [RUN, "--", "bash", "-c", script], capture_output=True, text=True, timeout=600,
        cwd=tmp_path, env={**os.environ, "DAMONX_VM_ENV": "DAMONX_TEST_VALUE",
                           "DAMONX_TEST_VALUE": "a 'quoted' value"})
    assert res.returncode == 0, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].endswith("-damonvm")
    assert lines[1:] == [str(tmp_path), "a 'quoted' value", "page_idle", "damon", "zram",
                         "written"]
    # the guest writes to a throw-away overlay, never to the host
    assert not (tmp_path / "from-guest").exists()


def test_bad_knob_is_refused_without_booting():
    res = vmrun("true", env={"DAMONX_VM_CPUS": "two"})
    assert res.returncode == 125
    assert "DAMONX_VM_CPUS" in res.stderr
