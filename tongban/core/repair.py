"""Repairing the libraries after a signing key was compromised.

Once a key is revoked, no new batch signed by it loads. What it signed before revocation may still be
in the libraries: forged records that overwrote a county's own, or that took a key first and so block
the honest owner's row as an owner conflict. A node's key seals the batches it sends up, so only the
libraries *above* the node can hold what a thief signed. :func:`repair_key` finds every batch the key
signed in the node's parent, removes the records those batches wrote — and their copies forwarded
further up, matched by key and leaf hash — into history with reason ``revoked``, keeps each such batch
as a failed transfer, and resets the cursors of the edges from the node and of the edges whose honest
rows a forged record blocked, so the next sync re-pulls them from the owners' own libraries (which the
repair never touches; a re-read of unchanged rows is a no-op).

The operator's procedure (README, "After a key compromise"): rotate the node's key, revoke the
compromised one, ``tongban keys repair KEY_ID``, then sync (or let Airflow's next runs do it).
"""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any

import sqlalchemy as sa

import schemas
from tongban.core.config import Exchange
from tongban.core.store import Library, StoreError
from tongban.core.trust import TrustError, TrustList

__all__ = ["repair_key"]

_CHUNK = 500


def repair_key(
    ex: Exchange,
    key_id: str,
    library: Any,
    *,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Undo what revoked key ``key_id`` signed; ``library(node)`` gives a node's :class:`Library`.

    Returns ``{"key_id", "node", "dry_run", "libraries": [{node, batches, records, edges_reset}]}``.
    TrustError KEY_UNKNOWN when the key is not in the trust list, KEY_NOT_REVOKED when it is still valid
    (revoke it first, so that nothing it signs loads again while the repair runs).
    """
    trust = TrustList.load(ex.trust_list)
    entry = trust.entry(key_id)
    if entry is None:
        raise TrustError(
            "KEY_UNKNOWN", f"信任列表中没有密钥 {key_id}", f"key {key_id} is not in the trust list", key_id
        )
    if entry.revoked_at is None:
        raise TrustError(
            "KEY_NOT_REVOKED",
            f"密钥 {key_id} 尚未吊销：先运行 tongban keys revoke {key_id} --reason …",
            f"key {key_id} is not revoked: run `tongban keys revoke {key_id} --reason …` first",
            key_id,
        )
    # A node's key seals its own loads and the batches it sends up: only the libraries above it can
    # hold what a thief signed with it. Its own library (and everything below) is left as it is: it is
    # where the genuine records are re-pulled from.
    above: list[str] = []
    parent = ex.nodes[entry.node].parent if entry.node in ex.nodes else None
    while parent is not None:
        above.append(parent)
        parent = ex.nodes[parent].parent
    forged: dict[str, set[tuple[str, str]]] = {name: set() for name in schemas.DATASETS}
    signed: dict[str, list[dict[str, Any]]] = {}
    libs: dict[str, Library] = {}
    for code in above:
        lib = library(code)
        lib.migrate()
        libs[code] = lib
        signed[code] = [b for b in batches_signed_by(lib, key_id) if b["source"] == entry.node]
        for dataset in schemas.DATASETS:
            ids = [b["batch_id"] for b in signed[code] if b["dataset"] == dataset]
            forged[dataset] |= written_by(lib, dataset, ids)
    report = []
    for code in above:
        lib = libs[code]
        removed = 0
        for dataset, pairs in forged.items():
            if pairs:
                removed += quarantine_records(lib, dataset, pairs, dry_run=dry_run)
        # Re-pull from the key's node, and from every owner whose honest row a forged one blocked.
        edges = sorted(
            {e.id for e in ex.edges_into(code) if e.source == entry.node and (removed or signed[code])}
            | blocked_edges(lib, forged)
        )
        if not dry_run:
            for batch in signed[code]:
                _keep_as_failure(lib, batch, key_id)
            for edge in edges:
                lib.reset_cursor(edge)
        report.append({"node": code, "batches": len(signed[code]), "records": removed, "edges_reset": edges})
    # Every other library is left untouched (listed, so a reader sees it was not forgotten).
    report += [
        {"node": code, "batches": 0, "records": 0, "edges_reset": []}
        for code in ex.nodes
        if code not in above
    ]
    return {"key_id": key_id, "node": entry.node, "dry_run": dry_run, "libraries": report}


def blocked_edges(lib: Library, forged: dict[str, set[tuple[str, str]]]) -> set[str]:
    """Edges with an open OWNER_CONFLICT on a key a forged record held: their rows were blocked."""
    keys = {dataset: {k for k, _ in pairs} for dataset, pairs in forged.items() if pairs}
    if not keys:
        return set()
    t = lib.tables["failed_transfers"]
    stmt = sa.select(t.c.edge, t.c.dataset, t.c.row_key).where(
        t.c.state == "open", t.c.codes.like("%OWNER_CONFLICT%")
    )
    with lib.connect() as c:
        return {edge for edge, dataset, key in c.execute(stmt) if key in keys.get(dataset, ())}


def batches_signed_by(lib: Library, key_id: str) -> list[dict[str, Any]]:
    """The ledger entries of ``lib`` whose manifest was signed by ``key_id``, in load order."""
    t = lib.tables["batches"]
    stmt = sa.select(t).where(t.c.key_id == key_id).order_by(t.c.seq)
    with lib.connect() as c:
        return [dict(r) for r in c.execute(stmt).mappings()]


def written_by(lib: Library, dataset: str, batch_ids: list[str]) -> set[tuple[str, str]]:
    """``(key, leaf hash)`` of the current records that the given batches wrote."""
    if not batch_ids:
        return set()
    t = lib.tables[dataset]
    key = t.c[schemas.get(dataset).key]
    out: set[tuple[str, str]] = set()
    with lib.connect() as c:
        for start in range(0, len(batch_ids), _CHUNK):
            chunk = batch_ids[start : start + _CHUNK]
            out.update(
                (str(k), str(h)) for k, h in c.execute(sa.select(key, t.c._hash).where(t.c._batch.in_(chunk)))
            )
    return out


def quarantine_records(lib: Library, dataset: str, pairs: set[tuple[str, str]], *, dry_run: bool) -> int:
    """Move the current records matching ``(key, leaf hash)`` into history (reason ``revoked``).

    Returns how many were (or, with ``dry_run``, would be) moved. One transaction per library.
    """
    records = lib.tables[dataset]
    history = lib.tables[f"{dataset}_history"]
    key = records.c[schemas.get(dataset).key]
    names = [c.name for c in records.columns]
    now = _dt.datetime.now(_dt.UTC)
    ordered = sorted(pairs)
    moved = 0
    try:
        with lib.engine.begin() as conn:
            for start in range(0, len(ordered), _CHUNK):
                chunk = ordered[start : start + _CHUNK]
                match = sa.tuple_(key, records.c._hash).in_(chunk)
                found = conn.execute(
                    sa.select(sa.func.count()).select_from(records).where(match)
                ).scalar_one()
                moved += int(found)
                if dry_run or not found:
                    continue
                select = sa.select(
                    *[records.c[n] for n in names],
                    sa.literal(now, history.c._archived_at.type),
                    sa.literal("revoked"),
                ).where(match)
                conn.execute(history.insert().from_select([*names, "_archived_at", "_reason"], select))
                conn.execute(records.delete().where(match))
    except sa.exc.OperationalError as exc:
        raise StoreError(
            "LIBRARY_UNREACHABLE",
            f"无法写入节点 {lib.node} 的库",
            f"cannot write the library of node {lib.node}: {str(exc.orig).splitlines()[0][:200]}",
            lib.node,
        ) from None
    return moved


def _keep_as_failure(lib: Library, batch: dict[str, Any], key_id: str) -> None:
    """Keep a batch the revoked key signed as an open failed transfer (once), for the operator's review."""
    t = lib.tables["failed_transfers"]
    with lib.connect() as c:
        known = c.execute(
            sa.select(t.c.id).where(
                t.c.batch_id == batch["batch_id"], t.c.kind == "batch", t.c.codes == "BATCH_KEY_REVOKED"
            )
        ).first()
    if known:
        return
    lib.record_failure(
        kind="batch",
        edge=batch["edge"],
        dataset=batch["dataset"],
        source=batch["source"],
        codes=["BATCH_KEY_REVOKED"],
        message_zh=f"该批次由已吊销的密钥 {key_id} 签名：其写入的记录已移入历史（revoked），将从所有者重新拉取",
        message_en=f"this batch was signed by revoked key {key_id}: the records it wrote were moved to "
        "history (revoked) and are re-pulled from their owners",
        where=f"{batch['edge']} batch {batch['batch_id']}",
        batch_id=batch["batch_id"],
        payload={"manifest": json.loads(batch["manifest"])},
    )
