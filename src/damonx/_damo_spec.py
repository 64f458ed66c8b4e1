"""damo's specification of kdamonds (``damo args damon --format json`` or
``--format yaml``, damo's ``--kdamonds``), read into damonx's objects and
written back.

damo's default (human) format is read: numbers with units (``5 ms``,
``100.000 MiB``, ``0.3 %``) and separators.  Its ``--raw`` format prints
some times in nanoseconds where it reads them back in micro- or
milliseconds, so damo itself does not read it back as written; use the
default format.  YAML needs PyYAML (``pip install damonx[yaml]``).
"""

import json
import os

from damonx import _damo_text as txt
from damonx.errors import InvalidAttrs, NotSupported

_MAX_SPEC_BYTES = 16 << 20


def _get(kv, key, what, default=None, required=False):
    if not isinstance(kv, dict):
        raise InvalidAttrs(f"{what} must be a mapping, not {type(kv).__name__}")
    if key not in kv or kv[key] is None:
        if required:
            raise InvalidAttrs(f"{what} has no {key!r}")
        return default
    return kv[key]


def _pair_of(kv, what, parse):
    return (
        parse(_get(kv, "min", what, required=True), f"{what} min"),
        parse(_get(kv, "max", what, required=True), f"{what} max"),
    )


def _counted_or(kv, what, unit, counted, other, parse):
    """(pattern keyword, (min, max)) of a min/max pair: ``counted`` where
    both are written as 'N <unit>', else ``other`` with parse."""
    lo, hi = _get(kv, "min", what, required=True), _get(kv, "max", what, required=True)
    units = {str(v).split()[-1] for v in (lo, hi) if isinstance(v, str) and " " in str(v)}
    if units == {unit}:
        return counted, tuple(txt.number(str(v).split()[0], what) for v in (lo, hi))
    return other, (parse(lo, what), parse(hi, what))


def _nr_accesses(kv):
    """(pattern keyword, (min, max)): percent, or 'N samples'."""
    return _counted_or(
        kv, "access_pattern nr_accesses", "samples", "nr_accesses", "access_rate", txt.percent
    )


def _age(kv):
    """(pattern keyword, (min, max)): a time, or 'N aggr_intervals'."""
    return _counted_or(kv, "access_pattern age", "aggr_intervals", "age", "age_us", txt.time_us)


