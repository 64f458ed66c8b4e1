"""The ``damonx`` command line: one module per subcommand.

Each module has ``set_argparser(parser)`` and ``main(args)`` (returning an
exit status); ``SUBCOMMANDS`` lists them in the order ``--help`` shows.
"""

import argparse
import importlib
import sys

SUBCOMMANDS = [
    ("record", "record data accesses of processes, memory or a simulated workload"),
    ("report", "show a record: raw, access, heatmap, wss, nr_regions, footprint"),
    ("features", "which access-check mechanisms this machine offers"),
    ("version", "print the damonx version"),
]


def build_parser(load=None):
    parser = argparse.ArgumentParser(
        prog="damonx", description="DAMON-style data access monitoring from user space")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in SUBCOMMANDS:
        if load is not None and name != load:
            sub.add_parser(name, help=help_text)
            continue
        mod = importlib.import_module(f"damonx.cli.{name}")
        p = sub.add_parser(name, help=help_text, description=mod.__doc__)
        mod.set_argparser(p)
        p.set_defaults(_main=mod.main)
    return parser


def main(argv=None):
    from damonx.errors import DamonxError

    argv = sys.argv[1:] if argv is None else list(argv)
    # import only the subcommand that runs, so `damonx version` stays instant
    load = argv[0] if argv and argv[0] in dict(SUBCOMMANDS) else None
    parser = build_parser(load=load)
    args = parser.parse_args(argv)
    if getattr(args, "_main", None) is None:
        parser.print_help()
        return 2
    try:
        return args._main(args) or 0
    except DamonxError as err:
        print(f"damonx {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
