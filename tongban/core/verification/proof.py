"""A record's provenance proof: its leaf hash, and for every library it passed through on its way up,
the batch that carried it — the leaf's Merkle path to that batch's root and the batch's signed manifest
— down to the batch signed by the node that issued the record (its owner).

A record at the national library came in a province's batch; the province's library holds the same
leaf in the county's batch, signed by the county. So the proof of a national record ends at the
county's signature, not the province's::

    {"version": 1, "dataset", "key", "leaf": hex, "owner": node, "node": answering node,
     "hops": [{"library": node, "batch_id", "index", "path": [[pos, [hex, ...]], ...],
               "manifest": {...signed manifest...}}, ...]}

Checking one (SPEC section 6): the leaf climbs each hop's path to the manifest's ``merkle_root``; each
manifest's signature verifies with its source's key in the trust list; the first manifest's target is
the answering node, each next manifest's target is the previous one's source, and the last one's
source is the owner.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import sqlalchemy as sa

import schemas
from schemas.errors import TongbanError
from tongban.core.store import Library
from tongban.core.trust.merkle import merkle_proof
from tongban.core.verification.errors import VerifyError
from tongban.core.verification.records import find, find_version

__all__ = ["MAX_HOPS", "build_proof"]

MAX_HOPS = 8


def _unavailable(zh: str, en: str, where: str) -> VerifyError:
    return VerifyError("PROOF_UNAVAILABLE", f"无法给出来源证明：{zh}", f"no provenance proof: {en}", where)


def _hop(library: Library, batch_id: str, index: int, leaf: str) -> dict[str, Any]:
    ledger, leaves_t = library.tables["batches"], library.tables["batch_leaves"]
    with library.connect() as conn:
        manifest = conn.execute(sa.select(ledger.c.manifest).where(ledger.c.batch_id == batch_id)).scalar()
        blob = conn.execute(sa.select(leaves_t.c.leaves).where(leaves_t.c.batch_id == batch_id)).scalar()
    where = f"{library.node} batch {batch_id[:12]}"
    if manifest is None:
        raise _unavailable("库中没有该批次的清单", "the library has no manifest of the batch", where)
    if blob is None or len(blob) % 32:
        raise _unavailable(
            "该批次载入时未保存叶子哈希（早于本版本）",
            "the batch's leaf hashes were not kept when it loaded (an older version)",
            where,
        )
    leaves = np.frombuffer(blob, dtype=np.uint8).reshape(-1, 32)
    if not 0 <= index < len(leaves) or leaves[index].tobytes().hex() != leaf:
        raise _unavailable("记录的叶子不在该批次中", "the record's leaf is not in the batch", where)
    return {
        "library": library.node,
        "batch_id": batch_id,
        "index": index,
        "path": [[pos, [s.hex() for s in siblings]] for pos, siblings in merkle_proof(leaves, index)],
        "manifest": json.loads(manifest),
    }


def build_proof(libraries: Callable[[str], Library], node: str, dataset: str, key: str) -> dict[str, Any]:
    """The provenance proof of record ``key`` of ``dataset`` at ``node`` (module docstring).

    VerifyError RECORD_NOT_FOUND when the node holds no such record, PROOF_UNAVAILABLE when a library on
    the way lacks the batch, its leaves or the same version of the record.
    """
    if dataset not in schemas.DATASETS:
        raise VerifyError("RECORD_NOT_FOUND", f"未知数据集 {dataset}", f"unknown dataset {dataset}", dataset)
    spec = schemas.get(dataset)
    found = find(libraries(node), dataset, spec.key, key, limit=1)
    if not found:
        raise VerifyError("RECORD_NOT_FOUND", "库中没有该记录", "the library holds no such record", dataset)
    record = found[0]
    leaf, owner = str(record["_hash"]), str(record["_owner"])
    hops: list[dict[str, Any]] = []
    here, batch_id, index = node, str(record["_batch"]), int(record["_leaf"])
    for _ in range(MAX_HOPS):
        hop = _hop(libraries(here), batch_id, index, leaf)
        hops.append(hop)
        source = str(hop["manifest"]["source"])
        if source == owner:
            return {
                "version": 1,
                "dataset": dataset,
                "key": key,
                "leaf": leaf,
                "owner": owner,
                "node": node,
                "hops": hops,
            }
        if source == here:
            break
        try:
            version = find_version(libraries(source), dataset, key, leaf)
        except TongbanError as exc:  # an unknown node or an unreachable library: no proof
            raise _unavailable(
                f"无法读取节点 {source} 的库", f"cannot read the library of node {source}", source
            ) from exc
        if version is None:
            raise _unavailable(
                f"节点 {source} 的库中没有同一版本的记录",
                f"the library of node {source} holds no same version of the record",
                source,
            )
        here, batch_id, index = source, str(version["_batch"]), int(version["_leaf"])
    raise _unavailable(
        f"未能追溯到签发节点 {owner}", f"the chain does not reach the issuing node {owner}", owner
    )
