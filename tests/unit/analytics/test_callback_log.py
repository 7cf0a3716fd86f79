"""A callback that keeps the caller's place is one story in the call log (issue 19): the
inbound call's row says the caller asked to be called back and what became of it, and the
callback's legs (the agent's, the customer's) are legs of that call, with its answer, talk
time, agent and recording. The events are the ones the router and the switch emit
(`Scenario.callback_call`, shaped on a simulator run of tests/unit/streams/
test_callback_sim.py); the sink's step is checked against an in-memory store. Order,
duplicates and partial stories: test_cdr.py's invariants run over callbacks too."""
from __future__ import annotations

import random

import pytest
from analytics.cdr import fold_call
from analytics.scenario import S, Scenario, us
from analytics.sink import CallLog, live_rows
from deploy.benchmarks._simrun import SimRun
from esl_bridge import normalize
from esl_bridge.simulator import CallerSpec, NumberSpec
from routing.contract import deterministic_id, topics
from routing.contract.schemas import RecordSchema
from tests.unit.analytics.test_call_log import MemoryStore, feed

pytestmark = pytest.mark.analytics

T0 = us("2026-11-22T09:00:00+07:00")
NUMBER = "+84912345678"


def story(*attempts: str, **kw) -> tuple[Scenario, dict[str, int]]:
    s = Scenario()
    times = s.callback_call("cb", T0, "support", NUMBER, attempts=attempts, **kw)
    return s, times


def legs(n: int) -> tuple[str, str]:
    """The agent's and the customer's leg of attempt `n`."""
    return (deterministic_id("cb", "callback-offer", n),
            deterministic_id("cb", "callback-customer", n))


def test_the_events_follow_the_contract():
    s, _ = story("busy", "no_answer", "answer")
    bad = [(e.type, err) for e in s.events if (err := RecordSchema().validate(e.to_dict()))]
    assert bad == []


def test_a_callback_the_agent_connects_is_the_inbound_calls_answer():
    s, t = story("answer")
    f = fold_call(s.events)
    c = f.cdr
    agent_leg, _ = legs(1)
    assert (c["call_id"], c["direction"], c["caller"], c["did"], c["queue"]) == (
        "cb", "inbound", NUMBER, "19001234", "support")
    assert (c["disposition"], c["callback"], c["callback_attempts"]) == (
        "answered", "connected", 1)
    assert (c["agent_id"], c["extension"]) == ("agent-7", "1007")
    # answered when the agent reached the customer; over when that conversation ended
    assert (c["answer_us"], c["end_us"]) == (t["answer"], t["end"])
    assert c["enqueue_us"] == t["enqueue"] and c["wait_ms"] == (t["answer"] - t["enqueue"]) // 1000
    assert (c["ring_ms"], c["talk_ms"], c["wrap_ms"]) == (1000, 45000, 10000)
    assert c["recording"].endswith(f"/{agent_leg}.wav")  # the agent leg's, where it is recorded
    assert c["hangup_cause"] == "NORMAL_CLEARING"
    assert c["hangup_side"] == "caller"  # the customer (the caller) hung up first
    assert c["notes"] == f"callback to {NUMBER}: connected at attempt 1"
    assert (c["offers"], c["ring_no_answer"], c["transfers"], c["final"]) == (1, 0, 0, 1)
    (v,) = f.visits
    assert (v["outcome"], v["agent_id"], v["wait_ms"], v["ring_ms"], v["talk_ms"],
            v["wrap_ms"], v["short_abandon"]) == (
        "callback", "agent-7", c["wait_ms"], 1000, 45000, 10000, 0)
    (o,) = f.offers
    assert (o["leg_id"], o["result"], o["ring_ms"]) == (agent_leg, "answered", 1000)


def test_the_customer_not_answering_then_answering_is_one_call_and_two_offers():
    s, t = story("busy", "answer")
    f = fold_call(s.events)
    c = f.cdr
    assert (c["disposition"], c["callback"], c["callback_attempts"], c["answer_us"]) == (
        "answered", "connected", 2, t["answer"])
    assert c["recording"].endswith(f"/{legs(2)[0]}.wav")  # the conversation, not the busy tone
    assert c["notes"] == f"callback to {NUMBER}: connected at attempt 2"
    assert [(o["leg_id"], o["result"], o["hangup_cause"]) for o in f.offers] == [
        (legs(1)[0], "answered", "USER_BUSY"), (legs(2)[0], "answered", "NORMAL_CLEARING")]
    assert c["ring_no_answer"] == 0  # the customer was busy, not the agent
    (v,) = f.visits  # one stay in the queue, whatever the attempts
    assert (v["outcome"], v["offers"], v["agent_id"]) == ("callback", 2, "agent-7")


