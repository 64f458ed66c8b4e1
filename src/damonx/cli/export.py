"""Export a record to Parquet, for the engines that study many recordings
at once (DuckDB, Spark, Polars, pandas); needs pyarrow:
pip install 'damonx[arrow]'.

One row per region per snapshot: target_id, snapshot, snapshot_start_ns,
snapshot_end_ns, start, end, size, nr_accesses, age, sample_us, aggr_us,
nr_checks, and damos_stats when schemes ran.  The file's key-value metadata
holds the damonx version, and the host, ops, backend, intervals and targets
(pid, comm, cmdline) where the record says them.

-o writes one file.  --hive DIR writes DIR/host=HOST/target=ID/part.parquet
instead, so that the exports of many hosts read as one dataset:

    SELECT host, ... FROM read_parquet('DIR/*/*/*.parquet', hive_partitioning = true)

The host is the record's (damonx record keeps the machine's name), or --host.
"""

import os
import sys

from damonx.cli import _args
from damonx.cli.report import add_allow_partial, add_input
from damonx.errors import DamonxError, InvalidAttrs


def set_argparser(p):
    add_input(p)
    add_allow_partial(p, "export")
    out = p.add_mutually_exclusive_group(required=True)
    out.add_argument(
        "-o", "--output", type=_args.path, metavar="FILE.parquet", help="the Parquet file"
    )
    out.add_argument(
        "--hive",
        type=_args.path,
        metavar="DIR",
        help="write DIR/host=HOST/target=ID/part.parquet (a hive-partitioned dataset)",
    )
    p.add_argument("--host", help="the host the record comes from (default: the record's)")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")


def main(args):
    from damonx import records
    from damonx.records import arrow

    arrow.require_pyarrow()
    if args.host is not None and not args.host.strip():
        raise InvalidAttrs("--host needs a name")
    rec = records.load(args.input, partial_ok=args.allow_partial)
    if rec.warning:
        print(
            f"damonx export: warning: {rec.warning}; exporting what was readable", file=sys.stderr
        )
    if args.hive:
        paths = arrow.write_hive(rec, args.hive, args.host, args.overwrite)
        print(f"wrote {len(paths)} file(s) under {args.hive}", file=sys.stderr)
        return 0
    if os.path.lexists(args.output) and not args.overwrite:
        raise DamonxError(f"{args.output} exists: give --overwrite to replace it")
    table = arrow.write_parquet(rec, args.output, args.host)
    print(
        f"wrote {args.output}: {table.num_rows} row(s) of {len(rec.targets)} target(s)",
        file=sys.stderr,
    )
    return 0
