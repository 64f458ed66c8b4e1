"""Working set size over time per host and target, with Spark, from damonx's
Parquet (PySpark and a Java runtime only; no damonx needed).

Reads a hive layout of exports and/or recordings made with
``damonx record --format parquet``:

    damonx export -i damon.data --hive /fleet      # /fleet/host=HOST/target=ID/part.parquet
    damonx record --format parquet -o rec 1234     # rec/part-00000.parquet, ...
    python spark_wss.py --hive /fleet --record rec

and prints one line per snapshot: host (a recording's directory stands for
its host), target id, seconds since the target's first snapshot began, and
the working set in bytes: the size of the regions with nr_accesses > 0, as
``damonx report wss`` counts it.
"""

import argparse

from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F

COLUMNS = ["host", "target_id", "snapshot", "snapshot_start_ns", "snapshot_end_ns"]
COLUMNS += ["size", "nr_accesses"]


def regions(spark, hive=None, recordings=()):
    """One DataFrame of the regions of a hive layout and of recordings."""
    frames = []
    if hive:
        # host stays a string (a host named 007 is not the number 7)
        spark.conf.set("spark.sql.sources.partitionColumnTypeInference.enabled", "false")
        frames.append(spark.read.parquet(hive).select(*COLUMNS))
    for path in recordings:
        df = spark.read.parquet(path).withColumn("host", F.lit(path))
        frames.append(df.select(*COLUMNS))
    if not frames:
        raise SystemExit("nothing to read: give --hive DIR and/or --record DIR")
    out = frames[0]
    for df in frames[1:]:
        out = out.unionByName(df)
    return out


def wss_over_time(df):
    """(host, target_id, seconds, wss_bytes) rows, one per snapshot, in order."""
    per_snapshot = df.groupBy("host", "target_id", "snapshot").agg(
        F.min("snapshot_start_ns").alias("start_ns"),
        F.min("snapshot_end_ns").alias("end_ns"),
        F.coalesce(F.sum(F.when(F.col("nr_accesses") > 0, F.col("size"))), F.lit(0)).alias("wss"),
    )
    first = F.min("start_ns").over(Window.partitionBy("host", "target_id"))
    return (
        per_snapshot.withColumn("seconds", (F.col("end_ns") - first) / 1e9)
        .select("host", "target_id", "seconds", "wss")
        .orderBy("host", "target_id", "snapshot")
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hive", metavar="DIR", help="a hive layout of damonx exports")
    parser.add_argument(
        "--record", metavar="DIR", action="append", default=[], help="a Parquet recording"
    )
    args = parser.parse_args()
    builder = SparkSession.builder.master("local[1]").appName("damonx-wss")
    spark = builder.config("spark.ui.showConsoleProgress", "false").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    for row in wss_over_time(regions(spark, args.hive, args.record)).toLocalIterator():
        print(f"{row.host}\t{row.target_id}\t{row.seconds:.3f}\t{row.wss}")
    spark.stop()


if __name__ == "__main__":
    main()
