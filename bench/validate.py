"""Benchmark: validation alone, population rows per second (SPEC section 11: at least 1,000,000/s).

Each figure is printed beside its baseline from the same run:
- the vectorized contract over text columns (as read from a CSV drop), all rules, duplicate keys included;
- the same rows with typed date/time columns (as read from Parquet or a database);
- baseline: python-stdnum's ``cn.ric.is_valid`` per value on the same ID numbers (the ID check alone).

Run: ``make bench`` or ``.venv/bin/python bench/validate.py [--rows N]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import platform
import time

import pyarrow as pa
import pyarrow.compute as pc
from stdnum.cn import ric

from schemas import population
from schemas.validate import Validator
from tongban.generate import population_table

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
    parser.add_argument("--batch", type=int, default=1_000_000, help="rows per validated batch")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stdnum-sample", type=int, default=100_000)
    args = parser.parse_args()

    typed = population_table(args.rows, seed=11, defect_rate=0.02)
    text = _as_text(typed)
    print(f"machine: {platform.machine()}, python {platform.python_version()}, pyarrow {pa.__version__}")
    print(f"rows: {args.rows:,}  batch: {args.batch:,}  (2% planted defects)\n")

    def run(table: pa.Table) -> int:
        v = Validator(population.DATASET, today=TODAY)
        for batch in table.to_batches(max_chunksize=args.batch):
            v.validate(batch)
        return v.summary.rejected

    rejected = run(text)
    t_text = _best(lambda: run(text), args.repeat)
    t_typed = _best(lambda: run(typed), args.repeat)

    ids = text.column("id_number").to_pylist()[: args.stdnum_sample]
    t_std = _best(lambda: [ric.is_valid(x) for x in ids], 1)
    std_rate = len(ids) / t_std

    print(f"{'figure':<58}{'rows/s':>14}{'vs baseline':>14}")
    print(f"{'tongban validate, text columns (CSV-like), all rules':<58}{args.rows / t_text:>14,.0f}"
          f"{(args.rows / t_text) / std_rate:>13.1f}x")
    print(f"{'tongban validate, typed dates/times (Parquet-like)':<58}{args.rows / t_typed:>14,.0f}"
          f"{(args.rows / t_typed) / std_rate:>13.1f}x")
    print(f"{'baseline: python-stdnum cn.ric.is_valid, ID check only':<58}{std_rate:>14,.0f}{1.0:>13.1f}x")
    print(f"\ntarget: 1,000,000 rows/s -> {'met' if args.rows / t_text >= 1_000_000 else 'NOT met'} "
          f"(text columns); rejected rows: {rejected:,}")


if __name__ == "__main__":
    main()
