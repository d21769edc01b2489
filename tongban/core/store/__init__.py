"""The library store: a node's records with history, the batch ledger, failed transfers and sync state.

One code path on SQLAlchemy 2 Core for SQLite (the embedded default) and PostgreSQL. The schema is
created and migrated from one place (:func:`migrate`). Loading a batch is one transaction: stage the
rows, set aside owner conflicts, drop unchanged rows, keep older versions in history, upsert the rest,
record rejected rows as failed transfers, write the ledger entry and advance the edge's cursor — so a
crash at any point leaves either all of it or none of it.

Physical types: PostgreSQL gets native DATE, TIMESTAMPTZ and NUMERIC; SQLite keeps those as ISO text
(timestamps as naive UTC ``YYYY-MM-DD HH:MM:SS.ffffff``), which sorts and compares correctly.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as sq

import schemas
from connectors.sql import mask_url
from schemas.contract import Dataset, Kind
from schemas.errors import TongbanError

__all__ = [
    "META_COLUMNS",
    "SCHEMA_VERSION",
    "FailedRow",
    "Library",
    "LoadResult",
    "StoreError",
    "migrate",
]

SCHEMA_VERSION = 2

#: Columns a batch's rows carry beside their dataset fields (not part of the content hash).
META_COLUMNS = ("_owner", "_hash", "_batch", "_leaf", "_source", "_flags", "_synced_at")

#: The load sequence number a record got when it was last written: the library's commit order.
SEQ = "_seq"

#: How a dataset's records move between owners: (status that releases a record, field naming the new owner).
MIGRATION = {"population": ("moved_out", "moved_to"), "business": ("moved_out", "moved_to")}


class StoreError(TongbanError):
    """A library that cannot be opened or written."""


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


class _Stamp(sa.types.TypeDecorator[_dt.datetime]):
    """A UTC timestamp: TIMESTAMPTZ on PostgreSQL, naive-UTC ISO text on SQLite."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Text())
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        if isinstance(value, str):
            return value
        if value.tzinfo is not None:
            value = value.astimezone(_dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = _dt.datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        return value


def _column_type(dataset: Dataset, name: str) -> sa.types.TypeEngine[Any]:
    spec = dataset.field(name)
    if spec.kind is Kind.DATE:
        return sa.Date().with_variant(sa.Text(), "sqlite")
    if spec.kind is Kind.TIMESTAMP:
        return _Stamp()
    if spec.kind is Kind.DECIMAL:
        t = spec.type
        assert isinstance(t, pa.Decimal128Type)
        return sa.Numeric(t.precision, t.scale).with_variant(sa.Text(), "sqlite")
    if spec.max_length:
        return sa.String(spec.max_length * 4).with_variant(sa.Text(), "sqlite")
    return sa.Text()


def _record_columns(dataset: Dataset, *, key: bool) -> list[sa.Column[Any]]:
    cols: list[sa.Column[Any]] = []
    for name in dataset.names:
        is_key = key and name == dataset.key
        cols.append(sa.Column(name, _column_type(dataset, name), primary_key=is_key, nullable=not is_key))
    cols += [
        sa.Column("_owner", sa.String(6), nullable=False),
        sa.Column("_hash", sa.String(64), nullable=False),
        sa.Column("_batch", sa.String(64), nullable=False),
        sa.Column("_leaf", sa.Integer, nullable=False),
        sa.Column("_source", sa.String(120), nullable=False),
        sa.Column("_flags", sa.Text),
        sa.Column("_synced_at", _Stamp(), nullable=False),
        sa.Column(SEQ, sa.BigInteger, nullable=False),
    ]
    return cols


def _define(metadata: sa.MetaData) -> dict[str, sa.Table]:
    tables: dict[str, sa.Table] = {}
    for name, dataset in schemas.DATASETS.items():
        tables[name] = sa.Table(
            name,
            metadata,
            *_record_columns(dataset, key=True),
            # A parent library reads what changed by (load sequence, key): exact, in commit order.
            sa.Index(f"ix_{name}_seq", SEQ, dataset.key),
            sa.Index(f"ix_{name}_owner", "_owner"),
        )
        tables[f"{name}_history"] = sa.Table(
            f"{name}_history",
            metadata,
            sa.Column("_id", sa.Integer, primary_key=True, autoincrement=True),
            *_record_columns(dataset, key=False),
            sa.Column("_archived_at", _Stamp(), nullable=False),
            sa.Column("_reason", sa.String(16), nullable=False),  # replaced | stale | migrated
            sa.Index(f"ix_{name}_history_key", dataset.key),
        )
    tables["batches"] = sa.Table(
        "batches",
        metadata,
        sa.Column("batch_id", sa.String(64), primary_key=True),
        sa.Column("edge", sa.String(200), nullable=False, index=True),
        sa.Column("dataset", sa.String(32), nullable=False),
        sa.Column("source", sa.String(120), nullable=False),
        sa.Column("target", sa.String(6), nullable=False),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("manifest_hash", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("inserted", sa.Integer, nullable=False),
        sa.Column("updated", sa.Integer, nullable=False),
        sa.Column("unchanged", sa.Integer, nullable=False),
        sa.Column("stale", sa.Integer, nullable=False),
        sa.Column("conflicts", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
        sa.Column("loaded_at", _Stamp(), nullable=False),
        sa.Column("seq", sa.BigInteger),  # the library's load sequence number of this batch
        sa.Column("key_id", sa.String(16), index=True),  # the key that signed the manifest
    )
    tables["load_seq"] = sa.Table(
        "load_seq",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )
    tables["failed_transfers"] = sa.Table(
        "failed_transfers",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(8), nullable=False),  # row | batch | run | file
        sa.Column("state", sa.String(12), nullable=False, server_default="open"),
        sa.Column("edge", sa.String(200), nullable=False, index=True),
        sa.Column("dataset", sa.String(32), nullable=False),
        sa.Column("source", sa.String(120), nullable=False),
        sa.Column("target", sa.String(6), nullable=False),
        sa.Column("batch_id", sa.String(64)),
        sa.Column("row_number", sa.Integer),
        sa.Column("row_key", sa.Text),
        sa.Column("codes", sa.Text, nullable=False),
        sa.Column("message_zh", sa.Text, nullable=False),
        sa.Column("message_en", sa.Text, nullable=False),
        sa.Column("where", sa.Text),
        sa.Column("payload", sa.Text),
        sa.Column("digest", sa.String(64)),  # of edge, key, codes and payload: a re-read row is kept once
        sa.Column("attempts", sa.Integer, nullable=False, server_default="1"),
        sa.Column("created_at", _Stamp(), nullable=False),
        sa.Column("updated_at", _Stamp(), nullable=False),
        sa.Index("ix_failed_state", "state", "dataset"),
        sa.Index("ix_failed_digest", "edge", "digest"),
    )
    tables["sync_state"] = sa.Table(
        "sync_state",
        metadata,
        sa.Column("edge", sa.String(200), primary_key=True),
        sa.Column("dataset", sa.String(32), nullable=False),
        sa.Column("source", sa.String(120), nullable=False),
        sa.Column("target", sa.String(6), nullable=False),
        sa.Column("cursor", sa.Text),
        sa.Column("last_manifest_hash", sa.String(64), nullable=False, server_default=""),
        sa.Column("last_batch_id", sa.String(64)),
        sa.Column("rows_loaded", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("rows_failed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("batches", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_success", _Stamp()),
        sa.Column("last_attempt", _Stamp()),
        sa.Column("last_error", sa.Text),
    )
    tables["tongban_meta"] = sa.Table(
        "tongban_meta",
        metadata,
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    return tables


METADATA = sa.MetaData()
TABLES = _define(METADATA)


def _migrate_2(conn: sa.Connection) -> None:
    """Version 2: records carry the library's load sequence number (``_seq``), the ledger numbers
    its batches and names the key that signed each; parents read a child by ``(_seq, key)``."""
    for name in schemas.DATASETS:
        for table in (name, f"{name}_history"):
            conn.exec_driver_sql(f'ALTER TABLE "{table}" ADD COLUMN "{SEQ}" BIGINT NOT NULL DEFAULT 0')
    conn.exec_driver_sql("ALTER TABLE batches ADD COLUMN seq BIGINT")
    conn.exec_driver_sql("ALTER TABLE batches ADD COLUMN key_id VARCHAR(16)")
    ledger = TABLES["batches"]
    done = conn.execute(
        sa.select(ledger.c.batch_id, ledger.c.manifest).order_by(ledger.c.loaded_at, ledger.c.batch_id)
    ).all()
    numbered = []
    for seq, (batch_id, manifest) in enumerate(done, start=1):
        try:
            kid = json.loads(manifest).get("key_id")
        except (ValueError, AttributeError):
            kid = None
        numbered.append({"b": batch_id, "seq": seq, "kid": kid if isinstance(kid, str) else None})
    if numbered:
        conn.execute(
            ledger.update()
            .where(ledger.c.batch_id == sa.bindparam("b"))
            .values(seq=sa.bindparam("seq"), key_id=sa.bindparam("kid")),
            numbered,
        )
    for name, dataset in schemas.DATASETS.items():
        records = TABLES[name]
        seq_of = sa.select(ledger.c.seq).where(ledger.c.batch_id == records.c._batch).scalar_subquery()
        conn.execute(records.update().values({SEQ: sa.func.coalesce(seq_of, 0)}))
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS ix_{name}_synced")
        conn.exec_driver_sql(f'CREATE INDEX ix_{name}_seq ON "{name}" ("{SEQ}", "{dataset.key}")')
    conn.exec_driver_sql("CREATE INDEX ix_batches_key_id ON batches (key_id)")
    seq_table = TABLES["load_seq"]
    conn.execute(seq_table.delete())
    conn.execute(seq_table.insert().values(id=1, seq=len(numbered)))


# Ordered migrations from one version to the next; a new library is created whole at the latest.
_MIGRATIONS: dict[int, Any] = {2: _migrate_2}


def migrate(engine: sa.Engine) -> int:
    """Create the library's tables or bring them to :data:`SCHEMA_VERSION`; returns the version."""
    METADATA.create_all(engine)
    meta = TABLES["tongban_meta"]
    with engine.begin() as conn:
        row = conn.execute(sa.select(meta.c.value).where(meta.c.name == "schema_version")).first()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                "LIBRARY_TOO_NEW",
                f"库的结构版本 {version} 比本程序支持的 {SCHEMA_VERSION} 新",
                f"library schema version {version} is newer than this program's {SCHEMA_VERSION}",
                mask_url(str(engine.url)),
            )
        for step in range((version or SCHEMA_VERSION) + 1, SCHEMA_VERSION + 1):
            _MIGRATIONS[step](conn)
        seq_table = TABLES["load_seq"]
        if conn.execute(sa.select(seq_table.c.id)).first() is None:
            conn.execute(seq_table.insert().values(id=1, seq=0))
        if version != SCHEMA_VERSION:
            if row:
                conn.execute(
                    meta.update().where(meta.c.name == "schema_version").values(value=str(SCHEMA_VERSION))
                )
            else:
                conn.execute(meta.insert().values(name="schema_version", value=str(SCHEMA_VERSION)))
    return SCHEMA_VERSION


@dataclass(frozen=True)
class FailedRow:
    """A row of a batch that will not load: its number in the extract, key, codes, messages, payload."""

    row_number: int
    key: str | None
    codes: Sequence[str]
    message_zh: str
    message_en: str
    payload: dict[str, Any]
    where: str = ""  # the file or system and row it came from


@dataclass
class LoadResult:
    """What one batch did to the library."""

    batch_id: str
    duplicate: bool = False  # the batch id was loaded before: nothing done
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    conflicts: int = 0
    rejected: int = 0
    conflict_keys: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "conflict_keys"}


def _json_default(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    return str(value)


def dumps(value: object) -> str:
    """Compact JSON that keeps Chinese readable and never fails on bytes, dates or decimals."""
    return json.dumps(value, ensure_ascii=False, default=_json_default, separators=(",", ":"))


class Library:
    """One node's library, reached through a SQLAlchemy URL."""

    def __init__(self, url: str, node: str = "") -> None:
        self.url = url
        self.node = node
        try:
            self.engine = sa.create_engine(url, future=True)
        except (sa.exc.ArgumentError, ImportError, ValueError) as exc:
            raise StoreError(
                "LIBRARY_URL", f"库地址无效：{exc}", f"invalid library URL: {exc}", mask_url(url)
            ) from None
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            database = self.engine.url.database
            if database and database != ":memory:" and not database.startswith("file:"):
                _private_database(Path(database))
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        self.tables = TABLES

    def __repr__(self) -> str:
        return f"Library({self.node or '?'} at {mask_url(self.url)})"

    def migrate(self) -> int:
        """Create or upgrade the schema; StoreError LIBRARY_UNREACHABLE when the database is down."""
        try:
            return migrate(self.engine)
        except sa.exc.OperationalError as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: Exception) -> StoreError:
        detail = str(getattr(exc, "orig", exc)).splitlines()[0][:300]
        return StoreError(
            "LIBRARY_UNREACHABLE",
            f"无法连接节点 {self.node} 的库：{detail}",
            f"cannot reach the library of node {self.node}: {detail}",
            mask_url(self.url),
        )

    def connect(self) -> sa.Connection:
        try:
            return self.engine.connect()
        except sa.exc.OperationalError as exc:
            raise self._unreachable(exc) from None

    def dispose(self) -> None:
        self.engine.dispose()

    # -- sync state -----------------------------------------------------------------------------

    def state(self, edge: str, conn: sa.Connection | None = None) -> dict[str, Any] | None:
        """The edge's sync state row (cursor parsed), or None before its first load."""
        t = self.tables["sync_state"]
        stmt = sa.select(t).where(t.c.edge == edge)
        if conn is None:
            with self.connect() as c:
                row = c.execute(stmt).mappings().first()
        else:
            row = conn.execute(stmt.with_for_update()).mappings().first()
        if row is None:
            return None
        out = dict(row)
        out["cursor"] = json.loads(out["cursor"]) if out["cursor"] else None
        return out

    def states(self) -> list[dict[str, Any]]:
        t = self.tables["sync_state"]
        with self.connect() as c:
            rows = c.execute(sa.select(t).order_by(t.c.edge)).mappings().all()
        return [dict(r, cursor=json.loads(r["cursor"]) if r["cursor"] else None) for r in rows]

    def note_attempt(self, edge: str, dataset: str, source: str, error: str | None) -> None:
        """Record that a run of the edge was attempted (and why it failed, when it did)."""
        self._touch(edge, dataset, source, last_attempt=_utcnow(), last_error=error)

    def note_success(self, edge: str, dataset: str, source: str) -> None:
        """Record a run that found nothing new: the edge is current as of now."""
        now = _utcnow()
        self._touch(edge, dataset, source, last_attempt=now, last_success=now, last_error=None)

    def _touch(self, edge: str, dataset: str, source: str, **values: Any) -> None:
        t = self.tables["sync_state"]
        with self.engine.begin() as conn:
            if not conn.execute(t.update().where(t.c.edge == edge).values(**values)).rowcount:
                conn.execute(
                    t.insert().values(edge=edge, dataset=dataset, source=source, target=self.node, **values)
                )
            if values.get("last_success"):
                self.resolve_runs(edge, conn)

    def reset_cursor(self, edge: str) -> None:
        """Forget the edge's cursor so the next run reads the whole source (the chain is kept)."""
        t = self.tables["sync_state"]
        with self.engine.begin() as conn:
            conn.execute(t.update().where(t.c.edge == edge).values(cursor=None))

    # -- failed transfers -----------------------------------------------------------------------

    def record_failure(
        self,
        *,
        kind: str,
        edge: str,
        dataset: str,
        source: str,
        codes: Sequence[str],
        message_zh: str,
        message_en: str,
        where: str = "",
        batch_id: str | None = None,
        payload: dict[str, Any] | None = None,
        conn: sa.Connection | None = None,
    ) -> int:
        """Keep a failed batch, run or file until an operator acts; returns its id.

        A failed run of an edge that already has an open failed run counts one more attempt instead
        of adding a row.
        """
        t = self.tables["failed_transfers"]
        now = _utcnow()

        def write(c: sa.Connection) -> int:
            if kind == "run":
                open_run = c.execute(
                    sa.select(t.c.id).where(t.c.edge == edge, t.c.kind == "run", t.c.state == "open")
                ).first()
                if open_run:
                    c.execute(
                        t.update()
                        .where(t.c.id == open_run[0])
                        .values(
                            attempts=t.c.attempts + 1,
                            updated_at=now,
                            codes=",".join(codes),
                            message_zh=message_zh,
                            message_en=message_en,
                            where=where,
                        )
                    )
                    return int(open_run[0])
            res = c.execute(
                t.insert().values(
                    kind=kind,
                    state="open",
                    edge=edge,
                    dataset=dataset,
                    source=source,
                    target=self.node,
                    batch_id=batch_id,
                    codes=",".join(codes),
                    message_zh=message_zh,
                    message_en=message_en,
                    where=where,
                    payload=dumps(payload) if payload is not None else None,
                    attempts=1,
                    created_at=now,
                    updated_at=now,
                )
            )
            return int(res.inserted_primary_key[0])

        if conn is not None:
            return write(conn)
        with self.engine.begin() as c:
            return write(c)

    def resolve_runs(self, edge: str, conn: sa.Connection) -> None:
        """Close the edge's open failed runs once a run succeeds."""
        t = self.tables["failed_transfers"]
        conn.execute(
            t.update()
            .where(t.c.edge == edge, t.c.kind == "run", t.c.state == "open")
            .values(state="resolved", updated_at=_utcnow())
        )

    def failures(
        self,
        *,
        dataset: str | None = None,
        code: str | None = None,
        kind: str | None = None,
        state: str | None = "open",
        edge: str | None = None,
        since: _dt.datetime | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Failed transfers, newest first, filtered."""
        t = self.tables["failed_transfers"]
        stmt = sa.select(t).order_by(t.c.id.desc())
        if dataset:
            stmt = stmt.where(t.c.dataset == dataset)
        if kind:
            stmt = stmt.where(t.c.kind == kind)
        if state:
            stmt = stmt.where(t.c.state == state)
        if edge:
            stmt = stmt.where(t.c.edge == edge)
        if since:
            stmt = stmt.where(t.c.created_at >= since)
        if code:
            like = f"%{code}%"
            stmt = stmt.where(t.c.codes.like(like))
        if limit:
            stmt = stmt.limit(limit)
        with self.connect() as c:
            return [dict(r) for r in c.execute(stmt).mappings()]

    def failure(self, failure_id: int) -> dict[str, Any] | None:
        t = self.tables["failed_transfers"]
        with self.connect() as c:
            row = c.execute(sa.select(t).where(t.c.id == failure_id)).mappings().first()
        return dict(row) if row else None

    def failure_counts(self) -> dict[str, int]:
        """Open failed transfers per edge."""
        t = self.tables["failed_transfers"]
        stmt = sa.select(t.c.edge, sa.func.count()).where(t.c.state == "open").group_by(t.c.edge)
        with self.connect() as c:
            return {edge: int(n) for edge, n in c.execute(stmt)}

    # -- records --------------------------------------------------------------------------------

    def count(self, dataset: str) -> int:
        t = self.tables[dataset]
        with self.connect() as c:
            return int(c.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())

    def record(self, dataset: str, key: str) -> dict[str, Any] | None:
        t = self.tables[dataset]
        pk = schemas.get(dataset).key
        with self.connect() as c:
            row = c.execute(sa.select(t).where(t.c[pk] == key)).mappings().first()
        return dict(row) if row else None

    def history(self, dataset: str, key: str) -> list[dict[str, Any]]:
        t = self.tables[f"{dataset}_history"]
        pk = schemas.get(dataset).key
        with self.connect() as c:
            rows = c.execute(sa.select(t).where(t.c[pk] == key).order_by(t.c._id)).mappings()
            return [dict(r) for r in rows]

    def loaded(self, batch_id: str) -> bool:
        t = self.tables["batches"]
        with self.connect() as c:
            return c.execute(sa.select(t.c.batch_id).where(t.c.batch_id == batch_id)).first() is not None

    def load_batch(
        self,
        *,
        edge: str,
        dataset: str,
        source: str,
        manifest_json: str,
        manifest_hash: str,
        batch_id: str,
        prev_hash: str,
        rows: pa.Table,
        rejected: Sequence[FailedRow],
        cursor: dict[str, Any] | None,
    ) -> LoadResult:
        """Apply one verified batch in one transaction (see the module docstring).

        ``rows`` holds the dataset's fields plus the :data:`META_COLUMNS`; ``prev_hash`` must still be
        the edge's last manifest hash when the transaction starts, else StoreError BATCH_CHAIN (another
        run loaded first) and nothing changes.
        """
        spec = schemas.get(dataset)
        result = LoadResult(batch_id=batch_id, rows=rows.num_rows, rejected=len(rejected))
        ledger = self.tables["batches"]
        with self.engine.begin() as conn:
            if conn.execute(sa.select(ledger.c.batch_id).where(ledger.c.batch_id == batch_id)).first():
                result.duplicate = True
                return result
            state = self.state(edge, conn)
            last = state["last_manifest_hash"] if state else ""
            if last != prev_hash:
                raise StoreError(
                    "BATCH_CHAIN",
                    f"批次链不连续：上一清单应为 {last[:12] or '（无）'}，批次给出 {prev_hash[:12] or '（无）'}",
                    f"broken chain: previous manifest is {last[:12] or '(none)'}, "
                    f"the batch names {prev_hash[:12] or '(none)'}",
                    edge,
                )
            now = _utcnow()
            seq = self.next_seq(conn)
            if rows.num_rows:
                stamp = pa.repeat(pa.scalar(seq, pa.int64()), rows.num_rows)
                if SEQ in rows.column_names:
                    rows = rows.set_column(rows.column_names.index(SEQ), SEQ, stamp)
                else:
                    rows = rows.append_column(SEQ, stamp)
                self._apply(conn, spec, rows, result, now, edge=edge, source=source, batch_id=batch_id)
            failed = self.tables["failed_transfers"]
            rejected = self._new_failures(conn, edge, rejected)
            result.rejected = len(rejected)
            if rejected:
                conn.execute(
                    failed.insert(),
                    [
                        {
                            "digest": _failure_digest(edge, r),
                            "kind": "row",
                            "state": "open",
                            "edge": edge,
                            "dataset": dataset,
                            "source": source,
                            "target": self.node,
                            "batch_id": batch_id,
                            "row_number": r.row_number,
                            "row_key": r.key,
                            "codes": ",".join(r.codes),
                            "message_zh": r.message_zh,
                            "message_en": r.message_en,
                            "payload": dumps(r.payload),
                            "where": r.where,
                            "attempts": 1,
                            "created_at": now,
                            "updated_at": now,
                        }
                        for r in rejected
                    ],
                )
            conn.execute(
                ledger.insert().values(
                    batch_id=batch_id,
                    edge=edge,
                    dataset=dataset,
                    source=source,
                    target=self.node,
                    manifest=manifest_json,
                    manifest_hash=manifest_hash,
                    rows=result.rows,
                    inserted=result.inserted,
                    updated=result.updated,
                    unchanged=result.unchanged,
                    stale=result.stale,
                    conflicts=result.conflicts,
                    rejected=result.rejected,
                    loaded_at=now,
                    seq=seq,
                    key_id=_manifest_key_id(manifest_json),
                )
            )
            st = self.tables["sync_state"]
            failed_now = result.rejected + result.conflicts
            values: dict[str, Any] = {
                "last_manifest_hash": manifest_hash,
                "last_batch_id": batch_id,
                "last_success": now,
                "last_attempt": now,
                "last_error": None,
            }
            if cursor is not None:
                values["cursor"] = json.dumps(cursor)
            if state is None:
                conn.execute(
                    st.insert().values(
                        edge=edge,
                        dataset=dataset,
                        source=source,
                        target=self.node,
                        rows_loaded=result.inserted + result.updated,
                        rows_failed=failed_now,
                        batches=1,
                        **values,
                    )
                )
            else:
                conn.execute(
                    st.update()
                    .where(st.c.edge == edge)
                    .values(
                        rows_loaded=st.c.rows_loaded + result.inserted + result.updated,
                        rows_failed=st.c.rows_failed + failed_now,
                        batches=st.c.batches + 1,
                        **values,
                    )
                )
            self.resolve_runs(edge, conn)
        return result

    def next_seq(self, conn: sa.Connection) -> int:
        """Take the library's next load sequence number inside ``conn``'s transaction.

        The counter's row stays locked until the transaction ends (SQLite's writers are serialized
        anyway), so sequence numbers follow commit order: a parent that read up to ``n`` never misses
        a write that commits later, which gets a number above ``n``.
        """
        t = self.tables["load_seq"]
        if not conn.execute(t.update().where(t.c.id == 1).values(seq=t.c.seq + 1)).rowcount:
            conn.execute(t.insert().values(id=1, seq=1))
        return int(conn.execute(sa.select(t.c.seq).where(t.c.id == 1)).scalar_one())

    def _new_failures(self, conn: sa.Connection, edge: str, rows: Sequence[FailedRow]) -> list[FailedRow]:
        """The rejected rows not already kept, open, for this edge (a lookback re-read adds nothing)."""
        if not rows:
            return []
        t = self.tables["failed_transfers"]
        digests = [_failure_digest(edge, r) for r in rows]
        known: set[str] = set()
        for start in range(0, len(digests), 500):
            chunk = digests[start : start + 500]
            stmt = sa.select(t.c.digest).where(t.c.edge == edge, t.c.state == "open", t.c.digest.in_(chunk))
            known.update(d for (d,) in conn.execute(stmt))
        return [r for r, d in zip(rows, digests, strict=True) if d not in known]

    # -- the set-based load -----------------------------------------------------------------------

    def _apply(
        self,
        conn: sa.Connection,
        spec: Dataset,
        rows: pa.Table,
        result: LoadResult,
        now: _dt.datetime,
        *,
        edge: str,
        source: str,
        batch_id: str,
    ) -> None:
        records = self.tables[spec.name]
        history = self.tables[f"{spec.name}_history"]
        names = [c.name for c in records.columns]
        # Most rows of most batches are new records. Try writing them straight into the table (COPY on
        # PostgreSQL) inside a savepoint; if a key is already stored, the savepoint is rolled back and
        # the batch takes the set-based path below (conflicts, unchanged, older, replaced).
        stamped = rows.set_column(
            rows.column_names.index("_synced_at"), "_synced_at", pa.repeat(pa.scalar(now, _TS), rows.num_rows)
        )
        try:
            with conn.begin_nested():
                self._stage(conn, records, stamped.select(names))
        except (sa.exc.IntegrityError, *_UNIQUE_ERRORS):
            pass
        else:
            result.inserted = rows.num_rows
            return
        stage = sa.Table(
            f"_stage_{spec.name}",
            sa.MetaData(),
            *[sa.Column(c.name, c.type) for c in records.columns],
            prefixes=["TEMPORARY"],
        )
        stage.create(conn)
        try:
            self._stage(conn, stage, rows.select(names))
            key = spec.key
            s, r = stage.alias("s"), records.alias("r")
            joined = s.join(r, r.c[key] == s.c[key])

            # 1. Owner conflicts: a row for a record another node owns, without a migration releasing it.
            conflict = r.c._owner != s.c._owner
            migration = MIGRATION.get(spec.name)
            if migration:
                status, moved_to = migration
                conflict = sa.and_(
                    conflict,
                    sa.not_(sa.and_(r.c.status == status, sa.func.coalesce(r.c[moved_to], "") == s.c._owner)),
                )
            # A version this library keeps in history is a re-read (the lookback window), not a claim:
            # e.g. the old owner's moved_out record after the new owner took it over. It is unchanged.
            kept = history.alias("kept")
            known = sa.exists(
                sa.select(kept.c[key]).where(kept.c[key] == s.c[key], kept.c._hash == s.c._hash)
            )
            clash = conn.execute(
                sa.select(s, r.c._owner.label("_stored_owner"), known.label("_known"))
                .select_from(joined)
                .where(conflict)
            ).mappings()
            found = [dict(row) for row in clash]
            repeats = {c[key] for c in found if c.pop("_known")}
            if repeats:
                result.unchanged = conn.execute(stage.delete().where(stage.c[key].in_(repeats))).rowcount
            clashes = [c for c in found if c[key] not in repeats]
            if clashes:
                keys = [c[key] for c in clashes]
                conn.execute(stage.delete().where(stage.c[key].in_(keys)))
                failed = self.tables["failed_transfers"]
                # A conflict re-read in the lookback window is kept once (by edge, key and content hash).
                for c in clashes:
                    c["_digest"] = hashlib.sha256(
                        dumps([edge, c[key], ["OWNER_CONFLICT"], c["_hash"]]).encode()
                    ).hexdigest()
                open_digests = set(
                    conn.execute(
                        sa.select(failed.c.digest).where(
                            failed.c.edge == edge,
                            failed.c.state == "open",
                            failed.c.digest.in_([c["_digest"] for c in clashes]),
                        )
                    ).scalars()
                )
                new = [c for c in clashes if c["_digest"] not in open_digests]
                if new:
                    conn.execute(
                        failed.insert(),
                        [
                            {
                                "digest": c["_digest"],
                                "kind": "row",
                                "state": "open",
                                "edge": edge,
                                "dataset": spec.name,
                                "source": source,
                                "target": self.node,
                                "batch_id": batch_id,
                                "row_number": c["_leaf"] + 1,
                                "row_key": c[key],
                                "codes": "OWNER_CONFLICT",
                                "message_zh": f"记录属于节点 {c['_stored_owner']}，{c['_owner']} 无权更新（未办理迁移）",
                                "message_en": f"the record belongs to node {c['_stored_owner']}; "
                                f"{c['_owner']} may not update it (no migration)",
                                "payload": dumps(
                                    {k: v for k, v in c.items() if k not in ("_stored_owner", "_digest")}
                                ),
                                "attempts": 1,
                                "created_at": now,
                                "updated_at": now,
                            }
                            for c in new
                        ],
                    )
                result.conflicts = len(new)
                result.conflict_keys = keys

            # 2. Unchanged rows (same content hash) are no-ops.
            same = sa.select(r.c[key]).where(r.c[key] == stage.c[key], r.c._hash == stage.c._hash)
            result.unchanged += conn.execute(stage.delete().where(sa.exists(same))).rowcount

            # 3. Rows older than the stored version go to history only.
            stale_rows = sa.select(
                *[s.c[n] for n in names], sa.literal(now, _Stamp()), sa.literal("stale")
            ).select_from(joined)
            stale_rows = stale_rows.where(s.c.updated_at < r.c.updated_at)
            hist_cols = [*names, "_archived_at", "_reason"]
            # INSERT…SELECT: SQLAlchemy keeps its rowcount only when asked (psycopg otherwise gives -1).
            counted = {"preserve_rowcount": True}
            result.stale = conn.execute(
                history.insert().from_select(hist_cols, stale_rows), execution_options=counted
            ).rowcount
            if result.stale:
                older = sa.select(r.c[key]).where(
                    r.c[key] == stage.c[key], stage.c.updated_at < r.c.updated_at
                )
                conn.execute(stage.delete().where(sa.exists(older)))

            # 4. The versions about to be replaced go to history.
            reason = sa.case((r.c._owner != s.c._owner, "migrated"), else_="replaced")
            replaced = sa.select(*[r.c[n] for n in names], sa.literal(now, _Stamp()), reason).select_from(
                joined
            )
            result.updated = conn.execute(
                history.insert().from_select(hist_cols, replaced), execution_options=counted
            ).rowcount

            # 5. Upsert what is left.
            staged = conn.execute(sa.select(sa.func.count()).select_from(stage)).scalar_one()
            result.inserted = int(staged) - result.updated
            if staged:
                ins = (pg.insert if self.dialect == "postgresql" else sq.insert)(records)
                # Stamped inside the transaction (the load sequence number came with the rows).
                select = sa.select(
                    *[sa.literal(now, _Stamp()).label(n) if n == "_synced_at" else stage.c[n] for n in names]
                )
                if self.dialect == "sqlite":
                    select = select.where(
                        sa.true()
                    )  # SQLite needs a WHERE to parse INSERT…SELECT…ON CONFLICT
                stmt = ins.from_select(names, select)
                stmt = stmt.on_conflict_do_update(
                    index_elements=[key], set_={n: stmt.excluded[n] for n in names if n != key}
                )
                conn.execute(stmt)
        finally:
            stage.drop(conn)

    def _stage(self, conn: sa.Connection, stage: sa.Table, rows: pa.Table) -> None:
        """Bulk-write the batch into the staging table: COPY on PostgreSQL, executemany elsewhere."""
        names = rows.column_names
        if self.dialect == "postgresql":
            buf = io.BytesIO()
            for i, col in enumerate(rows.columns):
                if pa.types.is_timestamp(col.type):  # Arrow's CSV writer formats times slowly
                    rows = rows.set_column(i, rows.column_names[i], _utc_text(col, "Z"))
            pacsv.write_csv(rows, buf, pacsv.WriteOptions(include_header=False, batch_size=65_536))
            cols = ", ".join(f'"{n}"' for n in names)
            raw = conn.connection.driver_connection
            assert raw is not None
            sql = f'COPY "{stage.name}" ({cols}) FROM STDIN (FORMAT csv)'
            with raw.cursor() as cur, cur.copy(sql) as copy:
                view = buf.getbuffer()
                for start in range(0, len(view), 1 << 20):
                    copy.write(view[start : start + (1 << 20)])
            return
        placeholders = ", ".join("?" for _ in names)
        sql = f'INSERT INTO "{stage.name}" ({", ".join(names)}) VALUES ({placeholders})'
        raw = conn.connection.driver_connection
        assert raw is not None
        cur = raw.cursor()
        try:
            for chunk in _row_chunks(_sqlite_columns(rows)):
                cur.executemany(sql, chunk)
        finally:
            cur.close()


def _manifest_key_id(manifest_json: str) -> str | None:
    try:
        kid = json.loads(manifest_json).get("key_id")
    except (ValueError, AttributeError):
        return None
    return kid if isinstance(kid, str) else None


def _failure_digest(edge: str, row: FailedRow) -> str:
    return hashlib.sha256(dumps([edge, row.key, sorted(row.codes), row.payload]).encode()).hexdigest()


_TS = pa.timestamp("us", tz="UTC")
_UNIQUE_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)
try:
    from psycopg.errors import UniqueViolation

    _UNIQUE_ERRORS += (UniqueViolation,)
except ImportError:  # pragma: no cover - psycopg is a dependency; SQLite alone still works
    pass


def _utc_text(col: pa.ChunkedArray | pa.Array, suffix: str) -> pa.ChunkedArray | pa.Array:
    """UTC times as ``YYYY-MM-DD HH:MM:SS.ffffff`` + ``suffix`` (a cast: far faster than strftime).

    >>> import datetime as dt
    >>> _utc_text(pa.array([dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC), None], _TS), "Z").to_pylist()
    ['2026-01-02 03:04:05.000000Z', None]
    """
    text = pc.cast(pc.cast(col, _TS).cast(pa.timestamp("us")), pa.string())
    return pc.binary_join_element_wise(text, suffix, "") if suffix else text


def _sqlite_columns(rows: pa.Table) -> list[list[Any]]:
    """Columns as Python lists in SQLite's physical form (dates, times and decimals as ISO text)."""
    out = []
    for col in rows.columns:
        t = col.type
        if pa.types.is_timestamp(t):
            col = _utc_text(col, "")
        elif pa.types.is_date(t) or pa.types.is_decimal(t):
            col = pc.cast(col, pa.string())
        out.append(col.to_pylist())
    return out


def _row_chunks(columns: list[list[Any]], size: int = 65_536) -> Iterator[list[tuple[Any, ...]]]:
    n = len(columns[0]) if columns else 0
    for start in range(0, n, size):
        yield list(zip(*(c[start : start + size] for c in columns), strict=True))


def _private_database(path: Path) -> None:
    """Create a SQLite library file readable by its owner only (SQLite gives its -wal and -shm files
    the database file's mode), and tighten an existing one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        os.chmod(path, 0o600)
    except OSError:
        pass  # read-only places fail later with a coded error when the library is opened


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    dbapi_conn.isolation_level = None  # transactions are begun explicitly (see _sqlite_begin)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=60000")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    # Take the write lock at the start, so two loads into one library queue instead of failing midway.
    conn.exec_driver_sql("BEGIN IMMEDIATE")
