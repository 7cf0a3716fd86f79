"""The browser softphone's SIP credentials (api/softphone): only for the caller's own
extension, only through an authenticated request, only over WebSocket, only while the
session and its token live, never across tenants."""
from __future__ import annotations

import base64
import hashlib
import re

import pytest

from api import settings as api_settings
from api.app import create_app
from api.bus import MemoryBus
from api.softphone.services import live_a1_hash

from .conftest import SECRET

XML = {"Authorization": "Basic " + base64.b64encode(b"freeswitch:fs-pass").decode()}
WSS = "wss://pbx.example.vn:7443"


@pytest.fixture
def app():
    s = api_settings.load({"TONGDAI_API_TOKEN_SECRET": SECRET,
                           "TONGDAI_API_XML_CURL_PASSWORD": "fs-pass",
                           "TONGDAI_API_SOFTPHONE_WSS_URL": WSS})
    return create_app(s, MemoryBus(), None)


def _provision(client, auth, tenant: str = "acme") -> None:
    h = auth("admin", tenant)
    assert client.put("/api/v1/tenant", json={}, headers=h).status_code == 200
    assert client.put("/api/v1/queues/sales", json={}, headers=h).status_code == 200
    assert client.put("/api/v1/extensions/1001", json={"agent_id": "lan"},
                      headers=h).status_code == 200
    assert client.put("/api/v1/agents/lan", json={"extension": "1001", "queues": {"sales": {}}},
                      headers=h).status_code == 200
    assert client.put("/api/v1/users/lan", json={"role": "agent", "agent_id": "lan"},
                      headers=h).status_code == 200


def _a1(client, domain: str, ext: str, via: str) -> str | None:
    r = client.post("/api/v1/freeswitch/xml", headers=XML, data={
        "section": "directory", "domain": domain, "user": ext, "action": "sip_auth",
        "sip_auth_username": ext, "sip_via_protocol": via})
    m = re.search(r'name="a1-hash" value="([0-9a-f]{32})"', r.get_data(as_text=True))
    return m[1] if m else None


def _token(client, auth, user: str = "lan", role: str = "agent", tenant: str = "acme") -> dict:
    r = client.post("/api/v1/tokens", json={"user": user, "role": role},
                    headers=auth("admin", tenant))
    assert r.status_code == 201, r.get_json()
    return {"Authorization": f"Bearer {r.get_json()['token']}"}, r.get_json()["token_id"]


def test_credentials_only_for_an_authenticated_caller_and_its_own_extension(client, auth):
    _provision(client, auth)
    assert client.post("/api/v1/softphone").status_code == 401
    assert client.post("/api/v1/softphone", headers={"Authorization": "Bearer x"}).status_code == 401
    me, _ = _token(client, auth)
    r = client.post("/api/v1/softphone", headers=me)
    assert r.status_code == 201, r.get_json()
    assert r.headers["Cache-Control"] == "no-store"
    body = r.get_json()
    assert (body["extension"], body["username"], body["domain"], body["wss_url"]) == (
        "1001", "1001", "acme", WSS)
    assert len(body["password"]) >= 24
    # a user with no phone of its own gets none
    sup = auth("supervisor", user="mai")
    r = client.post("/api/v1/softphone", headers=sup)
    assert r.status_code == 409 and r.get_json()["details"] == [
        {"field": "extension", "rule": "required"}]
    # the password is in no audit entry
    entries = client.get("/api/v1/audit?action=softphone.", headers=auth("admin")).get_json()
    assert [e["target"] for e in entries["items"]] == ["extension/1001"]
    assert body["password"] not in str(entries)


