"""Record model, readers and the streaming writer."""

import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib

import numpy as np
import pytest

from damonx import errors, records
from damonx.attrs import Intervals
from damonx.dtypes import REGION_DTYPE
from damonx.errors import DamonxError, InvalidRecord
from damonx.records import (
    Record,
    RecordWriter,
    TargetRecord,
    TargetSnapshot,
    detect,
    load,
    make_regions,
)

DATA = os.path.join(os.path.dirname(__file__), "data")
IV = Intervals(5000, 100000, 1000000)
SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def sample_record(nr_targets=2, nr_snapshots=3, meta=None):
    targets = []
    for tid in range(nr_targets):
        snaps = []
        for i in range(nr_snapshots):
            regs = make_regions(
                [(4096 * 10 * k, 4096 * 10 * (k + 1), k * 3 + i + tid, i + k) for k in range(4)]
            )
            snaps.append(TargetSnapshot(i * 100_000_000, (i + 1) * 100_000_000, regs))
        targets.append(TargetRecord(tid + 100, snaps))
    return Record(
        IV, targets, meta or {"ops": "sim", "workload": {"size": 163840, "page_size": 4096}}
    )


def assert_same(a, b, ages=True, times=True):
    assert [t.target_id for t in a.targets] == [t.target_id for t in b.targets]
    for ta, tb in zip(a.targets, b.targets):
        assert len(ta.snapshots) == len(tb.snapshots)
        for sa, sb in zip(ta.snapshots, tb.snapshots):
            if times:
                assert (sa.start_ns, sa.end_ns) == (sb.start_ns, sb.end_ns)
            assert sb.end_ns == sa.end_ns
            for f in ("start", "end", "nr_accesses") + (("age",) if ages else ()):
                np.testing.assert_array_equal(sa.regions[f], sb.regions[f])


@pytest.mark.parametrize("fmt", ["json_compressed", "json"])
def test_roundtrip_json(tmp_path, fmt):
    rec = sample_record()
    records.save(rec, tmp_path / "r", fmt)
    back = load(tmp_path / "r")
    assert back.complete and back.intervals == IV and back.meta == rec.meta
    assert_same(rec, back)
    assert load(records.dumps(rec, fmt)).nr_snapshots == 6


@pytest.mark.parametrize("fmt", ["json_compressed", "json"])
def test_snapshot_extras_round_trip(tmp_path, fmt):
    # the sampling interval in effect, the access checks and the scheme
    # statistics of each snapshot are kept by the JSON formats
    stats = [
        {
            "nr_tried": 3,
            "sz_tried": 12288,
            "nr_applied": 1,
            "sz_applied": 4096,
            "qt_exceeds": 0,
            "nr_failed": 2,
        },
        {"nr_tried": 1, "sz_tried": 4096},
    ]
    regions = make_regions([(0x1000, 0x3000, 4, 2)])
    with records.RecordWriter(tmp_path / "r", fmt, intervals=IV) as w:
        w.add_snapshot(1, 0, 100, regions, sample_us=5000, nr_checks=40, damos_stats=stats)
        w.add_snapshot(1, 100, 300, regions, sample_us=10000)
        w.add_snapshot(1, 300, 400, regions)
    snaps = load(tmp_path / "r").target(1).snapshots
    assert [(s.sample_us, s.nr_checks) for s in snaps] == [(5000, 40), (10000, None), (None, None)]
    assert snaps[0].damos_stats == stats and snaps[1].damos_stats is None


def test_snapshot_extras_of_damo(tmp_path):
    # damo writes one scheme's statistics and the interval as text
    text = (
        '[{"target_id": 0, "intervals": {"sample_us": 5000, "aggr_us": 100000, '
        '"ops_update_us": 1000000}, "snapshots": [{"start_time": 0, "end_time": 100, '
        '"regions": [], "sample_interval_us": "5 ms", "damos_stats": {"nr_tried": "1,024", '
        '"sz_tried": "4 KiB", "nr_applied": 0, "sz_applied": 0, "sz_ops_filter_passed": 0, '
        '"qt_exceeds": 0}}]}]'
    )
    snap = load(text.encode()).target(0).snapshots[0]
    assert snap.sample_us == 5000
    assert snap.damos_stats[0]["nr_tried"] == 1024 and snap.damos_stats[0]["sz_tried"] == 4096


