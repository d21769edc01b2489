"""Appending to and checking the hash chain of ``audit_log``."""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import rfc8785
import sqlalchemy as sa

from schemas.errors import TongbanError
from tongban.core.store.tables import TABLES
from tongban.core.trust.canonical import rfc8785_bytes

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX: SQLite's own busy wait alone
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "GENESIS",
    "AuditEntry",
    "AuditLog",
    "AuditProblem",
    "Prepared",
    "SqliteChain",
    "WouldBlock",
    "entry_hash",
    "prepare",
]

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
        self._raw: dict[bool, SqliteChain] = {}  # the SQLite write paths' own connections (waiting or not)
        self._raw_lock = threading.Lock()

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
        item = {
            "actor": actor,
            "action": action,
            "subject": subject,
            "purpose": purpose,
            "dataset": dataset,
            "claim_digest": claim_digest,
            "result": result,
            "reason": reason,
            "detail": detail,
        }
        return self.append_many([item])[0]

    def append_many(self, items: list[dict[str, Any]]) -> list[AuditEntry]:
        """Add several entries (each the keyword arguments of :meth:`append`) in one transaction, chained
        in order: one commit for many requests (a group commit), the chain exactly as one by one.

        On a SQLite file the entries go through :class:`SqliteChain` (one connection of its own);
        elsewhere through the engine, a lost race retried.
        """
        return self.append_rows([prepare(item) for item in items])

    def append_rows(self, rows: list[Prepared], *, wait: bool = True) -> list[AuditEntry]:
        """:meth:`append_many` for entries already checked by :func:`prepare`.

        ``wait=False`` (a SQLite file only) never waits for the write lock: :class:`WouldBlock` when
        another writer holds it, so an event loop can try a write without stalling.
        """
        if not rows:
            return []
        path = self.sqlite_path()
        if path is not None:
            return self._chain(path, wait).append_rows(rows)
        if not wait:
            raise WouldBlock("only a SQLite log is written without waiting")
        t = self.table
        for _ in range(_RETRIES):
            with self.engine.begin() as conn:
                last = conn.execute(sa.select(t.c.seq, t.c.hash).order_by(t.c.seq.desc()).limit(1)).first()
                out, records = _chained(rows, last)
                try:
                    with conn.begin_nested():
                        conn.execute(t.insert(), [dict(zip(_COLUMNS, r, strict=True)) for r in records])
                except sa.exc.IntegrityError:
                    continue
            return out
        raise TongbanError(
            "AUDIT_BUSY",
            "审计日志写入冲突过多，请重试",
            "too many concurrent writers on the audit log; try again",
            "audit_log",
        )

    def sqlite_path(self) -> str | None:
        """The library file, where the log is in a SQLite file (the driver write path applies)."""
        url = self.engine.url
        database = url.database or ""
        if (
            self.engine.dialect.name != "sqlite"
            or database in ("", ":memory:")
            or database.startswith("file:")
            or url.query
        ):
            return None
        return database

    def _chain(self, path: str, wait: bool) -> SqliteChain:
        with self._raw_lock:
            chain = self._raw.get(wait)
            if chain is None:
                chain = self._raw[wait] = SqliteChain(path, wait=wait)
            return chain

    def close(self) -> None:
        """Close the connections this log keeps for its SQLite writes (a later write opens others)."""
        with self._raw_lock:
            chains, self._raw = list(self._raw.values()), {}
        for chain in chains:
            chain.close()

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


_COLUMNS = ("seq", "at", *FIELDS, "detail", "prev_hash", "hash")
_HEAD_SQL = "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
_INSERT_SQL = f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


#: An entry checked for writing: its fields, its detail, and the detail as stored.
Prepared = tuple[dict[str, Any], dict[str, Any], str]


class WouldBlock(Exception):
    """A write that was not to wait found the log's write lock held by another writer."""


