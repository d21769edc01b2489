"""Benchmark: validation alone, population rows per second (SPEC section 11: at least 1,000,000/s).

Each figure is printed beside its baseline from the same run:
- the vectorized contract over text columns (as read from a CSV drop), every rule, duplicate keys included,
  at several batch sizes (the CLI reads 262,144 rows a batch by default);
- the same rows with typed date/time columns (as read from Parquet or a database);
- baseline: python-stdnum's ``cn.ric.is_valid`` per value on the same ID numbers (the ID check alone).

Run: ``make bench`` or ``.venv/bin/python bench/validate.py [--rows N]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
from stdnum.cn import ric

from connectors.files import read_file
from schemas import population
from schemas.validate import Validator
from tongban.core.validation import open_extract, validate_extract
from tongban.demo.generate import population_table

TODAY = dt.date(2026, 11, 1)


def _as_text(table: pa.Table) -> pa.Table:
    """Every column as text, the way a CSV drop arrives."""
    cols = []
    for col in table.columns:
        if pa.types.is_timestamp(col.type):
            col = pc.strftime(col, format="%Y-%m-%dT%H:%M:%S+00:00")
        cols.append(pc.cast(col, pa.string()))
    return pa.Table.from_arrays(cols, names=table.column_names)


def _best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--batches", default="1000000,262144,65536", help="rows per validated batch, comma-separated"
    )
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs per figure")
    parser.add_argument("--stdnum-sample", type=int, default=100_000)
    args = parser.parse_args()
    batch_sizes = [int(b) for b in args.batches.split(",")]

    typed = population_table(args.rows, seed=11, defect_rate=0.02)
    text = _as_text(typed)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}, "
        f"pyarrow {pa.__version__}, numpy {np.__version__}"
    )
    print(f"rows: {args.rows:,} population rows, 2% planted defects; best of {args.repeat} runs\n")

    def run(table: pa.Table, batch: int) -> int:
        v = Validator(population.DATASET, today=TODAY)
        for chunk in table.to_batches(max_chunksize=batch):
            v.validate(chunk)
        return v.summary.rejected

    ids = text.column("id_number").to_pylist()[: args.stdnum_sample]
    std_rate = len(ids) / _best(lambda: [ric.is_valid(x) for x in ids], 1)

    print(f"{'figure':<66}{'rows/s':>12}{'vs baseline':>13}")
    rejected = 0
    for batch in batch_sizes:
        for label, table in (("text columns (CSV-like)", text), ("typed dates (Parquet-like)", typed)):
            rejected = run(table, batch)
            rate = args.rows / _best(lambda t=table, b=batch: run(t, b), args.repeat)
            print(
                f"{f'tongban, all rules, {label}, batch {batch:,}':<66}{rate:>12,.0f}{rate / std_rate:>12.1f}x"
            )
    print(f"{'baseline: python-stdnum cn.ric.is_valid, ID check only':<66}{std_rate:>12,.0f}{1.0:>12.1f}x")

    # End to end from a CSV file, beside reading the same file alone.
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "population.csv"
        pacsv.write_csv(text, path)
        size = path.stat().st_size

        def read_only() -> None:
            for _ in read_file(path):
                pass

        def read_and_validate() -> None:
            _, results = validate_extract(open_extract("population", path))
            for _ in results:
                pass

        t_read = _best(read_only, args.repeat)
        t_all = _best(read_and_validate, args.repeat)
    print(f"\n{'CSV file, ' + format(size / 2**20, '.0f') + ' MiB':<66}{'rows/s':>12}{'seconds':>13}")
    print(
        f"{'tongban validate path: read + map + validate, batch 262,144':<66}{args.rows / t_all:>12,.0f}{t_all:>13.2f}"
    )
    print(
        f"{'baseline: reading the file alone (pyarrow.csv, same options)':<66}{args.rows / t_read:>12,.0f}"
        f"{t_read:>13.2f}"
    )
    print(
        f"\ntarget (SPEC section 11): at least 1,000,000 rows/s for validation alone; rejected rows: {rejected:,}"
    )


if __name__ == "__main__":
    main()
