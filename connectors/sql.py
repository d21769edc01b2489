"""Read a table or query of a SQL local system (any SQLAlchemy URL) as Arrow batches.

:func:`read_sql` reads everything in stored order. :func:`read_sql_incremental` reads in
``(cursor_column, key_column)`` order and pairs each batch with the :class:`Cursor` of its last row,
so a run that commits batch *i* together with its cursor resumes exactly after it (SPEC section 5).
Errors never show a password: their ``where`` is the URL with it masked (:func:`mask_url`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from uuid import UUID

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.types import NullType

from connectors.errors import ExtractError

__all__ = ["Cursor", "mask_url", "read_sql", "read_sql_incremental", "read_sql_keys", "sqlite_url"]

SQLITE_SUFFIXES = {".sqlite", ".sqlite3", ".db"}

# Same split as SQLAlchemy's URL parser, but greedy up to the last "@" so a stray "@" in a password
# masks too much rather than too little.
_PASSWORD = re.compile(r"^(?P<head>[\w+]+://[^:/]*:)(?P<password>.*)@")
# Text timestamps whose shape we can keep: 2026-01-01, 2026-01-01 10:00[:00][.123][Z|+08:00].
_TEXT_TIME = re.compile(
    r"(?P<day>\d{4}-\d{2}-\d{2})"
    r"(?:(?P<sep>[ T])(?P<h>\d{2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?(?P<frac>\.\d+)?(?P<zone>Z|[+-]\d{2}(?::?\d{2})?)?)?"
)


def sqlite_url(path: str | Path) -> str:
    """A read-only SQLAlchemy URL for a SQLite file."""
    return f"sqlite:///file:{Path(path).resolve()}?mode=ro&uri=true"


def mask_url(url: str | sa.URL) -> str:
    """The URL with its password (if any) replaced by ``***``, for messages and logs.

    >>> mask_url("mysql+pymysql://etl:s3cr%40t@db.example:3306/czrk")
    'mysql+pymysql://etl:***@db.example:3306/czrk'
    >>> mask_url("sqlite:///data/x.sqlite")
    'sqlite:///data/x.sqlite'
    """
    if isinstance(url, sa.URL):
        return url.render_as_string(hide_password=True)
    return _PASSWORD.sub(r"\g<head>***@", url, count=1)


def _scrub(text: str, url: str) -> str:
    """``text`` with the URL's password (raw or percent-decoded) masked, wherever it appears."""
    match = _PASSWORD.match(url)
    if match and match["password"]:
        for secret in sorted({match["password"], unquote(match["password"])}, key=len, reverse=True):
            text = text.replace(secret, "***")
    return text


def _detail(exc: Exception, url: str) -> str:
    orig = getattr(exc, "orig", None)
    lines = str(orig if orig else exc).splitlines() or [type(exc).__name__]
    return _scrub(lines[0][:300], url)


def _unreachable(exc: Exception, url: str) -> ExtractError:
    detail = _detail(exc, url)
    return ExtractError(
        "SQL_UNREACHABLE",
        f"无法连接数据库：{detail}",
        f"cannot connect to the database: {detail}",
        mask_url(url),
    )


@contextmanager
def _translated(url: str, table: str | None) -> Iterator[None]:
    """Turn SQLAlchemy (and driver) failures into ExtractError, the password masked."""
    where = mask_url(url)
    try:
        yield
    except sa.exc.NoSuchTableError:
        raise ExtractError("SQL_NO_TABLE", f"找不到表 {table}", f"table {table} not found", where) from None
    except sa.exc.DBAPIError as exc:
        if exc.connection_invalidated:  # the connection dropped mid-read
            raise _unreachable(exc, url) from None
        raise _sql_error(exc, url) from None
    except (sa.exc.SQLAlchemyError, ImportError) as exc:  # ImportError: the URL's driver is not installed
        raise _sql_error(exc, url) from None


