"""damo 3.4.3 reads what damonx writes, and damonx reads what damo writes.

Needs the ``damo`` package (pip install damo==3.4.3) and the ``file``
command, which damo uses to detect record types.  damo's ``report access``
and ``report wss`` read record files without the kernel's DAMON.
"""

import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from damonx import records, reports
from damonx.attrs import Intervals
from damonx.cli import main as cli_main
from damonx.records import Record, TargetRecord, TargetSnapshot, make_regions

try:
    import damo as _damo_pkg

    DAMO_DIR = os.path.dirname(_damo_pkg.__file__)
except ImportError:
    DAMO_DIR = None
# the damo command of the environment running the tests, even when its bin
# directory is not on PATH (e.g. .venv/bin/python -m pytest)
DAMO = shutil.which("damo", path=os.path.dirname(sys.executable)) or shutil.which("damo")

pytestmark = [
    pytest.mark.skipif(
        DAMO_DIR is None or DAMO is None, reason="damo is not installed (pip install damo==3.4.3)"
    ),
    pytest.mark.skipif(
        shutil.which("file") is None, reason="damo needs the 'file' command to read record files"
    ),
]

IV = Intervals(5000, 100000, 1000000)


def _record():
    rng = np.random.default_rng(3)
    targets = []
    for tid in (11, 12):
        snaps = []
        for i in range(25):
            n = int(rng.integers(3, 9))
            bounds = np.sort(rng.choice(np.arange(1, 4000), n, replace=False)) * 4096
            rows = [
                (
                    int(0x7F0000000000 + bounds[k]),
                    int(0x7F0000000000 + bounds[k + 1]),
                    int(rng.integers(0, 21)) if rng.random() > 0.3 else 0,
                    int(rng.integers(0, 30)),
                )
                for k in range(n - 1)
            ]
            snaps.append(
                TargetSnapshot(10**9 + i * 10**8, 10**9 + (i + 1) * 10**8, make_regions(rows))
            )
        targets.append(TargetRecord(tid, snaps))
    return Record(
        IV, targets, {"ops": "sim", "workload": {"size": 1 << 24, "page_size": 4096, "phases": []}}
    )


