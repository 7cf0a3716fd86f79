"""End-to-end tests use the same local stack as the integration tests, and share one
`tongdai up` and one headless Chromium for the whole session (starting the product takes
most of an e2e test's time).
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
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.integration.conftest import local_stack  # noqa: F401  (a pytest fixture)

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "var" / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PRINTED = {"wallboard": r"Wallboard:\s+(\S+)", "reports": r"Reports:\s+(\S+)",
           "agent": r"Agent page:\s+(\S+)", "admin": r"Admin:\s+(\S+)"}


SHARED = frozenset({"product", "browser", "context"})


def pytest_collection_modifyitems(session, config, items) -> None:
    """The tests on the shared `tongdai up` and Chromium run last in the session: session
    fixtures live until the session ends, and a running demo (calls, a routing worker on
    the shared topics, CPU) or an open Playwright loop would disturb every test after them
    (integration tests, the freshness benchmark's own browser)."""
    items.sort(key=lambda item: bool(SHARED & set(getattr(item, "fixturenames", ()))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Product:
    """What `tongdai up` printed: the pages' URLs, each with its token in the fragment."""

    wallboard: str
    reports: str
    agent: str
    admin: str

    @property
    def base(self) -> str:
        """http://127.0.0.1:<port> of the API."""
        return self.wallboard.split("/web/", 1)[0]

    @property
    def supervisor_token(self) -> str:
        return self.wallboard.split("#token=", 1)[1]

    @property
    def agent_token(self) -> str:
        return self.agent.split("#token=", 1)[1]

    @property
    def admin_token(self) -> str:
        return self.admin.split("#token=", 1)[1]


@pytest.fixture(scope="session")
def product(local_stack, tmp_path_factory) -> Iterator[Product]:  # noqa: F811
    """`tongdai up` with demo traffic (1.5 calls/s), once for every e2e test."""
    log_path = tmp_path_factory.mktemp("up") / "up.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "deploy.cli", "up", "--cps", "1.5", "--port", str(free_port()),
         "--esl-port", str(free_port())], stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True)
    urls: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and len(urls) < len(PRINTED):
            if proc.poll() is not None:
                pytest.fail(f"tongdai up exited {proc.returncode}:\n{log_path.read_text()[-3000:]}")
            text = log_path.read_text(errors="replace")
            urls = {name: m.group(1) for name, rx in PRINTED.items() if (m := re.search(rx, text))}
            time.sleep(0.5)
        if len(urls) < len(PRINTED):
            pytest.fail(f"tongdai up not ready in 240 s (printed {sorted(urls)}):\n"
                        f"{log_path.read_text()[-3000:]}")
        yield Product(**urls)
    finally:
        proc.send_signal(2)  # Ctrl-C: it stops everything it started
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
        log.close()
        shutil.copy(log_path, ARTIFACTS / "up.log") if ARTIFACTS.exists() else None


@pytest.fixture(scope="session")
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


@pytest.fixture
def context(browser):
    """A fresh browser context per test (own storage), closed afterwards: its pages' open
    event streams do not hold the API's threads into the next test."""
    ctx = browser.new_context(accept_downloads=True)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield ctx
    ctx.close()
