"""Argument types of the command line: each checks its range, so that a bad
value ends as one argparse error line and never reaches the code below.

argparse reports a ``ValueError`` raised by a type as ``invalid TYPE value``;
an ``argparse.ArgumentTypeError`` carries the message given here instead.
"""

import argparse
import math

U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
PID_MAX = 2**31 - 1
#: the record formats (damonx.records' FORMATS and DIRECTORY_FORMATS), named
#: here so that building the parser does not import the records package
RECORD_FORMATS = ("json_compressed", "json", "binary", "parquet")


def _refuse(text, what):
    return argparse.ArgumentTypeError(f"{text!r} is not {what}")


def int_in(lo, hi, what=None):
    """A type: an integer (decimal) in [lo, hi]."""
    what = what or f"an integer from {lo} to {hi}"

    def parse(text):
        try:
            value = int(text, 10)
        except ValueError:
            raise _refuse(text, what) from None
        if not lo <= value <= hi:
            raise _refuse(text, what)
        return value

    parse.__name__ = "integer"
    return parse


def float_in(lo, hi, what, *, lo_open=False):
    """A type: a finite number in [lo, hi] ((lo, hi] with lo_open); nan and
    infinities are refused."""

    def parse(text):
        try:
            value = float(text)
        except ValueError:
            raise _refuse(text, what) from None
        above_lo = lo < value if lo_open else lo <= value
        if not (math.isfinite(value) and above_lo and value <= hi):
            raise _refuse(text, what)
        return value

    parse.__name__ = "number"
    return parse


#: a number of seconds, positive and finite (at most about 292 years, the
#: nanoseconds of which still fit 64 bits)
seconds = float_in(0, U64_MAX / 1e9, "a positive finite number of seconds", lo_open=True)
#: a percentile
percentile = float_in(0, 100, "a percentile from 0 to 100")
#: a seed of the sampling
seed = int_in(0, U64_MAX, f"a seed from 0 to {U64_MAX}")
#: a target id: a pid, or a 64-bit id of the binary format
target_id = int_in(-(2**63), U64_MAX, "a target id (an integer)")
#: a count of regions, as DAMON's 32-bit fields hold it
nr_regions = int_in(0, U32_MAX, f"a number of regions from 0 to {U32_MAX}")

_budget = float_in(0.01, 100, "a CPU budget from 0.01 to 100 (percent of one CPU)")


def cpu_budget(text):
    """A type: percent of one CPU, 0.01 to 100, with or without a % sign."""
    return _budget(text[:-1] if text.endswith("%") else text)


cpu_budget.__name__ = "percent"


def pid(text):
    """A type: a process id, 1 to 2^31-1, in decimal."""
    if text.lstrip("+-").isdigit():
        if text.isdigit() and 0 < int(text) <= PID_MAX:
            return int(text)
        raise argparse.ArgumentTypeError(f"{text!r} is not a process id (1 to {PID_MAX})")
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a process id; a command to start goes after --: "
        f"damonx record [OPTIONS] -- {text} [ARGS]"
    )


pid.__name__ = "pid"


def path(text):
    """A type: a file path (no NUL byte, which no file name holds)."""
    if "\0" in text:
        raise argparse.ArgumentTypeError(f"{text!r} is not a path: it holds a NUL byte")
    return text


path.__name__ = "path"
