"""Durations and sizes: parsing what users and damo write, printing them the
way damo does.

Parsers:

- :func:`parse_duration_us`: command line intervals, ``5000`` (microseconds),
  ``5ms``, ``1s``, ``1.5m``;
- :func:`parse_duration_ns`: damo's human-readable times, ``100 ms``,
  ``1 m 3.500 s`` (units ``ns us ms s m h d``);
- :func:`parse_size`: ``4096``, ``4,096``, ``4K``, ``2MiB``, ``1 G``,
  ``4.000 KiB`` (binary prefixes: ``K``, ``KB`` and ``KiB`` are all 1024).

They raise :class:`damonx.errors.InvalidAttrs` for anything else, including
negative or non-finite values and values too large for the 64-bit fields
they end up in.
"""

import re
from decimal import Decimal

from damonx.errors import InvalidAttrs

#: nanoseconds per time unit
NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
    "d": 86_400_000_000_000,
}

_PREFIXES = "KMGTPE"

#: bytes per size unit: B, and K, KB, KiB, M, MB, MiB... up to E
BYTES_PER_UNIT = {"B": 1}
for _i, _p in enumerate(_PREFIXES, 1):
    for _name in (_p, _p + "B", _p + "iB"):
        BYTES_PER_UNIT[_name] = 1 << (10 * _i)

#: the largest value a 64-bit unsigned field holds
U64_MAX = 2**64 - 1
#: the longest interval in microseconds: its nanoseconds still fit 64 bits
MAX_DURATION_US = U64_MAX // NS_PER_UNIT["us"]

_NUMBER = r"([0-9]*\.?[0-9]+)"
_DURATION_US_RE = re.compile(r"\s*" + _NUMBER + r"\s*(us|ms|s|m)?\s*")
_TIME_UNIT = "(" + "|".join(sorted(NS_PER_UNIT, key=len, reverse=True)) + ")"
_DURATION_PAIR_RE = re.compile(r"\s*" + _NUMBER + r"\s*" + _TIME_UNIT)
_DURATION_NS_RE = re.compile(r"(?:" + _DURATION_PAIR_RE.pattern + r")+\s*")
_SIZE_UNIT = "(" + "|".join(sorted(BYTES_PER_UNIT, key=len, reverse=True)) + ")"
_SIZE_RE = re.compile(r"\s*" + _NUMBER + r"\s*" + _SIZE_UNIT + r"?\s*")


def _refuse(text, what, hint):
    """The InvalidAttrs for ``text`` that did not parse as a ``what``."""
    t = str(text).strip().lower()
    if t.startswith("-"):
        reason = "must not be negative"
    elif t.lstrip("+").startswith(("nan", "inf")):
        reason = "is not a finite number"
    else:
        reason = "is not understood"
    return InvalidAttrs(f"{what} {text!r} {reason}: {hint}")


def _check_max(value, text, what, limit, unit):
    if value > limit:
        raise InvalidAttrs(f"{what} {text!r} is too large: at most {limit} {unit}")
    return value


def parse_duration_us(text, what="interval"):
    """``'5000'`` (microseconds), ``'5ms'``, ``'1s'``, ``'1.5m'`` -> int microseconds.

    Fractions round to the nearest microsecond.
    """
    m = _DURATION_US_RE.fullmatch(str(text))
    if not m:
        raise _refuse(text, what, "use microseconds or a unit (5ms, 1s)")
    us_per_unit = NS_PER_UNIT[m.group(2) or "us"] // NS_PER_UNIT["us"]
    us = round(Decimal(m.group(1)) * us_per_unit)
    return _check_max(us, text, what, MAX_DURATION_US, "microseconds")


def parse_duration_ns(text, what="duration"):
    """damo's ``'100 ms'``, ``'1.100 s'``, ``'1 m 3.500 s'`` -> int nanoseconds.

    Every number needs a unit (``ns us ms s m h d``); fractions of a
    nanosecond are dropped.
    """
    text = str(text)
    if not _DURATION_NS_RE.fullmatch(text):
        raise _refuse(text, what, "use numbers with units (100 ms, 1 m 3.500 s)")
    total = sum(Decimal(num) * NS_PER_UNIT[unit] for num, unit in _DURATION_PAIR_RE.findall(text))
    return _check_max(int(total), text, what, U64_MAX, "nanoseconds")


def parse_size(text, what="size"):
    """``'4096'``, ``'4,096'``, ``'4K'``, ``'2MiB'``, ``'1 G'``, ``'4.000 KiB'`` -> int bytes.

    Commas separate thousands; fractions of a byte are dropped.
    """
    m = _SIZE_RE.fullmatch(str(text).replace(",", ""))
    if not m:
        raise _refuse(text, what, "use bytes or a unit (4K, 2MiB, 1G)")
    nbytes = int(Decimal(m.group(1)) * BYTES_PER_UNIT[m.group(2) or "B"])
    return _check_max(nbytes, text, what, U64_MAX, "bytes")


# ---------------------------------------------------------------------------
# printing

# (bytes, name) of the binary units, largest first
_SIZE_STEPS = [(1 << (10 * i), p + "iB") for i, p in reversed(list(enumerate(_PREFIXES, 1)))]


def format_size(nbytes, raw=False):
    """``'4.000 KiB'``, damo's style (``'%d'`` when raw).

    A unit is used only above one of it: 1024 bytes print as ``1024 B``.
    """
    if raw:
        return str(int(nbytes))
    nbytes = float(nbytes)
    for size, name in _SIZE_STEPS:
        if nbytes > size:
            return f"{nbytes / size:.3f} {name}"
    return f"{int(nbytes)} B"


def format_size_short(nbytes):
    """Size for a tick label: ``256 MiB``, ``1.5 GiB``, ``512 B``."""
    for size, name in _SIZE_STEPS:
        if nbytes >= size:
            return f"{nbytes / size:.4g} {name}"
    return f"{nbytes:.0f} B"


def format_duration_ns(ns, raw=False):
    """``'1 m 3.500 s'``, ``'104.599 ms'``, damo's style (``'%d'`` when raw)."""
    if raw:
        return str(int(ns))
    sign = "-" if ns < 0 else ""
    ns = abs(float(ns))
    hour, minute, sec = NS_PER_UNIT["h"], NS_PER_UNIT["m"], NS_PER_UNIT["s"]
    if ns >= hour:
        h = int(ns // hour)
        rest = ns - h * hour
        return sign + (f"{h} h" if rest == 0 else f"{h} h {format_duration_ns(rest)}")
    if ns >= minute:
        m = int(ns // minute)
        rest = ns - m * minute
        if rest == 0:
            return f"{sign}{m} m"
        if rest % sec == 0:
            return f"{sign}{m} m {int(rest / sec)} s"
        return f"{sign}{m} m {rest / sec:.3f} s"
    for name in ("s", "ms", "us"):
        unit = NS_PER_UNIT[name]
        if ns >= unit:
            if ns % unit == 0:
                return f"{sign}{int(ns / unit)} {name}"
            return f"{sign}{ns / unit:.3f} {name}"
    return f"{sign}{int(ns)} ns"
