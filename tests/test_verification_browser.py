"""A clerk at a service window, in a real browser (Playwright driving the system Chromium, headless):
logs in with the office's token, verifies a license, sees 已吊销 for a revoked one, prints the slip; the
slip's QR code, read back from a screenshot, passes ``tongban verify-offline`` — and fails once the
answering node's key is revoked."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.verifyworld import build_world, rows
from tests.webutil import live_server
from tongban.cli import main
from tongban.core.trust import KeyStore, revoke, rotate
from tongban.core.verification import offices
from tongban.core.verification.qr import read_qr
from tongban.core.verification.scope import Scope
from tongban.web.app import create_app
from tongban.web.settings import WebSettings

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not shutil.which(CHROMIUM), reason="the system Chromium is not installed")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("verify-browser")
    ex = build_world(root)
    web = WebSettings.for_node(ex)
    web.library.migrate()
    _, token = offices.add(
        web.library, "QH-WIN-1", "西宁市政务服务中心", Scope(datasets=("license",)), 10_000
    )
    with live_server(create_app(web)) as url:
        yield {"url": url, "token": token, "web": web, "ex": ex, "root": root}
    web.libraries.dispose()


@pytest.fixture(scope="module")
def page(site: dict[str, Any]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1100, "height": 1400})
        pg = context.new_page()
        pg.set_default_timeout(15_000)
        yield pg
        browser.close()


def _verify(page: Any, url: str, license_id: str, holder_code: str) -> str:
    page.goto(f"{url}/verify?kind=license")
    page.fill("#license_id", license_id)
    page.fill("#holder_code", holder_code)
    page.select_option("#purpose", "administrative_licensing")
    page.click("#verify-submit")
    page.wait_for_selector("#headline")
    return str(page.inner_text("#headline")).strip()


def test_clerk_verifies_prints_and_the_slip_checks_offline(
    site: dict[str, Any], page: Any, tmp_path: Path
) -> None:
    url, lib = site["url"], site["web"].library
    page.goto(f"{url}/verify")
    assert "/login" in page.url  # not logged in: the login page, then back
    page.check("input[name=kind][value=office]")
    page.fill("input[name=secret]", "tbo_QH-WIN-1_" + "x" * 43)
    page.click("button[type=submit]")
    assert page.locator("[data-code=AUTH_INVALID]").count() == 1
    page.check("input[name=kind][value=office]")
    page.fill("input[name=secret]", site["token"])
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/verify")

    good = rows(
        lib,
        "select license_id, holder_code, holder_name from license where status='01' and holder_code_type='111' and "
        "(valid_until is null or valid_until > date('now')) limit 1",
    )[0]
    assert _verify(page, url, good.license_id, good.holder_code.lower()) == "核验通过"
    assert good.holder_name not in page.inner_text("#record")  # masked on the page too
    revoked = rows(lib, "select license_id, holder_code from license where status='07' limit 1")[0]
    assert _verify(page, url, revoked.license_id, revoked.holder_code) == "已吊销"
    assert _verify(page, url, good.license_id, "11010519491231002X") == "不一致"
    page.goto(f"{url}/verify?kind=license")
    page.fill("#license_id", good.license_id)
    page.fill("#holder_code", good.holder_code)
    page.click("#verify-submit")  # no purpose chosen: the form is not sent (the field is required)
    assert page.locator("#headline").count() == 0

    assert _verify(page, url, good.license_id, good.holder_code) == "核验通过"
    page.click("#slip-link")
    page.wait_for_selector("#slip-qr svg")
    page.evaluate("window.print = () => { window.__printed = true; }")
    page.click("#print-slip")
    assert page.evaluate("window.__printed") is True
    page.emulate_media(media="print")
    assert not page.locator("header.top").is_visible()
    shot = tmp_path / "slip.png"
    page.locator("#slip-qr").screenshot(path=str(shot))
    page.emulate_media(media="screen")
    token = read_qr(shot.read_bytes())
    assert token.count(".") == 2

    ex = site["ex"]
    trust = site["root"] / "trust-copy.json"
    trust.write_text(Path(ex.trust_list).read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["verify-offline", str(shot), "--trust-list", str(trust)]) == 0

    keys = KeyStore(ex.keys_dir)
    old = keys.current("000000")
    rotate(keys, ex.trust_list, "000000")
    revoke(keys, ex.trust_list, old, "test: the national key leaked")
    trust.write_text(Path(ex.trust_list).read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["verify-offline", str(shot), "--trust-list", str(trust)]) == 2


def test_the_page_in_english(site: dict[str, Any], page: Any) -> None:
    url, lib = site["url"], site["web"].library
    page.goto(f"{url}/verify?kind=license&lang=en")
    assert "Service-window verification" in page.inner_text("h1")
    missing = rows(lib, "select license_id from license limit 1")[0].license_id
    page.fill("#license_id", missing[:-1] + ("A" if missing[-1] != "A" else "B"))
    page.fill("#holder_code", "11010519491231002X")
    page.select_option("#purpose", "tax")
    page.click("#verify-submit")
    page.wait_for_selector("[data-code], #headline")
    text = page.inner_text("main")
    assert "IDENTIFIER_INVALID" in text or "Not found" in text
    page.goto(f"{url}/verify?kind=license&lang=zh")
