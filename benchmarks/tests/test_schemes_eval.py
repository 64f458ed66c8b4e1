"""The pure pieces of the schemes' evaluation (benchmarks/suite/schemes_eval):
damo's options read as damonx start reads them, the figures and the
tables, without the VM."""

import os
import sys

import pytest

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, BENCH)

from suite import report, schemes_eval  # noqa: E402


def test_the_options_are_the_schemes_damonx_start_runs():
    plan = schemes_eval.PLANS["quick"]
    [prcl] = schemes_eval.schemes_of(schemes_eval.damos_options(schemes_eval.PRCL, plan))
    assert prcl.action == "pageout" and prcl.pattern.access_rate == (0, 0)
    assert prcl.pattern.age_us[0] == plan["prcl_min_age_s"] * 1_000_000
    opts = schemes_eval.damos_options(schemes_eval.PRCL_PSI, plan)
    [psi] = schemes_eval.schemes_of(opts)
    assert psi.quotas.sz_bytes == 1 << 30 and psi.quotas.reset_interval_ms == 200
    assert [(g.metric, g.target_value) for g in psi.quotas.goals] == [("some_mem_psi_us", 2000)]
    [ethp] = schemes_eval.schemes_of(schemes_eval.ETHP)
    assert ethp.action == "collapse" and ethp.pattern.access_rate[0] == 5


def run(part, workload, config, runtime, rss, cpu=None, thp=None):
    return {
        "part": part,
        "workload": workload,
        "config": config,
        "runtime_s": runtime,
        "rss_mean_kib": rss,
        "cpu_s": cpu,
        "thp_end_kib": thp,
        "swap_end_kib": 0,
    }


def results():
    runs = [
        run("prcl", "seq", "none", 10.0, 262144),
        run("prcl", "seq", "damonx", 10.5, 65536, cpu=1.0),
        run("prcl", "seq", "kernel", 10.2, 32768, cpu=0.2),
        run("ethp", "rand", "never", 10.0, 70000, thp=0),
        run("ethp", "rand", "always", 8.0, 520000, thp=500000),
        run("ethp", "rand", "ethp", 9.0, 115000, thp=60000),
    ]
    plan = dict(schemes_eval.PLANS["quick"], prcl_workloads=["seq"])
    return {"plan": plan, "runs": runs, "machine": {"kernel": "6.12", "mem_gib": 3.8}}


def test_ethp_figures():
    s = schemes_eval.summarize(results()["runs"])
    removed, kept = schemes_eval.ethp_figures(s)
    assert removed == pytest.approx(100 * (520000 - 115000) / (520000 - 70000))
    assert kept == pytest.approx(50.0)


def test_the_tables():
    text = schemes_eval.markdown(results())
    assert "| seq | prcl, damonx | 64.0 MiB | -75.00% | +5.00% | 9.5% |" in text
    assert "| seq | prcl, kernel | 32.0 MiB | -87.50% | +2.00% | 2.0% |" in text
    assert "-89.30%" in text and "+1.98%" in text
    assert "| always | 507.8 MiB | 488 MiB | 8.00 s |" in text
    assert "ethp removes 90.00% of THP's memory overhead and keeps 50.00% of its speedup" in text
    assert "69.43%" in text and "TCG" in text
    res = {
        "meta": {"mode": "quick", "date": "d", "host": {"cpu": "c", "nr_cpus": 2, "kernel": "k"}},
        "schemes": results(),
    }
    assert "### Operation schemes: prcl and ethp" in report.markdown(res)
