"""Every edge's state as a person or a script reads it: rows, failures, last success, lag."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from schemas.errors import TongbanError
from tongban.core.config import Exchange
from tongban.core.engine.base import ResolveConn
from tongban.core.engine.base import now as _now
from tongban.core.engine.libraries import Libraries, using

__all__ = ["status"]


def status(
    ex: Exchange,
    *,
    resolve_conn: ResolveConn = None,
    now: _dt.datetime | None = None,
    libs: Libraries | None = None,
) -> list[dict[str, Any]]:
    """One entry per edge: rows loaded and failed, open failures, last success and lag in seconds.

    ``library_error`` says why the target library could not be read (its counts are then unknown).

    Lag is the time since the edge last loaded successfully (None before its first load).
    """
    with using(ex, libs, resolve_conn) as opened:
        return _status(ex, opened, now or _now())


def _status(ex: Exchange, libs: Libraries, now: _dt.datetime) -> list[dict[str, Any]]:
    out = []
    states: dict[str, dict[str, dict[str, Any]]] = {}
    open_failures: dict[str, dict[str, int]] = {}
    unreachable: dict[str, str] = {}
    for edge in ex.edges:
        if edge.target not in states:
            try:
                lib = libs.get(edge.target)
                lib.migrate()
                states[edge.target] = {s["edge"]: s for s in lib.states()}
                open_failures[edge.target] = lib.failure_counts()
            except TongbanError as exc:  # said on every edge into it: nothing is known of them now
                states[edge.target], open_failures[edge.target] = {}, {}
                unreachable[edge.target] = f"{exc.code}: {exc.message_en}" + (
                    f" ({exc.where})" if exc.where else ""
                )
        st = states[edge.target].get(edge.id) or {}
        last = st.get("last_success")
        out.append(
            {
                "edge": edge.id,
                "dataset": edge.dataset,
                "source": edge.source,
                "target": edge.target,
                "rows_loaded": int(st.get("rows_loaded") or 0),
                "rows_failed": int(st.get("rows_failed") or 0),
                "batches": int(st.get("batches") or 0),
                "open_failures": open_failures[edge.target].get(edge.id, 0),
                "last_success": last.isoformat() if last else None,
                "lag_seconds": round((now - last).total_seconds(), 3) if last else None,
                "last_error": st.get("last_error"),
                "library_error": unreachable.get(edge.target),
            }
        )
    return out
