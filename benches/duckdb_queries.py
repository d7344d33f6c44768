"""Runs the store benchmark's three queries with DuckDB on the Parquet
files Ophion wrote, and prints median milliseconds.

Usage: duckdb_queries.py FILE_LIST TRACE_IDS_FILE HOUR_FROM_NS HOUR_TO_NS DAY_TO_NS
(FILE_LIST: one Parquet path per line, the files Ophion's catalog publishes)
Prints: duckdb_ms <trace by id> <percentiles> <error rate> <median and max> <error spans>
"""
import statistics
import sys
import time

import duckdb

list_file, ids_file, hour_from, hour_to, day_to = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
files = [line.strip() for line in open(list_file) if line.strip()]
ids = [line.strip() for line in open(ids_file) if line.strip()]
con = duckdb.connect()
con.execute("SET threads TO 2")
con.execute(f"CREATE VIEW spans AS SELECT * FROM read_parquet({files!r})")


def timed(sql, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        con.execute(sql).fetchall()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def ts(ns):
    return f"make_timestamp({ns // 1000})::TIMESTAMPTZ"


trace = statistics.median(timed(f"SELECT * FROM spans WHERE trace_id = unhex('{i}')", 3) for i in ids)
pct = timed(
    "SELECT service_name, name, approx_quantile(duration_ns, 0.5), approx_quantile(duration_ns, 0.95), "
    "approx_quantile(duration_ns, 0.99), count(*) FROM spans "
    f"WHERE start_time >= {ts(hour_from)} AND start_time < {ts(hour_to)} GROUP BY service_name, name",
    7,
)
err = timed(
    "SELECT service_name, avg(CASE WHEN status_code = 'error' THEN 1.0 ELSE 0.0 END), count(*) FROM spans "
    f"WHERE start_time >= {ts(hour_from)} AND start_time < {ts(day_to)} GROUP BY service_name",
    7,
)
median_max = timed(
    "SELECT service_name, name, approx_quantile(duration_ns, 0.5), max(duration_ns) FROM spans GROUP BY service_name, name",
    7,
)
errors = timed("SELECT service_name, count(*) FROM spans WHERE status_code = 'error' GROUP BY service_name", 7)
print(f"duckdb_ms {trace:.2f} {pct:.2f} {err:.2f} {median_max:.2f} {errors:.2f}")
