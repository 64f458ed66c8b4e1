"""Cold memory per host, fleet-wide, from damonx exports (DuckDB only; no damonx needed).

Each host exports its records into one directory tree:

    damonx export -i damon.data --hive /fleet     # /fleet/host=HOST/target=ID/part.parquet

and this script reads them all as one dataset:

    python fleet_cold.py /fleet

Cold memory is what DAMON saw no access to: the bytes of the regions with
nr_accesses = 0 in a snapshot (the footprint minus the working set of
`damonx report wss`), averaged over the snapshots of each target and summed
over the targets of a host.
"""

import sys

import duckdb

QUERY = """
WITH regions AS (
    SELECT * FROM read_parquet($files, hive_partitioning = true)
),
per_snapshot AS (
    SELECT host, target, snapshot,
           coalesce(sum(size) FILTER (WHERE nr_accesses = 0), 0) AS cold_bytes,
           sum(size) AS footprint_bytes
    FROM regions
    GROUP BY host, target, snapshot
),
per_target AS (
    SELECT host, target, avg(cold_bytes) AS cold_bytes, avg(footprint_bytes) AS footprint_bytes
    FROM per_snapshot
    GROUP BY host, target
)
SELECT host,
       count(*) AS targets,
       sum(cold_bytes) AS cold_bytes,
       sum(cold_bytes) / sum(footprint_bytes) AS cold_fraction
FROM per_target
GROUP BY host
ORDER BY host
"""


def cold_per_host(root):
    """(host, targets, cold_bytes, cold_fraction) rows, one per host."""
    files = f"{root.rstrip('/')}/*/*/*.parquet"
    return duckdb.execute(QUERY, {"files": files}).fetchall()


if __name__ == "__main__":
    for host, targets, cold, fraction in cold_per_host(sys.argv[1] if len(sys.argv) > 1 else "."):
        print(f"{host}\t{targets} target(s)\t{cold / 2**30:.3f} GiB cold\t{fraction:.1%}")
