"""Stopping a sync cleanly: a request to stop is honoured between batches, never inside a transaction.

A :class:`CancelToken` is passed down to the engine's steps, which call :meth:`CancelToken.check`
between batches. :func:`signals_cancel` turns the first Ctrl-C (SIGINT) or SIGTERM into a request on
the token; a second one stops at once (``KeyboardInterrupt``: the open transaction is rolled back by
the database, so still nothing is half-applied).

>>> token = CancelToken()
>>> token.check()
>>> token.cancel()
>>> token.check()
Traceback (most recent call last):
...
tongban.core.engine.interrupt.Interrupted: interrupted
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["CancelToken", "Interrupted", "signals_cancel"]


class Interrupted(BaseException):
    """The user asked to stop; raised between batches, so every committed batch is whole."""

    def __init__(self, message: str = "interrupted") -> None:
        super().__init__(message)


class CancelToken:
    """A stop request shared by the CLI (which sets it) and the engine (which checks it)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the work to stop at its next check."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        """Raise :class:`Interrupted` if a stop was asked for."""
        if self._event.is_set():
            raise Interrupted()


@contextlib.contextmanager
def signals_cancel(token: CancelToken, *, notice: bool = True) -> Iterator[CancelToken]:
    """While inside, SIGINT and SIGTERM cancel ``token``; a second signal raises KeyboardInterrupt.

    Only in the main thread (elsewhere signals cannot be caught): then it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield token
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if token.cancelled:
            raise KeyboardInterrupt
        token.cancel()
        if notice:
            print(
                "正在停止：当前批次提交后退出（再按 Ctrl-C 立即停止） "
                "stopping after the current batch (Ctrl-C again to stop at once)",
                file=sys.stderr,
                flush=True,
            )

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield token
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
