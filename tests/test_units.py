"""Parsing and printing durations and sizes (damonx.units)."""

import os

import pytest

from damonx import units
from damonx.cli import main as cli_main
from damonx.errors import InvalidAttrs

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


@pytest.mark.parametrize(
    "text,us",
    [
        ("5000", 5000),
        (5000, 5000),
        ("5ms", 5000),
        ("1s", 1_000_000),
        ("1.5m", 90_000_000),
        (" 2 ms ", 2000),
        (".5s", 500_000),
        ("7us", 7),
        ("0", 0),
        ("0.0015ms", 2),
        ("18446744073709551", units.MAX_DURATION_US),
    ],
)
def test_parse_duration_us(text, us):
    assert units.parse_duration_us(text) == us


@pytest.mark.parametrize(
    "text,reason",
    [
        ("99999999999999999999999", "too large"),
        ("18446744073709552", "too large"),
        ("nan", "not a finite number"),
        ("inf", "not a finite number"),
        (float("inf"), "not a finite number"),
        ("-5ms", "must not be negative"),
        ("1e5", "not understood"),
        ("5.", "not understood"),
        ("5 h", "not understood"),
        ("5ns", "not understood"),
        ("", "not understood"),
        ("1 m 3 s", "not understood"),
    ],
)
def test_parse_duration_us_refuses(text, reason):
    with pytest.raises(InvalidAttrs, match=reason) as ei:
        units.parse_duration_us(text, "--monitoring_intervals AGGR")
    assert str(ei.value).startswith("--monitoring_intervals AGGR ")
    assert "5ms, 1s" in str(ei.value) or reason == "too large"


@pytest.mark.parametrize(
    "text,ns",
    [
        ("100 ms", 100_000_000),
        ("1.100 s", 1_100_000_000),
        ("1 m 3.500 s", 63_500_000_000),
        ("5ms", 5_000_000),
        ("2 h 1 m", 7_260_000_000_000),
        ("1 d", 86_400_000_000_000),
        ("3 ns", 3),
        ("1.5 ns", 1),
    ],
)
def test_parse_duration_ns(text, ns):
    assert units.parse_duration_ns(text) == ns


@pytest.mark.parametrize(
    "text", ["100", "1 m 3.500", "x ms", "-1 s", "nan s", "1e3 s", "99999999999 d"]
)
def test_parse_duration_ns_refuses(text):
    with pytest.raises(InvalidAttrs):
        units.parse_duration_ns(text)


@pytest.mark.parametrize(
    "text,nbytes",
    [
        ("4096", 4096),
        ("4,096", 4096),
        ("4K", 4096),
        ("4KB", 4096),
        ("4 KiB", 4096),
        ("2MiB", 2 << 20),
        ("1 G", 1 << 30),
        ("4.000 KiB", 4096),
        ("1.5K", 1536),
        ("0.3K", 307),
        ("15E", 15 << 60),
        ("10 B", 10),
        ("18446744073709551615", 2**64 - 1),
    ],
)
def test_parse_size(text, nbytes):
    assert units.parse_size(text) == nbytes


@pytest.mark.parametrize(
    "text,reason",
    [
        ("16E", "too large"),
        ("18446744073709551616", "too large"),
        ("-1K", "negative"),
        ("nan", "finite"),
        ("inf K", "finite"),
        ("4k", "not understood"),
        ("4 KiB B", "not understood"),
    ],
)
def test_parse_size_refuses(text, reason):
    with pytest.raises(InvalidAttrs, match=reason):
        units.parse_size(text)


def test_format_size():
    assert units.format_size(4096) == "4.000 KiB"
    assert units.format_size(1024) == "1024 B"  # damo: a unit only above one of it
    assert units.format_size(1536 << 20) == "1.500 GiB"
    assert units.format_size(3 << 60) == "3.000 EiB"
    assert units.format_size(4096, raw=True) == "4096"
    assert units.format_size_short(1024) == "1 KiB"
    assert units.format_size_short(256 << 20) == "256 MiB"
    assert units.format_size_short(1.5 * (1 << 30)) == "1.5 GiB"
    assert units.format_size_short(512) == "512 B"


def test_format_duration():
    f = units.format_duration_ns
    assert f(104_599_000) == "104.599 ms"
    assert f(63_500_000_000) == "1 m 3.500 s"
    assert f(120_000_000_000) == "2 m"
    assert f(125_000_000_000) == "2 m 5 s"
    assert f(3_600_000_000_000 + 1_000_000) == "1 h 1 ms"
    assert f(-5_000) == "-5 us"
    assert f(999) == "999 ns"
    assert f(1234, raw=True) == "1234"
    for ns in (1, 999, 5_000, 104_599_000, 63_500_000_000, 7_260_000_000_000):
        assert units.parse_duration_ns(f(ns)) == ns  # what it prints, damonx reads back


def test_record_cli_refuses_overflowing_interval(tmp_path, capsys):
    out = tmp_path / "r.data"
    rc = cli_main(
        [
            "record",
            "--ops",
            "sim",
            "--workload",
            os.path.join(EXAMPLES, "hot-cold.json"),
            "--monitoring_intervals",
            "1",
            "99999999999999999999999",
            "1s",
            "-o",
            str(out),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert "--monitoring_intervals AGGR '99999999999999999999999' is too large" in err
    assert not out.exists()