def _damo(*args):
    res = subprocess.run([DAMO, "report", *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    rec = _record()
    path = tmp_path_factory.mktemp("compat") / "damonx.data"
    # streamed with interleaved targets, as damonx record writes.  (damo reads
    # plain json only when `file` calls it "JSON data"; Debian 12's says
    # "JSON text data", so json_compressed, damo's default, is what is checked)
    with records.RecordWriter(path, intervals=IV, meta=rec.meta) as w:
        for i in range(25):
            for t in rec.targets:
                s = t.snapshots[i]
                w.add_snapshot(t.target_id, s.start_ns, s.end_ns, s.regions)
    return rec, str(path)


def _damo_access(path):
    """damo report access of every snapshot: {target: [snapshot]}."""
    out = _damo(
        "access",
        "-i",
        path,
        "--raw_number",
        "--dont_merge_regions",
        "--format",
        "set",
        "record_head",
        "target <target id>",
        "--format",
        "set",
        "snapshot_head",
        "snapshot <start time> <end time>",
        "--format",
        "set",
        "region",
        "region <start address> <end address> <access rate> <age>",
        "--format",
        "set",
        "snapshot_tail",
        "total <total bytes>",
    )
    got = {}
    tid = snap = None
    for line in out.splitlines():
        f = line.split()
        if not f:
            continue
        if f[0] == "target":
            tid = int(f[1])
            got[tid] = []
        elif f[0] == "snapshot":
            snap = {"start": int(f[1]), "end": int(f[2]), "regions": []}
            got[tid].append(snap)
        elif f[0] == "region":
            snap["regions"].append((int(f[1]), int(f[2]), float(f[3]), int(f[4])))
        elif f[0] == "total":
            snap["total"] = int(f[1])
    return got


def _check_access_agrees(rec, path):
    got = _damo_access(path)
    assert sorted(got) == sorted(rec.target_ids)
    for t in rec.targets:
        assert len(got[t.target_id]) == t.nr_snapshots
        for idx in range(t.nr_snapshots):
            d = got[t.target_id][idx]
            (mine,) = reports.access(rec, snapshot=idx, target_id=t.target_id)
            # both show times relative to the start of the record
            assert (d["start"], d["end"]) == (mine["start_ns"], mine["end_ns"])
            assert d["total"] == mine["total_size"]
            assert len(d["regions"]) == mine["nr_regions"]
            for (st, en, rate, age_us), r in zip(d["regions"], mine["regions"]):
                assert (st, en, age_us) == (r["start"], r["end"], r["age_us"])
                assert rate == pytest.approx(r["access_rate"], abs=1e-6)


def test_damo_report_access_agrees(written):
    rec, path = written
    _check_access_agrees(rec, path)


def test_damo_reads_what_damonx_convert_writes(written, tmp_path):
    """A part of a record written by damonx convert is a record damo reads
    as damonx does."""
    rec, path = written
    part = tmp_path / "part.data"
    rc = cli_main(
        [
            "convert",
            "-i",
            path,
            "-o",
            str(part),
            "--target_id",
            "12",
            "--time_range",
            "0.45",
            "1.5",
            "--address_range",
            hex(0x7F0000000000 + 500 * 4096),
            hex(0x7F0000000000 + 3000 * 4096),
        ]
    )
    assert rc == 0
    got = records.load(part)
    assert got.target_ids == [12] and 0 < got.nr_snapshots < 25
    _check_access_agrees(got, str(part))


def test_damo_reads_what_damonx_converts_from_parquet(written, tmp_path):
    """A record written as Parquet parts and converted to json_compressed
    is a record damo reads as damonx does."""
    pytest.importorskip("pyarrow")
    rec, _ = written
    parts, back = tmp_path / "parts", tmp_path / "back.data"
    with records.RecordWriter(parts, "parquet", intervals=IV, meta=rec.meta) as w:
        for i in range(25):
            for t in rec.targets:
                s = t.snapshots[i]
                w.add_snapshot(t.target_id, s.start_ns, s.end_ns, s.regions)
    assert cli_main(["convert", "-i", str(parts), "-o", str(back)]) == 0
    got = records.load(back)
    assert got.target_ids == [11, 12] and got.nr_snapshots == 50
    _check_access_agrees(got, str(back))


@pytest.mark.parametrize("fmt", ["json", "json_compressed"])
def test_damo_converts_what_damonx_writes_and_back(written, tmp_path, fmt):
    """damo's convert_record_format and damonx convert, one after the other,
    keep the record as it was."""
    rec, path = written
    damo_out, back = tmp_path / "damo.data", tmp_path / "back.data"
    res = subprocess.run(
        [
            DAMO,
            "convert_record_format",
            "--record_file",
            path,
            "--format",
            fmt,
            "--output_file",
            str(damo_out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    assert cli_main(["convert", "-i", str(damo_out), "-o", str(back)]) == 0
    for p in (damo_out, back):
        again = records.load(p)
        assert again.intervals == IV and again.target_ids == rec.target_ids
        for a, b in zip(again.targets, rec.targets):
            ca, cb = a.columns(), b.columns()
            assert ca.start_ns.tolist() == cb.start_ns.tolist()
            assert ca.end_ns.tolist() == cb.end_ns.tolist()
            assert ca.regions.tolist() == cb.regions.tolist()


def test_damo_report_wss_agrees(written):
    rec, path = written
    out = _damo(
        "wss",
        "-i",
        path,
        "--raw_number",
        "--exclude_samples",
        "0",
        "--per_target",
        "--range",
        "0",
        "101",
        "10",
    )
    got = {}
    for line in out.splitlines():
        f = line.split()
        if line.startswith("# target_id"):
            tid = int(f[-1])
            got[tid] = {}
        elif f and f[0].isdigit():
            got[tid][int(f[0])] = int(f[1])
    mine = reports.wss(rec, percentiles=range(0, 101, 10))
    assert sorted(got) == [r["target_id"] for r in mine]
    for r in mine:
        assert got[r["target_id"]] == dict(map(tuple, r["distribution"]["percentiles"]))


def test_damo_default_wss_matches_damonx_exclude_samples(written):
    """damo leaves out the first 20 snapshots by default; damonx reports all
    of them unless --exclude_samples asks otherwise."""
    rec, path = written
    out = _damo("wss", "-i", path, "--raw_number", "--per_target", "--range", "0", "101", "25")
    damo_vals = [
        int(line.split()[1])
        for line in out.splitlines()
        if line.split() and line.split()[0].isdigit()
    ]
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "damonx",
            "report",
            "wss",
            "-i",
            path,
            "--json",
            "--exclude_samples",
            "20",
            "--range",
            "0",
            "101",
            "25",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    import json

    mine = [v for r in json.loads(res.stdout) for _, v in r["distribution"]["percentiles"]]
    assert damo_vals == mine
    everything = [
        v
        for r in reports.wss(rec, percentiles=range(0, 101, 25))
        for _, v in r["distribution"]["percentiles"]
    ]
    assert everything != mine  # the first 20 snapshots do change the figures


MAKE_DAMO_RECORD = textwrap.dedent("""
    import sys
    import _damon, _damo_records
    iv = _damon.DamonIntervals(5000, 100000, 1000000)
    recs = []
    for tid in (5, 6):
        r = _damo_records.DamonRecord(None, None, iv, None, tid, [])
        for i in range(4):
            regs = [_damon.DamonRegion(4096 * 16 * k, 4096 * 16 * (k + 1), (k * 7 + i + tid) % 21,
                                       _damon.unit_samples, i * k, _damon.unit_aggr_intervals)
                    for k in range(5)]
            r.snapshots.append(_damo_records.DamonSnapshot(i * 10**8, (i + 1) * 10**8, regs, None))
        recs.append(r)
    err = _damo_records.write_damon_records(recs, sys.argv[1], sys.argv[2])
    assert err is None, err
""")


@pytest.mark.parametrize("fmt", ["json_compressed", "json"])
def test_damonx_reads_damo_written_records(tmp_path, fmt):
    path = tmp_path / "damo.data"
    # damo's modules import each other by bare name, hence its own directory
    env = dict(os.environ, PYTHONPATH=DAMO_DIR)
    subprocess.run(
        [sys.executable, "-c", MAKE_DAMO_RECORD, str(path), fmt], check=True, env=env, timeout=60
    )
    rec = records.load(path)
    assert rec.complete and rec.intervals == IV and rec.target_ids == [5, 6]
    for t in rec.targets:
        assert len(t.snapshots) == 4
        for i, s in enumerate(t.snapshots):
            assert (s.start_ns, s.end_ns) == (i * 10**8, (i + 1) * 10**8)
            assert s.regions["start"].tolist() == [4096 * 16 * k for k in range(5)]
            assert s.regions["end"].tolist() == [4096 * 16 * (k + 1) for k in range(5)]
            assert s.regions["nr_accesses"].tolist() == [
                (k * 7 + i + t.target_id) % 21 for k in range(5)
            ]
            assert s.regions["age"].tolist() == [i * k for k in range(5)]


def test_damo_reads_snapshot_extras(tmp_path):
    # the sampling interval in effect, damonx's check count and the scheme
    # statistics ride in each snapshot; damo reads them (or ignores them)
    rec = _record()
    path = tmp_path / "extras.data"
    stats = [
        {"nr_tried": 7, "sz_tried": 28672, "nr_applied": 2, "sz_applied": 8192, "qt_exceeds": 1}
    ]
    with records.RecordWriter(path, intervals=IV, meta=rec.meta) as w:
        for t in rec.targets:
            for s in t.snapshots:
                w.add_snapshot(
                    t.target_id,
                    s.start_ns,
                    s.end_ns,
                    s.regions,
                    sample_us=5000,
                    nr_checks=123,
                    damos_stats=stats,
                )
    plain = tmp_path / "plain.data"
    records.save(rec, plain)
    args = ("--raw_number", "--dont_merge_regions")
    assert _damo("access", "-i", str(path), *args) == _damo("access", "-i", str(plain), *args)
    out = _damo(
        "access",
        "-i",
        str(path),
        "--raw_number",
        "--format",
        "set",
        "snapshot_head",
        "<damos stats>",
    )
    assert "tried 7 times (28672)" in out and "applied 2 times (8192)" in out
