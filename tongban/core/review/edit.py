"""An operator's edit of a rejected row, checked before anything is queued.

The edited row is validated again with the very contract the sync uses (the system's timezone and
allowlist). It is refused — nothing queued — when it still fails (FAILED_EDIT_INVALID, naming each
code and field), when it names a field the dataset does not have or a value that is not text or too
long (FAILED_EDIT_FIELD), when it changes the record's key (FAILED_EDIT_KEY) or its owner field
(FAILED_EDIT_OWNER) — either may only be corrected when the value itself failed validation — and when
the record it would write belongs to another node or is another record already kept (a corrected key
that names an existing record).
"""

from __future__ import annotations

from collections.abc import Mapping as Lookup
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

import schemas
from schemas.errors import TongbanError
from schemas.rules import RULES
from schemas.validate import ContractError, Severity, Validator
from tongban.core.config import Exchange
from tongban.core.engine.libraries import Libraries
from tongban.core.engine.plan import plan_for
from tongban.core.review.errors import ReviewError
from tongban.core.store import Library

__all__ = ["MAX_VALUE", "Finding", "apply_edit", "findings", "parse_assignments"]

#: The longest value an edit may set (characters); real fields are far shorter.
MAX_VALUE = 4096


@dataclass(frozen=True)
class Finding:
    """One rule a row breaks: its code, the field it concerns, and what it means in both languages."""

    code: str
    field: str
    severity: str
    zh: str
    en: str

    def as_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def _table(dataset: str, row: Lookup[str, Any]) -> pa.Table:
    spec = schemas.get(dataset)
    return pa.table(
        {
            f: pa.array([None if row.get(f) is None else str(row.get(f)).encode("utf-8")], pa.binary())
            for f in spec.names
        }
    )


def findings(ex: Exchange, edge_id: str, dataset: str, row: Lookup[str, Any]) -> tuple[list[Finding], dict]:
    """What the contract finds in ``row`` as the edge validates it, and the row in canonical form."""
    plan = plan_for(ex, edge_id)
    validator = Validator(
        schemas.get(dataset), timezone=plan.timezone, uscc_allowlist=plan.allowlist, check_duplicates=False
    )
    try:
        result = validator.validate(_table(dataset, row))
    except ContractError as exc:
        raise ReviewError(exc.code, exc.message_zh, exc.message_en, "row") from None
    out: list[Finding] = []
    for report in result.reports():
        for code, field in report.findings:
            rule = RULES[code]
            out.append(
                Finding(
                    code,
                    field,
                    "error" if report.severity is Severity.ERROR else "warning",
                    rule.message("zh", field),
                    rule.message("en", field),
                )
            )
    canonical = {k: _plain(v) for k, v in result.table.to_pylist()[0].items()}
    return out, canonical


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def parse_assignments(items: list[str]) -> dict[str, str | None]:
    """``field=value`` pairs (``field=`` clears the field) into a dict; FAILED_EDIT_FIELD otherwise."""
    out: dict[str, str | None] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ReviewError("FAILED_EDIT_FIELD", "应写成 字段=值", "write it as field=value", item[:60])
        out[name.strip()] = value if value != "" else None
    return out


def _stored_elsewhere(ex: Exchange, libs: Libraries | None, node: str, dataset: str, key: str) -> str | None:
    """The owner of ``key`` as the node's parents know it (province, national), if one holds it."""
    if libs is None:
        return None
    parent = ex.nodes[node].parent if node in ex.nodes else None
    while parent:
        try:
            rec = libs.get(parent).record(dataset, key)
        except (TongbanError, sa.exc.SQLAlchemyError):
            rec = None  # a parent that cannot be read now: its own load still refuses a conflict
        if rec is not None:
            return str(rec["_owner"])
        parent = ex.nodes[parent].parent
    return None


def apply_edit(
    ex: Exchange,
    lib: Library,
    failure: dict[str, Any],
    changes: Lookup[str, Any],
    libs: Libraries | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The edited row (the failure's row with ``changes``) if it may be resubmitted, and the names of
    the fields it changes; ReviewError otherwise (see the module docstring)."""
    dataset = failure["dataset"]
    spec = schemas.get(dataset)
    if not isinstance(changes, Lookup) or not changes:
        raise ReviewError(
            "FAILED_EDIT_FIELD", "没有要修改的字段", "the edit changes no field", failure["ref"]
        )
    original = failure.get("row") or {}
    known = set(spec.names)
    for name, value in changes.items():
        if name not in known:
            where = f"{name}"[:64]
            code = "FAILED_EDIT_OWNER" if str(name).startswith("_") else "FAILED_EDIT_FIELD"
            raise ReviewError(
                code,
                f"数据集 {dataset} 没有可修改的字段 {where}",
                f"dataset {dataset} has no field {where} an edit may set",
                where,
            )
        if value is not None and not isinstance(value, str | int | float):
            raise ReviewError("FAILED_EDIT_FIELD", "字段值应为文本", "a field's value must be text", name)
        if value is not None and len(str(value)) > MAX_VALUE:
            raise ReviewError(
                "FAILED_EDIT_FIELD",
                f"字段值超过 {MAX_VALUE} 个字符",
                f"a field's value is longer than {MAX_VALUE} characters",
                name,
            )
    row = {f: original.get(f) for f in spec.names}
    row.update({k: None if v is None else str(v) for k, v in changes.items()})
    changed = sorted(k for k in changes if _text(original.get(k)) != _text(row.get(k)))
    if not changed:
        raise ReviewError(
            "FAILED_EDIT_FIELD", "修改没有改变任何值", "the edit changes no value", failure["ref"]
        )
    before, _ = findings(ex, failure["edge"], dataset, original)
    failing = {f.field for f in before if f.severity == "error"}
    for field, code in ((spec.key, "FAILED_EDIT_KEY"), (spec.owner_field, "FAILED_EDIT_OWNER")):
        if field in changed and field not in failing:
            zh = "主键" if code == "FAILED_EDIT_KEY" else "所有者字段"
            en = "key" if code == "FAILED_EDIT_KEY" else "owner field"
            raise ReviewError(
                code,
                f"不能修改记录的{zh} {field}：它本身通过了校验",
                f"the record's {en} {field} may not change: it passed validation",
                field,
            )
    after, canonical = findings(ex, failure["edge"], dataset, row)
    errors = [f for f in after if f.severity == "error"]
    if errors:
        raise ReviewError(
            "FAILED_EDIT_INVALID",
            "修改后的行仍未通过校验：" + "；".join(f"{f.code}（{f.field}）" for f in errors),
            "the edited row still fails validation: " + "; ".join(f"{f.code} ({f.field})" for f in errors),
            ",".join(sorted({f.field for f in errors})),
        )
    plan = plan_for(ex, failure["edge"])
    key = canonical.get(spec.key)
    stored = lib.record(dataset, str(key)) if key is not None else None
    owner = stored["_owner"] if stored is not None else None
    if owner is None and key is not None and plan.owner:
        owner = _stored_elsewhere(ex, libs, plan.owner, dataset, str(key))
    if owner is not None and owner != plan.owner:
        raise ReviewError(
            "FAILED_EDIT_OWNER",
            f"记录属于节点 {owner}，不能由 {plan.owner} 提交",
            f"the record belongs to node {owner}; {plan.owner} may not submit it",
            spec.key,
        )
    if stored is not None and key != failure.get("row_key"):
        raise ReviewError(
            "FAILED_EDIT_KEY",
            "改正后的主键已是另一条记录的主键",
            "the corrected key is already another record's key",
            spec.key,
        )
    return {f: _text(row.get(f)) for f in spec.names}, changed


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
