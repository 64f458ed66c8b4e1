"""damo's ``--damos_*`` options, and ``--kdamonds``, for every command that
monitors: ``add_scheme_options(parser)`` adds them, ``schemes_from_args``
turns them into ``damonx.Scheme`` objects with damo's rules.

As damo: one scheme per ``--damos_action``; the other options apply, in
order, to the first, second... scheme, and the schemes they leave out get
the defaults (every region; no quota, watermark or filter).  Several quota
goals or filters go to several schemes by ``--damos_nr_quota_goals`` and
``--damos_nr_filters`` (the count per scheme), or by damo's
``--damos_scheme`` markers (each starts a scheme: the goals and filters
after it are its own); with one scheme they are all its own.
``--damos_quota_interval``, ``--damos_quota_time``,
``--damos_quota_space`` and ``--damos_quota_weights`` give the parts of
``--damos_quotas`` one by one.  Each ``--damos_filter`` is one filter.
"""

import argparse

from damonx import _damo_spec
from damonx import _damo_text as txt
from damonx.errors import InvalidAttrs

_APPEND_OPTIONS = (
    # name, nargs, metavar, help
    ("--damos_action", "+", ("ACTION", "NID"),
     "the action of a new scheme (migrate_hot and migrate_cold take the node to move to)"),
    ("--damos_sz_region", 2, ("MIN", "MAX"), "sizes of the regions to act on (bytes)"),
    ("--damos_access_rate", 2, ("MIN", "MAX"), "access rates of the regions (percent)"),
    ("--damos_age", 2, ("MIN", "MAX"),
     "ages of the regions (microseconds, with a unit as 5s, or max)"),
    ("--damos_apply_interval", None, "US", "apply the scheme every so often (microseconds)"),
    ("--damos_quotas", "+", "QUOTA",
     "TIME_MS [SIZE [RESET_MS [WEIGHT_SZ WEIGHT_ACCESS_RATE WEIGHT_AGE]]] (weights per mille)"),
    ("--damos_quota_interval", None, "MS", "the quota's reset interval"),
    ("--damos_quota_time", None, "MS", "the time quota"),
    ("--damos_quota_space", None, "BYTES", "the size quota"),
    ("--damos_quota_weights", 3, ("SZ", "ACCESS_RATE", "AGE"),
     "the quota's priority weights (per mille)"),
    ("--damos_quota_goal", "+", "GOAL",
     "METRIC TARGET [NID [MEMCG_PATH] | CURRENT]: a goal that tunes the quota"),
    ("--damos_quota_goal_tuner", None, "TUNER", "consist (default) or temporal"),
    ("--damos_quota_fail_charge_ratio", 2, ("NUM", "DENOM"),
     "how much of a failed action the quota is charged"),
    ("--damos_filter", "+", "FILTER",
     "allow|reject [none] TYPE [ARGS]: anon, active, memcg PATH, young, "
     "hugepage_size MIN MAX, unmapped, addr START END, target INDEX"),
    ("--damos_wmarks", 5, ("METRIC", "INTERVAL_US", "HIGH", "MID", "LOW"),
     "watermarks: none or free_mem_rate, checked every INTERVAL_US (marks per mille)"),
)  # fmt: skip


class _SchemeMarker(argparse.Action):
    """damo's --damos_scheme: a new scheme's goals and filters follow."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.damos_scheme = [*namespace.damos_scheme, {"quota_goal": 0, "filter": 0}]


class _AppendCounted(argparse.Action):
    """append, and count the value for the scheme its marker started."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, [*getattr(namespace, self.dest), values])
        markers = namespace.damos_scheme
        what = self.dest[len("damos_") :]
        if markers:
            markers[-1][what] += 1
        elif namespace.damos_scheme_unmarked is None:
            namespace.damos_scheme_unmarked = option_string


def add_scheme_options(parser):
    """damo's options of operation schemes, and --kdamonds."""
    group = parser.add_argument_group(
        "operation schemes", "damo's --damos_* options: one scheme per --damos_action"
    )
    for name, nargs, metavar, help_text in _APPEND_OPTIONS:
        kwargs = {"nargs": nargs} if nargs is not None else {}
        counted = name in ("--damos_quota_goal", "--damos_filter")
        group.add_argument(
            name,
            action=_AppendCounted if counted else "append",
            default=[],
            metavar=metavar,
            help=help_text,
            **kwargs,
        )
    group.add_argument(
        "--damos_scheme",
        action=_SchemeMarker,
        nargs=0,
        default=[],
        help="damo's marker: the --damos_quota_goal and --damos_filter options that "
        "follow are those of the next scheme",
    )
    parser.set_defaults(damos_scheme_unmarked=None)
    for name in ("--damos_nr_quota_goals", "--damos_nr_filters"):
        group.add_argument(
            name,
            nargs="+",
            type=_count,
            default=[],
            metavar="N",
            help="how many of the goals (filters) each scheme has, in order",
        )
    group.add_argument(
        "--kdamonds",
        metavar="FILE",
        help="damo's JSON or YAML specification (damo args damon): its ops, targets, "
        "intervals and schemes",
    )


