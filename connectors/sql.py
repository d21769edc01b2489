"""Read a table or query of a SQL local system (any SQLAlchemy URL) as Arrow batches."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa

from connectors.errors import ExtractError

__all__ = ["read_sql", "sqlite_url"]

SQLITE_SUFFIXES = {".sqlite", ".sqlite3", ".db"}


def sqlite_url(path: str | Path) -> str:
    """A read-only SQLAlchemy URL for a SQLite file."""
    return f"sqlite:///file:{Path(path).resolve()}?mode=ro&uri=true"


def _column(values: list[object]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        # Mixed types in one column (SQLite allows it): keep every value as text.
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def read_sql(
    url: str, *, table: str | None = None, query: str | None = None, batch_size: int = 65_536
) -> Iterator[pa.RecordBatch]:
    """Stream rows of ``table`` (or of ``query``), in stored order, as record batches."""
    if not table and not query:
        raise ExtractError("SQL_NO_TABLE", "未指定表或查询", "no table or query given", url)
    try:
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            if query:
                stmt: sa.Executable = sa.text(query)
            else:
                assert table is not None
                tbl = sa.Table(table, sa.MetaData(), autoload_with=conn)
                stmt = sa.select(tbl)
            result = conn.execution_options(stream_results=True, yield_per=batch_size).execute(stmt)
            names = list(result.keys())
            for rows in result.partitions(batch_size):
                cols = list(zip(*rows, strict=True)) if rows else [() for _ in names]
                yield pa.RecordBatch.from_arrays([_column(list(c)) for c in cols], names=names)
    except sa.exc.NoSuchTableError:
        raise ExtractError("SQL_NO_TABLE", f"找不到表 {table}", f"table {table} not found", url) from None
    except sa.exc.SQLAlchemyError as exc:
        detail = str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0][:300]
        raise ExtractError(
            "SQL_ERROR", f"无法读取数据库：{detail}", f"cannot read the database: {detail}", url
        ) from None