def scheme_from_kvpairs(cls, kv):
    """A damonx.Scheme (cls) from one of damo's schemes."""
    from damonx import schemes as S

    what = "scheme"
    kw: dict = {}
    ap = _get(kv, "access_pattern", what, default=None)
    if ap is not None:
        sz = _pair_of(_get(ap, "sz_bytes", "access_pattern", required=True), "size", txt.size)
        nr_key, nr = _nr_accesses(_get(ap, "nr_accesses", "access_pattern", required=True))
        age_key, age = _age(_get(ap, "age", "access_pattern", required=True))
        kw["pattern"] = S.AccessPattern(sz=sz, **{nr_key: nr, age_key: age})
    q = _get(kv, "quotas", what)
    if q is not None:
        weights = _get(q, "weights", "quotas", default={})
        goals = []
        for g in _get(q, "goals", "quotas", default=[]):
            if txt.boolean(_get(g, "complement", "quota goal", default=False)):
                raise NotSupported(
                    "quota goal complement: the kernel's DAMON (7.x) has no such flag, "
                    "and neither has damonx"
                )
            goals.append(
                S.QuotaGoal(
                    metric=_get(g, "metric", "quota goal", required=True),
                    target_value=_get(g, "target_value", "quota goal", required=True),
                    current_value=txt.number(_get(g, "current_value", "quota goal", default=0)),
                    nid=_get(g, "nid", "quota goal"),
                    memcg_path=_get(g, "memcg_path", "quota goal"),
                )
            )
        kw["quotas"] = S.Quotas(
            time_ms=_get(q, "time_ms", "quotas", default=0),
            sz_bytes=_get(q, "sz_bytes", "quotas", default=0),
            reset_interval_ms=_get(q, "reset_interval_ms", "quotas", default="max"),
            weights=tuple(
                _get(weights, k, "quota weights", default=0)
                for k in ("sz_permil", "nr_accesses_permil", "age_permil")
            ),
            goals=tuple(goals),
            goal_tuner=_get(q, "goal_tuner", "quotas", default="consist"),
            fail_charge=(
                _get(q, "fail_charge_num", "quotas", default=0),
                _get(q, "fail_charge_denom", "quotas", default=0),
            ),
        )
    w = _get(kv, "watermarks", what)
    if w is not None:
        kw["watermarks"] = S.Watermarks(
            metric=_get(w, "metric", "watermarks", default="none"),
            interval_us=_get(w, "interval_us", "watermarks", default=0),
            high=_get(w, "high_permil", "watermarks", default=0),
            mid=_get(w, "mid_permil", "watermarks", default=0),
            low=_get(w, "low_permil", "watermarks", default=0),
        )
    filters = []
    for f in _get(kv, "filters", what, default=[]):
        ftype = _get(f, "filter_type", "filter", required=True)
        allow = _get(f, "allow", "filter", default=_get(f, "filter_pass", "filter", default=False))
        rng = _get(f, "address_range", "filter")
        filters.append(
            S.Filter(
                ftype,
                matching=_get(f, "matching", "filter", default=True),
                allow=allow,
                memcg_path=_get(f, "memcg_path", "filter") if ftype == "memcg" else None,
                addr=(
                    _get(rng, "start", "address_range", required=True),
                    _get(rng, "end", "address_range", required=True),
                )
                if ftype == "addr" and rng is not None
                else None,
                target_idx=_get(f, "damon_target_idx", "filter") if ftype == "target" else None,
                hugepage_size=_get(f, "hugepage_size", "filter")
                if ftype == "hugepage_size"
                else None,
            )
        )
    if _get(kv, "dests", what, default=[]):
        raise NotSupported(
            "migration to several weighted nodes (dests) is not supported; give one target_nid"
        )
    return cls(
        action=_get(kv, "action", what, default="stat"),
        filters=tuple(filters),
        apply_interval_us=_get(kv, "apply_interval_us", what, default=0),
        target_nid=_get(kv, "target_nid", what),
        **kw,
    )


def scheme_to_kvpairs(s):
    """damo's kvpairs of a damonx.Scheme, in numbers damo reads back."""
    p, q, w = s.pattern, s.quotas, s.watermarks
    if p.nr_accesses is not None:
        nr = {"min": f"{p.nr_accesses[0]} samples", "max": f"{p.nr_accesses[1]} samples"}
    else:
        nr = {"min": f"{p.access_rate[0]} %", "max": f"{p.access_rate[1]} %"}
    if p.age is not None:
        age = {"min": f"{p.age[0]} aggr_intervals", "max": f"{p.age[1]} aggr_intervals"}
    else:
        age = {"min": _int_text(p.age_us[0]), "max": _int_text(p.age_us[1])}
    kv = {"action": s.action, "dests": []}
    if s.target_nid is not None:
        kv["target_nid"] = s.target_nid
    kv["access_pattern"] = {
        "sz_bytes": {"min": str(p.sz[0]), "max": str(p.sz[1])},
        "nr_accesses": nr,
        "age": age,
    }
    kv["apply_interval_us"] = str(s.apply_interval_us)
    kv["quotas"] = {
        "time_ms": str(q.time_ms),
        "sz_bytes": str(q.sz_bytes),
        "reset_interval_ms": str(q.reset_interval_ms),
        "fail_charge_num": str(q.fail_charge[0]),
        "fail_charge_denom": str(q.fail_charge[1]),
        "goals": [
            {
                "metric": g.metric,
                "complement": False,
                "nid": None if g.nid is None else str(g.nid),
                "memcg_path": g.memcg_path,
                "target_value": str(g.target_value),
                "current_value": str(g.current_value),
            }
            for g in q.goals
        ],
        "goal_tuner": q.goal_tuner,
        "effective_sz_bytes": "0",
        "weights": {
            "sz_permil": str(q.weights[0]),
            "nr_accesses_permil": str(q.weights[1]),
            "age_permil": str(q.weights[2]),
        },
    }
    kv["watermarks"] = {
        "metric": w.metric,
        "interval_us": str(w.interval_us),
        "high_permil": str(w.high),
        "mid_permil": str(w.mid),
        "low_permil": str(w.low),
    }
    kv["filters"] = [
        {
            "filter_type": f.type,
            "matching": f.matching,
            "allow": f.allow,
            "memcg_path": f.memcg_path,
            "address_range": None
            if f.addr is None
            else {"start": str(f.addr[0]), "end": str(f.addr[1])},
            "damon_target_idx": None if f.target_idx is None else str(f.target_idx),
            "hugepage_size": None
            if f.hugepage_size is None
            else [str(f.hugepage_size[0]), str(f.hugepage_size[1])],
        }
        for f in s.filters
    ]
    return kv