def _count(text):
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a count")
    return int(text)


def uses_schemes(args):
    return bool(args.damos_action or args.kdamonds)


def _check_lengths(args, nr):
    for name in (
        "sz_region",
        "access_rate",
        "age",
        "apply_interval",
        "quotas",
        "wmarks",
        "quota_goal_tuner",
        "quota_fail_charge_ratio",
    ):
        if len(getattr(args, "damos_" + name)) > nr:
            raise InvalidAttrs(f"more --damos_{name} than schemes (--damos_action)")
    if not nr:
        for name in ("quota_goal", "filter", "quota_interval", "quota_time", "quota_space"):
            if getattr(args, "damos_" + name):
                raise InvalidAttrs(f"--damos_{name} needs a scheme: give --damos_action")


def _split(items, counts, nr, what):
    """items spread over nr schemes by counts (all to the one scheme)."""
    if not nr:
        return []
    if not counts:
        if items and nr > 1:
            raise InvalidAttrs(f"with several schemes, --damos_nr_{what}s tells whose they are")
        counts = [len(items)] + [0] * (nr - 1)
    if len(counts) != nr or sum(counts) != len(items):
        raise InvalidAttrs(
            f"--damos_nr_{what}s must give one count per scheme, adding up to the "
            f"{len(items)} --damos_{what} options"
        )
    out, start = [], 0
    for count in counts:
        out.append(items[start : start + count])
        start += count
    return out


def _quotas_from(words, goals, tuner, fail_charge):
    from damonx.schemes import Quotas

    if len(words) > 6:
        raise InvalidAttrs(f"--damos_quotas takes at most 6 values, not {len(words)}")
    padded: list = [*words, *[None] * (6 - len(words))]
    time_ms, sz, reset = padded[:3]
    weights = tuple(w if w is not None else 0 for w in padded[3:])
    if goals and reset is None:
        raise InvalidAttrs("quota goals need a reset interval: --damos_quotas TIME SIZE RESET_MS")
    return Quotas(
        time_ms=time_ms or 0,
        sz_bytes=sz or 0,
        reset_interval_ms=reset if reset is not None else txt.U64_MAX,
        weights=weights,
        goals=tuple(goals),
        goal_tuner=tuner or "consist",
        fail_charge=fail_charge,
    )


def _goal_from(words):
    from damonx.schemes import QuotaGoal

    if not 2 <= len(words) <= 4:
        raise InvalidAttrs(f"--damos_quota_goal {' '.join(words)}: METRIC TARGET [ARGS]")
    metric, target, *rest = words
    if rest[:1] == ["complement"]:
        raise InvalidAttrs(
            "--damos_quota_goal complement: the kernel's DAMON (7.x) has no such flag, "
            "and neither has damonx"
        )
    kw = {}
    if metric in ("node_mem_used_bp", "node_mem_free_bp"):
        if len(rest) != 1:
            raise InvalidAttrs(f"--damos_quota_goal {metric} TARGET NID: give the node id")
        kw["nid"] = rest[0]
    elif metric in ("node_memcg_used_bp", "node_memcg_free_bp"):
        if len(rest) != 2:
            raise InvalidAttrs(f"--damos_quota_goal {metric} TARGET NID MEMCG_PATH")
        kw["nid"], kw["memcg_path"] = rest
    elif metric == "user_input":
        if len(rest) != 1:
            raise InvalidAttrs("--damos_quota_goal user_input TARGET CURRENT: give both values")
        kw["current_value"] = rest[0]
    elif rest:
        raise InvalidAttrs(f"--damos_quota_goal {metric} takes no more than its target")
    return QuotaGoal(metric=metric, target_value=target, **kw)


#: the arguments each filter type takes
_FILTER_ARGS = {"memcg": 1, "addr": 2, "target": 1, "hugepage_size": 2}


def _filter_from(words):
    from damonx.schemes import FILTER_TYPES, Filter

    text = " ".join(words)
    if not words or words[0] not in ("allow", "reject", "deny", "block"):
        raise InvalidAttrs(f"--damos_filter {text}: start with allow or reject")
    allow = words[0] == "allow"
    rest = words[1:]
    matching = True
    if rest[:1] in (["none"], ["non"]):
        matching = False
        rest = rest[1:]
    if not rest or rest[0] not in FILTER_TYPES:
        raise InvalidAttrs(f"--damos_filter {text}: the type is one of {', '.join(FILTER_TYPES)}")
    ftype, args = rest[0], rest[1:]
    if len(args) != _FILTER_ARGS.get(ftype, 0):
        raise InvalidAttrs(
            f"--damos_filter {text}: {ftype} takes {_FILTER_ARGS.get(ftype, 0)} argument(s)"
        )
    kw = {}
    if ftype == "memcg":
        kw["memcg_path"] = args[0]
    elif ftype == "addr":
        kw["addr"] = tuple(args)
    elif ftype == "target":
        kw["target_idx"] = args[0]
    elif ftype == "hugepage_size":
        kw["hugepage_size"] = tuple(args)
    return Filter(ftype, matching=matching, allow=allow, **kw)


