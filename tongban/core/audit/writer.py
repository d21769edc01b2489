"""Group commit for a busy server: requests hand their audit entries over, and whatever has gathered is
appended in one transaction (:meth:`AuditLog.append_rows`) before every waiting request is released. A
request still returns only after its entry is committed — the audit is as synchronous as one append per
request — but a thousand requests a second cost a few commits, not a thousand.

Two ways a batch is written:

- **in the event loop**, for coroutines on a SQLite log: the entries of a few milliseconds gather in a
  list of that loop, and one call writes them without ever waiting for the write lock. No thread is
  woken and nothing is handed between threads, which on a small machine costs more than the write;
- **by a writer thread**, for everything else: callers in threads, a log elsewhere than in a SQLite file
  (PostgreSQL), and any batch whose no-wait write found another writer holding the log (a second worker,
  a sync, an operator's command): the thread waits its turn, and the event loop never does.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from schemas.errors import TongbanError
from tongban.core.audit.chain import AuditEntry, AuditLog, Prepared, WouldBlock, prepare

__all__ = ["AuditWriter"]

_MAX_BATCH = 512
_WAIT = 30.0
_LINGER = 0.002  # seconds entries gather before they are committed together
_RETRY = 0.001  # seconds before a loop's write tries again when another writer had the log
_HAND_OVER = 0.05  # seconds of refused tries after which the writer thread takes the batch over


def _busy(why: str = "the audit log did not commit in time", zh: str = "审计日志写入超时") -> TongbanError:
    return TongbanError("AUDIT_BUSY", zh, why, "audit_log")


class _Pending:
    """One entry: its fields, then its entry or error; a future (coroutines) or an event (threads)."""

    __slots__ = ("done", "entry", "error", "future", "item", "row")

    def __init__(self, item: dict[str, Any], future: asyncio.Future[AuditEntry] | None) -> None:
        self.item = item
        self.future = future
        self.done = None if future is not None else threading.Event()
        self.entry: AuditEntry | None = None
        self.error: TongbanError | None = None
        self.row: Prepared | None = None


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


def _fail(batch: list[_Pending], exc: BaseException) -> None:
    """Answer every entry of ``batch`` not answered yet with AUDIT_BUSY."""
    error = _busy(f"the audit log cannot be written ({type(exc).__name__})", "审计日志无法写入")
    for p in batch:
        if p.entry is None and p.error is None:
            p.error = error


def _write(batch: list[_Pending], append: Callable[[list[Prepared]], list[AuditEntry]]) -> None:
    """Write ``batch`` with ``append``, each entry's answer or error set on it (WouldBlock passes)."""
    good = []
    for p in batch:  # one bad entry must not sink the others: it is refused alone, before the write
        if p.row is None and p.error is None:
            try:
                p.row = prepare(p.item)
            except TongbanError as exc:
                p.error = exc
            except Exception as exc:  # a caller's mistake (a value that is not text or JSON)
                p.error = TongbanError(
                    "AUDIT_INVALID",
                    "审计条目无效",
                    f"the audit entry is invalid ({type(exc).__name__})",
                    "audit_log",
                )
        if p.row is not None:
            good.append(p)
    if not good:
        return
    try:
        entries = append([p.row for p in good])  # type: ignore[misc]
    except WouldBlock:
        raise
    except TongbanError as exc:
        for p in good:
            p.error = exc
        return
    except Exception as exc:  # the database went away: every waiting request gets a coded error
        _fail(good, exc)
        return
    for p, entry in zip(good, entries, strict=True):
        p.entry = entry


class AuditWriter:
    """Appends entries to ``log`` in batches; :meth:`append` and :meth:`append_async` wait for the commit."""

    def __init__(self, log: AuditLog) -> None:
        self.log = log
        self._in_loop = log.sqlite_path() is not None
        self._gathering: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        self._blocked: dict[asyncio.AbstractEventLoop, float] = {}  # since when a loop's writes are refused
        self._waiting: list[_Pending] = []  # the thread's: appended under _lock, taken whole
        self._arrived = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def append(self, actor: str, action: str, **fields: Any) -> AuditEntry:
        """Queue one entry and wait until it is committed (TongbanError if it could not be)."""
        pending = _Pending({"actor": actor, "action": action, **fields}, None)
        self._put([pending])
        assert pending.done is not None
        if not pending.done.wait(_WAIT):
            raise _busy()
        if pending.error is not None:
            raise pending.error
        assert pending.entry is not None
        return pending.entry

    async def append_async(self, actor: str, action: str, **fields: Any) -> AuditEntry:
        """:meth:`append` for a coroutine: it awaits the commit instead of holding a thread."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AuditEntry] = loop.create_future()
        pending = _Pending({"actor": actor, "action": action, **fields}, future)
        if self._in_loop:
            gathering = self._gathering.get(loop)
            if gathering is None:
                gathering = self._gathering[loop] = []
                loop.call_later(_LINGER, self._flush, loop)
            gathering.append(pending)
        else:
            self._put([pending])
        try:
            async with asyncio.timeout(_WAIT):
                return await future
        except TimeoutError:
            raise _busy() from None

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        """In ``loop``: write what gathered there without waiting. Another writer holding the log (the
        next worker's commit, a fraction of a millisecond) means a try again shortly, with whatever has
        gathered since; one holding it longer (a sync's load) means the thread takes the batch over."""
        batch = self._gathering.pop(loop, [])
        while batch:
            part = batch[:_MAX_BATCH]
            try:
                _write(part, lambda rows: self.log.append_rows(rows, wait=False))
            except WouldBlock:
                now = time.monotonic()
                since = self._blocked.setdefault(loop, now)
                if now - since >= _HAND_OVER:
                    self._blocked.pop(loop, None)
                    self._put(batch)
                    return
                later = self._gathering.pop(loop, [])
                self._gathering[loop] = batch + later  # first in, first chained
                loop.call_later(_RETRY, self._flush, loop)
                return
            except BaseException as exc:  # never: _write answers every entry; nobody is left waiting
                _fail(part, exc)
            self._blocked.pop(loop, None)
            _settle_all(part)
            batch = batch[_MAX_BATCH:]

    def close(self) -> None:
        """Close the log's own connections (a later entry opens them again)."""
        self.log.close()

    # -- the writer thread --

    def _put(self, pendings: list[_Pending]) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="tongban-audit", daemon=True)
                self._thread.start()
            first = not self._waiting
            self._waiting.extend(pendings)
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
            # Linger a moment for the entries arriving alongside: one commit for all of them. The
            # writer sleeps through it (no wake-up per entry, no hand-off of the interpreter per entry).
            time.sleep(_LINGER)
            batch = self._take()
            if batch:
                try:
                    _write(batch, self.log.append_rows)
                except BaseException as exc:  # never: _write answers every entry; the thread lives on
                    _fail(batch, exc)
                self._finish(batch)

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
