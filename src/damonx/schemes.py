"""Operation schemes (DAMOS): what to do to memory of an access pattern, and
what bounds it, with the kernel's DAMOS semantics and damo's names and units.

A :class:`Scheme` is an :class:`AccessPattern`, an action, and optionally
:class:`Quotas` (with :class:`QuotaGoal`\\ s), :class:`Watermarks` and
:class:`Filter`\\ s::

    import damonx
    prcl = damonx.Scheme(
        "pageout",
        damonx.AccessPattern(access_rate=(0, 0), age_us=(5_000_000, damonx.schemes.MAX)),
        quotas=damonx.Quotas(time_ms=10, sz_bytes=100 << 20, reset_interval_ms=1000),
    )
    mon.add_scheme(prcl)

Units are damo's (and the kernel's sysfs'), whatever monitors the scheme:
sizes in bytes; the access rate in percent of the samples of an aggregation
interval; ages and intervals in microseconds (the quota's in
milliseconds); weights and watermarks per mille.  :data:`MAX` (2^64 - 1)
stands for damo's ``max``.  The compiled backend converts to samples and
aggregations with the monitoring intervals, exactly as damo does when it
writes the kernel's files (:meth:`Scheme.to_core`); an access pattern may
also be given in those units directly (``nr_accesses``, ``age``).

:meth:`Scheme.from_kvpairs` reads the schemes of damo's specification
(``damo args damon --format json``), :meth:`Scheme.to_kvpairs` writes them.
Invalid values raise ``damonx.errors.InvalidAttrs``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from damonx import _damo_text as txt
from damonx.errors import InvalidAttrs

#: damo's ``max``: the largest value of a 64-bit field
MAX = 2**64 - 1
_U32_MAX = 2**32 - 1

#: the actions, by damo's names, in the kernel's order
ACTIONS = (
    "willneed",
    "cold",
    "pageout",
    "hugepage",
    "nohugepage",
    "collapse",
    "lru_prio",
    "lru_deprio",
    "migrate_hot",
    "migrate_cold",
    "stat",
)
#: quota goal metrics; the bp ones in basis points, psi in microseconds
GOAL_METRICS = (
    "user_input",
    "some_mem_psi_us",
    "node_mem_used_bp",
    "node_mem_free_bp",
    "node_memcg_used_bp",
    "node_memcg_free_bp",
    "active_mem_bp",
    "inactive_mem_bp",
)
_NID_METRICS = ("node_mem_used_bp", "node_mem_free_bp", "node_memcg_used_bp", "node_memcg_free_bp")
_MEMCG_METRICS = ("node_memcg_used_bp", "node_memcg_free_bp")
GOAL_TUNERS = ("consist", "temporal")
WMARK_METRICS = ("none", "free_mem_rate")
#: filter types: the page filters of the operations, then the core's
FILTER_TYPES = ("anon", "active", "memcg", "young", "hugepage_size", "unmapped", "addr", "target")


def _pair(value, what, parse, lo_name="min", hi_name="max"):
    try:
        lo, hi = value
    except (TypeError, ValueError):
        raise InvalidAttrs(f"{what} must be a ({lo_name}, {hi_name}) pair") from None
    lo, hi = parse(lo, f"{what} {lo_name}"), parse(hi, f"{what} {hi_name}")
    if lo > hi:
        raise InvalidAttrs(f"{what}: {lo_name} {lo} is above {hi_name} {hi}")
    return (lo, hi)


def _int(value, what, top=MAX):
    v = txt.number(value, what)
    if v != int(v) or v > top:
        raise InvalidAttrs(f"{what} must be an integer from 0 to {top}, not {value!r}")
    return int(v)


def _clamp(value, top):
    return min(int(value), top)


@dataclass(frozen=True)
class AccessPattern:
    """The regions a scheme acts on: inclusive ranges of size (bytes),
    access rate (percent) and age (microseconds); or, instead of the last
    two, nr_accesses (samples per aggregation) and age (aggregations)."""

    sz: tuple = (0, MAX)
    access_rate: tuple | None = (0, MAX)
    age_us: tuple | None = (0, MAX)
    nr_accesses: tuple | None = None
    age: tuple | None = None

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "sz", _pair(self.sz, "access pattern size", txt.size))
        if self.nr_accesses is not None:
            set_(self, "access_rate", None)
            set_(self, "nr_accesses", _pair(self.nr_accesses, "nr_accesses", _int))
        elif self.access_rate is None:
            raise InvalidAttrs("an access pattern needs access_rate or nr_accesses")
        else:
            set_(self, "access_rate", _pair(self.access_rate, "access rate", txt.percent))
        if self.age is not None:
            set_(self, "age_us", None)
            set_(self, "age", _pair(self.age, "age", _int))
        elif self.age_us is None:
            raise InvalidAttrs("an access pattern needs age_us or age")
        else:
            set_(self, "age_us", _pair(self.age_us, "age", txt.time_us))

    def converted(self, sample_us, aggr_us):
        """(sz, nr_accesses, age) bounds in samples and aggregations: percent
        to samples and microseconds to aggregations as damo converts them
        for the kernel's files (truncated, after a float division), each at
        most 2^64 - 1 as damo writes them."""
        if self.nr_accesses is not None:
            nr = self.nr_accesses
        else:
            max_val = aggr_us / sample_us
            nr = tuple(int(p * max_val / 100) for p in self.access_rate)  # type: ignore
        if self.age is not None:
            age = self.age
        else:
            age = tuple(int(us / aggr_us) for us in self.age_us)  # type: ignore
        return (
            self.sz,
            tuple(_clamp(v, MAX) for v in nr),
            tuple(_clamp(v, MAX) for v in age),
        )

    def to_core(self, sample_us, aggr_us):
        """The bounds of :meth:`converted`, capped to the 32 bits of the
        core's (and the kernel's) access counts and ages."""
        sz, nr, age = self.converted(sample_us, aggr_us)
        return (
            sz,
            tuple(_clamp(v, _U32_MAX) for v in nr),
            tuple(_clamp(v, _U32_MAX) for v in age),
        )


@dataclass(frozen=True)
class QuotaGoal:
    """A goal the quota is tuned towards: ``metric`` (:data:`GOAL_METRICS`)
    reaching ``target_value``.  ``current_value`` is the user's, for
    ``user_input``; ``nid`` the node of the ``node_*`` metrics;
    ``memcg_path`` the cgroup (v2, below the cgroup root) of the memcg
    ones."""

    metric: str = "user_input"
    target_value: int = 0
    current_value: int = 0
    nid: int | None = None
    memcg_path: str | None = None

    def __post_init__(self):
        if self.metric not in GOAL_METRICS:
            raise InvalidAttrs(
                f"unknown quota goal metric {self.metric!r}; one of {', '.join(GOAL_METRICS)}"
            )
        if self.metric == "some_mem_psi_us":
            parse = txt.time_us
        elif self.metric.endswith("_bp"):
            parse = txt.bp
        else:
            parse = txt.number
        # rounded: damo prints 7 per mille as 0.7 %, which reads back as 6.999...
        target = _int(round(parse(self.target_value, "quota goal target")), "quota goal target")
        if not target:
            raise InvalidAttrs(f"quota goal {self.metric}: the target value must be above 0")
        object.__setattr__(self, "target_value", target)
        object.__setattr__(
            self, "current_value", _int(self.current_value, "quota goal current value")
        )
        if self.metric in _NID_METRICS:
            if self.nid is None:
                raise InvalidAttrs(f"quota goal {self.metric} needs a node id")
            object.__setattr__(self, "nid", _int(self.nid, "quota goal node id", 2**31 - 1))
        if self.metric in _MEMCG_METRICS and not self.memcg_path:
            raise InvalidAttrs(f"quota goal {self.metric} needs a memcg path")


@dataclass(frozen=True)
class Quotas:
    """At most ``time_ms`` of work and ``sz_bytes`` acted on per
    ``reset_interval_ms`` (0: no such limit), the regions most worth acting
    on first by ``weights`` (per mille of size, access rate and age; the
    size's is kept and ignored, as the kernel's operations ignore it); and
    ``goals`` that tune the size quota by feedback (``goal_tuner``).  A
    failed action is charged ``fail_charge`` (numerator, denominator) of its
    size, or all of it with a denominator of 0."""

    time_ms: int = 0
    sz_bytes: int = 0
    reset_interval_ms: int = MAX
    weights: tuple = (0, 0, 0)
    goals: tuple = ()
    goal_tuner: str = "consist"
    fail_charge: tuple = (0, 0)

    def __post_init__(self):
        set_ = object.__setattr__
        set_(self, "time_ms", _int(int(txt.time_ms(self.time_ms, "time quota")), "time quota"))
        set_(self, "sz_bytes", _int(txt.size(self.sz_bytes, "size quota"), "size quota"))
        set_(
            self,
            "reset_interval_ms",
            _int(int(txt.time_ms(self.reset_interval_ms, "quota interval")), "quota interval"),
        )
        try:
            weights = tuple(self.weights)
        except TypeError:
            weights = ()
        if len(weights) != 3:
            raise InvalidAttrs("quota weights are three: size, access rate and age (per mille)")
        set_(
            self,
            "weights",
            tuple(
                _int(round(txt.permil(w, "quota weight")), "quota weight", _U32_MAX)
                for w in weights
            ),
        )
        goals = tuple(self.goals)
        if not all(isinstance(g, QuotaGoal) for g in goals):
            raise InvalidAttrs("quota goals must be damonx.QuotaGoal")
        set_(self, "goals", goals)
        if self.goal_tuner not in GOAL_TUNERS:
            raise InvalidAttrs(
                f"unknown goal tuner {self.goal_tuner!r}; one of {', '.join(GOAL_TUNERS)}"
            )
        num, denom = _pair(self.fail_charge, "fail charge ratio", _int, "numerator", "denominator")
        if num > _U32_MAX or denom > _U32_MAX:
            raise InvalidAttrs("the fail charge ratio holds 32-bit numbers")
        set_(self, "fail_charge", (num, denom))


@dataclass(frozen=True)
class Watermarks:
    """Act only while the system's free memory rate (per mille) is between
    ``low`` and ``high``, starting again below ``mid``; checked every
    ``interval_us``.  ``metric`` ``none``: always active."""

    metric: str = "none"
    interval_us: int = 0
    high: int = 0
    mid: int = 0
    low: int = 0

    def __post_init__(self):
        if self.metric not in WMARK_METRICS:
            raise InvalidAttrs(
                f"unknown watermark metric {self.metric!r}; one of {', '.join(WMARK_METRICS)}"
            )
        set_ = object.__setattr__
        set_(
            self,
            "interval_us",
            _int(int(txt.time_us(self.interval_us, "watermark interval")), "watermark interval"),
        )
        for name in ("high", "mid", "low"):
            set_(
                self, name, _int(round(txt.permil(getattr(self, name), f"{name} watermark")), name)
            )
        if self.metric != "none":
            if not self.interval_us:
                raise InvalidAttrs("watermarks need an interval above 0")
            if not self.high >= self.mid >= self.low:
                raise InvalidAttrs(
                    f"watermarks need high >= mid >= low, not {self.high}, {self.mid}, {self.low}"
                )


@dataclass(frozen=True)
class Filter:
    """Memory of ``type`` (:data:`FILTER_TYPES`), or not of it when not
    ``matching``, is let through (``allow``) or kept from the action; the
    first filter that matches decides.  Arguments: ``memcg_path`` (memcg, a
    cgroup v2 path below the cgroup root), ``addr`` ((start, end) bytes),
    ``target_idx`` (target, its index), ``hugepage_size`` ((min, max)
    bytes of the folio)."""

    type: str
    matching: bool = True
    allow: bool = False
    memcg_path: str | None = None
    addr: tuple | None = None
    target_idx: int | None = None
    hugepage_size: tuple | None = None

    def __post_init__(self):
        if self.type not in FILTER_TYPES:
            raise InvalidAttrs(
                f"unknown filter type {self.type!r}; one of {', '.join(FILTER_TYPES)}"
            )
        set_ = object.__setattr__
        set_(self, "matching", txt.boolean(self.matching, "filter matching"))
        set_(self, "allow", txt.boolean(self.allow, "filter allow"))
        if self.type == "memcg" and not self.memcg_path:
            raise InvalidAttrs("a memcg filter needs a memcg path")
        if self.type == "addr":
            if self.addr is None:
                raise InvalidAttrs("an addr filter needs an address range")
            start, end = _pair(self.addr, "addr filter range", txt.size, "start", "end")
            if start == end:
                raise InvalidAttrs("an addr filter needs a non-empty address range")
            set_(self, "addr", (start, end))
        if self.type == "target":
            if self.target_idx is None:
                raise InvalidAttrs("a target filter needs a target index")
            set_(self, "target_idx", _int(self.target_idx, "target filter index"))
        if self.type == "hugepage_size":
            if self.hugepage_size is None:
                raise InvalidAttrs("a hugepage_size filter needs a (min, max) size range")
            set_(self, "hugepage_size", _pair(self.hugepage_size, "hugepage size", txt.size))

    @property
    def handled_by_ops(self):
        """Whether the operations (pages) handle it, not the core (regions)."""
        return self.type not in ("addr", "target")


@dataclass(frozen=True)
class Scheme:
    """An operation scheme: ``action`` (:data:`ACTIONS`) on the regions of
    ``pattern``, every ``apply_interval_us`` (0: every aggregation), within
    ``quotas``, while ``watermarks`` allow, on what ``filters`` let through.
    ``target_nid``: the node ``migrate_hot`` and ``migrate_cold`` move to."""

    action: str = "stat"
    pattern: AccessPattern = field(default_factory=AccessPattern)
    quotas: Quotas = field(default_factory=Quotas)
    watermarks: Watermarks = field(default_factory=Watermarks)
    filters: tuple = ()
    apply_interval_us: int = 0
    target_nid: int | None = None

    def __post_init__(self):
        if self.action not in ACTIONS:
            raise InvalidAttrs(f"unknown action {self.action!r}; one of {', '.join(ACTIONS)}")
        for name, cls in (
            ("pattern", AccessPattern),
            ("quotas", Quotas),
            ("watermarks", Watermarks),
        ):
            if not isinstance(getattr(self, name), cls):
                raise InvalidAttrs(f"a scheme's {name} must be a damonx.{cls.__name__}")
        filters = tuple(self.filters)
        if not all(isinstance(f, Filter) for f in filters):
            raise InvalidAttrs("a scheme's filters must be damonx.Filter")
        object.__setattr__(self, "filters", filters)
        object.__setattr__(
            self,
            "apply_interval_us",
            _int(int(txt.time_us(self.apply_interval_us, "apply interval")), "apply interval"),
        )
        if self.action in ("migrate_hot", "migrate_cold"):
            if self.target_nid is None:
                raise InvalidAttrs(f"{self.action} needs a target node (target_nid)")
            object.__setattr__(self, "target_nid", _int(self.target_nid, "target node", 2**31 - 1))

    # -- the compiled core ------------------------------------------------
    def to_core(self, sample_us, aggr_us, sysfs="/sys"):
        """This scheme as ``damonx._core.Context.add_scheme`` takes it, for
        the monitoring intervals given (microseconds).  A memcg filter's
        cgroup is looked up under sysfs/fs/cgroup (its inode is what
        /proc/kpagecgroup tells of pages)."""
        sz, nr, age = self.pattern.to_core(sample_us, aggr_us)
        q, w = self.quotas, self.watermarks
        return {
            "action": self.action,
            "sz": sz,
            "nr_accesses": nr,
            "age": age,
            "target_nid": -1 if self.target_nid is None else self.target_nid,
            "apply_interval_us": self.apply_interval_us,
            "quota": {
                "ms": q.time_ms,
                "sz": q.sz_bytes,
                "reset_interval_ms": q.reset_interval_ms,
                "weights": q.weights,
                "goal_tuner": GOAL_TUNERS.index(q.goal_tuner),
                "fail_charge": q.fail_charge,
                "goals": [
                    {
                        "metric": g.metric,
                        "target_value": g.target_value,
                        "current_value": g.current_value,
                        "nid": -1 if g.nid is None else g.nid,
                        "memcg_path": (g.memcg_path or "").strip("/"),
                    }
                    for g in q.goals
                ],
            },
            "wmarks": {
                "metric": WMARK_METRICS.index(w.metric),
                "interval_us": w.interval_us,
                "high": w.high,
                "mid": w.mid,
                "low": w.low,
            },
            "filters": [_filter_to_core(f, sysfs) for f in self.filters],
        }

    # -- damo's specification ---------------------------------------------
    @classmethod
    def from_kvpairs(cls, kv):
        """A scheme of damo's specification (the ``schemes`` of a context
        in ``damo args damon`` output)."""
        from damonx import _damo_spec

        return _damo_spec.scheme_from_kvpairs(cls, kv)

    def to_kvpairs(self):
        """damo's form of this scheme (raw numbers), which damo reads."""
        from damonx import _damo_spec

        return _damo_spec.scheme_to_kvpairs(self)


def _filter_to_core(f, sysfs):
    out = {"type": f.type, "matching": f.matching, "allow": f.allow}
    if f.type == "memcg":
        path = os.path.join(sysfs, "fs", "cgroup", f.memcg_path.strip("/"))
        try:
            out["memcg_ino"] = os.stat(path).st_ino
        except OSError as err:
            raise InvalidAttrs(
                f"memcg filter: cannot find the cgroup {f.memcg_path!r} ({path}: "
                f"{err.strerror}); give a path below the cgroup v2 root"
            ) from None
    elif f.type == "addr":
        out["addr"] = f.addr
    elif f.type == "target":
        out["target_idx"] = f.target_idx
    elif f.type == "hugepage_size":
        out["sz"] = f.hugepage_size
    return out
