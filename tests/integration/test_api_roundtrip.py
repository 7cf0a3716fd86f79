"""Config round trip: queue + agent created through the API -> the real worker routes a
simulated call with them -> the call log (analytics' fold) -> the API's reports show it.

Real processes: the ESL simulator, `tongdai bridge`, `tongdai worker` and `tongdai api`
(gunicorn) on the local Kafka; the tenant's events are folded into a ClickHouse database
of this test with analytics' sink code (`replay`), then read through the API.
"""
from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest

from analytics import migrations
from analytics.db import NativeDatabase
from analytics.sink import replay
from esl_bridge.simulator import Simulator
from esl_bridge.simulator.model import AgentSpec, CallerSpec
from routing.contract import topics
from tests.fixtures.api import ApiServer, create_topics, delete_topics

from .harness import Reader, bridge_env, start_process, stop_process, wait_ready, worker_env

pytestmark = [pytest.mark.api, pytest.mark.stack]


def other_routers(bootstrap: str) -> list[str]:
    """Consumer groups routing the shared command topic right now (e.g. a `tongdai up`).

    Every routing worker routes every tenant it reads; a second one (another deployment on
    the same broker) decides for our test tenant too, without its configuration, and both
    sets of decisions reach our simulator's actuator. The round trip needs to be alone.
    """
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10000)
    try:
        active = [g["group_id"] for g in admin.list_groups()
                  if g.get("group_state") not in ("Empty", "Dead")]
        if not active:
            return []
        described = admin.describe_groups(active)
    finally:
        admin.close()
    return [gid for gid, d in described.items()
            if any(topics.CC_COMMANDS in repr(m) for m in d.get("members") or ())]


def test_queue_and_agent_made_through_the_api_route_a_call_that_the_report_shows(
        local_stack, tmp_path):
    bootstrap = local_stack.kafka_bootstrap
    busy = other_routers(bootstrap)
    if busy:
        pytest.skip(f"another routing worker is running on the shared broker ({busy}): it "
                    f"would route this test's tenant too")
    tenant = f"t{uuid.uuid4().hex[:10]}.test"
    audit_topic = f"t-api-{uuid.uuid4().hex[:8]}-audit"
    create_topics(bootstrap, [audit_topic])
    db = NativeDatabase("127.0.0.1", local_stack.clickhouse_tcp_port,
                        f"t_api_rt_{uuid.uuid4().hex[:8]}", local_stack.clickhouse_user,
                        local_stack.clickhouse_password)
    migrations.migrate(db)
    sim = Simulator(port=0, password="api-rt", heartbeat=3600, seed=5,
                    core_uuid=str(uuid.uuid4()))  # a node of its own: decisions are per node
    sim.start()
    bridge = start_process("bridge", tmp_path, bridge_env(sim, tmp_path, bootstrap))
    worker = start_process("worker", tmp_path, worker_env(tmp_path, bootstrap,
                                                          f"test-api-rt-{uuid.uuid4().hex[:8]}"))
    api = ApiServer(tmp_path, {"TONGDAI_KAFKA_BOOTSTRAP": bootstrap,
                               "TONGDAI_AUDIT_TOPIC": audit_topic,
                               **local_stack.clickhouse_environ(),
                               "TONGDAI_CLICKHOUSE_DATABASE": db.database})
    reader = Reader(bootstrap, [topics.FS_EVENTS, topics.CC_EVENTS], lambda e: e.tenant == tenant)
    try:
        wait_ready(worker, "Ready")
        wait_ready(bridge, "subscribed")
        api.wait_ready()
        admin = api.token("admin", tenant=tenant, user="routing-engineer")
        for path, body in [
            ("/api/v1/tenant", {"domain": tenant, "outbound_caller_id": "02838123456"}),
            ("/api/v1/queues/support", {"strategy": "longest-idle-agent", "offer_timeout_s": 10,
                                        "wrapup_s": 1}),
            ("/api/v1/extensions/2301", {"display_name": "Lan"}),
            ("/api/v1/agents/lan", {"extension": "2301", "queues": {"support": {}}}),
            ("/api/v1/dids/02838123456", {"queue": "support"}),
        ]:
            r = api.call("PUT", path, admin, json=body)
            assert r.status_code == 200, (path, r.text)
        sim.add_agent(AgentSpec.parse({"ext": "2301", "domain": tenant, "register_at": None,
                                       "answer_delay": 0.3}))
        sim.register("2301", tenant)
        me = api.token("agent", tenant=tenant, user="lan")
        assert api.call("POST", "/api/v1/agents/lan/login", me, json={}).status_code == 202
        # the worker's live view, through the API, shows the agent ready
        sup = api.token("supervisor", tenant=tenant, user="mai")
        deadline = time.monotonic() + 60
        live = {}
        while time.monotonic() < deadline:
            live = api.call("GET", "/api/v1/live", sup).json()
            if any(a["agent_id"] == "lan" and a["state"] == "available" for a in live["agents"]):
                break
            time.sleep(0.3)
        else:
            raise AssertionError(f"agent never available in /live: {live}\n{api.log()}\n"
                                     f"worker:\n{worker.log_path.read_text()[-3000:]}")
        started = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
        call = sim.place_call(CallerSpec.parse({
            "at": 0, "number": "0903123456", "did": "02838123456", "patience": 60, "talk": 1.0,
            "variables": {"tongdai_tenant": tenant, "tongdai_queue": "support"}}))
        try:
            reader.wait_for(lambda es: any(e.type == "call_ended" and e.call_id == call
                                           for e in es), timeout=45, what="call_ended")
        except AssertionError:
            raise AssertionError([(e.type, e.payload) for e in reader.envelopes()
                                  if e.type in ("agent_state_changed", "command_executed",
                                                "channel_hungup", "decision_made")][:12])
        reader.poll(1.0)  # the caller leg's last channel facts
        unique = {e.event_id: e for e in reader.envelopes()}  # at-least-once: drop repeats
        replay(db, sorted(unique.values(), key=lambda e: (e.occurred_at, e.event_id)))
        period = {"start": started.isoformat(),
                  "end": (dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=1)).isoformat()}
        kpis = api.call("GET", "/api/v1/reports/queues", sup, params=period).json()["items"]
        # (a second routing worker of a concurrent test on the shared broker can enqueue the
        # call twice; the call itself is still answered once)
        assert [(k["queue"], k["answered"]) for k in kpis] == [("support", 1)]
        assert kpis[0]["offered"] >= 1
        found = api.call("GET", "/api/v1/calls", sup,
                         params={**period, "number": "+84903123456"}).json()
        assert [c["call_id"] for c in found["items"]] == [call]
        assert found["items"][0]["agent_id"] == "lan"
        detail = api.call("GET", f"/api/v1/calls/{call}", sup).json()
        assert detail["routing"] and detail["routing"][0]["chosen"] == ["lan"]
        agents = api.call("GET", "/api/v1/reports/agents", sup, params=period).json()["items"]
        assert [a["agent_id"] for a in agents] == ["lan"] and agents[0]["handled"] >= 1
    finally:
        reader.close()
        api.stop()
        stop_process(worker)
        stop_process(bridge)
        sim.stop()
        db.execute(f"DROP DATABASE IF EXISTS {db.database}")
        db.close()
        delete_topics(bootstrap, [audit_topic])