def prepare(item: dict[str, Any]) -> Prepared:
    """An entry (the keyword arguments of :meth:`AuditLog.append`) checked for writing: AUDIT_INVALID
    for a field too long or a detail too large."""
    values = {name: _bounded(name, item.get(name)) for name in FIELDS}
    body = dict(item.get("detail") or {})
    stored = json.dumps(body, ensure_ascii=False, sort_keys=True)
    if len(stored) > _DETAIL_MAX:
        raise TongbanError("AUDIT_INVALID", "审计详情过大", "the audit entry's detail is too large", "detail")
    return values, body, stored


def _chained(rows: list[Prepared], last: Any) -> tuple[list[AuditEntry], list[tuple[Any, ...]]]:
    """``rows`` chained after ``last`` (the head's seq and hash, or None): the entries and their rows."""
    seq, prev = (int(last[0]) + 1, last[1]) if last else (1, GENESIS)
    out: list[AuditEntry] = []
    records: list[tuple[Any, ...]] = []
    for values, body, stored in rows:
        # The fields entry_hash() covers, built directly (dataclasses.asdict deep-copies).
        fields = {"seq": seq, "at": _now(), **values, "detail": body, "prev_hash": prev}
        digest = hashlib.sha256(rfc8785_bytes(fields)).hexdigest()
        out.append(AuditEntry(**fields, hash=digest))
        records.append((seq, fields["at"], *values.values(), stored, prev, digest))
        seq, prev = seq + 1, digest
    return out, records


class SqliteChain:
    """Appends to the ``audit_log`` of the SQLite file ``path`` over one driver connection of its own.

    ``BEGIN IMMEDIATE`` holds the write lock from the start, so the head read inside the transaction
    stays the head. Writers of several processes (a server's workers) take turns through a lock file
    beside the library, which wakes the next one at once (SQLite's own busy wait sleeps in steps of up
    to 100 ms).
    """

    def __init__(self, path: str, *, wait: bool = True) -> None:
        self.path = path
        self.wait = wait
        self._conn: sqlite3.Connection | None = None
        self._turns: int | None = None  # the lock file's descriptor (None where it cannot be made)
        self._closer: weakref.finalize | None = None
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        wait = 60 if self.wait else 0
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=wait)
        # As the library's own connections (tongban.core.store.library): the same durability and hygiene.
        conn.execute(f"PRAGMA busy_timeout={wait * 1000}")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA secure_delete=ON")
        if fcntl is not None:
            with contextlib.suppress(OSError):
                fd = self._turns = os.open(self.path + "-auditlock", os.O_RDWR | os.O_CREAT, 0o600)
                self._closer = weakref.finalize(self, _close_fd, fd)  # closed with this object at the latest
        return conn

    def append_rows(self, rows: list[Prepared]) -> list[AuditEntry]:
        """Chain and commit ``rows`` (:class:`WouldBlock` without ``wait`` if another writer has the log)."""
        with self._lock:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            try:
                with self._turn():
                    try:
                        conn.execute("BEGIN IMMEDIATE")
                    except sqlite3.OperationalError as exc:
                        if not self.wait and "locked" in str(exc):
                            raise WouldBlock(str(exc)) from None
                        raise
                    try:
                        out, records = _chained(rows, conn.execute(_HEAD_SQL).fetchone())
                        conn.executemany(_INSERT_SQL, records)
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
            except sqlite3.Error:
                self.reopen()  # a fresh connection for the next batch
                raise
            return out

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        fd = self._turns
        if fd is None or fcntl is None:
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if self.wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WouldBlock("another writer has the audit log") from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def reopen(self) -> None:
        """Drop the connection (the next batch opens a new one); called holding the lock."""
        conn, self._conn = self._conn, None
        self._turns = None
        closer, self._closer = self._closer, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        if closer is not None:
            closer()  # the lock file's descriptor

    def close(self) -> None:
        """Close the connection and the lock file (after a write in progress has finished)."""
        with self._lock:
            self.reopen()


def _close_fd(fd: int) -> None:
    with contextlib.suppress(OSError):
        os.close(fd)


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