def _sql_error(exc: Exception, url: str) -> ExtractError:
    detail = _detail(exc, url)
    return ExtractError(
        "SQL_ERROR", f"无法读取数据库：{detail}", f"cannot read the database: {detail}", mask_url(url)
    )


def _connect(url: str, connect_args: dict | None) -> tuple[sa.Engine, sa.Connection]:
    """A fresh engine (no pool left behind) and its connection; SQL_UNREACHABLE when it can't connect."""
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args=connect_args or {})
    try:
        return engine, engine.connect()
    except sa.exc.DBAPIError as exc:  # refused, timed out, unknown host, bad password, no such database
        engine.dispose()
        raise _unreachable(exc, url) from None


def _column(values: list[object]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
        # Mixed types in one column (SQLite allows it): keep every value as text.
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


_PIECE_ROWS = 32_768  # rows turned into Python objects at a time: bounds memory within a batch


def _batches(result: sa.CursorResult, batch_size: int) -> Iterator[tuple[pa.RecordBatch, sa.Row]]:
    """Record batches of a streamed result, each with its last row.

    Rows are converted to Arrow in pieces of at most 32,768, so a large batch never holds more than
    one piece as Python objects.
    """
    names = list(result.keys())
    piece = min(batch_size, _PIECE_ROWS)
    held: list[pa.Table] = []
    count = 0
    last: sa.Row | None = None
    for rows in result.partitions(piece):
        cols = list(zip(*rows, strict=True))
        held.append(pa.table([_column(list(c)) for c in cols], names=names))
        count += len(rows)
        last = rows[-1]
        if count >= batch_size:
            yield _combine(held), last
            held, count = [], 0
    if held and last is not None:
        yield _combine(held), last


def _combine(pieces: list[pa.Table]) -> pa.RecordBatch:
    """One record batch of the pieces; columns whose types differ between pieces become text."""
    if len(pieces) > 1:
        try:
            table = pa.concat_tables(pieces, promote_options="permissive")
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
            table = pa.concat_tables([_as_text(p) for p in pieces])
    else:
        table = pieces[0]
    return table.combine_chunks().to_batches(max_chunksize=max(table.num_rows, 1))[0]


def _as_text(table: pa.Table) -> pa.Table:
    return pa.table(
        [
            pa.array([None if v is None else str(v) for v in col.to_pylist()], pa.string())
            for col in table.columns
        ],
        names=table.column_names,
    )


def _stream(conn: sa.Connection, stmt: sa.Executable, batch_size: int) -> sa.CursorResult:
    # Server-side cursor: memory stays bounded by batch_size whatever the table size.
    return conn.execution_options(stream_results=True, yield_per=min(batch_size, _PIECE_ROWS)).execute(stmt)


def read_sql(
    url: str, *, table: str | None = None, query: str | None = None, batch_size: int = 65_536
) -> Iterator[pa.RecordBatch]:
    """Stream rows of ``table`` (or of ``query``), in stored order, as record batches."""
    if not table and not query:
        raise ExtractError("SQL_NO_TABLE", "未指定表或查询", "no table or query given", mask_url(url))
    with _translated(url, table):
        engine, conn = _connect(url, None)
        try:
            if query:
                stmt: sa.Executable = sa.text(query)
            else:
                assert table is not None
                stmt = sa.select(sa.Table(table, sa.MetaData(), autoload_with=conn))
            for batch, _ in _batches(_stream(conn, stmt, batch_size), batch_size):
                yield batch
        finally:
            conn.close()
            engine.dispose()


# --- incremental reads --------------------------------------------------------------------------

_TAGS: dict[str, type] = {"$datetime": datetime, "$date": date, "$time": time, "$decimal": Decimal}


def _tag(value: object) -> object:
    for tag, kind in _TAGS.items():  # datetime before date: a datetime is a date
        if isinstance(value, kind):
            return {tag: str(value) if kind is Decimal else value.isoformat()}  # type: ignore[attr-defined]
    if value is None or isinstance(value, str | int | float):
        return value
    raise TypeError(f"a cursor value of type {type(value).__name__} cannot be stored as JSON")


def _untag(value: object) -> object:
    if isinstance(value, dict) and len(value) == 1:
        ((tag, text),) = value.items()
        kind = _TAGS.get(tag)
        if kind is Decimal:
            return Decimal(text)
        if kind is not None:
            return kind.fromisoformat(text)  # type: ignore[attr-defined]
    return value


@dataclass(frozen=True)
class Cursor:
    """Where an incremental read stopped: the cursor value and the key of the last row read.

    ``value`` is the cursor column's value as the source stores it (text, number, datetime...);
    ``key`` the key column's value as text. ``value`` None with a key: the read stopped among the
    rows whose cursor is NULL, which a full read gives first.

    >>> c = Cursor(datetime(2026, 1, 1, 10, 0), "42")
    >>> c.to_json()
    {'value': {'$datetime': '2026-01-01T10:00:00'}, 'key': '42'}
    >>> Cursor.from_json(c.to_json()) == c
    True
    """

    value: object | None
    key: str | None

    def to_json(self) -> dict:
        """A JSON-ready dict; datetimes, dates, times and decimals are tagged so they come back as such."""
        return {"value": _tag(self.value), "key": self.key}

    @classmethod
    def from_json(cls, d: dict | None) -> Cursor | None:
        """The cursor :meth:`to_json` gave (None stays None: no cursor yet, read everything)."""
        if d is None:
            return None
        key = d.get("key")
        return cls(_untag(d.get("value")), None if key is None else str(key))


def _key_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).hex()
    return str(value)


