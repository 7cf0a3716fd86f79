"""The whole product in a real browser: `tongdai up`, then the wallboard in headless
Chromium (Debian's), driven by Playwright. Screenshots are saved to var/test-artifacts/.
"""
from __future__ import annotations

import pytest

from tests.e2e.conftest import ARTIFACTS

pytestmark = [pytest.mark.e2e, pytest.mark.stack]


def test_a_call_waits_is_answered_and_shows_up_in_the_reports(product, context):
    page = context.new_page()
    page.set_viewport_size({"width": 1400, "height": 950})
    page.goto(product.wallboard)
    # Live data of this run arrives (SSE): the page shows the age of its view, which must
    # be fresh (a view left on the compacted live topic by an earlier run is not).
    fresh = "document.body.dataset.ageMs !== '' && Number(document.body.dataset.ageMs) < 5000"
    page.wait_for_function(fresh, timeout=60_000)
    assert page.inner_text("h1") == "Bảng theo dõi trực tiếp — tổng đài CSKH"
    page.wait_for_timeout(1500)  # the first reports answer
    offered_before = int(page.evaluate("document.body.dataset.offered || '0'"))

    # A simulated call appears, waiting or ringing, in the calls table.
    page.wait_for_function(
        f"({fresh}) && [...document.querySelectorAll('#calls tr')]"
        ".some(r => /đang chờ|đang đổ chuông/.test(r.innerText))", timeout=90_000)
    page.screenshot(path=str(ARTIFACTS / "1-call-waiting.png"), full_page=True)

    # It is answered: an agent is on a call (đang gọi).
    page.wait_for_function(
        f"({fresh}) && document.querySelector('.agent.st-on_call') !== null", timeout=120_000)
    page.screenshot(path=str(ARTIFACTS / "2-call-answered.png"), full_page=True)

    # And this run's calls reach the day's report (ClickHouse, through the API): the
    # offered count grows (the page asks for the report every 30 s).
    page.wait_for_function(f"Number(document.body.dataset.offered) > {offered_before}",
                           timeout=150_000)
    page.screenshot(path=str(ARTIFACTS / "3-in-the-reports.png"), full_page=True)

    # English labels too.
    page.select_option("#lang", "en")
    assert page.inner_text("h1") == "Live wallboard — contact center"
    page.screenshot(path=str(ARTIFACTS / "4-english.png"), full_page=True)


def test_the_reports_page_shows_charts_tables_and_exports(product, context):
    page = context.new_page()
    page.set_viewport_size({"width": 1400, "height": 1100})
    page.goto(product.reports)
    page.wait_for_function("document.body.dataset.loaded > 0", timeout=60_000)
    assert page.inner_text("#error") == ""
    assert page.locator("#hours rect").count() == 24
    assert page.locator("#queues tr").count() >= 2  # header and at least one queue
    page.screenshot(path=str(ARTIFACTS / "5-reports.png"), full_page=True)
    with page.expect_download() as download:
        page.click("button[data-export=queues][data-format=xlsx]")
    path = ARTIFACTS / "queues.xlsx"
    download.value.save_as(path)
    import openpyxl

    sheet = openpyxl.load_workbook(path).active
    header = [c.value for c in sheet[1]]
    assert "offered" in header and sheet.max_row >= 2
