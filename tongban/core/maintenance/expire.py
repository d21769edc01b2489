"""Expire licenses whose ``valid_until`` has passed: status ``01`` 有效 becomes ``05`` 失效.

The change is made in the owner's library (a county's), through the library's own load path: the
expired versions are a batch sealed and signed with the node's key (edge ``license.expire.<node>``,
chained like any edge), loaded in one transaction by :meth:`~tongban.core.store.Library.load_batch`.
So each record gets a new load sequence number (the parent's next sync ships it), a new leaf hash,
and its previous version (``01``) in history with reason ``replaced``: the owner's history shows the
status change and when it happened (``updated_at`` of the new version).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np
import pyarrow as pa
import sqlalchemy as sa

import schemas
from tongban.core import logs
from tongban.core.config import Exchange
from tongban.core.engine.arrowio import hex_column
from tongban.core.engine.libraries import Libraries, using
from tongban.core.engine.sealing import hash_columns
from tongban.core.maintenance.records import content_hashes, to_table
from tongban.core.store import TABLES, Library
from tongban.core.trust import KeyStore
from tongban.core.trust.manifest import schema_fingerprint, seal
from tongban.core.trust.merkle import merkle_root, row_hashes

__all__ = ["EXPIRED", "VALID", "expire_licenses"]

VALID, EXPIRED = "01", "05"
DATASET = "license"

_log = logs.get("tongban.maintenance")


def _edge(node: str) -> str:
    return f"{DATASET}.expire.{node}"


def expire_licenses(
    ex: Exchange,
    node: str,
    *,
    today: _dt.date | None = None,
    now: _dt.datetime | None = None,
    libs: Libraries | None = None,
) -> dict[str, Any]:
    """Expire the node's own valid licenses whose ``valid_until`` is before ``today``; the counts."""
    today = today or _dt.date.today()
    now = now or _dt.datetime.now(_dt.UTC)
    spec = schemas.get(DATASET)
    t = TABLES[DATASET]
    result = {"node": node, "expired": 0, "batches": 0, "skipped": 0}
    with using(ex, libs) as opened:
        lib = opened.get(node)
        lib.migrate()
        stmt = (
            sa.select(*[t.c[n] for n in (*spec.names, "_owner", "_hash")])
            .where(
                t.c._owner == node,
                t.c.status == VALID,
                t.c.valid_until.is_not(None),
                t.c.valid_until < (today.isoformat() if lib.dialect == "sqlite" else today),
            )
            .order_by(t.c[spec.key])
        )
        with lib.connect() as conn:
            found = [lib.open_row(DATASET, dict(r)) for r in conn.execute(stmt).mappings()]
        for start in range(0, len(found), ex.batch_size):
            chunk = found[start : start + ex.batch_size]
            table = to_table(DATASET, chunk)
            schema = table.schema
            # The record as stored must hash to its stored leaf hash, or we are not changing what we read.
            stored = content_hashes(DATASET, table)
            same = np.array([a == r["_hash"] for a, r in zip(stored, chunk, strict=True)])
            result["skipped"] += int((~same).sum())
            table = table.filter(pa.array(same))
            if not table.num_rows:
                continue
            n = table.num_rows
            table = table.set_column(
                schema.get_field_index("status"), schema.field("status"), pa.array([EXPIRED] * n, pa.string())
            )
            table = table.set_column(
                schema.get_field_index("updated_at"),
                schema.field("updated_at"),
                pa.array([now] * n, schema.field("updated_at").type),
            )
            _load(ex, lib, node, table, now)
            result["expired"] += n
            result["batches"] += 1
    logs.event(
        _log,
        "expire",
        f"expire licenses at {node}: {result['expired']} set to 05 失效",
        node=node,
        dataset=DATASET,
        expired=result["expired"],
        batches=result["batches"],
    )
    return result


def _load(ex: Exchange, lib: Library, node: str, table: pa.Table, now: _dt.datetime) -> None:
    """Seal the expired versions as one batch signed by ``node`` and load it through the load path."""
    spec = schemas.get(DATASET)
    leaves = row_hashes(table, hash_columns(DATASET))
    edge = _edge(node)
    state = lib.state(edge)
    prev = state["last_manifest_hash"] if state else ""
    key_id, private = KeyStore(ex.keys_dir).signer(node)
    manifest = seal(
        dataset=DATASET,
        edge=edge,
        source=node,
        target=node,
        cursor_from=None,
        cursor_to=None,
        rows=table.num_rows,
        rejected=0,
        merkle_root=merkle_root(leaves).hex(),
        prev_hash=prev,
        schema=schema_fingerprint(spec.schema),
        key_id=key_id,
        private_key=private,
    )
    n = table.num_rows
    rows = pa.table(
        {
            **{name: table.column(name) for name in spec.names},
            "_owner": table.column("_owner"),
            "_hash": hex_column(leaves),
            "_batch": pa.repeat(pa.scalar(manifest.batch_id, pa.string()), n),
            "_leaf": pa.array(np.arange(n, dtype=np.int32)),
            "_source": pa.repeat(pa.scalar("expire", pa.string()), n),
            "_flags": pa.nulls(n, pa.string()),
            "_synced_at": pa.repeat(pa.scalar(now, pa.timestamp("us", tz="UTC")), n),
        }
    )
    lib.load_batch(
        edge=edge,
        dataset=DATASET,
        source="expire",
        manifest_json=manifest.to_json(),
        manifest_hash=manifest.hash,
        batch_id=manifest.batch_id,
        prev_hash=prev,
        rows=rows,
        rejected=[],
        cursor=None,
    )
