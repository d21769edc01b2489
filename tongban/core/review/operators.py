"""Operator accounts of the review page, kept in the node's library.

Passwords are stored as scrypt hashes (:func:`hashlib.scrypt`, n=2**14, r=8, p=1, a 16-byte salt),
compared in constant time; a password is never stored, logged or shown. Scopes: ``review`` (list,
inspect masked, act) and ``review:reveal`` (also see unmasked values — a separate, audited action).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from tongban.core.review.errors import ReviewError
from tongban.core.store import Library
from tongban.core.store.rows import utcnow

__all__ = [
    "REVEAL",
    "REVIEW",
    "Operator",
    "add",
    "authenticate",
    "disable",
    "hash_password",
    "list_all",
    "verify_password",
]

REVIEW = "review"
REVEAL = "review:reveal"
_NAME = re.compile(r"[A-Za-z0-9._-]{2,64}")
_N, _R, _P = 2**14, 8, 1
MIN_PASSWORD = 12
MAX_PASSWORD = 1024


@dataclass(frozen=True)
class Operator:
    username: str
    name: str
    scopes: frozenset[str]
    disabled: bool

    @property
    def may_reveal(self) -> bool:
        return REVEAL in self.scopes


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash``."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored`` (constant-time; a malformed hash never matches)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt" or len(password) > MAX_PASSWORD:
            return False
        got = hashlib.scrypt(
            password.encode("utf-8"),
            salt=_unb64(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(_unb64(digest)),
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, _unb64(digest))


def _check_name(username: str) -> str:
    if not _NAME.fullmatch(username or ""):
        raise ReviewError(
            "OPERATOR_NAME",
            "操作员用户名应为 2–64 个字母、数字、点、横线或下划线",
            "an operator's username is 2-64 letters, digits, dots, dashes or underscores",
            (username or "")[:64],
        )
    return username


def add(lib: Library, username: str, name: str, password: str, *, reveal: bool, by: str) -> Operator:
    """A new operator (OPERATOR_EXISTS, OPERATOR_NAME, OPERATOR_PASSWORD_WEAK)."""
    _check_name(username)
    if len(password) < MIN_PASSWORD or len(password) > MAX_PASSWORD:
        raise ReviewError(
            "OPERATOR_PASSWORD_WEAK",
            f"密码应为 {MIN_PASSWORD}–{MAX_PASSWORD} 个字符",
            f"a password has {MIN_PASSWORD}-{MAX_PASSWORD} characters",
            username,
        )
    scopes = [REVIEW, REVEAL] if reveal else [REVIEW]
    t = lib.tables["operators"]
    with lib.engine.begin() as conn:
        if conn.execute(sa.select(t.c.username).where(t.c.username == username)).first():
            raise ReviewError(
                "OPERATOR_EXISTS", "已有同名操作员", "an operator of that name exists", username
            )
        conn.execute(
            t.insert().values(
                username=username,
                name=(name or username)[:120],
                password=hash_password(password),
                scopes=" ".join(scopes),
                disabled=False,
                created_at=utcnow(),
                created_by=by[:120],
            )
        )
    return Operator(username, name or username, frozenset(scopes), False)


def _operator(row: sa.Row) -> Operator:
    return Operator(row.username, row.name, frozenset(row.scopes.split()), bool(row.disabled))


def list_all(lib: Library) -> list[Operator]:
    t = lib.tables["operators"]
    with lib.connect() as conn:
        return [_operator(r) for r in conn.execute(sa.select(t).order_by(t.c.username))]


def disable(lib: Library, username: str) -> Operator:
    """Disable an operator: their password no longer logs in (sessions end at their next request)."""
    t = lib.tables["operators"]
    with lib.engine.begin() as conn:
        if not conn.execute(t.update().where(t.c.username == username).values(disabled=True)).rowcount:
            raise ReviewError("OPERATOR_UNKNOWN", "没有这个操作员", "no such operator", username[:64])
        row = conn.execute(sa.select(t).where(t.c.username == username)).one()
    return _operator(row)


def get(lib: Library, username: str) -> Operator | None:
    """The operator, enabled or not (None if unknown)."""
    t = lib.tables["operators"]
    with lib.connect() as conn:
        row = conn.execute(sa.select(t).where(t.c.username == username)).first()
    return _operator(row) if row else None


_DUMMY = hash_password(secrets.token_urlsafe(16))


def authenticate(lib: Library, username: str, password: str) -> Operator | None:
    """The enabled operator whose password this is, else None (same work either way: no user probing)."""
    t = lib.tables["operators"]
    row = None
    if _NAME.fullmatch(username or "") and len(password or "") <= MAX_PASSWORD:
        with lib.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.username == username)).first()
    ok = verify_password(password or "", row.password if row else _DUMMY)
    if row is None or not ok or row.disabled:
        return None
    return _operator(row)
