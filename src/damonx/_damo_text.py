"""Numbers as damo writes them in its options and its JSON or YAML
specifications (``damo args damon``): ``min`` and ``max``, sizes with units
(``4K``, ``100.000 MiB``), times with units (``5 s``, ``100 ms``), ratios
(``5 %``, ``0.3 %``) and thousands separators (``1,000``).

Every parser takes a number as it is, or a text, and raises
``damonx.errors.InvalidAttrs`` naming ``what`` for anything else.  ``max``
is 2^64 - 1 everywhere, as damo has it on a 64-bit machine; the parts that
hold smaller fields clamp it.
"""

from decimal import Decimal, InvalidOperation

from damonx import units
from damonx.errors import InvalidAttrs

U64_MAX = 2**64 - 1


def _number(text, what):
    if isinstance(text, bool):
        raise InvalidAttrs(f"{what}: {text!r} is not a number")
    if isinstance(text, (int, float)):
        value = text
    else:
        t = str(text).strip().replace(",", "")
        try:
            value = int(t)
        except ValueError:
            try:
                value = float(Decimal(t))
            except (InvalidOperation, ValueError):
                raise InvalidAttrs(f"{what}: {text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise InvalidAttrs(f"{what}: {text!r} is not a finite number of at least 0")
    return value


def _min_max(text, what):
    """0 or U64_MAX for ``min`` and ``max``, else None."""
    if isinstance(text, str) and text.strip() in ("min", "max"):
        return 0 if text.strip() == "min" else U64_MAX
    return None


def number(text, what="number"):
    """A plain number (``1,000``, ``min``, ``max``)."""
    special = _min_max(text, what)
    return special if special is not None else _number(text, what)


def size(text, what="size"):
    """Bytes: ``4096``, ``4K``, ``2 MiB``, ``100.000 MiB``, ``min``, ``max``."""
    special = _min_max(text, what)
    if special is not None:
        return special
    if not isinstance(text, str):
        return int(_number(text, what))
    return units.parse_size(text, what)


def _duration_ns(text, what):
    return units.parse_duration_ns(text, what)


def _time(text, what, ns_per_unit):
    """A number as is (in the caller's unit), ``max``/``min``, or a duration
    with units in ns_per_unit nanoseconds."""
    special = _min_max(text, what)
    if special is not None:
        return special
    if not isinstance(text, str):
        return _number(text, what)
    try:
        return _number(text, what)
    except InvalidAttrs:
        return _duration_ns(text, what) / ns_per_unit


def time_us(text, what="time"):
    """Microseconds: a number is microseconds; ``5 s``, ``100 ms``, ``max``."""
    return _time(text, what, 1000)


def time_ms(text, what="time"):
    """Milliseconds: a number is milliseconds; ``1 s``, ``10 ms``, ``max``."""
    return _time(text, what, 1_000_000)


def _ratio(text, what, scale):
    special = _min_max(text, what)
    if special is not None:
        return special
    if isinstance(text, str) and text.strip().endswith("%"):
        return _number(text.strip()[:-1], what) / 100 * scale
    return _number(text, what)


def percent(text, what="percent"):
    """Percent: ``5``, ``5%``, ``5 %``, ``min``, ``max``."""
    return _ratio(text, what, 100)


def permil(text, what="per mille"):
    """Per mille: ``500``, ``50 %``, ``0.3 %``."""
    return _ratio(text, what, 1000)


def bp(text, what="basis points"):
    """Basis points: ``5000``, ``50 %``."""
    return _ratio(text, what, 10000)


def boolean(text, what="flag"):
    """``true``/``false``, ``y``/``n``, ``yes``/``no`` (any case), or a bool."""
    if isinstance(text, bool):
        return text
    t = str(text).strip().lower()
    if t in ("y", "yes", "true"):
        return True
    if t in ("n", "no", "false"):
        return False
    raise InvalidAttrs(f"{what}: {text!r} is not true or false")
