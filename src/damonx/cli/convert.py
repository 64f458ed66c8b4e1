"""Write a record in another format, or a part of it.

Formats: json_compressed (damo's default), json, binary (the DAMON
patchset's format, which has no place for ages, intervals, scheme
statistics or metadata), and parquet (a directory of Parquet part files, as
damonx record --format parquet writes; needs pyarrow).  The input's format
is told by its first bytes; a directory is a parquet recording.

A part of a long record: some targets (--target_id), the snapshots that
overlap a time range (--time_range, seconds since the start of the record;
snapshots are kept whole, with their times), the regions inside an address
range (--address_range; a region crossing an end is cut there).  The
selection is made while reading, so the part is all that is held in memory.
Like damo's convert_record_format, but the output is a new file: it replaces
an existing one (even the input) only with --overwrite, and only once it is
complete.
"""

import sys

from damonx.cli import _args
from damonx.cli.report import add_allow_partial, add_input, parse_address_range
from damonx.errors import DamonxError


def set_argparser(p):
    add_input(p)
    add_allow_partial(p, "convert")
    p.add_argument(
        "-o", "--output", type=_args.path, required=True, metavar="FILE", help="the new record file"
    )
    p.add_argument(
        "--format",
        choices=_args.RECORD_FORMATS,
        default="json_compressed",
        help="format of the output (default: json_compressed, damo's default)",
    )
    p.add_argument(
        "--binary_version",
        type=int,
        choices=[1, 2],
        default=2,
        help="binary format version: 2 stores 64-bit target ids, 1 int32 pids (default: 2)",
    )
    p.add_argument(
        "--target_id",
        type=_args.target_id,
        nargs="+",
        metavar="ID",
        help="keep only these targets",
    )
    p.add_argument(
        "--time_range",
        type=_args.float_in(0, _args.U64_MAX / 1e9, "a finite number of seconds, at least 0"),
        nargs=2,
        metavar=("START", "END"),
        help="keep the snapshots that overlap [START, END), in seconds since the start of "
        "the record",
    )
    p.add_argument(
        "--address_range",
        nargs=2,
        metavar=("START", "END"),
        help="keep the parts of regions in [START, END) (bytes, decimal or 0x hex)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing output (even the input)"
    )


def main(args):
    from damonx import records

    trange = None
    if args.time_range:
        start, end = (round(t * 1e9) for t in args.time_range)
        if end <= start:
            raise DamonxError(
                f"--time_range: [{args.time_range[0]}, {args.time_range[1]}) is empty"
            )
        trange = (start, end)
    arange = parse_address_range(args.address_range) if args.address_range else None
    rec = records.load(
        args.input,
        partial_ok=args.allow_partial,
        target_ids=args.target_id,
        time_range=trange,
        address_range=arange,
    )
    if rec.warning:
        print(
            f"damonx convert: warning: {rec.warning}; converting what was readable", file=sys.stderr
        )
    missing = sorted(set(args.target_id or ()) - set(rec.target_ids))
    if missing:
        rec.target(missing[0])  # says which targets there are
    records.save(rec, args.output, args.format, args.overwrite, args.binary_version)
    print(
        f"wrote {args.output}: {rec.nr_snapshots} snapshot(s) of {len(rec.targets)} "
        f"target(s), {args.format}",
        file=sys.stderr,
    )
    return 0
