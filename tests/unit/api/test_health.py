"""Health that tells the truth, and no thread held by a server that stopped answering.

A SIGSTOPped Kafka or ClickHouse keeps its listening socket: the kernel still completes
TCP handshakes, and nothing ever answers. `silent_server` is exactly that."""
from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from api import settings as api_settings
from api.app import create_app
from api.bus import MemoryBus
from api.health import Health, clickhouse_ask, kafka_ask

from .conftest import SECRET

pytestmark = pytest.mark.api


@pytest.fixture
def silent_server() -> Iterator[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # never accepted, never answered: a frozen server
    yield sock.getsockname()[1]
    sock.close()


def _wait(predicate, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_dependency_that_answers_is_up_and_one_that_stops_is_down():
    answers = {"ok": True}

    def ask() -> None:
        if not answers["ok"]:
            raise TimeoutError("no answer in 0.1 s")

    health = Health(interval_s=0.05, stale_s=0.3)
    health.add("thing", ask)
    try:
        assert _wait(lambda: health.status()["thing"]["ok"])
        answers["ok"] = False
        assert _wait(lambda: not health.status()["thing"]["ok"])
        assert "no answer" in health.status()["thing"]["detail"]
    finally:
        health.close()


def test_a_frozen_kafka_broker_is_reported_down(silent_server):
    health = Health(interval_s=0.2, stale_s=1.0)
    health.add("kafka", kafka_ask(f"127.0.0.1:{silent_server}", timeout_s=0.5))
    try:
        time.sleep(1.5)
        status = health.status()["kafka"]
        assert status["ok"] is False and status["detail"]
    finally:
        health.close()


def test_a_frozen_clickhouse_is_reported_down(silent_server):
    from analytics.db import NativeDatabase

    health = Health(interval_s=0.2, stale_s=1.0)
    health.add("clickhouse", clickhouse_ask(lambda: NativeDatabase(
        "127.0.0.1", silent_server, connect_timeout=0.5, send_receive_timeout=0.5)))
    try:
        assert _wait(lambda: health.status()["clickhouse"]["detail"] not in ("", None), 5)
        assert health.status()["clickhouse"]["ok"] is False
    finally:
        health.close()


def test_a_report_on_a_frozen_clickhouse_is_a_503_within_the_limit(silent_server, auth):
    s = api_settings.load({"TONGDAI_API_TOKEN_SECRET": SECRET,
                           "TONGDAI_API_XML_CURL_PASSWORD": "fs-pass",
                           "TONGDAI_CLICKHOUSE_PORT": str(silent_server),
                           "TONGDAI_API_REPORT_TIMEOUT_S": "1"})
    app = create_app(s, MemoryBus())
    token, _ = app.extensions["tongdai"].tokens.mint("acme", "supervisor", "sup")
    client = app.test_client()
    started = time.monotonic()
    r = client.get("/api/v1/reports/queues?start=2026-12-01T00:00:00%2B07:00&end=2026-12-02T00:00:00%2B07:00",
                   headers={"Authorization": f"Bearer {token}"})
    took = time.monotonic() - started
    assert r.status_code == 503, r.get_json()
    assert "reports not available" in r.get_json()["message"]
    assert took < 4.0, f"a request waited {took:.1f} s on a frozen ClickHouse"
    health = client.get("/api/v1/health")
    assert "clickhouse" in health.get_json()["dependencies"]
    app.extensions["tongdai"].health.close()