def _key_value(text: str, sample: object) -> object:
    """The stored key ``text`` back in the type of the key column (``sample`` is one of its values).

    Comparing a number column with text is not safe everywhere (SQLite puts every number before
    every text), so the key is bound in the column's own type when we know it.
    """
    try:
        if isinstance(sample, bool):
            return text == "True"
        if isinstance(sample, datetime):
            return datetime.fromisoformat(text)
        if isinstance(sample, date):
            return date.fromisoformat(text)
        if isinstance(sample, bytes | bytearray | memoryview):
            return bytes.fromhex(text)
        if isinstance(sample, int | float | Decimal | UUID):
            return type(sample)(text)
    except (ValueError, TypeError, ArithmeticError):
        pass
    return text


def _minus(value: object, seconds: int) -> object | None:
    """``value`` moved back by ``seconds``, in its own type and textual shape; None if it can't be.

    >>> _minus("2026-01-01 00:00:30.250+08:00", 60)
    '2025-12-31 23:59:30.250+08:00'
    >>> _minus("2026-03-01T10:00", 30), _minus(date(2026, 3, 1), 3600), _minus("n/a", 60)
    ('2026-03-01T09:59', datetime.date(2026, 2, 28), None)
    """
    days = -(-seconds // 86_400)  # a date moves back by whole days, at least the lookback
    try:
        if isinstance(value, bool):
            return None
        if isinstance(value, datetime):
            return value - timedelta(seconds=seconds)
        if isinstance(value, date):
            return value - timedelta(days=days)
        if isinstance(value, int | float | Decimal):  # epoch seconds
            return value - seconds
        if isinstance(value, str) and (m := _TEXT_TIME.fullmatch(value)):
            if not m["sep"]:
                return (date.fromisoformat(m["day"]) - timedelta(days=days)).isoformat()
            start = datetime.fromisoformat(f"{m['day']} {m['h']}:{m['m']}:{m['s'] or '00'}")
            moved = start - timedelta(seconds=seconds)
            # Same separator, precision, fraction and offset as the stored text, so it compares as text.
            # Without seconds in the shape the minute is floored: the window only grows.
            clock = f"{moved.hour:02d}:{moved.minute:02d}" + (f":{moved.second:02d}" if m["s"] else "")
            return f"{moved.date().isoformat()}{m['sep']}{clock}{m['frac'] or ''}{m['zone'] or ''}"
    except (ValueError, OverflowError, ArithmeticError):
        return None
    return None


def _source(
    conn: sa.Connection, table: str | None, query: str | None
) -> tuple[sa.FromClause, list[str], tuple[str, str]]:
    """What to select from — the table, or the query as a subquery — its column names, and how to name
    it in a message. Untyped columns: values come back as the driver reads them, no SQLAlchemy
    conversion."""
    if table:
        reflected = sa.Table(table, sa.MetaData(), autoload_with=conn)
        names = [c.name for c in reflected.columns]
        return (
            sa.table(reflected.name, *(sa.column(n) for n in names)),
            names,
            (f"表 {table} ", f"table {table}"),
        )
    assert query is not None
    body = query.strip().rstrip(";")
    probe = sa.select(sa.text("*")).select_from(sa.text(body).columns().subquery("src"))
    names = list(conn.execute(probe.where(sa.false())).keys())
    return (
        sa.text(body).columns(*(sa.column(n) for n in names)).subquery("src"),
        names,
        ("查询结果", "the query"),
    )


def _find(names: list[str], wanted: str, source: tuple[str, str], url: str) -> str:
    """The source's name for column ``wanted`` (exact, else the one case-insensitive match)."""
    if wanted in names:
        return wanted
    folded = [n for n in names if n.lower() == wanted.lower()]
    if len(folded) == 1:
        return folded[0]
    have = ", ".join(names[:30]) + (" ..." if len(names) > 30 else "")
    raise ExtractError(
        "SQL_NO_COLUMN",
        f"{source[0]}中没有列 {wanted}（现有列：{have}）",
        f"column {wanted} not found in {source[1]} (columns: {have})",
        mask_url(url),
    )


def _bind(name: str, value: object) -> sa.BindParameter:
    # Untyped: the driver sends the value it read in its own type, with no cast added by SQLAlchemy.
    return sa.bindparam(name, value, type_=NullType())


def read_sql_incremental(
    url: str,
    *,
    table: str | None = None,
    query: str | None = None,
    cursor_column: str,
    key_column: str,
    after: Cursor | None = None,
    lookback_seconds: int = 0,
    batch_size: int = 65_536,
    connect_args: dict | None = None,
    as_text: bool = False,
    first_batch: int | None = None,
) -> Iterator[tuple[pa.RecordBatch, Cursor]]:
    """Stream the rows after ``after`` in ``(cursor_column, key_column)`` order, each batch with its cursor.

    ``after`` None reads everything: rows whose cursor is NULL first (by key, in batches of their own),
    then the rest. With a cursor and no lookback, rows strictly after it: ``c > v OR (c = v AND k > key)``,
    so rows sharing a timestamp are never skipped nor read twice. With ``lookback_seconds`` it restarts at
    ``c >= v - lookback`` (the caller's upsert makes the re-read window a no-op); a value that cannot be
    moved back (not a time, number or ISO text) falls back to the strict condition. Rows whose cursor
    is NULL are read by full reads only: an incremental read sees them once their cursor is set. The
    key column should be unique and not NULL. Values come raw from the driver (SQLite text timestamps
    stay text). ``connect_args`` go to the driver (e.g. ``{"connect_timeout": 10}``).

    ``as_text``: the values may come as the source's own text instead (the cursor stays in its type).
    A SQLite file is then read straight into Arrow by ADBC, several times faster than Python rows
    (SQLite's text of a REAL keeps its ``.0``: ``2.0``, where a Python float would print ``2``). ADBC
    links its own copy of SQLite: only for a file no other connection of this process holds (a local
    system's, never a library this process writes).

    ``first_batch``: the read's first batch holds at most this many rows (on the Arrow path), so a
    consumer that works on batches as they come starts sooner; the others hold ``batch_size``.
    """
    if not table and not query:
        raise ExtractError("SQL_NO_TABLE", "未指定表或查询", "no table or query given", mask_url(url))
    with _translated(url, table):
        no_arrow = bool((connect_args or {}).get(_NO_ARROW))
        connect_args = {k: v for k, v in (connect_args or {}).items() if k != _NO_ARROW}
        engine, conn = _connect(url, connect_args)
        arrow = None
        try:
            src, names, source = _source(conn, table, query)
            c = src.c[_find(names, cursor_column, source, url)]
            k = src.c[_find(names, key_column, source, url)]
            select = sa.select(*src.c)
            since = None
            if after is not None and after.value is not None and lookback_seconds > 0:
                since = _minus(after.value, lookback_seconds)
            key = None
            if after is not None and after.key is not None and since is None:
                sample = conn.execute(sa.select(k).where(k.is_not(None)).limit(1)).scalar()
                key = _bind("key", _key_value(after.key, sample))
            stmts: list[sa.Select] = []
            if after is None or (after.value is None and key is None):
                stmts.append(select.where(c.is_(None)).order_by(k))
                stmts.append(select.where(c.is_not(None)).order_by(c, k))
            elif after.value is None:  # stopped among the NULL-cursor rows of a full read
                stmts.append(select.where(c.is_(None), k > key).order_by(k))
                stmts.append(select.where(c.is_not(None)).order_by(c, k))
            elif since is not None:
                stmts.append(select.where(c >= _bind("since", since)).order_by(c, k))
            else:
                value = _bind("value", after.value)
                same = k > key if key is not None else k.is_not(None)
                stmts.append(select.where(sa.or_(c > value, sa.and_(c == value, same))).order_by(c, k))
            ci, ki = names.index(c.name), names.index(k.name)
            if as_text and engine.dialect.name == "sqlite" and not no_arrow:
                # Two copies of SQLite in one process must never hold the same file open at once
                # (closing one's descriptor drops the other's locks): SQLAlchemy's is closed first.
                conn.close()
                engine.dispose()
                arrow = _arrow_reader(url)
                if arrow is None:
                    engine, conn = _connect(url, connect_args)
            last_cursor = after
            for stmt in stmts:
                if arrow is not None:
                    try:
                        head = first_batch if last_cursor is after else None
                        for batch, cursor in _read_arrow(arrow, stmt, src, c, k, batch_size, head):
                            last_cursor = cursor
                            yield batch, cursor
                        continue
                    except _ArrowFailed:
                        # A column whose values change type mid-stream (SQLite allows it): the rest of
                        # the read goes through SQLAlchemy, from the last batch given.
                        arrow.close()
                        arrow = None
                        yield from read_sql_incremental(
                            url,
                            table=table,
                            query=query,
                            cursor_column=cursor_column,
                            key_column=key_column,
                            after=last_cursor,
                            lookback_seconds=0 if last_cursor is not after else lookback_seconds,
                            batch_size=batch_size,
                            connect_args={**(connect_args or {}), _NO_ARROW: True},
                            as_text=True,
                        )
                        return
                for batch, last in _batches(_stream(conn, stmt, batch_size), batch_size):
                    last_cursor = Cursor(last[ci], _key_text(last[ki]))
                    yield batch, last_cursor
        finally:
            if arrow is not None:
                arrow.close()
            conn.close()
            engine.dispose()


def read_sql_keys(
    url: str,
    *,
    table: str | None = None,
    query: str | None = None,
    key_column: str,
    keys: list[str],
    batch_size: int = 65_536,
    connect_args: dict | None = None,
) -> Iterator[pa.RecordBatch]:
    """The rows of ``keys`` as the source holds them now (a retry re-reads them), in key order."""
    if not table and not query:
        raise ExtractError("SQL_NO_TABLE", "未指定表或查询", "no table or query given", mask_url(url))
    with _translated(url, table):
        engine, conn = _connect(url, connect_args)
        try:
            src, names, source = _source(conn, table, query)
            k = src.c[_find(names, key_column, source, url)]
            sample = conn.execute(sa.select(k).where(k.is_not(None)).limit(1)).scalar()
            for start in range(0, len(keys), 500):
                values = [_key_value(key, sample) for key in keys[start : start + 500]]
                params = [_bind(f"k{i}", v) for i, v in enumerate(values)]
                stmt = sa.select(*src.c).where(k.in_(params)).order_by(k)
                for batch, _last in _batches(_stream(conn, stmt, batch_size), batch_size):
                    yield batch
        finally:
            conn.close()
            engine.dispose()


# --- Arrow straight from the driver (ADBC) ---------------------------------------------------------

_NO_ARROW = "_tongban_no_arrow"  # a connect_args flag: read through SQLAlchemy only
_CURSOR, _KEY = "__tongban_cursor", "__tongban_key"


class _ArrowFailed(Exception):
    """The ADBC read stopped (a value of another type than the column's first ones)."""


def _arrow_reader(url: str) -> Any:
    """An ADBC connection to a SQLite file, or None (driver not installed, in-memory database)."""
    try:
        import adbc_driver_sqlite.dbapi as adbc_sqlite
    except ImportError:  # pragma: no cover - a dependency; SQLAlchemy reads alone still work
        return None
    parsed = sa.make_url(url)
    if not parsed.database or parsed.database == ":memory:" or parsed.query:
        return None
    try:
        return adbc_sqlite.connect(parsed.database)
    except Exception:
        return None


def _read_arrow(
    arrow: Any,
    stmt: sa.Select,
    src: sa.FromClause,
    c: sa.ColumnElement,
    k: sa.ColumnElement,
    batch_size: int,
    head: int | None = None,
) -> Iterator[tuple[pa.RecordBatch, Cursor]]:
    """The statement's rows read by ADBC as Arrow, in batches of ``batch_size``, each with its cursor.

    Every column is read as SQLite's own text of its values (``CAST(... AS TEXT)``; the engine keeps
    raw bytes anyway, so one column's values may be of any storage class), the cursor column and the
    key in their stored types beside them. The driver types those two columns by their first values and
    refuses a later value it would have to narrow (a real or text in an integer column, a text in a
    real one): that stops the Arrow read, and the caller goes on through SQLAlchemy from the batch
    before. What it widens (an integer in a real column) compares equal in SQLite, so a cursor holding
    it resumes at the same place. SQLite's values are read by the driver in C, without a Python object
    per value.
    """
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    cols = [sa.cast(col, sa.Text).label(col.name) for col in src.c]
    query = stmt.with_only_columns(*cols, c.label(_CURSOR), k.label(_KEY), maintain_column_froms=True)
    try:
        compiled = query.compile(dialect=sqlite_dialect.dialect())
        params = [compiled.params[name] for name in compiled.positiontup or []]
    except Exception:
        raise _ArrowFailed from None
    cur = arrow.cursor()
    try:
        cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(batch_size)})
        try:
            cur.execute(str(compiled), params or None)
            reader = cur.fetch_record_batch()
        except Exception:
            raise _ArrowFailed from None
        names = [col.name for col in src.c]
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except Exception:
                raise _ArrowFailed from None
            if not batch.num_rows:
                continue
            pieces = [batch]
            if head and 0 < head < batch.num_rows:
                pieces = [batch.slice(0, head), batch.slice(head)]
            head = None
            for piece in pieces:
                n = piece.num_rows
                cursor = Cursor(
                    piece.column(_CURSOR)[n - 1].as_py(), _key_text(piece.column(_KEY)[n - 1].as_py())
                )
                yield pa.RecordBatch.from_arrays(piece.columns[: len(names)], names=names), cursor
    finally:
        cur.close()
