"""The review page over real HTTP: operators' login, masked pages, actions, and what must be refused —
a wrong password, an expired session, a forged form, a stale version, an edit that still fails or
changes the key, a row already resolved, an operator without the right to reveal."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import pytest

from tests.conftest import World
from tests.webutil import live_server
from tongban.core.review import operators
from tongban.web import auth
from tongban.web.app import create_app
from tongban.web.settings import WebSettings

PASSWORD = "correct horse battery staple"
P = "population"


def _csrf(html: str) -> str:
    marker = 'name="csrf" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


def _version(html: str) -> str:
    return re.search(r'name="version" value="(\d+)"', html).group(1)  # type: ignore[union-attr]


def login(url: str, c: httpx.Client, user: str, password: str = PASSWORD) -> httpx.Response:
    return c.post(
        f"{url}/login", data={"kind": "operator", "username": user, "secret": password, "next": "/review"}
    )


@pytest.fixture
def site(
    make_world: Callable[..., World], h: Any
) -> Iterator[tuple[str, WebSettings, World, dict[str, Any]]]:
    w = make_world({h.A: h.QINGHAI, h.B: h.QINGHAI})
    bad = h.person(h.A, 50)
    good_id = bad["sfzh"]
    bad["sfzh"] = good_id[:-1] + ("0" if good_id[-1] != "0" else "1")
    dates = [{**h.person(h.A, 60 + i), "csrq": "1980-02-30"} for i in range(4)]
    w.registers[h.A].put([*h.people(h.A, 3), bad, *dates])
    w.registers[h.B].put(h.people(h.B, 2))
    w.sync_all()
    settings = WebSettings.for_node(w.ex, session_secret=b"r" * 32)
    lib = settings.library
    lib.migrate()
    operators.add(lib, "wang", "王工", PASSWORD, reveal=True, by="test")
    operators.add(lib, "li", "李工", PASSWORD, reveal=False, by="test")
    failures = {f["row_key"]: f for f in w.lib(h.A).failures(kind="row")}
    info = {"bad": bad, "good_id": good_id, "bad_ref": f"{h.A}:{failures[bad['sfzh']]['id']}", "dates": dates}
    info["date_refs"] = [f"{h.A}:{failures[d['sfzh']]['id']}" for d in dates]
    with live_server(create_app(settings)) as url:
        yield url, settings, w, info


def test_wrong_password_disabled_operator_and_expired_session(site: Any) -> None:
    url, settings, _w, _info = site
    with httpx.Client(follow_redirects=False) as c:
        r = c.get(f"{url}/review")
        assert r.status_code == 303 and "/login?next=%2Freview" in r.headers["location"]
        r = login(url, c, "wang", "not the password")
        assert r.status_code == 401 and "AUTH_INVALID" in r.text
        r = login(url, c, "nobody", PASSWORD)
        assert r.status_code == 401 and "AUTH_INVALID" in r.text
        assert login(url, c, "wang").status_code == 303
        r = c.get(f"{url}/review")
        assert r.status_code == 200 and "echarts.min.js" in r.text and 'data-table="by_code"' in r.text
        assert 'id="open-total">5<' in r.text
    now = int(time.time())
    claims = {
        "sid": "x",
        "kind": "operator",
        "sub": "wang",
        "iat": now - 100,
        "exp": now - 1,
        "node": settings.node,
    }
    expired = jwt.encode(
        {**claims, "attrs": {"accounts": "review"}}, settings.session_secret, algorithm="HS256"
    )
    with httpx.Client(follow_redirects=False, cookies={auth.COOKIE: expired}) as c:
        r = c.get(f"{url}/review/failures")
        assert r.status_code == 303 and "code=SESSION_EXPIRED" in r.headers["location"]
    # A disabled operator's open session ends at its next request.
    with httpx.Client(follow_redirects=False) as c:
        login(url, c, "li")
        assert c.get(f"{url}/review").status_code == 200
        operators.disable(settings.library, "li")
        assert c.get(f"{url}/review").status_code == 303
        assert login(url, c, "li").status_code == 401


def test_list_filters_pages_and_is_masked(site: Any) -> None:
    url, _settings, _w, info = site
    with httpx.Client() as c:
        login(url, c, "li")
        r = c.get(f"{url}/review/failures", params={"code": "ID_CHECKSUM"})
        assert r.status_code == 200
        assert info["bad_ref"] in r.text and info["date_refs"][0] not in r.text
        assert info["bad"]["sfzh"] not in r.text  # the key is masked in the list
        r = c.get(f"{url}/review/failures", params={"code": "DATE_INVALID", "size": 20})
        assert r.text.count('class="pick"') == 4
        for bad in ({"dataset": "nope"}, {"state": "x"}, {"size": "7"}, {"node": "999999"}, {"code": "a%b"}):
            r = c.get(f"{url}/review/failures", params=bad, headers={"accept": "text/html"})
            assert r.status_code == 422 and "REQUEST_INVALID" in r.text, bad


def test_detail_masked_reveal_needs_the_right_and_is_audited(site: Any) -> None:
    url, settings, _w, info = site
    ref, secret = info["bad_ref"], info["bad"]["sfzh"]
    with httpx.Client() as c:
        login(url, c, "li")
        page = c.get(f"{url}/review/failures/{ref}").text
        assert secret not in page and "ID_CHECKSUM" in page and "id_number" in page
        assert 'id="reveal"' not in page
        r = c.post(f"{url}/review/failures/{ref}/reveal", data={"csrf": _csrf(page)})
        assert r.status_code == 403 and "REVEAL_FORBIDDEN" in r.text and secret not in r.text
    with httpx.Client() as c:
        login(url, c, "wang")
        page = c.get(f"{url}/review/failures/{ref}").text
        forged = c.post(f"{url}/review/failures/{ref}/reveal", data={"csrf": "0" * 64})
        assert forged.status_code == 403 and forged.json()["code"] == "CSRF_INVALID"
        r = c.post(f"{url}/review/failures/{ref}/reveal", data={"csrf": _csrf(page), "purpose": "fix"})
        assert r.status_code == 200 and secret in r.text
    entries = [(e.actor, e.action, e.result) for e in settings.audit.entries(action="failed.reveal")]
    assert entries == [
        ("operator:li", "failed.reveal", "REVEAL_FORBIDDEN"),
        ("operator:wang", "failed.reveal", "ok"),
    ]
    assert settings.audit.verify() is None


def test_actions_refused_with_codes_and_never_applied_twice(site: Any, h: Any) -> None:
    url, settings, w, info = site
    ref = info["bad_ref"]
    with httpx.Client(follow_redirects=True) as one, httpx.Client(follow_redirects=True) as two:
        login(url, one, "wang")
        login(url, two, "li")
        page1 = one.get(f"{url}/review/failures/{ref}").text
        page2 = two.get(f"{url}/review/failures/{ref}").text
        form = {"csrf": _csrf(page1), "version": _version(page1), "action": "resubmit"}
        # Forged (no or a wrong token): refused, nothing applied.
        assert one.post(f"{url}/review/failures/{ref}/act", data={**form, "csrf": "x"}).status_code == 403
        # Still failing; a key that passed may not change (another row); a meta field is no field.
        r = one.post(
            f"{url}/review/failures/{ref}/act", data={**form, "f_id_number": info["bad"]["sfzh"][:-1] + "Z"}
        )
        assert r.status_code == 422 and 'data-code="FAILED_EDIT_INVALID"' in r.text
        date_ref = info["date_refs"][0]
        dpage = one.get(f"{url}/review/failures/{date_ref}").text
        dform = {"csrf": _csrf(dpage), "version": _version(dpage), "action": "resubmit"}
        r = one.post(
            f"{url}/review/failures/{date_ref}/act", data={**dform, "f_id_number": h.person(h.A, 99)["sfzh"]}
        )
        assert r.status_code == 422 and 'data-code="FAILED_EDIT_KEY"' in r.text
        r = one.post(f"{url}/review/failures/{date_ref}/act", data={**dform, "f__owner": h.B})
        assert r.status_code == 422 and 'data-code="FAILED_EDIT_OWNER"' in r.text
        # Discard without a reason.
        r = one.post(f"{url}/review/failures/{ref}/act", data={**form, "action": "discard"})
        assert r.status_code == 422 and 'data-code="FAILED_REASON_REQUIRED"' in r.text
        # The fix is accepted; the second operator, who saw the old version, gets FAILED_CHANGED.
        r = one.post(f"{url}/review/failures/{ref}/act", data={**form, "f_id_number": info["good_id"]})
        assert r.status_code == 200 and 'id="done" data-action="resubmit"' in r.text
        r = two.post(
            f"{url}/review/failures/{ref}/act",
            data={"csrf": _csrf(page2), "version": _version(page2), "action": "discard", "reason": "dup"},
        )
        assert r.status_code == 409 and 'data-code="FAILED_CHANGED"' in r.text
    f = w.lib(h.A).failure(int(ref.split(":")[1]))
    assert f["state"] == "queued" and f["version"] == 2
    results = [(e.actor, e.result) for e in settings.audit.entries(action="failed.resubmit")]
    assert results[-1] == ("operator:wang", "ok") and ("operator:wang", "FAILED_EDIT_INVALID") in results
    assert [e.result for e in settings.audit.entries(action="failed.discard")] == [
        "FAILED_REASON_REQUIRED",
        "FAILED_CHANGED",
    ]
    # Once loaded, the failure is resolved; acting on it again is refused as closed.
    w.sync_all()
    assert w.lib(h.NATIONAL).record(P, info["good_id"])["_owner"] == h.A
    with httpx.Client() as c:
        login(url, c, "wang")
        page = c.get(f"{url}/review/failures/{ref}").text
        assert 'id="state">resolved' in page and 'data-action="resubmitted"' in page
        assert 'id="discard"' not in page
        r = c.post(
            f"{url}/review/failures/{ref}/act",
            data={"csrf": _csrf(page), "version": _version(page), "action": "resolve"},
        )
        assert r.status_code == 409 and 'data-code="FAILED_CLOSED"' in r.text


def test_bulk_by_selection_and_by_filter(site: Any, h: Any) -> None:
    url, _settings, w, _info = site
    with httpx.Client() as c:
        login(url, c, "wang")
        page = c.get(f"{url}/review/failures", params={"code": "DATE_INVALID"}).text
        picks = re.findall(r'name="pick" value="([^"]+)"', page)
        assert len(picks) == 4
        token = _csrf(page)
        r = c.post(
            f"{url}/review/act",
            data={"csrf": token, "action": "discard", "scope": "selected", "pick": picks[:2]},
        )
        assert "FAILED_REASON_REQUIRED" in r.text and r.status_code == 422
        r = c.post(
            f"{url}/review/act",
            data={
                "csrf": token,
                "action": "discard",
                "scope": "selected",
                "pick": picks[:2],
                "reason": "test rows",
            },
        )
        assert r.status_code == 200 and 'id="applied" data-count="2"' in r.text
        # The same selection again (stale versions): nothing applied twice.
        r = c.post(
            f"{url}/review/act",
            data={"csrf": token, "action": "resolve", "scope": "selected", "pick": picks[:2]},
        )
        assert 'id="applied" data-count="0"' in r.text and r.text.count('data-code="FAILED_CLOSED"') == 2
        r = c.post(
            f"{url}/review/act", data={"csrf": token, "action": "resolve", "scope": "filter", "state": "open"}
        )
        assert r.status_code == 422 and "FAILED_NO_FILTER" in r.text
        r = c.post(
            f"{url}/review/act",
            data={
                "csrf": token,
                "action": "resolve",
                "scope": "filter",
                "code": "DATE_INVALID",
                "reason": "ok",
            },
        )
        assert 'id="applied" data-count="2"' in r.text
    assert (
        len(w.lib(h.A).failures(state="discarded")) == 2 and len(w.lib(h.A).failures(state="resolved")) == 2
    )


def test_hostile_forms(site: Any) -> None:
    url, _settings, w, info = site
    ref = info["bad_ref"]
    with httpx.Client(headers={"accept": "application/json"}) as c:
        login(url, c, "wang")
        page = c.get(f"{url}/review/failures/{ref}", headers={"accept": "text/html"}).text
        token = _csrf(page)
        cases = [
            (f"/review/failures/{ref}/act", {"action": "explode"}, "REQUEST_INVALID"),
            (f"/review/failures/{ref}/act", {"action": "resolve", "version": "one"}, "REQUEST_INVALID"),
            (f"/review/failures/{ref}/act", {"action": "resolve", "reason": "x" * 600}, "REQUEST_INVALID"),
            ("/review/failures/630102:99999/act", {"action": "resolve"}, "FAILED_NOT_FOUND"),
            ("/review/failures/nonsense/act", {"action": "resolve"}, "FAILED_ID"),
            ("/review/failures/999999:1/act", {"action": "resolve"}, "NODE_UNKNOWN"),
            ("/review/act", {"action": "resubmit", "scope": "selected"}, "REQUEST_INVALID"),
            ("/review/act", {"action": "resolve", "scope": "everything"}, "REQUEST_INVALID"),
            ("/review/act", {"action": "resolve", "scope": "selected"}, "FAILED_NO_FILTER"),
            ("/review/act", {"action": "resolve", "scope": "selected", "pick": ["../../etc@1"]}, "FAILED_ID"),
            (
                "/review/act",
                {"action": "resolve", "scope": "selected", "pick": [f"{ref}@1"] * 1001},
                "REQUEST_INVALID",
            ),
            ("/review/act", {"action": "resolve", "scope": "filter", "dataset": "nope"}, "REQUEST_INVALID"),
        ]
        for path, data, code in cases:
            r = c.post(f"{url}{path}", data={"csrf": token, **data})
            assert r.status_code in (400, 403, 404, 409, 422), (path, data, r.status_code)
            assert r.json()["code"] == code, (path, r.json())
            assert "Traceback" not in r.text
        # Too big a body: refused before it is read.
        r = c.post(f"{url}/review/act", data={"csrf": token, "reason": "x" * 70_000})
        assert r.status_code == 413
    # Nothing of it was applied.
    assert {f["state"] for f in w.lib(ref.split(":")[0]).failures(state=None)} == {"open"}
