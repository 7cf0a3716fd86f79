"""Issue 16: webhooks signed per subscription, retried with back-off, logged, sent once.

Before: every API process sent each event (2-3 copies), unsigned, once, with no log.
"""
from __future__ import annotations

import http.server
import json
import threading
import time

import pytest

from api import settings as api_settings
from api.app import create_app
from api.bus import MemoryBus, envelope
from api.webhooks.services import verify
from routing.contract import topics

from .conftest import SECRET

pytestmark = pytest.mark.api


class Receiver:
    """A CRM's endpoint on 127.0.0.1: answers `codes` in turn (then 204), keeps requests."""

    def __init__(self, codes=()) -> None:
        self.codes = list(codes)
        self.got: list[tuple[dict, bytes]] = []
        outer = self

        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.got.append((dict(self.headers), body))
                code = outer.codes.pop(0) if outer.codes else 204
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fast(bus):
    s = api_settings.load({"TONGDAI_API_TOKEN_SECRET": SECRET,
                           "TONGDAI_API_WEBHOOK_BACKOFF_S": "0.05",
                           "TONGDAI_API_WEBHOOK_ATTEMPTS": "4"})
    app = create_app(s, bus, None)
    tokens = app.extensions["tongdai"].tokens
    admin = {"Authorization": f"Bearer {tokens.mint('acme', 'admin', 'boss')[0]}"}
    return app, app.test_client(), admin


def _offer(bus, call_id="c-1", event_id=None):
    bus.publish(topics.CC_EVENTS, b"acme", envelope("call_enqueued", "acme", {
        "queue": "support", "caller": "+84987654321"}, call_id=call_id))
    env = envelope("call_offered", "acme", {"queue": "support", "agent_id": "lan",
                                            "extension": "1001", "offer_id": f"o-{call_id}",
                                            "attempt": 1}, call_id=call_id)
    bus.publish(topics.CC_EVENTS, b"acme", env)
    return env


def _wait(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred() and time.monotonic() < deadline:
        time.sleep(0.02)
    return pred()


def test_deliveries_are_signed_with_the_subscriptions_own_secret(fast, bus):
    app, client, admin = fast
    a, b = Receiver(), Receiver()
    try:
        r = client.put("/api/v1/tenant", json={"webhooks": [{"id": "crm", "url": a.url},
                                                            {"id": "bi", "url": b.url}]},
                       headers=admin)
        assert r.status_code == 200, r.get_json()
        shown = r.get_json()["webhook_secrets"]
        assert set(shown) == {"crm", "bi"} and shown["crm"] != shown["bi"]
        for path in ("/api/v1/tenant",):
            text = client.get(path, headers=admin).get_data(as_text=True)
            assert shown["crm"] not in text and shown["bi"] not in text
        env = _offer(bus)
        assert _wait(lambda: a.got and b.got)
        for receiver, hid in ((a, "crm"), (b, "bi")):
            headers, body = receiver.got[0]
            assert verify(shown[hid], headers["X-Tongdai-Signature"], body, time.time())
            assert not verify(shown["bi" if hid == "crm" else "crm"],
                              headers["X-Tongdai-Signature"], body, time.time())
            assert not verify(shown[hid], headers["X-Tongdai-Signature"], body + b" ", time.time())
            payload = json.loads(body)
            assert payload["event_id"] == env.event_id and payload["caller"] == "+84987654321"
            assert payload["delivery_id"] == headers["X-Tongdai-Delivery"]
        # a PUT of the same subscriptions keeps their secrets (shown no more); rotate renews
        r = client.put("/api/v1/tenant", json={"webhooks": [{"id": "crm", "url": a.url},
                                                            {"id": "bi", "url": b.url}]},
                       headers=admin)
        assert "webhook_secrets" not in r.get_json()
        r = client.put("/api/v1/tenant", json={"webhooks": [
            {"id": "crm", "url": a.url, "rotate_secret": True}, {"id": "bi", "url": b.url}]},
            headers=admin)
        assert set(r.get_json()["webhook_secrets"]) == {"crm"}
        assert r.get_json()["webhook_secrets"]["crm"] != shown["crm"]
    finally:
        a.close()
        b.close()


def test_a_failing_receiver_is_retried_with_back_off_and_the_log_says_so(fast, bus):
    app, client, admin = fast
    flaky, down = Receiver([500, 503]), Receiver([500] * 10)
    try:
        client.put("/api/v1/tenant", json={"webhooks": [{"id": "flaky", "url": flaky.url},
                                                        {"id": "down", "url": down.url}]},
                   headers=admin)
        t0 = time.monotonic()
        env = _offer(bus)
        assert len(flaky.got) == 3 and len(down.got) == 4  # handled in the publish
        assert time.monotonic() - t0 >= 0.05 + 0.1 + 0.2  # back-off 0.05, 0.1, 0.2 s
        assert len({h["X-Tongdai-Delivery"] for h, _ in flaky.got}) == 1  # one delivery
        log = client.get("/api/v1/webhooks/deliveries", headers=admin).get_json()
        got = {e["webhook_id"]: e for e in log["items"]}
        assert (got["flaky"]["status"], got["flaky"]["attempts"],
                got["flaky"]["http_status"]) == ("delivered", 3, 204)
        assert (got["down"]["status"], got["down"]["attempts"],
                got["down"]["http_status"]) == ("failed", 4, 500)
        assert all(e["event_id"] == env.event_id for e in log["items"])
        failed = client.get("/api/v1/webhooks/deliveries?status=failed", headers=admin).get_json()
        assert [e["webhook_id"] for e in failed["items"]] == ["down"]
        # admins of the tenant only
        tokens = app.extensions["tongdai"].tokens
        for role, tenant, code in (("supervisor", "acme", 403), ("admin", "beta", 200)):
            h = {"Authorization": f"Bearer {tokens.mint(tenant, role, 'x')[0]}"}
            r = client.get("/api/v1/webhooks/deliveries", headers=h)
            assert r.status_code == code
            if code == 200:
                assert r.get_json()["total"] == 0
    finally:
        flaky.close()
        down.close()


def test_an_event_read_again_is_not_sent_again(fast, bus):
    app, client, admin = fast
    crm = Receiver()
    try:
        client.put("/api/v1/tenant", json={"webhooks": [{"url": crm.url}]}, headers=admin)
        env = _offer(bus)
        app.extensions["tongdai"].webhooks.handle(env)  # a redelivery after a rebalance
        assert len(crm.got) == 1
    finally:
        crm.close()
