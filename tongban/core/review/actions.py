"""What an operator does to a failed transfer: retry, resubmit, discard, resolve — one or many.

Every action is one transaction in the library that keeps the failure: the row is read, checked
(still open or queued; the version the operator saw, when given; not being sent by a run right now),
changed with ``version = version + 1`` under the condition that the version is still the one read,
and a line is added to its history. Two operators acting at once: the second's condition fails and it
gets FAILED_CHANGED — nothing is applied twice. Then the action (or its refusal) is appended to the
audit log (who, when, what, why; codes and field names, never values).

Actions take effect as follows: *discard* and *resolve* at once; *retry* and *resubmit* are queued
(state ``queued``) for the edge's next run — from ``tongban sync``, the exchange DAG's next run, or the
``tongban_review`` maintenance DAG (:func:`tongban.core.review.apply.apply_queued`), which runs the
edges with queued work and the edges above them, so a resubmitted row travels the same signed path
as any row: sealed in a batch by the county that owns it, chained, verified and loaded, then up.
"""

from __future__ import annotations

import json
from collections.abc import Mapping as Lookup
from dataclasses import dataclass
from typing import Any, Protocol

import sqlalchemy as sa

from schemas.errors import TongbanError, lookup
from tongban.core.config import Exchange
from tongban.core.engine.libraries import Libraries
from tongban.core.review import query
from tongban.core.review.edit import apply_edit
from tongban.core.review.errors import ReviewError
from tongban.core.review.query import Filter, Ref
from tongban.core.store import dumps
from tongban.core.store.failures import ACTIVE, history_row
from tongban.core.store.rows import utcnow

__all__ = [
    "ACTIONS",
    "MAX_MANY",
    "Auditor",
    "Outcome",
    "act",
    "act_many",
    "check_allowed",
    "payload_of",
    "reveal",
]

ACTIONS = ("retry", "resubmit", "discard", "resolve")
#: The most failures one action by filter touches (a larger set: run it again).
MAX_MANY = 10_000
_MAX_REASON = 500


class Auditor(Protocol):
    """The audit log's ``append`` (:class:`tongban.core.audit.AuditLog`)."""

    def append(self, actor: str, action: str, **fields: Any) -> Any: ...


@dataclass(frozen=True)
class Outcome:
    """What an action did to one failure: its new state, or the code it was refused with."""

    ref: str
    action: str
    ok: bool
    state: str | None
    code: str | None = None
    message_zh: str = ""
    message_en: str = ""
    where: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def payload_of(row: Lookup[str, Any]) -> Any:
    try:
        return json.loads(row["payload"]) if row.get("payload") else None
    except ValueError:
        return None


def _check_reason(action: str, reason: str | None) -> str | None:
    reason = (reason or "").strip() or None
    if action == "discard" and not reason:
        raise ReviewError("FAILED_REASON_REQUIRED", "丢弃需要填写原因", "discarding needs a reason", "reason")
    if reason and len(reason) > _MAX_REASON:
        raise ReviewError(
            "ARGUMENT_INVALID",
            f"原因不能超过 {_MAX_REASON} 个字符",
            f"a reason is at most {_MAX_REASON} characters",
            "reason",
        )
    return reason


def check_allowed(ex: Exchange, action: str, row: Lookup[str, Any]) -> None:
    """FAILED_NOT_RETRYABLE / FAILED_NOT_RESUBMITTABLE for actions the failure's kind cannot take."""
    try:
        edge = ex.edge(row["edge"])
    except TongbanError:
        edge = None  # an edge no longer in the exchange: only discard and resolve
    system = ex.systems.get(edge.source) if edge and edge.source_kind == "system" else None
    if action == "resubmit" and (row["kind"] != "row" or system is None or row["dataset"] != edge.dataset):
        raise ReviewError(
            "FAILED_NOT_RESUBMITTABLE",
            "只有从本地系统读入的被拒行可以修改后重新提交",
            "only a rejected row read from a local system can be edited and resubmitted",
            row["ref"],
        )
    if action == "retry":
        ok = edge is not None and (
            row["kind"] in ("run", "batch")
            or (row["kind"] == "file" and system is not None and system.kind != "sql")
            or (row["kind"] == "row" and system is not None and system.kind == "sql" and bool(row["row_key"]))
        )
        if not ok:
            raise ReviewError(
                "FAILED_NOT_RETRYABLE",
                "这条失败传输不能从源重读：投放改正的文件（其中的行会自动解决它）、修改后重新提交，或丢弃",
                "this failed transfer cannot be re-read from its source: drop a corrected file (its rows "
                "resolve it by themselves), edit and resubmit it, or discard it",
                row["ref"],
            )


