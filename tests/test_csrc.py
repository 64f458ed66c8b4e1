"""Run the C unit tests (csrc/tests) under AddressSanitizer and UBSan."""

import pathlib
import re
import shutil
import subprocess

import pytest

CSRC = pathlib.Path(__file__).resolve().parent.parent / "csrc"
TESTS = sorted(p.stem for p in (CSRC / "tests").glob("test_*.c"))


@pytest.mark.skipif(
    shutil.which("make") is None or shutil.which("gcc") is None, reason="needs make and gcc"
)
def test_c_unit_tests_pass_under_sanitizers(tmp_path):
    res = subprocess.run(
        ["make", "-s", "-C", str(CSRC), "test", f"BUILD={tmp_path}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "FAIL" not in out and "ERROR" not in out, out
    # every test program ran to its summary, and none failed
    ran = re.findall(r"^== .*/(test_\w+)$", out, re.M)
    summaries = re.findall(r"^(\d+) checks, (\d+) failed$", out, re.M)
    assert sorted(ran) == TESTS and len(summaries) == len(TESTS), out
    assert all(int(checks) > 0 and failed == "0" for checks, failed in summaries), out
