"""Group commit for a busy server: requests hand their audit entries to one writer thread, which appends
whatever has queued up in one transaction (:meth:`AuditLog.append_many`) and then releases every waiting
request. A request still returns only after its entry is committed — the audit is as synchronous as one
append per request — but a thousand requests a second cost a few commits, not a thousand.

The hand-offs are per batch, not per entry: a coroutine's entry is settled with the rest of its batch in
one call into its event loop, and a thread's waits on an event made only for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

from schemas.errors import TongbanError
from tongban.core.audit.chain import AuditEntry, AuditLog

__all__ = ["AuditWriter"]

_MAX_BATCH = 512
_WAIT = 30.0
_LINGER = 0.002  # seconds the writer waits for more entries before it commits


def _busy(why: str = "the audit log did not commit in time") -> TongbanError:
    return TongbanError("AUDIT_BUSY", "审计日志写入超时", why, "audit_log")


class _Pending:
    """One queued entry: its fields, then its entry or error; a future (coroutines) or an event (threads)."""

    __slots__ = ("done", "entry", "error", "future", "item")

    def __init__(self, item: dict[str, Any], future: asyncio.Future[AuditEntry] | None) -> None:
        self.item = item
        self.future = future
        self.done = None if future is not None else threading.Event()
        self.entry: AuditEntry | None = None
        self.error: TongbanError | None = None


def _settle_all(batch: list[_Pending]) -> None:
    """In the event loop: resolve the futures of one batch."""
    for p in batch:
        future = p.future
        if future is None or future.done():
            continue
        if p.error is not None:
            future.set_exception(p.error)
        else:
            future.set_result(p.entry)  # type: ignore[arg-type]


class AuditWriter:
    """Appends entries to ``log`` from one background thread, in batches; :meth:`append` waits."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self._waiting: list[_Pending] = []  # appended under _lock; taken whole by the writer
        self._arrived = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def append(self, actor: str, action: str, **fields: Any) -> AuditEntry:
        """Queue one entry and wait until it is committed (TongbanError if it could not be)."""
        pending = _Pending({"actor": actor, "action": action, **fields}, None)
        self._put(pending)
        assert pending.done is not None
        if not pending.done.wait(_WAIT):
            raise _busy()
        if pending.error is not None:
            raise pending.error
        assert pending.entry is not None
        return pending.entry

    async def append_async(self, actor: str, action: str, **fields: Any) -> AuditEntry:
        """:meth:`append` for a coroutine: it awaits the commit instead of holding a thread."""
        future: asyncio.Future[AuditEntry] = asyncio.get_running_loop().create_future()
        self._put(_Pending({"actor": actor, "action": action, **fields}, future))
        try:
            async with asyncio.timeout(_WAIT):
                return await future
        except TimeoutError:
            raise _busy() from None

    def _put(self, pending: _Pending) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="tongban-audit", daemon=True)
                self._thread.start()
            self._waiting.append(pending)
            first = len(self._waiting) == 1
        if first:  # only the first of a batch wakes the writer; the rest just join the list
            self._arrived.set()

    def _take(self) -> list[_Pending]:
        with self._lock:
            batch, self._waiting = self._waiting[:_MAX_BATCH], self._waiting[_MAX_BATCH:]
            if not self._waiting:
                self._arrived.clear()
            return batch

    def _run(self) -> None:
        while True:
            self._arrived.wait()
            # Linger a moment for the requests arriving alongside: one commit for all of them. The
            # writer sleeps through it (no wake-up per entry, no hand-off of the interpreter per entry).
            time.sleep(_LINGER)
            batch = self._take()
            if batch:
                self._write(batch)
                self._finish(batch)

    def _write(self, batch: list[_Pending]) -> None:
        try:
            entries = self.log.append_many([p.item for p in batch])
        except TongbanError:
            # One bad entry must not sink the others: write them one by one, each with its own answer.
            for p in batch:
                try:
                    p.entry = self.log.append_many([p.item])[0]
                except TongbanError as exc:
                    p.error = exc
                except Exception as exc:
                    p.error = _busy(f"the audit log cannot be written ({type(exc).__name__})")
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
            return
        for p, entry in zip(batch, entries, strict=True):
            p.entry = entry

    @staticmethod
    def _finish(batch: list[_Pending]) -> None:
        """Wake the waiters: one call into each event loop with entries in the batch, each thread's event."""
        loops: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        for p in batch:
            if p.future is not None:
                loops.setdefault(p.future.get_loop(), []).append(p)
            elif p.done is not None:
                p.done.set()
        for loop, waiting in loops.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits there any more
                loop.call_soon_threadsafe(_settle_all, waiting)
