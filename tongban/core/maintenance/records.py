"""A library's records read back into the dataset's Arrow types, to hash them as the engine does."""

from __future__ import annotations

import datetime as _dt
import decimal
from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

import schemas
from tongban.core.engine.arrowio import hex_column
from tongban.core.engine.sealing import hash_columns
from tongban.core.store import Library, VaultError
from tongban.core.trust.merkle import row_hashes

__all__ = ["UNOPENED", "arrow_schema", "content_hashes", "scan", "to_table"]

_CHUNK = 10_000


def arrow_schema(dataset: str) -> pa.Schema:
    """The dataset's fields (nullable) and ``_owner``: what a record's leaf hash covers."""
    spec = schemas.get(dataset)
    return pa.schema([f.with_nullable(True) for f in spec.schema] + [pa.field("_owner", pa.string())])


def _value(value: Any, t: pa.DataType) -> Any:
    """A value as the library returns it, in its field's Arrow type (SQLite keeps dates as text)."""
    if value is None:
        return None
    if pa.types.is_date(t) and isinstance(value, str):
        return _dt.date.fromisoformat(value[:10])
    if pa.types.is_timestamp(t) and isinstance(value, str):
        parsed = _dt.datetime.fromisoformat(value)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=_dt.UTC)
    if pa.types.is_decimal(t) and not isinstance(value, decimal.Decimal):
        return decimal.Decimal(str(value))
    return value


def to_table(dataset: str, rows: Sequence[dict[str, Any]]) -> pa.Table:
    """Records (dicts as the library returns them) as an Arrow table of the dataset's types."""
    schema = arrow_schema(dataset)
    return pa.Table.from_pylist(
        [{f.name: _value(r.get(f.name), f.type) for f in schema} for r in rows], schema=schema
    )


def content_hashes(dataset: str, table: pa.Table) -> list[str]:
    """Each record's leaf hash recomputed from its content (hex), as the engine seals it."""
    return hex_column(row_hashes(table, hash_columns(dataset))).to_pylist()


#: Set on a record whose sealed fields do not open (altered in the library): the error's code.
UNOPENED = "_unopened"


def _opened(lib: Library, dataset: str, row: dict[str, Any]) -> dict[str, Any]:
    try:
        return lib.open_row(dataset, row)
    except VaultError as exc:
        if exc.code not in ("DATA_TAMPERED", "DATA_KEY_UNKNOWN"):
            raise  # a master key problem concerns the whole library, not this record
        return {**row, UNOPENED: exc.code}


def scan(lib: Library, dataset: str, where: Any, extra: Sequence[str] = ()) -> Iterator[list[dict[str, Any]]]:
    """The records matching ``where``, in chunks of dicts (fields, ``_owner`` and ``extra`` columns),
    sealed fields opened; a record whose sealed fields were altered carries :data:`UNOPENED`."""
    spec = schemas.get(dataset)
    t = lib.tables[dataset]
    names = [*spec.names, "_owner", *extra]
    stmt = sa.select(*[t.c[n] for n in names])
    if where is not None:
        stmt = stmt.where(where)
    with lib.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=_CHUNK).execute(stmt).mappings()
        for part in result.partitions(_CHUNK):
            yield [_opened(lib, dataset, dict(r)) for r in part]