def test_writer_refuses_bad_extras(tmp_path):
    with records.RecordWriter(tmp_path / "r", intervals=IV) as w:
        regions = make_regions([(0x1000, 0x3000, 4, 2)])
        with pytest.raises(errors.InvalidAttrs, match="nr_checks"):
            w.add_snapshot(1, 0, 100, regions, nr_checks=-1)
        with pytest.raises(errors.InvalidAttrs, match="damos_stats"):
            w.add_snapshot(1, 0, 100, regions, damos_stats=[{"nr_tried": "x"}])
        w.add_snapshot(1, 0, 100, regions)


@pytest.mark.parametrize("version", [1, 2])
def test_roundtrip_binary_loses_age_and_intervals(tmp_path, version):
    rec = sample_record()
    data = records.dumps(rec, "binary", binary_version=version)
    assert data.startswith(b"damon_recfmt_ver") and struct.unpack_from("<i", data, 16)[0] == version
    back = load(data)
    assert back.intervals is None and back.meta == {}
    assert_same(rec, back, ages=False)
    assert all((s.regions["age"] == 0).all() for t in back.targets for s in t.snapshots)


def test_detect_by_bytes_not_name(tmp_path):
    rec = sample_record(1, 2)
    for fmt in records.FORMATS:
        p = tmp_path / "misleading.json"
        p.write_bytes(records.dumps(rec, fmt))
        assert records.detect_format(p.read_bytes()) == fmt
        assert load(p).nr_snapshots == 2


def test_seed_binary_v1_golden():
    rec = load(os.path.join(DATA, "seed-v1.bin"))
    (t,) = rec.targets
    assert t.target_id == 42 and len(t.snapshots) == 2
    assert t.snapshots[1].end_ns == 10_100_000_000
    # the first snapshot has no start in the format: the mean length is used
    assert t.snapshots[0].start_ns == 9_900_000_000
    assert t.snapshots[0].regions["nr_accesses"].tolist() == [3, 0]


def test_binary_times_that_go_back_give_the_first_snapshot_no_length():
    """A damaged file whose times decrease, the first near the end of the
    unsigned range, still loads: the first snapshot then lasts 0 ns."""
    from damonx.records import binary

    regions = make_regions([(4096, 8192, 1, 0)])
    first = (2**64 - 1) // 10**9 * 10**9  # whole seconds below the u64 limit
    data = binary.header(2) + b"".join(
        binary.encode_aggregation(t, [(7, regions)], 2) for t in (first, 10**9)
    )
    (t,) = load(data).targets
    assert t.snapshots[0].start_ns == t.snapshots[0].end_ns == first


def test_reads_damo_written_text_numbers():
    rec = load(os.path.join(DATA, "damo-3.4.3-two-targets.data"))
    assert rec.intervals == IV
    assert rec.target_ids == [0, 1]
    s = rec.targets[1].snapshots[2]
    assert s.regions["end"].tolist() == [40960, 81920, 122880, 163840]  # "40,960" in file
    assert s.regions["nr_accesses"].tolist() == [2, 5, 8, 11]
    assert s.regions["age"].tolist() == [2, 3, 4, 5]


def test_percent_and_usec_only_regions():
    doc = (
        '[{"target_id": 1, "intervals": {"sample_us": "5 ms", "aggr_us": 100000, '
        '"ops_update_us": 1000000}, "snapshots": [{"start_time": "1 s", "end_time": '
        '"1.100 s", "regions": [{"start": "4 KiB", "end": "8,192", "nr_accesses": '
        '{"samples": null, "percent": 50}, "age": {"usec": 300000, "aggr_intervals": '
        "null}}]}]}]"
    )
    rec = load(doc.encode())
    assert rec.intervals == IV
    s = rec.targets[0].snapshots[0]
    assert (s.start_ns, s.end_ns) == (1_000_000_000, 1_100_000_000)
    assert s.regions.tolist() == [(4096, 8192, 10, 3)]


