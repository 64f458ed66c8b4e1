"""Reports, their CLI and the images, including golden outputs."""

import base64
import json
import os
import struct
import sys
import zlib

import numpy as np
import pytest

from damonx import _recread, records, render, reports
from damonx.attrs import Intervals
from damonx.cli import main as cli_main
from damonx.errors import DamonxError
from damonx.records import Columns, Record, TargetRecord, TargetSnapshot, make_regions

DATA = os.path.join(os.path.dirname(__file__), "data")
DAMO_FILE = os.path.join(DATA, "damo-3.4.3-two-targets.data")
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
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


@pytest.mark.parametrize(
    "name,argv",
    [
        ("damo-3.4.3-two-targets.raw", ["raw", "-i", DAMO_FILE]),
        ("damo-3.4.3-two-targets.wss", ["wss", "-i", DAMO_FILE, "--raw_number"]),
        (
            "damo-3.4.3-two-targets.heatmap",
            [
                "heatmap",
                "--resol",
                "3",
                "8",
                "--color",
                "none",
                "-i",
                DAMO_FILE,
                "--target_id",
                "1",
            ],
        ),
        ("seed-v1.raw", ["raw", "-i", os.path.join(DATA, "seed-v1.bin")]),
    ],
)
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
    every = (
        reports.wss,
        reports.nr_regions,
        reports.footprint,
        reports.access,
        reports.heatmap,
        reports.raw,
    )
    for fn in every:
        assert fn(one)
    empty = rec_of([])
    for fn in every:
        with pytest.raises(DamonxError, match="no snapshots"):
            fn(empty)
    assert reports.distribution([]) == {"avg": None, "min": None, "max": None, "percentiles": []}


def test_heatmap_values_and_gap_skipping():
    # two far apart ranges, accessed alike; the first is drawn by default
    snaps = [
        snap(i, [(0, MiB, 20 if i < 2 else 0), (MiB, 2 * MiB, 0), (1 << 40, (1 << 40) + MiB, 10)])
        for i in range(4)
    ]
    r = rec_of(snaps)
    (hm,) = reports.heatmap(r, time_bins=2, addr_bins=2)
    assert hm["address_range"] == [0, 2 * MiB]
    assert hm["unit"] == "percent"
    np.testing.assert_allclose(hm["values"], [[100, 0], [0, 0]])
    assert len(hm["address_unions"]) == 2
    (hm2,) = reports.heatmap(
        r, time_bins=1, addr_bins=1, address_range=(1 << 40, (1 << 40) + 2 * MiB)
    )
    assert hm2["values"][0, 0] == pytest.approx(50.0)  # only the covered half counts
    (full,) = reports.heatmap(r, time_bins=1, addr_bins=4, address_range="all")
    assert np.isnan(full["values"][0, 1])  # the unmapped gap
    (tr,) = reports.heatmap(
        r, time_bins=1, addr_bins=1, time_range=(200_000_000, 400_000_000), address_range=(0, MiB)
    )
    assert tr["values"][0, 0] == 0


def test_the_default_heatmap_shows_the_range_with_the_accesses():
    # a process's large cold heap and its small hot mapping far above it
    snaps = [snap(i, [(0, 512 * MiB, 0), (1 << 40, (1 << 40) + 32 * MiB, 18)]) for i in range(3)]
    (hm,) = reports.heatmap(rec_of(snaps), time_bins=1, addr_bins=4)
    assert hm["address_range"] == [1 << 40, (1 << 40) + 32 * MiB]
    np.testing.assert_allclose(hm["values"], [[90, 90, 90, 90]])
    cold = [snap(i, [(0, 512 * MiB, 0), (1 << 40, (1 << 40) + 32 * MiB, 0)]) for i in range(3)]
    (hm,) = reports.heatmap(rec_of(cold), time_bins=1, addr_bins=4)
    assert hm["address_range"] == [0, 512 * MiB]  # nothing accessed: the largest


def test_heatmap_address_range_choice():
    unions = [[0, MiB], [4 * MiB, 7 * MiB], [10 * MiB, 11 * MiB]]
    assert reports.heatmap_address_range(unions) == (4 * MiB, 7 * MiB)  # the largest
    # the one with the most accesses, where something was accessed
    assert reports.heatmap_address_range(unions, weights=[0, 0, 5]) == (10 * MiB, 11 * MiB)
    assert reports.heatmap_address_range(unions, weights=[0, 0, 0]) == (4 * MiB, 7 * MiB)
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
    rate, cover = reports.address_bin_integrals(Columns.from_snapshots(snaps), edges, scale=10.0)
    # a region's rate times its overlap with each bin, and the overlap alone
    np.testing.assert_allclose(rate, [[50 * 40, 50 * 40], [10 * 10, 10 * 20], [0, 0]])
    np.testing.assert_allclose(cover, [[50, 50], [10, 10], [0, 0]])


