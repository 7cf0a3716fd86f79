"""A callback that keeps the caller's place, end to end on the simulated switch: the caller
presses the key and confirms, hangs up, keeps its place; when an agent is free its phone
rings, it answers, and its leg dials the customer through the tenant's outbound dialplan
with the tenant's caller ID. The router's commands are the actuator's exact lines."""
from __future__ import annotations

import pytest

from deploy.benchmarks._simrun import SimRun
from esl_bridge.simulator import CallerSpec, NumberSpec
from routing.contract import Envelope, topics
from routing.contract.schemas import RecordSchema
from streams.router import handle, live_view

pytestmark = pytest.mark.streams
TENANT = "callback.test"
CUSTOMER = "0912345678"


def facts(run: SimRun, type_: str) -> list:
    return [e for t, e in run.log if t == topics.CC_EVENTS and e.type == type_]


def setup(customer: NumberSpec) -> tuple[SimRun, str, str]:
    run = SimRun(TENANT)
    run.seen = []  # every event the switch fired
    run.node.listeners.append(run.seen.append)
    run.config("tenant", TENANT, {"domain": TENANT, "outbound_caller_id": "02873001234"})
    run.config("queue", "support", {"wrapup_s": 5, "callback_key": "1",
                                    "callback_attempts": 2})
    run.add_agent("a1", "1000", {"support": {}}, answer_delay=1.0)
    run.node.add_number(customer)
    vars_ = {"tongdai_tenant": TENANT, "tongdai_queue": "support"}
    busy = run.place_call(CallerSpec(number="0903000001", did="19001234", variables=vars_,
                                     talk=40))
    run.run_for(3)
    # The second caller waits behind the first (without ever hanging up) and confirms a
    # callback: the switch thanks it and hangs up.
    waiting = run.place_call(CallerSpec(number=CUSTOMER, did="19001234", variables=vars_))
    run.run_for(4)
    for key in ("1", "1"):
        run.node.execute("uuid_recv_dtmf", f"{waiting} {key}", lambda body: None)
        run.run_for(2)
    return run, busy, waiting


def test_the_caller_hangs_up_keeps_its_place_and_the_agent_calls_the_customer_back():
    run, _, waiting = setup(NumberSpec(number=CUSTOMER, answer_delay=2.0, talk=10))
    (requested,) = facts(run, "callback_requested")
    assert requested.call_id == waiting and requested.payload["number"] == "+84912345678"
    assert requested.payload["position"] == 1
    run.run_for(15)
    assert waiting in run.router.state.calls, "the call kept its place after the hang-up"
    caller = run.ledger.legs[waiting]
    # playback!NORMAL_CLEARING::<the thanks, two files of 2 s>: the switch's BYE after them
    assert (caller.cause, caller.disposition) == ("NORMAL_CLEARING", "send_bye")
    assert 4_000_000 <= caller.ended_us - requested.occurred_at <= 4_500_000
    live_calls = {c["call_id"]: c for c in live_view(run.router, run.now_us)["calls"]}
    assert live_calls[waiting]["callback"] == "+84912345678"
    run.run_for(60)  # the first call ends at ~43 s, wrap-up 5 s, then the callback
    offered = [e for e in facts(run, "call_offered") if e.call_id == waiting]
    assert offered and offered[0].payload["agent_id"] == "a1"
    (done,) = facts(run, "callback_completed")
    assert (done.payload["outcome"], done.payload["attempts"]) == ("connected", 1)
    # The customer's phone rang (a carrier leg to the number) with the tenant's caller ID.
    rang = [e for e in run.seen if e.name == "CHANNEL_CREATE"
            and e.get("Caller-Destination-Number") == CUSTOMER
            and e.get("Call-Direction") == "outbound"]
    assert rang and rang[0].get("Caller-Caller-ID-Number") == "02873001234", \
        [(e.get("Caller-Caller-ID-Number"), e.get("Channel-Name")) for e in rang]
    run.run_for(30)
    assert waiting not in run.router.state.calls, "the call ended after the talk"
    assert run.router.state.agents["a1"].status in ("wrap_up", "available")
    for t, e in run.log:
        assert RecordSchema().validate(e.to_dict()) == {}, e.type


def snapshot(run: SimRun, call_id: str) -> Envelope:
    """The node's periodic snapshot as the bridge sends it: each of the call's legs with
    what the bridge's book says of it (tenant, call, offer, bridged)."""
    node = run.router.call_nodes.get(run.router.agent_legs[call_id], "")
    rows = []
    for ch in run.node.channels.values():
        if ch.variables.get("tongdai_call_id") != call_id:
            continue
        offer = ch.variables.get("tongdai_offer_id")
        rows.append({"uuid": ch.uuid, "created_epoch": str(ch.created_us // 1_000_000),
                     "application": ch.application or "park",
                     "tongdai": {"tenant": TENANT, "leg": "b", "call_id": call_id,
                                 "offer_id": offer, "bridged": bool(ch.bridged_to),
                                 **({"extension": "1000"} if offer else {})}})
    return Envelope(f"snap-{run.now_us}", "node_snapshot_taken", 2, run.now_us, TENANT, node,
                    None, None, {"node": node, "reason": "periodic", "channels": rows,
                                 "registrations": [{"reg_user": "1000"}]})


def test_a_snapshot_during_the_callback_conversation_leaves_it_alone():
    """The caller's leg is gone by design: the agent's leg talking to the customer is no
    orphan to hang up (a real switch's periodic snapshot cut the conversation)."""
    run, _, waiting = setup(NumberSpec(number=CUSTOMER, answer_delay=2.0, talk=30))
    run.run_for(50)  # the callback was connected at ~50 s
    assert facts(run, "callback_completed"), "connected"
    run.run_for(10)
    snap = snapshot(run, waiting)
    assert len(snap.payload["channels"]) == 2  # the agent's leg and the customer's
    outs = handle(run.router, snap)
    assert [o.envelope.type for o in outs if o.envelope.type in (
        "hangup_leg", "state_corrected")] == []
    assert run.router.state.calls[waiting].status == "connected"


def test_a_customer_who_never_answers_fails_after_the_attempts():
    run, _, waiting = setup(NumberSpec(number=CUSTOMER, answer="busy"))
    run.run_for(200)
    attempted = facts(run, "callback_attempted")
    (done,) = facts(run, "callback_completed")
    assert [e.payload["attempt"] for e in attempted] == [1]
    assert attempted[0].payload["result"] == "USER_BUSY"
    assert (done.payload["outcome"], done.payload["attempts"]) == ("failed", 2)
    offered = [e.occurred_at for e in facts(run, "call_offered") if e.call_id == waiting]
    assert len(offered) == 2, "no offer of a callback the router has given up"
    assert waiting not in run.router.state.calls
    assert run.router.state.agents["a1"].status == "available", "no penalty for the agent"
