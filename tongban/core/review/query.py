"""Finding failed transfers across the nodes' libraries: filters, keyset pages, one failure in full.

A failure is named ``NODE:ID`` (the node whose library keeps it, its number there). Pages are keyset
pages over ``(created_at, node, id)``, newest or oldest first: each page is a few indexed queries
whatever the page number, so paging through 100,000 open rows stays fast. The ``codes`` filter
matches a code or a part of one.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tongban.core.config import Exchange
from tongban.core.engine.libraries import Libraries
from tongban.core.review.errors import ReviewError
from tongban.core.store import Library

__all__ = [
    "KINDS",
    "STATES",
    "Filter",
    "Page",
    "Ref",
    "count",
    "get",
    "history",
    "libraries",
    "page",
    "select_refs",
]

KINDS = ("row", "batch", "file", "run")
STATES = ("open", "queued", "resolved", "discarded")
_MAX_PAGE = 500


@dataclass(frozen=True, order=True)
class Ref:
    """A failed transfer's name: the node whose library keeps it and its number there."""

    node: str
    id: int

    def __str__(self) -> str:
        return f"{self.node}:{self.id}"

    @classmethod
    def parse(cls, text: str) -> Ref:
        node, _, ident = (text or "").strip().partition(":")
        if not (len(node) == 6 and node.isdigit() and ident.isdigit() and len(ident) <= 18):
            raise ReviewError(
                "FAILED_ID",
                "编号应为 节点:编号，如 630104:12",
                "the id is NODE:NUMBER, e.g. 630104:12",
                (text or "")[:40],
            )
        return cls(node, int(ident))


@dataclass(frozen=True)
class Filter:
    """Which failed transfers: every field optional; ``state`` None means every state."""

    node: str | None = None
    dataset: str | None = None
    code: str | None = None
    kind: str | None = None
    state: str | None = "open"
    edge: str | None = None
    since: _dt.datetime | None = None
    until: _dt.datetime | None = None

    def narrowed(self) -> bool:
        """Whether anything but the state narrows it (acting on many asks for that)."""
        return any((self.node, self.dataset, self.code, self.kind, self.edge, self.since, self.until))


@dataclass(frozen=True)
class Page:
    """One page of failures and the cursor of the next (None: the last page)."""

    rows: list[dict[str, Any]]
    next: str | None


def libraries(ex: Exchange, libs: Libraries, node: str | None = None) -> list[tuple[str, Library]]:
    """The libraries failures are kept in: the node's, or every node's (in the exchange's order)."""
    codes = [ex.node(node).code] if node else list(ex.nodes)
    return [(code, libs.get(code)) for code in codes]


