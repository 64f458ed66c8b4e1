"""Fuzzing the command line: random argument lists made of the real option
names and random values end with exit status 0, 1 or 2 and never with a
traceback, in bounded time."""

import argparse
import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from damonx import cli
from tests.cli_helpers import run

TINY = {
    "size": 1 << 20,
    "page_size": 4096,
    "phases": [
        {"duration_us": 200_000, "ranges": [{"start": 0, "end": 1 << 18, "probability": 0.8}]}
    ],
}


def _arity(action):
    """How many values an option takes: a (min, max) pair."""
    n = action.nargs
    if n is None:
        return (0, 0) if action.const is not None or isinstance(action.default, bool) else (1, 1)
    if isinstance(n, int):
        return n, n
    return {"?": (0, 1), "*": (0, 3), "+": (1, 3)}.get(n, (0, 3))


def _options(parser):
    """{sub-parser name: [(option string, (min, max) number of values)]}."""
    out = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[name] = sorted(
                    (s, _arity(a))
                    for a in sub._actions
                    for s in a.option_strings
                    if s not in ("-h", "--help")
                )
    return out


PARSER = cli.build_parser()
COMMANDS = _options(PARSER)
REPORT_TYPES = _options(PARSER._subparsers._group_actions[0].choices["report"])

#: numbers at the edges of the fields they end up in
EDGES = st.sampled_from(
    [
        "0", "1", "-1", "3", "10", "100", str(2**31), str(2**32), str(2**63), str(2**64),
        str(2**70), "nan", "inf", "-inf", "1e400", "0.5", "-0.0", "1e-9", "1e300",
    ]
)  # fmt: skip
#: words some option takes, or nearly
WORDS = st.sampled_from(
    [
        "5ms", "100ms", "1s", "1m", "0x1000", "0x1000-0x2000", "0-4096", "all",
        "json", "binary", "json_compressed", "sim", "vaddr", "fvaddr", "paddr",
        "size", "time", "address", "age", "access_rate", "gray", "none", "auto", "", " ",
        "12a4", "-", "---", "\x00", "é", "/", "/nonexistent", "/dev/null", "/proc",
        "stat", "pageout", "migrate_hot", "lru_prio", "allow", "reject", "anon", "addr",
        "target", "hugepage_size", "free_mem_rate", "user_input", "some_mem_psi_us", "min",
        "max", "5 %", "2M",
    ]
)  # fmt: skip
RANDOM = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=12),
)
VALUES = st.integers(0, 9).flatmap(lambda k: EDGES if k < 5 else WORDS if k < 8 else RANDOM)
#: options whose value names a file damonx writes: kept inside the example's directory
WRITES = {"-o", "--out", "--output"}


@st.composite
def _option(draw, options):
    """An option with a number of values that is mostly right."""
    name, (lo, hi) = draw(st.sampled_from(options))
    n = draw(st.integers(lo, hi)) if draw(st.integers(0, 9)) else draw(st.integers(0, 3))
    return [name, *(draw(VALUES) for _ in range(n))]


def _words(options):
    """Options with values and, now and then, a stray word."""
    stray = VALUES.map(lambda v: [v])
    if options:
        group = st.integers(0, 9).flatmap(lambda k: stray if k == 0 else _option(options))
    else:
        group = stray
    return st.lists(group, max_size=5).map(lambda groups: [w for g in groups for w in g])


@st.composite
def argv(draw):
    command = draw(st.sampled_from(sorted(COMMANDS)))
    if command == "report":
        kind = draw(st.sampled_from(sorted(REPORT_TYPES) + ["bogus"]))
        return ["report", kind, *draw(_words(REPORT_TYPES.get(kind, [])))]
    return [command, *draw(_words(COMMANDS[command]))]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny workload and a record of it."""
    d = tmp_path_factory.mktemp("fuzz")
    wl = d / "tiny.json"
    wl.write_text(json.dumps(TINY))
    rec = d / "tiny.data"
    assert (
        cli.main(["record", "--workload", str(wl), "--timeout", "1", "-o", str(rec), "--quiet"])
        == 0
    )
    return wl, rec


def _bounded(args, workdir, wl, rec):
    """args made safe to run: files written only in workdir, recordings of
    the tiny workload for 50 ms of simulated time, never a command."""
    out = []
    for i, a in enumerate(args):
        if a == "--":
            continue
        if i and args[i - 1] in WRITES:
            a = str(workdir / f"out{i}.{a[-3:] if a.endswith(('png', 'svg')) else 'x'}")
        out.append(a)
    if out[0] in ("record", "start"):
        # last wins: these override any drawn value
        out += ["--workload", str(wl), "--timeout", "0.05"]
        if out[0] == "record":
            out += ["-o", str(workdir / "rec.data")]
        # a drawn sampling interval of microseconds with a long aggregation
        # is slow even for 50 ms; keep the intervals to those listed above
        if "--monitoring_intervals" in out:
            out += ["--monitoring_intervals", "1ms", "10ms", "100ms"]
    elif out[0] in ("report", "convert"):
        out += ["-i", str(rec)]
    return out


@settings(
    max_examples=int(os.environ.get("DAMONX_FUZZ_EXAMPLES", "300")),
    deadline=10_000,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(args=argv())
def test_random_arguments_never_end_in_a_traceback(capsys, tiny, args):
    wl, rec = tiny
    with tempfile.TemporaryDirectory() as d:
        argv_ = _bounded(args, Path(d), wl, rec)
        status, out, err = run(capsys, *argv_)
    assert status in (0, 1, 2), (argv_, status, err)
    assert "Traceback" not in out + err, (argv_, err)
    if status:
        lines = [line for line in err.splitlines() if ": error: " in line]
        assert len(lines) == 1 and lines[0].startswith("damonx"), (argv_, err)
