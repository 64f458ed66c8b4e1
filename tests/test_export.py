"""Records as Arrow tables and Parquet files, read back without damonx
(pyarrow, pandas, DuckDB), and the fleet example against damonx's reports."""

import importlib.util
import json
import sys

import numpy as np
import pytest

from damonx import records, reports
from damonx.attrs import Intervals
from damonx.errors import DamonxError
from damonx.records import Record, TargetRecord, TargetSnapshot, make_regions
from tests.cli_helpers import ROOT, one_error_line, run, sim_record
from tests.record_helpers import IV, three_targets

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def test_one_row_per_region_per_snapshot_from_the_columns():
    rec = three_targets()
    table = rec.to_arrow()
    assert table.num_rows == sum(len(t.columns().regions) for t in rec.targets)
    got = table.to_pydict()
    row = 0
    for t in rec.targets:
        cols = t.columns()
        for i in range(cols.nr_snapshots):
            snap = cols.snapshot(i)
            for r in snap.regions:
                assert got["target_id"][row] == t.target_id
                assert got["snapshot"][row] == i
                assert got["snapshot_start_ns"][row] == snap.start_ns
                assert got["snapshot_end_ns"][row] == snap.end_ns
                assert (got["start"][row], got["end"][row]) == (int(r["start"]), int(r["end"]))
                assert got["size"][row] == int(r["end"] - r["start"])
                assert (got["nr_accesses"][row], got["age"][row]) == (r["nr_accesses"], r["age"])
                # the record's intervals where the snapshot does not say its own
                assert got["sample_us"][row] == 5000
                assert got["aggr_us"][row] == 100000
                assert got["nr_checks"][row] == snap.nr_checks
                want = snap.damos_stats and [
                    {"nr_tried": s["nr_tried"], "sz_tried": s["sz_tried"]} for s in snap.damos_stats
                ]
                assert got["damos_stats"][row] == want
                row += 1
    assert table.schema.field("start").type == pa.int64()
    assert table.schema.field("nr_accesses").type == pa.uint32()


def test_unknowns_are_null_and_absent_never_made_up():
    snaps = [
        TargetSnapshot(0, 10, make_regions([(0, 4096, 1, 0)]), sample_us=5000),
        TargetSnapshot(10, 20, make_regions([(0, 4096, 2, 0)]), sample_us=10000),
    ]
    rec = Record(IV, [TargetRecord(3, snaps)], {})
    got = rec.to_arrow().to_pydict()
    # the second snapshot's sampling interval is not the record's: its
    # aggregation interval is not recorded
    assert got["sample_us"] == [5000, 10000] and got["aggr_us"] == [100000, None]
    assert got["nr_checks"] == [None, None] and "damos_stats" not in got
    meta = {k.decode(): v.decode() for k, v in rec.to_arrow().schema.metadata.items()}
    assert "damonx.host" not in meta and "damonx.ops" not in meta
    assert json.loads(meta["damonx.targets"]) == [{"target_id": 3}]
    assert json.loads(meta["damonx.intervals"])["aggr_us"] == 100000
    # a binary record has no intervals: no sample_us, aggr_us or intervals key
    rec.intervals = None
    table = rec.to_arrow(host="h1")
    assert table.column("aggr_us").null_count == 2
    assert table.column("sample_us").to_pylist() == [5000, 10000]
    meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
    assert "damonx.intervals" not in meta and meta["damonx.host"] == "h1"


def test_empty_and_wide_values():
    assert Record(IV, []).to_arrow().num_rows == 0
    big = 2**64 - 4096
    rec = Record(
        IV, [TargetRecord(2**63 + 1, [TargetSnapshot(0, 1, make_regions([(big, big + 4095, 0)]))])]
    )
    t = rec.to_arrow()
    assert t.schema.field("start").type == pa.uint64() and t.column("start")[0].as_py() == big
    assert t.column("target_id")[0].as_py() == 2**63 + 1


