"""The set-based load of one batch, inside the load's transaction.

Most rows of most batches are new records: they go straight into the table (COPY on PostgreSQL) under
a savepoint. A batch with a key already stored takes the set-based path instead: stage the rows, set
aside owner conflicts, drop unchanged rows, keep older versions in history, upsert the rest.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import sqlite3
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.dialects import sqlite as sq

from schemas.contract import Dataset
from tongban.core.store.rows import LoadResult, dumps, failure_row
from tongban.core.store.sealed import open_row
from tongban.core.store.tables import MIGRATION, Stamp

if TYPE_CHECKING:
    from tongban.core.store.vault import Keyring

__all__ = ["Merge"]

_TS = pa.timestamp("us", tz="UTC")


_UNIQUE_ERRORS: tuple[type[Exception], ...] = (sqlite3.IntegrityError,)
try:
    from psycopg.errors import UniqueViolation

    _UNIQUE_ERRORS += (UniqueViolation,)
except ImportError:  # pragma: no cover - psycopg is a dependency; SQLite alone still works
    pass


#: Rows of a batch rendered as CSV and sent to COPY at a time.
_COPY_ROWS = 16_384


class Merge:
    """The set-based load, a part of :class:`~tongban.core.store.library.Library`."""

    node: str
    dialect: str
    tables: dict[str, sa.Table]

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
        ring: Keyring,
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
                            failure_row(
                                kind="row",
                                edge=edge,
                                dataset=spec.name,
                                source=source,
                                target=self.node,
                                codes=["OWNER_CONFLICT"],
                                message_zh=f"记录属于节点 {c['_stored_owner']}，{c['_owner']} 无权更新（未办理迁移）",
                                message_en=f"the record belongs to node {c['_stored_owner']}; "
                                f"{c['_owner']} may not update it (no migration)",
                                where=None,
                                batch_id=batch_id,
                                row_number=c["_leaf"] + 1,
                                row_key=c[key],
                                payload=open_row(
                                    ring,
                                    spec.name,
                                    {k: v for k, v in c.items() if k not in ("_stored_owner", "_digest")},
                                    where=f"{edge} {batch_id}",
                                ),
                                digest=c["_digest"],
                                now=now,
                                seal=ring,
                            )
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
                *[s.c[n] for n in names], sa.literal(now, Stamp()), sa.literal("stale")
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
            replaced = sa.select(*[r.c[n] for n in names], sa.literal(now, Stamp()), reason).select_from(
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
                    *[sa.literal(now, Stamp()).label(n) if n == "_synced_at" else stage.c[n] for n in names]
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
            for i, col in enumerate(rows.columns):
                if pa.types.is_timestamp(col.type):  # Arrow's CSV writer formats times slowly
                    rows = rows.set_column(i, rows.column_names[i], _utc_text(col, "Z"))
            cols = ", ".join(f'"{n}"' for n in names)
            raw = conn.connection.driver_connection
            assert raw is not None
            sql = f'COPY "{stage.name}" ({cols}) FROM STDIN (FORMAT csv)'
            options = pacsv.WriteOptions(include_header=False, batch_size=_COPY_ROWS)
            # Rendered and sent a slice at a time: the server parses one slice while the next renders,
            # and the batch's CSV text is never held whole.
            with raw.cursor() as cur, cur.copy(sql) as copy:
                for start in range(0, rows.num_rows, _COPY_ROWS):
                    buf = io.BytesIO()
                    pacsv.write_csv(rows.slice(start, _COPY_ROWS), buf, options)
                    copy.write(buf.getbuffer())
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
