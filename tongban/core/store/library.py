"""One node's library: records with history, the batch ledger, failed transfers and sync state.

One code path on SQLAlchemy 2 Core for SQLite (the embedded default) and PostgreSQL. Loading a batch is
one transaction (:meth:`Library.load_batch`): the set-based merge, rejected rows as failed transfers,
the ledger entry, the load sequence number and the edge's cursor — so a crash at any point leaves
either all of it or none of it.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

import schemas
from connectors.sql import mask_url
from tongban.core.store import sealed
from tongban.core.store.failures import ACTIVE, Failures
from tongban.core.store.merge import Merge
from tongban.core.store.migrations import migrate
from tongban.core.store.rows import (
    FailedRow,
    LoadResult,
    failure_digest,
    failure_row,
    manifest_key_id,
    utcnow,
)
from tongban.core.store.tables import SEQ, TABLES, StoreError
from tongban.core.store.vault import Keyring, Vault, WrappedKey, new_keys, unwrap_all

__all__ = ["Library"]


class Library(Merge, Failures):
    """One node's library, reached through a SQLAlchemy URL."""

    def __init__(self, url: str, node: str = "", vault: Vault | None = None) -> None:
        self.url = url
        self.node = node
        self.vault = vault or Vault(node)  # without a folder: the environment's master key only
        self._ring: Keyring | None = None
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
        """Create or upgrade the schema, make the library's data keys on first use and seal what an
        older library kept in plain (schema step 6, resumable); StoreError LIBRARY_UNREACHABLE when the
        database is down, VaultError MASTER_KEY_* when the node's master key is missing or wrong."""
        try:
            version = migrate(self.engine)
            self.keyring()
            if self.meta("seal_pending"):
                from tongban.core.store.rekey import rekey

                rekey(self)
            return version
        except sa.exc.OperationalError as exc:
            raise self._unreachable(exc) from None

    # -- encryption at rest ---------------------------------------------------------------------

    def meta(self, name: str, conn: sa.Connection | None = None) -> str | None:
        """A value of the library's ``tongban_meta`` table."""
        meta = self.tables["tongban_meta"]
        stmt = sa.select(meta.c.value).where(meta.c.name == name)
        if conn is not None:
            return conn.execute(stmt).scalar()
        with self.connect() as c:
            return c.execute(stmt).scalar()

    def set_meta(self, conn: sa.Connection, name: str, value: str | None) -> None:
        meta = self.tables["tongban_meta"]
        conn.execute(meta.delete().where(meta.c.name == name))
        if value is not None:
            conn.execute(meta.insert().values(name=name, value=value))

    def _wrapped(self, conn: sa.Connection) -> list[WrappedKey]:
        t = self.tables["data_keys"]
        rows = conn.execute(sa.select(t).order_by(t.c.created_at, t.c.key_id)).mappings()
        return [
            WrappedKey(r["key_id"], r["purpose"], r["state"], r["wrapped"], r["master_check"]) for r in rows
        ]

    def add_keys(self, conn: sa.Connection, keys: list[WrappedKey]) -> None:
        t = self.tables["data_keys"]
        now = utcnow()
        conn.execute(
            t.insert(),
            [
                {
                    "key_id": k.key_id,
                    "purpose": k.purpose,
                    "state": k.state,
                    "wrapped": k.wrapped,
                    "master_check": k.check,
                    "created_at": now,
                }
                for k in keys
            ],
        )

    def keyring(self, conn: sa.Connection | None = None, *, reload: bool = False) -> Keyring:
        """The library's unwrapped data and index keys, made on first use.

        Given ``conn`` (a load's transaction), the active data key is read in it (shared lock on
        PostgreSQL), so a rotation committed meanwhile is followed and never raced.
        """
        t = self.tables["data_keys"]
        if conn is not None and self._ring is not None and not reload:
            active = conn.execute(
                sa.select(t.c.key_id).where(t.c.state == "active").with_for_update(read=True)
            ).scalar()
            if active == self._ring.active:
                return self._ring
            reload = True
        if self._ring is not None and not reload:
            return self._ring
        master = self.vault.master()
        where = repr(self)
        if conn is not None:
            rows = self._wrapped(conn)
            lenient = bool(self.meta("seal_pending", conn))
        else:
            with self.engine.begin() as c:
                rows = self._wrapped(c)
                if not rows:
                    rows = new_keys(master)
                    self.add_keys(c, rows)
                lenient = bool(self.meta("seal_pending", c))
        self._ring = unwrap_all(master, rows, where, lenient=lenient)
        return self._ring

    def open_row(self, dataset: str, row: dict[str, Any]) -> dict[str, Any]:
        """A record as read from a table, its sealed fields opened."""
        return sealed.open_row(self.keyring(), dataset, row, where=repr(self))

    def open_batch(self, dataset: str, batch: pa.RecordBatch) -> pa.RecordBatch:
        """A record batch read raw from this library, its sealed fields opened."""
        return sealed.open_batch(self.keyring(), dataset, batch, where=repr(self))

    def seal_payload(self, payload: str | None) -> str | None:
        return sealed.seal_payload(self.keyring(), payload)

    def checkpoint(self) -> None:
        """SQLite: fold the write-ahead log into the file and empty it (old page images go with it)."""
        if self.dialect != "sqlite":
            return
        raw = self.engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.OperationalError:
            pass  # a reader holds the log: it is folded in at the next checkpoint
        finally:
            raw.close()

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
        self._touch(edge, dataset, source, last_attempt=utcnow(), last_error=error)

    def note_success(self, edge: str, dataset: str, source: str) -> None:
        """Record a run that found nothing new: the edge is current as of now."""
        now = utcnow()
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
        now = utcnow()
        ring = self.keyring()

        def write(c: sa.Connection) -> int:
            same = None
            if kind == "run":
                same = c.execute(
                    sa.select(t.c.id).where(t.c.edge == edge, t.c.kind == "run", t.c.state.in_(ACTIVE))
                ).first()
            elif kind == "file" and payload and payload.get("name"):
                # The same file quarantined again (a retry that failed, or dropped again unchanged).
                rows = c.execute(
                    sa.select(t.c.id, t.c.payload).where(
                        t.c.edge == edge, t.c.kind == "file", t.c.state.in_(ACTIVE)
                    )
                ).all()
                same = next((r for r in rows if self.payload_name(r[0], r[1], ring) == payload["name"]), None)
            if same:
                self.reopen(
                    c,
                    int(same[0]),
                    now=now,
                    codes=codes,
                    message_zh=message_zh,
                    message_en=message_en,
                    payload=payload,
                )
                c.execute(t.update().where(t.c.id == same[0]).values(where=where))
                return int(same[0])
            row = failure_row(
                kind=kind,
                edge=edge,
                dataset=dataset,
                source=source,
                target=self.node,
                codes=codes,
                message_zh=message_zh,
                message_en=message_en,
                where=where,
                batch_id=batch_id,
                payload=payload,
                now=now,
            )
            row["payload"] = sealed.seal_payload(ring, row["payload"])
            res = c.execute(t.insert().values(**row))
            return int(res.inserted_primary_key[0])

        if conn is not None:
            return write(conn)
        with self.engine.begin() as c:
            return write(c)

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
            rows = [dict(r) for r in c.execute(stmt).mappings()]
        return [self.open_failure(r) for r in rows]

    def failure(self, failure_id: int) -> dict[str, Any] | None:
        t = self.tables["failed_transfers"]
        with self.connect() as c:
            row = c.execute(sa.select(t).where(t.c.id == failure_id)).mappings().first()
        return self.open_failure(dict(row)) if row else None

    def failure_counts(self) -> dict[str, int]:
        """Failed transfers still waiting per edge: open, or queued for the edge's next run."""
        t = self.tables["failed_transfers"]
        stmt = sa.select(t.c.edge, sa.func.count()).where(t.c.state.in_(ACTIVE)).group_by(t.c.edge)
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
        return self.open_row(dataset, dict(row)) if row else None

    def history(self, dataset: str, key: str) -> list[dict[str, Any]]:
        t = self.tables[f"{dataset}_history"]
        pk = schemas.get(dataset).key
        with self.connect() as c:
            rows = [
                dict(r) for r in c.execute(sa.select(t).where(t.c[pk] == key).order_by(t.c._id)).mappings()
            ]
        return [self.open_row(dataset, r) for r in rows]

    def loaded(self, batch_id: str, edge: str | None = None, manifest_hash: str | None = None) -> bool:
        """Whether the ledger holds this batch (a replay is a no-op) — of this edge and with this
        manifest hash, when given: another edge's batch id or another manifest under it is no replay."""
        t = self.tables["batches"]
        stmt = sa.select(t.c.batch_id).where(t.c.batch_id == batch_id)
        if edge is not None:
            stmt = stmt.where(t.c.edge == edge)
        if manifest_hash is not None:
            stmt = stmt.where(t.c.manifest_hash == manifest_hash)
        with self.connect() as c:
            return c.execute(stmt).first() is not None

    def last_manifest(self, edge: str) -> dict[str, Any] | None:
        """The manifest of the edge's last loaded batch, or None before its first."""
        state = self.state(edge)
        if not state or not state.get("last_batch_id"):
            return None
        t = self.tables["batches"]
        with self.connect() as c:
            text = c.execute(sa.select(t.c.manifest).where(t.c.batch_id == state["last_batch_id"])).scalar()
        try:
            return json.loads(text) if text else None
        except ValueError:
            return None

    # -- the pinned root key --------------------------------------------------------------------

    def pinned_root(self) -> str | None:
        """The root's public key (base64url) this library trusts trust lists from, pinned at init."""
        meta = self.tables["tongban_meta"]
        with self.connect() as c:
            value = c.execute(sa.select(meta.c.value).where(meta.c.name == "trust_root_key")).scalar()
        return str(value) if value else None

    def pin_root(self, public_key: str, *, replace: bool = False) -> bool:
        """Pin the root's public key (base64url); an existing pin is kept unless ``replace``.

        Returns whether the pin changed. Replacing is for a root key rotation the operator makes.
        """
        meta = self.tables["tongban_meta"]
        with self.engine.begin() as c:
            current = c.execute(sa.select(meta.c.value).where(meta.c.name == "trust_root_key")).scalar()
            if current == public_key or (current and not replace):
                return False
            if current:
                c.execute(meta.update().where(meta.c.name == "trust_root_key").values(value=public_key))
            else:
                c.execute(meta.insert().values(name="trust_root_key", value=public_key))
        return True

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
        presealed: tuple[str, pa.Table] | None = None,
    ) -> LoadResult:
        """Apply one verified batch in one transaction (see the module docstring).

        ``presealed``: the same rows already sealed, and the id of the data key that sealed them (an
        overlapped run seals on its checker thread); used when that key is still the active one inside
        this transaction, else the rows are sealed here under the key that is.

        ``rows`` holds the dataset's fields plus the :data:`META_COLUMNS`; ``prev_hash`` must still be
        the edge's last manifest hash when the transaction starts, else StoreError BATCH_CHAIN (another
        run loaded first) and nothing changes.
        """
        spec = schemas.get(dataset)
        result = LoadResult(batch_id=batch_id, rows=rows.num_rows, rejected=len(rejected))
        ledger = self.tables["batches"]
        self.keyring()  # unwrapped before the write transaction begins
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
            now = utcnow()
            seq = self.next_seq(conn)
            ring = self.keyring(conn)
            if rows.num_rows:
                if (
                    presealed is not None
                    and presealed[0] == ring.active
                    and presealed[1].num_rows == rows.num_rows
                ):
                    rows = presealed[1]
                else:
                    rows = sealed.seal_table(ring, dataset, rows)
                stamp = pa.repeat(pa.scalar(seq, pa.int64()), rows.num_rows)
                if SEQ in rows.column_names:
                    rows = rows.set_column(rows.column_names.index(SEQ), SEQ, stamp)
                else:
                    rows = rows.append_column(SEQ, stamp)
                self._apply(
                    conn, spec, rows, result, now, edge=edge, source=source, batch_id=batch_id, ring=ring
                )
                # The same keys arrived clean from the same source: their failures resolve themselves.
                self.resolve_arrived(
                    conn, edge, rows.column(spec.key), batch_id=batch_id, now=now, skip=result.conflict_keys
                )
            failed = self.tables["failed_transfers"]
            rejected = self._new_failures(conn, edge, rejected)
            result.rejected = len(rejected)
            if rejected:
                conn.execute(
                    failed.insert(),
                    [
                        failure_row(
                            kind="row",
                            edge=edge,
                            dataset=dataset,
                            source=source,
                            target=self.node,
                            codes=r.codes,
                            message_zh=r.message_zh,
                            message_en=r.message_en,
                            where=r.where,
                            batch_id=batch_id,
                            row_number=r.row_number,
                            row_key=r.key,
                            payload=r.payload,
                            digest=failure_digest(edge, r, ring),
                            now=now,
                            seal=ring,
                        )
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
                    key_id=manifest_key_id(manifest_json),
                )
            )
            conn.execute(
                self.tables["batch_leaves"].insert().values(batch_id=batch_id, leaves=_leaf_bytes(rows))
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


def _leaf_bytes(rows: pa.Table) -> bytes:
    """The batch's leaf hashes in leaf order, 32 bytes each (a record's Merkle path is built from them).

    >>> t = pa.table({"_hash": ["bb" * 32, "aa" * 32], "_leaf": pa.array([1, 0], pa.int32())})
    >>> _leaf_bytes(t) == bytes.fromhex("aa" * 32 + "bb" * 32)
    True
    """
    if not rows.num_rows or "_hash" not in rows.column_names:
        return b""
    hexes = rows.column("_hash").combine_chunks()
    if "_leaf" in rows.column_names:
        order = rows.column("_leaf").to_numpy()
        if not np.array_equal(order, np.arange(len(order))):
            hexes = hexes.take(pa.array(np.argsort(order, kind="stable")))
    if hexes.null_count == 0 and pa.types.is_string(hexes.type):
        # The hex text of every leaf lies end to end in the array's data buffer: one conversion.
        offsets = np.frombuffer(hexes.buffers()[1], dtype=np.int32)[
            hexes.offset : hexes.offset + len(hexes) + 1
        ]
        if bool((np.diff(offsets) == 64).all()):
            data = hexes.buffers()[2]
            assert data is not None
            return bytes.fromhex(data[int(offsets[0]) : int(offsets[-1])].to_pybytes().decode("ascii"))
    return bytes.fromhex("".join(hexes.to_pylist()))


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
    # Space freed by an update or delete is zeroed: a value re-sealed or a row replaced leaves no old
    # bytes behind in the file (encryption at rest).
    cur.execute("PRAGMA secure_delete=ON")
    cur.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    # Take the write lock at the start, so two loads into one library queue instead of failing midway.
    conn.exec_driver_sql("BEGIN IMMEDIATE")
