"""What every step of a run shares: run-folder URIs, the clock, lock waits and stop checks."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

from tongban.core.engine.interrupt import CancelToken
from tongban.core.errors import SyncError

__all__ = ["STEP_LOCK_WAIT", "ResolveConn", "check", "now", "path_of", "uri"]

#: Turns an Airflow connection id into a SQLAlchemy URL (None: the environment's AIRFLOW_CONN_*).
ResolveConn = Callable[[str], str] | None

#: How long a step started on its own (an Airflow task) waits for its edge's lock before EDGE_BUSY.
STEP_LOCK_WAIT = 600.0


def now() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def uri(path: Path) -> str:
    """A run folder's ``file://`` URI: what passes between steps (through XCom in Airflow)."""
    return path.resolve().as_uri()


def path_of(run_uri: str) -> Path:
    """The run folder a URI names; SPOOL_URI for anything but ``file://``."""
    parsed = urlparse(run_uri)
    if parsed.scheme not in ("file", ""):
        raise SyncError("SPOOL_URI", "仅支持 file:// 地址", "only file:// URIs are supported", run_uri)
    return Path(unquote(parsed.path))


def check(cancel: CancelToken | None) -> None:
    """Raise Interrupted if a stop was asked for (called between batches)."""
    if cancel is not None:
        cancel.check()
