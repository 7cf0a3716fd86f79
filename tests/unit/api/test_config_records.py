"""Admin writes become config records the routing worker understands (streams/config.py)."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from routing.contract import topics
from routing.contract.schemas import RecordSchema
from streams import config as worker_config

pytestmark = pytest.mark.api


def records(bus, kind=None):
    return [(k, e) for k, e in bus.records.get(topics.CONFIG, [])
            if kind is None or e.payload["kind"] == kind]


def test_queue_agent_did_tenant_records_are_what_the_worker_reads(client, auth, bus):
    h = auth("admin")
    assert client.put("/api/v1/tenant", json={"domain": "acme.example", "max_concurrent_calls": 30},
                      headers=h).status_code == 200
    queue = {"strategy": "top-down", "offer_timeout_s": 15, "wrapup_s": 5,
             "schedule": {"hours": {"mon": ["08:00-12:00", "13:30-17:30"]},
                          "holidays": ["2027-01-01"], "tet_years": [2027]},
             "after_hours": {"kind": "voicemail"}, "max_wait_s": 120,
             "max_wait_action": {"kind": "forward", "target": "0912345678"},
             "skills": {"billing": 3}, "relax": [{"after_s": 30, "min_level": 1}],
             "short_abandon_s": 5, "sl_threshold_s": 30, "vip": True}
    assert client.put("/api/v1/queues/support", json=queue, headers=h).status_code == 200
    agent = {"extension": "1001", "skills": {"billing": 5}, "languages": ["vi", "en"],
             "region": "south", "mobile": "0903 123 456", "queues": {"support": {"level": 2}},
             "shift": {"hours": {"tue": ["08:00-17:00"]}},
             "penalties": {"no_answer": {"delay_s": 5, "max_count": 2}}}
    assert client.put("/api/v1/agents/lan", json=agent, headers=h).status_code == 200
    r = client.put("/api/v1/dids/028 3812 3456", json={"queue": "support", "region": "south"},
                   headers=h)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["id"] == "+842838123456"
    assert client.put("/api/v1/dids/18001234", json={"queue": "support"},
                      headers=h).get_json()["kind"] == "toll_free"
    for key, env in records(bus):
        RecordSchema().load(env.to_dict())  # a valid contract record
        p = env.payload
        assert key == topics.config_key("acme", p["kind"], p["entity_id"])
        if p["kind"] in worker_config.KINDS:
            model = worker_config.entity(p["kind"], env.tenant, p["entity_id"], p["data"])
            assert model is not None
    agent_data = records(bus, "agent")[-1][1].payload["data"]
    assert agent_data["mobile"] == "+84903123456"
    assert agent_data["queues"] == {"support": {"level": 2, "position": 1}}
    q = worker_config.entity("queue", "acme", "support", records(bus, "queue")[-1][1].payload["data"])
    assert q.strategy == "top-down" and q.max_wait_s == 120 and "2027-02-06" in q.schedule.holidays


def test_tenant_region_prefixes_reach_the_worker(client, auth, bus):
    h = auth("admin")
    r = client.put("/api/v1/tenant", json={"region_prefixes": {
        "0912": {"province": "Hà Nội", "region": "north"}}}, headers=h)
    assert r.status_code == 200
    env = records(bus, "tenant")[-1][1]
    tenant = worker_config.entity("tenant", "acme", "acme", env.payload["data"])
    assert tenant.region_prefixes["0912"].region == "north"


def test_delete_writes_a_tombstone(client, auth, bus):
    h = auth("admin")
    client.put("/api/v1/queues/q1", json={}, headers=h)
    assert client.delete("/api/v1/queues/q1", headers=h).status_code == 204
    assert records(bus, "queue")[-1][1].payload["data"] is None
    assert client.get("/api/v1/queues/q1", headers=h).status_code == 404
    assert client.delete("/api/v1/queues/q1", headers=h).status_code == 404


_id = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)
_queue = st.fixed_dictionaries({}, optional={
    "strategy": st.sampled_from(["ring-all", "longest-idle-agent", "round-robin", "top-down",
                                 "random", "ring-progressively"]),
    "offer_timeout_s": st.integers(1, 600), "wrapup_s": st.integers(0, 3600),
    "max_wait_s": st.none() | st.integers(0, 86400), "aging_s": st.none() | st.integers(1, 999),
    "skills": st.dictionaries(_id, st.integers(1, 10), max_size=3),
    "relax": st.lists(st.fixed_dictionaries({"after_s": st.integers(0, 999),
                                             "min_level": st.integers(1, 10)}), max_size=2),
    "schedule": st.fixed_dictionaries({"hours": st.dictionaries(
        st.sampled_from(["mon", "tue", "sun"]),
        st.lists(st.sampled_from(["00:00-24:00", "08:00-12:00", "13:30-17:30"]), max_size=2))}),
    "prefer_best_skill": st.booleans(), "forward_to_mobile": st.booleans(),
    "max_len_action": st.sampled_from([{"kind": "hangup"}, {"kind": "announcement",
                                                            "target": "full"}]),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(queue=_queue, agent_skills=st.dictionaries(_id, st.integers(1, 10), max_size=3))
def test_any_valid_queue_and_agent_is_accepted_by_the_worker(client, auth, bus, queue,
                                                             agent_skills):
    h = auth("admin")
    r = client.put("/api/v1/queues/qx", json=queue, headers=h)
    assert r.status_code == 200, r.get_json()
    r = client.put("/api/v1/agents/ax", json={"extension": "2001", "skills": agent_skills,
                                              "queues": {"qx": {}}}, headers=h)
    assert r.status_code == 200, r.get_json()
    for kind in ("queue", "agent"):
        env = records(bus, kind)[-1][1]
        worker_config.entity(kind, "acme", env.payload["entity_id"], env.payload["data"])


def test_invalid_input_is_refused_naming_the_field_and_the_rule(client, auth, bus):
    h = auth("admin")
    before = len(records(bus))
    r = client.put("/api/v1/queues/q1", json={"strategy": "fastest", "wrapup_s": -1,
                                              "schedule": {"hours": {"mon": ["17:00-08:00"]}},
                                              "colour": "red"}, headers=h)
    assert r.status_code == 400
    body = r.get_json()
    fields = {d["field"]: d["rule"] for d in body["details"]}
    assert "Must be one of" in fields["strategy"]
    assert "greater than or equal to 0" in fields["wrapup_s"]
    assert "must end after it starts" in fields["schedule.hours.mon.0"]
    assert fields["colour"] == "Unknown field."
    assert body["error"] == "invalid_request" and body["message"].startswith(body["details"][0]["field"])
    r = client.put("/api/v1/agents/a1", json={"extension": "12345678"}, headers=h)
    assert r.get_json()["details"] == [{"field": "extension",
                                        "rule": "must be an extension of 2-6 digits"}]
    r = client.put("/api/v1/agents/a1", json={"extension": "1001", "queues": {"ghost": {}}},
                   headers=h)
    assert r.get_json()["details"] == [{"field": "queues.ghost", "rule": "unknown queue 'ghost'"}]
    r = client.put("/api/v1/tenant", json={"outbound_caller_id": "19001234"}, headers=h)
    assert r.status_code == 400 and "1800/1900" in r.get_json()["details"][0]["rule"]
    r = client.put("/api/v1/queues/q1", data="not json", headers=h)
    assert r.status_code == 400 and r.get_json()["details"][0]["field"] == "_body"
    r = client.put("/api/v1/queues/bad id!", json={}, headers=h)
    assert r.status_code == 400 and r.get_json()["details"][0]["field"] == "id"
    r = client.put("/api/v1/dids/18001234", json={"queue": "q1", "kind": "geographic"}, headers=h)
    assert r.status_code == 400
    assert len(records(bus)) == before  # nothing was written


def test_extension_password_is_strong_returned_once_and_never_stored(client, auth, bus, caplog):
    h = auth("admin")
    client.put("/api/v1/tenant", json={"domain": "acme.example"}, headers=h)
    r = client.put("/api/v1/extensions/1001", json={"display_name": "Lan"}, headers=h)
    password = r.get_json()["sip_password"]
    assert len(password) >= 24
    again = client.put("/api/v1/extensions/1001", json={"display_name": "Lan N."}, headers=h)
    assert "sip_password" not in again.get_json()
    assert "sip_password" not in client.get("/api/v1/extensions/1001", headers=h).get_json()
    rotated = client.put("/api/v1/extensions/1001", json={"rotate_password": True}, headers=h)
    assert rotated.get_json()["sip_password"] != password
    stored = [e.to_dict() for recs in bus.records.values() for _, e in recs]
    assert password not in repr(stored) and password not in caplog.text
    import hashlib
    data = records(bus, "extension")[0][1].payload["data"]
    assert data["a1_hash"] == hashlib.md5(f"1001:acme.example:{password}".encode()).hexdigest()


def test_list_pagination(client, auth):
    h = auth("admin")
    for i in range(7):
        client.put(f"/api/v1/queues/q{i}", json={}, headers=h)
    first = client.get("/api/v1/queues?limit=3", headers=h).get_json()
    assert [q["id"] for q in first["items"]] == ["q0", "q1", "q2"]
    assert first["total"] == 7 and first["next_offset"] == 3
    last = client.get("/api/v1/queues?limit=3&offset=6", headers=h).get_json()
    assert [q["id"] for q in last["items"]] == ["q6"] and last["next_offset"] is None
    bad = client.get("/api/v1/queues?limit=0", headers=h)
    assert bad.status_code == 400 and bad.get_json()["details"][0]["field"] == "limit"
