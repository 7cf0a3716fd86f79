"""A callback that keeps the caller's place, end to end on the simulated switch: the caller
presses the key and confirms, hangs up, keeps its place; when an agent is free its phone
rings, it answers, and its leg dials the customer through the tenant's outbound dialplan
with the tenant's caller ID. The router's commands are the actuator's exact lines."""
from __future__ import annotations

import pytest

from deploy.benchmarks._simrun import SimRun
from esl_bridge.simulator import CallerSpec, NumberSpec
from routing.contract import topics
from routing.contract.schemas import RecordSchema
from streams.router import live_view

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
