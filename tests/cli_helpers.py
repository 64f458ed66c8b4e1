"""Running the ``damonx`` command line in tests, in this process or in a child."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from damonx import cli

ROOT = Path(__file__).resolve().parent.parent
HOT_COLD = str(ROOT / "examples" / "hot-cold.json")
#: the ``damonx`` script of the interpreter running the tests (the venv's)
DAMONX = str(Path(sys.executable).with_name("damonx"))


def run(capsys, *argv):
    """``damonx ARGV`` in this process: (exit status, stdout, stderr).

    Any exception but SystemExit escapes, so a traceback fails the test.
    """
    try:
        status = cli.main([str(a) for a in argv])
    except SystemExit as done:
        status = done.code
    out, err = capsys.readouterr()
    return status, out, err


def run_child(*argv, timeout=60, **kwargs):
    """``damonx ARGV`` in a child process (the installed script)."""
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    return subprocess.run(
        [DAMONX, *map(str, argv)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kwargs,
    )


def sim_argv(out, *extra, workload=HOT_COLD, timeout="2"):
    """The arguments of a short simulated recording to ``out``."""
    argv = ["record", "--ops", "sim", "--workload", workload, "--timeout", timeout, "-o", out]
    return [str(a) for a in (*argv, "--quiet", *extra)]


def sim_record(capsys, out, *extra, timeout="2"):
    """A short simulated recording to ``out``; its exit status and stderr."""
    status, _, err = run(capsys, *sim_argv(out, *extra, timeout=timeout))
    return status, err


def one_error_line(err, command):
    """The one line of stderr, checked to be a damonx error of ``command``."""
    lines = err.splitlines()
    assert "Traceback" not in err, err
    assert len(lines) == 1, err
    assert lines[0].startswith(f"damonx {command}") and ": error: " in lines[0], err
    return lines[0]


def start_long_recording(tmp_path, out, *extra, ready=None):
    """A child ``damonx record`` of a simulated workload that runs until it is
    stopped, writing to ``out``; returned once ``ready(out)`` (default: the
    output holds a few snapshots)."""
    wl = tmp_path / "long.json"
    wl.write_text(
        json.dumps(
            {
                "size": 1 << 26,
                "page_size": 4096,
                "phases": [
                    {
                        "duration_us": 10**12,
                        "ranges": [{"start": 0, "end": 1 << 24, "probability": 0.5}],
                    }
                ],
            }
        )
    )
    argv = [DAMONX, "record", "--ops", "sim", "--workload", wl, "--timeout", "1e9", "-o", out]
    proc = subprocess.Popen([*map(str, argv), *extra], stderr=subprocess.PIPE, text=True)
    ready = ready or (lambda p: p.exists() and p.stat().st_size > 20000)
    # the output appears with the first snapshot; wait for a few more
    deadline = time.monotonic() + 60
    while not ready(out):
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no snapshot within 60 s"
        time.sleep(0.05)
    return proc
