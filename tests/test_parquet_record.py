"""``damonx record --format parquet``: a directory of Parquet part files,
written while recording, read back by every damonx reader and by DuckDB, and
what a killed recorder or a damaged directory leaves."""

import signal
import sys

import numpy as np
import pytest

from damonx import errors, records, reports
from damonx.errors import DamonxError, InvalidRecord
from damonx.records import Record, RecordWriter, TargetRecord
from tests.cli_helpers import one_error_line, run, sim_argv, start_long_recording
from tests.record_helpers import IV, summary, three_targets
from tests.test_export import _fleet_example

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

#: a simulated recording of 2500 snapshots: parts of 1, 1000, 1000 and 499
LONG = "250"


def _parts(path):
    return sorted(p.name for p in path.iterdir())


def _sim(capsys, out, *extra, timeout=LONG):
    status, _, err = run(capsys, *sim_argv(out, *extra, timeout=timeout))
    assert status == 0, err


def test_a_recording_reads_back_as_the_json_one(capsys, tmp_path):
    """The same simulated recording (sim is deterministic) as parquet and as
    json_compressed: the same snapshots, metadata and reports; convert makes
    the json_compressed file again."""
    pq_out, js_out, back = tmp_path / "p", tmp_path / "j.data", tmp_path / "back.data"
    _sim(capsys, pq_out, "--format", "parquet")
    _sim(capsys, js_out)
    assert _parts(pq_out) == [f"part-{i:05d}.parquet" for i in range(4)]
    rows = [pq.read_metadata(pq_out / n).num_rows for n in _parts(pq_out)]
    assert [pq.read_metadata(pq_out / n).num_row_groups for n in _parts(pq_out)] == [1] * 4
    got, want = records.load(pq_out), records.load(js_out)
    assert got.nr_snapshots == 2500 and sum(rows) == len(got.targets[0].columns().regions)
    assert got.warning is None and summary(got) == summary(want)
    snaps = got.targets[0].snapshots
    assert all(s.sample_us == 5000 and s.nr_checks >= 200 for s in snaps)
    assert reports.wss(got) == reports.wss(want)
    status, _, err = run(capsys, "convert", "-i", pq_out, "-o", back)
    assert status == 0, err
    assert records.detect_format(back.read_bytes()) == "json_compressed"
    assert summary(records.load(back)) == summary(want)
    # the reports take the directory
    status, text, err = run(capsys, "report", "wss", "-i", pq_out, "--json")
    assert status == 0 and "Traceback" not in err
    assert text == run(capsys, "report", "wss", "-i", js_out, "--json")[1]


def test_scheme_statistics_and_several_targets_round_trip(capsys, tmp_path):
    out = tmp_path / "s"
    schemes = ["--damos_action", "stat", "--damos_quotas", "0", "32M", "100"]
    _sim(capsys, out, "--format", "parquet", *schemes, timeout="1")
    snaps = records.load(out).targets[0].snapshots
    assert [s.damos_stats[0]["sz_tried"] for s in snaps] == [
        (i + 1) * (32 << 20) for i in range(10)
    ]
    # interleaved targets, parts every snapshot: one target per snapshot index
    rec = three_targets()
    p = tmp_path / "three"
    with RecordWriter(p, "parquet", intervals=IV, meta=rec.meta, flush_interval_s=0) as w:
        for i in range(40):
            for t in rec.targets:
                s = t.snapshots[i]
                w.add_snapshot(
                    t.target_id,
                    s.start_ns,
                    s.end_ns,
                    s.regions,
                    sample_us=s.sample_us or IV.sample_us,
                    nr_checks=s.nr_checks,
                    damos_stats=s.damos_stats,
                )
    assert len(_parts(p)) == 40 * 3
    for t in rec.targets:  # the record's sampling interval where a snapshot has none
        t.snapshots = [s.__class__(**{**s.__dict__, "sample_us": 5000}) for s in t.snapshots]
    assert summary(records.load(p)) == summary(rec)