def test_a_customer_never_reached_fails_after_the_attempts():
    s, t = story("busy", "no_answer", "busy")
    f = fold_call(s.events)
    c = f.cdr
    assert (c["disposition"], c["callback"], c["callback_attempts"]) == (
        "callback_failed", "failed", 3)
    assert (c["answer_us"], c["talk_ms"], c["end_us"], c["final"]) == (0, 0, t["end"], 1)
    assert c["notes"] == (f"callback to {NUMBER}: not reached after 3 attempts "
                          "(USER_BUSY, NO_ANSWER, USER_BUSY)")
    assert c["hangup_cause"] == "USER_BUSY"
    (v,) = f.visits
    assert (v["outcome"], v["agent_id"], v["talk_ms"], v["offers"]) == ("callback", "", 0, 3)
    assert v["wait_ms"] == (t["end"] - t["enqueue"]) // 1000  # until the router gave up
    assert [o["result"] for o in f.offers] == ["answered"] * 3


def test_while_the_callback_waits_the_call_is_not_over():
    """The caller has left the line (the switch hung it up after the thanks): not an
    abandon; the row says a callback is due, and stays open until it is done."""
    s, t = story("answer")
    before = [e for e in s.events if e.occurred_at <= t["left"] + 5 * S]
    c = fold_call(before).cdr
    assert (c["disposition"], c["callback"], c["end_us"], c["final"]) == (
        "callback", "requested", 0, 0)
    assert c["notes"] == f"callback to {NUMBER} requested"
    talking = [e for e in s.events if e.occurred_at <= t["answer"] + 10 * S]
    c = fold_call(talking).cdr
    assert (c["disposition"], c["answer_us"], c["end_us"], c["final"], c["talk_ms"]) == (
        "answered", t["answer"], 0, 0, 0)
    ended = [e for e in s.events if e.occurred_at <= t["end"]]
    c = fold_call(ended).cdr
    assert (c["end_us"], c["talk_ms"], c["final"]) == (t["end"], 45000, 0)  # wrap-up to come


def test_a_caller_who_hangs_up_before_confirming_abandons_as_usual():
    s, t = story("answer")
    asked_only = [e for e in s.events if e.occurred_at < t["requested"]]
    c = fold_call(asked_only + [s.fs("channel_hangup_completed", t["requested"] + S, "cb",
                                     hangup_cause="NORMAL_CLEARING", caller=NUMBER,
                                     callee="19001234", queue="support")]).cdr
    assert (c["disposition"], c["callback"], c["callback_attempts"]) == ("abandoned", "", 0)


@pytest.mark.parametrize("exported", [True, False])
def test_the_sink_writes_one_row_per_call_never_one_per_leg(exported):
    """Through the sink's batch step, in small batches: the customer's legs carry the
    call's id (the callback offer exports it), or — events from before that — the agent
    leg's id, and the bridge joins the leg that talked."""
    s = Scenario()
    t = s.callback_call("cb", T0, "support", NUMBER, attempts=("answer",), exported=exported)
    s.queue_call("plain", T0 + 5 * S, "support", "+84911000111", agent_id="agent-3")
    store = MemoryStore()
    feed(CallLog(store), store, sorted(s.events, key=lambda e: e.occurred_at), batch=4)
    assert {k: n for k, n in store.net().items() if n} == {"cb": 1, "plain": 1}
    (_, (row,)) = live_rows(store.tables["calls"])[("acme", "cb")]
    assert (row["disposition"], row["callback"], row["agent_id"], row["answer_us"],
            row["talk_ms"], row["final"]) == ("answered", "connected", "agent-7", t["answer"],
                                              45000, 1)
    assert {k: n for k, n in store.net("queue_visits").items() if n} == {"cb": 1, "plain": 1}
    visits = live_rows(store.tables["queue_visits"])[("acme", "cb")][1]
    assert [v["outcome"] for v in visits] == ["callback"]


