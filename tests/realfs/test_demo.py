"""The demo tenant on a real FreeSWITCH (issue 14): provisioned as `tongdai up --freeswitch`
provisions it (deploy/local/demo/demo.yaml, `config apply --missing-only`, the SIP passwords
it printed), its phones register with those passwords, and a call through each demo number
and each IVR choice reaches the right queue and agent.

The copy has ids, a domain and numbers of its own (the shared Kafka may hold the real
demo's) and no queue schedules (the suite runs at any hour).
"""
from __future__ import annotations

import time

import pytest

from tests.realfs.conftest import tongdai
from tests.realfs.test_calls import call_row, live

pytestmark = [pytest.mark.realfs, pytest.mark.stack]

#: demo number, keys, queue, IVR path the call log shows, the agents who may answer (only
#: lan and hoa are logged in: lan takes sales and billing; support, round-robin, has both
#: since the demo offers lan support calls at night too).
SUPPORT = ("hoa", "lan")
CALLS = [
    ("19001234", "1", "sales", "1", ("lan",)),
    ("02473001234", "21", "support", "2>1", SUPPORT),
    ("02873001234", "3", "billing", "3", ("lan",)),
    ("19001234", "0", "support", "0", SUPPORT),
    ("02473001234", "291", "sales", "1", ("lan",)),  # back to the main menu with 9, then 1
    ("02873001234", "22", "support", "2>2", SUPPORT),
]


def test_up_provisions_every_demo_extension_with_a_password_once(product, demo):
    exts = {f"{1000 + i}" for i in range(12)} | {"1099"}
    assert set(demo.passwords) == exts, demo.apply_output
    assert all(len(p) >= 20 for p in demo.passwords.values())
    # `up` at its next start: nothing written, no new password, an admin's change kept
    path = product.folder / "demo.yaml"
    env = {**product.env, "TONGDAI_DEFAULT_TENANT": demo.tenant}
    again = tongdai(env, "config", "apply", "--missing-only", str(path))
    assert "sip_password" not in again and "wrote 0 record(s)" in again, again


def wait_available(product, tenant: str, agent_id: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = {a["agent_id"]: a["state"] for a in live(product, tenant)["agents"]}
        if states.get(agent_id) == "available":
            return
        time.sleep(0.5)
    raise AssertionError(f"{agent_id} not available after {timeout} s: {states}")


@pytest.mark.parametrize("number,keys,queue,path,agent_id", CALLS)
def test_each_demo_number_and_ivr_choice_reaches_its_queue_and_agent(
        product, demo, number, keys, queue, path, agent_id):
    for agent in agent_id:  # none in wrap-up: the router may choose any of them
        wait_available(product, demo.tenant, agent)
    reader = product.reader(demo.tenant)
    phones = [product.agent_phone(a) for a in demo.agents.values()]
    try:
        caller = product.call(demo.dids[number], digits=keys, hold_ms=7000)
        reader.wait_for(lambda es: any(e.type == "call_answered" for e in es), timeout=60,
                        what=f"call_answered after {number} keys {keys}")
        answered = reader.of_type("call_answered")[0]
        assert caller.wait(60) == 0, caller.messages()[-3000:]
    finally:
        for phone in phones:
            phone.stop()
    call_id = answered.call_id
    assert answered.payload["agent_id"] in agent_id, answered.payload
    agent_id = answered.payload["agent_id"]
    enq = [e.payload for e in reader.of_type("call_enqueued") if e.call_id == call_id]
    assert enq and enq[0]["queue"] == queue, enq
    reader.close()
    row = call_row(product, call_id, tenant=demo.tenant)
    assert (row["queue"], row["agent_id"], row["ivr_path"], row["disposition"]) == (
        queue, agent_id, path, "answered"), row
    assert row["did"].endswith(demo.dids[number].lstrip("0")), row
