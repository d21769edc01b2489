"""Where a PostgreSQL load's time goes: one COPY of the same rows into variants of the records table.

The rows are canonical population rows (:func:`tongban.demo.generate.population_table`, no defects)
with the library's meta columns, as bench/sync.py's raw-COPY baseline loads them. Each variant is a
fresh schema made by the library's own migration, then changed as named, and gets one COPY of every
row in one transaction (CSV rendered by pyarrow, timed apart), best of ``--repeat``:

- the library's table (primary key and ``_seq`` index, schema version 4);
- the ``(_seq, key)`` index of schema version 2 instead;
- plus the ``_owner`` index that schema step 4 dropped (what it cost);
- the primary key alone; no index at all (the heap alone); an UNLOGGED table (no WAL);
- in batches of ``--batch`` rows, one COPY each, as the engine loads (one transaction each).

Run: ``.venv/bin/python bench/pgload.py [--rows N] [--postgres URL]``.
"""

from __future__ import annotations

import argparse
import io
import os
import time
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa

import schemas
from tongban.core.store import META_COLUMNS, SEQ, Library
from tongban.demo.generate import population_table

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
MiB = 2**20


def rows_of(n: int) -> pa.Table:
    table = population_table(n, seed=7, defect_rate=0)
    names = schemas.get("population").names
    now = pa.scalar(int(time.time() * 1e6), pa.timestamp("us", tz="UTC"))
    meta = {
        "_owner": pa.repeat(pa.scalar("630104"), n),
        "_hash": pa.repeat(pa.scalar("0" * 64), n),
        "_batch": pa.repeat(pa.scalar("f" * 64), n),
        "_leaf": pa.array(np.arange(n, dtype=np.int32)),
        "_source": pa.repeat(pa.scalar("630104-gongan"), n),
        "_flags": pa.nulls(n, pa.string()),
        "_synced_at": pa.repeat(now, n),
        SEQ: pa.repeat(pa.scalar(1, pa.int64()), n),
    }
    assert list(meta) == [*META_COLUMNS, SEQ]
    return pa.table({**{c: table.column(c) for c in names}, **meta})


def csv_of(rows: pa.Table) -> bytes:
    buf = io.BytesIO()
    pacsv.write_csv(rows, buf, pacsv.WriteOptions(include_header=False, batch_size=65_536))
    return buf.getvalue()


def copy(url: str, rows: pa.Table, chunks: list[bytes]) -> float:
    """COPY the rendered chunks, one transaction each; seconds in all."""
    lib = Library(url, "630104")
    cols = ", ".join(f'"{c}"' for c in rows.column_names)
    try:
        with lib.engine.connect() as conn:
            raw = conn.connection.driver_connection
            assert raw is not None
            start = time.perf_counter()
            for data in chunks:
                with raw.cursor() as cur, cur.copy(f"COPY population ({cols}) FROM STDIN (FORMAT csv)") as cp:
                    view = memoryview(data)
                    for lo in range(0, len(view), MiB):
                        cp.write(view[lo : lo + MiB])
                raw.commit()
            seconds = time.perf_counter() - start
        with lib.engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM population").scalar_one() == rows.num_rows
    finally:
        lib.dispose()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=65_536)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--postgres", default=os.environ.get("TONGBAN_BENCH_POSTGRES_URL") or DEFAULT_PG)
    args = parser.parse_args()
    base = sa.make_url(args.postgres)
    admin = sa.create_engine(base, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
    tag = f"tb_pgload_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    made: list[str] = []

    def fresh(change: str = "") -> str:
        name = f"{tag}_{len(made) + 1}"
        with admin.connect() as c:
            c.exec_driver_sql(f'CREATE SCHEMA "{name}"')
        made.append(name)
        url = base.update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(
            hide_password=False
        )
        lib = Library(url, "630104")
        try:
            lib.migrate()
            if change:
                with lib.engine.begin() as c:
                    for statement in change.split(";"):
                        c.exec_driver_sql(statement)
        finally:
            lib.dispose()
        return url

    rows = rows_of(args.rows)
    start = time.perf_counter()
    whole = [csv_of(rows)]
    render = time.perf_counter() - start
    batches = [csv_of(rows.slice(lo, args.batch)) for lo in range(0, rows.num_rows, args.batch)]
    variants: list[tuple[str, str, list[bytes]]] = [
        ("the library's table (primary key + _seq index)", "", whole),
        ("  plus the _owner index schema step 4 dropped", "CREATE INDEX ix_owner_again ON population (_owner)", whole),
        ("  primary key only", "DROP INDEX ix_population_seq", whole),
        ("  the (_seq, key) index instead (schema version 2)", "DROP INDEX ix_population_seq; CREATE INDEX ix_seq_key ON population (_seq, id_number)", whole),
        ("  no index (the heap alone)", "DROP INDEX ix_population_seq; ALTER TABLE population DROP CONSTRAINT population_pkey", whole),
        ("  UNLOGGED (no WAL), same indexes", "ALTER TABLE population SET UNLOGGED", whole),
        (f"  in batches of {args.batch:,} rows, one transaction each", "", batches),
    ]  # fmt: skip
    results: list[tuple[str, float]] = []
    try:
        for label, change, chunks in variants:
            best = float("inf")
            for _ in range(args.repeat):
                best = min(best, copy(fresh(change), rows, chunks))
            results.append((label, best))
            print(f"  measured: {label.strip()} {best:.2f} s", flush=True)
    finally:
        with admin.connect() as c:
            for name in made:
                c.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        admin.dispose()
    first = results[0][1]
    print(
        f"\n{args.rows:,} population rows; CSV rendering by pyarrow (not in the COPY figures): {render:.2f} s"
    )
    print(f"{'COPY into':<64}{'seconds':>8}{'rows/s':>12}{'vs library':>12}")
    for label, seconds in results:
        print(f"{label:<64}{seconds:>8.2f}{args.rows / seconds:>12,.0f}{seconds / first:>11.2f}x")
    heap = dict(results)["  no index (the heap alone)"]
    print(
        f"\nindex maintenance (primary key + _seq): {first - heap:.2f} s of {first:.2f} s "
        f"({(first - heap) / first:.0%}); CSV rendering is {render / (render + first):.0%} of render + COPY"
    )


if __name__ == "__main__":
    main()
