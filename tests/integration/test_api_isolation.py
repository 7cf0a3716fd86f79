"""Issue 16 on the real stack: claims settled by the config topic across API processes.

Two `tongdai api` processes on the same topics; two tenants claim the same numbers and
SIP domains at the same moment, one through each process. Exactly one wins each race,
and both processes (and a third started afterwards, replaying the topic) agree who.
"""
from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from tests.fixtures.api import ApiServer, create_topics, delete_topics, topic_names

pytestmark = [pytest.mark.api, pytest.mark.stack]


@pytest.fixture(scope="module")
def servers(local_stack, tmp_path_factory) -> Iterator[tuple[ApiServer, ApiServer, dict]]:
    topics = topic_names(uuid.uuid4().hex[:8])
    bootstrap = local_stack.kafka_bootstrap
    create_topics(bootstrap, list(topics.values()))
    env = {**topics, "TONGDAI_KAFKA_BOOTSTRAP": bootstrap, "TONGDAI_REPORTS_ENABLED": "false",
           "TONGDAI_API_WEBHOOK_GROUP": f"t-api-wh-{uuid.uuid4().hex[:8]}"}
    tmp = tmp_path_factory.mktemp("iso")
    one, two = ApiServer(tmp, env), ApiServer(tmp, env)
    try:
        one.wait_ready()
        two.wait_ready()
        yield one, two, env
    finally:
        one.stop()
        two.stop()
        delete_topics(bootstrap, list(topics.values()))


