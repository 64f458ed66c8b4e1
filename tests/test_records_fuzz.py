"""Property-based: any bytes give a Record or InvalidRecord, never another error."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from damonx import records
from damonx.attrs import Intervals
from damonx.errors import InvalidRecord
from damonx.records import Record, TargetRecord, TargetSnapshot, make_regions

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
