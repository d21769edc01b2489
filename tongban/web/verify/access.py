"""Offices as principals: a bearer token or the login page with the same token, the session re-checked
on every request (a revoked office is refused at once), per-office rate limits, the verifier and
metrics of this app, and the audit of every ``/v1`` request (refusals included)."""

from __future__ import annotations

import contextlib
import functools
import json
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPBearer
from prometheus_client import CollectorRegistry, Counter, Histogram

from schemas.errors import TongbanError
from tongban.core.audit import write_checkpoint
from tongban.core.audit.writer import AuditWriter
from tongban.core.trust import KeyStore
from tongban.core.verification import offices
from tongban.core.verification.errors import VerifyError
from tongban.core.verification.ratelimit import RateLimiter
from tongban.core.verification.scope import Scope
from tongban.core.verification.service import Verifier
from tongban.web import auth
from tongban.web.auth import Principal
from tongban.web.errors import ApiError
from tongban.web.settings import WebSettings

#: Seconds between signed checkpoints of the audit log (``settings.extra["checkpoint_seconds"]``).
CHECKPOINT_SECONDS = 60.0

__all__ = [
    "CHECKPOINT_SECONDS",
    "Metrics",
    "OfficeBearer",
    "OfficeCaller",
    "api_error",
    "audit",
    "office_caller",
    "setup",
    "verifier",
]


class Metrics:
    """The app's Prometheus metrics (one registry per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tongban_requests",
            "HTTP requests by route and status",
            ["route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tongban_request_seconds",
            "Request latency by route",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.results = Counter(
            "tongban_verifications",
            "Verification results by kind and result",
            ["kind", "result"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "tongban_refusals", "Refused requests by error code", ["code"], registry=self.registry
        )


def api_error(exc: TongbanError) -> ApiError:
    """A core refusal as the API's answer, with its HTTP status."""
    status = exc.status if isinstance(exc, VerifyError) else 400
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return ApiError(
        exc.code, status, exc.where or None, zh=exc.message_zh, en=exc.message_en, headers=headers
    )


@functools.lru_cache(maxsize=1024)
def _principal(office: offices.Office) -> Principal:
    """The principal of an office (one per version of its row: the same object while nothing changes)."""
    scopes = {"verify", *(f"dataset:{d}" for d in office.scope.datasets)}
    if office.scope.search:
        scopes.add("search")
    return Principal(
        "office",
        office.code,
        office.name,
        frozenset(scopes),
        {**office.scope.to_dict(), "rate_limit": office.rate_limit},
    )


def _bearer(settings: WebSettings, token: str) -> Principal | None:
    if not token.startswith("tbo_"):
        return None
    try:
        return _principal(offices.authenticate(settings.library, token))
    except VerifyError as exc:
        raise api_error(exc) from None


def _login(settings: WebSettings, username: str, secret: str) -> Principal | None:
    try:
        office = offices.authenticate(settings.library, secret.strip())
    except VerifyError:
        return None
    if username.strip() and username.strip() != office.code:
        return None
    return _principal(office)


def _still_valid(settings: WebSettings, principal: Principal) -> bool:
    try:
        office = offices.get(settings.library, principal.id)
    except VerifyError:
        return False
    return office.revoked_at is None


async def audit_dep(request: Request) -> AuditWriter:
    return request.app.state.audit  # type: ignore[no-any-return]


def audit(request: Request) -> AuditWriter:
    """The app's audit writer (group commit onto the node's audit log)."""
    return request.app.state.audit  # type: ignore[no-any-return]


async def web_settings(request: Request) -> WebSettings:
    """The app's settings (an async dependency: no thread hop)."""
    return request.app.state.settings  # type: ignore[no-any-return]


async def verifier(request: Request) -> Verifier:
    return request.app.state.verifier  # type: ignore[no-any-return]


class OfficeCaller:
    """An authenticated, unrevoked, within-rate office and its scope."""

    def __init__(self, principal: Principal, scope: Scope) -> None:
        self.principal = principal
        self.scope = scope

    @property
    def actor(self) -> str:
        return self.principal.actor


