"""Show which access-check mechanisms this machine offers, and why not."""

import json

from damonx import features
from damonx.cli import _args


def set_argparser(parser):
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--procfs", type=_args.path, default="/proc", help="root of procfs (default /proc)"
    )
    parser.add_argument(
        "--sysfs", type=_args.path, default="/sys", help="root of sysfs (default /sys)"
    )


def main(args):
    found = features.probe(args.procfs, args.sysfs)
    ops = {name: features.ops_available(name, found) for name in features.NEEDS}
    if args.json:
        print(json.dumps({"features": features.as_dict(found), "ops": ops}, indent=2))
        return 0
    width = max(len(n) for n in found)
    for name, f in found.items():
        print(f"{name:<{width}}  {'yes' if f.available else 'no ':3}  {f.detail}")
    print()
    for name, ok in ops.items():
        missing = [n for n in features.NEEDS[name] if not found[n].available]
        print(f"ops {name:<7} {'available' if ok else 'unavailable: needs ' + ', '.join(missing)}")
    return 0
