"""The one place verification reads records: swap :func:`find`'s body for the encrypted store's keyed
lookup (``tongban.core.store.lookup.find``) and nothing else changes."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

import schemas
from tongban.core.store import Library, StoreError

__all__ = ["MAX_MATCHES", "find", "find_version"]

#: At most this many records are read for one presented value (a license number shared by issuers).
MAX_MATCHES = 50


def find(
    library: Library, dataset: str, field: str, value: str, *, limit: int = MAX_MATCHES
) -> list[dict[str, Any]]:
    """Records of ``dataset`` whose ``field`` equals ``value`` (at most ``limit``), key order."""
    table = library.tables[dataset]
    key = schemas.get(dataset).key
    stmt = sa.select(table).where(table.c[field] == value).order_by(table.c[key]).limit(limit)
    try:
        with library.engine.connect() as conn:
            return [dict(r) for r in conn.execute(stmt).mappings()]
    except sa.exc.OperationalError as exc:
        raise library._unreachable(exc) from None


def find_version(library: Library, dataset: str, key: str, leaf: str) -> dict[str, Any] | None:
    """The version of record ``key`` whose leaf hash is ``leaf``: the current one or one in history."""
    spec = schemas.get(dataset)
    for name in (dataset, f"{dataset}_history"):
        table = library.tables[name]
        stmt = sa.select(table).where(table.c[spec.key] == key, table.c._hash == leaf).limit(1)
        try:
            with library.engine.connect() as conn:
                row = conn.execute(stmt).mappings().first()
        except sa.exc.OperationalError as exc:
            raise library._unreachable(exc) from None
        except sa.exc.SQLAlchemyError as exc:  # a library without the table (another version)
            raise StoreError(
                "LIBRARY_UNREACHABLE", f"无法读取库：{exc}", f"cannot read the library: {exc}", library.node
            ) from None
        if row is not None:
            return dict(row)
    return None
