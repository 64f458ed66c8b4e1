"""damonx start, and record with schemes: damo's --damos_* options and
--kdamonds end to end on a simulated workload."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from damonx import records
from tests.cli_helpers import HOT_COLD, run

SIM = ["--ops", "sim", "--workload", HOT_COLD]
DAMO = str(Path(sys.executable).with_name("damo"))


def json_lines(out):
    return [json.loads(line) for line in out.splitlines()]


def test_start_prints_statistics_every_interval_and_at_exit(capsys):
    status, out, err = run(
        capsys, "start", *SIM, "--timeout", "3", "--json",
        "--damos_action", "stat", "--damos_quotas", "0", "64M", "1s",
        "--damos_action", "stat", "--damos_access_rate", "0", "0", "--damos_age", "1s", "max",
    )  # fmt: skip
    assert status == 0, err
    lines = json_lines(out)
    assert len(lines) == 3 and [line["elapsed_s"] for line in lines] == [1.0, 2.0, 3.0]
    for line in lines:
        assert [s["action"] for s in line["schemes"]] == ["stat", "stat"]
        assert set(line["schemes"][0]["stats"]) >= {
            "nr_tried", "sz_tried", "nr_applied", "sz_applied", "qt_exceeds"
        }  # fmt: skip
    last = lines[-1]["schemes"]
    # damo's order: the first --damos_quotas is the first scheme's; 64 MiB a second
    assert last[0]["stats"]["sz_tried"] == 3 * (64 << 20)
    assert last[1]["stats"]["nr_tried"] > 0
    assert "timeout after 3.0 s" in err


def test_start_text_statistics(capsys):
    status, out, _ = run(
        capsys, "start", *SIM, "--timeout", "2", "--damos_action", "stat",
        "--damos_filter", "allow", "addr", "0", "128M",
    )  # fmt: skip
    assert status == 0
    lines = out.splitlines()
    assert len(lines) == 2 and all("scheme 0 stat: tried" in line for line in lines)
    # ten aggregations a second, 128 MiB each
    assert "(1.250 GiB)" in lines[0]


def test_start_needs_a_scheme(capsys):
    status, _, err = run(capsys, "start", *SIM, "--timeout", "1")
    assert status == 1 and "no scheme to apply" in err


def test_start_takes_damos_specification(capsys, tmp_path):
    spec = subprocess.run(
        [DAMO, "args", "damon", "--format", "json", "--monitoring_intervals", "5ms", "50ms", "1s",
         "--damos_action", "stat", "--damos_access_rate", "50", "max", "--", "1234"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    (tmp_path / "spec.json").write_text(spec)
    status, out, err = run(
        capsys, "start", *SIM, "--timeout", "1", "--json", "--kdamonds", tmp_path / "spec.json"
    )
    assert status == 0, err
    [line] = json_lines(out)
    # 50 ms aggregations: 20 passes in a second
    assert line["schemes"][0]["stats"]["nr_snapshots"] == 20
    yaml = pytest.importorskip("yaml")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(json.loads(spec)))
    status, out2, err = run(
        capsys, "start", *SIM, "--timeout", "1", "--json", "--kdamonds", tmp_path / "spec.yaml"
    )
    assert status == 0, err
    assert json_lines(out2) == [line]


def test_record_carries_scheme_statistics(capsys, tmp_path):
    out = tmp_path / "s.data"
    status, _, err = run(
        capsys, "record", *SIM, "--timeout", "1", "--quiet", "-o", out, "--format", "json",
        "--damos_action", "stat", "--damos_quotas", "0", "32M", "100",
    )  # fmt: skip
    assert status == 0, err
    rec = records.load(out)
    snaps = rec.targets[0].snapshots
    assert len(snaps) == 10
    assert [s.damos_stats[0]["sz_tried"] for s in snaps] == [
        (i + 1) * (32 << 20) for i in range(10)
    ]
