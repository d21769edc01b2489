"""The library's tables: records and history per dataset, the batch ledger, failed transfers, sync state.

Physical types: PostgreSQL gets native DATE, TIMESTAMPTZ and NUMERIC; SQLite keeps those as ISO text
(timestamps as naive UTC ``YYYY-MM-DD HH:MM:SS.ffffff``), which sorts and compares correctly.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

import schemas
from schemas.contract import Dataset, Kind
from schemas.errors import TongbanError
from tongban.core.store.vault import INDEXED, SEALED, index_column

__all__ = [
    "LOOKUP_INDEXES",
    "METADATA",
    "META_COLUMNS",
    "MIGRATION",
    "SCHEMA_VERSION",
    "SEQ",
    "TABLES",
    "Stamp",
    "StoreError",
]

SCHEMA_VERSION = 6


#: Columns a batch's rows carry beside their dataset fields (not part of the content hash).
META_COLUMNS = ("_owner", "_hash", "_batch", "_leaf", "_source", "_flags", "_synced_at")


#: The load sequence number a record got when it was last written: the library's commit order.
SEQ = "_seq"


#: How a dataset's records move between owners: (status that releases a record, field naming the new owner).
MIGRATION = {"population": ("moved_out", "moved_to"), "business": ("moved_out", "moved_to")}


class StoreError(TongbanError):
    """A library that cannot be opened or written."""


class Stamp(sa.types.TypeDecorator[_dt.datetime]):
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
    if name in SEALED.get(dataset.name, ()):
        return sa.Text()  # a sealed envelope (vault.py), whatever the field's own type
    spec = dataset.field(name)
    if spec.kind is Kind.DATE:
        return sa.Date().with_variant(sa.Text(), "sqlite")
    if spec.kind is Kind.TIMESTAMP:
        return Stamp()
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
    # The keyed hash of each sealed field verification looks up (vault.py).
    cols += [sa.Column(index_column(name), sa.String(64)) for name in INDEXED.get(dataset.name, ())]
    cols += [
        sa.Column("_owner", sa.String(6), nullable=False),
        sa.Column("_hash", sa.String(64), nullable=False),
        sa.Column("_batch", sa.String(64), nullable=False),
        sa.Column("_leaf", sa.Integer, nullable=False),
        sa.Column("_source", sa.String(120), nullable=False),
        sa.Column("_flags", sa.Text),
        sa.Column("_synced_at", Stamp(), nullable=False),
        sa.Column(SEQ, sa.BigInteger, nullable=False),
    ]
    return cols


#: Indexes verification looks records up by, beside the key (created for older libraries by step 3).
# A license's holder code is sealed (encryption at rest): it is found by its keyed hash instead
# (``vault.INDEXED``), so only the plain license number has a plain index.
LOOKUP_INDEXES = {"license": {"ix_license_number": "license_number"}}


def _lookup_indexes(dataset: str) -> list[sa.Index]:
    return [sa.Index(name, column) for name, column in LOOKUP_INDEXES.get(dataset, {}).items()]


def _define(metadata: sa.MetaData) -> dict[str, sa.Table]:
    tables: dict[str, sa.Table] = {}
    for name, dataset in schemas.DATASETS.items():
        tables[name] = sa.Table(
            name,
            metadata,
            *_record_columns(dataset, key=True),
            # A parent library reads what changed by (load sequence, key): exact, in commit order. The
            # index holds the sequence alone: a load appends to its end (one number per batch), where
            # (sequence, key) cost as much as a second primary key; both databases sort the rows of
            # one load number by key as they stream (an incremental sort). Besides it only the indexes
            # verification looks records up by: each costs load time.
            sa.Index(f"ix_{name}_seq", SEQ),
            *[sa.Index(f"ix_{name}{index_column(f)}", index_column(f)) for f in INDEXED.get(name, ())],
            *_lookup_indexes(name),
        )
        tables[f"{name}_history"] = sa.Table(
            f"{name}_history",
            metadata,
            sa.Column("_id", sa.Integer, primary_key=True, autoincrement=True),
            *_record_columns(dataset, key=False),
            sa.Column("_archived_at", Stamp(), nullable=False),
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
        sa.Column("loaded_at", Stamp(), nullable=False),
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
        sa.Column("created_at", Stamp(), nullable=False),
        sa.Column("updated_at", Stamp(), nullable=False),
        # Version 5 (operator review): every change bumps ``version`` (two operators at once: one wins);
        # ``pending`` is the queued action (retry, or resubmit with the edited row) the edge's next run
        # applies; ``closed_at`` / ``closed_by`` say when and by whom (or what) it was resolved or discarded.
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("pending", sa.Text),
        sa.Column("closed_at", Stamp()),
        sa.Column("closed_by", sa.String(120)),
        sa.Index("ix_failed_state", "state", "dataset"),
        sa.Index("ix_failed_digest", "edge", "digest"),
        sa.Index("ix_failed_list", "state", "created_at", "id"),
        sa.Index("ix_failed_key", "edge", "state", "row_key"),  # waiting failures of an edge, by key
    )
    tables["failed_actions"] = sa.Table(
        "failed_actions",
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("failure_id", sa.Integer, nullable=False, index=True),
        sa.Column("at", Stamp(), nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),  # an operator, or ``sync`` / ``system``
        sa.Column("action", sa.String(24), nullable=False),
        sa.Column("state_from", sa.String(12)),
        sa.Column("state_to", sa.String(12)),
        sa.Column("reason", sa.Text),
        sa.Column("detail", sa.Text),  # JSON: batch id, codes, fields edited (names only, no values)
    )
    tables["operators"] = sa.Table(
        "operators",
        metadata,
        sa.Column("username", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("password", sa.Text, nullable=False),  # scrypt hash, never the password
        sa.Column("scopes", sa.Text, nullable=False),  # space-separated: review, review:reveal
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", Stamp(), nullable=False),
        sa.Column("created_by", sa.String(120), nullable=False),
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
        sa.Column("last_success", Stamp()),
        sa.Column("last_attempt", Stamp()),
        sa.Column("last_error", sa.Text),
    )
    # One hash-chained log of every verification request and operator action (tongban.core.audit);
    # a new table, so create_all adds it to an older library without a migration step.
    tables["audit_log"] = sa.Table(
        "audit_log",
        metadata,
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(200)),
        sa.Column("purpose", sa.String(64)),
        sa.Column("dataset", sa.String(32)),
        sa.Column("claim_digest", sa.String(64)),
        sa.Column("result", sa.String(32)),
        sa.Column("reason", sa.Text),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Index("ix_audit_action", "action", "seq"),
    )
    tables["data_keys"] = sa.Table(
        "data_keys",
        metadata,
        sa.Column("key_id", sa.String(16), primary_key=True),
        sa.Column("purpose", sa.String(8), nullable=False),  # data | index
        sa.Column("state", sa.String(8), nullable=False),  # active | retiring | index
        sa.Column("wrapped", sa.Text, nullable=False),  # AES-GCM under the node's master key
        sa.Column("master_check", sa.String(32), nullable=False),
        sa.Column("created_at", Stamp(), nullable=False),
    )
    # Every leaf hash of every loaded batch (32 bytes each, in batch order): a record's Merkle path.
    tables["batch_leaves"] = sa.Table(
        "batch_leaves",
        metadata,
        sa.Column("batch_id", sa.String(64), primary_key=True),
        sa.Column("leaves", sa.LargeBinary, nullable=False),
    )
    # Remote offices that verify against this node: the token only as its SHA-256.
    tables["offices"] = sa.Table(
        "offices",
        metadata,
        sa.Column("code", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),  # JSON: datasets, divisions, search, reveal
        sa.Column("rate_limit", sa.Integer, nullable=False),  # requests per minute
        sa.Column("created_at", Stamp(), nullable=False),
        sa.Column("rotated_at", Stamp()),
        sa.Column("revoked_at", Stamp()),
        sa.Column("revoked_reason", sa.Text),
    )
    # Signed checkpoints over the audit log's hash chain (node key): a rewritten chain no longer matches.
    tables["audit_checkpoints"] = sa.Table(
        "audit_checkpoints",
        metadata,
        sa.Column("seq", sa.BigInteger, primary_key=True),  # the last audit entry it covers
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("node", sa.String(120), nullable=False),
        sa.Column("at", Stamp(), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
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
