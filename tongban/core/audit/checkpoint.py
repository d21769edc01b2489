"""Signed checkpoints over the audit log: the node signs (Ed25519) the head of the chain from time to time,
so a log rewritten from some entry on — every hash recomputed, the chain whole again — still fails
against the last checkpoint it passes (and a log cut short fails against one past its end).

A checkpoint signs the RFC 8785 canonical JSON of ``{"node", "seq", "head_hash", "at", "key_id"}``.
:func:`verify_log` runs the chain check and then every checkpoint, naming the first bad entry.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Any

import rfc8785
import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature

from schemas.errors import TongbanError
from tongban.core.audit.chain import AuditLog, AuditProblem
from tongban.core.store.tables import TABLES
from tongban.core.trust import KeyStore, TrustList, b64url, from_b64url, iso

__all__ = ["Checkpoint", "latest", "verify_log", "write_checkpoint"]


@dataclass(frozen=True)
class Checkpoint:
    node: str
    seq: int
    head_hash: str
    at: _dt.datetime
    key_id: str
    signature: str

    def body(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "seq": self.seq,
            "head_hash": self.head_hash,
            "at": iso(self.at),
            "key_id": self.key_id,
        }


def write_checkpoint(log: AuditLog, keystore: KeyStore, node: str) -> Checkpoint | None:
    """Sign the log's current head (None for an empty log, or when the head is already checkpointed)."""
    head = log.head()
    if head is None:
        return None
    t = TABLES["audit_checkpoints"]
    with log.engine.connect() as conn:
        if conn.execute(sa.select(t.c.seq).where(t.c.seq == head.seq)).first():
            return None
    kid, private = keystore.signer(node)
    unsigned = Checkpoint(node, head.seq, head.hash, _dt.datetime.now(_dt.UTC), kid, "")
    point = Checkpoint(
        **{**unsigned.__dict__, "signature": b64url(private.sign(rfc8785.dumps(unsigned.body())))}
    )
    try:
        with log.engine.begin() as conn:
            conn.execute(
                t.insert().values(
                    seq=point.seq,
                    head_hash=point.head_hash,
                    node=point.node,
                    at=point.at,
                    key_id=point.key_id,
                    signature=point.signature,
                )
            )
    except sa.exc.IntegrityError:  # another worker checkpointed the same head
        return None
    return point


def latest(log: AuditLog) -> Checkpoint | None:
    t = TABLES["audit_checkpoints"]
    with log.engine.connect() as conn:
        row = conn.execute(sa.select(t).order_by(t.c.seq.desc()).limit(1)).mappings().first()
    return _point(row) if row else None


def _point(row: Any) -> Checkpoint:
    return Checkpoint(
        row["node"], int(row["seq"]), row["head_hash"], row["at"], row["key_id"], row["signature"]
    )


def _bad(seq: int, kind: str, zh: str, en: str) -> AuditProblem:
    return AuditProblem(seq=seq, kind=kind, message_zh=zh, message_en=en)


def verify_log(log: AuditLog, trust: TrustList) -> AuditProblem | None:
    """The first problem of the log: its chain, then each signed checkpoint against the chain.

    Kinds: ``altered``, ``inserted``, ``removed`` (the chain's), ``rewritten`` (the chain is whole but
    differs from a signed checkpoint: entries up to that one were replaced and re-hashed),
    ``truncated`` (a checkpoint names an entry the log no longer has), ``checkpoint`` (a checkpoint
    whose signature or key does not hold).
    """
    problem = log.verify()
    if problem is not None:
        return problem
    t, a = TABLES["audit_checkpoints"], TABLES["audit_log"]
    with log.engine.connect() as conn:
        points = [_point(r) for r in conn.execute(sa.select(t).order_by(t.c.seq)).mappings()]
        previous = 0
        for point in points:
            try:
                public = trust.lookup(point.node, point.key_id, point.at)
                public.verify(from_b64url(point.signature), rfc8785.dumps(point.body()))
            except (TongbanError, InvalidSignature, ValueError):
                return _bad(
                    point.seq,
                    "checkpoint",
                    f"第 {point.seq} 条处的检查点签名无效或密钥不可用",
                    f"the checkpoint at entry {point.seq} has a bad signature or key",
                )
            stored = conn.execute(sa.select(a.c.hash).where(a.c.seq == point.seq)).scalar()
            if stored is None:
                return _bad(
                    point.seq,
                    "truncated",
                    f"已签名的检查点覆盖到第 {point.seq} 条，但日志中已没有该条（被截断）",
                    f"a signed checkpoint covers entry {point.seq}, which the log no longer holds (truncated)",
                )
            if stored != point.head_hash:
                return _bad(
                    previous + 1,
                    "rewritten",
                    f"第 {previous + 1} 至 {point.seq} 条之间被改写并重算了哈希（与已签名的检查点不符）",
                    f"entries {previous + 1} to {point.seq} were rewritten and re-hashed (they differ from the "
                    "signed checkpoint)",
                )
            previous = point.seq
    return None
