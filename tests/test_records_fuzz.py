"""Property-based: any bytes give a Record or InvalidRecord, never another
error; and the compiled JSON reader reads everything as the Python one does."""

import contextlib
import json
import zlib

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from damonx import records
from damonx.attrs import Intervals
from damonx.errors import InvalidRecord
from damonx.records import Record, TargetRecord, TargetSnapshot, jsonstream, make_regions
from tests.record_helpers import summary

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _valid(fmt):
    rng = np.random.default_rng(7)
    targets = []
    for tid in (3, 2**40):
        snaps = [
            TargetSnapshot(
                i * 1000,
                (i + 1) * 1000,
                make_regions(
                    [
                        (
                            k * 4096,
                            (k + 1) * 4096,
                            int(rng.integers(0, 20)),
                            int(rng.integers(0, 50)),
                        )
                        for k in range(6)
                    ]
                ),
            )
            for i in range(4)
        ]
        targets.append(TargetRecord(tid if fmt != "binary" else tid % 2**31, snaps))
    return records.dumps(
        Record(Intervals(5000, 100000, 1000000), targets, {"ops": "sim"}),
        fmt,
        **({"binary_version": 1} if fmt == "binary" else {}),
    )


VALID = {fmt: _valid(fmt) for fmt in records.FORMATS}


def _check(data):
    try:
        rec = records.load(data)
    except InvalidRecord as err:
        assert err.partial is None or isinstance(err.partial, Record)
        if records.detect_format(data) is None:
            # no format recognised: nothing to salvage, partial_ok does not help
            assert err.offset == 0
            return
        rec = records.load(data, partial_ok=True)
        assert isinstance(rec, Record) and rec.warning
        return
    assert isinstance(rec, Record)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes(data):
    _check(data)


@SETTINGS
@given(st.sampled_from(records.FORMATS), st.data())
def test_truncations(fmt, data):
    valid = VALID[fmt]
    cut = data.draw(st.integers(0, len(valid)))
    _check(valid[:cut])


@SETTINGS
@given(st.sampled_from(records.FORMATS), st.data())
def test_bit_flips(fmt, data):
    buf = bytearray(VALID[fmt])
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] ^= 1 << data.draw(st.integers(0, 7))
    _check(bytes(buf))


@SETTINGS
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
        lambda c: (
            st.lists(c, max_size=4)
            | st.dictionaries(
                st.sampled_from(
                    [
                        "target_id",
                        "snapshots",
                        "intervals",
                        "regions",
                        "start",
                        "end",
                        "start_time",
                        "end_time",
                        "nr_accesses",
                        "age",
                        "samples",
                        "damonx",
                    ]
                ),
                c,
                max_size=5,
            )
        ),
        max_leaves=25,
    )
)
def test_random_json_structures(doc):
    import json

    _check(json.dumps(doc).encode())
    _check(json.dumps([doc]).encode())


# ---------------------------------------------------------------------------
# the compiled reader against the Python one
#
# The JSON reader hands each snapshot to the compiled parser
# (damonx._recread), which reads the usual forms and leaves everything else
# to the Python code; with fast=False the Python code reads every snapshot.
# Both must give the same record, or the same error at the same offset with
# the same readable prefix, on any input and whatever the chunking.


@contextlib.contextmanager
def _chunk(size):
    old = jsonstream._TextSource.CHUNK
    if size is not None:
        jsonstream._TextSource.CHUNK = size
    try:
        yield
    finally:
        jsonstream._TextSource.CHUNK = old


def _outcome(data, fast, chunk=None):
    compressed = records.detect_format(data) == "json_compressed"
    with _chunk(chunk):
        try:
            rec = jsonstream.parse(data, compressed, fast=fast)
        except InvalidRecord as err:
            return "error", str(err), err.offset, summary(err.partial)
    return "ok", summary(rec)


def _same_both_ways(data, chunk=None):
    if records.detect_format(data) not in ("json", "json_compressed"):
        return None
    fast = _outcome(data, True, chunk)
    assert fast == _outcome(data, False, chunk)
    return fast