def _int_text(v):
    return str(int(v)) if v == int(v) else str(v)


# -- whole specifications ----------------------------------------------------
def load(text_or_path):
    """The kvpairs of damo's ``--kdamonds``: a file (JSON or YAML) or the
    text itself, as damo takes it."""
    text = text_or_path
    if os.path.isfile(text_or_path):
        try:
            with open(text_or_path, "rb") as f:
                data = f.read(_MAX_SPEC_BYTES + 1)
        except OSError as err:
            raise InvalidAttrs(f"cannot read {text_or_path}: {err.strerror}") from None
        if len(data) > _MAX_SPEC_BYTES:
            raise InvalidAttrs(f"{text_or_path} is too large for a kdamonds specification")
        text = data.decode("utf-8", errors="replace")
    try:
        spec = json.loads(text)
    except ValueError as json_err:
        try:
            import yaml
        except ImportError:
            raise NotSupported(
                f"the kdamonds specification is no JSON ({json_err}); reading YAML needs "
                "PyYAML: pip install 'damonx[yaml]'"
            ) from None
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise InvalidAttrs(
                "the kdamonds specification is neither JSON nor YAML: " + " ".join(str(err).split())
            ) from None
    if not isinstance(spec, dict):
        raise InvalidAttrs("a kdamonds specification is a mapping with 'kdamonds'")
    return spec


def context_of(spec):
    """The one context of damo's specification: ``{"ops", "targets",
    "intervals", "nr_regions", "schemes"}`` with damonx's objects (targets:
    ``[(pid or None, [(start, end)])]``; intervals in microseconds)."""
    from damonx.schemes import Scheme

    kdamonds = _get(spec, "kdamonds", "the specification", required=True)
    if not isinstance(kdamonds, list) or len(kdamonds) != 1:
        raise InvalidAttrs("damonx runs one kdamond: the specification must have exactly one")
    contexts = _get(kdamonds[0], "contexts", "kdamond", required=True)
    if not isinstance(contexts, list) or len(contexts) != 1:
        raise InvalidAttrs("damonx runs one context: the kdamond must have exactly one")
    ctx = contexts[0]
    intervals = _get(ctx, "intervals", "context", default={})
    nr_regions = _get(ctx, "nr_regions", "context", default={})
    targets = []
    for t in _get(ctx, "targets", "context", default=[]):
        regions = [
            (
                txt.size(_get(r, "start", "region", required=True), "region start"),
                txt.size(_get(r, "end", "region", required=True), "region end"),
            )
            for r in _get(t, "regions", "target", default=[])
        ]
        pid = _get(t, "pid", "target")
        targets.append((None if pid is None else int(txt.number(pid, "pid")), regions))
    schemes = _get(ctx, "schemes", "context", default=[])
    if not isinstance(schemes, list):
        raise InvalidAttrs("the context's schemes must be a list")
    return {
        "ops": _get(ctx, "ops", "context", default="vaddr"),
        "targets": targets,
        "intervals": tuple(
            int(txt.time_us(_get(intervals, k, "intervals", default=d), f"intervals {k}"))
            for k, d in (("sample_us", 5000), ("aggr_us", 100000), ("ops_update_us", 1000000))
        ),
        "nr_regions": tuple(
            int(txt.number(_get(nr_regions, k, "nr_regions", default=d), f"nr_regions {k}"))
            for k, d in (("min", 10), ("max", 1000))
        ),
        "schemes": [Scheme.from_kvpairs(kv) for kv in schemes],
    }
