"""Group commit for a busy server: requests hand their audit entries to one writer thread, which appends
whatever has queued up in one transaction (:meth:`AuditLog.append_many`) and then releases every waiting
request. A request still returns only after its entry is committed — the audit is as synchronous as one
append per request — but a thousand requests a second cost a few commits, not a thousand.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from schemas.errors import TongbanError
from tongban.core.audit.chain import AuditEntry, AuditLog

__all__ = ["AuditWriter"]

_MAX_BATCH = 512
_WAIT = 30.0
_LINGER = 0.002  # seconds the writer waits for more entries before it commits


@dataclass
class _Pending:
    item: dict[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    entry: AuditEntry | None = None
    error: TongbanError | None = None
    future: asyncio.Future[AuditEntry] | None = None

    def finish(self) -> None:
        self.done.set()
        future = self.future
        if future is not None:
            future.get_loop().call_soon_threadsafe(_settle, future, self.entry, self.error)


def _settle(future: asyncio.Future[AuditEntry], entry: AuditEntry | None, error: TongbanError | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(entry)  # type: ignore[arg-type]


class AuditWriter:
    """Appends entries to ``log`` from one background thread, in batches; :meth:`append` waits."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def append(self, actor: str, action: str, **fields: Any) -> AuditEntry:
        """Queue one entry and wait until it is committed (TongbanError if it could not be)."""
        pending = _Pending({"actor": actor, "action": action, **fields})
        self._ensure_thread()
        self._queue.put(pending)
        if not pending.done.wait(_WAIT):
            raise TongbanError(
                "AUDIT_BUSY", "审计日志写入超时", "the audit log did not commit in time", "audit_log"
            )
        if pending.error is not None:
            raise pending.error
        assert pending.entry is not None
        return pending.entry

    async def append_async(self, actor: str, action: str, **fields: Any) -> AuditEntry:
        """:meth:`append` for a coroutine: it awaits the commit instead of holding a thread."""
        pending = _Pending({"actor": actor, "action": action, **fields})
        pending.future = asyncio.get_running_loop().create_future()
        self._ensure_thread()
        self._queue.put(pending)
        try:
            return await asyncio.wait_for(pending.future, _WAIT)
        except TimeoutError:
            raise TongbanError(
                "AUDIT_BUSY", "审计日志写入超时", "the audit log did not commit in time", "audit_log"
            ) from None

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="tongban-audit", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            # Linger a moment for the requests arriving alongside: one commit for all of them.
            deadline = time.monotonic() + _LINGER
            while len(batch) < _MAX_BATCH:
                try:
                    batch.append(self._queue.get(timeout=max(0.0, deadline - time.monotonic())))
                except queue.Empty:
                    break
            self._write(batch)

    def _write(self, batch: list[_Pending]) -> None:
        try:
            entries = self.log.append_many([p.item for p in batch])
        except TongbanError:
            # One bad entry must not sink the others: write them one by one, each with its own answer.
            for p in batch:
                try:
                    p.entry = self.log.append(**p.item)
                except TongbanError as exc:
                    p.error = exc
                p.finish()
            return
        except Exception as exc:  # the database went away: every waiting request gets a coded error
            error = TongbanError(
                "AUDIT_BUSY",
                "审计日志无法写入",
                f"the audit log cannot be written ({type(exc).__name__})",
                "audit_log",
            )
            for p in batch:
                p.error = error
                p.finish()
            return
        for p, entry in zip(batch, entries, strict=True):
            p.entry = entry
            p.finish()
