"""The codec trade-off for log files (issue 20): the same rows rewritten
with each Parquet codec, their bytes per line (all columns, and the body
alone), and DuckDB's median time for three text scans over each.

Usage: codecs.py DATA_DIR OUT_DIR [RUNS]
(DATA_DIR: a store's data directory, as `log_search --dir D` leaves it in
`D/store`; its log files are read; OUT_DIR receives one rewritten file per
codec)

Only the codec differs between the rewrites (pyarrow, 65,536-row row
groups, no dictionary on the body and ids), so the bytes and DuckDB's
times compare codecs, not writers.
"""
import glob
import os
import statistics
import sys
import time

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

data_dir, out_dir = sys.argv[1], sys.argv[2]
runs = int(sys.argv[3]) if len(sys.argv) > 3 else 7
files = sorted(glob.glob(os.path.join(data_dir, "parquet", "*", "logs", "**", "*.parquet"), recursive=True))
if not files:
    sys.exit(f"no log files under {data_dir}/parquet")
table = pa.concat_tables([pq.read_table(f) for f in files])
rows = table.num_rows
body = table.column_names.index("body")
searches = [
    "body LIKE '%ord-83748213%'",
    "body LIKE '%timed out%'",
    "body ILIKE '%payment declined%'",
]
con = duckdb.connect()
con.execute("SET threads TO 2")
print(f"{rows} lines")
print("| codec | bytes per line | body bytes per line | " + " | ".join(f"`{s}`" for s in searches) + " |")
print("|---" * (3 + len(searches)) + "|")
os.makedirs(out_dir, exist_ok=True)
for codec, level in [("zstd", 9), ("zstd", 3), ("lz4", None), ("snappy", None), ("none", None)]:
    name = f"{codec}{level or ''}"
    path = os.path.join(out_dir, f"{name}.parquet")
    pq.write_table(
        table,
        path,
        compression=codec,
        compression_level=level,
        row_group_size=65536,
        use_dictionary=[c for c in table.column_names if c not in ("body", "trace_id", "span_id")],
    )
    meta = pq.ParquetFile(path).metadata
    body_bytes = sum(meta.row_group(i).column(body).total_compressed_size for i in range(meta.num_row_groups))
    times = []
    for s in searches:
        t = []
        for _ in range(runs):
            start = time.perf_counter()
            con.execute(f"SELECT count(*) FROM read_parquet('{path}') WHERE {s}").fetchone()
            t.append((time.perf_counter() - start) * 1000)
        times.append(f"{statistics.median(t):.1f} ms")
    size = os.path.getsize(path)
    print(f"| {name} | {size / rows:.2f} | {body_bytes / rows:.2f} | " + " | ".join(times) + " |", flush=True)
