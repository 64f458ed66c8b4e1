"""``damonx record`` on any machine: simulated recordings, their reports, and
every way a recording can fail without harming what was there."""

import json
import os
import signal
import stat
import threading

import pytest

from damonx import errors, records
from damonx.records import RecordWriter
from tests.cli_helpers import (
    HOT_COLD,
    one_error_line,
    run,
    run_child,
    sim_argv,
    sim_record,
    start_long_recording,
)
from tests.processes import exited_pid

OLD = b"an existing record that must survive\n"


def test_sim_record_and_report_round_trip(capsys, tmp_path):
    out = tmp_path / "sim.data"
    status, err = sim_record(capsys, out)
    assert status == 0, err
    rec = records.load(out)
    assert rec.warning is None
    assert rec.meta["ops"] == "sim"
    nr = len(rec.targets[0].snapshots)
    assert nr == 20  # 2 s of simulated time in 100 ms aggregations
    status, text, err = run(capsys, "report", "wss", "-i", out, "--json")
    assert status == 0, err
    [wss] = json.loads(text)
    assert len(wss["wss"]) == nr
    # the hot 128 MiB of hot-cold.json is the working set
    assert 100 << 20 < wss["distribution"]["avg"] < 160 << 20
    status, text, err = run(capsys, "report", "raw", "-i", out)
    assert status == 0 and text.count("monitoring_start") == nr, err


def test_a_record_is_refused_over_an_existing_file_without_overwrite(capsys, tmp_path):
    out = tmp_path / "old.data"
    out.write_bytes(OLD)
    status, err = sim_record(capsys, out)
    assert status == 1
    assert "exists" in one_error_line(err, "record") and "--overwrite" in err
    assert out.read_bytes() == OLD


def _bad_workload(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"size": 4096, "phases": [}')
    return bad


@pytest.mark.parametrize("failure", ["dead pid", "bad workload", "missing workload"])
def test_a_failed_overwrite_leaves_the_existing_file(capsys, tmp_path, failure):
    out = tmp_path / "old.data"
    out.write_bytes(OLD)
    if failure == "dead pid":
        argv = ["record", "-o", out, "--overwrite", exited_pid()]
    else:
        wl = _bad_workload(tmp_path) if failure == "bad workload" else tmp_path / "none.json"
        argv = ["record", "--ops", "sim", "--workload", wl, "-o", out, "--overwrite"]
    status, _, err = run(capsys, *argv)
    assert status == 1
    one_error_line(err, "record")
    assert out.read_bytes() == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["old.data"] + (["bad.json"] if failure == "bad workload" else [])
    )


def test_a_symlink_output_is_refused_and_left_alone(capsys, tmp_path):
    target = tmp_path / "real.data"
    target.write_bytes(OLD)
    link = tmp_path / "link.data"
    link.symlink_to(target)
    for workload in (HOT_COLD, _bad_workload(tmp_path)):
        status, _, err = run(capsys, *sim_argv(link, "--overwrite", workload=workload, timeout="1"))
        assert status == 1
        line = one_error_line(err, "record")
        assert "symbolic link" in line and str(target) in line
        assert link.is_symlink() and os.readlink(link) == str(target)
        assert target.read_bytes() == OLD


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_output_is_refused_and_left_alone(capsys, tmp_path):
    node = tmp_path / "null"
    os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    status, _, err = run(capsys, *sim_argv(node, "--overwrite", workload=_bad_workload(tmp_path)))
    assert status == 1
    assert "not a regular file" in one_error_line(err, "record")
    assert stat.S_ISCHR(os.lstat(node).st_mode)


def test_dev_stdout_is_refused_and_never_unlinked(capsys):
    status, _, err = run(capsys, *sim_argv("/dev/stdout", "--overwrite", timeout="1"))
    assert status == 1
    assert "/dev/stdout" in one_error_line(err, "record")
    assert os.path.lexists("/dev/stdout")


def test_a_directory_output_is_refused(capsys, tmp_path):
    status, err = sim_record(capsys, tmp_path, "--overwrite")
    assert status == 1
    assert "is a directory" in one_error_line(err, "record")


def test_the_output_is_replaced_only_once_the_first_snapshot_is_in(tmp_path):
    """A writer over an existing file writes a hidden temporary file next to
    it and renames it over the file with the first snapshot; given up before
    then, it leaves the old file and no temporary file."""
    out = tmp_path / "old.data"
    out.write_bytes(OLD)
    regions = records.make_regions([(0, 4096, 1, 0)])
    w = RecordWriter(out, overwrite=True)
    assert out.read_bytes() == OLD
    [tmp] = [p for p in tmp_path.iterdir() if p != out]
    assert tmp.name.startswith(".") and tmp.name.endswith(".tmp")
    w.abort()
    assert out.read_bytes() == OLD and list(tmp_path.iterdir()) == [out]

    with RecordWriter(out, overwrite=True) as w:
        w.add_snapshot(1, 0, 100, regions)
        # the first snapshot is in: a killed recorder leaves it at out
        assert list(tmp_path.iterdir()) == [out]
        assert len(records.load(out, partial_ok=True).targets[0].snapshots) == 1
        w.add_snapshot(1, 100, 200, regions)
    assert len(records.load(out).targets[0].snapshots) == 2

    # a failure after the first snapshot keeps what was recorded
    with pytest.raises(RuntimeError), RecordWriter(out, overwrite=True) as w:
        w.add_snapshot(1, 0, 100, regions)
        raise RuntimeError
    assert len(records.load(out).targets[0].snapshots) == 1


