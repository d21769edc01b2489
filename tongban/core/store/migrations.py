"""Creating a library's schema, and bringing an older one to :data:`SCHEMA_VERSION`, from one place."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

import schemas
from connectors.sql import mask_url
from tongban.core.store.tables import LOOKUP_INDEXES, METADATA, SCHEMA_VERSION, SEQ, TABLES, StoreError
from tongban.core.store.vault import INDEXED, SEALED, index_column

__all__ = ["migrate"]


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


def _migrate_3(conn: sa.Connection) -> None:
    """Version 3 (verification): the indexes licenses are looked up by (number, holder). The new tables
    (batch leaves, offices, audit checkpoints) are created by ``create_all``."""
    for dataset, indexes in LOOKUP_INDEXES.items():
        for name, column in indexes.items():
            conn.exec_driver_sql(f'CREATE INDEX IF NOT EXISTS {name} ON "{dataset}" ("{column}")')


def _migrate_4(conn: sa.Connection) -> None:
    """Version 4: records tables keep only the indexes something reads by: the primary key and the
    load sequence number alone (a load appends to its end; ``(_seq, key)`` cost as much to maintain
    as a second primary key). The ``_owner`` index only cost load time: owners are filtered while
    reading by ``_seq``, never looked up alone."""
    for name in schemas.DATASETS:
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS ix_{name}_owner")
        conn.exec_driver_sql(f"DROP INDEX IF EXISTS ix_{name}_seq")
        conn.exec_driver_sql(f'CREATE INDEX ix_{name}_seq ON "{name}" ("{SEQ}")')


def _migrate_5(conn: sa.Connection) -> None:
    """Version 5 (operator review): failed transfers carry a version (optimistic concurrency), the
    queued action, and when and by whom they were closed; indexes for paging and self-resolving."""
    stamp = "TEXT" if conn.dialect.name == "sqlite" else "TIMESTAMP WITH TIME ZONE"
    inspector = sa.inspect(conn)
    have = {c["name"] for c in inspector.get_columns("failed_transfers")}
    for name, ddl in (
        ("version", "version INTEGER NOT NULL DEFAULT 1"),
        ("pending", "pending TEXT"),
        ("closed_at", f"closed_at {stamp}"),
        ("closed_by", "closed_by VARCHAR(120)"),
    ):
        if name not in have:  # (a library taken back by hand may keep some)
            conn.exec_driver_sql(f"ALTER TABLE failed_transfers ADD COLUMN {ddl}")
    indexes = {ix["name"] for ix in inspector.get_indexes("failed_transfers")}
    for name, cols in (
        ("ix_failed_list", "state, created_at, id"),
        ("ix_failed_key", "edge, state, row_key"),
    ):
        if name not in indexes:
            conn.exec_driver_sql(f"CREATE INDEX {name} ON failed_transfers ({cols})")


def _migrate_6(conn: sa.Connection) -> None:
    """Version 6 (encryption at rest): sealed fields become text columns holding envelopes, indexed
    fields get their keyed-hash column, and the library is marked ``seal_pending``: opening it with
    its node's master key (:meth:`Library.migrate`) seals the plain rows in resumable chunks."""
    inspector = sa.inspect(conn)
    for name in schemas.DATASETS:
        for table in (name, f"{name}_history"):
            have = {c["name"] for c in inspector.get_columns(table)}
            for field in INDEXED.get(name, ()):
                if index_column(field) not in have:
                    conn.exec_driver_sql(
                        f'ALTER TABLE "{table}" ADD COLUMN "{index_column(field)}" VARCHAR(64)'
                    )
            if conn.dialect.name == "postgresql":
                for field in SEALED.get(name, ()):
                    conn.exec_driver_sql(
                        f'ALTER TABLE "{table}" ALTER COLUMN "{field}" TYPE TEXT USING "{field}"::text'
                    )
        for field in INDEXED.get(name, ()):
            column = index_column(field)
            conn.exec_driver_sql(f'CREATE INDEX IF NOT EXISTS "ix_{name}{column}" ON "{name}" ("{column}")')
    meta = TABLES["tongban_meta"]
    conn.execute(meta.delete().where(meta.c.name == "seal_pending"))
    conn.execute(meta.insert().values(name="seal_pending", value="1"))


# Ordered migrations from one version to the next; a new library is created whole at the latest.
# Each step touches only what its own version added, so steps apply in order whatever else changed.
_MIGRATIONS: dict[int, Any] = {2: _migrate_2, 3: _migrate_3, 4: _migrate_4, 5: _migrate_5, 6: _migrate_6}


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
            if step in _MIGRATIONS:
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
