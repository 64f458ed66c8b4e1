"""Smoke test of benchmarks/bench_core.py: it runs and reports sane figures.

No timing assertions: speeds are what the benchmark reports, not something
a unit test can hold a machine to.  The benchmarks' extension is built (or
brought up to date) first, in place, as `make bench-ext` does.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks" / "bench_core.py"


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    build = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_ext.py")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    out = tmp_path_factory.mktemp("bench") / "core.json"
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Monitoring loop" in proc.stdout and "Regions adjustment" in proc.stdout
    return json.loads(out.read_text())


def positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


def test_machine_info(result):
    m = result["machine"]
    for key in ("cpu_model", "python", "numpy", "nr_cpus"):
        assert m[key]
    assert result["quick"] is True and result["repeats"] >= 1


def test_loop_figures(result):
    assert set(result["loop"]) == {"hot_cold", "stripes"}
    for case in result["loop"].values():
        for who in ("damonx", "python"):
            fig = case[who]
            assert positive(fig["ns_per_region_sample"])
            assert positive(fig["nr_regions_mean"])
            assert len(fig["runs_ns_per_region_sample"]) == result["repeats"]
        assert positive(case["speedup"])
    # the many-regions case does have many regions, in both implementations
    for who in ("damonx", "python"):
        assert result["loop"]["stripes"][who]["nr_regions_mean"] >= 300


def test_adjust_figures(result):
    assert set(result["adjust"]) == {"10", "100", "1000"}
    for nr, case in result["adjust"].items():
        assert case["nr_regions"] == int(nr)
        for who in ("damonx", "python"):
            fig = case[who]
            for key in ("ns_per_aggregation", "ns_per_region", "nr_after_merge", "nr_after_split"):
                assert positive(fig[key]), (nr, who, key)
            # the split ran: about twice the regions the merge left
            assert fig["nr_after_split"] > 1.5 * fig["nr_after_merge"]
            assert fig["nr_after_merge"] <= int(nr)
        assert positive(case["speedup"])


def test_python_reference_finds_the_hot_range(result):
    check = result["pyref_check"]
    assert check["python_ok"] is True
    assert min(check["python"]) >= 0.9
    assert min(check["damonx"]) >= 0.9