def test_the_switch_gets_the_session_hash_only_over_websocket(client, auth):
    _provision(client, auth)
    desk = _a1(client, "acme", "1001", "udp")
    me, _ = _token(client, auth)
    # no session yet: nothing works over WebSocket, the desk phone's hash neither
    before = _a1(client, "acme", "1001", "wss")
    assert before is not None and before != desk
    body = client.post("/api/v1/softphone", headers=me).get_json()
    session = hashlib.md5(f"1001:acme:{body['password']}".encode()).hexdigest()
    assert _a1(client, "acme", "1001", "wss") == session
    assert _a1(client, "acme", "1001", "ws") == session
    assert _a1(client, "acme", "1001", "udp") == desk != session  # the desk phone's stays
    assert _a1(client, "acme", "1001", "tls") == desk
    # a new session replaces the old one
    again = client.post("/api/v1/softphone", headers=me).get_json()
    assert _a1(client, "acme", "1001", "wss") == hashlib.md5(
        f"1001:acme:{again['password']}".encode()).hexdigest() != session
    # the page ends it
    assert client.delete("/api/v1/softphone", headers=me).status_code == 204
    assert _a1(client, "acme", "1001", "wss") not in (session, desk, None)
    assert client.delete("/api/v1/softphone", headers=me).status_code == 404


def test_the_session_dies_with_its_token_and_user(client, auth, app):
    _provision(client, auth)
    me, token_id = _token(client, auth)
    body = client.post("/api/v1/softphone", headers=me).get_json()
    session = hashlib.md5(f"1001:acme:{body['password']}".encode()).hexdigest()
    assert _a1(client, "acme", "1001", "wss") == session
    svc = app.extensions["tongdai"]
    # past its expiry: none
    assert live_a1_hash(svc.view, "acme", "1001", body["expires_at"] + 1,
                        svc.config.allowed) is None
    assert body["expires_at"] <= svc.tokens.verify(me["Authorization"][7:]).expires_at
    assert client.delete(f"/api/v1/tokens/{token_id}", headers=auth("admin")).status_code == 204
    assert _a1(client, "acme", "1001", "wss") != session
    me2, _ = _token(client, auth)
    body2 = client.post("/api/v1/softphone", headers=me2).get_json()
    session2 = hashlib.md5(f"1001:acme:{body2['password']}".encode()).hexdigest()
    assert _a1(client, "acme", "1001", "wss") == session2
    client.put("/api/v1/users/lan", json={"role": "agent", "agent_id": "lan", "disabled": True},
               headers=auth("admin"))
    assert _a1(client, "acme", "1001", "wss") != session2


def test_another_tenant_never_gets_or_uses_a_session(client, auth):
    _provision(client, auth, "acme")
    _provision(client, auth, "beta")
    me, _ = _token(client, auth)
    body = client.post("/api/v1/softphone", headers=me).get_json()
    session = hashlib.md5(f"1001:acme:{body['password']}".encode()).hexdigest()
    beta_session = hashlib.md5(f"1001:beta:{body['password']}".encode()).hexdigest()
    assert _a1(client, "beta", "1001", "wss") not in (session, beta_session)
    # beta's own agent gets beta's extension, and its session is beta's only
    them, _ = _token(client, auth, tenant="beta")
    theirs = client.post("/api/v1/softphone", headers=them).get_json()
    assert theirs["domain"] == "beta"
    assert _a1(client, "acme", "1001", "wss") == session
    assert _a1(client, "beta", "1001", "wss") == hashlib.md5(
        f"1001:beta:{theirs['password']}".encode()).hexdigest()
    # ending one tenant's session leaves the other's
    assert client.delete("/api/v1/softphone", headers=them).status_code == 204
    assert _a1(client, "acme", "1001", "wss") == session


def test_no_softphone_unless_configured(auth):
    s = api_settings.load({"TONGDAI_API_TOKEN_SECRET": SECRET})
    app = create_app(s, MemoryBus(), None)
    tok, _ = app.extensions["tongdai"].tokens.mint("acme", "agent", "lan")
    r = app.test_client().post("/api/v1/softphone", headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 404 and "TONGDAI_API_SOFTPHONE_WSS_URL" in r.get_json()["message"]
    with pytest.raises(Exception, match="wss"):
        api_settings.load({"TONGDAI_API_TOKEN_SECRET": SECRET,
                           "TONGDAI_API_SOFTPHONE_WSS_URL": "https://x"})
