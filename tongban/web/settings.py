"""What one web app serves: the exchange, the node whose library it answers from, and its secrets."""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from tongban.core.audit import AuditLog
from tongban.core.config import Exchange
from tongban.core.engine.libraries import Libraries
from tongban.core.store import Library

__all__ = ["SESSION_SECRET_ENV", "WebSettings", "session_secret"]

#: Production deployments with several workers or hosts set the session secret here (hex or text).
SESSION_SECRET_ENV = "TONGBAN_SESSION_SECRET"


def session_secret(keys_dir: Path) -> bytes:
    """The secret that signs login sessions: the environment's, else ``KEYS/session.secret``
    (made once, owner-only), so every worker of one node accepts the same sessions."""
    env = os.environ.get(SESSION_SECRET_ENV)
    if env:
        return env.encode()
    path = keys_dir / "session.secret"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        keys_dir.mkdir(parents=True, exist_ok=True)
        data = secrets.token_hex(32).encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return data
    except FileExistsError:  # pragma: no cover - another worker made it first
        return path.read_bytes()


#: Seconds between looks at where the node's library is (its URL from the environment or a connection).
_LIBRARY_RECHECK = 30.0


@dataclass
class WebSettings:
    """The app's configuration; areas read what they need from it (``request.app.state.settings``)."""

    exchange: Exchange
    node: str
    libraries: Libraries
    session_secret: bytes
    secure_cookies: bool = False
    max_body: int = 64 * 1024
    session_hours: float = 8.0
    extra: dict[str, object] = field(default_factory=dict)

    @classmethod
    def for_node(cls, exchange: Exchange, node: str | None = None, **kw: object) -> WebSettings:
        """Settings for ``node`` (default: the exchange's root) with the secret from its keys folder."""
        code = node or exchange.trust_root
        exchange.node(code)  # an unknown node fails here with its own code
        secret = kw.pop("session_secret", None) or session_secret(exchange.keys_dir)
        return cls(exchange, code, Libraries(exchange), secret, **kw)  # type: ignore[arg-type]

    @property
    def library(self) -> Library:
        """The node's library (opened on first use; its URL looked up again after a while, not on every
        request: a URL from a connection may cost a round trip)."""
        now = time.monotonic()
        held = self.extra.get("_library")
        if (
            held is None
            or now - held[0] > _LIBRARY_RECHECK  # type: ignore[index]
            or all(lib is not held[1] for lib in self.libraries.opened())  # type: ignore[index]
        ):  # looked up again after a while, and after the libraries were disposed of
            held = self.extra["_library"] = (now, self.libraries.get(self.node))
        return held[1]  # type: ignore[index,no-any-return]

    @property
    def audit(self) -> AuditLog:
        """The node's audit log, in its library."""
        log = self.extra.get("_audit")
        if log is None:
            log = self.extra["_audit"] = AuditLog(self.library.engine)
        return log  # type: ignore[return-value]
