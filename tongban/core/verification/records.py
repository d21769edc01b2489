"""The one place verification reads records: through the store's lookup
(:func:`tongban.core.store.lookup.find`), which finds a sealed identifier (a license holder's code) by
its keyed hash and opens the sealed fields of what it finds; raw SQL would see only ciphertext.

Reads go through :func:`reader`: on SQLite an engine of its own whose connections never take the write
lock (the library's engine begins every transaction ``IMMEDIATE`` for its loads), so verifications read
alongside a running sync and the audit log's writes.
"""

from __future__ import annotations

import datetime
import sqlite3
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

import schemas
from tongban.core.store import Library, StoreError, lookup

__all__ = ["MAX_MATCHES", "find", "find_version", "office_row", "reader"]

#: At most this many records are read for one presented value (a license number shared by issuers).
MAX_MATCHES = 50


def _read_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA query_only=1")
    cur.close()


def reader(library: Library) -> sa.Engine:
    """An engine for reading ``library`` (its own engine on anything but SQLite)."""
    engine: sa.Engine | None = getattr(library, "_verification_reader", None)
    if engine is None:
        if library.dialect != "sqlite":
            engine = library.engine
        else:
            engine = sa.create_engine(library.url, pool_size=8, max_overflow=32)
            sa.event.listen(engine, "connect", _read_pragmas)
        library._verification_reader = engine  # type: ignore[attr-defined]
    return engine


def _reading(library: Library, read: Callable[[sa.Connection], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """``read`` through the library's reader, a database error as the library's coded error."""
    try:
        with reader(library).connect() as conn:
            return read(conn)
    except sa.exc.OperationalError as exc:
        raise library._unreachable(exc) from None
    except sa.exc.SQLAlchemyError as exc:  # a library without the table (another version)
        raise StoreError(
            "LIBRARY_UNREACHABLE",
            f"无法读取库：{type(exc).__name__}",
            f"cannot read the library: {type(exc).__name__}",
            library.node,
        ) from None


def _rows(library: Library, stmt: sa.Select[Any], **params: Any) -> list[dict[str, Any]]:
    return _reading(library, lambda conn: [dict(r) for r in conn.execute(stmt, params).mappings()])


_LOCAL = threading.local()
#: Columns SQLite keeps as text that the library's engine reads as UTC datetimes (``Stamp``).
_STAMPS = frozenset({"updated_at", "_synced_at", "created_at", "rotated_at", "revoked_at", "_archived_at"})


def _sqlite_file(library: Library) -> str | None:
    cached: tuple[str | None] | None = getattr(library, "_verification_file", None)
    if cached is None:
        path = None
        if library.dialect == "sqlite":
            url = sa.make_url(library.url)
            database = url.database
            if database and database != ":memory:" and not database.startswith("file:") and not url.query:
                path = database
        cached = (path,)
        library._verification_file = cached  # type: ignore[attr-defined]
    return cached[0]


def _raw(
    library: Library, table: str, field: str, value: str, order: str, limit: int
) -> list[dict[str, Any]] | None:
    """The hot lookups on a SQLite file without SQLAlchemy's per-statement work (one read-only
    connection per thread); None where this does not apply (then the engine reads)."""
    path = _sqlite_file(library)
    if path is None:
        return None
    conns: dict[str, sqlite3.Connection] = _LOCAL.__dict__.setdefault("conns", {})
    conn = conns.get(path)
    try:
        if conn is None:
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=10000")
            conn.execute("PRAGMA query_only=1")
            conns[path] = conn
        cur = conn.execute(
            f'SELECT * FROM "{table}" WHERE "{field}" = ? ORDER BY "{order}" LIMIT ?', (value, limit)
        )
        names = [d[0] for d in cur.description]
        out = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    except sqlite3.Error:
        conns.pop(path, None)
        return None  # the engine's path reports it with a code
    for row in out:
        for name in _STAMPS.intersection(row):
            text = row[name]
            if isinstance(text, str):
                row[name] = datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC)
    return out


def find(
    library: Library, dataset: str, field: str, value: str, *, limit: int = MAX_MATCHES
) -> list[dict[str, Any]]:
    """Records of ``dataset`` whose ``field`` equals ``value`` (at most ``limit``), key order, their
    sealed fields opened."""
    if dataset not in schemas.DATASETS or field not in schemas.get(dataset).names:
        raise ValueError(f"no field {field} in {dataset}")
    column, wanted = lookup.probe(library, dataset, field, value)
    fast = _raw(library, dataset, column, wanted, schemas.get(dataset).key, limit)
    if fast is not None:  # a SQLite file: read without SQLAlchemy's per-statement work, then opened
        return lookup.opened_matches(library, dataset, field, value, fast)
    return _reading(library, lambda conn: lookup.find(library, dataset, field, value, limit=limit, conn=conn))


def office_row(library: Library, code: str) -> dict[str, Any] | None:
    """The ``offices`` row of ``code`` (the token check's one read)."""
    fast = _raw(library, "offices", "code", code, "code", 1)
    if fast is None:
        t = library.tables["offices"]
        fast = _rows(library, sa.select(t).where(t.c.code == code))
    return fast[0] if fast else None


def find_version(library: Library, dataset: str, key: str, leaf: str) -> dict[str, Any] | None:
    """The version of record ``key`` whose leaf hash is ``leaf``: the current one or one in history."""
    spec = schemas.get(dataset)
    for name in (dataset, f"{dataset}_history"):
        table = library.tables[name]
        stmt = sa.select(table).where(table.c[spec.key] == key, table.c._hash == leaf).limit(1)
        found = _rows(library, stmt)
        if found:
            return library.open_row(dataset, found[0])
    return None