def test_a_random_day_with_callbacks_keeps_one_row_per_call():
    """Callbacks among ordinary calls, fed as the log interleaves them."""
    rng = random.Random(5)
    s = Scenario()
    ids = []
    for i in range(12):
        call_id = f"c{i}"
        ids.append(call_id)
        at = T0 + i * 40 * S
        if i % 3 == 0:
            s.callback_call(call_id, at, "support", f"+8491{i:07d}", agent_id=f"agent-{i}",
                            attempts=rng.choice((("answer",), ("busy", "answer"),
                                                 ("busy", "busy", "busy"))))
        else:
            s.queue_call(call_id, at, "support", f"+8498{i:07d}", agent_id=f"agent-{i}")
    store = MemoryStore()
    feed(CallLog(store), store, sorted(s.events, key=lambda e: e.occurred_at), batch=7)
    assert {k: n for k, n in store.net().items() if n} == dict.fromkeys(ids, 1)
    rows = {k[1]: r[0] for k, (_, r) in live_rows(store.tables["calls"]).items()}
    assert {i for i, r in rows.items() if r["callback"]} == {"c0", "c3", "c6", "c9"}
    assert all(r["final"] for r in rows.values())


# ---- the same story from the simulated switch and the router -------------------------

SIM_TENANT = "callback.test"


def simulated(customer: NumberSpec) -> tuple[SimRun, list, str, str]:
    """tests/unit/streams/test_callback_sim.py's day: a1 talks to a first caller; a second
    caller waits behind it, confirms a callback and is hung up by the switch; the callback
    then goes to a1. Returns the run, every fact (the switch's, normalized as the bridge
    does, and the router's) and the two call ids."""
    run = SimRun(SIM_TENANT)
    seen: list = []
    run.node.listeners.append(seen.append)
    run.config("tenant", SIM_TENANT, {"domain": SIM_TENANT, "outbound_caller_id": "02873001234"})
    run.config("queue", "support", {"wrapup_s": 5, "callback_key": "1", "callback_attempts": 2})
    run.add_agent("a1", "1000", {"support": {}}, answer_delay=1.0)
    run.node.add_number(customer)
    variables = {"tongdai_tenant": SIM_TENANT, "tongdai_queue": "support"}
    first = run.place_call(CallerSpec(number="0903000001", did="19001234",
                                      variables=variables, talk=40))
    run.run_for(3)
    second = run.place_call(CallerSpec(number="0912345678", did="19001234",
                                       variables=variables))
    run.run_for(4)
    for key in ("1", "1"):
        run.node.execute("uuid_recv_dtmf", f"{second} {key}", lambda body: None)
        run.run_for(2)
    run.run_for(150)
    config = normalize.NormalizerConfig(default_tenant=SIM_TENANT)  # the callers' IP domain
    facts = []
    for event in seen:
        try:
            facts.append(normalize.normalize(event, config))
        except normalize.Skipped:
            continue
    facts += [e for t, e in run.log if t == topics.CC_EVENTS]
    return run, sorted(facts, key=lambda e: (e.occurred_at, e.seq or 0)), first, second


def written(facts: list) -> dict[str, dict]:
    store = MemoryStore()
    feed(CallLog(store), store, facts, batch=5)
    assert {k: n for k, n in store.net().items() if n} == dict.fromkeys(
        {k[1] for k in live_rows(store.tables["calls"])}, 1)
    visits = live_rows(store.tables["queue_visits"])
    return {key[1]: {**rows[0], "visits": [v["outcome"] for v in visits[key][1]]}
            for key, (_, rows) in live_rows(store.tables["calls"]).items()}


def test_a_simulated_callback_is_one_row_through_the_sink():
    run, facts, first, second = simulated(NumberSpec(number="0912345678", answer_delay=2.0,
                                                     talk=10))
    rows = written(facts)
    assert set(rows) == {first, second}  # no row of the agent's or the customer's leg
    row = rows[second]
    (done,) = [e for e in facts if e.type == "callback_completed"]
    assert (row["disposition"], row["callback"], row["callback_attempts"], row["agent_id"],
            row["talk_ms"], row["final"], row["visits"]) == (
        "answered", "connected", 1, "a1", 10000, 1, ["callback"])
    assert row["answer_us"] == done.occurred_at  # the customer answered: the bridge
    assert row["recording"] and row["hangup_side"] == "caller"
    assert (rows[first]["disposition"], rows[first]["callback"]) == ("answered", "")


def test_a_simulated_callback_nobody_answers_fails_in_one_row():
    run, facts, first, second = simulated(NumberSpec(number="0912345678", answer="busy"))
    row = written(facts)[second]
    assert (row["disposition"], row["callback"], row["callback_attempts"], row["talk_ms"],
            row["final"], row["visits"]) == ("callback_failed", "failed", 2, 0, 1, ["callback"])
    assert row["notes"].endswith("not reached after 2 attempts (USER_BUSY, USER_BUSY)")
    assert row["offers"] == 2  # no phantom third offer once the router gave up
