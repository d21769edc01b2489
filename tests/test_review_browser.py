"""The review page in a real browser (Playwright driving the system Chromium, headless).

An operator logs in, filters by code, opens a row whose ID number has a wrong check character, reveals
it, fixes it and resubmits; after the sync (what the ``tongban_review`` maintenance DAG runs) the row is
in the county, province and national libraries. Then another row is discarded with a reason, 50 rows
are acted on at once, and the page is switched to English. Screenshots of every step are saved (the
folder is printed; ``TONGBAN_TEST_ARTIFACTS`` puts them under that folder instead of pytest's tmp).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import World
from tests.webutil import live_server
from tongban.core import review
from tongban.core.review import operators
from tongban.web.app import create_app
from tongban.web.settings import WebSettings

CHROMIUM = Path("/usr/bin/chromium")
PASSWORD = "correct horse battery staple"
P = "population"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="needs the system Chromium at /usr/bin/chromium"
)


def _shots(tmp_path: Path) -> Path:
    root = os.environ.get("TONGBAN_TEST_ARTIFACTS")
    folder = (Path(root) / "review-browser") if root else (tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    print(f"screenshots: {folder}")  # shown when the test fails
    return folder


def test_operator_fixes_resubmits_discards_acts_on_50_and_switches_language(
    make_world: Callable[..., World], h: Any, tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    shots = _shots(tmp_path)
    w = make_world({h.A: h.QINGHAI, h.B: h.QINGHAI})
    bad = h.person(h.A, 500)
    good_id = bad["sfzh"]
    bad["sfzh"] = good_id[:-1] + ("0" if good_id[-1] != "0" else "1")
    dates = [{**h.person(h.A, 600 + i), "csrq": "1980-02-30"} for i in range(55)]
    w.registers[h.A].put([*h.people(h.A, 5), bad, *dates])
    w.registers[h.B].put(h.people(h.B, 4))
    w.sync_all()
    settings = WebSettings.for_node(w.ex, session_secret=b"b" * 32)
    settings.library.migrate()
    operators.add(settings.library, "wang", "王工", PASSWORD, reveal=True, by="test")

    with live_server(create_app(settings)) as url, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            # Log in (the page asked for sends us to the login page and back).
            page.goto(f"{url}/review")
            assert "/login" in page.url
            page.fill("input[name=username]", "wang")
            page.fill("input[name=secret]", "not the password")
            page.click("button.primary")
            assert page.locator("[data-code=AUTH_INVALID]").is_visible()
            page.fill("input[name=username]", "wang")
            page.fill("input[name=secret]", PASSWORD)
            page.click("button.primary")
            page.wait_for_url(re.compile(r".*/review$"))
            page.wait_for_selector(".chart[data-drawn='1'] svg")
            assert page.locator("#open-total").inner_text() == "56"
            assert (page.locator("table[data-table=by_code]").text_content() or "").count("DATE_INVALID") == 1
            page.screenshot(path=str(shots / "01-overview.png"), full_page=True)

            # Filter by code: the one row with a wrong check character.
            page.click("text=查看列表")
            page.fill("input[name=code]", "ID_CHECKSUM")
            page.click("#apply-filter")
            rows = page.locator("table#failures tbody tr[data-ref]")
            assert rows.count() == 1
            assert bad["sfzh"] not in page.content()  # masked
            page.screenshot(path=str(shots / "02-filtered.png"), full_page=True)

            # Open it, reveal it (audited), fix the check character, resubmit.
            rows.first.locator("a.open-row").click()
            assert page.locator("#codes tr[data-code=ID_CHECKSUM]").count() == 1
            assert bad["sfzh"] not in page.content()
            page.click("#reveal")
            assert page.locator("#revealed").is_visible() and bad["sfzh"] in page.content()
            page.screenshot(path=str(shots / "03-revealed.png"), full_page=True)
            page.fill("#f_id_number", good_id)
            page.click("#resubmit")
            assert page.locator("#done[data-action=resubmit]").is_visible()
            assert page.locator("#state").inner_text() == "queued"
            page.screenshot(path=str(shots / "04-resubmitted.png"), full_page=True)

            # The sync: what the tongban_review maintenance DAG runs every few minutes.
            applied = review.apply_queued(w.ex, w.libs)
            assert all(a["ok"] for a in applied)
            for node in (h.A, h.QINGHAI, h.NATIONAL):
                record = w.lib(node).record(P, good_id)
                assert record is not None and record["_owner"] == h.A, node
            page.reload()
            assert page.locator("#state").inner_text() == "resolved"
            # The page shows it arrived at every level (county, province, national).
            assert page.locator("#arrivals tr[data-present='1']").count() == 3
            assert page.locator("#history tr[data-action=resubmitted]").count() == 1
            page.screenshot(path=str(shots / "05-loaded.png"), full_page=True)

            # Discard another, with a reason (without one it is refused).
            page.goto(f"{url}/review/failures?code=DATE_INVALID&size=20&sort=oldest")
            page.locator("table#failures tbody tr[data-ref] a.open-row").first.click()
            discarded = page.locator("#ref").inner_text()
            page.click("#discard")
            assert page.locator("#error[data-code=FAILED_REASON_REQUIRED]").is_visible()
            page.fill("#discard-reason", "测试数据 test data")
            page.click("#discard")
            assert page.locator("#state").inner_text() == "discarded"
            page.screenshot(path=str(shots / "06-discarded.png"), full_page=True)

            # 50 rows at once: select the page, queue them for a retry.
            page.goto(f"{url}/review/failures?code=DATE_INVALID&size=50")
            assert page.locator("input.pick").count() == 50
            page.check("#pick-all")
            assert page.locator("#picked").inner_text() == "50"
            page.select_option("#bulk-action", "retry")
            page.screenshot(path=str(shots / "07-selected-50.png"), full_page=True)
            page.click("#bulk-go")
            assert page.locator("#applied").get_attribute("data-count") == "50"
            assert page.locator("#refused").count() == 0
            page.screenshot(path=str(shots / "08-acted-on-50.png"), full_page=True)

            # English.
            page.goto(f"{url}/review/failures?state=queued")
            page.click("#lang-switch")
            assert page.locator("h1").first.inner_text().startswith("Failed transfers")
            assert page.locator("#total strong").inner_text() == "50"
            page.screenshot(path=str(shots / "09-english.png"), full_page=True)
            assert errors == []
        finally:
            page.screenshot(path=str(shots / "99-last.png"), full_page=True)
            browser.close()

    lib = w.lib(h.A)
    assert len(lib.failures(state="queued")) == 50
    assert [f["id"] for f in lib.failures(state="discarded")] == [int(discarded.split(":")[1])]
    actions = {e.action for e in settings.audit.entries(limit=500)}
    assert {"login", "failed.reveal", "failed.resubmit", "failed.discard", "failed.retry"} <= actions
    assert settings.audit.verify() is None
    assert len(list(shots.glob("*.png"))) >= 10
