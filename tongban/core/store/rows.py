"""What a load is given and what it reports: rejected rows, per-batch counts, and the one builder of a
failed transfer's row (rejected rows, owner conflicts, refused batches, failed runs and files alike)."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FailedRow", "LoadResult", "dumps", "failure_digest", "failure_row", "utcnow"]


@dataclass(frozen=True)
class FailedRow:
    """A row of a batch that will not load: its number in the extract, key, codes, messages, payload."""

    row_number: int
    key: str | None
    codes: Sequence[str]
    message_zh: str
    message_en: str
    payload: dict[str, Any]
    where: str = ""  # the file or system and row it came from
    failure_id: int | None = None  # a resubmitted row's failure (rejected again: that one reopens)


@dataclass
class LoadResult:
    """What one batch did to the library."""

    batch_id: str
    duplicate: bool = False  # the batch id was loaded before: nothing done
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    conflicts: int = 0
    rejected: int = 0
    conflict_keys: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "conflict_keys"}


def _json_default(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    return str(value)


def dumps(value: object) -> str:
    """Compact JSON that keeps Chinese readable and never fails on bytes, dates or decimals."""
    return json.dumps(value, ensure_ascii=False, default=_json_default, separators=(",", ":"))


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


def failure_digest(edge: str, row: FailedRow) -> str:
    """Of edge, key, codes and payload: a row re-read in the lookback window is kept once."""
    return hashlib.sha256(dumps([edge, row.key, sorted(row.codes), row.payload]).encode()).hexdigest()


def failure_row(
    *,
    kind: str,
    edge: str,
    dataset: str,
    source: str,
    target: str,
    codes: Sequence[str],
    message_zh: str,
    message_en: str,
    now: _dt.datetime,
    where: str | None = "",
    batch_id: str | None = None,
    row_number: int | None = None,
    row_key: str | None = None,
    payload: Any = None,
    digest: str | None = None,
) -> dict[str, Any]:
    """One open failed transfer, as the ``failed_transfers`` table stores it."""
    return {
        "kind": kind,
        "state": "open",
        "edge": edge,
        "dataset": dataset,
        "source": source,
        "target": target,
        "batch_id": batch_id,
        "row_number": row_number,
        "row_key": row_key,
        "codes": ",".join(codes),
        "message_zh": message_zh,
        "message_en": message_en,
        "where": where,
        "payload": dumps(payload) if payload is not None else None,
        "digest": digest,
        "attempts": 1,
        "version": 1,
        "created_at": now,
        "updated_at": now,
    }


def manifest_key_id(manifest_json: str) -> str | None:
    """The key id a manifest names (None when it cannot be read)."""
    try:
        kid = json.loads(manifest_json).get("key_id")
    except (ValueError, AttributeError):
        return None
    return kid if isinstance(kid, str) else None
