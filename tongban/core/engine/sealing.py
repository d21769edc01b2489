"""Step 3, seal: hash every accepted row, build each batch's Merkle root and sign its manifest with the
sealing node's key, chained to the edge's last loaded manifest."""

from __future__ import annotations

import json
import time

import numpy as np
import pyarrow as pa

import schemas
from tongban.core import logs
from tongban.core.config import Exchange
from tongban.core.engine import allocators, spool
from tongban.core.engine.arrowio import read_batches
from tongban.core.engine.base import STEP_LOCK_WAIT, ResolveConn, check, path_of, uri
from tongban.core.engine.interrupt import CancelToken
from tongban.core.engine.libraries import Libraries, using
from tongban.core.engine.plan import Plan, plan_for
from tongban.core.engine.records import RunRecord, SealedBatch, SealRecord, ValidateRecord, read, write
from tongban.core.trust import KeyStore
from tongban.core.trust.manifest import schema_fingerprint
from tongban.core.trust.manifest import seal as seal_manifest
from tongban.core.trust.merkle import merkle_root, row_hashes

__all__ = ["Sealer", "hash_columns", "seal"]

_log = logs.get("tongban.engine")


def hash_columns(dataset: str) -> list[str]:
    """The columns a row's leaf hash covers: every field of the dataset, then its owner."""
    return [*schemas.get(dataset).names, "_owner"]


class Sealer:
    """Signs the batches of one run in order, each manifest chained to the one before it."""

    def __init__(self, ex: Exchange, plan: Plan, meta: RunRecord, libs: Libraries) -> None:
        self.plan = plan
        self.key_id, self._private = KeyStore(ex.keys_dir).signer(plan.signer)
        state = libs.get(plan.edge.target).state(plan.edge.id)
        self.prev = state["last_manifest_hash"] if state else ""
        self.cursor_from = meta.cursor_from
        self.cols = hash_columns(plan.dataset)
        self.schema_id = schema_fingerprint(schemas.get(plan.dataset).schema)

    def seal(
        self, p: int, j: int, batch: pa.RecordBatch, cursor_to: dict | None, rejected: int
    ) -> tuple[SealedBatch, np.ndarray]:
        """Sign batch ``j`` of part ``p``; returns its entry and its rows' leaf hashes."""
        plan = self.plan
        leaves = row_hashes(pa.Table.from_batches([batch]), self.cols)
        manifest = seal_manifest(
            dataset=plan.dataset,
            edge=plan.edge.id,
            source=plan.signer,
            target=plan.edge.target,
            cursor_from=self.cursor_from,
            cursor_to=cursor_to,
            rows=batch.num_rows,
            rejected=rejected,
            merkle_root=merkle_root(leaves).hex(),
            prev_hash=self.prev,
            schema=self.schema_id,
            key_id=self.key_id,
            private_key=self._private,
        )
        self.prev = manifest.hash
        self.cursor_from = cursor_to if cursor_to is not None else self.cursor_from
        return SealedBatch(p, j, json.loads(manifest.to_json())), leaves


def seal(
    ex: Exchange,
    run_uri: str,
    *,
    resolve_conn: ResolveConn = None,
    cancel: CancelToken | None = None,
    lock_wait: float = STEP_LOCK_WAIT,
    libs: Libraries | None = None,
) -> str:
    """Sign one manifest per validated batch, chained to the edge's last loaded manifest."""
    allocators.give_back()
    run = path_of(run_uri)
    meta = read(run / "run.json", RunRecord)
    plan = plan_for(ex, meta.edge)
    started = time.monotonic()
    with spool.edge_lock(ex.spool, plan.edge.id, wait=lock_wait), using(ex, libs, resolve_conn) as libs:
        validated = read(run / "validate.json", ValidateRecord)
        sealer = Sealer(ex, plan, meta, libs)
        cols = hash_columns(plan.dataset)
        sealed: list[SealedBatch] = []
        for p, part in enumerate(validated.parts):
            if part.file is None:
                continue
            for j, batch in enumerate(read_batches(run / part.file, require=[*cols, "_flags"])):
                check(cancel)
                entry, _ = sealer.seal(p, j, batch, part.batches[j].cursor, part.batches[j].rejected)
                sealed.append(entry)
        write(run / "sealed.json", SealRecord(sealed))
    logs.event(
        _log,
        "seal",
        f"seal {plan.edge.id}: {len(sealed)} batches signed by {plan.signer}",
        step="seal",
        edge=plan.edge.id,
        run_id=meta.run_id,
        batches=len(sealed),
        rows=sum(int(s.manifest.get("rows") or 0) for s in sealed),
        batch_id=[s.manifest.get("batch_id") for s in sealed] or None,
        root=[s.manifest.get("merkle_root") for s in sealed] or None,
        seconds=round(time.monotonic() - started, 3),
    )
    return uri(run)
