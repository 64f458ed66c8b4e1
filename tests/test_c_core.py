"""Run the C unit tests of the core (under AddressSanitizer and UBSan)."""

import pathlib
import shutil
import subprocess

import pytest

CSRC = pathlib.Path(__file__).resolve().parent.parent / "csrc"


@pytest.mark.skipif(shutil.which("make") is None or shutil.which("gcc") is None,
                    reason="needs make and gcc")
def test_c_unit_tests_pass_under_sanitizers(tmp_path):
    res = subprocess.run(["make", "-s", "-C", str(CSRC), "test", f"BUILD={tmp_path}"],
                         capture_output=True, text=True, timeout=300)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert " 0 failed" in out and "FAIL" not in out, out
