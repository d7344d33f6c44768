"""Writes the plain reference Parquet file of the store benchmark with
pyarrow (zstd level 3, one row per span, arrival order) and prints its size.

Usage: reference_parquet.py IN.arrow OUT.parquet
"""
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq

table = pa.ipc.open_file(sys.argv[1]).read_all()
pq.write_table(table, sys.argv[2], compression="zstd", compression_level=3)
print(os.path.getsize(sys.argv[2]))
