"""(b) a DID straight to a queue and (c) the IVR, on a real FreeSWITCH with SIPp phones.

Truth per call: the caller's SIPp (INVITE answered, keys sent, BYE answered), the agent's
SIPp (INVITE, 180, 200, BYE), the product's events on Kafka, the live view and the call
log in ClickHouse.
"""
from __future__ import annotations

import json
import time
import urllib.request

import pytest

pytestmark = [pytest.mark.realfs, pytest.mark.stack]


def live(product, tenant: str | None = None) -> dict:
    from tests.realfs.conftest import tongdai

    env = {"TONGDAI_API_TOKEN_SECRET": product.token_secret}
    token = tongdai(env, "api", "token", "--tenant", tenant or product.tenant, "--user", "realfs",
                    "--role", "supervisor").strip()
    req = urllib.request.Request(f"http://127.0.0.1:{product.api_port}/api/v1/live",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


def call_row(product, call_id: str, timeout: float = 90, tenant: str | None = None,
             need: tuple = ("end_us",)) -> dict:
    """The call's last row in the call log, once the sink has written its end (and what
    `need` names: on shared topics with a backlog the sink may fold the router's facts
    of a call before it reaches the switch's)."""
    client = product.clickhouse()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            data, cols = client.execute(
                "SELECT call_id, did, caller, callee, direction, queue, agent_id, extension,"
                " ivr_path, disposition, talk_ms, wait_ms, hold_ms, end_us, answer_us,"
                " transfers, queues_visited, notes, recording FROM calls"
                " WHERE tenant = %(t)s AND call_id = %(c)s AND sign = 1"
                " ORDER BY version DESC LIMIT 1",
                {"t": tenant or product.tenant, "c": call_id}, with_column_types=True)
            row = dict(zip([c for c, _ in cols], data[0])) if data else {}
            if row and all(row.get(n) for n in need):
                return row
            time.sleep(1)
    finally:
        client.disconnect()
    raise AssertionError(f"call {call_id} not ended in the call log after {timeout} s")


def test_a_did_straight_to_a_queue_reaches_a_registered_agent(product):
    reader = product.reader()
    agent = product.agents["a1"]
    other = product.agents["a2"]
    phones = [product.agent_phone(agent), product.agent_phone(other)]
    try:
        caller = product.call(product.queue_did, hold_ms=9000)
        reader.wait_for(lambda es: any(e.type == "call_answered" for e in es), timeout=40,
                        what="call_answered")
        answered = reader.of_type("call_answered")[0]
        call_id, agent_id = answered.call_id, answered.payload["agent_id"]
        now = live(product)
        assert caller.wait(40) == 0, caller.messages()[-3000:]
    finally:
        for phone in phones:
            phone.stop()
    enq = [e for e in reader.of_type("call_enqueued") if e.call_id == call_id]
    assert enq and enq[0].payload["queue"] == "sales"
    offered = [e.payload for e in reader.of_type("call_offered") if e.call_id == call_id]
    assert offered and offered[0]["agent_id"] == agent_id
    reader.wait_for(lambda es: any(e.type == "call_ended" and e.call_id == call_id for e in es),
                    timeout=30, what="call_ended")
    reader.close()
    on_call = {a["agent_id"]: a for a in now["agents"]}[agent_id]
    assert on_call["state"] == "on_call" and on_call["call_id"] == call_id, now
    row = call_row(product, call_id, need=("end_us", "answer_us"))
    assert (row["queue"], row["agent_id"]) == ("sales", agent_id), row
    assert row["disposition"] == "answered" and row["talk_ms"] > 3000, row
    assert row["did"].endswith(product.queue_did[1:]), row


@pytest.mark.parametrize("keys,queue,path", [("1", "sales", "1"), ("21", "support", "2>1")])
def test_an_ivr_choice_reaches_its_queue(product, keys, queue, path):
    reader = product.reader()
    phones = [product.agent_phone(a) for a in product.agents.values()]
    esl = product.switch.esl()
    esl.command("event plain ALL")
    try:
        caller = product.call(product.ivr_did, digits=keys, hold_ms=9000)
        reader.wait_for(lambda es: any(e.type == "call_answered" for e in es), timeout=60,
                        what="call_answered after the IVR")
        answered = reader.of_type("call_answered")[0]
        call_id = answered.call_id
        assert caller.wait(60) == 0, caller.messages()[-3000:]
        reader.wait_for(lambda es: any(e.type == "call_ended" and e.call_id == call_id
                                       for e in es), timeout=30, what="call_ended")
    finally:
        for phone in phones:
            phone.stop()
        esl.close()
        esl.keep(f"plain_ivr_{queue}_{keys}")  # a fixture, when asked
    parked = [e for e in esl.plain_events() if e.get("Event-Name") == "CHANNEL_PARK"
              and e.get("variable_tongdai_ivr_choice")]
    assert parked, "the IVR choice never parked the caller"
    assert parked[0]["variable_tongdai_queue"] == queue
    assert parked[0]["variable_tongdai_ivr_path"] == path
    ivr_events = [e for e in esl.plain_events() if e.get("Event-Subclass") == "tongdai::ivr"]
    assert [e["IVR-Path"] for e in ivr_events] == [path]
    enq = [e for e in reader.of_type("call_enqueued") if e.call_id == call_id]
    assert enq and enq[0].payload["queue"] == queue
    reader.close()
    row = call_row(product, call_id)
    assert (row["queue"], row["ivr_path"], row["disposition"]) == (queue, path, "answered"), row
