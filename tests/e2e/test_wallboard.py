"""The whole product in a real browser: `tongdai up`, then the wallboard in headless
Chromium (Debian's), driven by Playwright. Screenshots are saved to var/test-artifacts/.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.stack]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def product(local_stack, tmp_path_factory) -> Iterator[str]:
    """`tongdai up` with demo traffic; yields the wallboard URL (with its token)."""
    log_path = tmp_path_factory.mktemp("up") / "up.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "up", "--cps", "1.5", "--port", str(free_port()),
         "--esl-port", str(free_port())], stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True)
    url = None
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and url is None:
            if proc.poll() is not None:
                pytest.fail(f"tongdai up exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            found = re.search(r"Wallboard:\s+(\S+)", log_path.read_text(errors="replace"))
            url = found.group(1) if found else None
            time.sleep(0.5)
        if url is None:
            pytest.fail(f"tongdai up not ready in 240 s:\n{log_path.read_text()[-3000:]}")
        yield url
    finally:
        proc.send_signal(2)  # Ctrl-C: it stops everything it started
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        shutil.copy(log_path, ARTIFACTS / "up.log") if ARTIFACTS.exists() else None


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is required (the README's set-up command installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield b
        b.close()


def test_a_call_waits_is_answered_and_shows_up_in_the_reports(product, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 950})
    page.goto(product)
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


def test_the_reports_page_shows_charts_tables_and_exports(product, browser):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1100}, accept_downloads=True)
    page.goto(product.replace("wallboard.html", "reports.html"))
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