def test_save_load_select_and_a_single_exported_file(tmp_path, capsys):
    rec = three_targets()
    records.save(rec, tmp_path / "d", "parquet")
    whole = records.load(tmp_path / "d")
    part = records.load(tmp_path / "d", target_ids=[6], time_range=(0, 300 * 10**6))
    assert summary(part) == summary(records.select(whole, [6], (0, 300 * 10**6)))
    with pytest.raises(errors.InvalidAttrs, match="directory, not bytes"):
        records.dumps(rec, "parquet")
    # damonx export's single file is read too, by its magic
    js, one = tmp_path / "r.data", tmp_path / "one.parquet"
    records.save(rec, js)
    assert run(capsys, "export", "-i", js, "-o", one)[0] == 0
    assert records.detect_format(one.read_bytes()) == "parquet"
    assert summary(records.load(one)) == summary(whole) == summary(records.load(one.read_bytes()))
    # a record without snapshots keeps its targets in one empty part
    records.save(Record(IV, [TargetRecord(3)], {"ops": "sim"}), tmp_path / "e", "parquet")
    empty = records.load(tmp_path / "e")
    assert _parts(tmp_path / "e") == ["part-00000.parquet"]
    assert empty.target_ids == [3] and empty.nr_snapshots == 0 and empty.meta == {"ops": "sim"}


def test_a_killed_recording_keeps_every_written_part(tmp_path):
    """kill -9 in the middle: the parts in the directory are whole, read
    without --allow_partial, and hold every snapshot up to the last part."""
    out = tmp_path / "rec"
    proc = start_long_recording(
        tmp_path, out, "--format", "parquet", ready=lambda p: (p / "part-00002.parquet").exists()
    )
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    names = [n for n in _parts(out) if not n.startswith(".")]
    assert len(names) >= 3
    rec = records.load(out)
    assert rec.warning is None
    # the first part holds the first snapshot, each other part 1000
    (t,) = rec.targets
    assert t.nr_snapshots == 1 + 1000 * (len(names) - 1)
    cols = t.columns()
    assert (cols.start_ns[1:] == cols.end_ns[:-1]).all() and (np.diff(cols.end_ns) > 0).all()
    assert pq.ParquetDataset(out).read().num_rows == len(cols.regions)
    # no temporary directory was left next to it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.json", "rec"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_ends_a_recording_with_every_snapshot_written(tmp_path, sig):
    out = tmp_path / "rec"
    proc = start_long_recording(
        tmp_path, out, "--format", "parquet", ready=lambda p: (p / "part-00001.parquet").exists()
    )
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert f"stopped by {sig.name}" in err and "Traceback" not in err
    n = int(err.split("damonx record: ")[-1].split()[0])
    assert records.load(out).nr_snapshots == n > 1000
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_duckdb_over_the_directory_agrees_with_the_wss_report(capsys, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    fleet = tmp_path / "fleet"
    out = fleet / "host=alpha" / "target=0"
    out.parent.mkdir(parents=True)
    _sim(capsys, out, "--format", "parquet")
    rec = records.load(out)
    (got,) = reports.wss(rec)
    query = """
        SELECT snapshot, coalesce(sum(size) FILTER (WHERE nr_accesses >= 1), 0)
        FROM read_parquet($files) GROUP BY snapshot ORDER BY snapshot
    """
    rows = duckdb.execute(query, {"files": f"{out}/*.parquet"}).fetchall()
    assert [r[0] for r in rows] == list(range(2500))
    assert [r[1] for r in rows] == got["wss"]
    # the README's fleet example reads the recording put in its layout
    footprint = reports.footprint(rec)[0]["footprint"]
    [(host, targets, cold, _)] = _fleet_example().cold_per_host(str(fleet))
    assert (host, targets) == ("alpha", 1)
    assert cold == pytest.approx(float(np.mean(np.subtract(footprint, got["wss"]))), rel=1e-12)


def test_without_pyarrow_a_clear_error(monkeypatch, capsys, tmp_path):
    records.save(three_targets(), tmp_path / "d", "parquet")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    out = tmp_path / "rec"
    status, _, err = run(capsys, *sim_argv(out, "--format", "parquet"))
    assert status == 1 and "pip install 'damonx[arrow]'" in one_error_line(err, "record")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]
    with pytest.raises(DamonxError, match=r"pip install 'damonx\[arrow\]'"):
        records.load(tmp_path / "d")
    status, _, err = run(capsys, "report", "wss", "-i", tmp_path / "d")
    assert status == 1 and "damonx[arrow]" in one_error_line(err, "report")


