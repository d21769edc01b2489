"""Benchmark: the review list's pages over 100,000 open failed transfers (each page well under a second).

One county library (SQLite, the embedded default) holds N open row failures with a few codes; each
figure is printed beside its baseline from the same run:
- a keyset page (what the page and ``review.page`` do) at the start, the middle and the end of the list,
  filtered by state only, by code, by dataset and code; baseline: the same page by OFFSET (what a naive
  pager does), which reads every row before the page;
- the page's count of matching rows (shown above the list);
- the whole page as the browser gets it (``GET /review/failures``, in-process ASGI client, login done).

Run: ``.venv/bin/python bench/review.py [--rows N]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from tongban.core import engine, review
from tongban.core.config import load_exchange
from tongban.core.initialize import initialize
from tongban.core.review import Filter
from tongban.core.store.rows import failure_row

COUNTY = "630102"
CODES = ["ID_CHECKSUM", "DATE_INVALID", "ID_GENDER_MISMATCH", "STATUS_INVALID", "MOVED_TO_MISSING"]


def _exchange(root: Path) -> Path:
    (root / "exchange.yaml").write_text(
        "version: 1\nspool: spool\n"
        "nodes:\n"
        "  - {code: '000000', name: 国家库, level: national, library: 'sqlite:///libraries/000000.sqlite'}\n"
        "  - {code: '630000', name: 青海省, level: province, parent: '000000', "
        "library: 'sqlite:///libraries/630000.sqlite'}\n"
        f"  - {{code: '{COUNTY}', name: 城东区, level: county, parent: '630000', "
        f"library: 'sqlite:///libraries/{COUNTY}.sqlite'}}\n"
        "systems: []\n",
        encoding="utf-8",
    )
    return root / "exchange.yaml"


def _fill(lib: engine.Libraries, rows: int) -> None:
    county = lib.get(COUNTY)
    county.migrate()
    t = county.tables["failed_transfers"]
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    with county.engine.begin() as conn:
        batch = []
        for i in range(rows):
            code = CODES[i % len(CODES)]
            row = failure_row(
                kind="row",
                edge=f"population.gongan-{COUNTY}.{COUNTY}",
                dataset="population" if i % 7 else "business",
                source=f"gongan-{COUNTY}",
                target=COUNTY,
                codes=[code],
                message_zh=f"{code} 第{i}行",
                message_en=f"{code} row {i}",
                now=start + dt.timedelta(seconds=i // 3),  # timestamps shared by several rows
                where=f"gongan-{COUNTY}:{i}",
                row_number=i,
                row_key=f"{i:018d}",
                payload={"id_number": f"{i:018d}", "name": f"居民{i}"},
            )
            batch.append(row)
            if len(batch) == 10_000:
                conn.execute(t.insert(), batch)
                batch = []
        if batch:
            conn.execute(t.insert(), batch)


def _time(fn, repeat: int = 5) -> float:  # type: ignore[no-untyped-def]
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def _offset_page(lib: engine.Libraries, f: Filter, offset: int, size: int) -> list:  # type: ignore[type-arg]
    county = lib.get(COUNTY)
    t = county.tables["failed_transfers"]
    stmt = sa.select(t).where(t.c.target == COUNTY, t.c.state == "open")
    if f.code:
        stmt = stmt.where(t.c.codes.like(f"%{f.code}%"))
    if f.dataset:
        stmt = stmt.where(t.c.dataset == f.dataset)
    stmt = stmt.order_by(t.c.created_at.desc(), t.c.id.desc()).offset(offset).limit(size)
    with county.connect() as c:
        return c.execute(stmt).all()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=50)
    args = parser.parse_args()
    print(f"# review list: {args.rows:,} open failures, pages of {args.size}")
    print(f"# {platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, SQLite")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ex = load_exchange(_exchange(root))
        initialize(ex)
        with engine.Libraries(ex) as libs:
            t0 = time.perf_counter()
            _fill(libs, args.rows)
            print(f"filled in {time.perf_counter() - t0:.1f} s")
            print(f"{'query':50} {'keyset ms':>10} {'OFFSET ms':>10}")
            for label, f in (
                ("open", Filter()),
                ("open, code ID_CHECKSUM", Filter(code="ID_CHECKSUM")),
                ("open, business, code DATE_INVALID", Filter(dataset="business", code="DATE_INVALID")),
            ):
                total = review.count(ex, libs, f)
                # The cursors of the pages at the start, middle and end (walked once, untimed).
                marks = {0: None}
                wanted = {total // 2 // args.size * args.size, max(0, (total - 1) // args.size * args.size)}
                after, seen = None, 0
                while wanted - set(marks):
                    page = review.page(ex, libs, f, after=after, size=1000)
                    for i, row in enumerate(page.rows):
                        pos = seen + i + 1
                        if pos in wanted:
                            marks[pos] = review.query._encode(row, row["node"])
                    seen += len(page.rows)
                    after = page.next
                    if after is None:
                        break
                for pos, cursor in sorted(marks.items()):
                    keyset = _time(lambda c=cursor, f=f: review.page(ex, libs, f, after=c, size=args.size))
                    offset = _time(lambda p=pos, f=f: _offset_page(libs, f, p, args.size))
                    print(f"{label + f' @ row {pos:,}':50} {keyset * 1000:10.1f} {offset * 1000:10.1f}")
                count_ms = _time(lambda f=f: review.count(ex, libs, f)) * 1000
                print(f"{label + f' count ({total:,})':50} {count_ms:10.1f} {'':>10}")
            _whole_page(ex, root)


def _whole_page(ex, root: Path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from tongban.core.review import operators
    from tongban.web.app import create_app
    from tongban.web.settings import WebSettings

    settings = WebSettings.for_node(ex, COUNTY, session_secret=b"b" * 32)
    settings.library.migrate()
    operators.add(settings.library, "bench", "bench", "bench-password-123", reveal=False, by="bench")
    with TestClient(create_app(settings)) as client:
        client.post("/login", data={"kind": "operator", "username": "bench", "secret": "bench-password-123"})
        for query in ("", "?code=ID_CHECKSUM", "?code=DATE_INVALID&dataset=business&size=200"):
            ms = _time(lambda q=query: client.get(f"/review/failures{q}").raise_for_status()) * 1000
            print(f"{'GET /review/failures' + query:50} {ms:10.1f} {'(page)':>10}")
        ms = _time(lambda: client.get("/review").raise_for_status(), repeat=3) * 1000
        print(f"{'GET /review (overview)':50} {ms:10.1f} {'(page)':>10}")


if __name__ == "__main__":
    main()
