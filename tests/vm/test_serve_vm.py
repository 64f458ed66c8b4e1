"""damonx serve on real processes and physical memory, inside the VM."""

import os
import subprocess
import sys
import time

import pytest

from tests.vm.helpers import needs_page_idle, workload

pytest.importorskip("prometheus_client")
from tests.test_serve import DAMONX, Served, by_name, scrape

pytestmark = [pytest.mark.vm, needs_page_idle]

MIB = 1 << 20


def test_serve_a_process_labelled_by_pid_and_comm():
    with workload(256, 32) as w, Served(w.pid) as served:
        with open(f"/proc/{w.pid}/comm") as f:
            labels = (("comm", f.read().strip()), ("pid", str(w.pid)), ("target", str(w.pid)))
        deadline = time.monotonic() + 60
        while True:
            samples = scrape(served.url)
            wss = by_name(samples, "damonx_wss_bytes").get(labels)
            # the 32 MiB hot part, within what sampling and the other
            # mappings of a Python process add
            if wss is not None and 16 * MIB <= wss <= 96 * MIB:
                break
            assert time.monotonic() < deadline, by_name(samples, "damonx_wss_bytes")
            time.sleep(1)
        assert by_name(samples, "damonx_monitored_bytes")[labels] >= 256 * MIB
        assert by_name(samples, "damonx_estimated_memory_bandwidth_bytes")[labels] > 0
        idle = by_name(samples, "damonx_memory_idle_seconds")
        assert len([k for k in idle if dict(k)["pid"] == str(w.pid)]) == 8
        status, err = served.stop()
    assert status == 0, err


def test_serve_a_command_ends_with_it():
    code = "import time; b = bytearray(16 << 20); time.sleep(4)"
    proc = subprocess.run(
        [DAMONX, "serve", "--port", "0", "--", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "stopped (no target left)" in proc.stderr


def test_serve_physical_memory():
    if os.geteuid() != 0:
        pytest.skip("paddr needs root")
    with Served("--ops", "paddr") as served:
        deadline = time.monotonic() + 60
        while not by_name(scrape(served.url), "damonx_monitored_bytes"):
            assert time.monotonic() < deadline
            time.sleep(1)
        monitored = by_name(scrape(served.url), "damonx_monitored_bytes")
        assert list(monitored.values())[0] > 64 * MIB
        status, err = served.stop()
    assert status == 0, err
