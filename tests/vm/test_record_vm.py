"""damonx record on real processes, inside the VM."""

import signal
import subprocess
import sys
import time

import pytest

from damonx import records, reports
from tests.vm.helpers import hot_precision_recall, needs_page_idle, workload

pytestmark = [pytest.mark.vm, needs_page_idle]

DAMONX = [sys.executable, "-m", "damonx"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_recording_leaves_a_complete_file(tmp_path, sig):
    out = tmp_path / "rec.data"
    with workload(256, 32) as w:
        rec = subprocess.Popen(
            DAMONX + ["record", "-o", str(out), str(w.pid)], stderr=subprocess.PIPE, text=True
        )
        # the file grows as it goes (flushed every second): wait for 20 snapshots
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and rec.poll() is None:
            if (
                out.exists()
                and out.stat().st_size
                and records.load(out, partial_ok=True).nr_snapshots >= 20
            ):
                break
            time.sleep(0.5)
        rec.send_signal(sig)
        _, err = rec.communicate(timeout=30)
    assert rec.returncode == 0, err
    assert f"stopped by {sig.name}" in err
    rec_ = records.load(out)  # complete: no partial_ok needed
    assert rec_.complete and rec_.nr_snapshots >= 20
    assert rec_.intervals.sample_us == 5000
    # the hot set shows in the recording: one snapshot's region edges wander,
    # so the median of the last five
    scores = [
        min(hot_precision_recall(s.regions, [w.hot], within=w.range))
        for s in rec_.targets[0].snapshots[-5:]
    ]
    assert sorted(scores)[2] >= 0.7, scores
    assert reports.wss(rec_)[0]


# touches 64 MiB for 3 s; the scratch map and unmap makes an emulated CPU
# reload translations, as a real one does (see tests/vm/workload.py)
TOUCHER = r"""
import mmap, time
m = mmap.mmap(-1, 64 << 20)
end = time.monotonic() + 3
while time.monotonic() < end:
    m[0:64 << 20:4096] = b"\1" * (16384)
    s = mmap.mmap(-1, 64 << 12)
    s[0:64 << 12:4096] = b"\1" * 64
    s.close()
"""


def test_record_a_command_until_it_exits(tmp_path):
    out = tmp_path / "cmd.data"
    res = subprocess.run(
        DAMONX + ["record", "-o", str(out), "--", sys.executable, "-c", TOUCHER],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    assert "no target left" in res.stderr
    rec = records.load(out)
    assert rec.meta["command"][0] == sys.executable
    assert 10 <= rec.nr_snapshots <= 80
    # the 64 MiB being touched shows in the working set
    wss = reports.wss(rec)[0]
    assert max(wss["wss"]) >= 48 << 20, wss["wss"]
