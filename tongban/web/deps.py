"""FastAPI dependencies: the settings, the audit log, who is asking, what they may do, CSRF."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Form, Header, Request

from tongban.core.audit import AuditLog
from tongban.web import auth
from tongban.web.auth import Principal
from tongban.web.errors import ApiError
from tongban.web.settings import WebSettings

__all__ = [
    "LoginRedirect",
    "current_principal",
    "get_audit",
    "get_settings",
    "page_principal",
    "require_kind",
    "require_scope",
    "verify_csrf",
]


def get_settings(request: Request) -> WebSettings:
    """The app's :class:`WebSettings`."""
    return request.app.state.settings  # type: ignore[no-any-return]


def get_audit(settings: Annotated[WebSettings, Depends(get_settings)]) -> AuditLog:
    """The node's audit log."""
    return settings.audit


def current_principal(
    request: Request,
    settings: Annotated[WebSettings, Depends(get_settings)],
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    """The caller by ``Authorization: Bearer`` or by session cookie; AUTH_REQUIRED with neither."""
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer":
            raise ApiError("AUTH_INVALID", 401, "Authorization", headers={"WWW-Authenticate": "Bearer"})
        principal = auth.bearer_principal(settings, token.strip())
    else:
        principal = auth.session_principal(settings, request)
    if principal is None:
        raise ApiError("AUTH_REQUIRED", 401, "Authorization", headers={"WWW-Authenticate": "Bearer"})
    request.state.principal = principal
    return principal


class LoginRedirect(Exception):
    """A page asked for without a (valid) session: go to the login page and come back."""

    def __init__(self, next_url: str, code: str = "AUTH_REQUIRED") -> None:
        self.next_url = next_url
        self.code = code


def page_principal(request: Request, settings: Annotated[WebSettings, Depends(get_settings)]) -> Principal:
    """The logged-in person of a page, else a redirect to ``/login?next=…``."""
    path, root = request.url.path, request.scope.get("root_path", "")
    if root and path.startswith(root):  # mounted (e.g. in Airflow at /tongban): next is inside the app
        path = path[len(root) :] or "/"
    target = path + (f"?{request.url.query}" if request.url.query else "")
    try:
        principal = auth.session_principal(settings, request)
    except ApiError as exc:
        raise LoginRedirect(target, exc.code) from None
    if principal is None:
        raise LoginRedirect(target)
    request.state.principal = principal
    return principal


def login_url(next_url: str, code: str = "") -> str:
    return f"/login?next={quote(next_url, safe='')}" + (f"&code={code}" if code else "")


def require_kind(kind: str, *, page: bool = False) -> Callable[..., Principal]:
    """Only principals of ``kind`` (office or operator); others get SCOPE_DENIED."""
    base = page_principal if page else current_principal

    # The dependency is a local name, so it goes in the default (string annotations cannot see it).
    def dep(principal: Principal = Depends(base)) -> Principal:  # noqa: B008
        if principal.kind != kind:
            raise ApiError("SCOPE_DENIED", 403, kind)
        return principal

    return dep


def require_scope(scope: str, *, page: bool = False) -> Callable[..., Principal]:
    """Only principals holding ``scope``; others get SCOPE_DENIED naming it."""
    base = page_principal if page else current_principal

    def dep(principal: Principal = Depends(base)) -> Principal:  # noqa: B008
        if not principal.has(scope):
            raise ApiError("SCOPE_DENIED", 403, scope)
        return principal

    return dep


def verify_csrf(
    request: Request,
    settings: Annotated[WebSettings, Depends(get_settings)],
    csrf: Annotated[str | None, Form()] = None,
    x_csrf_token: Annotated[str | None, Header()] = None,
) -> None:
    """Every form post carries this session's CSRF token (form field ``csrf`` or ``X-CSRF-Token``)."""
    auth.check_csrf(settings, request, csrf or x_csrf_token)
