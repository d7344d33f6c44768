"""Runs the log search benchmark's searches with DuckDB on the Parquet
files Ophion wrote, and prints the median milliseconds and the count of
each: `duckdb <ms> <count>` per search, in order.

Usage: duckdb_logs.py FILE_LIST RUNS WHERE_CLAUSE...
(FILE_LIST: one Parquet path per line, the files Ophion's catalog publishes)
"""
import statistics
import sys
import time

import duckdb

list_file, runs, clauses = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
files = [line.strip() for line in open(list_file) if line.strip()]
con = duckdb.connect()
con.execute("SET threads TO 2")
con.execute(f"CREATE VIEW logs AS SELECT * FROM read_parquet({files!r})")
for clause in clauses:
    sql = f"SELECT count(*) FROM logs WHERE {clause}"
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        count = con.execute(sql).fetchone()[0]
        times.append((time.perf_counter() - t) * 1000)
    print(f"duckdb {statistics.median(times):.2f} {count}")
