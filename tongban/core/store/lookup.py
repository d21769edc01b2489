"""Finding a library's current records by an identifier, without reading a sealed field in plain.

A sealed field that verification looks up (``license.holder_code``) is found through its keyed-hash
column (:data:`~tongban.core.store.vault.INDEXED`); the record key and plain fields by equality. The
records come back with their sealed fields opened: the caller masks them by scope before anyone sees
them.

The verification service calls :func:`find`, e.g. ``find(lib, "license", "holder_code", code)``,
``find(lib, "population", "id_number", id_number)`` or ``find(lib, "business", "uscc", uscc)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

import schemas
from tongban.core.store.tables import StoreError
from tongban.core.store.vault import INDEXED, SEALED, index_column

if TYPE_CHECKING:
    from tongban.core.store.library import Library

__all__ = ["LOOKUP_LIMIT", "find", "opened_matches", "probe", "searchable"]

#: The most records one lookup returns (a holder can hold many licenses; page past this by key).
LOOKUP_LIMIT = 1000


def searchable(dataset: str) -> list[str]:
    """The fields of ``dataset`` that :func:`find` accepts."""
    spec = schemas.get(dataset)
    sealed = set(SEALED.get(dataset, ())) - set(INDEXED.get(dataset, ()))
    return [n for n in spec.names if n not in sealed]


def find(
    library: Library,
    dataset: str,
    field: str,
    value: str,
    *,
    limit: int = LOOKUP_LIMIT,
    after: str | None = None,
    conn: sa.Connection | None = None,
) -> list[dict[str, Any]]:
    """The current records of ``dataset`` whose ``field`` equals ``value``, sealed fields opened,
    ordered by record key (``after``: the last key of the previous page).

    An indexed sealed field is compared by its keyed hash, trimmed and upper-cased (an ID number's
    check character ``x`` is ``X``); other fields exactly. StoreError LOOKUP_FIELD for a field that
    cannot be looked up (a sealed field without an index, or no such field). ``conn``: read through
    this connection (e.g. a read-only one that never takes SQLite's write lock) instead of the library's.
    """
    spec = schemas.get(dataset)
    if field not in searchable(dataset):
        raise StoreError(
            "LOOKUP_FIELD",
            f"不能按字段 {field} 查找 {dataset} 记录（可用：{', '.join(searchable(dataset))}）",
            f"{dataset} records cannot be looked up by {field!r} (use one of: {', '.join(searchable(dataset))})",
            f"{dataset}.{field}",
        )
    t = library.tables[dataset]
    indexed = field in INDEXED.get(dataset, ())
    if indexed:
        ring = library.keyring()
        cond = t.c[index_column(field)] == ring.index(value)
    else:
        cond = t.c[field] == value
    stmt = sa.select(t).where(cond).order_by(t.c[spec.key]).limit(max(1, min(limit, LOOKUP_LIMIT)))
    if after is not None:
        stmt = stmt.where(t.c[spec.key] > after)
    if conn is not None:
        rows = [dict(r) for r in conn.execute(stmt).mappings()]
    else:
        with library.connect() as own:
            rows = [dict(r) for r in own.execute(stmt).mappings()]
    return opened_matches(library, dataset, field, value, rows)


def probe(library: Library, dataset: str, field: str, value: str) -> tuple[str, str]:
    """The column to compare and the value to compare it with: a sealed indexed field's keyed hash,
    else the field itself (StoreError LOOKUP_FIELD for a field that cannot be looked up)."""
    if field not in searchable(dataset):
        find(library, dataset, field, value, limit=1)  # raises LOOKUP_FIELD with its message
    if field in INDEXED.get(dataset, ()):
        return index_column(field), library.keyring().index(value)
    return field, value


def opened_matches(
    library: Library, dataset: str, field: str, value: str, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Raw rows found by :func:`probe`'s comparison, their sealed fields opened; for a keyed hash, only
    those whose opened value says the same (trimmed and upper-cased)."""
    opened = [library.open_row(dataset, r) for r in rows]
    if field in INDEXED.get(dataset, ()):
        wanted = value.strip().upper()
        opened = [r for r in opened if str(r.get(field) or "").strip().upper() == wanted]
    return opened