CHUNKS = st.sampled_from([None, 1, 2, 7, 64, 4096])


@SETTINGS
@given(st.sampled_from(["json_compressed", "json"]), st.data(), CHUNKS)
def test_compiled_reader_agrees_on_truncations_and_bit_flips(fmt, data, chunk):
    buf = bytearray(VALID[fmt])
    if data.draw(st.booleans()):
        buf = buf[: data.draw(st.integers(0, len(buf)))]
    for _ in range(data.draw(st.integers(0, 3)) if buf else 0):
        pos = data.draw(st.integers(0, len(buf) - 1))
        buf[pos] ^= 1 << data.draw(st.integers(0, 7))
    _same_both_ways(bytes(buf), chunk)


WS = st.sampled_from(["", "", " ", "\n", "\n        ", "\t", "\r\n"])

# numbers as damonx and damo write them, and as damaged files may
USUAL_NUMBER = st.one_of(
    st.integers(0, 2**32).map(str),
    st.integers(0, 2**32).map(lambda v: json.dumps(f"{v:,}")),
)
ODD_NUMBER = st.one_of(
    st.integers(0, 2**64 + 5).map(str),
    st.integers(0, 2**64 + 5).map(lambda v: json.dumps(f"{v:,}")),
    st.sampled_from(
        [
            "0",
            "-1",
            "-0",
            "01",
            "1.0",
            "1.5",
            "1e3",
            "2E+2",
            "1e400",
            "NaN",
            "-Infinity",
            "null",
            "true",
            "false",
            "[]",
            "{}",
            "[1]",
            '"4 KiB"',
            '"1 m 3.500 s"',
            '"100 ms"',
            '"5,000"',
            '"0"',
            '""',
            '","',
            '" 7"',
            '"007"',
            '"1_000"',
            '"nan"',
            '"-1"',
            '"\\u0031"',
            '"25 %"',
            "4294967295",
            "4294967296",
            "18446744073709551615",
            "18446744073709551616",
        ]
    ),
)

# what unknown keys may hold
OTHER = st.recursive(
    st.sampled_from(
        ["null", "true", "false", "0", "-1.5e-3", '"0 B"', '"é"', '"☃"', '"a\\"b"', '"\\u00e9"']
    ),
    lambda c: (
        st.lists(c, max_size=3).map(lambda v: "[" + ",".join(v) + "]")
        | st.lists(st.tuples(st.sampled_from(["a", "start", "samples"]), c), max_size=3).map(
            lambda kv: "{" + ",".join(f'"{k}":{v}' for k, v in kv) + "}"
        )
    ),
    max_leaves=6,
)


@st.composite
def _object(draw, fields, optional=(), other=True, odd=False):
    """A JSON object of ``fields`` (name: value strategy), each present (or,
    if optional, maybe missing), maybe with another key, in damo's order or
    shuffled; ``odd``: maybe a key twice, a key missing or keys spelt with
    escapes too."""
    members = []
    for name, value in fields.items():
        if name in optional and draw(st.integers(0, 3)) == 0:
            continue
        for _ in range(2 if odd and draw(st.integers(0, 30)) == 0 else 1):
            members.append((name, draw(value)))
    if other and draw(st.integers(0, 3)) == 0:
        members.insert(draw(st.integers(0, len(members))), ("probe_hits", draw(OTHER)))
    if draw(st.integers(0, 20)) == 0:
        members = draw(st.permutations(members))
    if odd and members and draw(st.integers(0, 30)) == 0:
        members.pop(draw(st.integers(0, len(members) - 1)))
    ws = draw(WS)
    escape = odd and draw(st.integers(0, 30)) == 0

    def spell(key):
        return f"\\u{ord(key[0]):04x}{key[1:]}" if escape else key

    parts = [f'{ws}"{spell(k)}"{draw(WS)}:{draw(WS)}{v}' for k, v in members]
    return "{" + ",".join(parts) + draw(WS) + "}"