def test_recorded_provenance_goes_to_the_metadata(tmp_path, capsys):
    data, out = tmp_path / "r.data", tmp_path / "r.parquet"
    assert sim_record(capsys, data)[0] == 0
    status, _, err = run(capsys, "export", "-i", data, "-o", out)
    assert status == 0, err
    meta = {k.decode(): v.decode() for k, v in pq.read_schema(out).metadata.items()}
    assert meta["damonx.ops"] == "sim" and meta["damonx.backend"] == "page_idle"
    assert meta["damonx.host"] and meta["damonx.version"]
    # pandas reads it; the rows are the record's
    df = pytest.importorskip("pandas").read_parquet(out)
    rec = records.load(data)
    assert len(df) == len(rec.targets[0].columns().regions)
    assert (df["size"] == df["end"] - df["start"]).all()
    # an existing output needs --overwrite
    status, _, err = run(capsys, "export", "-i", data, "-o", out)
    assert status == 1 and "exists" in one_error_line(err, "export")
    assert run(capsys, "export", "-i", data, "-o", out, "--overwrite")[0] == 0


def test_a_process_target_carries_pid_comm_and_cmdline():
    meta = {
        "ops": "vaddr",
        "pids": [42],
        "processes": {"42": {"comm": "db", "cmdline": ["db", "-x"]}},
    }
    rec = Record(IV, [TargetRecord(42, [TargetSnapshot(0, 1, make_regions([(0, 4096, 0)]))])], meta)
    meta = {k.decode(): v.decode() for k, v in rec.to_arrow().schema.metadata.items()}
    assert json.loads(meta["damonx.targets"]) == [
        {"target_id": 42, "pid": 42, "comm": "db", "cmdline": ["db", "-x"]}
    ]


def test_without_pyarrow_a_clear_error(monkeypatch, tmp_path, capsys):
    data = tmp_path / "r.data"
    assert sim_record(capsys, data)[0] == 0
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    with pytest.raises(DamonxError, match=r"pip install 'damonx\[arrow\]'"):
        records.load(data).to_arrow()
    status, _, err = run(capsys, "export", "-i", data, "-o", tmp_path / "x.parquet")
    assert status == 1 and "damonx[arrow]" in one_error_line(err, "export")
    assert not (tmp_path / "x.parquet").exists()