def _integrals_by_hand(snaps, edges, scale):
    """address_bin_integrals region by region, in Python floats: in
    address order (stable), the overlap of each region with each bin."""
    rate = np.zeros((len(snaps), len(edges) - 1))
    cover = np.zeros_like(rate)
    for s, sn in enumerate(snaps):
        for r in sorted(sn.regions.tolist(), key=lambda r: r[0]):
            start, end, acc = float(r[0]), float(r[1]), float(r[2]) * scale
            for b in range(len(edges) - 1):
                lo, hi = max(start, edges[b]), min(end, edges[b + 1])
                if start < edges[b + 1] and end > edges[b]:
                    rate[s, b] += max(hi - lo, 0.0) * acc
                    cover[s, b] += max(hi - lo, 0.0)
    return rate, cover


def test_address_bin_integrals_are_those_by_hand_to_the_bit():
    # regions in any order, overlapping, outside the bins, on their edges
    rng = np.random.default_rng(5)
    snaps = []
    for i in range(30):
        rows = []
        for _ in range(int(rng.integers(0, 12))):
            start = int(rng.integers(0, 1 << 22)) * 4096 // 3
            rows.append((start, start + int(rng.integers(1, 1 << 30)), int(rng.integers(0, 21))))
        snaps.append(snap(i, rows if i % 3 else sorted(rows)))
    snaps.append(snap(30, [(1 << 30, 2 << 30, 3), (0, 1 << 30, 5)]))  # ends on edges
    edges = np.linspace(1 << 28, 3 << 30, 12)
    rate, cover = reports.address_bin_integrals(Columns.from_snapshots(snaps), edges, 2.5)
    want_rate, want_cover = _integrals_by_hand(snaps, edges, 2.5)
    assert np.array_equal(rate, want_rate) and np.array_equal(cover, want_cover)


def test_heatmap_binning_checks_its_arguments():
    cols = Columns.from_snapshots([snap(0, [(0, 10, 1)]), snap(1, [(0, 10, 1)])])
    edges = np.array([0.0, 5.0, 10.0])
    num, den = np.zeros((3, 2)), np.zeros((3, 2))

    def add(snaps, bins, cols=cols, edges=edges, num=num):
        ids = np.array(snaps, dtype=np.int64)
        weights = np.ones(len(ids))
        bins = np.array(bins, dtype=np.int64)
        _recread.heatmap_add(cols.regions, cols.offsets, edges, 1.0, ids, bins, weights, num, den)

    add([0, 1, 1], [0, 0, 2])
    np.testing.assert_array_equal(num, [[10, 10], [0, 0], [5, 5]])
    for snaps, bins in (([2], [0]), ([-1], [0]), ([0], [3]), ([0], [-1])):
        with pytest.raises(ValueError, match="out of range"):
            add(snaps, bins)
    with pytest.raises(ValueError, match="time bins, 2"):
        add([0], [0], num=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="two entries"):
        add([0], [0], edges=np.array([0.0]))
    with pytest.raises(ValueError, match="REGION_DTYPE"):
        _recread.heatmap_add(
            np.zeros(2), cols.offsets, edges, 1.0, *np.zeros((2, 0), dtype=np.int64),
            np.ones(0), num, den,
        )  # fmt: skip


def test_the_default_heatmap_range_is_the_one_with_the_accesses_in_its_time_range():
    # the low range is hot in the first second, the high one afterwards
    snaps = [
        snap(i, [(0, MiB, 20 if i < 10 else 0), (1 << 40, (1 << 40) + MiB, 0 if i < 10 else 10)])
        for i in range(40)
    ]
    (hm,) = reports.heatmap(rec_of(snaps), time_bins=1, addr_bins=1)
    assert hm["address_range"] == [1 << 40, (1 << 40) + MiB]
    (hm,) = reports.heatmap(rec_of(snaps), time_bins=1, addr_bins=1, time_range=(0, 1e9))
    assert hm["address_range"] == [0, MiB]


