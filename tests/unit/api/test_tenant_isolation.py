"""Issue 16: one tenant cannot take another's numbers, SIP domain or phones.

Before: an admin of tenant B could PUT /tenant with A's SIP domain, PUT /dids/<A's number>
and PUT /extensions/1000 (all 200); when B came first in the view, mod_xml_curl answered
`tongdai_tenant=B` for A's number and B's a1-hash for 1000@A's domain.
"""
from __future__ import annotations

import base64

import pytest

from api.bus import MemoryBus
from api.config.view import ConfigView
from routing.contract import topics

pytestmark = pytest.mark.api

XML = {"Authorization": "Basic " + base64.b64encode(b"freeswitch:fs-pass").decode()}


def _xml(client, **form) -> str:
    r = client.post("/api/v1/freeswitch/xml", data=form, headers=XML)
    assert r.status_code == 200
    return r.get_data(as_text=True)


def _acme(client, auth) -> dict:
    a = auth("admin", "acme")
    assert client.put("/api/v1/tenant", json={"domain": "acme.example"}, headers=a).status_code == 200
    assert client.put("/api/v1/queues/support", json={}, headers=a).status_code == 200
    assert client.put("/api/v1/dids/02838123456", json={"queue": "support"},
                      headers=a).status_code == 200
    assert client.put("/api/v1/extensions/1000", json={}, headers=a).status_code == 200
    return a


def test_another_tenant_cannot_take_a_domain_or_a_number_and_learns_nothing(client, auth):
    b = auth("admin", "beta")
    # beta is first in the view (it configured something before acme did)
    assert client.put("/api/v1/queues/q", json={}, headers=b).status_code == 200
    _acme(client, auth)
    r = client.put("/api/v1/tenant", json={"domain": "acme.example"}, headers=b)
    assert r.status_code == 409, r.get_json()
    assert r.get_json()["details"] == [{"field": "domain", "rule": "unique across tenants"}]
    assert "acme" not in r.get_json()["message"].replace("acme.example", "")
    for form in ("02838123456", "+842838123456", "842838123456"):
        r = client.put(f"/api/v1/dids/{form}", json={"queue": "q"}, headers=b)
        assert r.status_code == 409, (form, r.get_json())
        assert r.get_json()["details"] == [{"field": "id", "rule": "unique across tenants"}]
        assert "acme" not in r.get_data(as_text=True)
    # a tenant's default domain is its id: beta cannot take gamma's
    assert client.put("/api/v1/extensions/1000", json={},
                      headers=auth("admin", "gamma")).get_json()["domain"] == "gamma"
    assert client.put("/api/v1/tenant", json={"domain": "gamma"}, headers=b).status_code == 409
    # beta's extension 1000 is in beta's own domain, never acme's
    r = client.put("/api/v1/extensions/1000", json={}, headers=b)
    assert r.status_code == 200 and r.get_json()["domain"] == "beta"
    directory = _xml(client, section="directory", domain="acme.example", user="1000")
    assert 'name="tongdai_tenant" value="acme"' in directory
    dialplan = _xml(client, section="dialplan", **{"Caller-Destination-Number": "02838123456",
                                                   "Hunt-Context": "public"})
    assert "tongdai_tenant=acme" in dialplan and "beta" not in dialplan


def test_the_first_claim_wins_and_a_released_number_can_be_taken(client, auth, bus):
    b = auth("admin", "beta")
    assert client.put("/api/v1/tenant", json={"domain": "shared.example"}, headers=b).status_code == 200
    assert client.put("/api/v1/queues/q", json={}, headers=b).status_code == 200
    assert client.put("/api/v1/dids/02838123456", json={"queue": "q"}, headers=b).status_code == 200
    a = auth("admin", "acme")
    assert client.put("/api/v1/queues/support", json={}, headers=a).status_code == 200
    assert client.put("/api/v1/tenant", json={"domain": "shared.example"}, headers=a).status_code == 409
    assert client.put("/api/v1/dids/02838123456", json={"queue": "support"},
                      headers=a).status_code == 409
    # beta updates its own number and domain freely (no new claim written)
    claims = len([e for _, e in bus.records[topics.CONFIG] if e.payload["kind"] == "claim"])
    assert client.put("/api/v1/dids/02838123456", json={"queue": "q", "name": "x"},
                      headers=b).status_code == 200
    assert client.put("/api/v1/tenant", json={"domain": "shared.example", "name": "B"},
                      headers=b).status_code == 200
    assert claims == len([e for _, e in bus.records[topics.CONFIG]
                          if e.payload["kind"] == "claim"])
    # beta lets them go: acme may take them
    assert client.delete("/api/v1/dids/02838123456", headers=b).status_code == 204
    assert client.put("/api/v1/tenant", json={"domain": "beta.example"}, headers=b).status_code == 200
    assert client.put("/api/v1/dids/02838123456", json={"queue": "support"},
                      headers=a).status_code == 200
    assert client.put("/api/v1/tenant", json={"domain": "shared.example"}, headers=a).status_code == 200
    dialplan = _xml(client, section="dialplan", **{"Caller-Destination-Number": "02838123456"})
    assert "tongdai_tenant=acme" in dialplan


