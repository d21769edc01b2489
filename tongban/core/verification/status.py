"""What a record's status means to a service window, per dataset, in Chinese and English.

States: ``valid``, ``expired``, ``suspended``, ``revoked``, ``cancelled``, ``moved`` and ``other``. A
license marked 01 有效 whose ``valid_until`` has passed reads as expired; a moved record names where it
went (division code and name).

>>> describe("license", {"status": "07", "valid_until": None})["zh"]
'已吊销'
>>> describe("license", {"status": "01", "valid_until": "2001-01-01"})["state"]
'expired'
>>> d = describe("population", {"status": "moved_out", "moved_to": "630104"})
>>> d["state"], d["moved_to"], d["moved_to_name"]
('moved', '630104', '城西区')
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

from schemas.standards import gbt2260

__all__ = ["STATES", "VALID_CODES", "describe"]

#: state: (zh, en) for the headline a clerk reads.
STATES = {
    "valid": ("有效", "valid"),
    "expired": ("已过期失效", "expired"),
    "suspended": ("已暂扣", "suspended"),
    "revoked": ("已吊销", "revoked"),
    "cancelled": ("已注销", "cancelled"),
    "moved": ("已迁出", "moved"),
    "other": ("其他状态", "other status"),
}

# (dataset, stored code) -> (state, zh, en)
_CODES: dict[tuple[str, str], tuple[str, str, str]] = {
    ("license", "01"): ("valid", "有效", "valid"),
    ("license", "02"): ("suspended", "已暂扣", "suspended"),
    ("license", "03"): ("revoked", "已撤销", "withdrawn (revoked)"),
    ("license", "04"): ("cancelled", "已注销", "cancelled"),
    ("license", "05"): ("expired", "已失效", "expired"),
    ("license", "06"): ("moved", "已转出", "moved"),
    ("license", "07"): ("revoked", "已吊销", "revoked"),
    ("license", "99"): ("other", "其他状态", "other status"),
    ("business", "active"): ("valid", "存续", "active"),
    ("business", "revoked"): ("revoked", "已吊销", "revoked"),
    ("business", "deregistered"): ("cancelled", "已注销", "deregistered"),
    ("business", "moved_out"): ("moved", "已迁出", "moved out"),
    ("population", "normal"): ("valid", "正常", "normal"),
    ("population", "moved_out"): ("moved", "已迁出", "moved out"),
    ("population", "deceased"): ("cancelled", "已注销（死亡）", "cancelled (deceased)"),
}

#: The stored status that means valid, per dataset.
VALID_CODES = {"license": "01", "business": "active", "population": "normal"}


def _division_name(code: object) -> str | None:
    if not isinstance(code, str):
        return None
    try:
        return gbt2260.lookup(code).name
    except (KeyError, ValueError, LookupError):
        return None


def describe(dataset: str, record: dict[str, Any], today: _dt.date | None = None) -> dict[str, Any]:
    """``{state, code, zh, en, moved_to, moved_to_name}`` for a stored record."""
    code = str(record.get("status") or "")
    state, zh, en = _CODES.get((dataset, code), ("other", "其他状态", "other status"))
    if dataset == "license" and state == "valid":
        until = record.get("valid_until")
        if isinstance(until, str):
            try:
                until = _dt.date.fromisoformat(until[:10])
            except ValueError:
                until = None
        if isinstance(until, _dt.date) and until < (today or _dt.date.today()):
            state, zh, en = "expired", "已过有效期", "expired (validity ended)"
    moved_to = record.get("moved_to") if state == "moved" else None
    return {
        "state": state,
        "code": code,
        "zh": zh,
        "en": en,
        "moved_to": moved_to,
        "moved_to_name": _division_name(moved_to),
    }
