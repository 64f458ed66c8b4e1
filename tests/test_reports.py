"""Reports, their CLI and the images, including golden outputs."""

import json
import os

import numpy as np
import pytest

from damonx import records, reports
from damonx.cli import main as cli_main
from damonx.errors import DamonxError
from damonx.records import Record, TargetSnapshot, TargetRecord, make_regions
from damonx.attrs import Intervals

DATA = os.path.join(os.path.dirname(__file__), "data")
DAMO_FILE = os.path.join(DATA, "damo-3.4.3-two-targets.data")
IV = Intervals(5000, 100000, 1000000)
MiB = 1 << 20


def rec_of(snaps, iv=IV, tid=7):
    return Record(iv, [TargetRecord(tid, snaps)], {})


def snap(i, rows, length=100_000_000):
    return TargetSnapshot(i * length, (i + 1) * length, make_regions(rows))


def run_cli(capsys, *argv):
    rc = cli_main(["report", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("name,argv", [
    ("damo-3.4.3-two-targets.raw", ["raw", "-i", DAMO_FILE]),
    ("damo-3.4.3-two-targets.wss", ["wss", "-i", DAMO_FILE, "--raw_number"]),
    ("damo-3.4.3-two-targets.heatmap", ["heatmap", "--resol", "3", "8", "--color", "none",
                                        "-i", DAMO_FILE, "--target_id", "1"]),
    ("seed-v1.raw", ["raw", "-i", os.path.join(DATA, "seed-v1.bin")]),
])
def test_golden(capsys, name, argv):
    rc, out, _ = run_cli(capsys, *argv)
    assert rc == 0
    with open(os.path.join(DATA, name + ".expected")) as f:
        assert out == f.read()


def test_access_rates_ages_totals():
    r = rec_of([snap(0, [(0, MiB, 10, 3), (MiB, 3 * MiB, 0, 7)])])
    (a,) = reports.access(r)
    assert a["nr_regions"] == 2 and a["total_size"] == 3 * MiB and a["accessed_size"] == MiB
    assert a["regions"][0]["access_rate"] == pytest.approx(50.0)  # 10 of 20 samples
    assert a["regions"][1]["age_us"] == 700_000
    assert a["mean_access_rate"] == pytest.approx(50.0 / 3)
    by_size = reports.access(r, sortby="size")[0]["regions"]
    assert by_size[0]["size"] == 2 * MiB
    with pytest.raises(DamonxError, match="out of range"):
        reports.access(r, snapshot=1)
    no_iv = rec_of(r.targets[0].snapshots, iv=None)
    assert reports.access(no_iv)[0]["regions"][0]["access_rate"] is None


def test_wss_threshold_percentiles_and_series():
    snaps = [snap(i, [(0, MiB, i % 3), (MiB, 2 * MiB, 5)]) for i in range(10)]
    r = rec_of(snaps)
    (w,) = reports.wss(r)
    assert w["wss"] == [MiB if i % 3 == 0 else 2 * MiB for i in range(10)]
    pct = dict(map(tuple, w["distribution"]["percentiles"]))
    # damo's definition: sorted[min(int(p/100*n), n-1)]
    assert pct == {0: MiB, 25: MiB, 50: 2 * MiB, 75: 2 * MiB, 100: 2 * MiB}
    (w5,) = reports.wss(r, threshold=5, percentiles=[10, 90])
    assert set(w5["wss"]) == {MiB}
    (wt,) = reports.wss(r, sortby="time", percentiles=[0, 10])
    assert wt["distribution"]["percentiles"] == [[0, MiB], [10, 2 * MiB]]
    assert w["time_ns"][0] == 100_000_000


def test_nr_regions_footprint():
    r = rec_of([snap(0, [(0, 10, 0)]), snap(1, [(0, 10, 0), (20, 40, 1), (40, 41, 0)])])
    assert reports.nr_regions(r)[0]["nr_regions"] == [1, 3]
    assert reports.footprint(r)[0]["footprint"] == [10, 31]


def test_short_and_empty_records(capsys):
    one = rec_of([snap(0, [(0, MiB, 4)])])
    for fn in (reports.wss, reports.nr_regions, reports.footprint, reports.access,
               reports.heatmap, reports.raw):
        assert fn(one)
    empty = rec_of([])
    for fn in (reports.wss, reports.nr_regions, reports.footprint, reports.access,
               reports.heatmap, reports.raw):
        with pytest.raises(DamonxError, match="no snapshots"):
            fn(empty)
    assert reports.distribution([]) == {"avg": None, "min": None, "max": None,
                                        "percentiles": []}


def test_heatmap_values_and_gap_skipping():
    # two far apart ranges; the bigger one is drawn by default
    snaps = [snap(i, [(0, MiB, 20 if i < 2 else 0), (MiB, 2 * MiB, 0),
                      (1 << 40, (1 << 40) + MiB, 10)]) for i in range(4)]
    r = rec_of(snaps)
    (hm,) = reports.heatmap(r, time_bins=2, addr_bins=2)
    assert hm["address_range"] == [0, 2 * MiB]
    assert hm["unit"] == "percent"
    np.testing.assert_allclose(hm["values"], [[100, 0], [0, 0]])
    assert len(hm["address_unions"]) == 2
    (hm2,) = reports.heatmap(r, time_bins=1, addr_bins=1,
                             address_range=(1 << 40, (1 << 40) + 2 * MiB))
    assert hm2["values"][0, 0] == pytest.approx(50.0)  # only the covered half counts
    (full,) = reports.heatmap(r, time_bins=1, addr_bins=4, address_range="all")
    assert np.isnan(full["values"][0, 1])  # the unmapped gap
    (tr,) = reports.heatmap(r, time_bins=1, addr_bins=1, time_range=(200_000_000, 400_000_000),
                            address_range=(0, MiB))
    assert tr["values"][0, 0] == 0


def test_heatmap_address_range_choice():
    unions = [[0, MiB], [4 * MiB, 7 * MiB], [10 * MiB, 11 * MiB]]
    assert reports.heatmap_address_range(unions) == (4 * MiB, 7 * MiB)  # the largest
    assert reports.heatmap_address_range(unions, "all") == (0, 11 * MiB)
    assert reports.heatmap_address_range(unions, ("4096", 8192)) == (4096, 8192)
    with pytest.raises(DamonxError, match="empty address range"):
        reports.heatmap_address_range(unions, (8192, 4096))
    with pytest.raises(DamonxError, match="target 3 has no non-empty region"):
        reports.heatmap_address_range([], None, 3)


def test_heatmap_time_range_choice():
    starts, ends = np.array([5.0, 10.0]), np.array([10.0, 20.0])
    assert reports.heatmap_time_range(starts, ends) == (5.0, 20.0)
    assert reports.heatmap_time_range(starts, ends, (0, 7)) == (0.0, 7.0)
    assert reports.heatmap_time_range(np.array([3.0]), np.array([3.0])) == (3.0, 4.0)
    with pytest.raises(DamonxError, match="empty time range"):
        reports.heatmap_time_range(starts, ends, (7, 7))


def test_address_bin_integrals():
    edges = np.array([0.0, 100.0, 200.0])
    snaps = [snap(0, [(50, 150, 4)]), snap(1, [(150, 160, 2), (0, 10, 1)]), snap(2, [])]
    rate, cover = reports.address_bin_integrals(snaps, edges, scale=10.0)
    # a region's rate times its overlap with each bin, and the overlap alone
    np.testing.assert_allclose(rate, [[50 * 40, 50 * 40], [10 * 10, 10 * 20], [0, 0]])
    np.testing.assert_allclose(cover, [[50, 50], [10, 10], [0, 0]])


def test_time_weights():
    edges = np.array([0.0, 10.0, 20.0])
    w = reports.time_weights([0, 5, 12, 25, 20], [10, 15, 12, 30, 20], edges)
    # overlaps in ns; zero-length snapshots weigh 1 in their bin, if inside
    np.testing.assert_allclose(w, [[10, 0], [5, 5], [0, 1], [0, 0], [0, 1]])


def test_cli_json_and_errors(capsys, tmp_path):
    rc, out, _ = run_cli(capsys, "wss", "-i", DAMO_FILE, "--json", "--percentiles", "90")
    res = json.loads(out)
    assert [r["target_id"] for r in res] == [0, 1]
    assert [90, 163840] in res[0]["distribution"]["percentiles"]
    rc, out, _ = run_cli(capsys, "heatmap", "-i", DAMO_FILE, "--json", "--resol", "2", "2")
    assert len(json.loads(out)[0]["values"]) == 2
    rc, out, _ = run_cli(capsys, "access", "-i", DAMO_FILE, "--snapshot", "0", "--json")
    assert json.loads(out)[0]["regions"][1]["access_rate"] == pytest.approx(15.0)
    rc, out, _ = run_cli(capsys, "raw", "-i", DAMO_FILE, "--json")
    assert json.loads(out)[0]["target_id"] == 0
    rc, _, err = run_cli(capsys, "access", "-i", str(tmp_path / "none"))
    assert rc == 1 and "does not exist" in err
    bad = tmp_path / "bad"
    bad.write_bytes(open(DAMO_FILE, "rb").read()[:300])
    rc, _, err = run_cli(capsys, "wss", "-i", str(bad))
    assert rc == 1 and "truncated" in err and "Traceback" not in err
    rc, out, err = run_cli(capsys, "nr_regions", "-i", str(bad), "--allow_partial")
    assert "warning" in err
    rc, _, err = run_cli(capsys, "access", "-i", DAMO_FILE, "--snapshot", "9")
    assert rc == 1 and "out of range" in err


@pytest.mark.parametrize("ext", ["svg", "png"])
def test_images(capsys, tmp_path, ext):
    out = tmp_path / f"h.{ext}"
    rc, _, _ = run_cli(capsys, "heatmap", "-i", DAMO_FILE, "--target_id", "0", "-o", str(out))
    assert rc == 0
    w = tmp_path / f"w.{ext}"
    rc, _, _ = run_cli(capsys, "wss", "-i", DAMO_FILE, "--target_id", "0", "-o", str(w))
    assert rc == 0
    for p in (out, w):
        data = p.read_bytes()
        if ext == "svg":
            import xml.etree.ElementTree as ET
            root = ET.fromstring(data)
            assert root.tag.endswith("svg")
            assert b"time (s)" in data
        else:
            assert data.startswith(b"\x89PNG\r\n\x1a\n")
    rc, _, err = run_cli(capsys, "heatmap", "-i", DAMO_FILE, "-o", str(tmp_path / "h.gif"))
    assert rc == 1 and ".svg or .png" in err


def test_png_without_matplotlib(monkeypatch, tmp_path):
    import sys
    from damonx import render
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    (hm,) = reports.heatmap(records.load(DAMO_FILE), target_id=0)
    with pytest.raises(DamonxError, match=r"pip install 'damonx\[plot\]'"):
        render.save_heatmap(hm, tmp_path / "x.png")
    render.save_heatmap(hm, tmp_path / "x.svg")  # SVG needs nothing