def act(
    ex: Exchange,
    libs: Libraries,
    ref: Ref,
    action: str,
    *,
    actor: str,
    audit: Auditor,
    reason: str | None = None,
    edit: Lookup[str, Any] | None = None,
    expect_version: int | None = None,
) -> Outcome:
    """Apply ``action`` to one failure; ReviewError (after auditing the refusal) when refused."""
    try:
        outcome = _act(ex, libs, ref, action, actor=actor, reason=reason, edit=edit, expect=expect_version)
    except TongbanError as exc:
        _audit(audit, actor, action, ref, None, reason, result=exc.code)
        raise
    _audit(audit, actor, action, ref, outcome, reason, result="ok")
    return outcome


def _audit(
    audit: Auditor,
    actor: str,
    action: str,
    ref: Ref,
    outcome: Outcome | None,
    reason: str | None,
    result: str,
) -> None:
    detail: dict[str, Any] = {}
    if outcome is not None:
        detail["state"] = outcome.state
        if outcome.where:
            detail["fields"] = outcome.where
    audit.append(
        actor, f"failed.{action}", subject=str(ref), reason=reason, result=result, detail=detail or None
    )


def _act(
    ex: Exchange,
    libs: Libraries,
    ref: Ref,
    action: str,
    *,
    actor: str,
    reason: str | None,
    edit: Lookup[str, Any] | None,
    expect: int | None,
) -> Outcome:
    if action not in ACTIONS:
        raise ReviewError("ARGUMENT_INVALID", f"未知操作 {action}", f"unknown action {action}", action[:20])
    reason = _check_reason(action, reason)
    row = query.get(ex, libs, ref)
    lib = libs.get(ref.node)
    _fresh(row, expect)
    check_allowed(ex, action, row)
    pending: dict[str, Any] | None = None
    changed: list[str] = []
    if action == "resubmit":
        if not edit:
            raise ReviewError("FAILED_EDIT_FIELD", "没有要修改的字段", "the edit changes no field", str(ref))
        edited, changed = apply_edit(ex, lib, {**row, "row": payload_of(row) or {}}, edit, libs)
        pending = {"action": "resubmit", "row": edited, "fields": changed, "by": actor}
    elif action == "retry":
        pending = {"action": "retry", "by": actor}
    state = {"retry": "queued", "resubmit": "queued", "discard": "discarded", "resolve": "resolved"}[action]
    t = lib.tables["failed_transfers"]
    now = utcnow()
    with lib.engine.begin() as conn:
        current = conn.execute(sa.select(t.c.state, t.c.version, t.c.pending).where(t.c.id == ref.id)).first()
        if current is None:
            raise ReviewError("FAILED_NOT_FOUND", "没有这条失败传输", "no such failed transfer", str(ref))
        _fresh({**row, "state": current[0], "version": current[1], "pending": current[2]}, row["version"])
        values: dict[str, Any] = {
            "state": state,
            "version": t.c.version + 1,
            "updated_at": now,
            "pending": None,
        }
        if pending is not None:
            values["pending"] = dumps(pending)
        if state in ("discarded", "resolved"):
            values.update(closed_at=now, closed_by=actor)
        done = conn.execute(
            t.update()
            .where(t.c.id == ref.id, t.c.version == row["version"], t.c.state.in_(ACTIVE))
            .values(**values)
        ).rowcount
        if done != 1:
            raise _changed(ref)
        conn.execute(
            lib.tables["failed_actions"]
            .insert()
            .values(
                **history_row(
                    ref.id,
                    actor=actor,
                    action=action,
                    state_from=current[0],
                    state_to=state,
                    at=now,
                    reason=reason,
                    detail={"fields": changed} if changed else None,
                )
            )
        )
    return Outcome(str(ref), action, True, state, where=",".join(changed))


