"""Every command with bad arguments: one error line on stderr, a non-zero
exit status, no traceback."""

import re

import pytest

from damonx import cli
from tests.cli_helpers import HOT_COLD, one_error_line, run, sim_argv, sim_record

HUGE = str(2**70)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A record, a broken record, a bad workload and a directory."""
    d = tmp_path_factory.mktemp("cli")
    (d / "garbage.data").write_bytes(b"\x00garbage that is no record")
    (d / "bad.json").write_text('{"size": 1, "phases": [{"duration_us": 1}]}')
    (d / "dir").mkdir()
    return d


@pytest.fixture(scope="module")
def record(files):
    """A short simulated record in files/sim.data."""
    out = files / "sim.data"
    status = cli.main(sim_argv(out))
    assert status == 0
    return out


RECORD = ["record", "--ops", "sim", "--workload", HOT_COLD, "--timeout", "1", "--quiet"]

BAD_RECORD = [
    ["--timeout=nan"],
    ["--timeout=inf"],
    ["--timeout=-1"],
    ["--timeout=0"],
    ["--timeout", "1e400"],
    ["--timeout", "soon"],
    ["--seed=-1"],
    ["--seed", str(2**64)],
    ["--seed", "x"],
    ["--monitoring_nr_regions_range", "10", "5000000000"],
    ["--monitoring_nr_regions_range", "10", HUGE],
    ["--monitoring_nr_regions_range", "-1", "5"],
    ["--monitoring_nr_regions_range", "1", "5"],
    ["--monitoring_nr_regions_range", "50", "10"],
    ["--monitoring_nr_regions_range", "a", "b"],
    ["--monitoring_intervals", "1", "99999999999999999999999", "1s"],
    ["--monitoring_intervals", "1", "1", HUGE + "s"],
    ["--monitoring_intervals", "5ms", "1ms", "1s"],
    ["--monitoring_intervals", "nan", "1ms", "1s"],
    ["--monitoring_intervals", "0", "0", "0"],
    ["--monitoring_intervals", "1", str(2**40), "1s"],
    ["--format", "png"],
    ["--ops", "kernel"],
    ["-r", "1-2"],
]


BAD_SCHEMES = [
    ["--damos_action", "explode"],
    ["--damos_action", "pageout", "12"],
    ["--damos_action", "migrate_hot"],
    ["--damos_action", "migrate_hot", "x"],
    ["--damos_action", "lru_prio"],
    ["--damos_action", "hugepage"],
    ["--damos_action", "stat", "--damos_access_rate", "50", "10"],
    ["--damos_action", "stat", "--damos_access_rate", "nan", "10"],
    ["--damos_action", "stat", "--damos_age", "5s", "soon"],
    ["--damos_action", "stat", "--damos_sz_region", "4K", HUGE],
    ["--damos_action", "stat", "--damos_sz_region", "-1", "5"],
    ["--damos_action", "stat", "--damos_quotas", "1", "2", "3", "4", "5", "6", "7"],
    ["--damos_action", "stat", "--damos_quotas", "x"],
    ["--damos_action", "stat", "--damos_quota_interval", "1s", "--damos_quota_weights", "1", "2",
     "x"],
    ["--damos_action", "stat", "--damos_quota_goal", "user_input", "10"],
    ["--damos_action", "stat", "--damos_quota_goal", "nosuch", "10"],
    ["--damos_action", "stat", "--damos_quota_goal", "node_mem_used_bp", "50%"],
    ["--damos_action", "stat", "--damos_quotas", "0", "0", "1s",
     "--damos_quota_goal", "some_mem_psi_us", "1ms", "complement"],
    ["--damos_action", "stat", "--damos_quota_goal", "some_mem_psi_us", "0"],
    ["--damos_action", "stat", "--damos_quota_goal_tuner", "eager"],
    ["--damos_action", "stat", "--damos_filter", "allow"],
    ["--damos_action", "stat", "--damos_filter", "maybe", "anon"],
    ["--damos_action", "stat", "--damos_filter", "reject", "anon"],
    ["--damos_action", "stat", "--damos_filter", "reject", "addr", "1"],
    ["--damos_action", "stat", "--damos_filter", "reject", "addr", "8", "4"],
    ["--damos_action", "stat", "--damos_filter", "reject", "memcg"],
    ["--damos_action", "stat", "--damos_wmarks", "free_mem_rate", "1s", "1", "2", "3"],
    ["--damos_action", "stat", "--damos_wmarks", "swap", "1s", "3", "2", "1"],
    ["--damos_action", "stat", "--damos_apply_interval", "-5"],
    ["--damos_action", "stat", "--damos_action", "stat", "--damos_filter", "reject", "addr",
     "0", "4096"],
    ["--damos_action", "stat", "--damos_nr_filters", "2", "--damos_filter", "reject", "target",
     "0"],
    ["--damos_age", "1", "2"],
    ["--damos_filter", "reject", "target", "0"],
    ["--kdamonds", "{d}/missing.json"],
    ["--kdamonds", "{d}/garbage.data"],
    ["--kdamonds", "{d}/bad.json"],
    ["--kdamonds", "{d}/dir"],
]  # fmt: skip


@pytest.mark.parametrize("command", ["start", "record"])
@pytest.mark.parametrize("extra", BAD_SCHEMES, ids=" ".join)
def test_schemes_with_bad_values(capsys, files, tmp_path, command, extra):
    out = tmp_path / "x.data"
    argv = [command, "--ops", "sim", "--workload", HOT_COLD, "--timeout", "1"]
    if command == "record":
        argv += ["--quiet", "-o", out]
    status, stdout, err = run(capsys, *argv, *[a.format(d=files) for a in extra])
    assert status in (1, 2)
    one_error_line(err, command)
    assert not out.exists() and not stdout


@pytest.mark.parametrize("extra", BAD_RECORD, ids=" ".join)
def test_record_with_bad_values(capsys, tmp_path, extra):
    out = tmp_path / "x.data"
    status, _, err = run(capsys, *RECORD, "-o", out, *extra)
    assert status in (1, 2)
    one_error_line(err, "record")
    assert not out.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["--workload", "{d}/missing.json"],
        ["--workload", "{d}/dir"],
        ["--workload", "{d}/bad.json"],
        ["--workload", "{d}/garbage.data"],
        ["--workload", HOT_COLD, "-o", "{d}/dir"],
        ["--workload", HOT_COLD, "-o", "{d}/missing/x.data"],
        ["--workload", HOT_COLD, "--ops", "vaddr"],
        ["--workload", HOT_COLD, "123"],
        ["--ops", "sim"],
        ["--ops", "fvaddr", "1"],
        ["--ops", "paddr", "1"],
        ["--ops", "fvaddr", "-r", "0x10-0x1", "1"],
        ["--ops", "fvaddr", "-r", f"0-{2**70}", "1"],
        ["--ops", "fvaddr", "-r", "zzz", "1"],
        ["12a4"],
        ["0"],
        [HUGE],
        [],
        ["--"],
        ["--", "/nonexistent/command"],
    ],
    ids=" ".join,
)
def test_record_with_bad_targets_and_files(capsys, files, argv):
    argv = [a.format(d=files) for a in argv]
    status, _, err = run(
        capsys, "record", "--quiet", *argv, *([] if "-o" in argv else ["-o", files / "new.data"])
    )
    assert status in (1, 2)
    one_error_line(err, "record")
    assert not (files / "new.data").exists()


REPORT_BAD = [
    ["wss", "--target_id", HUGE],
    ["wss", "--target_id", "x"],
    ["wss", "--percentiles", "nan"],
    ["wss", "--percentiles", "inf"],
    ["wss", "--percentiles=-5"],
    ["wss", "--percentiles", "101"],
    ["wss", "--range", "0", "100", "0"],
    ["wss", "--range", "0", HUGE, "1"],
    ["wss", "--range", "0", "100", "-1"],
    ["wss", "--exclude_samples=-1"],
    ["wss", "--exclude_samples", HUGE],
    ["wss", "--nr_cols_bar=-1"],
    ["wss", "--nr_cols_bar", HUGE],
    ["wss", "--acc_thres=-1"],
    ["wss", "--acc_thres", HUGE],
    ["wss", "--sz_thres", HUGE],
    ["wss", "--sortby", "color"],
    ["wss", "-o", "{d}/dir"],
    ["wss", "-o", "{d}/x.jpeg"],
    ["wss", "-o", "{d}/missing/x.png"],
    ["nr_regions", "--percentiles", "-inf"],
    ["footprint", "--range", "5", "1", "1"],
    ["access", "--snapshot", HUGE],
    ["access", "--snapshot", "100000"],
    ["access", "--snapshot", "x"],
    ["access", "--target_id", "99"],
    ["heatmap", "--resol", "0", "10"],
    ["heatmap", "--resol", "10", "-1"],
    ["heatmap", "--resol", HUGE, HUGE],
    ["heatmap", "--resol", "100000", "100000"],
    ["heatmap", "--time_range", "nan", "1"],
    ["heatmap", "--time_range", "0", "inf"],
    ["heatmap", "--time_range", "5", "1"],
    ["heatmap", "--time_range", "1e300", "1e301"],
    ["heatmap", "--address_range", "5", "1"],
    ["heatmap", "--address_range", "x", "y"],
    ["heatmap", "--address_range", "0", HUGE],
    ["heatmap", "--address_range", "1", "2", "3"],
    ["heatmap", "-o", "{d}/dir"],
    ["heatmap", "-o", "{d}/x.txt"],
    ["raw", "--target_id=-1"],
    ["raw", "--bogus"],
]


@pytest.mark.parametrize("argv", REPORT_BAD, ids=" ".join)
def test_report_with_bad_values(capsys, files, record, argv):
    argv = [a.format(d=files) for a in argv]
    status, _, err = run(capsys, "report", argv[0], "-i", record, *argv[1:])
    assert status in (1, 2)
    one_error_line(err, "report")


@pytest.mark.parametrize("kind", ["raw", "access", "heatmap", "wss", "nr_regions", "footprint"])
@pytest.mark.parametrize("name", ["missing.data", "dir", "garbage.data", "bad.json"])
def test_report_of_bad_files(capsys, files, kind, name):
    status, _, err = run(capsys, "report", kind, "-i", files / name)
    assert status == 1
    one_error_line(err, "report")


@pytest.mark.parametrize(
    "argv",
    [
        ["report"],
        ["report", "heat"],
        ["features", "--procfs"],
        ["features", "extra"],
        ["version", "extra"],
        ["nosuchcommand"],
    ],
    ids=" ".join,
)
def test_usage_errors(capsys, argv):
    status, _, err = run(capsys, *argv)
    assert status == 2
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert re.match(r"damonx( \w+)*: error: ", lines[0]), err


def test_features_on_missing_roots(capsys, tmp_path):
    """Pointed at empty trees, features says every mechanism is missing."""
    status, out, err = run(capsys, "features", "--procfs", tmp_path, "--sysfs", tmp_path)
    assert status == 0 and err == ""
    assert "ops vaddr   unavailable" in out


CONVERT_BAD = [
    [],
    ["-o", "{d}/dir"],
    ["-o", "{d}/missing/x.data"],
    ["-o", "{d}/c.data", "--format", "png"],
    ["-o", "{d}/c.data", "--binary_version", "3"],
    ["-o", "{d}/c.data", "--target_id", "x"],
    ["-o", "{d}/c.data", "--target_id", "99"],
    ["-o", "{d}/c.data", "--time_range", "5", "1"],
    ["-o", "{d}/c.data", "--time_range", "nan", "1"],
    ["-o", "{d}/c.data", "--time_range", "1", "inf"],
    ["-o", "{d}/c.data", "--address_range", "x", "y"],
    ["-o", "{d}/c.data", "--address_range", "0", HUGE],
    ["-o", "{d}/c.data", "--address_range", "5", "1"],
    ["-o", "{d}/c.data", "-i", "{d}/garbage.data"],
    ["-o", "{d}/c.data", "-i", "{d}/dir"],
    ["-o", "{d}/c.data", "-i", "{d}/missing.data"],
]


@pytest.mark.parametrize("argv", CONVERT_BAD, ids=" ".join)
def test_convert_with_bad_values(capsys, files, record, argv):
    argv = [a.format(d=files) for a in argv]
    status, _, err = run(capsys, "convert", "-i", record, *argv)
    assert status in (1, 2)
    one_error_line(err, "convert")
    assert not (files / "c.data").exists()


EXPORT_BAD = [
    [],
    ["-o", "{d}/e.parquet", "--hive", "{d}/h"],
    ["-o", "{d}/dir"],
    ["-o", "{d}/missing/e.parquet"],
    ["-o", "{d}/e.parquet", "--host", " "],
    ["-o", "{d}/e.parquet", "-i", "{d}/garbage.data"],
    ["-o", "{d}/e.parquet", "-i", "{d}/missing.data"],
    ["--hive", "{d}/garbage.data", "--host", "h"],
]


@pytest.mark.parametrize("argv", EXPORT_BAD, ids=" ".join)
def test_export_with_bad_values(capsys, files, record, argv):
    pytest.importorskip("pyarrow")
    argv = [a.format(d=files) for a in argv]
    status, _, err = run(capsys, "export", "-i", record, *argv)
    assert status in (1, 2)
    one_error_line(err, "export")
    assert not (files / "e.parquet").exists()


def test_every_command_is_covered():
    covered = {"record", "start", "report", "convert", "export", "serve", "features", "version"}
    assert {name for name, _ in cli.SUBCOMMANDS} == covered


def test_a_good_record_still_works(capsys, tmp_path):
    status, err = sim_record(capsys, tmp_path / "ok.data")
    assert status == 0, err
