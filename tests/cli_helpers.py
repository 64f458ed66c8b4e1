"""Running the ``damonx`` command line in tests, in this process or in a child."""

import os
import subprocess
import sys
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
