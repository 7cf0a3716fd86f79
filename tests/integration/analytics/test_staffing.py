"""Staffing advice from the 15-minute history in ClickHouse (both engines): demand, handle
time and patience from the call log, agents needed by Erlang C and A, and the agents
there were from the agent state intervals."""
from __future__ import annotations

import pytest

from analytics import erlang, staffing
from analytics.scenario import S, Scenario, us
from analytics.sink import replay

pytestmark = [pytest.mark.analytics]

START, END = "2026-11-22T09:00:00+07:00", "2026-11-22T10:00:00+07:00"
T = us(START)


def _history() -> Scenario:
    s = Scenario(tenant="staff")
    for a in ("a1", "a2", "a3"):
        s.agent(T, a, "available", "logged_out")
    s.agent(T + 450 * S, "a1", "paused", "available")  # half the interval staffed
    for k in range(6):  # a2 answers them all: 10 s wait, 3 s ring, 60 s talk, 15 s wrap-up
        s.queue_call(f"c{k}", T + 30 * S + k * 90 * S, "support", f"+8490300000{k}",
                     wait_s=10, agent_id="a2", talk_s=60, wrap_s=15)
    for k in range(2):  # two callers give up after 30 s
        s.queue_call(f"x{k}", T + 600 * S + k * 60 * S, "support", f"+8491300000{k}",
                     wait_s=30, abandon=True)
    for a, was in (("a1", "paused"), ("a2", "available"), ("a3", "available")):
        s.agent(T + 1800 * S, a, "logged_out", was)
    return s


@pytest.fixture
def loaded(engine_db):
    replay(engine_db, _history().events, batch_size=50)
    return engine_db


def test_agents_needed_next_to_agents_staffed(loaded):
    rows = staffing.staffing(loaded, "staff", START, END, target=0.8, t_s=20,
                             members={"support": ["a1", "a2"]})
    (row,) = rows  # only the interval with calls
    assert (row["queue"], row["interval"]) == ("support", "2026-11-22 09:00:00")
    assert (row["offered"], row["answered"], row["abandoned"]) == (8, 6, 2)
    assert row["calls_per_hour"] == pytest.approx(8 * 4)
    assert row["aht_s"] == pytest.approx(75.0) and row["aht_from"] == "interval"
    # Patience: every caller's wait (6 × 10 s + 2 × 30 s) over the 2 who gave up.
    assert row["patience_s"] == pytest.approx(60.0)
    rate = 8 / 900
    assert row["agents_erlang_c"] == erlang.agents_c(rate, 75.0, 0.8, 20)
    assert row["agents_erlang_a"] == erlang.agents_a(rate, 75.0, 60.0, 0.8, 20)
    assert row["agents_erlang_a"] <= row["agents_erlang_c"]
    # a1 half the interval (paused at 09:07:30), a2 all of it; a3 is not a member.
    assert row["agents_staffed"] == pytest.approx(1.5)
    everyone = staffing.staffing(loaded, "staff", START, END)
    assert everyone[0]["agents_staffed"] == pytest.approx(2.5)


def test_another_tenant_sees_none_of_it(loaded):
    assert staffing.staffing(loaded, "other", START, END) == []


def test_a_bad_target_is_refused_by_name(loaded):
    with pytest.raises(ValueError, match="target"):
        staffing.staffing(loaded, "staff", START, END, target=80)


def test_the_reports_api_serves_it_to_the_tenant_supervisors_only(loaded):
    from api import settings as api_settings
    from api.app import create_app
    from api.bus import MemoryBus

    app = create_app(api_settings.load({"TONGDAI_API_TOKEN_SECRET": "s" * 40,
                                        "TONGDAI_API_XML_CURL_PASSWORD": "p"}),
                     MemoryBus(), lambda: loaded)
    client, tokens = app.test_client(), app.extensions["tongdai"].tokens

    def auth(role, tenant="staff"):
        return {"Authorization": f"Bearer {tokens.mint(tenant, role, role + '-user')[0]}"}

    admin = auth("admin")
    assert client.put("/api/v1/queues/support", json={}, headers=admin).status_code == 200
    for a, ext in (("a1", "1001"), ("a2", "1002")):
        r = client.put(f"/api/v1/agents/{a}", json={"extension": ext,
                                                  "queues": {"support": {}}}, headers=admin)
        assert r.status_code == 200, r.get_json()
    period = {"start": START, "end": END, "target": 0.8, "target_s": 20}
    body = client.get("/api/v1/reports/staffing", query_string=period,
                      headers=auth("supervisor")).get_json()
    (row,) = body["items"]
    assert row["agents_staffed"] == pytest.approx(1.5), "a1 and a2 are support's members"
    assert row["agents_erlang_a"] <= row["agents_erlang_c"]
    assert client.get("/api/v1/reports/staffing", query_string=period,
                      headers=auth("supervisor", "other")).get_json()["items"] == []
    assert client.get("/api/v1/reports/staffing", query_string=period,
                      headers=auth("agent")).status_code == 403
    bad = client.get("/api/v1/reports/staffing", query_string={**period, "target": 80},
                     headers=auth("supervisor"))
    assert bad.status_code == 400 and "target" in bad.get_data(as_text=True)
    csv = client.get("/api/v1/reports/staffing", query_string={**period, "format": "csv"},
                     headers=auth("supervisor"))
    assert csv.status_code == 200 and b"agents_erlang_c" in csv.data