def _changed(ref: Ref) -> ReviewError:
    entry = lookup("FAILED_CHANGED")
    return ReviewError("FAILED_CHANGED", entry.zh, entry.en, str(ref))


def _fresh(row: Lookup[str, Any], expect: int | None) -> None:
    """FAILED_CLOSED, FAILED_CHANGED or FAILED_IN_FLIGHT unless the failure can be acted on now."""
    if row["state"] not in ACTIVE:
        entry = lookup("FAILED_CLOSED")
        raise ReviewError(
            "FAILED_CLOSED", f"{entry.zh}（{row['state']}）", f"{entry.en} ({row['state']})", row["ref"]
        )
    if expect is not None and int(row["version"]) != int(expect):
        raise _changed(Ref.parse(row["ref"]))
    pending = payload_of({"payload": row.get("pending")})
    if isinstance(pending, dict) and pending.get("run"):
        entry = lookup("FAILED_IN_FLIGHT")
        raise ReviewError("FAILED_IN_FLIGHT", entry.zh, entry.en, f"{row['ref']} run {pending['run']}")


def act_many(
    ex: Exchange,
    libs: Libraries,
    action: str,
    *,
    actor: str,
    audit: Auditor,
    refs: list[tuple[Ref, int | None]] | None = None,
    where: Filter | None = None,
    reason: str | None = None,
    everything: bool = False,
    limit: int = MAX_MANY,
) -> list[Outcome]:
    """Apply ``action`` to the failures ``refs`` names (each with the version the operator saw, or None)
    or to those ``where`` selects (at most ``limit``, and never more than :data:`MAX_MANY`). Each is its own transaction; one refused
    does not stop the others: the outcomes say which were applied and why others were not."""
    if action == "resubmit":
        raise ReviewError(
            "ARGUMENT_INVALID",
            "重新提交一次只能修改一行",
            "resubmit edits one row at a time",
            "resubmit",
        )
    _check_reason(action, reason)
    if refs is None:
        if where is None or not (where.narrowed() or everything):
            raise ReviewError(
                "FAILED_NO_FILTER",
                "批量操作需要至少一个筛选条件（节点、数据集、代码、类型、边或时间）",
                "acting on many needs at least one filter (node, dataset, code, kind, edge or time)",
                "filter",
            )
        refs = [(r, v) for r, v in query.select_refs(ex, libs, where, min(limit, MAX_MANY))]
    out: list[Outcome] = []
    for ref, version in refs:
        try:
            out.append(
                act(ex, libs, ref, action, actor=actor, audit=audit, reason=reason, expect_version=version)
            )
        except TongbanError as exc:
            out.append(
                Outcome(str(ref), action, False, None, exc.code, exc.message_zh, exc.message_en, exc.where)
            )
    return out


def reveal(
    ex: Exchange,
    libs: Libraries,
    ref: Ref,
    *,
    actor: str,
    allowed: bool,
    audit: Auditor,
    purpose: str | None = None,
) -> dict[str, Any]:
    """The failure with its values unmasked, for an operator allowed to see them (REVEAL_FORBIDDEN
    otherwise); audited either way, and noted in the failure's history."""
    if not allowed:
        audit.append(actor, "failed.reveal", subject=str(ref), purpose=purpose, result="REVEAL_FORBIDDEN")
        entry = lookup("REVEAL_FORBIDDEN")
        raise ReviewError("REVEAL_FORBIDDEN", entry.zh, entry.en, str(ref))
    row = query.get(ex, libs, ref)
    lib = libs.get(ref.node)
    with lib.engine.begin() as conn:
        conn.execute(
            lib.tables["failed_actions"]
            .insert()
            .values(
                **history_row(
                    ref.id,
                    actor=actor,
                    action="reveal",
                    state_from=None,
                    state_to=None,
                    at=utcnow(),
                    reason=purpose,
                )
            )
        )
    audit.append(actor, "failed.reveal", subject=str(ref), purpose=purpose, result="ok")
    return row
