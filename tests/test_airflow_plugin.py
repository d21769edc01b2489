"""The Airflow 3 plugin: the web app mounted in Airflow's API server, refused without an Airflow user,
handed the office's token from ``X-Tongban-Token`` once Airflow's auth lets the request through."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tongban.airflow import plugin


def _call(guard: Any, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/trust-list",
        "raw_path": b"/v1/trust-list",
        "root_path": "/tongban",
        "query_string": b"",
        "headers": headers,
        "scheme": "http",
        "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 5000),
        "http_version": "1.1",
    }
    asyncio.run(guard(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, body


def test_the_plugin_mounts_the_app_at_its_prefix() -> None:
    (entry,) = plugin.TongbanPlugin.fastapi_apps
    assert entry["url_prefix"] == "/tongban" and isinstance(entry["app"], plugin.AirflowAuthGuard)


def test_without_an_airflow_user_nothing_reaches_the_app() -> None:
    built: list[bool] = []
    guard = plugin.AirflowAuthGuard(build=lambda: built.append(True))
    status, body = _call(guard, [(b"x-tongban-token", b"tbo_X_" + b"a" * 43)])
    assert status == 401 and b'"AUTH_REQUIRED"' in body and built == []
    status, _ = _call(guard, [(b"authorization", b"Bearer not-an-airflow-jwt")])
    assert status in (401, 403) and built == []


def test_an_airflow_user_reaches_the_app_with_the_office_token(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[bytes, bytes]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(dict(scope["headers"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def allowed(scope: dict[str, Any]) -> None:
        return None

    monkeypatch.setattr(plugin, "_airflow_user", allowed)
    guard = plugin.AirflowAuthGuard(build=lambda: app)
    status, body = _call(guard, [(b"authorization", b"Bearer airflow-jwt"), (b"x-tongban-token", b"tbo_Q_x")])
    assert status == 200 and body == b"ok"
    assert seen[-1][b"authorization"] == b"Bearer tbo_Q_x" and b"x-tongban-token" not in seen[-1]
    _call(guard, [(b"authorization", b"Bearer airflow-jwt")])
    assert b"authorization" not in seen[-1]  # Airflow's token is never taken for an office's


def test_mounted_under_a_prefix_pages_redirect_inside_it(
    make_world: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    """Under Airflow's mount at /tongban a page asks for the login at /tongban/login and comes back to
    /tongban/verify (not /tongban/tongban/verify); the office token header reaches the API."""
    import httpx
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from tests.webutil import live_server
    from tongban.core.verification import offices
    from tongban.core.verification.scope import Scope
    from tongban.web.app import create_app
    from tongban.web.settings import WebSettings

    async def allowed(scope: dict[str, Any]) -> None:
        return None

    monkeypatch.setattr(plugin, "_airflow_user", allowed)
    world = make_world()
    settings = WebSettings.for_node(world.ex)
    settings.library.migrate()
    _, token = offices.add(settings.library, "MNT-1", "mounted", Scope(datasets=("license",)), 100)
    outer = Starlette(
        routes=[Mount("/tongban", app=plugin.AirflowAuthGuard(build=lambda: create_app(settings)))]
    )
    with live_server(outer) as url:
        page = httpx.get(f"{url}/tongban/verify", follow_redirects=False)
        assert page.status_code == 303
        assert page.headers["location"] == "/tongban/login?next=%2Fverify&code=AUTH_REQUIRED"
        login = httpx.post(
            f"{url}/tongban/login",
            data={"kind": "office", "username": "", "secret": token, "next": "/verify"},
            follow_redirects=False,
        )
        assert login.status_code == 303 and login.headers["location"] == "/tongban/verify"
        api = httpx.get(f"{url}/tongban/v1/trust-list", headers={"X-Tongban-Token": token})
        assert api.status_code == 200 and api.json()["root"] == "000000"
    settings.libraries.dispose()