def _race(calls) -> list:
    """Run the (server, method, path, token, body) calls at the same moment."""
    barrier = threading.Barrier(len(calls))
    out: list = [None] * len(calls)

    def run(i: int, server: ApiServer, method: str, path: str, token: str, body: dict) -> None:
        barrier.wait()
        out[i] = server.call(method, path, token, json=body)

    threads = [threading.Thread(target=run, args=(i, *c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return out


def test_two_processes_two_tenants_one_number_exactly_one_wins(servers, tmp_path):
    one, two, env = servers
    tenants = ("ta", "tb")
    for server, tenant in zip((one, two), tenants):
        r = server.call("PUT", "/api/v1/queues/q", server.token("admin", tenant), json={})
        assert r.status_code == 200, r.text
    rounds = 12
    winners: dict[str, str] = {}
    for i in range(rounds):
        number = f"02838{i:06d}"
        domain = f"race{i}.example"
        results = _race([
            (one, "PUT", f"/api/v1/dids/{number}", one.token("admin", "ta"), {"queue": "q"}),
            (two, "PUT", f"/api/v1/dids/{number}", two.token("admin", "tb"), {"queue": "q"}),
            (one, "PUT", "/api/v1/tenant", one.token("admin", "ta"), {"domain": domain}),
            (two, "PUT", "/api/v1/tenant", two.token("admin", "tb"), {"domain": domain}),
        ])
        for what, pair in (("did", results[:2]), ("domain", results[2:])):
            codes = sorted(r.status_code for r in pair)
            assert codes == [200, 409], (i, what, [r.text for r in pair])
            loser = next(r for r in pair if r.status_code == 409)
            assert "ta" not in loser.json()["message"] and "tb" not in loser.json()["message"]
            winners[f"{what}{i}"] = tenants[[r.status_code for r in pair].index(200)]
    # both processes agree; a third process, replaying the topic, agrees too
    third = ApiServer(tmp_path, env)
    try:
        third.wait_ready()
        for server in (one, two, third):
            for i in range(rounds):
                number = f"+842838{i:06d}"
                mine = winners[f"did{i}"]
                other = tenants[1 - tenants.index(mine)]
                assert server.call("GET", f"/api/v1/dids/{number}",
                                   server.token("admin", mine)).status_code == 200
                r = server.call("PUT", f"/api/v1/dids/{number}", server.token("admin", other),
                                json={"queue": "q"})
                assert r.status_code == 409, (server.port, i, r.text)
    finally:
        third.stop()
    assert set(winners.values()) <= set(tenants)


def test_sixteen_streams_of_one_agent_leave_the_api_answering(servers):
    """Before: one agent's 16 event streams held all 16 threads (2 x 8) and the API stopped
    answering. Now at most 3 per user per process; the rest get 429 at once."""
    import time

    import requests

    one, _two, _env = servers
    admin = one.token("admin", "ta")
    assert one.call("PUT", "/api/v1/agents/lan", admin, json={"extension": "1001"}).status_code == 200
    agent = one.token("agent", "ta", user="lan")
    path = "/api/v1/agents/lan/popups"
    opened, codes = [], []
    try:
        for _ in range(16):
            r = one.call("POST", "/api/v1/stream-tickets", agent, json={"path": path})
            assert r.status_code == 201, r.text
            s = requests.get(f"{one.url}{path}", params={"ticket": r.json()["ticket"]},
                             stream=True, timeout=10)
            codes.append(s.status_code)
            opened.append(s)
        assert codes.count(200) == 3 and codes.count(429) == 13, codes
        t0 = time.monotonic()
        assert one.call("GET", "/api/v1/me", agent).status_code == 200
        assert time.monotonic() - t0 < 2
    finally:
        for s in opened:
            s.close()


def test_no_token_in_the_servers_log(servers):
    """Tokens (good, tampered, revoked, in a refused URL) never reach the log."""
    one, two, _env = servers
    admin = one.token("admin", "ta")
    one.call("PUT", "/api/v1/users/mai", admin, json={"role": "supervisor"})
    minted = one.call("POST", "/api/v1/tokens", admin,
                      json={"user": "mai", "role": "supervisor"}).json()
    secrets = [admin, minted["token"]]
    for server in (one, two):
        for tok in secrets:
            server.call("GET", "/api/v1/queues", tok)
            server.call("GET", "/api/v1/queues", tok[:-3] + "xyz")
            server.call("GET", "/api/v1/live/stream", None, params={"access_token": tok})
            server.call("PUT", "/api/v1/queues/q", tok, data=b"[" * 5000,
                        headers={"Content-Type": "application/json"})
    one.call("DELETE", f"/api/v1/tokens/{minted['token_id']}", admin)
    one.call("GET", "/api/v1/queues", minted["token"])
    for server in (one, two):
        log = server.log_path.read_text(errors="replace")
        for tok in secrets:
            assert tok not in log and tok.split(".")[-1] not in log


def test_each_event_is_sent_once_per_subscription_by_two_api_processes(servers):
    """Before: every API process sent every webhook (2-3 copies)."""
    import json
    import time

    from api.bus import envelope
    from api.webhooks.services import verify
    from tests.integration.test_api_server import publish
    from tests.unit.api.test_webhooks import Receiver

    one, two, env = servers
    crm, bi = Receiver(), Receiver()
    try:
        r = one.call("PUT", "/api/v1/tenant", one.token("admin", "tw"), json={"webhooks": [
            {"id": "crm", "url": crm.url}, {"id": "bi", "url": bi.url}]})
        assert r.status_code == 200, r.text
        secrets = r.json()["webhook_secrets"]
        topic = env["TONGDAI_EVENTS_TOPIC"]
        bootstrap = one.env["TONGDAI_KAFKA_BOOTSTRAP"]

        def offered(i: int):
            return envelope("call_offered", "tw", {"queue": "q", "agent_id": "lan",
                                                   "extension": "1001", "offer_id": f"o{i}",
                                                   "attempt": 1}, call_id=f"c{i}")

        # the group joins at the topic's end: probe until the group delivers
        deadline = time.monotonic() + 60
        i = 0
        while not crm.got and time.monotonic() < deadline:
            publish(bootstrap, topic, offered(i))
            i += 1
            time.sleep(1)
        assert crm.got, "the webhook group never delivered"
        time.sleep(2)
        events = [offered(1000 + k) for k in range(10)]
        publish(bootstrap, topic, *events)
        wanted = {e.event_id for e in events}

        def mine(receiver):
            return [json.loads(body)["event_id"] for _, body in receiver.got
                    if json.loads(body)["event_id"] in wanted]

        deadline = time.monotonic() + 30
        while (len(mine(crm)) < 10 or len(mine(bi)) < 10) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(3)  # a second copy would come now
        assert sorted(mine(crm)) == sorted(wanted) and sorted(mine(bi)) == sorted(wanted)
        for headers, body in crm.got:
            assert verify(secrets["crm"], headers["X-Tongdai-Signature"], body, time.time())
        # the delivery log, readable by the tenant's admin on either process
        for server in (one, two):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                log = server.call("GET", "/api/v1/webhooks/deliveries",
                                  server.token("admin", "tw"), params={"limit": 1000}).json()
                logged = [e for e in log["items"] if e["event_id"] in wanted]
                if len(logged) == 20:
                    break
                time.sleep(0.2)
            assert len(logged) == 20 and all(e["status"] == "delivered" for e in logged)
    finally:
        crm.close()
        bi.close()
