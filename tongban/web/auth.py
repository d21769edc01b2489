"""Who is asking: bearer tokens for programs, a session cookie for people, CSRF for their forms.

Each area registers how its callers prove who they are — offices by token (:func:`register_bearer`,
and the same token on the login page), operators by account and password (:func:`register_login`) —
so the app has one login page and one session, whatever kind of person logs in.

The session is a JWT (HS256 under the node's session secret) carrying the principal and an expiry;
a form's CSRF token is an HMAC of the session's own id, checked on every form post.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import jwt

from tongban.web.errors import ApiError

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from tongban.web.settings import WebSettings

__all__ = [
    "COOKIE",
    "Principal",
    "Throttle",
    "bearer_principal",
    "check_csrf",
    "clear_session",
    "csrf_token",
    "login",
    "login_kinds",
    "register_bearer",
    "register_login",
    "register_session_check",
    "session_principal",
    "start_session",
]

COOKIE = "tongban_session"
Kind = Literal["office", "operator"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: an office (verification) or an operator (review)."""

    kind: Kind
    id: str
    name: str
    scopes: frozenset[str] = frozenset()
    attrs: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def actor(self) -> str:
        """How the audit log names this caller, e.g. ``office:gz-window-3``."""
        return f"{self.kind}:{self.id}"

    def has(self, scope: str) -> bool:
        return scope in self.scopes


BearerResolver = Callable[["WebSettings", str], "Principal | None"]
LoginResolver = Callable[["WebSettings", str, str], "Principal | None"]

_BEARERS: list[BearerResolver] = []
_LOGINS: dict[str, LoginResolver] = {}
_LABELS: dict[str, tuple[str, str]] = {}


def register_bearer(resolver: BearerResolver) -> None:
    """Add a way to turn an ``Authorization: Bearer`` token into a principal (None: not mine)."""
    if resolver not in _BEARERS:
        _BEARERS.append(resolver)


def register_login(kind: str, resolver: LoginResolver, label: tuple[str, str] = ("", "")) -> None:
    """Add a kind of login for the login page: (username, secret) -> principal or None."""
    _LOGINS[kind] = resolver
    _LABELS[kind] = label if any(label) else (kind, kind)


def login_kinds() -> dict[str, tuple[str, str]]:
    """The kinds of login the page offers, with their labels in Chinese and English."""
    return dict(_LABELS)


def bearer_principal(settings: WebSettings, token: str) -> Principal:
    """The principal a bearer token names, or AUTH_INVALID."""
    if not token or len(token) > 512:
        raise ApiError("AUTH_INVALID", 401, "Authorization", headers={"WWW-Authenticate": "Bearer"})
    for resolver in _BEARERS:
        principal = resolver(settings, token)
        if principal is not None:
            return principal
    raise ApiError("AUTH_INVALID", 401, "Authorization", headers={"WWW-Authenticate": "Bearer"})


