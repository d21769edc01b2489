"""Appending to and checking the hash chain of ``audit_log``."""

from __future__ import annotations

import datetime
import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import rfc8785
import sqlalchemy as sa

from schemas.errors import TongbanError
from tongban.core.store.tables import TABLES
from tongban.core.trust.canonical import rfc8785_bytes

__all__ = ["GENESIS", "AuditEntry", "AuditLog", "AuditProblem", "entry_hash"]

#: The ``prev_hash`` of the first entry.
GENESIS = "0" * 64
#: Fields a caller may set; every one is part of the hash.
FIELDS = ("actor", "action", "subject", "purpose", "dataset", "claim_digest", "result", "reason")
_LIMITS = {"actor": 120, "action": 64, "subject": 200, "purpose": 64, "dataset": 32, "result": 32}
_DETAIL_MAX = 4096
_RETRIES = 20


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the log."""

    seq: int
    at: str
    actor: str
    action: str
    subject: str | None = None
    purpose: str | None = None
    dataset: str | None = None
    claim_digest: str | None = None
    result: str | None = None
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AuditProblem:
    """Where the chain first breaks: the entry's sequence number and why."""

    seq: int
    kind: str  # altered | inserted | removed
    message_zh: str
    message_en: str


def entry_hash(entry: AuditEntry) -> str:
    """SHA-256 of the entry's canonical JSON (every field but ``hash`` itself).

    >>> e = AuditEntry(seq=1, at="2026-01-01T00:00:00Z", actor="office:a", action="verify")
    >>> entry_hash(e) == entry_hash(AuditEntry(**{**e.as_dict(), "hash": "x"}))
    True
    >>> entry_hash(e) == entry_hash(AuditEntry(**{**e.as_dict(), "actor": "office:b"}))
    False
    """
    body = entry.as_dict()
    body.pop("hash")
    return hashlib.sha256(rfc8785.dumps(body)).hexdigest()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _bounded(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    limit = _LIMITS.get(name)
    if limit is not None and len(value) > limit:
        raise TongbanError(
            "AUDIT_INVALID",
            f"审计字段 {name} 超过 {limit} 个字符",
            f"audit field {name} is longer than {limit} characters",
            name,
        )
    return value


class AuditLog:
    """The hash-chained log in one library's database.

    Appends are serialized by the sequence number being the primary key: two writers that read the
    same last entry cannot both insert the next one; the loser re-reads and chains onto the winner.
    """

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.table = TABLES["audit_log"]

    def append(
        self,
        actor: str,
        action: str,
        *,
        subject: str | None = None,
        purpose: str | None = None,
        dataset: str | None = None,
        claim_digest: str | None = None,
        result: str | None = None,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> AuditEntry:
        """Add one entry at the end of the chain and return it."""
        values = {
            "actor": actor,
            "action": action,
            "subject": subject,
            "purpose": purpose,
            "dataset": dataset,
            "claim_digest": claim_digest,
            "result": result,
            "reason": reason,
        }
        for name, value in values.items():
            _bounded(name, value)
        body = dict(detail or {})
        if len(json.dumps(body, ensure_ascii=False)) > _DETAIL_MAX:
            raise TongbanError(
                "AUDIT_INVALID", "审计详情过大", "the audit entry's detail is too large", "detail"
            )
        t = self.table
        for _ in range(_RETRIES):
            with self.engine.begin() as conn:
                last = conn.execute(sa.select(t.c.seq, t.c.hash).order_by(t.c.seq.desc()).limit(1)).first()
                seq, prev = (int(last[0]) + 1, last[1]) if last else (1, GENESIS)
                entry = AuditEntry(seq=seq, at=_now(), detail=body, prev_hash=prev, **values)
                entry = AuditEntry(**{**entry.as_dict(), "hash": entry_hash(entry)})
                try:
                    with conn.begin_nested():
                        row = entry.as_dict()
                        row["detail"] = json.dumps(body, ensure_ascii=False, sort_keys=True)
                        conn.execute(t.insert().values(**row))
                except sa.exc.IntegrityError:
                    continue
            return entry
        raise TongbanError(
            "AUDIT_BUSY",
            "审计日志写入冲突过多，请重试",
            "too many concurrent writers on the audit log; try again",
            "audit_log",
        )

    def append_many(self, items: list[dict[str, Any]]) -> list[AuditEntry]:
        """Add several entries (each the keyword arguments of :meth:`append`) in one transaction, chained
        in order: one commit for many requests (a group commit), the chain exactly as one by one."""
        if not items:
            return []
        rows = []
        for item in items:
            values = {name: item.get(name) for name in FIELDS}
            for name, value in values.items():
                _bounded(name, value)
            body = dict(item.get("detail") or {})
            if len(json.dumps(body, ensure_ascii=False)) > _DETAIL_MAX:
                raise TongbanError(
                    "AUDIT_INVALID", "审计详情过大", "the audit entry's detail is too large", "detail"
                )
            rows.append((values, body))
        t = self.table
        for _ in range(_RETRIES):
            out: list[AuditEntry] = []
            with self.engine.begin() as conn:
                last = conn.execute(sa.select(t.c.seq, t.c.hash).order_by(t.c.seq.desc()).limit(1)).first()
                seq, prev = (int(last[0]) + 1, last[1]) if last else (1, GENESIS)
                records = []
                for values, body in rows:
                    # The fields entry_hash() covers, built directly (dataclasses.asdict deep-copies).
                    fields = {"seq": seq, "at": _now(), **values, "detail": body, "prev_hash": prev}
                    digest = hashlib.sha256(rfc8785_bytes(fields)).hexdigest()
                    out.append(AuditEntry(**fields, hash=digest))
                    records.append(
                        {
                            **fields,
                            "detail": json.dumps(body, ensure_ascii=False, sort_keys=True),
                            "hash": digest,
                        }
                    )
                    seq, prev = seq + 1, digest
                if conn.dialect.name == "sqlite":  # the write lock is held from BEGIN: no one interleaves
                    conn.execute(t.insert(), records)
                else:
                    try:
                        with conn.begin_nested():
                            conn.execute(t.insert(), records)
                    except sa.exc.IntegrityError:
                        continue
            return out
        raise TongbanError(
            "AUDIT_BUSY",
            "审计日志写入冲突过多，请重试",
            "too many concurrent writers on the audit log; try again",
            "audit_log",
        )

    def entries(
        self,
        *,
        after_seq: int = 0,
        limit: int = 100,
        action: str | None = None,
        actor: str | None = None,
        subject: str | None = None,
    ) -> list[AuditEntry]:
        """Entries after ``after_seq`` in order, optionally of one action, actor or subject."""
        t = self.table
        q = sa.select(t).where(t.c.seq > after_seq).order_by(t.c.seq).limit(max(1, min(limit, 10_000)))
        if action is not None:
            q = q.where(t.c.action == action)
        if actor is not None:
            q = q.where(t.c.actor == actor)
        if subject is not None:
            q = q.where(t.c.subject == subject)
        with self.engine.connect() as conn:
            return [_entry(row._mapping) for row in conn.execute(q)]

    def head(self) -> AuditEntry | None:
        """The last entry, or None for an empty log."""
        t = self.table
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).order_by(t.c.seq.desc()).limit(1)).first()
        return _entry(row._mapping) if row else None

    def verify(self, *, batch: int = 5_000) -> AuditProblem | None:
        """Walk the chain from the start; the first entry that does not fit, or None if all do.

        An entry whose own hash is wrong was *altered*; one whose hash is right but that does not
        chain onto its predecessor was *inserted*; a gap in the sequence numbers (or a chain that
        skips over a missing predecessor) means one was *removed*.
        """
        t = self.table
        prev_hash, prev_seq, after = GENESIS, 0, 0
        with self.engine.connect() as conn:
            while True:
                rows = conn.execute(sa.select(t).where(t.c.seq > after).order_by(t.c.seq).limit(batch)).all()
                if not rows:
                    return None
                for row in rows:
                    try:
                        entry = _entry(row._mapping)
                    except ValueError:
                        return _problem(int(row.seq), "altered")
                    if entry_hash(entry) != entry.hash:
                        return _problem(entry.seq, "altered")
                    if entry.seq != prev_seq + 1:
                        return _problem(entry.seq, "removed")
                    if entry.prev_hash != prev_hash:
                        return _problem(entry.seq, "inserted")
                    prev_hash, prev_seq = entry.hash, entry.seq
                after = prev_seq


def _entry(row: Any) -> AuditEntry:
    detail = json.loads(row["detail"] or "{}")
    if not isinstance(detail, dict):
        raise ValueError("detail is not an object")
    return AuditEntry(
        seq=int(row["seq"]),
        at=row["at"],
        actor=row["actor"],
        action=row["action"],
        subject=row["subject"],
        purpose=row["purpose"],
        dataset=row["dataset"],
        claim_digest=row["claim_digest"],
        result=row["result"],
        reason=row["reason"],
        detail=detail,
        prev_hash=row["prev_hash"],
        hash=row["hash"],
    )


_WHY = {
    "altered": ("条目内容被改动，哈希不符", "the entry was altered: its hash does not match"),
    "inserted": (
        "条目未接续上一条的哈希（被插入或替换）",
        "the entry does not chain onto the previous one (inserted)",
    ),
    "removed": ("此条目之前缺少条目（被删除）", "an entry before this one is missing (removed)"),
}


def _problem(seq: int, kind: str) -> AuditProblem:
    zh, en = _WHY[kind]
    return AuditProblem(seq=seq, kind=kind, message_zh=zh, message_en=en)
