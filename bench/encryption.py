"""Benchmark: what encryption at rest costs a library's load and a parent's read.

Loads the same population rows (six sealed-or-not fields a row, three of them sealed: name, birth date,
address) into a fresh SQLite library through :meth:`Library.load_batch`, in batches, twice per round:
once as Tongban runs (sealed with AES-256-GCM), once with sealing switched off in this process only (the
baseline: same rows, same table, same transaction). Then reads every record back raw, as a parent's
extract does, and opens the sealed fields (``open_batch``), beside the same read without opening.
Each figure is printed beside its baseline from the same run.

Run: ``.venv/bin/python bench/encryption.py [--rows N] [--batch N] [--repeat K]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import platform
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa

import schemas
from tongban.core.store import Library, Vault, sealed
from tongban.core.trust.merkle import row_hashes

NODE, CHILD = "630000", "630104"
UTC = dt.UTC


def make_rows(n: int, start: int, batch_id: str) -> pa.Table:
    spec = schemas.get("population")
    birth = dt.date(1980, 1, 1)
    records = [
        {
            "id_number": f"630104{i:012d}",
            "name": f"居民{i}",
            "gender": "1",
            "ethnicity": "01",
            "birth_date": birth + dt.timedelta(days=i % 9000),
            "household_division": CHILD,
            "household_address": f"青海省西宁市城西区和平路{i}号",
            "status": "normal",
            "moved_to": None,
            "updated_at": dt.datetime(2025, 3, 1, tzinfo=UTC),
        }
        for i in range(start, start + n)
    ]
    table = pa.Table.from_pylist(records, schema=pa.schema([f.with_nullable(True) for f in spec.schema]))
    table = table.append_column("_owner", pa.array([CHILD] * n, pa.string()))
    leaves = row_hashes(table, [*spec.names, "_owner"])
    meta = {
        "_hash": pa.array([bytes(x).hex() for x in leaves], pa.string()),
        "_batch": pa.array([batch_id] * n, pa.string()),
        "_leaf": pa.array(range(n), pa.int32()),
        "_source": pa.array([CHILD] * n, pa.string()),
        "_flags": pa.array([None] * n, pa.string()),
        "_synced_at": pa.array([dt.datetime.now(UTC)] * n, pa.timestamp("us", tz="UTC")),
    }
    for name, col in meta.items():
        table = table.append_column(name, col)
    return table


def load(lib: Library, batches: list[tuple[str, pa.Table]]) -> float:
    prev = ""
    started = time.perf_counter()
    for batch_id, rows in batches:
        digest = hashlib.sha256(batch_id.encode()).hexdigest()
        lib.load_batch(
            edge=f"population.{CHILD}.{NODE}",
            dataset="population",
            source=CHILD,
            manifest_json="{}",
            manifest_hash=digest,
            batch_id=batch_id,
            prev_hash=prev,
            rows=rows,
            rejected=[],
            cursor=None,
        )
        prev = digest
    return time.perf_counter() - started


def read(lib: Library, *, open_sealed: bool) -> float:
    t = lib.tables["population"]
    started = time.perf_counter()
    with lib.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=50_000).execute(sa.select(t))
        names = list(result.keys())
        for part in result.partitions(50_000):
            cols = list(zip(*part, strict=True))
            batch = pa.RecordBatch.from_arrays([pa.array([str(v) for v in c]) for c in cols], names=names)
            if open_sealed:
                lib.open_batch("population", batch)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    batches = [
        (f"b{s:09d}", make_rows(min(args.batch, args.rows - s), s, f"b{s:09d}"))
        for s in range(0, args.rows, args.batch)
    ]
    real_seal = sealed.seal_table
    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            for mode in ("sealed", "plain"):
                url = f"sqlite:///{Path(tmp) / f'{mode}{r}.sqlite'}"
                lib = Library(url, NODE, Vault(NODE, key=bytes(range(32))))
                lib.migrate()
                sealed.seal_table = real_seal if mode == "sealed" else (lambda ring, dataset, rows: rows)
                try:
                    seconds = load(lib, batches)
                finally:
                    sealed.seal_table = real_seal
                best[f"load {mode}"] = min(best.get(f"load {mode}", seconds), seconds)
                if mode == "sealed":
                    for opened in (True, False):
                        label = f"read {'opened' if opened else 'raw'}"
                        s = read(lib, open_sealed=opened)
                        best[label] = min(best.get(label, s), s)
                lib.dispose()
    n = args.rows
    print(f"encryption at rest, {n:,} population rows, batches of {args.batch:,}, best of {args.repeat}")
    print(
        f"  {platform.processor() or platform.machine()}, Python {platform.python_version()}, SQLite library"
    )
    for what, base in (("load sealed", "load plain"), ("read opened", "read raw")):
        a, b = best[what], best[base]
        print(
            f"  {what:12} {n / a:>10,.0f} rows/s ({a:.2f} s)   baseline {base}: {n / b:>10,.0f} rows/s "
            f"({b:.2f} s)   = {a / b * 100 - 100:+.0f} % time"
        )


if __name__ == "__main__":
    main()
