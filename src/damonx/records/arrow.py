"""Records as Apache Arrow tables and Parquet files (needs pyarrow: the
``arrow`` extra, ``pip install 'damonx[arrow]'``).

One row per region per snapshot, built from the columns of each target
(:class:`damonx.records.Columns`), never a Python object per region:

``target_id``, ``snapshot`` (its index in the target), ``snapshot_start_ns``,
``snapshot_end_ns``, ``start``, ``end``, ``size`` (bytes), ``nr_accesses``
(samples per aggregation), ``age`` (aggregations), ``sample_us`` and
``aggr_us`` (the intervals in effect, null where the record does not say),
``nr_checks`` (access checks of the snapshot's aggregation, null where not
recorded) and, when schemes ran, ``damos_stats``: a list of one struct per
scheme (``nr_tried``, ``sz_tried``, ...) at the end of the snapshot.

Integers are signed 64-bit (Spark has no unsigned types) unless a value
needs the 64th bit (then unsigned 64-bit: Spark reads decimal(20,0));
snapshot, nr_accesses and age are unsigned 32-bit (the last two as in
DAMON), which Spark 3.2 and later reads as bigint.

The schema's key-value metadata says where the data comes from, each key
present only when the record (or the caller) knows it: ``damonx.version``
(of the damonx that exported), ``damonx.host``, ``damonx.ops``,
``damonx.backend``, ``damonx.intervals`` (JSON: sample_us, aggr_us,
ops_update_us), ``damonx.targets`` (JSON list of target_id, pid, comm,
cmdline) and ``damonx.meta`` (the record's whole metadata, JSON).
"""

import json
import os
import re

import numpy as np

from damonx import __version__
from damonx.errors import DamonxError, InvalidAttrs

_I64_MAX = 2**63 - 1


def require_pyarrow():
    """The pyarrow module; DamonxError saying how to get it if missing."""
    try:
        import pyarrow
        import pyarrow.compute
        import pyarrow.parquet
    except ImportError as err:
        raise DamonxError(
            f"Arrow and Parquet output needs pyarrow ({err}): pip install 'damonx[arrow]'"
        ) from None
    return pyarrow


def _ints(pa, values):
    """int64 unless a value needs the 64th bit (then uint64)."""
    if values.dtype.kind == "u" and len(values) and int(values.max()) > _I64_MAX:
        return pa.array(values.astype(np.uint64))
    return pa.array(values.astype(np.int64))


def _per_snapshot(values, fallback, n):
    """One value per snapshot: the recorded one, else the fallback (None: null)."""
    if values is None:
        return [fallback] * n
    return [v if v is not None else fallback for v in values]


def _target_columns(record, t, first):
    """The numpy columns of a target's rows, and its per-snapshot values;
    ``first`` is the index of its first snapshot."""
    cols = t.columns()
    n = cols.nr_snapshots
    iv = record.intervals
    sample = _per_snapshot(cols.sample_us, iv.sample_us if iv else None, n)
    # the record's aggregation interval holds where the sampling interval is
    # the record's; an auto-tuned snapshot's is not recorded
    aggr = [iv.aggr_us if iv and s == iv.sample_us else None for s in sample]
    rows = cols.rows()
    rows["snapshot"] = (rows["snapshot"] + first).astype(np.uint32)
    rows["snapshot_start_ns"] = rows.pop("start_ns")
    rows["snapshot_end_ns"] = rows.pop("end_ns")
    snaps = {
        "sample_us": sample,
        "aggr_us": aggr,
        "nr_checks": _per_snapshot(cols.nr_checks, None, n),
    }
    return rows, snaps, cols


def _stats_column(pa, per_target):
    """The damos_stats column of every row, or None when no scheme ran."""
    keys = []
    for cols in per_target:
        for stats in cols.damos_stats.values():
            for scheme in stats:
                keys += [k for k in scheme if k not in keys]
    if not keys:
        return None
    struct = pa.struct([(k, pa.int64()) for k in keys])
    per_snap = []
    for cols in per_target:
        per_snap += [
            [{k: s.get(k) for k in keys} for s in cols.damos_stats[i]]
            if i in cols.damos_stats
            else None
            for i in range(cols.nr_snapshots)
        ]
    return pa.array(per_snap, type=pa.list_(struct))


def metadata(record, host=None):
    """The key-value metadata of an export (str to str), from what the
    record knows; ``host`` overrides the record's."""
    meta = record.meta or {}
    out = {"damonx.version": __version__}
    host = host if host is not None else meta.get("host")
    if host is not None:
        out["damonx.host"] = str(host)
    for key in ("ops", "backend"):
        if meta.get(key) is not None:
            out[f"damonx.{key}"] = str(meta[key])
    if record.intervals is not None:
        iv = record.intervals
        out["damonx.intervals"] = json.dumps(
            {"sample_us": iv.sample_us, "aggr_us": iv.aggr_us, "ops_update_us": iv.ops_update_us}
        )
    out["damonx.targets"] = json.dumps([_describe(t.target_id, meta) for t in record.targets])
    out["damonx.meta"] = json.dumps(meta, sort_keys=True)
    return out


