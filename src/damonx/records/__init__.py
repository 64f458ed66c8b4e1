"""Record files: the in-memory model, readers and a streaming writer.

Four formats are read and written; :func:`load` tells them apart by their
first bytes (or a directory's files), never by the file name:

``json_compressed``
    damo's default: a zlib stream of a JSON list with one object per target
    (``target_id``, ``intervals``, ``snapshots``; each snapshot has
    ``start_time``/``end_time`` in ns and ``regions`` with ``start``, ``end``,
    ``nr_accesses.samples`` and ``age.aggr_intervals``).  damonx keeps its own
    metadata under the key ``"damonx"`` of the first target object; damo
    ignores keys it does not know.
``json``
    the same document, uncompressed.
``binary``
    the original DAMON patchset's format: the magic ``damon_recfmt_ver``, an
    int32 version (1: int32 pid per target, 2: uint64 target id), then per
    aggregation the end time, the number of targets and their regions.  It has
    no field for ages, intervals or metadata: those are lost when writing it
    and read back as zero / ``None``.
``parquet``
    a directory of Parquet part files written while recording, which the
    data engines (DuckDB, Spark, pyarrow) read as one dataset, in the schema
    of ``damonx export``; a single exported Parquet file reads too.  Needs
    pyarrow (``pip install 'damonx[arrow]'``).  See ``parquet``.

All sizes are bytes, times nanoseconds unless a name says otherwise.

A target's snapshots are held as columns (:class:`Columns`: times, region
offsets and one array of all regions), which the reports work on; a list of
:class:`TargetSnapshot` is made when asked for.  ``load`` and ``select``
can keep a part of a record only: some targets, a time range, an address
range.

Modules: ``model`` (Record, TargetRecord, TargetSnapshot, Columns,
Selection), ``build`` (RecordBuilder, ``select``), ``detect`` (``load``,
``detect_format``), ``binary`` (the binary codec), ``jsonstream`` (the
streaming JSON reader, with the compiled parser of ``damonx._recread``),
``jsonvalues`` (damo's forms of values), ``writer`` (RecordWriter,
``dumps``, ``save``; one sink per format), ``arrow`` (Arrow tables and
Parquet files, with pyarrow) and ``parquet`` (recordings as directories of
Parquet part files, written and read).
"""

from .binary import MAGIC as BINARY_MAGIC
from .build import select
from .detect import detect_format, load
from .model import (
    DIRECTORY_FORMATS,
    FLAT_REGION_DTYPE,
    FORMATS,
    SNAPSHOT_TIME_DTYPE,
    Columns,
    Record,
    Selection,
    TargetRecord,
    TargetSnapshot,
    make_regions,
)

#: the names of ``writer``, imported when first used: a command that only
#: reads a record starts without it
_WRITER_NAMES = ("RecordWriter", "dumps", "save")


def __getattr__(name):
    if name in _WRITER_NAMES:
        from . import writer

        return getattr(writer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BINARY_MAGIC",
    "Columns",
    "DIRECTORY_FORMATS",
    "FLAT_REGION_DTYPE",
    "FORMATS",
    "SNAPSHOT_TIME_DTYPE",
    "Record",
    "RecordWriter",
    "Selection",
    "TargetRecord",
    "TargetSnapshot",
    "detect_format",
    "dumps",
    "load",
    "make_regions",
    "save",
    "select",
]
