"""Making queued actions take effect without anyone running a command.

:func:`apply_queued` finds the edges with failures queued for a retry or a resubmission (in every
node's library), runs each of them once, then the edges above them for the same datasets (county ->
province -> national), in the exchange's order (sources before targets). The ``tongban_review``
maintenance DAG calls it on a schedule; ``tongban failed apply`` calls it by hand; ``tongban sync`` and
the exchange DAGs pick the same queued work up in their own next run of each edge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from schemas.errors import TongbanError
from tongban.core.config import Exchange
from tongban.core.engine.libraries import Libraries
from tongban.core.engine.runs import sync_edge

__all__ = ["apply_queued", "edges_to_apply"]


def edges_to_apply(ex: Exchange, libs: Libraries) -> list[str]:
    """The edges with queued work, then the edges that carry their datasets up, in exchange order."""
    queued: set[str] = set()
    for code in ex.nodes:
        try:
            queued.update(libs.get(code).queued_edges())
        except (TongbanError, sa.exc.SQLAlchemyError):
            continue  # a library that cannot be read (or is not set up yet) has nothing to apply now
    known = {e.id: e for e in ex.edges}
    picked = {e for e in queued if e in known}
    # Up the tree: an edge from a node some picked edge writes into, for the same dataset.
    changed = True
    while changed:
        changed = False
        for edge in ex.edges:
            if edge.id in picked or edge.source_kind != "node":
                continue
            if any(known[p].target == edge.source and known[p].dataset == edge.dataset for p in picked):
                picked.add(edge.id)
                changed = True
    return [e.id for e in ex.edges if e.id in picked]


def apply_queued(
    ex: Exchange,
    libs: Libraries,
    *,
    lock_wait: float = 60.0,
    on_edge: Callable[[str, dict[str, Any] | None, TongbanError | None], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every edge :func:`edges_to_apply` names once; one edge failing does not stop the others
    (its failure is recorded as a failed run, as any run's). Returns one entry per edge."""
    out: list[dict[str, Any]] = []
    for edge_id in edges_to_apply(ex, libs):
        try:
            summary = sync_edge(ex, edge_id, libs=libs, lock_wait=lock_wait)
        except TongbanError as exc:
            out.append({"edge": edge_id, "ok": False, "code": exc.code, "message_en": exc.message_en})
            if on_edge:
                on_edge(edge_id, None, exc)
            continue
        out.append(
            {
                "edge": edge_id,
                "ok": True,
                **{k: summary.get(k) for k in ("rows", "inserted", "updated", "rejected")},
            }
        )
        if on_edge:
            on_edge(edge_id, summary, None)
    return out