class Throttle:
    """Failed logins remembered per account and per client address: after ``limit`` failures within
    ``window`` seconds, further tries are refused (AUTH_THROTTLED) until the window has passed.

    Kept in the process (one per app); a deployment with several workers multiplies the allowance by
    their number, which still stops guessing at any useful speed.
    """

    def __init__(
        self, limit: int = 5, window: float = 900.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: dict[str, list[float]] = {}

    def _recent(self, key: str) -> list[float]:
        now = self.clock()
        kept = [t for t in self._failures.get(key, []) if now - t < self.window]
        if kept:
            self._failures[key] = kept
        else:
            self._failures.pop(key, None)
        return kept

    def check(self, *keys: str) -> None:
        """AUTH_THROTTLED (429) if any key has used up its failures."""
        for key in keys:
            recent = self._recent(key)
            if len(recent) >= self.limit:
                wait = int(self.window - (self.clock() - recent[0])) + 1
                raise ApiError(
                    "AUTH_THROTTLED",
                    429,
                    "login",
                    zh=f"登录失败次数过多，请 {wait} 秒后再试",
                    en=f"too many failed logins; try again in {wait} s",
                    headers={"Retry-After": str(wait)},
                )

    def failed(self, *keys: str) -> None:
        if len(self._failures) > 100_000:  # bounded memory under a flood of distinct names
            self._failures.clear()
        for key in keys:
            self._failures.setdefault(key, []).append(self.clock())

    def succeeded(self, account: str) -> None:
        self._failures.pop(account, None)


def login(settings: WebSettings, kind: str, username: str, secret: str) -> Principal:
    """Check a login form; AUTH_INVALID for anything wrong (never saying which part)."""
    resolver = _LOGINS.get(kind)
    if resolver is None or len(username) > 200 or len(secret) > 512 or not secret:
        raise ApiError("AUTH_INVALID", 401, "login")
    principal = resolver(settings, username, secret)
    if principal is None:
        raise ApiError("AUTH_INVALID", 401, "login")
    return principal


# -- the session ----------------------------------------------------------------------------------


def start_session(settings: WebSettings, response: Response, principal: Principal) -> str:
    """Set the session cookie for ``principal``; returns the session id."""
    sid = secrets.token_urlsafe(18)
    now = int(time.time())
    claims = {
        "sid": sid,
        "kind": principal.kind,
        "sub": principal.id,
        "name": principal.name,
        "scopes": sorted(principal.scopes),
        "attrs": {k: v for k, v in principal.attrs.items() if isinstance(v, str | int | bool | list)},
        "iat": now,
        "exp": now + int(settings.session_hours * 3600),
        "node": settings.node,
    }
    token = jwt.encode(claims, settings.session_secret, algorithm="HS256")
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=settings.secure_cookies,
        max_age=int(settings.session_hours * 3600),
        path="/",
    )
    return sid


def clear_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/")


def _claims(settings: WebSettings, request: Request) -> dict[str, Any] | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    if len(token) > 4096:
        raise ApiError("AUTH_INVALID", 401, COOKIE)
    try:
        claims = jwt.decode(
            token,
            settings.session_secret,
            algorithms=["HS256"],
            options={"require": ["exp", "iat", "sid", "sub", "kind"]},
        )
    except jwt.ExpiredSignatureError:
        raise ApiError("SESSION_EXPIRED", 401, COOKIE) from None
    except jwt.PyJWTError:
        raise ApiError("AUTH_INVALID", 401, COOKIE) from None
    if claims.get("node") != settings.node or claims.get("kind") not in ("office", "operator"):
        raise ApiError("AUTH_INVALID", 401, COOKIE)
    return claims


def session_principal(settings: WebSettings, request: Request) -> Principal | None:
    """The principal of the request's session cookie (None without one; a bad one is refused)."""
    claims = _claims(settings, request)
    if claims is None:
        return None
    principal = Principal(
        kind=claims["kind"],
        id=str(claims["sub"]),
        name=str(claims.get("name", "")),
        scopes=frozenset(str(s) for s in claims.get("scopes", [])),
        attrs=dict(claims.get("attrs") or {}) | {"sid": claims["sid"]},
    )
    # An area may re-check that the account still exists and is enabled (a revoked office's session
    # ends at once): the resolver registered for its login kind is asked again with no secret.
    check = _STILL_VALID.get(principal.kind)
    if check is not None and not check(settings, principal):
        raise ApiError("AUTH_INVALID", 401, COOKIE)
    return principal


_STILL_VALID: dict[str, Callable[[WebSettings, Principal], bool]] = {}


def register_session_check(kind: str, check: Callable[[WebSettings, Principal], bool]) -> None:
    """Re-check a session's principal on every request (revoked or disabled: refused at once)."""
    _STILL_VALID[kind] = check


def csrf_token(settings: WebSettings, request: Request) -> str:
    """The CSRF token for forms on this session's pages (empty without a session)."""
    claims = _claims(settings, request)
    if claims is None:
        return ""
    return _csrf_for(settings, str(claims["sid"]))


def _csrf_for(settings: WebSettings, sid: str) -> str:
    return hmac.new(settings.session_secret, f"csrf:{sid}".encode(), hashlib.sha256).hexdigest()


def check_csrf(settings: WebSettings, request: Request, presented: str | None) -> None:
    """CSRF_INVALID unless ``presented`` is this session's token."""
    claims = _claims(settings, request)
    if claims is None:
        raise ApiError("AUTH_REQUIRED", 401, "session")
    expected = _csrf_for(settings, str(claims["sid"]))
    if not presented or not hmac.compare_digest(presented, expected):
        raise ApiError("CSRF_INVALID", 403, "csrf")