def _broken(path, name, data):
    """A directory of one good part and ``name``; the summary of the part."""
    records.save(three_targets(), path, "parquet")
    good = summary(records.load(path))
    (path / name).write_bytes(data)
    return good


@pytest.mark.parametrize(
    "name, data, what",
    [
        ("notes.txt", b"not a part\n", "notes.txt: corrupted: not a Parquet file"),
        ("part-00001.parquet", b"PAR1 and then the end", "part-00001.parquet: truncated"),
        ("part-00001.parquet", b"PAR1" + b"\0" * 64 + b"PAR1", "unreadable Parquet"),
    ],
)
def test_a_bad_part_is_named_and_skipped_with_allow_partial(capsys, tmp_path, name, data, what):
    d = tmp_path / "d"
    whole = _broken(d, name, data)
    with pytest.raises(InvalidRecord, match=what) as ei:
        records.load(d)
    assert summary(ei.value.partial)[2] == whole[2]
    rec = records.load(d, partial_ok=True)
    assert what in rec.warning and summary(rec)[2] == whole[2]
    status, _, err = run(capsys, "report", "wss", "-i", d)
    assert status == 1 and what in one_error_line(err, "report")
    status, _, err = run(capsys, "report", "wss", "-i", d, "--allow_partial")
    assert status == 0 and what in err and "Traceback" not in err


def test_an_empty_directory_a_subdirectory_and_a_copied_part(capsys, tmp_path):
    (tmp_path / "empty").mkdir()
    status, _, err = run(capsys, "report", "wss", "-i", tmp_path / "empty")
    assert status == 1 and "an empty directory, not a record" in one_error_line(err, "report")
    d = tmp_path / "d"
    records.save(three_targets(), d, "parquet")
    (d / "sub").mkdir()
    with pytest.raises(InvalidRecord, match="sub: corrupted: a directory"):
        records.load(d)
    (d / "sub").rmdir()
    # hidden files (a part being written, the engines' _SUCCESS) are not parts
    (d / ".part-00001.parquet.tmp").write_bytes(b"PAR1")
    (d / "_SUCCESS").write_bytes(b"")
    assert records.load(d).nr_snapshots == 120
    (d / "part-00009.parquet").write_bytes((d / "part-00000.parquet").read_bytes())
    with pytest.raises(InvalidRecord, match="is in two parts"):
        records.load(d)


def test_overwrite_as_for_the_other_formats(capsys, tmp_path):
    out = tmp_path / "rec"
    _sim(capsys, out, "--format", "parquet", timeout="1")
    status, _, err = run(capsys, *sim_argv(out, "--format", "parquet", timeout="1"))
    assert status == 1 and "--overwrite" in one_error_line(err, "record")
    before = records.load(out).nr_snapshots
    _sim(capsys, out, "--format", "parquet", "--overwrite", timeout="3")
    assert records.load(out).nr_snapshots == 3 * before
    # a regular file is replaced by the directory; a directory with other
    # files than parts is never
    f = tmp_path / "file.data"
    f.write_bytes(b"old")
    _sim(capsys, f, "--format", "parquet", "--overwrite", timeout="1")
    assert f.is_dir() and records.load(f).nr_snapshots == before
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("keep me")
    status, _, err = run(capsys, *sim_argv(tmp_path / "home", "--format", "parquet", "--overwrite"))
    assert status == 1 and "notes.txt" in one_error_line(err, "record")
    assert (tmp_path / "home" / "notes.txt").read_text() == "keep me"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    # the json formats still refuse a directory
    status, _, err = run(capsys, *sim_argv(out, "--overwrite", timeout="1"))
    assert status == 1 and "is a directory" in one_error_line(err, "record")
    assert out.is_dir()