@pytest.mark.parametrize(
    "start,end,age_usec,expected",
    [
        ('"1 m 3.500 s"', '"1 m 3.600 s"', '"300 ms"', (63_500_000_000, 63_600_000_000, 3)),
        ('"1,000"', "2000.0", '"0.3 s"', (1000, 2000, 3)),
    ],
)
def test_human_readable_times_and_ages(start, end, age_usec, expected):
    doc = (
        '[{"target_id": 1, "intervals": {"sample_us": "5,000", "aggr_us": "100 ms", '
        f'"ops_update_us": "1 s"}}, "snapshots": [{{"start_time": {start}, "end_time": {end}, '
        '"regions": [{"start": "1 MiB", "end": "2MiB", "nr_accesses": {"percent": "25 %"}, '
        f'"age": {{"usec": {age_usec}}}}}]}}]}}]'
    )
    rec = load(doc.encode())
    assert rec.intervals == IV
    s = rec.targets[0].snapshots[0]
    assert (s.start_ns, s.end_ns, int(s.regions["age"][0])) == expected
    assert s.regions[["start", "end", "nr_accesses"]].tolist() == [(1 << 20, 2 << 20, 5)]


@pytest.mark.parametrize(
    "value,reason",
    [
        ('"99999999999 d"', "too large"),
        ('"-1 s"', "negative"),
        ('"5 parsecs"', "not a number"),
        ('"nan"', "not a finite number"),
        ("1e400", "not a finite number"),
    ],
)
def test_bad_human_readable_numbers_are_corruption(value, reason):
    snapshot = f'{{"start_time": {value}, "end_time": 0, "regions": []}}'
    doc = f'[{{"target_id": 1, "snapshots": [{snapshot}]}}]'
    with pytest.raises(InvalidRecord, match=f"corrupted: .*{reason}.*snapshot 0 of target 1"):
        load(doc.encode())


def test_arrays_and_helpers():
    rec = sample_record(1, 3)
    t = rec.targets[0]
    times = t.times()
    assert times["start_ns"].tolist() == [0, 100_000_000, 200_000_000]
    flat = t.regions()
    assert len(flat) == 12 and flat["snapshot"].tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert flat["nr_accesses"][4:8].tolist() == t.snapshots[1].regions["nr_accesses"].tolist()
    assert rec.target(100) is t
    with pytest.raises(DamonxError, match="no target 5"):
        rec.target(5)


def test_to_dataframe_needs_pandas_or_works(monkeypatch):
    rec = sample_record(1, 2)
    try:
        import pandas  # noqa: F401
    except ImportError:
        with pytest.raises(DamonxError, match="pip install pandas"):
            rec.to_dataframe()
    else:
        df = rec.to_dataframe()
        assert len(df) == 8 and set(df["target_id"]) == {100}
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(DamonxError, match="pip install pandas"):
        rec.to_dataframe()


