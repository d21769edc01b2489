"""The app factory: one FastAPI app over one node's library, a router per area, one login."""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from tongban import __version__
from tongban.web import auth, errors
from tongban.web.deps import LoginRedirect, get_settings, login_url
from tongban.web.errors import ApiError
from tongban.web.pages import STATIC, render
from tongban.web.settings import WebSettings

__all__ = ["AREAS", "create_app"]

#: The areas of the app, each a module with ``router`` (and optionally ``setup(app, settings)``).
#: Issue areas add themselves here: verification (offices) and review (operators).
AREAS: list[str] = ["tongban.web.review", "tongban.web.verify"]

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; frame-ancestors 'none'; form-action 'self'",
}


class SecurityHeaders:
    """Add :data:`_SECURITY_HEADERS` to every answer that does not set them (pure ASGI: no extra task
    per request, unlike ``@app.middleware("http")``)."""

    _HEADERS = tuple((k.lower().encode(), v.encode()) for k, v in _SECURITY_HEADERS.items())

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self._HEADERS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes (413 REQUEST_TOO_LARGE) before reading them whole."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        too_big = False
        if declared is not None:
            try:
                too_big = int(declared) > self.limit
            except ValueError:
                too_big = True
        if too_big:
            await self._refuse(scope, receive, send)
            return
        seen = 0
        exceeded = False

        async def limited() -> dict[str, Any]:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    exceeded = True
                    raise _TooLarge()
            return message  # type: ignore[no-any-return]

        async def guarded(message: dict[str, Any]) -> None:
            if not exceeded:  # whatever the app answers once the body was cut off is replaced
                await send(message)

        try:
            await self.app(scope, limited, guarded)
        except Exception:
            if not exceeded:
                raise
        if exceeded:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        err = ApiError("REQUEST_TOO_LARGE", 413, "body")
        await JSONResponse(err.body(), status_code=413, headers={"Connection": "close"})(scope, receive, send)


class _TooLarge(HTTPException):
    """Raised from inside the body stream: FastAPI passes HTTP exceptions through its body parsing."""

    def __init__(self) -> None:
        super().__init__(413)


def _safe_next(value: str | None) -> str:
    """Only a path on this site (no scheme, no host, no ``//``): an open redirect is refused."""
    if not value or len(value) > 2000:
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def create_app(settings: WebSettings) -> FastAPI:
    """The web app for ``settings.node``; every area in :data:`AREAS` is included."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.library.migrate()  # the audit log's table, in a library made before it existed
        try:
            yield
        finally:
            writer = getattr(app.state, "audit", None)  # the audit writer of an area that keeps one
            if writer is not None:
                writer.close()
            settings.libraries.dispose()

    app = FastAPI(
        title="通办 Tongban",
        version=__version__,
        description="跨区域数据共享交换：核验与运维 cross-region exchange: verification and operator review",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.nav = []
    app.state.login_throttle = auth.Throttle()
    errors.install(app)

    @app.exception_handler(LoginRedirect)
    async def _to_login(request: Request, exc: LoginRedirect) -> Response:
        base = request.scope.get("root_path", "")
        return RedirectResponse(base + login_url(exc.next_url, exc.code), status_code=303)

    app.add_middleware(SecurityHeaders)  # type: ignore[arg-type]
    # Inside the areas' middleware (added after it), so an area that audits requests sees a refused body too.
    app.add_middleware(BodyLimit, limit=settings.max_body)  # type: ignore[arg-type]

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.include_router(_login_router())
    for path in AREAS:
        module = importlib.import_module(path)
        setup = getattr(module, "setup", None)
        if setup is not None:
            setup(app, settings)
        app.include_router(module.router)
    return app


def _login_router() -> Any:
    from fastapi import APIRouter

    router = APIRouter(tags=["login"])

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request, settings: Annotated[WebSettings, Depends(get_settings)]) -> Response:
        try:
            principal = auth.session_principal(settings, request)
        except ApiError:
            principal = None
        if principal is not None:
            request.state.principal = principal
        return render(request, "index.html")

    @router.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_page(request: Request, next: str = "/", code: str = "", kind: str = "") -> Response:
        return render(
            request,
            "login.html",
            next=_safe_next(next),
            code=code if code in ("AUTH_REQUIRED", "AUTH_INVALID", "SESSION_EXPIRED") else "",
            kinds=auth.login_kinds(),
            kind=kind,
        )

    @router.post("/login", include_in_schema=False)
    def login_post(
        request: Request,
        settings: Annotated[WebSettings, Depends(get_settings)],
        kind: Annotated[str, Form(max_length=32)],
        username: Annotated[str, Form(max_length=200)] = "",
        secret: Annotated[str, Form(max_length=512)] = "",
        next: Annotated[str, Form(max_length=2000)] = "/",
    ) -> Response:
        target = _safe_next(next)
        base = request.scope.get("root_path", "")
        throttle: auth.Throttle = request.app.state.login_throttle
        account = f"account:{kind}:{username}"
        client = f"client:{request.client.host if request.client else '-'}"
        try:
            throttle.check(account, client)
            try:
                principal = auth.login(settings, kind, username, secret)
            except ApiError:
                throttle.failed(account, client)
                raise
        except ApiError as exc:
            settings.audit.append(
                f"{kind[:16]}:{username[:80]}", "login", result="refused", detail={"code": exc.code}
            )
            return render(
                request,
                "login.html",
                status_code=exc.status,
                next=target,
                code=exc.code,
                kinds=auth.login_kinds(),
                kind=kind,
            )
        throttle.succeeded(account)
        response = RedirectResponse(base + target, status_code=303)
        auth.start_session(settings, response, principal)
        settings.audit.append(principal.actor, "login", result="ok")
        return response

    @router.post("/logout", include_in_schema=False)
    def logout(request: Request) -> Response:
        response = RedirectResponse(request.scope.get("root_path", "") + "/login", status_code=303)
        auth.clear_session(response)
        return response

    @router.get("/healthz", tags=["health"], summary="进程存活 the process is alive")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return router
