"""Tokens, roles, tenant scope; agent commands and click-to-call as command records."""
from __future__ import annotations

import pytest

from api.auth import Tokens
from api.errors import Unauthorized
from routing.contract import topics
from routing.contract.schemas import RecordSchema

pytestmark = pytest.mark.api


def test_tokens_verify_and_refuse_tampering_and_expiry():
    now = [1000.0]
    tokens = Tokens("s" * 40, 3600, clock=lambda: now[0])
    token, claims = tokens.mint("acme", "supervisor", "mai")
    assert tokens.verify(token) == claims
    with pytest.raises(Unauthorized):
        tokens.verify(token[:-2] + ("AA" if token[-2:] != "AA" else "BB"))
    with pytest.raises(Unauthorized):
        Tokens("t" * 40, 3600).verify(token)  # another secret
    now[0] += 3601
    with pytest.raises(Unauthorized, match="expired"):
        tokens.verify(token)


def test_no_token_bad_token_wrong_role(client, auth):
    assert client.get("/api/v1/queues").status_code == 401
    assert client.get("/api/v1/queues", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/api/v1/queues", headers=auth("agent")).status_code == 403
    assert client.put("/api/v1/queues/q", json={}, headers=auth("supervisor")).status_code == 403
    assert client.get("/api/v1/queues", headers=auth("supervisor")).status_code == 200


def test_a_tenant_never_sees_or_changes_another(client, auth):
    client.put("/api/v1/queues/secret", json={}, headers=auth("admin", "beta"))
    client.put("/api/v1/agents/b1", json={"extension": "1001"}, headers=auth("admin", "beta"))
    a = auth("admin", "acme")
    assert client.get("/api/v1/queues/secret", headers=a).status_code == 404
    assert client.get("/api/v1/queues", headers=a).get_json()["total"] == 0
    assert client.delete("/api/v1/queues/secret", headers=a).status_code == 404
    assert client.post("/api/v1/agents/b1/login", json={}, headers=a).status_code == 404
    assert client.get("/api/v1/audit", headers=a).get_json()["total"] == 0
    assert client.get("/api/v1/queues/secret", headers=auth("admin", "beta")).status_code == 200


def test_revoked_tokens_and_disabled_users_are_refused(client, auth, app):
    admin = auth("admin")
    assert client.put("/api/v1/users/mai", json={"role": "supervisor"}, headers=admin).status_code == 200
    r = client.post("/api/v1/tokens", json={"user": "mai", "role": "supervisor"}, headers=admin)
    assert r.status_code == 201
    minted = r.get_json()
    h = {"Authorization": f"Bearer {minted['token']}"}
    assert client.get("/api/v1/queues", headers=h).status_code == 200
    assert client.delete(f"/api/v1/tokens/{minted['token_id']}", headers=admin).status_code == 204
    assert client.get("/api/v1/queues", headers=h).status_code == 401
    r = client.post("/api/v1/tokens", json={"user": "mai", "role": "admin"}, headers=admin)
    assert r.status_code == 400 and r.get_json()["details"][0]["field"] == "role"
    token2 = client.post("/api/v1/tokens", json={"user": "mai", "role": "supervisor"},
                         headers=admin).get_json()["token"]
    client.put("/api/v1/users/mai", json={"role": "supervisor", "disabled": True}, headers=admin)
    assert client.get("/api/v1/queues", headers={"Authorization": f"Bearer {token2}"}).status_code == 401
    actions = [e["action"] for e in client.get("/api/v1/audit", headers=admin).get_json()["items"]]
    assert "token.create" in actions and "token.revoke" in actions


def _setup(client, auth):
    h = auth("admin")
    client.put("/api/v1/queues/support", json={}, headers=h)
    client.put("/api/v1/agents/lan", json={"extension": "1001", "queues": {"support": {}}}, headers=h)
    client.put("/api/v1/agents/binh", json={"extension": "1002"}, headers=h)
    client.put("/api/v1/users/lan", json={"role": "agent", "agent_id": "lan"}, headers=h)
    return h


def test_agent_commands_are_records_for_the_worker(client, auth, bus):
    h = _setup(client, auth)
    for action in ("login", "pause", "resume", "ready", "logout"):
        body = {"reason": "lunch" if action == "pause" else "start of shift"}
        r = client.post(f"/api/v1/agents/lan/{action}", json=body, headers=h)
        assert r.status_code == 202, r.get_json()
    sent = bus.records[topics.CC_COMMANDS]
    assert [e.type for _, e in sent] == ["agent_login_requested", "agent_pause_requested",
                                         "agent_resume_requested", "agent_ready_requested",
                                         "agent_logout_requested"]
    for key, env in sent:
        assert key == topics.tenant_key("acme")
        RecordSchema().load(env.to_dict())
        assert env.payload["agent_id"] == "lan"
    assert sent[1][1].payload["reason"] == "lunch"
    # an agent acts only for itself
    me = auth("agent", user="lan")
    assert client.post("/api/v1/agents/lan/pause", json={}, headers=me).status_code == 202
    assert client.post("/api/v1/agents/binh/pause", json={}, headers=me).status_code == 403
    assert client.post("/api/v1/agents/ghost/login", json={"reason": "x"},
                       headers=h).status_code == 404


def test_a_supervisor_changes_an_agents_state_with_a_reason_audited(client, auth, bus):
    h = _setup(client, auth)
    sup = auth("supervisor", user="mai")
    r = client.post("/api/v1/agents/lan/pause", json={}, headers=sup)
    assert r.status_code == 400
    assert r.get_json()["details"][0]["field"] == "reason"
    r = client.post("/api/v1/agents/lan/pause", json={"reason": "  "}, headers=sup)
    assert r.status_code == 400
    assert not bus.records.get(topics.CC_COMMANDS)  # nothing was sent
    r = client.post("/api/v1/agents/lan/pause", json={"reason": "coaching"}, headers=sup)
    assert r.status_code == 202
    command_id = r.get_json()["command_id"]
    entries = client.get("/api/v1/audit?action=agent.state.", headers=h).get_json()["items"]
    assert [(e["user"], e["role"], e["action"], e["target"], e["detail"]) for e in entries] == [
        ("mai", "supervisor", "agent.state.pause", "agent/lan",
         {"reason": "coaching", "command_id": command_id})]
    # an agent's own command needs no reason and is not audited
    me = auth("agent", user="lan")
    assert client.post("/api/v1/agents/lan/resume", json={}, headers=me).status_code == 202
    assert client.get("/api/v1/audit?action=agent.state.", headers=h).get_json()["total"] == 1
    # another tenant's supervisor: no such agent, nothing audited there or here
    other = auth("supervisor", tenant="beta", user="mai")
    assert client.post("/api/v1/agents/lan/pause", json={"reason": "x"},
                       headers=other).status_code == 404
    assert client.get("/api/v1/audit?action=agent.state.",
                      headers=auth("admin", "beta")).get_json()["total"] == 0
    assert client.get("/api/v1/audit?action=agent.state.", headers=h).get_json()["total"] == 1


def test_click_to_call_never_presents_a_service_number(client, auth, bus):
    h = _setup(client, auth)
    client.put("/api/v1/dids/19001234", json={"queue": "support"}, headers=h)
    client.put("/api/v1/dids/18005555", json={"queue": "support"}, headers=h)
    me = auth("agent", user="lan")
    r = client.post("/api/v1/click-to-call", json={"agent_id": "lan", "number": "0912 345 678"},
                    headers=me)
    assert r.status_code == 409 and "1800/1900" in r.get_json()["message"]
    client.put("/api/v1/dids/02838123456", json={"queue": "support"}, headers=h)
    r = client.post("/api/v1/click-to-call", json={"agent_id": "lan", "number": "0912 345 678"},
                    headers=me)
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["caller_id"] == "+842838123456"
    env = bus.of_type("click_to_call_requested")[-1]
    assert env.payload["number"] == "+84912345678"
    # The router is told the caller id to present, and the answer names the call to come.
    assert env.payload["caller_id"] == "+842838123456"
    from routing.contract import click_to_call_leg

    assert r.get_json()["call_id"] == click_to_call_leg(env.tenant, env.payload["request_id"])
    RecordSchema().load(env.to_dict())
    r = client.put("/api/v1/agents/lan", json={"extension": "1001", "caller_id": "18005555"},
                   headers=h)
    assert r.status_code == 400 and r.get_json()["details"][0]["field"] == "caller_id"
    r = client.post("/api/v1/click-to-call", json={"agent_id": "lan", "number": "abc"}, headers=me)
    assert r.status_code == 400 and r.get_json()["details"][0]["field"] == "number"
