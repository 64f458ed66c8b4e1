"""Records as columns, and reading a part of a record: some targets, a time
range, an address range (records.load and records.select)."""

import errno
import importlib.util
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from damonx import records, reports
from damonx.cli import main as cli_main
from damonx.errors import DamonxError, InvalidAttrs, InvalidRecord
from damonx.records import Columns, Record, TargetRecord, jsonstream, make_regions
from tests.record_helpers import IV, MS, summary, three_targets

_HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None


def _selection(sel):
    if sel is None:
        return None
    return (
        sel.target_ids,
        sel.time_range,
        sel.address_range,
        sel.start_ns,
        sel.target_ids_read,
        sel.nr_snapshots,
        sel.address_unions,
        {k: v.tolist() for k, v in sel.snapshot_index.items()},
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    rec = three_targets()
    d = tmp_path_factory.mktemp("select")
    out = {}
    for fmt in records.FORMATS + records.DIRECTORY_FORMATS:
        out[fmt] = d / f"r.{fmt}"
        if fmt != "parquet" or _HAS_PYARROW:
            records.save(rec, out[fmt], fmt)
    return rec, out


SELECTIONS = [
    {},
    {"target_ids": [6]},
    {"target_ids": [7, 5, 99]},
    {"time_range": (150 * MS, 420 * MS)},
    {"time_range": (0, 1)},
    {"time_range": (730 * MS, 730 * MS + 1)},  # an instant of target 6
    {"time_range": (10**12, 10**12 + 1)},  # after the end: nothing
    {"address_range": (0x20000, 0x60000)},
    {"address_range": (0x7F0000000000, 2**64)},
    {"target_ids": [5], "time_range": (0, 200 * MS), "address_range": (0x30000, 0x7F0000080000)},
]


@pytest.mark.parametrize("fmt", records.FORMATS + records.DIRECTORY_FORMATS)
@pytest.mark.parametrize("sel", SELECTIONS)
def test_a_part_read_is_the_part_of_the_whole(files, fmt, sel):
    if fmt == "parquet" and not _HAS_PYARROW:
        pytest.skip("parquet needs pyarrow")
    rec, paths = files
    whole = records.load(paths[fmt])
    part = records.load(paths[fmt], **sel)
    chosen = records.select(whole, **sel)
    assert summary(part) == summary(chosen)
    assert _selection(part.selection) == _selection(chosen.selection)
    if not sel:
        assert part.selection is None and summary(part) == summary(whole)
        return
    # the start of the whole record: target 6, even when not kept
    assert part.start_ns == whole.start_ns == 10**9
    assert sorted(part.selection.target_ids_read) == [5, 6, 7]


def test_selection_semantics(files):
    rec, paths = files
    part = records.load(paths["json"], time_range=(150 * MS, 420 * MS), address_range=(0, 2**40))
    sel = part.selection
    assert sel.time_range == (150 * MS, 420 * MS) and sel.address_range == (0, 2**40)
    for t in part.targets:
        c = t.columns()
        start, end = c.start_ns.astype(np.int64) - 10**9, c.end_ns.astype(np.int64) - 10**9
        # overlapping [150 ms, 420 ms) after the record start, whole
        assert ((start < 420 * MS) & ((end > 150 * MS) | (end == start))).all()
        assert ((end - start) % (100 * MS) == 0).all()
        full = rec.target(t.target_id).columns()
        assert sel.nr_snapshots[t.target_id] == full.nr_snapshots
        idx = sel.snapshot_index[t.target_id]
        assert c.start_ns.tolist() == full.start_ns[idx].tolist()
        # only the low range is left, and the coverage is of everything read
        assert (c.regions["end"] <= 2**40).all()
        assert len(sel.address_unions[t.target_id]) == 2
        assert sel.address_unions[t.target_id] == rec.target(t.target_id).address_unions()
    clipped = records.load(paths["json"], address_range=(0x20000, 0x60000))
    r = clipped.target(5).columns().regions
    assert r["start"].min() >= 0x20000 and r["end"].max() <= 0x60000
    assert (r["end"] > r["start"]).all()
    with pytest.raises(InvalidAttrs, match="time range"):
        records.load(paths["json"], time_range=(5, 5))
    with pytest.raises(InvalidAttrs, match="address range"):
        records.load(paths["json"], address_range=(1, "x"))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.integers(0, 4500).map(lambda ms: ms * MS // 1),
    st.integers(1, 1000).map(lambda ms: ms * MS),
    st.sampled_from([None, (0x20000, 0x60000), (0x7F0000001000, 0x7F0000040000)]),
)
def test_heatmaps_of_a_part_are_those_of_the_whole(files, t0, length, arange):
    """A heatmap of a part read for its time and address ranges is, to the
    bit, the heatmap of the whole record over those ranges."""
    rec, paths = files
    whole = records.load(paths["json_compressed"])
    part = records.load(
        paths["json_compressed"],
        time_range=(max(0, t0 - MS), t0 + length + MS),
        address_range=arange,
    )
    for tid in (5, 6):
        a = reports.heatmap(whole, tid, 7, 11, arange, (t0, t0 + length))
        b = reports.heatmap(part, tid, 7, 11, arange, (t0, t0 + length))
        for x, y in zip(a, b):
            assert np.array_equal(x["values"], y["values"], equal_nan=True)
            assert x["address_unions"] == y["address_unions"]
            assert x["address_range"] == y["address_range"]


def test_a_heatmap_of_a_part_without_snapshots(files):
    rec, paths = files
    part = records.load(paths["json"], target_ids=[6], time_range=(10**12, 10**12 + 1))
    assert part.nr_snapshots == 0 and part.selection.nr_snapshots == {6: 40}
    (hm,) = reports.heatmap(part, 6, 2, 3, time_range=(10**12, 10**12 + 1))
    assert np.isnan(hm["values"]).all()
    assert hm["address_unions"] == rec.target(6).address_unions()  # of the whole record
    with pytest.raises(DamonxError, match="no snapshot to span"):
        reports.heatmap(part, 6, 2, 3)


def test_cli_heatmap_reads_only_its_ranges(files, capsys):
    rec, paths = files
    argv = ["heatmap", "-i", str(paths["json"]), "--json", "--resol", "5", "9"]
    argv += ["--time_range", "0.2", "1.55", "--address_range", "0x10000", "0x100000"]
    assert cli_main(["report", *argv]) == 0
    got = json.loads(capsys.readouterr().out)
    want = reports.heatmap(
        records.load(paths["json"]), None, 5, 9, (0x10000, 0x100000), (0.2e9, 1.55e9)
    )
    assert got == reports.to_jsonable(want)


def test_columns_and_the_list_of_snapshots():
    rec = three_targets(nr=6)
    t = rec.target(5)
    cols = t.columns()
    assert cols.nr_snapshots == 6 and cols.nr_regions().tolist() == [8] * 6
    assert cols.snapshot_index().tolist() == [i for i in range(6) for _ in range(8)]
    back = Columns.from_snapshots([cols.snapshot(i) for i in range(6)])
    assert summary(Record(None, [TargetRecord.from_columns(5, back)])) == summary(Record(None, [t]))
    # a slice is views; indices gather
    part = cols.take(slice(2, 5))
    assert part.regions.base is not None and part.offsets.tolist() == [0, 8, 16, 24]
    odd = cols.take([4, 0])
    assert odd.start_ns.tolist() == [cols.start_ns[4], cols.start_ns[0]]
    assert odd.regions.tolist() == cols.snapshot(4).regions.tolist() + cols.regions[:8].tolist()
    assert odd.damos_stats == {0: cols.damos_stats[4], 1: cols.damos_stats[0]}
    assert odd.sample_us == [None, 5000]
    # read columns become a list of snapshots when asked, the regions views
    loaded = records.load(records.dumps(rec, "json"))
    lt = loaded.target(5)
    assert lt.nr_snapshots == 6 and lt.snapshot(-1).end_ns == t.snapshot(-1).end_ns
    assert lt.address_unions() == t.address_unions() == reports.address_unions(t)
    snaps = lt.snapshots
    assert isinstance(snaps, list) and snaps[0].regions.base is not None
    snaps[0].regions = make_regions([(0, 4096, 20)])  # the list is what counts now
    del snaps[1:]
    assert lt.nr_snapshots == 1 and lt.address_unions() == [[0, 4096]]
    assert reports.nr_regions(Record(IV, [lt]))[0]["nr_regions"] == [1]
    flat = lt.regions()
    assert flat.tolist() == [(0, 0, 4096, 20, 0)]
    with pytest.raises(IndexError):
        loaded.target(6).snapshot(6)


def test_a_part_of_a_damaged_file(files):
    rec, paths = files
    data = paths["json_compressed"].read_bytes()
    with pytest.raises(InvalidRecord) as ei:
        records.load(data[: len(data) // 2], target_ids=[6], address_range=(0, 0x60000))
    part = ei.value.partial
    assert part.target_ids == [6] and part.nr_snapshots > 0
    r = part.target(6).columns().regions
    assert r["end"].max() <= 0x60000
    back = records.load(data[: len(data) // 2], partial_ok=True, target_ids=[6])
    assert back.warning and back.target_ids == [6]


@pytest.mark.parametrize("cut", [None, 0.3, 0.7])
def test_decompressing_in_a_thread_reads_the_same(cut):
    rec = three_targets(seed=9, nr=300)
    data = records.dumps(rec, "json_compressed")
    if cut is not None:
        data = data[: int(len(data) * cut)]
    outcomes = []
    for prefetch in (False, True):
        try:
            got = jsonstream.parse(data, True, prefetch=prefetch)
            outcomes.append(("ok", summary(got)))
        except InvalidRecord as err:
            outcomes.append((str(err), err.offset, summary(err.partial)))
    assert outcomes[0] == outcomes[1]


def test_files_are_read_in_pieces(files, monkeypatch):
    """A file is read as the reader goes (never held whole), and a failure
    to read it on the way is a DamonxError, not a traceback."""
    rec, paths = files
    path = paths["json_compressed"]
    assert summary(records.load(path)) == summary(records.load(path.read_bytes()))
    reads = []
    real_pread = os.pread

    def pread(fd, n, offset):
        reads.append(n)
        if len(reads) > 3:
            raise OSError(errno.EIO, "Input/output error")
        return real_pread(fd, n, offset)

    monkeypatch.setattr(os, "pread", pread)
    jsonstream._TextSource.CHUNK, chunk = 4096, jsonstream._TextSource.CHUNK
    try:
        with pytest.raises(DamonxError, match="cannot read the record.*Input/output error"):
            records.load(path)
    finally:
        jsonstream._TextSource.CHUNK = chunk
    assert max(reads) <= 4096 < path.stat().st_size