def test_a_new_file_appears_only_with_the_first_snapshot(tmp_path):
    out = tmp_path / "new.data"
    w = RecordWriter(out)
    assert not out.exists()
    w.add_snapshot(1, 0, 100, records.make_regions([(0, 4096, 1, 0)]))
    assert out.exists()
    w.close()
    # a file that appeared meanwhile is not replaced without overwrite
    other = tmp_path / "other.data"
    w = RecordWriter(other)
    other.write_bytes(OLD)
    with pytest.raises(errors.FileExists):
        w.add_snapshot(1, 0, 100, records.make_regions([(0, 4096, 1, 0)]))
    assert other.read_bytes() == OLD


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "-1", "0", "-0.0", "abc"])
def test_timeout_must_be_a_positive_finite_number(tmp_path, value):
    # in a child with a time limit: an accepted nan or inf never stops
    done = run_child(
        "record",
        "--ops",
        "sim",
        "--workload",
        HOT_COLD,
        f"--timeout={value}",
        "-o",
        tmp_path / "x.data",
        "--quiet",
        timeout=30,
    )
    assert done.returncode == 2
    line = one_error_line(done.stderr, "record")
    assert "--timeout" in line and repr(value) in line
    assert not (tmp_path / "x.data").exists()


@pytest.mark.parametrize("word", ["12a4", "ls", "0x10", "1.5"])
def test_a_target_that_is_not_a_pid_is_not_run_as_a_command(capsys, tmp_path, word):
    status, _, err = run(capsys, "record", "-o", tmp_path / "x.data", word)
    assert status == 2
    line = one_error_line(err, "record")
    assert f"{word!r} is not a process id" in line
    assert "after --" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("pid", ["0", "-5", "99999999999"])
def test_out_of_range_pids_are_refused(capsys, tmp_path, pid):
    status, _, err = run(capsys, "record", "-o", tmp_path / "x.data", pid)
    assert status == 2
    assert "process id" in one_error_line(err, "record")


def test_pids_and_a_command_do_not_mix(capsys, tmp_path):
    status, _, err = run(capsys, "record", "-o", tmp_path / "x.data", os.getpid(), "--", "true")
    assert status == 1
    assert "not both" in one_error_line(err, "record")


def test_a_command_after_the_separator_may_look_like_a_pid(capsys, tmp_path, monkeypatch):
    """Only what follows ``--`` is a command, even if it looks like a pid."""
    started = []

    class Popen:
        def __init__(self, argv):
            started.append(argv)
            raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr("damonx.features.require", lambda *a: None)
    monkeypatch.setattr("subprocess.Popen", Popen)
    status, _, err = run(capsys, "record", "-o", tmp_path / "x.data", "--", "1234", "-x")
    assert status == 1 and started == [["1234", "-x"]]
    assert "cannot start 1234" in one_error_line(err, "record")


def test_a_thread_id_is_named_as_a_thread(capsys, tmp_path):
    ready, leave = threading.Event(), threading.Event()
    tids = []

    def body():
        tids.append(threading.get_native_id())
        ready.set()
        leave.wait(30)

    t = threading.Thread(target=body)
    t.start()
    try:
        ready.wait(10)
        [tid] = tids
        pid = os.getpid()
        status, _, err = run(capsys, "record", "-o", tmp_path / "x.data", tid)
        assert status == 1
        line = one_error_line(err, "record")
        assert f"{tid} is a thread of process {pid}; give the process id {pid}" in line
        # the same from the API
        import damonx

        with pytest.raises(damonx.InvalidAttrs, match=f"{tid} is a thread of process {pid}"):
            damonx.Monitor("vaddr", [tid])
        with pytest.raises(damonx.InvalidAttrs, match=f"{tid} is a thread of process {pid}"):
            damonx.Monitor("fvaddr", {tid: [(0, 4096)]})
    finally:
        leave.set()
        t.join()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_a_recording_with_a_complete_file(tmp_path, sig):
    out = tmp_path / "rec.data"
    proc = start_long_recording(tmp_path, out)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"stopped by {sig.name}" in err and "Traceback" not in err
    rec = records.load(out)  # complete: no partial_ok needed
    assert rec.warning is None and len(rec.targets[0].snapshots) > 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.json", "rec.data"]


def test_a_killed_recording_leaves_a_readable_prefix_at_the_output(tmp_path):
    out = tmp_path / "rec.data"
    proc = start_long_recording(tmp_path, out)
    proc.kill()
    proc.communicate(timeout=60)
    rec = records.load(out, partial_ok=True)
    assert len(rec.targets[0].snapshots) >= 1


def test_the_help_tells_where_a_recording_lives(capsys):
    status, out, _ = run(capsys, "record", "--help")
    assert status == 0
    assert "-- CMD [ARGS ...]" in out.splitlines()[1]
    text = " ".join(out.split())
    assert "hidden temporary name (.damonx-XXXXXXXXXXXX.tmp)" in text
    assert "leaves an existing output as it was" in text
    assert "--allow_partial" in text


def test_record_snapshots_carry_the_sampling_interval_and_checks(tmp_path, capsys):
    from damonx import records

    out = tmp_path / "r.data"
    status, _ = sim_record(capsys, out, timeout="1")
    assert status == 0
    snaps = records.load(out).targets[0].snapshots
    assert snaps and all(s.sample_us == 5000 for s in snaps)
    assert all(s.nr_checks >= 20 * 10 for s in snaps)
