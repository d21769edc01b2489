"""The Airflow 3 plugin: the Tongban web app (verification API and pages, review page) mounted in
Airflow's API server at ``/tongban``, behind Airflow's own authentication.

Plugin routes are open by default, so every request first passes Airflow's auth dependencies: the
caller must be an Airflow user (Airflow's JWT as ``Authorization: Bearer``, or its session cookie)
allowed the ``WEBSITE`` view (``requires_access_view``). Because ``Authorization`` then carries Airflow's
token, a program calling the verification API through Airflow sends its office token as
``X-Tongban-Token``; the guard hands it on to the app as its bearer token. The app is built on the first
request from ``TONGBAN_EXCHANGE`` (default ``exchange.yaml``) and ``TONGBAN_WEB_NODE`` (default the root).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin

__all__ = ["AirflowAuthGuard", "TongbanPlugin"]

URL_PREFIX = "/tongban"
OFFICE_HEADER = b"x-tongban-token"


async def _airflow_user(scope: dict[str, Any]) -> None:
    """Airflow's own check of the request (raises its HTTPException 401/403 when refused)."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user, requires_access_view
    from starlette.requests import Request

    request = Request(scope)
    credentials = await bearer_scheme(request)
    user = await get_user(request, None, credentials)
    requires_access_view(AccessView.WEBSITE)(request, user)


class AirflowAuthGuard:
    """ASGI app: Airflow's authentication on every HTTP request, then the Tongban app (built lazily)."""

    def __init__(self, build: Any = None) -> None:
        self._build = build or _build_app
        self._app: Any = None

    @property
    def app(self) -> Any:
        if self._app is None:
            self._app = self._build()
        return self._app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":  # a mounted app gets no lifespan: nothing to start or stop
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            return
        if scope["type"] == "http":
            from starlette.exceptions import HTTPException

            try:
                await _airflow_user(scope)
            except HTTPException as exc:
                await _refuse(scope, receive, send, exc.status_code)
                return
            except Exception:  # Airflow's auth could not decide (not set up): closed, never open
                await _refuse(scope, receive, send, 401)
                return
            headers = [(k, v) for k, v in scope.get("headers", []) if k != b"authorization"]
            office = dict(scope.get("headers", [])).get(OFFICE_HEADER)
            if office:
                headers.append((b"authorization", b"Bearer " + office))
            scope = {**scope, "headers": [(k, v) for k, v in headers if k != OFFICE_HEADER]}
        await self.app(scope, receive, send)


async def _refuse(scope: dict[str, Any], receive: Any, send: Any, status: int) -> None:
    from starlette.responses import JSONResponse

    code = "AUTH_REQUIRED" if status == 401 else "SCOPE_DENIED"
    zh = "需要登录 Airflow" if status == 401 else "Airflow 用户无权访问"
    en = "an Airflow login is required" if status == 401 else "the Airflow user may not use this"
    body = {"code": code, "message": {"zh": zh, "en": en}, "where": "airflow"}
    await JSONResponse(body, status_code=status if status in (401, 403) else 401)(scope, receive, send)


def _build_app() -> Any:
    from tongban.web.server import build

    config = Path(os.environ.get("TONGBAN_EXCHANGE") or "exchange.yaml")
    app = build(config, os.environ.get("TONGBAN_WEB_NODE") or None)
    app.state.settings.library.migrate()  # the app's lifespan does not run under a mount
    return app


class TongbanPlugin(AirflowPlugin):
    """Registers the guarded app with Airflow's API server."""

    name = "tongban"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": AirflowAuthGuard(), "url_prefix": URL_PREFIX, "name": "Tongban 通办"}
    ]