class OfficeBearer(HTTPBearer):
    """The calling office: ``Authorization: Bearer`` (published in OpenAPI as the ``OfficeToken`` scheme)
    or the login page's session; SCOPE_DENIED for another kind of caller, RATE_LIMITED over its limit.

    Who is asking is decided as :func:`tongban.web.deps.current_principal` decides it (the bearer
    resolvers, else the session), here in the event loop: a token's lookup is one indexed read, cheaper
    than the hand-offs to worker threads a sync dependency costs. The header is read from the request
    itself, so no per-request parameter validation is spent on it.
    """

    def __init__(self) -> None:
        super().__init__(
            scheme_name="OfficeToken",
            description="办事窗口访问令牌 an office's access token (tongban offices add)",
            auto_error=False,
        )

    async def __call__(self, request: Request) -> OfficeCaller:  # type: ignore[override]
        settings: WebSettings = request.app.state.settings
        authorization = request.headers.get("authorization")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer":
                raise ApiError("AUTH_INVALID", 401, "Authorization", headers={"WWW-Authenticate": "Bearer"})
            principal: Principal | None = auth.bearer_principal(settings, token.strip())
        else:
            principal = auth.session_principal(settings, request)
        if principal is None:
            raise ApiError("AUTH_REQUIRED", 401, "Authorization", headers={"WWW-Authenticate": "Bearer"})
        request.state.principal = principal
        if principal.kind != "office":
            raise ApiError("SCOPE_DENIED", 403, "office")
        try:
            scope = Scope.from_dict(principal.attrs)
        except VerifyError:
            raise ApiError("AUTH_INVALID", 401, "Authorization") from None
        rate = int(principal.attrs.get("rate_limit") or 60)
        limiter: RateLimiter = request.app.state.rate_limiter
        if not limiter.allow(principal.id, rate):
            wait = limiter.retry_after(principal.id, rate)
            raise ApiError(
                "RATE_LIMITED",
                429,
                principal.id,
                zh=f"请求过于频繁：本窗口每分钟最多 {rate} 次，请 {wait} 秒后再试",
                en=f"too many requests: this office may make {rate} per minute; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )
        return OfficeCaller(principal, scope)


#: The dependency of every office route (``Security(office_caller)``).
office_caller = OfficeBearer()


def setup(app: FastAPI, settings: WebSettings) -> None:
    auth.register_bearer(_bearer)
    auth.register_login("office", _login, ("办事窗口（访问令牌）", "Service window (access token)"))
    auth.register_session_check("office", _still_valid)
    app.state.verifier = Verifier(
        settings.library,
        settings.node,
        KeyStore(settings.exchange.keys_dir),
        libraries=settings.libraries.get,
    )
    app.state.rate_limiter = RateLimiter()
    app.state.audit = AuditWriter(settings.audit)
    metrics = app.state.metrics = Metrics()
    every = float(settings.extra.get("checkpoint_seconds", CHECKPOINT_SECONDS))  # type: ignore[arg-type]
    last_checkpoint = [time.monotonic()]

    def checkpoint() -> None:
        """Sign the audit log's head now and then (each worker; a head signed already is skipped)."""
        now = time.monotonic()
        if now - last_checkpoint[0] < every:
            return
        last_checkpoint[0] = now
        with contextlib.suppress(TongbanError):
            write_checkpoint(settings.audit, app.state.verifier.keystore, settings.node)

    app.add_middleware(
        Observe,
        metrics=metrics,
        checkpoint=checkpoint,
        due=lambda: time.monotonic() - last_checkpoint[0] >= every,
    )  # type: ignore[arg-type]


class Observe:
    """Pure ASGI middleware (no extra task per request): count and time every request, count refusals
    by code, audit the refusals no handler audited (auth, validation, size), and sign a checkpoint of
    the audit log when one is due."""

    def __init__(self, app: Any, metrics: Metrics, checkpoint: Any, due: Any) -> None:
        self.app, self.metrics, self.checkpoint, self.due = app, metrics, checkpoint, due

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope.get("path", "")
        api = path.startswith("/v1/")
        status = [500]
        held: list[dict[str, Any]] = []
        body = bytearray()

        async def refused() -> None:
            """Count and (unless its handler did) audit a refusal — before the caller sees it."""
            try:
                code = json.loads(bytes(body)).get("code")
            except (ValueError, AttributeError):
                code = None
            code = code if isinstance(code, str) else f"HTTP_{status[0]}"
            self.metrics.refusals.labels(code).inc()
            request = Request(scope)
            if not getattr(request.state, "audited", False):
                route = getattr(scope.get("route"), "path", None) or "unmatched"
                await _audit_refusal(request, route, status[0], code)

        async def observed(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
                if api and status[0] >= 400:  # hold a small error answer to read its code
                    held.append(message)
                    return
            elif held and message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if message.get("more_body"):
                    return
                await refused()
                await send(held.pop())
                await send({"type": "http.response.body", "body": bytes(body)})
                return
            await send(message)

        await self.app(scope, receive, observed)
        route = getattr(scope.get("route"), "path", None) or "unmatched"
        self.metrics.requests.labels(route, str(status[0])).inc()
        self.metrics.latency.labels(route).observe(time.perf_counter() - started)
        if (api or path.startswith("/verify")) and self.due():
            await run_in_threadpool(self.checkpoint)


async def _audit_refusal(request: Request, route: str, status: int, code: str) -> None:
    principal: Principal | None = getattr(request.state, "principal", None)
    actor = principal.actor if principal else "anonymous"
    with contextlib.suppress(TongbanError):  # the refusal is still answered (and counted) if the log is busy
        await request.app.state.audit.append_async(
            actor[:120],
            f"{request.method} {route}"[:64],
            dataset=str(request.path_params.get("dataset") or "")[:32] or None,
            result=f"refused {status}",
            reason=code[:200],
        )
