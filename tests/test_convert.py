"""damonx convert: another format, or a part of a record."""

import zlib

import pytest

from damonx import records
from damonx.cli import main as cli_main
from tests.record_helpers import MS, summary, three_targets


def convert(capsys, *argv):
    rc = cli_main(["convert", *argv])
    out = capsys.readouterr()
    return rc, out.err


@pytest.fixture
def source(tmp_path):
    rec = three_targets(nr=12)
    path = tmp_path / "in.data"
    records.save(rec, path)
    return rec, path


def test_every_format_and_back(capsys, tmp_path, source):
    rec, path = source
    json_path, bin_path, back = tmp_path / "j", tmp_path / "b", tmp_path / "back"
    rc, err = convert(capsys, "-i", str(path), "-o", str(json_path), "--format", "json")
    assert rc == 0 and "36 snapshot(s) of 3 target(s), json" in err
    assert json_path.read_bytes() == zlib.decompress(path.read_bytes())
    assert summary(records.load(json_path)) == summary(rec)
    rc, _ = convert(capsys, "-i", str(json_path), "-o", str(bin_path), "--format", "binary")
    assert rc == 0 and records.detect_format(bin_path.read_bytes()) == "binary"
    rc, _ = convert(capsys, "-i", str(bin_path), "-o", str(back))
    assert rc == 0 and records.detect_format(back.read_bytes()) == "json_compressed"
    # the binary format keeps no ages, intervals or statistics
    got = records.load(back)
    assert got.intervals is None and sorted(got.target_ids) == [5, 6, 7]
    for t in got.targets:
        a, b = t.columns(), rec.target(t.target_id).columns()
        assert a.end_ns.tolist() == b.end_ns.tolist()
        for f in ("start", "end", "nr_accesses"):
            assert a.regions[f].tolist() == b.regions[f].tolist()
        assert not a.regions["age"].any()


def test_a_part_of_athree_targets(capsys, tmp_path, source):
    rec, path = source
    out = tmp_path / "part"
    argv = ["-i", str(path), "-o", str(out), "--target_id", "7", "6"]
    argv += ["--time_range", "0.15", "0.42", "--address_range", "0x10000", "0x7f0000080000"]
    rc, err = convert(capsys, *argv)
    assert rc == 0, err
    got = records.load(out)
    want = records.select(rec, [7, 6], (150 * MS, 420 * MS), (0x10000, 0x7F0000080000))
    assert got.selection is None and summary(got) == summary(want)
    assert got.target_ids == [6, 7] and 0 < got.nr_snapshots < rec.nr_snapshots
    # the times are those of the record: the copy starts where it was cut
    assert got.start_ns == 10**9 + 55 * MS  # target 7, [55, 155) ms
    assert (got.target(7).columns().regions["end"] <= 0x7F0000080000).all()


def test_outputs_and_errors(capsys, tmp_path, source):
    rec, path = source
    out = tmp_path / "out"
    out.write_bytes(b"keep")
    rc, err = convert(capsys, "-i", str(path), "-o", str(out))
    assert rc == 1 and "exists" in err and out.read_bytes() == b"keep"
    rc, err = convert(capsys, "-i", str(path), "-o", str(path), "--overwrite", "--format", "json")
    assert rc == 0 and summary(records.load(path)) == summary(rec)
    rc, err = convert(capsys, "-i", str(path), "-o", str(out), "--overwrite", "--target_id", "8")
    assert rc == 1 and "no target 8 in the record (targets: 5, 6, 7)" in err
    rc, err = convert(capsys, "-i", str(path), "-o", str(out), "--time_range", "2", "1")
    assert rc == 1 and "--time_range" in err and "empty" in err
    rc, err = convert(capsys, "-i", str(path), "-o", str(out), "--address_range", "0x10", "x")
    assert rc == 1 and "--address_range" in err
    rc, err = convert(capsys, "-i", str(tmp_path / "none"), "-o", str(out))
    assert rc == 1 and "No such file" in err
    damaged = tmp_path / "damaged"
    damaged.write_bytes(path.read_bytes()[:-50])
    rc, err = convert(capsys, "-i", str(damaged), "-o", str(out), "--overwrite")
    assert rc == 1 and "truncated" in err
    rc, err = convert(capsys, "-i", str(damaged), "-o", str(out), "--overwrite", "--allow_partial")
    assert rc == 0 and "warning" in err
    assert 0 < records.load(out).nr_snapshots < rec.nr_snapshots
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".damonx-")]


def test_binary_version_1_needs_small_target_ids(capsys, tmp_path):
    rec = three_targets(nr=2)
    rec.targets[0].target_id = 2**40
    path = tmp_path / "in"
    records.save(rec, path)
    rc, err = convert(
        capsys,
        "-i",
        str(path),
        "-o",
        str(tmp_path / "b"),
        "--format",
        "binary",
        "--binary_version",
        "1",
    )
    assert rc == 1 and "does not fit binary version 1" in err
    assert not (tmp_path / "b").exists()
    rc, _ = convert(capsys, "-i", str(path), "-o", str(tmp_path / "b"), "--format", "binary")
    assert rc == 0
    assert 2**40 in records.load(tmp_path / "b").target_ids
