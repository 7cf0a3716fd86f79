"""Issue 16: bounded JSON depth; stream tickets instead of tokens in URLs; per-user caps on
event streams.

Before: JSON nested 100,000 levels deep got a 500; sixteen event streams of one agent
starved the API's threads; the token travelled in the stream's URL (`?access_token=`).
"""
from __future__ import annotations

import pytest

from api.auth import Tokens
from api.errors import Unauthorized

pytestmark = pytest.mark.api


def _nested(depth: int) -> bytes:
    return b'{"name": ' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


@pytest.mark.parametrize("depth", [401, 1025, 100_000])
def test_json_nested_too_deep_is_a_400_naming_the_body(client, auth, depth):
    r = client.put("/api/v1/queues/q", data=_nested(depth), headers={
        **auth("admin"), "Content-Type": "application/json"})
    assert r.status_code == 400, r.get_data(as_text=True)[:200]
    assert r.get_json()["details"] == [{"field": "_body", "rule": "nested deeper than 400 levels"}]


def test_json_within_the_depth_goes_on_to_the_schema(client, auth):
    r = client.put("/api/v1/queues/q", data=_nested(400), headers={
        **auth("admin"), "Content-Type": "application/json"})
    assert r.status_code == 400 and r.get_json()["details"][0]["field"] == "name"


def _ticket(client, headers, path):
    r = client.post("/api/v1/stream-tickets", json={"path": path}, headers=headers)
    assert r.status_code == 201, r.get_json()
    return r.get_json()["ticket"]


def test_streams_take_a_ticket_never_a_token_in_the_url(client, auth, app):
    sup = auth("supervisor")
    token = sup["Authorization"].split()[1]
    r = client.get(f"/api/v1/live/stream?access_token={token}")
    assert r.status_code == 401 and token not in r.get_data(as_text=True)
    ticket = _ticket(client, sup, "/api/v1/live/stream")
    assert token not in ticket
    r = client.get(f"/api/v1/live/stream?ticket={ticket}")
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    r.close()
    # a ticket is for its stream only, and is not a token
    assert client.get(f"/api/v1/agents/lan/popups?ticket={ticket}").status_code == 401
    assert client.get("/api/v1/live", headers={"Authorization": f"Bearer {ticket}"}).status_code == 401
    r = client.post("/api/v1/stream-tickets", json={"path": "/api/v1/queues"}, headers=sup)
    assert r.status_code == 400 and r.get_json()["details"][0]["field"] == "path"


def test_a_ticket_expires_and_dies_with_its_token(client, auth, app):
    now = [1_000_000.0]
    tokens = Tokens("s" * 40, 3600, clock=lambda: now[0])
    _, who = tokens.mint("acme", "supervisor", "mai")
    ticket, expires = tokens.ticket(who, "/api/v1/live/stream")
    assert expires == int(now[0]) + 30
    assert tokens.verify_ticket(ticket, "/api/v1/live/stream") == who.__class__(
        who.tenant, who.role, who.user, who.token_id, expires, who.issued_ms, who.bound)
    now[0] += 31
    with pytest.raises(Unauthorized, match="expired"):
        tokens.verify_ticket(ticket, "/api/v1/live/stream")
    admin = auth("admin")
    client.put("/api/v1/users/mai", json={"role": "supervisor"}, headers=admin)
    minted = client.post("/api/v1/tokens", json={"user": "mai", "role": "supervisor"},
                         headers=admin).get_json()
    ticket = _ticket(client, {"Authorization": f"Bearer {minted['token']}"}, "/api/v1/live/stream")
    client.delete(f"/api/v1/tokens/{minted['token_id']}", headers=admin)
    assert client.get(f"/api/v1/live/stream?ticket={ticket}").status_code == 401


def test_one_user_gets_at_most_three_open_streams(client, auth, app):
    sup = auth("supervisor", user="mai")
    opened = []
    for _ in range(3):
        r = client.get(f"/api/v1/live/stream?ticket={_ticket(client, sup, '/api/v1/live/stream')}")
        assert r.status_code == 200
        opened.append(r)
    r = client.get(f"/api/v1/live/stream?ticket={_ticket(client, sup, '/api/v1/live/stream')}")
    assert r.status_code == 429
    assert r.get_json()["details"] == [{"field": "_stream", "rule": "at most 3 per user"}]
    # another user still gets one; closing a stream frees its slot
    other = auth("supervisor", user="binh")
    r2 = client.get(f"/api/v1/live/stream?ticket={_ticket(client, other, '/api/v1/live/stream')}")
    assert r2.status_code == 200
    r2.close()
    opened.pop().close()
    r = client.get(f"/api/v1/live/stream?ticket={_ticket(client, sup, '/api/v1/live/stream')}")
    assert r.status_code == 200
    opened.append(r)
    for r in reversed(opened):  # the test client's contexts are a stack
        r.close()
    assert app.extensions["tongdai"].streams.open_count() == 0


def test_streams_leave_threads_for_requests(client, auth, app):
    streams = app.extensions["tongdai"].streams
    assert streams.total == 6  # 8 threads - 2
    opened = []
    for i in range(6):
        h = auth("supervisor", user=f"u{i}")
        r = client.get(f"/api/v1/live/stream?ticket={_ticket(client, h, '/api/v1/live/stream')}")
        assert r.status_code == 200
        opened.append(r)
    h = auth("supervisor", user="late")
    r = client.get(f"/api/v1/live/stream?ticket={_ticket(client, h, '/api/v1/live/stream')}")
    assert r.status_code == 429
    for r in reversed(opened):  # the test client's contexts are a stack
        r.close()