def _describe(tid, meta):
    """target_id, and pid, comm and cmdline where the record says them."""
    out = {"target_id": tid}
    pids = meta.get("pids")
    if isinstance(pids, list) and tid in pids:
        out["pid"] = tid
        proc = (meta.get("processes") or {}).get(str(tid)) or {}
        for key in ("comm", "cmdline"):
            if key in proc:
                out[key] = proc[key]
        if "cmdline" not in out and meta.get("command") and len(pids) == 1:
            out["cmdline"] = meta["command"]
    return out


def to_arrow(record, host=None, first_snapshot=None):
    """The record as a ``pyarrow.Table`` (see the module's docstring).

    ``first_snapshot`` maps a target id to the index of the target's first
    snapshot in the ``snapshot`` column (default 0), for a record that is a
    part of a longer one (a part file of :mod:`damonx.records.parquet`)."""
    pa = require_pyarrow()
    first_snapshot = first_snapshot or {}
    rows: dict[str, list] = {name: [] for name in _FIELDS}
    snaps: dict[str, list] = {name: [] for name in _PER_SNAPSHOT}
    per_target, snapshot_rows = [], []
    base = 0
    for t in record.targets:
        first = first_snapshot.get(t.target_id, 0)
        t_rows, t_snaps, cols = _target_columns(record, t, first)
        for name in _FIELDS:
            rows[name].append(t_rows[name])
        for name in _PER_SNAPSHOT:
            snaps[name] += t_snaps[name]
        # the row of each region in the record's list of snapshots
        snapshot_rows.append(t_rows["snapshot"].astype(np.int64) - first + base)
        base += cols.nr_snapshots
        per_target.append(cols)
    if not record.targets:
        table = _empty(pa)
    else:
        take = pa.array(np.concatenate(snapshot_rows))
        ids = [t.target_id for t in record.targets]
        counts = [len(r) for r in rows["start"]]
        id_type = np.uint64 if max(ids) > _I64_MAX else np.int64
        columns = {"target_id": pa.array(np.repeat(np.array(ids, dtype=id_type), counts))}
        for name in _FIELDS:
            values = np.concatenate(rows[name])
            columns[name] = pa.array(values) if name in _KEEP_TYPE else _ints(pa, values)
        for name in _PER_SNAPSHOT:
            columns[name] = pa.array(snaps[name], type=pa.int64()).take(take)
        table = pa.table(columns)
        stats = _stats_column(pa, per_target)
        if stats is not None:
            table = table.append_column("damos_stats", stats.take(take))
    meta = metadata(record, host)
    return table.replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})


_FIELDS: "tuple[str, ...]" = ("snapshot", "snapshot_start_ns", "snapshot_end_ns", "start", "end")
_FIELDS += ("size", "nr_accesses", "age")
#: columns kept in their numpy type (the others are int64, or uint64 if need be)
_KEEP_TYPE = ("snapshot", "nr_accesses", "age")
_PER_SNAPSHOT = ("sample_us", "aggr_us", "nr_checks")


def _empty(pa):
    i64, u32 = pa.int64(), pa.uint32()
    fields = [("target_id", i64), ("snapshot", u32), ("snapshot_start_ns", i64)]
    fields += [("snapshot_end_ns", i64), ("start", i64), ("end", i64), ("size", i64)]
    fields += [("nr_accesses", u32), ("age", u32), ("sample_us", i64), ("aggr_us", i64)]
    fields += [("nr_checks", i64)]
    return pa.schema(fields).empty_table()


def write_table(table, path, f=None, row_group_size=None):
    """Write ``table`` as one Parquet file (zstd compressed) to ``path``, or
    to the binary file object ``f`` (``path`` then names it in errors)."""
    pa = require_pyarrow()
    try:
        pa.parquet.write_table(
            table, path if f is None else f, compression="zstd", row_group_size=row_group_size
        )
    except OSError as err:
        raise DamonxError(f"cannot write {path}: {err}") from None


def write_parquet(record, path, host=None, row_group_size=None):
    """Write the record to one Parquet file at ``path`` (zstd compressed)."""
    table = to_arrow(record, host)
    write_table(table, path, row_group_size=row_group_size)
    return table


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def partition_value(text):
    """A value as a path component of a hive layout: characters other than
    letters, digits, ``.``, ``_`` and ``-`` as ``%XX``, as Hive escapes them."""
    text = str(text)
    if not text:
        raise InvalidAttrs("a partition value cannot be empty")
    return _UNSAFE.sub(lambda m: "".join(f"%{b:02X}" for b in m.group().encode()), text)


def write_hive(record, root, host=None, overwrite=False):
    """Write each target to ``ROOT/host=HOST/target=ID/part.parquet``, so
    that many hosts' exports read as one dataset; returns the paths."""
    pa = require_pyarrow()
    table = to_arrow(record, host)
    meta = metadata(record, host)
    if "damonx.host" not in meta:
        raise InvalidAttrs("the record does not say its host: give it (damonx export --host NAME)")
    host_dir = os.path.join(root, "host=" + partition_value(meta["damonx.host"]))
    ids = table.column("target_id")
    paths = []
    for t in record.targets:
        path = os.path.join(host_dir, f"target={partition_value(t.target_id)}", "part.parquet")
        if os.path.lexists(path) and not overwrite:
            raise DamonxError(f"{path} exists: give --overwrite to replace it")
        part = table.filter(pa.compute.equal(ids, t.target_id))
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
        except OSError as err:
            raise DamonxError(f"cannot write {path}: {err}") from None
        write_table(part, path)
        paths.append(path)
    return paths
