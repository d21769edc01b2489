"""The web app's base, over real HTTP: login and sessions, CSRF, coded errors, body limits, redirects."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import httpx
import jwt
import pytest
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

from tests.conftest import World
from tests.webutil import live_server
from tongban.web import auth
from tongban.web.app import _safe_next, create_app
from tongban.web.auth import Principal
from tongban.web.deps import current_principal, get_audit, page_principal, require_scope, verify_csrf
from tongban.web.pages import render
from tongban.web.settings import WebSettings

PASSWORD = "correct horse battery staple"


class Echo(BaseModel):
    name: str
    count: int


def _area() -> APIRouter:
    router = APIRouter()

    @router.get("/t/page", response_class=HTMLResponse)
    def page(request: Request, who: Annotated[Principal, Depends(page_principal)]) -> Any:
        return render(request, "index.html")

    @router.post("/t/form")
    def form(
        who: Annotated[Principal, Depends(page_principal)],
        _: Annotated[None, Depends(verify_csrf)],
        audit: Annotated[Any, Depends(get_audit)],
    ) -> dict[str, str]:
        audit.append(who.actor, "test-form")
        return {"ok": who.id}

    @router.post("/v1/echo")
    def echo(body: Echo, who: Annotated[Principal, Depends(current_principal)]) -> dict[str, Any]:
        return {"who": who.actor, "name": body.name}

    @router.get("/v1/secret")
    def secret(who: Annotated[Principal, Depends(require_scope("search"))]) -> dict[str, str]:
        return {"who": who.id}

    @router.get("/v1/boom")
    def boom() -> None:
        raise RuntimeError("110101199003074519 张三")  # personal data in an exception: never shown

    return router


@pytest.fixture
def served(
    make_world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, WebSettings]]:
    world = make_world()

    def check_login(settings: WebSettings, username: str, secret: str) -> Principal | None:
        if username == "ops1" and secret == PASSWORD:
            return Principal("operator", "ops1", "运维一", frozenset({"review"}))
        return None

    def check_bearer(settings: WebSettings, token: str) -> Principal | None:
        return Principal("office", "win3", "窗口三", frozenset()) if token == "tok-good" else None

    monkeypatch.setitem(auth._LOGINS, "operator", check_login)
    monkeypatch.setitem(auth._LABELS, "operator", ("运维人员", "Operator"))
    monkeypatch.setattr(auth, "_BEARERS", [check_bearer])
    settings = WebSettings.for_node(world.ex, session_secret=b"s" * 32, max_body=4096)
    app = create_app(settings)
    app.include_router(_area())
    with live_server(app) as url:
        yield url, settings


def _login(url: str, client: httpx.Client, password: str = PASSWORD) -> httpx.Response:
    return client.post(
        f"{url}/login", data={"kind": "operator", "username": "ops1", "secret": password, "next": "/t/page"}
    )


def _csrf(html: str) -> str:
    marker = 'name="csrf" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def test_page_needs_login_then_returns_to_it(served: tuple[str, WebSettings]) -> None:
    url, settings = served
    with httpx.Client(follow_redirects=False) as c:
        r = c.get(f"{url}/t/page")
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=%2Ft%2Fpage")
        r = _login(url, c, "wrong")
        assert r.status_code == 401 and "AUTH_INVALID" in r.text
        r = _login(url, c)
        assert r.status_code == 303 and r.headers["location"] == "/t/page"
        cookie = c.cookies.get(auth.COOKIE)
        assert (
            cookie
            and "HttpOnly" in r.headers["set-cookie"]
            and "samesite=strict" in r.headers["set-cookie"].lower()
        )
        r = c.get(f"{url}/t/page")
        assert r.status_code == 200 and "运维一" in r.text
        assert (
            r.headers["x-frame-options"] == "DENY"
            and "default-src 'self'" in r.headers["content-security-policy"]
        )
    actions = [(e.actor, e.action, e.result) for e in settings.audit.entries()]
    assert ("operator:ops1", "login", "refused") in actions and ("operator:ops1", "login", "ok") in actions


def test_form_post_needs_the_sessions_csrf_token(served: tuple[str, WebSettings]) -> None:
    url, settings = served
    with httpx.Client() as c:
        _login(url, c)
        token = _csrf(c.get(f"{url}/t/page").text)
        forged = c.post(f"{url}/t/form", data={"csrf": "0" * 64})
        assert forged.status_code == 403 and forged.json()["code"] == "CSRF_INVALID"
        missing = c.post(f"{url}/t/form", data={})
        assert missing.status_code == 403 and missing.json()["code"] == "CSRF_INVALID"
        ok = c.post(f"{url}/t/form", data={"csrf": token})
        assert ok.status_code == 200 and ok.json() == {"ok": "ops1"}
        by_header = c.post(f"{url}/t/form", headers={"X-CSRF-Token": token})
        assert by_header.status_code == 200
    # Another session's token does not fit this one.
    with httpx.Client() as other:
        _login(url, other)
        assert other.post(f"{url}/t/form", data={"csrf": token}).json()["code"] == "CSRF_INVALID"
    assert [e.action for e in settings.audit.entries(action="test-form")] == ["test-form", "test-form"]


def test_expired_and_forged_sessions(served: tuple[str, WebSettings]) -> None:
    url, settings = served
    now = int(time.time())
    claims = {
        "sid": "x",
        "kind": "operator",
        "sub": "ops1",
        "iat": now - 100,
        "exp": now - 10,
        "node": settings.node,
    }
    expired = jwt.encode(claims, settings.session_secret, algorithm="HS256")
    with httpx.Client(follow_redirects=False, cookies={auth.COOKIE: expired}) as c:
        r = c.get(f"{url}/t/page")
        assert r.status_code == 303 and "code=SESSION_EXPIRED" in r.headers["location"]
        assert c.post(f"{url}/v1/echo", json={"name": "a", "count": 1}).json()["code"] == "SESSION_EXPIRED"
    forged = jwt.encode(
        {**claims, "exp": now + 100}, b"not the secret of this node at all!", algorithm="HS256"
    )
    none_alg = jwt.encode({**claims, "exp": now + 100}, None, algorithm="none")
    other_node = jwt.encode(
        {**claims, "exp": now + 100, "node": "999999"}, settings.session_secret, algorithm="HS256"
    )
    for bad in (forged, none_alg, other_node, "garbage", "x" * 5000):
        with httpx.Client(follow_redirects=False, cookies={auth.COOKIE: bad}) as c:
            r = c.post(f"{url}/v1/echo", json={"name": "a", "count": 1})
            assert r.status_code == 401 and r.json()["code"] == "AUTH_INVALID", bad[:20]


def test_api_errors_are_coded_json_never_a_trace(served: tuple[str, WebSettings]) -> None:
    url, _ = served
    with httpx.Client() as c:
        r = c.post(f"{url}/v1/echo", json={"name": "a", "count": 1})
        assert r.status_code == 401 and r.json()["code"] == "AUTH_REQUIRED"
        assert r.json()["message"]["zh"] and r.json()["message"]["en"]
        bearer = {"Authorization": "Bearer tok-good"}
        assert (
            c.post(f"{url}/v1/echo", json={"name": "a", "count": 1}, headers=bearer).json()["who"]
            == "office:win3"
        )
        r = c.post(f"{url}/v1/echo", json={"name": "a", "count": 1}, headers={"Authorization": "Bearer nope"})
        assert r.status_code == 401 and r.json()["code"] == "AUTH_INVALID"
        r = c.post(f"{url}/v1/echo", json={"name": "a", "count": 1}, headers={"Authorization": "Basic abc"})
        assert r.status_code == 401 and r.json()["code"] == "AUTH_INVALID"
        r = c.post(f"{url}/v1/echo", json={"name": "a", "count": "many"}, headers=bearer)
        assert r.status_code == 422 and r.json()["code"] == "REQUEST_INVALID" and r.json()["where"] == "count"
        r = c.post(
            f"{url}/v1/echo", content=b"{not json", headers={**bearer, "content-type": "application/json"}
        )
        assert r.status_code == 422 and r.json()["code"] == "REQUEST_INVALID"
        deep = "[" * 5000 + "]" * 5000
        r = c.post(
            f"{url}/v1/echo", content=deep.encode(), headers={**bearer, "content-type": "application/json"}
        )
        assert r.status_code == 413 and r.json()["code"] == "REQUEST_TOO_LARGE"
        r = c.get(f"{url}/v1/secret", headers=bearer)
        assert r.status_code == 403 and r.json() == {
            "code": "SCOPE_DENIED",
            "message": r.json()["message"],
            "where": "search",
        }
        r = c.get(f"{url}/no/such/place")
        assert r.status_code == 404 and r.json()["code"] == "NOT_FOUND"
        r = c.delete(f"{url}/v1/echo")
        assert r.status_code == 405 and r.json()["code"] == "METHOD_NOT_ALLOWED"
        r = c.get(f"{url}/v1/boom")
        assert r.status_code == 500 and r.json()["code"] == "INTERNAL"
        assert "110101199003074519" not in r.text and "Traceback" not in r.text and "张三" not in r.text


def test_oversized_bodies_are_refused_before_reading(served: tuple[str, WebSettings]) -> None:
    url, _ = served
    bearer = {"Authorization": "Bearer tok-good", "content-type": "application/json"}
    with httpx.Client() as c:
        big = b'{"name": "' + b"x" * 10_000 + b'", "count": 1}'
        r = c.post(f"{url}/v1/echo", content=big, headers=bearer)
        assert r.status_code == 413 and r.json()["code"] == "REQUEST_TOO_LARGE"

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
            yield b'{"name": "'
            for _ in range(100):
                yield b"y" * 1000
            yield b'", "count": 1}'

        r = c.post(f"{url}/v1/echo", content=chunks(), headers=bearer)
        assert r.status_code == 413 and r.json()["code"] == "REQUEST_TOO_LARGE"


def test_language_switch_and_html_errors(served: tuple[str, WebSettings]) -> None:
    url, _ = served
    with httpx.Client() as c:
        zh = c.get(f"{url}/login")
        assert "登录" in zh.text and 'lang="zh-CN"' in zh.text
        en = c.get(f"{url}/login?lang=en")
        assert "Log in" in en.text and c.cookies.get("tongban_lang") == "en"
        assert "Log in" in c.get(f"{url}/login").text  # remembered
        page = c.get(f"{url}/no/such/page", headers={"accept": "text/html"})
        assert page.status_code == 404 and "NOT_FOUND" in page.text and "<html" in page.text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/t/page?x=1", "/t/page?x=1"),
        ("https://evil.example/", "/"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("", "/"),
    ],
)
def test_login_never_redirects_off_site(value: str, expected: str) -> None:
    assert _safe_next(value) == expected


def test_openapi_is_published(served: tuple[str, WebSettings]) -> None:
    url, _ = served
    doc = httpx.get(f"{url}/openapi.json").json()
    assert doc["info"]["title"] == "通办 Tongban" and "/healthz" in doc["paths"]


def test_tongban_serve_runs_the_app_as_a_process(make_world: Callable[..., World]) -> None:
    """The command a user runs: workers build the app from the config; Ctrl-C stops it cleanly."""
    import os
    import signal
    import subprocess
    import sys

    from tests.webutil import free_port

    world = make_world()
    port = free_port()
    cmd = [sys.executable, "-m", "tongban.cli", "serve", "--workdir", str(world.root), "--port", str(port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "tongban serve did not answer"
                time.sleep(0.2)
        assert r.json() == {"status": "ok"}
        assert httpx.get(f"http://127.0.0.1:{port}/login").status_code == 200
        assert (world.ex.keys_dir / "session.secret").stat().st_mode & 0o077 == 0
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert f"http://127.0.0.1:{port}/" in out


def test_serve_refuses_an_unknown_node(make_world: Callable[..., World]) -> None:
    import subprocess
    import sys

    world = make_world()
    cmd = [sys.executable, "-m", "tongban.cli", "serve", "--workdir", str(world.root), "--node", "999999"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done
    assert "NODE_UNKNOWN" in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_password_guessing_is_throttled(served: tuple[str, WebSettings]) -> None:
    """Five wrong passwords lock the account out for the window (429 AUTH_THROTTLED), even for the
    right password; another account from another client is not affected."""
    url, settings = served
    with httpx.Client(follow_redirects=False) as c:
        for _ in range(5):
            assert _login(url, c, "guess").status_code == 401
        r = _login(url, c)
        assert r.status_code == 429 and "AUTH_THROTTLED" in r.text
    refused = [e for e in settings.audit.entries(action="login") if e.result == "refused"]
    assert [e.detail["code"] for e in refused][-1] == "AUTH_THROTTLED"


def test_throttle_window_passes() -> None:
    now = [0.0]
    throttle = auth.Throttle(limit=2, window=60, clock=lambda: now[0])
    throttle.failed("a")
    throttle.failed("a")
    with pytest.raises(Exception) as err:
        throttle.check("a")
    assert err.value.code == "AUTH_THROTTLED" and err.value.headers["Retry-After"] == "61"  # type: ignore[attr-defined]
    throttle.check("b")
    now[0] = 61.0
    throttle.check("a")