def _fleet_example():
    spec = importlib.util.spec_from_file_location("fleet_cold", ROOT / "examples" / "fleet_cold.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_record_to_parquet_to_duckdb_matches_the_wss_report(tmp_path, capsys):
    """The README's fleet example (DuckDB over a hive layout of two hosts)
    gives the cold memory that damonx's own reports give."""
    pytest.importorskip("duckdb")
    fleet = tmp_path / "fleet"
    want = {}
    for host, workload in (("alpha", "hot-cold.json"), ("beta", "moving-hot.json")):
        data = tmp_path / f"{host}.data"
        argv = ["record", "--ops", "sim", "--workload", ROOT / "examples" / workload]
        status, _, err = run(capsys, *argv, "--timeout", "3", "-o", data, "--quiet")
        assert status == 0, err
        status, _, err = run(capsys, "export", "-i", data, "--hive", fleet, "--host", host)
        assert status == 0, err
        rec = records.load(data)
        wss = reports.wss(rec)[0]["wss"]
        footprint = reports.footprint(rec)[0]["footprint"]
        want[host] = float(np.mean(np.subtract(footprint, wss)))
        assert (fleet / f"host={host}" / "target=0" / "part.parquet").is_file()
    rows = _fleet_example().cold_per_host(str(fleet))
    assert [r[0] for r in rows] == ["alpha", "beta"]
    for host, targets, cold, fraction in rows:
        assert targets == 1
        assert cold == pytest.approx(want[host], rel=1e-12)
        assert 0 < fraction < 1
    # the simulated hot set is 128 MiB of 1 GiB: most of it is cold
    assert 0.7 < rows[0][3] < 0.95
    # pandas (and Polars, when installed) read the directory as one dataset
    pd = pytest.importorskip("pandas")
    df = pd.read_parquet(fleet)
    assert sorted(df["host"].astype(str).unique()) == ["alpha", "beta"]
    assert len(df) == sum(
        len(records.load(tmp_path / f"{h}.data").targets[0].columns().regions) for h in want
    )
    try:
        import polars as pl
    except ImportError:
        return
    frame = pl.scan_parquet(f"{fleet}/**/*.parquet", hive_partitioning=True).collect()
    assert frame.height == len(df) and set(frame["host"].to_list()) == {"alpha", "beta"}


def test_hive_needs_a_host_and_keeps_files(tmp_path, capsys):
    rec = Record(
        Intervals(5000, 100000, 1000000),
        [TargetRecord(1, [TargetSnapshot(0, 1, make_regions([(0, 4096, 0)]))])],
    )
    data = tmp_path / "r.data"
    records.save(rec, data)
    status, _, err = run(capsys, "export", "-i", data, "--hive", tmp_path / "h")
    assert status == 1 and "--host" in one_error_line(err, "export")
    assert run(capsys, "export", "-i", data, "--hive", tmp_path / "h", "--host", "a/b c")[0] == 0
    part = tmp_path / "h" / "host=a%2Fb%20c" / "target=1" / "part.parquet"
    assert pq.read_table(part).num_rows == 1
    status, _, err = run(capsys, "export", "-i", data, "--hive", tmp_path / "h", "--host", "a/b c")
    assert status == 1 and "--overwrite" in one_error_line(err, "export")


def _spark_types(path):
    """Each leaf column of a Parquet file as the Spark SQL type Spark (3.2
    and later) reads it as, by Spark's rules; None for a type outside them."""
    out = {}
    schema = pq.ParquetFile(path).schema
    for i in range(len(schema)):
        col = schema.column(i)
        logical = json.loads(col.logical_type.to_json())
        signed = logical.get("isSigned", True)
        if col.physical_type == "INT64" and logical["Type"] == "None":
            out[col.path] = "bigint"
        elif col.physical_type == "INT32" and logical.get("bitWidth") == 32:
            out[col.path] = "int" if signed else "bigint"
        elif col.physical_type == "INT64" and logical["Type"] == "Int" and not signed:
            out[col.path] = "decimal(20,0)"
        else:
            out[col.path] = None
    return out


def test_every_column_is_one_spark_reads_as_bigint(tmp_path, capsys):
    """Spark has no unsigned types: it reads a signed int64 and an unsigned
    int32 as bigint, an unsigned int64 as decimal(20,0), and a column that is
    all null must still have a type. The three outputs hold no other."""
    data, rec_dir = tmp_path / "r.data", tmp_path / "rec"
    schemes = ("--damos_action", "stat", "--damos_quotas", "0", "32M", "100")
    assert sim_record(capsys, data, *schemes)[0] == 0
    assert sim_record(capsys, rec_dir, "--format", "parquet", *schemes)[0] == 0
    assert run(capsys, "export", "-i", data, "-o", tmp_path / "one.parquet")[0] == 0
    assert run(capsys, "export", "-i", data, "--hive", tmp_path / "h", "--host", "a")[0] == 0
    files = [tmp_path / "one.parquet", tmp_path / "h" / "host=a" / "target=0" / "part.parquet"]
    files += sorted(rec_dir.glob("part-*.parquet"))
    for path in files:
        types = _spark_types(path)
        assert "damos_stats.list.element.sz_tried" in types
        assert set(types.values()) == {"bigint"}, (path, types)
    # a record with no intervals of its own: null sample_us, still int64
    rec = Record(None, [TargetRecord(1, [TargetSnapshot(0, 1, make_regions([(0, 4096, 1)]))])])
    pq.write_table(rec.to_arrow(), tmp_path / "n.parquet")
    assert set(_spark_types(tmp_path / "n.parquet").values()) == {"bigint"}
    # only a value that needs the 64th bit makes a column unsigned 64-bit
    big = 2**64 - 4096
    wide = Record(
        IV, [TargetRecord(1, [TargetSnapshot(0, 1, make_regions([(big, big + 4095, 0)]))])]
    )
    pq.write_table(wide.to_arrow(), tmp_path / "w.parquet")
    types = _spark_types(tmp_path / "w.parquet")
    assert {k for k, v in types.items() if v != "bigint"} == {"start", "end"}
    assert types["start"] == "decimal(20,0)"