def _snapshots(odd):
    """Snapshots in the forms damonx and damo write; ``odd``: in any form,
    now and then."""
    number = st.one_of(*[USUAL_NUMBER] * 9, ODD_NUMBER) if odd else USUAL_NUMBER

    def obj(fields, optional=(), other=True):
        return _object(fields, optional, other, odd)

    def counter(main, alt):
        return st.one_of(
            number,
            st.just("null"),
            obj({main: number, alt: number if odd else st.just("null")}, optional=(main, alt)),
        )

    usual_region = st.tuples(st.integers(0, 2**40), st.integers(0, 2**20), st.integers(0, 30)).map(
        lambda r: (
            f'{{"start":{r[0]},"end":"{r[0] + r[1]:,}","nr_accesses":{{"samples":{r[2]},'
            f'"percent":null}},"age":{{"usec":null,"aggr_intervals":{r[2] * 3}}}}}'
        )
    )
    any_region = obj(
        {
            "start": number if odd else st.integers(0, 2**40).map(str),
            "end": number if odd else st.integers(2**40, 2**41).map(lambda v: f'"{v:,}"'),
            "nr_accesses": counter("samples", "percent"),
            "age": counter("usec", "aggr_intervals"),
        },
        optional=("nr_accesses", "age"),
    )
    regions = st.lists(st.one_of(usual_region, usual_region, any_region), max_size=5).map(
        lambda v: "[" + ",\n".join(v) + "]"
    )
    # damo's one scheme, damonx's list of them
    stats = obj({"nr_tried": number, "sz_tried": number}, optional=("sz_tried",), other=False)
    stats_list = st.lists(stats, max_size=2).map(lambda v: "[" + ",".join(v) + "]")
    stats, stats_list = (
        st.one_of(*[st.just("null")] * 3, value, *([OTHER] if odd else []))
        for value in (stats, stats_list)
    )
    return obj(
        {
            "start_time": number,
            "end_time": number,
            "regions": st.one_of(*[regions] * 19, OTHER) if odd else regions,
            "sample_interval_us": number,
            "damonx_nr_checks": number,
            "damos_stats": stats,
            "damonx_damos_stats": stats_list,
        },
        optional=("sample_interval_us", "damonx_nr_checks", "damos_stats", "damonx_damos_stats"),
    )


SNAPSHOTS = {odd: _snapshots(odd) for odd in (False, True)}

INTERVALS = st.sampled_from(
    [
        "null",
        '{"sample_us": 5000, "aggr_us": 100000, "ops_update_us": 1000000}',
        '{"sample_us": "5 ms", "aggr_us": "100 ms", "ops_update_us": "1 s"}',
        '{"sample_us": 0, "aggr_us": 100000}',
    ]
)


@st.composite
def _document(draw):
    odd = draw(st.booleans())
    targets = []
    for _ in range(draw(st.integers(1, 3))):
        snaps = draw(st.lists(SNAPSHOTS[odd], max_size=6))
        sep = draw(st.sampled_from([",", ",\n", " , "]))
        targets.append(
            f'{{"target_id": {draw(st.sampled_from(["0", "1", "2", "null", "-5"]))}, '
            f'"intervals": {draw(INTERVALS)}, "snapshots": [{draw(WS)}{sep.join(snaps)}]}}'
        )
    doc = "[" + ",\n".join(targets) + "]"
    data = doc.encode()
    if odd and draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return zlib.compress(data) if draw(st.booleans()) else data


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_document(), CHUNKS)
def test_compiled_reader_agrees_on_records_of_every_form(data, chunk):
    _same_both_ways(data, chunk)


@SETTINGS
@given(st.binary(max_size=300), CHUNKS)
def test_compiled_reader_agrees_on_random_bytes(data, chunk):
    _same_both_ways(b"[" + data, chunk)
    _same_both_ways(b'[{"target_id": 1, "snapshots": [' + data, chunk)
