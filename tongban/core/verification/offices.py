"""Remote offices (service windows) that verify against a node: a token shown once and stored only as
its SHA-256, a scope (:class:`~tongban.core.verification.scope.Scope`) and a rate limit per minute.

Tokens read ``tbo_<office code>_<43 random characters>``: the code finds the office, the hash is
compared in constant time. Rotating replaces the hash (the old token stops at once); revoking refuses
the office's token from then on (AUTH_REVOKED).
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from tongban.core.store import TABLES, Library
from tongban.core.verification.errors import VerifyError
from tongban.core.verification.records import office_row, reader
from tongban.core.verification.scope import Scope

__all__ = ["CODE_RE", "Office", "add", "authenticate", "get", "list_offices", "revoke", "rotate"]

CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$")
_TOKEN_RE = re.compile(r"^tbo_([A-Za-z0-9][A-Za-z0-9-]{0,63})_([A-Za-z0-9_-]{43})$")
MAX_RATE = 1_000_000
_BY_CODE = sa.select(TABLES["offices"]).where(TABLES["offices"].c.code == sa.bindparam("code"))


@dataclass(frozen=True)
class Office:
    """One office as the library keeps it (no token, no hash)."""

    code: str
    name: str
    scope: Scope
    rate_limit: int
    created_at: _dt.datetime
    rotated_at: _dt.datetime | None = None
    revoked_at: _dt.datetime | None = None
    revoked_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "scopes": self.scope.to_dict(),
            "rate_limit": self.rate_limit,
            "created_at": self.created_at.isoformat(),
            "rotated_at": self.rotated_at.isoformat() if self.rotated_at else None,
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "revoked_reason": self.revoked_reason,
        }


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _new_token(code: str) -> str:
    return f"tbo_{code}_{secrets.token_urlsafe(32)}"


_OFFICE_COLUMNS = (
    "code",
    "name",
    "scopes",
    "rate_limit",
    "created_at",
    "rotated_at",
    "revoked_at",
    "revoked_reason",
)


def _office(row: Any) -> Office:
    """The office a row describes (read once per version of the row: every token check reads the row,
    but its scope is parsed and checked again only when the row has changed)."""
    return _office_of(tuple(row[name] for name in _OFFICE_COLUMNS))


@functools.lru_cache(maxsize=1024)
def _office_of(values: tuple[Any, ...]) -> Office:
    code, name, scopes, rate_limit, created_at, rotated_at, revoked_at, revoked_reason = values
    return Office(
        code=code,
        name=name,
        scope=Scope.from_dict(json.loads(scopes)),
        rate_limit=int(rate_limit),
        created_at=created_at,
        rotated_at=rotated_at,
        revoked_at=revoked_at,
        revoked_reason=revoked_reason,
    )


def _check_code(code: str) -> str:
    if not isinstance(code, str) or not CODE_RE.match(code):
        raise VerifyError(
            "OFFICE_INVALID",
            f"窗口代码无效：{code!r}（字母、数字与 -，最多 64 个）",
            f"invalid office code {code!r} (letters, digits and -, up to 64)",
            "code",
        )
    return code


def add(library: Library, code: str, name: str, scope: Scope, rate_limit: int = 600) -> tuple[Office, str]:
    """Register an office; returns it and its token (shown once). OFFICE_EXISTS, OFFICE_INVALID."""
    _check_code(code)
    if not isinstance(rate_limit, int) or not 1 <= rate_limit <= MAX_RATE:
        raise VerifyError(
            "OFFICE_INVALID",
            f"速率限制应为 1 至 {MAX_RATE} 次每分钟",
            f"the rate limit must be 1 to {MAX_RATE} per minute",
            "rate_limit",
        )
    if not scope.datasets:
        raise VerifyError(
            "OFFICE_INVALID", "须至少授权一个数据集", "grant at least one dataset", "scopes.datasets"
        )
    name = (name or code).strip()[:200]
    token = _new_token(code)
    now = _dt.datetime.now(_dt.UTC)
    t = library.tables["offices"]
    with library.engine.begin() as conn:
        if conn.execute(sa.select(t.c.code).where(t.c.code == code)).first():
            raise VerifyError("OFFICE_EXISTS", f"窗口 {code} 已存在", f"office {code} exists", code)
        conn.execute(
            t.insert().values(
                code=code,
                name=name,
                token_hash=_hash(token),
                scopes=json.dumps(scope.to_dict(), ensure_ascii=False),
                rate_limit=rate_limit,
                created_at=now,
            )
        )
    return Office(code, name, scope, rate_limit, now), token


def get(library: Library, code: str) -> Office:
    """The office ``code``; OFFICE_UNKNOWN otherwise."""
    with reader(library).connect() as conn:
        row = conn.execute(_BY_CODE, {"code": code}).mappings().first()
    if row is None:
        raise VerifyError("OFFICE_UNKNOWN", f"没有窗口 {code}", f"no office {code}", code)
    return _office(row)


def list_offices(library: Library) -> list[Office]:
    t = library.tables["offices"]
    with library.connect() as conn:
        return [_office(r) for r in conn.execute(sa.select(t).order_by(t.c.code)).mappings()]


def rotate(library: Library, code: str) -> str:
    """A new token for ``code`` (the old one stops at once); a revoked office stays revoked."""
    office = get(library, code)
    if office.revoked_at is not None:
        raise VerifyError(
            "AUTH_REVOKED", f"窗口 {code} 已吊销，不能轮换", f"office {code} is revoked: no rotation", code
        )
    token = _new_token(code)
    t = library.tables["offices"]
    with library.engine.begin() as conn:
        conn.execute(
            t.update()
            .where(t.c.code == code)
            .values(token_hash=_hash(token), rotated_at=_dt.datetime.now(_dt.UTC))
        )
    return token


def revoke(library: Library, code: str, reason: str) -> Office:
    """Refuse the office's token from now on (a second revoke keeps the first time)."""
    office = get(library, code)
    if office.revoked_at is None:
        t = library.tables["offices"]
        with library.engine.begin() as conn:
            conn.execute(
                t.update()
                .where(t.c.code == code)
                .values(revoked_at=_dt.datetime.now(_dt.UTC), revoked_reason=(reason or "").strip()[:500])
            )
    return get(library, code)


def authenticate(library: Library, token: str) -> Office:
    """The office whose token this is; VerifyError AUTH_INVALID or AUTH_REVOKED otherwise."""
    invalid = VerifyError("AUTH_INVALID", "令牌无效", "invalid token", "Authorization")
    match = _TOKEN_RE.match(token or "") if isinstance(token, str) and len(token) < 200 else None
    if match is None:
        raise invalid
    row = office_row(library, match.group(1))
    if row is None or not hmac.compare_digest(row["token_hash"], _hash(token)):
        raise invalid
    if row["revoked_at"] is not None:
        raise VerifyError(
            "AUTH_REVOKED", "该窗口的令牌已吊销", "the office's token is revoked", "Authorization"
        )
    return _office(row)