def _where(t: sa.Table, node: str, f: Filter) -> list[Any]:
    conds: list[Any] = [t.c.target == node]
    if f.state:
        conds.append(t.c.state == f.state)
    if f.dataset:
        conds.append(t.c.dataset == f.dataset)
    if f.kind:
        conds.append(t.c.kind == f.kind)
    if f.edge:
        conds.append(t.c.edge == f.edge)
    if f.code:
        conds.append(t.c.codes.like(f"%{_like(f.code)}%", escape="\\"))
    if f.since:
        conds.append(t.c.created_at >= f.since)
    if f.until:
        conds.append(t.c.created_at < f.until)
    return conds


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _encode(row: dict[str, Any], node: str) -> str:
    raw = json.dumps([row["created_at"].isoformat(), node, int(row["id"])])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode(cursor: str) -> tuple[_dt.datetime, str, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, node, ident = json.loads(raw)
        return _dt.datetime.fromisoformat(at), str(node), int(ident)
    except (ValueError, TypeError):
        raise ReviewError(
            "ARGUMENT_INVALID", "翻页位置无效", "the page position is not valid", cursor[:40]
        ) from None


def page(
    ex: Exchange,
    libs: Libraries,
    f: Filter,
    *,
    after: str | None = None,
    size: int = 50,
    newest_first: bool = True,
) -> Page:
    """One page of failures matching ``f`` after the cursor ``after`` (from the previous page)."""
    size = max(1, min(size, _MAX_PAGE))
    at = _decode(after) if after else None
    found: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    for node, lib in libraries(ex, libs, f.node):
        t = lib.tables["failed_transfers"]
        conds = _where(t, node, f)
        if at is not None:
            c_at, c_node, c_id = at
            # Order: (created_at, node, id); within one library the node is fixed.
            before = (node < c_node) if newest_first else (node > c_node)
            if node == c_node:
                key = sa.tuple_(t.c.created_at, t.c.id)
                conds.append(key < (c_at, c_id) if newest_first else key > (c_at, c_id))
            elif before:
                conds.append(t.c.created_at <= c_at if newest_first else t.c.created_at >= c_at)
            else:
                conds.append(t.c.created_at < c_at if newest_first else t.c.created_at > c_at)
        order = (t.c.created_at.desc(), t.c.id.desc()) if newest_first else (t.c.created_at, t.c.id)
        stmt = sa.select(t).where(*conds).order_by(*order).limit(size + 1)
        with lib.connect() as conn:
            for r in conn.execute(stmt).mappings():
                row = {**r, "node": node, "ref": f"{node}:{r['id']}"}
                found.append(((row["created_at"], node, int(r["id"])), row))
    found.sort(key=lambda item: item[0], reverse=newest_first)
    rows = [row for _, row in found[: size + 1]]
    more = len(rows) > size
    rows = rows[:size]
    return Page(rows, _encode(rows[-1], rows[-1]["node"]) if more and rows else None)


def count(ex: Exchange, libs: Libraries, f: Filter) -> int:
    """How many failures match ``f``."""
    total = 0
    for node, lib in libraries(ex, libs, f.node):
        t = lib.tables["failed_transfers"]
        with lib.connect() as conn:
            total += int(conn.execute(sa.select(sa.func.count()).where(*_where(t, node, f))).scalar_one())
    return total


def select_refs(ex: Exchange, libs: Libraries, f: Filter, limit: int) -> list[tuple[Ref, int]]:
    """Up to ``limit`` failures matching ``f`` with the version each has now (oldest first)."""
    out: list[tuple[Ref, int]] = []
    for node, lib in libraries(ex, libs, f.node):
        t = lib.tables["failed_transfers"]
        stmt = (
            sa.select(t.c.id, t.c.version).where(*_where(t, node, f)).order_by(t.c.id).limit(limit - len(out))
        )
        with lib.connect() as conn:
            out += [(Ref(node, int(i)), int(v)) for i, v in conn.execute(stmt)]
        if len(out) >= limit:
            break
    return out


def get(ex: Exchange, libs: Libraries, ref: Ref) -> dict[str, Any]:
    """One failure (FAILED_NOT_FOUND when the node's library has none of that number)."""
    ex.node(ref.node)  # an unknown node: NODE_UNKNOWN with a did-you-mean
    lib = libs.get(ref.node)
    t = lib.tables["failed_transfers"]
    with lib.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.id == ref.id, t.c.target == ref.node)).mappings().first()
    if row is None:
        raise ReviewError("FAILED_NOT_FOUND", "没有这条失败传输", "no such failed transfer", str(ref))
    return {**row, "node": ref.node, "ref": str(ref)}


def history(libs: Libraries, ref: Ref) -> list[dict[str, Any]]:
    """The failure's history, oldest first (what sync runs and operators did to it)."""
    lib = libs.get(ref.node)
    t = lib.tables["failed_actions"]
    with lib.connect() as conn:
        rows = conn.execute(sa.select(t).where(t.c.failure_id == ref.id).order_by(t.c.id)).mappings().all()
    out = []
    for r in rows:
        detail = json.loads(r["detail"]) if r["detail"] else None
        out.append({**r, "detail": detail})
    return out
