"""Show which access-check mechanisms this machine offers, which backends
can monitor here, and why not.

Reads only, but with --probe: where no kdamond directory of the kernel's
DAMON exists, --probe creates one, reads which files the kernel has (what
the kernel backend offers) and removes it again (root only).
"""

import json
from dataclasses import asdict

from damonx import features
from damonx.cli import _args


def set_argparser(parser):
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--probe",
        action="store_true",
        help="create an idle kdamond directory to read the kernel's DAMON layout, then "
        "remove it (root; never while a kdamond runs)",
    )
    parser.add_argument(
        "--procfs", type=_args.path, default="/proc", help="root of procfs (default /proc)"
    )
    parser.add_argument(
        "--sysfs", type=_args.path, default="/sys", help="root of sysfs (default /sys)"
    )


def main(args):
    found = features.probe(args.procfs, args.sysfs)
    ops = {name: features.ops_available(name, found) for name in features.NEEDS}
    backends = features.backends(args.procfs, args.sysfs, found, write_probe=args.probe)
    if args.json:
        out = {
            "features": features.as_dict(found),
            "ops": ops,
            "backends": {b.name: asdict(b) for b in backends},
        }
        print(json.dumps(out, indent=2))
        return 0
    width = max(len(n) for n in found)
    for name, f in found.items():
        print(f"{name:<{width}}  {'yes' if f.available else 'no ':3}  {f.detail}")
    print()
    for name, ok in ops.items():
        missing = [n for n in features.NEEDS[name] if not found[n].available]
        print(f"ops {name:<7} {'available' if ok else 'unavailable: needs ' + ', '.join(missing)}")
    print()
    for b in backends:
        print(f"backend {b.name:<9} {'usable' if b.usable else 'unusable: ' + b.why_not}")
        print(f"    {b.offers}")
    return 0