def test_time_weights():
    edges = np.array([0.0, 10.0, 20.0])
    snapshot, bins, w = reports.time_weights([0, 5, 12, 25, 20], [10, 15, 12, 30, 20], edges)
    # overlaps in ns; zero-length snapshots weigh 1 in their bin, if inside;
    # only the pairs that weigh, in snapshot order
    assert snapshot.tolist() == [0, 1, 1, 2, 4] and bins.tolist() == [0, 0, 1, 1, 1]
    np.testing.assert_allclose(w, [10, 5, 5, 1, 1])


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
    with open(DAMO_FILE, "rb") as f:
        bad.write_bytes(f.read()[:300])
    rc, _, err = run_cli(capsys, "wss", "-i", str(bad))
    assert rc == 1 and "truncated" in err and "Traceback" not in err
    rc, out, err = run_cli(capsys, "nr_regions", "-i", str(bad), "--allow_partial")
    assert "warning" in err
    rc, _, err = run_cli(capsys, "access", "-i", DAMO_FILE, "--snapshot", "9")
    assert rc == 1 and "out of range" in err


def decode_png(data):
    """(width, height, pixels) of an 8-bit RGB PNG that uses filter type 0,
    read with zlib and struct alone."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack_from(">I", data, pos + 8 + length)
        assert crc == zlib.crc32(kind + body)
        chunks.append((kind, body))
        pos += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, ctype, interlace) == (8, 2, 0)
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, 1 + 3 * width)
    assert (rows[:, 0] == 0).all()
    return width, height, rows[:, 1:].reshape(height, width, 3)


YELLOW, PURPLE = (253, 231, 37), (68, 1, 84)  # the ends of the colour scale


def hot_upper_half_record():
    """1 MiB, its upper half accessed at every sample, during the first
    half of the record only."""
    snaps = [snap(i, [(0, MiB // 2, 0), (MiB // 2, MiB, 20 if i < 5 else 0)]) for i in range(10)]
    return rec_of(snaps)


def test_png_heatmap_shows_the_hot_range(tmp_path):
    (hm,) = reports.heatmap(hot_upper_half_record(), time_bins=10, addr_bins=8)
    render.save_heatmap(hm, tmp_path / "h.png")
    width, height, px = decode_png((tmp_path / "h.png").read_bytes())
    assert (width, height) == (800, 500)
    left, top, pw, ph = render.HEATMAP_CELLS_AREA
    cells = px[top + 1 : top + ph, left + 1 : left + pw]  # inside the frame
    ph, pw = ph - 1, pw - 1
    # time runs left to right, addresses bottom to top
    assert (cells[: ph // 2, : pw // 2] == YELLOW).all()  # hot: upper half, early
    assert (cells[: ph // 2, pw // 2 :] == PURPLE).all()  # not any more
    assert (cells[ph // 2 :] == PURPLE).all()  # lower half: never
    # axes and labels are drawn: black pixels left of and below the cells
    assert (px[top : top + ph, :left] == 0).all(axis=-1).sum() > 200
    assert (px[top + ph + 2 :, left : left + pw] == 0).all(axis=-1).sum() > 100


def test_svg_heatmap_embeds_the_cells_as_one_raster(tmp_path):
    import xml.etree.ElementTree as ET

    (hm,) = reports.heatmap(hot_upper_half_record(), time_bins=10, addr_bins=8)
    render.save_heatmap(hm, tmp_path / "h.svg")
    root = ET.fromstring((tmp_path / "h.svg").read_bytes())
    ns = "{http://www.w3.org/2000/svg}"
    assert root.findall(f"{ns}rect") and not [
        r for r in root.iter(f"{ns}rect") if r.get("fill") == "#fde725"
    ]
    cells = root.findall(f"{ns}image")[0]
    assert cells.get("preserveAspectRatio") == "none"
    assert "pixelated" in cells.get("style")
    href = cells.get("href")
    assert href.startswith("data:image/png;base64,")
    width, height, px = decode_png(base64.b64decode(href.split(",", 1)[1]))
    assert (width, height) == (10, 8)  # one pixel per cell
    assert (px[:4, :5] == YELLOW).all() and (px[:4, 5:] == PURPLE).all()
    assert (px[4:] == PURPLE).all()
    texts = [t.text for t in root.iter(f"{ns}text")]
    assert "time (s)" in texts and "+512 KiB" in texts and "access rate (%)" in texts


def test_nan_cells_are_gray():
    hm = {
        "target_id": 1,
        "unit": "percent",
        "values": np.array([[np.nan, 100.0]]),
        "address_range": [0, 8192],
        "time_range_ns": [0, 10],
    }
    _, _, px = decode_png(render.heatmap_png(hm))
    left, top, pw, ph = render.HEATMAP_CELLS_AREA
    assert (px[top + ph - 10, left + 10] == render.NO_DATA).all()  # low addresses: no region
    assert (px[top + 10, left + 10] == YELLOW).all()


def test_images_of_a_simulated_record_are_small(tmp_path, capsys):
    rec = tmp_path / "sim.data"
    assert (
        cli_main(
            [
                "record",
                "--ops",
                "sim",
                "--workload",
                os.path.join(EXAMPLES, "moving-hot.json"),
                "--timeout",
                "10",
                "-o",
                str(rec),
                "--quiet",
            ]
        )
        == 0
    )
    rc, _, _ = run_cli(capsys, "heatmap", "-i", str(rec), "-o", str(tmp_path / "h.svg"))
    assert rc == 0
    assert (tmp_path / "h.svg").stat().st_size < 100_000  # 200 x 300 cells
    rc, _, _ = run_cli(capsys, "heatmap", "-i", str(rec), "-o", str(tmp_path / "h.png"))
    assert rc == 0
    _, _, px = decode_png((tmp_path / "h.png").read_bytes())
    left, top, pw, ph = render.HEATMAP_CELLS_AREA

    # moving-hot.json: 128-256 MiB of 1 GiB hot for the first 8 s, 512-640 MiB after
    def at(sec, mib):
        return px[top + ph - 1 - int(mib / 1024 * ph), left + int(sec / 10 * pw)]

    assert at(4, 192)[1] > 150 and at(4, 576)[1] < 100  # green: high when hot
    assert at(9.5, 576)[1] > 150 and at(9.5, 192)[1] < 100


@pytest.mark.parametrize("ext", ["svg", "png"])
def test_images(capsys, tmp_path, ext):
    out = tmp_path / f"h.{ext}"
    rc, _, _ = run_cli(capsys, "heatmap", "-i", DAMO_FILE, "--target_id", "0", "-o", str(out))
    assert rc == 0
    w = tmp_path / f"w.{ext}"
    rc, _, _ = run_cli(capsys, "wss", "-i", DAMO_FILE, "--target_id", "0", "-o", str(w))
    assert rc == 0
    n = tmp_path / f"n.{ext}"
    rc, _, _ = run_cli(capsys, "nr_regions", "-i", DAMO_FILE, "--target_id", "0", "-o", str(n))
    assert rc == 0
    for p in (out, w, n):
        data = p.read_bytes()
        if ext == "svg":
            import xml.etree.ElementTree as ET

            root = ET.fromstring(data)
            assert root.tag.endswith("svg")
            assert b"time (s)" in data
        else:
            width, height, px = decode_png(data)
            assert width > 600 and height > 300 and (px == 0).all(axis=-1).any()
    if ext == "svg":
        assert b"KiB" in w.read_bytes() and b"KiB" not in n.read_bytes()  # sizes / counts
    rc, _, err = run_cli(capsys, "heatmap", "-i", DAMO_FILE, "-o", str(tmp_path / "h.gif"))
    assert rc == 1 and ".svg or .png" in err
    rc, _, err = run_cli(capsys, "heatmap", "-i", DAMO_FILE, "-o", str(tmp_path / "no/h.png"))
    assert rc == 1 and "cannot write" in err and "Traceback" not in err


def test_png_without_matplotlib(monkeypatch, tmp_path):
    """Images need neither matplotlib nor any other package."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "PIL", None)
    rec = records.load(DAMO_FILE)
    (hm,) = reports.heatmap(rec, target_id=0)
    render.save_heatmap(hm, tmp_path / "x.png")
    (w,) = reports.wss(rec, target_id=0)
    render.save_series(w["time_ns"], w["wss"], tmp_path / "w.png")
    for name in ("x.png", "w.png"):
        assert decode_png((tmp_path / name).read_bytes())[0] > 0
    with pytest.raises(DamonxError, match="no snapshots"):
        render.save_series([], [], tmp_path / "e.png")


def test_raster_text_and_scaling():
    from damonx import _raster

    one = _raster.text_mask("1")
    assert one.shape == (9, 6) and one[6].tolist() == [False, True, True, True, False, False]
    assert _raster.text_mask("é").tolist() == _raster.text_mask("?").tolist()
    assert _raster.text_mask("ab", scale=2).shape == (18, 24)
    c = _raster.Canvas(20, 10)
    c.image(0, 0, 20, 10, np.array([[[255, 0, 0], [0, 0, 255]]], dtype=np.uint8))
    assert (c.pixels[:, :10] == (255, 0, 0)).all() and (c.pixels[:, 10:] == (0, 0, 255)).all()
    c.text(-5, 100, "clipped")  # outside: nothing drawn, no error
    c.line(0, 0, 19, 9, (0, 0, 0))
    assert (c.pixels[0, 0] == 0).all() and (c.pixels[9, 19] == 0).all()
    assert decode_png(c.png())[2].tolist() == c.pixels.tolist()
