"""The libraries one command, task or test works with: one engine per URL, disposed together.

No process-wide cache: whoever runs the steps makes a :class:`Libraries` and passes it in (a step
given none makes its own for the call and disposes it after).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tongban.core.config import Exchange
from tongban.core.engine.base import ResolveConn
from tongban.core.store import Library, Vault

__all__ = ["Libraries", "using"]


class Libraries:
    """The nodes' libraries of one exchange, opened on first use (one SQLAlchemy engine per URL)."""

    def __init__(self, ex: Exchange, resolve_conn: ResolveConn = None) -> None:
        self.ex = ex
        self.resolve_conn = resolve_conn
        self._open: dict[str, Library] = {}

    def get(self, node: str) -> Library:
        """The node's library (its URL read from the environment or connection now)."""
        url = self.ex.library_url(node, self.resolve_conn)
        lib = self._open.get(url)
        if lib is None:
            lib = self._open[url] = Library(url, node, Vault(node, self.ex.keys_dir))
        return lib

    __call__ = get

    def opened(self) -> list[Library]:
        """The libraries opened so far."""
        return list(self._open.values())

    def dispose(self) -> None:
        """Close every connection pool (the objects may be used again: they reconnect)."""
        for lib in self._open.values():
            lib.dispose()
        self._open.clear()

    def __enter__(self) -> Libraries:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()


@contextlib.contextmanager
def using(ex: Exchange, libs: Libraries | None, resolve_conn: ResolveConn = None) -> Iterator[Libraries]:
    """``libs`` if given, else libraries of this call only (disposed when it ends)."""
    if libs is not None:
        yield libs
        return
    with Libraries(ex, resolve_conn) as own:
        yield own
