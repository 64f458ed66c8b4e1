"""The ``damonx`` command line: one module per subcommand.

Each module has ``set_argparser(parser)`` and ``main(args)`` (returning an
exit status); ``SUBCOMMANDS`` lists them in the order ``--help`` shows.

Every error is one line on stderr, ``damonx COMMAND: error: MESSAGE``: a
bad argument (exit status 2) as well as a failure while running (status 1).
Warnings of damonx (classes of its modules, such as
``damonx.features.SharedAccessBitsWarning``) are one line each too.
"""

import argparse
import importlib
import sys
import warnings

SUBCOMMANDS = [
    ("record", "record data accesses of processes, memory or a simulated workload"),
    ("start", "monitor and apply operation schemes (damo's --damos_* options) until stopped"),
    ("report", "show a record: raw, access, heatmap, wss, nr_regions, footprint"),
    ("convert", "write a record in another format, or a part of it"),
    ("export", "write a record as Parquet, for DuckDB, Spark, Polars or pandas"),
    ("serve", "export live access metrics to Prometheus"),
    ("features", "which access-check mechanisms this machine offers"),
    ("version", "print the damonx version"),
]

#: the subcommands that take a command to start after a literal ``--``
#: (in ``args.command_line``); nothing after it is parsed as options
TAKES_COMMAND = ("record", "start", "serve")


class ArgumentParser(argparse.ArgumentParser):
    """argparse with its errors on one line (no usage block)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(load=None):
    parser = ArgumentParser(
        prog="damonx", description="DAMON-style data access monitoring from user space"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in SUBCOMMANDS:
        if load is not None and name != load:
            sub.add_parser(name, help=help_text)
            continue
        mod = importlib.import_module(f"damonx.cli.{name}")
        p = sub.add_parser(
            name,
            help=help_text,
            description=mod.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        mod.set_argparser(p)
        p.set_defaults(_main=mod.main, _parser=p)
    return parser


def main(argv=None):
    from damonx.errors import DamonxError

    argv = sys.argv[1:] if argv is None else list(argv)
    # import only the subcommand that runs, so `damonx version` stays instant
    load = argv[0] if argv and argv[0] in dict(SUBCOMMANDS) else None
    command_line = None
    if load in TAKES_COMMAND and "--" in argv:
        split = argv.index("--")
        argv, command_line = argv[:split], argv[split + 1 :]
    parser = build_parser(load=load)
    args, extra = parser.parse_known_args(argv)
    if getattr(args, "_main", None) is None:
        parser.print_help()
        return 2
    if extra:
        # told by the parser of the (sub)command that has them, like any error
        deepest = getattr(args, "_subparser", None) or args._parser
        deepest.error(f"unrecognized arguments: {' '.join(extra)}")
    args.command_line = command_line

    def show_warning(message, category, filename, lineno, file=None, line=None):
        if category.__module__.split(".")[0] == "damonx":
            print(f"damonx {args.command}: warning: {message}", file=sys.stderr)
        else:
            default_show(message, category, filename, lineno, file, line)

    default_show = warnings.showwarning
    try:
        with warnings.catch_warnings():
            warnings.showwarning = show_warning
            return args._main(args) or 0
    except DamonxError as err:
        print(f"damonx {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