def _apply_markers(args, nr):
    """--damos_scheme markers as the counts of --damos_nr_quota_goals and
    --damos_nr_filters, as damo reads them."""
    markers = args.damos_scheme
    if not markers:
        return
    if args.damos_nr_quota_goals or args.damos_nr_filters:
        raise InvalidAttrs("--damos_nr_* cannot be used with --damos_scheme markers")
    if args.damos_scheme_unmarked is not None:
        raise InvalidAttrs(
            f"{args.damos_scheme_unmarked} before the first --damos_scheme: "
            "with markers, each scheme's goals and filters follow its marker"
        )
    if len(markers) != nr:
        raise InvalidAttrs(
            f"{len(markers)} --damos_scheme markers for {nr} schemes (--damos_action)"
        )
    args.damos_nr_quota_goals = [m["quota_goal"] for m in markers]
    args.damos_nr_filters = [m["filter"] for m in markers]


def _legacy_quotas(args):
    """--damos_quota_interval and its companions, as --damos_quotas."""
    out = list(args.damos_quotas)
    for i, interval in enumerate(args.damos_quota_interval):
        time_ms = args.damos_quota_time[i] if i < len(args.damos_quota_time) else 0
        space = args.damos_quota_space[i] if i < len(args.damos_quota_space) else 0
        weights = args.damos_quota_weights[i] if i < len(args.damos_quota_weights) else [1] * 3
        out.append([time_ms, space, interval, *weights])
    return out


def schemes_from_args(args):
    """The schemes the --damos_* options (or --kdamonds) ask for."""
    from damonx.schemes import GOAL_TUNERS, AccessPattern, Scheme

    if args.kdamonds:
        if args.damos_action:
            raise InvalidAttrs("give schemes with --kdamonds or with --damos_*, not both")
        return _damo_spec.context_of(_damo_spec.load(args.kdamonds))["schemes"]
    nr = len(args.damos_action)
    _apply_markers(args, nr)
    quotas = _legacy_quotas(args)
    args.damos_quotas, saved = quotas, args.damos_quotas
    try:
        _check_lengths(args, nr)
    finally:
        args.damos_quotas = saved
    goals = _split(args.damos_quota_goal, args.damos_nr_quota_goals, nr, "quota_goal")
    filters = _split(args.damos_filter, args.damos_nr_filters, nr, "filter")
    out = []
    for i, (action, *action_args) in enumerate(args.damos_action):
        target_nid = None
        if action in ("migrate_hot", "migrate_cold"):
            if len(action_args) != 1:
                raise InvalidAttrs(
                    f"--damos_action {action} NID: give the one node to move to "
                    "(several weighted nodes are not supported)"
                )
            target_nid = txt.number(action_args[0], f"{action} node")
        elif action_args:
            raise InvalidAttrs(
                f"--damos_action {action} takes no argument, not {' '.join(action_args)!r}; "
                "give process ids before the --damos_* options"
            )

        def nth(name, default, i=i):
            values = getattr(args, "damos_" + name)
            return values[i] if i < len(values) else default

        scheme_goals = [_goal_from(g) for g in goals[i]]
        tuner = nth("quota_goal_tuner", None)
        if tuner is not None and tuner not in GOAL_TUNERS:
            raise InvalidAttrs(f"--damos_quota_goal_tuner {tuner}: one of {', '.join(GOAL_TUNERS)}")
        fail_charge = tuple(nth("quota_fail_charge_ratio", (0, 0)))
        q_words = quotas[i] if i < len(quotas) else None
        kw = {}
        if q_words is not None or scheme_goals:
            kw["quotas"] = _quotas_from(q_words or [], scheme_goals, tuner, fail_charge)
        wm = nth("wmarks", None)
        if wm is not None:
            from damonx.schemes import Watermarks

            kw["watermarks"] = Watermarks(*wm)
        out.append(
            Scheme(
                action,
                AccessPattern(
                    sz=nth("sz_region", ("min", "max")),
                    access_rate=nth("access_rate", ("min", "max")),
                    age_us=nth("age", ("min", "max")),
                ),
                filters=tuple(_filter_from(f) for f in filters[i]),
                apply_interval_us=nth("apply_interval", 0),
                target_nid=target_nid,
                **kw,
            )
        )
    return out


def apply_kdamonds_context(args):
    """With --kdamonds: take the ops, targets and monitoring attributes of
    its context where the command line gives none."""
    if not args.kdamonds:
        return
    ctx = _damo_spec.context_of(_damo_spec.load(args.kdamonds))
    if args.ops is None and not args.workload:
        args.ops = ctx["ops"]
    if not args.target and not args.command_line and not args.workload:
        pids = [pid for pid, _ in ctx["targets"] if pid is not None]
        args.target = pids
        if not args.regions:
            args.regions = [f"{s}-{e}" for _, regions in ctx["targets"] for s, e in regions]
    if args.monitoring_intervals == ["5ms", "100ms", "1s"]:
        args.monitoring_intervals = [str(us) for us in ctx["intervals"]]
    if args.monitoring_nr_regions_range == [10, 1000]:
        args.monitoring_nr_regions_range = list(ctx["nr_regions"])