def test_config_apply_refuses_another_tenants_number(app, auth, client):
    from api.auth import Principal
    from api.config.apply import apply

    _acme(client, auth)
    svc = app.extensions["tongdai"].config
    who = Principal("beta", "admin", "cli", "x", 2**31)
    outcomes = apply(svc, who, {"tenant": "beta", "queues": {"q": {}},
                                "dids": {"02838123456": {"queue": "q"}}})
    did = next(o for o in outcomes if o.kind == "did")
    assert did.status == "failed" and did.errors == [{"field": "id",
                                                      "rule": "unique across tenants"}]


def _fold(records) -> ConfigView:
    view = ConfigView()
    for _, env in records:
        view.apply(env)
    return view


def test_claims_fold_to_the_same_holder_after_compaction_and_in_a_race():
    """Two processes (own views, one topic). Acme's process reads the topic late: it has
    not seen beta's claim when it checks, so it writes its own; reading back, beta's came
    first, so acme releases and gets 409. Compaction keeps the last record per key: a
    replay finds the same holders."""
    import threading
    import time

    from api.audit.services import AuditLog
    from api.auth import Tokens
    from api.config.services import ConfigService
    from api.errors import Conflict

    bus = MemoryBus()
    views = [ConfigView(), ConfigView()]
    pending: list = []
    bus.follow(topics.CONFIG, pending.append)  # acme's process: a lagging follower
    bus.follow(topics.CONFIG, views[1].apply)
    stop = threading.Event()

    def lagging_follower() -> None:
        while not stop.is_set():
            time.sleep(0.05)
            while pending:
                views[0].apply(pending.pop(0))

    svcs = [ConfigService(view, bus, topics.CONFIG, AuditLog(bus, "audit"),
                          Tokens("s" * 40, 60)) for view in views]
    claim = "did:+842838123456"
    svcs[1].claim("beta", claim, "id")
    assert views[0].holder(claim) is None  # not read yet
    thread = threading.Thread(target=lagging_follower, daemon=True)
    thread.start()
    try:
        with pytest.raises(Conflict):
            svcs[0].claim("acme", claim, "id")
        deadline = time.monotonic() + 5
        while pending and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [v.holder(claim) for v in views] == ["beta", "beta"]
        assert views[0].claimants(claim) == views[1].claimants(claim) == ["beta"]
        svcs[1].release("beta", claim)
        while pending and time.monotonic() < deadline + 5:
            time.sleep(0.05)
        svcs[0].claim("acme", claim, "id")
    finally:
        stop.set()
        thread.join()
    records = bus.records[topics.CONFIG]
    kinds = [(e.tenant, e.payload["data"]) for _, e in records]
    assert kinds == [("beta", {"claimed": True}), ("acme", {"claimed": True}), ("acme", None),
                     ("beta", None), ("acme", {"claimed": True})]
    last: dict[bytes, int] = {}
    for i, (key, _) in enumerate(records):
        last[key] = i
    compacted = [records[i] for i in sorted(last.values())]
    assert _fold(compacted).holder(claim) == "acme"
    assert _fold(records).holder(claim) == "acme"


def test_the_config_topic_has_one_partition_the_order_claims_rely_on():
    spec = next(t for t in topics.TOPICS if t.name == topics.CONFIG)
    assert spec.partitions == 1 and spec.compacted