@pytest.mark.parametrize("fmt", records.FORMATS)
def test_truncation_gives_partial_prefix(fmt):
    rng = np.random.default_rng(1)
    rec = sample_record(1, 5)
    for s in rec.targets[0].snapshots:  # incompressible enough to cut mid-way
        s.regions = make_regions(
            [
                (k * 4096, (k + 1) * 4096, int(rng.integers(0, 20)), int(rng.integers(0, 1000)))
                for k in range(200)
            ]
        )
    data = records.dumps(rec, fmt)
    cut = data[: len(data) * 2 // 3]
    with pytest.raises(InvalidRecord) as ei:
        load(cut)
    err = ei.value
    assert "truncated" in str(err) or "corrupted" in str(err)
    assert err.offset is not None
    part = err.partial
    assert 0 < part.nr_snapshots < 5
    full = rec.targets[0].snapshots
    for a, b in zip(full, part.targets[0].snapshots):
        assert a.regions.tolist() == b.regions.tolist() or fmt == "binary"
    back = load(cut, partial_ok=True)
    assert back.warning and not back.complete and back.nr_snapshots == part.nr_snapshots


def test_errors_name_the_place():
    data = records.dumps(sample_record(1, 3), "json")
    bad = data.replace(b'"end":81920', b'"end":"x"', 1)
    with pytest.raises(InvalidRecord, match=r"snapshot 0 of target 100") as ei:
        load(bad)
    assert ei.value.partial.nr_snapshots == 0
    with pytest.raises(InvalidRecord, match="unknown record format"):
        load(b"hello")
    with pytest.raises(InvalidRecord, match="empty"):
        load(b"")
    with pytest.raises(errors.FileNotFound, match="No such file") as ei:
        load("/nonexistent/record")
    assert isinstance(ei.value, FileNotFoundError)


def test_unreadable_files_raise_damonx_errors(tmp_path, monkeypatch):
    # a directory is read as a Parquet recording; an empty one is none
    with pytest.raises(InvalidRecord, match="an empty directory, not a record"):
        load(tmp_path)

    def denied(path, mode="r"):
        raise PermissionError(13, "Permission denied", path)

    # root reads any file: the denial is simulated
    monkeypatch.setattr(detect, "open", denied, raising=False)
    with pytest.raises(errors.AccessDenied, match="cannot read the record") as ei:
        load(tmp_path / "r")
    assert isinstance(ei.value, PermissionError)


def test_writer_streams_and_regroups_interleaved_targets(tmp_path):
    p = tmp_path / "rec.data"
    rec = sample_record(2, 4)
    with RecordWriter(p, intervals=IV, meta=rec.meta) as w:
        for i in range(4):
            for t in rec.targets:
                s = t.snapshots[i]
                w.add_snapshot(t.target_id, s.start_ns, s.end_ns, s.regions)
        # before close the streamed file already reads, target chunks joined
        w.flush()
        mid = load(p, partial_ok=True)
        assert mid.nr_snapshots == 8 and not mid.complete
    raw = zlib.decompress(p.read_bytes())
    assert raw.count(b'"target_id"') == 2  # one object per target after close
    back = load(p)
    assert back.complete and back.meta == rec.meta
    assert_same(rec, back)
    assert not [f for f in os.listdir(tmp_path) if f != "rec.data"]


def test_writer_refuses_existing_and_bad_input(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"keep me")
    with pytest.raises(errors.FileExists, match="exists; remove it or pass overwrite=True"):
        RecordWriter(p)
    with pytest.raises(FileExistsError):
        records.save(sample_record(), p)
    assert p.read_bytes() == b"keep me"
    with pytest.raises(errors.FileNotFound, match="cannot create"):
        RecordWriter(tmp_path / "no" / "dir")
    with pytest.raises(errors.InvalidAttrs, match="unknown record format"):
        RecordWriter(tmp_path / "y", format="yaml")
    with pytest.raises(errors.InvalidAttrs, match="binary_version"):
        records.dumps(sample_record(), "binary", binary_version=3)
    with pytest.raises(errors.InvalidAttrs, match="JSON-serialisable"):
        RecordWriter(tmp_path / "y", meta={"f": object()})
    assert not (tmp_path / "y").exists()  # bad arguments create no file
    with RecordWriter(tmp_path / "z", format="binary", binary_version=1) as w:
        with pytest.raises(errors.InvalidAttrs, match="bad snapshot times"):
            w.add_snapshot(1, 10, 5, np.zeros(0, REGION_DTYPE))
        with pytest.raises(errors.InvalidAttrs, match="does not fit binary version 1"):
            w.add_snapshot(2**40, 0, 5, np.zeros(0, REGION_DTYPE))
        with pytest.raises(errors.InvalidAttrs, match="lacks field"):
            w.add_snapshot(1, 0, 5, np.zeros(1, [("start", "<u8")]))
    with pytest.raises(DamonxError, match="closed"):
        w.add_snapshot(1, 0, 5, np.zeros(0, REGION_DTYPE))


def test_public_names():
    for name in (
        "load",
        "save",
        "dumps",
        "Record",
        "TargetRecord",
        "TargetSnapshot",
        "RecordWriter",
        "detect_format",
        "make_regions",
        "FLAT_REGION_DTYPE",
        "SNAPSHOT_TIME_DTYPE",
        "FORMATS",
        "BINARY_MAGIC",
    ):
        assert hasattr(records, name), name
    # a monitor.Snapshot holds every target; one target's is a TargetSnapshot
    assert not hasattr(records, "Snapshot")
    assert records.BINARY_MAGIC == b"damon_recfmt_ver"


@pytest.mark.parametrize("fmt", records.FORMATS)
def test_streamed_file_is_what_dumps_writes(tmp_path, fmt):
    """The writer and dumps share one encoder per format: a record streamed
    target after target (nothing to regroup) is the same document."""
    rec = sample_record(2, 3)
    p = tmp_path / "r"
    with RecordWriter(p, fmt, intervals=IV, meta=rec.meta) as w:
        for t in rec.targets:
            for s in t.snapshots:
                w.add_snapshot(t.target_id, s.start_ns, s.end_ns, s.regions)
    streamed, dumped = p.read_bytes(), records.dumps(rec, fmt)
    if fmt == "json_compressed":  # the stream has sync points; the text is the same
        streamed, dumped = zlib.decompress(streamed), zlib.decompress(dumped)
    if fmt == "binary":
        # aggregations come in arrival order from the writer, by end time from
        # dumps (one per time, both targets in it); they read back the same
        assert len(streamed) > len(dumped)
        assert_same(load(streamed), load(dumped))
        assert_same(load(streamed), rec, ages=False)
    else:
        assert streamed == dumped


def test_writer_meta_is_written_with_the_first_snapshot(tmp_path):
    p = tmp_path / "r"
    with RecordWriter(p, intervals=IV, meta={"ops": "sim"}) as w:
        w.meta.update({"pids": [1]})  # as damonx record does, before any snapshot
        w.add_snapshot(1, 0, 10, make_regions([(0, 4096, 1)]))
    assert load(p).meta == {"ops": "sim", "pids": [1]}
    with RecordWriter(p, intervals=IV, meta={"ops": "sim"}, overwrite=True) as w:
        w.meta = {"ops": "vaddr"}
        w.add_snapshot(1, 0, 10, make_regions([(0, 4096, 1)]))
    assert load(p).meta == {"ops": "vaddr"}


def test_rewritten_files_get_the_usual_permissions(tmp_path):
    """save() and the regrouping of interleaved targets write a temporary
    file renamed over the target: it is created like any file (0666 less the
    umask), not with a temporary file's 0600."""
    old = os.umask(0o022)
    try:
        records.save(sample_record(), tmp_path / "saved")
        with RecordWriter(tmp_path / "regrouped", intervals=IV) as w:
            for tid in (1, 2, 1):
                w.add_snapshot(tid, 0, 10, make_regions([(0, 4096, 1)]))
    finally:
        os.umask(old)
    for name in ("saved", "regrouped"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644
    assert zlib.decompress((tmp_path / "regrouped").read_bytes()).count(b'"target_id"') == 2
    assert sorted(os.listdir(tmp_path)) == ["regrouped", "saved"]


def test_writer_flushes_after_interval(tmp_path):
    p = tmp_path / "r"
    w = RecordWriter(p, intervals=IV, flush_interval_s=0.0)
    regs = make_regions([(0, 4096, 1)])
    w.add_snapshot(1, 0, 100, regs)
    assert load(p, partial_ok=True).nr_snapshots == 1
    w.close()


WRITER_SCRIPT = textwrap.dedent("""
    import sys, time
    from damonx.records import RecordWriter, make_regions
    from damonx.attrs import Intervals
    w = RecordWriter(sys.argv[1], format=sys.argv[2], intervals=Intervals(5000, 100000, 1000000),
                     flush_interval_s=0.2)
    i = 0
    while True:
        for tid in (1, 2):
            w.add_snapshot(tid, i * 1000, (i + 1) * 1000, make_regions([(0, 4096, i % 20, i)]))
        i += 1
        if i == 30:
            print("ready", flush=True)
        time.sleep(0.01)
""")


@pytest.mark.parametrize("fmt", records.FORMATS)
def test_killed_writer_leaves_readable_prefix(tmp_path, fmt):
    p = tmp_path / "killed.data"
    env = dict(os.environ, PYTHONPATH=SRC)
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(p), fmt], stdout=subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(0.5)  # more than flush_interval_s after the first 30
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    if fmt != "binary":
        # the binary format has no end marker: a cut between aggregations
        # looks complete
        with pytest.raises(InvalidRecord):
            load(p)
    rec = load(p, partial_ok=True)
    assert rec.warning or fmt == "binary"
    assert rec.target_ids == [1, 2]
    for t in rec.targets:
        assert len(t.snapshots) >= 30
        assert [s.end_ns for s in t.snapshots] == [(i + 1) * 1000 for i in range(len(t.snapshots))]
